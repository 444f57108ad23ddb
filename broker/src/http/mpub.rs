//! The two body formats of `POST /mpub`, split into message bodies without copying. Pure.
//!
//! Mirrors `nsqd/http.go` `doMPUB`: text mode reads newline-separated messages and silently
//! skips empty lines; binary mode is the TCP MPUB body (`protocol_v2.go` `readMPUB`):
//! ```text
//! [ i32 count ]( [ i32 size ][ size bytes ] ) * count        (big endian)
//! ```
//! The HTTP layer reads at most `max_body_size + 1` bytes (upstream's `LimitReader` bound for
//! text mode); [`split_text`] replays upstream's loop over exactly those bytes, so the first
//! error is the one upstream reports.

use bytes::Bytes;

/// Why an MPUB body was refused; [`MpubError::code`] is upstream's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpubError {
    /// The body exceeds `--max-body-size`.
    BodyTooBig,
    /// A text-mode line exceeds `--max-msg-size`.
    MsgTooBig,
    /// Binary mode: the count is missing, not positive, or more than the body can hold.
    BadBody,
    /// Binary mode: a size is missing, not positive or too big, or a body is short.
    BadMessage,
}

impl MpubError {
    /// Upstream's error message (the TCP code without `E_` in binary mode).
    pub fn code(self) -> &'static str {
        match self {
            MpubError::BodyTooBig => "BODY_TOO_BIG",
            MpubError::MsgTooBig => "MSG_TOO_BIG",
            MpubError::BadBody => "BAD_BODY",
            MpubError::BadMessage => "BAD_MESSAGE",
        }
    }
}

/// Text mode: `body` holds at most `read_max` = `max_body_size + 1` bytes; reaching `read_max`
/// means the body was too big. Lines longer than `max_msg_size` are refused.
///
/// # Errors
/// [`MpubError::BodyTooBig`] or [`MpubError::MsgTooBig`], whichever upstream's loop meets first.
pub fn split_text(
    body: &Bytes,
    read_max: usize,
    max_msg_size: usize,
) -> Result<Vec<Bytes>, MpubError> {
    let mut messages = Vec::new();
    let mut total = 0usize;
    let mut start = 0usize;
    while start < body.len() {
        let rest = body.get(start..).unwrap_or_default();
        let block_len = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => i + 1,
            None => rest.len(),
        };
        total += block_len;
        if total == read_max {
            return Err(MpubError::BodyTooBig);
        }
        let end = start + block_len;
        let line_end = if body.get(end - 1) == Some(&b'\n') {
            end - 1
        } else {
            end
        };
        let line_len = line_end - start;
        if line_len > max_msg_size {
            return Err(MpubError::MsgTooBig);
        }
        if line_len > 0 {
            messages.push(body.slice(start..line_end));
        }
        start = end;
    }
    Ok(messages)
}

/// Binary mode. `truncated` says `body` stops at the read bound: running out of bytes then
/// means the body was too big rather than malformed.
///
/// # Errors
/// [`MpubError::BadBody`], [`MpubError::BadMessage`], or [`MpubError::BodyTooBig`].
pub fn split_binary(
    body: &Bytes,
    truncated: bool,
    max_msg_size: u32,
    max_count: u32,
) -> Result<Vec<Bytes>, MpubError> {
    let short = |otherwise: MpubError| {
        if truncated {
            MpubError::BodyTooBig
        } else {
            otherwise
        }
    };
    let count = read_i32(body, 0).ok_or_else(|| short(MpubError::BadBody))?;
    if count <= 0 || count.unsigned_abs() > max_count {
        return Err(MpubError::BadBody);
    }
    let mut messages = Vec::with_capacity(count.unsigned_abs() as usize);
    let mut at = 4usize;
    for _ in 0..count {
        let size = read_i32(body, at).ok_or_else(|| short(MpubError::BadMessage))?;
        if size <= 0 || size.unsigned_abs() > max_msg_size {
            return Err(MpubError::BadMessage);
        }
        let start = at + 4;
        let end = start + size.unsigned_abs() as usize;
        if end > body.len() {
            return Err(short(MpubError::BadMessage));
        }
        messages.push(body.slice(start..end));
        at = end;
    }
    Ok(messages)
}

fn read_i32(body: &[u8], at: usize) -> Option<i32> {
    let bytes: [u8; 4] = body.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(i32::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(body: &str, read_max: usize, max_msg: usize) -> Result<Vec<String>, MpubError> {
        split_text(&Bytes::from(body.to_owned()), read_max, max_msg).map(|v| {
            v.iter()
                .map(|b| String::from_utf8(b.to_vec()).unwrap())
                .collect()
        })
    }

    fn binary(parts: &[&[u8]]) -> Bytes {
        let mut out = (parts.len() as i32).to_be_bytes().to_vec();
        for p in parts {
            out.extend_from_slice(&(p.len() as i32).to_be_bytes());
            out.extend_from_slice(p);
        }
        Bytes::from(out)
    }

    #[test]
    fn text_mode_splits_on_newlines_and_skips_empty_lines() {
        assert_eq!(
            text("one\ntwo\n\nthree\n", 1001, 100).unwrap(),
            ["one", "two", "three"]
        );
        assert_eq!(text("t1\nt2", 1001, 100).unwrap(), ["t1", "t2"]);
        assert!(text("", 1001, 100).unwrap().is_empty());
        assert!(text("\n\n", 1001, 100).unwrap().is_empty());
    }

    #[test]
    fn text_mode_limits_at_the_edge() {
        let exact = "m".repeat(100);
        assert_eq!(
            text(&exact, 1001, 100).unwrap(),
            std::slice::from_ref(&exact)
        );
        assert_eq!(
            text(&format!("ok\n{exact}m\n"), 1001, 100),
            Err(MpubError::MsgTooBig)
        );
        // 1000 bytes is the limit; 1001 read bytes mean the body is bigger.
        let lines = format!("{exact}\n").repeat(10);
        assert_eq!(lines.len(), 1010);
        assert_eq!(text(&lines[..1000], 1001, 100).unwrap().len(), 10);
        assert_eq!(text(&lines[..1001], 1001, 100), Err(MpubError::BodyTooBig));
        // An earlier too-long line wins over the body size, as upstream's loop meets it first.
        let body = format!("{exact}mm\n{}", "m".repeat(900));
        assert_eq!(text(&body[..1001], 1001, 100), Err(MpubError::MsgTooBig));
    }

    #[test]
    fn binary_mode_reads_count_and_sizes() {
        let msgs = split_binary(&binary(&[b"b1", b"b2", b"b3"]), false, 100, 199).unwrap();
        assert_eq!(
            msgs,
            [Bytes::from("b1"), Bytes::from("b2"), Bytes::from("b3")]
        );
        // Bytes after the last message are ignored, as upstream stops reading there.
        let mut extra = binary(&[b"x"]).to_vec();
        extra.extend_from_slice(b"junk");
        assert_eq!(
            split_binary(&Bytes::from(extra), false, 100, 199)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn binary_mode_errors_are_upstreams() {
        let bad = |body: &[u8]| split_binary(&Bytes::copy_from_slice(body), false, 100, 199);
        assert_eq!(bad(b""), Err(MpubError::BadBody));
        assert_eq!(bad(&[0, 0, 0, 0]), Err(MpubError::BadBody));
        assert_eq!(bad(&(-1i32).to_be_bytes()), Err(MpubError::BadBody));
        assert_eq!(bad(b"hello\nworld\n"), Err(MpubError::BadBody));
        assert_eq!(bad(&200i32.to_be_bytes()), Err(MpubError::BadBody));
        assert_eq!(
            bad(b"\x00\x00\x00\x02\x00\x00\x00\x02b1"),
            Err(MpubError::BadMessage)
        );
        assert_eq!(
            bad(b"\x00\x00\x00\x01\x00\x00\x00\x00"),
            Err(MpubError::BadMessage)
        );
        assert_eq!(
            bad(b"\x00\x00\x00\x01\x00\x00\x00\x65"),
            Err(MpubError::BadMessage)
        );
        assert_eq!(
            bad(b"\x00\x00\x00\x01\x00\x00\x00\x05abc"),
            Err(MpubError::BadMessage)
        );
        assert_eq!(bad(b"\x00\x00\x00\x01\x00\x00"), Err(MpubError::BadMessage));
    }

    #[test]
    fn binary_mode_running_out_of_a_truncated_body_is_too_big() {
        let body = binary(&[b"abc", b"def"]);
        let cut = body.slice(..body.len() - 1);
        assert_eq!(
            split_binary(&cut, true, 100, 199),
            Err(MpubError::BodyTooBig)
        );
        assert_eq!(
            split_binary(&cut, false, 100, 199),
            Err(MpubError::BadMessage)
        );
    }
}
