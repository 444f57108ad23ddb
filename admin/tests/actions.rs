//! Admin actions change the brokers and lookupds for real; notifications carry upstream's record;
//! `--admin-user` / `--acl-http-header` decide who may act; `/config` follows
//! `--allow-config-from-cidr`.
//!
//! Method: one `sluice-lookupd` and two `sluiced` on loopback; every action goes through the
//! admin's API and its effect is read back from the brokers' own `/stats` and the lookupd's
//! `/lookup`, never from the admin. The notification endpoint is a one-shot HTTP server in the
//! test.

mod common;

use common::{
    await_producers, broker_channel, broker_topic, eventually, get, get_json, post, post_ok, send,
    Catcher, Cluster,
};

fn action(admin: std::net::SocketAddr, path: &str, body: &str) {
    let reply = post(admin, path, body);
    assert_eq!(reply.status, 200, "POST {path} {body}: {}", reply.body);
    assert_eq!(reply.json()["message"], "", "{}", reply.body);
}

#[test]
fn pause_unpause_empty_and_delete_reach_every_broker() {
    let cluster = Cluster::start();
    let admin = cluster.admin(&[]);
    let a = admin.addr;

    action(a, "/api/topics/t1/c1", r#"{"action":"pause"}"#);
    for b in &cluster.brokers {
        assert_eq!(broker_channel(b, "t1", "c1").unwrap()["paused"], true);
    }
    action(a, "/api/topics/t1/c1", r#"{"action":"unpause"}"#);
    for b in &cluster.brokers {
        assert_eq!(broker_channel(b, "t1", "c1").unwrap()["paused"], false);
    }
    action(a, "/api/topics/t1/c1", r#"{"action":"empty"}"#);
    for b in &cluster.brokers {
        assert_eq!(broker_channel(b, "t1", "c1").unwrap()["depth"], 0);
    }
    action(a, "/api/topics/t1", r#"{"action":"pause"}"#);
    for b in &cluster.brokers {
        assert_eq!(broker_topic(b, "t1").unwrap()["paused"], true);
    }
    action(a, "/api/topics/t1", r#"{"action":"unpause"}"#);

    let bad = post(a, "/api/topics/t1/c1", r#"{"action":"explode"}"#);
    assert_eq!(
        (bad.status, bad.json()["message"].clone()),
        (400, "INVALID_ACTION".into())
    );
    let bad = post(a, "/api/topics/t1/c1", "");
    assert_eq!(
        (bad.status, bad.json()["message"].clone()),
        (400, "EOF".into())
    );

    let reply = send(a, "DELETE", "/api/topics/t1/c1", &[], "");
    assert_eq!(reply.status, 200, "{}", reply.body);
    for b in &cluster.brokers {
        assert!(
            broker_channel(b, "t1", "c1").is_none(),
            "c1 still on {}",
            b.http_addr()
        );
    }
    let reply = send(a, "DELETE", "/api/topics/t1", &[], "");
    assert_eq!(reply.status, 200, "{}", reply.body);
    for b in &cluster.brokers {
        assert!(
            broker_topic(b, "t1").is_none(),
            "t1 still on {}",
            b.http_addr()
        );
    }
    eventually("t1 gone from the lookupd", || {
        let topics = get_json(cluster.lookupd.http_addr(), "/topics");
        (!topics["topics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "t1"))
        .then_some(())
    });
}

#[test]
fn create_and_tombstone_through_the_lookupd() {
    let cluster = Cluster::start();
    let admin = cluster.admin(&[]);
    let a = admin.addr;

    action(a, "/api/topics", r#"{"topic":"t1","channel":"fresh"}"#);
    for b in &cluster.brokers {
        assert!(
            broker_channel(b, "t1", "fresh").is_some(),
            "no channel on {}",
            b.http_addr()
        );
    }
    let channels = get_json(cluster.lookupd.http_addr(), "/channels?topic=t1");
    assert!(
        channels["channels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "fresh"),
        "{channels}"
    );
    let bad = post(a, "/api/topics", r#"{"topic":"bad topic!"}"#);
    assert_eq!(
        (bad.status, bad.json()["message"].clone()),
        (400, "INVALID_TOPIC".into())
    );
    let bad = post(
        a,
        "/api/topics",
        r#"{"topic":"ok","channel":"bad channel!"}"#,
    );
    assert_eq!(
        (bad.status, bad.json()["message"].clone()),
        (400, "INVALID_CHANNEL".into())
    );

    // Tombstone broker 0 for t1: the lookupd hides it and the broker deletes the topic.
    let node = cluster.node(0);
    let reply = send(
        a,
        "DELETE",
        &format!("/api/nodes/{node}"),
        &[],
        r#"{"topic":"t1"}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(broker_topic(&cluster.brokers[0], "t1").is_none());
    assert!(broker_topic(&cluster.brokers[1], "t1").is_some());
    let lookup = get_json(cluster.lookupd.http_addr(), "/lookup?topic=t1");
    let ports: Vec<u64> = lookup["producers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["http_port"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ports,
        [u64::from(cluster.brokers[1].http_addr().port())],
        "{lookup}"
    );
    let bad = send(a, "DELETE", &format!("/api/nodes/{node}"), &[], "{");
    assert_eq!(
        (bad.status, bad.json()["message"].clone()),
        (400, "INVALID_BODY".into())
    );
}

#[test]
fn notifications_carry_upstreams_record() {
    let cluster = Cluster::start();
    let catcher = Catcher::start();
    let endpoint = format!(
        "--notification-http-endpoint=http://{}/notify",
        catcher.addr
    );
    let admin = cluster.admin(&[&endpoint]);
    let a = admin.addr;
    let reply = send(
        a,
        "POST",
        "/api/topics/t1/c1?via=test",
        &[
            ("User-Agent", "admin-test/1"),
            ("Authorization", "Basic YWxpY2U6c2VjcmV0"),
        ],
        r#"{"action":"pause"}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let request = catcher.next();
    assert!(
        request.starts_with("POST /notify HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        request
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{request}"
    );
    let body = request.split("\r\n\r\n").nth(1).unwrap();
    let record: serde_json::Value = serde_json::from_str(body).unwrap();
    let keys = common::keys_in_order(body);
    assert_eq!(
        keys,
        [
            "action",
            "topic",
            "channel",
            "timestamp",
            "user",
            "remote_ip",
            "user_agent",
            "url",
            "via"
        ]
    );
    assert_eq!(record["action"], "pause_channel");
    assert_eq!(record["topic"], "t1");
    assert_eq!(record["channel"], "c1");
    assert_eq!(record["user"], "alice");
    assert_eq!(record["user_agent"], "admin-test/1");
    assert!(
        record["remote_ip"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{record}"
    );
    assert_eq!(
        record["url"],
        format!("http://{a}/api/topics/t1/c1?via=test")
    );
    assert!(record["timestamp"].as_i64().unwrap() > 1_600_000_000);
    assert!(!record["via"].as_str().unwrap().is_empty());

    // A tombstone names the node; a topic action has no channel.
    let node = cluster.node(1);
    let reply = send(
        a,
        "DELETE",
        &format!("/api/nodes/{node}"),
        &[],
        r#"{"topic":"t1"}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let request = catcher.next();
    let record: serde_json::Value =
        serde_json::from_str(request.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(record["action"], "tombstone_topic_producer");
    assert_eq!(record["node"], node);
    assert!(
        record.get("channel").is_none() && record.get("user").is_none(),
        "{record}"
    );
}

#[test]
fn only_admin_users_may_act() {
    let cluster = Cluster::start();
    let admin = cluster.admin(&["--admin-user=alice", "--admin-user=carol"]);
    let a = admin.addr;
    let pause = r#"{"action":"pause"}"#;
    for headers in [vec![], vec![("X-Forwarded-User", "bob")]] {
        let reply = send(a, "POST", "/api/topics/t1/c1", &headers, pause);
        assert_eq!(
            (reply.status, reply.json()["message"].clone()),
            (403, "FORBIDDEN".into())
        );
    }
    for (method, path, body) in [
        ("POST", "/api/topics", r#"{"topic":"x"}"#),
        ("DELETE", "/api/topics/t1", ""),
        ("DELETE", "/api/topics/t1/c1", ""),
    ] {
        assert_eq!(
            send(a, method, path, &[], body).status,
            403,
            "{method} {path}"
        );
    }
    assert_eq!(
        broker_channel(&cluster.brokers[0], "t1", "c1").unwrap()["paused"],
        false
    );
    // Reading needs no admin, and the page hides the buttons.
    assert_eq!(get(a, "/api/topics/t1/c1").status, 200);
    let page = get(a, "/topics/t1/c1");
    assert_eq!(page.status, 200);
    assert!(
        !page.body.contains("data-url"),
        "buttons shown to a non-admin"
    );

    let reply = send(
        a,
        "POST",
        "/api/topics/t1/c1",
        &[("X-Forwarded-User", "carol")],
        pause,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        broker_channel(&cluster.brokers[0], "t1", "c1").unwrap()["paused"],
        true
    );
    let page = send(
        a,
        "GET",
        "/topics/t1/c1",
        &[("X-Forwarded-User", "alice")],
        "",
    );
    assert!(
        page.body.contains("data-url"),
        "buttons hidden from an admin"
    );

    // Another header names the user.
    let other = cluster.admin(&["--admin-user=alice", "--acl-http-header=X-Remote-User"]);
    let denied = send(
        other.addr,
        "POST",
        "/api/topics/t1/c1",
        &[("X-Forwarded-User", "alice")],
        pause,
    );
    assert_eq!(denied.status, 403);
    let allowed = send(
        other.addr,
        "POST",
        "/api/topics/t1/c1",
        &[("X-Remote-User", "alice")],
        r#"{"action":"unpause"}"#,
    );
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    assert_eq!(
        broker_channel(&cluster.brokers[1], "t1", "c1").unwrap()["paused"],
        false
    );
}

#[test]
fn config_reads_and_changes_options_from_allowed_addresses() {
    let cluster = Cluster::start();
    let admin = cluster.admin(&[]);
    let a = admin.addr;
    let lookupds = get_json(a, "/config/nsqlookupd_http_addresses");
    assert_eq!(
        lookupds,
        serde_json::json!([cluster.lookupd.http_addr().to_string()])
    );
    assert_eq!(get_json(a, "/config/log_level"), 2);
    assert_eq!(
        get_json(a, "/config/http_client_connect_timeout"),
        2_000_000_000u64
    );
    let reply = send(a, "PUT", "/config/log_level", &[], "warn");
    assert_eq!((reply.status, reply.body.as_str()), (200, "3"));
    assert_eq!(send(a, "PUT", "/config/log_level", &[], "loud").status, 400);
    assert_eq!(send(a, "PUT", "/config/log_level", &[], "").status, 413);
    assert_eq!(
        send(a, "PUT", "/config/base_path", &[], "\"/x\"").status,
        400
    );
    assert_eq!(get(a, "/config/nope").json()["message"], "INVALID_OPTION");

    // Moving the admin to a second lookupd that knows nothing: no topics.
    let empty = common::lookupd();
    let body = serde_json::json!([empty.http_addr().to_string()]).to_string();
    let reply = send(a, "PUT", "/config/nsqlookupd_http_addresses", &[], &body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(get_json(a, "/api/topics")["topics"], serde_json::json!([]));

    let closed = cluster.admin(&["--allow-config-from-cidr=10.0.0.0/8"]);
    let reply = get(closed.addr, "/config/log_level");
    assert_eq!(
        (reply.status, reply.json()["message"].clone()),
        (403, "FORBIDDEN".into())
    );
}

#[test]
fn a_third_broker_shows_up_and_is_acted_on() {
    let cluster = Cluster::start();
    let third = common::broker(&[&cluster.lookupd]);
    post_ok(&third, "/pub?topic=t1", "x");
    post_ok(&third, "/channel/create?topic=t1&channel=c1", "");
    await_producers(&cluster.lookupd, "t1", 3);
    let admin = cluster.admin(&[]);
    assert_eq!(
        get_json(admin.addr, "/api/topics/t1")["nodes"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    action(admin.addr, "/api/topics/t1/c1", r#"{"action":"pause"}"#);
    assert_eq!(broker_channel(&third, "t1", "c1").unwrap()["paused"], true);
}
