//! Black-box tests of `sluiced` against hostile or broken V2 clients: random bytes, huge
//! length prefixes, over-long lines, half-open and abrupt disconnects in the middle of a
//! command.
//!
//! Goal: bad input ends only the connection that sent it, with upstream nsqd v1.3.0's error
//! frame where upstream sends one (`nsqd/protocol_v2.go`), and never crashes, stalls or bloats
//! the broker: a well-behaved client is served all along, a size prefix is judged as soon as
//! it is readable (nothing is allocated or awaited for a body that may never come), and a
//! command cut short publishes nothing.
//!
//! Method: the real binary on 127.0.0.1 port 0 (`common/mod.rs`). Random input comes from a
//! seeded splitmix64 (`SLUICE_SEED` overrides the seed, which is printed), in a bounded number
//! of iterations. Memory is read from `/proc/PID/status` (`VmRSS`); the bounds are generous and
//! only catch allocations of the size the prefixes announce.

mod common;

use std::time::{Duration, Instant};

use common::{Broker, Conn, Next, SplitMix64, IO_TIMEOUT};
use sluice_proto::v2::{Frame, Verb};
use sluice_proto::ErrorCode;

/// The verbs a random line may start with, to reach each command's parameter checks.
const VERBS: [&str; 12] = [
    "IDENTIFY", "AUTH", "SUB", "PUB", "MPUB", "DPUB", "RDY", "FIN", "REQ", "TOUCH", "CLS", "NOP",
];

/// One random input (after the magic).
fn random_input(rng: &mut SplitMix64) -> Vec<u8> {
    let len = 1 + rng.below(600) as usize;
    let mut bytes = rng.bytes(len);
    match rng.below(5) {
        // Pure noise.
        0 => {}
        // Noise whose first line ends early.
        1 => {
            let at = rng.below(64.min(len as u64)) as usize;
            bytes[at] = b'\n';
        }
        // A verb, then noise.
        2 => {
            let verb = VERBS[rng.below(VERBS.len() as u64) as usize];
            let mut line = format!("{verb} ").into_bytes();
            line.extend(bytes);
            bytes = line;
        }
        // A consumer (moved to its topic's shard on two shards), then noise.
        3 => {
            let mut line = b"SUB fuzz c\nRDY 3\n".to_vec();
            line.extend(bytes);
            bytes = line;
        }
        // A well-formed head with a random size field and a random (often short) body.
        _ => {
            let head = ["PUB t", "MPUB t", "DPUB t 10", "IDENTIFY", "AUTH"];
            let mut line = format!("{}\n", head[rng.below(5) as usize]).into_bytes();
            line.extend_from_slice(&(rng.next_u64() as u32 >> rng.below(32)).to_be_bytes());
            line.extend(bytes);
            bytes = line;
        }
    }
    bytes
}

/// What upstream answers to a first line that starts with no verb: `E_INVALID invalid command
/// WORD` (raw bytes; a lossy UTF-8 rendering is accepted here, the exact bytes are
/// `tcp_protocol::invalid_command_word_is_echoed_byte_for_byte`'s business).
fn expected_invalid_command(input: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let newline = input.iter().position(|&b| b == b'\n')?;
    if newline >= sluice_proto::limits::DEFAULT_MAX_LINE_LEN {
        return None;
    }
    let mut line = &input[..newline];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    let word = line.split(|&b| b == b' ').next().unwrap_or_default();
    if Verb::from_bytes(word).is_some() {
        return None;
    }
    let raw = [b"E_INVALID invalid command ".as_slice(), word].concat();
    let lossy = format!(
        "E_INVALID invalid command {}",
        String::from_utf8_lossy(word)
    )
    .into_bytes();
    Some((raw, lossy))
}

/// Sends one random input, half-closes, and checks everything the broker does in reply.
fn check_one(broker: &Broker, input: &[u8], iteration: usize) {
    let mut conn = broker.connect();
    // The broker may close before reading everything.
    let _ = conn.try_send_raw(input);
    let _ = conn.stream().shutdown(std::net::Shutdown::Write);
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut frames = Vec::new();
    loop {
        match conn.next_until(deadline) {
            Next::Frame(frame) => frames.push(frame),
            Next::Closed => break,
            Next::TimedOut => panic!("iteration {iteration}: never closed; input {input:?}"),
        }
    }
    for (i, frame) in frames.iter().enumerate() {
        match frame {
            Frame::Error(_) => {
                let (code, _) = frame.error().unwrap();
                let code = code
                    .unwrap_or_else(|| panic!("iteration {iteration}: unknown code in {frame:?}"));
                if code.is_fatal() {
                    assert_eq!(
                        i + 1,
                        frames.len(),
                        "iteration {iteration}: frames after a fatal error: {frames:?}"
                    );
                }
            }
            Frame::Response(_) => {}
            Frame::Message(_) => panic!("iteration {iteration}: a message for noise: {frame:?}"),
        }
    }
    if let Some((raw, lossy)) = expected_invalid_command(input) {
        let first = frames.first().map(|f| match f {
            Frame::Error(data) => data.to_vec(),
            other => panic!("iteration {iteration}: {other:?}"),
        });
        assert!(
            first.as_ref() == Some(&raw) || first.as_ref() == Some(&lossy),
            "iteration {iteration}: expected {:?}, got {frames:?} for {input:?}",
            String::from_utf8_lossy(&lossy)
        );
    }
}

/// A consumer of `health/c` with RDY 1 and the round trip that proves it is served.
struct Health {
    consumer: Conn,
    producer: Conn,
    round: usize,
}

impl Health {
    fn new(broker: &Broker) -> Health {
        let mut consumer = broker.connect();
        consumer.subscribe("health", "c");
        consumer.rdy(1);
        Health {
            consumer,
            producer: broker.connect(),
            round: 0,
        }
    }

    fn check(&mut self) {
        self.round += 1;
        let body = format!("round {}", self.round);
        self.producer.publish("health", body.as_bytes());
        let msg = self.consumer.message();
        assert_eq!(msg.body.as_ref(), body.as_bytes());
        self.consumer.fin(&msg.id);
    }
}

#[test]
fn random_bytes_after_the_magic_never_hurt_the_broker() {
    const ITERATIONS: usize = 1000;
    let mut broker = Broker::start(2, &[]);
    let mut health = Health::new(&broker);
    let mut rng = SplitMix64::from_env(0x5eed_0001);
    for iteration in 0..ITERATIONS {
        let input = random_input(&mut rng);
        check_one(&broker, &input, iteration);
        if iteration % 50 == 0 {
            health.check();
            broker.assert_running();
        }
    }
    health.check();
    broker.assert_running();
}

/// Opens a connection, sends `bytes` and expects the fatal `text` without sending more or
/// closing: the broker must judge the prefix alone.
fn refused_at_once(broker: &Broker, bytes: &[u8], text: &str) -> Conn {
    let mut conn = broker.connect();
    conn.send_raw(bytes);
    conn.expect_fatal(text);
    conn
}

#[test]
fn huge_length_prefixes_are_refused_at_once_without_allocating() {
    let mut broker = Broker::start(1, &[]);
    let mut health = Health::new(&broker);
    health.check();
    let rss_before = broker.rss_kib();
    let cases: [(&[u8], &str); 7] = [
        (
            b"PUB t\n\x7f\xff\xff\xff",
            "E_BAD_MESSAGE PUB message too big 2147483647 > 1048576",
        ),
        (
            b"DPUB t 10\n\x7f\xff\xff\xff",
            "E_BAD_MESSAGE DPUB message too big 2147483647 > 1048576",
        ),
        (
            b"MPUB t\n\x7f\xff\xff\xff",
            "E_BAD_BODY MPUB body too big 2147483647 > 5242880",
        ),
        (
            b"IDENTIFY\n\x7f\xff\xff\xff",
            "E_BAD_BODY IDENTIFY body too big 2147483647 > 5242880",
        ),
        (
            b"AUTH\n\x7f\xff\xff\xff",
            "E_BAD_BODY AUTH body too big 2147483647 > 5242880",
        ),
        (
            b"PUB t\n\x80\0\0\0",
            "E_BAD_MESSAGE PUB invalid message body size -2147483648",
        ),
        // A legal body size, a count no body of that size could hold.
        (
            b"MPUB t\n\0\0\x01\0\x7f\xff\xff\xff",
            "E_BAD_BODY MPUB invalid message count 2147483647",
        ),
    ];
    for round in 0..20 {
        for (bytes, text) in cases {
            refused_at_once(&broker, bytes, text);
        }
        if round % 5 == 0 {
            health.check();
        }
    }
    health.check();
    broker.assert_running();
    let rss_after = broker.rss_kib();
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    assert!(broker.topic_stats("t").is_none(), "{}", broker.stats());
}

#[test]
fn a_huge_inner_mpub_size_is_refused_before_the_body_arrives() {
    // Upstream reads an MPUB message by message and refuses a too-big one as soon as its size
    // is read, without waiting for the rest of the announced body.
    let broker = Broker::start(1, &[]);
    let mut bytes = b"MPUB t\n".to_vec();
    bytes.extend_from_slice(&5_242_880u32.to_be_bytes());
    bytes.extend_from_slice(&1u32.to_be_bytes());
    bytes.extend_from_slice(&0x7fff_ffffu32.to_be_bytes());
    refused_at_once(
        &broker,
        &bytes,
        "E_BAD_MESSAGE MPUB message too big 2147483647 > 1048576",
    );
}

#[test]
fn bodies_announced_but_never_sent_do_not_bloat_the_broker() {
    const CONNECTIONS: usize = 40;
    let mut broker = Broker::start(1, &[]);
    let mut health = Health::new(&broker);
    health.check();
    let rss_before = broker.rss_kib();
    // Each announces the largest legal body and sends almost nothing of it.
    let mut stalled: Vec<Conn> = (0..CONNECTIONS)
        .map(|i| {
            let mut conn = broker.connect();
            let head: &[u8] = match i % 3 {
                0 => b"PUB t\n\0\x10\0\0",
                // Body size and count only: the first inner size is not there yet.
                1 => b"MPUB t\n\0\x50\0\0\0\0\0\x01",
                _ => b"IDENTIFY\n\0\x50\0\0",
            };
            conn.send_raw(head);
            if i % 3 != 1 {
                conn.send_raw(b"{\"a\"");
            }
            conn
        })
        .collect();
    health.check();
    let rss_during = broker.rss_kib();
    // 40 connections at 1 to 5 MiB each would be 130 MiB if the bodies were reserved and
    // touched up front.
    assert!(
        rss_during < rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_during} KiB with {CONNECTIONS} stalled bodies"
    );
    for conn in &mut stalled {
        assert!(matches!(
            conn.next_until(Instant::now() + Duration::from_millis(10)),
            Next::TimedOut
        ));
    }
    drop(stalled);
    health.check();
    broker.assert_running();
    assert!(broker.topic_stats("t").is_none(), "{}", broker.stats());
}

#[test]
fn an_endless_line_closes_the_connection() {
    let mut broker = Broker::start(1, &[]);
    let mut health = Health::new(&broker);
    let mut conn = broker.connect();
    // Upstream closes once its 16 KiB line buffer is full (no frame); Sluice may send an
    // E_INVALID first. Either way: closed, nothing else.
    let line = vec![b'A'; 64 * 1024];
    let _ = conn.try_send_raw(&line);
    match conn.next_until(Instant::now() + IO_TIMEOUT) {
        Next::Closed => {}
        Next::Frame(frame) => {
            let (code, _) = frame.error().unwrap_or_else(|| panic!("{frame:?}"));
            assert_eq!(code, Some(ErrorCode::Invalid), "{frame:?}");
            conn.expect_closed();
        }
        Next::TimedOut => panic!("an endless line kept the connection open"),
    }
    health.check();
    broker.assert_running();
}

/// Closes `conn` with a reset (SO_LINGER 0) when `reset`, else with a plain close.
fn hang_up(conn: Conn, reset: bool) {
    if reset {
        socket2::SockRef::from(conn.stream())
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    }
    drop(conn);
}

#[test]
fn commands_cut_short_by_a_disconnect_publish_nothing() {
    let mut broker = Broker::start(2, &[]);
    let mut health = Health::new(&broker);
    let mut mpub = b"MPUB cut\n\0\0\0\x1b\0\0\0\x03\0\0\0\x03one\0\0\0\x03two".to_vec();
    let partials: Vec<Vec<u8>> = vec![
        b"PUB cut\n\0\0\0\x10half a bo".to_vec(),
        b"PUB cut\n\0\0".to_vec(),
        b"PUB cut".to_vec(),
        std::mem::take(&mut mpub),
        b"DPUB cut 10\n\0\0\0\x05la".to_vec(),
        b"IDENTIFY\n\0\0\0\x40{\"client_id\":".to_vec(),
        b"SUB cut c".to_vec(),
    ];
    for round in 0..10 {
        for (i, partial) in partials.iter().enumerate() {
            let mut conn = broker.connect();
            conn.send_raw(partial);
            let reset = (round + i) % 2 == 0;
            if !reset {
                // Half-open first: the broker sees the end of input mid-command.
                conn.shutdown_write();
                conn.expect_closed();
            }
            hang_up(conn, reset);
        }
        health.check();
    }
    broker.assert_running();
    if let Some(stats) = broker.topic_stats("cut") {
        assert_eq!(stats["message_count"], 0, "{stats}");
    }
    broker.connect().publish("cut", b"whole");
    assert_eq!(broker.topic_stats("cut").unwrap()["message_count"], 1);
}

#[test]
fn consumers_that_vanish_with_messages_in_flight_lose_nothing() {
    let broker = Broker::start(2, &[]);
    let mut producer = broker.connect();
    let batch: Vec<Vec<u8>> = (0..9).map(|i| format!("m{i}").into_bytes()).collect();
    producer.mpublish("vanish", &batch);
    let mut taken = Vec::new();
    for how in 0..3 {
        let mut conn = broker.connect();
        conn.identify(serde_json::json!({"msg_timeout": 1000}));
        conn.subscribe("vanish", "c");
        conn.rdy(3);
        taken.extend(conn.messages(3).into_iter().map(|m| m.id));
        match how {
            // Half-closed: the broker reads the end and closes.
            0 => {
                conn.shutdown_write();
                conn.expect_closed();
            }
            1 => hang_up(conn, true),
            _ => hang_up(conn, false),
        }
    }
    let mut next = broker.connect();
    next.subscribe("vanish", "c");
    next.rdy(20);
    let again = next.receive_and_fin(9);
    let mut ids: Vec<_> = again.iter().map(|m| m.id).collect();
    ids.sort();
    taken.sort();
    assert_eq!(ids, taken);
    assert!(again.iter().all(|m| m.attempts == 2), "{again:?}");
    assert!(next.barrier().is_empty());
}

#[test]
fn connections_dropped_at_every_stage_leave_no_consumer_behind() {
    let mut broker = Broker::start(2, &[]);
    let mut rng = SplitMix64::from_env(0x5eed_0002);
    for i in 0..120 {
        let mut conn = Conn::connect_bare(broker.tcp);
        let stage = rng.below(5);
        if stage >= 1 {
            conn.send_raw(b"  V2");
        }
        if stage >= 2 {
            conn.send_raw(b"IDENTIFY\n\0\0\0\x02{}");
        }
        if stage >= 3 {
            conn.send_raw(format!("SUB drop{} c\n", i % 6).as_bytes());
        }
        if stage >= 4 {
            conn.send_raw(b"RDY 5\n");
        }
        hang_up(conn, rng.below(2) == 0);
    }
    broker.assert_running();
    for t in 0..6 {
        let topic = format!("drop{t}");
        if broker.topic_stats(&topic).is_some() {
            common::wait_until(&format!("no consumer left on {topic}/c"), || {
                broker
                    .channel_stats(&topic, "c")
                    .is_some_and(|c| c["client_count"] == 0)
            });
        }
    }
    let mut health = Health::new(&broker);
    health.check();
}
