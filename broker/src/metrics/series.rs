//! Which topic and channel series `/metrics` exposes: the rule that keeps their number bounded.
//!
//! Every topic and channel of `/stats` would be one series each, and ephemeral topics and
//! channels come and go with their consumers: a storm of them would grow the scrape (and the
//! Prometheus server's memory) without bound. So series are folded:
//!
//! 1. every ephemeral topic (`…#ephemeral`) is summed into the one topic series
//!    `topic="#ephemeral"`, and all their channels into `channel="#ephemeral"` under it;
//! 2. every ephemeral channel of a durable topic is summed into `channel="#ephemeral"` under
//!    its topic;
//! 3. durable topics keep their own series up to [`TOPIC_SERIES_MAX`] (the first by name);
//!    the rest are summed into `topic="#other"`, their channels into `channel="#other"`;
//! 4. durable channels keep their own series up to [`CHANNEL_SERIES_MAX`] over all topics
//!    (first by topic, then channel name); the rest are summed into `channel="#other"` under
//!    their topic.
//!
//! `#ephemeral` and `#other` are not valid topic or channel names (`#` is allowed only in the
//! `#ephemeral` suffix after at least one character), so they never collide with a real one.
//! A folded series sums its members' counters and gauges; its counters drop when a member is
//! deleted (Prometheus reads a drop as a counter reset). Folded series have no e2e latency
//! summary: quantiles of different streams cannot be added. Pure.

use std::collections::BTreeMap;

use sluice_proto::http_json::{ChannelStats, E2eProcessingLatency, TopicStats};

/// Durable topics exposed by name; the rest are `#other`.
pub const TOPIC_SERIES_MAX: usize = 512;

/// Durable channels (over all topics) exposed by name; the rest are `#other` under their topic.
pub const CHANNEL_SERIES_MAX: usize = 2048;

/// The label of folded ephemeral topics and channels.
pub const EPHEMERAL: &str = "#ephemeral";

/// The label of topics and channels past the caps.
pub const OTHER: &str = "#other";

/// One topic series: a topic, or the sum of folded ones.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopicSeries {
    /// The `topic` label.
    pub label: String,
    /// Topics summed into this series (1 for a named one).
    pub members: u64,
    /// Messages published.
    pub message_count: u64,
    /// Body bytes published.
    pub message_bytes: u64,
    /// Messages waiting.
    pub depth: i64,
    /// Of which in the segment log.
    pub backend_depth: i64,
    /// Paused topics in this series.
    pub paused: u64,
    /// End-to-end latency (named series only, when tracked).
    pub e2e: Option<E2eProcessingLatency>,
    /// Its channel series, by label.
    pub channels: Vec<ChannelSeries>,
}

/// One channel series: a channel, or the sum of folded ones.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelSeries {
    /// The `channel` label.
    pub label: String,
    /// Channels summed into this series.
    pub members: u64,
    /// Messages the channel received.
    pub message_count: u64,
    /// Messages waiting.
    pub depth: i64,
    /// Of which in the segment log.
    pub backend_depth: i64,
    /// Delivered, not finished.
    pub in_flight: i64,
    /// Deferred.
    pub deferred: i64,
    /// Requeues.
    pub requeue_count: u64,
    /// In-flight timeouts.
    pub timeout_count: u64,
    /// Subscribed connections.
    pub clients: i64,
    /// Paused channels in this series.
    pub paused: u64,
    /// End-to-end latency (named series only, when tracked).
    pub e2e: Option<E2eProcessingLatency>,
}

/// Folds `topics` (any order) into bounded series, sorted by label.
pub fn fold(topics: &[TopicStats]) -> Vec<TopicSeries> {
    let mut sorted: Vec<&TopicStats> = topics.iter().collect();
    sorted.sort_by(|a, b| a.topic_name.cmp(&b.topic_name));
    let mut out: BTreeMap<String, TopicSeries> = BTreeMap::new();
    let mut named_topics = 0usize;
    let mut named_channels = 0usize;
    for topic in sorted {
        let label = if is_ephemeral(&topic.topic_name) {
            EPHEMERAL
        } else if named_topics < TOPIC_SERIES_MAX {
            named_topics += 1;
            topic.topic_name.as_str()
        } else {
            OTHER
        };
        let folded = label != topic.topic_name;
        let series = out.entry(label.to_owned()).or_insert_with(|| TopicSeries {
            label: label.to_owned(),
            ..TopicSeries::default()
        });
        add_topic(series, topic, folded);
        let mut channels: Vec<&ChannelStats> = topic.channels.iter().collect();
        channels.sort_by(|a, b| a.channel_name.cmp(&b.channel_name));
        for channel in channels {
            let channel_label = if folded {
                label
            } else if is_ephemeral(&channel.channel_name) {
                EPHEMERAL
            } else if named_channels < CHANNEL_SERIES_MAX {
                named_channels += 1;
                channel.channel_name.as_str()
            } else {
                OTHER
            };
            add_channel(series, channel_label, channel);
        }
    }
    out.into_values()
        .map(|mut series| {
            series.channels.sort_by(|a, b| a.label.cmp(&b.label));
            series
        })
        .collect()
}

fn is_ephemeral(name: &str) -> bool {
    name.ends_with(EPHEMERAL)
}

fn tracked(e2e: &E2eProcessingLatency) -> Option<E2eProcessingLatency> {
    e2e.percentiles.is_some().then(|| e2e.clone())
}

fn add_topic(series: &mut TopicSeries, topic: &TopicStats, folded: bool) {
    series.members += 1;
    series.message_count = series.message_count.wrapping_add(topic.message_count);
    series.message_bytes = series.message_bytes.wrapping_add(topic.message_bytes);
    series.depth = series.depth.saturating_add(topic.depth);
    series.backend_depth = series.backend_depth.saturating_add(topic.backend_depth);
    series.paused += u64::from(topic.paused);
    if !folded {
        series.e2e = tracked(&topic.e2e_processing_latency);
    }
}

fn add_channel(series: &mut TopicSeries, label: &str, channel: &ChannelStats) {
    let index = match series.channels.iter().position(|c| c.label == label) {
        Some(index) => index,
        None => {
            series.channels.push(ChannelSeries {
                label: label.to_owned(),
                ..ChannelSeries::default()
            });
            series.channels.len() - 1
        }
    };
    let Some(c) = series.channels.get_mut(index) else {
        return;
    };
    c.members += 1;
    c.message_count = c.message_count.wrapping_add(channel.message_count);
    c.depth = c.depth.saturating_add(channel.depth);
    c.backend_depth = c.backend_depth.saturating_add(channel.backend_depth);
    c.in_flight = c.in_flight.saturating_add(channel.in_flight_count);
    c.deferred = c.deferred.saturating_add(channel.deferred_count);
    c.requeue_count = c.requeue_count.wrapping_add(channel.requeue_count);
    c.timeout_count = c.timeout_count.wrapping_add(channel.timeout_count);
    c.clients = c.clients.saturating_add(channel.client_count);
    c.paused += u64::from(channel.paused);
    // Only a channel alone in its series keeps its latency.
    c.e2e = if c.members == 1 && label == channel.channel_name {
        tracked(&channel.e2e_processing_latency)
    } else {
        None
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_proto::http_json::Percentile;

    fn topic(name: &str, count: u64, channels: &[&str]) -> TopicStats {
        TopicStats {
            topic_name: name.to_owned(),
            message_count: count,
            depth: 1,
            channels: channels
                .iter()
                .map(|c| ChannelStats {
                    channel_name: (*c).to_owned(),
                    message_count: count,
                    client_count: 1,
                    ..ChannelStats::default()
                })
                .collect(),
            ..TopicStats::default()
        }
    }

    fn labels(series: &[TopicSeries]) -> Vec<&str> {
        series.iter().map(|s| s.label.as_str()).collect()
    }

    #[test]
    fn ephemeral_topics_and_channels_are_summed() {
        let series = fold(&[
            topic("a", 1, &["c", "x#ephemeral", "y#ephemeral"]),
            topic("t1#ephemeral", 2, &["c"]),
            topic("t2#ephemeral", 3, &["d", "e#ephemeral"]),
        ]);
        assert_eq!(labels(&series), ["#ephemeral", "a"]);
        let eph = &series[0];
        assert_eq!((eph.members, eph.message_count, eph.depth), (2, 5, 2));
        assert_eq!(eph.channels.len(), 1);
        assert_eq!(eph.channels[0].label, EPHEMERAL);
        assert_eq!(eph.channels[0].message_count, 2 + 3 + 3);
        assert_eq!(eph.channels[0].clients, 3);
        let a = &series[1];
        let channel_labels: Vec<&str> = a.channels.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(channel_labels, ["#ephemeral", "c"]);
        assert_eq!(a.channels[0].members, 2);
    }

    #[test]
    fn topics_past_the_cap_are_other() {
        let topics: Vec<TopicStats> = (0..TOPIC_SERIES_MAX + 10)
            .map(|i| topic(&format!("t{i:05}"), 1, &["c"]))
            .collect();
        let series = fold(&topics);
        assert_eq!(series.len(), TOPIC_SERIES_MAX + 1);
        let other = series.iter().find(|s| s.label == OTHER).unwrap();
        assert_eq!(other.members, 10);
        assert_eq!(other.message_count, 10);
        assert_eq!(other.channels.len(), 1);
        assert_eq!(other.channels[0].label, OTHER);
        // The first names keep their series.
        assert!(series.iter().any(|s| s.label == "t00000"));
        assert!(!series.iter().any(|s| s.label == "t00520"));
    }

    #[test]
    fn channels_past_the_cap_are_other_under_their_topic() {
        let names: Vec<String> = (0..CHANNEL_SERIES_MAX + 5)
            .map(|i| format!("c{i:05}"))
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let series = fold(&[topic("a", 1, &refs), topic("b", 1, &["z"])]);
        let count = |t: &TopicSeries| t.channels.len();
        assert_eq!(count(&series[0]), CHANNEL_SERIES_MAX + 1);
        assert_eq!(series[1].channels[0].label, OTHER);
        let other = series[0]
            .channels
            .iter()
            .find(|c| c.label == OTHER)
            .unwrap();
        assert_eq!(other.members, 5);
    }

    #[test]
    fn latency_is_kept_for_named_series_only() {
        let latency = E2eProcessingLatency {
            count: 2,
            percentiles: Some(vec![Percentile {
                quantile: 0.99,
                value: 5e6,
            }]),
        };
        let mut a = topic("a", 1, &["c"]);
        a.e2e_processing_latency = latency.clone();
        a.channels[0].e2e_processing_latency = latency.clone();
        let mut b = topic("b#ephemeral", 1, &["c"]);
        b.e2e_processing_latency = latency.clone();
        let series = fold(&[a, b]);
        assert_eq!(series[0].e2e, None);
        assert_eq!(series[1].e2e, Some(latency.clone()));
        assert_eq!(series[1].channels[0].e2e, Some(latency));
        // Untracked latency (no percentiles configured) has no series either.
        let series = fold(&[topic("u", 1, &["c"])]);
        assert_eq!(series[0].e2e, None);
    }
}
