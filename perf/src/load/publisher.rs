//! One publishing connection: paced or unlimited, MPUB batches built in place, several
//! requests in flight, and every unacknowledged batch sent again after an error.
//!
//! Mirrors upstream `bench/bench_writer` (one connection per goroutine, `MPUB` of
//! `--batch-size` messages, `--size`-byte bodies), with the pacing of `pacer` and the numbered
//! bodies of `body` added. Each batch is kept until its `OK` arrives, so after a refusal or a
//! lost connection the same messages (same numbers, same intended times) are sent again: the
//! broker answers a connection's commands in order and closes it at the first fatal error, so
//! nothing after a refused batch was taken, and only a dropped connection can duplicate.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_client::{Config, Error, Producer};

use super::{topic_name, Shared};
use crate::body::{wall_ns, Stamp};
use crate::pacer::Pacer;

/// Give up after this long without a successful publish.
const ERROR_PATIENCE: Duration = Duration::from_secs(10);
/// The longest sleep while waiting for the next message to be due.
const MAX_IDLE_SLEEP: Duration = Duration::from_millis(1);
/// How often an idle publisher reads acknowledgements without blocking.
const ACK_POLL_EVERY: Duration = Duration::from_millis(50);

/// A batch sent and not yet acknowledged.
#[derive(Debug, Clone, Copy)]
struct Batch {
    topic: u16,
    first_seq: u64,
    count: u32,
    /// The pacer index of its first message.
    first_index: u64,
    /// When it was built (the stamp of every message when unpaced).
    built_ns: u64,
}

/// What one publisher did.
#[derive(Debug, Clone, Default)]
pub struct PublisherResult {
    /// This publisher's index (the `producer` in each stamp).
    pub index: u16,
    /// Acknowledged messages per topic (numbers `0..n` of each stream).
    pub acked: Vec<u64>,
    /// Errors met (each followed by a resend).
    pub errors: u64,
    /// Why it stopped early, if it did.
    pub failure: Option<String>,
}

/// A publisher's fixed parameters.
pub struct PublisherPlan {
    /// Index of this publisher.
    pub index: u16,
    /// Broker address.
    pub addr: String,
    /// Messages to publish (`None`: until told to stop).
    pub quota: Option<u64>,
    /// Messages per second (`None`: unlimited).
    pub rate: Option<f64>,
    /// Schedule start (monotonic) and the same instant on the wall clock.
    pub start: (Instant, u64),
}

struct State {
    pacer: Pacer,
    next_seq: Vec<u64>,
    acked: Vec<u64>,
    inflight: VecDeque<Batch>,
    acked_requests: u64,
    next_topic: usize,
    errors: u64,
    last_poll: Instant,
}

/// Publishes until the quota is met or the run stops.
pub fn run(shared: &Arc<Shared>, plan: PublisherPlan) -> PublisherResult {
    let topics = shared.settings.topics;
    let mut state = State {
        pacer: Pacer::new(plan.start.0, plan.rate),
        next_seq: vec![0; topics],
        acked: vec![0; topics],
        inflight: VecDeque::new(),
        acked_requests: 0,
        next_topic: usize::from(plan.index) % topics.max(1),
        errors: 0,
        last_poll: Instant::now(),
    };
    let failure = match connect(shared, &plan.addr) {
        Ok(mut producer) => publish_loop(shared, &plan, &mut producer, &mut state).err(),
        Err(err) => Some(err.to_string()),
    };
    PublisherResult {
        index: plan.index,
        acked: state.acked,
        errors: state.errors,
        failure,
    }
}

fn connect(shared: &Shared, addr: &str) -> Result<Producer, Error> {
    let config = Config {
        max_pending: shared.settings.max_pending,
        client_id: "sluice-perf".into(),
        ..Config::default()
    };
    Producer::connect(addr, &config)
}

fn publish_loop(
    shared: &Shared,
    plan: &PublisherPlan,
    producer: &mut Producer,
    state: &mut State,
) -> Result<(), String> {
    let batch_cap = shared.settings.batch.max(1) as u64;
    let mut last_success = Instant::now();
    loop {
        let sent = state.pacer.sent();
        let left = plan.quota.map_or(u64::MAX, |q| q.saturating_sub(sent));
        if left == 0 || shared.stop_publishing.load(Ordering::Relaxed) {
            break;
        }
        let now = Instant::now();
        let n = state.pacer.ready(now, batch_cap.min(left));
        let result = if n == 0 {
            idle(producer, state, now)
        } else {
            send_new_batch(shared, plan, producer, state, n)
        };
        match result.and_then(|()| collect_acks(shared, producer, state)) {
            Ok(()) => last_success = Instant::now(),
            Err(err) => recover(shared, plan, producer, state, err, last_success)?,
        }
    }
    loop {
        let result = producer
            .wait_all()
            .and_then(|()| collect_acks(shared, producer, state));
        match result {
            Ok(()) if state.inflight.is_empty() => return Ok(()),
            Ok(()) => last_success = Instant::now(),
            Err(err) => recover(shared, plan, producer, state, err, last_success)?,
        }
    }
}

/// Sleeps until the next message is due (at most 1 ms). Every [`ACK_POLL_EVERY`] it also
/// reads the acknowledgements (and heartbeats) already received without blocking; in between,
/// a full window reads them anyway, so a fast paced run makes no extra system call per wake.
fn idle(producer: &mut Producer, state: &mut State, now: Instant) -> Result<(), Error> {
    if now.duration_since(state.last_poll) >= ACK_POLL_EVERY {
        state.last_poll = now;
        producer.poll_acks()?;
    }
    if let Some(due) = state.pacer.next_due() {
        std::thread::sleep(due.saturating_duration_since(now).min(MAX_IDLE_SLEEP));
    }
    Ok(())
}

fn send_new_batch(
    shared: &Shared,
    plan: &PublisherPlan,
    producer: &mut Producer,
    state: &mut State,
    n: u64,
) -> Result<(), Error> {
    let topic = state.next_topic;
    state.next_topic = (topic + 1) % shared.settings.topics.max(1);
    let batch = Batch {
        topic: u16::try_from(topic).unwrap_or(u16::MAX),
        first_seq: state.next_seq[topic],
        count: u32::try_from(n).unwrap_or(u32::MAX),
        first_index: state.pacer.sent(),
        built_ns: wall_ns(),
    };
    state.next_seq[topic] += n;
    state.pacer.mark_sent(n);
    state.inflight.push_back(batch);
    send_batch(shared, plan, producer, &state.pacer, &batch)?;
    // One write per batch, as bench_writer does: the batch leaves now, not when the buffer
    // or the window fills.
    producer.flush()
}

/// Encodes and sends one batch: `PUB` when the run's batch size is 1, else `MPUB`.
fn send_batch(
    shared: &Shared,
    plan: &PublisherPlan,
    producer: &mut Producer,
    pacer: &Pacer,
    batch: &Batch,
) -> Result<(), Error> {
    let settings = &shared.settings;
    let topic = topic_name(settings, usize::from(batch.topic));
    let stamp = |j: u64| Stamp {
        sent_ns: match plan.rate {
            Some(_) => plan.start.1 + nanos(pacer.intended(batch.first_index + j)),
            None => batch.built_ns,
        },
        run_id: shared.run_id,
        producer: plan.index,
        topic: batch.topic,
        seq: batch.first_seq + j,
    };
    if settings.batch <= 1 {
        let mut body = vec![0u8; settings.size];
        stamp(0).write(&mut body);
        return producer.send_pub(&topic, &body);
    }
    producer
        .send_mpub_with(&topic, |writer| {
            for j in 0..u64::from(batch.count) {
                writer.push_with(settings.size, |body| stamp(j).write(body));
            }
        })
        .map(|_| ())
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Moves acknowledged batches out of the in-flight list and into the counters.
fn collect_acks(shared: &Shared, producer: &Producer, state: &mut State) -> Result<(), Error> {
    let newly = producer.acked() - state.acked_requests;
    state.acked_requests = producer.acked();
    let (mut messages, mut bytes) = (0u64, 0u64);
    for _ in 0..newly {
        let Some(batch) = state.inflight.pop_front() else {
            break;
        };
        let topic = usize::from(batch.topic);
        state.acked[topic] = state.acked[topic].max(batch.first_seq + u64::from(batch.count));
        messages += u64::from(batch.count);
        bytes += u64::from(batch.count) * shared.settings.size as u64;
    }
    if messages > 0 {
        let now = shared.now_ns();
        shared
            .counters
            .last_ack_ns
            .fetch_max(now, Ordering::Relaxed);
    }
    shared.counters.acked.fetch_add(messages, Ordering::Relaxed);
    shared
        .counters
        .acked_bytes
        .fetch_add(bytes, Ordering::Relaxed);
    Ok(())
}

/// After an error: counts it, waits a little, and sends every unacknowledged batch again on
/// a new connection. Gives up when nothing succeeded for [`ERROR_PATIENCE`].
fn recover(
    shared: &Shared,
    plan: &PublisherPlan,
    producer: &mut Producer,
    state: &mut State,
    err: Error,
    last_success: Instant,
) -> Result<(), String> {
    state.errors += 1;
    shared.counters.pub_errors.fetch_add(1, Ordering::Relaxed);
    if last_success.elapsed() > ERROR_PATIENCE || shared.stop_all.load(Ordering::Relaxed) {
        return Err(format!("publisher {}: {err}", plan.index));
    }
    // Acks read before the error still count.
    let _ = collect_acks(shared, producer, state);
    state.acked_requests = producer.acked();
    std::thread::sleep(Duration::from_millis(20));
    let batches: Vec<Batch> = state.inflight.iter().copied().collect();
    for batch in &batches {
        if let Err(err) = send_batch(shared, plan, producer, &state.pacer, batch) {
            return recover(shared, plan, producer, state, err, last_success);
        }
    }
    Ok(())
}
