use super::*;
use sluice_proto::http_json::{E2eProcessingLatency, Percentile};

fn node_channel(node: &str, host: &str, name: &str, depth: i64, clients: usize) -> ChannelStats {
    let c = http_json::ChannelStats {
        channel_name: name.into(),
        depth,
        backend_depth: 1,
        in_flight_count: 2,
        message_count: 10,
        client_count: clients as i64,
        clients: Some(
            (0..clients)
                .map(|i| http_json::ClientStats {
                    hostname: format!("{host}-client{i}"),
                    connect_ts: 100,
                    ..Default::default()
                })
                .collect(),
        ),
        e2e_processing_latency: E2eProcessingLatency {
            count: 4,
            percentiles: Some(vec![Percentile {
                quantile: 0.99,
                value: 2000.0,
            }]),
        },
        ..Default::default()
    };
    ChannelStats::from_node(node, host, "t", &c, 160)
}

#[test]
fn node_channels_carry_node_memory_depth_and_connected_time() {
    let c = node_channel("h:1", "h", "c", 5, 1);
    assert_eq!(c.memory_depth, 4);
    let client = &c.clients.as_ref().unwrap()[0];
    assert_eq!(client.node, "h:1");
    assert_eq!(client.connected, 60_000_000_000);
    let e2e = c.e2e_processing_latency.as_ref().unwrap();
    let p = &e2e.percentiles.as_ref().unwrap()[0];
    assert_eq!(p["value"], 2000.0);
    assert_eq!(p["count"], 4.0);
}

#[test]
fn channels_sum_over_nodes() {
    let mut sum = ChannelStats::sum("t", "c");
    sum.add(&node_channel("b:1", "b", "c", 5, 2));
    sum.add(&node_channel("a:1", "a", "c", 7, 0));
    assert_eq!(sum.node, "*");
    assert_eq!(sum.depth, 12);
    assert_eq!(sum.in_flight_count, 4);
    assert_eq!(sum.client_count, 2);
    let nodes: Vec<&str> = sum
        .nodes
        .iter()
        .flatten()
        .map(|n| n.hostname.as_str())
        .collect();
    assert_eq!(nodes, ["a", "b"]);
    assert_eq!(sum.clients.as_ref().unwrap().len(), 2);
    let e2e = sum.e2e_processing_latency.as_ref().unwrap();
    assert_eq!(e2e.host, "*");
    assert_eq!(e2e.count, 8);
    let p = &e2e.percentiles.as_ref().unwrap()[0];
    assert_eq!(
        (p["average"], p["count"], p["min"], p["max"]),
        (2000.0, 8.0, 2000.0, 2000.0)
    );
    let json = serde_json::to_value(&sum).unwrap();
    assert_eq!(json["e2e_processing_latency"]["channel"], "c");
}

#[test]
fn no_clients_anywhere_stays_null() {
    let mut sum = ChannelStats::sum("t", "c");
    sum.add(&node_channel("a:1", "a", "c", 1, 0));
    assert_eq!(sum.clients, None);
    assert_eq!(
        serde_json::to_value(&sum).unwrap()["clients"],
        serde_json::Value::Null
    );
}

#[test]
fn topics_sum_channels_by_name() {
    let topic = |node: &str, host: &str, names: &[&str]| TopicStats {
        node: node.into(),
        hostname: host.into(),
        topic_name: "t".into(),
        depth: 3,
        message_count: 10,
        channels: Some(
            names
                .iter()
                .map(|n| node_channel(node, host, n, 1, 0))
                .collect(),
        ),
        ..TopicStats::default()
    };
    let mut sum = TopicStats::sum("t");
    sum.add(&topic("a:1", "a", &["y", "x"]));
    sum.add(&topic("b:1", "b", &["x"]));
    assert_eq!(sum.depth, 6);
    assert_eq!(sum.message_count, 20);
    let channels = sum.channels.as_ref().unwrap();
    let names: Vec<&str> = channels.iter().map(|c| c.channel_name.as_str()).collect();
    assert_eq!(names, ["x", "y"]);
    assert_eq!(channels[0].depth, 2);
    assert_eq!(channels[0].nodes.as_ref().unwrap().len(), 2);
    let json = serde_json::to_value(&sum).unwrap();
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 11);
    assert_eq!(json["node"], "*");
}

#[test]
fn empty_sum_is_upstreams_nulls() {
    let json = serde_json::to_string(&TopicStats::sum("t")).unwrap();
    assert_eq!(
        json,
        r#"{"node":"","hostname":"","topic_name":"t","depth":0,"memory_depth":0,"backend_depth":0,"message_count":0,"nodes":null,"channels":null,"paused":false,"e2e_processing_latency":null}"#
    );
}

#[test]
fn producers_from_lookupd_nodes() {
    let node = http_json::Node {
        remote_address: "127.0.0.1:5".into(),
        hostname: "h".into(),
        broadcast_address: "::1".into(),
        tcp_port: 4150,
        http_port: 4151,
        version: "1.3.0".into(),
        tombstones: vec![false, true],
        topics: vec!["a".into(), "b".into()],
    };
    let p = Producer::from_lookupd(&node);
    assert_eq!(p.http_address(), "[::1]:4151");
    assert_eq!(p.tcp_address(), "[::1]:4150");
    assert_eq!(
        p.topics.as_ref().unwrap()[1],
        ProducerTopic {
            topic: "b".into(),
            tombstoned: true
        }
    );
    assert_eq!(version_key("1.3.0"), (1, 3, 0));
    assert_eq!(version_key("1.2.1-alpha"), (1, 2, 1));
    assert_eq!(version_key("junk"), (0, 0, 0));
}

/// The `response_body` of a named line of an upstream v1.3.0 golden HTTP transcript.
fn golden_body(file: &str, name: &str) -> String {
    let path = format!("{}/../../shared/golden/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no line {name} in {file}"));
    line["response_body"].as_str().unwrap().to_owned()
}

#[test]
fn upstream_nsqd_stats_and_lookupd_nodes_read_as_nsqadmin_reads_them() {
    let stats: http_json::Stats =
        serde_json::from_str(&golden_body("http_nsqd.jsonl", "stats_json")).unwrap();
    let topics = stats.topics.unwrap();
    // golden_stats has a channel with one subscribed client.
    let theirs = topics
        .iter()
        .find(|t| t.topic_name == "golden_stats")
        .unwrap();
    let mut sum = TopicStats::sum("golden_stats");
    sum.add(&TopicStats::from_node("127.0.0.1:4151", "h", theirs, 0));
    assert_eq!(sum.node, "*");
    assert_eq!(sum.depth, theirs.depth);
    let channels = sum.channels.unwrap_or_default();
    assert_eq!(channels.len(), 1);
    let (mine, their_channel) = (&channels[0], &theirs.channels[0]);
    assert_eq!(mine.channel_name, their_channel.channel_name);
    assert_eq!(mine.in_flight_count, their_channel.in_flight_count);
    assert_eq!(
        mine.memory_depth,
        their_channel.depth - their_channel.backend_depth
    );
    let clients = mine.clients.as_ref().unwrap();
    assert_eq!(clients.len(), 1);
    let their_client = &their_channel.clients.as_ref().unwrap()[0];
    assert_eq!(clients[0].client_id, their_client.client_id);
    assert_eq!(clients[0].user_agent, their_client.user_agent);
    assert_eq!(clients[0].node, "127.0.0.1:4151");
    let nodes: http_json::NodesResponse =
        serde_json::from_str(&golden_body("http_lookupd.jsonl", "nodes")).unwrap();
    for node in &nodes.producers {
        let p = Producer::from_lookupd(node);
        assert_eq!(p.http_port, node.http_port);
        assert_eq!(p.topics.map_or(0, |t| t.len()), node.topics.len());
    }
}
