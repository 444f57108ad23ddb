//! Registration database tests with a virtual clock: each test builds `Now` values at chosen
//! offsets from one base instant, so expiry and tombstone lifetimes are exact, not slept.

use super::*;

const VISIBILITY: Visibility = Visibility {
    inactive_producer_timeout: Duration::from_secs(300),
    tombstone_lifetime: Duration::from_secs(45),
};

struct Clock(Instant);

impl Clock {
    fn new() -> Clock {
        Clock(Instant::now())
    }

    fn at(&self, secs: u64) -> Now {
        Now {
            instant: self.0 + Duration::from_secs(secs),
            unix_nanos: 1_000_000_000_000 + secs as i64 * 1_000_000_000,
        }
    }
}

fn peer(n: u16) -> PeerInfo {
    PeerInfo {
        remote_address: format!("127.0.0.1:{}", 50000 + n),
        hostname: format!("host{n}"),
        broadcast_address: format!("host{n}"),
        tcp_port: 4150 + n,
        http_port: 4151 + n,
        version: "1.3.0".to_owned(),
    }
}

/// A database with broker 1 identified at t=0.
fn db_with_broker(clock: &Clock) -> RegistrationDb {
    let mut db = RegistrationDb::new();
    db.handle_identify(PeerId(1), peer(1), clock.at(0));
    db
}

fn producers(db: &RegistrationDb, topic: &str, now: Now) -> Vec<String> {
    db.lookup(topic, now, VISIBILITY)
        .map(|r| r.producers.into_iter().map(|p| p.hostname).collect())
        .unwrap_or_default()
}

#[test]
fn register_topic_and_channel_then_lookup() {
    let clock = Clock::new();
    let mut db = db_with_broker(&clock);
    assert!(db.lookup("t", clock.at(1), VISIBILITY).is_none());
    let added = db.handle_register(PeerId(1), "t", Some("c"));
    assert_eq!(added.len(), 2);
    assert!(db.handle_register(PeerId(1), "t", Some("c")).is_empty());
    let found = db.lookup("t", clock.at(1), VISIBILITY).unwrap();
    assert_eq!(found.channels, ["c"]);
    assert_eq!(found.producers, [peer(1)]);
    assert_eq!(db.topics(), ["t"]);
    assert_eq!(db.channels("t"), ["c"]);
}

#[test]
fn unregister_leaves_registrations_but_not_producers() {
    let clock = Clock::new();
    let mut db = db_with_broker(&clock);
    db.handle_register(PeerId(1), "t", Some("c"));
    assert_eq!(db.handle_unregister(PeerId(1), "t", Some("c")).len(), 1);
    assert_eq!(db.handle_unregister(PeerId(1), "t", None).len(), 1);
    let found = db.lookup("t", clock.at(1), VISIBILITY).unwrap();
    assert_eq!(found.channels, ["c"]);
    assert!(found.producers.is_empty());
}

#[test]
fn unregister_topic_drops_the_brokers_channels_too() {
    let clock = Clock::new();
    let mut db = db_with_broker(&clock);
    db.handle_register(PeerId(1), "t", Some("a"));
    db.handle_register(PeerId(1), "t", Some("b"));
    let removed = db.handle_unregister(PeerId(1), "t", None);
    assert_eq!(removed.len(), 3);
    assert!(!db.debug().keys().any(|k| k.starts_with("channel:")));
}

#[test]
fn disconnect_removes_every_registration_of_the_broker() {
    let clock = Clock::new();
    let mut db = db_with_broker(&clock);
    db.handle_identify(PeerId(2), peer(2), clock.at(0));
    db.handle_register(PeerId(1), "t", Some("c"));
    db.handle_register(PeerId(2), "t", None);
    assert_eq!(producers(&db, "t", clock.at(1)), ["host1", "host2"]);
    let left = db.handle_disconnect(PeerId(1));
    assert_eq!(left.len(), 3, "{left:?}");
    assert_eq!(producers(&db, "t", clock.at(1)), ["host2"]);
    assert_eq!(db.nodes(clock.at(1), VISIBILITY).producers.len(), 1);
    // The non-ephemeral channel stays registered, as upstream.
    assert_eq!(db.channels("t"), ["c"]);
}

#[test]
fn ephemeral_entries_go_with_their_last_producer() {
    let clock = Clock::new();
    let mut db = db_with_broker(&clock);
    db.handle_identify(PeerId(2), peer(2), clock.at(0));
    db.handle_register(PeerId(1), "t", Some("c#ephemeral"));
    db.handle_register(PeerId(2), "t", Some("c#ephemeral"));
    db.handle_unregister(PeerId(1), "t", Some("c#ephemeral"));
    assert_eq!(db.channels("t"), ["c#ephemeral"], "broker 2 still has it");
    db.handle_unregister(PeerId(2), "t", Some("c#ephemeral"));
    assert!(db.channels("t").is_empty());

    db.handle_register(PeerId(1), "e#ephemeral", Some("c"));
    db.handle_register(PeerId(1), "e#ephemeral", Some("d#ephemeral"));
    db.handle_disconnect(PeerId(1));
    assert_eq!(db.topics(), ["t"]);
    assert!(db.channels("e#ephemeral").is_empty());
}

#[test]
fn ephemeral_topic_unregister_removes_it() {
    let clock = Clock::new();
    let mut db = db_with_broker(&clock);
    db.handle_register(PeerId(1), "e#ephemeral", None);
    db.handle_unregister(PeerId(1), "e#ephemeral", None);
    assert!(db.lookup("e#ephemeral", clock.at(1), VISIBILITY).is_none());
}

#[test]
fn inactive_producers_are_hidden_until_they_ping() {
    let clock = Clock::new();
    let mut db = db_with_broker(&clock);
    db.handle_register(PeerId(1), "t", None);
    assert_eq!(
        producers(&db, "t", clock.at(300)),
        ["host1"],
        "at the limit"
    );
    assert!(producers(&db, "t", clock.at(301)).is_empty());
    assert!(db.nodes(clock.at(301), VISIBILITY).producers.is_empty());
    db.handle_ping(PeerId(1), clock.at(302));
    assert_eq!(producers(&db, "t", clock.at(303)), ["host1"]);
    // A ping from a connection that never identified changes nothing.
    db.handle_ping(PeerId(9), clock.at(303));
    assert_eq!(db.nodes(clock.at(303), VISIBILITY).producers.len(), 1);
}

#[test]
fn tombstone_hides_a_producer_of_one_topic_for_its_lifetime() {
    let clock = Clock::new();
    let mut db = db_with_broker(&clock);
    db.handle_register(PeerId(1), "t", None);
    db.handle_register(PeerId(1), "u", None);
    db.tombstone("t", "host1:1", clock.at(10));
    assert_eq!(producers(&db, "t", clock.at(10)), ["host1"], "wrong port");
    db.tombstone("t", "host1:4152", clock.at(10));
    assert!(producers(&db, "t", clock.at(10)).is_empty());
    assert!(producers(&db, "t", clock.at(54)).is_empty());
    assert_eq!(
        producers(&db, "t", clock.at(55)),
        ["host1"],
        "lifetime over"
    );
    assert_eq!(producers(&db, "u", clock.at(10)), ["host1"], "other topic");

    let nodes = db.nodes(clock.at(20), VISIBILITY);
    assert_eq!(nodes.producers[0].topics, ["t", "u"]);
    assert_eq!(nodes.producers[0].tombstones, [true, false]);
    let nodes = db.nodes(clock.at(60), VISIBILITY);
    assert_eq!(nodes.producers[0].tombstones, [false, false]);
    // /debug keeps the flag, as upstream does after the lifetime.
    let debug = db.debug();
    assert!(debug["topic:t:"][0].tombstoned);
    assert_eq!(debug["topic:t:"][0].tombstoned_at, clock.at(10).unix_nanos);
    assert_eq!(debug["topic:u:"][0].tombstoned_at, GO_ZERO_TIME_UNIX_NANOS);
}

#[test]
fn http_create_and_delete() {
    let clock = Clock::new();
    let mut db = db_with_broker(&clock);
    db.create_topic("a");
    let found = db.lookup("a", clock.at(0), VISIBILITY).unwrap();
    assert!(found.channels.is_empty() && found.producers.is_empty());
    db.create_channel("b", "c");
    assert_eq!(db.topics(), ["a", "b"]);
    assert!(db.delete_channel("b", "c"));
    assert!(!db.delete_channel("b", "c"));
    db.handle_register(PeerId(1), "a", Some("x"));
    db.delete_topic("a");
    assert_eq!(db.topics(), ["b"]);
    assert!(db.channels("a").is_empty());
    // The broker's later disconnect finds nothing left to remove there.
    assert_eq!(db.handle_disconnect(PeerId(1)).len(), 1);
}

#[test]
fn wildcards_match_as_upstream() {
    let clock = Clock::new();
    let mut db = db_with_broker(&clock);
    db.handle_register(PeerId(1), "a", Some("x"));
    db.handle_register(PeerId(1), "b", Some("y"));
    let all = db.lookup("*", clock.at(0), VISIBILITY).unwrap();
    assert_eq!(all.channels, ["x", "y"]);
    assert_eq!(all.producers.len(), 1, "each broker once");
    db.delete_topic("*");
    assert!(db.topics().is_empty());
}

#[test]
fn debug_lists_registrations_with_producers_in_key_order() {
    let clock = Clock::new();
    let mut db = db_with_broker(&clock);
    db.create_topic("empty");
    db.handle_register(PeerId(1), "t", Some("c"));
    let keys: Vec<String> = db.debug().into_keys().collect();
    assert_eq!(keys, ["channel:t:c", "client::", "topic:t:"]);
    let entry = &db.debug()["client::"][0];
    assert_eq!(entry.id, "127.0.0.1:50001");
    assert_eq!(entry.last_update, clock.at(0).unix_nanos);
}
