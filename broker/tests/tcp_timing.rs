//! Black-box tests of everything in the V2 protocol that runs on a clock: heartbeats and the
//! read timeout, output buffering, message timeouts, TOUCH, REQ with a delay and DPUB.
//!
//! Goal: the timers of upstream nsqd v1.3.0 (`nsqd/protocol_v2.go` IOLoop and messagePump,
//! `nsqd/channel.go` in-flight and deferred queues) behave the same in `sluiced`: a heartbeat
//! every `heartbeat_interval`, a client silent for two intervals is closed while one that
//! talks stays, buffered output still arrives complete and in order with responses never held
//! back, unfinished messages come back with more attempts, TOUCH holds them (up to
//! `--max-msg-timeout`), REQ and DPUB delay them.
//!
//! Method: the real binary on 127.0.0.1 port 0 (`common/mod.rs`) with short intervals
//! (`heartbeat_interval=1000`, `msg_timeout=1000`). Assertions are about what happens and in
//! which order; the only times compared are lower bounds that follow from the configured delay
//! (a delayed message cannot come back before its delay), never speed. Every wait is bounded.

mod common;

use std::time::{Duration, Instant};

use common::{bodies, Broker, Next, IO_TIMEOUT};
use serde_json::json;
use sluice_proto::v2::Frame;

/// Slack for comparing a client-side elapsed time with a broker-side delay (clock ticks).
const SLACK: Duration = Duration::from_millis(50);

#[test]
fn heartbeats_come_every_interval_and_nop_answers_keep_the_client() {
    let broker = Broker::start(1, &[]);
    let mut conn = broker.connect();
    // Before IDENTIFY: the broker's ticker starts later than this.
    let start = Instant::now();
    conn.identify(json!({"heartbeat_interval": 1000}));
    conn.raw_heartbeats = true;
    let mut beats = Vec::new();
    while beats.len() < 3 {
        match conn.next_until(Instant::now() + IO_TIMEOUT) {
            Next::Frame(frame) if frame.is_heartbeat() => {
                beats.push(start.elapsed());
                conn.send_raw(b"NOP\n");
            }
            other => panic!("expected a heartbeat, got {other:?}"),
        }
    }
    // Not more often than asked for: the k-th heartbeat comes no sooner than k intervals
    // after IDENTIFY (a late one may be followed by a prompt one, as with upstream's ticker).
    for (k, beat) in beats.iter().enumerate() {
        let due = Duration::from_millis(1000 * (k as u64 + 1));
        assert!(*beat + SLACK * 4 >= due, "heartbeats at {beats:?}");
    }
    // Three intervals later the client that answered is still served.
    conn.publish("t", b"alive");
}

fn closed_after_silence(subscribe: bool) {
    let broker = Broker::start(1, &[]);
    let mut conn = broker.connect();
    conn.identify(json!({"heartbeat_interval": 1000}));
    if subscribe {
        conn.subscribe("t", "c");
    }
    let silent_from = Instant::now();
    conn.raw_heartbeats = true;
    let mut beats = 0;
    loop {
        match conn.next_until(Instant::now() + IO_TIMEOUT) {
            Next::Frame(frame) if frame.is_heartbeat() => beats += 1,
            Next::Closed => break,
            other => panic!("expected heartbeats then close, got {other:?}"),
        }
    }
    let silent_for = silent_from.elapsed();
    assert!(beats >= 1, "closed before any heartbeat");
    // Upstream's read deadline is two intervals after the last command; the client's clock
    // starts a little after the broker's, hence the wide margin (one interval is too early).
    assert!(
        silent_for >= Duration::from_millis(1500),
        "closed after only {silent_for:?}"
    );
}

#[test]
fn a_client_silent_for_two_intervals_is_closed() {
    closed_after_silence(false);
}

#[test]
fn a_consumer_silent_for_two_intervals_is_closed() {
    closed_after_silence(true);
}

#[test]
fn any_command_counts_as_a_sign_of_life() {
    let broker = Broker::start(1, &[]);
    let mut conn = broker.connect();
    conn.identify(json!({"heartbeat_interval": 1000}));
    conn.raw_heartbeats = true;
    let start = Instant::now();
    let mut beats = 0;
    // Publishes every 300 ms for more than three intervals, never a NOP.
    while start.elapsed() < Duration::from_millis(3500) {
        conn.send(&common::publish("t", b"x"));
        loop {
            match conn.frame() {
                Frame::Response(r) if r.as_ref() == b"OK" => break,
                frame if frame.is_heartbeat() => beats += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        beats >= 1,
        "no heartbeat in 3.5 s with heartbeat_interval 1000"
    );
    conn.publish("t", b"still open");
}

#[test]
fn buffered_output_delivers_everything_in_order() {
    let broker = Broker::start(1, &[]);
    let mut consumer = broker.connect();
    let reply = consumer.identify(json!({
        "feature_negotiation": true,
        "output_buffer_size": 16384,
        "output_buffer_timeout": 250,
    }));
    assert_eq!(
        (
            &reply["output_buffer_size"],
            &reply["output_buffer_timeout"]
        ),
        (&json!(16384), &json!(250))
    );
    consumer.subscribe("buffered", "c");
    consumer.rdy(2500);
    let mut producer = broker.connect();
    let mut published = Vec::new();
    for chunk in 0..20 {
        let batch: Vec<Vec<u8>> = (0..45)
            .map(|i| format!("m{:04}", chunk * 50 + i).into_bytes())
            .collect();
        producer.mpublish("buffered", &batch);
        published.extend(batch);
        for i in 45..50 {
            let body = format!("m{:04}", chunk * 50 + i).into_bytes();
            producer.publish("buffered", &body);
            published.push(body);
        }
    }
    let got = consumer.receive_and_fin(published.len());
    let want: Vec<String> = published
        .iter()
        .map(|b| String::from_utf8(b.clone()).unwrap())
        .collect();
    assert_eq!(
        bodies(&got),
        want,
        "one publisher, one consumer: publish order"
    );
    // A lone message after the burst is flushed too.
    producer.publish("buffered", b"last");
    assert_eq!(consumer.message().body.as_ref(), b"last");
}

#[test]
fn a_lone_message_is_flushed_by_the_buffer_timeout() {
    let broker = Broker::start(1, &[]);
    let mut consumer = broker.connect();
    consumer.identify(json!({"output_buffer_size": 65536, "output_buffer_timeout": 1000}));
    consumer.subscribe("lone", "c");
    consumer.rdy(100);
    broker.connect().publish("lone", b"alone");
    assert_eq!(consumer.message().body.as_ref(), b"alone");
}

#[test]
fn responses_and_errors_are_not_held_by_output_buffering() {
    // With a 20 s buffer timeout, a response held in the buffer would miss these reads
    // (`IO_TIMEOUT` is 10 s): responses and errors are flushed at once, as upstream's Send does.
    assert!(IO_TIMEOUT < Duration::from_secs(20));
    let broker = Broker::start(1, &[]);
    let mut conn = broker.connect();
    conn.identify(json!({"output_buffer_size": 65536, "output_buffer_timeout": 20000}));
    conn.publish("held", b"one");
    conn.subscribe("held", "c");
    conn.send_raw(b"FIN 0000000000000000\n");
    conn.expect_error(common::NOT_IN_FLIGHT);
    // RDY 1: once the one message is out the client is not ready, which flushes (upstream).
    conn.rdy(1);
    assert_eq!(conn.message().body.as_ref(), b"one");
}

#[test]
fn an_unfinished_message_times_out_and_comes_back() {
    let broker = Broker::start(1, &[]);
    let mut consumer = broker.connect();
    let reply = consumer.identify(json!({"feature_negotiation": true, "msg_timeout": 1000}));
    assert_eq!(reply["msg_timeout"], 1000);
    consumer.subscribe("t", "c");
    consumer.rdy(1);
    // The broker delivers after this instant, so the timeout cannot end before a second after.
    let published = Instant::now();
    broker.connect().publish("t", b"slow");
    let first = consumer.message();
    assert_eq!(first.attempts, 1);
    let again = consumer.message();
    assert!(published.elapsed() >= Duration::from_millis(1000) - SLACK);
    assert_eq!(
        (again.id, again.attempts, again.body.clone()),
        (first.id, 2, first.body)
    );
    broker.wait_channel_count("t", "c", "timeout_count", 1);
    consumer.fin(&again.id);
    assert!(consumer.barrier().is_empty());
    broker.wait_channel_count("t", "c", "in_flight_count", 0);
}

#[test]
fn touch_keeps_a_message_in_flight() {
    let broker = Broker::start(1, &[]);
    let mut consumer = broker.connect();
    consumer.identify(json!({"msg_timeout": 2000}));
    consumer.subscribe("t", "c");
    consumer.rdy(1);
    broker.connect().publish("t", b"long job");
    let msg = consumer.message();
    let delivered = Instant::now();
    // Two and a half timeouts of work, touching every 300 ms.
    while delivered.elapsed() < Duration::from_millis(5000) {
        std::thread::sleep(Duration::from_millis(300));
        consumer.touch(&msg.id);
    }
    consumer.fin(&msg.id);
    assert!(consumer.barrier().is_empty(), "a touched message timed out");
    assert_eq!(broker.channel_count("t", "c", "timeout_count"), 0);
    assert_eq!(broker.channel_count("t", "c", "in_flight_count"), 0);
}

#[test]
fn touch_cannot_hold_a_message_past_max_msg_timeout() {
    let broker = Broker::start(1, &["--max-msg-timeout=4s"]);
    let mut consumer = broker.connect();
    consumer.identify(json!({"msg_timeout": 2000}));
    consumer.subscribe("t", "c");
    consumer.rdy(1);
    let published = Instant::now();
    broker.connect().publish("t", b"stuck");
    let msg = consumer.message();
    let deadline = Instant::now() + IO_TIMEOUT;
    let again = loop {
        consumer.touch(&msg.id);
        match consumer.next_until(Instant::now() + Duration::from_millis(300)) {
            Next::Frame(Frame::Message(m)) => break m,
            // A TOUCH that raced with the timeout is refused without closing.
            Next::Frame(Frame::Error(e)) if e.starts_with(b"E_TOUCH_FAILED") => {}
            Next::TimedOut => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(Instant::now() < deadline, "the message was never timed out");
    };
    // Touched past its own 2 s timeout, cut off at 4 s after delivery.
    assert!(published.elapsed() >= Duration::from_millis(4000) - SLACK);
    assert_eq!((again.id, again.attempts), (msg.id, 2));
    broker.wait_channel_count("t", "c", "timeout_count", 1);
}

#[test]
fn req_with_a_delay_defers_the_message_and_lets_others_pass() {
    let broker = Broker::start(1, &[]);
    let mut consumer = broker.connect();
    consumer.subscribe("t", "c");
    consumer.rdy(1);
    let mut producer = broker.connect();
    producer.publish("t", b"a");
    producer.publish("t", b"b");
    let a = consumer.message();
    assert_eq!(a.body.as_ref(), b"a");
    consumer.req(&a.id, 2000);
    let requeued = Instant::now();
    let b = consumer.message();
    assert_eq!(b.body.as_ref(), b"b");
    let c = broker.channel_stats("t", "c").unwrap();
    assert_eq!(
        (&c["deferred_count"], &c["requeue_count"]),
        (&json!(1), &json!(1)),
        "{c}"
    );
    consumer.fin(&b.id);
    let again = consumer.message();
    assert!(requeued.elapsed() >= Duration::from_millis(2000) - SLACK);
    assert_eq!((again.id, again.attempts), (a.id, 2));
    consumer.fin(&again.id);
    broker.wait_channel_count("t", "c", "deferred_count", 0);
}

#[test]
fn dpub_holds_its_message_while_later_ones_pass() {
    let broker = Broker::start(1, &[]);
    let mut consumer = broker.connect();
    consumer.subscribe("t", "c");
    consumer.rdy(10);
    let mut producer = broker.connect();
    producer.dpublish("t", 1500, b"later");
    let published = Instant::now();
    producer.publish("t", b"now");
    let first = consumer.message();
    assert_eq!(first.body.as_ref(), b"now");
    consumer.fin(&first.id);
    let later = consumer.message();
    assert!(published.elapsed() >= Duration::from_millis(1500) - SLACK);
    assert_eq!((later.body.as_ref(), later.attempts), (&b"later"[..], 1));
    consumer.fin(&later.id);
    assert!(consumer.barrier().is_empty());
}
