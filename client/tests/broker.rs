//! Black-box tests of the producer and consumer against the real `sluiced` binary.
//!
//! Each test starts its own broker on `127.0.0.1:0` (see `support`), publishes with
//! [`Producer`] and checks with [`Consumer`] that every message arrives exactly once, that
//! broker refusals come back typed, and that RDY, REQ, TOUCH, heartbeats, reconnects and
//! lookupd discovery behave as NSQ clients expect. Waits are bounded polls, never sleeps
//! that decide the outcome.

mod support;

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_client::{Config, Consumer, Disposition, Error, Message, Producer, Responder};
use sluice_proto::{ErrorCode, Verb};
use support::Sluiced;

const WAIT: Duration = Duration::from_secs(10);

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A consumer whose handlers count every body they see (and finish it).
type Seen = Arc<Mutex<BTreeMap<Vec<u8>, u32>>>;

fn counting_consumer(topic: &str, config: Config) -> (Consumer, Seen) {
    let seen = Arc::new(Mutex::new(BTreeMap::new()));
    let consumer = Consumer::new(topic, "ch", config).unwrap();
    let handler_seen = seen.clone();
    consumer.start(move || {
        let seen = handler_seen.clone();
        move |msg: &Message| {
            *seen.lock().unwrap().entry(msg.body.to_vec()).or_insert(0) += 1;
            Disposition::Finish
        }
    });
    (consumer, seen)
}

#[test]
fn every_published_message_arrives_exactly_once() {
    let broker = Sluiced::start(&[]);
    let config = Config {
        max_in_flight: 50,
        max_pending: 8,
        ..Config::default()
    };
    let mut producer = Producer::connect(&broker.addr(), &config).unwrap();
    producer.publish("t", b"single").unwrap();
    let batch: Vec<Vec<u8>> = (0..100).map(|i| format!("m{i}").into_bytes()).collect();
    producer.multi_publish("t", &batch).unwrap();
    for i in 0..1000 {
        producer.send_pub("t", format!("p{i}").as_bytes()).unwrap();
    }
    producer.wait_all().unwrap();
    producer
        .deferred_publish("t", Duration::from_millis(50), b"deferred")
        .unwrap();
    assert_eq!(producer.acked(), 1 + 1 + 1000 + 1);

    let (consumer, seen) = counting_consumer("t", config);
    consumer.connect_to_nsqd(&broker.addr()).unwrap();
    wait_for("1102 messages", || seen.lock().unwrap().len() == 1102);
    consumer.stop();
    let seen = seen.lock().unwrap();
    assert!(seen.values().all(|count| *count == 1), "duplicates");
    for body in ["single", "m0", "m99", "p0", "p999", "deferred"] {
        assert!(seen.contains_key(body.as_bytes()), "{body} missing");
    }
    let stats = consumer.stats();
    assert_eq!(stats.messages_received, 1102);
    assert_eq!(stats.messages_finished, 1102);
    assert_eq!(stats.connections, 0);
}

#[test]
fn refusals_are_typed_and_the_producer_reconnects() {
    let broker = Sluiced::start(&["--max-msg-size=100"]);
    let mut producer = Producer::connect(&broker.addr(), &Config::default()).unwrap();
    let err = producer.publish("t", &[b'x'; 101]).unwrap_err();
    let refusal = err.broker_error().expect("a broker error");
    assert_eq!(refusal.verb, Some(Verb::Pub));
    assert_eq!(refusal.code, Some(ErrorCode::BadMessage));
    assert!(err.is_fatal());
    // The refusal closed the connection; the next publish opens a new one.
    producer.publish("t", &[b'x'; 100]).unwrap();
    assert!(matches!(
        producer.publish("bad topic", b"x"),
        Err(Error::InvalidTopic(_))
    ));
    assert!(matches!(
        Consumer::new("t", "bad channel!", Config::default()),
        Err(Error::InvalidChannel(_))
    ));
    let empty: [&[u8]; 0] = [];
    assert!(matches!(
        producer.multi_publish("t", &empty),
        Err(Error::Usage(_))
    ));
}

#[test]
fn a_requeued_message_comes_back_with_more_attempts() {
    let broker = Sluiced::start(&[]);
    Producer::connect(&broker.addr(), &Config::default())
        .unwrap()
        .publish("t", b"again")
        .unwrap();
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let consumer = Consumer::new("t", "ch", Config::default()).unwrap();
    let handler_attempts = attempts.clone();
    consumer.start(move || {
        let attempts = handler_attempts.clone();
        move |msg: &Message| {
            attempts.lock().unwrap().push(msg.attempts);
            if msg.attempts == 1 {
                Disposition::Requeue(Some(Duration::ZERO))
            } else {
                Disposition::Finish
            }
        }
    });
    consumer.connect_to_nsqd(&broker.addr()).unwrap();
    wait_for("the second delivery", || {
        attempts.lock().unwrap().len() == 2
    });
    consumer.stop();
    assert_eq!(*attempts.lock().unwrap(), vec![1, 2]);
    assert_eq!(consumer.stats().messages_requeued, 1);
}

#[test]
fn held_messages_are_touched_and_finished_from_another_thread() {
    let broker = Sluiced::start(&[]);
    Producer::connect(&broker.addr(), &Config::default())
        .unwrap()
        .publish("t", b"slow")
        .unwrap();
    let config = Config {
        msg_timeout: Some(Duration::from_millis(1000)),
        ..Config::default()
    };
    let (tx, rx) = mpsc::channel::<(Responder, Message)>();
    let tx = Mutex::new(tx);
    let consumer = Consumer::new("t", "ch", config).unwrap();
    let deliveries = Arc::new(Mutex::new(0u32));
    let counter = deliveries.clone();
    struct Holder(mpsc::Sender<(Responder, Message)>, Arc<Mutex<u32>>);
    impl sluice_client::Handler for Holder {
        fn handle_message(&mut self, msg: &Message, responder: &Responder) -> Disposition {
            *self.1.lock().unwrap() += 1;
            self.0.send((responder.clone(), msg.clone())).unwrap();
            Disposition::Hold
        }
    }
    consumer.start(move || Holder(tx.lock().unwrap().clone(), counter.clone()));
    consumer.connect_to_nsqd(&broker.addr()).unwrap();
    let (responder, msg) = rx.recv_timeout(WAIT).unwrap();
    // Keep it in flight past its 1 s timeout by touching it.
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(300));
        responder.touch(msg.id).unwrap();
    }
    responder.finish(msg.id).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    consumer.stop();
    assert_eq!(
        *deliveries.lock().unwrap(),
        1,
        "the touched message timed out"
    );
    assert!(
        consumer.last_error().is_none(),
        "{:?}",
        consumer.last_error()
    );
}

#[test]
fn heartbeats_are_answered_and_the_connection_stays_up() {
    let broker = Sluiced::start(&[]);
    let config = Config {
        heartbeat_interval: Some(Duration::from_millis(1000)),
        read_timeout: Duration::from_secs(5),
        ..Config::default()
    };
    let (consumer, seen) = counting_consumer("t", config.clone());
    consumer.connect_to_nsqd(&broker.addr()).unwrap();
    assert!(consumer.wait_connected(1, WAIT));
    // Idle through several heartbeats: a missed NOP would make the broker close us.
    std::thread::sleep(Duration::from_millis(3500));
    let mut producer = Producer::connect(&broker.addr(), &config).unwrap();
    producer.publish("t", b"after").unwrap();
    wait_for("the message", || seen.lock().unwrap().len() == 1);
    let stats = consumer.stats();
    assert_eq!(stats.subscriptions, 1, "{:?}", consumer.last_error());
    assert_eq!(stats.errors, 0, "{:?}", consumer.last_error());
    consumer.stop();
}

#[test]
fn max_in_flight_is_spread_over_connections() {
    let brokers = [Sluiced::start(&[]), Sluiced::start(&[])];
    for broker in &brokers {
        let bodies: Vec<Vec<u8>> = (0..20).map(|i| vec![b'a' + i]).collect();
        Producer::connect(&broker.addr(), &Config::default())
            .unwrap()
            .multi_publish("t", &bodies)
            .unwrap();
    }
    let config = Config {
        max_in_flight: 10,
        ..Config::default()
    };
    let held = Arc::new(Mutex::new(Vec::new()));
    let consumer = Consumer::new("t", "ch", config).unwrap();
    struct Keep(Arc<Mutex<Vec<(Responder, Message)>>>);
    impl sluice_client::Handler for Keep {
        fn handle_message(&mut self, msg: &Message, responder: &Responder) -> Disposition {
            self.0
                .lock()
                .unwrap()
                .push((responder.clone(), msg.clone()));
            Disposition::Hold
        }
    }
    let handler_held = held.clone();
    consumer.start(move || Keep(handler_held.clone()));
    for broker in &brokers {
        consumer.connect_to_nsqd(&broker.addr()).unwrap();
    }
    assert!(consumer.wait_connected(2, WAIT));
    wait_for("10 held messages", || held.lock().unwrap().len() >= 10);
    std::thread::sleep(Duration::from_millis(300));
    // 5 per connection: RDY 10 then 5 when the second connection subscribed may let a few
    // extra in before the change, so bound it by the first connection's full share.
    let count = held.lock().unwrap().len();
    assert!((10..=15).contains(&count), "{count} in flight");
    for (responder, msg) in held.lock().unwrap().drain(..) {
        responder.finish(msg.id).unwrap();
    }
    wait_for("more deliveries", || !held.lock().unwrap().is_empty());
    consumer.stop();
}

#[test]
fn the_consumer_reconnects_with_backoff() {
    let broker = Sluiced::start(&[]);
    let addr = format!("127.0.0.1:{}", support::free_port());
    let config = Config {
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        ..Config::default()
    };
    let (consumer, seen) = counting_consumer("t", config.clone());
    // Nothing listens there yet: the first attempts fail and are retried.
    consumer.connect_to_nsqd(&addr).unwrap();
    wait_for("a failed attempt", || consumer.stats().errors >= 1);
    let proxy = support::Proxy::start(&addr, broker.tcp);
    let mut producer = Producer::connect(&broker.addr(), &config).unwrap();
    for round in 1..=2u8 {
        assert!(consumer.wait_connected(1, WAIT), "round {round}");
        producer.publish("t", &[round]).unwrap();
        wait_for("the message", || {
            seen.lock().unwrap().len() == usize::from(round)
        });
        proxy.cut();
        wait_for("the disconnect", || consumer.stats().connections == 0);
    }
    assert_eq!(consumer.stats().subscriptions, 2);
    consumer.stop();
}

#[test]
fn brokers_are_found_through_lookupd() {
    let broker = Sluiced::start(&[]);
    let lookupd = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let lookupd_addr = lookupd.local_addr().unwrap().to_string();
    let body = format!(
        r#"{{"channels":["ch"],"producers":[{{"remote_address":"x","hostname":"h","broadcast_address":"127.0.0.1","tcp_port":{},"http_port":1,"version":"1.3.0"}}]}}"#,
        broker.tcp.port()
    );
    let queries = Arc::new(Mutex::new(Vec::new()));
    let server_queries = queries.clone();
    std::thread::spawn(move || {
        for stream in lookupd.incoming() {
            let mut stream = stream.unwrap();
            let mut request = [0u8; 1024];
            let n = std::io::Read::read(&mut stream, &mut request).unwrap();
            let line = String::from_utf8_lossy(&request[..n])
                .lines()
                .next()
                .unwrap()
                .to_owned();
            server_queries.lock().unwrap().push(line);
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            std::io::Write::write_all(&mut stream, reply.as_bytes()).unwrap();
        }
    });
    let (consumer, seen) = counting_consumer("t#ephemeral", Config::default());
    consumer.connect_to_lookupd(&lookupd_addr).unwrap();
    assert!(
        consumer.wait_connected(1, WAIT),
        "{:?}",
        consumer.last_error()
    );
    Producer::connect(&broker.addr(), &Config::default())
        .unwrap()
        .publish("t#ephemeral", b"found")
        .unwrap();
    wait_for("the message", || seen.lock().unwrap().len() == 1);
    consumer.stop();
    assert_eq!(
        queries.lock().unwrap()[0],
        "GET /lookup?topic=t%23ephemeral HTTP/1.1"
    );
}
