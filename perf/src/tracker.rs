//! Delivery accounting: which numbered messages arrived, how many twice, how many never.
//!
//! Every message carries its sequence number in its (producer, topic) stream (see `body`).
//! A [`SeqTracker`] keeps a sliding bitmap per stream: everything below `base` has arrived,
//! and bit `i` stands for `base + i`. Memory stays proportional to how far out of order
//! messages arrive, not to how many there are, so a billion-message run fits. Pure.

use std::collections::{BTreeMap, VecDeque};

/// The widest out-of-order window tracked, in 64-bit words (2^21 words = 128 Mi sequence
/// numbers, 16 MiB). A message further ahead than that forces the oldest words out; their
/// missing messages then count as lost even if they arrive later (as duplicates).
pub const MAX_WINDOW_WORDS: usize = 1 << 21;

/// The arrivals of one stream.
#[derive(Debug, Clone, Default)]
pub struct SeqTracker {
    base: u64,
    words: VecDeque<u64>,
    unique: u64,
    duplicates: u64,
    /// Sequence numbers given up on when the window overflowed.
    abandoned: u64,
}

impl SeqTracker {
    /// Records an arrival; returns whether it was the first of this number.
    pub fn record(&mut self, seq: u64) -> bool {
        if seq < self.base {
            self.duplicates += 1;
            return false;
        }
        let offset = seq - self.base;
        let word = usize::try_from(offset / 64).unwrap_or(usize::MAX);
        if word >= MAX_WINDOW_WORDS {
            self.slide_to(seq);
            return self.record(seq);
        }
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let bit = 1u64 << (offset % 64);
        let Some(slot) = self.words.get_mut(word) else {
            return false;
        };
        if *slot & bit != 0 {
            self.duplicates += 1;
            return false;
        }
        *slot |= bit;
        self.unique += 1;
        while self.words.front() == Some(&u64::MAX) {
            self.words.pop_front();
            self.base += 64;
        }
        true
    }

    /// Drops the oldest words until `seq` fits in the window.
    fn slide_to(&mut self, seq: u64) {
        let window = (MAX_WINDOW_WORDS as u64 - 1) * 64;
        while seq - self.base >= window {
            let word = self.words.pop_front().unwrap_or(0);
            self.abandoned += u64::from(64 - word.count_ones());
            self.base += 64;
        }
    }

    /// Distinct numbers seen.
    pub fn unique(&self) -> u64 {
        self.unique
    }

    /// Arrivals of a number already seen.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Of the numbers `0..published`, how many never arrived.
    pub fn missing(&self, published: u64) -> u64 {
        published.saturating_sub(self.unique)
    }
}

/// The arrivals of every stream of one channel, keyed by (producer, topic).
#[derive(Debug, Clone, Default)]
pub struct ChannelTracker {
    streams: BTreeMap<(u16, u16), SeqTracker>,
    /// Messages from another run or without a header.
    pub foreign: u64,
}

/// Totals of a delivery check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Messages the broker acknowledged (times the channels that should get each).
    pub expected: u64,
    /// Distinct messages received.
    pub unique: u64,
    /// Messages expected and never received.
    pub lost: u64,
    /// Receipts of a message already received.
    pub duplicates: u64,
    /// Messages received that this run did not publish.
    pub foreign: u64,
    /// Distinct messages of this run received on a channel of another topic.
    pub misrouted: u64,
}

impl Delivery {
    /// Adds another channel's totals.
    pub fn add(&mut self, other: &Delivery) {
        self.expected += other.expected;
        self.unique += other.unique;
        self.lost += other.lost;
        self.duplicates += other.duplicates;
        self.foreign += other.foreign;
        self.misrouted += other.misrouted;
    }
}

impl ChannelTracker {
    /// Records an arrival of message `seq` from `producer` on `topic`.
    pub fn record(&mut self, producer: u16, topic: u16, seq: u64) {
        self.streams
            .entry((producer, topic))
            .or_default()
            .record(seq);
    }

    /// Distinct messages received so far.
    pub fn unique(&self) -> u64 {
        self.streams.values().map(SeqTracker::unique).sum()
    }

    /// Compares arrivals with what was published: `published(producer, topic)` is how many
    /// messages of that stream the broker acknowledged (numbered from 0).
    pub fn check(&self, published: &BTreeMap<(u16, u16), u64>) -> Delivery {
        let mut delivery = Delivery {
            foreign: self.foreign,
            ..Delivery::default()
        };
        for (stream, count) in published {
            delivery.expected += count;
            match self.streams.get(stream) {
                Some(tracker) => delivery.lost += tracker.missing(*count),
                None => delivery.lost += count,
            }
        }
        for (stream, tracker) in &self.streams {
            if published.contains_key(stream) {
                delivery.unique += tracker.unique();
            } else {
                delivery.misrouted += tracker.unique();
            }
            delivery.duplicates += tracker.duplicates();
        }
        delivery
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_out_of_order_and_repeated_arrivals() {
        let mut t = SeqTracker::default();
        for seq in (0..1000).rev() {
            assert!(t.record(seq));
        }
        assert!(!t.record(3));
        assert!(!t.record(999));
        assert_eq!((t.unique(), t.duplicates(), t.missing(1000)), (1000, 2, 0));
        assert!(
            t.words.len() <= 1,
            "the window did not slide: {}",
            t.words.len()
        );
        assert!(t.record(1005));
        assert_eq!(t.missing(1006), 5);
    }

    #[test]
    fn a_huge_gap_slides_the_window_instead_of_growing_it() {
        let mut t = SeqTracker::default();
        t.record(1);
        t.record(10_000_000_000);
        assert!(t.words.len() <= MAX_WINDOW_WORDS);
        assert_eq!(t.unique(), 2);
        assert!(t.abandoned > 0);
    }

    #[test]
    fn channel_check_counts_lost_duplicate_and_foreign_per_stream() {
        let mut ch = ChannelTracker::default();
        for seq in 0..10 {
            ch.record(0, 0, seq);
        }
        ch.record(0, 0, 4);
        for seq in 0..5 {
            ch.record(1, 0, seq);
        }
        ch.foreign = 2;
        ch.record(0, 9, 0);
        let published = BTreeMap::from([((0, 0), 10), ((1, 0), 8), ((2, 0), 3)]);
        let d = ch.check(&published);
        assert_eq!(
            d,
            Delivery {
                expected: 21,
                unique: 15,
                lost: 3 + 3,
                duplicates: 1,
                foreign: 2,
                misrouted: 1,
            }
        );
    }
}
