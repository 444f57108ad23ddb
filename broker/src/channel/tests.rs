//! Deterministic tests of the channel state machine, one behaviour each. The clock is an
//! `Instant` the test moves by hand; nothing sleeps. Expected values come from upstream nsqd
//! v1.3.0 behaviour (`channel.go`, `protocol_v2.go`, `client_v2.go`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_proto::{Message, MessageId};

use super::*;

const SEC: Duration = Duration::from_secs(1);

fn options() -> ChannelOptions {
    ChannelOptions {
        mem_queue_size: 100,
        max_msg_timeout: 15 * 60 * SEC,
        max_channel_consumers: 0,
        ephemeral: false,
        e2e: None,
    }
}

fn channel() -> Channel {
    Channel::new("test", options())
}

fn msg(n: u64) -> Message {
    Message {
        id: MessageId::from_u64(n),
        timestamp: 1_000_000_000 * n as i64,
        attempts: 0,
        body: Bytes::from(format!("body {n}")),
    }
}

fn id(n: u64) -> MessageId {
    MessageId::from_u64(n)
}

fn settings(timeout_secs: u32) -> ConsumerSettings {
    ConsumerSettings {
        msg_timeout: timeout_secs * SEC,
        sample_rate: 0,
    }
}

/// A channel with one consumer `C1` (60 s timeout) at RDY `rdy`.
fn with_consumer(rdy: u64) -> Channel {
    let mut ch = channel();
    ch.add_consumer(C1, settings(60)).unwrap();
    ch.handle_rdy(C1, rdy);
    ch
}

const C1: ConsumerId = ConsumerId(1);
const C2: ConsumerId = ConsumerId(2);
const C3: ConsumerId = ConsumerId(3);

/// Delivers up to `max` and returns (consumer, id number, attempts) in order.
fn deliver(ch: &mut Channel, now: Instant, max: usize) -> Vec<(ConsumerId, u64, u16)> {
    let mut out = Vec::new();
    let n = ch.poll_deliveries(now, max, &mut |c, m| {
        out.push((c, m.id.to_u64().unwrap(), m.attempts))
    });
    assert_eq!(n, out.len());
    out
}

fn put_all(ch: &mut Channel, range: std::ops::RangeInclusive<u64>) {
    for n in range {
        ch.handle_put(msg(n));
    }
}

#[test]
fn first_delivery_has_attempts_one_and_goes_in_flight() {
    let mut ch = with_consumer(10);
    let now = Instant::now();
    put_all(&mut ch, 1..=3);
    assert!(ch.wants_delivery());
    assert_eq!(
        deliver(&mut ch, now, 100),
        vec![(C1, 1, 1), (C1, 2, 1), (C1, 3, 1)]
    );
    assert_eq!((ch.depth(), ch.in_flight_count()), (0, 3));
    assert!(!ch.wants_delivery());
    let stats = ch.consumer_stats(C1).unwrap();
    assert_eq!((stats.in_flight_count, stats.message_count), (3, 3));
}

#[test]
fn delivered_message_keeps_timestamp_and_body() {
    let mut ch = with_consumer(1);
    ch.handle_put(msg(7));
    let mut got = None;
    ch.poll_deliveries(Instant::now(), 10, &mut |_, m| got = Some(m.clone()));
    let got = got.unwrap();
    assert_eq!((got.timestamp, got.body), (msg(7).timestamp, msg(7).body));
}

#[test]
fn rdy_limits_messages_in_flight() {
    let mut ch = with_consumer(2);
    let now = Instant::now();
    put_all(&mut ch, 1..=5);
    assert_eq!(deliver(&mut ch, now, 100).len(), 2);
    assert!(!ch.wants_delivery());
    ch.handle_fin(0, C1, &id(1)).unwrap();
    assert_eq!(deliver(&mut ch, now, 100), vec![(C1, 3, 1)]);
    ch.handle_rdy(C1, 4);
    assert_eq!(deliver(&mut ch, now, 100).len(), 2);
    assert_eq!(ch.depth(), 0);
}

#[test]
fn rdy_zero_stops_delivery() {
    let mut ch = with_consumer(5);
    ch.handle_rdy(C1, 0);
    put_all(&mut ch, 1..=3);
    assert!(!ch.wants_delivery());
    assert!(deliver(&mut ch, Instant::now(), 100).is_empty());
    assert_eq!(ch.depth(), 3);
}

#[test]
fn lowering_rdy_below_in_flight_stops_until_fins_catch_up() {
    let mut ch = with_consumer(3);
    let now = Instant::now();
    put_all(&mut ch, 1..=6);
    assert_eq!(deliver(&mut ch, now, 100).len(), 3);
    ch.handle_rdy(C1, 1);
    ch.handle_fin(0, C1, &id(1)).unwrap();
    assert!(deliver(&mut ch, now, 100).is_empty(), "2 in flight, RDY 1");
    ch.handle_fin(0, C1, &id(2)).unwrap();
    ch.handle_fin(0, C1, &id(3)).unwrap();
    assert_eq!(deliver(&mut ch, now, 100), vec![(C1, 4, 1)]);
}

#[test]
fn poll_deliveries_takes_at_most_max() {
    let mut ch = with_consumer(100);
    let now = Instant::now();
    put_all(&mut ch, 1..=10);
    assert_eq!(deliver(&mut ch, now, 4).len(), 4);
    assert!(ch.wants_delivery());
    assert_eq!(deliver(&mut ch, now, 4).len(), 4);
    assert_eq!(deliver(&mut ch, now, 4).len(), 2);
    assert!(!ch.wants_delivery());
}

#[test]
fn deliveries_are_round_robin_across_three_consumers() {
    let mut ch = channel();
    for c in [C1, C2, C3] {
        ch.add_consumer(c, settings(60)).unwrap();
        ch.handle_rdy(c, 100);
    }
    put_all(&mut ch, 1..=30);
    let got = deliver(&mut ch, Instant::now(), 100);
    let mut per: HashMap<ConsumerId, usize> = HashMap::new();
    for (c, _, _) in &got {
        *per.entry(*c).or_default() += 1;
    }
    assert_eq!(per, HashMap::from([(C1, 10), (C2, 10), (C3, 10)]));
    // Strictly alternating, not in blocks.
    let order: Vec<ConsumerId> = got.iter().take(6).map(|(c, _, _)| *c).collect();
    assert_eq!(order, vec![C1, C2, C3, C1, C2, C3]);
}

#[test]
fn a_consumer_without_room_is_skipped_and_rejoins_after_fin() {
    let mut ch = channel();
    ch.add_consumer(C1, settings(60)).unwrap();
    ch.add_consumer(C2, settings(60)).unwrap();
    ch.handle_rdy(C1, 1);
    ch.handle_rdy(C2, 10);
    let now = Instant::now();
    put_all(&mut ch, 1..=5);
    let got = deliver(&mut ch, now, 3);
    assert_eq!(got, vec![(C1, 1, 1), (C2, 2, 1), (C2, 3, 1)]);
    ch.handle_fin(0, C1, &id(1)).unwrap();
    let got = deliver(&mut ch, now, 2);
    assert_eq!(got.iter().filter(|(c, _, _)| *c == C1).count(), 1);
}

#[test]
fn timeout_requeues_at_the_back_and_counts() {
    let mut ch = with_consumer(1);
    let t0 = Instant::now();
    put_all(&mut ch, 1..=2);
    assert_eq!(deliver(&mut ch, t0, 10), vec![(C1, 1, 1)]);
    assert_eq!(ch.next_deadline(), Some(t0 + 60 * SEC));
    // Not yet.
    assert_eq!(ch.poll_timeouts(t0 + 59 * SEC), Some(t0 + 60 * SEC));
    assert_eq!(ch.in_flight_count(), 1);
    // At the deadline exactly (upstream pops when pri <= now).
    assert_eq!(ch.poll_timeouts(t0 + 60 * SEC), None);
    let stats = ch.stats(0);
    assert_eq!(
        (stats.timeout_count, stats.in_flight_count, stats.depth),
        (1, 0, 2)
    );
    assert_eq!(ch.consumer_stats(C1).unwrap().in_flight_count, 0);
    // Message 2 was ahead; the timed-out 1 went to the back, with attempts kept.
    let t1 = t0 + 60 * SEC;
    assert_eq!(deliver(&mut ch, t1, 10), vec![(C1, 2, 1)]);
    ch.handle_fin(0, C1, &id(2)).unwrap();
    assert_eq!(deliver(&mut ch, t1, 10), vec![(C1, 1, 2)]);
}

#[test]
fn fin_after_timeout_is_not_in_flight() {
    let mut ch = with_consumer(1);
    let t0 = Instant::now();
    ch.handle_put(msg(1));
    deliver(&mut ch, t0, 10);
    ch.poll_timeouts(t0 + 60 * SEC);
    assert_eq!(ch.handle_fin(0, C1, &id(1)), Err(ChannelError::NotInFlight));
}

#[test]
fn fin_of_unknown_id_is_not_in_flight() {
    let mut ch = with_consumer(1);
    assert_eq!(ch.handle_fin(0, C1, &id(9)), Err(ChannelError::NotInFlight));
    assert_eq!(
        ch.handle_req(Instant::now(), C1, &id(9), Duration::ZERO),
        Err(ChannelError::NotInFlight)
    );
    assert_eq!(
        ch.handle_touch(Instant::now(), C1, &id(9)),
        Err(ChannelError::NotInFlight)
    );
}

#[test]
fn fin_req_touch_by_another_consumer_is_not_owner() {
    let mut ch = with_consumer(1);
    ch.add_consumer(C2, settings(60)).unwrap();
    let now = Instant::now();
    ch.handle_put(msg(1));
    deliver(&mut ch, now, 10);
    assert_eq!(ch.handle_fin(0, C2, &id(1)), Err(ChannelError::NotOwner));
    assert_eq!(
        ch.handle_req(now, C2, &id(1), Duration::ZERO),
        Err(ChannelError::NotOwner)
    );
    assert_eq!(
        ch.handle_touch(now, C2, &id(1)),
        Err(ChannelError::NotOwner)
    );
    // The owner still can.
    ch.handle_fin(0, C1, &id(1)).unwrap();
}

#[test]
fn error_texts_are_upstreams() {
    assert_eq!(ChannelError::NotInFlight.to_string(), "ID not in flight");
    assert_eq!(
        ChannelError::NotOwner.to_string(),
        "client does not own message"
    );
    assert_eq!(
        ChannelError::TooManyConsumers { limit: 2 }.to_string(),
        "exceeds limit of 2"
    );
}

#[test]
fn fin_counts_and_frees_room() {
    let mut ch = with_consumer(1);
    let now = Instant::now();
    put_all(&mut ch, 1..=2);
    deliver(&mut ch, now, 10);
    ch.handle_fin(0, C1, &id(1)).unwrap();
    let stats = ch.consumer_stats(C1).unwrap();
    assert_eq!((stats.finish_count, stats.in_flight_count), (1, 0));
    assert_eq!(ch.in_flight_count(), 0);
    assert!(ch.wants_delivery());
    // A second FIN of the same id fails.
    assert_eq!(ch.handle_fin(0, C1, &id(1)), Err(ChannelError::NotInFlight));
}

#[test]
fn req_zero_requeues_at_once_and_keeps_attempts() {
    let mut ch = with_consumer(1);
    let now = Instant::now();
    ch.handle_put(msg(1));
    deliver(&mut ch, now, 10);
    ch.handle_req(now, C1, &id(1), Duration::ZERO).unwrap();
    assert_eq!((ch.depth(), ch.in_flight_count()), (1, 0));
    assert_eq!(ch.stats(0).requeue_count, 1);
    assert_eq!(ch.consumer_stats(C1).unwrap().requeue_count, 1);
    assert_eq!(deliver(&mut ch, now, 10), vec![(C1, 1, 2)]);
    ch.handle_req(now, C1, &id(1), Duration::ZERO).unwrap();
    assert_eq!(deliver(&mut ch, now, 10), vec![(C1, 1, 3)]);
}

#[test]
fn req_with_delay_defers_until_due() {
    let mut ch = with_consumer(1);
    let t0 = Instant::now();
    ch.handle_put(msg(1));
    deliver(&mut ch, t0, 10);
    ch.handle_req(t0, C1, &id(1), 5 * SEC).unwrap();
    assert_eq!(
        (ch.depth(), ch.deferred_count(), ch.in_flight_count()),
        (0, 1, 0)
    );
    assert_eq!(ch.next_deadline(), Some(t0 + 5 * SEC));
    assert_eq!(ch.poll_timeouts(t0 + 4 * SEC), Some(t0 + 5 * SEC));
    assert_eq!(ch.depth(), 0);
    assert_eq!(ch.poll_timeouts(t0 + 5 * SEC), None);
    assert_eq!((ch.depth(), ch.deferred_count()), (1, 0));
    assert_eq!(
        ch.stats(0).timeout_count,
        0,
        "a deferred requeue is not a timeout"
    );
    assert_eq!(deliver(&mut ch, t0 + 5 * SEC, 10), vec![(C1, 1, 2)]);
}

#[test]
fn dpub_is_ready_only_when_due() {
    let mut ch = with_consumer(5);
    let t0 = Instant::now();
    ch.handle_put_deferred(t0, msg(1), 10 * SEC);
    ch.handle_put_deferred(t0, msg(2), 2 * SEC);
    assert_eq!(ch.stats(0).message_count, 2);
    assert!(deliver(&mut ch, t0, 10).is_empty());
    assert_eq!(ch.poll_timeouts(t0 + 2 * SEC), Some(t0 + 10 * SEC));
    assert_eq!(deliver(&mut ch, t0 + 2 * SEC, 10), vec![(C1, 2, 1)]);
    ch.poll_timeouts(t0 + 10 * SEC);
    assert_eq!(deliver(&mut ch, t0 + 10 * SEC, 10), vec![(C1, 1, 1)]);
}

#[test]
fn touch_extends_the_deadline_by_the_consumer_timeout() {
    let mut ch = with_consumer(1);
    let t0 = Instant::now();
    ch.handle_put(msg(1));
    deliver(&mut ch, t0, 10);
    ch.handle_touch(t0 + 50 * SEC, C1, &id(1)).unwrap();
    assert_eq!(ch.poll_timeouts(t0 + 60 * SEC), Some(t0 + 110 * SEC));
    assert_eq!(ch.in_flight_count(), 1);
    ch.poll_timeouts(t0 + 110 * SEC);
    assert_eq!((ch.in_flight_count(), ch.stats(0).timeout_count), (0, 1));
}

#[test]
fn touch_caps_at_max_msg_timeout() {
    let mut ch = Channel::new(
        "capped",
        ChannelOptions {
            max_msg_timeout: 100 * SEC,
            ..options()
        },
    );
    ch.add_consumer(C1, settings(60)).unwrap();
    ch.handle_rdy(C1, 1);
    let t0 = Instant::now();
    ch.handle_put(msg(1));
    deliver(&mut ch, t0, 10);
    ch.handle_touch(t0 + 50 * SEC, C1, &id(1)).unwrap();
    // 50 + 60 = 110 > 0 + 100: capped at delivery + max_msg_timeout.
    assert_eq!(ch.next_deadline(), Some(t0 + 100 * SEC));
    ch.handle_touch(t0 + 90 * SEC, C1, &id(1)).unwrap();
    assert_eq!(ch.poll_timeouts(t0 + 99 * SEC), Some(t0 + 100 * SEC));
    assert_eq!(ch.poll_timeouts(t0 + 100 * SEC), None);
    assert_eq!(ch.stats(0).timeout_count, 1);
}

#[test]
fn consumer_timeout_is_capped_at_max_msg_timeout() {
    let mut ch = Channel::new(
        "capped",
        ChannelOptions {
            max_msg_timeout: 10 * SEC,
            ..options()
        },
    );
    ch.add_consumer(C1, settings(60)).unwrap();
    ch.handle_rdy(C1, 1);
    let t0 = Instant::now();
    ch.handle_put(msg(1));
    deliver(&mut ch, t0, 10);
    assert_eq!(ch.next_deadline(), Some(t0 + 10 * SEC));
}

#[test]
fn timeouts_of_consumers_with_different_timeouts_come_in_deadline_order() {
    let mut ch = channel();
    ch.add_consumer(C1, settings(30)).unwrap();
    ch.add_consumer(C2, settings(10)).unwrap();
    ch.handle_rdy(C1, 1);
    ch.handle_rdy(C2, 1);
    let t0 = Instant::now();
    put_all(&mut ch, 1..=2);
    assert_eq!(deliver(&mut ch, t0, 10), vec![(C1, 1, 1), (C2, 2, 1)]);
    assert_eq!(ch.next_deadline(), Some(t0 + 10 * SEC));
    assert_eq!(ch.poll_timeouts(t0 + 10 * SEC), Some(t0 + 30 * SEC));
    assert_eq!(ch.consumer_stats(C2).unwrap().in_flight_count, 0);
    assert_eq!(ch.consumer_stats(C1).unwrap().in_flight_count, 1);
    assert_eq!(ch.poll_timeouts(t0 + 30 * SEC), None);
}

#[test]
fn next_deadline_is_the_earlier_of_in_flight_and_deferred() {
    let mut ch = with_consumer(1);
    let t0 = Instant::now();
    ch.handle_put(msg(1));
    deliver(&mut ch, t0, 10);
    ch.handle_put_deferred(t0, msg(2), 5 * SEC);
    assert_eq!(ch.next_deadline(), Some(t0 + 5 * SEC));
    ch.handle_fin(0, C1, &id(1)).unwrap();
    assert_eq!(ch.poll_timeouts(t0), Some(t0 + 5 * SEC));
}

#[test]
fn finished_messages_leave_no_deadline_behind() {
    let mut ch = with_consumer(1);
    let t0 = Instant::now();
    ch.handle_put(msg(1));
    deliver(&mut ch, t0, 10);
    ch.handle_fin(0, C1, &id(1)).unwrap();
    assert_eq!(ch.poll_timeouts(t0), None);
    assert_eq!(ch.next_deadline(), None);
}

#[test]
fn stale_deadline_records_stay_bounded() {
    let mut ch = with_consumer(10);
    let t0 = Instant::now();
    for round in 0..1_000u64 {
        let now = t0 + Duration::from_millis(round);
        put_all(&mut ch, round * 10 + 1..=round * 10 + 10);
        let got = deliver(&mut ch, now, 100);
        // Keep the first message of each round in flight for a while (out-of-order FINs),
        // and TOUCH some so records go stale in the middle.
        for (_, n, _) in got {
            if n % 10 == 1 && round % 7 != 0 {
                ch.handle_touch(now, C1, &id(n)).unwrap();
            }
            if n % 10 != 1 || round % 3 == 0 {
                ch.handle_fin(0, C1, &id(n)).unwrap();
            }
        }
        ch.handle_rdy(C1, ch.in_flight_count() + 10);
        assert!(
            ch.in_flight.record_count() <= 2 * ch.in_flight_count() as usize + 2 * 64 + 16,
            "records {} for {} in flight",
            ch.in_flight.record_count(),
            ch.in_flight_count()
        );
    }
}

#[test]
fn pause_stops_delivery_and_unpause_resumes() {
    let mut ch = with_consumer(10);
    let now = Instant::now();
    ch.pause();
    assert!(ch.is_paused());
    put_all(&mut ch, 1..=2);
    assert!(!ch.wants_delivery());
    assert!(deliver(&mut ch, now, 10).is_empty());
    assert!(ch.stats(0).paused);
    ch.unpause();
    assert!(ch.wants_delivery());
    assert_eq!(deliver(&mut ch, now, 10).len(), 2);
}

#[test]
fn pause_keeps_fin_req_touch_and_timeouts_working() {
    let mut ch = with_consumer(10);
    let t0 = Instant::now();
    put_all(&mut ch, 1..=3);
    deliver(&mut ch, t0, 10);
    ch.pause();
    ch.handle_fin(0, C1, &id(1)).unwrap();
    ch.handle_req(t0, C1, &id(2), Duration::ZERO).unwrap();
    ch.handle_touch(t0, C1, &id(3)).unwrap();
    ch.poll_timeouts(t0 + 60 * SEC);
    assert_eq!((ch.depth(), ch.in_flight_count()), (2, 0));
    assert!(deliver(&mut ch, t0 + 60 * SEC, 10).is_empty());
}

#[test]
fn empty_drops_ready_in_flight_and_deferred() {
    let mut ch = with_consumer(2);
    let now = Instant::now();
    put_all(&mut ch, 1..=5);
    deliver(&mut ch, now, 10);
    ch.handle_put_deferred(now, msg(6), SEC);
    ch.empty();
    assert_eq!(
        (ch.depth(), ch.in_flight_count(), ch.deferred_count()),
        (0, 0, 0)
    );
    assert_eq!(ch.next_deadline(), None);
    let stats = ch.consumer_stats(C1).unwrap();
    assert_eq!((stats.in_flight_count, stats.ready_count), (0, 2));
    assert_eq!(ch.handle_fin(0, C1, &id(1)), Err(ChannelError::NotInFlight));
    assert_eq!(ch.stats(0).message_count, 6, "counters are kept");
    // The consumer has room again.
    put_all(&mut ch, 7..=9);
    assert_eq!(deliver(&mut ch, now, 10).len(), 2);
}

#[test]
fn close_stops_delivery_but_fin_still_works() {
    let mut ch = with_consumer(5);
    let now = Instant::now();
    put_all(&mut ch, 1..=3);
    assert_eq!(deliver(&mut ch, now, 1).len(), 1);
    ch.handle_close(C1);
    assert_eq!(ch.consumer_stats(C1).unwrap().ready_count, 0);
    assert!(!ch.wants_delivery());
    ch.handle_rdy(C1, 5);
    assert_eq!(ch.consumer_stats(C1).unwrap().ready_count, 0, "RDY ignored");
    assert!(deliver(&mut ch, now, 10).is_empty());
    ch.handle_touch(now, C1, &id(1)).unwrap();
    ch.handle_fin(0, C1, &id(1)).unwrap();
}

#[test]
fn removed_consumer_messages_stay_in_flight_until_timeout() {
    let mut ch = with_consumer(2);
    ch.add_consumer(C2, settings(60)).unwrap();
    let t0 = Instant::now();
    put_all(&mut ch, 1..=2);
    deliver(&mut ch, t0, 10);
    ch.remove_consumer(C1);
    assert_eq!(ch.consumer_count(), 1);
    assert_eq!(
        ch.in_flight_count(),
        2,
        "upstream does not requeue on disconnect"
    );
    assert_eq!(ch.handle_fin(0, C2, &id(1)), Err(ChannelError::NotOwner));
    ch.handle_rdy(C2, 10);
    assert!(deliver(&mut ch, t0, 10).is_empty());
    ch.poll_timeouts(t0 + 60 * SEC);
    assert_eq!(ch.stats(0).timeout_count, 2);
    assert_eq!(
        deliver(&mut ch, t0 + 60 * SEC, 10),
        vec![(C2, 1, 2), (C2, 2, 2)]
    );
}

#[test]
fn removed_consumer_receives_nothing() {
    let mut ch = with_consumer(5);
    ch.remove_consumer(C1);
    put_all(&mut ch, 1..=2);
    assert!(!ch.wants_delivery());
    assert!(deliver(&mut ch, Instant::now(), 10).is_empty());
    assert_eq!(ch.consumer_stats(C1), None);
}

#[test]
fn max_channel_consumers_refuses_the_next_one() {
    let mut ch = Channel::new(
        "limited",
        ChannelOptions {
            max_channel_consumers: 2,
            ..options()
        },
    );
    ch.add_consumer(C1, settings(60)).unwrap();
    ch.add_consumer(C2, settings(60)).unwrap();
    assert_eq!(
        ch.add_consumer(C3, settings(60)),
        Err(ChannelError::TooManyConsumers { limit: 2 })
    );
    // Re-adding a present consumer is a no-op, as upstream's AddClient.
    ch.add_consumer(C1, settings(60)).unwrap();
    ch.remove_consumer(C1);
    ch.add_consumer(C3, settings(60)).unwrap();
    assert_eq!(ch.consumer_count(), 2);
}

#[test]
fn sample_rate_consumes_without_delivering_the_rest() {
    let total = 5_000u64;
    let mut ch = Channel::new(
        "sampled",
        ChannelOptions {
            mem_queue_size: total as usize,
            ..options()
        },
    );
    ch.add_consumer(
        C1,
        ConsumerSettings {
            msg_timeout: 60 * SEC,
            sample_rate: 30,
        },
    )
    .unwrap();
    ch.handle_rdy(C1, 10_000);
    put_all(&mut ch, 1..=total);
    let mut delivered = 0;
    while ch.wants_delivery() {
        delivered += deliver(&mut ch, Instant::now(), 1_000).len() as u64;
    }
    let stats = ch.stats(0);
    assert_eq!(stats.depth, 0, "sampled-out messages are consumed");
    assert_eq!(delivered + stats.dropped_count, total);
    // Upstream keeps a message when rand(100) <= rate: 31% for rate 30.
    let kept = delivered as f64 / total as f64;
    assert!((0.27..0.35).contains(&kept), "kept {kept}");
}

#[test]
fn ephemeral_channel_drops_past_mem_queue_size() {
    let mut ch = Channel::new(
        "e#ephemeral",
        ChannelOptions {
            mem_queue_size: 3,
            ephemeral: true,
            ..options()
        },
    );
    assert!(ch.has_room(3));
    assert!(!ch.has_room(4));
    put_all(&mut ch, 1..=5);
    let stats = ch.stats(0);
    assert_eq!(
        (stats.depth, stats.dropped_count, stats.message_count),
        (3, 2, 5)
    );
}

#[test]
fn durable_channel_never_drops_a_requeue() {
    let mut ch = Channel::new(
        "durable",
        ChannelOptions {
            mem_queue_size: 2,
            ..options()
        },
    );
    ch.add_consumer(C1, settings(60)).unwrap();
    ch.handle_rdy(C1, 2);
    let t0 = Instant::now();
    put_all(&mut ch, 1..=2);
    deliver(&mut ch, t0, 10);
    put_all(&mut ch, 3..=4);
    assert!(!ch.has_room(1));
    ch.handle_req(t0, C1, &id(1), Duration::ZERO).unwrap();
    ch.poll_timeouts(t0 + 60 * SEC);
    assert_eq!((ch.depth(), ch.stats(0).dropped_count), (4, 0));
}

#[test]
fn fin_records_end_to_end_latency() {
    let mut ch = Channel::new(
        "latency",
        ChannelOptions {
            e2e: Some(E2eConfig {
                percentiles: vec![0.5, 1.0],
                window: 600 * SEC,
            }),
            ..options()
        },
    );
    ch.add_consumer(C1, settings(60)).unwrap();
    ch.handle_rdy(C1, 10);
    let now = Instant::now();
    // Message n was published at n seconds; FIN at 20 s: latencies 19..=10 s.
    put_all(&mut ch, 1..=10);
    deliver(&mut ch, now, 10);
    let fin_ns = 20_000_000_000;
    for n in 1..=10 {
        ch.handle_fin(fin_ns, C1, &id(n)).unwrap();
    }
    let latency = ch.stats(fin_ns).e2e_processing_latency;
    assert_eq!(latency.count, 10);
    let percentiles = latency.percentiles.unwrap();
    let max = percentiles[1].value;
    assert!(
        (19_000_000_000..=19_200_000_000).contains(&max),
        "max {max}"
    );
    assert!(ch.e2e().is_some());
}

#[test]
fn untracked_latency_reports_null_percentiles() {
    assert_eq!(
        channel().stats(0).e2e_processing_latency,
        E2eProcessingLatency::untracked()
    );
}

#[test]
fn stats_list_consumers_by_id() {
    let mut ch = channel();
    ch.add_consumer(C2, settings(60)).unwrap();
    ch.add_consumer(C1, settings(60)).unwrap();
    ch.handle_rdy(C2, 7);
    let stats = ch.stats(0);
    assert_eq!(stats.client_count, 2);
    let ids: Vec<ConsumerId> = stats.clients.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, vec![C1, C2]);
    assert_eq!(stats.clients[1].1.ready_count, 7);
}

#[test]
fn duplicate_id_is_not_delivered_twice() {
    let mut ch = with_consumer(5);
    let now = Instant::now();
    ch.handle_put(msg(1));
    ch.handle_put(msg(1));
    assert_eq!(deliver(&mut ch, now, 10), vec![(C1, 1, 1)]);
    assert_eq!((ch.in_flight_count(), ch.stats(0).dropped_count), (1, 1));
}
