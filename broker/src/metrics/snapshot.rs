//! One shard's figures for `/metrics`, taken on the shard itself ([`take`]) and carried to the
//! shard answering the scrape in one mesh reply (`Request::Metrics`).
//!
//! Sluice's own (upstream nsqd has no shards): the executor's busy time and io_uring file
//! operations (glommio's `ExecutorStats` and `IoStats`), messages forwarded between shards,
//! the segment log's size, writes and fsyncs with an fsync latency histogram, and the topics the
//! shard owns (as `/stats` shows them, without clients).
//!
//! glommio's stats calls hand back what accumulated since the previous call and reset it, so
//! each shard thread keeps running totals here ([`TOTALS`]); nothing else in the broker reads
//! them. Nothing here awaits.

use std::cell::Cell;

use glommio::{ExecutorStats, RingIoStats};
use hdrhistogram::Histogram;
use sluice_proto::http_json::TopicStats;

use crate::shard::mesh::StatsQuery;
use crate::shard::Shard;

/// Upper bounds (seconds) of the fsync latency histogram: 100 µs to 10 s, as Prometheus' usual
/// latency buckets extended down to fast disks.
pub const FSYNC_BUCKETS_S: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// io_uring file operations completed by a shard's executor, since start (glommio counts
/// file operations only: socket operations are not in its stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UringTotals {
    /// Direct (O_DIRECT) reads and their bytes.
    pub reads: (u64, u64),
    /// Reads served from another read's buffer, and their bytes.
    pub deduped_reads: (u64, u64),
    /// Buffered reads and their bytes.
    pub buffered_reads: (u64, u64),
    /// Direct writes and their bytes.
    pub writes: (u64, u64),
    /// Buffered writes and their bytes.
    pub buffered_writes: (u64, u64),
    /// Files opened.
    pub opens: u64,
    /// Files closed.
    pub closes: u64,
}

/// A shard executor's running totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecutorTotals {
    /// Time spent running tasks and polling for IO (glommio `total_runtime`), ns.
    pub busy_ns: u64,
    /// Of which running tasks (glommio `executor_runtime`), ns.
    pub tasks_ns: u64,
    /// Tasks run.
    pub tasks_executed: u64,
    /// io_uring file operations.
    pub uring: UringTotals,
}

impl ExecutorTotals {
    /// Adds what glommio accumulated since its previous report.
    pub fn add_executor(&mut self, stats: &ExecutorStats) {
        let ns = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.busy_ns = self.busy_ns.saturating_add(ns(stats.total_runtime()));
        self.tasks_ns = self.tasks_ns.saturating_add(ns(stats.executor_runtime()));
        self.tasks_executed = self.tasks_executed.saturating_add(stats.tasks_executed());
    }

    /// Adds one ring's operations since its previous report.
    pub fn add_ring(&mut self, ring: &RingIoStats) {
        let u = &mut self.uring;
        let add = |total: &mut (u64, u64), (ops, bytes): (u64, u64)| {
            total.0 = total.0.saturating_add(ops);
            total.1 = total.1.saturating_add(bytes);
        };
        add(&mut u.reads, ring.file_reads());
        add(&mut u.deduped_reads, ring.file_deduped_reads());
        add(&mut u.buffered_reads, ring.file_buffered_reads());
        add(&mut u.writes, ring.file_writes());
        add(&mut u.buffered_writes, ring.file_buffered_writes());
        u.opens = u.opens.saturating_add(ring.files_opened());
        u.closes = u.closes.saturating_add(ring.files_closed());
    }
}

thread_local! {
    /// This shard thread's executor totals (one executor per thread).
    static TOTALS: Cell<ExecutorTotals> = Cell::new(ExecutorTotals::default());
}

/// A latency histogram in Prometheus' shape: cumulative counts at fixed bounds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatencyBuckets {
    /// `(upper bound in seconds, observations at or below it)`, ascending.
    pub cumulative: Vec<(f64, u64)>,
    /// All observations.
    pub count: u64,
    /// Their sum in seconds (from the histogram's mean: within its 1% resolution).
    pub sum_s: f64,
}

/// One shard's figures.
#[derive(Debug, Clone, Default)]
pub struct ShardSnapshot {
    /// The shard.
    pub shard: usize,
    /// Its topics, as `/stats` shows them (no clients).
    pub topics: Vec<TopicStats>,
    /// Its executor.
    pub executor: ExecutorTotals,
    /// Messages it sent to topics owned by other shards.
    pub forwarded_out: u64,
    /// Messages other shards sent to its topics.
    pub forwarded_in: u64,
    /// Bytes in its segment log.
    pub log_bytes: u64,
    /// Segments of its log.
    pub log_segments: u64,
    /// Writes to its log.
    pub log_writes: u64,
    /// Bytes written to its log.
    pub log_bytes_written: u64,
    /// fsyncs of its log.
    pub fsyncs: u64,
    /// Their latency.
    pub fsync_latency: LatencyBuckets,
    /// End-to-end latency since start of every channel that tracks it: (topic, channel, buckets).
    pub e2e: Vec<(String, String, LatencyBuckets)>,
}

/// Takes shard `shard`'s figures now. Runs on the shard's own thread (glommio's stats and the
/// totals are per thread).
pub fn take(shard: &Shard) -> ShardSnapshot {
    let query = StatsQuery {
        include_clients: false,
        ..StatsQuery::default()
    };
    let log = &shard.log;
    ShardSnapshot {
        shard: shard.id,
        topics: shard.stats_local(&query),
        executor: executor_totals(),
        forwarded_out: shard.forwarded_out.get(),
        forwarded_in: shard.forwarded_in.get(),
        log_bytes: log.disk_bytes(),
        log_segments: log.segment_count() as u64,
        log_writes: log.writes.get(),
        log_bytes_written: log.bytes_written.get(),
        fsyncs: log.fsyncs.get(),
        fsync_latency: latency_buckets(&log.fsync_latency_us.borrow(), &FSYNC_BUCKETS_S),
        e2e: e2e_buckets(shard),
    }
}

/// Bucket bounds of the end-to-end latency histograms, in seconds.
pub const E2E_BUCKETS_S: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0,
];

fn e2e_buckets(shard: &Shard) -> Vec<(String, String, LatencyBuckets)> {
    let topics = shard.topics.borrow();
    let mut out = Vec::new();
    for topic in topics.values() {
        for channel in topic.channels() {
            if let Some(e2e) = channel.e2e() {
                let buckets = latency_buckets(e2e.total_us(), &E2E_BUCKETS_S);
                out.push((topic.name().to_owned(), channel.name().to_owned(), buckets));
            }
        }
    }
    out
}

/// This thread's executor totals, brought up to date.
fn executor_totals() -> ExecutorTotals {
    let executor = glommio::executor();
    let io = executor.io_stats();
    let mut totals = TOTALS.get();
    totals.add_executor(&executor.executor_stats());
    for ring in [&io.main_ring, &io.latency_ring, &io.poll_ring] {
        totals.add_ring(ring);
    }
    TOTALS.set(totals);
    totals
}

/// A microsecond histogram as cumulative counts at `bounds_s` (seconds). A recorded value
/// counts under a bound when its whole histogram bin is at or below it.
pub fn latency_buckets(us: &Histogram<u64>, bounds_s: &[f64]) -> LatencyBuckets {
    let mut cumulative: Vec<(f64, u64)> = bounds_s.iter().map(|&b| (b, 0)).collect();
    for value in us.iter_recorded() {
        let seconds = value.value_iterated_to() as f64 / 1e6;
        for (bound, count) in cumulative.iter_mut() {
            if seconds <= *bound {
                *count += value.count_at_value();
            }
        }
    }
    LatencyBuckets {
        cumulative,
        count: us.len(),
        sum_s: us.mean() * us.len() as f64 / 1e6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microseconds_become_cumulative_second_buckets() {
        let mut h = Histogram::<u64>::new(2).unwrap();
        h.record(50).unwrap(); // 50 µs
        h.record(200).unwrap(); // 200 µs
        h.record(200).unwrap();
        h.record(3_000).unwrap(); // 3 ms
        h.record(20_000_000).unwrap(); // 20 s: past every bound
        let b = latency_buckets(&h, &FSYNC_BUCKETS_S);
        let at = |bound: f64| b.cumulative.iter().find(|(le, _)| *le == bound).unwrap().1;
        assert_eq!(at(0.0001), 1);
        assert_eq!(at(0.00025), 3);
        assert_eq!(at(0.001), 3);
        assert_eq!(at(0.005), 4);
        assert_eq!(at(10.0), 4);
        assert_eq!(b.count, 5);
        let exact = (50 + 200 + 200 + 3_000 + 20_000_000) as f64 / 1e6;
        assert!(
            (b.sum_s - exact).abs() / exact < 0.01,
            "{} vs {exact}",
            b.sum_s
        );
        let counts: Vec<u64> = b.cumulative.iter().map(|(_, c)| *c).collect();
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    }

    #[test]
    fn an_empty_histogram_has_empty_buckets() {
        let h = Histogram::<u64>::new(2).unwrap();
        let b = latency_buckets(&h, &FSYNC_BUCKETS_S);
        assert_eq!(b.count, 0);
        assert_eq!(b.sum_s, 0.0);
        assert!(b.cumulative.iter().all(|(_, c)| *c == 0));
    }
}
