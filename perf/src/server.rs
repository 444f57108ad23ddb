//! Starting and stopping a server command for `compare`: placeholders filled with fresh
//! addresses and a fresh data directory, readiness by connecting to its TCP port, its peak RSS
//! read before it stops, SIGTERM then SIGKILL.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::cpu;
use crate::pin;

/// A running server.
pub struct Server {
    child: Child,
    /// The TCP address clients use.
    pub tcp: String,
    /// The data directory made for it (removed on stop).
    pub data: PathBuf,
    /// The command as run.
    pub command: String,
}

/// The command with `{tcp}`, `{http}`, `{data}` and `{flags}` replaced.
pub fn fill(template: &str, tcp: &str, http: &str, data: &str, flags: &str) -> String {
    template
        .replace("{tcp}", tcp)
        .replace("{http}", http)
        .replace("{data}", data)
        .replace("{flags}", flags)
}

/// A loopback address with a port nobody listens on right now.
///
/// # Errors
/// When no port can be bound.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

impl Server {
    /// Starts `template` (see [`fill`]) under `sh -c`, pinned to `cpus` if given, and waits
    /// until its TCP port accepts a connection. `default_tcp` is the address when the template
    /// has no `{tcp}`.
    ///
    /// # Errors
    /// When it cannot start, exits, or does not accept connections within `timeout`.
    pub fn start(
        template: &str,
        flags: &str,
        default_tcp: &str,
        cpus: Option<&str>,
        timeout: Duration,
    ) -> anyhow::Result<Server> {
        let tcp = if template.contains("{tcp}") {
            free_addr()?.to_string()
        } else {
            default_tcp.to_owned()
        };
        let http = free_addr()?.to_string();
        let data = std::env::temp_dir().join(format!(
            "sluice-perf-{}-{}",
            std::process::id(),
            crate::body::wall_ns()
        ));
        std::fs::create_dir_all(&data).context("creating the data directory")?;
        let command = fill(template, &tcp, &http, &data.display().to_string(), flags);
        let log = std::fs::File::create(data.join("server.log"))?;
        let argv = pin::pinned_shell_command(&command, cpus);
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {command}"))?;
        let mut server = Server {
            child,
            tcp,
            data,
            command,
        };
        server.wait_ready(timeout)?;
        Ok(server)
    }

    fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let addr: SocketAddr = self.tcp.parse().context("server TCP address")?;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before accepting connections; log:\n{}",
                    self.command,
                    self.log_tail()
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not accept connections on {addr} within {timeout:?}",
                    self.command
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's pid (the command's: `sh -c exec` and `taskset` keep it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its peak RSS so far, in bytes.
    pub fn peak_rss(&self) -> Option<u64> {
        cpu::peak_rss_bytes(self.pid())
    }

    /// The last lines of its output.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.data.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Sends SIGTERM, waits up to 5 s, then kills; removes the data directory.
    pub fn stop(mut self) {
        let pid = self.pid().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled() {
        assert_eq!(
            fill(
                "s --tcp-address={tcp} --http-address={http} --data-path={data} {flags}",
                "a:1",
                "a:2",
                "/d",
                "--x=1"
            ),
            "s --tcp-address=a:1 --http-address=a:2 --data-path=/d --x=1"
        );
    }
}
