//! Crash-and-restart harness for the durability suite: a `sluiced` that keeps one data directory
//! across SIGKILL, SIGTERM and restarts, plus what the suite inspects from outside (segment files,
//! `/ping`, `/stats`, the process's memory) and a V2 client ([`client`]).
//!
//! Everything here is observed as a user would: the process, its files and its public APIs.
//! The one piece of broker knowledge copied in is [`shard_of`] (which shard owns a topic), so a
//! test can pick topics on the same or another shard; its doc cites the original.

pub mod client;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::daemon::{Daemon, TempDir};

/// The suffix of segment files (`broker/src/storage/log.rs` `SEGMENT_SUFFIX`).
pub const SEGMENT_SUFFIX: &str = ".seg";
/// How long a clean shutdown may take.
pub const TERMINATE_TIMEOUT: Duration = Duration::from_secs(20);
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// A `sluiced` bound to one data directory that outlives the process.
#[derive(Debug)]
pub struct Broker {
    data: TempDir,
    args: Vec<String>,
    daemon: Option<Daemon>,
}

impl Broker {
    /// Starts `sluiced` with `args` on a fresh data directory.
    ///
    /// # Errors
    /// The directory cannot be created or the broker does not start (with its output).
    pub fn start(label: &str, args: &[&str]) -> Result<Broker, String> {
        let mut broker = Broker {
            data: TempDir::new(label)?,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            daemon: None,
        };
        broker.restart()?;
        Ok(broker)
    }

    /// Starts the broker again on the same data directory with the same flags.
    ///
    /// # Errors
    /// It is still running, or it does not start (with its output).
    pub fn restart(&mut self) -> Result<(), String> {
        if self.daemon.is_some() {
            return Err("restart of a broker that is still running".to_owned());
        }
        let args = self.args.clone();
        self.daemon = Some(self.start_with(&args)?);
        Ok(())
    }

    /// Starts another `sluiced` on this data directory with `args` instead of the usual flags
    /// (for start-up checks); the caller owns the result.
    ///
    /// # Errors
    /// See [`Daemon::start`].
    pub fn start_with(&self, args: &[String]) -> Result<Daemon, String> {
        let mut all = vec![format!("--data-path={}", self.data.path().display())];
        all.extend_from_slice(args);
        Daemon::start("sluiced", &all)
    }

    /// The running daemon.
    ///
    /// # Panics
    /// When it is stopped (a bug in the test).
    pub fn daemon(&self) -> &Daemon {
        match &self.daemon {
            Some(d) => d,
            None => panic!("the broker is not running"),
        }
    }

    /// Its TCP address.
    pub fn tcp(&self) -> SocketAddr {
        self.daemon().tcp_addr()
    }

    /// Its HTTP address.
    pub fn http(&self) -> SocketAddr {
        self.daemon().http_addr()
    }

    /// Its last output lines (or a note that it is stopped).
    pub fn log_tail(&self) -> String {
        self.daemon
            .as_ref()
            .map_or_else(|| "  (stopped)".to_owned(), Daemon::log_tail)
    }

    /// The data directory.
    pub fn data_path(&self) -> &Path {
        self.data.path()
    }

    /// Sends SIGKILL to the process by pid and reaps it.
    ///
    /// # Panics
    /// When it is not running or kill(2) fails.
    pub fn sigkill(&mut self) {
        let daemon = self.daemon.take();
        let Some(daemon) = daemon else {
            panic!("SIGKILL of a broker that is not running");
        };
        let pid = libc::pid_t::try_from(daemon.pid()).unwrap_or(0);
        assert!(pid > 0, "pid {}", daemon.pid());
        // SAFETY: kill(2) on our own child, not yet reaped (Daemon reaps it on drop, below), so
        // the pid cannot belong to another process.
        let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
        assert_eq!(rc, 0, "kill -9 {pid}");
        // Drop waits for the exit.
        drop(daemon);
    }

    /// Sends SIGTERM and waits for the exit status (a clean shutdown).
    ///
    /// # Errors
    /// It is not running or did not exit in time.
    pub fn terminate(&mut self) -> Result<ExitStatus, String> {
        let mut daemon = self.daemon.take().ok_or("the broker is not running")?;
        daemon.terminate(TERMINATE_TIMEOUT)
    }

    /// The directory of shard `id`.
    pub fn shard_dir(&self, id: usize) -> PathBuf {
        self.data.path().join(format!("shard-{id}"))
    }

    /// Segment files of shard `id` with their sizes, oldest first.
    pub fn segments(&self, id: usize) -> Vec<(PathBuf, u64)> {
        let Ok(entries) = std::fs::read_dir(self.shard_dir(id)) else {
            return Vec::new();
        };
        let mut found: Vec<(PathBuf, u64)> = entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(SEGMENT_SUFFIX))
            .map(|e| {
                let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                (e.path(), len)
            })
            .collect();
        found.sort();
        found
    }

    /// Bytes in the segment files of shards `0..shards`.
    pub fn segment_bytes(&self, shards: usize) -> u64 {
        (0..shards)
            .flat_map(|id| self.segments(id))
            .map(|(_, len)| len)
            .sum()
    }

    /// `GET /ping`: status and body.
    ///
    /// # Errors
    /// The request failed.
    pub fn ping(&self) -> Result<(u16, String), String> {
        let r = crate::http::request(self.http(), "GET", "/ping", b"", HTTP_TIMEOUT)?;
        Ok((r.status, String::from_utf8_lossy(&r.body).into_owned()))
    }

    /// `GET /stats?format=json`.
    ///
    /// # Errors
    /// The request failed or the body is not JSON.
    pub fn stats(&self) -> Result<serde_json::Value, String> {
        let r = crate::http::request(self.http(), "GET", "/stats?format=json", b"", HTTP_TIMEOUT)?;
        serde_json::from_slice(&r.body).map_err(|e| format!("/stats is not JSON: {e}"))
    }

    /// `POST path` with an empty body; the status.
    ///
    /// # Errors
    /// The request failed.
    pub fn post(&self, path: &str) -> Result<u16, String> {
        let r = crate::http::request(self.http(), "POST", path, b"", HTTP_TIMEOUT)?;
        Ok(r.status)
    }

    /// Resident and peak resident memory of the process in KiB (`/proc/PID/status`).
    pub fn memory_kib(&self) -> Option<(u64, u64)> {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.daemon().pid())).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        };
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// Waits until `check` returns `Some`, polling; fails with the broker's output at `within`.
    ///
    /// # Panics
    /// When the time runs out.
    pub fn eventually<T>(
        &self,
        what: &str,
        within: Duration,
        mut check: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + within;
        loop {
            if let Some(value) = check() {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {within:?} waiting for {what}\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A channel's entry in `/stats` JSON.
pub fn channel_stats<'a>(
    stats: &'a serde_json::Value,
    topic: &str,
    channel: &str,
) -> Option<&'a serde_json::Value> {
    stats
        .get("topics")?
        .as_array()?
        .iter()
        .find(|t| t.get("topic_name").and_then(|n| n.as_str()) == Some(topic))?
        .get("channels")?
        .as_array()?
        .iter()
        .find(|c| c.get("channel_name").and_then(|n| n.as_str()) == Some(channel))
}

/// The shard that owns `topic` among `shards`: FNV-1a of the name modulo the count, copied from
/// `broker/src/shard/mod.rs` `shard_of` (stable across restarts because the log is per shard).
pub fn shard_of(topic: &str, shards: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in topic.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % shards.max(1) as u64) as usize
}

/// A topic name starting with `prefix` owned by shard `shard` of `shards`.
pub fn topic_on_shard(prefix: &str, shard: usize, shards: usize) -> String {
    (0..1000)
        .map(|i| format!("{prefix}_{i}"))
        .find(|t| shard_of(t, shards) == shard)
        .unwrap_or_else(|| format!("{prefix}_none"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_of_matches_the_brokers_examples() {
        // broker/src/shard/mod.rs tests: one shard owns everything; the hash spreads.
        assert_eq!(shard_of("orders", 1), 0);
        let mut seen = [0usize; 4];
        for i in 0..1000 {
            seen[shard_of(&format!("topic-{i}"), 4)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 150), "{seen:?}");
    }

    #[test]
    fn topics_can_be_placed_on_each_shard() {
        for shard in 0..2 {
            let t = topic_on_shard("placed", shard, 2);
            assert_eq!(shard_of(&t, 2), shard, "{t}");
        }
    }
}
