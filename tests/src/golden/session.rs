//! Executes golden TCP steps against one running daemon: named connections opened at first use,
//! `send` (with `fill`), `shutdown_write`, `expect` (frames, `close`, `switch_to`), and `http`
//! steps with `checks`. Shared by the TCP scenario files and the `setup` of HTTP lines.
//!
//! `close: false` with no frames asserts "no reply": the connection is watched for
//! [`QUIET_WINDOW`] and must neither send nor close. After listed frames, `close: false` only
//! requires that nothing more has already arrived, and not even that when the connection's next
//! step is another `expect` (the server may legitimately have sent those frames already, as
//! nsqd's first compressed `OK` after a deflate upgrade); a late extra frame surfaces at the
//! connection's next `expect`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::escape::decode;
use crate::frame::{Frame, Framing};
use crate::golden::compare::{compare_frame, run_checks};
use crate::golden::conn::{Next, ReplayConn};
use crate::golden::model::{ExpectedFrame, Step};

/// Wait for listed frames when the step names no `timeout_ms` (golden README).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(3000);
/// How long "no reply" is watched for.
pub const QUIET_WINDOW: Duration = Duration::from_millis(300);
/// Bound on any HTTP step (upstream's `/debug/pprof/profile?seconds=1` takes a second).
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Name of the connection steps use when they name none.
pub const DEFAULT_CONN: &str = "default";

/// Named connections to one daemon.
#[derive(Debug)]
pub struct Session {
    tcp: SocketAddr,
    http: SocketAddr,
    framing: Framing,
    conns: BTreeMap<String, ReplayConn>,
}

impl Session {
    /// A session with no connections yet.
    pub fn new(tcp: SocketAddr, http: SocketAddr, framing: Framing) -> Session {
        Session {
            tcp,
            http,
            framing,
            conns: BTreeMap::new(),
        }
    }

    /// Runs steps in order, stopping at the first failure (later steps would only add noise).
    ///
    /// # Errors
    /// `step N (what on conn X): difference`.
    pub fn run_steps(&mut self, steps: &[Step]) -> Result<(), String> {
        for (index, step) in steps.iter().enumerate() {
            let followed_by_expect = next_on_same_conn(steps, index).is_some_and(|next| {
                next.send.is_none() && !next.shutdown_write && next.expect.is_some()
            });
            self.run_step(step, followed_by_expect)
                .map_err(|e| format!("step {index} ({}): {e}", describe_step(step)))?;
        }
        Ok(())
    }

    /// Runs one step; `followed_by_expect` says the connection's next step only reads.
    ///
    /// # Errors
    /// The step's expectation is not met, or the step is malformed.
    pub fn run_step(&mut self, step: &Step, followed_by_expect: bool) -> Result<(), String> {
        if let Some(request) = &step.http {
            let body = decode(&request.body)?;
            let response = crate::http::request(
                self.http,
                &request.method,
                &request.path,
                &body,
                HTTP_TIMEOUT,
            )?;
            if let Some(status) = step.status {
                if response.status != status {
                    return Err(format!(
                        "status {status} expected, got {} with body \"{}\"",
                        response.status,
                        crate::escape::encode_short(&response.body, 400)
                    ));
                }
            }
            return run_checks(&step.checks, &response.body);
        }
        let name = step.conn.as_deref().unwrap_or(DEFAULT_CONN).to_owned();
        let conn = self.conn(&name)?;
        if let Some(text) = &step.send {
            let bytes = apply_fills(decode(text)?, step, conn.last_message_id())?;
            conn.send(&bytes)?;
        }
        if step.shutdown_write {
            conn.shutdown_write()?;
        }
        if let Some(expected) = &step.expect {
            expect_frames(conn, step, expected, followed_by_expect)?;
        }
        Ok(())
    }

    fn conn(&mut self, name: &str) -> Result<&mut ReplayConn, String> {
        if !self.conns.contains_key(name) {
            let conn = ReplayConn::connect(self.tcp, self.framing)?;
            self.conns.insert(name.to_owned(), conn);
        }
        self.conns
            .get_mut(name)
            .ok_or_else(|| format!("connection {name} vanished"))
    }
}

/// The next TCP step (not `http`) on the same connection as `steps[index]`.
fn next_on_same_conn(steps: &[Step], index: usize) -> Option<&Step> {
    let conn = steps.get(index)?.conn.as_deref().unwrap_or(DEFAULT_CONN);
    steps
        .get(index + 1..)?
        .iter()
        .filter(|s| s.http.is_none())
        .find(|s| s.conn.as_deref().unwrap_or(DEFAULT_CONN) == conn)
}

fn describe_step(step: &Step) -> String {
    let conn = step.conn.as_deref().unwrap_or(DEFAULT_CONN);
    if let Some(request) = &step.http {
        format!("http {} {}", request.method, request.path)
    } else if let Some(text) = &step.send {
        format!(
            "send \"{}\" on {conn}",
            crate::escape::encode_short(text.as_bytes(), 80)
        )
    } else if step.shutdown_write {
        format!("shutdown_write on {conn}")
    } else {
        let frames = step.expect.as_ref().map_or(0, Vec::len);
        let close = if step.close == Some(true) {
            ", then close"
        } else {
            ""
        };
        format!("expect {frames} frame(s){close} on {conn}")
    }
}

/// Overwrites `fill` ranges of the bytes to send with the last message id.
///
/// # Errors
/// No message received yet, an unknown source, or a range outside the bytes.
pub fn apply_fills(
    mut bytes: Vec<u8>,
    step: &Step,
    last_id: Option<[u8; 16]>,
) -> Result<Vec<u8>, String> {
    for fill in &step.fill {
        if fill.from != "last_message_id" {
            return Err(format!("unknown fill source {:?}", fill.from));
        }
        let id = last_id.ok_or("fill needs a message id, but no message frame was received yet")?;
        let source = id
            .get(..fill.len)
            .ok_or_else(|| format!("fill length {} exceeds the 16-byte id", fill.len))?;
        bytes
            .get_mut(fill.at..fill.at + fill.len)
            .ok_or_else(|| format!("fill range {}+{} outside the send bytes", fill.at, fill.len))?
            .copy_from_slice(source);
    }
    Ok(bytes)
}

fn expect_frames(
    conn: &mut ReplayConn,
    step: &Step,
    expected: &[ExpectedFrame],
    followed_by_expect: bool,
) -> Result<(), String> {
    let timeout = step
        .timeout_ms
        .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
    let deadline = Instant::now() + timeout;
    let mut got: Vec<Frame> = Vec::new();
    let mut problems = Vec::new();
    for (index, want) in expected.iter().enumerate() {
        let frame = match conn.next(deadline)? {
            Next::Frame(frame) => frame,
            Next::Closed(how) => {
                return Err(format!(
                    "expected {} frame(s), the server closed the connection ({how}) after {}{}",
                    expected.len(),
                    got.len(),
                    list_frames(&got)
                ))
            }
            Next::TimedOut => {
                return Err(format!(
                    "expected {} frame(s), got {} within {timeout:?}{}; next expected: raw \"{}\"",
                    expected.len(),
                    got.len(),
                    list_frames(&got),
                    want.raw
                ))
            }
        };
        if let Err(problem) = compare_frame(index, want, &frame, &step.variable) {
            problems.push(problem);
        }
        got.push(frame);
    }
    if !problems.is_empty() {
        return Err(problems.join("\n    "));
    }
    match step.switch_to.as_deref() {
        None => {}
        Some("deflate") => conn.switch_to_deflate()?,
        Some(other) => return Err(format!("unsupported switch_to {other:?}")),
    }
    if step.close == Some(true) {
        expect_close(conn, timeout)
    } else if expected.is_empty() {
        expect_quiet(conn, QUIET_WINDOW)
    } else if followed_by_expect {
        Ok(())
    } else {
        expect_quiet(conn, Duration::ZERO)
    }
}

fn list_frames(frames: &[Frame]) -> String {
    frames
        .iter()
        .map(|f| {
            format!(
                "\n      got: {} raw \"{}\"",
                f.describe(),
                crate::escape::encode_short(&f.raw, 300)
            )
        })
        .collect()
}

/// The server must close (FIN or RST) within `timeout`, sending nothing more.
fn expect_close(conn: &mut ReplayConn, timeout: Duration) -> Result<(), String> {
    match conn.next(Instant::now() + timeout)? {
        Next::Closed(_) => Ok(()),
        Next::TimedOut if !conn.buffered().is_empty() => Err(format!(
            "expected the server to close; it sent a partial frame \"{}\" and stayed open",
            crate::escape::encode_short(conn.buffered(), 300)
        )),
        Next::TimedOut => Err(format!(
            "expected the server to close the connection; still open after {timeout:?}"
        )),
        Next::Frame(frame) => Err(format!(
            "expected the server to close; it sent another frame: {} raw \"{}\"",
            frame.describe(),
            crate::escape::encode_short(&frame.raw, 300)
        )),
    }
}

/// Nothing more may arrive within `window`, and the connection must stay open.
fn expect_quiet(conn: &mut ReplayConn, window: Duration) -> Result<(), String> {
    match conn.next(Instant::now() + window)? {
        Next::TimedOut => Ok(()),
        Next::Closed(how) => Err(format!(
            "expected the connection to stay open; the server closed it ({how})"
        )),
        Next::Frame(frame) => Err(format!(
            "expected no more frames; got {} raw \"{}\"",
            frame.describe(),
            crate::escape::encode_short(&frame.raw, 300)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden::model::Fill;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    fn fill_step(at: usize) -> Step {
        Step {
            fill: vec![Fill {
                at,
                len: 16,
                from: "last_message_id".to_owned(),
            }],
            ..Step::default()
        }
    }

    #[test]
    fn fill_overwrites_with_the_last_id() {
        let bytes = b"FIN 18a2e87122a69000\n".to_vec();
        let filled = apply_fills(bytes, &fill_step(4), Some(*b"0123456789abcdef")).unwrap();
        assert_eq!(filled, b"FIN 0123456789abcdef\n");
    }

    #[test]
    fn fill_without_a_message_or_out_of_range_is_an_error() {
        assert!(apply_fills(b"FIN x\n".to_vec(), &fill_step(4), None).is_err());
        let short = apply_fills(b"FIN x\n".to_vec(), &fill_step(4), Some([b'a'; 16]));
        assert!(short.unwrap_err().contains("outside"));
    }

    /// A scripted peer: accepts one connection, reads `read_len` bytes, writes `reply`, then
    /// either closes or holds the connection for a while.
    fn peer(read_len: usize, reply: Vec<u8>, close: bool) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut buf = vec![0u8; read_len];
            socket.read_exact(&mut buf).unwrap();
            socket.write_all(&reply).unwrap();
            if !close {
                std::thread::sleep(Duration::from_secs(2));
            }
        });
        addr
    }

    fn steps(json: &str) -> Vec<Step> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn replays_send_expect_and_close_against_a_scripted_peer() {
        let error = b"\0\0\0\x12\0\0\0\x01E_BAD_PROTOCOL".to_vec();
        let addr = peer(4, error, true);
        let mut session = Session::new(addr, addr, Framing::V2);
        let script = r#"[{"send": "  V3"}, {"expect": [{"type": "error", "raw":
            "\\x00\\x00\\x00\\x12\\x00\\x00\\x00\\x01E_BAD_PROTOCOL"}], "close": true}]"#;
        session.run_steps(&steps(script)).unwrap();
    }

    #[test]
    fn reports_a_connection_that_stays_open_when_close_was_expected() {
        let addr = peer(4, b"\0\0\0\x06\0\0\0\0OK".to_vec(), false);
        let mut session = Session::new(addr, addr, Framing::V2);
        let script = r#"[{"send": "  V2"}, {"expect": [{"raw":
            "\\x00\\x00\\x00\\x06\\x00\\x00\\x00\\x00OK"}], "close": true, "timeout_ms": 200}]"#;
        let err = session.run_steps(&steps(script)).unwrap_err();
        assert!(
            err.starts_with("step 1 (expect 1 frame(s), then close on default)"),
            "{err}"
        );
        assert!(err.contains("still open"), "{err}");
    }

    #[test]
    fn reports_an_unexpected_reply_where_none_was_expected() {
        let addr = peer(4, b"\0\0\0\x06\0\0\0\0OK".to_vec(), false);
        let mut session = Session::new(addr, addr, Framing::V2);
        let script = r#"[{"send": "  V2"}, {"expect": [], "close": false}]"#;
        let err = session.run_steps(&steps(script)).unwrap_err();
        assert!(
            err.contains("expected no more frames; got response \"OK\""),
            "{err}"
        );
    }

    #[test]
    fn reports_a_close_where_an_open_connection_was_expected() {
        let addr = peer(4, Vec::new(), true);
        let mut session = Session::new(addr, addr, Framing::V2);
        let script = r#"[{"send": "  V2"}, {"expect": [], "close": false}]"#;
        let err = session.run_steps(&steps(script)).unwrap_err();
        assert!(err.contains("the server closed it"), "{err}");
    }

    #[test]
    fn switches_to_deflate_including_bytes_already_received() {
        use flate2::{Compress, Compression, FlushCompress};
        let mut reply = b"\0\0\0\x06\0\0\0\0{}".to_vec();
        let mut compressor = Compress::new(Compression::new(6), false);
        let mut compressed = Vec::with_capacity(128);
        let ok = b"\0\0\0\x06\0\0\0\0OK";
        compressor
            .compress_vec(ok, &mut compressed, FlushCompress::Sync)
            .unwrap();
        // The negotiation reply and the first compressed bytes arrive in one write.
        reply.extend_from_slice(&compressed);
        let addr = peer(4, reply, false);
        let mut session = Session::new(addr, addr, Framing::V2);
        let script = r#"[{"send": "  V2"},
            {"expect": [{"raw": "\\x00\\x00\\x00\\x06\\x00\\x00\\x00\\x00{}"}],
             "close": false, "switch_to": "deflate"},
            {"expect": [{"raw": "\\x00\\x00\\x00\\x06\\x00\\x00\\x00\\x00OK"}],
             "close": false, "inflated": true}]"#;
        session.run_steps(&steps(script)).unwrap();
    }

    #[test]
    fn an_extra_frame_already_received_fails_unless_the_next_step_reads() {
        let two = b"\0\0\0\x06\0\0\0\0OK\0\0\0\x06\0\0\0\0OK".to_vec();
        let ok = r#"{"raw": "\\x00\\x00\\x00\\x06\\x00\\x00\\x00\\x00OK"}"#;
        let one_then_stop =
            format!(r#"[{{"send": "  V2"}}, {{"expect": [{ok}], "close": false}}]"#);
        let addr = peer(4, two.clone(), false);
        let mut session = Session::new(addr, addr, Framing::V2);
        let err = session.run_steps(&steps(&one_then_stop)).unwrap_err();
        assert!(err.contains("expected no more frames"), "{err}");
        let one_then_one = format!(
            r#"[{{"send": "  V2"}}, {{"expect": [{ok}], "close": false}},
                {{"expect": [{ok}], "close": false}}]"#
        );
        let addr = peer(4, two, false);
        let mut session = Session::new(addr, addr, Framing::V2);
        session.run_steps(&steps(&one_then_one)).unwrap();
    }

    #[test]
    fn reports_missing_frames_with_what_did_arrive() {
        let addr = peer(4, b"\0\0\0\x06\0\0\0\0OK".to_vec(), true);
        let mut session = Session::new(addr, addr, Framing::V2);
        let script = r#"[{"send": "  V2"}, {"expect": [
            {"raw": "\\x00\\x00\\x00\\x06\\x00\\x00\\x00\\x00OK"},
            {"raw": "\\x00\\x00\\x00\\x06\\x00\\x00\\x00\\x00OK"}], "close": false}]"#;
        let err = session.run_steps(&steps(script)).unwrap_err();
        assert!(err.contains("closed the connection (FIN) after 1"), "{err}");
        assert!(err.contains("got: response \"OK\""), "{err}");
    }
}
