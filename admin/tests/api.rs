//! nsqadmin's read API (`/api/topics`, `/api/topics/:t`, `/api/topics/:t/:c`, `/api/nodes`,
//! `/api/nodes/:n`, `/api/counter`) against real processes: one `sluice-lookupd` and two
//! `sluiced` with topic `t1` / channel `c1` on both, and again with only `--nsqd-http-address`
//! (one live broker, one address nothing listens on).
//!
//! Method: the real binaries on loopback; the admin's answers are checked against what the
//! brokers themselves report (sums over both nodes, upstream's field names and nulls).

mod common;

use common::{broker, get, get_json, post_ok, Admin, Cluster};
use serde_json::Value;

#[test]
fn read_api_through_lookupd_sums_both_brokers() {
    let cluster = Cluster::start();
    let admin = cluster.admin(&[]);
    let a = admin.addr;

    let reply = get(a, "/api/topics");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("X-NSQ-Content-Type"), Some("nsq; version=1.0"));
    assert_eq!(
        reply.header("Content-Type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        reply.json(),
        serde_json::json!({"topics": ["t1"], "message": ""})
    );

    let reply = get(a, "/api/topics/t1");
    let topic = reply.json();
    assert_eq!(
        common::keys_in_order(&reply.body),
        [
            "node",
            "hostname",
            "topic_name",
            "depth",
            "memory_depth",
            "backend_depth",
            "message_count",
            "nodes",
            "channels",
            "paused",
            "e2e_processing_latency",
            "message"
        ]
    );
    assert_eq!(topic["node"], "*");
    assert_eq!(topic["message_count"], 2);
    let mut nodes: Vec<String> = topic["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap().to_owned())
        .collect();
    nodes.sort();
    let mut expected = vec![cluster.node(0), cluster.node(1)];
    expected.sort();
    assert_eq!(nodes, expected);
    let channel = &topic["channels"][0];
    assert_eq!(channel["channel_name"], "c1");
    assert_eq!(
        channel["depth"], 2,
        "one message waits in c1 on each broker: {topic}"
    );
    assert_eq!(channel["nodes"].as_array().unwrap().len(), 2);
    assert_eq!(topic["e2e_processing_latency"]["host"], "*");

    let channel = get_json(a, "/api/topics/t1/c1");
    assert_eq!(channel["topic_name"], "t1");
    assert_eq!(channel["depth"], 2);
    assert_eq!(channel["message_count"], 2);
    assert_eq!(channel["clients"], Value::Null, "no consumer anywhere");
    assert_eq!(channel["nodes"][0]["clients"], serde_json::json!([]));
    // Upstream embeds a nil *ChannelStats for an unknown channel: only the message is left.
    assert_eq!(
        get_json(a, "/api/topics/t1/nope"),
        serde_json::json!({"message": ""})
    );

    let nodes = get_json(a, "/api/nodes");
    let list = nodes["nodes"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    for node in list {
        assert_eq!(node["broadcast_address"], "127.0.0.1");
        assert_eq!(
            node["topics"],
            serde_json::json!([{"topic": "t1", "tombstoned": false}])
        );
        let via = node["remote_addresses"][0].as_str().unwrap();
        assert!(
            via.starts_with(&format!("{}/", cluster.lookupd.http_addr())),
            "{via}"
        );
        assert_eq!(node["out_of_date"], false);
    }

    let node = get_json(a, &format!("/api/nodes/{}", cluster.node(0)));
    assert_eq!(node["node"], cluster.node(0));
    assert_eq!(node["total_messages"], 1);
    assert_eq!(node["total_clients"], 0);
    assert_eq!(node["topics"][0]["channels"][0]["channel_name"], "c1");
    let missing = get(a, "/api/nodes/127.0.0.1:1");
    assert_eq!(
        (missing.status, missing.json()),
        (404, serde_json::json!({"message": "NODE_NOT_FOUND"}))
    );

    let counter = get_json(a, "/api/counter");
    let stats = counter["stats"].as_object().unwrap();
    assert_eq!(stats.len(), 2);
    let key = format!("t1:c1:{}", cluster.node(1));
    assert_eq!(
        stats[&key],
        serde_json::json!({"node": cluster.node(1), "topic_name": "t1", "channel_name": "c1", "message_count": 1})
    );
}

#[test]
fn inactive_topics_are_those_without_producers() {
    let cluster = Cluster::start();
    // Known to the lookupd but to no broker.
    post_ok(&cluster.lookupd, "/topic/create?topic=lonely", "");
    post_ok(
        &cluster.lookupd,
        "/channel/create?topic=lonely&channel=ch",
        "",
    );
    let admin = cluster.admin(&[]);
    let inactive = get_json(admin.addr, "/api/topics?inactive=true");
    assert_eq!(
        inactive,
        serde_json::json!({"topics": {"lonely": ["ch"]}, "message": ""})
    );
}

#[test]
fn nsqd_addresses_only_with_one_unreachable() {
    let live = broker(&[]);
    post_ok(&live, "/pub?topic=solo", "x");
    post_ok(&live, "/channel/create?topic=solo&channel=c", "");
    // Port 1 on loopback: nothing listens there.
    let admin = Admin::start(&[
        format!("--nsqd-http-address={}", live.http_addr()),
        "--nsqd-http-address=127.0.0.1:1".to_owned(),
    ]);
    let a = admin.addr;
    let topics = get_json(a, "/api/topics");
    assert_eq!(topics["topics"], serde_json::json!(["solo"]));
    let message = topics["message"].as_str().unwrap();
    assert!(message.starts_with("WARNING: "), "{message}");
    assert!(
        message.contains("127.0.0.1:1") && message.contains("connection refused"),
        "{message}"
    );

    let nodes = get_json(a, "/api/nodes");
    assert_eq!(nodes["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(nodes["nodes"][0]["http_port"], live.http_addr().port());
    assert_eq!(nodes["nodes"][0]["remote_addresses"], Value::Null);

    let topic = get_json(a, "/api/topics/solo");
    assert_eq!(topic["message_count"], 1);
    assert_eq!(topic["channels"][0]["depth"], 1);
    assert!(topic["message"].as_str().unwrap().contains("127.0.0.1:1"));

    // Nothing reachable at all: 502 with upstream's words.
    let dead = Admin::start(&["--nsqd-http-address=127.0.0.1:1".to_owned()]);
    let reply = get(dead.addr, "/api/topics");
    assert_eq!(reply.status, 502);
    let message = reply.json()["message"].as_str().unwrap().to_owned();
    assert!(
        message.starts_with("UPSTREAM_ERROR: failed to query any nsqd: "),
        "{message}"
    );
}

#[test]
fn unknown_routes_and_methods_answer_as_httprouter() {
    let live = broker(&[]);
    let admin = Admin::start(&[format!("--nsqd-http-address={}", live.http_addr())]);
    let a = admin.addr;
    let reply = get(a, "/api/nope");
    assert_eq!(
        (reply.status, reply.json()),
        (404, serde_json::json!({"message": "NOT_FOUND"}))
    );
    let reply = common::send(a, "PUT", "/api/topics/t", &[], "");
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("Allow"), Some("DELETE, GET, OPTIONS, POST"));
    let reply = get(a, "/topics/");
    assert_eq!(
        (reply.status, reply.header("Location")),
        (301, Some("/topics"))
    );
    let ping = get(a, "/ping");
    assert_eq!((ping.status, ping.body.as_str()), (200, "OK"));
}
