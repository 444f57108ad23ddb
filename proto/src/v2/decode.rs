//! The V2 command decoder: bytes from a client in, [`Command`]s out.
//!
//! Mirrors the parsing half of upstream `nsqd/protocol_v2.go` (`IOLoop`'s line split and each
//! verb's parameter and body checks, `readMPUB`, `readLen`, `getMessageID`) with its exact error
//! codes and texts. Checks that need connection state (`cannot SUB in current state`, auth,
//! heartbeats disabled) are the broker's; [`CommandDecoder::last_verb`] lets it give them
//! precedence as upstream does. No IO, no clock.
//!
//! A command is a line, optionally followed by a body:
//! ```text
//! VERB param param\n                      SUB, RDY, FIN, REQ, TOUCH, CLS, NOP
//! VERB param\n [i32 size][size bytes]     IDENTIFY, AUTH, PUB, DPUB
//! MPUB topic\n [i32 size][i32 count]([i32 size][size bytes])*count
//! ```
//! Sizes are big-endian and read as signed, as upstream does (`0xffffffff` is `-1`).
//!
//! Where we differ from upstream on purpose:
//! - Upstream reads MPUB's messages straight from the stream and never checks them against the
//!   body size it was sent. We take the body size as the frame and parse the messages inside it,
//!   so a message running past the body fails with upstream's read-failure texts
//!   (`MPUB failed to read message(N) body size`, `MPUB failed to read message body`), and bytes
//!   left over after the last message fail with `E_BAD_BODY MPUB invalid body size N`.
//! - The messages of an MPUB are checked once its whole body (at most `max_body_size`) has
//!   arrived; its size and count are checked as soon as they are readable.
//! - A line longer than [`Limits::max_line_len`] is refused with `E_INVALID` instead of
//!   upstream's silent close (`bufio: buffer full`).

use bytes::{Buf, BytesMut};
use std::borrow::Cow;
use std::time::Duration;

use crate::error::{ErrorCode, ProtoError};
use crate::limits::Limits;
use crate::message::MessageId;
use crate::names::{is_valid_channel_name, is_valid_topic_name};
use crate::v2::command::{Command, Name, Verb};
use crate::v2::quote::go_quote;

/// Bytes of a body size (and of the MPUB message count and message sizes).
const SIZE_LEN: usize = 4;

/// Decodes the command stream of one V2 connection (after the magic).
///
/// Follows mini-redis' check, parse, advance: [`decode`](CommandDecoder::decode) looks at the
/// buffer, and consumes exactly one command's bytes only when that command is complete and
/// valid. Bounds are enforced before anything is buffered: a body size above its limit fails
/// as soon as its 4 bytes are readable.
#[derive(Debug, Clone)]
pub struct CommandDecoder {
    limits: Limits,
    last_verb: Option<Verb>,
    /// How far the inner message sizes of an incomplete MPUB were checked: (offset in the
    /// body, messages checked). Upstream reads MPUB messages one by one from the socket, so a
    /// bad inner size is refused before the rest of the body arrives; so is it here.
    mpub_checked: (usize, u32),
}

/// Where a parameter lies in the command line: `start..end`.
type Span = (usize, usize);

/// What the command line alone says; the body, if any, comes next.
enum Head {
    /// A command without names or body, complete with its line.
    Ready(Command),
    /// `SUB topic channel`.
    Sub { topic: Span, channel: Span },
    /// A command whose body follows the line.
    Body(BodyKind),
}

#[derive(Clone, Copy)]
enum BodyKind {
    Identify,
    Auth,
    Pub { topic: Span },
    Mpub { topic: Span },
    Dpub { topic: Span, defer: Duration },
}

/// The parameters of a line split on single spaces, as upstream's `bytes.Split(line, " ")`.
/// Only the first three are kept (no verb uses more); `count` counts them all.
struct Params<'a> {
    line: &'a [u8],
    spans: [Span; 3],
    count: usize,
}

impl CommandDecoder {
    /// A decoder enforcing `limits`.
    ///
    /// # Examples
    /// ```
    /// use bytes::BytesMut;
    /// use sluice_proto::v2::{Command, CommandDecoder};
    /// use sluice_proto::Limits;
    ///
    /// let mut decoder = CommandDecoder::new(Limits::default());
    /// let mut buf = BytesMut::from(&b"RDY 10\nNOP\n"[..]);
    /// assert_eq!(decoder.decode(&mut buf).unwrap(), Some(Command::Rdy(10)));
    /// assert_eq!(decoder.decode(&mut buf).unwrap(), Some(Command::Nop));
    /// assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    /// ```
    pub fn new(limits: Limits) -> CommandDecoder {
        CommandDecoder {
            limits,
            last_verb: None,
            mpub_checked: (SIZE_LEN, 0),
        }
    }

    /// The limits this decoder enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The verb of the line that produced the last error, or `None` when that line's verb
    /// was unknown (or no error happened yet).
    ///
    /// Upstream checks the connection state before parameters, so a broker that gets an error
    /// from [`decode`](CommandDecoder::decode) first checks whether this verb is allowed in
    /// the current state and, if not, sends its state error instead.
    pub fn last_verb(&self) -> Option<Verb> {
        self.last_verb
    }

    /// Decodes the next command at the front of `buf`.
    ///
    /// Returns `Ok(Some(command))` having consumed exactly that command's bytes, or `Ok(None)`
    /// having consumed nothing when more bytes are needed. Bodies and names share `buf`'s
    /// memory (no copy).
    ///
    /// # Errors
    /// Upstream's error for a malformed command (`E_INVALID`, `E_BAD_TOPIC`, `E_BAD_CHANNEL`,
    /// `E_BAD_MESSAGE`, `E_BAD_BODY`), returned as soon as the offending bytes are readable.
    /// Every such error is fatal: send it and close the connection. `buf` is left as it was.
    ///
    /// # Examples
    /// ```
    /// use bytes::BytesMut;
    /// use sluice_proto::v2::{CommandDecoder, Verb};
    /// use sluice_proto::{ErrorCode, Limits};
    ///
    /// let mut decoder = CommandDecoder::new(Limits::default());
    /// // A 4 GB size prefix fails at once: nothing waits for (or allocates) the body.
    /// let mut buf = BytesMut::from(&b"PUB orders\n\x7f\xff\xff\xff"[..]);
    /// let err = decoder.decode(&mut buf).unwrap_err();
    /// assert_eq!(err.code, ErrorCode::BadMessage);
    /// assert_eq!(err.frame_text(), "E_BAD_MESSAGE PUB message too big 2147483647 > 1048576");
    /// assert_eq!(decoder.last_verb(), Some(Verb::Pub));
    /// ```
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Command>, ProtoError> {
        let line_len = match self.line_len(buf) {
            Ok(Some(line_len)) => line_len,
            Ok(None) => return Ok(None),
            Err(err) => {
                let window = buf.get(..self.limits.max_line_len).unwrap_or(buf);
                self.last_verb = leading_verb(window);
                return Err(err);
            }
        };
        let line = trim_line(buf.get(..line_len).unwrap_or_default());
        let verb = Verb::from_bytes(first_word(line));
        let result = match verb {
            Some(verb) => self.decode_verb(verb, line_len, buf),
            None => Err(ProtoError::with_echo(
                ErrorCode::Invalid,
                "invalid command ",
                first_word(line),
            )),
        };
        if result.is_err() {
            self.last_verb = verb;
        }
        result
    }

    /// The length of the first line, newline included, once it is complete.
    fn line_len(&self, buf: &[u8]) -> Result<Option<usize>, ProtoError> {
        if buf.is_empty() {
            return Ok(None);
        }
        let max = self.limits.max_line_len;
        let window = buf.get(..max).unwrap_or(buf);
        if let Some(newline) = window.iter().position(|&b| b == b'\n') {
            return Ok(Some(newline + 1));
        }
        if buf.len() >= max {
            return Err(ProtoError::new(
                ErrorCode::Invalid,
                format!("invalid command line longer than {max} bytes"),
            ));
        }
        Ok(None)
    }

    fn decode_verb(
        &mut self,
        verb: Verb,
        line_len: usize,
        buf: &mut BytesMut,
    ) -> Result<Option<Command>, ProtoError> {
        let head = {
            let line = trim_line(buf.get(..line_len).unwrap_or_default());
            parse_head(verb, &Params::split(line), &self.limits)?
        };
        match head {
            Head::Ready(command) => {
                buf.advance(line_len);
                Ok(Some(command))
            }
            Head::Sub { topic, channel } => {
                let frame = buf.split_to(line_len).freeze();
                Ok(Some(Command::Sub {
                    topic: Name::from_bytes(frame.slice(topic.0..topic.1)),
                    channel: Name::from_bytes(frame.slice(channel.0..channel.1)),
                }))
            }
            Head::Body(kind) => self.decode_body(kind, line_len, buf),
        }
    }

    /// Checks the body size (and an MPUB's count) as soon as readable, then takes the whole
    /// command once its body is complete.
    fn decode_body(
        &mut self,
        kind: BodyKind,
        line_len: usize,
        buf: &mut BytesMut,
    ) -> Result<Option<Command>, ProtoError> {
        let Some(size) = read_i32(buf, line_len) else {
            return Ok(None);
        };
        let body_len = check_body_size(kind, size, &self.limits)?;
        let body_start = line_len + SIZE_LEN;
        let mut mpub_count = 0;
        if let BodyKind::Mpub { .. } = kind {
            if body_len >= SIZE_LEN {
                let Some(count) = read_i32(buf, body_start) else {
                    return Ok(None);
                };
                mpub_count = check_mpub_count(count, &self.limits)?;
            }
        }
        let total = body_start + body_len;
        if buf.len() < total {
            if let BodyKind::Mpub { .. } = kind {
                let partial = buf.get(body_start..).unwrap_or_default();
                self.mpub_checked =
                    check_mpub_sizes(partial, mpub_count, self.mpub_checked, &self.limits)?;
            }
            return Ok(None);
        }
        self.mpub_checked = (SIZE_LEN, 0);
        if let BodyKind::Mpub { .. } = kind {
            let body = buf.get(body_start..total).unwrap_or_default();
            check_mpub_body(body, mpub_count, &self.limits)?;
        }
        let frame = buf.split_to(total).freeze();
        let body = frame.slice(body_start..);
        let name = |span: Span| Name::from_bytes(frame.slice(span.0..span.1));
        Ok(Some(match kind {
            BodyKind::Identify => Command::Identify(body),
            BodyKind::Auth => Command::Auth(body),
            BodyKind::Pub { topic } => Command::Pub {
                topic: name(topic),
                body,
            },
            BodyKind::Dpub { topic, defer } => Command::Dpub {
                topic: name(topic),
                defer,
                body,
            },
            BodyKind::Mpub { topic } => Command::Mpub {
                topic: name(topic),
                bodies: split_mpub_body(&body, mpub_count),
            },
        }))
    }
}

impl<'a> Params<'a> {
    fn split(line: &'a [u8]) -> Params<'a> {
        let mut spans = [(0, 0); 3];
        let mut count = 0;
        let mut start = 0;
        for part in line.split(|&b| b == b' ') {
            if let Some(span) = spans.get_mut(count) {
                *span = (start, start + part.len());
            }
            count += 1;
            start += part.len() + 1;
        }
        Params { line, spans, count }
    }

    fn span(&self, index: usize) -> Option<Span> {
        if index < self.count {
            self.spans.get(index).copied()
        } else {
            None
        }
    }

    fn get(&self, index: usize) -> Option<&'a [u8]> {
        let (start, end) = self.span(index)?;
        self.line.get(start..end)
    }
}

/// Validates everything the line alone determines, in upstream's order for each verb.
fn parse_head(verb: Verb, params: &Params<'_>, limits: &Limits) -> Result<Head, ProtoError> {
    let ready = |command: Command| -> Result<Head, ProtoError> { Ok(Head::Ready(command)) };
    match verb {
        Verb::Identify => Ok(Head::Body(BodyKind::Identify)),
        Verb::Auth => {
            if params.count != 1 {
                return Err(invalid("AUTH invalid number of parameters"));
            }
            Ok(Head::Body(BodyKind::Auth))
        }
        Verb::Sub => parse_sub(params),
        Verb::Pub => {
            let topic = topic_param(params, verb, 2, "parameters", "")?;
            Ok(Head::Body(BodyKind::Pub { topic }))
        }
        Verb::Mpub => {
            // Upstream's MPUB repeats the code in its text (protocol_v2.go MPUB); clients see
            // `E_BAD_TOPIC E_BAD_TOPIC MPUB ...` and we reproduce it.
            let topic = topic_param(params, verb, 2, "parameters", "E_BAD_TOPIC ")?;
            Ok(Head::Body(BodyKind::Mpub { topic }))
        }
        Verb::Dpub => parse_dpub(params, limits),
        Verb::Rdy => ready(Command::Rdy(parse_rdy(params, limits)?)),
        Verb::Fin => ready(Command::Fin(id_param(params, verb)?)),
        Verb::Touch => ready(Command::Touch(id_param(params, verb)?)),
        Verb::Req => parse_req(params),
        // Upstream ignores parameters after CLS and NOP.
        Verb::Cls => ready(Command::Cls),
        Verb::Nop => ready(Command::Nop),
    }
}

fn parse_sub(params: &Params<'_>) -> Result<Head, ProtoError> {
    let topic = topic_param(params, Verb::Sub, 3, "parameters", "")?;
    let channel = params.get(2).unwrap_or_default();
    if !std::str::from_utf8(channel).is_ok_and(is_valid_channel_name) {
        return Err(ProtoError::new(
            ErrorCode::BadChannel,
            format!("SUB channel name {} is not valid", go_quote(channel)),
        ));
    }
    let channel = params.span(2).unwrap_or_default();
    Ok(Head::Sub { topic, channel })
}

fn parse_dpub(params: &Params<'_>, limits: &Limits) -> Result<Head, ProtoError> {
    let topic = topic_param(params, Verb::Dpub, 3, "parameters", "")?;
    let raw = params.get(2).unwrap_or_default();
    let timeout_ms = parse_base10(raw).ok_or_else(|| {
        invalid(format!(
            "DPUB could not parse timeout {}",
            String::from_utf8_lossy(raw)
        ))
    })?;
    let max = limits.max_req_timeout;
    let defer_ns = go_duration_ns(timeout_ms);
    if defer_ns < 0 || defer_ns.unsigned_abs() > duration_ns(max) {
        return Err(invalid(format!(
            "DPUB timeout {timeout_ms} out of range 0-{}",
            max.as_millis()
        )));
    }
    Ok(Head::Body(BodyKind::Dpub {
        topic,
        defer: Duration::from_nanos(defer_ns.unsigned_abs()),
    }))
}

fn parse_rdy(params: &Params<'_>, limits: &Limits) -> Result<u64, ProtoError> {
    let Some(raw) = params.get(1) else {
        // `RDY` alone means 1 (upstream `count := int64(1)`).
        return Ok(1);
    };
    let parsed = parse_base10(raw).ok_or_else(|| {
        invalid(format!(
            "RDY could not parse count {}",
            String::from_utf8_lossy(raw)
        ))
    })?;
    // Upstream converts with `int64(b10)`: counts of 2^63 and above turn negative.
    let count = parsed as i64;
    match u64::try_from(count) {
        Ok(count) if count <= limits.max_rdy_count => Ok(count),
        _ => Err(invalid(format!(
            "RDY count {count} out of range 0-{}",
            limits.max_rdy_count
        ))),
    }
}

fn parse_req(params: &Params<'_>) -> Result<Head, ProtoError> {
    if params.count < 3 {
        return Err(invalid("REQ insufficient number of params"));
    }
    let id = id_param(params, Verb::Req)?;
    let raw = params.get(2).unwrap_or_default();
    let timeout_ms = parse_base10(raw).ok_or_else(|| {
        invalid(format!(
            "REQ could not parse timeout {}",
            String::from_utf8_lossy(raw)
        ))
    })?;
    // Not range-checked here: upstream clamps REQ delays (negative to 0, which is what a
    // wrapped-around value gives here, and large ones to --max-req-timeout in the broker).
    let delay = Duration::from_nanos(u64::try_from(go_duration_ns(timeout_ms)).unwrap_or(0));
    Ok(Head::Ready(Command::Req { id, delay }))
}

/// The topic at `params[1]`, after upstream's parameter count check (`min_count` parameters,
/// verb included, or `VERB insufficient number of <noun>`).
fn topic_param(
    params: &Params<'_>,
    verb: Verb,
    min_count: usize,
    noun: &str,
    code_prefix: &str,
) -> Result<Span, ProtoError> {
    if params.count < min_count {
        return Err(invalid(format!(
            "{} insufficient number of {noun}",
            verb.as_str()
        )));
    }
    let topic = params.get(1).unwrap_or_default();
    if !std::str::from_utf8(topic).is_ok_and(is_valid_topic_name) {
        return Err(ProtoError::new(
            ErrorCode::BadTopic,
            format!(
                "{code_prefix}{} topic name {} is not valid",
                verb.as_str(),
                go_quote(topic)
            ),
        ));
    }
    Ok(params.span(1).unwrap_or_default())
}

/// The message id at `params[1]` of FIN, REQ or TOUCH.
fn id_param(params: &Params<'_>, verb: Verb) -> Result<MessageId, ProtoError> {
    if params.count < 2 {
        return Err(invalid(format!(
            "{} insufficient number of params",
            verb.as_str()
        )));
    }
    MessageId::from_slice(params.get(1).unwrap_or_default())
}

/// Upstream's checks on a body size; the size as a length.
///
/// Upstream tests "too big" before "not positive" for IDENTIFY and AUTH and after it for the
/// others; the two cannot both hold, so one order serves all.
fn check_body_size(kind: BodyKind, size: i32, limits: &Limits) -> Result<usize, ProtoError> {
    let (verb, is_message) = match kind {
        BodyKind::Identify => ("IDENTIFY", false),
        BodyKind::Auth => ("AUTH", false),
        BodyKind::Mpub { .. } => ("MPUB", false),
        BodyKind::Pub { .. } => ("PUB", true),
        BodyKind::Dpub { .. } => ("DPUB", true),
    };
    let (code, max, noun, invalid_noun) = if is_message {
        (
            ErrorCode::BadMessage,
            limits.max_msg_size,
            "message",
            "message body",
        )
    } else {
        (ErrorCode::BadBody, limits.max_body_size, "body", "body")
    };
    if size <= 0 {
        return Err(ProtoError::new(
            code,
            format!("{verb} invalid {invalid_noun} size {size}"),
        ));
    }
    if size.unsigned_abs() > max {
        return Err(ProtoError::new(
            code,
            format!("{verb} {noun} too big {size} > {max}"),
        ));
    }
    Ok(size.unsigned_abs() as usize)
}

/// Upstream's `numMessages <= 0 || numMessages > (maxBodySize - 4) / 5` check.
fn check_mpub_count(count: i32, limits: &Limits) -> Result<u32, ProtoError> {
    match u32::try_from(count) {
        Ok(count) if count > 0 && count <= limits.max_mpub_count() => Ok(count),
        _ => Err(ProtoError::new(
            ErrorCode::BadBody,
            format!("MPUB invalid message count {count}"),
        )),
    }
}

/// Checks every message of a complete MPUB body (count included) in upstream's order.
fn check_mpub_body(body: &[u8], count: u32, limits: &Limits) -> Result<(), ProtoError> {
    let Some(mut rest) = body.get(SIZE_LEN..) else {
        return Err(ProtoError::new(
            ErrorCode::BadBody,
            "MPUB failed to read message count",
        ));
    };
    let bad_message = |detail: String| ProtoError::new(ErrorCode::BadMessage, detail);
    for index in 0..count {
        let Some((size, tail)) = rest.split_first_chunk::<SIZE_LEN>() else {
            return Err(bad_message(format!(
                "MPUB failed to read message({index}) body size"
            )));
        };
        let size = i32::from_be_bytes(*size);
        if size <= 0 {
            return Err(bad_message(format!(
                "MPUB invalid message({index}) body size {size}"
            )));
        }
        if size.unsigned_abs() > limits.max_msg_size {
            return Err(bad_message(format!(
                "MPUB message too big {size} > {}",
                limits.max_msg_size
            )));
        }
        let Some(after) = tail.get(size.unsigned_abs() as usize..) else {
            return Err(bad_message("MPUB failed to read message body".to_owned()));
        };
        rest = after;
    }
    if !rest.is_empty() {
        return Err(ProtoError::new(
            ErrorCode::BadBody,
            format!("MPUB invalid body size {}", body.len()),
        ));
    }
    Ok(())
}

/// Checks the inner message sizes readable so far in an incomplete MPUB body, from `from`
/// (offset, index) on; returns how far it got.
fn check_mpub_sizes(
    partial: &[u8],
    count: u32,
    from: (usize, u32),
    limits: &Limits,
) -> Result<(usize, u32), ProtoError> {
    let (mut offset, mut index) = from;
    while index < count {
        let Some(size) = read_i32(partial, offset) else {
            break;
        };
        if size <= 0 {
            return Err(ProtoError::new(
                ErrorCode::BadMessage,
                format!("MPUB invalid message({index}) body size {size}"),
            ));
        }
        if size.unsigned_abs() > limits.max_msg_size {
            return Err(ProtoError::new(
                ErrorCode::BadMessage,
                format!("MPUB message too big {size} > {}", limits.max_msg_size),
            ));
        }
        offset += SIZE_LEN + size.unsigned_abs() as usize;
        index += 1;
    }
    Ok((offset, index))
}

/// The message bodies of an MPUB body already checked by [`check_mpub_body`].
fn split_mpub_body(body: &bytes::Bytes, count: u32) -> Vec<bytes::Bytes> {
    let mut bodies = Vec::with_capacity(count as usize);
    let mut offset = SIZE_LEN;
    for _ in 0..count {
        let Some(size) = read_i32(body, offset) else {
            break;
        };
        let start = offset + SIZE_LEN;
        let end = start + size.unsigned_abs() as usize;
        if end > body.len() {
            break;
        }
        bodies.push(body.slice(start..end));
        offset = end;
    }
    bodies
}

/// A big-endian `i32` at `offset`, if the buffer holds it yet.
fn read_i32(buf: &[u8], offset: usize) -> Option<i32> {
    let bytes = buf.get(offset..offset.checked_add(SIZE_LEN)?)?;
    Some(i32::from_be_bytes(bytes.try_into().ok()?))
}

/// Upstream's `protocol.ByteToBase10`: ASCII digits only (the empty string is 0), wrapping
/// on overflow.
fn parse_base10(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit()
            .then(|| n.wrapping_mul(10).wrapping_add(u64::from(d - b'0')))
    })
}

/// Upstream's `time.Duration(timeoutMs) * time.Millisecond` in nanoseconds, wrapping as
/// Go's int64 arithmetic does.
fn go_duration_ns(millis: u64) -> i64 {
    (millis as i64).wrapping_mul(1_000_000)
}

fn duration_ns(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// The line without its `\n`, and without one `\r` before it (upstream `IOLoop`).
fn trim_line(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn first_word(line: &[u8]) -> &[u8] {
    line.split(|&b| b == b' ').next().unwrap_or_default()
}

/// The verb of a line that is not complete, when its first word already is.
fn leading_verb(buf: &[u8]) -> Option<Verb> {
    let end = buf.iter().position(|&b| b == b' ')?;
    Verb::from_bytes(buf.get(..end)?)
}

fn invalid(detail: impl Into<Cow<'static, str>>) -> ProtoError {
    ProtoError::new(ErrorCode::Invalid, detail)
}

#[cfg(test)]
mod tests;
