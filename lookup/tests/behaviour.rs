//! What sluice-lookupd does over time, seen from outside: registrations follow the broker's
//! connection, inactive brokers and tombstoned producers are hidden, `#ephemeral` entries go with
//! their last producer, and instances side by side know nothing of each other.
//!
//! Method: the real binary on loopback, brokers played by `common::Broker` (lookup V1 through
//! `sluice_proto`), state read over HTTP. Where a change takes time (a closed connection, an
//! expiry), the test polls with a bound instead of sleeping and asserting. Exact expiry
//! arithmetic is tested with a virtual clock in `src/registry/tests.rs`.

mod common;

use common::{eventually, get_json, hosts, http, lookup_hosts, start, strings, Broker};

#[test]
fn registration_disappears_when_the_connection_drops() {
    let lookupd = start(&[]);
    let mut broker = Broker::identified(&lookupd, "broker-a", 4151);
    broker.register("orders", Some("billing"));
    let mut other = Broker::identified(&lookupd, "broker-b", 5151);
    other.register("orders", None);
    assert_eq!(lookup_hosts(&lookupd, "orders"), ["broker-a", "broker-b"]);

    drop(broker);
    eventually("broker-a leaves /lookup", || {
        lookup_hosts(&lookupd, "orders") == ["broker-b"]
    });
    let nodes = get_json(&lookupd, "/nodes");
    assert_eq!(hosts(&nodes["producers"]), ["broker-b"]);
    // The channel registration itself stays (it is not ephemeral), as upstream.
    let channels = get_json(&lookupd, "/channels?topic=orders");
    assert_eq!(strings(&channels["channels"]), ["billing"]);
    assert!(!get_json(&lookupd, "/debug")
        .as_object()
        .unwrap()
        .contains_key("channel:orders:billing"));

    other.shutdown_write();
    eventually("broker-b leaves once it half-closes", || {
        lookup_hosts(&lookupd, "orders").is_empty()
    });
}

#[test]
fn inactive_producers_are_hidden_until_they_ping() {
    let lookupd = start(&["--inactive-producer-timeout=1s"]);
    let mut broker = Broker::identified(&lookupd, "quiet", 4151);
    broker.register("t", None);
    eventually("a silent broker is hidden from /lookup and /nodes", || {
        lookup_hosts(&lookupd, "t").is_empty()
            && get_json(&lookupd, "/nodes")["producers"] == serde_json::json!([])
    });
    // Still registered: a PING makes it visible again.
    eventually("a ping brings it back", || {
        broker.ping();
        lookup_hosts(&lookupd, "t") == ["quiet"]
    });
    let topic = get_json(&lookupd, "/lookup?topic=t");
    assert_eq!(topic["producers"][0]["broadcast_address"], "quiet");
}

#[test]
fn tombstone_hides_a_producer_of_one_topic() {
    let lookupd = start(&[]);
    let mut broker = Broker::identified(&lookupd, "stoned", 4151);
    broker.register("t", None);
    broker.register("u", None);
    let mut other = Broker::identified(&lookupd, "fine", 5151);
    other.register("t", None);

    let reply = http(
        &lookupd,
        "POST",
        "/topic/tombstone?topic=t&node=stoned:4151",
    );
    assert_eq!(reply.status, 200);
    assert_eq!(lookup_hosts(&lookupd, "t"), ["fine"]);
    assert_eq!(
        lookup_hosts(&lookupd, "u"),
        ["stoned"],
        "other topics keep it"
    );
    let nodes = get_json(&lookupd, "/nodes");
    let stoned = nodes["producers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["hostname"] == "stoned")
        .unwrap()
        .clone();
    assert_eq!(strings(&stoned["topics"]), ["t", "u"]);
    assert_eq!(stoned["tombstones"], serde_json::json!([true, false]));
}

#[test]
fn tombstone_ends_after_its_lifetime() {
    let lookupd = start(&["--tombstone-lifetime=1s"]);
    let mut broker = Broker::identified(&lookupd, "stoned", 4151);
    broker.register("t", None);
    http(
        &lookupd,
        "POST",
        "/topic/tombstone?topic=t&node=stoned:4151",
    );
    eventually("the producer is back after the lifetime", || {
        lookup_hosts(&lookupd, "t") == ["stoned"]
    });
    let debug = get_json(&lookupd, "/debug");
    assert_eq!(
        debug["topic:t:"][0]["tombstoned"], true,
        "debug keeps the flag"
    );
}

#[test]
fn ephemeral_entries_go_with_their_last_producer() {
    let lookupd = start(&[]);
    let mut a = Broker::identified(&lookupd, "a", 4151);
    let mut b = Broker::identified(&lookupd, "b", 5151);
    a.register("t", Some("c#ephemeral"));
    b.register("t", Some("c#ephemeral"));
    a.unregister("t", Some("c#ephemeral"));
    let channels = get_json(&lookupd, "/channels?topic=t");
    assert_eq!(
        strings(&channels["channels"]),
        ["c#ephemeral"],
        "b still has it"
    );
    b.unregister("t", Some("c#ephemeral"));
    let channels = get_json(&lookupd, "/channels?topic=t");
    assert!(strings(&channels["channels"]).is_empty());

    a.register("e#ephemeral", None);
    a.unregister("e#ephemeral", None);
    assert_eq!(
        http(&lookupd, "GET", "/lookup?topic=e%23ephemeral").status,
        404
    );

    // A disconnect takes the broker's ephemeral topic and its channels too.
    b.register("gone#ephemeral", Some("c"));
    b.register("gone#ephemeral", Some("d#ephemeral"));
    assert_eq!(lookup_hosts(&lookupd, "gone#ephemeral"), ["b"]);
    drop(b);
    eventually("the ephemeral topic is gone", || {
        http(&lookupd, "GET", "/lookup?topic=gone%23ephemeral").status == 404
    });
    let channels = get_json(&lookupd, "/channels?topic=gone%23ephemeral");
    assert!(strings(&channels["channels"]).is_empty());
    let topics = get_json(&lookupd, "/topics");
    assert_eq!(strings(&topics["topics"]), ["t"]);
}

#[test]
fn two_lookupds_side_by_side_are_independent() {
    let first = start(&[]);
    let second = start(&[]);
    assert_ne!(first.tcp_addr(), second.tcp_addr());
    let mut to_first = Broker::identified(&first, "broker", 4151);
    let mut to_second = Broker::identified(&second, "broker", 4151);
    to_first.register("both", None);
    to_second.register("both", None);
    to_first.register("only_first", Some("c"));
    assert_eq!(lookup_hosts(&first, "both"), ["broker"]);
    assert_eq!(lookup_hosts(&second, "both"), ["broker"]);
    assert_eq!(
        strings(&get_json(&first, "/topics")["topics"]),
        ["both", "only_first"]
    );
    assert_eq!(strings(&get_json(&second, "/topics")["topics"]), ["both"]);
    assert_eq!(http(&second, "GET", "/lookup?topic=only_first").status, 404);

    drop(to_first);
    eventually("the first loses the broker", || {
        lookup_hosts(&first, "both").is_empty()
    });
    assert_eq!(
        lookup_hosts(&second, "both"),
        ["broker"],
        "the second keeps it"
    );
}

#[test]
fn identify_reply_describes_this_lookupd() {
    let lookupd = start(&["--broadcast-address=lookupd.example"]);
    let mut broker = Broker::connect(&lookupd);
    let reply = broker.identify("broker", 4151);
    assert_eq!(reply.broadcast_address, "lookupd.example");
    assert_eq!(reply.tcp_port, lookupd.tcp_addr().port());
    assert_eq!(reply.http_port, lookupd.http_addr().port());
    assert_eq!(reply.version, "1.3.0");
    assert!(!reply.hostname.is_empty());
    let info = get_json(&lookupd, "/info");
    assert_eq!(info, serde_json::json!({"version": "1.3.0"}));
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let lookupd = start(&[]);
    let mut broker = Broker::connect(&lookupd);
    let body =
        br#"{"broadcast_address":"p","hostname":"p","http_port":2,"tcp_port":1,"version":"1.3.0"}"#;
    let mut bytes = b"IDENTIFY\n".to_vec();
    bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
    bytes.extend_from_slice(body);
    bytes.extend_from_slice(b"REGISTER a\nREGISTER a c\nPING\nUNREGISTER a c\r\nPING\n");
    // One byte at a time: the server must not depend on how the bytes arrive.
    for byte in bytes {
        broker.send_raw(&[byte]);
    }
    assert!(broker.reply().starts_with(b"{"));
    for _ in 0..5 {
        assert_eq!(&broker.reply()[..], b"OK");
    }
    let found = get_json(&lookupd, "/lookup?topic=a");
    assert_eq!(strings(&found["channels"]), ["c"]);
    assert_eq!(hosts(&found["producers"]), ["p"]);
}

#[test]
fn http_created_topics_and_channels_have_no_producers() {
    let lookupd = start(&[]);
    assert_eq!(
        http(&lookupd, "POST", "/channel/create?topic=t&channel=c").status,
        200
    );
    let found = get_json(&lookupd, "/lookup?topic=t");
    assert_eq!(
        found,
        serde_json::json!({"channels": ["c"], "producers": []})
    );
    let mut broker = Broker::identified(&lookupd, "late", 4151);
    broker.register("t", None);
    assert_eq!(lookup_hosts(&lookupd, "t"), ["late"]);
    assert_eq!(http(&lookupd, "POST", "/topic/delete?topic=t").status, 200);
    assert_eq!(http(&lookupd, "GET", "/lookup?topic=t").status, 404);
    // The broker can register it again on the same connection.
    broker.register("t", None);
    assert_eq!(lookup_hosts(&lookupd, "t"), ["late"]);
}
