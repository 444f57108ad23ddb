//! Black-box tests of the V2 commands and error codes of `sluiced` that the golden replay
//! (`../shared/golden/tcp_v2.jsonl`) does not already pin down.
//!
//! Goal: every command and every error text a client can provoke is upstream nsqd v1.3.0's
//! (`nsqd/protocol_v2.go`, `nsqd/channel.go`), fatal errors close only the connection that
//! caused them, and non-fatal ones (`E_FIN_FAILED`, `E_REQ_FAILED`, `E_TOUCH_FAILED`) leave it
//! fully usable: it keeps receiving, finishing and publishing.
//!
//! Method: the real binary on 127.0.0.1 port 0 (see `common/mod.rs`); commands are encoded with
//! `sluice_proto` or written as raw bytes where the point is a malformed one; replies are
//! decoded with its `FrameDecoder` and compared with upstream's exact texts. A bystander
//! consumer proves that fatal errors elsewhere never disturb other clients.

mod common;

use common::{bodies, encode, publish, sub, Broker, Conn};
use serde_json::json;
use sluice_proto::v2::{Command as V2, Frame};

/// Sends `bytes` on a fresh connection and expects the fatal error `text`.
fn fatal(broker: &Broker, bytes: &[u8], text: &str) {
    let mut conn = broker.connect();
    conn.send_raw(bytes);
    conn.expect_fatal(text);
}

/// Subscribes a fresh connection to `t/c`, then sends `bytes` and expects the fatal `text`.
fn fatal_after_sub(broker: &Broker, bytes: &[u8], text: &str) {
    let mut conn = broker.connect();
    conn.subscribe("t", "c");
    conn.send_raw(bytes);
    conn.expect_fatal(text);
}

/// A consumer of `by/c` that must keep working while other connections fail.
fn bystander(broker: &Broker) -> Conn {
    let mut conn = broker.connect();
    conn.subscribe("by", "c");
    conn.rdy(10);
    conn
}

fn bystander_still_served(broker: &Broker, conn: &mut Conn) {
    broker.connect().publish("by", b"still here");
    let msg = conn.message();
    assert_eq!(msg.body.as_ref(), b"still here");
    conn.fin(&msg.id);
    assert!(conn.barrier().is_empty());
}

#[test]
fn dpub_errors_are_upstreams_and_fatal() {
    let broker = Broker::start(1, &["--max-msg-size=100", "--max-body-size=200"]);
    let mut by = bystander(&broker);
    fatal(
        &broker,
        b"DPUB t\n",
        "E_INVALID DPUB insufficient number of parameters",
    );
    fatal(
        &broker,
        b"DPUB bad$ 10\n\0\0\0\x01x",
        "E_BAD_TOPIC DPUB topic name \"bad$\" is not valid",
    );
    fatal(
        &broker,
        b"DPUB t abc\n\0\0\0\x01x",
        "E_INVALID DPUB could not parse timeout abc",
    );
    fatal(
        &broker,
        b"DPUB t 10\n\0\0\0\0",
        "E_BAD_MESSAGE DPUB invalid message body size 0",
    );
    fatal(
        &broker,
        b"DPUB t 10\n\xff\xff\xff\xfe",
        "E_BAD_MESSAGE DPUB invalid message body size -2",
    );
    let mut big = b"DPUB t 10\n\0\0\0\x65".to_vec();
    big.extend_from_slice(&[b'x'; 101]);
    fatal(
        &broker,
        &big,
        "E_BAD_MESSAGE DPUB message too big 101 > 100",
    );
    // Nothing of the above was published.
    assert!(broker.topic_stats("t").is_none(), "{}", broker.stats());
    bystander_still_served(&broker, &mut by);
}

#[test]
fn mpub_errors_are_upstreams_and_fatal() {
    let broker = Broker::start(1, &[]);
    let mut by = bystander(&broker);
    fatal(
        &broker,
        b"MPUB\n",
        "E_INVALID MPUB insufficient number of parameters",
    );
    fatal(
        &broker,
        b"MPUB t\n\0\0\0\0",
        "E_BAD_BODY MPUB invalid body size 0",
    );
    fatal(
        &broker,
        b"MPUB t\n\xff\xff\xff\xff",
        "E_BAD_BODY MPUB invalid body size -1",
    );
    fatal(
        &broker,
        b"MPUB t\n\x7f\xff\xff\xff",
        "E_BAD_BODY MPUB body too big 2147483647 > 5242880",
    );
    fatal(
        &broker,
        b"MPUB t\n\0\0\0\x08\xff\xff\xff\xff\0\0\0\0",
        "E_BAD_BODY MPUB invalid message count -1",
    );
    // Upstream caps the count at what the largest body could hold: (5242880 - 4) / 5.
    fatal(
        &broker,
        b"MPUB t\n\0\0\0\x08\0\x10\0\0\0\0\0\0",
        "E_BAD_BODY MPUB invalid message count 1048576",
    );
    assert!(broker.topic_stats("t").is_none(), "{}", broker.stats());
    bystander_still_served(&broker, &mut by);
}

#[test]
fn fin_req_touch_parameter_and_state_errors_are_fatal() {
    let broker = Broker::start(1, &[]);
    let mut by = bystander(&broker);
    fatal(
        &broker,
        b"REQ 0000000000000000 0\n",
        "E_INVALID cannot REQ in current state",
    );
    fatal(
        &broker,
        b"TOUCH 0000000000000000\n",
        "E_INVALID cannot TOUCH in current state",
    );
    let cases: [(&[u8], &str); 8] = [
        (b"FIN\n", "E_INVALID FIN insufficient number of params"),
        (b"TOUCH\n", "E_INVALID TOUCH insufficient number of params"),
        (b"TOUCH 12\n", "E_INVALID invalid message ID"),
        (
            b"REQ 0000000000000000\n",
            "E_INVALID REQ insufficient number of params",
        ),
        (b"REQ 123 0\n", "E_INVALID invalid message ID"),
        (
            b"REQ 0000000000000000 abc\n",
            "E_INVALID REQ could not parse timeout abc",
        ),
        // `-` is not a digit for upstream's ByteToBase10.
        (
            b"REQ 0000000000000000 -1\n",
            "E_INVALID REQ could not parse timeout -1",
        ),
        (b"FIN 00000000000000000\n", "E_INVALID invalid message ID"),
    ];
    for (bytes, text) in cases {
        fatal_after_sub(&broker, bytes, text);
    }
    bystander_still_served(&broker, &mut by);
}

#[test]
fn auth_errors_are_upstreams_and_fatal() {
    let broker = Broker::start(1, &[]);
    fatal(
        &broker,
        b"AUTH secret\n\0\0\0\x01x",
        "E_INVALID AUTH invalid number of parameters",
    );
    fatal(
        &broker,
        b"AUTH\n\0\0\0\0",
        "E_BAD_BODY AUTH invalid body size 0",
    );
    fatal(
        &broker,
        b"AUTH\n\0\x50\0\x01",
        "E_BAD_BODY AUTH body too big 5242881 > 5242880",
    );
    fatal_after_sub(
        &broker,
        b"AUTH\n\0\0\0\x01x",
        "E_INVALID cannot AUTH in current state",
    );
}

#[test]
fn state_errors_after_cls_are_fatal() {
    let broker = Broker::start(1, &[]);
    let cases: [(&[u8], &str); 3] = [
        (b"CLS\n", "E_INVALID cannot CLS in current state"),
        (b"SUB t c2\n", "E_INVALID cannot SUB in current state"),
        (
            b"IDENTIFY\n\0\0\0\x02{}",
            "E_INVALID cannot IDENTIFY in current state",
        ),
    ];
    for (bytes, text) in cases {
        let mut conn = broker.connect();
        conn.subscribe("t", "c");
        conn.send_raw(b"CLS\n");
        conn.expect_response(b"CLOSE_WAIT");
        conn.send_raw(bytes);
        conn.expect_fatal(text);
    }
}

#[test]
fn fin_req_touch_failures_are_not_fatal_and_the_consumer_carries_on() {
    let broker = Broker::start(1, &[]);
    let mut consumer = broker.connect();
    consumer.subscribe("t", "c");
    consumer.rdy(2);
    let mut producer = broker.connect();
    producer.publish("t", b"one");
    producer.publish("t", b"two");
    let msgs = consumer.messages(2);
    consumer.fin(&msgs[0].id);
    consumer.fin(&msgs[0].id);
    let id = msgs[0].id;
    consumer.expect_error(&format!("E_FIN_FAILED FIN {id} failed ID not in flight"));
    consumer.req(&id, 0);
    consumer.expect_error(&format!("E_REQ_FAILED REQ {id} failed ID not in flight"));
    consumer.touch(&id);
    consumer.expect_error(&format!(
        "E_TOUCH_FAILED TOUCH {id} failed ID not in flight"
    ));
    // Still a consumer: the second message can be finished, new ones arrive, and it may
    // publish.
    consumer.fin(&msgs[1].id);
    assert!(consumer.barrier().is_empty());
    producer.publish("t", b"three");
    let third = consumer.message();
    assert_eq!(third.body.as_ref(), b"three");
    assert_eq!(third.attempts, 1);
    consumer.fin(&third.id);
    consumer.send(&publish("t", b"four"));
    let delivered = ok_and_message(&mut consumer);
    assert_eq!(delivered.body.as_ref(), b"four");
    assert_eq!(broker.channel_count("t", "c", "requeue_count"), 0);
}

#[test]
fn another_consumers_message_cannot_be_finished_requeued_or_touched() {
    let broker = Broker::start(1, &[]);
    let mut owner = broker.connect();
    owner.subscribe("t", "c");
    owner.rdy(1);
    let mut other = broker.connect();
    other.subscribe("t", "c");
    broker.connect().publish("t", b"mine");
    let msg = owner.message();
    let id = msg.id;
    other.fin(&id);
    other.expect_error(&format!(
        "E_FIN_FAILED FIN {id} failed client does not own message"
    ));
    other.req(&id, 0);
    other.expect_error(&format!(
        "E_REQ_FAILED REQ {id} failed client does not own message"
    ));
    other.touch(&id);
    other.expect_error(&format!(
        "E_TOUCH_FAILED TOUCH {id} failed client does not own message"
    ));
    assert!(other.barrier().is_empty());
    // The owner's message was untouched by all that.
    owner.fin(&id);
    assert!(owner.barrier().is_empty());
    broker.wait_channel_count("t", "c", "in_flight_count", 0);
    assert_eq!(broker.channel_count("t", "c", "requeue_count"), 0);
}

#[test]
fn rdy_without_a_count_means_one() {
    let broker = Broker::start(1, &[]);
    let mut consumer = broker.connect();
    consumer.subscribe("t", "c");
    consumer.send_raw(b"RDY\n");
    let mut producer = broker.connect();
    for body in [b"a", b"b", b"c"] {
        producer.publish("t", body);
    }
    let first = consumer.message();
    assert!(consumer.barrier().is_empty(), "RDY alone allows one");
    consumer.expect_quiet("one message in flight with RDY 1");
    consumer.fin(&first.id);
    let second = consumer.message();
    consumer.fin(&second.id);
    let third = consumer.message();
    consumer.fin(&third.id);
    assert_eq!(bodies(&[first, second, third]), ["a", "b", "c"]);
}

#[test]
fn rdy_zero_stops_deliveries_until_rdy_again() {
    let broker = Broker::start(1, &[]);
    let mut consumer = broker.connect();
    consumer.subscribe("t", "c");
    consumer.rdy(5);
    let mut producer = broker.connect();
    producer.publish("t", b"before");
    let msg = consumer.message();
    consumer.fin(&msg.id);
    consumer.rdy(0);
    assert!(consumer.barrier().is_empty());
    for i in 0..3 {
        producer.publish("t", format!("held {i}").as_bytes());
    }
    consumer.expect_quiet("RDY 0");
    assert_eq!(broker.channel_count("t", "c", "depth"), 3);
    consumer.rdy(5);
    let held = consumer.receive_and_fin(3);
    assert_eq!(bodies(&held), ["held 0", "held 1", "held 2"]);
}

#[test]
fn cls_stops_deliveries_but_in_flight_messages_can_still_be_finished() {
    let broker = Broker::start(1, &[]);
    let mut consumer = broker.connect();
    consumer.subscribe("t", "c");
    consumer.rdy(10);
    let mut producer = broker.connect();
    producer.publish("t", b"first");
    let first = consumer.message();
    consumer.send_raw(b"CLS\n");
    consumer.expect_response(b"CLOSE_WAIT");
    producer.publish("t", b"second");
    // RDY is ignored while closing (upstream), FIN and TOUCH still work.
    consumer.rdy(10);
    consumer.touch(&first.id);
    consumer.fin(&first.id);
    assert!(consumer.barrier().is_empty(), "nothing after CLOSE_WAIT");
    consumer.expect_quiet("after CLS");
    assert_eq!(broker.channel_count("t", "c", "depth"), 1);
    drop(consumer);
    let mut next = broker.connect();
    next.subscribe("t", "c");
    next.rdy(1);
    let second = next.message();
    assert_eq!((second.body.as_ref(), second.attempts), (&b"second"[..], 1));
}

#[test]
fn pipelined_commands_are_answered_in_order_up_to_a_fatal_error() {
    let broker = Broker::start(1, &[]);
    let mut conn = broker.connect();
    let mut bytes = encode(&[
        V2::Identify(
            json!({"feature_negotiation": true, "client_id": "pipe"})
                .to_string()
                .into(),
        ),
        publish("t", b"one"),
        V2::Mpub {
            topic: sluice_proto::Name::new("t"),
            bodies: vec!["two".into(), "three".into()],
        },
        V2::Nop,
        V2::Dpub {
            topic: sluice_proto::Name::new("t"),
            defer: std::time::Duration::from_millis(5),
            body: "four".into(),
        },
    ]);
    bytes.extend_from_slice(b"PUB bad!topic\n\0\0\0\x01x");
    bytes.extend(encode(&[publish("t", b"never")]));
    conn.send_raw(&bytes);
    match conn.frame() {
        Frame::Response(data) => {
            let reply: serde_json::Value = serde_json::from_slice(&data).unwrap();
            assert_eq!(reply["max_rdy_count"], 2500, "{reply}");
        }
        other => panic!("expected the IDENTIFY JSON, got {other:?}"),
    }
    for _ in 0..3 {
        conn.expect_ok();
    }
    conn.expect_fatal("E_BAD_TOPIC PUB topic name \"bad!topic\" is not valid");
    let topic = broker.topic_stats("t").unwrap();
    assert_eq!(topic["message_count"], 4, "{topic}");
}

#[test]
fn many_pipelined_publishes_get_one_ok_each() {
    let broker = Broker::start(1, &[]);
    let mut conn = broker.connect();
    let cmds: Vec<V2> = (0..500)
        .map(|i| publish("t", format!("m{i}").as_bytes()))
        .collect();
    conn.send_raw(&encode(&cmds));
    for _ in 0..500 {
        conn.expect_ok();
    }
    let topic = broker.topic_stats("t").unwrap();
    assert_eq!(topic["message_count"], 500, "{topic}");
}

#[test]
fn identify_fields_show_in_client_stats() {
    let broker = Broker::start(1, &[]);
    let mut consumer = broker.connect();
    let reply = consumer.identify(json!({
        "feature_negotiation": true,
        "client_id": "probe-1",
        "hostname": "probe.example",
        "user_agent": "probe/0.1",
        "msg_timeout": 5000,
        "sample_rate": 0,
    }));
    assert_eq!(reply["msg_timeout"], 5000, "{reply}");
    consumer.subscribe("t", "c");
    consumer.rdy(3);
    let mut producer = broker.connect();
    producer.publish("t", b"a");
    producer.publish("t", b"b");
    let msgs = consumer.messages(2);
    consumer.fin(&msgs[0].id);
    consumer.req(&msgs[1].id, 0);
    let again = consumer.message();
    assert_eq!(again.attempts, 2);
    assert!(consumer.barrier().is_empty());
    let (status, body) = broker.http("GET", "/stats?format=json&include_clients=true", b"");
    assert_eq!(status, 200);
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    let channel = common::channel_in(common::topic_in(&stats, "t").unwrap(), "c").unwrap();
    let client = &channel["clients"][0];
    for (field, want) in [
        ("client_id", json!("probe-1")),
        ("hostname", json!("probe.example")),
        ("user_agent", json!("probe/0.1")),
        ("ready_count", json!(3)),
        ("in_flight_count", json!(1)),
        ("message_count", json!(3)),
        ("finish_count", json!(1)),
        ("requeue_count", json!(1)),
    ] {
        assert_eq!(client[field], want, "{field} in {client}");
    }
}

#[test]
fn http_bytes_on_the_tcp_port_get_an_http_answer() {
    let broker = Broker::start(1, &[]);
    let mut conn = Conn::connect_bare(broker.tcp);
    conn.send_raw(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let mut reply = Vec::new();
    let mut stream = conn.stream();
    stream.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
    let mut chunk = [0u8; 256];
    while reply.len() < 4 {
        match std::io::Read::read(&mut stream, &mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => reply.extend_from_slice(&chunk[..n]),
        }
    }
    assert!(
        reply.starts_with(b"HTTP"),
        "reply: {:?}",
        String::from_utf8_lossy(&reply)
    );
}

#[test]
fn invalid_command_word_is_echoed_byte_for_byte() {
    // Upstream formats the word with `%s` of a []byte: the bytes go back unchanged.
    let broker = Broker::start(1, &[]);
    let mut conn = broker.connect();
    conn.send_raw(b"\xff\xfeX y\n");
    let frame = conn.frame();
    assert_eq!(
        frame,
        Frame::Error(bytes::Bytes::from_static(
            b"E_INVALID invalid command \xff\xfeX"
        )),
    );
    conn.expect_closed();
}

#[test]
fn sub_then_pipelined_rdy_and_pub_on_one_connection() {
    // Upstream answers SUB before it reads the RDY behind it, so the SUB's OK always comes
    // before the first delivery; the PUB's OK and the delivery may come in either order.
    let broker = Broker::start(1, &[]);
    let mut conn = broker.connect();
    let mut bytes = encode(&[sub("t", "c"), V2::Rdy(2)]);
    bytes.extend(encode(&[publish("t", b"self")]));
    conn.send_raw(&bytes);
    let first = conn.frame();
    assert_eq!(
        first,
        Frame::Response(bytes::Bytes::from_static(b"OK")),
        "the SUB's OK must come first"
    );
    conn.set_subscribed();
    let msg = ok_and_message(&mut conn);
    assert_eq!(msg.body.as_ref(), b"self");
}

/// A consumer that publishes to its own topic gets the `OK` and the delivery in either order
/// (upstream's IOLoop and messagePump race on the socket as well).
fn ok_and_message(conn: &mut Conn) -> sluice_proto::Message {
    let frames = [conn.frame(), conn.frame()];
    let ok = Frame::Response(bytes::Bytes::from_static(b"OK"));
    assert!(frames.contains(&ok), "no OK in {frames:?}");
    frames
        .into_iter()
        .find_map(|f| match f {
            Frame::Message(msg) => Some(msg),
            _ => None,
        })
        .expect("no message")
}

#[test]
fn sub_and_rdy_in_one_write_answer_sub_before_the_backlog() {
    let broker = Broker::start(1, &[]);
    let batch: Vec<Vec<u8>> = (0..5).map(|i| format!("m{i}").into_bytes()).collect();
    broker.connect().mpublish("t", &batch);
    let mut conn = broker.connect();
    conn.send_raw(&encode(&[sub("t", "c"), V2::Rdy(10)]));
    conn.expect_ok();
    conn.set_subscribed();
    assert_eq!(
        bodies(&conn.receive_and_fin(5)),
        ["m0", "m1", "m2", "m3", "m4"]
    );
}

#[test]
fn sub_is_answered_before_deliveries_on_a_busy_topic() {
    // A consumer pipelining SUB and RDY (as go-nsq does) on a topic that is being published
    // to must still read the SUB's OK first.
    let broker = Broker::start(1, &[]);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut producer = broker.connect();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 20_000 {
                producer.publish("busy", format!("m{i}").as_bytes());
                i += 1;
            }
        });
        let mut early = Vec::new();
        for n in 0..10 {
            let mut conn = broker.connect();
            conn.send_raw(&encode(&[sub("busy", &format!("c{n}")), V2::Rdy(10)]));
            let first = conn.frame();
            if first != Frame::Response(bytes::Bytes::from_static(b"OK")) {
                early.push((n, first));
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(
            early.is_empty(),
            "{} of 10 consumers got a frame before the SUB's OK: {early:?}",
            early.len()
        );
    });
}
