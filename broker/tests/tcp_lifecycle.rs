//! Black-box tests of what happens to topics and channels over time, seen by TCP consumers:
//! pause and unpause over HTTP, and the life of `#ephemeral` topics and channels.
//!
//! Goal: as in upstream nsqd v1.3.0 (`nsqd/topic.go`, `nsqd/channel.go`, `nsqd/http.go`),
//! pausing a topic or a channel stops deliveries but never publishing, unpausing delivers what
//! waited; an `#ephemeral` channel is deleted with its last consumer and an `#ephemeral` topic
//! with its last channel, and nothing of either is ever written under `--data-path`.
//!
//! Method: the real binary on 127.0.0.1 port 0 (`common/mod.rs`), on one and two shards so that
//! the HTTP call lands on a shard that does not own the topic. "Nothing delivered" is checked
//! after a round-trip barrier on the consumer's connection and confirmed with `/stats`;
//! "nothing written" by scanning every file under the data path for the topic's name and a
//! marker in the bodies, with a durable topic as the control that the scan finds what is there.

mod common;

use std::collections::HashSet;

use common::{bodies, files_under, wait_until, Broker, Conn};

fn consumer(broker: &Broker, topic: &str, channel: &str, rdy: u64) -> Conn {
    let mut conn = broker.connect();
    conn.subscribe(topic, channel);
    conn.rdy(rdy);
    conn
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn topic_pause_holds_deliveries_not_publishes(cores: usize) {
    let broker = Broker::start(cores, &[]);
    let topics: Vec<String> = (0..4).map(|i| format!("paused{i}")).collect();
    let mut consumers: Vec<Conn> = topics
        .iter()
        .map(|t| consumer(&broker, t, "c", 10))
        .collect();
    for topic in &topics {
        broker.admin(&format!("/topic/pause?topic={topic}"));
    }
    let mut producer = broker.connect();
    for topic in &topics {
        for i in 0..3 {
            producer.publish(topic, format!("{topic} {i}").as_bytes());
        }
    }
    for (topic, conn) in topics.iter().zip(&mut consumers) {
        assert!(conn.barrier().is_empty(), "{topic} delivered while paused");
        conn.expect_quiet(topic);
        let stats = broker.topic_stats(topic).unwrap();
        assert_eq!(stats["paused"], true, "{stats}");
        assert_eq!(stats["message_count"], 3, "{stats}");
    }
    for topic in &topics {
        broker.admin(&format!("/topic/unpause?topic={topic}"));
    }
    for (topic, conn) in topics.iter().zip(&mut consumers) {
        let got = sorted(bodies(&conn.receive_and_fin(3)));
        let want: Vec<String> = (0..3).map(|i| format!("{topic} {i}")).collect();
        assert_eq!(got, want);
        assert_eq!(broker.topic_stats(topic).unwrap()["paused"], false);
    }
}

#[test]
fn pausing_a_topic_holds_deliveries_not_publishes_on_one_shard() {
    topic_pause_holds_deliveries_not_publishes(1);
}

#[test]
fn pausing_a_topic_holds_deliveries_not_publishes_on_two_shards() {
    topic_pause_holds_deliveries_not_publishes(2);
}

fn channel_pause_holds_only_that_channel(cores: usize) {
    let broker = Broker::start(cores, &[]);
    let mut held = consumer(&broker, "t", "held", 10);
    let mut free = consumer(&broker, "t", "free", 10);
    let mut producer = broker.connect();
    producer.publish("t", b"before");
    let in_flight = held.message();
    assert_eq!(free.receive_and_fin(1)[0].body.as_ref(), b"before");
    broker.admin("/channel/pause?topic=t&channel=held");
    for i in 0..3 {
        producer.publish("t", format!("during {i}").as_bytes());
    }
    let want: Vec<String> = (0..3).map(|i| format!("during {i}")).collect();
    assert_eq!(sorted(bodies(&free.receive_and_fin(3))), want);
    // A message in flight before the pause can still be finished.
    held.fin(&in_flight.id);
    assert!(held.barrier().is_empty(), "paused channel delivered");
    held.expect_quiet("paused channel");
    let stats = broker.channel_stats("t", "held").unwrap();
    assert_eq!(
        (&stats["paused"], &stats["depth"], &stats["in_flight_count"]),
        (&true.into(), &3.into(), &0.into()),
        "{stats}"
    );
    broker.admin("/channel/unpause?topic=t&channel=held");
    assert_eq!(sorted(bodies(&held.receive_and_fin(3))), want);
    assert_eq!(broker.channel_stats("t", "held").unwrap()["paused"], false);
}

#[test]
fn pausing_a_channel_holds_only_that_channel_on_one_shard() {
    channel_pause_holds_only_that_channel(1);
}

#[test]
fn pausing_a_channel_holds_only_that_channel_on_two_shards() {
    channel_pause_holds_only_that_channel(2);
}

#[test]
fn a_paused_channel_stays_paused_for_a_new_consumer() {
    let broker = Broker::start(1, &[]);
    broker.admin("/topic/create?topic=t");
    broker.admin("/channel/create?topic=t&channel=c");
    broker.admin("/channel/pause?topic=t&channel=c");
    broker.connect().publish("t", b"waiting");
    let mut late = consumer(&broker, "t", "c", 10);
    assert!(late.barrier().is_empty());
    late.expect_quiet("consumer of a paused channel");
    broker.admin("/channel/unpause?topic=t&channel=c");
    assert_eq!(bodies(&late.receive_and_fin(1)), ["waiting"]);
}

#[test]
fn an_ephemeral_channel_goes_with_its_last_consumer() {
    let broker = Broker::start(1, &[]);
    let keep = consumer(&broker, "t", "durable", 10);
    let first = consumer(&broker, "t", "c#ephemeral", 10);
    let second = consumer(&broker, "t", "c#ephemeral", 10);
    drop(first);
    wait_until("one consumer left on c#ephemeral", || {
        broker
            .channel_stats("t", "c#ephemeral")
            .is_some_and(|c| c["client_count"] == 1)
    });
    drop(second);
    wait_until("c#ephemeral deleted", || {
        broker.channel_stats("t", "c#ephemeral").is_none()
    });
    // The topic and its durable channel are untouched.
    assert!(broker.channel_stats("t", "durable").is_some());
    drop(keep);
    // A durable channel outlives its consumers.
    wait_until("durable channel without consumers", || {
        broker
            .channel_stats("t", "durable")
            .is_some_and(|c| c["client_count"] == 0)
    });
}

#[test]
fn an_ephemeral_topic_goes_with_its_last_channel() {
    let broker = Broker::start(2, &[]);
    let mut conn = consumer(&broker, "e#ephemeral", "c#ephemeral", 10);
    broker.connect().publish("e#ephemeral", b"fleeting");
    assert_eq!(bodies(&conn.receive_and_fin(1)), ["fleeting"]);
    drop(conn);
    wait_until("e#ephemeral deleted", || {
        broker.topic_stats("e#ephemeral").is_none()
    });
    // With a durable channel the topic stays until that channel is deleted.
    drop(consumer(&broker, "f#ephemeral", "durable", 1));
    wait_until("durable channel without consumers", || {
        broker
            .channel_stats("f#ephemeral", "durable")
            .is_some_and(|c| c["client_count"] == 0)
    });
    assert!(broker.topic_stats("f#ephemeral").is_some());
    broker.admin("/channel/delete?topic=f%23ephemeral&channel=durable");
    wait_until("f#ephemeral deleted", || {
        broker.topic_stats("f#ephemeral").is_none()
    });
}

/// Every file under the data path whose bytes contain `needle`.
fn files_containing(broker: &Broker, needle: &[u8]) -> Vec<std::path::PathBuf> {
    files_under(&broker.data)
        .into_iter()
        .filter(|(path, _)| {
            std::fs::read(path).is_ok_and(|data| data.windows(needle.len()).any(|w| w == needle))
        })
        .map(|(path, _)| path)
        .collect()
}

/// The total size of the segment files.
fn segment_bytes(broker: &Broker) -> u64 {
    files_under(&broker.data)
        .iter()
        .filter(|(path, _)| path.extension().is_some_and(|e| e == "seg"))
        .map(|(_, size)| size)
        .sum()
}

#[test]
fn ephemeral_messages_never_reach_the_data_path() {
    let broker = Broker::start(2, &["--mem-queue-size=10", "--sync-timeout=100ms"]);
    let mut conn = consumer(&broker, "vanish#ephemeral", "c#ephemeral", 0);
    let mut durable_channel = consumer(&broker, "vanish#ephemeral", "durable", 0);
    let mut producer = broker.connect();
    let before = segment_bytes(&broker);
    // More than --mem-queue-size: an ephemeral channel drops the excess (upstream), it never
    // spills to disk.
    let batch: Vec<Vec<u8>> = (0..50)
        .map(|i| format!("EPHEMERAL-MARKER {i}").into_bytes())
        .collect();
    producer.mpublish("vanish#ephemeral", &batch);
    for i in 0..20 {
        producer.publish(
            "vanish#ephemeral",
            format!("EPHEMERAL-MARKER single {i}").as_bytes(),
        );
    }
    assert_eq!(segment_bytes(&broker), before, "segments grew");
    // The control: durable topics' bodies are found by the same scan. Sixteen of them, so that
    // every shard owns some (with near certainty) and saves its state after the ephemeral
    // publishes.
    for i in 0..16 {
        producer.publish(&format!("control{i}"), b"DURABLE-MARKER");
    }
    wait_until("the durable control in a segment", || {
        !files_containing(&broker, b"DURABLE-MARKER").is_empty()
    });
    wait_until("every shard's saved state lists a control topic", || {
        let states: Vec<_> = files_under(&broker.data)
            .into_iter()
            .filter(|(path, _)| path.ends_with("state.json"))
            .collect();
        states.len() == 2
            && states.iter().all(|(path, _)| {
                std::fs::read(path).is_ok_and(|d| d.windows(8).any(|w| w == b"\"control"))
            })
    });
    assert_eq!(
        files_containing(&broker, b"EPHEMERAL-MARKER"),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(
        files_containing(&broker, b"vanish#ephemeral"),
        Vec::<std::path::PathBuf>::new()
    );
    // What the channels kept is still delivered, each message at most once.
    for (name, conn) in [
        ("c#ephemeral", &mut conn),
        ("durable", &mut durable_channel),
    ] {
        conn.rdy(100);
        broker.wait_channel_count("vanish#ephemeral", name, "depth", 0);
        let got = conn.barrier();
        let ids: HashSet<_> = got
            .iter()
            .map(|f| match f {
                sluice_proto::v2::Frame::Message(m) => m.id,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(ids.len(), got.len(), "{name}: duplicates");
        assert!(
            (10..=70).contains(&got.len()),
            "{name}: got {} of 70 with --mem-queue-size=10",
            got.len()
        );
    }
    broker.connect().publish("control0", b"alive");
}
