//! Messages: the id, the wire layout and the id generator.
//!
//! Mirrors upstream `nsqd/message.go` and `nsqd/guid.go`.
//!
//! Wire layout of a message (the payload of a message frame, big-endian):
//! ```text
//! [x][x][x][x][x][x][x][x][x][x][x][x][x][x][x][x][x][x][x][x][x][x][x][x][x][x]...
//! |       (int64)        ||    ||      (hex string encoded in ASCII)           || (binary)
//! |       8-byte         ||    ||                 16-byte                      || N-byte
//! ------------------------------------------------------------------------------------------...
//!   nanosecond timestamp    ^^                   message ID                       message body
//!                        (uint16)
//!                         2-byte
//!                        attempts
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::fmt;

use crate::error::{ErrorCode, ProtoError};

/// Bytes of a message id.
pub const MESSAGE_ID_LEN: usize = 16;
/// Bytes before the body: timestamp, attempts, id.
pub const MESSAGE_HEADER_LEN: usize = 8 + 2 + MESSAGE_ID_LEN;

/// A message id: 16 ASCII bytes (upstream writes lowercase hex; clients may echo anything).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MessageId(pub [u8; MESSAGE_ID_LEN]);

impl MessageId {
    /// The id of a 64-bit guid, as upstream's `guid.Hex()`: 16 lowercase hex digits.
    pub fn from_u64(value: u64) -> MessageId {
        fn hex_digit(nibble: u8) -> u8 {
            if nibble < 10 {
                b'0' + nibble
            } else {
                b'a' + (nibble - 10)
            }
        }
        let mut out = [0u8; MESSAGE_ID_LEN];
        for (pair, byte) in out.chunks_exact_mut(2).zip(value.to_be_bytes()) {
            pair.copy_from_slice(&[hex_digit(byte >> 4), hex_digit(byte & 0x0f)]);
        }
        MessageId(out)
    }

    /// The guid back from a lowercase or uppercase hex id, if it is one.
    pub fn to_u64(&self) -> Option<u64> {
        let text = std::str::from_utf8(&self.0).ok()?;
        u64::from_str_radix(text, 16).ok()
    }

    /// Takes an id from exactly 16 bytes.
    ///
    /// # Errors
    /// `E_INVALID invalid message ID` when the slice is not 16 bytes long: v1.3.0's text for
    /// FIN/REQ/TOUCH (golden `fin_bad_id_length`; older releases capitalised it).
    pub fn from_slice(bytes: &[u8]) -> Result<MessageId, ProtoError> {
        let array: [u8; MESSAGE_ID_LEN] = bytes
            .try_into()
            .map_err(|_| ProtoError::new(ErrorCode::Invalid, "invalid message ID"))?;
        Ok(MessageId(array))
    }

    /// The id as bytes.
    pub fn as_bytes(&self) -> &[u8; MESSAGE_ID_LEN] {
        &self.0
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({})", String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

/// A message as it travels to a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The id.
    pub id: MessageId,
    /// Nanoseconds since the Unix epoch when the broker accepted it.
    pub timestamp: i64,
    /// How many times it has been delivered (the frame carries the count including this delivery).
    pub attempts: u16,
    /// The body, shared with the read buffer it came from.
    pub body: Bytes,
}

impl Message {
    /// Bytes of the wire form: header plus body.
    pub fn wire_len(&self) -> usize {
        MESSAGE_HEADER_LEN + self.body.len()
    }

    /// Appends the wire form (no frame header).
    pub fn put(&self, out: &mut BytesMut) {
        out.reserve(self.wire_len());
        out.put_i64(self.timestamp);
        out.put_u16(self.attempts);
        out.put_slice(&self.id.0);
        out.put_slice(&self.body);
    }

    /// Decodes the wire form (the data of a message frame).
    ///
    /// # Errors
    /// `E_BAD_MESSAGE` when `data` is shorter than the header.
    pub fn decode(mut data: Bytes) -> Result<Message, ProtoError> {
        if data.len() < MESSAGE_HEADER_LEN {
            return Err(ProtoError::new(
                ErrorCode::BadMessage,
                format!("message too short {} < {}", data.len(), MESSAGE_HEADER_LEN),
            ));
        }
        let timestamp = data.get_i64();
        let attempts = data.get_u16();
        let id = MessageId::from_slice(&data.split_to(MESSAGE_ID_LEN))?;
        Ok(Message {
            id,
            timestamp,
            attempts,
            body: data,
        })
    }
}

/// Upstream's custom epoch for guids (milliseconds, Twitter's snowflake epoch).
const GUID_EPOCH_MS: i64 = 1_288_834_974_288;
const NODE_ID_BITS: u32 = 10;
const SEQUENCE_BITS: u32 = 12;
const SEQUENCE_MASK: u64 = (1 << SEQUENCE_BITS) - 1;
/// The largest node id (10 bits).
pub const MAX_NODE_ID: u16 = (1 << NODE_ID_BITS) - 1;

/// Generates message ids with upstream's layout: `(tick - epoch) << 22 | node_id << 12 | seq`,
/// where a tick is 2^20 ns.
///
/// Upstream refuses (and its topic sleeps) once 4096 ids were made in one tick, which caps a
/// topic near 3.9 M ids/s. This generator never refuses: when a tick's sequence is used up it
/// moves on to the next tick before the clock does, so ids stay unique and increasing and a
/// burst simply runs ahead of the clock until the rate drops. Time is passed in.
#[derive(Debug, Clone)]
pub struct IdGenerator {
    node_id: u64,
    last_tick: i64,
    /// Index within the tick; the sequence field is `index * stride + offset`.
    index: u64,
    stride: u64,
    offset: u64,
}

impl IdGenerator {
    /// A generator for `node_id` (only the low 10 bits are used, as upstream masks it).
    pub fn new(node_id: u16) -> IdGenerator {
        IdGenerator::with_stride(node_id, 0, 1)
    }

    /// A generator that only uses sequence values `offset`, `offset + stride`, …: several
    /// generators with the same node id and distinct offsets below a common stride (one per
    /// shard of a broker) never make the same id. `stride` is clamped to 1..=4096.
    pub fn with_stride(node_id: u16, offset: u64, stride: u64) -> IdGenerator {
        let stride = stride.clamp(1, SEQUENCE_MASK + 1);
        IdGenerator {
            node_id: u64::from(node_id & MAX_NODE_ID),
            last_tick: i64::MIN,
            index: 0,
            stride,
            offset: offset % stride,
        }
    }

    /// Makes every later id greater than `id` (after a restart, `id` is the newest in the log;
    /// the clock may be behind where a burst left the generator).
    pub fn advance_past(&mut self, id: u64) {
        let tick =
            (id >> (NODE_ID_BITS + SEQUENCE_BITS)) as i64 + ((GUID_EPOCH_MS * 1_000_000) >> 20);
        if tick >= self.last_tick {
            // Continue in the next tick: simple, and ids stay unique whatever `id`'s sequence was.
            self.last_tick = tick + 1;
            self.index = 0;
        }
    }

    /// The next id at wall-clock time `now_ns` (nanoseconds since the Unix epoch).
    pub fn next_id(&mut self, now_ns: i64) -> MessageId {
        MessageId::from_u64(self.next_u64(now_ns))
    }

    /// The next guid as a number.
    pub fn next_u64(&mut self, now_ns: i64) -> u64 {
        let tick = now_ns >> 20;
        let per_tick = (SEQUENCE_MASK + 1) / self.stride;
        if tick > self.last_tick {
            self.last_tick = tick;
            self.index = 0;
        } else {
            // The same tick, or the clock went backwards: keep counting from where we are so
            // that ids never repeat.
            self.index += 1;
            if self.index >= per_tick {
                self.index = 0;
                self.last_tick += 1;
            }
        }
        let sequence = self.index * self.stride + self.offset;
        let since_epoch = (self.last_tick - ((GUID_EPOCH_MS * 1_000_000) >> 20)).max(0) as u64;
        (since_epoch << (NODE_ID_BITS + SEQUENCE_BITS)) | (self.node_id << SEQUENCE_BITS) | sequence
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_hex_round_trip() {
        let id = MessageId::from_u64(0x0123_4567_89ab_cdef);
        assert_eq!(&id.0, b"0123456789abcdef");
        assert_eq!(id.to_u64(), Some(0x0123_4567_89ab_cdef));
    }

    #[test]
    fn message_wire_round_trip() {
        let msg = Message {
            id: MessageId::from_u64(7),
            timestamp: 1_700_000_000_000_000_000,
            attempts: 3,
            body: Bytes::from_static(b"hello"),
        };
        let mut buf = BytesMut::new();
        msg.put(&mut buf);
        assert_eq!(buf.len(), msg.wire_len());
        assert_eq!(Message::decode(buf.freeze()).unwrap(), msg);
    }

    #[test]
    fn short_message_is_bad_message() {
        let err = Message::decode(Bytes::from_static(b"short")).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadMessage);
    }

    #[test]
    fn generator_never_repeats_and_never_blocks_within_one_tick() {
        let mut gen = IdGenerator::new(5);
        let now = 1_700_000_000_000_000_000;
        let mut last = 0;
        // Ten million ids at one frozen instant: more than 2000 ticks' worth of sequence.
        for _ in 0..10_000_000u32 {
            let id = gen.next_u64(now);
            assert!(id > last);
            last = id;
        }
        assert_eq!((last >> SEQUENCE_BITS) & u64::from(MAX_NODE_ID), 5);
    }

    #[test]
    fn strided_generators_never_collide() {
        let now = 1_700_000_000_000_000_000;
        let mut a = IdGenerator::with_stride(3, 0, 2);
        let mut b = IdGenerator::with_stride(3, 1, 2);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20_000 {
            assert!(seen.insert(a.next_u64(now)));
            assert!(seen.insert(b.next_u64(now)));
        }
    }

    #[test]
    fn advance_past_moves_beyond_an_id_from_the_future() {
        let now = 1_700_000_000_000_000_000;
        let mut ahead = IdGenerator::new(1);
        let mut last = 0;
        for _ in 0..100_000 {
            last = ahead.next_u64(now);
        }
        let mut restarted = IdGenerator::new(1);
        restarted.advance_past(last);
        assert!(restarted.next_u64(now) > last);
    }

    #[test]
    fn generator_survives_a_clock_going_backwards() {
        let mut gen = IdGenerator::new(1);
        let a = gen.next_u64(2_000_000_000_000_000_000);
        let b = gen.next_u64(1_000_000_000_000_000_000);
        assert!(b > a);
    }
}
