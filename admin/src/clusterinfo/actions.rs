//! Admin actions: what nsqadmin's buttons send to the lookupds and brokers.
//!
//! Mirrors the second half of `internal/clusterinfo/data.go` (`TombstoneNodeForTopic`,
//! `CreateTopicChannel`, `DeleteTopic`, `DeleteChannel`, `Pause*`, `UnPause*`, `Empty*`,
//! `actionHelper`, `nsqlookupdPOST`, `producersPOST`). As upstream, a failed POST never stops
//! the others: it becomes a warning ([`Outcome::Partial`]); only failing to find the brokers at
//! all is an error.

use super::{ClusterInfo, NodeError, Partial};
use crate::client::query_escape;
use crate::clusterinfo::types::Producer;

/// How an action went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every request succeeded.
    Done,
    /// Some requests failed; upstream's `ErrList` text (one error per line).
    Partial(String),
}

/// What a broker or lookupd action does, as the path of its HTTP API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `topic/pause` or `channel/pause`.
    Pause,
    /// `topic/unpause` or `channel/unpause`.
    Unpause,
    /// `topic/empty` or `channel/empty`.
    Empty,
}

impl Verb {
    fn path(self, channel: bool) -> &'static str {
        match (self, channel) {
            (Verb::Pause, false) => "topic/pause",
            (Verb::Pause, true) => "channel/pause",
            (Verb::Unpause, false) => "topic/unpause",
            (Verb::Unpause, true) => "channel/unpause",
            (Verb::Empty, false) => "topic/empty",
            (Verb::Empty, true) => "channel/empty",
        }
    }
}

/// Collects warnings across the steps of one action.
#[derive(Default)]
struct Warnings(Vec<String>);

impl Warnings {
    fn note(&mut self, errors: &[NodeError]) {
        self.0.extend(errors.iter().map(|e| e.text.clone()));
    }

    fn outcome(self) -> Outcome {
        if self.0.is_empty() {
            Outcome::Done
        } else {
            Outcome::Partial(self.0.join("\n"))
        }
    }
}

fn topic_query(topic: &str) -> String {
    format!("topic={}", query_escape(topic))
}

fn channel_query(topic: &str, channel: &str) -> String {
    format!(
        "topic={}&channel={}",
        query_escape(topic),
        query_escape(channel)
    )
}

impl ClusterInfo {
    /// POSTs `uri?qs` to every address, one after another (upstream's `nsqlookupdPOST`).
    async fn post_each(&self, addrs: &[String], uri: &str, qs: &str) -> Vec<NodeError> {
        let mut errors = Vec::new();
        for addr in addrs {
            let url = format!("http://{addr}/{uri}?{qs}");
            tracing::info!("CI: querying {url}");
            if let Err(text) = self.client.post_empty(&url).await {
                errors.push(NodeError {
                    addr: addr.clone(),
                    text,
                });
            }
        }
        errors
    }

    async fn post_producers(&self, producers: &[Producer], uri: &str, qs: &str) -> Vec<NodeError> {
        let addrs: Vec<String> = producers.iter().map(Producer::http_address).collect();
        self.post_each(&addrs, uri, qs).await
    }

    async fn topic_producers_noted(
        &self,
        topic: &str,
        lookupds: &[String],
        nsqds: &[String],
        warnings: &mut Warnings,
    ) -> Result<Vec<Producer>, String> {
        let Partial { value, errors } = self.topic_producers(topic, lookupds, nsqds).await?;
        warnings.note(&errors);
        Ok(value)
    }

    /// Pause, unpause or empty a topic (`channel` empty) or a channel on every broker that has
    /// the topic.
    ///
    /// # Errors
    /// The brokers could not be found at all.
    pub async fn act(
        &self,
        verb: Verb,
        topic: &str,
        channel: &str,
        lookupds: &[String],
        nsqds: &[String],
    ) -> Result<Outcome, String> {
        let mut warnings = Warnings::default();
        let producers = self
            .topic_producers_noted(topic, lookupds, nsqds, &mut warnings)
            .await?;
        let (uri, qs) = if channel.is_empty() {
            (verb.path(false), topic_query(topic))
        } else {
            (verb.path(true), channel_query(topic, channel))
        };
        warnings.note(&self.post_producers(&producers, uri, &qs).await);
        Ok(warnings.outcome())
    }

    /// `DeleteTopic`: from every lookupd, then from every broker that had it.
    ///
    /// # Errors
    /// The brokers could not be found at all.
    pub async fn delete_topic(
        &self,
        topic: &str,
        lookupds: &[String],
        nsqds: &[String],
    ) -> Result<Outcome, String> {
        let mut warnings = Warnings::default();
        // The brokers first: once lookupds forget the topic they cannot say who has it.
        let producers = self
            .topic_producers_noted(topic, lookupds, nsqds, &mut warnings)
            .await?;
        let qs = topic_query(topic);
        warnings.note(&self.post_each(lookupds, "topic/delete", &qs).await);
        warnings.note(&self.post_producers(&producers, "topic/delete", &qs).await);
        Ok(warnings.outcome())
    }

    /// `DeleteChannel`: from every lookupd, then from every broker that has the topic.
    ///
    /// # Errors
    /// The brokers could not be found at all.
    pub async fn delete_channel(
        &self,
        topic: &str,
        channel: &str,
        lookupds: &[String],
        nsqds: &[String],
    ) -> Result<Outcome, String> {
        let mut warnings = Warnings::default();
        let producers = self
            .topic_producers_noted(topic, lookupds, nsqds, &mut warnings)
            .await?;
        let qs = channel_query(topic, channel);
        warnings.note(&self.post_each(lookupds, "channel/delete", &qs).await);
        warnings.note(&self.post_producers(&producers, "channel/delete", &qs).await);
        Ok(warnings.outcome())
    }

    /// `CreateTopicChannel`: the topic (and the channel) on every lookupd, and the channel on
    /// every broker that has the topic. Without lookupds (ours: upstream then does nothing),
    /// the topic and channel are created on every given broker.
    ///
    /// # Errors
    /// The brokers could not be found at all.
    pub async fn create_topic_channel(
        &self,
        topic: &str,
        channel: &str,
        lookupds: &[String],
        nsqds: &[String],
    ) -> Result<Outcome, String> {
        let mut warnings = Warnings::default();
        let topic_qs = topic_query(topic);
        warnings.note(&self.post_each(lookupds, "topic/create", &topic_qs).await);
        if lookupds.is_empty() {
            warnings.note(&self.post_each(nsqds, "topic/create", &topic_qs).await);
        }
        if !channel.is_empty() {
            let qs = channel_query(topic, channel);
            warnings.note(&self.post_each(lookupds, "channel/create", &qs).await);
            let producers = self
                .topic_producers_noted(topic, lookupds, nsqds, &mut warnings)
                .await?;
            warnings.note(&self.post_producers(&producers, "channel/create", &qs).await);
        }
        Ok(warnings.outcome())
    }

    /// `TombstoneNodeForTopic`: tombstone `node` (`host:http_port`) for the topic on every
    /// lookupd, then delete the topic from that broker.
    ///
    /// # Errors
    /// The broker could not be asked at all.
    pub async fn tombstone_node_for_topic(
        &self,
        topic: &str,
        node: &str,
        lookupds: &[String],
    ) -> Result<Outcome, String> {
        let mut warnings = Warnings::default();
        let qs = format!("topic={}&node={}", query_escape(topic), query_escape(node));
        warnings.note(&self.post_each(lookupds, "topic/tombstone", &qs).await);
        let Partial { value, errors } = self.nsqd_producers(&[node.to_owned()]).await?;
        warnings.note(&errors);
        warnings.note(
            &self
                .post_producers(&value, "topic/delete", &topic_query(topic))
                .await,
        );
        Ok(warnings.outcome())
    }
}
