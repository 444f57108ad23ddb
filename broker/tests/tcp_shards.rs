//! Black-box tests of `sluiced --cores 2`: topics owned by either shard, publishers and
//! consumers accepted on either shard, and the SUB handoff of a connection to its topic's shard.
//!
//! Goal: clients cannot tell that there are shards. A PUB, MPUB or DPUB to a topic of the other
//! shard is answered `OK` only once the topic has it; with many topics, publishers and
//! consumers on separate connections, every message reaches every channel exactly once; a
//! SUB followed in the same write by more commands (`SUB t c\nRDY 10\n…`), or by half a
//! command, carries on after the move as if nothing happened, with the consumer's IDENTIFY
//! settings (msg_timeout, heartbeats) still in force.
//!
//! Method: the real binary with `--cores=2` on 127.0.0.1 port 0 (`common/mod.rs`). Which shard
//! owns a topic, or accepts a connection, is not visible from outside, so each test uses many
//! topics and connections (the kernel spreads connections over the two SO_REUSEPORT
//! listeners) so that every combination occurs with near certainty.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{encode, sub, Broker, Next, IO_TIMEOUT, NOT_IN_FLIGHT};
use serde_json::json;
use sluice_proto::v2::{Command as V2, Frame, Name};

const TOPICS: usize = 12;

fn topic(i: usize) -> String {
    format!("shard-topic-{i}")
}

/// Publishes from one connection to every topic: 10 PUBs, an MPUB of 10, 5 DPUBs.
fn publish_everything(broker: &Broker, publisher: usize) {
    let mut conn = broker.connect();
    for t in 0..TOPICS {
        let name = topic(t);
        for i in 0..10 {
            conn.publish(&name, format!("p{publisher} {name} pub {i}").as_bytes());
        }
        let batch: Vec<Vec<u8>> = (0..10)
            .map(|i| format!("p{publisher} {name} mpub {i}").into_bytes())
            .collect();
        conn.mpublish(&name, &batch);
        for i in 0..5 {
            conn.dpublish(
                &name,
                10,
                format!("p{publisher} {name} dpub {i}").as_bytes(),
            );
        }
    }
}

#[test]
fn many_topics_on_both_shards_deliver_every_message_once_per_channel() {
    const PUBLISHERS: usize = 3;
    const PER_TOPIC: usize = PUBLISHERS * 25;
    let broker = Broker::start(2, &[]);
    let mut consumers = Vec::new();
    for t in 0..TOPICS {
        for channel in ["a", "b"] {
            let mut conn = broker.connect();
            conn.subscribe(&topic(t), channel);
            conn.rdy(200);
            consumers.push((t, channel, conn));
        }
    }
    std::thread::scope(|scope| {
        for p in 0..PUBLISHERS {
            let broker = &broker;
            scope.spawn(move || publish_everything(broker, p));
        }
    });
    for (t, channel, conn) in &mut consumers {
        let name = topic(*t);
        let got = conn.receive_and_fin(PER_TOPIC);
        let ids: HashSet<_> = got.iter().map(|m| m.id).collect();
        assert_eq!(ids.len(), PER_TOPIC, "{name}/{channel}: duplicate ids");
        let bodies: HashSet<String> = common::bodies(&got).into_iter().collect();
        assert_eq!(
            bodies.len(),
            PER_TOPIC,
            "{name}/{channel}: duplicate bodies"
        );
        assert!(
            bodies.iter().all(|b| b.contains(&format!(" {name} "))),
            "{name}/{channel} got another topic's message"
        );
        assert!(
            conn.barrier().is_empty(),
            "{name}/{channel}: extra deliveries"
        );
    }
    for t in 0..TOPICS {
        let stats = broker.topic_stats(&topic(t)).unwrap();
        assert_eq!(stats["message_count"], PER_TOPIC, "{stats}");
    }
}

#[test]
fn ok_means_the_owning_shard_has_the_message() {
    let broker = Broker::start(2, &[]);
    for round in 0..3 {
        // A new connection each round, so both shards accept some.
        let mut conn = broker.connect();
        for t in 0..TOPICS {
            let name = topic(t);
            conn.publish(&name, b"x");
            let stats = broker.topic_stats(&name).unwrap();
            assert_eq!(stats["message_count"], round * 2 + 1, "{name}: {stats}");
            conn.mpublish(&name, &[b"y".to_vec()]);
            let stats = broker.topic_stats(&name).unwrap();
            assert_eq!(stats["message_count"], round * 2 + 2, "{name}: {stats}");
        }
    }
}

#[test]
fn sub_with_pipelined_commands_carries_on_after_the_handoff() {
    let broker = Broker::start(2, &[]);
    let mut producer = broker.connect();
    for t in 0..TOPICS {
        let name = topic(t);
        let mut conn = broker.connect();
        let mut bytes = encode(&[
            V2::Identify(
                json!({"client_id": format!("pipelined-{t}")})
                    .to_string()
                    .into(),
            ),
            sub(&name, "c"),
            V2::Rdy(10),
        ]);
        bytes.extend_from_slice(b"FIN 0000000000000000\nTOUCH 0000000000000000\nNOP\n");
        conn.send_raw(&bytes);
        conn.expect_ok();
        conn.expect_ok();
        conn.expect_error(NOT_IN_FLIGHT);
        conn.expect_error("E_TOUCH_FAILED TOUCH 0000000000000000 failed ID not in flight");
        conn.set_subscribed();
        for i in 0..5 {
            producer.publish(&name, format!("{name} {i}").as_bytes());
        }
        let got = conn.receive_and_fin(5);
        assert_eq!(
            common::bodies(&got),
            (0..5).map(|i| format!("{name} {i}")).collect::<Vec<_>>()
        );
        assert!(conn.barrier().is_empty());
    }
}

#[test]
fn half_a_command_after_sub_is_completed_after_the_handoff() {
    let broker = Broker::start(2, &[]);
    for t in 0..TOPICS {
        let name = topic(t);
        let mut conn = broker.connect();
        let mut bytes = encode(&[sub(&name, "c"), V2::Rdy(1)]);
        bytes.extend_from_slice(b"PUB ");
        conn.send_raw(&bytes);
        conn.expect_ok();
        conn.set_subscribed();
        // The rest of the PUB, once the connection has surely moved.
        std::thread::sleep(Duration::from_millis(20));
        let mut rest = format!("{name}\n").into_bytes();
        rest.extend_from_slice(&4u32.to_be_bytes());
        rest.extend_from_slice(b"self");
        conn.send_raw(&rest);
        let frames = [conn.frame(), conn.frame()];
        assert!(
            frames.contains(&Frame::Response("OK".into())),
            "{name}: {frames:?}"
        );
        assert!(
            frames
                .iter()
                .any(|f| matches!(f, Frame::Message(m) if m.body.as_ref() == b"self")),
            "{name}: {frames:?}"
        );
    }
}

#[test]
fn sub_and_rdy_in_one_write_on_busy_topics_answer_sub_first() {
    // Upstream answers SUB before it reads the RDY behind it, so `OK` precedes every
    // delivery, however busy the topic (go-nsq pipelines SUB and RDY this way).
    let broker = Broker::start(2, &[]);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut producer = broker.connect();
            for i in 0..20_000 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                producer.publish(&topic(i % TOPICS), format!("m{i}").as_bytes());
            }
        });
        let mut early = Vec::new();
        for round in 0..2 {
            for t in 0..TOPICS {
                let mut conn = broker.connect();
                conn.send_raw(&encode(&[
                    sub(&topic(t), &format!("c{round}")),
                    V2::Rdy(10),
                ]));
                let first = conn.frame();
                if first != Frame::Response("OK".into()) {
                    early.push((topic(t), first));
                }
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(
            early.is_empty(),
            "{} of {} consumers got a frame before the SUB's OK: {early:?}",
            early.len(),
            2 * TOPICS
        );
    });
}

/// One consumer: IDENTIFY, SUB (moving to the topic's shard), then msg_timeout and heartbeats
/// must still be the negotiated ones.
fn settings_survive_the_handoff(broker: &Broker, name: &str) {
    let mut conn = broker.connect();
    conn.identify(json!({"msg_timeout": 1000, "heartbeat_interval": 1000}));
    conn.subscribe(name, "c");
    conn.rdy(1);
    broker.connect().publish(name, b"unfinished");
    let first = conn.message();
    let again = conn.message();
    assert_eq!((again.id, again.attempts), (first.id, 2), "{name}");
    conn.fin(&again.id);
    assert!(conn.barrier().is_empty());
    // Now silent: heartbeats, then the close after two intervals.
    conn.raw_heartbeats = true;
    let mut beats = 0;
    loop {
        match conn.next_until(std::time::Instant::now() + IO_TIMEOUT) {
            Next::Frame(f) if f.is_heartbeat() => beats += 1,
            Next::Closed => break,
            other => panic!("{name}: expected heartbeats then close, got {other:?}"),
        }
    }
    assert!(beats >= 1, "{name}: no heartbeat after the handoff");
}

#[test]
fn identify_settings_survive_the_handoff() {
    let broker = Broker::start(2, &[]);
    std::thread::scope(|scope| {
        for t in 0..6 {
            let broker = &broker;
            scope.spawn(move || settings_survive_the_handoff(broker, &topic(t)));
        }
    });
}

#[test]
fn dpub_to_the_other_shard_is_deferred_there() {
    let broker = Broker::start(2, &[]);
    let mut consumers = Vec::new();
    for t in 0..TOPICS {
        let mut conn = broker.connect();
        conn.subscribe(&topic(t), "c");
        conn.rdy(10);
        consumers.push(conn);
    }
    let mut producer = broker.connect();
    for t in 0..TOPICS {
        producer.send(&V2::Dpub {
            topic: Name::new(&topic(t)),
            defer: Duration::from_millis(3000),
            body: "deferred".into(),
        });
        producer.expect_ok();
        let stats = broker.channel_stats(&topic(t), "c").unwrap();
        assert_eq!(stats["deferred_count"], 1, "{stats}");
    }
    for conn in &mut consumers {
        let msg = conn.message();
        assert_eq!((msg.body.as_ref(), msg.attempts), (&b"deferred"[..], 1));
    }
}
