//! Black-box tests of the nsqd HTTP API of `sluiced`.
//!
//! Goal: every route answers as upstream nsqd v1.3.0 does (status, body, `Content-Type` and
//! `X-NSQ-Content-Type`), bad input on every route gets a clean error and never hurts the
//! server, and the API works across shards: publishes reach topics owned by either shard,
//! `/stats` sees every shard's topics, and a TCP consumer receives what HTTP published.
//!
//! Method: start the real binary on 127.0.0.1 port 0 (`--cores 1` and `--cores 2`), read its
//! bound addresses from the `TCP: listening on` / `HTTP: listening on` log lines, and talk
//! plain HTTP/1.1 over `std::net::TcpStream` (every request says `Connection: close`, so a
//! reply is everything up to EOF). V2 bytes go through `sluice_proto` encoders and the
//! `FrameDecoder`. Each test kills its own child by pid when it ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde_json::Value;
use sluice_proto::v2::{self, Command as V2, Frame, FrameDecoder, Name};

/// Upper bound on waiting for a reply or the start-up lines (not a speed assertion: only a
/// guard against hanging forever).
const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `sluiced`, killed on drop.
struct Broker {
    child: Child,
    tcp: SocketAddr,
    http: SocketAddr,
    _data: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Broker {
    fn start(cores: usize, extra: &[&str]) -> Broker {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("sluice-http-api-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluiced"))
            .arg("--tcp-address=127.0.0.1:0")
            .arg("--http-address=127.0.0.1:0")
            .arg(format!("--data-path={}", dir.display()))
            .arg(format!("--cores={cores}"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                for (tag, kind) in [("TCP: listening on ", 't'), ("HTTP: listening on ", 'h')] {
                    if let Some((_, addr)) = line.split_once(tag) {
                        let _ = tx.send((kind, addr.trim().parse::<SocketAddr>().unwrap()));
                    }
                }
            }
        });
        let (mut tcp, mut http) = (None, None);
        while tcp.is_none() || http.is_none() {
            match rx.recv_timeout(IO_TIMEOUT) {
                Ok(('t', addr)) => tcp = Some(addr),
                Ok((_, addr)) => http = Some(addr),
                Err(e) => {
                    let _ = child.kill();
                    panic!("sluiced did not log its addresses: {e}");
                }
            }
        }
        Broker {
            child,
            tcp: tcp.unwrap(),
            http: http.unwrap(),
            _data: TempDir(dir),
        }
    }

    fn get(&self, target: &str) -> Reply {
        self.request("GET", target, &[], b"")
    }

    fn post(&self, target: &str, body: &[u8]) -> Reply {
        self.request("POST", target, &[], body)
    }

    fn put(&self, target: &str, body: &[u8]) -> Reply {
        self.request("PUT", target, &[], body)
    }

    fn json(&self, target: &str) -> Value {
        let reply = self.get(target);
        assert_eq!(reply.status, 200, "{target}: {}", reply.text());
        serde_json::from_slice(&reply.body).unwrap()
    }

    fn request(&self, method: &str, target: &str, headers: &[&str], body: &[u8]) -> Reply {
        let mut raw =
            format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
        for h in headers {
            raw.push_str(h);
            raw.push_str("\r\n");
        }
        if !headers
            .iter()
            .any(|h| h.to_ascii_lowercase().starts_with("transfer-encoding"))
        {
            raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        raw.push_str("\r\n");
        let mut bytes = raw.into_bytes();
        bytes.extend_from_slice(body);
        Reply::parse(&self.raw(&bytes))
    }

    /// Sends `bytes` and returns everything the server writes until it closes.
    fn raw(&self, bytes: &[u8]) -> Vec<u8> {
        let mut stream = TcpStream::connect(self.http).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        // The server may answer and close before reading everything (an oversized body): a
        // failed write or a reset after a complete reply is fine.
        let _ = stream.write_all(bytes);
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        out
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed HTTP reply.
#[derive(Debug)]
struct Reply {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn parse(raw: &[u8]) -> Reply {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
        let head = std::str::from_utf8(&raw[..split]).unwrap();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line}");
        let status = parts.next().unwrap().parse().unwrap();
        let reason = parts.next().unwrap_or("").to_owned();
        let headers = lines
            .map(|l| {
                let (n, v) = l.split_once(": ").unwrap();
                (n.to_owned(), v.to_owned())
            })
            .collect();
        Reply {
            status,
            reason,
            headers,
            body: raw[split + 4..].to_vec(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts an upstream `V1` error: status, `{"message":...}`, both content-type headers.
    fn assert_error(&self, status: u16, message: &str) {
        assert_eq!(
            (self.status, self.text()),
            (status, format!("{{\"message\":\"{message}\"}}")),
            "{self:?}"
        );
        assert_eq!(
            self.header("Content-Type"),
            Some("application/json; charset=utf-8")
        );
        assert_eq!(self.header("X-NSQ-Content-Type"), Some("nsq; version=1.0"));
    }

    /// Asserts a `V1` success with this text body (`OK`) or an empty one.
    fn assert_ok(&self, body: &str) {
        assert_eq!((self.status, self.text().as_str()), (200, body), "{self:?}");
        assert_eq!(self.header("X-NSQ-Content-Type"), Some("nsq; version=1.0"));
        let sniffed = (!body.is_empty()).then_some("text/plain; charset=utf-8");
        assert_eq!(self.header("Content-Type"), sniffed);
    }
}

/// A raw V2 consumer.
struct Consumer {
    stream: TcpStream,
    buf: BytesMut,
    frames: FrameDecoder,
}

impl Consumer {
    fn subscribe(broker: &Broker, topic: &str, channel: &str, rdy: u64) -> Consumer {
        let stream = TcpStream::connect(broker.tcp).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut c = Consumer {
            stream,
            buf: BytesMut::new(),
            frames: FrameDecoder::new(1 << 20),
        };
        c.send(v2::put_magic);
        c.send(|out| {
            v2::put_command(
                out,
                &V2::Sub {
                    topic: Name::new(topic),
                    channel: Name::new(channel),
                },
            )
        });
        assert_eq!(c.next_frame(), Frame::Response(Bytes::from_static(b"OK")));
        c.send(|out| v2::put_command(out, &V2::Rdy(rdy)));
        c
    }

    fn send(&mut self, encode: impl FnOnce(&mut BytesMut)) {
        let mut out = BytesMut::new();
        encode(&mut out);
        self.stream.write_all(&out).unwrap();
    }

    fn next_frame(&mut self) -> Frame {
        loop {
            if let Some(frame) = self.frames.decode(&mut self.buf).unwrap() {
                if frame.is_heartbeat() {
                    self.send(|out| v2::put_command(out, &V2::Nop));
                    continue;
                }
                return frame;
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).unwrap();
            assert!(n > 0, "broker closed the consumer connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next `n` message bodies, each FINished.
    fn bodies(&mut self, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| match self.next_frame() {
                Frame::Message(m) => {
                    self.send(|out| v2::put_command(out, &V2::Fin(m.id)));
                    String::from_utf8(m.body.to_vec()).unwrap()
                }
                other => panic!("expected a message, got {other:?}"),
            })
            .collect()
    }
}

fn binary_mpub(bodies: &[&[u8]]) -> Vec<u8> {
    let mut out = (bodies.len() as u32).to_be_bytes().to_vec();
    for b in bodies {
        out.extend_from_slice(&(b.len() as u32).to_be_bytes());
        out.extend_from_slice(b);
    }
    out
}

fn topic_stats<'a>(stats: &'a Value, topic: &str) -> &'a Value {
    stats["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["topic_name"] == topic)
        .unwrap_or_else(|| panic!("no topic {topic} in {stats}"))
}

// ---------------------------------------------------------------------------------------------
// /ping, /info, routing

fn ping_info_and_routing(broker: &Broker) {
    let ping = broker.get("/ping");
    assert_eq!((ping.status, ping.text().as_str()), (200, "OK"));
    assert_eq!(
        ping.header("Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(ping.header("X-NSQ-Content-Type"), None);

    let info = broker.json("/info");
    assert_eq!(info["version"], "1.3.0");
    assert_eq!(info["tcp_port"], broker.tcp.port());
    assert_eq!(info["http_port"], broker.http.port());
    assert_eq!(info["max_heartbeat_interval"], 60_000_000_000u64);
    assert_eq!(info["max_output_buffer_size"], 65536);
    assert_eq!(info["max_deflate_level"], 6);
    let keys: Vec<&String> = info.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 10);

    broker.get("/no_such_route").assert_error(404, "NOT_FOUND");
    broker
        .post("/no_such_route", b"x")
        .assert_error(404, "NOT_FOUND");
    let post = broker.post("/ping", b"");
    post.assert_error(405, "METHOD_NOT_ALLOWED");
    assert_eq!(post.header("Allow"), Some("GET, OPTIONS"));
    broker
        .get("/pub?topic=t")
        .assert_error(405, "METHOD_NOT_ALLOWED");
    broker
        .put("/pub?topic=t", b"x")
        .assert_error(405, "METHOD_NOT_ALLOWED");
    broker
        .post("/stats", b"")
        .assert_error(405, "METHOD_NOT_ALLOWED");
    broker
        .post("/config/log_level", b"info")
        .assert_error(405, "METHOD_NOT_ALLOWED");

    let head = broker.request("HEAD", "/ping", &[], b"");
    assert_eq!(head.status, 405);
    assert!(head.body.is_empty());
    assert_eq!(head.header("X-NSQ-Content-Type"), Some("nsq; version=1.0"));

    let moved = broker.get("/ping/");
    assert_eq!(
        (moved.status, moved.reason.as_str()),
        (301, "Moved Permanently")
    );
    assert_eq!(moved.header("Location"), Some("/ping"));
    assert_eq!(
        moved.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(moved.text(), "<a href=\"/ping\">Moved Permanently</a>.\n\n");
    let moved = broker.post("/pub/?topic=t", b"x");
    assert_eq!(moved.status, 307);
    assert_eq!(moved.header("Location"), Some("/pub?topic=t"));
    assert_eq!(broker.get("/PING").header("Location"), Some("/ping"));

    let options = broker.request("OPTIONS", "/config/log_level", &[], b"");
    assert_eq!(options.status, 200);
    assert_eq!(options.header("Allow"), Some("GET, OPTIONS, PUT"));

    for path in [
        "/debug/pprof/",
        "/debug/pprof/heap",
        "/debug/pprof/profile?seconds=1",
    ] {
        let reply = broker.get(path);
        assert_eq!(reply.status, 501, "{path}");
        assert!(
            reply.text().starts_with("NOT_SUPPORTED: "),
            "{}",
            reply.text()
        );
    }
    assert_eq!(broker.post("/debug/freememory", b"").status, 501);
    assert_eq!(broker.put("/debug/setblockrate?rate=1", b"").status, 501);
}

#[test]
fn ping_info_and_routing_on_one_shard() {
    ping_info_and_routing(&Broker::start(1, &[]));
}

#[test]
fn ping_info_and_routing_on_two_shards() {
    ping_info_and_routing(&Broker::start(2, &[]));
}

// ---------------------------------------------------------------------------------------------
// /pub and /mpub

/// With `--max-msg-size=100 --max-body-size=1000`, as the golden transcript.
fn publish_limits_and_errors(broker: &Broker) {
    let t = "/pub?topic=limits";
    broker.post(t, b"hello").assert_ok("OK");
    broker
        .post("/pub", b"hello")
        .assert_error(400, "MISSING_ARG_TOPIC");
    broker
        .post("/pub?topic=bad$topic", b"hello")
        .assert_error(400, "INVALID_TOPIC");
    broker
        .post("/pub?topic=", b"hello")
        .assert_error(400, "INVALID_TOPIC");
    broker
        .post("/pub?topic=%zz", b"hello")
        .assert_error(400, "INVALID_REQUEST");
    broker
        .post("/pub?topic=a;b", b"hello")
        .assert_error(400, "INVALID_REQUEST");
    broker.post(t, b"").assert_error(400, "MSG_EMPTY");
    broker.post("/pub", b"").assert_error(400, "MSG_EMPTY");
    broker.post(t, &[b'm'; 100]).assert_ok("OK");
    broker
        .post(t, &[b'm'; 101])
        .assert_error(413, "MSG_TOO_BIG");
    broker.post(t, &[0xff, 0xfe, 0x00]).assert_ok("OK");

    // A chunked body without Content-Length is bounded while it is read.
    let chunked = format!(
        "POST {t} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n65\r\n{}\r\n0\r\n\r\n",
        "m".repeat(101)
    );
    let raw = broker.raw(chunked.as_bytes());
    let reply = Reply::parse(&raw);
    reply.assert_error(413, "MSG_TOO_BIG");
    assert_eq!(reply.reason, "Request Entity Too Large");
    let names: Vec<&str> = reply.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "Content-Type",
            "X-Nsq-Content-Type",
            "Date",
            "Content-Length",
            "Connection"
        ]
    );
    // A huge chunked body is refused without reading it all.
    let huge = broker.request(
        "POST",
        t,
        &["Transfer-Encoding: chunked"],
        format!("{:x}\r\n{}\r\n0\r\n\r\n", 1 << 20, "m".repeat(1 << 20)).as_bytes(),
    );
    huge.assert_error(413, "MSG_TOO_BIG");

    broker
        .post(&format!("{t}&defer=1000"), b"later")
        .assert_ok("OK");
    broker
        .post(&format!("{t}&defer=3600000"), b"latest")
        .assert_ok("OK");
    for bad in ["abc", "-1", "3600001", "", "1.5"] {
        broker
            .post(&format!("{t}&defer={bad}"), b"x")
            .assert_error(400, "INVALID_DEFER");
    }

    let m = "/mpub?topic=limits";
    broker.post(m, b"one\ntwo\n\nthree\n").assert_ok("OK");
    broker.post(m, b"").assert_ok("OK");
    broker
        .post("/mpub", b"one\n")
        .assert_error(400, "MISSING_ARG_TOPIC");
    broker
        .post("/mpub?topic=bad$topic", b"one\n")
        .assert_error(400, "INVALID_TOPIC");
    let too_long_line = format!("ok\n{}\n", "m".repeat(101));
    broker
        .post(m, too_long_line.as_bytes())
        .assert_error(413, "MSG_TOO_BIG");
    let body = format!("{}\n", "m".repeat(99)).repeat(10);
    broker.post(m, &body.as_bytes()[..1000]).assert_ok("OK");
    broker
        .post(m, &[body.as_bytes(), b"x"].concat())
        .assert_error(413, "BODY_TOO_BIG");
    let chunked = broker.request(
        "POST",
        m,
        &["Transfer-Encoding: chunked"],
        format!("3e9\r\n{}\r\n0\r\n\r\n", "m\n".repeat(500) + "m").as_bytes(),
    );
    chunked.assert_error(413, "BODY_TOO_BIG");

    let b = "/mpub?topic=limits&binary=true";
    broker
        .post(b, &binary_mpub(&[b"b1", b"b2", b"b3"]))
        .assert_ok("OK");
    broker
        .post("/mpub?topic=limits&binary=1", &binary_mpub(&[b"b4"]))
        .assert_ok("OK");
    broker
        .post("/mpub?topic=limits&binary=yes", &binary_mpub(&[b"b5"]))
        .assert_ok("OK");
    broker
        .post("/mpub?topic=limits&binary=false", b"t1\nt2")
        .assert_ok("OK");
    broker.post(b, &[0, 0, 0, 0]).assert_error(413, "BAD_BODY");
    broker.post(b, b"").assert_error(413, "BAD_BODY");
    broker
        .post(b, b"hello\nworld\n")
        .assert_error(413, "BAD_BODY");
    broker
        .post(b, b"\x00\x00\x00\x02\x00\x00\x00\x02b1")
        .assert_error(413, "BAD_MESSAGE");
    broker
        .post(b, b"\x00\x00\x00\x01\x00\x00\x00\x00")
        .assert_error(413, "BAD_MESSAGE");
    broker
        .post(b, &binary_mpub(&[&[b'm'; 101]]))
        .assert_error(413, "BAD_MESSAGE");

    // Accepted: PUB 1+1+1 (+2 deferred), MPUB 3+0+10, binary 3+1+1, text-as-binary=false 2.
    let stats = broker.json("/stats?format=json&topic=limits");
    let topic = topic_stats(&stats, "limits");
    assert_eq!(topic["message_count"], 3 + 2 + 3 + 10 + 3 + 1 + 1 + 2);

    // A refused publish still creates its topic, as upstream's handlers do.
    broker
        .post("/pub?topic=made_by_bad_defer&defer=x", b"x")
        .assert_error(400, "INVALID_DEFER");
    broker
        .post("/mpub?topic=made_by_bad_body&binary=1", b"")
        .assert_error(413, "BAD_BODY");
    let stats = broker.json("/stats?format=json");
    assert_eq!(topic_stats(&stats, "made_by_bad_defer")["message_count"], 0);
    assert_eq!(topic_stats(&stats, "made_by_bad_body")["message_count"], 0);
}

#[test]
fn publish_limits_and_errors_on_one_shard() {
    publish_limits_and_errors(&Broker::start(
        1,
        &["--max-msg-size=100", "--max-body-size=1000"],
    ));
}

#[test]
fn publish_limits_and_errors_on_two_shards() {
    publish_limits_and_errors(&Broker::start(
        2,
        &["--max-msg-size=100", "--max-body-size=1000"],
    ));
}

/// Past `--mem-queue-size` nothing is lost: with messages kept in memory only, the publish is
/// refused with 503 and a clear message (upstream never refuses: it spills to disk); once the
/// segment log keeps the overflow, it is accepted. Either way the counts agree exactly.
#[test]
fn publishing_past_mem_queue_size_loses_nothing() {
    let broker = Broker::start(2, &["--mem-queue-size=2"]);
    broker.post("/topic/create?topic=full", b"").assert_ok("");
    broker
        .post("/channel/create?topic=full&channel=c", b"")
        .assert_ok("");
    broker.post("/pub?topic=full", b"1").assert_ok("OK");
    broker.post("/pub?topic=full", b"2").assert_ok("OK");
    let third = broker.post("/pub?topic=full", b"3");
    let mpub = broker.post("/mpub?topic=full", b"a\nb");
    let accepted = if third.status == 200 {
        third.assert_ok("OK");
        mpub.assert_ok("OK");
        5
    } else {
        third.assert_error(503, "PUB_FAILED mem-queue-size 2 reached");
        mpub.assert_error(503, "MPUB_FAILED mem-queue-size 2 reached");
        2
    };
    let stats = broker.json("/stats?format=json&topic=full");
    let topic = topic_stats(&stats, "full");
    assert_eq!(topic["message_count"], accepted);
    // Upstream's channel depth counts memory and disk (`len(memoryMsgChan) + backend.Depth()`).
    assert_eq!(topic["channels"][0]["depth"], accepted, "{stats}");
    let mut consumer = Consumer::subscribe(&broker, "full", "c", 10);
    let want = ["1", "2", "3", "a", "b"];
    assert_eq!(consumer.bodies(accepted), want[..accepted]);
}

// ---------------------------------------------------------------------------------------------
// /topic/* and /channel/*

fn admin_routes(broker: &Broker) {
    let ok = |path: &str| broker.post(path, b"").assert_ok("");
    let err = |path: &str, status: u16, message: &str| {
        broker.post(path, b"").assert_error(status, message)
    };
    ok("/topic/create?topic=adm");
    ok("/topic/create?topic=adm");
    err("/topic/create", 400, "MISSING_ARG_TOPIC");
    err("/topic/create?topic=bad$topic", 400, "INVALID_TOPIC");
    err("/topic/create?topic=%", 400, "INVALID_REQUEST");
    ok("/topic/pause?topic=adm");
    err("/topic/pause", 400, "MISSING_ARG_TOPIC");
    err("/topic/pause?topic=nope", 404, "TOPIC_NOT_FOUND");
    err("/topic/pause?topic=bad$topic", 404, "TOPIC_NOT_FOUND");
    ok("/topic/unpause?topic=adm");
    err("/topic/unpause?topic=nope", 404, "TOPIC_NOT_FOUND");
    ok("/topic/empty?topic=adm");
    err("/topic/empty", 400, "MISSING_ARG_TOPIC");
    err("/topic/empty?topic=bad$topic", 400, "INVALID_TOPIC");
    err("/topic/empty?topic=nope", 404, "TOPIC_NOT_FOUND");

    ok("/channel/create?topic=adm&channel=c1");
    err("/channel/create?channel=c1", 400, "MISSING_ARG_TOPIC");
    err(
        "/channel/create?topic=bad$topic&channel=c1",
        400,
        "INVALID_ARG_TOPIC",
    );
    err("/channel/create?topic=adm", 400, "MISSING_ARG_CHANNEL");
    err(
        "/channel/create?topic=adm&channel=bad*channel",
        400,
        "INVALID_ARG_CHANNEL",
    );
    err(
        "/channel/create?topic=nope&channel=c1",
        404,
        "TOPIC_NOT_FOUND",
    );
    ok("/channel/pause?topic=adm&channel=c1");
    err(
        "/channel/pause?topic=adm&channel=nope",
        404,
        "CHANNEL_NOT_FOUND",
    );
    err(
        "/channel/pause?topic=nope&channel=c1",
        404,
        "TOPIC_NOT_FOUND",
    );
    err("/channel/pause?topic=adm", 400, "MISSING_ARG_CHANNEL");
    ok("/channel/create?topic=adm&channel=c2");
    ok("/channel/create?topic=adm&channel=c3%23ephemeral");

    let stats = broker.json("/stats?format=json&topic=adm");
    let topic = topic_stats(&stats, "adm");
    assert_eq!(topic["paused"], false);
    let channels: Vec<(&str, bool)> = topic["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["channel_name"].as_str().unwrap(),
                c["paused"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        channels,
        [("c1", true), ("c2", false), ("c3#ephemeral", false)]
    );

    ok("/channel/unpause?topic=adm&channel=c1");
    err(
        "/channel/unpause?topic=adm&channel=nope",
        404,
        "CHANNEL_NOT_FOUND",
    );
    broker.post("/pub?topic=adm", b"x").assert_ok("OK");
    ok("/channel/empty?topic=adm&channel=c1");
    err(
        "/channel/empty?topic=adm&channel=nope",
        404,
        "CHANNEL_NOT_FOUND",
    );
    err(
        "/channel/empty?topic=adm&channel=bad*channel",
        400,
        "INVALID_ARG_CHANNEL",
    );
    ok("/channel/delete?topic=adm&channel=c2");
    err(
        "/channel/delete?topic=adm&channel=c2",
        404,
        "CHANNEL_NOT_FOUND",
    );
    err(
        "/channel/delete?topic=nope&channel=c1",
        404,
        "TOPIC_NOT_FOUND",
    );
    err("/channel/delete?topic=adm", 400, "MISSING_ARG_CHANNEL");

    let stats = broker.json("/stats?format=json&topic=adm");
    let topic = topic_stats(&stats, "adm");
    let depths: Vec<(&str, i64)> = topic["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["channel_name"].as_str().unwrap(),
                c["depth"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(depths, [("c1", 0), ("c3#ephemeral", 1)]);

    ok("/topic/pause?topic=adm");
    assert_eq!(
        topic_stats(&broker.json("/stats?format=json"), "adm")["paused"],
        true
    );
    ok("/topic/delete?topic=adm");
    err("/topic/delete?topic=adm", 404, "TOPIC_NOT_FOUND");
    err("/topic/delete", 400, "MISSING_ARG_TOPIC");
    err("/topic/delete?topic=bad$topic", 404, "TOPIC_NOT_FOUND");
    let stats = broker.json("/stats?format=json&topic=adm");
    assert_eq!(stats["topics"], Value::Null);
}

#[test]
fn admin_routes_on_one_shard() {
    admin_routes(&Broker::start(1, &[]));
}

#[test]
fn admin_routes_on_two_shards() {
    admin_routes(&Broker::start(2, &[]));
}

// ---------------------------------------------------------------------------------------------
// /config

#[test]
fn config_reads_options_and_changes_two() {
    let broker = Broker::start(2, &["--max-msg-size=100"]);
    let json = |reply: Reply, want: &str| {
        assert_eq!(
            (reply.status, reply.text().as_str()),
            (200, want),
            "{reply:?}"
        );
        assert_eq!(
            reply.header("Content-Type"),
            Some("application/json; charset=utf-8")
        );
        assert_eq!(reply.header("X-NSQ-Content-Type"), Some("nsq; version=1.0"));
    };
    json(broker.get("/config/nsqlookupd_tcp_addresses"), "[]");
    json(
        broker.put("/config/nsqlookupd_tcp_addresses", b"[\"127.0.0.1:1\"]"),
        "[\"127.0.0.1:1\"]",
    );
    json(
        broker.get("/config/nsqlookupd_tcp_addresses"),
        "[\"127.0.0.1:1\"]",
    );
    json(broker.put("/config/nsqlookupd_tcp_addresses", b"[]"), "[]");
    broker
        .put("/config/nsqlookupd_tcp_addresses", b"127.0.0.1:1")
        .assert_error(400, "INVALID_VALUE");
    json(broker.get("/config/log_level"), "2");
    json(broker.put("/config/log_level", b"warn"), "3");
    json(broker.get("/config/log_level"), "3");
    json(broker.put("/config/log_level", b"INFO"), "2");
    broker
        .put("/config/log_level", b"loud")
        .assert_error(400, "INVALID_VALUE");
    broker
        .put("/config/log_level", &[0xff])
        .assert_error(400, "INVALID_VALUE");
    broker
        .put("/config/log_level", b"")
        .assert_error(413, "INVALID_VALUE");
    broker
        .put("/config/log_level", &[b'x'; 101])
        .assert_error(413, "INVALID_VALUE");
    broker
        .put("/config/no_such_option", b"1")
        .assert_error(400, "INVALID_OPTION");
    broker
        .get("/config/no_such_option")
        .assert_error(400, "INVALID_OPTION");
    json(broker.get("/config/max_msg_size"), "100");
    json(broker.get("/config/msg_timeout"), "60000000000");
    json(broker.get("/config/mem_queue_size"), "10000");
    broker
        .put("/config/max_msg_size", b"200")
        .assert_error(400, "INVALID_OPTION");
    broker.get("/config/").assert_error(404, "NOT_FOUND");
}

// ---------------------------------------------------------------------------------------------
// /stats

fn stats_shapes(broker: &Broker) {
    broker.post("/pub?topic=shape", b"hello").assert_ok("OK");
    broker
        .post("/channel/create?topic=shape&channel=ch", b"")
        .assert_ok("");
    let mut consumer = Consumer::subscribe(broker, "shape", "ch", 1);
    // Held in flight (not FINished) while the stats are read.
    assert!(matches!(consumer.next_frame(), Frame::Message(_)));

    let full = broker.json("/stats?format=json");
    // Upstream's key order (serde_json's `Value` sorts keys, so look at the text).
    let raw = broker.get("/stats?format=json").text();
    let order = [
        "{\"version\":\"1.3.0\",\"health\":\"OK\",\"start_time\":",
        ",\"topics\":[",
        ",\"memory\":{\"heap_objects\":",
        ",\"producers\":",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|k| raw.find(k).unwrap_or(usize::MAX))
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]) && positions[0] == 0,
        "{raw}"
    );
    assert_eq!(full["health"], "OK");
    assert!(full["memory"]["heap_in_use_bytes"].as_u64().unwrap() > 0);
    let topic = topic_stats(&full, "shape");
    assert_eq!(topic["message_count"], 1);
    let channel = &topic["channels"][0];
    assert_eq!(channel["client_count"], 1);
    assert_eq!(channel["clients"][0]["state"], 3);
    assert_eq!(channel["clients"][0]["version"], "V2");

    let no_clients = broker.json("/stats?format=json&topic=shape&include_clients=false");
    assert_eq!(
        topic_stats(&no_clients, "shape")["channels"][0]["clients"],
        Value::Null
    );
    assert_eq!(
        topic_stats(&no_clients, "shape")["channels"][0]["client_count"],
        1
    );
    assert_eq!(no_clients["producers"], Value::Null);
    let no_mem = broker.json("/stats?format=json&include_mem=0");
    assert!(no_mem.get("memory").is_none());
    let unknown = broker.json("/stats?format=json&topic=nope");
    assert_eq!(
        (&unknown["topics"], &unknown["producers"]),
        (&Value::Null, &Value::Null)
    );
    let unknown_channel = broker.json("/stats?format=json&topic=shape&channel=nope");
    assert_eq!(unknown_channel["topics"], Value::Array(Vec::new()));
    let by_channel = broker.json("/stats?format=json&channel=ch");
    assert_eq!(by_channel["topics"].as_array().unwrap().len(), 1);

    let text = broker.get("/stats");
    assert_eq!(text.status, 200);
    assert_eq!(
        text.header("Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(text.header("X-NSQ-Content-Type"), Some("nsq; version=1.0"));
    let body = text.text();
    assert!(body.starts_with("nsqd v1.3.0 (built w/sluiced v"), "{body}");
    assert!(
        body.contains("\nHealth: OK\n\nMemory:\n   heap_objects             \t0\n"),
        "{body}"
    );
    assert!(
        body.contains(
            "\n   [shape          ] depth: 0     be-depth: 0     msgs: 1        e2e%: \n"
        ),
        "{body}"
    );
    assert!(body.contains("      [ch                       ] depth: 0     be-depth: 0     inflt: 1    def: 0    re-q: 0     timeout: 0     msgs: 1        e2e%: \n"), "{body}");
    let text = broker
        .get("/stats?format=text&topic=nope&include_mem=false")
        .text();
    assert!(
        text.ends_with("\nHealth: OK\n\nTopics: None\n\nProducers: None\n"),
        "{text}"
    );
    broker
        .get("/stats?topic=%")
        .assert_error(400, "INVALID_REQUEST");
    drop(consumer);
}

#[test]
fn stats_shapes_on_one_shard() {
    stats_shapes(&Broker::start(1, &[]));
}

#[test]
fn stats_shapes_on_two_shards() {
    stats_shapes(&Broker::start(2, &[]));
}

#[test]
fn producers_are_the_connections_that_published() {
    let broker = Broker::start(1, &[]);
    let mut producer = TcpStream::connect(broker.tcp).unwrap();
    let mut out = BytesMut::new();
    v2::put_magic(&mut out);
    v2::put_command(
        &mut out,
        &V2::Identify(Bytes::from_static(
            br#"{"client_id":"p1","hostname":"host","user_agent":"test/1.0","feature_negotiation":false}"#,
        )),
    );
    producer.write_all(&out).unwrap();
    let mut ok = [0u8; 10];
    producer.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    producer.read_exact(&mut ok).unwrap();
    // Upstream counts a connection as a producer once it has published (`IsProducer`).
    let stats = broker.json("/stats?format=json");
    assert!(stats["producers"].is_null(), "{}", stats["producers"]);
    out.clear();
    v2::put_command(
        &mut out,
        &V2::Pub {
            topic: v2::Name::new("made"),
            body: Bytes::from_static(b"x"),
        },
    );
    producer.write_all(&out).unwrap();
    producer.read_exact(&mut ok).unwrap();
    let stats = broker.json("/stats?format=json");
    let producers = stats["producers"].as_array().unwrap();
    assert_eq!(producers.len(), 1);
    assert_eq!(producers[0]["pub_counts"][0]["topic"], "made");
    assert_eq!(producers[0]["pub_counts"][0]["count"], 1);
    assert_eq!(producers[0]["client_id"], "p1");
    assert_eq!(producers[0]["user_agent"], "test/1.0");
    assert_eq!(producers[0]["state"], 0);
    let text = broker.get("/stats").text();
    assert!(text.contains("\nProducers:\n   [V2 host:"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Across shards

#[test]
fn publishes_reach_topics_of_both_shards_and_stats_lists_them_all() {
    let broker = Broker::start(2, &[]);
    let names: Vec<String> = (0..24).map(|i| format!("spread-{i:02}")).collect();
    let owners: Vec<usize> = names
        .iter()
        .map(|n| sluice_broker::shard::shard_of(n, 2))
        .collect();
    assert!(owners.contains(&0) && owners.contains(&1), "{owners:?}");
    for (i, name) in names.iter().enumerate() {
        // i + 1 messages: one PUB, then the rest in one MPUB (text or binary).
        broker
            .post(&format!("/pub?topic={name}"), b"first")
            .assert_ok("OK");
        let rest: Vec<Vec<u8>> = (0..i).map(|k| format!("m{k}").into_bytes()).collect();
        if i % 2 == 0 {
            let refs: Vec<&[u8]> = rest.iter().map(Vec::as_slice).collect();
            broker
                .post(
                    &format!("/mpub?topic={name}&binary=true"),
                    &binary_mpub(&refs),
                )
                .assert_error_or_ok(i == 0);
        } else {
            broker
                .post(&format!("/mpub?topic={name}"), &rest.join(&b'\n'))
                .assert_ok("OK");
        }
        if i % 3 == 0 {
            broker
                .post(&format!("/channel/create?topic={name}&channel=c"), b"")
                .assert_ok("");
        }
    }
    let stats = broker.json("/stats?format=json");
    let listed: Vec<&str> = stats["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["topic_name"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(listed, expected, "sorted by name, from both shards");
    for (i, name) in names.iter().enumerate() {
        let topic = topic_stats(&stats, name);
        assert_eq!(topic["message_count"], i as u64 + 1, "{name}");
        assert_eq!(
            topic["channels"].as_array().unwrap().len(),
            usize::from(i % 3 == 0),
            "{name}"
        );
        // The owner alone answers a filtered request, whichever shard took it.
        let one = broker.json(&format!("/stats?format=json&topic={name}"));
        assert_eq!(one["topics"].as_array().unwrap().len(), 1);
        assert_eq!(topic_stats(&one, name)["message_count"], i as u64 + 1);
    }
    for name in &names {
        broker
            .post(&format!("/topic/delete?topic={name}"), b"")
            .assert_ok("");
    }
    assert_eq!(
        broker.json("/stats?format=json")["topics"],
        Value::Array(Vec::new())
    );
}

impl Reply {
    /// An MPUB of zero binary messages is `BAD_BODY`; any other is `OK`.
    fn assert_error_or_ok(&self, empty: bool) {
        if empty {
            self.assert_error(413, "BAD_BODY");
        } else {
            self.assert_ok("OK");
        }
    }
}

fn consumer_gets_http_publishes(broker: &Broker) {
    for topic in ["deliver-a", "deliver-b", "deliver-c"] {
        let mut consumer = Consumer::subscribe(broker, topic, "ch", 100);
        broker
            .post(&format!("/pub?topic={topic}"), b"one")
            .assert_ok("OK");
        broker
            .post(&format!("/mpub?topic={topic}"), b"two\nthree")
            .assert_ok("OK");
        broker
            .post(
                &format!("/mpub?topic={topic}&binary=1"),
                &binary_mpub(&[b"four", b"five\nwith newline"]),
            )
            .assert_ok("OK");
        assert_eq!(
            consumer.bodies(5),
            ["one", "two", "three", "four", "five\nwith newline"]
        );
        let stats = broker.json(&format!("/stats?format=json&topic={topic}&channel=ch"));
        let channel = &topic_stats(&stats, topic)["channels"][0];
        assert_eq!(channel["message_count"], 5);
        assert_eq!(channel["clients"][0]["message_count"], 5);
    }
}

#[test]
fn a_tcp_consumer_receives_http_publishes_on_one_shard() {
    consumer_gets_http_publishes(&Broker::start(1, &[]));
}

#[test]
fn a_tcp_consumer_receives_http_publishes_on_two_shards() {
    consumer_gets_http_publishes(&Broker::start(2, &[]));
}

// ---------------------------------------------------------------------------------------------
// Bad input

#[test]
fn bad_input_gets_clean_errors_and_the_server_lives_on() {
    let broker = Broker::start(2, &[]);
    // A V2 client on the HTTP port gets Go's exact refusal.
    let raw = broker.raw(b"  V2IDENTIFY\n\x00\x00\x00\x02{}");
    assert_eq!(
        raw,
        b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request"
    );
    assert!(broker
        .raw(b"GET /ping\r\n\r\n")
        .starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
    assert!(broker
        .raw(b"\xff\xfe\r\n\r\n")
        .starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
    // Odd methods are 405 where the path exists and 404 elsewhere.
    broker
        .request("BREW", "/stats", &[], b"")
        .assert_error(405, "METHOD_NOT_ALLOWED");
    broker
        .request("DELETE", "/nope", &[], b"")
        .assert_error(404, "NOT_FOUND");
    // A bad escape in the path is refused before routing; non-UTF-8 query bytes are a bad name.
    assert_eq!(broker.get("/p%zzing").status, 400);
    broker
        .post("/pub?topic=%ff%fe", b"x")
        .assert_error(400, "INVALID_TOPIC");
    broker
        .post("/channel/create?topic=t&channel=%c3%28", b"")
        .assert_error(400, "INVALID_ARG_CHANNEL");
    // A huge query string is either answered cleanly or refused by the HTTP parser.
    let long = format!("/stats?format=json&topic={}", "a".repeat(60_000));
    let reply = broker.get(&long);
    assert_eq!(reply.status, 200, "{reply:?}");
    let longer = format!("/stats?topic={}", "a".repeat(70_000));
    let raw = broker.raw(format!("GET {longer} HTTP/1.1\r\nConnection: close\r\n\r\n").as_bytes());
    assert!(
        raw.starts_with(b"HTTP/1.1 4"),
        "{:?}",
        String::from_utf8_lossy(&raw[..40.min(raw.len())])
    );
    // A body cut short by the client, then a connection closed at once: nothing breaks.
    let mut cut = TcpStream::connect(broker.http).unwrap();
    cut.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    cut.write_all(b"POST /pub?topic=cut HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    cut.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = Vec::new();
    let _ = cut.read_to_end(&mut out);
    if !out.is_empty() {
        Reply::parse(&out).assert_error(500, "INTERNAL_ERROR");
    }
    drop(TcpStream::connect(broker.http).unwrap());
    // Many parameters and repeated keys: the first value wins.
    let params = (0..2000)
        .map(|i| format!("k{i}=v"))
        .collect::<Vec<_>>()
        .join("&");
    broker
        .post(&format!("/pub?topic=first&topic=second&{params}"), b"x")
        .assert_ok("OK");
    let stats = broker.json("/stats?format=json");
    assert_eq!(topic_stats(&stats, "first")["message_count"], 1);
    assert_eq!(broker.get("/ping").text(), "OK");
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let broker = Broker::start(1, &[]);
    let mut stream = TcpStream::connect(broker.http).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
        .write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\nPOST /pub?topic=ka HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhiGET /stats?format=json&topic=ka HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), 3, "{text}");
    assert!(text.contains("\"topic_name\":\"ka\""), "{text}");
    assert!(text.contains("\"message_count\":1"), "{text}");
}
