//! The bounded in-memory history the charts are drawn from: for every topic and channel, the
//! last N samples of cluster-wide depth, in-flight count and message count.
//!
//! Ours (upstream nsqadmin draws charts from Graphite). Pure: [`History::record`] takes the
//! sample time as an argument; the sampler task in `lib.rs` reads the clock and the brokers.
//! Bounds: each series keeps at most `capacity` points (`--sample-history`), at most
//! [`SERIES_MAX`] series exist, and a series not seen for `capacity` rounds is forgotten, so
//! deleted topics do not pin memory.

use std::collections::{BTreeMap, VecDeque};

use crate::clusterinfo::types::{ChannelStats, TopicStats};

/// The most series (topics plus channels) kept.
pub const SERIES_MAX: usize = 20_000;

/// A topic (`channel` empty) or a channel.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesKey {
    /// The topic.
    pub topic: String,
    /// The channel, or empty for the topic itself.
    pub channel: String,
}

/// One sample of one series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Point {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// Messages waiting.
    pub depth: i64,
    /// Messages in flight (channels).
    pub in_flight: i64,
    /// Messages received so far.
    pub message_count: u64,
}

#[derive(Debug, Clone, Default)]
struct Series {
    points: VecDeque<Point>,
    last_round: u64,
}

/// Every series.
#[derive(Debug, Clone)]
pub struct History {
    capacity: usize,
    round: u64,
    series: BTreeMap<SeriesKey, Series>,
}

impl History {
    /// An empty history keeping `capacity` points per series (at least 2).
    pub fn new(capacity: usize) -> History {
        History {
            capacity: capacity.max(2),
            round: 0,
            series: BTreeMap::new(),
        }
    }

    /// Records one round of samples taken at `at_ms`: the cluster-wide topic sums.
    pub fn record(&mut self, at_ms: i64, topics: &[TopicStats]) {
        self.round += 1;
        for topic in topics {
            self.push(key(&topic.topic_name, ""), topic_point(at_ms, topic));
            for channel in topic.channels.iter().flatten() {
                let k = key(&topic.topic_name, &channel.channel_name);
                self.push(k, channel_point(at_ms, channel));
            }
        }
        let oldest_kept = self.round.saturating_sub(self.capacity as u64);
        self.series.retain(|_, s| s.last_round > oldest_kept);
    }

    fn push(&mut self, key: SeriesKey, point: Point) {
        if !self.series.contains_key(&key) && self.series.len() >= SERIES_MAX {
            return;
        }
        let series = self.series.entry(key).or_default();
        if series.points.len() >= self.capacity {
            series.points.pop_front();
        }
        series.points.push_back(point);
        series.last_round = self.round;
    }

    /// The samples of a topic (`channel` empty) or channel, oldest first.
    pub fn points(&self, topic: &str, channel: &str) -> Vec<Point> {
        self.series
            .get(&key(topic, channel))
            .map(|s| s.points.iter().copied().collect())
            .unwrap_or_default()
    }

    /// How many series exist.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }
}

fn key(topic: &str, channel: &str) -> SeriesKey {
    SeriesKey {
        topic: topic.to_owned(),
        channel: channel.to_owned(),
    }
}

fn topic_point(at_ms: i64, t: &TopicStats) -> Point {
    Point {
        at_ms,
        depth: t.depth,
        in_flight: 0,
        message_count: t.message_count,
    }
}

fn channel_point(at_ms: i64, c: &ChannelStats) -> Point {
    Point {
        at_ms,
        depth: c.depth,
        in_flight: c.in_flight_count,
        message_count: c.message_count,
    }
}

/// Messages per second between consecutive samples, dated at the later one. A count that went
/// down (a broker restarted or a node left) gives no rate for that step rather than a negative
/// one.
pub fn rates(points: &[Point]) -> Vec<(i64, f64)> {
    points
        .windows(2)
        .filter_map(|pair| match pair {
            [a, b] if b.at_ms > a.at_ms && b.message_count >= a.message_count => {
                let secs = (b.at_ms - a.at_ms) as f64 / 1000.0;
                Some((b.at_ms, (b.message_count - a.message_count) as f64 / secs))
            }
            _ => None,
        })
        .collect()
}

/// The latest rate, if two samples exist.
pub fn latest_rate(points: &[Point]) -> Option<f64> {
    let tail = points.get(points.len().saturating_sub(2)..)?;
    rates(tail).last().map(|&(_, r)| r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, count: u64, channels: &[(&str, i64)]) -> TopicStats {
        let mut t = TopicStats::sum(name);
        t.message_count = count;
        t.depth = 3;
        t.channels = Some(
            channels
                .iter()
                .map(|(c, depth)| ChannelStats {
                    depth: *depth,
                    ..ChannelStats::sum(name, c)
                })
                .collect(),
        );
        t
    }

    #[test]
    fn series_keep_at_most_capacity_points() {
        let mut h = History::new(3);
        for i in 0..5u64 {
            h.record(i as i64 * 1000, &[topic("t", i * 10, &[("c", i as i64)])]);
        }
        let points = h.points("t", "");
        assert_eq!(points.len(), 3);
        assert_eq!(points.first().unwrap().at_ms, 2000);
        assert_eq!(h.points("t", "c").last().unwrap().depth, 4);
        assert_eq!(rates(&points), vec![(3000, 10.0), (4000, 10.0)]);
        assert_eq!(latest_rate(&points), Some(10.0));
    }

    #[test]
    fn unseen_series_are_forgotten_after_a_full_window() {
        let mut h = History::new(2);
        h.record(0, &[topic("gone", 1, &[("c", 0)])]);
        assert_eq!(h.series_count(), 2);
        h.record(1000, &[]);
        assert_eq!(h.series_count(), 2, "still inside the window");
        h.record(2000, &[]);
        assert_eq!(h.series_count(), 0);
        assert!(h.points("gone", "").is_empty());
    }

    #[test]
    fn counter_resets_give_no_negative_rate() {
        let p = |at_ms, message_count| Point {
            at_ms,
            message_count,
            ..Point::default()
        };
        let points = [p(0, 100), p(1000, 5), p(2000, 25)];
        assert_eq!(rates(&points), vec![(2000, 20.0)]);
        assert_eq!(latest_rate(&points[..1]), None);
    }
}
