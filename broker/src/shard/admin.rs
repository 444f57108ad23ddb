//! Administrative operations and stats of the topics a shard owns (`/topic/*`, `/channel/*`,
//! `/stats`), answered for this shard only; the HTTP layer fans out over the mesh.

use std::time::{Instant, SystemTime};

use sluice_proto::http_json::{self, ChannelStats, ClientStats, TopicStats};

use super::mesh::{AdminOp, AdminResult, StatsQuery};
use super::{wall_ns, Shard};
use crate::channel::{Channel, ConsumerId, E2eLatency, E2eProcessingLatency};
use crate::conn::shared::ConnShared;
use crate::topic::Topic;

impl Shard {
    /// Applies an administrative operation to a topic owned here. The change is in the saved
    /// state once [`Shard::state_durable`] returns.
    pub fn admin_local(&self, op: &AdminOp) -> AdminResult {
        let now = Instant::now();
        let result = match op {
            AdminOp::CreateTopic(t) => {
                self.with_topic(t, |_| ());
                AdminResult::Ok
            }
            AdminOp::DeleteTopic(t) => self.delete_topic(t),
            AdminOp::EmptyTopic(t) => self.on_topic(t, Topic::empty),
            AdminOp::PauseTopic(t, true) => self.on_topic(t, Topic::pause),
            AdminOp::PauseTopic(t, false) => self.on_topic(t, |topic| topic.unpause(now)),
            AdminOp::CreateChannel(t, c) => {
                // Upstream's /channel/create never creates the topic.
                if !self.topics.borrow().contains_key(t) {
                    return AdminResult::TopicNotFound;
                }
                self.with_channel(t, c, |_| ());
                AdminResult::Ok
            }
            AdminOp::DeleteChannel(t, c) => self.delete_channel(t, c),
            AdminOp::EmptyChannel(t, c) => self.on_topic_channel(t, c, |topic| {
                topic.empty_channel(c);
            }),
            AdminOp::PauseChannel(t, c, true) => self.on_channel(t, c, Channel::pause),
            AdminOp::PauseChannel(t, c, false) => self.on_channel(t, c, Channel::unpause),
        };
        if result == AdminResult::Ok {
            self.state_changed();
        }
        if let AdminOp::PauseTopic(t, false)
        | AdminOp::PauseChannel(t, _, false)
        | AdminOp::CreateChannel(t, _) = op
        {
            self.mark_dirty(t);
            self.deliver(now);
        }
        result
    }

    /// Waits until every change made so far is in the saved state.
    pub async fn state_durable(&self) {
        let version = self.state_version.get();
        let _ = self.state_saved.wait_for(version).await;
    }

    fn on_topic_channel(
        &self,
        topic: &str,
        channel: &str,
        f: impl FnOnce(&mut Topic),
    ) -> AdminResult {
        let mut topics = self.topics.borrow_mut();
        let Some(t) = topics.get_mut(topic) else {
            return AdminResult::TopicNotFound;
        };
        if t.channel(channel).is_none() {
            return AdminResult::ChannelNotFound;
        }
        f(t);
        AdminResult::Ok
    }

    fn on_topic(&self, name: &str, f: impl FnOnce(&mut Topic)) -> AdminResult {
        match self.topics.borrow_mut().get_mut(name) {
            Some(topic) => {
                f(topic);
                AdminResult::Ok
            }
            None => AdminResult::TopicNotFound,
        }
    }

    fn on_channel(&self, topic: &str, channel: &str, f: impl FnOnce(&mut Channel)) -> AdminResult {
        let mut topics = self.topics.borrow_mut();
        let Some(topic) = topics.get_mut(topic) else {
            return AdminResult::TopicNotFound;
        };
        match topic.channel_mut(channel) {
            Some(c) => {
                f(c);
                AdminResult::Ok
            }
            None => AdminResult::ChannelNotFound,
        }
    }

    /// Deletes a topic: its channels' consumers are disconnected, as upstream closes them.
    fn delete_topic(&self, name: &str) -> AdminResult {
        let Some(topic) = self.topics.borrow_mut().remove(name) else {
            return AdminResult::TopicNotFound;
        };
        tracing::info!("TOPIC({name}): deleting");
        for channel in topic.channels() {
            self.disconnect_consumers_of(name, channel.name());
        }
        self.control.events.topic_deleted(name);
        AdminResult::Ok
    }

    fn delete_channel(&self, topic: &str, channel: &str) -> AdminResult {
        let deleted = {
            let mut topics = self.topics.borrow_mut();
            let Some(t) = topics.get_mut(topic) else {
                return AdminResult::TopicNotFound;
            };
            let deleted = t.delete_channel(channel);
            // Upstream's DeleteExistingChannel: an ephemeral topic goes with its last channel.
            if deleted && t.is_ephemeral() && t.has_no_channel() {
                topics.remove(topic);
                self.control.events.topic_deleted(topic);
            }
            deleted
        };
        if !deleted {
            return AdminResult::ChannelNotFound;
        }
        tracing::info!("CHANNEL({channel}): deleting");
        self.disconnect_consumers_of(topic, channel);
        self.control.events.channel_deleted(topic, channel);
        AdminResult::Ok
    }

    fn disconnect_consumers_of(&self, topic: &str, channel: &str) {
        let doomed: Vec<_> = self
            .consumers
            .borrow()
            .values()
            .filter(|c| {
                c.subscription
                    .borrow()
                    .as_ref()
                    .is_some_and(|(t, ch)| t == topic && ch == channel)
            })
            .cloned()
            .collect();
        for conn in doomed {
            conn.close();
        }
    }

    /// The connections on this shard that published something (upstream `IsProducer`: a
    /// non-empty `pub_counts`), oldest first.
    pub fn producers_local(&self) -> Vec<ClientStats> {
        let clients = self.clients.borrow();
        let mut found: Vec<_> = clients
            .values()
            .filter(|c| !c.pub_counts.borrow().is_empty())
            .collect();
        found.sort_by_key(|c| c.client_id);
        found.into_iter().map(|c| client_stats(c)).collect()
    }

    /// Stats of the topics owned here, sorted by name, filtered by `query`.
    pub fn stats_local(&self, query: &StatsQuery) -> Vec<TopicStats> {
        let now_wall = wall_ns(SystemTime::now());
        let topics = self.topics.borrow();
        let consumers = self.consumers.borrow();
        let mut out: Vec<TopicStats> = topics
            .values()
            .filter(|t| query.topic.as_deref().is_none_or(|q| q == t.name()))
            .map(|t| {
                let mut channels: Vec<ChannelStats> = t
                    .slots()
                    .iter()
                    .filter(|s| {
                        query
                            .channel
                            .as_deref()
                            .is_none_or(|q| q == s.channel.name())
                    })
                    .map(|s| {
                        let mut stats =
                            channel_stats(&s.channel, now_wall, query.include_clients, &|id| {
                                consumers.get(&id).cloned()
                            });
                        let in_log = s.backlog.as_ref().map_or(0, |b| b.pending) as i64;
                        stats.depth += in_log;
                        stats.backend_depth = in_log;
                        stats
                    })
                    .collect();
                channels.sort_by(|a, b| a.channel_name.cmp(&b.channel_name));
                TopicStats {
                    topic_name: t.name().to_owned(),
                    channels,
                    depth: t.depth() as i64,
                    backend_depth: t.backend_depth() as i64,
                    message_count: t.message_count(),
                    message_bytes: t.message_bytes(),
                    paused: t.is_paused(),
                    e2e_processing_latency: json_e2e(E2eLatency::merged(
                        t.channels().filter_map(Channel::e2e),
                        now_wall,
                    )),
                }
            })
            .collect();
        out.sort_by(|a, b| a.topic_name.cmp(&b.topic_name));
        out
    }
}

fn channel_stats(
    c: &Channel,
    now_wall: i64,
    include_clients: bool,
    conn_of: &dyn Fn(ConsumerId) -> Option<std::rc::Rc<ConnShared>>,
) -> ChannelStats {
    let s = c.stats(now_wall);
    let clients = include_clients.then(|| {
        s.clients
            .iter()
            .filter_map(|(id, cs)| {
                let conn = conn_of(*id)?;
                let mut stats = client_stats(&conn);
                stats.ready_count = cs.ready_count as i64;
                stats.in_flight_count = cs.in_flight_count as i64;
                stats.message_count = cs.message_count;
                stats.finish_count = cs.finish_count;
                stats.requeue_count = cs.requeue_count;
                Some(stats)
            })
            .collect()
    });
    ChannelStats {
        channel_name: c.name().to_owned(),
        depth: s.depth as i64,
        backend_depth: 0,
        in_flight_count: s.in_flight_count as i64,
        deferred_count: s.deferred_count as i64,
        message_count: s.message_count,
        requeue_count: s.requeue_count,
        timeout_count: s.timeout_count,
        client_count: s.client_count as i64,
        clients,
        paused: s.paused,
        e2e_processing_latency: json_e2e(s.e2e_processing_latency),
    }
}

/// A connection's facts in upstream's client stats shape.
pub fn client_stats(conn: &ConnShared) -> ClientStats {
    let identity = conn.identity.borrow();
    let counters = conn.counters.get();
    let connect_ts = conn
        .connected_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    ClientStats {
        client_id: identity.client_id.clone(),
        hostname: identity.hostname.clone(),
        version: "V2".to_owned(),
        remote_address: conn.remote.to_string(),
        state: conn.state.get().code(),
        ready_count: conn.ready_count.get() as i64,
        message_count: counters.message_count,
        finish_count: counters.finish_count,
        requeue_count: counters.requeue_count,
        connect_ts,
        sample_rate: i32::from(identity.sample_rate),
        deflate: identity.deflate,
        snappy: identity.snappy,
        user_agent: identity.user_agent.clone(),
        tls: identity.tls_v1,
        pub_counts: conn
            .pub_counts
            .borrow()
            .iter()
            .map(|(topic, count)| http_json::PubCount {
                topic: topic.clone(),
                count: *count,
            })
            .collect(),
        ..ClientStats::default()
    }
}

fn json_e2e(e: E2eProcessingLatency) -> http_json::E2eProcessingLatency {
    http_json::E2eProcessingLatency {
        count: e.count as i64,
        percentiles: e.percentiles.map(|ps| {
            ps.into_iter()
                .map(|p| http_json::Percentile {
                    quantile: p.quantile,
                    value: p.value as f64,
                })
                .collect()
        }),
    }
}
