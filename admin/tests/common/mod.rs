//! Harness for sluice-admin's black-box suites: a cluster of real `sluice-lookupd` and `sluiced`
//! processes on loopback (through `sluice_tests::daemon`, built by `cargo build --bins`), the
//! `sluice-admin` binary of this package, and a small HTTP client that can send headers.
//!
//! Every wait polls with a deadline and fails with the processes' last log lines.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_tests::daemon::{parse_listening_line, Daemon, Listener};
use sluice_tests::http;

/// How long any awaited state may take to appear.
pub const WAIT: Duration = Duration::from_secs(20);
/// One HTTP exchange.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `sluice-admin`, killed on drop.
pub struct Admin {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Admin {
    /// Starts sluice-admin on `127.0.0.1:0` with `args` and waits for its listening line.
    pub fn start(args: &[String]) -> Admin {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice-admin"))
            .arg("--http-address=127.0.0.1:0")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sluice-admin");
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        let tail = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some((Listener::Http, addr)) = parse_listening_line(&line) {
                    let _ = tx.send(addr);
                }
                if let Ok(mut tail) = tail.lock() {
                    if tail.len() == 80 {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            }
        });
        match rx.recv_timeout(WAIT) {
            Ok(addr) => Admin { child, addr, log },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let lines: Vec<String> = log
                    .lock()
                    .map(|l| l.iter().cloned().collect())
                    .unwrap_or_default();
                panic!(
                    "sluice-admin did not log its listening line:\n{}",
                    lines.join("\n")
                );
            }
        }
    }

    /// The last log lines.
    pub fn log_tail(&self) -> String {
        let lines: Vec<String> = self
            .log
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default();
        lines.join("\n")
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A lookupd on loopback.
pub fn lookupd() -> Daemon {
    Daemon::start(
        "sluice-lookupd",
        &["--broadcast-address=127.0.0.1".to_owned()],
    )
    .unwrap()
}

/// A one-core broker registering with `lookupds`.
pub fn broker(lookupds: &[&Daemon]) -> Daemon {
    let mut args = vec![
        "--cores=1".to_owned(),
        "--broadcast-address=127.0.0.1".to_owned(),
    ];
    for l in lookupds {
        args.push(format!("--lookupd-tcp-address={}", l.tcp_addr()));
    }
    Daemon::sluiced(&args).unwrap()
}

/// A reply: status, headers (lower-case names) and body text.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request with extra headers.
pub fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    raw.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let bytes = http::raw_exchange(addr, raw.as_bytes(), HTTP_TIMEOUT)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let response = http::parse_response(&bytes, method == "HEAD", true)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
        .unwrap_or_else(|| panic!("{method} {path}: incomplete reply"));
    Reply {
        status: response.status,
        headers: response.headers,
        body: String::from_utf8_lossy(&response.body).into_owned(),
    }
}

pub fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, "GET", path, &[], "")
}

pub fn post(addr: SocketAddr, path: &str, body: &str) -> Reply {
    send(addr, "POST", path, &[], body)
}

/// GET a 200 JSON reply.
pub fn get_json(addr: SocketAddr, path: &str) -> Value {
    let reply = get(addr, path);
    assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
    reply.json()
}

/// POST to a broker or lookupd and require 200.
pub fn post_ok(daemon: &Daemon, path: &str, body: &str) {
    let reply = post(daemon.http_addr(), path, body);
    assert_eq!(
        reply.status,
        200,
        "POST {path}: {}\n{}",
        reply.body,
        daemon.log_tail()
    );
}

/// Waits until `check` returns `Some`.
pub fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A broker's `/stats` entry for a channel (`None` if it has no such channel).
pub fn broker_channel(broker: &Daemon, topic: &str, channel: &str) -> Option<Value> {
    let stats = get_json(
        broker.http_addr(),
        &format!("/stats?format=json&topic={topic}"),
    );
    stats["topics"]
        .as_array()?
        .iter()
        .find(|t| t["topic_name"] == topic)?["channels"]
        .as_array()?
        .iter()
        .find(|c| c["channel_name"] == channel)
        .cloned()
}

/// A broker's `/stats` entry for a topic.
pub fn broker_topic(broker: &Daemon, topic: &str) -> Option<Value> {
    let stats = get_json(broker.http_addr(), "/stats?format=json");
    stats["topics"]
        .as_array()?
        .iter()
        .find(|t| t["topic_name"] == topic)
        .cloned()
}

/// Waits until every lookupd lists `n` producers for `topic`.
pub fn await_producers(lookupd: &Daemon, topic: &str, n: usize) {
    eventually(&format!("{n} producers of {topic}"), || {
        let reply = get(lookupd.http_addr(), &format!("/lookup?topic={topic}"));
        (reply.status == 200 && reply.json()["producers"].as_array().map_or(0, Vec::len) == n)
            .then_some(())
    });
}

/// A cluster: one lookupd, two brokers, topic `t1` with channel `c1` on both.
pub struct Cluster {
    pub lookupd: Daemon,
    pub brokers: Vec<Daemon>,
}

impl Cluster {
    pub fn start() -> Cluster {
        let lookupd = lookupd();
        let brokers = vec![broker(&[&lookupd]), broker(&[&lookupd])];
        for b in &brokers {
            post_ok(b, "/pub?topic=t1", "hello");
            post_ok(b, "/channel/create?topic=t1&channel=c1", "");
        }
        await_producers(&lookupd, "t1", 2);
        Cluster { lookupd, brokers }
    }

    /// A broker's node name (`127.0.0.1:http_port`).
    pub fn node(&self, i: usize) -> String {
        self.brokers[i].http_addr().to_string()
    }

    /// An admin over the lookupd, with `extra` flags.
    pub fn admin(&self, extra: &[&str]) -> Admin {
        let mut args = vec![format!(
            "--lookupd-http-address={}",
            self.lookupd.http_addr()
        )];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        Admin::start(&args)
    }
}

/// A one-shot HTTP server that records the first request it gets (head and body).
pub struct Catcher {
    pub addr: SocketAddr,
    got: mpsc::Receiver<String>,
}

impl Catcher {
    pub fn start() -> Catcher {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, got) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if let Some(request) = read_request(stream) {
                    if tx.send(request).is_err() {
                        break;
                    }
                }
            }
        });
        Catcher { addr, got }
    }

    /// The next request, within [`WAIT`].
    pub fn next(&self) -> String {
        self.got
            .recv_timeout(WAIT)
            .expect("no request reached the catcher")
    }

    /// Whether a request arrives within `within`.
    pub fn quiet_for(&self, within: Duration) -> bool {
        self.got.recv_timeout(within).is_err()
    }
}

fn read_request(mut stream: TcpStream) -> Option<String> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        bytes.extend_from_slice(buf.get(..n)?);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length: usize = text
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0);
            if bytes.len() >= head_end + 4 + length {
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                return Some(text);
            }
        }
    }
}

/// The top-level keys of a JSON object, in the order the text has them (`serde_json::Value`
/// sorts them).
pub fn keys_in_order(text: &str) -> Vec<String> {
    struct Keys(Vec<String>);
    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Keys, D::Error> {
            struct Visitor;
            impl<'de> serde::de::Visitor<'de> for Visitor {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some((k, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                        keys.push(k);
                    }
                    Ok(Keys(keys))
                }
            }
            d.deserialize_map(Visitor)
        }
    }
    serde_json::from_str::<Keys>(text)
        .map(|k| k.0)
        .unwrap_or_else(|e| panic!("{e}: {text}"))
}
