//! What the cluster looks like, asked of its lookupds and brokers over their HTTP APIs, and the
//! admin actions sent to them.
//!
//! Mirrors `internal/clusterinfo/data.go`: every query goes to all the given addresses at once;
//! when every one fails the result is an error (`failed to query any nsqlookupd: …`), when some
//! fail it is a [`Partial`] value that carries their errors, so pages and the API show what they
//! could reach and name what they could not. Actions (pause, empty, delete, tombstone, create)
//! go to every broker that has the topic, found through the lookupds when there are any.

pub mod types;

use std::collections::BTreeMap;
use std::future::Future;

use sluice_proto::http_json::{
    ChannelsResponse, LookupResponse, NodesResponse, NsqdInfo, Stats, TopicsResponse,
};
use tokio::task::JoinSet;

use crate::client::{query_escape, HttpClient};
use types::{ChannelStats, Producer, ProducerTopic, TopicStats};

/// A query that reached some but maybe not all of its addresses.
#[derive(Debug, Clone, Default)]
pub struct Partial<T> {
    /// What the reachable addresses said.
    pub value: T,
    /// One entry per address that failed.
    pub errors: Vec<NodeError>,
}

/// An address that could not be asked, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeError {
    /// The address (`host:port`).
    pub addr: String,
    /// The error, in Go's words.
    pub text: String,
}

impl<T> Partial<T> {
    fn new(value: T, errors: Vec<NodeError>) -> Partial<T> {
        Partial { value, errors }
    }

    /// Upstream's `ErrList.Error()`: the errors, one per line; `None` when there were none.
    pub fn message(&self) -> Option<String> {
        error_list(&self.errors)
    }
}

fn error_list(errors: &[NodeError]) -> Option<String> {
    if errors.is_empty() {
        return None;
    }
    let texts: Vec<&str> = errors.iter().map(|e| e.text.as_str()).collect();
    Some(texts.join("\n"))
}

/// The result of a query: an error when no address answered.
pub type Fetch<T> = Result<Partial<T>, String>;

/// Node-level topic stats and cluster-wide channel stats (keyed by channel name when a topic
/// was selected, else by `topic:channel`), as upstream's `GetNSQDStats` returns them.
pub type StatsResult = (Vec<TopicStats>, BTreeMap<String, ChannelStats>);

/// The cluster, seen through one HTTP client.
#[derive(Debug, Clone, Copy)]
pub struct ClusterInfo {
    /// The client used for every query.
    pub client: HttpClient,
}

/// Runs `f` for every address at once and returns the answers in address order.
async fn fan_out<T, F, Fut>(addrs: &[String], f: F) -> Vec<(String, Result<T, String>)>
where
    T: Send + 'static,
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<T, String>> + Send + 'static,
{
    let mut set = JoinSet::new();
    for (i, addr) in addrs.iter().enumerate() {
        let job = f(addr.clone());
        set.spawn(async move { (i, job.await) });
    }
    let mut answers: Vec<Option<Result<T, String>>> = addrs.iter().map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        if let Ok((i, result)) = joined {
            if let Some(slot) = answers.get_mut(i) {
                *slot = Some(result);
            }
        }
    }
    addrs
        .iter()
        .cloned()
        .zip(answers)
        .map(|(addr, answer)| {
            (
                addr,
                answer.unwrap_or_else(|| Err("task failed".to_owned())),
            )
        })
        .collect()
}

/// The answers that came, by address, and the addresses that failed.
type Settled<T> = (Vec<(String, T)>, Vec<NodeError>);

/// Splits answers into values and errors; all failed is an error naming `what`.
fn settle<T>(what: &str, answers: Vec<(String, Result<T, String>)>) -> Result<Settled<T>, String> {
    let total = answers.len();
    let mut values = Vec::new();
    let mut errors = Vec::new();
    for (addr, answer) in answers {
        match answer {
            Ok(value) => values.push((addr, value)),
            Err(text) => errors.push(NodeError { addr, text }),
        }
    }
    if total > 0 && errors.len() == total {
        let list = error_list(&errors).unwrap_or_default();
        return Err(format!("failed to query any {what}: {list}"));
    }
    Ok((values, errors))
}

fn sorted_union(lists: impl IntoIterator<Item = Vec<String>>) -> Vec<String> {
    let mut all: Vec<String> = lists.into_iter().flatten().collect();
    all.sort();
    all.dedup();
    all
}

/// The Unix time in seconds.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl ClusterInfo {
    async fn get<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        addrs: &[String],
        path: String,
    ) -> Vec<(String, Result<T, String>)> {
        let client = self.client;
        fan_out(addrs, move |addr| {
            let url = format!("http://{addr}{path}");
            async move { client.get_json::<T>(&url).await }
        })
        .await
    }

    /// `GetLookupdTopics`: every topic any lookupd knows, sorted.
    pub async fn lookupd_topics(&self, lookupds: &[String]) -> Fetch<Vec<String>> {
        let answers = self
            .get::<TopicsResponse>(lookupds, "/topics".to_owned())
            .await;
        let (values, errors) = settle("nsqlookupd", answers)?;
        let topics = sorted_union(values.into_iter().map(|(_, r)| r.topics));
        Ok(Partial::new(topics, errors))
    }

    /// `GetLookupdTopicChannels`: every channel of `topic` any lookupd knows, sorted.
    pub async fn lookupd_topic_channels(
        &self,
        topic: &str,
        lookupds: &[String],
    ) -> Fetch<Vec<String>> {
        let path = format!("/channels?topic={}", query_escape(topic));
        let answers = self.get::<ChannelsResponse>(lookupds, path).await;
        let (values, errors) = settle("nsqlookupd", answers)?;
        let channels = sorted_union(values.into_iter().map(|(_, r)| r.channels));
        Ok(Partial::new(channels, errors))
    }

    /// `GetLookupdProducers`: every broker any lookupd knows, once each (by TCP address), with
    /// the lookupds that know it, sorted by host name; older versions marked out of date.
    pub async fn lookupd_producers(&self, lookupds: &[String]) -> Fetch<Vec<Producer>> {
        let answers = self
            .get::<NodesResponse>(lookupds, "/nodes".to_owned())
            .await;
        let (values, errors) = settle("nsqlookupd", answers)?;
        let mut producers: Vec<Producer> = Vec::new();
        for (lookupd, reply) in values {
            for node in &reply.producers {
                let mut fresh = Producer::from_lookupd(node);
                let via = format!("{lookupd}/{}", fresh.address());
                match producers
                    .iter_mut()
                    .find(|p| p.tcp_address() == fresh.tcp_address())
                {
                    Some(known) => known
                        .remote_addresses
                        .get_or_insert_with(Vec::new)
                        .push(via),
                    None => {
                        if let Some(topics) = fresh.topics.as_mut() {
                            topics.sort_by(|a, b| a.topic.cmp(&b.topic));
                        }
                        fresh.remote_addresses = Some(vec![via]);
                        producers.push(fresh);
                    }
                }
            }
        }
        mark_out_of_date(&mut producers);
        producers.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        Ok(Partial::new(producers, errors))
    }

    /// `GetLookupdTopicProducers`: the brokers that have `topic`, once each (by HTTP address).
    pub async fn lookupd_topic_producers(
        &self,
        topic: &str,
        lookupds: &[String],
    ) -> Fetch<Vec<Producer>> {
        let path = format!("/lookup?topic={}", query_escape(topic));
        let answers = self.get::<LookupResponse>(lookupds, path).await;
        let (values, errors) = settle("nsqlookupd", answers)?;
        let mut producers: Vec<Producer> = Vec::new();
        for (_, reply) in values {
            for peer in &reply.producers {
                let node = sluice_proto::http_json::Node {
                    remote_address: peer.remote_address.clone(),
                    hostname: peer.hostname.clone(),
                    broadcast_address: peer.broadcast_address.clone(),
                    tcp_port: peer.tcp_port,
                    http_port: peer.http_port,
                    version: peer.version.clone(),
                    ..Default::default()
                };
                let fresh = Producer::from_lookupd(&node);
                if !producers
                    .iter()
                    .any(|p| p.http_address() == fresh.http_address())
                {
                    producers.push(fresh);
                }
            }
        }
        Ok(Partial::new(producers, errors))
    }

    /// `GetNSQDTopics`: every topic the given brokers have, sorted.
    pub async fn nsqd_topics(&self, nsqds: &[String]) -> Fetch<Vec<String>> {
        let path = "/stats?format=json&include_clients=false".to_owned();
        let answers = self.get::<Stats>(nsqds, path).await;
        let (values, errors) = settle("nsqd", answers)?;
        let topics = sorted_union(values.into_iter().map(|(_, s)| topic_names(&s)));
        Ok(Partial::new(topics, errors))
    }

    /// `GetNSQDProducers`: each given broker, described by its `/info` and `/stats`.
    pub async fn nsqd_producers(&self, nsqds: &[String]) -> Fetch<Vec<Producer>> {
        self.nsqd_producers_having(nsqds, None).await
    }

    /// `GetNSQDTopicProducers`: the given brokers that have `topic`.
    pub async fn nsqd_topic_producers(
        &self,
        topic: &str,
        nsqds: &[String],
    ) -> Fetch<Vec<Producer>> {
        self.nsqd_producers_having(nsqds, Some(topic)).await
    }

    async fn nsqd_producers_having(
        &self,
        nsqds: &[String],
        topic: Option<&str>,
    ) -> Fetch<Vec<Producer>> {
        let client = self.client;
        let topic = topic.map(str::to_owned);
        let answers = fan_out(nsqds, move |addr| {
            let topic = topic.clone();
            async move { describe_nsqd(client, &addr, topic.as_deref()).await }
        })
        .await;
        let (values, errors) = settle("nsqd", answers)?;
        let producers = values.into_iter().filter_map(|(_, p)| p).collect();
        Ok(Partial::new(producers, errors))
    }

    /// `GetProducers`: through the lookupds when there are any, else the given brokers.
    pub async fn producers(&self, lookupds: &[String], nsqds: &[String]) -> Fetch<Vec<Producer>> {
        if lookupds.is_empty() {
            self.nsqd_producers(nsqds).await
        } else {
            self.lookupd_producers(lookupds).await
        }
    }

    /// `GetTopicProducers`: the brokers that have `topic`.
    pub async fn topic_producers(
        &self,
        topic: &str,
        lookupds: &[String],
        nsqds: &[String],
    ) -> Fetch<Vec<Producer>> {
        if lookupds.is_empty() {
            self.nsqd_topic_producers(topic, nsqds).await
        } else {
            self.lookupd_topic_producers(topic, lookupds).await
        }
    }

    /// `GetNSQDStats`: each producer's `/stats` (only `topic`, `channel` when given; clients
    /// when asked for), as node-level topic stats sorted by host name and cluster-wide channel
    /// stats.
    pub async fn nsqd_stats(
        &self,
        producers: &[Producer],
        topic: &str,
        channel: &str,
        include_clients: bool,
    ) -> Fetch<StatsResult> {
        let mut path = "/stats?format=json".to_owned();
        if !topic.is_empty() {
            path.push_str(&format!("&topic={}", query_escape(topic)));
            if !channel.is_empty() {
                path.push_str(&format!("&channel={}", query_escape(channel)));
            }
        }
        if !include_clients {
            path.push_str("&include_clients=false");
        }
        let addrs: Vec<String> = producers.iter().map(Producer::http_address).collect();
        let answers = self.get::<Stats>(&addrs, path).await;
        let (values, errors) = settle("nsqd", answers)?;
        let now = now_unix();
        let mut topics = Vec::new();
        let mut channels: BTreeMap<String, ChannelStats> = BTreeMap::new();
        for (addr, stats) in values {
            let hostname = producers
                .iter()
                .find(|p| p.http_address() == addr)
                .map_or("", |p| p.hostname.as_str());
            for t in stats.topics.iter().flatten() {
                if !topic.is_empty() && t.topic_name != topic {
                    continue;
                }
                let node_topic = TopicStats::from_node(&addr, hostname, t, now);
                for c in node_topic.channels.iter().flatten() {
                    let key = if topic.is_empty() {
                        format!("{}:{}", t.topic_name, c.channel_name)
                    } else {
                        c.channel_name.clone()
                    };
                    channels
                        .entry(key)
                        .or_insert_with(|| ChannelStats::sum(&t.topic_name, &c.channel_name))
                        .add(c);
                }
                topics.push(node_topic);
            }
        }
        topics.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        Ok(Partial::new((topics, channels), errors))
    }
}

fn topic_names(stats: &Stats) -> Vec<String> {
    stats
        .topics
        .iter()
        .flatten()
        .map(|t| t.topic_name.clone())
        .collect()
}

fn mark_out_of_date(producers: &mut [Producer]) {
    let newest = producers
        .iter()
        .map(|p| types::version_key(&p.version))
        .max()
        .unwrap_or_default();
    for p in producers {
        p.out_of_date = types::version_key(&p.version) < newest;
    }
}

/// One broker's `/stats` then `/info`; `None` when `topic` is given and it does not have it.
async fn describe_nsqd(
    client: HttpClient,
    addr: &str,
    topic: Option<&str>,
) -> Result<Option<Producer>, String> {
    let mut path = format!("http://{addr}/stats?format=json&include_clients=false");
    if let Some(topic) = topic {
        path.push_str(&format!("&topic={}", query_escape(topic)));
    }
    let stats: Stats = client.get_json(&path).await?;
    let names = topic_names(&stats);
    if topic.is_some_and(|t| !names.iter().any(|n| n == t)) {
        return Ok(None);
    }
    let mut info: NsqdInfo = client.get_json(&format!("http://{addr}/info")).await?;
    // Upstream: a broker that does not say where it is goes by the address it was asked at.
    if info.broadcast_address.is_empty() {
        if let Some((host, port)) = addr.rsplit_once(':') {
            info.broadcast_address = host.trim_matches(['[', ']']).to_owned();
            info.http_port = port.parse().unwrap_or(0);
        }
    }
    let topics: Vec<ProducerTopic> = names
        .into_iter()
        .map(|topic| ProducerTopic {
            topic,
            tombstoned: false,
        })
        .collect();
    Ok(Some(Producer {
        remote_addresses: None,
        remote_address: String::new(),
        hostname: info.hostname,
        broadcast_address: info.broadcast_address,
        tcp_port: info.tcp_port,
        http_port: info.http_port,
        version: info.version,
        topics: (!topics.is_empty()).then_some(topics),
        out_of_date: false,
    }))
}

pub mod actions;
