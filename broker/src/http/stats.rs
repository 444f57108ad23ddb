//! `GET /stats`: topics and channels gathered from every shard, producers, memory, health.
//!
//! Mirrors `nsqd/http.go` `doStats` and `nsqd/stats.go` `GetStats`:
//! - `format=json` answers JSON, anything else text ([`super::stats_text`]);
//! - `topic=` keeps one topic (unknown: `"topics":null` and `"producers":null`), `channel=`
//!   keeps one channel and drops topics without it (also without `topic=`);
//! - `include_clients` and `include_mem` are `true`/`1`/`false`/`0`, default true; without
//!   clients, channels show `"clients":null` and `producers` is `null`;
//! - topics sorted by name, channels by name.
//!
//! Producers are the connections that are not subscribed, on the shard answering the request
//! only (connections are not shared between shards, and the mesh has no request for them), and
//! without `pub_counts` (connections do not count what they published yet). Both are listed
//! among the differences from nsqd in the README.

use std::time::SystemTime;

use hyper::{StatusCode, Uri};
use sluice_proto::http_json::{Stats, TopicStats};

use super::info::{health, start_time};
use super::query::{bool_param, Query};
use super::reply::Reply;
use super::{memory, owner, stats_text};
use crate::options::NSQ_VERSION;
use crate::shard::mesh::StatsQuery;
use crate::shard::Shard;

/// `GET /stats`.
pub async fn stats(shard: &Shard, uri: &Uri) -> Reply {
    let Ok(query) = Query::parse(uri.query()) else {
        return Reply::v1_error(StatusCode::BAD_REQUEST, "INVALID_REQUEST");
    };
    let non_empty = |key: &str| query.get(key).filter(|v| !v.is_empty()).map(str::to_owned);
    let filter = StatsQuery {
        topic: non_empty("topic"),
        channel: non_empty("channel"),
        include_clients: bool_param(query.get("include_clients")).unwrap_or(true),
    };
    let include_mem = bool_param(query.get("include_mem")).unwrap_or(true);
    let Ok(gathered) = owner::topic_stats(shard, &filter).await else {
        return Reply::v1_error(StatusCode::SERVICE_UNAVAILABLE, "EXITING");
    };
    let topics = select(gathered, &filter);
    let producers = if filter.include_clients && topics.is_some() {
        // Upstream writes `null` for no producers (a nil slice).
        match owner::producers(shard).await {
            Ok(p) if !p.is_empty() => Some(p),
            Ok(_) => None,
            Err(_) => return Reply::v1_error(StatusCode::SERVICE_UNAVAILABLE, "EXITING"),
        }
    } else {
        None
    };
    let storage = if bool_param(query.get("include_storage")).unwrap_or(false) {
        match crate::metrics::scrape::gather(shard).await {
            Ok(shards) => Some(shards.iter().map(shard_storage).collect()),
            Err(_) => return Reply::v1_error(StatusCode::SERVICE_UNAVAILABLE, "EXITING"),
        }
    } else {
        None
    };
    let stats = Stats {
        version: NSQ_VERSION.to_owned(),
        health: health(shard).text(),
        start_time: start_time(shard),
        topics,
        memory: include_mem.then(memory::read),
        producers,
        storage,
    };
    if query.get("format") == Some("json") {
        Reply::v1_json(&stats)
    } else {
        Reply::v1_text(stats_text::render(
            &stats,
            shard.started_at,
            SystemTime::now(),
        ))
    }
}

fn shard_storage(
    s: &crate::metrics::snapshot::ShardSnapshot,
) -> sluice_proto::http_json::ShardStorage {
    sluice_proto::http_json::ShardStorage {
        shard: s.shard,
        disk_bytes: s.log_bytes,
        segments: s.log_segments,
        writes: s.log_writes,
        fsyncs: s.fsyncs,
    }
}

/// Upstream's filtering: `None` when the named topic does not exist; with a channel filter,
/// only topics that have that channel.
fn select(topics: Vec<TopicStats>, filter: &StatsQuery) -> Option<Vec<TopicStats>> {
    if filter.topic.is_some() && topics.is_empty() {
        return None;
    }
    if filter.channel.is_none() {
        return Some(topics);
    }
    Some(
        topics
            .into_iter()
            .filter(|t| !t.channels.is_empty())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_proto::http_json::ChannelStats;

    fn topic(name: &str, channels: &[&str]) -> TopicStats {
        TopicStats {
            topic_name: name.into(),
            channels: channels
                .iter()
                .map(|c| ChannelStats {
                    channel_name: (*c).into(),
                    ..ChannelStats::default()
                })
                .collect(),
            ..TopicStats::default()
        }
    }

    fn names(topics: &Option<Vec<TopicStats>>) -> Option<Vec<String>> {
        topics
            .as_ref()
            .map(|ts| ts.iter().map(|t| t.topic_name.clone()).collect())
    }

    #[test]
    fn filters_as_upstream() {
        let filter = |topic: Option<&str>, channel: Option<&str>| StatsQuery {
            topic: topic.map(str::to_owned),
            channel: channel.map(str::to_owned),
            include_clients: true,
        };
        // The shards already kept only the named topic and channel; a topic left without
        // channels lacked it.
        let all = vec![topic("a", &[]), topic("b", &["c"])];
        assert_eq!(
            names(&select(all.clone(), &filter(None, None))).unwrap(),
            ["a", "b"]
        );
        assert_eq!(
            names(&select(all, &filter(None, Some("c")))).unwrap(),
            ["b"]
        );
        assert_eq!(select(Vec::new(), &filter(Some("nope"), None)), None);
        assert_eq!(
            select(vec![topic("a", &[])], &filter(Some("a"), Some("nope"))),
            Some(Vec::new())
        );
        assert_eq!(select(Vec::new(), &filter(None, None)), Some(Vec::new()));
    }
}
