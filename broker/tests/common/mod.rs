//! Shared harness of the black-box TCP suites (`tcp_*.rs`): a running `sluiced` and a blocking
//! V2 client.
//!
//! [`Broker`] starts the real binary on 127.0.0.1 port 0 with its own data directory, reads its
//! bound addresses from the `TCP: listening on` / `HTTP: listening on` lines of its stderr,
//! answers small HTTP requests (`/stats`, pause, …) and kills its own child by pid on drop.
//! [`Conn`] speaks V2 with `sluice_proto` encoders and the [`FrameDecoder`]; every read has a
//! deadline, so a broken broker fails a test instead of hanging it. Nothing here sleeps to
//! assert: waits poll with a deadline ([`wait_until`]) and "nothing arrives" checks read for a
//! bounded grace period after a barrier ([`Conn::barrier`]).
//!
//! Not every suite uses every helper.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use serde_json::Value;
use sluice_proto::v2::{self, Command as V2, Frame, FrameDecoder, Name};
use sluice_proto::{Message, MessageId};

/// Upper bound on any wait for something that must happen (not a speed assertion: a guard
/// against hanging forever).
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// How long "nothing arrives" checks listen after their barrier.
pub const QUIET: Duration = Duration::from_millis(300);

/// Largest frame the client accepts (well above any message these suites publish).
const MAX_FRAME: usize = 8 << 20;

// ---------------------------------------------------------------------------------------------
// The broker

/// A running `sluiced`, killed (by its pid) on drop with its data directory removed.
pub struct Broker {
    child: Child,
    /// The V2 TCP address.
    pub tcp: SocketAddr,
    /// The HTTP address.
    pub http: SocketAddr,
    /// The `--data-path` directory.
    pub data: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
}

impl Broker {
    /// Starts `sluiced --cores=<cores>` plus `extra` flags; waits for both listening lines.
    pub fn start(cores: usize, extra: &[&str]) -> Broker {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let data = std::env::temp_dir().join(format!("sluice-tcp-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluiced"))
            .arg("--tcp-address=127.0.0.1:0")
            .arg("--http-address=127.0.0.1:0")
            .arg(format!("--data-path={}", data.display()))
            .arg(format!("--cores={cores}"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                for (tag, kind) in [("TCP: listening on ", 't'), ("HTTP: listening on ", 'h')] {
                    if let Some((_, addr)) = line.split_once(tag) {
                        if let Ok(addr) = addr.trim().parse::<SocketAddr>() {
                            let _ = tx.send((kind, addr));
                        }
                    }
                }
                lines.lock().unwrap().push(line);
            }
        });
        let (mut tcp, mut http) = (None, None);
        while tcp.is_none() || http.is_none() {
            match rx.recv_timeout(IO_TIMEOUT) {
                Ok(('t', addr)) => tcp = Some(addr),
                Ok((_, addr)) => http = Some(addr),
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let _ = std::fs::remove_dir_all(&data);
                    panic!("sluiced did not log its addresses ({e}): {:?}", log.lock());
                }
            }
        }
        Broker {
            child,
            tcp: tcp.unwrap(),
            http: http.unwrap(),
            data,
            log,
        }
    }

    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running (it never exits on its own in these suites).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Asserts the process is still running, with its log tail when not.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("sluiced exited with {status}:\n{}", self.log_tail(40));
        }
    }

    /// The last `n` lines of the broker's stderr.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log.lock().unwrap();
        log[log.len().saturating_sub(n)..].join("\n")
    }

    /// Resident memory of the broker in KiB (`VmRSS` of /proc/PID/status).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in {status}"))
    }

    /// A new V2 connection, magic already sent.
    pub fn connect(&self) -> Conn {
        Conn::connect(self.tcp)
    }

    /// One HTTP/1.1 request (`Connection: close`): the status and body.
    pub fn http(&self, method: &str, target: &str, body: &[u8]) -> (u16, String) {
        let mut stream = TcpStream::connect(self.http).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no HTTP reply: {text:?}"));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line: {head:?}"));
        (status, body.to_owned())
    }

    /// POSTs an admin route (`/topic/pause?topic=…`) and asserts `200`.
    pub fn admin(&self, target: &str) {
        let (status, body) = self.http("POST", target, b"");
        assert_eq!(status, 200, "POST {target}: {body}");
    }

    /// `/stats?format=json` as JSON.
    pub fn stats(&self) -> Value {
        let (status, body) = self.http("GET", "/stats?format=json", b"");
        assert_eq!(status, 200, "/stats: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// The stats of one topic, if it exists.
    pub fn topic_stats(&self, topic: &str) -> Option<Value> {
        topic_in(&self.stats(), topic).cloned()
    }

    /// The stats of one channel, if it exists.
    pub fn channel_stats(&self, topic: &str, channel: &str) -> Option<Value> {
        let stats = self.stats();
        channel_in(topic_in(&stats, topic)?, channel).cloned()
    }

    /// A numeric field of a channel's stats (panics when the channel does not exist).
    pub fn channel_count(&self, topic: &str, channel: &str, field: &str) -> u64 {
        let stats = self
            .channel_stats(topic, channel)
            .unwrap_or_else(|| panic!("no channel {topic}/{channel} in /stats"));
        stats[field]
            .as_u64()
            .unwrap_or_else(|| panic!("no {field} in {stats}"))
    }

    /// Polls `/stats` until the channel's `field` equals `want`.
    pub fn wait_channel_count(&self, topic: &str, channel: &str, field: &str, want: u64) {
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            let got = self
                .channel_stats(topic, channel)
                .and_then(|c| c[field].as_u64());
            if got == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {topic}/{channel} {field} == {want}, last {got:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // `Child::kill` signals this child's own pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("sluiced log tail:\n{}", self.log_tail(30));
        }
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// The topic named `name` in a `/stats` reply.
pub fn topic_in<'a>(stats: &'a Value, name: &str) -> Option<&'a Value> {
    stats["topics"]
        .as_array()?
        .iter()
        .find(|t| t["topic_name"] == name)
}

/// The channel named `name` in a topic's stats.
pub fn channel_in<'a>(topic: &'a Value, name: &str) -> Option<&'a Value> {
    topic["channels"]
        .as_array()?
        .iter()
        .find(|c| c["channel_name"] == name)
}

/// Polls `done` every 20 ms until it holds; panics naming `what` after [`IO_TIMEOUT`].
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + IO_TIMEOUT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every file under `dir` with its size.
pub fn files_under(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push((path, meta.len()));
        }
    }
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------------
// The client

/// What a read with a deadline found.
#[derive(Debug)]
pub enum Next {
    /// A frame (heartbeats are answered and counted, not returned, unless asked for).
    Frame(Frame),
    /// The broker closed the connection (FIN or RST).
    Closed,
    /// Nothing arrived before the deadline.
    TimedOut,
}

/// A blocking V2 client connection.
pub struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    decoder: FrameDecoder,
    chunk: Vec<u8>,
    /// When each heartbeat arrived.
    pub heartbeats: Vec<Instant>,
    /// Return heartbeats from [`Conn::next_until`] instead of answering them with `NOP`.
    pub raw_heartbeats: bool,
    subscribed: bool,
}

impl Conn {
    /// Connects and sends the V2 magic.
    pub fn connect(addr: SocketAddr) -> Conn {
        let mut conn = Conn::connect_bare(addr);
        conn.send_raw(v2::MAGIC_V2);
        conn
    }

    /// Connects without sending anything.
    pub fn connect_bare(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: BytesMut::new(),
            decoder: FrameDecoder::new(MAX_FRAME),
            chunk: vec![0; 64 * 1024],
            heartbeats: Vec::new(),
            raw_heartbeats: false,
            subscribed: false,
        }
    }

    /// The socket (for shutdown, linger, …).
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Writes `bytes` in one write call sequence.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Writes `bytes`, reporting failure (the broker may already have closed).
    pub fn try_send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Encodes and sends one command.
    pub fn send(&mut self, cmd: &V2) {
        self.send_raw(&encode(std::slice::from_ref(cmd)));
    }

    /// Half-closes: the client sends nothing more.
    pub fn shutdown_write(&self) {
        self.stream.shutdown(Shutdown::Write).unwrap();
    }

    /// The next frame, or what happened instead, by `deadline`.
    pub fn next_until(&mut self, deadline: Instant) -> Next {
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(frame)) if frame.is_heartbeat() => {
                    self.heartbeats.push(Instant::now());
                    if self.raw_heartbeats {
                        return Next::Frame(frame);
                    }
                    // A closed connection is reported by the next read.
                    let _ = self.try_send_raw(b"NOP\n");
                    continue;
                }
                Ok(Some(frame)) => return Next::Frame(frame),
                Ok(None) => {}
                Err(e) => panic!("the broker sent an undecodable frame: {e}"),
            }
            let now = Instant::now();
            if now >= deadline {
                return Next::TimedOut;
            }
            self.stream.set_read_timeout(Some(deadline - now)).unwrap();
            match self.stream.read(&mut self.chunk) {
                Ok(0) => return Next::Closed,
                Ok(n) => self.buf.extend_from_slice(&self.chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                    ) =>
                {
                    return Next::Closed
                }
                Err(e) => panic!("read failed: {e}"),
            }
        }
    }

    /// The next frame; panics when the connection closes or nothing comes within
    /// [`IO_TIMEOUT`].
    pub fn frame(&mut self) -> Frame {
        match self.next_until(Instant::now() + IO_TIMEOUT) {
            Next::Frame(frame) => frame,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// Asserts the next frame is the response `data`.
    pub fn expect_response(&mut self, data: &[u8]) {
        let frame = self.frame();
        assert_eq!(
            frame,
            Frame::Response(Bytes::copy_from_slice(data)),
            "expected response {:?}",
            String::from_utf8_lossy(data)
        );
    }

    /// Asserts the next frame is `OK`.
    pub fn expect_ok(&mut self) {
        self.expect_response(v2::OK);
    }

    /// Asserts the next frame is the error `text` (code and description).
    pub fn expect_error(&mut self, text: &str) {
        let frame = self.frame();
        assert_eq!(
            frame,
            Frame::Error(Bytes::copy_from_slice(text.as_bytes())),
            "expected error {text:?}"
        );
    }

    /// Asserts the broker closes the connection without sending another frame.
    pub fn expect_closed(&mut self) {
        match self.next_until(Instant::now() + IO_TIMEOUT) {
            Next::Closed => {}
            other => panic!("expected the broker to close the connection, got {other:?}"),
        }
    }

    /// Asserts a fatal error: the frame `text`, then the connection closes.
    pub fn expect_fatal(&mut self, text: &str) {
        self.expect_error(text);
        self.expect_closed();
    }

    /// Asserts the next frame is a message and returns it.
    pub fn message(&mut self) -> Message {
        match self.frame() {
            Frame::Message(msg) => msg,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// Receives `n` messages (not finishing them).
    pub fn messages(&mut self, n: usize) -> Vec<Message> {
        (0..n).map(|_| self.message()).collect()
    }

    /// Receives `n` messages and FINs each as it arrives.
    pub fn receive_and_fin(&mut self, n: usize) -> Vec<Message> {
        (0..n)
            .map(|_| {
                let msg = self.message();
                self.fin(&msg.id);
                msg
            })
            .collect()
    }

    /// Frames that arrive within `grace` (heartbeats answered, not returned); stops early if
    /// the connection closes.
    pub fn frames_within(&mut self, grace: Duration) -> Vec<Frame> {
        let deadline = Instant::now() + grace;
        let mut frames = Vec::new();
        while let Next::Frame(frame) = self.next_until(deadline) {
            frames.push(frame);
        }
        frames
    }

    /// Asserts nothing but heartbeats arrives within [`QUIET`].
    pub fn expect_quiet(&mut self, what: &str) {
        let frames = self.frames_within(QUIET);
        assert!(frames.is_empty(), "{what}: unexpected frames {frames:?}");
    }

    /// A round trip on a subscribed connection: `FIN 0000000000000000`, whose non-fatal
    /// `E_FIN_FAILED` proves the broker processed everything sent before it. Returns the
    /// frames that came before that answer.
    pub fn barrier(&mut self) -> Vec<Frame> {
        assert!(self.subscribed, "barrier() needs a subscribed connection");
        self.send_raw(b"FIN 0000000000000000\n");
        let mut before = Vec::new();
        loop {
            match self.frame() {
                Frame::Error(e) if e.as_ref() == NOT_IN_FLIGHT.as_bytes() => return before,
                other => before.push(other),
            }
        }
    }

    /// `IDENTIFY` with `json` (add `"feature_negotiation": true` to get the JSON back): the
    /// parsed response, or `Value::Null` for a plain `OK`.
    pub fn identify(&mut self, json: Value) -> Value {
        self.send(&V2::Identify(Bytes::from(json.to_string())));
        match self.frame() {
            Frame::Response(data) if data.as_ref() == v2::OK => Value::Null,
            Frame::Response(data) => serde_json::from_slice(&data).unwrap(),
            other => panic!("IDENTIFY failed: {other:?}"),
        }
    }

    /// `SUB topic channel`, expecting `OK`.
    pub fn subscribe(&mut self, topic: &str, channel: &str) {
        self.send(&sub(topic, channel));
        self.expect_ok();
        self.subscribed = true;
    }

    /// Marks the connection subscribed (after a pipelined SUB checked by hand).
    pub fn set_subscribed(&mut self) {
        self.subscribed = true;
    }

    /// `RDY n`.
    pub fn rdy(&mut self, n: u64) {
        self.send(&V2::Rdy(n));
    }

    /// `FIN id`.
    pub fn fin(&mut self, id: &MessageId) {
        self.send(&V2::Fin(*id));
    }

    /// `REQ id delay_ms`.
    pub fn req(&mut self, id: &MessageId, delay_ms: u64) {
        self.send(&V2::Req {
            id: *id,
            delay: Duration::from_millis(delay_ms),
        });
    }

    /// `TOUCH id`.
    pub fn touch(&mut self, id: &MessageId) {
        self.send(&V2::Touch(*id));
    }

    /// `PUB`, expecting `OK`.
    pub fn publish(&mut self, topic: &str, body: &[u8]) {
        self.send(&publish(topic, body));
        self.expect_ok();
    }

    /// `MPUB`, expecting `OK`.
    pub fn mpublish(&mut self, topic: &str, bodies: &[Vec<u8>]) {
        self.send(&V2::Mpub {
            topic: Name::new(topic),
            bodies: bodies.iter().map(|b| Bytes::copy_from_slice(b)).collect(),
        });
        self.expect_ok();
    }

    /// `DPUB`, expecting `OK`.
    pub fn dpublish(&mut self, topic: &str, defer_ms: u64, body: &[u8]) {
        self.send(&V2::Dpub {
            topic: Name::new(topic),
            defer: Duration::from_millis(defer_ms),
            body: Bytes::copy_from_slice(body),
        });
        self.expect_ok();
    }
}

/// The text of the non-fatal error [`Conn::barrier`] waits for.
pub const NOT_IN_FLIGHT: &str = "E_FIN_FAILED FIN 0000000000000000 failed ID not in flight";

/// The wire bytes of `cmds`, back to back.
pub fn encode(cmds: &[V2]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for cmd in cmds {
        v2::put_command(&mut out, cmd);
    }
    out.to_vec()
}

/// `SUB topic channel`.
pub fn sub(topic: &str, channel: &str) -> V2 {
    V2::Sub {
        topic: Name::new(topic),
        channel: Name::new(channel),
    }
}

/// `PUB topic` with `body`.
pub fn publish(topic: &str, body: &[u8]) -> V2 {
    V2::Pub {
        topic: Name::new(topic),
        body: Bytes::copy_from_slice(body),
    }
}

/// The bodies of `messages` as strings.
pub fn bodies(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect()
}

/// A small seeded generator (splitmix64) so that random inputs can be replayed.
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `SLUICE_SEED` when set, else from `default`; prints the seed.
    pub fn from_env(default: u64) -> SplitMix64 {
        let seed = std::env::var("SLUICE_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default);
        eprintln!("random input: reproduce with SLUICE_SEED={seed}");
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}
