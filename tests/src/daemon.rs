//! Runs a workspace binary (`sluiced`, `sluice-lookupd`) as a child process on loopback port 0.
//!
//! The daemon logs its bound addresses as upstream nsqd does (`nsqd/nsqd.go` `Main`):
//! `TCP: listening on 127.0.0.1:NNNN` and `HTTP: listening on 127.0.0.1:NNNN`, possibly after a
//! prefix such as `[nsqd] 2024/01/01 12:00:00.000000 INFO: `. [`Daemon::start`] waits (bounded)
//! until it has seen both, keeps draining stdout and stderr in threads so the pipes never fill,
//! keeps the last lines for failure messages, and kills its own child by pid on drop.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a daemon may take to print both listening lines.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How many output lines are kept for failure messages.
pub const LOG_TAIL_LINES: usize = 60;
/// Longest output line kept (longer lines are cut).
const LOG_LINE_BYTES_MAX: usize = 4096;

/// A directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a fresh, uniquely named directory.
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn new(label: &str) -> Result<TempDir, String> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "sluice-{label}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path).map_err(|e| format!("create {path:?}: {e}"))?;
        Ok(TempDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// What the output-draining threads report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    Listening(Listener, SocketAddr),
    PipeClosed,
}

/// Which listening line an address came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// `TCP: listening on ...`
    Tcp,
    /// `HTTP: listening on ...`
    Http,
}

/// Finds a listening line in one line of output, tolerating any prefix and ANSI colours.
pub fn parse_listening_line(line: &str) -> Option<(Listener, SocketAddr)> {
    let line = strip_ansi(line);
    for (listener, marker) in [
        (Listener::Http, "HTTP: listening on "),
        (Listener::Tcp, "TCP: listening on "),
    ] {
        let Some(at) = line.find(marker) else {
            continue;
        };
        // "HTTP: listening on" contains "TTP:", never "TCP:"; still require a word boundary.
        let before = line.get(..at).and_then(|s| s.chars().last());
        if before.is_some_and(|c| c.is_ascii_alphanumeric()) {
            continue;
        }
        let rest = line.get(at + marker.len()..).unwrap_or_default();
        let token = rest.split_whitespace().next().unwrap_or_default();
        let token = token.trim_matches(|c: char| c == '"' || c == '\'' || c == ',');
        if let Ok(addr) = token.parse() {
            return Some((listener, addr));
        }
    }
    None
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI sequence: ESC [ params final-byte(0x40..=0x7e).
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) && c != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A running daemon, killed on drop.
#[derive(Debug)]
pub struct Daemon {
    name: String,
    child: Child,
    tcp: SocketAddr,
    http: SocketAddr,
    log: Arc<Mutex<VecDeque<String>>>,
    _data_dir: Option<TempDir>,
}

impl Daemon {
    /// Starts `sluiced` with `args` on loopback port 0 and a fresh data directory.
    ///
    /// # Errors
    /// See [`Daemon::start`].
    pub fn sluiced(args: &[String]) -> Result<Daemon, String> {
        let data_dir = TempDir::new("data")?;
        let mut all = vec![format!("--data-path={}", data_dir.path().display())];
        all.extend_from_slice(args);
        let mut daemon = Daemon::start("sluiced", &all)?;
        daemon._data_dir = Some(data_dir);
        Ok(daemon)
    }

    /// Starts a workspace binary with `--tcp-address=127.0.0.1:0 --http-address=127.0.0.1:0`
    /// plus `args`, and waits until it has logged both listening addresses.
    ///
    /// # Errors
    /// The binary is missing, exits, or does not log both addresses within [`STARTUP_TIMEOUT`];
    /// the message includes its last output lines.
    pub fn start(binary_name: &str, args: &[String]) -> Result<Daemon, String> {
        let path = crate::bins::binary(binary_name)?;
        let mut command = Command::new(&path);
        command
            .arg("--tcp-address=127.0.0.1:0")
            .arg("--http-address=127.0.0.1:0")
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(|e| format!("spawn {path:?}: {e}"))?;
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = mpsc::channel();
        if let Some(stderr) = child.stderr.take() {
            drain(stderr, Arc::clone(&log), tx.clone());
        }
        if let Some(stdout) = child.stdout.take() {
            drain(stdout, Arc::clone(&log), tx);
        }
        let mut daemon = Daemon {
            name: format!("{binary_name} {}", args.join(" ")),
            child,
            tcp: SocketAddr::from(([0, 0, 0, 0], 0)),
            http: SocketAddr::from(([0, 0, 0, 0], 0)),
            log,
            _data_dir: None,
        };
        daemon.wait_for_listeners(&rx)?;
        Ok(daemon)
    }

    fn wait_for_listeners(&mut self, rx: &Receiver<Event>) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let (mut tcp, mut http) = (None, None);
        let mut pipes_open = 2;
        while tcp.is_none() || http.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the drain threads reach the end of the pipes so the report has every line.
                let drained_by = Instant::now() + Duration::from_secs(1);
                while pipes_open > 0 && Instant::now() < drained_by {
                    if let Ok(Event::PipeClosed) = rx.recv_timeout(Duration::from_millis(50)) {
                        pipes_open -= 1;
                    }
                }
                return Err(self.failure(&format!("exited during start-up ({status})")));
            }
            if Instant::now() >= deadline {
                return Err(self.failure(&format!(
                    "did not log both listening lines within {STARTUP_TIMEOUT:?}"
                )));
            }
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(Event::Listening(Listener::Tcp, addr)) => tcp = Some(addr),
                Ok(Event::Listening(Listener::Http, addr)) => http = Some(addr),
                Ok(Event::PipeClosed) => pipes_open -= 1,
                Err(_) => {}
            }
        }
        self.tcp = tcp.unwrap_or(self.tcp);
        self.http = http.unwrap_or(self.http);
        Ok(())
    }

    fn failure(&self, what: &str) -> String {
        format!("`{}` {what}; last output:\n{}", self.name, self.log_tail())
    }

    /// The TCP (protocol) address it listens on.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp
    }

    /// The HTTP address it listens on.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines it printed (stdout and stderr interleaved as read).
    pub fn log_tail(&self) -> String {
        let lines = self
            .log
            .lock()
            .map(|l| l.iter().cloned().collect::<Vec<_>>());
        let lines = lines.unwrap_or_default();
        if lines.is_empty() {
            "  (no output)".to_owned()
        } else {
            lines.iter().map(|l| format!("  | {l}\n")).collect()
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit status (killing it after that).
    ///
    /// # Errors
    /// It did not exit in time (it is then killed).
    pub fn terminate(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        let pid = libc::pid_t::try_from(self.child.id()).map_err(|e| e.to_string())?;
        // SAFETY: kill(2) with our own child's pid, which we have not reaped yet, so the pid
        // cannot have been reused by another process.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err(self.failure(&format!("did not exit within {timeout:?} of SIGTERM")))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Reads `pipe` line by line until it closes: keeps a tail, reports listening lines.
fn drain(
    pipe: impl Read + Send + 'static,
    log: Arc<Mutex<VecDeque<String>>>,
    events: Sender<Event>,
) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            line.truncate(LOG_LINE_BYTES_MAX);
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            if let Some((listener, addr)) = parse_listening_line(&text) {
                let _ = events.send(Event::Listening(listener, addr));
            }
            if let Ok(mut tail) = log.lock() {
                if tail.len() == LOG_TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(text);
            }
        }
        let _ = events.send(Event::PipeClosed);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upstream_lines_with_prefixes() {
        let tcp = "[nsqd] 2024/01/01 12:00:00.000000 INFO: TCP: listening on 127.0.0.1:4150";
        assert_eq!(
            parse_listening_line(tcp),
            Some((Listener::Tcp, "127.0.0.1:4150".parse().unwrap()))
        );
        let http = "2026-01-01T00:00:00Z  INFO sluiced: HTTP: listening on 127.0.0.1:39021";
        assert_eq!(
            parse_listening_line(http),
            Some((Listener::Http, "127.0.0.1:39021".parse().unwrap()))
        );
        assert_eq!(
            parse_listening_line("TCP: listening on [::1]:80"),
            Some((Listener::Tcp, "[::1]:80".parse().unwrap()))
        );
    }

    #[test]
    fn ignores_other_lines_and_ansi_colours() {
        assert_eq!(parse_listening_line("INFO: starting"), None);
        assert_eq!(parse_listening_line("XTCP: listening on 127.0.0.1:1"), None);
        assert_eq!(parse_listening_line("TCP: listening on nowhere"), None);
        let coloured = "\u{1b}[32m INFO\u{1b}[0m TCP: listening on \u{1b}[1m127.0.0.1:7\u{1b}[0m";
        assert_eq!(
            parse_listening_line(coloured),
            Some((Listener::Tcp, "127.0.0.1:7".parse().unwrap()))
        );
    }

    #[test]
    fn temp_dirs_are_unique_and_removed() {
        let a = TempDir::new("t").unwrap();
        let b = TempDir::new("t").unwrap();
        assert_ne!(a.path(), b.path());
        let path = a.path().to_path_buf();
        assert!(path.is_dir());
        drop(a);
        assert!(!path.exists());
    }

    #[test]
    fn a_daemon_that_exits_is_reported_with_its_output() {
        // `sh` stands in for a broker that fails at start-up.
        let mut child = Command::new("sh")
            .args(["-c", "echo 'fatal: cannot bind' >&2; exit 3"])
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = mpsc::channel();
        drain(child.stderr.take().unwrap(), Arc::clone(&log), tx.clone());
        drain(child.stdout.take().unwrap(), Arc::clone(&log), tx);
        let mut daemon = Daemon {
            name: "sh".to_owned(),
            child,
            tcp: SocketAddr::from(([0, 0, 0, 0], 0)),
            http: SocketAddr::from(([0, 0, 0, 0], 0)),
            log,
            _data_dir: None,
        };
        let err = daemon.wait_for_listeners(&rx).unwrap_err();
        assert!(err.contains("exited during start-up"), "{err}");
        assert!(err.contains("fatal: cannot bind"), "{err}");
    }
}
