//! The JSON shapes of nsqadmin's `/api/` replies, and how per-node stats add up to cluster-wide
//! ones.
//!
//! Mirrors `internal/clusterinfo/types.go` (`Producer`, `ProducerTopic`, `TopicStats`,
//! `ChannelStats`, `ClientStats` and their `Add`) and `internal/quantile/aggregate.go`
//! (`E2eProcessingLatencyAggregate`). Field names and order are upstream's so that scripts
//! written for nsqadmin read these unchanged; `Option` stands where upstream writes `null` for a
//! nil Go slice or pointer. Inputs are `sluice_proto::http_json` values, which read both
//! sluiced's and upstream nsqd's `/stats`.
//!
//! One deliberate difference: upstream's `TopicStats.Add` aliases the first node's channel
//! object into the cluster-wide topic (so that node's entry shows summed figures); here every
//! cluster-wide channel is its own sum with every node listed under `nodes`.

use std::collections::BTreeMap;

use serde::Serialize;
use sluice_proto::http_json;

/// One topic a broker has, as lookupd reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProducerTopic {
    /// The topic.
    pub topic: String,
    /// Whether the broker is tombstoned for it.
    pub tombstoned: bool,
}

/// A broker ("node", "producer" upstream).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Producer {
    /// `lookupd-address/remote-address` for each lookupd that knows it; `null` without lookupds.
    pub remote_addresses: Option<Vec<String>>,
    /// The address its lookup connection came from.
    pub remote_address: String,
    /// Its host name.
    pub hostname: String,
    /// The address it announces.
    pub broadcast_address: String,
    /// Its TCP port.
    pub tcp_port: u16,
    /// Its HTTP port.
    pub http_port: u16,
    /// Its version.
    pub version: String,
    /// Its topics, sorted; `null` when it has none.
    pub topics: Option<Vec<ProducerTopic>>,
    /// Whether an older version than the newest seen.
    pub out_of_date: bool,
}

impl Producer {
    /// `broadcast_address:http_port`, the name a node goes by in the API (Go's
    /// `net.JoinHostPort`, so IPv6 addresses get brackets).
    pub fn http_address(&self) -> String {
        join_host_port(&self.broadcast_address, self.http_port)
    }

    /// `broadcast_address:tcp_port`.
    pub fn tcp_address(&self) -> String {
        join_host_port(&self.broadcast_address, self.tcp_port)
    }

    /// The lookup connection's address, or `N/A`.
    pub fn address(&self) -> &str {
        if self.remote_address.is_empty() {
            "N/A"
        } else {
            &self.remote_address
        }
    }

    /// From one entry of lookupd's `/nodes` or `/lookup`.
    pub fn from_lookupd(node: &http_json::Node) -> Producer {
        let topics: Vec<ProducerTopic> = node
            .topics
            .iter()
            .enumerate()
            .map(|(i, topic)| ProducerTopic {
                topic: topic.clone(),
                tombstoned: node.tombstones.get(i).copied().unwrap_or(false),
            })
            .collect();
        Producer {
            remote_addresses: None,
            remote_address: node.remote_address.clone(),
            hostname: node.hostname.clone(),
            broadcast_address: node.broadcast_address.clone(),
            tcp_port: node.tcp_port,
            http_port: node.http_port,
            version: node.version.clone(),
            topics: (!topics.is_empty()).then_some(topics),
            out_of_date: false,
        }
    }
}

/// Go's `net.JoinHostPort`.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Upstream's version order (semver; anything unparsable is 0.0.0).
pub fn version_key(version: &str) -> (u64, u64, u64) {
    let core = version.split(['-', '+']).next().unwrap_or_default();
    let mut parts = core.split('.').map(|p| p.parse::<u64>());
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(Ok(a)), Some(Ok(b)), Some(Ok(c)), None) => (a, b, c),
        _ => (0, 0, 0),
    }
}

/// End-to-end latency quantiles, per node or averaged over nodes.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct E2eAggregate {
    /// Samples.
    pub count: i64,
    /// One map per quantile: `quantile`, `min`, `max`, `average`, `count` (and a node's own
    /// `value`); `null` when the broker reports none.
    pub percentiles: Option<Vec<BTreeMap<String, f64>>>,
    /// The topic (cluster-wide figures only).
    pub topic: String,
    /// The channel (cluster-wide channel figures only).
    pub channel: String,
    /// `*` for cluster-wide figures.
    pub host: String,
}

impl E2eAggregate {
    /// From a node's `e2e_processing_latency` (upstream's `UnmarshalJSON`).
    pub fn from_node(e2e: &http_json::E2eProcessingLatency) -> E2eAggregate {
        let count_f = e2e.count as f64;
        let percentiles = e2e.percentiles.as_ref().map(|list| {
            list.iter()
                .map(|p| {
                    BTreeMap::from([
                        ("quantile".to_owned(), p.quantile),
                        ("value".to_owned(), p.value),
                        ("min".to_owned(), p.value),
                        ("max".to_owned(), p.value),
                        ("average".to_owned(), p.value),
                        ("count".to_owned(), count_f),
                    ])
                })
                .collect()
        });
        E2eAggregate {
            count: e2e.count,
            percentiles,
            ..E2eAggregate::default()
        }
    }

    /// Merges another node's figures by count-weighted averaging (upstream's `Add`).
    pub fn add(&mut self, other: &E2eAggregate) {
        self.host = "*".to_owned();
        self.count += other.count;
        let Some(theirs) = &other.percentiles else {
            return;
        };
        let mine = self.percentiles.get_or_insert_with(Vec::new);
        for value in theirs {
            let quantile = value.get("quantile").copied().unwrap_or_default();
            let at = match mine
                .iter()
                .position(|m| m.get("quantile") == Some(&quantile))
            {
                Some(at) => at,
                None => {
                    mine.push(BTreeMap::from([("quantile".to_owned(), quantile)]));
                    mine.len() - 1
                }
            };
            let Some(entry) = mine.get_mut(at) else {
                continue;
            };
            let get = |m: &BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or_default();
            let (their_max, their_min) = (get(value, "max"), get(value, "min"));
            let first = get(entry, "count") == 0.0;
            let max = if first {
                their_max
            } else {
                get(entry, "max").max(their_max)
            };
            let min = if first {
                their_min
            } else {
                get(entry, "min").min(their_min)
            };
            let count = get(entry, "count") + get(value, "count");
            let average = if count > 0.0 {
                let delta = get(value, "average") - get(entry, "average");
                get(entry, "average") + delta * get(value, "count") / count
            } else {
                get(entry, "average")
            };
            entry.insert("max".to_owned(), max);
            entry.insert("min".to_owned(), min);
            entry.insert("count".to_owned(), count);
            entry.insert("average".to_owned(), average);
        }
    }
}

/// One client connection of a channel.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ClientStats {
    /// The node (`host:http_port`) it is connected to.
    pub node: String,
    /// Its address.
    pub remote_address: String,
    /// Protocol version (`V2`).
    pub version: String,
    /// IDENTIFY `client_id`.
    pub client_id: String,
    /// IDENTIFY `hostname`.
    pub hostname: String,
    /// IDENTIFY `user_agent`.
    pub user_agent: String,
    /// Connect time, Unix seconds.
    pub connect_ts: i64,
    /// How long it has been connected, nanoseconds (Go `time.Duration`).
    pub connected: i64,
    /// Messages in flight to it.
    pub in_flight_count: i64,
    /// Its RDY count.
    pub ready_count: i64,
    /// FINs.
    pub finish_count: u64,
    /// REQs.
    pub requeue_count: u64,
    /// Messages delivered.
    pub message_count: u64,
    /// IDENTIFY `sample_rate`.
    pub sample_rate: i32,
    /// Deflate negotiated.
    pub deflate: bool,
    /// Snappy negotiated.
    pub snappy: bool,
    /// AUTH succeeded.
    pub authed: bool,
    /// Identity from the auth server.
    pub auth_identity: String,
    /// Identity URL from the auth server.
    pub auth_identity_url: String,
    /// TLS negotiated.
    pub tls: bool,
    /// TLS cipher suite.
    pub tls_cipher_suite: String,
    /// TLS version.
    pub tls_version: String,
    /// ALPN protocol.
    pub tls_negotiated_protocol: String,
    /// Whether ALPN was mutual.
    pub tls_negotiated_protocol_is_mutual: bool,
}

impl ClientStats {
    /// From a node's client entry; `now_unix` dates `connected` (truncated to the second, as
    /// upstream's `UnmarshalJSON` does).
    pub fn from_node(node: &str, c: &http_json::ClientStats, now_unix: i64) -> ClientStats {
        ClientStats {
            node: node.to_owned(),
            remote_address: c.remote_address.clone(),
            version: c.version.clone(),
            client_id: c.client_id.clone(),
            hostname: c.hostname.clone(),
            user_agent: c.user_agent.clone(),
            connect_ts: c.connect_ts,
            connected: now_unix
                .saturating_sub(c.connect_ts)
                .saturating_mul(1_000_000_000),
            in_flight_count: c.in_flight_count,
            ready_count: c.ready_count,
            finish_count: c.finish_count,
            requeue_count: c.requeue_count,
            message_count: c.message_count,
            sample_rate: c.sample_rate,
            deflate: c.deflate,
            snappy: c.snappy,
            authed: c.authed,
            auth_identity: c.auth_identity.clone(),
            auth_identity_url: c.auth_identity_url.clone(),
            tls: c.tls,
            tls_cipher_suite: c.tls_cipher_suite.clone(),
            tls_version: c.tls_version.clone(),
            tls_negotiated_protocol: c.tls_negotiated_protocol.clone(),
            tls_negotiated_protocol_is_mutual: c.tls_negotiated_protocol_is_mutual,
        }
    }
}

/// A channel on one node, or summed over nodes (`node` is `*`).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ChannelStats {
    /// The node, or `*`.
    pub node: String,
    /// The node's host name (empty when summed).
    pub hostname: String,
    /// The topic.
    pub topic_name: String,
    /// The channel.
    pub channel_name: String,
    /// Messages waiting.
    pub depth: i64,
    /// Messages waiting in memory (`depth - backend_depth`).
    pub memory_depth: i64,
    /// Messages waiting on disk.
    pub backend_depth: i64,
    /// Messages in flight.
    pub in_flight_count: i64,
    /// Messages deferred.
    pub deferred_count: i64,
    /// Requeues.
    pub requeue_count: u64,
    /// Timeouts.
    pub timeout_count: u64,
    /// Messages received.
    pub message_count: u64,
    /// Subscribed clients.
    pub client_count: i64,
    /// Per-node figures (summed figures only).
    pub nodes: Option<Vec<ChannelStats>>,
    /// The clients; `null` when none or not asked for.
    pub clients: Option<Vec<ClientStats>>,
    /// Paused (on any node, when summed).
    pub paused: bool,
    /// End-to-end latency.
    pub e2e_processing_latency: Option<E2eAggregate>,
}

impl ChannelStats {
    /// A node's channel.
    pub fn from_node(
        node: &str,
        hostname: &str,
        topic: &str,
        c: &http_json::ChannelStats,
        now_unix: i64,
    ) -> ChannelStats {
        let clients = c.clients.as_ref().map(|list| {
            list.iter()
                .map(|client| ClientStats::from_node(node, client, now_unix))
                .collect()
        });
        ChannelStats {
            node: node.to_owned(),
            hostname: hostname.to_owned(),
            topic_name: topic.to_owned(),
            channel_name: c.channel_name.clone(),
            depth: c.depth,
            memory_depth: c.depth - c.backend_depth,
            backend_depth: c.backend_depth,
            in_flight_count: c.in_flight_count,
            deferred_count: c.deferred_count,
            requeue_count: c.requeue_count,
            timeout_count: c.timeout_count,
            message_count: c.message_count,
            client_count: c.client_count,
            nodes: None,
            clients,
            paused: c.paused,
            e2e_processing_latency: Some(E2eAggregate::from_node(&c.e2e_processing_latency)),
        }
    }

    /// An empty sum for `topic`/`channel`, to [`add`](ChannelStats::add) nodes into.
    pub fn sum(topic: &str, channel: &str) -> ChannelStats {
        ChannelStats {
            topic_name: topic.to_owned(),
            channel_name: channel.to_owned(),
            ..ChannelStats::default()
        }
    }

    /// Adds one node's figures (upstream's `ChannelStats.Add`).
    pub fn add(&mut self, a: &ChannelStats) {
        self.node = "*".to_owned();
        self.depth += a.depth;
        self.memory_depth += a.memory_depth;
        self.backend_depth += a.backend_depth;
        self.in_flight_count += a.in_flight_count;
        self.deferred_count += a.deferred_count;
        self.requeue_count += a.requeue_count;
        self.timeout_count += a.timeout_count;
        self.message_count += a.message_count;
        self.client_count += a.client_count;
        self.paused |= a.paused;
        let nodes = self.nodes.get_or_insert_with(Vec::new);
        nodes.push(a.clone());
        nodes.sort_by(|x, y| x.hostname.cmp(&y.hostname));
        let e2e = self
            .e2e_processing_latency
            .get_or_insert_with(|| E2eAggregate {
                topic: self.topic_name.clone(),
                channel: self.channel_name.clone(),
                host: "*".to_owned(),
                ..E2eAggregate::default()
            });
        if let Some(theirs) = &a.e2e_processing_latency {
            e2e.add(theirs);
        }
        // Upstream appends to a nil slice: no clients anywhere stays `null`.
        if let Some(theirs) = a.clients.as_ref().filter(|c| !c.is_empty()) {
            let clients = self.clients.get_or_insert_with(Vec::new);
            clients.extend(theirs.iter().cloned());
            clients.sort_by(|x, y| x.hostname.cmp(&y.hostname));
        }
    }
}

/// A topic on one node, or summed over nodes (`node` is `*`).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct TopicStats {
    /// The node, or `*`.
    pub node: String,
    /// The node's host name (empty when summed).
    pub hostname: String,
    /// The topic.
    pub topic_name: String,
    /// Messages waiting.
    pub depth: i64,
    /// Messages waiting in memory.
    pub memory_depth: i64,
    /// Messages waiting on disk.
    pub backend_depth: i64,
    /// Messages published.
    pub message_count: u64,
    /// Per-node figures (summed figures only).
    pub nodes: Option<Vec<TopicStats>>,
    /// The channels; `null` for a sum over no node.
    pub channels: Option<Vec<ChannelStats>>,
    /// Paused (on any node, when summed).
    pub paused: bool,
    /// End-to-end latency.
    pub e2e_processing_latency: Option<E2eAggregate>,
}

impl TopicStats {
    /// A node's topic, its channels included.
    pub fn from_node(
        node: &str,
        hostname: &str,
        t: &http_json::TopicStats,
        now_unix: i64,
    ) -> TopicStats {
        let channels = t
            .channels
            .iter()
            .map(|c| ChannelStats::from_node(node, hostname, &t.topic_name, c, now_unix))
            .collect();
        TopicStats {
            node: node.to_owned(),
            hostname: hostname.to_owned(),
            topic_name: t.topic_name.clone(),
            depth: t.depth,
            memory_depth: t.depth - t.backend_depth,
            backend_depth: t.backend_depth,
            message_count: t.message_count,
            nodes: None,
            channels: Some(channels),
            paused: t.paused,
            e2e_processing_latency: Some(E2eAggregate::from_node(&t.e2e_processing_latency)),
        }
    }

    /// An empty sum for `topic`.
    pub fn sum(topic: &str) -> TopicStats {
        TopicStats {
            topic_name: topic.to_owned(),
            ..TopicStats::default()
        }
    }

    /// Adds one node's figures (upstream's `TopicStats.Add`), channels summed by name.
    pub fn add(&mut self, a: &TopicStats) {
        self.node = "*".to_owned();
        self.depth += a.depth;
        self.memory_depth += a.memory_depth;
        self.backend_depth += a.backend_depth;
        self.message_count += a.message_count;
        self.paused |= a.paused;
        let channels = self.channels.get_or_insert_with(Vec::new);
        for theirs in a.channels.iter().flatten() {
            match channels
                .iter_mut()
                .find(|c| c.channel_name == theirs.channel_name)
            {
                Some(mine) => mine.add(theirs),
                None => {
                    let mut sum = ChannelStats::sum(&self.topic_name, &theirs.channel_name);
                    sum.add(theirs);
                    channels.push(sum);
                }
            }
        }
        channels.sort_by(|x, y| x.channel_name.cmp(&y.channel_name));
        let nodes = self.nodes.get_or_insert_with(Vec::new);
        nodes.push(a.clone());
        nodes.sort_by(|x, y| x.hostname.cmp(&y.hostname));
        let e2e = self
            .e2e_processing_latency
            .get_or_insert_with(|| E2eAggregate {
                topic: self.topic_name.clone(),
                host: "*".to_owned(),
                ..E2eAggregate::default()
            });
        if let Some(theirs) = &a.e2e_processing_latency {
            e2e.add(theirs);
        }
    }
}

#[cfg(test)]
mod tests;
