//! Black-box tests of who receives what: fan-out to channels, sharing within a channel, the
//! limits on consumers (`--max-rdy-count`, `--max-channel-consumers`, `sample_rate`) and MPUB's
//! all-or-nothing rule.
//!
//! Goal: the delivery rules of upstream nsqd v1.3.0 (`nsqd/topic.go` messagePump,
//! `nsqd/channel.go`, `nsqd/protocol_v2.go` messagePump and SUB/RDY) hold for the real
//! `sluiced`: every channel gets every message of its topic, within a channel each message goes
//! to one consumer and consumers with RDY all get a share, nothing is delivered beyond RDY, and
//! a rejected MPUB leaves no trace.
//!
//! Method: the real binary on 127.0.0.1 port 0 (`common/mod.rs`). Counts are checked exactly
//! (message ids and bodies), never by timing: "nothing more arrives" is checked after a
//! round-trip barrier on the same connection, and `/stats` confirms what the broker holds.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use common::{bodies, Broker, Conn, IO_TIMEOUT};
use serde_json::json;
use sluice_proto::v2::Frame;

#[test]
fn every_channel_gets_every_message_once() {
    let broker = Broker::start(1, &[]);
    let mut consumers: Vec<Conn> = (0..3)
        .map(|i| {
            let mut c = broker.connect();
            c.subscribe("fan", &format!("c{i}"));
            c.rdy(100);
            c
        })
        .collect();
    let mut producer = broker.connect();
    let mut published = Vec::new();
    for i in 0..20 {
        let body = format!("single {i}");
        producer.publish("fan", body.as_bytes());
        published.push(body);
    }
    let batch: Vec<Vec<u8>> = (0..20).map(|i| format!("batch {i}").into_bytes()).collect();
    producer.mpublish("fan", &batch);
    published.extend(batch.iter().map(|b| String::from_utf8(b.clone()).unwrap()));
    let want: HashSet<String> = published.into_iter().collect();
    for (i, consumer) in consumers.iter_mut().enumerate() {
        let got = consumer.receive_and_fin(40);
        let ids: HashSet<_> = got.iter().map(|m| m.id).collect();
        assert_eq!(ids.len(), 40, "channel c{i}: duplicate ids");
        let got: HashSet<String> = bodies(&got).into_iter().collect();
        assert_eq!(got, want, "channel c{i}");
        assert!(
            consumer.barrier().is_empty(),
            "channel c{i}: more than published"
        );
    }
    let topic = broker.topic_stats("fan").unwrap();
    assert_eq!(topic["message_count"], 40, "{topic}");
    for i in 0..3 {
        let channel = broker.channel_stats("fan", &format!("c{i}")).unwrap();
        assert_eq!(channel["message_count"], 40, "{channel}");
        assert_eq!(channel["depth"], 0, "{channel}");
    }
}

#[test]
fn a_new_channel_takes_the_topics_backlog_and_a_later_one_starts_empty() {
    let broker = Broker::start(1, &[]);
    let mut producer = broker.connect();
    for i in 0..5 {
        producer.publish("backlog", format!("early {i}").as_bytes());
    }
    let mut first = broker.connect();
    first.subscribe("backlog", "first");
    first.rdy(10);
    let early = first.receive_and_fin(5);
    let early: HashSet<String> = bodies(&early).into_iter().collect();
    assert_eq!(early.len(), 5);
    let mut second = broker.connect();
    second.subscribe("backlog", "second");
    second.rdy(10);
    producer.publish("backlog", b"late");
    assert_eq!(bodies(&second.receive_and_fin(1)), ["late"]);
    assert!(
        second.barrier().is_empty(),
        "the later channel got old messages"
    );
    assert_eq!(bodies(&first.receive_and_fin(1)), ["late"]);
}

#[test]
fn consumers_of_one_channel_share_its_messages() {
    // Nobody finishes, so the split depends only on the broker's choice of consumer, not on
    // how fast each test client answers.
    const CONSUMERS: usize = 3;
    const MESSAGES: usize = 60;
    let broker = Broker::start(1, &[]);
    let mut consumers: Vec<Conn> = (0..CONSUMERS)
        .map(|_| {
            let mut conn = broker.connect();
            conn.subscribe("shared", "c");
            conn.rdy(100);
            conn
        })
        .collect();
    let batch: Vec<Vec<u8>> = (0..MESSAGES)
        .map(|i| format!("m{i}").into_bytes())
        .collect();
    broker.connect().mpublish("shared", &batch);
    broker.wait_channel_count("shared", "c", "in_flight_count", MESSAGES as u64);
    let shares: Vec<Vec<_>> = consumers
        .iter_mut()
        .map(|conn| {
            conn.barrier()
                .into_iter()
                .map(|frame| match frame {
                    Frame::Message(msg) => msg.id,
                    other => panic!("unexpected {other:?}"),
                })
                .collect()
        })
        .collect();
    let all: HashSet<_> = shares.iter().flatten().collect();
    assert_eq!(all.len(), MESSAGES, "every message exactly once");
    assert_eq!(shares.iter().map(Vec::len).sum::<usize>(), MESSAGES);
    let counts: Vec<usize> = shares.iter().map(Vec::len).collect();
    for (i, count) in counts.iter().enumerate() {
        // A fair share is 20 each; half of that is the least any consumer may get.
        assert!(
            *count >= MESSAGES / CONSUMERS / 2,
            "consumer {i} starved: shares {counts:?}"
        );
    }
}

#[test]
fn max_rdy_count_caps_rdy_and_in_flight() {
    let broker = Broker::start(1, &["--max-rdy-count=5"]);
    let mut conn = broker.connect();
    let reply = conn.identify(json!({"feature_negotiation": true}));
    assert_eq!(reply["max_rdy_count"], 5, "{reply}");
    conn.subscribe("t", "c");
    conn.rdy(6);
    conn.expect_fatal("E_INVALID RDY count 6 out of range 0-5");

    let mut consumer = broker.connect();
    consumer.subscribe("t", "c");
    consumer.rdy(5);
    let mut producer = broker.connect();
    let batch: Vec<Vec<u8>> = (0..8).map(|i| format!("m{i}").into_bytes()).collect();
    producer.mpublish("t", &batch);
    let first = consumer.messages(5);
    assert!(consumer.barrier().is_empty(), "more than RDY in flight");
    assert_eq!(broker.channel_count("t", "c", "in_flight_count"), 5);
    consumer.fin(&first[0].id);
    let sixth = consumer.message();
    assert!(consumer.barrier().is_empty());
    for msg in first[1..].iter().chain([&sixth]) {
        consumer.fin(&msg.id);
    }
    consumer.receive_and_fin(2);
    assert!(consumer.barrier().is_empty());
    broker.wait_channel_count("t", "c", "in_flight_count", 0);
    assert_eq!(broker.channel_count("t", "c", "depth"), 0);
}

#[test]
fn max_channel_consumers_refuses_the_next_sub_until_one_leaves() {
    let broker = Broker::start(1, &["--max-channel-consumers=2"]);
    let mut a = broker.connect();
    a.subscribe("t", "c");
    let mut b = broker.connect();
    b.subscribe("t", "c");
    let mut refused = broker.connect();
    refused.send(&common::sub("t", "c"));
    let refusal = refused.frame();
    refused.expect_closed();
    // Another channel of the topic has its own limit.
    let mut other = broker.connect();
    other.subscribe("t", "other");
    drop(a);
    // Once the broker has seen `a` go, a new consumer fits again.
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let mut next = broker.connect();
        next.send(&common::sub("t", "c"));
        match next.frame() {
            Frame::Response(ok) if ok.as_ref() == b"OK" => break,
            Frame::Error(_) => assert!(Instant::now() < deadline, "the slot never freed"),
            other => panic!("unexpected {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    b.set_subscribed();
    assert!(b.barrier().is_empty());
    // Upstream: `SUB failed ` + channel.AddClient's `consumers for T:C exceeds limit of N`.
    assert_eq!(
        refusal,
        Frame::Error("E_SUB_FAILED SUB failed consumers for t:c exceeds limit of 2".into())
    );
}

#[test]
fn sample_rate_delivers_about_that_share() {
    const MESSAGES: usize = 1000;
    let broker = Broker::start(1, &[]);
    let mut consumer = broker.connect();
    let reply = consumer.identify(json!({"feature_negotiation": true, "sample_rate": 30}));
    assert_eq!(reply["sample_rate"], 30, "{reply}");
    consumer.subscribe("sampled", "c");
    consumer.rdy(2500);
    let mut full = broker.connect();
    full.subscribe("sampled", "all");
    full.rdy(2500);
    let mut producer = broker.connect();
    for chunk in 0..(MESSAGES / 100) {
        let batch: Vec<Vec<u8>> = (0..100)
            .map(|i| format!("m{}", chunk * 100 + i).into_bytes())
            .collect();
        producer.mpublish("sampled", &batch);
    }
    // The unsampled channel proves everything was published and delivered.
    assert_eq!(full.receive_and_fin(MESSAGES).len(), MESSAGES);
    // The sampled one: read until the channel has nothing left to hand out.
    let mut got = HashSet::new();
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        for frame in consumer.frames_within(Duration::from_millis(100)) {
            let Frame::Message(msg) = frame else {
                panic!("unexpected {frame:?}")
            };
            consumer.fin(&msg.id);
            assert!(got.insert(msg.id), "duplicate {}", msg.id);
        }
        let c = broker.channel_stats("sampled", "c").unwrap();
        if c["depth"] == 0 && c["in_flight_count"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "channel never drained: {c}");
    }
    // Upstream keeps a message when rand(100) <= rate: about 31%.
    assert!(
        (200..=420).contains(&got.len()),
        "sample_rate 30 delivered {} of {MESSAGES}",
        got.len()
    );
}

/// The raw bytes of an MPUB whose messages have the size fields `sizes` (bodies of `fill`).
fn mpub_bytes(topic: &str, sizes: &[i32], fill: u8) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(sizes.len() as u32).to_be_bytes());
    for &size in sizes {
        body.extend_from_slice(&size.to_be_bytes());
        body.extend(std::iter::repeat_n(fill, size.max(0) as usize));
    }
    let mut out = format!("MPUB {topic}\n").into_bytes();
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend(body);
    out
}

fn mpub_is_all_or_nothing(cores: usize) {
    let broker = Broker::start(cores, &["--max-msg-size=100"]);
    let mut consumer = broker.connect();
    consumer.subscribe("atomic", "c");
    consumer.rdy(100);
    let cases: [(&[i32], &str); 3] = [
        (
            &[3, 3, 0],
            "E_BAD_MESSAGE MPUB invalid message(2) body size 0",
        ),
        (
            &[3, -5, 3],
            "E_BAD_MESSAGE MPUB invalid message(1) body size -5",
        ),
        (
            &[10, 101, 10],
            "E_BAD_MESSAGE MPUB message too big 101 > 100",
        ),
    ];
    for (sizes, text) in cases {
        let mut conn = broker.connect();
        conn.send_raw(&mpub_bytes("atomic", sizes, b'x'));
        conn.expect_fatal(text);
    }
    let topic = broker.topic_stats("atomic").unwrap();
    assert_eq!(topic["message_count"], 0, "{topic}");
    assert_eq!(broker.channel_count("atomic", "c", "depth"), 0);
    // The first thing the consumer ever receives is what comes next.
    broker.connect().publish("atomic", b"sentinel");
    let first = consumer.message();
    assert_eq!(first.body.as_ref(), b"sentinel");
    consumer.fin(&first.id);
    assert!(consumer.barrier().is_empty());
    let topic = broker.topic_stats("atomic").unwrap();
    assert_eq!(topic["message_count"], 1, "{topic}");
}

#[test]
fn a_bad_message_rejects_the_whole_mpub_on_one_shard() {
    mpub_is_all_or_nothing(1);
}

#[test]
fn a_bad_message_rejects_the_whole_mpub_on_two_shards() {
    mpub_is_all_or_nothing(2);
}

#[test]
fn a_departed_consumers_in_flight_messages_go_to_the_next_one() {
    let broker = Broker::start(1, &[]);
    let mut leaving = broker.connect();
    leaving.identify(json!({"msg_timeout": 1000}));
    leaving.subscribe("t", "c");
    leaving.rdy(3);
    let mut producer = broker.connect();
    let batch: Vec<Vec<u8>> = (0..3).map(|i| format!("m{i}").into_bytes()).collect();
    producer.mpublish("t", &batch);
    let taken = leaving.messages(3);
    drop(leaving);
    let mut next = broker.connect();
    next.subscribe("t", "c");
    next.rdy(10);
    let again = next.receive_and_fin(3);
    let mut by_id: BTreeMap<_, _> = taken.iter().map(|m| (m.id, m.body.clone())).collect();
    for msg in &again {
        assert_eq!(msg.attempts, 2, "{msg:?}");
        assert_eq!(by_id.remove(&msg.id), Some(msg.body.clone()), "{msg:?}");
    }
    assert!(by_id.is_empty());
    assert!(next.barrier().is_empty());
}
