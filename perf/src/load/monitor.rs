//! The measuring loop of a run: starts the publishers, ticks every 100 ms, takes the warm-up
//! baseline, decides when publishing and consuming are over, prints the progress line, cuts
//! reporting intervals, and assembles the [`Report`].

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::publisher::{self, PublisherPlan, PublisherResult};
use super::{lock, Carry, Mode, Shared};
use crate::body::wall_ns;
use crate::cpu::{self, CpuSample};
use crate::latency::Latency;
use crate::report::{self, Interval, Report, Throughput};
use crate::tracker::Delivery;

const TICK: Duration = Duration::from_millis(100);
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// The counters at one instant.
#[derive(Debug, Clone, Copy, Default)]
struct Snap {
    at_s: f64,
    acked: u64,
    acked_bytes: u64,
    received: u64,
    received_bytes: u64,
}

impl Snap {
    fn take(shared: &Shared, since: Instant) -> Snap {
        let c = &shared.counters;
        Snap {
            at_s: since.elapsed().as_secs_f64(),
            acked: c.acked.load(Ordering::Relaxed),
            acked_bytes: c.acked_bytes.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
            received_bytes: c.received_bytes.load(Ordering::Relaxed),
        }
    }

    /// (publish rate, receive rate) from `earlier` to `self`.
    fn rates_since(&self, earlier: &Snap) -> (f64, f64) {
        let span = (self.at_s - earlier.at_s).max(1e-9);
        (
            (self.acked - earlier.acked) as f64 / span,
            (self.received - earlier.received) as f64 / span,
        )
    }
}

struct Monitor<'a> {
    shared: &'a Shared,
    mode: Mode,
    start: Instant,
    measure_start: Instant,
    warm: bool,
    baseline: Snap,
    cpu_start: CpuSample,
    pub_end: Option<(Instant, Snap)>,
    consume_end: Option<(Instant, Snap)>,
    expected_sub: Option<u64>,
    last_received: (u64, Instant),
    total: Latency,
    interval: (Latency, Snap),
    intervals: Vec<Interval>,
    progress: (Latency, Snap, CpuSample),
    /// The busiest thread's share of a core in any one-second window after the warm-up.
    busiest_peak: f64,
}

/// Runs the phase until it is over and reports it.
pub fn measure(
    shared: &Arc<Shared>,
    mode: Mode,
    expected_sub: Option<u64>,
) -> anyhow::Result<(Report, Carry)> {
    let start = Instant::now();
    let publishers = match mode {
        Mode::Sub => Vec::new(),
        Mode::Pub | Mode::PubSub => spawn_publishers(shared, (start, wall_ns()))?,
    };
    let settings = &shared.settings;
    let zero = Snap::default();
    let mut m = Monitor {
        shared,
        mode,
        start,
        measure_start: start + settings.warmup,
        warm: settings.warmup.is_zero(),
        baseline: zero,
        cpu_start: cpu::sample(),
        pub_end: None,
        consume_end: None,
        expected_sub: expected_sub.or(if mode == Mode::Sub {
            settings.count
        } else {
            None
        }),
        last_received: (0, start),
        total: Latency::new(),
        interval: (Latency::new(), zero),
        intervals: Vec::new(),
        progress: (Latency::new(), zero, cpu::sample()),
        busiest_peak: 0.0,
    };
    while !m.tick(&publishers) {
        std::thread::sleep(TICK);
    }
    shared.stop_publishing.store(true, Ordering::SeqCst);
    shared.stop_all.store(true, Ordering::SeqCst);
    let results: Vec<PublisherResult> = publishers
        .into_iter()
        .map(|h| h.join().unwrap_or_default())
        .collect();
    if m.shared.settings.progress && std::io::stderr().is_terminal() {
        eprintln!();
    }
    if let Some(failure) = results.iter().find_map(|r| r.failure.clone()) {
        anyhow::bail!("publishing failed: {failure}");
    }
    let carry = Carry {
        run_id: shared.run_id,
        published: published_streams(&results),
    };
    Ok((m.report(), carry))
}

fn spawn_publishers(
    shared: &Arc<Shared>,
    start: (Instant, u64),
) -> anyhow::Result<Vec<JoinHandle<PublisherResult>>> {
    let s = &shared.settings;
    let producers = s.producers.max(1);
    let mut handles = Vec::with_capacity(producers);
    for i in 0..producers {
        let quota = s.count.map(|count| {
            count / producers as u64 + u64::from((i as u64) < count % producers as u64)
        });
        let plan = PublisherPlan {
            index: u16::try_from(i).unwrap_or(u16::MAX),
            addr: s.addrs[i % s.addrs.len()].clone(),
            quota,
            rate: s.rate.map(|r| r / producers as f64),
            start,
        };
        let shared = shared.clone();
        let handle = std::thread::Builder::new()
            .name(format!("perf-pub-{i}"))
            .spawn(move || publisher::run(&shared, plan))
            .context("starting a publisher thread")?;
        handles.push(handle);
    }
    Ok(handles)
}

fn published_streams(results: &[PublisherResult]) -> BTreeMap<(u16, u16), u64> {
    let mut streams = BTreeMap::new();
    for result in results {
        for (topic, acked) in result.acked.iter().enumerate() {
            if *acked > 0 {
                let topic = u16::try_from(topic).unwrap_or(u16::MAX);
                streams.insert((result.index, topic), *acked);
            }
        }
    }
    streams
}

impl Monitor<'_> {
    /// One tick; returns whether the phase is over.
    fn tick(&mut self, publishers: &[JoinHandle<PublisherResult>]) -> bool {
        let now = Instant::now();
        self.take_latency();
        if !self.warm && now >= self.measure_start {
            self.warm = true;
            self.baseline = Snap::take(self.shared, self.start);
            self.cpu_start = cpu::sample();
            self.total.clear();
        }
        let snap = Snap::take(self.shared, self.start);
        if self.mode != Mode::Sub && self.pub_end.is_none() {
            self.check_publishing(now, snap, publishers);
        }
        if self.mode != Mode::Pub && self.consume_end.is_none() {
            self.check_consuming(now, snap);
        }
        self.cut_intervals(now, snap);
        match self.mode {
            Mode::Pub => self.pub_end.is_some(),
            Mode::Sub | Mode::PubSub => self.consume_end.is_some(),
        }
    }

    fn take_latency(&mut self) {
        let mut shared = lock(&self.shared.latency);
        if shared.count() == 0 {
            return;
        }
        if self.warm {
            self.total.add(&shared);
        }
        self.interval.0.add(&shared);
        self.progress.0.add(&shared);
        shared.clear();
    }

    fn check_publishing(
        &mut self,
        now: Instant,
        snap: Snap,
        publishers: &[JoinHandle<PublisherResult>],
    ) {
        let settings = &self.shared.settings;
        if settings
            .duration
            .is_some_and(|d| now >= self.measure_start + d)
        {
            self.shared.stop_publishing.store(true, Ordering::SeqCst);
        }
        if publishers.iter().all(JoinHandle::is_finished) {
            // The last acknowledgement, not this tick, ends the publishing span.
            let last_ack = self.shared.counters.last_ack_ns.load(Ordering::Relaxed);
            let end = if last_ack > 0 {
                self.shared.instant_at(last_ack).min(now)
            } else {
                now
            };
            self.pub_end = Some((end, snap));
            self.last_received.1 = now;
        }
    }

    fn check_consuming(&mut self, now: Instant, snap: Snap) {
        if snap.received != self.last_received.0 {
            self.last_received = (snap.received, now);
        }
        let settings = &self.shared.settings;
        let stalled = now.duration_since(self.last_received.1) >= settings.drain_timeout;
        let done = match self.mode {
            Mode::Sub => {
                self.expected_sub.is_some_and(|n| snap.received >= n)
                    || settings
                        .duration
                        .is_some_and(|d| now >= self.measure_start + d)
                    || (self.expected_sub.is_some() && stalled)
            }
            _ => self.pub_end.is_some_and(|(_, pub_snap)| {
                let target = pub_snap.acked * settings.channels as u64;
                snap.received >= target || stalled
            }),
        };
        if done {
            // Ended by a count or a drain: the last receipt ends the span; by time: now.
            let last = self.shared.counters.last_receive_ns.load(Ordering::Relaxed);
            let by_time = self.mode == Mode::Sub
                && settings
                    .duration
                    .is_some_and(|d| now >= self.measure_start + d);
            let end = if by_time || last == 0 {
                now
            } else {
                self.shared.instant_at(last).min(now)
            };
            self.consume_end = Some((end, snap));
        }
    }

    fn cut_intervals(&mut self, now: Instant, snap: Snap) {
        let settings = &self.shared.settings;
        if snap.at_s - self.interval.1.at_s >= settings.interval.as_secs_f64() {
            let (pub_rate, sub_rate) = snap.rates_since(&self.interval.1);
            self.intervals.push(Interval {
                end_s: now.duration_since(self.start).as_secs_f64(),
                pub_rate,
                sub_rate,
                latency: self.interval.0.summary(),
            });
            self.interval = (Latency::new(), snap);
        }
        if snap.at_s - self.progress.1.at_s >= PROGRESS_EVERY.as_secs_f64() {
            let sample = cpu::sample();
            let used = cpu::usage(&self.progress.2, &sample);
            if self.warm {
                self.busiest_peak = self.busiest_peak.max(used.busiest_thread);
            }
            if settings.progress {
                self.print_progress(snap, used.cores_used);
            }
            self.progress = (Latency::new(), snap, sample);
        }
    }

    fn print_progress(&self, snap: Snap, cores_used: f64) {
        let (pub_rate, sub_rate) = snap.rates_since(&self.progress.1);
        let line = format!(
            "[{:>6.1}s] pub {:>10}/s  sub {:>10}/s  p99 {:>9}  backlog {:>10}  perf cpu {:.2}",
            snap.at_s,
            report::group(pub_rate),
            report::group(sub_rate),
            report::micros(self.progress.0.summary().p99_us()),
            report::group(
                (snap.acked * self.shared.settings.channels as u64).saturating_sub(snap.received)
                    as f64
            ),
            cores_used
        );
        if std::io::stderr().is_terminal() {
            eprint!("\r{line}");
        } else {
            eprintln!("{line}");
        }
    }

    fn report(&self) -> Report {
        let settings = &self.shared.settings;
        let (measure_start, baseline) = if self.warm {
            (self.measure_start, self.baseline)
        } else {
            (self.start, Snap::default())
        };
        let span = |end: Instant| end.saturating_duration_since(measure_start).as_secs_f64();
        let publish = self.pub_end.map(|(at, s)| Throughput {
            messages: s.acked - baseline.acked,
            bytes: s.acked_bytes - baseline.acked_bytes,
            seconds: span(at),
        });
        let consume = self.consume_end.map(|(at, s)| Throughput {
            messages: s.received - baseline.received,
            bytes: s.received_bytes - baseline.received_bytes,
            seconds: span(at),
        });
        let server = settings
            .server_pid
            .map(|pid| (pid, cpu::peak_rss_bytes(pid)));
        let mut cpu = cpu::usage(&self.cpu_start, &cpu::sample());
        cpu.busiest_thread = cpu.busiest_thread.max(self.busiest_peak);
        Report {
            mode: self.mode.as_str().to_owned(),
            scenario: settings.scenario.clone(),
            settings: settings.to_json(),
            warmup_s: if self.warm {
                settings.warmup.as_secs_f64()
            } else {
                0.0
            },
            publish,
            consume,
            latency: self.total.summary(),
            delivery: None,
            cpu,
            server,
            pub_errors: self.shared.counters.pub_errors.load(Ordering::Relaxed),
            intervals: self.intervals.clone(),
        }
    }
}

/// Compares what every channel received with what was published to its topic.
pub fn check_delivery(shared: &Shared, published: &BTreeMap<(u16, u16), u64>) -> Delivery {
    let settings = &shared.settings;
    let mut total = Delivery::default();
    for topic in 0..settings.topics {
        let topic_id = u16::try_from(topic).unwrap_or(u16::MAX);
        let streams: BTreeMap<(u16, u16), u64> = published
            .iter()
            .filter(|((_, t), _)| *t == topic_id)
            .map(|(k, v)| (*k, *v))
            .collect();
        for channel in 0..settings.channels {
            if let Some(tracker) = shared.trackers.get(topic * settings.channels + channel) {
                total.add(&lock(tracker).check(&streams));
            }
        }
    }
    total
}
