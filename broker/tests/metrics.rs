//! Black-box suite of the metrics: statsd pushes and the Prometheus `GET /metrics`.
//!
//! Goal: what a statsd daemon receives and what Prometheus scrapes agree with `/stats` after
//! real publishing and consuming, in upstream's statsd keys and in a well-formed exposition
//! whose series stay bounded under an ephemeral storm. Method: the real `sluiced` on
//! loopback port 0 ([`common::Broker`]); a UDP socket of the test plays the statsd daemon
//! (`--statsd-interval=200ms`) and sums the counters it receives; scrapes are parsed with the
//! `prometheus-parse` crate and also checked line by line against the text format's grammar
//! (family contiguity, no duplicate series). Waits are bounded polls; nothing is timed.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::{channel_in, topic_in, Broker, IO_TIMEOUT};
use prometheus_parse::{Sample, Scrape, Value as PromValue};
use serde_json::Value;

/// How long statsd checks wait for the pushes to show what they expect.
const STATSD_WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// statsd

/// The test's statsd daemon: sums counters, keeps the last value of gauges.
struct StatsdSink {
    socket: UdpSocket,
    packet_size_max: usize,
    packets: usize,
    counters: HashMap<String, i64>,
    gauges: HashMap<String, i64>,
    keys: BTreeSet<String>,
}

impl StatsdSink {
    fn bind(packet_size_max: usize) -> StatsdSink {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        StatsdSink {
            socket,
            packet_size_max,
            packets: 0,
            counters: HashMap::new(),
            gauges: HashMap::new(),
            keys: BTreeSet::new(),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    /// Receives datagrams until `done` holds (checked after each), panicking after
    /// [`STATSD_WAIT`].
    fn until(&mut self, what: &str, mut done: impl FnMut(&StatsdSink) -> bool) {
        let deadline = Instant::now() + STATSD_WAIT;
        let mut buf = vec![0u8; 65536];
        while Instant::now() < deadline {
            if let Ok(n) = self.socket.recv(&mut buf) {
                self.take(&buf[..n]);
                if done(self) {
                    return;
                }
            }
        }
        panic!(
            "statsd: not within {STATSD_WAIT:?}: {what}; keys {:?}",
            self.keys
        );
    }

    fn take(&mut self, packet: &[u8]) {
        assert!(
            packet.len() <= self.packet_size_max,
            "datagram of {} bytes > {}",
            packet.len(),
            self.packet_size_max
        );
        self.packets += 1;
        let text = std::str::from_utf8(packet).unwrap();
        assert!(
            text.ends_with('\n'),
            "a datagram holds whole lines: {text:?}"
        );
        for line in text.lines() {
            let (key, rest) = line.rsplit_once(':').unwrap();
            let (value, kind) = rest.split_once('|').unwrap();
            let value: i64 = value.parse().unwrap();
            match kind {
                "c" => *self.counters.entry(key.to_owned()).or_default() += value,
                "g" => {
                    self.gauges.insert(key.to_owned(), value);
                }
                other => panic!("unknown statsd kind {other:?} in {line:?}"),
            }
            self.keys.insert(key.to_owned());
        }
    }

    fn counter(&self, key: &str) -> i64 {
        self.counters.get(key).copied().unwrap_or(0)
    }

    fn gauge(&self, key: &str) -> Option<i64> {
        self.gauges.get(key).copied()
    }
}

fn num(v: &Value, field: &str) -> i64 {
    v[field]
        .as_i64()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
}

#[test]
fn statsd_pushes_upstreams_keys_and_values() {
    let mut sink = StatsdSink::bind(300);
    let address = format!("--statsd-address={}", sink.addr());
    let broker = Broker::start(
        2,
        &[
            &address,
            "--statsd-interval=200ms",
            "--statsd-prefix=sluice.%s",
            "--statsd-udp-packet-size=300",
            "--broadcast-address=test.host",
            "--e2e-processing-latency-percentile=0.99,0.5",
        ],
    );
    let prefix = format!("sluice.test_host_{}.", broker.http.port());
    let mut producer = broker.connect();
    for i in 0..5 {
        producer.publish("stat_t", format!("message {i}").as_bytes());
    }
    producer.publish("stat_e#ephemeral", b"gone soon");
    let mut consumer = broker.connect();
    consumer.subscribe("stat_t", "ch");
    consumer.rdy(10);
    let messages = consumer.messages(5);
    for m in &messages[..4] {
        consumer.fin(&m.id);
    }
    consumer.req(&messages[4].id, 0);
    let again = consumer.message();
    consumer.fin(&again.id);
    consumer.barrier();
    broker.wait_channel_count("stat_t", "ch", "requeue_count", 1);

    let t = format!("{prefix}topic.stat_t.");
    let c = format!("{t}channel.ch.");
    sink.until("every message, bytes and the requeue counted", |s| {
        s.counter(&format!("{t}message_count")) == 5
            && s.counter(&format!("{c}message_count")) == 5
            && s.counter(&format!("{c}requeue_count")) == 1
            && s.gauge(&format!("{c}in_flight_count")) == Some(0)
            && s.gauge(&format!("{c}clients")) == Some(1)
            && s.keys.contains(&format!("{prefix}mem.gc_runs"))
    });
    let stats = broker.stats();
    let topic = topic_in(&stats, "stat_t").unwrap();
    let channel = channel_in(topic, "ch").unwrap();
    assert_eq!(
        sink.counter(&format!("{t}message_bytes")),
        num(topic, "message_bytes")
    );
    assert_eq!(sink.gauge(&format!("{t}depth")), Some(num(topic, "depth")));
    for (key, field) in [
        ("depth", "depth"),
        ("backend_depth", "backend_depth"),
        ("deferred_count", "deferred_count"),
        ("clients", "client_count"),
    ] {
        assert_eq!(
            sink.gauge(&format!("{c}{key}")),
            Some(num(channel, field)),
            "{key}"
        );
    }
    assert_eq!(
        sink.counter(&format!("{c}timeout_count")),
        num(channel, "timeout_count")
    );
    // The e2e percentiles of the channel and the topic, named by percent.
    for stem in [&t, &c] {
        for p in ["99", "50"] {
            let key = format!("{stem}e2e_processing_latency_{p}");
            assert!(sink.gauge(&key).is_some_and(|v| v > 0), "{key}");
        }
    }
    // Upstream's memory gauges; ephemeral topics are pushed by default.
    for key in [
        "heap_objects",
        "heap_idle_bytes",
        "heap_in_use_bytes",
        "heap_released_bytes",
        "gc_pause_usec_100",
        "gc_pause_usec_99",
        "gc_pause_usec_95",
        "next_gc_bytes",
    ] {
        assert!(sink.gauge(&format!("{prefix}mem.{key}")).is_some(), "{key}");
    }
    assert!(
        sink.gauge(&format!("{prefix}mem.heap_in_use_bytes"))
            .unwrap()
            > 0
    );
    assert!(sink
        .keys
        .contains(&format!("{prefix}topic.stat_e#ephemeral.message_count")));
    assert!(
        sink.keys.iter().all(|k| k.starts_with(&prefix)),
        "{:?}",
        sink.keys
    );
    // Many pushes went by, every one within the packet size (checked on receipt).
    assert!(sink.packets > 1);
}

#[test]
fn statsd_exclude_ephemeral_and_mem_stats_off() {
    let mut sink = StatsdSink::bind(508);
    let address = format!("--statsd-address={}", sink.addr());
    let broker = Broker::start(
        1,
        &[
            &address,
            "--statsd-interval=200ms",
            "--statsd-prefix=",
            "--statsd-mem-stats=false",
            "--statsd-exclude-ephemeral",
        ],
    );
    let mut producer = broker.connect();
    producer.publish("keep", b"a");
    producer.publish("drop#ephemeral", b"b");
    broker.admin("/channel/create?topic=keep&channel=gone%23ephemeral");
    broker.admin("/channel/create?topic=keep&channel=stay");
    sink.until("the durable topic and channel pushed", |s| {
        s.counter("topic.keep.message_count") == 1
            && s.keys.contains("topic.keep.channel.stay.depth")
    });
    assert!(
        sink.keys.iter().all(|k| !k.contains("#ephemeral")),
        "{:?}",
        sink.keys
    );
    assert!(sink.keys.iter().all(|k| !k.starts_with("mem.")));
}

// ---------------------------------------------------------------------------------------------
// Prometheus

/// A scrape: the status, the content type and the body.
fn get(addr: SocketAddr, target: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let head = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .unwrap_or_default()
        .to_owned();
    (status, content_type, body.to_owned())
}

/// Scrapes `/metrics`, checks the text against the format's grammar and parses it.
fn scrape(broker: &Broker) -> (String, Vec<Sample>) {
    let (status, content_type, body) = get(broker.http, "/metrics");
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    check_grammar(&body);
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let parsed = Scrape::parse(lines).unwrap();
    (body, parsed.samples)
}

/// The text format's rules the parser does not enforce: every line is a comment or a sample
/// of the family declared last (its name, or its `_bucket`/`_sum`/`_count`), each family is
/// declared once, and no series repeats.
fn check_grammar(text: &str) {
    let sample = regex::Regex::new(
        r#"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*",?)*\})? (-?[0-9.e+-]+|\+Inf|-Inf|NaN)$"#,
    )
    .unwrap();
    let mut families = BTreeSet::new();
    let mut series = BTreeSet::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(
                ["counter", "gauge", "histogram", "summary"].contains(&kind),
                "{line}"
            );
            assert!(families.insert(name.to_owned()), "{name} declared twice");
            current = name.to_owned();
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let caps = sample
            .captures(line)
            .unwrap_or_else(|| panic!("not a sample line: {line:?}"));
        let name = &caps[1];
        let stem = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|stem| *stem == current)
            .unwrap_or(name);
        assert_eq!(stem, current, "{line} outside its family");
        let (key, _value) = line.rsplit_once(' ').unwrap();
        assert!(series.insert(key.to_owned()), "series repeated: {key}");
    }
}

/// The value of the sample `metric` whose labels are exactly `labels`.
fn find<'a>(samples: &'a [Sample], metric: &str, labels: &[(&str, &str)]) -> &'a PromValue {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| {
            s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
        .collect();
    assert_eq!(found.len(), 1, "{metric} {labels:?}: {found:?}");
    &found[0].value
}

fn counter(samples: &[Sample], metric: &str, labels: &[(&str, &str)]) -> f64 {
    match find(samples, metric, labels) {
        PromValue::Counter(v) => *v,
        other => panic!("{metric} {labels:?} is not a counter: {other:?}"),
    }
}

fn gauge(samples: &[Sample], metric: &str, labels: &[(&str, &str)]) -> f64 {
    match find(samples, metric, labels) {
        PromValue::Gauge(v) => *v,
        other => panic!("{metric} {labels:?} is not a gauge: {other:?}"),
    }
}

/// Sum of a per-shard family over the shards (and any other label).
fn sum_all(samples: &[Sample], metric: &str) -> f64 {
    samples
        .iter()
        .filter(|s| s.metric == metric)
        .map(|s| match s.value {
            PromValue::Counter(v) | PromValue::Gauge(v) | PromValue::Untyped(v) => v,
            _ => panic!("{metric} is not a number"),
        })
        .sum()
}

/// Four topics over both shards (with `--cores=2` the name hash puts `gamma` on shard 0 and
/// the others on shard 1, so publishing all from one connection forwards some), consumed
/// partly on `alpha/work`: two finished, one requeued and delivered again, four in flight, one
/// deferred. The consumer is returned, still connected.
fn traffic(broker: &Broker) -> common::Conn {
    let mut consumer = broker.connect();
    consumer.subscribe("alpha", "work");
    let mut producer = broker.connect();
    for topic in ["alpha", "beta", "gamma", "delta"] {
        let bodies: Vec<Vec<u8>> = (0..6)
            .map(|i| format!("{topic} {i}").into_bytes())
            .collect();
        producer.mpublish(topic, &bodies);
    }
    producer.dpublish("alpha", 3_600_000, b"later");
    consumer.rdy(4);
    let got = consumer.messages(4);
    consumer.fin(&got[0].id);
    consumer.fin(&got[1].id);
    consumer.req(&got[2].id, 0);
    consumer.barrier();
    broker.wait_channel_count("alpha", "work", "requeue_count", 1);
    broker.wait_channel_count("alpha", "work", "in_flight_count", 4);
    broker.admin("/channel/create?topic=beta&channel=idle");
    consumer
}

#[test]
fn metrics_agree_with_stats_in_type_labels_and_value() {
    let broker = Broker::start(
        2,
        &[
            "--sync-mode=always",
            "--e2e-processing-latency-percentile=0.99,0.5",
        ],
    );
    // The consumer stays connected while the figures are compared.
    let _consumer = traffic(&broker);
    let (text, samples) = scrape(&broker);
    let stats = broker.stats();
    let topics = stats["topics"].as_array().unwrap();
    assert!(topics.len() >= 4);
    for topic in topics {
        let name = topic["topic_name"].as_str().unwrap();
        let t = [("topic", name)];
        let f = |field: &str| num(topic, field) as f64;
        assert_eq!(
            counter(&samples, "sluice_topic_messages_total", &t),
            f("message_count")
        );
        assert_eq!(
            counter(&samples, "sluice_topic_message_bytes_total", &t),
            f("message_bytes")
        );
        assert_eq!(gauge(&samples, "sluice_topic_depth", &t), f("depth"));
        assert_eq!(
            gauge(&samples, "sluice_topic_backend_depth", &t),
            f("backend_depth")
        );
        assert_eq!(gauge(&samples, "sluice_topic_members", &t), 1.0);
        for channel in topic["channels"].as_array().unwrap() {
            let ch = channel["channel_name"].as_str().unwrap();
            let l = [("topic", name), ("channel", ch)];
            let f = |field: &str| num(channel, field) as f64;
            assert_eq!(
                counter(&samples, "sluice_channel_messages_total", &l),
                f("message_count")
            );
            assert_eq!(
                counter(&samples, "sluice_channel_requeued_total", &l),
                f("requeue_count")
            );
            assert_eq!(
                counter(&samples, "sluice_channel_timed_out_total", &l),
                f("timeout_count")
            );
            assert_eq!(gauge(&samples, "sluice_channel_depth", &l), f("depth"));
            assert_eq!(
                gauge(&samples, "sluice_channel_backend_depth", &l),
                f("backend_depth")
            );
            assert_eq!(
                gauge(&samples, "sluice_channel_in_flight", &l),
                f("in_flight_count")
            );
            assert_eq!(
                gauge(&samples, "sluice_channel_deferred", &l),
                f("deferred_count")
            );
            assert_eq!(
                gauge(&samples, "sluice_channel_clients", &l),
                f("client_count")
            );
        }
    }
    // The traffic as it was made.
    let work = [("topic", "alpha"), ("channel", "work")];
    assert_eq!(
        counter(&samples, "sluice_channel_requeued_total", &work),
        1.0
    );
    assert_eq!(gauge(&samples, "sluice_channel_in_flight", &work), 4.0);
    assert_eq!(gauge(&samples, "sluice_channel_deferred", &work), 1.0);
    assert_eq!(gauge(&samples, "sluice_channel_clients", &work), 1.0);
    assert_eq!(gauge(&samples, "sluice_topics", &[]), topics.len() as f64);

    // The e2e latency of a channel as a summary: the quantiles of /stats, in seconds.
    let latency =
        &channel_in(topic_in(&stats, "alpha").unwrap(), "work").unwrap()["e2e_processing_latency"];
    let summary = find(
        &samples,
        "sluice_channel_e2e_processing_latency_seconds",
        &work,
    );
    let PromValue::Summary(quantiles) = summary else {
        panic!("not a summary: {summary:?}")
    };
    let expected: Vec<(f64, f64)> = latency["percentiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["quantile"].as_f64().unwrap(),
                p["value"].as_f64().unwrap() / 1e9,
            )
        })
        .collect();
    let got: Vec<(f64, f64)> = quantiles.iter().map(|q| (q.quantile, q.count)).collect();
    assert_eq!(got.len(), expected.len());
    for ((q1, v1), (q2, v2)) in got.iter().zip(&expected) {
        assert_eq!(q1, q2);
        assert!((v1 - v2).abs() <= v2.abs() * 1e-9, "{v1} vs {v2}");
        assert!(*v1 > 0.0);
    }

    // And since start as a histogram: one observation per FIN, cumulative buckets.
    let histogram = find(&samples, "sluice_channel_e2e_latency_seconds", &work);
    let PromValue::Histogram(buckets) = histogram else {
        panic!("not a histogram: {histogram:?}")
    };
    let finished = latency["count"].as_f64().unwrap();
    let last = buckets.last().map(|b| b.count).unwrap_or(0.0);
    assert!(
        last <= finished && last > 0.0,
        "{last} of {finished} finished"
    );
    assert!(
        buckets.windows(2).all(|w| w[0].count <= w[1].count),
        "{buckets:?}"
    );

    shard_families_are_sane(&text, &samples);
}

fn shard_families_are_sane(text: &str, samples: &[Sample]) {
    for shard in ["0", "1"] {
        let s = [("shard", shard)];
        assert!(counter(samples, "sluice_shard_busy_seconds_total", &s) > 0.0);
        assert!(counter(samples, "sluice_shard_tasks_executed_total", &s) > 0.0);
        assert!(gauge(samples, "sluice_shard_topics", &s) >= 1.0, "{shard}");
        let fsyncs = counter(samples, "sluice_shard_fsyncs_total", &s);
        let histogram = find(samples, "sluice_shard_fsync_duration_seconds", &s);
        let PromValue::Histogram(buckets) = histogram else {
            panic!("not a histogram: {histogram:?}")
        };
        assert!(buckets.windows(2).all(|w| w[0].less_than < w[1].less_than));
        assert!(buckets.windows(2).all(|w| w[0].count <= w[1].count));
        let inf = buckets.last().unwrap();
        assert!(inf.less_than.is_infinite());
        assert_eq!(inf.count, fsyncs, "shard {shard}");
        let count_line = format!("sluice_shard_fsync_duration_seconds_count{{shard=\"{shard}\"}} ");
        assert!(text.contains(&format!("{count_line}{fsyncs}")), "{shard}");
    }
    // Durable publishes in --sync-mode=always: written and synced.
    assert!(sum_all(samples, "sluice_shard_fsyncs_total") > 0.0);
    assert!(sum_all(samples, "sluice_shard_log_bytes") > 0.0);
    assert!(sum_all(samples, "sluice_shard_log_segments") > 0.0);
    assert!(sum_all(samples, "sluice_shard_log_writes_total") > 0.0);
    assert!(sum_all(samples, "sluice_shard_io_uring_ops_total") > 0.0);
    // Whatever was sent across was received (every publish here is over TCP).
    let forwarded = |direction: &str| {
        samples
            .iter()
            .filter(|s| s.metric == "sluice_shard_forwarded_messages_total")
            .filter(|s| s.labels.get("direction") == Some(direction))
            .map(|s| match s.value {
                PromValue::Counter(v) => v,
                _ => panic!("not a counter"),
            })
            .sum::<f64>()
    };
    assert!(forwarded("out") > 0.0);
    assert_eq!(forwarded("out"), forwarded("in"));
}

#[test]
fn an_ephemeral_storm_does_not_grow_the_series() {
    let broker = Broker::start(2, &[]);
    broker.admin("/topic/create?topic=durable");
    let storm = |from: usize, to: usize| {
        for i in from..to {
            broker.admin(&format!(
                "/channel/create?topic=durable&channel=c{i}%23ephemeral"
            ));
            broker.admin(&format!("/topic/create?topic=t{i}%23ephemeral"));
            broker.admin(&format!("/channel/create?topic=t{i}%23ephemeral&channel=c"));
        }
    };
    storm(0, 150);
    let (first, samples) = scrape(&broker);
    storm(150, 300);
    let (second, samples_after) = scrape(&broker);
    let series = |text: &str| text.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(series(&first), series(&second), "the storm grew the scrape");
    assert_eq!(samples.len(), samples_after.len());
    let labels: BTreeSet<(String, String)> = samples_after
        .iter()
        .filter(|s| s.metric == "sluice_channel_depth")
        .map(|s| {
            let get = |k: &str| s.labels.get(k).unwrap().to_owned();
            (get("topic"), get("channel"))
        })
        .collect();
    let expected: BTreeSet<(String, String)> =
        [("#ephemeral", "#ephemeral"), ("durable", "#ephemeral")]
            .iter()
            .map(|(t, c)| ((*t).to_owned(), (*c).to_owned()))
            .collect();
    assert_eq!(labels, expected);
    let eph = [("topic", "#ephemeral")];
    assert_eq!(gauge(&samples_after, "sluice_topic_members", &eph), 300.0);
    let folded = [("topic", "durable"), ("channel", "#ephemeral")];
    assert_eq!(
        gauge(&samples_after, "sluice_channel_members", &folded),
        300.0
    );
    assert_eq!(gauge(&samples_after, "sluice_topics", &[]), 301.0);
    assert_eq!(gauge(&samples_after, "sluice_channels", &[]), 600.0);
}

#[test]
fn metrics_route_answers_get_only() {
    let broker = Broker::start(1, &[]);
    let (status, body) = broker.http("POST", "/metrics", b"");
    assert_eq!(status, 405, "{body}");
    let (status, _, _) = get(broker.http, "/metrics/");
    assert_eq!(status, 301);
}
