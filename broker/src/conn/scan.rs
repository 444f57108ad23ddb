//! Finds where the next command ends without decoding it: the framing rules of the V2
//! protocol (a line, and for IDENTIFY, AUTH, PUB, MPUB and DPUB a sized body after it).
//!
//! The transport uses it to hand commands to the connection's cycle one at a time while that
//! matters: before IDENTIFY's upgrades (bytes after an upgrading IDENTIFY belong to TLS or the
//! decompressor, not to the command decoder), before AUTH's answer, while `--tls-required`
//! waits for TLS, and while a client's authorizations need refreshing before a PUB or SUB.
//! It never judges a command: anything it cannot frame is handed on as is, and the decoder
//! (`proto::v2::CommandDecoder`) reports the error upstream's way. Before it waits for more
//! bytes it asks the decoder whether it would wait too (on a copy of the line and the size
//! fields, a few bytes), so a command the decoder refuses from its line alone (`PUB\n`) is
//! never held back.

use bytes::BytesMut;
use sluice_proto::v2::{CommandDecoder, Verb};
use sluice_proto::Limits;

/// Bytes of a body size.
const SIZE_LEN: usize = 4;

/// The framing of the command at the front of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// More bytes are needed to know where it ends.
    Incomplete,
    /// It cannot be framed (line too long, bad size): let the decoder report it.
    Unframed,
    /// A command of `len` bytes whose first word is `word` (a known verb or not).
    Command {
        /// The verb, if the first word is one.
        verb: Option<Verb>,
        /// The first word of the line, as sent (for upstream's `cannot %s …`).
        word: Vec<u8>,
        /// Bytes from the start of the buffer to the end of the command.
        len: usize,
    },
}

/// Frames the command at the front of `buf`.
pub fn next_command(buf: &[u8], limits: &Limits) -> Scan {
    let window = buf.get(..limits.max_line_len).unwrap_or(buf);
    let Some(newline) = window.iter().position(|&b| b == b'\n') else {
        return if buf.len() >= limits.max_line_len {
            Scan::Unframed
        } else {
            Scan::Incomplete
        };
    };
    let word = first_word(buf, limits).unwrap_or_default();
    let verb = Verb::from_bytes(word);
    let line_len = newline + 1;
    let body_max = match verb {
        Some(Verb::Pub | Verb::Dpub) => limits.max_msg_size,
        Some(Verb::Identify | Verb::Auth | Verb::Mpub) => limits.max_body_size,
        _ => {
            return Scan::Command {
                verb,
                word: word.to_vec(),
                len: line_len,
            }
        }
    };
    let Some(size) = buf.get(line_len..line_len + SIZE_LEN) else {
        return incomplete(buf, line_len, limits);
    };
    let size = i32::from_be_bytes(size.try_into().unwrap_or_default());
    let Some(size) = u32::try_from(size).ok().filter(|&s| s > 0 && s <= body_max) else {
        return Scan::Unframed;
    };
    let len = line_len + SIZE_LEN + size as usize;
    if buf.len() < len {
        return incomplete(buf, line_len, limits);
    }
    Scan::Command {
        verb,
        word: word.to_vec(),
        len,
    }
}

/// `Incomplete` if the decoder also waits for more after this line and its size fields (body
/// size, MPUB count), else `Unframed`: the decoder refuses what it has already.
fn incomplete(buf: &[u8], line_len: usize, limits: &Limits) -> Scan {
    let probe_len = (line_len + 2 * SIZE_LEN).min(buf.len());
    let mut probe = BytesMut::from(buf.get(..probe_len).unwrap_or_default());
    match CommandDecoder::new(limits.clone()).decode(&mut probe) {
        Ok(None) => Scan::Incomplete,
        Ok(Some(_)) | Err(_) => Scan::Unframed,
    }
}

/// The first word of the first line of `buf`, once that line is complete.
pub fn first_word<'a>(buf: &'a [u8], limits: &Limits) -> Option<&'a [u8]> {
    let window = buf.get(..limits.max_line_len).unwrap_or(buf);
    let newline = window.iter().position(|&b| b == b'\n')?;
    let mut line = window.get(..newline).unwrap_or_default();
    if let Some(stripped) = line.strip_suffix(b"\r") {
        line = stripped;
    }
    line.split(|&b| b == b' ').next()
}

/// The length of the longest prefix of `buf` made of whole commands, and whether any of them is
/// one of `verbs`. A prefix that cannot be framed ends the scan and is included whole (the
/// decoder will refuse it).
pub fn whole_commands(buf: &[u8], limits: &Limits, verbs: &[Verb]) -> (usize, bool) {
    let mut at = 0;
    let mut found = false;
    while let Some(rest) = buf.get(at..).filter(|r| !r.is_empty()) {
        match next_command(rest, limits) {
            Scan::Incomplete => break,
            Scan::Unframed => return (buf.len(), found),
            Scan::Command { verb, len, .. } => {
                found |= verb.is_some_and(|v| verbs.contains(&v));
                at += len;
            }
        }
    }
    (at, found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(bytes: &[u8]) -> Scan {
        next_command(bytes, &Limits::default())
    }

    #[test]
    fn frames_lines_and_bodies() {
        assert_eq!(
            scan(b"NOP\nRDY 1\n"),
            Scan::Command {
                verb: Some(Verb::Nop),
                word: b"NOP".to_vec(),
                len: 4
            }
        );
        assert_eq!(
            scan(b"PUB t\r\n\x00\x00\x00\x02hiNOP\n"),
            Scan::Command {
                verb: Some(Verb::Pub),
                word: b"PUB".to_vec(),
                len: 13
            }
        );
        assert_eq!(
            scan(b"BOGUS x\n"),
            Scan::Command {
                verb: None,
                word: b"BOGUS".to_vec(),
                len: 8
            }
        );
        assert_eq!(scan(b"IDENTIFY\n\x00\x00\x00\x05{}"), Scan::Incomplete);
        assert_eq!(scan(b"AUTH\n\x00\x00"), Scan::Incomplete);
        assert_eq!(scan(b"SUB a"), Scan::Incomplete);
        assert_eq!(scan(b"AUTH\n\xff\xff\xff\xff"), Scan::Unframed);
        assert_eq!(scan(b"PUB t\n\x00\x10\x00\x01"), Scan::Unframed);
        assert_eq!(scan(&[b'x'; 2000]), Scan::Unframed);
    }

    #[test]
    fn lines_the_decoder_refuses_are_never_held_back() {
        for line in [
            &b"PUB\n"[..],
            b"PUB bad/topic\n",
            b"DPUB t\n",
            b"DPUB t -5\n",
            b"AUTH x\n",
            b"MPUB t\n\x00\x00\x00\x10\x00\x00\x00\x00",
        ] {
            assert_eq!(
                scan(line),
                Scan::Unframed,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        assert_eq!(
            scan(b"MPUB t\n\x00\x00\x00\x10\x00\x00\x00\x01"),
            Scan::Incomplete
        );
    }

    #[test]
    fn whole_commands_stop_at_a_partial_one() {
        let limits = Limits::default();
        let buf = b"NOP\nPUB t\n\x00\x00\x00\x01xFIN 0123456789abcdef\nSUB a ";
        let (len, found) = whole_commands(buf, &limits, &[Verb::Sub]);
        assert_eq!((len, found), (buf.len() - 6, false));
        let (_, found) = whole_commands(buf, &limits, &[Verb::Pub, Verb::Sub]);
        assert!(found);
        let (len, _) = whole_commands(b"NOP\nPUB t\n\x7f\x00\x00\x00", &limits, &[]);
        assert_eq!(len, 14, "an unframed command is handed on whole");
    }

    #[test]
    fn every_prefix_of_valid_commands_scans_consistently() {
        let limits = Limits::default();
        let stream = b"IDENTIFY\n\x00\x00\x00\x02{}AUTH\n\x00\x00\x00\x03sekSUB t c\nRDY 5\nMPUB t\n\x00\x00\x00\x0b\x00\x00\x00\x01\x00\x00\x00\x03abc";
        let ends = [15, 27, 35, 41, stream.len()];
        for cut in 0..=stream.len() {
            let (len, _) = whole_commands(&stream[..cut], &limits, &[]);
            let expected = ends.iter().rev().find(|&&e| e <= cut).copied().unwrap_or(0);
            assert_eq!(len, expected, "cut at {cut}");
        }
    }
}
