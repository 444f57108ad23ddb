//! Bad input on every command and every route gets upstream's error, and never takes the
//! service down.
//!
//! Method: each TCP case opens a connection, sends one bad input and expects the exact error
//! reply (upstream's texts from `lookup_protocol_v1.go`) and a close; each HTTP case expects
//! upstream's status and `{"message":...}`. A seeded stream of random bytes is then thrown at
//! both ports. After everything, the service still answers `/ping` and registers brokers.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{http, start, Broker, Daemon, REPLY_TIMEOUT};

const BODY: &[u8] =
    br#"{"broadcast_address":"b","hostname":"b","http_port":2,"tcp_port":1,"version":"1.3.0"}"#;

fn identify_bytes(body: &[u8]) -> Vec<u8> {
    let mut bytes = b"IDENTIFY\n".to_vec();
    bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
    bytes.extend_from_slice(body);
    bytes
}

/// Sends `before` (answered as expected), then `bad`, and expects `error` and a close.
fn expect_error(lookupd: &Daemon, identified: bool, bad: &[u8], error: &str) {
    let mut broker = Broker::connect(lookupd);
    if identified {
        broker.identify("b", 2);
    }
    broker.send_raw(bad);
    let reply = broker.reply();
    assert_eq!(
        String::from_utf8_lossy(&reply),
        error,
        "for {:?}",
        String::from_utf8_lossy(bad)
    );
    broker.expect_closed();
}

fn assert_alive(lookupd: &Daemon) {
    assert_eq!(http(lookupd, "GET", "/ping").body, b"OK");
    let mut broker = Broker::identified(lookupd, "still-here", 4151);
    broker.register("alive", None);
    assert_eq!(common::lookup_hosts(lookupd, "alive"), ["still-here"]);
}

#[test]
fn every_command_refuses_bad_input_with_upstreams_error() {
    let lookupd = start(&[]);
    let cases: &[(bool, &[u8], &str)] = &[
        (false, b"FOO bar\n", "E_INVALID invalid command FOO"),
        (false, b"\n", "E_INVALID invalid command "),
        (false, b"ping\n", "E_INVALID invalid command ping"),
        (false, b"REGISTER t\n", "E_INVALID client must IDENTIFY"),
        (false, b"UNREGISTER t c\n", "E_INVALID client must IDENTIFY"),
        (
            false,
            b"REGISTER bad$topic\n",
            "E_INVALID client must IDENTIFY",
        ),
        (
            true,
            b"REGISTER\n",
            "E_INVALID REGISTER insufficient number of params",
        ),
        (
            true,
            b"UNREGISTER\n",
            "E_INVALID UNREGISTER insufficient number of params",
        ),
        (
            true,
            b"REGISTER bad$topic\n",
            "E_BAD_TOPIC REGISTER topic name 'bad$topic' is not valid",
        ),
        (
            true,
            b"UNREGISTER t bad*c\n",
            "E_BAD_CHANNEL UNREGISTER channel name 'bad*c' is not valid",
        ),
        (
            true,
            b"REGISTER  t\n",
            "E_BAD_TOPIC REGISTER topic name '' is not valid",
        ),
        (
            true,
            &identify_bytes(BODY),
            "E_INVALID cannot IDENTIFY again",
        ),
        (
            false,
            &identify_bytes(b"not json"),
            "E_BAD_BODY IDENTIFY failed to decode JSON body",
        ),
        (
            false,
            &identify_bytes(b"[1,2]"),
            "E_BAD_BODY IDENTIFY failed to decode JSON body",
        ),
        (
            false,
            &identify_bytes(br#"{"tcp_port":"1"}"#),
            "E_BAD_BODY IDENTIFY failed to decode JSON body",
        ),
        (
            false,
            &identify_bytes(b""),
            "E_BAD_BODY IDENTIFY failed to decode JSON body",
        ),
        (
            false,
            &identify_bytes(br#"{"broadcast_address":"b"}"#),
            "E_BAD_BODY IDENTIFY missing fields",
        ),
        (
            false,
            &identify_bytes(b"null"),
            "E_BAD_BODY IDENTIFY missing fields",
        ),
        (
            false,
            b"IDENTIFY\n\xff\xff\xff\xfe",
            "E_BAD_BODY IDENTIFY invalid body size -2",
        ),
        (
            false,
            b"IDENTIFY\n\x7f\xff\xff\xff",
            "E_BAD_BODY IDENTIFY body too big 2147483647 > 5242880",
        ),
    ];
    for (identified, bad, error) in cases {
        expect_error(&lookupd, *identified, bad, error);
    }
    let long_line = vec![b'A'; 2000];
    let mut broker = Broker::connect(&lookupd);
    broker.send_raw(&long_line);
    let reply = broker.reply();
    assert!(reply.starts_with(b"E_INVALID line too long"), "{reply:?}");
    broker.expect_closed();
    assert_alive(&lookupd);
}

#[test]
fn a_wrong_magic_is_bad_protocol() {
    let lookupd = start(&[]);
    for magic in [&b"  V2"[..], b"GET ", b"\x00\x00\x00\x00"] {
        let mut stream = TcpStream::connect(lookupd.tcp_addr()).unwrap();
        stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        stream.write_all(magic).unwrap();
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).unwrap();
        assert_eq!(reply, b"\x00\x00\x00\x0eE_BAD_PROTOCOL");
    }
    assert_alive(&lookupd);
}

#[test]
fn a_connection_cut_mid_identify_is_answered_as_upstream() {
    let lookupd = start(&[]);
    for (partial, error) in [
        (
            &b"IDENTIFY\n\x00\x00"[..],
            "E_BAD_BODY IDENTIFY failed to read body size",
        ),
        (
            b"IDENTIFY\n\x00\x00\x00\x10{\"a\"",
            "E_BAD_BODY IDENTIFY failed to read body",
        ),
    ] {
        let mut broker = Broker::connect(&lookupd);
        broker.send_raw(partial);
        broker.shutdown_write();
        assert_eq!(String::from_utf8_lossy(&broker.reply()), error);
        broker.expect_closed();
    }
    // A partial line or magic closes silently.
    let mut stream = TcpStream::connect(lookupd.tcp_addr()).unwrap();
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    stream.write_all(b"  V1PIN").unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    assert_alive(&lookupd);
}

#[test]
fn every_route_refuses_bad_parameters_with_upstreams_error() {
    let lookupd = start(&[]);
    let cases: &[(&str, &str, u16, &str)] = &[
        ("GET", "/lookup", 400, "MISSING_ARG_TOPIC"),
        ("GET", "/lookup?topic=", 404, "TOPIC_NOT_FOUND"),
        ("GET", "/lookup?topic=%zz", 400, "INVALID_REQUEST"),
        ("GET", "/lookup?topic=a;b", 400, "INVALID_REQUEST"),
        ("GET", "/channels", 400, "MISSING_ARG_TOPIC"),
        ("GET", "/channels?topic=%4", 400, "INVALID_REQUEST"),
        ("POST", "/topic/create", 400, "MISSING_ARG_TOPIC"),
        ("POST", "/topic/create?topic=", 400, "INVALID_ARG_TOPIC"),
        (
            "POST",
            "/topic/create?topic=a%20b",
            400,
            "INVALID_ARG_TOPIC",
        ),
        ("POST", "/topic/create?topic=%ff", 400, "INVALID_ARG_TOPIC"),
        ("POST", "/topic/delete", 400, "MISSING_ARG_TOPIC"),
        ("POST", "/topic/delete?topic=%", 400, "INVALID_REQUEST"),
        (
            "POST",
            "/channel/create?channel=c",
            400,
            "MISSING_ARG_TOPIC",
        ),
        (
            "POST",
            "/channel/create?topic=t",
            400,
            "MISSING_ARG_CHANNEL",
        ),
        (
            "POST",
            "/channel/create?topic=t&channel=b*c",
            400,
            "INVALID_ARG_CHANNEL",
        ),
        (
            "POST",
            "/channel/delete?topic=b$t&channel=c",
            400,
            "INVALID_ARG_TOPIC",
        ),
        (
            "POST",
            "/channel/delete?topic=t&channel=c",
            404,
            "CHANNEL_NOT_FOUND",
        ),
        ("POST", "/topic/tombstone", 400, "MISSING_ARG_TOPIC"),
        ("POST", "/topic/tombstone?topic=t", 400, "MISSING_ARG_NODE"),
        (
            "POST",
            "/topic/tombstone?topic=t&node=%g1",
            400,
            "INVALID_REQUEST",
        ),
        (
            "GET",
            "/topic/tombstone?topic=t&node=n",
            405,
            "METHOD_NOT_ALLOWED",
        ),
        ("DELETE", "/lookup?topic=t", 405, "METHOD_NOT_ALLOWED"),
        ("HEAD", "/nodes", 405, ""),
        ("GET", "/nope", 404, "NOT_FOUND"),
        ("POST", "/", 404, "NOT_FOUND"),
        ("GET", "/debug/pprof/heap", 404, "NOT_FOUND"),
    ];
    for (method, path, status, message) in cases {
        let reply = http(&lookupd, method, path);
        assert_eq!(reply.status, *status, "{method} {path}");
        if !message.is_empty() {
            assert_eq!(reply.message(), *message, "{method} {path}");
        }
    }
    let allowed = http(&lookupd, "OPTIONS", "/topic/create");
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.response.header("Allow"), Some("POST, OPTIONS"));
    let moved = http(&lookupd, "GET", "/LOOKUP/?topic=x");
    assert_eq!(moved.status, 301);
    assert_eq!(moved.response.header("Location"), Some("/lookup?topic=x"));
    assert_eq!(http(&lookupd, "POST", "/topic/create/?topic=x").status, 307);
    assert_alive(&lookupd);
}

#[test]
fn malformed_http_gets_gos_400_and_the_service_stays_up() {
    let lookupd = start(&[]);
    let go_400: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
Connection: close\r\n\r\n400 Bad Request";
    for garbage in [
        &b"  V1PING\n"[..],
        b"\r\n",
        b"GET /ping\r\n\r\n",
        b"GET /ping HTTP/9.9\r\n\r\n",
        b"G\x01T /ping HTTP/1.1\r\n\r\n",
    ] {
        let reply =
            sluice_tests::http::raw_exchange(lookupd.http_addr(), garbage, REPLY_TIMEOUT).unwrap();
        assert_eq!(reply, go_400, "for {:?}", String::from_utf8_lossy(garbage));
    }
    assert_alive(&lookupd);
}

/// A small deterministic generator (xorshift64*), so a failure replays with the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = (self.next() as usize) % max;
        (0..len).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn random_bytes_on_both_ports_never_take_it_down() {
    let lookupd = start(&[]);
    let seed = 0x5eed_1007_u64;
    let mut rng = Rng(seed);
    let prefixes: [&[u8]; 5] = [b"", b"  V1", b"  V1IDENTIFY\n", b"  V1REGISTER ", b"GET /"];
    for round in 0..200 {
        let prefix = prefixes[round % prefixes.len()];
        let mut bytes = prefix.to_vec();
        bytes.extend(rng.bytes(600));
        let addr = match round % 2 {
            0 => lookupd.tcp_addr(),
            _ => lookupd.http_addr(),
        };
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        // The server may close before reading everything; a reset is fine.
        let _ = stream.write_all(&bytes);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink);
    }
    assert_alive(&lookupd);
    assert!(
        !lookupd.log_tail().contains("panicked"),
        "seed {seed:#x}:\n{}",
        lookupd.log_tail()
    );
}
