//! Unit tests of the statsd keys, the prefix expansion and the packing, against what upstream's
//! `statsdLoop`, `nsqd.New` and `BoundaryBufferedWriter` produce for the same input.

use std::time::Duration;

use sluice_proto::http_json::{
    ChannelStats, E2eProcessingLatency, MemStats, Percentile, Stats, TopicStats,
};

use super::*;

fn opts() -> StatsdOptions {
    StatsdOptions {
        address: "127.0.0.1:8125".into(),
        interval: Duration::from_secs(60),
        prefix: "nsq.%s".into(),
        mem_stats: false,
        udp_packet_size: 508,
        exclude_ephemeral: false,
    }
}

fn channel(name: &str, count: u64) -> ChannelStats {
    ChannelStats {
        channel_name: name.into(),
        message_count: count,
        depth: 3,
        in_flight_count: 1,
        deferred_count: 2,
        requeue_count: count / 2,
        timeout_count: 1,
        client_count: 4,
        ..ChannelStats::default()
    }
}

fn stats(count: u64) -> Stats {
    Stats {
        topics: Some(vec![
            TopicStats {
                topic_name: "t".into(),
                message_count: count,
                message_bytes: count * 10,
                depth: 5,
                backend_depth: 2,
                channels: vec![channel("c", count), channel("e#ephemeral", count)],
                ..TopicStats::default()
            },
            TopicStats {
                topic_name: "x#ephemeral".into(),
                message_count: count,
                ..TopicStats::default()
            },
        ]),
        memory: Some(MemStats {
            heap_in_use_bytes: 4096,
            gc_total_runs: 0,
            ..MemStats::default()
        }),
        ..Stats::default()
    }
}

#[test]
fn prefix_expands_the_host_key_as_upstream() {
    assert_eq!(
        expand_prefix("nsq.%s", "host.example", 4151),
        "nsq.host_example_4151."
    );
    assert_eq!(expand_prefix("nsq.%s.", "10.0.0.1", 80), "nsq.10_0_0_1_80.");
    assert_eq!(expand_prefix("a.%s.b.%s", "h", 1), "a.h_1.b.h_1.");
    assert_eq!(expand_prefix("plain", "h", 1), "plain.");
    assert_eq!(expand_prefix("", "h", 1), "");
    assert_eq!(expand_prefix("nsq.%s", "::1", 4151), "nsq.[__1]_4151.");
}

#[test]
fn first_push_sends_totals_then_differences() {
    let first = lines("p.", &stats(10), &Stats::default(), &opts());
    for line in [
        "p.topic.t.message_count:10|c\n",
        "p.topic.t.message_bytes:100|c\n",
        "p.topic.t.depth:5|g\n",
        "p.topic.t.backend_depth:2|g\n",
        "p.topic.t.channel.c.message_count:10|c\n",
        "p.topic.t.channel.c.depth:3|g\n",
        "p.topic.t.channel.c.backend_depth:0|g\n",
        "p.topic.t.channel.c.in_flight_count:1|g\n",
        "p.topic.t.channel.c.deferred_count:2|g\n",
        "p.topic.t.channel.c.requeue_count:5|c\n",
        "p.topic.t.channel.c.timeout_count:1|c\n",
        "p.topic.t.channel.c.clients:4|g\n",
        "p.topic.x#ephemeral.message_count:10|c\n",
    ] {
        assert!(
            first.iter().any(|l| l == line),
            "missing {line:?} in {first:?}"
        );
    }
    let second = lines("p.", &stats(15), &stats(10), &opts());
    assert!(second.contains(&"p.topic.t.message_count:5|c\n".to_owned()));
    assert!(second.contains(&"p.topic.t.message_bytes:50|c\n".to_owned()));
    assert!(second.contains(&"p.topic.t.channel.c.requeue_count:2|c\n".to_owned()));
    assert!(second.contains(&"p.topic.t.channel.c.timeout_count:0|c\n".to_owned()));
    // A counter that went down (a topic deleted and created again) wraps as Go's does.
    let down = lines("p.", &stats(3), &stats(10), &opts());
    assert!(down.contains(&"p.topic.t.message_count:-7|c\n".to_owned()));
}

#[test]
fn order_is_upstreams() {
    let all = lines("", &stats(1), &Stats::default(), &opts());
    let keys: Vec<&str> = all
        .iter()
        .take(12)
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "topic.t.message_count",
            "topic.t.message_bytes",
            "topic.t.depth",
            "topic.t.backend_depth",
            "topic.t.channel.c.message_count",
            "topic.t.channel.c.depth",
            "topic.t.channel.c.backend_depth",
            "topic.t.channel.c.in_flight_count",
            "topic.t.channel.c.deferred_count",
            "topic.t.channel.c.requeue_count",
            "topic.t.channel.c.timeout_count",
            "topic.t.channel.c.clients",
        ]
    );
}

#[test]
fn exclude_ephemeral_skips_topics_and_channels() {
    let o = StatsdOptions {
        exclude_ephemeral: true,
        ..opts()
    };
    let all = lines("", &stats(1), &Stats::default(), &o);
    assert!(all.iter().all(|l| !l.contains("#ephemeral")), "{all:?}");
    assert!(all.iter().any(|l| l.starts_with("topic.t.channel.c.")));
}

#[test]
fn e2e_percentiles_are_gauges_named_by_percent() {
    let mut s = stats(1);
    let latency = E2eProcessingLatency {
        count: 2,
        percentiles: Some(vec![
            Percentile {
                quantile: 0.99,
                value: 1_500_000.0,
            },
            Percentile {
                quantile: 0.5,
                value: 7.9,
            },
        ]),
    };
    if let Some(topics) = s.topics.as_mut() {
        topics[0].e2e_processing_latency = latency.clone();
        topics[0].channels[0].e2e_processing_latency = latency;
    }
    let all = lines("", &s, &Stats::default(), &opts());
    for line in [
        "topic.t.e2e_processing_latency_99:1500000|g\n",
        "topic.t.e2e_processing_latency_50:7|g\n",
        "topic.t.channel.c.e2e_processing_latency_99:1500000|g\n",
    ] {
        assert!(all.iter().any(|l| l == line), "missing {line:?} in {all:?}");
    }
}

#[test]
fn mem_stats_only_when_asked() {
    assert!(lines("", &stats(1), &Stats::default(), &opts())
        .iter()
        .all(|l| !l.starts_with("mem.")));
    let o = StatsdOptions {
        mem_stats: true,
        ..opts()
    };
    let all = lines("", &stats(1), &Stats::default(), &o);
    let mem: Vec<&String> = all.iter().filter(|l| l.starts_with("mem.")).collect();
    assert_eq!(mem.len(), 9);
    assert!(all.contains(&"mem.heap_in_use_bytes:4096|g\n".to_owned()));
    assert!(all.contains(&"mem.gc_runs:0|c\n".to_owned()));
}

#[test]
fn packets_hold_whole_lines_up_to_the_size() {
    let lines: Vec<String> = (0..100).map(|i| format!("k.{i:03}:1|c\n")).collect();
    let line_len = lines[0].len(); // 10 bytes
    let packets = pack(&lines, 25);
    assert!(packets.iter().all(|p| p.len() <= 25));
    // Two lines fit in 25 bytes, a third does not.
    assert!(packets.iter().all(|p| p.len() == 2 * line_len));
    let joined: Vec<u8> = packets.concat();
    assert_eq!(joined, lines.concat().into_bytes());
    // Exactly full packets.
    let packets = pack(&lines, 20);
    assert_eq!(packets.len(), 50);
    // A line longer than the size goes alone.
    let long = vec!["a:1|c\n".to_owned(), "x".repeat(40), "b:1|c\n".to_owned()];
    let packets = pack(&long, 16);
    assert_eq!(packets.len(), 3);
    assert_eq!(packets[1].len(), 40);
    assert!(pack(&[], 508).is_empty());
}
