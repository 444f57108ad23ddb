//! Black-box tests of what IDENTIFY and AUTH negotiate: TLS, snappy, deflate, the auth server.
//!
//! Goal: a client that asks nsqd v1.3.0 for these gets the same bytes from `sluiced`: the
//! IDENTIFY response in plain, then the TLS handshake, `OK` over TLS, then the compression's
//! `OK` compressed; publishes and deliveries round-trip through every combination, also for a
//! subscriber handed over to another shard; `--tls-required` refuses plain commands with
//! upstream's text; AUTH asks the auth server upstream's way and enforces what it grants; bad
//! input (a broken handshake, garbage after the snappy upgrade, a stuck auth server) ends only
//! the connection that sent it.
//!
//! Method: certificates are made here with rcgen (a CA, a server certificate for 127.0.0.1 and
//! a client certificate), the real binary runs on 127.0.0.1 port 0, and the client side uses
//! independent implementations: rustls for TLS, the `snap` crate's frame reader and writer,
//! flate2's raw DEFLATE streams. The auth server is a small HTTP server on a thread of the
//! test that records each query. No assertion depends on timing; waits are bounded so a broken
//! broker fails instead of hanging.

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use sluice_proto::v2::{self, Command as V2, Name};

/// Bound on any wait (not a speed assertion: a guard against hanging forever).
const IO_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Certificates

struct Pki {
    dir: PathBuf,
    server_config_ca: Arc<rustls::ClientConfig>,
    client_with_cert: Arc<rustls::ClientConfig>,
}

impl Pki {
    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn new(dir: &std::path::Path) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "sluice test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf = |names: Vec<String>, cn: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(names).unwrap();
            params.distinguished_name.push(DnType::CommonName, cn);
            let cert = params.signed_by(&key, &ca).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_pem, server_key) =
            leaf(vec!["127.0.0.1".into(), "localhost".into()], "sluiced");
        let (client_pem, client_key) = leaf(vec!["client.local".into()], "client-one");
        for (name, text) in [
            ("ca.pem", ca.pem()),
            ("server.pem", server_pem),
            ("server.key", server_key),
            ("client.pem", client_pem.clone()),
            ("client.key", client_key.clone()),
        ] {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).unwrap())
            .unwrap();
        let builder = || {
            rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots.clone())
        };
        let server_config_ca = Arc::new(builder().with_no_client_auth());
        let client_with_cert = Arc::new(
            builder()
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_slice(client_pem.as_bytes()).unwrap()],
                    PrivateKeyDer::from_pem_slice(client_key.as_bytes()).unwrap(),
                )
                .unwrap(),
        );
        Pki {
            dir: dir.to_owned(),
            server_config_ca,
            client_with_cert,
        }
    }

    fn tls_flags(&self) -> Vec<String> {
        vec![
            format!("--tls-cert={}", self.path("server.pem")),
            format!("--tls-key={}", self.path("server.key")),
        ]
    }
}

// ---------------------------------------------------------------------------------------------
// The broker

struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("sluice-tls-{label}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `sluiced`, killed (by its pid) on drop.
struct Broker {
    child: Child,
    tcp: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    _data: TempDir,
}

impl Broker {
    fn start(args: &[String]) -> Broker {
        let data = TempDir::new("data");
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluiced"))
            .arg("--tcp-address=127.0.0.1:0")
            .arg("--http-address=127.0.0.1:0")
            .arg("--https-address=127.0.0.1:0")
            .arg(format!("--data-path={}", data.0.display()))
            .args(args)
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
                if let Some((_, addr)) = line.split_once("TCP: listening on ") {
                    let _ = tx.send(addr.trim().parse::<SocketAddr>().unwrap());
                }
                lines.lock().unwrap().push(line);
            }
        });
        // The HTTP and HTTPS lines follow the TCP one.
        let started = Instant::now();
        while !log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("HTTP: listening on "))
            && started.elapsed() < IO_TIMEOUT
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        let tcp = match rx.recv_timeout(IO_TIMEOUT) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("sluiced did not start: {:?}", log.lock().unwrap());
            }
        };
        Broker {
            child,
            tcp,
            log,
            _data: data,
        }
    }

    fn client(&self) -> Client {
        Client::connect(self.tcp)
    }

    /// The address logged as `NAME: listening on ADDR` (waiting, bounded, for the line).
    fn listening(&self, name: &str) -> Option<SocketAddr> {
        let tag = format!(" {name}: listening on ");
        let started = Instant::now();
        loop {
            let found = self.log.lock().unwrap().iter().find_map(|l| {
                let (_, addr) = l.split_once(&tag)?;
                addr.trim().parse().ok()
            });
            if found.is_some() || started.elapsed() > IO_TIMEOUT {
                return found;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Whether the broker logged a line containing `needle` (waiting up to 5 s for it: the log
    /// is read by another thread).
    fn log_has(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if self.log.lock().unwrap().iter().any(|l| l.contains(needle)) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log.lock().unwrap();
            let tail = log.len().saturating_sub(40);
            eprintln!("sluiced log:\n{}", log[tail..].join("\n"));
        }
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// A blocking V2 client whose stream can be upgraded like go-nsq's

enum Socket {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    Gone,
}

/// The client's socket, shared by its reading and writing layers.
#[derive(Clone)]
struct Shared(Rc<RefCell<Socket>>);

impl Read for Shared {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match &mut *self.0.borrow_mut() {
            Socket::Plain(s) => s.read(buf),
            Socket::Tls(s) => s.read(buf),
            Socket::Gone => Ok(0),
        }
    }
}

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut *self.0.borrow_mut() {
            Socket::Plain(s) => s.write(buf),
            Socket::Tls(s) => s.write(buf),
            Socket::Gone => Ok(0),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut *self.0.borrow_mut() {
            Socket::Plain(s) => s.flush(),
            Socket::Tls(s) => s.flush(),
            Socket::Gone => Ok(()),
        }
    }
}

/// A frame from the broker: (type, data).
type Frame = (u32, Vec<u8>);

const RESPONSE: u32 = 0;
const ERROR: u32 = 1;
const MESSAGE: u32 = 2;

struct Client {
    socket: Shared,
    reader: Box<dyn Read>,
    writer: Box<dyn Write>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        tcp.set_nodelay(true).unwrap();
        let socket = Shared(Rc::new(RefCell::new(Socket::Plain(tcp))));
        let mut client = Client {
            reader: Box::new(socket.clone()),
            writer: Box::new(socket.clone()),
            socket,
        };
        client.send_raw(v2::MAGIC_V2);
        client
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
        self.writer.flush().unwrap();
    }

    fn send(&mut self, cmd: &V2) {
        let mut out = BytesMut::new();
        v2::put_command(&mut out, cmd);
        self.send_raw(&out);
    }

    /// The next frame that is not a heartbeat; `None` when the broker closed the connection.
    fn try_frame(&mut self) -> Option<Frame> {
        loop {
            let mut header = [0u8; 8];
            self.reader.read_exact(&mut header).ok()?;
            let size = u32::from_be_bytes(header[..4].try_into().unwrap()) as usize;
            let kind = u32::from_be_bytes(header[4..].try_into().unwrap());
            let mut data = vec![0u8; size - 4];
            self.reader.read_exact(&mut data).ok()?;
            if !(kind == RESPONSE && data == v2::HEARTBEAT) {
                return Some((kind, data));
            }
        }
    }

    fn frame(&mut self) -> Frame {
        self.try_frame().expect("the broker closed the connection")
    }

    fn expect_ok(&mut self) {
        let (kind, data) = self.frame();
        assert_eq!(
            (kind, String::from_utf8_lossy(&data).into_owned()),
            (RESPONSE, "OK".to_owned())
        );
    }

    fn expect_error(&mut self, text: &str) {
        let (kind, data) = self.frame();
        assert_eq!(
            (kind, String::from_utf8_lossy(&data).into_owned()),
            (ERROR, text.to_owned())
        );
    }

    /// After a fatal error: the broker closes (no further frame).
    fn expect_closed(&mut self) {
        assert!(
            self.try_frame().is_none(),
            "expected the connection to close"
        );
    }

    fn identify(&mut self, json: Value) -> Value {
        self.send(&V2::Identify(Bytes::from(json.to_string())));
        let (kind, data) = self.frame();
        assert_eq!(kind, RESPONSE, "{}", String::from_utf8_lossy(&data));
        serde_json::from_slice(&data).unwrap()
    }

    /// Upgrades to TLS as go-nsq does after a response with `tls_v1: true`, and reads `OK`.
    fn upgrade_tls(&mut self, config: Arc<rustls::ClientConfig>) {
        let tcp = match std::mem::replace(&mut *self.socket.0.borrow_mut(), Socket::Gone) {
            Socket::Plain(tcp) => tcp,
            _ => panic!("not a plain socket"),
        };
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let session = rustls::ClientConnection::new(config, name).unwrap();
        *self.socket.0.borrow_mut() = Socket::Tls(Box::new(rustls::StreamOwned::new(session, tcp)));
        self.expect_ok();
    }

    fn upgrade_snappy(&mut self) {
        self.reader = Box::new(snap::read::FrameDecoder::new(self.socket.clone()));
        self.writer = Box::new(snap::write::FrameEncoder::new(self.socket.clone()));
        self.expect_ok();
    }

    fn upgrade_deflate(&mut self, level: u32) {
        self.reader = Box::new(Inflate::new(self.socket.clone()));
        self.writer = Box::new(flate2::write::DeflateEncoder::new(
            self.socket.clone(),
            flate2::Compression::new(level),
        ));
        self.expect_ok();
    }

    fn publish(&mut self, topic: &str, body: &[u8]) {
        self.send(&V2::Pub {
            topic: Name::new(topic),
            body: Bytes::copy_from_slice(body),
        });
        self.expect_ok();
    }

    fn subscribe(&mut self, topic: &str, channel: &str, rdy: u64) {
        self.send(&V2::Sub {
            topic: Name::new(topic),
            channel: Name::new(channel),
        });
        self.expect_ok();
        self.send(&V2::Rdy(rdy));
    }

    /// Receives `count` messages, FINs each, returns their bodies in order of arrival.
    fn receive(&mut self, count: usize) -> Vec<Vec<u8>> {
        let mut bodies = Vec::with_capacity(count);
        while bodies.len() < count {
            let (kind, data) = self.frame();
            assert_eq!(kind, MESSAGE, "{}", String::from_utf8_lossy(&data));
            let id = &data[10..26];
            let mut fin = b"FIN ".to_vec();
            fin.extend_from_slice(id);
            fin.push(b'\n');
            self.send_raw(&fin);
            bodies.push(data[26..].to_vec());
        }
        bodies
    }
}

/// A raw DEFLATE reader that hands out everything inflatable as soon as it arrives (a sync
/// flush ends each of the broker's writes), as Go's and zlib's readers do.
struct Inflate<R> {
    inner: R,
    state: flate2::Decompress,
    input: Vec<u8>,
    output: Vec<u8>,
    at: usize,
}

impl<R: Read> Inflate<R> {
    fn new(inner: R) -> Inflate<R> {
        Inflate {
            inner,
            state: flate2::Decompress::new(false),
            input: Vec::new(),
            output: Vec::new(),
            at: 0,
        }
    }
}

impl<R: Read> Read for Inflate<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut stalled = false;
        while self.at == self.output.len() {
            self.output.clear();
            self.at = 0;
            if self.input.is_empty() || stalled {
                let mut chunk = [0u8; 16 * 1024];
                let n = self.inner.read(&mut chunk)?;
                if n == 0 {
                    return Ok(0);
                }
                self.input.extend_from_slice(&chunk[..n]);
            }
            self.output.reserve(64 * 1024);
            let before = self.state.total_in();
            self.state
                .decompress_vec(&self.input, &mut self.output, flate2::FlushDecompress::Sync)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            let consumed = (self.state.total_in() - before) as usize;
            self.input.drain(..consumed);
            stalled = consumed == 0 && self.output.is_empty();
        }
        let n = buf.len().min(self.output.len() - self.at);
        buf[..n].copy_from_slice(&self.output[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn negotiate(extra: Value) -> Value {
    let mut json = serde_json::json!({
        "client_id": "test",
        "hostname": "test-host",
        "user_agent": "sluice-tests/1.0",
        "feature_negotiation": true,
    });
    for (k, v) in extra.as_object().unwrap() {
        json[k] = v.clone();
    }
    json
}

/// Test data: compressible text or pseudo-random bytes.
fn body(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|i| {
            if seed % 2 == 0 {
                b"sluice compresses this text "[i % 28]
            } else {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// TLS

#[test]
fn tls_upgrade_without_a_client_certificate() {
    let dir = TempDir::new("pki");
    let pki = Pki::new(&dir.0);
    let broker = Broker::start(&pki.tls_flags());
    let mut producer = broker.client();
    let response = producer.identify(negotiate(serde_json::json!({"tls_v1": true})));
    assert_eq!(response["tls_v1"], true);
    assert_eq!(response["snappy"], false);
    producer.upgrade_tls(pki.server_config_ca.clone());
    producer.publish("tls_topic", b"over tls");

    let mut consumer = broker.client();
    consumer.identify(negotiate(serde_json::json!({"tls_v1": true})));
    consumer.upgrade_tls(pki.server_config_ca.clone());
    consumer.subscribe("tls_topic", "ch", 10);
    assert_eq!(consumer.receive(1), vec![b"over tls".to_vec()]);
    assert!(broker.log_has("upgrading connection to TLS"));
}

#[test]
fn tls_offer_follows_the_configuration() {
    let broker = Broker::start(&[]);
    let mut client = broker.client();
    let response = client.identify(negotiate(serde_json::json!({"tls_v1": true})));
    assert_eq!(response["tls_v1"], false, "no certificate: no TLS");
    client.publish("plain_topic", b"still plain");
}

#[test]
fn tls_require_verify_accepts_a_signed_client_certificate_only() {
    let dir = TempDir::new("pki");
    let pki = Pki::new(&dir.0);
    let mut flags = pki.tls_flags();
    flags.push("--tls-client-auth-policy=require-verify".into());
    flags.push(format!("--tls-root-ca-file={}", pki.path("ca.pem")));
    let broker = Broker::start(&flags);

    let mut good = broker.client();
    good.identify(negotiate(serde_json::json!({"tls_v1": true})));
    good.upgrade_tls(pki.client_with_cert.clone());
    good.publish("verified", b"with a certificate");

    // Without a certificate the handshake fails; the broker closes that connection only.
    let mut bad = broker.client();
    bad.identify(negotiate(serde_json::json!({"tls_v1": true})));
    let tcp = match std::mem::replace(&mut *bad.socket.0.borrow_mut(), Socket::Gone) {
        Socket::Plain(tcp) => tcp,
        _ => unreachable!(),
    };
    let session = rustls::ClientConnection::new(
        pki.server_config_ca.clone(),
        ServerName::try_from("127.0.0.1").unwrap(),
    )
    .unwrap();
    let mut tls = rustls::StreamOwned::new(session, tcp);
    let mut byte = [0u8; 1];
    assert!(
        tls.read(&mut byte).is_err() || byte == [0],
        "handshake must fail"
    );

    good.publish("verified", b"others are still served");
}

#[test]
fn tls_required_refuses_plain_commands_with_upstreams_text() {
    let dir = TempDir::new("pki");
    let pki = Pki::new(&dir.0);
    let mut flags = pki.tls_flags();
    flags.push("--tls-required=true".into());
    let broker = Broker::start(&flags);

    let mut plain = broker.client();
    plain.send(&V2::Pub {
        topic: Name::new("t"),
        body: Bytes::from_static(b"x"),
    });
    plain.expect_error("E_INVALID cannot PUB in current state (TLS required)");
    plain.expect_closed();

    // IDENTIFY is allowed without TLS; what follows it is not.
    let mut identified = broker.client();
    let response = identified.identify(negotiate(serde_json::json!({})));
    assert_eq!(response["tls_v1"], false);
    identified.send(&V2::Nop);
    identified.expect_error("E_INVALID cannot NOP in current state (TLS required)");
    identified.expect_closed();

    let mut secure = broker.client();
    secure.identify(negotiate(serde_json::json!({"tls_v1": true})));
    secure.upgrade_tls(pki.server_config_ca.clone());
    secure.publish("t", b"allowed over tls");
}

#[test]
fn tls_required_without_a_certificate_refuses_to_start() {
    let data = TempDir::new("data");
    let out = Command::new(env!("CARGO_BIN_EXE_sluiced"))
        .args(["--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0"])
        .arg(format!("--data-path={}", data.0.display()))
        .arg("--tls-required")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot require TLS client connections without TLS key and cert"),
        "{stderr}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_sluiced"))
        .args(["--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0"])
        .arg(format!("--data-path={}", data.0.display()))
        .args([
            "--tls-cert=/nonexistent/cert.pem",
            "--tls-key=/nonexistent/key.pem",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("failed to build TLS config"), "{stderr}");
}

#[test]
fn broken_tls_handshake_ends_only_that_connection() {
    let dir = TempDir::new("pki");
    let pki = Pki::new(&dir.0);
    let broker = Broker::start(&pki.tls_flags());
    let mut broken = broker.client();
    broken.identify(negotiate(serde_json::json!({"tls_v1": true})));
    // Not a ClientHello: the broker answers in plain, as upstream does, and closes.
    broken.send_raw(b"this is not a TLS handshake\n");
    let (kind, data) = broken.frame();
    assert_eq!(kind, ERROR);
    assert!(
        String::from_utf8_lossy(&data).starts_with("E_IDENTIFY_FAILED IDENTIFY failed "),
        "{}",
        String::from_utf8_lossy(&data)
    );
    broken.expect_closed();

    let mut fine = broker.client();
    fine.identify(negotiate(serde_json::json!({"tls_v1": true})));
    fine.upgrade_tls(pki.server_config_ca.clone());
    fine.publish("after_broken", b"ok");
}

// ---------------------------------------------------------------------------------------------
// Compression

/// Publishes a large message, an MPUB of many small ones and single small ones through a
/// producer, and receives them all through a consumer, both set up by `setup`.
fn round_trip(broker: &Broker, topic: &str, setup: &dyn Fn(&mut Client)) {
    let mut producer = broker.client();
    setup(&mut producer);
    let mut consumer = broker.client();
    setup(&mut consumer);
    consumer.subscribe(topic, "ch", 2500);

    let mut expected = vec![body(900 * 1024, 2), body(700 * 1024, 3)];
    for message in &expected {
        producer.publish(topic, message);
    }
    let small: Vec<Bytes> = (0..1000)
        .map(|i| Bytes::from(format!("small message {i}")))
        .collect();
    producer.send(&V2::Mpub {
        topic: Name::new(topic),
        bodies: small.clone(),
    });
    producer.expect_ok();
    expected.extend(small.iter().map(|b| b.to_vec()));
    for i in 0..200 {
        let message = body(10 + i % 300, i as u64);
        producer.publish(topic, &message);
        expected.push(message);
    }
    let received = consumer.receive(expected.len());
    assert_eq!(received.len(), expected.len());
    assert!(received == expected, "bodies differ after the round trip");
}

#[test]
fn snappy_round_trips_large_and_many_small_messages() {
    let broker = Broker::start(&[]);
    round_trip(&broker, "snappy_topic", &|c| {
        let response = c.identify(negotiate(serde_json::json!({"snappy": true})));
        assert_eq!(response["snappy"], true);
        c.upgrade_snappy();
    });
}

#[test]
fn deflate_round_trips_large_and_many_small_messages() {
    let broker = Broker::start(&["--max-deflate-level=9".to_owned()]);
    round_trip(&broker, "deflate_topic", &|c| {
        let response = c.identify(negotiate(
            serde_json::json!({"deflate": true, "deflate_level": 3}),
        ));
        assert_eq!(
            (
                response["deflate"].clone(),
                response["deflate_level"].clone()
            ),
            (true.into(), 3.into())
        );
        c.upgrade_deflate(3);
    });
}

#[test]
fn snappy_and_deflate_over_tls_round_trip() {
    let dir = TempDir::new("pki");
    let pki = Pki::new(&dir.0);
    let broker = Broker::start(&pki.tls_flags());
    let config = pki.server_config_ca.clone();
    round_trip(&broker, "tls_snappy", &|c| {
        c.identify(negotiate(
            serde_json::json!({"tls_v1": true, "snappy": true}),
        ));
        c.upgrade_tls(config.clone());
        c.upgrade_snappy();
    });
    round_trip(&broker, "tls_deflate", &|c| {
        c.identify(negotiate(
            serde_json::json!({"tls_v1": true, "deflate": true}),
        ));
        c.upgrade_tls(config.clone());
        c.upgrade_deflate(6);
    });
}

#[test]
fn both_compressions_at_once_are_refused() {
    let broker = Broker::start(&[]);
    let mut client = broker.client();
    client.send(&V2::Identify(Bytes::from(
        negotiate(serde_json::json!({"snappy": true, "deflate": true})).to_string(),
    )));
    client.expect_error("E_IDENTIFY_FAILED cannot enable both deflate and snappy compression");
    client.expect_closed();
}

#[test]
fn compression_switched_off_is_not_offered() {
    let broker = Broker::start(&args(&["--snappy=false", "--deflate=false"]));
    let mut client = broker.client();
    let response = client.identify(negotiate(serde_json::json!({"snappy": true})));
    assert_eq!(
        (response["snappy"].clone(), response["deflate"].clone()),
        (false.into(), false.into())
    );
    client.publish("t", b"plain after all");
}

#[test]
fn garbage_after_the_snappy_upgrade_ends_only_that_connection() {
    let broker = Broker::start(&[]);
    let mut bad = broker.client();
    bad.identify(negotiate(serde_json::json!({"snappy": true})));
    bad.upgrade_snappy();
    // Plain bytes where snappy frames must be.
    bad.socket.write_all(b"PUB t\n\x00\x00\x00\x01x").unwrap();
    bad.expect_closed();
    assert!(broker.log_has("snappy"));

    let mut good = broker.client();
    good.identify(negotiate(serde_json::json!({"snappy": true})));
    good.upgrade_snappy();
    good.publish("t", b"fine");
}

#[test]
fn upgraded_subscribers_move_to_their_topics_shard_with_their_layers() {
    let dir = TempDir::new("pki");
    let pki = Pki::new(&dir.0);
    let mut flags = pki.tls_flags();
    flags.push("--cores=2".into());
    let broker = Broker::start(&flags);
    let config = pki.server_config_ca.clone();
    let setups: [&dyn Fn(&mut Client); 3] = [
        &|c| {
            c.identify(negotiate(
                serde_json::json!({"tls_v1": true, "deflate": true}),
            ));
            c.upgrade_tls(config.clone());
            c.upgrade_deflate(6);
        },
        &|c| {
            c.identify(negotiate(serde_json::json!({"snappy": true})));
            c.upgrade_snappy();
        },
        &|c| {
            c.identify(negotiate(serde_json::json!({"tls_v1": true})));
            c.upgrade_tls(config.clone());
        },
    ];
    // Sixteen topics spread over both shards: about half the subscribers move.
    let mut consumers = Vec::new();
    for i in 0..16 {
        let mut consumer = broker.client();
        setups[i % 3](&mut consumer);
        consumer.subscribe(&format!("handoff_{i}"), "ch", 100);
        consumers.push(consumer);
    }
    let mut producer = broker.client();
    setups[0](&mut producer);
    for i in 0..16 {
        for j in 0..20 {
            producer.publish(&format!("handoff_{i}"), format!("{i}:{j}").as_bytes());
        }
    }
    for (i, consumer) in consumers.iter_mut().enumerate() {
        let got = consumer.receive(20);
        let want: Vec<Vec<u8>> = (0..20).map(|j| format!("{i}:{j}").into_bytes()).collect();
        assert_eq!(got, want, "topic handoff_{i}");
        // The moved connection still speaks its layers both ways.
        consumer.send(&V2::Pub {
            topic: Name::new(&format!("handoff_{i}")),
            body: Bytes::from_static(b"from the subscriber"),
        });
        let (kind, data) = consumer.frame();
        let reply = if kind == MESSAGE {
            consumer.frame()
        } else {
            (kind, data)
        };
        assert_eq!(reply, (RESPONSE, b"OK".to_vec()));
    }
}

// ---------------------------------------------------------------------------------------------
// AUTH

/// One query the auth server received.
#[derive(Debug, Clone)]
struct AuthRequest {
    path: String,
    params: Vec<(String, String)>,
}

impl AuthRequest {
    fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A tiny HTTP/1.1 auth server on a thread: `answer` gives (status, body) per request (in
/// order); `None` holds the connection open, unanswered, until [`AuthServer::release`] gives
/// the held ones an answer (or the server stops).
struct AuthServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<AuthRequest>>>,
    release: Arc<Mutex<Option<(u16, String)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn respond(mut stream: &TcpStream, status: u16, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

type Answer = Box<dyn Fn(usize, &AuthRequest) -> Option<(u16, String)> + Send>;

impl AuthServer {
    fn start(answer: Answer) -> AuthServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let release = Arc::new(Mutex::new(None::<(u16, String)>));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopping, released) = (requests.clone(), stop.clone(), release.clone());
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut held: Vec<TcpStream> = Vec::new();
            while !stopping.load(Ordering::Relaxed) && started.elapsed() < 4 * IO_TIMEOUT {
                if let Some((status, body)) = released.lock().unwrap().as_ref() {
                    for stream in held.drain(..) {
                        respond(&stream, *status, body);
                    }
                }
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                let Some(request) = read_request(&stream) else {
                    continue;
                };
                let index = {
                    let mut all = seen.lock().unwrap();
                    all.push(request.clone());
                    all.len() - 1
                };
                match answer(index, &request) {
                    Some((status, body)) => respond(&stream, status, &body),
                    None => held.push(stream),
                }
            }
        });
        AuthServer {
            addr,
            requests,
            release,
            stop,
            thread: Some(thread),
        }
    }

    /// Answers every held request (and later ones answered `None`) with `status` and `body`.
    fn release(&self, status: u16, body: &str) {
        *self.release.lock().unwrap() = Some((status, body.to_owned()));
    }

    fn requests(&self) -> Vec<AuthRequest> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn read_request(stream: &TcpStream) -> Option<AuthRequest> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let target = line.split(' ').nth(1)?.to_owned();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        if header == "\r\n" || header.is_empty() {
            break;
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let params = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    Some(AuthRequest {
        path: path.to_owned(),
        params,
    })
}

fn decode(text: &str) -> String {
    let bytes = text.replace('+', " ").into_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

const GRANT_ALLOWED: &str = r#"{"ttl":3600,"identity":"alice","identity_url":"https://id.example/alice","authorizations":[
    {"topic":"^allowed$","channels":[".*"],"permissions":["publish","subscribe"]},
    {"topic":"^readonly$","channels":["^reader$"],"permissions":["subscribe"]}]}"#;

#[test]
fn auth_grants_and_denies_per_topic_and_asks_upstreams_way() {
    let server = AuthServer::start(Box::new(|_, request| {
        Some(match request.param("secret") {
            Some("good-secret") => (200, GRANT_ALLOWED.to_owned()),
            Some("nothing") => (200, r#"{"ttl":60,"authorizations":[]}"#.to_owned()),
            _ => (403, r#"{"message":"FORBIDDEN"}"#.to_owned()),
        })
    }));
    let broker = Broker::start(&[format!("--auth-http-address={}", server.addr)]);

    let mut client = broker.client();
    let response = client.identify(negotiate(serde_json::json!({})));
    assert_eq!(response["auth_required"], true);
    client.send(&V2::Auth(Bytes::from_static(b"good-secret")));
    let (kind, data) = client.frame();
    assert_eq!(kind, RESPONSE);
    assert_eq!(
        String::from_utf8(data).unwrap(),
        r#"{"identity":"alice","identity_url":"https://id.example/alice","permission_count":2}"#
    );
    client.publish("allowed", b"granted");
    client.send(&V2::Auth(Bytes::from_static(b"again")));
    client.expect_error("E_INVALID AUTH already set");
    client.expect_closed();

    let request = &server.requests()[0];
    assert_eq!(request.path, "/auth");
    assert_eq!(request.param("secret"), Some("good-secret"));
    assert_eq!(request.param("remote_ip"), Some("127.0.0.1"));
    assert_eq!(request.param("tls"), Some("false"));
    assert_eq!(request.param("common_name"), Some(""));

    let mut denied = broker.client();
    denied.send(&V2::Auth(Bytes::from_static(b"good-secret")));
    denied.frame();
    denied.send(&V2::Pub {
        topic: Name::new("readonly"),
        body: Bytes::from_static(b"x"),
    });
    denied.expect_error(r#"E_UNAUTHORIZED AUTH failed for PUB on "readonly" """#);
    denied.expect_closed();

    let mut reader = broker.client();
    reader.send(&V2::Auth(Bytes::from_static(b"good-secret")));
    reader.frame();
    reader.subscribe("readonly", "reader", 1);
    let mut other_channel = broker.client();
    other_channel.send(&V2::Auth(Bytes::from_static(b"good-secret")));
    other_channel.frame();
    other_channel.send(&V2::Sub {
        topic: Name::new("readonly"),
        channel: Name::new("writer"),
    });
    other_channel.expect_error(r#"E_UNAUTHORIZED AUTH failed for SUB on "readonly" "writer""#);

    let mut first = broker.client();
    first.send(&V2::Sub {
        topic: Name::new("allowed"),
        channel: Name::new("c"),
    });
    first.expect_error("E_AUTH_FIRST AUTH required before SUB");
    first.expect_closed();

    let mut wrong = broker.client();
    wrong.send(&V2::Auth(Bytes::from_static(b"wrong")));
    wrong.expect_error("E_AUTH_FAILED AUTH failed");
    wrong.expect_closed();

    let mut empty = broker.client();
    empty.send(&V2::Auth(Bytes::from_static(b"nothing")));
    empty.expect_error("E_UNAUTHORIZED AUTH no authorizations found");
    empty.expect_closed();
}

#[test]
fn auth_pipelined_behind_identify_and_auth_keeps_order() {
    let server = AuthServer::start(Box::new(|_, _| Some((200, GRANT_ALLOWED.to_owned()))));
    let broker = Broker::start(&[format!("--auth-http-address={}", server.addr)]);
    let mut client = broker.client();
    // One write: IDENTIFY, AUTH, PUB; the answers come in order, the PUB after the AUTH answer.
    let mut out = BytesMut::new();
    v2::put_command(
        &mut out,
        &V2::Identify(Bytes::from(negotiate(serde_json::json!({})).to_string())),
    );
    v2::put_command(&mut out, &V2::Auth(Bytes::from_static(b"s")));
    v2::put_command(
        &mut out,
        &V2::Pub {
            topic: Name::new("allowed"),
            body: Bytes::from_static(b"pipelined"),
        },
    );
    client.send_raw(&out);
    let (_, identify) = client.frame();
    assert!(identify.starts_with(b"{\"max_rdy_count\""));
    let (_, auth) = client.frame();
    assert!(auth.starts_with(b"{\"identity\""));
    client.expect_ok();
}

#[test]
fn auth_answers_expire_after_their_ttl_and_are_asked_again() {
    // First answer grants for one second; every later one grants nothing.
    let server = AuthServer::start(Box::new(|index, _| {
        Some(if index == 0 {
            (200, r#"{"ttl":1,"authorizations":[{"topic":".*","channels":[".*"],"permissions":["publish"]}]}"#.to_owned())
        } else {
            (200, r#"{"ttl":60,"authorizations":[]}"#.to_owned())
        })
    }));
    let broker = Broker::start(&[format!("--auth-http-address={}", server.addr)]);
    let mut client = broker.client();
    client.send(&V2::Auth(Bytes::from_static(b"s")));
    client.frame();
    client.publish("t", b"within the ttl");
    assert_eq!(
        server.requests().len(),
        1,
        "a fresh answer is not asked again"
    );
    std::thread::sleep(Duration::from_millis(1100));
    client.send(&V2::Pub {
        topic: Name::new("t"),
        body: Bytes::from_static(b"after the ttl"),
    });
    client.expect_error(r#"E_UNAUTHORIZED AUTH failed for PUB on "t" """#);
    assert_eq!(
        server.requests().len(),
        2,
        "the expired answer was refreshed"
    );
}

#[test]
fn auth_sends_the_client_certificate_common_name_over_tls() {
    let dir = TempDir::new("pki");
    let pki = Pki::new(&dir.0);
    let server = AuthServer::start(Box::new(|_, _| Some((200, GRANT_ALLOWED.to_owned()))));
    let mut flags = pki.tls_flags();
    flags.push("--tls-client-auth-policy=require".into());
    flags.push(format!(
        "--auth-http-address=http://{}/v1/check",
        server.addr
    ));
    let broker = Broker::start(&flags);
    let mut client = broker.client();
    let response = client.identify(negotiate(serde_json::json!({"tls_v1": true})));
    assert_eq!(
        (
            response["tls_v1"].clone(),
            response["auth_required"].clone()
        ),
        (true.into(), true.into())
    );
    client.upgrade_tls(pki.client_with_cert.clone());
    client.send(&V2::Auth(Bytes::from_static(b"tls-secret")));
    client.frame();
    client.publish("allowed", b"x");
    let request = &server.requests()[0];
    assert_eq!(request.path, "/v1/check");
    assert_eq!(request.param("tls"), Some("true"));
    assert_eq!(request.param("common_name"), Some("client-one"));
}

#[test]
fn a_pending_auth_call_does_not_stall_the_shard() {
    let server = AuthServer::start(Box::new(|index, _| {
        (index != 0).then(|| (200, GRANT_ALLOWED.to_owned()))
    }));
    let broker = Broker::start(&[
        format!("--auth-http-address={}", server.addr),
        "--http-client-request-timeout=60s".to_owned(),
        "--cores=1".to_owned(),
    ]);
    let mut waiting = broker.client();
    waiting.send(&V2::Auth(Bytes::from_static(b"s")));
    // While that AUTH waits for its answer (held until the end), the only shard serves
    // another client completely; a blocked shard would never answer it.
    let mut other = broker.client();
    let response = other.identify(negotiate(serde_json::json!({})));
    assert_eq!(response["auth_required"], true);
    other.send(&V2::Auth(Bytes::from_static(b"s")));
    let (kind, _) = other.frame();
    assert_eq!(kind, RESPONSE);
    other.publish("allowed", b"served meanwhile");
    server.release(500, "{}");
    waiting.expect_error("E_AUTH_FAILED AUTH failed");
    waiting.expect_closed();
    assert!(broker.log_has("got response 500"));
}

#[test]
fn a_silent_auth_server_times_out_with_auth_failed() {
    let server = AuthServer::start(Box::new(|_, _| None));
    let broker = Broker::start(&[
        format!("--auth-http-address={}", server.addr),
        "--http-client-request-timeout=300ms".to_owned(),
    ]);
    let mut client = broker.client();
    client.send(&V2::Auth(Bytes::from_static(b"s")));
    client.expect_error("E_AUTH_FAILED AUTH failed");
    client.expect_closed();
    assert!(broker.log_has("timed out"));
    let refused = Broker::start(&["--auth-http-address=127.0.0.1:1".to_owned()]);
    let mut unreachable = refused.client();
    unreachable.send(&V2::Auth(Bytes::from_static(b"s")));
    unreachable.expect_error("E_AUTH_FAILED AUTH failed");
}

// ---------------------------------------------------------------------------------------------
// HTTPS

/// One `GET path` with `Connection: close`; the whole answer.
fn http_get(stream: &mut dyn ReadWrite, path: &str) -> String {
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    stream.flush().unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn https_get(addr: SocketAddr, config: Arc<rustls::ClientConfig>, path: &str) -> String {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let session =
        rustls::ClientConnection::new(config, ServerName::try_from("127.0.0.1").unwrap()).unwrap();
    http_get(&mut rustls::StreamOwned::new(session, tcp), path)
}

fn plain_get(addr: SocketAddr, path: &str) -> String {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    http_get(&mut tcp, path)
}

#[test]
fn https_serves_the_http_api_over_tls() {
    let dir = TempDir::new("pki");
    let pki = Pki::new(&dir.0);
    let mut flags = pki.tls_flags();
    flags.push("--cores=2".into());
    let broker = Broker::start(&flags);
    let https = broker.listening("HTTPS").expect("an HTTPS listener");
    let http = broker.listening("HTTP").unwrap();
    let answer = https_get(https, pki.server_config_ca.clone(), "/ping");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nOK"), "{answer}");
    // Without --tls-required plain HTTP stays open.
    assert!(plain_get(http, "/ping").starts_with("HTTP/1.1 200 OK"));
    // A client that does not speak TLS to the HTTPS port is dropped; the port keeps serving.
    let _ = plain_get(https, "/ping");
    let answer = https_get(https, pki.server_config_ca.clone(), "/info");
    assert!(answer.contains("\"version\":\"1.3.0\""), "{answer}");
}

#[test]
fn https_is_off_without_a_certificate() {
    let broker = Broker::start(&[]);
    // Everything logged at start-up is in before a client is served.
    broker.client().identify(negotiate(serde_json::json!({})));
    assert!(!broker.log_has("HTTPS"));
}

#[test]
fn tls_required_answers_plain_http_with_403() {
    let dir = TempDir::new("pki");
    let pki = Pki::new(&dir.0);
    let mut flags = pki.tls_flags();
    flags.push("--tls-required=true".into());
    let broker = Broker::start(&flags);
    let https = broker.listening("HTTPS").unwrap();
    let http = broker.listening("HTTP").unwrap();
    let answer = plain_get(http, "/ping");
    assert!(answer.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{answer}");
    assert!(
        answer.contains("X-Nsq-Content-Type: nsq; version=1.0\r\n"),
        "{answer}"
    );
    let body = format!(
        "{{\"message\": \"TLS_REQUIRED\", \"https_port\": {}}}",
        https.port()
    );
    assert!(answer.ends_with(&body), "{answer}");
    assert!(https_get(https, pki.server_config_ca.clone(), "/ping").ends_with("OK"));

    // tcp-https: TCP needs TLS, plain HTTP does not.
    let mut flags = pki.tls_flags();
    flags.push("--tls-required=tcp-https".into());
    let broker = Broker::start(&flags);
    let http = broker.listening("HTTP").unwrap();
    assert!(plain_get(http, "/ping").starts_with("HTTP/1.1 200 OK"));
    let mut plain = broker.client();
    plain.send(&V2::Nop);
    plain.expect_error("E_INVALID cannot NOP in current state (TLS required)");
}

#[test]
fn auth_state_moves_with_a_subscriber_to_its_topics_shard() {
    let server = AuthServer::start(Box::new(|_, _| {
        Some((
            200,
            r#"{"ttl":3600,"authorizations":[{"topic":"^moved_","channels":[".*"],"permissions":["publish","subscribe"]}]}"#.to_owned(),
        ))
    }));
    let broker = Broker::start(&[
        format!("--auth-http-address={}", server.addr),
        "--cores=2".to_owned(),
    ]);
    // Eight topics over two shards: some subscribers move, and must stay authorized there.
    for i in 0..8 {
        let topic = format!("moved_{i}");
        let mut consumer = broker.client();
        consumer.identify(negotiate(serde_json::json!({"deflate": true})));
        consumer.upgrade_deflate(6);
        consumer.send(&V2::Auth(Bytes::from_static(b"s")));
        let (kind, _) = consumer.frame();
        assert_eq!(kind, RESPONSE);
        consumer.subscribe(&topic, "ch", 10);
        consumer.send(&V2::Pub {
            topic: Name::new(&topic),
            body: Bytes::from_static(b"from an authorized subscriber"),
        });
        // The OK and the delivery of that message, in either order.
        let mut frames = [consumer.frame(), consumer.frame()];
        frames.sort_by_key(|f| f.0);
        assert_eq!(frames[0], (RESPONSE, b"OK".to_vec()));
        assert_eq!(frames[1].0, MESSAGE);
        assert!(frames[1].1.ends_with(b"from an authorized subscriber"));
        consumer.send(&V2::Pub {
            topic: Name::new("elsewhere"),
            body: Bytes::from_static(b"x"),
        });
        consumer.expect_error(r#"E_UNAUTHORIZED AUTH failed for PUB on "elsewhere" """#);
    }
    assert_eq!(
        server.requests().len(),
        8,
        "one query per AUTH, none after the moves"
    );
}
