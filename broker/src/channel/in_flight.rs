//! In-flight messages of one channel: the id index and the deadline order.
//!
//! Mirrors upstream `nsqd/in_flight_pqueue.go` together with the `inFlightMessages` map of
//! `nsqd/channel.go` (`pushInFlightMessage`, `popInFlightMessage`, `TouchMessage`,
//! `processInFlightQueue`). No IO, no clock: every time is an argument.
//!
//! Upstream keeps one binary heap ordered by deadline and removes from it on every FIN, an
//! O(log n) step per message. We use the fact that a consumer's `msg_timeout` is fixed: every
//! deadline set at delivery (or by a TOUCH that is not capped) is `now + timeout`, and `now`
//! never decreases, so the records of one timeout value arrive already sorted. Each distinct
//! timeout gets a FIFO *lane* of `(deadline, serial, id)` records; a FIN or TOUCH does not search
//! the lane, it only makes the old record stale (its serial no longer matches the entry). The
//! few deadlines that break the order (a TOUCH capped at `delivery + max_msg_timeout`, or a clock
//! that went backwards) go to a small binary heap. Stale records are dropped from lane fronts as
//! they surface and by an occasional compaction, so a lane never holds more than about twice its
//! live records plus a constant. Finding the next deadline looks at the front of each lane and
//! the top of the heap; there are as many lanes as distinct `msg_timeout` values in use
//! (usually one).

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use sluice_proto::{Message, MessageId};

use super::{later, ChannelError, ConsumerId};

/// A `HashMap` with [`FastHasher`].
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// A small multiply-fold hasher for message ids and consumer ids.
///
/// Keys are 16-byte ids the broker generated itself (a client can only name ids that are in
/// flight to it), so there is no hash-flooding concern and no need for SipHash's cost.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FastHasher {
    hash: u64,
}

const HASH_MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;
const HASH_FINISH: u64 = 0xd6e8_feb8_6659_fd93;

/// Multiplies to 128 bits and folds the halves, so every input bit reaches every output bit.
fn fold_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.hash = fold_multiply(self.hash ^ word, HASH_MULTIPLIER);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            if let Some(head) = word.get_mut(..rest.len()) {
                head.copy_from_slice(rest);
            }
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }

    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }

    fn finish(&self) -> u64 {
        fold_multiply(self.hash, HASH_FINISH)
    }
}

/// A deadline lane: one per distinct `msg_timeout` among consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LaneId(usize);

/// A message in flight to one consumer.
#[derive(Debug)]
pub(crate) struct InFlightEntry {
    /// The message as delivered (attempts already counts this delivery).
    pub(crate) msg: Message,
    /// The consumer it was delivered to.
    pub(crate) consumer: ConsumerId,
    /// When it was delivered (upstream `deliveryTS`).
    pub(crate) delivered_at: Instant,
    /// When it times out (upstream `pri`).
    pub(crate) deadline: Instant,
    /// The lane of the consumer's timeout (TOUCH extends by this lane's timeout).
    lane: LaneId,
    /// The serial of the one record that is current for this entry.
    serial: u64,
    /// Whether that record is in the irregular heap rather than in `lane`.
    irregular: bool,
}

/// One deadline record; it is current only while its entry still carries `serial`.
#[derive(Debug, Clone, Copy)]
struct DeadlineRecord {
    deadline: Instant,
    serial: u64,
    id: MessageId,
}

impl PartialEq for DeadlineRecord {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for DeadlineRecord {}
impl PartialOrd for DeadlineRecord {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for DeadlineRecord {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.deadline, self.serial).cmp(&(other.deadline, other.serial))
    }
}

#[derive(Debug)]
struct Lane {
    timeout: Duration,
    /// Records in deadline order, current and stale.
    records: VecDeque<DeadlineRecord>,
    /// Current records in `records`.
    live: usize,
    /// Entries delivered through this lane (their TOUCH needs `timeout`).
    refs: usize,
    /// Consumers using this timeout.
    users: usize,
}

/// Stale records a lane or the heap may hold beyond twice its live ones before compaction.
const COMPACT_SLACK: usize = 64;

/// The in-flight set: id → entry, ordered by deadline.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    entries: FastMap<MessageId, InFlightEntry>,
    lanes: Vec<Lane>,
    irregular: BinaryHeap<Reverse<DeadlineRecord>>,
    irregular_live: usize,
    next_serial: u64,
}

impl InFlight {
    /// Number of messages in flight.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The lane for consumers with `timeout`, creating or reusing one.
    pub(crate) fn acquire_lane(&mut self, timeout: Duration) -> LaneId {
        if let Some(index) = self.lanes.iter().position(|l| l.timeout == timeout) {
            if let Some(lane) = self.lanes.get_mut(index) {
                lane.users += 1;
            }
            return LaneId(index);
        }
        let fresh = Lane {
            timeout,
            records: VecDeque::new(),
            live: 0,
            refs: 0,
            users: 1,
        };
        // A lane nobody uses and nothing references holds only stale records: reuse its slot.
        if let Some(index) = self.lanes.iter().position(|l| l.users == 0 && l.refs == 0) {
            if let Some(slot) = self.lanes.get_mut(index) {
                *slot = fresh;
                return LaneId(index);
            }
        }
        self.lanes.push(fresh);
        LaneId(self.lanes.len() - 1)
    }

    /// A consumer of `lane` left.
    pub(crate) fn release_lane(&mut self, lane: LaneId) {
        if let Some(lane) = self.lanes.get_mut(lane.0) {
            lane.users = lane.users.saturating_sub(1);
        }
    }

    /// Puts `msg` in flight to `consumer` from `now`, with the lane's timeout (callers clamp the
    /// timeout to `max_msg_timeout` when the consumer joins).
    ///
    /// Returns the stored message, or gives `msg` back when its id is already in flight (upstream
    /// `pushInFlightMessage`: "ID already in flight").
    pub(crate) fn insert(
        &mut self,
        now: Instant,
        consumer: ConsumerId,
        lane: LaneId,
        msg: Message,
    ) -> Result<&Message, Message> {
        if self.entries.contains_key(&msg.id) {
            return Err(msg);
        }
        let Some(timeout) = self.lanes.get(lane.0).map(|l| l.timeout) else {
            return Err(msg);
        };
        let deadline = later(now, timeout);
        let id = msg.id;
        let (serial, irregular) = self.push_record(id, lane, deadline, true);
        if let Some(l) = self.lanes.get_mut(lane.0) {
            l.refs += 1;
        }
        let entry = InFlightEntry {
            msg,
            consumer,
            delivered_at: now,
            deadline,
            lane,
            serial,
            irregular,
        };
        Ok(&self.entries.entry(id).or_insert(entry).msg)
    }

    /// Removes `id` when it is in flight to `consumer` (FIN, REQ).
    ///
    /// # Errors
    /// [`ChannelError::NotInFlight`] or [`ChannelError::NotOwner`], as upstream's
    /// `popInFlightMessage` checks them, in that order.
    pub(crate) fn take(
        &mut self,
        id: &MessageId,
        consumer: ConsumerId,
    ) -> Result<InFlightEntry, ChannelError> {
        match self.entries.get(id) {
            None => return Err(ChannelError::NotInFlight),
            Some(entry) if entry.consumer != consumer => return Err(ChannelError::NotOwner),
            Some(_) => {}
        }
        let entry = self.entries.remove(id).ok_or(ChannelError::NotInFlight)?;
        self.forget(&entry);
        Ok(entry)
    }

    /// Extends the deadline of `id` (TOUCH): `now` + its consumer's timeout, but never beyond
    /// `delivered_at + max_msg_timeout` (upstream `TouchMessage`).
    ///
    /// # Errors
    /// [`ChannelError::NotInFlight`] or [`ChannelError::NotOwner`].
    pub(crate) fn touch(
        &mut self,
        now: Instant,
        id: &MessageId,
        consumer: ConsumerId,
        max_msg_timeout: Duration,
    ) -> Result<(), ChannelError> {
        let (lane, delivered_at, old_irregular) = match self.entries.get(id) {
            None => return Err(ChannelError::NotInFlight),
            Some(e) if e.consumer != consumer => return Err(ChannelError::NotOwner),
            Some(e) => (e.lane, e.delivered_at, e.irregular),
        };
        let timeout = self.lanes.get(lane.0).map_or(Duration::ZERO, |l| l.timeout);
        let wanted = later(now, timeout);
        let cap = later(delivered_at, max_msg_timeout);
        // Upstream: `if newTimeout.Sub(msg.deliveryTS) >= MaxMsgTimeout { newTimeout = cap }`.
        let (deadline, regular) = if wanted >= cap {
            (cap, false)
        } else {
            (wanted, true)
        };
        let (serial, irregular) = self.push_record(*id, lane, deadline, regular);
        if let Some(entry) = self.entries.get_mut(id) {
            entry.deadline = deadline;
            entry.serial = serial;
            entry.irregular = irregular;
        }
        // Only now is the old record stale, so the trim below can drop it.
        self.forget_record(lane, old_irregular);
        Ok(())
    }

    /// Removes and returns the entry with the earliest deadline if that deadline is `<= now`
    /// (upstream `PeekAndShift`). Stale records met on the way are discarded.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<InFlightEntry> {
        loop {
            let (record, source) = self.earliest()?;
            let current = self
                .entries
                .get(&record.id)
                .is_some_and(|e| e.serial == record.serial);
            if current && record.deadline > now {
                return None;
            }
            match source {
                Some(lane) => {
                    if let Some(l) = self.lanes.get_mut(lane) {
                        l.records.pop_front();
                    }
                }
                None => {
                    self.irregular.pop();
                }
            }
            if !current {
                continue;
            }
            let entry = self.entries.remove(&record.id)?;
            // The record is already popped: only the counters change.
            self.uncount(&entry);
            return Some(entry);
        }
    }

    /// The earliest deadline among the records. It may belong to a record made stale by a FIN
    /// since the last [`InFlight::pop_expired`], which only means an early, harmless wake-up.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.earliest().map(|(record, _)| record.deadline)
    }

    /// Drops every entry (upstream `initPQ` from `Empty`). Lanes and their users stay.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        for lane in &mut self.lanes {
            lane.records.clear();
            lane.live = 0;
            lane.refs = 0;
        }
        self.irregular.clear();
        self.irregular_live = 0;
    }

    /// The entries, in no particular order (for tests and invariant checks).
    #[cfg(test)]
    pub(crate) fn entries(&self) -> impl Iterator<Item = &InFlightEntry> {
        self.entries.values()
    }

    /// Number of deadline records held, current and stale (for tests).
    #[cfg(test)]
    pub(crate) fn record_count(&self) -> usize {
        self.lanes.iter().map(|l| l.records.len()).sum::<usize>() + self.irregular.len()
    }

    /// The earliest record and where it is: `Some(lane index)` or `None` for the heap.
    fn earliest(&self) -> Option<(DeadlineRecord, Option<usize>)> {
        let mut best: Option<(DeadlineRecord, Option<usize>)> = None;
        for (index, lane) in self.lanes.iter().enumerate() {
            if let Some(front) = lane.records.front() {
                if precedes(front, best.as_ref()) {
                    best = Some((*front, Some(index)));
                }
            }
        }
        if let Some(Reverse(top)) = self.irregular.peek() {
            if precedes(top, best.as_ref()) {
                best = Some((*top, None));
            }
        }
        best
    }

    /// Appends a record; lanes take it only when it keeps their order.
    fn push_record(
        &mut self,
        id: MessageId,
        lane: LaneId,
        deadline: Instant,
        regular: bool,
    ) -> (u64, bool) {
        self.next_serial += 1;
        let record = DeadlineRecord {
            deadline,
            serial: self.next_serial,
            id,
        };
        if regular {
            if let Some(l) = self.lanes.get_mut(lane.0) {
                if l.records
                    .back()
                    .map_or(true, |back| back.deadline <= deadline)
                {
                    l.records.push_back(record);
                    l.live += 1;
                    return (record.serial, false);
                }
            }
        }
        self.irregular.push(Reverse(record));
        self.irregular_live += 1;
        (record.serial, true)
    }

    /// Bookkeeping after `entry` left the index while its record is still queued.
    fn forget(&mut self, entry: &InFlightEntry) {
        if let Some(l) = self.lanes.get_mut(entry.lane.0) {
            l.refs = l.refs.saturating_sub(1);
        }
        self.forget_record(entry.lane, entry.irregular);
    }

    /// Bookkeeping after the record popped in `pop_expired` left with its entry.
    fn uncount(&mut self, entry: &InFlightEntry) {
        if let Some(l) = self.lanes.get_mut(entry.lane.0) {
            l.refs = l.refs.saturating_sub(1);
            if !entry.irregular {
                l.live = l.live.saturating_sub(1);
            }
        }
        if entry.irregular {
            self.irregular_live = self.irregular_live.saturating_sub(1);
        }
    }

    /// One record of `lane` (or of the heap) stopped being current: trim and compact.
    fn forget_record(&mut self, lane: LaneId, irregular: bool) {
        let entries = &self.entries;
        let is_current =
            |r: &DeadlineRecord| entries.get(&r.id).is_some_and(|e| e.serial == r.serial);
        if irregular {
            self.irregular_live = self.irregular_live.saturating_sub(1);
            if self.irregular.len() > 2 * self.irregular_live + COMPACT_SLACK {
                self.irregular.retain(|Reverse(r)| is_current(r));
            }
            return;
        }
        let Some(l) = self.lanes.get_mut(lane.0) else {
            return;
        };
        l.live = l.live.saturating_sub(1);
        // FINs mostly arrive in delivery order, so stale records gather at the front; each
        // record is popped at most once, which keeps this O(1) amortized.
        while l.records.front().is_some_and(|r| !is_current(r)) {
            l.records.pop_front();
        }
        if l.records.len() > 2 * l.live + COMPACT_SLACK {
            l.records.retain(|r| is_current(r));
        }
    }
}

/// Whether `candidate` comes before the best record found so far (or there is none).
fn precedes(candidate: &DeadlineRecord, best: Option<&(DeadlineRecord, Option<usize>)>) -> bool {
    best.map_or(true, |(best, _)| candidate < best)
}
