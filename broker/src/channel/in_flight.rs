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
use std::collections::hash_map::Entry;
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
    deadlines: Deadlines,
}

/// The deadline records: lanes plus the heap for out-of-order deadlines.
#[derive(Debug, Default)]
struct Deadlines {
    lanes: Vec<Lane>,
    irregular: BinaryHeap<Reverse<DeadlineRecord>>,
    /// Current records in `irregular`.
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
        self.deadlines.acquire_lane(timeout)
    }

    /// A consumer of `lane` left.
    pub(crate) fn release_lane(&mut self, lane: LaneId) {
        if let Some(lane) = self.deadlines.lanes.get_mut(lane.0) {
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
        let Some(timeout) = self.deadlines.lanes.get(lane.0).map(|l| l.timeout) else {
            return Err(msg);
        };
        let slot = match self.entries.entry(msg.id) {
            Entry::Occupied(_) => return Err(msg),
            Entry::Vacant(slot) => slot,
        };
        let deadline = later(now, timeout);
        let (serial, irregular) = self.deadlines.push(msg.id, lane, deadline, true);
        if let Some(l) = self.deadlines.lanes.get_mut(lane.0) {
            l.refs += 1;
        }
        let entry = slot.insert(InFlightEntry {
            msg,
            consumer,
            delivered_at: now,
            deadline,
            lane,
            serial,
            irregular,
        });
        Ok(&entry.msg)
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
        let entry = match self.entries.entry(*id) {
            Entry::Vacant(_) => return Err(ChannelError::NotInFlight),
            Entry::Occupied(o) if o.get().consumer != consumer => {
                return Err(ChannelError::NotOwner)
            }
            Entry::Occupied(o) => o.remove(),
        };
        if let Some(l) = self.deadlines.lanes.get_mut(entry.lane.0) {
            l.refs = l.refs.saturating_sub(1);
        }
        // The entry is gone, so its record is stale now.
        self.deadlines
            .forget(&self.entries, entry.lane, entry.irregular);
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
        let entry = match self.entries.get_mut(id) {
            None => return Err(ChannelError::NotInFlight),
            Some(e) if e.consumer != consumer => return Err(ChannelError::NotOwner),
            Some(e) => e,
        };
        let (lane, old_irregular) = (entry.lane, entry.irregular);
        let timeout = self
            .deadlines
            .lanes
            .get(lane.0)
            .map_or(Duration::ZERO, |l| l.timeout);
        let wanted = later(now, timeout);
        let cap = later(entry.delivered_at, max_msg_timeout);
        // Upstream: `if newTimeout.Sub(msg.deliveryTS) >= MaxMsgTimeout { newTimeout = cap }`.
        let (deadline, regular) = if wanted >= cap {
            (cap, false)
        } else {
            (wanted, true)
        };
        let (serial, irregular) = self.deadlines.push(*id, lane, deadline, regular);
        entry.deadline = deadline;
        entry.serial = serial;
        entry.irregular = irregular;
        // Only now is the old record stale, so the trim in `forget` can drop it.
        self.deadlines.forget(&self.entries, lane, old_irregular);
        Ok(())
    }

    /// Removes and returns the entry with the earliest deadline if that deadline is `<= now`
    /// (upstream `PeekAndShift`). Stale records met on the way are discarded.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<InFlightEntry> {
        loop {
            let (record, source) = self.deadlines.earliest()?;
            let current = is_current(&self.entries, &record);
            if current && record.deadline > now {
                return None;
            }
            self.deadlines.pop(source);
            if !current {
                continue;
            }
            let entry = self.entries.remove(&record.id)?;
            // The record is already popped: only the counters change.
            let deadlines = &mut self.deadlines;
            if let Some(l) = deadlines.lanes.get_mut(entry.lane.0) {
                l.refs = l.refs.saturating_sub(1);
                if !entry.irregular {
                    l.live = l.live.saturating_sub(1);
                }
            }
            if entry.irregular {
                deadlines.irregular_live = deadlines.irregular_live.saturating_sub(1);
            }
            return Some(entry);
        }
    }

    /// The earliest deadline among the records. It may belong to a record made stale by a FIN
    /// since the last [`InFlight::pop_expired`], which only means an early, harmless wake-up.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.earliest().map(|(record, _)| record.deadline)
    }

    /// Drops every entry (upstream `initPQ` from `Empty`). Lanes and their users stay.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        let deadlines = &mut self.deadlines;
        for lane in &mut deadlines.lanes {
            lane.records.clear();
            lane.live = 0;
            lane.refs = 0;
        }
        deadlines.irregular.clear();
        deadlines.irregular_live = 0;
    }

    /// The entries, in no particular order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = &InFlightEntry> {
        self.entries.values()
    }

    /// Number of deadline records held, current and stale (for tests).
    #[cfg(test)]
    pub(crate) fn record_count(&self) -> usize {
        let lanes = self.deadlines.lanes.iter();
        lanes.map(|l| l.records.len()).sum::<usize>() + self.deadlines.irregular.len()
    }
}

/// Whether `record` is the current record of its entry.
fn is_current(entries: &FastMap<MessageId, InFlightEntry>, record: &DeadlineRecord) -> bool {
    entries
        .get(&record.id)
        .is_some_and(|e| e.serial == record.serial)
}

impl Deadlines {
    fn acquire_lane(&mut self, timeout: Duration) -> LaneId {
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

    /// Removes the record `earliest` found.
    fn pop(&mut self, source: Option<usize>) {
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
    }

    /// Appends a record; lanes take it only when it keeps their order.
    fn push(
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
                    .is_none_or(|back| back.deadline <= deadline)
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

    /// One record of `lane` (or of the heap) stopped being current: trim and compact.
    fn forget(
        &mut self,
        entries: &FastMap<MessageId, InFlightEntry>,
        lane: LaneId,
        irregular: bool,
    ) {
        if irregular {
            self.irregular_live = self.irregular_live.saturating_sub(1);
            if self.irregular.len() > 2 * self.irregular_live + COMPACT_SLACK {
                self.irregular.retain(|Reverse(r)| is_current(entries, r));
            }
            return;
        }
        let Some(l) = self.lanes.get_mut(lane.0) else {
            return;
        };
        l.live = l.live.saturating_sub(1);
        // FINs mostly arrive in delivery order, so stale records gather at the front; each
        // record is popped at most once, which keeps this O(1) amortized.
        while l.records.front().is_some_and(|r| !is_current(entries, r)) {
            l.records.pop_front();
        }
        if l.records.len() > 2 * l.live + COMPACT_SLACK {
            l.records.retain(|r| is_current(entries, r));
        }
    }
}

/// Whether `candidate` comes before the best record found so far (or there is none).
fn precedes(candidate: &DeadlineRecord, best: Option<&(DeadlineRecord, Option<usize>)>) -> bool {
    best.is_none_or(|(best, _)| candidate < best)
}
