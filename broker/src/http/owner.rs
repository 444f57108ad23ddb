//! HTTP work on a topic, done by the shard that owns it: directly when that is this shard,
//! otherwise as one request over the mesh, awaiting its reply.
//!
//! Upstream has one process-wide topic map; here a request lands on any shard (SO_REUSEPORT),
//! and this is the one place the HTTP layer crosses to another. A shard that no longer answers
//! (the broker is stopping) makes the request fail as upstream's `EXITING`.

use std::time::Duration;

use bytes::Bytes;
use sluice_proto::http_json::TopicStats;
use sluice_proto::v2::Name;

use crate::shard::mesh::{
    AdminOp, AdminResult, MeshClosed, PubItem, PublishError, Reply, Request, StatsQuery,
};
use crate::shard::{shard_of, Shard};

/// Publishes `bodies` (all or none) to `topic`, creating it if needed.
///
/// # Errors
/// [`PublishError::Full`] when a destination has no room, [`PublishError::Exiting`] when the
/// owner no longer answers.
pub async fn publish(
    shard: &Shard,
    topic: &str,
    bodies: Vec<Bytes>,
    defer: Option<Duration>,
) -> Result<(), PublishError> {
    let owner = shard_of(topic, shard.count);
    if owner == shard.id {
        let mut results = shard
            .publish_durable([(topic.to_owned(), bodies, defer)])
            .await;
        return results.pop().unwrap_or(Err(PublishError::Exiting));
    }
    let count = bodies.len() as u64;
    shard.forwarded_out.set(shard.forwarded_out.get() + count);
    let items = vec![PubItem {
        topic: Name::new(topic),
        bodies,
        defer,
    }];
    let call = shard
        .mesh
        .call(owner, |token| Request::Publish { token, items })
        .await;
    match call {
        Ok(rx) => match rx.await {
            Ok(Reply::Publish(mut results)) => results.pop().unwrap_or(Err(PublishError::Exiting)),
            _ => Err(PublishError::Exiting),
        },
        Err(MeshClosed) => Err(PublishError::Exiting),
    }
}

/// Runs an administrative operation on the shard that owns `topic`.
///
/// # Errors
/// [`MeshClosed`] when the owner no longer answers.
pub async fn admin(shard: &Shard, topic: &str, op: AdminOp) -> Result<AdminResult, MeshClosed> {
    let owner = shard_of(topic, shard.count);
    if owner == shard.id {
        let result = shard.admin_local(&op);
        shard.state_durable().await;
        return Ok(result);
    }
    let rx = shard
        .mesh
        .call(owner, |token| Request::Admin { token, op })
        .await?;
    match rx.await {
        Ok(Reply::Admin(result)) => Ok(result),
        _ => Err(MeshClosed),
    }
}

/// Creates `channel` on `topic` only if the topic exists (upstream's `/channel/create` never
/// creates a topic). On this shard the check and the creation happen without an await between
/// them; across shards a topic deleted between the two requests is created again.
///
/// # Errors
/// [`MeshClosed`] when the owner no longer answers.
pub async fn create_channel(
    shard: &Shard,
    topic: &str,
    channel: &str,
) -> Result<AdminResult, MeshClosed> {
    // The owner checks that the topic exists and creates the channel in one step.
    let op = AdminOp::CreateChannel(topic.to_owned(), channel.to_owned());
    admin(shard, topic, op).await
}

/// Stats of the topics matching `query` from every shard that may own one (only the owner
/// when `query.topic` names a topic), sorted by name.
///
/// # Errors
/// [`MeshClosed`] when a shard no longer answers.
pub async fn topic_stats(shard: &Shard, query: &StatsQuery) -> Result<Vec<TopicStats>, MeshClosed> {
    let shards: Vec<usize> = match &query.topic {
        Some(topic) => vec![shard_of(topic, shard.count)],
        None => (0..shard.count).collect(),
    };
    // Every remote request goes out before any answer is awaited, so the shards work at once.
    let mut pending = Vec::new();
    for &to in shards.iter().filter(|&&to| to != shard.id) {
        let query = query.clone();
        pending.push(
            shard
                .mesh
                .call(to, |token| Request::Stats { token, query })
                .await?,
        );
    }
    let mut topics = if shards.contains(&shard.id) {
        shard.stats_local(query)
    } else {
        Vec::new()
    };
    for rx in pending {
        match rx.await {
            Ok(Reply::Stats(more)) => topics.extend(more),
            _ => return Err(MeshClosed),
        }
    }
    topics.sort_by(|a, b| a.topic_name.cmp(&b.topic_name));
    Ok(topics)
}

/// The publishing connections of every shard, oldest first (by client id).
///
/// # Errors
/// [`MeshClosed`] when a shard no longer answers.
pub async fn producers(
    shard: &Shard,
) -> Result<Vec<sluice_proto::http_json::ClientStats>, MeshClosed> {
    let mut pending = Vec::new();
    for to in (0..shard.count).filter(|&to| to != shard.id) {
        pending.push(
            shard
                .mesh
                .call(to, |token| Request::Producers { token })
                .await?,
        );
    }
    let mut all = shard.producers_local();
    for rx in pending {
        match rx.await {
            Ok(Reply::Producers(more)) => all.extend(more),
            _ => return Err(MeshClosed),
        }
    }
    Ok(all)
}
