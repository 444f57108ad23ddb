//! Shared pieces of the black-box suites: start the real `sluice-lookupd` on loopback port 0,
//! speak lookup V1 to it as a broker does (bytes built and read with `sluice_proto::lookup`),
//! and call its HTTP API. Waits are bounded polls, never sleeps followed by assertions.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Once;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use serde_json::Value;
use sluice_proto::lookup::{
    put_lookup_command, IdentifyInfo, LookupCommand, ReplyDecoder, MAGIC_V1,
};
use sluice_proto::Name;
pub use sluice_tests::daemon::Daemon;

/// How long any single reply may take.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a condition polled with [`eventually`] may take to become true.
pub const EVENTUALLY: Duration = Duration::from_secs(20);

/// Starts the binary Cargo built for this package with `args` (after the loopback addresses).
pub fn start(args: &[&str]) -> Daemon {
    static BIN_DIR: Once = Once::new();
    BIN_DIR.call_once(|| {
        let binary = Path::new(env!("CARGO_BIN_EXE_sluice-lookupd"));
        let dir = binary.parent().expect("the binary has a directory");
        std::env::set_var("SLUICE_BIN_DIR", dir);
    });
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    Daemon::start("sluice-lookupd", &args).unwrap()
}

/// The path of the binary, for runs that are not a daemon (`--version`, bad flags).
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_sluice-lookupd")
}

/// Polls `condition` every 50 ms until it holds; panics with `what` after [`EVENTUALLY`].
pub fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + EVENTUALLY;
    while Instant::now() < deadline {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("not within {EVENTUALLY:?}: {what}");
}

/// An HTTP reply: status and body.
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub response: sluice_tests::http::Response,
}

impl Reply {
    /// The body as JSON (panics if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The `message` of an error body.
    pub fn message(&self) -> String {
        self.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// One HTTP request to the daemon.
pub fn http(daemon: &Daemon, method: &str, path: &str) -> Reply {
    let response =
        sluice_tests::http::request(daemon.http_addr(), method, path, b"", REPLY_TIMEOUT).unwrap();
    Reply {
        status: response.status,
        body: response.body.clone(),
        response,
    }
}

/// `GET path` and its JSON body (panics unless 200).
pub fn get_json(daemon: &Daemon, path: &str) -> Value {
    let reply = http(daemon, "GET", path);
    assert_eq!(
        reply.status,
        200,
        "GET {path}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()
}

/// The `hostname`s of `/lookup?topic=`'s producers (empty on 404).
pub fn lookup_hosts(daemon: &Daemon, topic: &str) -> Vec<String> {
    let reply = http(daemon, "GET", &format!("/lookup?topic={}", encode(topic)));
    if reply.status == 404 {
        return Vec::new();
    }
    assert_eq!(reply.status, 200);
    hosts(&reply.json()["producers"])
}

/// The `hostname`s of a JSON array of producers.
pub fn hosts(producers: &Value) -> Vec<String> {
    producers
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|p| p["hostname"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A JSON array of strings.
pub fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Percent-encodes the one character of topic names a query needs encoded (`#`).
pub fn encode(name: &str) -> String {
    name.replace('#', "%23")
}

/// A broker's lookup connection.
pub struct Broker {
    stream: TcpStream,
    buf: BytesMut,
    replies: ReplyDecoder,
}

impl Broker {
    /// Connects and sends the magic.
    pub fn connect(daemon: &Daemon) -> Broker {
        Broker::connect_addr(daemon.tcp_addr())
    }

    /// Connects to a TCP address and sends the magic.
    pub fn connect_addr(addr: SocketAddr) -> Broker {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        stream.write_all(MAGIC_V1).unwrap();
        Broker {
            stream,
            buf: BytesMut::new(),
            replies: ReplyDecoder::default(),
        }
    }

    /// Connects, identifies as broker `host` (HTTP port `http_port`), and checks the reply.
    pub fn identified(daemon: &Daemon, host: &str, http_port: u16) -> Broker {
        let mut broker = Broker::connect(daemon);
        let reply = broker.identify(host, http_port);
        assert_eq!(reply.tcp_port, daemon.tcp_addr().port());
        broker
    }

    /// Sends IDENTIFY as nsqd does and returns the lookup service's reply.
    pub fn identify(&mut self, host: &str, http_port: u16) -> IdentifyInfo {
        let info = IdentifyInfo {
            broadcast_address: host.to_owned(),
            hostname: host.to_owned(),
            http_port,
            tcp_port: http_port - 1,
            version: "1.3.0".to_owned(),
        };
        let reply = self.command(&LookupCommand::Identify(Bytes::from(info.to_json())));
        serde_json::from_slice(&reply).unwrap_or_else(|e| panic!("IDENTIFY reply {reply:?}: {e}"))
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Sends one command.
    pub fn send(&mut self, command: &LookupCommand) {
        let mut out = BytesMut::new();
        put_lookup_command(&mut out, command);
        self.send_raw(&out);
    }

    /// Reads the next reply's data.
    pub fn reply(&mut self) -> Bytes {
        loop {
            if let Some(data) = self.replies.decode(&mut self.buf).unwrap() {
                return data;
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).expect("a reply in time");
            assert!(n > 0, "connection closed; buffered {:?}", self.buf);
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends a command and reads its reply.
    pub fn command(&mut self, command: &LookupCommand) -> Bytes {
        self.send(command);
        self.reply()
    }

    /// REGISTER, expecting OK.
    pub fn register(&mut self, topic: &str, channel: Option<&str>) {
        let reply = self.command(&LookupCommand::Register {
            topic: Name::new(topic),
            channel: channel.map(Name::new),
        });
        assert_eq!(&reply[..], b"OK");
    }

    /// UNREGISTER, expecting OK.
    pub fn unregister(&mut self, topic: &str, channel: Option<&str>) {
        let reply = self.command(&LookupCommand::Unregister {
            topic: Name::new(topic),
            channel: channel.map(Name::new),
        });
        assert_eq!(&reply[..], b"OK");
    }

    /// PING, expecting OK.
    pub fn ping(&mut self) {
        assert_eq!(&self.command(&LookupCommand::Ping)[..], b"OK");
    }

    /// Expects the server to close the connection with nothing more to read.
    pub fn expect_closed(&mut self) {
        let mut chunk = [0u8; 64];
        match self.stream.read(&mut chunk) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("expected a close, got {other:?} {:?}", &chunk[..]),
        }
    }

    /// Half-closes the connection (no more bytes from us).
    pub fn shutdown_write(&mut self) {
        self.stream.shutdown(std::net::Shutdown::Write).unwrap();
    }
}
