//! The golden nsqd v1.3.0 TCP transcripts, replayed against the codecs alone.
//!
//! Goal: every error frame upstream derives from the bytes a client sent (magic, command
//! parsing, IDENTIFY JSON and negotiation) is reproduced byte for byte, and no other error is
//! invented; IDENTIFY responses match byte for byte. Method: each scenario's sent bytes go
//! through a minimal model of a connection (magic check, `CommandDecoder`, `from_json` +
//! `negotiate` + `IdentifyResponse`). At each `expect` step, every error frame upstream sent
//! must be either the one the model produced or a connection-state error the model cannot
//! know (`cannot X in current state`, FIN/REQ/TOUCH of an id not in flight, AUTH disabled);
//! every error the model produced must be expected; and every JSON response must match.
//!
//! The transcripts live in the shared directory beside the repository; without it the test
//! prints a notice and passes.

use bytes::BytesMut;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

use sluice_proto::identify::{negotiate, IdentifyRequest, IdentifyResponse, ServerFeatures};
use sluice_proto::v2::{put_error, put_response, Command, CommandDecoder, MAGIC_V2};
use sluice_proto::{ErrorCode, Limits, ProtoError};

const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/golden/tcp_v2.jsonl"
);

/// Errors that depend on connection state or on other connections, which the codecs cannot
/// produce.
const STATE_ERRORS: [&str; 5] = [
    "E_INVALID cannot ",
    "E_FIN_FAILED ",
    "E_REQ_FAILED ",
    "E_TOUCH_FAILED ",
    "E_AUTH_DISABLED ",
];

/// `"\x0a"`-escaped golden text back to bytes (see the golden README).
fn unescape(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'x') {
            let hex = std::str::from_utf8(&bytes[i + 2..i + 4]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// Limits and offered features from nsqd's flags (only the ones the transcripts use).
fn config(flags: &[Value]) -> (Limits, ServerFeatures) {
    let mut limits = Limits::default();
    // nsqd v1.3.0 offers snappy and deflate by default and has no TLS or auth configured.
    let features = ServerFeatures {
        tls: false,
        snappy: true,
        deflate: true,
        auth_required: false,
    };
    for flag in flags {
        let flag = flag.as_str().unwrap();
        let (name, value) = flag.split_once('=').unwrap_or((flag, "true"));
        match name {
            "--max-msg-size" => limits.max_msg_size = value.parse().unwrap(),
            "--max-body-size" => limits.max_body_size = value.parse().unwrap(),
            "--max-req-timeout" => {
                let secs = value.strip_suffix('s').unwrap().parse().unwrap();
                limits.max_req_timeout = Duration::from_secs(secs);
            }
            "--snappy" | "--deflate" => assert_eq!(value, "true"),
            other => panic!("flag {other} not modelled"),
        }
    }
    (limits, features)
}

/// What the codecs alone say about one connection.
struct Conn {
    buf: BytesMut,
    magic_checked: bool,
    decoder: CommandDecoder,
    /// Error and JSON response frames produced and not yet matched against an `expect`.
    errors: Vec<Vec<u8>>,
    responses: Vec<Vec<u8>>,
    closed: bool,
}

impl Conn {
    fn new(limits: &Limits) -> Conn {
        Conn {
            buf: BytesMut::new(),
            magic_checked: false,
            decoder: CommandDecoder::new(limits.clone()),
            errors: Vec::new(),
            responses: Vec::new(),
            closed: false,
        }
    }

    fn fail(&mut self, err: &ProtoError) {
        let mut frame = BytesMut::new();
        put_error(&mut frame, err);
        self.errors.push(frame.to_vec());
        self.closed = true;
    }

    fn receive(&mut self, bytes: &[u8], limits: &Limits, features: &ServerFeatures) {
        if self.closed {
            return;
        }
        self.buf.extend_from_slice(bytes);
        if !self.magic_checked {
            if self.buf.len() < MAGIC_V2.len() {
                return;
            }
            let magic = self.buf.split_to(MAGIC_V2.len());
            self.magic_checked = true;
            if magic[..] != MAGIC_V2[..] {
                return self.fail(&ProtoError::bare(ErrorCode::BadProtocol));
            }
        }
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(None) => return,
                Ok(Some(Command::Identify(body))) => self.identify(&body, limits, features),
                Ok(Some(_)) => {}
                Err(err) => return self.fail(&err),
            }
            if self.closed {
                return;
            }
        }
    }

    fn identify(&mut self, body: &[u8], limits: &Limits, features: &ServerFeatures) {
        let negotiated =
            IdentifyRequest::from_json(body).and_then(|req| negotiate(&req, limits, features));
        match negotiated {
            Err(err) => self.fail(&err),
            Ok(n) if n.feature_negotiation => {
                let json = IdentifyResponse::new(&n, limits, features, "1.3.0").to_json();
                let mut frame = BytesMut::new();
                put_response(&mut frame, &json);
                self.responses.push(frame.to_vec());
            }
            Ok(_) => {}
        }
    }
}

/// How many frames the model reproduced.
#[derive(Default)]
struct Matched {
    errors: usize,
    responses: usize,
}

/// Checks one `expect` step against what the model produced.
fn check_expect(scenario: &str, step: &Value, conn: &mut Conn, matched: &mut Matched) {
    for frame in step["expect"].as_array().unwrap() {
        let raw = unescape(frame["raw"].as_str().unwrap_or_default());
        let data = frame["data"].as_str().unwrap_or_default();
        match frame["type"].as_str().unwrap() {
            "error" => {
                if conn.errors.first() == Some(&raw) {
                    conn.errors.remove(0);
                    matched.errors += 1;
                } else {
                    assert!(
                        STATE_ERRORS.iter().any(|prefix| data.starts_with(prefix)),
                        "{scenario}: upstream sent {data:?}, the codecs produced {:?}",
                        conn.errors
                            .first()
                            .map(|e| String::from_utf8_lossy(e).into_owned())
                    );
                }
            }
            "response" if data.starts_with('{') && step.get("inflated").is_none() => {
                assert_eq!(
                    conn.responses
                        .first()
                        .map(|r| String::from_utf8_lossy(r).into_owned()),
                    Some(String::from_utf8_lossy(&raw).into_owned()),
                    "{scenario}: IDENTIFY response"
                );
                conn.responses.remove(0);
                matched.responses += 1;
            }
            _ => {}
        }
    }
    assert!(
        conn.errors.is_empty(),
        "{scenario}: the codecs produced {:?}, upstream did not",
        conn.errors
            .iter()
            .map(|e| String::from_utf8_lossy(e).into_owned())
            .collect::<Vec<_>>()
    );
}

#[test]
fn golden_tcp_v2_errors_and_identify_responses() {
    let Ok(text) = std::fs::read_to_string(GOLDEN) else {
        println!("notice: {GOLDEN} is absent; golden replay skipped");
        return;
    };
    let mut scenarios = 0;
    let mut matched = Matched::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let scenario: Value = serde_json::from_str(line).unwrap();
        let name = scenario["name"].as_str().unwrap();
        let (limits, features) = config(scenario["flags"].as_array().unwrap());
        let mut conns: HashMap<String, Conn> = HashMap::new();
        for step in scenario["steps"].as_array().unwrap() {
            let conn_name = step["conn"].as_str().unwrap_or("default").to_owned();
            let conn = conns.entry(conn_name).or_insert_with(|| Conn::new(&limits));
            if let Some(send) = step["send"].as_str() {
                conn.receive(&unescape(send), &limits, &features);
            } else if step.get("expect").is_some() {
                check_expect(name, step, conn, &mut matched);
            }
        }
        for conn in conns.values() {
            assert!(
                conn.errors.is_empty(),
                "{name}: unexpected {:?}",
                conn.errors
            );
            assert!(conn.responses.is_empty(), "{name}: unsent responses");
        }
        scenarios += 1;
    }
    println!(
        "{scenarios} scenarios replayed, {} error frames and {} IDENTIFY responses reproduced",
        matched.errors, matched.responses
    );
    // Guards against a transcript change that would leave nothing to compare.
    assert!(scenarios >= 70, "only {scenarios} scenarios");
    assert!(
        matched.errors >= 38,
        "only {} error frames reproduced",
        matched.errors
    );
    assert!(
        matched.responses >= 5,
        "only {} responses",
        matched.responses
    );
}
