//! V2 encoders: server frames and client commands, appended to a `BytesMut`.
//!
//! Mirrors upstream `internal/protocol/protocol.go` (`SendFramedResponse`), `nsqd/message.go`
//! (`WriteTo`) and, for commands, go-nsq's `command.go`. Each encoder reserves once and writes
//! in place; none allocates an intermediate buffer. No IO: the caller writes the buffer.
//!
//! Payloads come from this process (bounded by `max_msg_size` and friends), so lengths always
//! fit the 32-bit size fields; a length that did not would be written saturated rather than
//! panic.

use bytes::{BufMut, BytesMut};
use std::time::Duration;

use crate::error::ProtoError;
use crate::message::Message;
use crate::v2::command::Command;
use crate::v2::{FrameType, MAGIC_V2};

/// Bytes before a frame's data: the size and the frame type.
pub const FRAME_HEADER_LEN: usize = 8;

/// Appends the V2 magic a client sends first.
///
/// # Examples
/// ```
/// let mut out = bytes::BytesMut::new();
/// sluice_proto::v2::put_magic(&mut out);
/// assert_eq!(&out[..], b"  V2");
/// ```
pub fn put_magic(out: &mut BytesMut) {
    out.extend_from_slice(MAGIC_V2);
}

/// Appends one frame: `[u32 size = 4 + data.len()][u32 type][data]`.
///
/// # Examples
/// ```
/// use sluice_proto::v2::{put_frame, FrameType};
/// let mut out = bytes::BytesMut::new();
/// put_frame(&mut out, FrameType::Response, b"OK");
/// assert_eq!(&out[..], b"\0\0\0\x06\0\0\0\0OK");
/// ```
pub fn put_frame(out: &mut BytesMut, ft: FrameType, data: &[u8]) {
    out.reserve(FRAME_HEADER_LEN + data.len());
    put_frame_header(out, ft, data.len());
    out.put_slice(data);
}

/// Appends a response frame (`OK`, `CLOSE_WAIT`, a heartbeat, IDENTIFY JSON…).
///
/// # Examples
/// ```
/// use sluice_proto::v2::{put_response, HEARTBEAT};
/// let mut out = bytes::BytesMut::new();
/// put_response(&mut out, HEARTBEAT);
/// assert_eq!(&out[..], b"\0\0\0\x0f\0\0\0\0_heartbeat_");
/// ```
pub fn put_response(out: &mut BytesMut, data: &[u8]) {
    put_frame(out, FrameType::Response, data);
}

/// Appends an error frame carrying `err.frame_text()`.
///
/// # Examples
/// ```
/// use sluice_proto::{ErrorCode, ProtoError};
/// let mut out = bytes::BytesMut::new();
/// sluice_proto::v2::put_error(&mut out, &ProtoError::new(ErrorCode::Invalid, "invalid command FOO"));
/// assert_eq!(&out[..], b"\0\0\0\x21\0\0\0\x01E_INVALID invalid command FOO");
/// ```
pub fn put_error(out: &mut BytesMut, err: &ProtoError) {
    let code = err.code.as_str().as_bytes();
    let detail = err.detail_bytes();
    let data_len = if detail.is_empty() {
        code.len()
    } else {
        code.len() + 1 + detail.len()
    };
    out.reserve(FRAME_HEADER_LEN + data_len);
    put_frame_header(out, FrameType::Error, data_len);
    out.put_slice(code);
    if !detail.is_empty() {
        out.put_u8(b' ');
        out.put_slice(detail);
    }
}

/// Appends a message frame: the frame header, then the message's wire form.
///
/// # Examples
/// ```
/// use bytes::Bytes;
/// use sluice_proto::{Message, MessageId};
/// let msg = Message { id: MessageId::from_u64(1), timestamp: 7, attempts: 1, body: Bytes::from_static(b"hi") };
/// let mut out = bytes::BytesMut::new();
/// sluice_proto::v2::put_message(&mut out, &msg);
/// assert_eq!(out.len(), 8 + 26 + 2);
/// assert_eq!(&out[..8], b"\0\0\0\x20\0\0\0\x02");
/// ```
pub fn put_message(out: &mut BytesMut, msg: &Message) {
    out.reserve(FRAME_HEADER_LEN + msg.wire_len());
    put_frame_header(out, FrameType::Message, msg.wire_len());
    msg.put(out);
}

/// Appends a client command exactly as go-nsq writes it: the line, then the body if any
/// (`[u32 size][body]`; for MPUB `[u32 size][u32 count]([u32 size][body])*`). Delays are
/// written in whole milliseconds.
///
/// Ids are written as given. One that holds a space or `\n`, or (for FIN and TOUCH) ends in
/// `\r`, cannot be read back as the same id; brokers only hand out hex ids.
///
/// # Examples
/// ```
/// use bytes::Bytes;
/// use sluice_proto::v2::{put_command, Command, Name};
/// let mut out = bytes::BytesMut::new();
/// put_command(&mut out, &Command::Pub { topic: Name::new("t"), body: Bytes::from_static(b"hi") });
/// assert_eq!(&out[..], b"PUB t\n\0\0\0\x02hi");
/// ```
pub fn put_command(out: &mut BytesMut, cmd: &Command) {
    let verb = cmd.verb().as_str().as_bytes();
    match cmd {
        Command::Identify(body) | Command::Auth(body) => {
            put_line(out, verb, &[], body.len() + 4);
            put_sized(out, body);
        }
        Command::Sub { topic, channel } => {
            put_line(out, verb, &[topic.as_bytes(), channel.as_bytes()], 0);
        }
        Command::Pub { topic, body } => {
            put_line(out, verb, &[topic.as_bytes()], body.len() + 4);
            put_sized(out, body);
        }
        Command::Mpub { topic, bodies } => {
            let body_len = 4 + bodies.iter().map(|b| 4 + b.len()).sum::<usize>();
            put_line(out, verb, &[topic.as_bytes()], body_len + 4);
            out.put_u32(saturating_u32(body_len));
            out.put_u32(saturating_u32(bodies.len()));
            for body in bodies {
                put_sized(out, body);
            }
        }
        Command::Dpub { topic, defer, body } => {
            let ms = millis(*defer);
            put_line(
                out,
                verb,
                &[topic.as_bytes(), ms.as_bytes()],
                body.len() + 4,
            );
            put_sized(out, body);
        }
        Command::Rdy(count) => put_line(out, verb, &[count.to_string().as_bytes()], 0),
        Command::Fin(id) | Command::Touch(id) => put_line(out, verb, &[id.as_bytes()], 0),
        Command::Req { id, delay } => {
            let ms = millis(*delay);
            put_line(out, verb, &[id.as_bytes(), ms.as_bytes()], 0);
        }
        Command::Cls | Command::Nop => put_line(out, verb, &[], 0),
    }
}

/// Writes `VERB p1 p2\n`, reserving room for `body_len` more bytes too.
fn put_line(out: &mut BytesMut, verb: &[u8], params: &[&[u8]], body_len: usize) {
    let line_len = verb.len() + params.iter().map(|p| 1 + p.len()).sum::<usize>() + 1;
    out.reserve(line_len + body_len);
    out.put_slice(verb);
    for param in params {
        out.put_u8(b' ');
        out.put_slice(param);
    }
    out.put_u8(b'\n');
}

fn put_sized(out: &mut BytesMut, body: &[u8]) {
    out.put_u32(saturating_u32(body.len()));
    out.put_slice(body);
}

fn put_frame_header(out: &mut BytesMut, ft: FrameType, data_len: usize) {
    out.put_u32(saturating_u32(data_len.saturating_add(4)));
    out.put_u32(ft.as_u32());
}

fn millis(duration: Duration) -> String {
    duration.as_millis().to_string()
}

fn saturating_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::message::MessageId;
    use crate::v2::Name;
    use bytes::Bytes;

    fn encoded(cmd: &Command) -> Vec<u8> {
        let mut out = BytesMut::new();
        put_command(&mut out, cmd);
        out.to_vec()
    }

    #[test]
    fn commands_are_byte_exact() {
        let id = MessageId(*b"0123456789abcdef");
        let cases: Vec<(Command, &[u8])> = vec![
            (Command::Nop, b"NOP\n"),
            (Command::Cls, b"CLS\n"),
            (Command::Rdy(2500), b"RDY 2500\n"),
            (Command::Fin(id), b"FIN 0123456789abcdef\n"),
            (Command::Touch(id), b"TOUCH 0123456789abcdef\n"),
            (
                Command::Req {
                    id,
                    delay: Duration::from_millis(1500),
                },
                b"REQ 0123456789abcdef 1500\n",
            ),
            (
                Command::Sub {
                    topic: Name::new("t"),
                    channel: Name::new("c#ephemeral"),
                },
                b"SUB t c#ephemeral\n",
            ),
            (
                Command::Identify(Bytes::from_static(b"{}")),
                b"IDENTIFY\n\0\0\0\x02{}",
            ),
            (
                Command::Auth(Bytes::from_static(b"secret")),
                b"AUTH\n\0\0\0\x06secret",
            ),
            (
                Command::Dpub {
                    topic: Name::new("t"),
                    defer: Duration::from_millis(1000),
                    body: Bytes::from_static(b"later"),
                },
                b"DPUB t 1000\n\0\0\0\x05later",
            ),
        ];
        for (cmd, wire) in cases {
            assert_eq!(encoded(&cmd), wire, "{cmd:?}");
        }
    }

    #[test]
    fn mpub_matches_the_golden_mpub_ok_bytes() {
        let cmd = Command::Mpub {
            topic: Name::new("golden_topic"),
            bodies: vec![
                Bytes::from_static(b"one"),
                Bytes::from_static(b"two"),
                Bytes::from_static(b"three"),
            ],
        };
        assert_eq!(
            encoded(&cmd),
            b"MPUB golden_topic\n\0\0\0\x1b\0\0\0\x03\0\0\0\x03one\0\0\0\x03two\0\0\0\x05three"
        );
    }

    #[test]
    fn error_frame_with_and_without_detail() {
        let mut out = BytesMut::new();
        put_error(&mut out, &ProtoError::bare(ErrorCode::BadProtocol));
        assert_eq!(&out[..], b"\0\0\0\x12\0\0\0\x01E_BAD_PROTOCOL");
        let mut out = BytesMut::new();
        let err = ProtoError::new(ErrorCode::Invalid, "invalid command ");
        put_error(&mut out, &err);
        let mut expected = BytesMut::new();
        put_frame(&mut expected, FrameType::Error, err.frame_text().as_bytes());
        assert_eq!(out, expected);
    }

    #[test]
    fn message_frame_layout() {
        let msg = Message {
            id: MessageId(*b"18a2e860fda69000"),
            timestamp: 0x0102_0304_0506_0708,
            attempts: 2,
            body: Bytes::from_static(b"body"),
        };
        let mut out = BytesMut::new();
        put_message(&mut out, &msg);
        let mut expected = b"\0\0\0\x22\0\0\0\x02\x01\x02\x03\x04\x05\x06\x07\x08\0\x02".to_vec();
        expected.extend_from_slice(b"18a2e860fda69000body");
        assert_eq!(&out[..], &expected[..]);
    }
}
