//! The lookup service's decoder: the magic, then command lines and IDENTIFY bodies.
//!
//! Mirrors upstream `nsqlookupd/tcp.go` (`Handle`: the 4-byte magic) and
//! `nsqlookupd/lookup_protocol_v1.go` (`IOLoop`, `Exec`, `getTopicChan`, `IDENTIFY`), with the
//! same error codes and texts, checked in the same order. Each call checks that a whole command
//! is buffered, parses it, and only then advances the buffer (mini-redis `parse_frame`), so the
//! same bytes split anywhere decode to the same commands.
//!
//! ```text
//! "  V1"                                 magic, once
//! <verb>[ <param>]*\n                    a line; surrounding whitespace (incl. \r) is trimmed
//! IDENTIFY\n[i32 size, big-endian][body] the only command with a body
//! ```
//!
//! Upstream checks the connection state before the parameters (`REGISTER bad$topic` before
//! IDENTIFY is `E_INVALID client must IDENTIFY`, a second IDENTIFY is refused before its body is
//! read), so the decoder keeps the one bit of state that needs: the caller reports a successful
//! IDENTIFY with [`LookupDecoder::mark_identified`]. Every error is fatal: the caller sends it
//! with [`put_error`](super::put_error) and closes the connection.

use std::borrow::Cow;
use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

use super::command::LookupCommand;
use super::{MAGIC_V1, MAX_IDENTIFY_BODY, MAX_LINE_LEN};
use crate::error::{ErrorCode, ProtoError};
use crate::names;
use crate::v2::Name;

/// Decodes what a broker sends to a lookup service, one command per call.
#[derive(Debug, Clone)]
pub struct LookupDecoder {
    magic_seen: bool,
    identified: bool,
    max_line_len: usize,
    max_body_size: u32,
}

impl Default for LookupDecoder {
    fn default() -> LookupDecoder {
        LookupDecoder::new()
    }
}

/// What one buffered command line says, before anything is consumed.
struct Line {
    /// Bytes up to and including the newline.
    len: usize,
    /// Ranges (into the buffer) of the first three space-separated words of the trimmed line.
    words: [Range<usize>; 3],
    /// How many words the trimmed line has (upstream's `len(params)`).
    count: usize,
}

impl LookupDecoder {
    /// A decoder for a new connection (expects the magic first) with the default bounds
    /// [`MAX_LINE_LEN`] and [`MAX_IDENTIFY_BODY`].
    ///
    /// # Examples
    /// ```
    /// use bytes::BytesMut;
    /// use sluice_proto::lookup::{LookupCommand, LookupDecoder};
    ///
    /// let mut decoder = LookupDecoder::new();
    /// let mut buf = BytesMut::from(&b"  V1PING\n"[..]);
    /// assert_eq!(decoder.decode(&mut buf), Ok(Some(LookupCommand::Ping)));
    /// assert!(buf.is_empty());
    /// ```
    pub fn new() -> LookupDecoder {
        LookupDecoder::with_limits(MAX_LINE_LEN, MAX_IDENTIFY_BODY)
    }

    /// A decoder with explicit bounds: the longest line (newline included) and the largest
    /// IDENTIFY body. Both are enforced before anything is buffered beyond them.
    pub fn with_limits(max_line_len: usize, max_body_size: u32) -> LookupDecoder {
        LookupDecoder {
            magic_seen: false,
            identified: false,
            max_line_len: max_line_len.max(1),
            max_body_size,
        }
    }

    /// Records that the connection's IDENTIFY succeeded: from now on REGISTER and UNREGISTER
    /// are accepted and a second IDENTIFY is refused.
    pub fn mark_identified(&mut self) {
        self.identified = true;
    }

    /// Whether [`mark_identified`](Self::mark_identified) was called.
    pub fn is_identified(&self) -> bool {
        self.identified
    }

    /// Decodes the next command, consuming its bytes; `Ok(None)` when more bytes are needed
    /// (nothing is consumed then, except the magic once it is complete).
    ///
    /// # Errors
    /// A fatal [`ProtoError`] with upstream's code and text: `E_BAD_PROTOCOL` for a wrong
    /// magic, `E_INVALID` for an unknown command, a missing parameter, a state violation or an
    /// over-long line, `E_BAD_TOPIC`/`E_BAD_CHANNEL` for invalid names, `E_BAD_BODY` for a bad
    /// IDENTIFY body size. The buffer is left as it was.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<LookupCommand>, ProtoError> {
        if !self.magic_seen {
            let Some(magic) = buf.get(..MAGIC_V1.len()) else {
                return Ok(None);
            };
            if magic != MAGIC_V1 {
                // Upstream sends a size-prefixed bare `E_BAD_PROTOCOL` and closes (tcp.go).
                return Err(ProtoError::bare(ErrorCode::BadProtocol));
            }
            buf.advance(MAGIC_V1.len());
            self.magic_seen = true;
        }
        let Some(line) = self.find_line(buf)? else {
            return Ok(None);
        };
        let verb = word(buf, &line.words[0]);
        match verb {
            b"PING" => {
                buf.advance(line.len);
                Ok(Some(LookupCommand::Ping))
            }
            b"IDENTIFY" => self.decode_identify(buf, line.len),
            b"REGISTER" | b"UNREGISTER" => {
                let register = verb == b"REGISTER";
                self.decode_registration(buf, &line, register).map(Some)
            }
            _ => Err(ProtoError::new(
                ErrorCode::Invalid,
                format!("invalid command {}", lossy(verb)),
            )),
        }
    }

    /// Like [`decode`](Self::decode), for when the peer has stopped sending: a command that
    /// can no longer complete gets upstream's error where upstream sends one.
    ///
    /// Upstream closes silently on a partial line or magic, but answers an IDENTIFY whose size
    /// or body is cut short with `E_BAD_BODY IDENTIFY failed to read body size` or
    /// `E_BAD_BODY IDENTIFY failed to read body`.
    ///
    /// # Errors
    /// As [`decode`](Self::decode), plus the two errors above.
    pub fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<LookupCommand>, ProtoError> {
        if let Some(command) = self.decode(buf)? {
            return Ok(Some(command));
        }
        if !self.magic_seen {
            return Ok(None);
        }
        let Some(line) = self.find_line(buf)? else {
            return Ok(None);
        };
        // `decode` returned no command for a complete line: only IDENTIFY waits for more.
        let short_size = buf.len() < line.len + 4;
        if word(buf, &line.words[0]) != b"IDENTIFY" {
            return Ok(None);
        }
        let detail = if short_size {
            "IDENTIFY failed to read body size"
        } else {
            "IDENTIFY failed to read body"
        };
        Err(ProtoError::new(ErrorCode::BadBody, detail))
    }

    /// Finds a complete line at the front of `buf` and splits its trimmed text into words.
    fn find_line(&self, buf: &BytesMut) -> Result<Option<Line>, ProtoError> {
        let window = buf.get(..self.max_line_len).unwrap_or(buf);
        let Some(newline) = window.iter().position(|&b| b == b'\n') else {
            if buf.len() >= self.max_line_len {
                return Err(ProtoError::new(
                    ErrorCode::Invalid,
                    format!("line too long (more than {} bytes)", self.max_line_len),
                ));
            }
            return Ok(None);
        };
        let text = trim_space(buf.get(..newline).unwrap_or_default());
        let mut words = [0..0, 0..0, 0..0];
        let mut count = 0;
        let mut start = text.start;
        // Upstream splits on single spaces, so `a  b` has an empty word between a and b.
        for end in text.clone().filter(|&i| buf.get(i) == Some(&b' ')) {
            if let Some(slot) = words.get_mut(count) {
                *slot = start..end;
            }
            count += 1;
            start = end + 1;
        }
        if let Some(slot) = words.get_mut(count) {
            *slot = start..text.end;
        }
        count += 1;
        Ok(Some(Line {
            len: newline + 1,
            words,
            count,
        }))
    }

    fn decode_identify(
        &self,
        buf: &mut BytesMut,
        line_len: usize,
    ) -> Result<Option<LookupCommand>, ProtoError> {
        if self.identified {
            return Err(ProtoError::new(ErrorCode::Invalid, "cannot IDENTIFY again"));
        }
        let Some(size_bytes) = buf.get(line_len..line_len + 4) else {
            return Ok(None);
        };
        let mut size = [0u8; 4];
        size.copy_from_slice(size_bytes);
        // Upstream reads an int32; a negative size would make it panic (`make`), so refuse it.
        let size = i32::from_be_bytes(size);
        let Ok(body_len) = u32::try_from(size) else {
            return Err(ProtoError::new(
                ErrorCode::BadBody,
                format!("IDENTIFY invalid body size {size}"),
            ));
        };
        if body_len > self.max_body_size {
            return Err(ProtoError::new(
                ErrorCode::BadBody,
                format!("IDENTIFY body too big {body_len} > {}", self.max_body_size),
            ));
        }
        let body_len = body_len as usize;
        if buf.len() < line_len + 4 + body_len {
            return Ok(None);
        }
        buf.advance(line_len + 4);
        let body = buf.split_to(body_len).freeze();
        Ok(Some(LookupCommand::Identify(body)))
    }

    /// REGISTER and UNREGISTER: upstream's `getTopicChan`, after the IDENTIFY check.
    fn decode_registration(
        &self,
        buf: &mut BytesMut,
        line: &Line,
        register: bool,
    ) -> Result<LookupCommand, ProtoError> {
        let verb = if register { "REGISTER" } else { "UNREGISTER" };
        if !self.identified {
            return Err(ProtoError::new(ErrorCode::Invalid, "client must IDENTIFY"));
        }
        if line.count < 2 {
            return Err(ProtoError::new(
                ErrorCode::Invalid,
                format!("{verb} insufficient number of params"),
            ));
        }
        let [_, topic_range, channel_range] = &line.words;
        let topic = word(buf, topic_range);
        if !std::str::from_utf8(topic).is_ok_and(names::is_valid_topic_name) {
            return Err(ProtoError::new(
                ErrorCode::BadTopic,
                format!("{verb} topic name '{}' is not valid", lossy(topic)),
            ));
        }
        // Upstream treats an empty channel word (`REGISTER t  c`) as no channel at all.
        let channel = if line.count >= 3 {
            word(buf, channel_range)
        } else {
            &[]
        };
        if !channel.is_empty()
            && !std::str::from_utf8(channel).is_ok_and(names::is_valid_channel_name)
        {
            return Err(ProtoError::new(
                ErrorCode::BadChannel,
                format!("{verb} channel name '{}' is not valid", lossy(channel)),
            ));
        }
        let has_channel = !channel.is_empty();
        let line_bytes = buf.split_to(line.len).freeze();
        let topic = name(&line_bytes, topic_range);
        let channel = has_channel.then(|| name(&line_bytes, channel_range));
        Ok(if register {
            LookupCommand::Register { topic, channel }
        } else {
            LookupCommand::Unregister { topic, channel }
        })
    }
}

fn word<'a>(buf: &'a [u8], range: &Range<usize>) -> &'a [u8] {
    buf.get(range.clone()).unwrap_or_default()
}

fn name(line: &Bytes, range: &Range<usize>) -> Name {
    if range.end <= line.len() && range.start <= range.end {
        Name::from_bytes(line.slice(range.clone()))
    } else {
        Name::default()
    }
}

fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// The range of `line` left after Go's `strings.TrimSpace` (ASCII and Unicode white space).
fn trim_space(line: &[u8]) -> Range<usize> {
    let mut start = 0;
    let mut end = line.len();
    while start < end {
        match leading_space_len(line.get(start..end).unwrap_or_default()) {
            0 => break,
            n => start += n,
        }
    }
    while start < end {
        match trailing_space_len(line.get(start..end).unwrap_or_default()) {
            0 => break,
            n => end -= n,
        }
    }
    start..end
}

/// The byte length of a white-space character at the start of `s`, or 0.
fn leading_space_len(s: &[u8]) -> usize {
    let head = s.get(..4).unwrap_or(s);
    let valid = match std::str::from_utf8(head) {
        Ok(text) => text,
        Err(e) => {
            std::str::from_utf8(head.get(..e.valid_up_to()).unwrap_or_default()).unwrap_or_default()
        }
    };
    match valid.chars().next() {
        Some(c) if c.is_whitespace() => c.len_utf8(),
        _ => 0,
    }
}

/// The byte length of a white-space character at the end of `s`, or 0.
fn trailing_space_len(s: &[u8]) -> usize {
    for len in 1..=4.min(s.len()) {
        let Some(tail) = s.get(s.len() - len..) else {
            break;
        };
        if let Ok(text) = std::str::from_utf8(tail) {
            return match text.chars().next() {
                Some(c) if c.is_whitespace() && c.len_utf8() == len => len,
                _ => 0,
            };
        }
    }
    0
}
