//! Pre-creates the channels the lookupds already know for a topic this broker just created,
//! so that those channels get its messages from the start.
//!
//! Mirrors upstream `nsqd/nsqd.go` `GetTopic` (ask every lookupd's `GET /channels?topic=`,
//! skip `#ephemeral` names, create the rest) and `internal/clusterinfo`
//! `GetLookupdTopicChannels` (the union of the answers; an error only when every lookupd
//! failed). Upstream does it synchronously inside topic creation; here a worker thread does it
//! and creates each channel through this broker's own `POST /channel/create`, so the shards
//! need not know about it. The difference (a second pre-created channel can miss messages
//! published in the moment before it exists) is described in the README's lookupd section.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crossbeam::channel::{Receiver, RecvTimeoutError};
use sluice_proto::http_json::ChannelsResponse;

use super::http_client::{HttpClient, HttpError};
use super::mirror::Mirror;
use super::STOP_POLL;

/// The most channels created for one topic: a lookupd's answer is not trusted to be small.
pub const CHANNELS_MAX: usize = 1024;

/// A topic whose channels should be created, and the lookupds to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    /// The new topic.
    pub topic: String,
    /// Every lookupd's HTTP address (`host:port`).
    pub lookupds: Vec<String>,
}

/// Serves seeds until `stop` is set (or every sender is gone).
pub fn run(
    client: &HttpClient,
    broker_http: SocketAddr,
    stop: &AtomicBool,
    seeds: &Receiver<Seed>,
    mirror: &Mutex<Mirror>,
) {
    while !stop.load(Ordering::Relaxed) {
        match seeds.recv_timeout(STOP_POLL) {
            Ok(seed) => precreate(client, broker_http, &seed, mirror, stop),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

fn precreate(
    client: &HttpClient,
    broker_http: SocketAddr,
    seed: &Seed,
    mirror: &Mutex<Mirror>,
    stop: &AtomicBool,
) {
    let channels = match lookupd_channels(client, seed) {
        Ok(channels) => channels,
        Err(e) => {
            tracing::warn!(
                "failed to query nsqlookupd for channels to pre-create for topic {} - {e}",
                seed.topic
            );
            return;
        }
    };
    let address = broker_http.to_string();
    for channel in channels {
        // The topic may have been deleted meanwhile: stop asking (the broker would answer
        // TOPIC_NOT_FOUND, as upstream's /channel/create does).
        let alive = mirror.lock().is_ok_and(|m| m.has_topic(&seed.topic));
        if !alive || stop.load(Ordering::Relaxed) {
            return;
        }
        let target = format!("/channel/create?{}", query(&seed.topic, Some(&channel)));
        match client.request("POST", &address, &target) {
            Ok(response) if response.status == 200 => {
                tracing::info!("TOPIC({}): pre-created channel {channel}", seed.topic);
            }
            Ok(response) => tracing::warn!(
                "TOPIC({}): cannot pre-create channel {channel} - {} {}",
                seed.topic,
                response.status,
                String::from_utf8_lossy(&response.body)
            ),
            Err(e) => tracing::warn!(
                "TOPIC({}): cannot pre-create channel {channel} - {e}",
                seed.topic
            ),
        }
    }
}

/// The union of every lookupd's channels for the topic, without `#ephemeral` ones, at most
/// [`CHANNELS_MAX`].
///
/// # Errors
/// The last failure when no lookupd answered.
pub fn lookupd_channels(client: &HttpClient, seed: &Seed) -> Result<BTreeSet<String>, String> {
    let target = format!("/channels?{}", query(&seed.topic, None));
    let mut channels = BTreeSet::new();
    let mut last_error = None;
    let mut answered = false;
    for lookupd in &seed.lookupds {
        match client
            .request("GET", lookupd, &target)
            .map_err(|e| describe(lookupd, &e))
        {
            Ok(response) if response.status == 200 => {
                match serde_json::from_slice::<ChannelsResponse>(&response.body) {
                    Ok(reply) => {
                        answered = true;
                        channels.extend(reply.channels);
                    }
                    Err(e) => last_error = Some(format!("{lookupd}: bad JSON - {e}")),
                }
            }
            Ok(response) => last_error = Some(format!("{lookupd}: status {}", response.status)),
            Err(e) => last_error = Some(e),
        }
    }
    if !answered {
        return Err(last_error.unwrap_or_else(|| "no lookupd to ask".to_owned()));
    }
    // Upstream: "do not create ephemeral channel with no consumer client".
    channels.retain(|c| !c.ends_with("#ephemeral"));
    if channels.len() > CHANNELS_MAX {
        tracing::warn!(
            "TOPIC({}): lookupds know {} channels, pre-creating the first {CHANNELS_MAX}",
            seed.topic,
            channels.len()
        );
        channels = channels.into_iter().take(CHANNELS_MAX).collect();
    }
    Ok(channels)
}

fn describe(lookupd: &str, e: &HttpError) -> String {
    format!("{lookupd}: {e}")
}

fn query(topic: &str, channel: Option<&str>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("topic", topic);
    if let Some(channel) = channel {
        query.append_pair("channel", channel);
    }
    query.finish()
}
