//! The registration database: which brokers (producers) have which topics and channels.
//!
//! Mirrors upstream `nsqlookupd/registration_db.go` and the parts of `lookup_protocol_v1.go` and
//! `http.go` that change or read it. Pure: no IO, no clock, no lock. Every time is an argument
//! ([`Now`]), read once by the caller, so expiry and tombstones are tested without sleeping.
//!
//! As upstream, a registration is `(category, key, subkey)`: `("client", "", "")` holds every
//! identified broker, `("topic", T, "")` the brokers that have topic T, `("channel", T, C)` those
//! that have channel C of T. A registration may exist with no producer (created over HTTP, or
//! left behind by UNREGISTER); `*` as a key or subkey in a query matches any value.
//!
//! Where we differ on purpose: upstream removes an `#ephemeral` registration only when its last
//! producer UNREGISTERs it; here it also goes when its last producer disconnects, and an
//! ephemeral topic takes its producer-less channels with it, so nothing ephemeral outlives
//! every broker that had it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sluice_proto::http_json::{LookupResponse, Node, NodesResponse};
use sluice_proto::lookup::PeerInfo;
use sluice_proto::names::is_ephemeral;

/// What Go's zero `time.Time` gives for `UnixNano()`: upstream's `/debug` shows it as
/// `tombstoned_at` of a producer never tombstoned.
pub const GO_ZERO_TIME_UNIX_NANOS: i64 = -6_795_364_578_871_345_152;

/// One reading of the clocks, taken by the caller: monotonic for expiry, wall for display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// For comparisons (inactivity, tombstone lifetime).
    pub instant: Instant,
    /// Unix time in nanoseconds, for `/debug`.
    pub unix_nanos: i64,
}

/// Identifies one broker connection for as long as it lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub u64);

/// The kind of a registration. Declared in the order of upstream's category strings, so
/// sorted registrations list as upstream's sorted `/debug` keys do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// `channel`: key is the topic, subkey the channel.
    Channel,
    /// `client`: every identified broker; key and subkey empty.
    Client,
    /// `topic`: key is the topic, subkey empty.
    Topic,
}

impl Category {
    /// Upstream's name for it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Category::Channel => "channel",
            Category::Client => "client",
            Category::Topic => "topic",
        }
    }
}

/// Upstream's `Registration`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Registration {
    /// What is registered.
    pub category: Category,
    /// The topic (empty for clients).
    pub key: String,
    /// The channel (empty for topics and clients).
    pub subkey: String,
}

impl Registration {
    fn new(category: Category, key: &str, subkey: &str) -> Registration {
        Registration {
            category,
            key: key.to_owned(),
            subkey: subkey.to_owned(),
        }
    }

    /// Upstream's `IsMatch`: `*` matches any key or subkey.
    fn matches(&self, category: Category, key: &str, subkey: &str) -> bool {
        self.category == category
            && (key == "*" || self.key == key)
            && (subkey == "*" || self.subkey == subkey)
    }

    fn is_ephemeral(&self) -> bool {
        match self.category {
            Category::Channel => is_ephemeral(&self.subkey),
            Category::Topic => is_ephemeral(&self.key),
            Category::Client => false,
        }
    }
}

/// One broker's entry in one registration; the tombstone is per registration, as upstream.
#[derive(Debug, Clone, Default)]
struct Producer {
    tombstoned_at: Option<Now>,
}

impl Producer {
    /// Upstream's `IsTombstoned`: tombstoned less than `lifetime` ago.
    fn is_tombstoned(&self, now: Now, lifetime: Duration) -> bool {
        self.tombstoned_at
            .is_some_and(|at| now.instant.saturating_duration_since(at.instant) < lifetime)
    }
}

/// An identified broker: what it said at IDENTIFY and when it was last heard from.
#[derive(Debug, Clone)]
struct Peer {
    info: PeerInfo,
    last_update: Now,
}

/// One producer of one registration as `/debug` shows it (upstream's map, keys sorted).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DebugProducer {
    /// The broker's broadcast address.
    pub broadcast_address: String,
    /// The broker's host name.
    pub hostname: String,
    /// The broker's HTTP port.
    pub http_port: u16,
    /// The connection's remote address (upstream's producer id).
    pub id: String,
    /// Last IDENTIFY or PING, Unix nanoseconds.
    pub last_update: i64,
    /// The broker's TCP port.
    pub tcp_port: u16,
    /// Whether it was ever tombstoned in this registration.
    pub tombstoned: bool,
    /// When, Unix nanoseconds ([`GO_ZERO_TIME_UNIX_NANOS`] if never).
    pub tombstoned_at: i64,
    /// The broker's version.
    pub version: String,
}

/// How long producers stay visible: the two lookupd options that filter them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visibility {
    /// `--inactive-producer-timeout`: hidden after this long without IDENTIFY or PING.
    pub inactive_producer_timeout: Duration,
    /// `--tombstone-lifetime`: hidden from `/lookup` this long after a tombstone.
    pub tombstone_lifetime: Duration,
}

/// The registration database.
#[derive(Debug, Default)]
pub struct RegistrationDb {
    registrations: BTreeMap<Registration, BTreeMap<PeerId, Producer>>,
    peers: BTreeMap<PeerId, Peer>,
}

impl RegistrationDb {
    /// An empty database.
    pub fn new() -> RegistrationDb {
        RegistrationDb::default()
    }

    // --- the TCP side ------------------------------------------------------------------------

    /// A broker identified itself: it joins the `client` registration.
    pub fn handle_identify(&mut self, id: PeerId, info: PeerInfo, now: Now) {
        self.peers.insert(
            id,
            Peer {
                info,
                last_update: now,
            },
        );
        self.add_producer(Registration::new(Category::Client, "", ""), id);
    }

    /// A broker pinged: it stays active. Unknown (unidentified) peers are ignored, as upstream.
    pub fn handle_ping(&mut self, id: PeerId, now: Now) {
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.last_update = now;
        }
    }

    /// `REGISTER topic [channel]`: the broker has the channel (if given) and the topic.
    /// Returns the registrations it newly joined.
    pub fn handle_register(
        &mut self,
        id: PeerId,
        topic: &str,
        channel: Option<&str>,
    ) -> Vec<Registration> {
        let mut added = Vec::new();
        let mut keys = Vec::with_capacity(2);
        if let Some(channel) = channel {
            keys.push(Registration::new(Category::Channel, topic, channel));
        }
        keys.push(Registration::new(Category::Topic, topic, ""));
        for key in keys {
            if self.add_producer(key.clone(), id) {
                added.push(key);
            }
        }
        added
    }

    /// `UNREGISTER topic [channel]`, as upstream: a channel, or a topic with every channel of
    /// it this broker had. An ephemeral registration left with no producer goes away.
    /// Returns the registrations the broker left.
    pub fn handle_unregister(
        &mut self,
        id: PeerId,
        topic: &str,
        channel: Option<&str>,
    ) -> Vec<Registration> {
        let mut keys = match channel {
            Some(channel) => vec![Registration::new(Category::Channel, topic, channel)],
            None => self.find_registrations(Category::Channel, topic, "*"),
        };
        if channel.is_none() {
            keys.push(Registration::new(Category::Topic, topic, ""));
        }
        let mut removed = Vec::new();
        for key in keys {
            if self.remove_producer(&key, id) {
                removed.push(key);
            }
        }
        removed
    }

    /// The broker's connection closed: it leaves every registration. Returns them.
    pub fn handle_disconnect(&mut self, id: PeerId) -> Vec<Registration> {
        let keys: Vec<Registration> = self
            .registrations
            .iter()
            .filter(|(_, producers)| producers.contains_key(&id))
            .map(|(key, _)| key.clone())
            .collect();
        for key in &keys {
            self.remove_producer(key, id);
        }
        self.peers.remove(&id);
        keys
    }

    // --- the HTTP side -----------------------------------------------------------------------

    /// `POST /topic/create`: the topic exists, with no producer yet.
    pub fn create_topic(&mut self, topic: &str) {
        self.registrations
            .entry(Registration::new(Category::Topic, topic, ""))
            .or_default();
    }

    /// `POST /topic/delete`: the topic's channels and the topic go, producers and all.
    pub fn delete_topic(&mut self, topic: &str) {
        for key in self.find_registrations(Category::Channel, topic, "*") {
            self.registrations.remove(&key);
        }
        for key in self.find_registrations(Category::Topic, topic, "") {
            self.registrations.remove(&key);
        }
    }

    /// `POST /channel/create`: the channel and its topic exist.
    pub fn create_channel(&mut self, topic: &str, channel: &str) {
        self.registrations
            .entry(Registration::new(Category::Channel, topic, channel))
            .or_default();
        self.create_topic(topic);
    }

    /// `POST /channel/delete`: whether there was such a channel (upstream 404s otherwise).
    pub fn delete_channel(&mut self, topic: &str, channel: &str) -> bool {
        let keys = self.find_registrations(Category::Channel, topic, channel);
        for key in &keys {
            self.registrations.remove(key);
        }
        !keys.is_empty()
    }

    /// `POST /topic/tombstone`: every producer of the topic whose `broadcast_address:http_port`
    /// is `node` is hidden from `/lookup` for the tombstone lifetime. Unknown nodes are
    /// silently ignored, as upstream.
    pub fn tombstone(&mut self, topic: &str, node: &str, now: Now) {
        for key in self.find_registrations(Category::Topic, topic, "") {
            let Some(producers) = self.registrations.get_mut(&key) else {
                continue;
            };
            for (id, producer) in producers.iter_mut() {
                let Some(peer) = self.peers.get(id) else {
                    continue;
                };
                if format!("{}:{}", peer.info.broadcast_address, peer.info.http_port) == node {
                    producer.tombstoned_at = Some(now);
                }
            }
        }
    }

    /// `GET /lookup?topic=`: `None` when the topic is not registered (upstream's 404).
    pub fn lookup(&self, topic: &str, now: Now, visibility: Visibility) -> Option<LookupResponse> {
        if self
            .find_registrations(Category::Topic, topic, "")
            .is_empty()
        {
            return None;
        }
        let producers = self
            .find_producers(Category::Topic, topic, "")
            .into_iter()
            .filter(|(id, producer)| {
                self.is_active(*id, now, visibility.inactive_producer_timeout)
                    && !producer.is_tombstoned(now, visibility.tombstone_lifetime)
            })
            .filter_map(|(id, _)| self.peers.get(&id).map(|peer| peer.info.clone()))
            .collect();
        Some(LookupResponse {
            channels: self.channels(topic),
            producers,
        })
    }

    /// `GET /topics`: every registered topic (`*` is not special here: it lists them all).
    pub fn topics(&self) -> Vec<String> {
        self.find_registrations(Category::Topic, "*", "")
            .into_iter()
            .map(|r| r.key)
            .collect()
    }

    /// `GET /channels?topic=`: the topic's registered channels.
    pub fn channels(&self, topic: &str) -> Vec<String> {
        self.find_registrations(Category::Channel, topic, "*")
            .into_iter()
            .map(|r| r.subkey)
            .collect()
    }

    /// `GET /nodes`: every active broker with its topics and, per topic, its tombstone.
    pub fn nodes(&self, now: Now, visibility: Visibility) -> NodesResponse {
        let producers = self
            .find_producers(Category::Client, "", "")
            .into_iter()
            .filter(|(id, _)| self.is_active(*id, now, visibility.inactive_producer_timeout))
            .filter_map(|(id, _)| Some(self.node(id, self.peers.get(&id)?, now, visibility)))
            .collect();
        NodesResponse { producers }
    }

    fn node(&self, id: PeerId, peer: &Peer, now: Now, visibility: Visibility) -> Node {
        let (topics, tombstones) = self
            .registrations
            .iter()
            .filter(|(key, _)| key.category == Category::Topic)
            .filter_map(|(key, producers)| {
                let producer = producers.get(&id)?;
                let tombstoned = producer.is_tombstoned(now, visibility.tombstone_lifetime);
                Some((key.key.clone(), tombstoned))
            })
            .unzip();
        let info = &peer.info;
        Node {
            remote_address: info.remote_address.clone(),
            hostname: info.hostname.clone(),
            broadcast_address: info.broadcast_address.clone(),
            tcp_port: info.tcp_port,
            http_port: info.http_port,
            version: info.version.clone(),
            tombstones,
            topics,
        }
    }

    /// `GET /debug`: every registration that has producers, keyed `category:key:subkey`.
    pub fn debug(&self) -> BTreeMap<String, Vec<DebugProducer>> {
        let mut out = BTreeMap::new();
        for (key, producers) in &self.registrations {
            let entries: Vec<DebugProducer> = producers
                .iter()
                .filter_map(|(id, producer)| {
                    let peer = self.peers.get(id)?;
                    Some(DebugProducer {
                        broadcast_address: peer.info.broadcast_address.clone(),
                        hostname: peer.info.hostname.clone(),
                        http_port: peer.info.http_port,
                        id: peer.info.remote_address.clone(),
                        last_update: peer.last_update.unix_nanos,
                        tcp_port: peer.info.tcp_port,
                        tombstoned: producer.tombstoned_at.is_some(),
                        tombstoned_at: producer
                            .tombstoned_at
                            .map_or(GO_ZERO_TIME_UNIX_NANOS, |at| at.unix_nanos),
                        version: peer.info.version.clone(),
                    })
                })
                .collect();
            if !entries.is_empty() {
                let name = format!("{}:{}:{}", key.category.as_str(), key.key, key.subkey);
                out.insert(name, entries);
            }
        }
        out
    }

    // --- upstream's primitives ---------------------------------------------------------------

    /// Upstream's `AddProducer`: whether the broker was not there yet.
    fn add_producer(&mut self, key: Registration, id: PeerId) -> bool {
        let producers = self.registrations.entry(key).or_default();
        if producers.contains_key(&id) {
            return false;
        }
        producers.insert(id, Producer::default());
        true
    }

    /// Upstream's `RemoveProducer`, plus the removal of an ephemeral registration (and, for an
    /// ephemeral topic, of its channels that have no producer) once nobody has it. Returns
    /// whether the broker was there.
    fn remove_producer(&mut self, key: &Registration, id: PeerId) -> bool {
        let Some(producers) = self.registrations.get_mut(key) else {
            return false;
        };
        let removed = producers.remove(&id).is_some();
        if producers.is_empty() && key.is_ephemeral() {
            self.registrations.remove(key);
            if key.category == Category::Topic {
                self.registrations.retain(|k, producers| {
                    !(k.category == Category::Channel && k.key == key.key && producers.is_empty())
                });
            }
        }
        removed
    }

    /// Upstream's `FindRegistrations`, in sorted order.
    fn find_registrations(&self, category: Category, key: &str, subkey: &str) -> Vec<Registration> {
        if key != "*" && subkey != "*" {
            let exact = Registration::new(category, key, subkey);
            return match self.registrations.contains_key(&exact) {
                true => vec![exact],
                false => Vec::new(),
            };
        }
        self.registrations
            .keys()
            .filter(|k| k.matches(category, key, subkey))
            .cloned()
            .collect()
    }

    /// Upstream's `FindProducers`: each broker once, with its entry in the first matching
    /// registration.
    fn find_producers(
        &self,
        category: Category,
        key: &str,
        subkey: &str,
    ) -> Vec<(PeerId, &Producer)> {
        let mut seen = BTreeMap::new();
        for (registration, producers) in &self.registrations {
            if registration.matches(category, key, subkey) {
                for (id, producer) in producers {
                    seen.entry(*id).or_insert(producer);
                }
            }
        }
        seen.into_iter().collect()
    }

    /// Upstream's `FilterByActive` inactivity half: heard from within `timeout`.
    fn is_active(&self, id: PeerId, now: Now, timeout: Duration) -> bool {
        self.peers.get(&id).is_some_and(|peer| {
            now.instant
                .saturating_duration_since(peer.last_update.instant)
                <= timeout
        })
    }
}

#[cfg(test)]
mod tests;
