//! Black-box test of sluice-lookupd's `GET /metrics`.
//!
//! Goal: the scrape is a well-formed Prometheus exposition whose figures agree with `/nodes`,
//! `/topics` and `/lookup`, and whose topic series stay bounded when brokers register many
//! ephemeral topics. Method: the real binary on loopback port 0, two brokers registering over
//! lookup V1 as nsqd does, a tombstone over HTTP; the scrape is parsed with the
//! `prometheus-parse` crate. Waits are bounded polls, never sleeps.

mod common;

use common::{get_json, http, lookup_hosts, strings, Broker};
use prometheus_parse::{Sample, Scrape, Value};

fn scrape(daemon: &common::Daemon) -> Vec<Sample> {
    let reply = http(daemon, "GET", "/metrics");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.response.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = String::from_utf8(reply.body).unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    Scrape::parse(lines).unwrap().samples
}

fn gauge(samples: &[Sample], metric: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| {
            s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
        .collect();
    assert_eq!(found.len(), 1, "{metric} {labels:?}: {found:?}");
    match found[0].value {
        Value::Gauge(v) => v,
        ref other => panic!("{metric} is not a gauge: {other:?}"),
    }
}

fn topic_labels(samples: &[Sample]) -> Vec<String> {
    samples
        .iter()
        .filter(|s| s.metric == "sluice_lookupd_topic_producers")
        .map(|s| s.labels.get("topic").unwrap().to_owned())
        .collect()
}

#[test]
fn metrics_agree_with_nodes_topics_and_lookup() {
    let daemon = common::start(&[]);
    let mut one = Broker::identified(&daemon, "one", 4151);
    let mut two = Broker::identified(&daemon, "two", 5151);
    one.register("shared", Some("c1"));
    two.register("shared", Some("c2"));
    one.register("solo", None);
    for i in 0..40 {
        two.register(&format!("e{i}#ephemeral"), None);
    }
    let reply = http(&daemon, "POST", "/topic/create?topic=created");
    assert_eq!(reply.status, 200);
    let reply = http(
        &daemon,
        "POST",
        "/topic/tombstone?topic=shared&node=two:5151",
    );
    assert_eq!(reply.status, 200);

    let samples = scrape(&daemon);
    let nodes = get_json(&daemon, "/nodes");
    let topics = strings(&get_json(&daemon, "/topics")["topics"]);
    let producers = nodes["producers"].as_array().unwrap().len();
    assert_eq!(producers, 2);
    assert_eq!(gauge(&samples, "sluice_lookupd_producers", &[]), 2.0);
    assert_eq!(
        gauge(&samples, "sluice_lookupd_topics", &[]),
        topics.len() as f64
    );
    assert_eq!(gauge(&samples, "sluice_lookupd_tombstones", &[]), 1.0);
    // What /lookup returns for each named topic.
    for topic in ["shared", "solo"] {
        let hosts = lookup_hosts(&daemon, topic).len() as f64;
        assert_eq!(
            gauge(
                &samples,
                "sluice_lookupd_topic_producers",
                &[("topic", topic)]
            ),
            hosts,
            "{topic}"
        );
    }
    assert_eq!(
        gauge(
            &samples,
            "sluice_lookupd_topic_producers",
            &[("topic", "#ephemeral")]
        ),
        40.0
    );
    // Registrations with brokers: topics shared, solo and 40 ephemeral; two channels.
    let category = |c: &str| gauge(&samples, "sluice_lookupd_registrations", &[("category", c)]);
    assert_eq!(category("topic"), 42.0);
    assert_eq!(category("channel"), 2.0);
    let mut labels = topic_labels(&samples);
    labels.sort();
    assert_eq!(labels, ["#ephemeral", "shared", "solo"]);

    // More ephemeral topics add no series.
    for i in 40..200 {
        one.register(&format!("e{i}#ephemeral"), None);
    }
    let more = scrape(&daemon);
    assert_eq!(more.len(), samples.len());
    assert_eq!(
        gauge(
            &more,
            "sluice_lookupd_topic_producers",
            &[("topic", "#ephemeral")]
        ),
        200.0
    );
}

#[test]
fn metrics_route_is_get_only() {
    let daemon = common::start(&[]);
    assert_eq!(http(&daemon, "POST", "/metrics").status, 405);
    assert_eq!(http(&daemon, "GET", "/metrics/").status, 301);
}
