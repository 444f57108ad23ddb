//! Encoders of lookup protocol V1: commands (the broker's side) and replies (the lookup
//! service's side), appended to a `BytesMut`.
//!
//! Mirrors go-nsq's `command.go` (`Identify`, `Register`, `UnRegister`, `Ping`, as nsqd's
//! `lookup_peer.go` sends them) and upstream `internal/protocol/protocol.go` (`SendResponse`:
//! `[u32 size][data]`, no frame type).

use bytes::{BufMut, BytesMut};

use super::command::LookupCommand;
use crate::error::ProtoError;
use crate::v2::Name;

/// Appends one command as a broker sends it.
///
/// ```text
/// IDENTIFY\n [u32 size, big-endian][JSON body]
/// REGISTER <topic>[ <channel>]\n
/// UNREGISTER <topic>[ <channel>]\n
/// PING\n
/// ```
///
/// # Examples
/// ```
/// use bytes::BytesMut;
/// use sluice_proto::lookup::{put_lookup_command, LookupCommand};
/// use sluice_proto::Name;
///
/// let mut out = BytesMut::new();
/// let cmd = LookupCommand::Register { topic: Name::new("t"), channel: Some(Name::new("c")) };
/// put_lookup_command(&mut out, &cmd);
/// assert_eq!(&out[..], b"REGISTER t c\n");
/// ```
pub fn put_lookup_command(out: &mut BytesMut, cmd: &LookupCommand) {
    match cmd {
        LookupCommand::Identify(body) => {
            out.reserve(9 + 4 + body.len());
            out.put_slice(b"IDENTIFY\n");
            put_size(out, body.len());
            out.put_slice(body);
        }
        LookupCommand::Register { topic, channel } => {
            put_line(out, b"REGISTER", topic, channel.as_ref());
        }
        LookupCommand::Unregister { topic, channel } => {
            put_line(out, b"UNREGISTER", topic, channel.as_ref());
        }
        LookupCommand::Ping => out.put_slice(b"PING\n"),
    }
}

fn put_line(out: &mut BytesMut, verb: &[u8], topic: &Name, channel: Option<&Name>) {
    out.put_slice(verb);
    out.put_u8(b' ');
    out.put_slice(topic.as_bytes());
    if let Some(channel) = channel {
        out.put_u8(b' ');
        out.put_slice(channel.as_bytes());
    }
    out.put_u8(b'\n');
}

/// Appends one reply as the lookup service sends it: `[u32 size, big-endian][data]`.
///
/// # Examples
/// ```
/// use bytes::BytesMut;
/// use sluice_proto::lookup::put_reply;
///
/// let mut out = BytesMut::new();
/// put_reply(&mut out, b"OK");
/// assert_eq!(&out[..], b"\x00\x00\x00\x02OK");
/// ```
pub fn put_reply(out: &mut BytesMut, data: &[u8]) {
    out.reserve(4 + data.len());
    put_size(out, data.len());
    out.put_slice(data);
}

/// Appends an error reply: `E_CODE description` (or the bare code), size-prefixed.
pub fn put_error(out: &mut BytesMut, err: &ProtoError) {
    put_reply(out, err.frame_text().as_bytes());
}

/// Writes a length as the 4-byte big-endian prefix. Lengths here come from our own bounded
/// buffers; one beyond `u32::MAX` would be a bug, so it saturates rather than wraps.
fn put_size(out: &mut BytesMut, len: usize) {
    out.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
}
