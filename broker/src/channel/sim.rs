//! Seeded randomized simulation of one channel (STYLE.md §6.3).
//!
//! Goal: find any sequence of consumer commands, publishes and clock jumps after which the
//! channel loses, duplicates or misplaces a message, delivers past a consumer's RDY, sets a
//! deadline past `delivery + max_msg_timeout`, or lets attempts go backwards.
//!
//! Method: one seeded PRNG drives everything. Each run builds a channel with random options
//! and applies random operations (PUB, DPUB, RDY, FIN, REQ, TOUCH, connect, disconnect, CLS,
//! pause, unpause, empty, tick). A virtual clock only moves on a tick, either jumping to the
//! channel's next deadline or by a random step (quinn's `Pair::step`). An independent model
//! predicts where every message must be and what each command must return; after *every* step
//! the channel's internals are compared with the model. At the end all consumers leave, one
//! that finishes everything drains the channel, and every published message must be finished
//! or accounted as dropped. Loops are bounded. The seed comes from `SLUICE_SEED` (one run) or
//! is random (many runs); a failure prints `reproduce with SLUICE_SEED=…`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_proto::{Message, MessageId};

use super::*;

mod check;

/// Runs per test invocation without `SLUICE_SEED` (`SLUICE_SIM_RUNS` overrides, for soaks).
/// About 30 µs per step in a debug build, so the default costs a few seconds.
const RUNS: u64 = 100;
/// Steps per run.
const STEPS: usize = 2_000;
/// Upper bound on drain iterations at the end of a run.
const DRAIN_ITERATIONS: usize = 10_000;
/// Operations remembered for the failure report.
const TRACE_LEN: usize = 30;
/// Consumers connected at most at once.
const MAX_CONSUMERS: usize = 6;
/// Wall-clock time of the virtual clock's origin, in ns (any fixed value).
const WALL_ORIGIN_NS: i64 = 1_700_000_000_000_000_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn millis(&mut self, max_ms: u64) -> Duration {
        Duration::from_millis(self.below(max_ms + 1))
    }
}

#[derive(Debug, Clone)]
enum Op {
    Pub(usize),
    Dpub(Duration),
    Rdy(ConsumerId, u64),
    Fin(ConsumerId, u64),
    Req(ConsumerId, u64, Duration),
    Touch(ConsumerId, u64),
    Connect(ConsumerSettings),
    Disconnect(ConsumerId),
    Close(ConsumerId),
    Pause,
    Unpause,
    Empty,
    Tick { jump: Option<Duration>, poll: bool },
    Deliver(usize),
}

#[derive(Debug, Clone)]
struct ModelConsumer {
    timeout: Duration,
    sample_rate: u8,
    rdy: u64,
    closed: bool,
    registered: bool,
    in_flight: u64,
    message_count: u64,
    finish_count: u64,
    requeue_count: u64,
}

#[derive(Debug, Clone, Copy)]
struct Flight {
    owner: ConsumerId,
    delivered_at: Instant,
    deadline: Instant,
}

/// Where every message must be, and what the counters must say.
#[derive(Debug, Default)]
struct Model {
    /// Every consumer ever connected (ids are never reused).
    consumers: BTreeMap<ConsumerId, ModelConsumer>,
    /// The connected ones.
    live: BTreeSet<ConsumerId>,
    ready: BTreeSet<u64>,
    deferred: BTreeMap<u64, Instant>,
    in_flight: BTreeMap<u64, Flight>,
    finished: BTreeSet<u64>,
    /// Dropped by the channel (ephemeral overflow, sampling) or by `empty`.
    dropped: BTreeSet<u64>,
    attempts: BTreeMap<u64, u16>,
    paused: bool,
    published: u64,
    requeue_count: u64,
    timeout_count: u64,
    dropped_count: u64,
}

struct Sim {
    rng: Rng,
    ch: Channel,
    opts: ChannelOptions,
    model: Model,
    t0: Instant,
    now: Instant,
    next_consumer: u64,
    trace: VecDeque<Op>,
    steps: usize,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = Rng(seed);
        let ephemeral = rng.chance(30);
        let opts = ChannelOptions {
            mem_queue_size: 1 + rng.below(30) as usize,
            max_msg_timeout: Duration::from_secs(5 + rng.below(60)),
            max_channel_consumers: if rng.chance(30) { 3 } else { 0 },
            ephemeral,
            e2e: rng.chance(50).then(|| E2eConfig {
                percentiles: vec![0.5, 0.99],
                window: Duration::from_secs(10_000 * 3600),
            }),
        };
        let now = Instant::now();
        Sim {
            ch: Channel::new(
                if ephemeral { "sim#ephemeral" } else { "sim" },
                opts.clone(),
            ),
            opts,
            rng,
            model: Model::default(),
            t0: now,
            now,
            next_consumer: 1,
            trace: VecDeque::new(),
            steps: 0,
        }
    }

    fn wall_ns(&self) -> i64 {
        WALL_ORIGIN_NS + (self.now - self.t0).as_nanos() as i64
    }

    fn registered(&self) -> Vec<ConsumerId> {
        self.model.live.iter().copied().collect()
    }

    /// A consumer to act as: mostly a connected one, sometimes any ever seen or a stranger.
    fn pick_consumer(&mut self) -> ConsumerId {
        let registered = self.registered();
        if !registered.is_empty() && self.rng.chance(85) {
            return registered[self.rng.below(registered.len() as u64) as usize];
        }
        ConsumerId(self.rng.below(self.next_consumer + 1))
    }

    /// A message id for FIN/REQ/TOUCH and who sends it: mostly the owner of something in
    /// flight, sometimes another consumer or any id ever published (or never).
    fn pick_target(&mut self) -> (ConsumerId, u64) {
        if !self.model.in_flight.is_empty() && self.rng.chance(80) {
            let index = self.rng.below(self.model.in_flight.len() as u64) as usize;
            let (id, flight) = self.model.in_flight.iter().nth(index).unwrap();
            let (id, owner) = (*id, flight.owner);
            let sender = if self.rng.chance(85) {
                owner
            } else {
                self.pick_consumer()
            };
            return (sender, id);
        }
        let id = 1 + self.rng.below(self.model.published + 2);
        (self.pick_consumer(), id)
    }

    fn random_op(&mut self) -> Op {
        let max_ms = self.opts.max_msg_timeout.as_millis() as u64;
        match self.rng.below(1000) {
            0..=199 => Op::Pub(1 + self.rng.below(3) as usize),
            200..=239 => Op::Dpub(self.rng.millis(20_000)),
            240..=339 => {
                let c = self.pick_consumer();
                let n = if self.rng.chance(80) {
                    self.rng.below(6)
                } else {
                    self.rng.below(31)
                };
                Op::Rdy(c, n)
            }
            340..=489 => {
                let (c, id) = self.pick_target();
                Op::Fin(c, id)
            }
            490..=569 => {
                let (c, id) = self.pick_target();
                let delay = if self.rng.chance(50) {
                    Duration::ZERO
                } else {
                    self.rng.millis(20_000)
                };
                Op::Req(c, id, delay)
            }
            570..=629 => {
                let (c, id) = self.pick_target();
                Op::Touch(c, id)
            }
            630..=669 => Op::Connect(ConsumerSettings {
                // Sometimes beyond max_msg_timeout, which the channel caps.
                msg_timeout: self.rng.millis(max_ms * 3 / 2),
                sample_rate: if self.rng.chance(10) {
                    1 + self.rng.below(99) as u8
                } else {
                    0
                },
            }),
            670..=699 => Op::Disconnect(self.pick_consumer()),
            700..=714 => Op::Close(self.pick_consumer()),
            715..=729 => Op::Pause,
            730..=769 => Op::Unpause,
            770..=772 => Op::Empty,
            773..=959 => {
                let jump = match self.rng.below(10) {
                    0..=4 => None,
                    5..=8 => Some(self.rng.millis(3_000)),
                    _ => Some(self.rng.millis(max_ms * 2)),
                };
                Op::Tick {
                    jump,
                    poll: self.rng.chance(90),
                }
            }
            _ => Op::Deliver(1 + self.rng.below(8) as usize),
        }
    }

    fn message(&mut self) -> Message {
        self.model.published += 1;
        let n = self.model.published;
        Message {
            id: MessageId::from_u64(n),
            timestamp: self.wall_ns(),
            attempts: 0,
            body: Bytes::from_static(b"sim"),
        }
    }

    fn step(&mut self) {
        self.steps += 1;
        let op = self.random_op();
        if self.trace.len() == TRACE_LEN {
            self.trace.pop_front();
        }
        self.trace.push_back(op.clone());
        self.apply(op);
        // The shard delivers after every input, in batches.
        let batch = 1 + self.rng.below(8) as usize;
        self.deliver(batch);
        self.check();
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Pub(n) => {
                for _ in 0..n {
                    self.publish();
                }
            }
            Op::Dpub(delay) => {
                let msg = self.message();
                let n = self.model.published;
                self.model.deferred.insert(n, later(self.now, delay));
                self.ch.handle_put_deferred(self.now, msg, delay);
            }
            Op::Rdy(c, n) => {
                if let Some(mc) = self.model.consumers.get_mut(&c).filter(|m| m.registered) {
                    if !mc.closed {
                        mc.rdy = n;
                    }
                }
                self.ch.handle_rdy(c, n);
            }
            Op::Fin(c, id) => self.fin(c, id),
            Op::Req(c, id, delay) => self.req(c, id, delay),
            Op::Touch(c, id) => self.touch(c, id),
            Op::Connect(settings) => self.connect(settings),
            Op::Disconnect(c) => {
                if let Some(mc) = self.model.consumers.get_mut(&c) {
                    mc.registered = false;
                    self.model.live.remove(&c);
                }
                self.ch.remove_consumer(c);
            }
            Op::Close(c) => {
                if let Some(mc) = self.model.consumers.get_mut(&c).filter(|m| m.registered) {
                    mc.closed = true;
                    mc.rdy = 0;
                }
                self.ch.handle_close(c);
            }
            Op::Pause => {
                self.model.paused = true;
                self.ch.pause();
            }
            Op::Unpause => {
                self.model.paused = false;
                self.ch.unpause();
            }
            Op::Empty => self.empty(),
            Op::Tick { jump, poll } => self.tick(jump, poll),
            Op::Deliver(max) => self.deliver(max),
        }
    }

    fn publish(&mut self) {
        let room = self.model.ready.len() < self.opts.mem_queue_size;
        assert_eq!(self.ch.has_room(1), room, "has_room");
        if !room && !self.opts.ephemeral {
            // The caller refuses the PUB (E_PUB_FAILED) instead of putting it.
            return;
        }
        let msg = self.message();
        let n = self.model.published;
        if room {
            self.model.ready.insert(n);
        } else {
            self.model.dropped.insert(n);
            self.model.dropped_count += 1;
        }
        self.ch.handle_put(msg);
    }

    /// What FIN/REQ/TOUCH of `id` by `c` must return.
    fn expected(&self, c: ConsumerId, id: u64) -> Result<Flight, ChannelError> {
        match self.model.in_flight.get(&id) {
            None => Err(ChannelError::NotInFlight),
            Some(f) if f.owner != c => Err(ChannelError::NotOwner),
            Some(f) => Ok(*f),
        }
    }

    fn release(&mut self, owner: ConsumerId, change: impl FnOnce(&mut ModelConsumer)) {
        if let Some(mc) = self.model.consumers.get_mut(&owner) {
            mc.in_flight -= 1;
            if mc.registered {
                change(mc);
            }
        }
    }

    fn fin(&mut self, c: ConsumerId, id: u64) {
        let expected = self.expected(c, id);
        let got = self
            .ch
            .handle_fin(self.wall_ns(), c, &MessageId::from_u64(id));
        assert_eq!(got, expected.map(|_| ()), "FIN {id} by {c:?}");
        if expected.is_ok() {
            self.model.in_flight.remove(&id);
            assert!(self.model.finished.insert(id), "{id} finished twice");
            self.release(c, |mc| mc.finish_count += 1);
        }
    }

    fn req(&mut self, c: ConsumerId, id: u64, delay: Duration) {
        let expected = self.expected(c, id);
        let got = self
            .ch
            .handle_req(self.now, c, &MessageId::from_u64(id), delay);
        assert_eq!(got, expected.map(|_| ()), "REQ {id} by {c:?}");
        if expected.is_err() {
            return;
        }
        self.model.in_flight.remove(&id);
        self.model.requeue_count += 1;
        self.release(c, |mc| mc.requeue_count += 1);
        if delay.is_zero() {
            self.requeue(&[id]);
        } else {
            self.model.deferred.insert(id, later(self.now, delay));
        }
    }

    fn touch(&mut self, c: ConsumerId, id: u64) {
        let expected = self.expected(c, id);
        let got = self.ch.handle_touch(self.now, c, &MessageId::from_u64(id));
        assert_eq!(got, expected.map(|_| ()), "TOUCH {id} by {c:?}");
        if let Ok(flight) = expected {
            let timeout = self.model.consumers[&flight.owner].timeout;
            let cap = later(flight.delivered_at, self.opts.max_msg_timeout);
            let deadline = later(self.now, timeout).min(cap);
            self.model.in_flight.get_mut(&id).unwrap().deadline = deadline;
        }
    }

    fn connect(&mut self, settings: ConsumerSettings) {
        if self.registered().len() >= MAX_CONSUMERS {
            return;
        }
        let id = ConsumerId(self.next_consumer);
        self.next_consumer += 1;
        let limit = self.opts.max_channel_consumers;
        let full = limit != 0 && self.registered().len() >= limit;
        let got = self.ch.add_consumer(id, settings);
        if full {
            assert_eq!(got, Err(ChannelError::TooManyConsumers { limit }));
            return;
        }
        got.unwrap();
        let model = ModelConsumer {
            timeout: settings.msg_timeout.min(self.opts.max_msg_timeout),
            sample_rate: settings.sample_rate,
            rdy: 0,
            closed: false,
            registered: true,
            in_flight: 0,
            message_count: 0,
            finish_count: 0,
            requeue_count: 0,
        };
        self.model.consumers.insert(id, model);
        self.model.live.insert(id);
    }

    fn empty(&mut self) {
        let model = &mut self.model;
        model.dropped.extend(std::mem::take(&mut model.ready));
        model
            .dropped
            .extend(std::mem::take(&mut model.deferred).into_keys());
        model
            .dropped
            .extend(std::mem::take(&mut model.in_flight).into_keys());
        for mc in model.consumers.values_mut() {
            mc.in_flight = 0;
        }
        self.ch.empty();
    }

    /// Ids going back to the ready queue in this order; an ephemeral channel drops those past
    /// its bound.
    fn requeue(&mut self, ids: &[u64]) {
        for id in ids {
            if self.opts.ephemeral && self.model.ready.len() >= self.opts.mem_queue_size {
                self.model.dropped.insert(*id);
                self.model.dropped_count += 1;
            } else {
                self.model.ready.insert(*id);
            }
        }
    }

    fn tick(&mut self, jump: Option<Duration>, poll: bool) {
        match jump {
            Some(step) => self.now += step,
            None => {
                if let Some(deadline) = self.ch.next_deadline() {
                    self.now = self.now.max(deadline);
                }
            }
        }
        if poll {
            self.poll_timeouts();
        }
    }

    fn poll_timeouts(&mut self) {
        let now = self.now;
        let mut expired: Vec<(Instant, u64)> = self
            .model
            .in_flight
            .iter()
            .filter(|(_, f)| f.deadline <= now)
            .map(|(id, f)| (f.deadline, *id))
            .collect();
        expired.sort();
        let mut due: Vec<(Instant, u64)> = self
            .model
            .deferred
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(id, d)| (*d, *id))
            .collect();
        due.sort();
        for (_, id) in &expired {
            let flight = self.model.in_flight.remove(id).unwrap();
            self.model.timeout_count += 1;
            if let Some(mc) = self.model.consumers.get_mut(&flight.owner) {
                mc.in_flight -= 1;
            }
        }
        for (_, id) in &due {
            self.model.deferred.remove(id);
        }
        let ready_before = self.model.ready.len();
        let order: Vec<u64> = expired.iter().chain(&due).map(|(_, id)| *id).collect();
        self.requeue(&order);
        let next = self.ch.poll_timeouts(now);
        // Messages with equal deadlines may requeue in either order, so when an ephemeral
        // channel drops some, trust the channel's choice among them (checked: same count,
        // and timed-out ones before due ones).
        self.reconcile_drops(&expired, &due, ready_before);
        if let Some(earliest) = self.true_next_deadline() {
            let next = next.expect("a deadline is pending");
            assert!(next <= earliest, "poll_timeouts returned a late deadline");
        }
    }

    fn reconcile_drops(
        &mut self,
        expired: &[(Instant, u64)],
        due: &[(Instant, u64)],
        before: usize,
    ) {
        if !self.opts.ephemeral {
            return;
        }
        let kept = (expired.len() + due.len()).min(self.opts.mem_queue_size.saturating_sub(before));
        let actual: BTreeSet<u64> = self.ch.ready_iter().map(|m| num(&m.id)).collect();
        let moved = expired.iter().chain(due).map(|(_, id)| *id);
        let kept_ids: Vec<u64> = moved.clone().filter(|id| actual.contains(id)).collect();
        assert_eq!(kept_ids.len(), kept, "ephemeral requeue kept count");
        let kept_due = due.iter().filter(|(_, id)| actual.contains(id)).count();
        if kept_due > 0 {
            assert_eq!(
                kept - kept_due,
                expired.len(),
                "timed-out messages requeue first"
            );
        }
        for id in moved {
            self.model.ready.remove(&id);
            self.model.dropped.remove(&id);
            if actual.contains(&id) {
                self.model.ready.insert(id);
            } else {
                self.model.dropped.insert(id);
            }
        }
    }

    fn true_next_deadline(&self) -> Option<Instant> {
        let flights = self.model.in_flight.values().map(|f| f.deadline);
        flights.chain(self.model.deferred.values().copied()).min()
    }

    fn deliver(&mut self, max: usize) {
        let now = self.now;
        let dropped_before = self.ch.dropped_count;
        let model = &mut self.model;
        let max_msg_timeout = self.opts.max_msg_timeout;
        let mut seen = 0;
        let count = self.ch.poll_deliveries(now, max, &mut |c, m| {
            seen += 1;
            let id = num(&m.id);
            assert!(!model.paused, "delivery while paused");
            assert!(model.ready.remove(&id), "delivered {id} was not ready");
            let mc = model
                .consumers
                .get_mut(&c)
                .expect("delivered to a stranger");
            assert!(
                mc.registered && !mc.closed,
                "delivered to a closed or gone consumer"
            );
            assert!(
                mc.in_flight < mc.rdy,
                "delivery past RDY: {} >= {}",
                mc.in_flight,
                mc.rdy
            );
            mc.in_flight += 1;
            mc.message_count += 1;
            let previous = model.attempts.insert(id, m.attempts).unwrap_or(0);
            assert_eq!(m.attempts, previous + 1, "attempts of {id}");
            let deadline = later(now, mc.timeout.min(max_msg_timeout));
            let flight = Flight {
                owner: c,
                delivered_at: now,
                deadline,
            };
            model.in_flight.insert(id, flight);
        });
        assert_eq!(count, seen);
        // Whatever left the ready queue without a delivery was sampled out.
        let mut sampled = Vec::new();
        if self.ch.ready_len() != self.model.ready.len() {
            let actual: BTreeSet<u64> = self.ch.ready_iter().map(|m| num(&m.id)).collect();
            sampled.extend(self.model.ready.difference(&actual).copied());
            let sampling = self.model.consumers.values().any(|c| c.sample_rate > 0);
            assert!(
                sampling,
                "messages left the ready queue without delivery or sampling"
            );
        }
        for id in &sampled {
            self.model.ready.remove(id);
            assert!(self.model.dropped.insert(*id), "{id} dropped twice");
        }
        self.model.dropped_count += sampled.len() as u64;
        assert_eq!(self.ch.dropped_count - dropped_before, sampled.len() as u64);
        let taken = count + sampled.len();
        assert!(taken <= max, "took {taken} > max {max}");
        if taken < max {
            assert!(
                !self.ch.wants_delivery(),
                "stopped early while deliveries were possible"
            );
        }
    }

    /// Compares the channel with the model.
    /// All consumers leave; one that finishes everything drains the channel.
    fn drain(&mut self) {
        for c in self.registered() {
            self.apply(Op::Disconnect(c));
        }
        self.apply(Op::Unpause);
        let drainer = ConsumerId(self.next_consumer);
        self.apply(Op::Connect(ConsumerSettings {
            msg_timeout: Duration::from_secs(1),
            sample_rate: 0,
        }));
        self.apply(Op::Rdy(drainer, 1_000));
        for _ in 0..DRAIN_ITERATIONS {
            self.poll_timeouts();
            let before: BTreeSet<u64> = self.model.in_flight.keys().copied().collect();
            self.deliver(1_000);
            let fresh: Vec<u64> = self
                .model
                .in_flight
                .keys()
                .filter(|id| !before.contains(id))
                .copied()
                .collect();
            for id in fresh {
                self.fin(drainer, id);
            }
            self.check();
            if self.model.ready.is_empty()
                && self.model.deferred.is_empty()
                && self.model.in_flight.is_empty()
            {
                break;
            }
            self.now = self
                .ch
                .next_deadline()
                .map_or(self.now, |d| self.now.max(d));
        }
        self.steps = 0;
        self.check();
        let model = &self.model;
        assert!(
            model.ready.is_empty() && model.deferred.is_empty() && model.in_flight.is_empty(),
            "drain did not finish"
        );
        assert_eq!(
            (model.finished.len() + model.dropped.len()) as u64,
            model.published
        );
        assert_eq!(
            (
                self.ch.depth(),
                self.ch.in_flight_count(),
                self.ch.deferred_count()
            ),
            (0, 0, 0)
        );
    }

    fn run(&mut self, steps: usize) {
        for _ in 0..steps {
            self.step();
        }
        self.drain();
    }
}

/// The number of an id made by `MessageId::from_u64` (a hand-rolled hex decode: the sim calls
/// this a few hundred times per step, and `from_str_radix` is slow in debug builds).
fn num(id: &MessageId) -> u64 {
    let mut n = 0u64;
    for &digit in &id.0 {
        // '0'..='9' are 0x30..=0x39 and 'a'..='f' are 0x61..=0x66: the low nibble, plus 9
        // for letters (bit 6 set).
        n = (n << 4) | (u64::from(digit & 0x0f) + 9 * u64::from((digit >> 6) & 1));
    }
    n
}

fn run_seed(seed: u64, steps: usize) {
    let mut sim = Sim::new(seed);
    let result = panic::catch_unwind(AssertUnwindSafe(|| sim.run(steps)));
    if let Err(cause) = result {
        eprintln!("last operations (oldest first):");
        for op in &sim.trace {
            eprintln!("  {op:?}");
        }
        eprintln!("channel options: {:?}", sim.opts);
        eprintln!("reproduce with SLUICE_SEED={seed}");
        panic::resume_unwind(cause);
    }
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} is a number")),
    )
}

/// `SLUICE_SEED=n` replays one run (with `SLUICE_STEPS` steps); otherwise `RUNS` random ones.
#[test]
fn channel_simulation_keeps_every_invariant() {
    let steps = env_number("SLUICE_STEPS").map_or(STEPS, |n| n as usize);
    if let Some(seed) = env_number("SLUICE_SEED") {
        run_seed(seed, steps);
        return;
    }
    let mut seeds = Rng(random_seed());
    for _ in 0..env_number("SLUICE_SIM_RUNS").unwrap_or(RUNS) {
        run_seed(seeds.next(), steps);
    }
}

#[test]
fn simulation_is_deterministic_for_a_seed() {
    let outcome = |seed| {
        let mut sim = Sim::new(seed);
        sim.run(300);
        (
            sim.model.published,
            sim.model.finished.len(),
            sim.model.dropped_count,
            sim.ch.stats(0).timeout_count,
        )
    };
    assert_eq!(outcome(42), outcome(42));
}
