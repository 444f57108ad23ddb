//! Publishing encoders that write from borrowed slices straight into an output buffer.
//!
//! `sluice_proto::v2::put_command` needs owned `Bytes` bodies; a publisher that builds many
//! bodies per batch would allocate one per message. These write the same bytes (go-nsq
//! `command.go`: `Publish`, `MultiPublish`, `DeferredPublish`) with no intermediate value, and
//! [`MpubWriter`] lets a caller fill each body in place. No IO here.
//!
//! MPUB layout:
//! ```text
//! MPUB <topic>\n [u32 body size][u32 count] ([u32 size][body])*
//!                 body size counts everything after itself
//! ```

use bytes::{BufMut, BytesMut};
use std::time::Duration;

/// Appends `PUB <topic>\n[u32 size][body]`.
///
/// # Examples
/// ```
/// let mut out = bytes::BytesMut::new();
/// sluice_client::encode::put_pub(&mut out, "t", b"hi");
/// assert_eq!(&out[..], b"PUB t\n\0\0\0\x02hi");
/// ```
pub fn put_pub(out: &mut BytesMut, topic: &str, body: &[u8]) {
    out.reserve(topic.len() + body.len() + 10);
    out.put_slice(b"PUB ");
    out.put_slice(topic.as_bytes());
    out.put_u8(b'\n');
    put_sized(out, body);
}

/// Appends `DPUB <topic> <defer_ms>\n[u32 size][body]`.
///
/// # Examples
/// ```
/// let mut out = bytes::BytesMut::new();
/// sluice_client::encode::put_dpub(&mut out, "t", std::time::Duration::from_secs(1), b"hi");
/// assert_eq!(&out[..], b"DPUB t 1000\n\0\0\0\x02hi");
/// ```
pub fn put_dpub(out: &mut BytesMut, topic: &str, delay: Duration, body: &[u8]) {
    let ms = delay.as_millis().to_string();
    out.reserve(topic.len() + ms.len() + body.len() + 11);
    out.put_slice(b"DPUB ");
    out.put_slice(topic.as_bytes());
    out.put_u8(b' ');
    out.put_slice(ms.as_bytes());
    out.put_u8(b'\n');
    put_sized(out, body);
}

/// Appends one MPUB of `bodies`.
///
/// # Examples
/// ```
/// let mut out = bytes::BytesMut::new();
/// sluice_client::encode::put_mpub(&mut out, "t", &[b"a".as_slice(), b"bc".as_slice()]);
/// assert_eq!(&out[..], b"MPUB t\n\0\0\0\x0f\0\0\0\x02\0\0\0\x01a\0\0\0\x02bc");
/// ```
pub fn put_mpub<B: AsRef<[u8]>>(out: &mut BytesMut, topic: &str, bodies: &[B]) {
    let mut writer = MpubWriter::begin(out, topic);
    for body in bodies {
        writer.push(body.as_ref());
    }
    writer.finish();
}

/// Builds one MPUB in place: the line and placeholders first, bodies appended one by one,
/// sizes patched by [`MpubWriter::finish`].
#[derive(Debug)]
pub struct MpubWriter<'a> {
    out: &'a mut BytesMut,
    /// Where the command starts (to undo an empty batch).
    command_start: usize,
    /// Where the u32 body size sits.
    size_at: usize,
    count: u32,
}

impl<'a> MpubWriter<'a> {
    /// Writes `MPUB <topic>\n` and room for the body size and count.
    pub fn begin(out: &'a mut BytesMut, topic: &str) -> MpubWriter<'a> {
        let command_start = out.len();
        out.reserve(topic.len() + 14);
        out.put_slice(b"MPUB ");
        out.put_slice(topic.as_bytes());
        out.put_u8(b'\n');
        let size_at = out.len();
        out.put_u64(0);
        MpubWriter {
            out,
            command_start,
            size_at,
            count: 0,
        }
    }

    /// Appends one body.
    pub fn push(&mut self, body: &[u8]) {
        put_sized(self.out, body);
        self.count += 1;
    }

    /// Appends one body of `len` bytes that `fill` writes in place (the slice starts zeroed).
    pub fn push_with(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) {
        self.out.reserve(4 + len);
        self.out.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
        let start = self.out.len();
        self.out.put_bytes(0, len);
        if let Some(body) = self.out.get_mut(start..) {
            fill(body);
        }
        self.count += 1;
    }

    /// Bodies appended so far.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Bytes the command takes so far.
    pub fn len(&self) -> usize {
        self.out.len() - self.command_start
    }

    /// Whether no body was appended yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Patches the sizes and returns the number of bodies. An MPUB with no body is invalid,
    /// so an empty one is removed from the buffer and 0 returned.
    pub fn finish(self) -> u32 {
        if self.count == 0 {
            self.out.truncate(self.command_start);
            return 0;
        }
        let body_len = self.out.len() - self.size_at - 4;
        let mut sizes = [0u8; 8];
        sizes[..4].copy_from_slice(&u32::try_from(body_len).unwrap_or(u32::MAX).to_be_bytes());
        sizes[4..].copy_from_slice(&self.count.to_be_bytes());
        if let Some(slot) = self.out.get_mut(self.size_at..self.size_at + 8) {
            slot.copy_from_slice(&sizes);
        }
        self.count
    }
}

fn put_sized(out: &mut BytesMut, body: &[u8]) {
    out.put_u32(u32::try_from(body.len()).unwrap_or(u32::MAX));
    out.put_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sluice_proto::v2::{put_command, Command, Name};

    fn proto_bytes(cmd: &Command) -> BytesMut {
        let mut out = BytesMut::new();
        put_command(&mut out, cmd);
        out
    }

    #[test]
    fn same_bytes_as_the_proto_encoder() {
        let bodies = vec![Bytes::from_static(b"one"), Bytes::from(vec![7u8; 300])];
        let mut out = BytesMut::new();
        put_mpub(&mut out, "topic", &bodies);
        let mpub = Command::Mpub {
            topic: Name::new("topic"),
            bodies: bodies.clone(),
        };
        assert_eq!(out, proto_bytes(&mpub));

        let mut out = BytesMut::new();
        put_pub(&mut out, "topic", b"body");
        let publish = Command::Pub {
            topic: Name::new("topic"),
            body: Bytes::from_static(b"body"),
        };
        assert_eq!(out, proto_bytes(&publish));

        let mut out = BytesMut::new();
        put_dpub(&mut out, "topic", Duration::from_millis(1500), b"body");
        let dpub = Command::Dpub {
            topic: Name::new("topic"),
            defer: Duration::from_millis(1500),
            body: Bytes::from_static(b"body"),
        };
        assert_eq!(out, proto_bytes(&dpub));
    }

    #[test]
    fn push_with_fills_in_place_and_decodes() {
        let mut out = BytesMut::from(&b"NOP\n"[..]);
        let mut writer = MpubWriter::begin(&mut out, "t");
        writer.push_with(3, |body| body.copy_from_slice(b"abc"));
        writer.push(b"de");
        assert_eq!(writer.finish(), 2);
        let mut decoder = sluice_proto::v2::CommandDecoder::new(sluice_proto::Limits::default());
        assert_eq!(decoder.decode(&mut out).unwrap(), Some(Command::Nop));
        let Some(Command::Mpub { bodies, .. }) = decoder.decode(&mut out).unwrap() else {
            panic!("not an mpub");
        };
        assert_eq!(
            bodies,
            vec![Bytes::from_static(b"abc"), Bytes::from_static(b"de")]
        );
    }

    #[test]
    fn an_empty_batch_leaves_the_buffer_as_it_was() {
        let mut out = BytesMut::from(&b"NOP\n"[..]);
        let writer = MpubWriter::begin(&mut out, "t");
        assert!(writer.is_empty());
        assert_eq!(writer.finish(), 0);
        assert_eq!(&out[..], b"NOP\n");
    }
}
