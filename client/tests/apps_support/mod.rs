//! Shared pieces of the utilities' black-box tests: the real `sluiced` and `sluice-lookupd`
//! (started on `127.0.0.1:0`, their addresses read from their `listening on` log lines), the
//! `sluice` binary run as a child process (killed on drop), signals by pid through `kill(1)`,
//! and bounded waits. Nothing here sleeps to decide an outcome: every wait polls a condition
//! and fails the test after [`WAIT`].
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_client::{lookup, Config, Consumer, Disposition, Message, Producer};
use sluice_proto::http_json::{ChannelStats, Stats};

/// How long any one wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(15);

/// Polls `done` every 10 ms until it holds; fails the test after [`WAIT`].
pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `target/<profile>/<name>`, built by `cargo build --bins`.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build it first with `cargo build --bins`",
        path.display()
    );
    path
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sluice-apps-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A daemon child, killed on drop, with the addresses it logged.
struct Daemon {
    child: Child,
    addrs: BTreeMap<String, String>,
}

fn start_daemon(program: &Path, args: &[String], wanted: &[&str]) -> Daemon {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start daemon");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            for kind in ["TCP", "HTTP"] {
                if let Some(addr) = line.split(&format!("{kind}: listening on ")).nth(1) {
                    let _ = tx.send(Ok((kind.to_owned(), addr.trim().to_owned())));
                }
            }
            let _ = tx.send(Err(line));
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut addrs = BTreeMap::new();
    let mut log = String::new();
    while wanted.iter().any(|k| !addrs.contains_key(*k)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Ok((kind, addr))) => {
                addrs.insert(kind, addr);
            }
            Ok(Err(line)) => {
                log.push_str(&line);
                log.push('\n');
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} did not log its addresses:\n{log}", program.display());
            }
        }
    }
    Daemon { child, addrs }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `sluiced`.
pub struct Broker {
    daemon: Daemon,
    _data: TempDir,
    pub tcp: String,
    pub http: String,
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_with(&[])
    }

    /// A broker registered with `lookupd` (its TCP address), broadcasting 127.0.0.1.
    pub fn start_registered(lookupd: &Lookupd) -> Broker {
        Broker::start_with(&[
            format!("--lookupd-tcp-address={}", lookupd.tcp),
            "--broadcast-address=127.0.0.1".to_owned(),
        ])
    }

    pub fn start_with(extra: &[String]) -> Broker {
        let data = TempDir::new("sluiced");
        let mut args = vec![
            "--tcp-address=127.0.0.1:0".to_owned(),
            "--http-address=127.0.0.1:0".to_owned(),
            format!("--data-path={}", data.path().display()),
            "--cores=1".to_owned(),
        ];
        args.extend_from_slice(extra);
        let daemon = start_daemon(&binary("sluiced"), &args, &["TCP", "HTTP"]);
        Broker {
            tcp: daemon.addrs["TCP"].clone(),
            http: daemon.addrs["HTTP"].clone(),
            daemon,
            _data: data,
        }
    }

    /// Publishes `bodies` (in MPUBs of at most 1000).
    pub fn publish<B: AsRef<[u8]>>(&self, topic: &str, bodies: &[B]) {
        let mut producer = Producer::connect(&self.tcp, &Config::default()).unwrap();
        for chunk in bodies.chunks(1000) {
            producer.multi_publish(topic, chunk).unwrap();
        }
    }

    /// `/stats` of this broker.
    pub fn stats(&self) -> Stats {
        let (status, body) =
            lookup::http_get(&self.http, "/stats?format=json", Duration::from_secs(5)).unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }

    /// A channel's figures, if it exists.
    pub fn channel(&self, topic: &str, channel: &str) -> Option<ChannelStats> {
        self.stats()
            .topics
            .unwrap_or_default()
            .into_iter()
            .find(|t| t.topic_name == topic)?
            .channels
            .into_iter()
            .find(|c| c.channel_name == channel)
    }

    /// Waits until some channel of `topic` has a subscribed client (sluiced gives the messages
    /// a durable topic kept to its first channel, but not to an ephemeral one, so tests of
    /// ephemeral channels publish only once subscribed).
    pub fn wait_subscribed(&self, topic: &str) {
        wait_for(&format!("a subscriber on {topic}"), || {
            self.stats()
                .topics
                .unwrap_or_default()
                .iter()
                .filter(|t| t.topic_name == topic)
                .flat_map(|t| t.channels.iter())
                .any(|c| c.client_count > 0)
        });
    }

    /// Messages published to `topic` so far.
    pub fn topic_count(&self, topic: &str) -> u64 {
        self.stats()
            .topics
            .unwrap_or_default()
            .iter()
            .find(|t| t.topic_name == topic)
            .map_or(0, |t| t.message_count)
    }

    /// Creates a channel through the HTTP API.
    pub fn create_channel(&self, topic: &str, channel: &str) {
        for path in [
            format!("/topic/create?topic={topic}"),
            format!("/channel/create?topic={topic}&channel={channel}"),
        ] {
            let status = http_post(&self.http, &path);
            assert_eq!(status, 200, "POST {path}");
        }
    }

    /// Reads every message left in `topic`/`channel` (finishing each) until the channel is
    /// empty with nothing in flight or deferred.
    pub fn drain(&self, topic: &str, channel: &str) -> Vec<Vec<u8>> {
        let config = Config {
            max_in_flight: 500,
            ..Config::default()
        };
        let consumer = Consumer::new(topic, channel, config).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler_seen = seen.clone();
        consumer.start(move || {
            let seen = handler_seen.clone();
            move |msg: &Message| {
                seen.lock().unwrap().push(msg.body.to_vec());
                Disposition::Finish
            }
        });
        consumer.connect_to_nsqd(&self.tcp).unwrap();
        let mut last = None;
        let deadline = Instant::now() + WAIT;
        loop {
            let now = self.channel(topic, channel);
            let empty = now
                .as_ref()
                .is_some_and(|c| c.depth == 0 && c.in_flight_count == 0 && c.deferred_count == 0);
            if empty {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "timed out draining {topic}/{channel}: {last:?}, {} read",
                seen.lock().unwrap().len()
            );
            last = now;
            std::thread::sleep(Duration::from_millis(10));
        }
        consumer.stop();
        let seen = seen.lock().unwrap().clone();
        seen
    }
}

/// A running `sluice-lookupd`.
pub struct Lookupd {
    daemon: Daemon,
    pub tcp: String,
    pub http: String,
}

impl Lookupd {
    pub fn start() -> Lookupd {
        let args = [
            "--tcp-address=127.0.0.1:0".to_owned(),
            "--http-address=127.0.0.1:0".to_owned(),
        ];
        let daemon = start_daemon(&binary("sluice-lookupd"), &args, &["TCP", "HTTP"]);
        Lookupd {
            tcp: daemon.addrs["TCP"].clone(),
            http: daemon.addrs["HTTP"].clone(),
            daemon,
        }
    }

    /// Whether the lookupd lists `topic` with at least one producer.
    pub fn knows(&self, topic: &str) -> bool {
        lookup::lookup(&self.http, topic, Duration::from_secs(2))
            .is_ok_and(|producers| !producers.is_empty())
    }
}

/// A POST with an empty body; returns the status.
pub fn http_post(addr: &str, path: &str) -> u16 {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    lookup::parse_http_response(&raw).unwrap().0
}

/// The `sluice` binary of this package.
pub fn sluice() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sluice"))
}

/// A symlink named `name` (e.g. `nsq_tail`) to the `sluice` binary, in `dir`.
pub fn linked_as(dir: &TempDir, name: &str) -> PathBuf {
    let link = dir.path().join(name);
    std::os::unix::fs::symlink(sluice(), &link).unwrap();
    link
}

/// Runs the `sluice` binary to completion (stdin empty); fails after [`WAIT`].
pub fn run_sluice(args: &[&str]) -> Finished {
    Running::spawn(&sluice(), args, Stdio::null()).wait()
}

/// What a finished utility left.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// A utility running as a child process, its output collected on threads; killed on drop.
pub struct Running {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    done: Arc<AtomicBool>,
}

impl Running {
    pub fn spawn(program: &Path, args: &[&str], stdin: Stdio) -> Running {
        let mut child = Command::new(program)
            .args(args)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sluice");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect(child.stdout.take().unwrap(), stdout.clone()),
            collect(child.stderr.take().unwrap(), stderr.clone()),
        ];
        Running {
            child,
            stdout,
            stderr,
            readers,
            done: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn sluice(args: &[&str]) -> Running {
        Running::spawn(&sluice(), args, Stdio::null())
    }

    pub fn stdin(&mut self) -> std::process::ChildStdin {
        self.child.stdin.take().unwrap()
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Sends a signal (`INT`, `TERM`, `KILL`, `HUP`) through `kill(1)`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// Waits for the exit (failing after [`WAIT`]) and returns what it left.
    pub fn wait(mut self) -> Finished {
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "the utility did not exit within {WAIT:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        self.done.store(true, Ordering::SeqCst);
        Finished {
            status,
            stdout: self.stdout(),
            stderr: self.stderr(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.done.load(Ordering::SeqCst) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn collect(
    mut from: impl Read + Send + 'static,
    into: Arc<Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => into.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
    })
}

/// The complete lines of `text` (a last line without its newline is dropped: it may be torn).
pub fn complete_lines(text: &[u8]) -> Vec<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = text.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    lines.pop();
    lines
}

/// Every file under `dir`, recursively, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.map_while(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The decompressed bytes of a gzip file, as far as its members are complete (a torn last
/// member, left by a crash, ends the read without an error).
pub fn gunzip_prefix(path: &Path) -> Vec<u8> {
    let file = std::fs::File::open(path).unwrap();
    let mut decoder = flate2::read::MultiGzDecoder::new(file);
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match decoder.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
