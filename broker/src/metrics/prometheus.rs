//! What `GET /metrics` says: every shard's [`ShardSnapshot`] rendered as Prometheus families.
//!
//! Upstream nsqd has no `/metrics` (nsqio/nsq #732); the topic and channel families carry the
//! figures of `/stats` (`nsqd/stats.go`) under Prometheus names: `sluice_` prefix, `_total` on
//! counters, base units (seconds, bytes), labels `topic`, `channel`, `shard`. Topic and channel
//! series are folded by [`super::series`] so their number stays bounded. Per-shard families
//! are Sluice's own. Pure: the caller gathers the snapshots.

use sluice_proto::http_json::E2eProcessingLatency;

use super::exposition::{Buckets, Exposition, Kind, Value};
use super::series::{fold, ChannelSeries, TopicSeries};
use super::snapshot::{LatencyBuckets, ShardSnapshot, UringTotals};

/// Process-wide facts that are not per shard.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessFacts {
    /// Unix seconds when the broker started.
    pub start_time_s: i64,
    /// Resident memory, bytes.
    pub resident_bytes: u64,
    /// Whether `/ping` answers OK.
    pub healthy: bool,
}

/// The exposition of `snapshots` (one per shard) and `process`.
pub fn render(snapshots: &[ShardSnapshot], process: &ProcessFacts) -> String {
    let mut e = Exposition::new();
    process_families(&mut e, process, snapshots);
    let topics: Vec<_> = snapshots
        .iter()
        .flat_map(|s| s.topics.iter().cloned())
        .collect();
    let series = fold(&topics);
    topic_families(&mut e, &series);
    channel_families(&mut e, &series);
    let histograms: Vec<&(String, String, LatencyBuckets)> =
        snapshots.iter().flat_map(|s| s.e2e.iter()).collect();
    e2e_histograms(&mut e, &series, &histograms);
    shard_families(&mut e, snapshots);
    e.finish()
}

fn process_families(e: &mut Exposition, p: &ProcessFacts, snapshots: &[ShardSnapshot]) {
    let gauge = |e: &mut Exposition, name: &str, help: &str, value: Value| {
        e.family(name, Kind::Gauge, help);
        e.sample(name, &[], value);
    };
    gauge(
        e,
        "sluice_start_time_seconds",
        "Unix time the broker started, in seconds.",
        Value::Signed(p.start_time_s),
    );
    gauge(
        e,
        "sluice_resident_memory_bytes",
        "Resident memory of the broker process (VmRSS), in bytes.",
        Value::Int(p.resident_bytes),
    );
    gauge(
        e,
        "sluice_healthy",
        "1 when /ping answers OK, 0 after a storage failure (until restart).",
        Value::Int(u64::from(p.healthy)),
    );
    let topics: usize = snapshots.iter().map(|s| s.topics.len()).sum();
    let channels: usize = snapshots
        .iter()
        .flat_map(|s| &s.topics)
        .map(|t| t.channels.len())
        .sum();
    gauge(
        e,
        "sluice_topics",
        "Topics on the broker, ephemeral ones included (not folded).",
        Value::Int(topics as u64),
    );
    gauge(
        e,
        "sluice_channels",
        "Channels on the broker, ephemeral ones included (not folded).",
        Value::Int(channels as u64),
    );
}

/// One topic family: name, type, help and the value of a series.
type TopicFamily = (&'static str, Kind, &'static str, fn(&TopicSeries) -> Value);

const TOPIC_FAMILIES: &[TopicFamily] = &[
    (
        "sluice_topic_messages_total",
        Kind::Counter,
        "Messages published to the topic.",
        |t| Value::Int(t.message_count),
    ),
    (
        "sluice_topic_message_bytes_total",
        Kind::Counter,
        "Message body bytes published to the topic.",
        |t| Value::Int(t.message_bytes),
    ),
    (
        "sluice_topic_depth",
        Kind::Gauge,
        "Messages waiting in the topic (memory and segment log), not yet copied to its channels.",
        |t| Value::Signed(t.depth),
    ),
    (
        "sluice_topic_backend_depth",
        Kind::Gauge,
        "Of the topic's depth, messages in the segment log only.",
        |t| Value::Signed(t.backend_depth),
    ),
    (
        "sluice_topic_paused",
        Kind::Gauge,
        "Paused topics in the series (0 or 1 for a named topic).",
        |t| Value::Int(t.paused),
    ),
    (
        "sluice_topic_members",
        Kind::Gauge,
        "Topics summed into the series (1 for a named topic; see the folding rule).",
        |t| Value::Int(t.members),
    ),
];

/// One channel family.
type ChannelFamily = (
    &'static str,
    Kind,
    &'static str,
    fn(&ChannelSeries) -> Value,
);

const CHANNEL_FAMILIES: &[ChannelFamily] = &[
    (
        "sluice_channel_messages_total",
        Kind::Counter,
        "Messages the channel received from its topic.",
        |c| Value::Int(c.message_count),
    ),
    (
        "sluice_channel_depth",
        Kind::Gauge,
        "Messages waiting in the channel (memory and segment log).",
        |c| Value::Signed(c.depth),
    ),
    (
        "sluice_channel_backend_depth",
        Kind::Gauge,
        "Of the channel's depth, messages in the segment log only.",
        |c| Value::Signed(c.backend_depth),
    ),
    (
        "sluice_channel_in_flight",
        Kind::Gauge,
        "Messages delivered and not yet finished, requeued or timed out.",
        |c| Value::Signed(c.in_flight),
    ),
    (
        "sluice_channel_deferred",
        Kind::Gauge,
        "Messages deferred (DPUB, or REQ with a delay).",
        |c| Value::Signed(c.deferred),
    ),
    (
        "sluice_channel_requeued_total",
        Kind::Counter,
        "Messages requeued by consumers (REQ).",
        |c| Value::Int(c.requeue_count),
    ),
    (
        "sluice_channel_timed_out_total",
        Kind::Counter,
        "In-flight messages that timed out (msg_timeout) and were requeued.",
        |c| Value::Int(c.timeout_count),
    ),
    (
        "sluice_channel_clients",
        Kind::Gauge,
        "Consumers subscribed to the channel.",
        |c| Value::Signed(c.clients),
    ),
    (
        "sluice_channel_paused",
        Kind::Gauge,
        "Paused channels in the series (0 or 1 for a named channel).",
        |c| Value::Int(c.paused),
    ),
    (
        "sluice_channel_members",
        Kind::Gauge,
        "Channels summed into the series (1 for a named channel; see the folding rule).",
        |c| Value::Int(c.members),
    ),
];

const TOPIC_E2E: &str = "sluice_topic_e2e_processing_latency_seconds";
const CHANNEL_E2E: &str = "sluice_channel_e2e_processing_latency_seconds";
const E2E_HELP: &str = "End-to-end processing latency (PUB to FIN) over the sliding window of \
--e2e-processing-latency-window-time, at the quantiles of --e2e-processing-latency-percentile.";

fn topic_families(e: &mut Exposition, series: &[TopicSeries]) {
    for (name, kind, help, value) in TOPIC_FAMILIES {
        e.family(name, *kind, help);
        for t in series {
            e.sample(name, &[("topic", &t.label)], value(t));
        }
    }
    if series.iter().any(|t| t.e2e.is_some()) {
        e.family(TOPIC_E2E, Kind::Summary, E2E_HELP);
        for t in series {
            if let Some(latency) = &t.e2e {
                quantiles(e, TOPIC_E2E, &[("topic", &t.label)], latency);
            }
        }
    }
}

fn channel_families(e: &mut Exposition, series: &[TopicSeries]) {
    let all = || {
        series
            .iter()
            .flat_map(|t| t.channels.iter().map(move |c| (t.label.as_str(), c)))
    };
    for (name, kind, help, value) in CHANNEL_FAMILIES {
        e.family(name, *kind, help);
        for (topic, c) in all() {
            e.sample(name, &[("topic", topic), ("channel", &c.label)], value(c));
        }
    }
    if all().any(|(_, c)| c.e2e.is_some()) {
        e.family(CHANNEL_E2E, Kind::Summary, E2E_HELP);
        for (topic, c) in all() {
            if let Some(latency) = &c.e2e {
                let labels = [("topic", topic), ("channel", c.label.as_str())];
                quantiles(e, CHANNEL_E2E, &labels, latency);
            }
        }
    }
}

const CHANNEL_E2E_HISTOGRAM: &str = "sluice_channel_e2e_latency_seconds";

/// Every end-to-end latency since start as a histogram, for the channels that have a series of
/// their own (folded ones have none, which keeps the cardinality bounded).
fn e2e_histograms(
    e: &mut Exposition,
    series: &[TopicSeries],
    histograms: &[&(String, String, LatencyBuckets)],
) {
    let own = |topic: &str, channel: &str| {
        series.iter().any(|t| {
            t.label == topic
                && t.channels
                    .iter()
                    .any(|c| c.label == channel && c.members == 1)
        })
    };
    let shown: Vec<_> = histograms.iter().filter(|(t, c, _)| own(t, c)).collect();
    if shown.is_empty() {
        return;
    }
    e.family(
        CHANNEL_E2E_HISTOGRAM,
        Kind::Histogram,
        "End-to-end processing latency (PUB to FIN) since start, in seconds (with \
         --e2e-processing-latency-percentile; _sum from the recorded mean, within 1%).",
    );
    for (topic, channel, b) in shown {
        let buckets = Buckets {
            cumulative: &b.cumulative,
            count: b.count,
            sum: b.sum_s,
        };
        e.histogram(
            CHANNEL_E2E_HISTOGRAM,
            &[("topic", topic), ("channel", channel)],
            &buckets,
        );
    }
}

/// The window's quantiles, in seconds. No `_sum` or `_count`: the window's count goes down as
/// it slides, which a summary's `_count` must not.
fn quantiles(e: &mut Exposition, name: &str, labels: &[(&str, &str)], l: &E2eProcessingLatency) {
    for p in l.percentiles.iter().flatten() {
        e.quantile(name, labels, p.quantile, p.value / 1e9);
    }
}

/// One per-shard counter or gauge family.
type ShardFamily = (
    &'static str,
    Kind,
    &'static str,
    fn(&ShardSnapshot) -> Value,
);

const SHARD_FAMILIES: &[ShardFamily] = &[
    ("sluice_shard_busy_seconds_total", Kind::Counter, "Time the shard's executor spent running tasks and polling for IO (not idle, not spinning), in seconds.", |s| Value::Float(s.executor.busy_ns as f64 / 1e9)),
    ("sluice_shard_task_seconds_total", Kind::Counter, "Of the busy time, time spent running tasks, in seconds.", |s| Value::Float(s.executor.tasks_ns as f64 / 1e9)),
    ("sluice_shard_tasks_executed_total", Kind::Counter, "Tasks the shard's executor ran.", |s| Value::Int(s.executor.tasks_executed)),
    ("sluice_shard_topics", Kind::Gauge, "Topics the shard owns.", |s| Value::Int(s.topics.len() as u64)),
    ("sluice_shard_log_bytes", Kind::Gauge, "Bytes in the shard's segment log.", |s| Value::Int(s.log_bytes)),
    ("sluice_shard_log_segments", Kind::Gauge, "Segment files of the shard's log.", |s| Value::Int(s.log_segments)),
    ("sluice_shard_log_writes_total", Kind::Counter, "Writes to the shard's segment log.", |s| Value::Int(s.log_writes)),
    ("sluice_shard_log_written_bytes_total", Kind::Counter, "Bytes written to the shard's segment log.", |s| Value::Int(s.log_bytes_written)),
    ("sluice_shard_fsyncs_total", Kind::Counter, "fsyncs (fdatasync) of the shard's segment log.", |s| Value::Int(s.fsyncs)),
];

fn shard_families(e: &mut Exposition, snapshots: &[ShardSnapshot]) {
    let ids: Vec<String> = snapshots.iter().map(|s| s.shard.to_string()).collect();
    let shards = || snapshots.iter().zip(ids.iter().map(String::as_str));
    for (name, kind, help, value) in SHARD_FAMILIES {
        e.family(name, *kind, help);
        for (s, id) in shards() {
            e.sample(name, &[("shard", id)], value(s));
        }
    }
    let name = "sluice_shard_forwarded_messages_total";
    e.family(
        name,
        Kind::Counter,
        "Messages published on one shard to a topic owned by another: sent over the mesh \
         (direction=out, TCP publishes only) and received (direction=in, TCP and HTTP).",
    );
    for (s, id) in shards() {
        for (direction, count) in [("out", s.forwarded_out), ("in", s.forwarded_in)] {
            e.sample(
                name,
                &[("shard", id), ("direction", direction)],
                Value::Int(count),
            );
        }
    }
    let name = "sluice_shard_fsync_duration_seconds";
    e.family(
        name,
        Kind::Histogram,
        "Latency of the shard log's fsyncs, in seconds (_sum from the recorded mean, within 1%).",
    );
    for (s, id) in shards() {
        let f = &s.fsync_latency;
        let buckets = Buckets {
            cumulative: &f.cumulative,
            count: f.count,
            sum: f.sum_s,
        };
        e.histogram(name, &[("shard", id)], &buckets);
    }
    uring_families(e, snapshots, &ids);
}

/// The io_uring operation kinds and their counts (ops, bytes; bytes `None` where there are none).
fn uring_ops(u: &UringTotals) -> [(&'static str, u64, Option<u64>); 7] {
    [
        ("read", u.reads.0, Some(u.reads.1)),
        ("deduped_read", u.deduped_reads.0, Some(u.deduped_reads.1)),
        (
            "buffered_read",
            u.buffered_reads.0,
            Some(u.buffered_reads.1),
        ),
        ("write", u.writes.0, Some(u.writes.1)),
        (
            "buffered_write",
            u.buffered_writes.0,
            Some(u.buffered_writes.1),
        ),
        ("open", u.opens, None),
        ("close", u.closes, None),
    ]
}

fn uring_families(e: &mut Exposition, snapshots: &[ShardSnapshot], ids: &[String]) {
    let name = "sluice_shard_io_uring_ops_total";
    e.family(
        name,
        Kind::Counter,
        "File operations submitted through the shard's io_uring rings and completed, by kind \
         (glommio's IoStats; socket operations are not counted there).",
    );
    for (s, id) in snapshots.iter().zip(ids) {
        for (op, count, _) in uring_ops(&s.executor.uring) {
            e.sample(name, &[("shard", id), ("op", op)], Value::Int(count));
        }
    }
    let name = "sluice_shard_io_uring_bytes_total";
    e.family(
        name,
        Kind::Counter,
        "Bytes moved by the shard's io_uring file reads and writes, by kind.",
    );
    for (s, id) in snapshots.iter().zip(ids) {
        for (op, _, bytes) in uring_ops(&s.executor.uring) {
            if let Some(bytes) = bytes {
                e.sample(name, &[("shard", id), ("op", op)], Value::Int(bytes));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::snapshot::LatencyBuckets;
    use sluice_proto::http_json::{ChannelStats, Percentile, TopicStats};

    fn snapshot() -> ShardSnapshot {
        let latency = E2eProcessingLatency {
            count: 3,
            percentiles: Some(vec![Percentile {
                quantile: 0.5,
                value: 2_500_000.0,
            }]),
        };
        ShardSnapshot {
            shard: 1,
            topics: vec![TopicStats {
                topic_name: "t".into(),
                message_count: 4,
                message_bytes: 40,
                e2e_processing_latency: latency.clone(),
                channels: vec![ChannelStats {
                    channel_name: "c".into(),
                    message_count: 4,
                    requeue_count: 1,
                    in_flight_count: 2,
                    e2e_processing_latency: latency,
                    ..ChannelStats::default()
                }],
                ..TopicStats::default()
            }],
            forwarded_out: 5,
            fsyncs: 2,
            fsync_latency: LatencyBuckets {
                cumulative: vec![(0.001, 1), (1.0, 2)],
                count: 2,
                sum_s: 0.5,
            },
            ..ShardSnapshot::default()
        }
    }

    #[test]
    fn renders_topic_channel_and_shard_families() {
        let text = render(&[snapshot()], &ProcessFacts::default());
        for line in [
            "# TYPE sluice_topic_messages_total counter",
            "sluice_topic_messages_total{topic=\"t\"} 4",
            "sluice_topic_message_bytes_total{topic=\"t\"} 40",
            "sluice_channel_requeued_total{topic=\"t\",channel=\"c\"} 1",
            "sluice_channel_in_flight{topic=\"t\",channel=\"c\"} 2",
            "# TYPE sluice_channel_e2e_processing_latency_seconds summary",
            "sluice_channel_e2e_processing_latency_seconds{topic=\"t\",channel=\"c\",quantile=\"0.5\"} 0.0025",
            "sluice_topic_e2e_processing_latency_seconds{topic=\"t\",quantile=\"0.5\"} 0.0025",
            "sluice_shard_forwarded_messages_total{shard=\"1\",direction=\"out\"} 5",
            "sluice_shard_fsyncs_total{shard=\"1\"} 2",
            "sluice_shard_fsync_duration_seconds_bucket{shard=\"1\",le=\"0.001\"} 1",
            "sluice_shard_fsync_duration_seconds_bucket{shard=\"1\",le=\"+Inf\"} 2",
            "sluice_shard_fsync_duration_seconds_sum{shard=\"1\"} 0.5",
            "sluice_shard_io_uring_ops_total{shard=\"1\",op=\"write\"} 0",
            "sluice_topics 1",
            "sluice_channels 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn untracked_latency_has_no_summary_family() {
        let mut s = snapshot();
        s.topics[0].e2e_processing_latency = E2eProcessingLatency::default();
        s.topics[0].channels[0].e2e_processing_latency = E2eProcessingLatency::default();
        let text = render(&[s], &ProcessFacts::default());
        assert!(!text.contains("e2e"), "{text}");
    }

    #[test]
    fn every_family_is_declared_once_and_contiguous() {
        let text = render(&[snapshot(), snapshot()], &ProcessFacts::default());
        let mut seen: Vec<String> = Vec::new();
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let name = line.split(' ').nth(2).unwrap().to_owned();
            assert!(!seen.contains(&name), "{name} declared twice");
            seen.push(name);
        }
        // Samples belong to the family declared last.
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                current = rest.split(' ').next().unwrap().to_owned();
            } else if !line.starts_with('#') {
                assert!(line.starts_with(&current), "{line} outside {current}");
            }
        }
    }
}
