//! Deferred messages of one channel (DPUB, and REQ with a delay), ordered by due time.
//!
//! Mirrors the `deferredPQ` half of upstream `nsqd/channel.go` (`StartDeferredTimeout`,
//! `processDeferredQueue`) and `internal/pqueue`. No IO, no clock: every time is an argument.
//!
//! Upstream also keeps a `deferredMessages` map to refuse an id deferred twice; here a message
//! is in exactly one place by construction (the channel moves it, never copies it), so the heap
//! alone is enough. Messages due at the same instant come out in the order they were deferred.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::Instant;

use sluice_proto::Message;

#[derive(Debug)]
struct DeferredEntry {
    due: Instant,
    /// Insertion order, so that equal due times keep FIFO order.
    seq: u64,
    msg: Message,
}

impl PartialEq for DeferredEntry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for DeferredEntry {}
impl PartialOrd for DeferredEntry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for DeferredEntry {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// The due-time heap.
#[derive(Debug, Default)]
pub(crate) struct Deferred {
    heap: BinaryHeap<Reverse<DeferredEntry>>,
    next_seq: u64,
}

impl Deferred {
    /// Number of deferred messages.
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Defers `msg` until `due`.
    pub(crate) fn push(&mut self, due: Instant, msg: Message) {
        self.next_seq += 1;
        self.heap.push(Reverse(DeferredEntry {
            due,
            seq: self.next_seq,
            msg,
        }));
    }

    /// Removes and returns the earliest message if it is due at `now` (due time `<= now`, as
    /// upstream's `PeekAndShift`).
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Message> {
        if self.heap.peek()?.0.due > now {
            return None;
        }
        self.heap.pop().map(|Reverse(entry)| entry.msg)
    }

    /// When the earliest message is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(entry)| entry.due)
    }

    /// Drops every deferred message (upstream `Empty`).
    pub(crate) fn clear(&mut self) {
        self.heap.clear();
    }

    /// The deferred messages with their due times, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Instant, &Message)> {
        self.heap
            .iter()
            .map(|Reverse(entry)| (entry.due, &entry.msg))
    }
}
