//! `GET /metrics`: every shard's snapshot gathered over the mesh, rendered for Prometheus.
//!
//! The shard answering the scrape asks every other shard for its [`ShardSnapshot`]
//! (`Request::Metrics`, one request per shard, all sent before any answer is awaited, as
//! `/stats` does in [`crate::http::owner::topic_stats`]) and takes its own directly. Upstream
//! nsqd has no such route (nsqio/nsq #732).

use hyper::StatusCode;

use super::exposition::CONTENT_TYPE;
use super::prometheus::{render, ProcessFacts};
use super::snapshot::{take, ShardSnapshot};
use crate::http::info::{health, start_time, Health};
use crate::http::reply::Reply;
use crate::shard::mesh::{MeshClosed, Reply as MeshReply, Request};
use crate::shard::Shard;

/// `GET /metrics`.
pub async fn metrics(shard: &Shard) -> Reply {
    let Ok(snapshots) = gather(shard).await else {
        return Reply::v1_error(StatusCode::SERVICE_UNAVAILABLE, "EXITING");
    };
    let process = ProcessFacts {
        start_time_s: start_time(shard),
        resident_bytes: crate::http::memory::read().heap_in_use_bytes,
        healthy: matches!(health(shard), Health::Ok),
    };
    Reply::plain(StatusCode::OK, render(&snapshots, &process))
        .with_header("content-type", CONTENT_TYPE.to_owned())
}

/// Every shard's snapshot, by shard id.
///
/// # Errors
/// [`MeshClosed`] when a shard no longer answers (the broker is stopping).
pub async fn gather(shard: &Shard) -> Result<Vec<ShardSnapshot>, MeshClosed> {
    let mut pending = Vec::new();
    for to in (0..shard.count).filter(|&to| to != shard.id) {
        pending.push(
            shard
                .mesh
                .call(to, |token| Request::Metrics { token })
                .await?,
        );
    }
    let mut snapshots = vec![take(shard)];
    for rx in pending {
        match rx.await {
            Ok(MeshReply::Metrics(snapshot)) => snapshots.push(*snapshot),
            _ => return Err(MeshClosed),
        }
    }
    snapshots.sort_by_key(|s| s.shard);
    Ok(snapshots)
}
