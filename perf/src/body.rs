//! The body of every message sluice-perf publishes: a small header that lets the consumer
//! measure end-to-end latency and check delivery, then filler up to `--size`.
//!
//! Layout (big-endian), 24 bytes then filler:
//! ```text
//! [ u64 intended publish time, ns since the Unix epoch ]
//! [ u32 run id ][ u16 producer ][ u16 topic index ][ u64 sequence in (producer, topic) ]
//! [ filler bytes 'x' … ]
//! ```
//! The time is when the message was *meant* to be sent (see `pacer`), so a stalled publisher
//! shows up as latency rather than vanishing from it (coordinated omission). Pure: no IO.

/// Bytes of the header; `--size` must be at least this.
pub const HEADER_LEN: usize = 24;

/// What the header of one message says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Intended publish time, ns since the Unix epoch.
    pub sent_ns: u64,
    /// Which run published it (messages left over from another run are told apart).
    pub run_id: u32,
    /// The publishing connection's index.
    pub producer: u16,
    /// The topic's index.
    pub topic: u16,
    /// The message's number in its (producer, topic) stream, from 0.
    pub seq: u64,
}

impl Stamp {
    /// Writes the header into the start of `body` and fills the rest; `body` must hold at
    /// least [`HEADER_LEN`] bytes (shorter bodies get a truncated header).
    pub fn write(&self, body: &mut [u8]) {
        let mut header = [0u8; HEADER_LEN];
        header[0..8].copy_from_slice(&self.sent_ns.to_be_bytes());
        header[8..12].copy_from_slice(&self.run_id.to_be_bytes());
        header[12..14].copy_from_slice(&self.producer.to_be_bytes());
        header[14..16].copy_from_slice(&self.topic.to_be_bytes());
        header[16..24].copy_from_slice(&self.seq.to_be_bytes());
        let n = body.len().min(HEADER_LEN);
        body[..n].copy_from_slice(&header[..n]);
        body[n..].fill(b'x');
    }

    /// Reads the header of a body, if it is long enough to have one.
    pub fn read(body: &[u8]) -> Option<Stamp> {
        let header: &[u8; HEADER_LEN] = body.get(..HEADER_LEN)?.try_into().ok()?;
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&header[at..at + 8]);
            u64::from_be_bytes(b)
        };
        Some(Stamp {
            sent_ns: u64_at(0),
            run_id: u32::from_be_bytes([header[8], header[9], header[10], header[11]]),
            producer: u16::from_be_bytes([header[12], header[13]]),
            topic: u16::from_be_bytes([header[14], header[15]]),
            seq: u64_at(16),
        })
    }
}

/// Nanoseconds since the Unix epoch, now (0 if the clock is before 1970).
pub fn wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_short_bodies_have_none() {
        let stamp = Stamp {
            sent_ns: 1_700_000_000_123_456_789,
            run_id: 0xdead_beef,
            producer: 7,
            topic: 999,
            seq: u64::MAX - 1,
        };
        let mut body = vec![0u8; 100];
        stamp.write(&mut body);
        assert_eq!(Stamp::read(&body), Some(stamp));
        assert!(body[HEADER_LEN..].iter().all(|b| *b == b'x'));
        assert_eq!(Stamp::read(&body[..HEADER_LEN - 1]), None);
        let mut short = [0u8; 10];
        stamp.write(&mut short);
        assert_eq!(&short[..8], &stamp.sent_ns.to_be_bytes());
    }
}
