//! The consumers of one channel: RDY, in-flight counts, per-consumer counters, and the fair
//! choice of who receives the next message.
//!
//! Mirrors the consumer side of upstream `nsqd/client_v2.go` (`IsReadyForMessages`,
//! `SendingMessage`, `FinishedMessage`, `RequeuedMessage`, `TimedOutMessage`, `Empty`,
//! `StartClose`) and `AddClient`/`RemoveClient` of `nsqd/channel.go`. No IO, no clock.
//!
//! Upstream lets every consumer's goroutine race for the channel's Go channel, which spreads
//! messages roughly evenly. Here the owner hands messages out itself, round robin: consumers
//! with room (open, `in_flight < rdy`) wait in a turn queue, one message per turn, and go to the
//! back after their turn if they still have room. Entries for consumers that lost room are
//! dropped lazily when they reach the front, so every change is O(1).

use super::in_flight::{FastMap, LaneId};
use super::{ConsumerId, ConsumerStats};
use std::collections::VecDeque;

/// What the channel knows about one consumer.
#[derive(Debug, Clone)]
pub(crate) struct ConsumerState {
    /// `0` = every message; `1..=99` = keep about that percentage (upstream `sample_rate`).
    pub(crate) sample_rate: u8,
    /// The in-flight lane of the consumer's `msg_timeout` (which the lane holds).
    pub(crate) lane: LaneId,
    /// The last RDY count.
    pub(crate) rdy: u64,
    /// Messages in flight to this consumer.
    pub(crate) in_flight: u64,
    pub(crate) message_count: u64,
    pub(crate) finish_count: u64,
    pub(crate) requeue_count: u64,
    /// After CLS: nothing more is delivered and RDY is ignored.
    pub(crate) closed: bool,
    /// Whether an entry for this consumer is in the turn queue.
    in_turn: bool,
    /// Whether this consumer is counted in `with_room`.
    counted: bool,
}

impl ConsumerState {
    /// A new consumer: RDY 0, nothing in flight.
    pub(crate) fn new(sample_rate: u8, lane: LaneId) -> ConsumerState {
        ConsumerState {
            sample_rate,
            lane,
            rdy: 0,
            in_flight: 0,
            message_count: 0,
            finish_count: 0,
            requeue_count: 0,
            closed: false,
            in_turn: false,
            counted: false,
        }
    }

    /// Upstream `IsReadyForMessages`, less the pause check (the channel does that).
    pub(crate) fn has_room(&self) -> bool {
        !self.closed && self.in_flight < self.rdy
    }

    pub(crate) fn stats(&self) -> ConsumerStats {
        ConsumerStats {
            ready_count: self.rdy,
            in_flight_count: self.in_flight,
            message_count: self.message_count,
            finish_count: self.finish_count,
            requeue_count: self.requeue_count,
        }
    }
}

/// The consumer table and the turn queue.
#[derive(Debug, Default)]
pub(crate) struct Consumers {
    map: FastMap<ConsumerId, ConsumerState>,
    /// Consumers owed a turn, in order. Invariant: every consumer with room is in it once.
    turns: VecDeque<ConsumerId>,
    /// Number of consumers with room (exact, so `wants_delivery` is O(1)).
    with_room: usize,
}

impl Consumers {
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn contains(&self, id: ConsumerId) -> bool {
        self.map.contains_key(&id)
    }

    pub(crate) fn get(&self, id: ConsumerId) -> Option<&ConsumerState> {
        self.map.get(&id)
    }

    /// How many more messages the consumers could take now (sum of RDY minus in flight).
    pub(crate) fn total_room(&self) -> u64 {
        self.map
            .values()
            .filter(|c| !c.closed)
            .map(|c| c.rdy.saturating_sub(c.in_flight))
            .sum()
    }

    /// Whether any consumer could take a message now.
    pub(crate) fn any_room(&self) -> bool {
        self.with_room > 0
    }

    pub(crate) fn insert(&mut self, id: ConsumerId, state: ConsumerState) {
        self.map.insert(id, state);
        self.refresh(id);
    }

    /// Removes a consumer and its pending turn.
    pub(crate) fn remove(&mut self, id: ConsumerId) -> Option<ConsumerState> {
        let state = self.map.remove(&id)?;
        if state.counted {
            self.with_room = self.with_room.saturating_sub(1);
        }
        if state.in_turn {
            self.turns.retain(|turn| *turn != id);
        }
        Some(state)
    }

    /// Changes a consumer and keeps the turn queue and the room count right. Returns `None`
    /// when `id` is not a consumer.
    pub(crate) fn update<R>(
        &mut self,
        id: ConsumerId,
        change: impl FnOnce(&mut ConsumerState) -> R,
    ) -> Option<R> {
        let state = self.map.get_mut(&id)?;
        let result = change(state);
        refresh(id, state, &mut self.turns, &mut self.with_room);
        Some(result)
    }

    /// Applies `change` to every consumer (upstream calls `client.Empty()` on each).
    pub(crate) fn update_all(&mut self, mut change: impl FnMut(&mut ConsumerState)) {
        let ids: Vec<ConsumerId> = self.map.keys().copied().collect();
        for id in ids {
            self.update(id, &mut change);
        }
    }

    /// The next consumer whose turn it is and that has room, taken off the turn queue. The
    /// caller must call [`Consumers::update`] (or [`Consumers::end_turn`]) for it afterwards,
    /// which puts it at the back of the queue if it still has room.
    ///
    /// Returns the consumer with its lane and sample rate.
    pub(crate) fn next_turn(&mut self) -> Option<(ConsumerId, LaneId, u8)> {
        while let Some(id) = self.turns.pop_front() {
            let Some(state) = self.map.get_mut(&id) else {
                continue;
            };
            state.in_turn = false;
            if state.has_room() {
                return Some((id, state.lane, state.sample_rate));
            }
        }
        None
    }

    /// Ends a turn without changing the consumer.
    pub(crate) fn end_turn(&mut self, id: ConsumerId) {
        self.refresh(id);
    }

    /// The consumers in id order (for stats).
    pub(crate) fn sorted(&self) -> Vec<(ConsumerId, &ConsumerState)> {
        let mut all: Vec<(ConsumerId, &ConsumerState)> =
            self.map.iter().map(|(id, state)| (*id, state)).collect();
        all.sort_by_key(|(id, _)| *id);
        all
    }

    /// Re-derives `with_room` and the turn queue entry of one consumer.
    fn refresh(&mut self, id: ConsumerId) {
        if let Some(state) = self.map.get_mut(&id) {
            refresh(id, state, &mut self.turns, &mut self.with_room);
        }
    }

    /// Checks the bookkeeping against a recount (for tests).
    #[cfg(test)]
    pub(crate) fn check(&self) {
        let with_room = self.map.values().filter(|s| s.has_room()).count();
        assert_eq!(self.with_room, with_room, "with_room out of sync");
        for (id, state) in &self.map {
            let queued = self.turns.iter().filter(|t| *t == id).count();
            assert_eq!(
                queued,
                usize::from(state.in_turn),
                "turn queue entry of {id:?}"
            );
            if state.has_room() {
                assert!(state.in_turn, "{id:?} has room but no turn");
            }
        }
    }
}

/// Keeps `with_room` and the turn queue right after `state` changed.
fn refresh(
    id: ConsumerId,
    state: &mut ConsumerState,
    turns: &mut VecDeque<ConsumerId>,
    with_room: &mut usize,
) {
    let room = state.has_room();
    if room != state.counted {
        state.counted = room;
        if room {
            *with_room += 1;
        } else {
            *with_room = with_room.saturating_sub(1);
        }
    }
    if room && !state.in_turn {
        state.in_turn = true;
        turns.push_back(id);
    }
}
