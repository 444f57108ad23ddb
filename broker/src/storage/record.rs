//! The segment log's record format: framing, checksums and the message batch codec.
//!
//! Pure: bytes in, values out; no IO. Every record is framed and checksummed, so a reader can
//! tell a clean end, a torn tail (crash mid-write) and corruption apart:
//!
//! ```text
//! frame:  [len: u32 LE][crc32: u32 LE][body: len bytes]        crc32 (IEEE) over body
//! body:   [kind: u8][...]
//! kind 1, a batch of messages of one topic:
//!         [topic_len: u8][topic: topic_len bytes][incarnation: u64][count: u32]
//!         count × [id: 16][timestamp_ns: i64][due_ns: i64, 0 = not deferred][attempts: u16]
//!                 [body_len: u32][body]
//! ```
//! Message ids are the order within a topic: a topic lives on one shard, whose id generator
//! only goes forward (also across restarts: recovery moves it past the newest id in the log).
//! A `len` of zero is padding (or never-written space): the end of the data in that segment.

use bytes::{Buf, BufMut, Bytes};

use sluice_proto::{Message, MessageId};

/// Bytes of a frame header: length and checksum.
pub const FRAME_HEADER_LEN: usize = 8;
/// The largest record body accepted when reading (a bound against garbage lengths): a full
/// MPUB at the largest `--max-body-size` plus per-message overhead stays far below it.
pub const MAX_RECORD_LEN: u32 = 1 << 30;

const KIND_BATCH: u8 = 1;
const PER_MESSAGE_OVERHEAD: usize = 16 + 8 + 8 + 2 + 4;

/// A message as stored: the wire message and its due time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Wall-clock due time of a deferred message (ns since the epoch), 0 when not deferred.
    pub due_ns: i64,
    /// The message (attempts as published: 0).
    pub msg: Message,
}

impl StoredMessage {
    /// The id as a number: the message's order in its topic.
    pub fn key(&self) -> u64 {
        self.msg.id.to_u64().unwrap_or(0)
    }
}

/// A decoded batch record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The topic.
    pub topic: String,
    /// Which life of the topic (a deleted and re-created topic gets a new one).
    pub incarnation: u64,
    /// The messages, in sequence order.
    pub messages: Vec<StoredMessage>,
}

/// What a reader found at an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// A whole, valid record, and the length of its frame.
    Record(Batch, usize),
    /// Not enough bytes for a whole frame: read more, or (at the end of the file) a torn tail.
    Incomplete,
    /// Padding or never-written space: the end of the data.
    End,
    /// The frame is complete but its checksum or contents are wrong.
    Corrupt(&'static str),
}

/// Appends one batch record for `messages` (with their due times, 0 when not deferred) to `out`.
pub fn put_batch<'a>(
    out: &mut Vec<u8>,
    topic: &str,
    incarnation: u64,
    messages: impl ExactSizeIterator<Item = (&'a Message, i64)>,
) {
    let start = out.len();
    out.put_u32_le(0);
    out.put_u32_le(0);
    let body_start = out.len();
    out.put_u8(KIND_BATCH);
    let topic = topic
        .as_bytes()
        .get(..usize::from(u8::MAX))
        .unwrap_or(topic.as_bytes());
    out.put_u8(topic.len() as u8);
    out.put_slice(topic);
    out.put_u64_le(incarnation);
    out.put_u32_le(messages.len() as u32);
    for (msg, due_ns) in messages {
        out.reserve(PER_MESSAGE_OVERHEAD + msg.body.len());
        out.put_slice(msg.id.as_bytes());
        out.put_i64_le(msg.timestamp);
        out.put_i64_le(due_ns);
        out.put_u16_le(msg.attempts);
        out.put_u32_le(msg.body.len() as u32);
        out.put_slice(&msg.body);
    }
    let body_len = (out.len() - body_start) as u32;
    let crc = crc32fast::hash(out.get(body_start..).unwrap_or_default());
    if let Some(header) = out.get_mut(start..start + FRAME_HEADER_LEN) {
        header[..4].copy_from_slice(&body_len.to_le_bytes());
        header[4..].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Reads the record at the start of `data`. Bodies share `data`'s buffer.
pub fn read(data: &Bytes) -> Read {
    let Some(header) = data.get(..FRAME_HEADER_LEN) else {
        return if !data.is_empty() && data.iter().all(|&b| b == 0) {
            Read::End
        } else {
            Read::Incomplete
        };
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 {
        return if crc == 0 {
            Read::End
        } else {
            Read::Corrupt("zero length with a checksum")
        };
    }
    if len > MAX_RECORD_LEN {
        return Read::Corrupt("record length out of range");
    }
    let frame_len = FRAME_HEADER_LEN + len as usize;
    let Some(body) = data.get(FRAME_HEADER_LEN..frame_len) else {
        return Read::Incomplete;
    };
    if crc32fast::hash(body) != crc {
        return Read::Corrupt("checksum mismatch");
    }
    match decode_body(data.slice(FRAME_HEADER_LEN..frame_len)) {
        Some(batch) => Read::Record(batch, frame_len),
        None => Read::Corrupt("malformed record body"),
    }
}

fn decode_body(mut body: Bytes) -> Option<Batch> {
    if body.remaining() < 2 || body.get_u8() != KIND_BATCH {
        return None;
    }
    let topic_len = usize::from(body.get_u8());
    if body.remaining() < topic_len + 12 {
        return None;
    }
    let topic = String::from_utf8(body.split_to(topic_len).to_vec()).ok()?;
    let incarnation = body.get_u64_le();
    let count = body.get_u32_le() as usize;
    if count > body.remaining() / PER_MESSAGE_OVERHEAD {
        return None;
    }
    let mut messages = Vec::with_capacity(count);
    for _ in 0..count {
        if body.remaining() < PER_MESSAGE_OVERHEAD {
            return None;
        }
        let id = MessageId::from_slice(&body.split_to(16)).ok()?;
        let timestamp = body.get_i64_le();
        let due_ns = body.get_i64_le();
        let attempts = body.get_u16_le();
        let len = body.get_u32_le() as usize;
        if body.remaining() < len {
            return None;
        }
        let payload = body.split_to(len);
        messages.push(StoredMessage {
            due_ns,
            msg: Message {
                id,
                timestamp,
                attempts,
                body: payload,
            },
        });
    }
    if body.has_remaining() {
        return None;
    }
    Some(Batch {
        topic,
        incarnation,
        messages,
    })
}

#[cfg(test)]
mod tests;
