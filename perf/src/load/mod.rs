//! One measured run against one or more brokers: consumers subscribe first, publishers start
//! together on a shared schedule, and the monitor (the calling thread) takes the figures.
//!
//! Threads: one per publishing connection ([`publisher`]) and one per consumer connection
//! (sluice-client's, running [`handler::PerfHandler`]). They share only atomics and, once per
//! read or batch, a lock on the latency histogram and the channel's delivery tracker.

pub mod handler;
pub mod monitor;
pub mod publisher;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use sluice_client::{Config, Consumer};

use crate::body::{self, HEADER_LEN};
use crate::latency::Latency;
use crate::report::Report;
use crate::tracker::ChannelTracker;

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Publish only.
    Pub,
    /// Consume only (e.g. a backlog left by `pub`).
    Sub,
    /// Both at once.
    PubSub,
}

impl Mode {
    /// The subcommand name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Pub => "pub",
            Mode::Sub => "sub",
            Mode::PubSub => "pubsub",
        }
    }
}

/// The resolved settings of a run (flags applied over a scenario).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Scenario name, for the report.
    pub scenario: String,
    /// Broker TCP addresses.
    pub addrs: Vec<String>,
    /// Topic name (with `--topics N > 1`: `NAME.0` … `NAME.N-1`).
    pub topic: String,
    /// Topics.
    pub topics: usize,
    /// Channel name (with `--channels N > 1`: `NAME.0` …).
    pub channel: String,
    /// Channels per topic.
    pub channels: usize,
    /// Publishing connections in all.
    pub producers: usize,
    /// Consumer connections per channel and broker.
    pub consumers: usize,
    /// Body bytes.
    pub size: usize,
    /// Messages per MPUB (1: PUB).
    pub batch: usize,
    /// Offered rate, messages per second over all publishers (`None`: unlimited).
    pub rate: Option<f64>,
    /// Measured publishing time (after the warm-up).
    pub duration: Option<Duration>,
    /// Messages to publish (pub, pubsub) or receive (sub), warm-up included.
    pub count: Option<u64>,
    /// RDY per consumer connection.
    pub rdy: u64,
    /// Time excluded from the figures at the start.
    pub warmup: Duration,
    /// Publish requests in flight per connection.
    pub max_pending: usize,
    /// How long to wait for stragglers once publishing stopped.
    pub drain_timeout: Duration,
    /// Reporting interval (per-interval figures).
    pub interval: Duration,
    /// Print a progress line every second.
    pub progress: bool,
    /// The server's pid, for its peak RSS.
    pub server_pid: Option<u32>,
    /// Output buffer timeout asked by consumers (`None`: the server's default).
    pub output_buffer_timeout: Option<Duration>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            scenario: "custom".into(),
            addrs: vec!["127.0.0.1:4150".into()],
            topic: "sluice_perf".into(),
            topics: 1,
            channel: "ch".into(),
            channels: 1,
            producers: 1,
            consumers: 1,
            size: 200,
            batch: 200,
            rate: None,
            duration: Some(Duration::from_secs(10)),
            count: None,
            rdy: 2500,
            warmup: Duration::ZERO,
            max_pending: 16,
            drain_timeout: Duration::from_secs(10),
            interval: Duration::from_secs(1),
            progress: true,
            server_pid: None,
            output_buffer_timeout: None,
        }
    }
}

impl Settings {
    /// Refuses settings that cannot run.
    ///
    /// # Errors
    /// A message naming the bad setting and its limit.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.addrs.is_empty() {
            bail!("no --nsqd-tcp-address given");
        }
        if self.size < HEADER_LEN {
            bail!(
                "--size {} < {HEADER_LEN}: every message carries a {HEADER_LEN}-byte stamp",
                self.size
            );
        }
        if self.topics == 0 || self.topics > usize::from(u16::MAX) {
            bail!("--topics must be within 1..={}", u16::MAX);
        }
        if self.producers > usize::from(u16::MAX) || self.channels == 0 || self.consumers == 0 {
            bail!(
                "--producers must be at most {}, --channels and --consumers at least 1",
                u16::MAX
            );
        }
        if self.duration.is_none() && self.count.is_none() {
            bail!("give --duration or --count");
        }
        if self.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
            bail!("--rate must be a positive number of messages per second");
        }
        Ok(())
    }

    /// The settings as JSON, for reports.
    pub fn to_json(&self) -> Value {
        json!({
            "addrs": self.addrs, "topic": self.topic, "topics": self.topics,
            "channel": self.channel, "channels": self.channels, "producers": self.producers,
            "consumers": self.consumers, "size": self.size, "batch": self.batch,
            "rate": self.rate, "duration_s": self.duration.map(|d| d.as_secs_f64()),
            "count": self.count, "rdy": self.rdy, "warmup_s": self.warmup.as_secs_f64(),
            "max_pending": self.max_pending,
            "output_buffer_timeout_ms": self.output_buffer_timeout.map(|d| d.as_secs_f64() * 1e3),
        })
    }
}

/// The name of topic `index`.
pub fn topic_name(settings: &Settings, index: usize) -> String {
    if settings.topics == 1 {
        settings.topic.clone()
    } else {
        format!("{}.{index}", settings.topic)
    }
}

/// The name of channel `index`.
pub fn channel_name(settings: &Settings, index: usize) -> String {
    if settings.channels == 1 {
        settings.channel.clone()
    } else {
        format!("{}.{index}", settings.channel)
    }
}

/// Counters shared by every thread of a run.
#[derive(Debug, Default)]
pub struct Counters {
    /// Messages acknowledged by the broker.
    pub acked: AtomicU64,
    /// Their body bytes.
    pub acked_bytes: AtomicU64,
    /// Messages received.
    pub received: AtomicU64,
    /// Their body bytes.
    pub received_bytes: AtomicU64,
    /// Publish errors (each followed by a resend).
    pub pub_errors: AtomicU64,
    /// When the last acknowledgement was read, ns after [`Shared::epoch`].
    pub last_ack_ns: AtomicU64,
    /// When the last message was received, ns after [`Shared::epoch`].
    pub last_receive_ns: AtomicU64,
}

/// What the threads of a run share.
pub struct Shared {
    /// The settings.
    pub settings: Settings,
    /// Stamped in every body; other runs' messages are foreign.
    pub run_id: u32,
    /// Record sequence numbers for the delivery check.
    pub track: bool,
    /// Take foreign messages' latency too (consuming another run's backlog).
    pub accept_foreign: bool,
    /// The counters.
    pub counters: Counters,
    /// Latency of messages received since the monitor last took it.
    pub latency: Mutex<Latency>,
    /// One delivery tracker per (topic, channel): index `topic * channels + channel`.
    pub trackers: Vec<Mutex<ChannelTracker>>,
    /// Publishers stop sending new messages.
    pub stop_publishing: AtomicBool,
    /// Everything stops, retries included.
    pub stop_all: AtomicBool,
    /// The instant the `last_*_ns` counters count from.
    pub epoch: Instant,
}

impl Shared {
    /// Nanoseconds since [`Shared::epoch`].
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The instant `ns` after the epoch.
    pub fn instant_at(&self, ns: u64) -> Instant {
        self.epoch + Duration::from_nanos(ns)
    }
}

/// What a publishing phase leaves for a later consuming phase of the same process.
#[derive(Debug, Clone, Default)]
pub struct Carry {
    /// The run id the messages were stamped with.
    pub run_id: u32,
    /// Acknowledged messages per (producer, topic) stream.
    pub published: BTreeMap<(u16, u16), u64>,
}

impl Carry {
    /// Messages published in all.
    pub fn total(&self) -> u64 {
        self.published.values().sum()
    }
}

/// Runs one phase. `prior` is the publishing phase whose messages a `Sub` phase drains (then
/// their delivery is checked too).
///
/// # Errors
/// When the brokers cannot be reached, consumers cannot subscribe, or a publisher gives up.
pub fn run(
    settings: &Settings,
    mode: Mode,
    prior: Option<&Carry>,
) -> anyhow::Result<(Report, Carry)> {
    settings.validate()?;
    let run_id = prior.map_or_else(new_run_id, |c| c.run_id);
    let shared = Arc::new(Shared {
        settings: settings.clone(),
        run_id,
        track: mode == Mode::PubSub || prior.is_some(),
        accept_foreign: mode == Mode::Sub && prior.is_none(),
        counters: Counters::default(),
        latency: Mutex::new(Latency::new()),
        trackers: (0..settings.topics * settings.channels)
            .map(|_| Mutex::new(ChannelTracker::default()))
            .collect(),
        stop_publishing: AtomicBool::new(false),
        stop_all: AtomicBool::new(false),
        epoch: Instant::now(),
    });
    let consumers = if mode == Mode::Pub {
        Vec::new()
    } else {
        start_consumers(&shared)?
    };
    let expected = prior.map(|c| c.total() * settings.channels as u64);
    let outcome = monitor::measure(&shared, mode, expected);
    for consumer in &consumers {
        consumer.request_stop();
    }
    for consumer in &consumers {
        consumer.stop();
    }
    let (mut report, carry) = outcome?;
    if shared.track {
        let published = if mode == Mode::PubSub {
            &carry.published
        } else {
            &prior.map(|c| c.published.clone()).unwrap_or_default()
        };
        report.delivery = Some(monitor::check_delivery(&shared, published));
    }
    Ok((report, carry))
}

/// Subscribes every consumer connection and waits until all are subscribed.
fn start_consumers(shared: &Arc<Shared>) -> anyhow::Result<Vec<Consumer>> {
    let s = &shared.settings;
    let mut consumers = Vec::new();
    for topic in 0..s.topics {
        for channel in 0..s.channels {
            let slot = topic * s.channels + channel;
            for _ in 0..s.consumers {
                let config = Config {
                    max_in_flight: s.rdy * s.addrs.len() as u64,
                    client_id: "sluice-perf".into(),
                    output_buffer_timeout: s.output_buffer_timeout,
                    ..Config::default()
                };
                let consumer =
                    Consumer::new(&topic_name(s, topic), &channel_name(s, channel), config)?;
                let handler_shared = shared.clone();
                consumer.start(move || handler::PerfHandler::new(handler_shared.clone(), slot));
                for addr in &s.addrs {
                    consumer.connect_to_nsqd(addr)?;
                }
                consumers.push(consumer);
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for consumer in &consumers {
        let left = deadline.saturating_duration_since(Instant::now());
        if !consumer.wait_connected(s.addrs.len(), left) {
            let why = consumer
                .last_error()
                .unwrap_or_else(|| "no error recorded".into());
            for consumer in &consumers {
                consumer.request_stop();
            }
            return Err(anyhow::anyhow!("consumers could not subscribe: {why}"))
                .context(format!("subscribing to {}", s.addrs.join(", ")));
        }
    }
    Ok(consumers)
}

/// A run id that differs between runs (time-based; collisions only matter for foreign
/// backlogs and are harmless then).
fn new_run_id() -> u32 {
    let ns = body::wall_ns();
    (ns ^ (ns >> 32) ^ u64::from(std::process::id()).rotate_left(16)) as u32
}

/// Locks a mutex, taking the data even if a panicking thread poisoned it.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
