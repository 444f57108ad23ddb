//! A channel: the ready queue, the consumers with their RDY, the in-flight and deferred
//! messages, pause, and the counters `/stats` reports.
//!
//! Mirrors upstream `nsqd/channel.go` (with `nsqd/in_flight_pqueue.go`, the consumer half of
//! `nsqd/client_v2.go` and the delivery loop of `protocol_v2.go` `messagePump`), v1.3.0
//! semantics. This module is a pure state machine: it does no IO, reads no clock, spawns
//! nothing and is never shared between threads. Every time is an argument (`now: Instant` for
//! deadlines, `now_wall_ns: i64` where upstream reads wall-clock time for latency).
//!
//! Files: `in_flight.rs` (id index and deadline lanes), `deferred.rs` (due-time heap),
//! `consumers.rs` (RDY and the fair turn order), `e2e.rs` (latency percentiles), `tests.rs`
//! (behaviour by behaviour) and `sim.rs` (the seeded simulation).

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod consumers;
mod deferred;
pub mod e2e;
mod in_flight;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use sluice_proto::{Message, MessageId};

use consumers::{ConsumerState, Consumers};
use deferred::Deferred;
pub use e2e::{E2eConfig, E2eLatency, E2ePercentile, E2eProcessingLatency};
use in_flight::InFlight;

/// Identifies a consumer (a subscribed connection) within the broker. Never reused: upstream
/// client ids only grow, and a reused id would inherit the in-flight messages its predecessor
/// left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConsumerId(pub u64);

/// What a consumer negotiated with IDENTIFY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerSettings {
    /// How long a delivered message may stay in flight before it is requeued. Capped at the
    /// channel's `max_msg_timeout` (upstream's IDENTIFY refuses larger values).
    pub msg_timeout: Duration,
    /// `0` delivers every message; `1..=99` delivers about that percentage and drops the rest
    /// for this consumer (upstream `sample_rate`).
    pub sample_rate: u8,
}

/// Per-channel configuration, taken from the broker options.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelOptions {
    /// `--mem-queue-size`: how many ready messages the channel holds.
    pub mem_queue_size: usize,
    /// `--max-msg-timeout`: the cap on TOUCH (deadline ≤ delivery + this).
    pub max_msg_timeout: Duration,
    /// `--max-channel-consumers` (0 = unlimited).
    pub max_channel_consumers: usize,
    /// A `#ephemeral` channel: messages past `mem_queue_size` are dropped.
    pub ephemeral: bool,
    /// End-to-end latency tracking, when `--e2e-processing-latency-percentile` is set.
    pub e2e: Option<E2eConfig>,
}

/// Why a consumer command on a channel failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// FIN/REQ/TOUCH of an id that is not in flight (upstream's text).
    #[error("ID not in flight")]
    NotInFlight,
    /// FIN/REQ/TOUCH of an id in flight to another consumer (upstream's text).
    #[error("client does not own message")]
    NotOwner,
    /// SUB past `--max-channel-consumers`; the caller prefixes
    /// `"consumers for {topic}:{channel} "` as upstream's SUB does.
    #[error("exceeds limit of {limit}")]
    TooManyConsumers {
        /// The configured limit.
        limit: usize,
    },
}

/// One consumer's counters, as upstream's client stats name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConsumerStats {
    /// The consumer's RDY.
    pub ready_count: u64,
    /// Messages in flight to it.
    pub in_flight_count: u64,
    /// Messages delivered to it.
    pub message_count: u64,
    /// Messages it finished.
    pub finish_count: u64,
    /// Messages it requeued.
    pub requeue_count: u64,
}

/// A channel's counters, as upstream's `/stats` names them.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelStats {
    /// Ready messages (upstream: memory plus backend depth).
    pub depth: u64,
    /// Messages in flight.
    pub in_flight_count: u64,
    /// Messages deferred.
    pub deferred_count: u64,
    /// Messages put into the channel (PUB and DPUB).
    pub message_count: u64,
    /// REQs.
    pub requeue_count: u64,
    /// In-flight messages that timed out.
    pub timeout_count: u64,
    /// Ours, not upstream's: messages dropped by an ephemeral channel past `mem_queue_size` or
    /// sampled out by a consumer's `sample_rate` (upstream drops both silently).
    pub dropped_count: u64,
    /// Consumers.
    pub client_count: usize,
    /// Whether delivery is paused.
    pub paused: bool,
    /// Latency percentiles ([`E2eProcessingLatency::untracked`] when not configured).
    pub e2e_processing_latency: E2eProcessingLatency,
    /// Each consumer's counters, by id.
    pub clients: Vec<(ConsumerId, ConsumerStats)>,
}

/// The longest delay or timeout the channel adds to an `Instant` (100 years); longer ones are
/// cut so that the addition cannot overflow.
const MAX_DELAY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `now + delay`, saturating at [`MAX_DELAY`].
pub(crate) fn later(now: Instant, delay: Duration) -> Instant {
    now.checked_add(delay.min(MAX_DELAY)).unwrap_or(now)
}

/// The state of one channel.
///
/// `Channel` owns its messages from the moment the topic puts them until a consumer finishes
/// them. It is driven like quinn-proto's `Connection`: inputs go in through `handle_*` methods,
/// outputs come out through `poll_*` methods, and time only moves when the caller says so.
///
/// The owner (one shard) must, after any input:
/// 1. while [`Channel::wants_delivery`] is true, call [`Channel::poll_deliveries`] with a batch
///    size and write each delivered message to that consumer's output buffer;
/// 2. keep one timer armed at [`Channel::next_deadline`] and, when it fires, call
///    [`Channel::poll_timeouts`] (which returns the following deadline) and then step 1 again.
///
/// `now` should not decrease between calls (if it does, deadlines stay exact but cost a heap
/// step). Client input only ever produces the `Result`s returned to the caller; no method
/// panics.
#[derive(Debug)]
pub struct Channel {
    name: String,
    opts: ChannelOptions,
    /// Fresh messages (never delivered on this channel), in id order, with their arrival number.
    ready: VecDeque<(u64, Message)>,
    /// Messages back from a REQ, a timeout or a deferral, with their arrival number. The two
    /// queues are served in arrival order, so a requeued message goes to the back as upstream;
    /// they are kept apart so that the fresh ones stay a contiguous run of the topic.
    returned: VecDeque<(u64, Message)>,
    arrivals: u64,
    in_flight: InFlight,
    deferred: Deferred,
    consumers: Consumers,
    paused: bool,
    message_count: u64,
    requeue_count: u64,
    timeout_count: u64,
    dropped_count: u64,
    e2e: Option<E2eLatency>,
    sampler: SplitMix64,
}

impl Channel {
    /// An empty, unpaused channel.
    pub fn new(name: &str, opts: ChannelOptions) -> Channel {
        let e2e = opts.e2e.as_ref().map(E2eLatency::new);
        Channel {
            name: name.to_owned(),
            ready: VecDeque::new(),
            returned: VecDeque::new(),
            arrivals: 0,
            in_flight: InFlight::default(),
            deferred: Deferred::default(),
            consumers: Consumers::default(),
            paused: false,
            message_count: 0,
            requeue_count: 0,
            timeout_count: 0,
            dropped_count: 0,
            e2e,
            sampler: SplitMix64::seeded(name),
            opts,
        }
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The options it was created with.
    pub fn options(&self) -> &ChannelOptions {
        &self.opts
    }

    /// Whether `n` more messages fit in the ready queue (`ready + n <= mem_queue_size`).
    /// Requeued messages are never refused, so the ready queue of a non-ephemeral channel may
    /// exceed the bound by what was in flight; this then stays false until it drains.
    pub fn has_room(&self, n: usize) -> bool {
        self.ready_len().saturating_add(n) <= self.opts.mem_queue_size
    }

    /// A message from the topic (id, timestamp set, `attempts` 0) joins the back of the ready
    /// queue. The caller checked [`Channel::has_room`]; an ephemeral channel drops a message
    /// past `mem_queue_size` instead (upstream's dummy backend), counting it in `dropped_count`;
    /// with `mem_queue_size` 0 it therefore keeps nothing (upstream's unbuffered Go channel
    /// would still hand a message to a consumer waiting at that instant). Upstream `PutMessage`.
    pub fn handle_put(&mut self, msg: Message) {
        self.message_count += 1;
        if self.opts.ephemeral && self.ready_len() >= self.opts.mem_queue_size {
            self.dropped_count += 1;
            return;
        }
        self.arrivals += 1;
        self.ready.push_back((self.arrivals, msg));
    }

    /// A DPUB: the message becomes ready at `now + delay` (upstream `PutMessageDeferred`). The
    /// caller clamps `delay` to `--max-req-timeout`.
    pub fn handle_put_deferred(&mut self, now: Instant, msg: Message, delay: Duration) {
        self.message_count += 1;
        self.deferred.push(later(now, delay), msg);
    }

    /// Adds a consumer with RDY 0 (upstream `AddClient`; adding an existing id does nothing).
    ///
    /// # Errors
    /// [`ChannelError::TooManyConsumers`] when `max_channel_consumers` (not 0) are present.
    pub fn add_consumer(
        &mut self,
        id: ConsumerId,
        settings: ConsumerSettings,
    ) -> Result<(), ChannelError> {
        if self.consumers.contains(id) {
            return Ok(());
        }
        let limit = self.opts.max_channel_consumers;
        if limit != 0 && self.consumers.len() >= limit {
            return Err(ChannelError::TooManyConsumers { limit });
        }
        let msg_timeout = settings.msg_timeout.min(self.opts.max_msg_timeout);
        let lane = self.in_flight.acquire_lane(msg_timeout);
        let state = ConsumerState::new(settings.sample_rate, lane);
        self.consumers.insert(id, state);
        Ok(())
    }

    /// Removes a consumer (its connection ended). Upstream `RemoveClient`: the messages in
    /// flight to it are *not* requeued at once; they stay in flight until their deadline and
    /// are then requeued by [`Channel::poll_timeouts`] (counted in `timeout_count`), exactly
    /// as nsqd does. A FIN/REQ/TOUCH for them from any other consumer gets `NotOwner`.
    ///
    /// An ephemeral channel's owner deletes it when [`Channel::consumer_count`] reaches 0.
    pub fn remove_consumer(&mut self, id: ConsumerId) {
        if let Some(state) = self.consumers.remove(id) {
            self.in_flight.release_lane(state.lane);
        }
    }

    /// RDY: the consumer may have up to `count` messages in flight (the caller checked
    /// `--max-rdy-count`). Ignored after CLS, as upstream ignores RDY while closing, and for
    /// unknown consumers.
    pub fn handle_rdy(&mut self, id: ConsumerId, count: u64) {
        self.consumers.update(id, |c| {
            if !c.closed {
                c.rdy = count;
            }
        });
    }

    /// FIN: the message is done (upstream `FinishMessage`). Records its end-to-end latency
    /// (`now_wall_ns - timestamp`) when tracking is on.
    ///
    /// # Errors
    /// [`ChannelError::NotInFlight`] or [`ChannelError::NotOwner`].
    pub fn handle_fin(
        &mut self,
        now_wall_ns: i64,
        id: ConsumerId,
        msg: &MessageId,
    ) -> Result<(), ChannelError> {
        let entry = self.in_flight.take(msg, id)?;
        self.consumers.update(id, |c| {
            c.in_flight = c.in_flight.saturating_sub(1);
            c.finish_count += 1;
        });
        if let Some(e2e) = &mut self.e2e {
            e2e.insert(now_wall_ns, entry.msg.timestamp);
        }
        Ok(())
    }

    /// REQ: the message goes back to the ready queue at once (`delay` 0) or after `delay`
    /// (upstream `RequeueMessage`). Attempts are kept. The caller clamps `delay` to
    /// `--max-req-timeout`.
    ///
    /// # Errors
    /// [`ChannelError::NotInFlight`] or [`ChannelError::NotOwner`].
    pub fn handle_req(
        &mut self,
        now: Instant,
        id: ConsumerId,
        msg: &MessageId,
        delay: Duration,
    ) -> Result<(), ChannelError> {
        let entry = self.in_flight.take(msg, id)?;
        self.consumers.update(id, |c| {
            c.in_flight = c.in_flight.saturating_sub(1);
            c.requeue_count += 1;
        });
        self.requeue_count += 1;
        if delay.is_zero() {
            self.put(entry.msg);
        } else {
            self.deferred.push(later(now, delay), entry.msg);
        }
        Ok(())
    }

    /// TOUCH: the deadline becomes `now` + the consumer's `msg_timeout`, but never later than
    /// delivery + `max_msg_timeout` (upstream `TouchMessage`).
    ///
    /// # Errors
    /// [`ChannelError::NotInFlight`] or [`ChannelError::NotOwner`].
    pub fn handle_touch(
        &mut self,
        now: Instant,
        id: ConsumerId,
        msg: &MessageId,
    ) -> Result<(), ChannelError> {
        self.in_flight
            .touch(now, msg, id, self.opts.max_msg_timeout)
    }

    /// CLS: nothing more is delivered to this consumer and its RDY becomes 0 (upstream
    /// `StartClose`); FIN, REQ and TOUCH keep working for what it holds.
    pub fn handle_close(&mut self, id: ConsumerId) {
        self.consumers.update(id, |c| {
            c.closed = true;
            c.rdy = 0;
        });
    }

    /// Hands ready messages to consumers with room, one per consumer per turn in round-robin
    /// order, and calls `deliver(consumer, &message)` for each; `attempts` already counts this
    /// delivery. Each goes in flight until now + that consumer's `msg_timeout`. Nothing is
    /// delivered while paused. A consumer with a `sample_rate` drops the messages it samples
    /// out (they are consumed, not delivered: upstream `messagePump`). At most `max` messages
    /// are taken from the ready queue per call. Returns how many were delivered.
    pub fn poll_deliveries(
        &mut self,
        now: Instant,
        max: usize,
        deliver: &mut impl FnMut(ConsumerId, &Message),
    ) -> usize {
        let mut delivered = 0;
        let mut taken = 0;
        while taken < max && !self.paused && self.ready_len() > 0 {
            let Some((id, lane, sample_rate)) = self.consumers.next_turn() else {
                break;
            };
            let Some(mut msg) = self.pop_ready() else {
                self.consumers.end_turn(id);
                break;
            };
            taken += 1;
            // Upstream: `if sampleRate > 0 && rand.Int31n(100) > sampleRate { continue }`.
            if sample_rate > 0 && self.sampler.below(100) > u64::from(sample_rate) {
                self.dropped_count += 1;
                self.consumers.end_turn(id);
                continue;
            }
            msg.attempts = msg.attempts.saturating_add(1);
            match self.in_flight.insert(now, id, lane, msg) {
                Ok(stored) => {
                    deliver(id, stored);
                    delivered += 1;
                    self.consumers.update(id, |c| {
                        c.in_flight += 1;
                        c.message_count += 1;
                    });
                }
                Err(_duplicate) => {
                    // The same id is already in flight (a caller put one message twice):
                    // keep the copy in flight, as upstream refuses the second.
                    self.dropped_count += 1;
                    self.consumers.end_turn(id);
                }
            }
        }
        delivered
    }

    /// Requeues in-flight messages whose deadline is `<= now` at the back of the ready queue
    /// (`timeout_count` grows, their consumer's in-flight count drops: upstream
    /// `processInFlightQueue`), then moves due deferred messages to the ready queue (upstream
    /// `processDeferredQueue`). Returns the next deadline, if any.
    pub fn poll_timeouts(&mut self, now: Instant) -> Option<Instant> {
        while let Some(entry) = self.in_flight.pop_expired(now) {
            self.timeout_count += 1;
            self.consumers.update(entry.consumer, |c| {
                c.in_flight = c.in_flight.saturating_sub(1);
            });
            self.put(entry.msg);
        }
        while let Some(msg) = self.deferred.pop_due(now) {
            self.put(msg);
        }
        self.next_deadline()
    }

    /// The earliest in-flight deadline or deferred due time. It may be earlier than needed
    /// (a message finished since the last [`Channel::poll_timeouts`]); never later.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.in_flight.next_deadline(), self.deferred.next_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Stops delivery (publishing and FIN/REQ/TOUCH go on).
    pub fn pause(&mut self) {
        self.paused = true;
    }

    /// Resumes delivery.
    pub fn unpause(&mut self) {
        self.paused = false;
    }

    /// Whether delivery is paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Drops every ready, in-flight and deferred message; consumers keep their RDY and their
    /// in-flight counts become 0 (upstream `Empty`). Counters are kept.
    pub fn empty(&mut self) {
        self.ready.clear();
        self.returned.clear();
        self.in_flight.clear();
        self.deferred.clear();
        self.consumers.update_all(|c| c.in_flight = 0);
    }

    /// Ready messages.
    pub fn depth(&self) -> u64 {
        self.ready_len() as u64
    }

    /// Messages in flight.
    pub fn in_flight_count(&self) -> u64 {
        self.in_flight.len() as u64
    }

    /// Deferred messages.
    pub fn deferred_count(&self) -> u64 {
        self.deferred.len() as u64
    }

    /// Consumers.
    pub fn consumer_count(&self) -> usize {
        self.consumers.len()
    }

    /// Whether [`Channel::poll_deliveries`] would deliver something: not paused, a ready
    /// message, and a consumer with room. O(1).
    pub fn wants_delivery(&self) -> bool {
        !self.paused && self.ready_len() > 0 && self.consumers.any_room()
    }

    /// The latency recorder, when tracking is on (a topic merges its channels').
    pub fn e2e(&self) -> Option<&E2eLatency> {
        self.e2e.as_ref()
    }

    /// The counters, with latency percentiles as of `now_wall_ns`.
    pub fn stats(&self, now_wall_ns: i64) -> ChannelStats {
        let mut stats = self.counters();
        if let Some(e2e) = &self.e2e {
            stats.e2e_processing_latency = e2e.result(now_wall_ns);
        }
        stats
    }

    /// The counters without latency percentiles (which cost a histogram merge).
    fn counters(&self) -> ChannelStats {
        ChannelStats {
            depth: self.depth(),
            in_flight_count: self.in_flight_count(),
            deferred_count: self.deferred_count(),
            message_count: self.message_count,
            requeue_count: self.requeue_count,
            timeout_count: self.timeout_count,
            dropped_count: self.dropped_count,
            client_count: self.consumers.len(),
            paused: self.paused,
            e2e_processing_latency: E2eProcessingLatency::untracked(),
            clients: self
                .consumers
                .sorted()
                .into_iter()
                .map(|(id, state)| (id, state.stats()))
                .collect(),
        }
    }

    /// One consumer's counters.
    pub fn consumer_stats(&self, id: ConsumerId) -> Option<ConsumerStats> {
        self.consumers.get(id).map(ConsumerState::stats)
    }

    /// Into the ready queue (upstream `put`): an ephemeral channel past `mem_queue_size` drops
    /// the message, as upstream's dummy backend does; a durable one never drops.
    fn put(&mut self, msg: Message) {
        if self.opts.ephemeral && self.ready_len() >= self.opts.mem_queue_size {
            self.dropped_count += 1;
            return;
        }
        self.arrivals += 1;
        self.returned.push_back((self.arrivals, msg));
    }

    /// The ready message that arrived first, fresh or returned.
    fn pop_ready(&mut self) -> Option<Message> {
        let returned_first = match (self.returned.front(), self.ready.front()) {
            (Some((a, _)), Some((b, _))) => a < b,
            (Some(_), None) => true,
            _ => false,
        };
        let queue = if returned_first {
            &mut self.returned
        } else {
            &mut self.ready
        };
        queue.pop_front().map(|(_, m)| m)
    }

    /// How many more messages its consumers could take now (RDY minus in flight, summed).
    pub fn consumer_room(&self) -> u64 {
        if self.paused {
            0
        } else {
            self.consumers.total_room()
        }
    }

    /// Messages waiting for delivery (fresh and returned).
    pub fn ready_len(&self) -> usize {
        self.ready.len() + self.returned.len()
    }

    /// The ready messages, returned ones first (delivery order).
    pub fn ready_iter(&self) -> impl Iterator<Item = &Message> {
        self.returned
            .iter()
            .chain(self.ready.iter())
            .map(|(_, m)| m)
    }

    /// The id of the oldest fresh message held in memory, if any. Every fresh message from it on
    /// is either here or (when the topic holds a backlog for this channel) in the log.
    pub fn fresh_front(&self) -> Option<&MessageId> {
        self.ready.front().map(|(_, m)| &m.id)
    }

    /// Every message of this channel that is not fresh: in flight, deferred (with its due time)
    /// or returned to the queue. The shard saves them so that a restart restores each with its
    /// attempts and due time.
    pub fn scattered(&self) -> Vec<Scattered> {
        let returned = self.returned.iter().map(|(_, m)| m);
        let live = self.in_flight.entries().map(|e| &e.msg).chain(returned);
        let mut out: Vec<Scattered> = live
            .map(|m| Scattered {
                id: m.id,
                attempts: m.attempts,
                due: None,
            })
            .collect();
        out.extend(self.deferred.iter().map(|(due, m)| Scattered {
            id: m.id,
            attempts: m.attempts,
            due: Some(due),
        }));
        out
    }

    /// Puts back a message saved as returned (in flight or requeued at the time of saving),
    /// keeping its attempts. Not counted as a new message.
    pub fn restore_returned(&mut self, msg: Message) {
        self.put(msg);
    }

    /// Puts back a message saved as deferred, due after `delay`, keeping its attempts.
    pub fn restore_deferred(&mut self, now: Instant, msg: Message, delay: Duration) {
        self.deferred.push(later(now, delay), msg);
    }
}

/// A message of a channel that is not fresh (see [`Channel::scattered`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scattered {
    /// Its id.
    pub id: MessageId,
    /// Deliveries so far.
    pub attempts: u16,
    /// When deferred: when it is due.
    pub due: Option<Instant>,
}

/// A tiny deterministic generator for `sample_rate` (splitmix64), seeded from the channel name
/// so runs repeat. Sampling needs no cryptographic quality.
#[derive(Debug, Clone)]
struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    fn seeded(name: &str) -> SplitMix64 {
        // FNV-1a over the name.
        let state = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
        SplitMix64 { state }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound` > 0; the modulo bias is irrelevant for sampling).
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}
