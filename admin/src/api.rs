//! The JSON API under `/api/` and `/config/:opt`, as scripts written for nsqadmin expect it.
//!
//! Mirrors the handlers of `nsqadmin/http.go`: `topicsHandler`, `topicHandler`,
//! `channelHandler`, `nodesHandler`, `nodeHandler`, `counterHandler`, `graphiteHandler`, the
//! actions (`createTopicChannelHandler`, `topicChannelAction`, `deleteTopicHandler`,
//! `deleteChannelHandler`, `tombstoneNodeForTopicHandler`, each first checking
//! `isAuthorizedAdminRequest` and then notifying), and `doConfig`. Partial failures become
//! `"message": "WARNING: …"` beside the data; total failures `502 UPSTREAM_ERROR: …`.
//! `GET /api/history/:topic[/:channel]` is ours: the sampled history behind the charts.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_proto::names::{is_valid_channel_name, is_valid_topic_name};

use crate::clusterinfo::actions::{Outcome, Verb};
use crate::clusterinfo::types::{ChannelStats, Producer, TopicStats};
use crate::clusterinfo::{now_unix, Fetch, NodeError, Partial};
use crate::history;
use crate::http::router::Route;
use crate::http::{AdminRequest, Reply};
use crate::log::LogLevel;
use crate::notify::{basic_auth_user, AdminAction};
use crate::Context;

/// Collected warnings (upstream's `messages`), and the addresses that failed.
#[derive(Default)]
pub(crate) struct Warnings {
    texts: Vec<String>,
    pub(crate) unreachable: Vec<NodeError>,
}

impl Warnings {
    pub(crate) fn note<T>(&mut self, partial: &Partial<T>) {
        if let Some(text) = partial.message() {
            self.texts.push(text);
        }
        self.unreachable.extend(partial.errors.iter().cloned());
    }

    /// upstream's `maybeWarnMsg`.
    pub(crate) fn message(&self) -> String {
        if self.texts.is_empty() {
            String::new()
        } else {
            format!("WARNING: {}", self.texts.join("; "))
        }
    }
}

/// Unwraps a fetch, or answers 502 as upstream does when nothing could be asked.
macro_rules! fetched {
    ($fetch:expr, $warnings:expr, $what:expr) => {
        match $fetch {
            Ok(partial) => {
                $warnings.note(&partial);
                partial.value
            }
            Err(e) => {
                tracing::error!("failed to get {} - {e}", $what);
                return Reply::error(502, &format!("UPSTREAM_ERROR: {e}"));
            }
        }
    };
}

#[derive(Serialize)]
struct WithMessage<T: Serialize> {
    #[serde(flatten)]
    inner: T,
    message: String,
}

#[derive(Serialize)]
struct MessageOnly {
    message: String,
}

pub(crate) async fn handle(ctx: &Arc<Context>, route: Route, req: &AdminRequest) -> Reply {
    match route {
        Route::ApiTopics => topics(ctx, req).await,
        Route::ApiTopic(t) => topic(ctx, &t).await,
        Route::ApiChannel(t, c) => channel(ctx, &t, &c).await,
        Route::ApiNodes => nodes(ctx).await,
        Route::ApiNode(n) => node(ctx, &n).await,
        Route::ApiCounter => counter(ctx).await,
        Route::ApiGraphite => graphite(ctx, req).await,
        Route::ApiHistory(t, c) => history_json(ctx, &t, &c),
        Route::CreateTopicChannel => create_topic_channel(ctx, req).await,
        Route::TopicAction(t) => topic_channel_action(ctx, req, &t, "").await,
        Route::ChannelAction(t, c) => topic_channel_action(ctx, req, &t, &c).await,
        Route::TombstoneNode(n) => tombstone_node(ctx, req, &n).await,
        Route::DeleteTopic(t) => delete_topic(ctx, req, &t).await,
        Route::DeleteChannel(t, c) => delete_channel(ctx, req, &t, &c).await,
        _ => Reply::error(404, "NOT_FOUND"),
    }
}

/// All topics: through the lookupds, or the given brokers.
pub(crate) async fn fetch_topics(ctx: &Context) -> Fetch<Vec<String>> {
    let (lookupds, nsqds) = ctx.addresses();
    if lookupds.is_empty() {
        ctx.cluster.nsqd_topics(&nsqds).await
    } else {
        ctx.cluster.lookupd_topics(&lookupds).await
    }
}

async fn topics(ctx: &Context, req: &AdminRequest) -> Reply {
    let mut warnings = Warnings::default();
    let topics = fetched!(fetch_topics(ctx).await, warnings, "topics");
    if req.param("inactive").as_deref() != Some("true") {
        #[derive(Serialize)]
        struct Topics {
            topics: Vec<String>,
        }
        return Reply::json(&WithMessage {
            inner: Topics { topics },
            message: warnings.message(),
        });
    }
    let (lookupds, _) = ctx.addresses();
    let mut inactive: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if !lookupds.is_empty() {
        for topic in topics {
            let producers = ctx.cluster.lookupd_topic_producers(&topic, &lookupds).await;
            if producers.map_or(true, |p| p.value.is_empty()) {
                let channels = ctx.cluster.lookupd_topic_channels(&topic, &lookupds).await;
                inactive.insert(topic, channels.map(|c| c.value).unwrap_or_default());
            }
        }
    }
    #[derive(Serialize)]
    struct Inactive {
        topics: BTreeMap<String, Vec<String>>,
    }
    Reply::json(&WithMessage {
        inner: Inactive { topics: inactive },
        message: warnings.message(),
    })
}

/// A topic's producers and node-level stats, summed; shared with the topic page.
pub(crate) async fn topic_stats(
    ctx: &Context,
    topic: &str,
    warnings: &mut Warnings,
) -> Result<(Vec<Producer>, TopicStats), String> {
    let (lookupds, nsqds) = ctx.addresses();
    let producers = ctx
        .cluster
        .topic_producers(topic, &lookupds, &nsqds)
        .await?;
    warnings.note(&producers);
    let stats = ctx
        .cluster
        .nsqd_stats(&producers.value, topic, "", false)
        .await?;
    warnings.note(&stats);
    let mut sum = TopicStats::sum(topic);
    for node in &stats.value.0 {
        sum.add(node);
    }
    Ok((producers.value, sum))
}

async fn topic(ctx: &Context, topic: &str) -> Reply {
    let mut warnings = Warnings::default();
    match topic_stats(ctx, topic, &mut warnings).await {
        Ok((_, sum)) => Reply::json(&WithMessage {
            inner: sum,
            message: warnings.message(),
        }),
        Err(e) => upstream_error("topic metadata", &e),
    }
}

/// A channel summed over nodes, clients included; shared with the channel page.
pub(crate) async fn channel_stats(
    ctx: &Context,
    topic: &str,
    channel: &str,
    warnings: &mut Warnings,
) -> Result<Option<ChannelStats>, String> {
    let (lookupds, nsqds) = ctx.addresses();
    let producers = ctx
        .cluster
        .topic_producers(topic, &lookupds, &nsqds)
        .await?;
    warnings.note(&producers);
    let stats = ctx
        .cluster
        .nsqd_stats(&producers.value, topic, channel, true)
        .await?;
    warnings.note(&stats);
    let (_, mut channels) = stats.value;
    Ok(channels.remove(channel))
}

async fn channel(ctx: &Context, topic: &str, channel: &str) -> Reply {
    let mut warnings = Warnings::default();
    match channel_stats(ctx, topic, channel, &mut warnings).await {
        Ok(Some(stats)) => Reply::json(&WithMessage {
            inner: stats,
            message: warnings.message(),
        }),
        // Upstream embeds a nil *ChannelStats: its fields vanish and only the message is left.
        Ok(None) => Reply::json(&MessageOnly {
            message: warnings.message(),
        }),
        Err(e) => upstream_error("channel metadata", &e),
    }
}

fn upstream_error(what: &str, e: &str) -> Reply {
    tracing::error!("failed to get {what} - {e}");
    Reply::error(502, &format!("UPSTREAM_ERROR: {e}"))
}

/// Every node; shared with the nodes page.
pub(crate) async fn fetch_producers(ctx: &Context) -> Fetch<Vec<Producer>> {
    let (lookupds, nsqds) = ctx.addresses();
    ctx.cluster.producers(&lookupds, &nsqds).await
}

async fn nodes(ctx: &Context) -> Reply {
    let mut warnings = Warnings::default();
    let nodes = fetched!(fetch_producers(ctx).await, warnings, "nodes");
    #[derive(Serialize)]
    struct Nodes {
        nodes: Vec<Producer>,
    }
    Reply::json(&WithMessage {
        inner: Nodes { nodes },
        message: warnings.message(),
    })
}

/// One node's topics (clients included) and totals, as `nodeHandler` reports them.
#[derive(Debug, Serialize)]
pub(crate) struct NodeReport {
    pub node: String,
    pub topics: Vec<TopicStats>,
    pub total_messages: u64,
    pub total_clients: usize,
    pub message: String,
}

/// `nodeHandler`'s work; `Err` carries the status and message of the error reply.
pub(crate) async fn node_report(ctx: &Context, node: &str) -> Result<NodeReport, (u16, String)> {
    let mut warnings = Warnings::default();
    let producers = match fetch_producers(ctx).await {
        Ok(p) => {
            warnings.note(&p);
            p.value
        }
        Err(e) => return Err((502, format!("UPSTREAM_ERROR: {e}"))),
    };
    let Some(producer) = producers.into_iter().find(|p| p.http_address() == node) else {
        return Err((404, "NODE_NOT_FOUND".to_owned()));
    };
    let stats = ctx.cluster.nsqd_stats(&[producer], "", "", true).await;
    let topics = match stats {
        Ok(Partial { value, errors }) if errors.is_empty() => value.0,
        Ok(partial) => {
            return Err((
                502,
                format!("UPSTREAM_ERROR: {}", partial.message().unwrap_or_default()),
            ))
        }
        Err(e) => return Err((502, format!("UPSTREAM_ERROR: {e}"))),
    };
    let total_clients = topics
        .iter()
        .flat_map(|t| t.channels.iter().flatten())
        .map(|c| c.clients.as_ref().map_or(0, Vec::len))
        .sum();
    let total_messages = topics.iter().map(|t| t.message_count).sum();
    Ok(NodeReport {
        node: node.to_owned(),
        topics,
        total_messages,
        total_clients,
        message: warnings.message(),
    })
}

async fn node(ctx: &Context, node: &str) -> Reply {
    match node_report(ctx, node).await {
        Ok(report) => Reply::json(&report),
        Err((status, message)) => Reply::error(status, &message),
    }
}

#[derive(Serialize)]
struct CounterStats {
    node: String,
    topic_name: String,
    channel_name: String,
    message_count: u64,
}

async fn counter(ctx: &Context) -> Reply {
    let mut warnings = Warnings::default();
    let producers = fetched!(
        fetch_producers(ctx).await,
        warnings,
        "counter producer list"
    );
    let (_, channels) = fetched!(
        ctx.cluster.nsqd_stats(&producers, "", "", false).await,
        warnings,
        "nsqd stats"
    );
    let mut stats: BTreeMap<String, CounterStats> = BTreeMap::new();
    for channel in channels.values() {
        for node in channel.nodes.iter().flatten() {
            let key = format!(
                "{}:{}:{}",
                channel.topic_name, channel.channel_name, node.node
            );
            stats
                .entry(key)
                .or_insert_with(|| CounterStats {
                    node: node.node.clone(),
                    topic_name: channel.topic_name.clone(),
                    channel_name: channel.channel_name.clone(),
                    message_count: 0,
                })
                .message_count += node.message_count;
        }
    }
    #[derive(Serialize)]
    struct Counter {
        stats: BTreeMap<String, CounterStats>,
    }
    Reply::json(&WithMessage {
        inner: Counter { stats },
        message: warnings.message(),
    })
}

async fn graphite(ctx: &Context, req: &AdminRequest) -> Reply {
    if req.param("metric").as_deref() != Some("rate") {
        return Reply::error(400, "INVALID_ARG_METRIC");
    }
    let Some(target) = req.param("target") else {
        return Reply::error(400, "INVALID_ARG_TARGET");
    };
    let options = ctx.options();
    let interval = options.statsd_interval.as_secs();
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("format", "json")
        .append_pair("from", &format!("-{}sec", interval * 2))
        .append_pair("target", &target)
        .append_pair("until", &format!("-{interval}sec"))
        .finish();
    let url = format!("{}/render?{query}", options.graphite_url);
    tracing::info!("GRAPHITE: {url}");
    #[derive(Deserialize)]
    struct Series {
        datapoints: Vec<Vec<Option<f64>>>,
    }
    let rate = match ctx.cluster.client.get_json::<Vec<Series>>(&url).await {
        Ok(series) => series
            .first()
            .and_then(|s| s.datapoints.first())
            .and_then(|p| p.first().copied().flatten()),
        Err(e) => {
            tracing::error!("graphite request failed - {e}");
            return Reply::error(500, "INTERNAL_ERROR");
        }
    };
    let Some(rate) = rate else {
        return Reply::error(500, "INTERNAL_ERROR");
    };
    let text = if rate < 0.0 || interval == 0 {
        "N/A".to_owned()
    } else {
        format!("{:.2}", rate / interval as f64)
    };
    Reply::json(&serde_json::json!({ "rate": text }))
}

fn history_json(ctx: &Context, topic: &str, channel: &str) -> Reply {
    let points = ctx.history_points(topic, channel);
    let rates: Vec<Value> = history::rates(&points)
        .into_iter()
        .map(|(at_ms, rate)| serde_json::json!({ "at_ms": at_ms, "rate": rate }))
        .collect();
    let points: Vec<Value> = points
        .iter()
        .map(|p| serde_json::json!({ "at_ms": p.at_ms, "depth": p.depth, "in_flight": p.in_flight, "message_count": p.message_count }))
        .collect();
    let interval_ms = u64::try_from(ctx.options().sample_interval.as_millis()).unwrap_or(u64::MAX);
    Reply::json(&serde_json::json!({
        "topic": topic, "channel": channel, "interval_ms": interval_ms, "points": points, "rates": rates,
    }))
}

/// upstream's `isAuthorizedAdminRequest`.
pub(crate) fn is_admin(ctx: &Context, req: &AdminRequest) -> bool {
    let options = ctx.options();
    if options.admin_users.is_empty() {
        return true;
    }
    let user = req.header(&options.acl_http_header).unwrap_or_default();
    options.admin_users.iter().any(|u| u == user)
}

/// Decodes the first JSON value of a body, as Go's `json.NewDecoder(body).Decode` does.
fn decode_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("EOF".to_owned());
    }
    match serde_json::Deserializer::from_slice(body)
        .into_iter::<T>()
        .next()
    {
        Some(Ok(value)) => Ok(value),
        Some(Err(e)) => Err(e.to_string()),
        None => Err("EOF".to_owned()),
    }
}

fn notify(ctx: &Context, req: &AdminRequest, action: &str, topic: &str, channel: &str, node: &str) {
    let Some(notifier) = &ctx.notifier else {
        return;
    };
    let scheme = if req.header("X-Scheme") == Some("https") {
        "https"
    } else {
        "http"
    };
    let mut url = format!(
        "{scheme}://{}{}",
        req.header("Host").unwrap_or_default(),
        req.raw_path
    );
    if !req.query.is_empty() {
        url = format!("{url}?{}", req.query);
    }
    notifier.notify(AdminAction {
        action: action.to_owned(),
        topic: topic.to_owned(),
        channel: channel.to_owned(),
        node: node.to_owned(),
        timestamp: now_unix(),
        user: basic_auth_user(req.header("Authorization")),
        remote_ip: req.remote.to_string(),
        user_agent: req.header("User-Agent").unwrap_or_default().to_owned(),
        url,
        via: ctx.hostname.clone(),
    });
}

/// The reply to an action: warnings in `message`, or 502.
fn action_reply(what: &str, outcome: Result<Outcome, String>) -> Reply {
    match outcome {
        Ok(Outcome::Done) => Reply::json(&MessageOnly {
            message: String::new(),
        }),
        Ok(Outcome::Partial(text)) => {
            tracing::warn!("{text}");
            Reply::json(&MessageOnly {
                message: format!("WARNING: {text}"),
            })
        }
        Err(e) => {
            tracing::error!("failed to {what} - {e}");
            Reply::error(502, &format!("UPSTREAM_ERROR: {e}"))
        }
    }
}

async fn create_topic_channel(ctx: &Context, req: &AdminRequest) -> Reply {
    if !is_admin(ctx, req) {
        return Reply::error(403, "FORBIDDEN");
    }
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Body {
        topic: String,
        channel: String,
    }
    let body: Body = match decode_body(&req.body) {
        Ok(body) => body,
        Err(e) => return Reply::error(400, &e),
    };
    if !is_valid_topic_name(&body.topic) {
        return Reply::error(400, "INVALID_TOPIC");
    }
    if !body.channel.is_empty() && !is_valid_channel_name(&body.channel) {
        return Reply::error(400, "INVALID_CHANNEL");
    }
    let (lookupds, nsqds) = ctx.addresses();
    let outcome = ctx
        .cluster
        .create_topic_channel(&body.topic, &body.channel, &lookupds, &nsqds)
        .await;
    let failed = outcome.is_err();
    let reply = action_reply("create topic/channel", outcome);
    if !failed {
        notify(ctx, req, "create_topic", &body.topic, "", "");
        if !body.channel.is_empty() {
            notify(ctx, req, "create_channel", &body.topic, &body.channel, "");
        }
    }
    reply
}

async fn topic_channel_action(
    ctx: &Context,
    req: &AdminRequest,
    topic: &str,
    channel: &str,
) -> Reply {
    if !is_admin(ctx, req) {
        return Reply::error(403, "FORBIDDEN");
    }
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Body {
        action: String,
    }
    let body: Body = match decode_body(&req.body) {
        Ok(body) => body,
        Err(e) => return Reply::error(400, &e),
    };
    let verb = match body.action.as_str() {
        "pause" => Verb::Pause,
        "unpause" => Verb::Unpause,
        "empty" => Verb::Empty,
        _ => return Reply::error(400, "INVALID_ACTION"),
    };
    let (lookupds, nsqds) = ctx.addresses();
    let outcome = ctx
        .cluster
        .act(verb, topic, channel, &lookupds, &nsqds)
        .await;
    let kind = if channel.is_empty() {
        "topic"
    } else {
        "channel"
    };
    // Upstream notifies whether or not the brokers could be reached.
    notify(
        ctx,
        req,
        &format!("{}_{kind}", body.action),
        topic,
        channel,
        "",
    );
    action_reply(&format!("{} topic/channel", body.action), outcome)
}

async fn tombstone_node(ctx: &Context, req: &AdminRequest, node: &str) -> Reply {
    if !is_admin(ctx, req) {
        return Reply::error(403, "FORBIDDEN");
    }
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Body {
        topic: String,
    }
    let Ok(body) = decode_body::<Body>(&req.body) else {
        return Reply::error(400, "INVALID_BODY");
    };
    if !is_valid_topic_name(&body.topic) {
        return Reply::error(400, "INVALID_TOPIC");
    }
    let (lookupds, _) = ctx.addresses();
    let outcome = ctx
        .cluster
        .tombstone_node_for_topic(&body.topic, node, &lookupds)
        .await;
    let failed = outcome.is_err();
    let reply = action_reply("tombstone node for topic", outcome);
    if !failed {
        notify(ctx, req, "tombstone_topic_producer", &body.topic, "", node);
    }
    reply
}

async fn delete_topic(ctx: &Context, req: &AdminRequest, topic: &str) -> Reply {
    if !is_admin(ctx, req) {
        return Reply::error(403, "FORBIDDEN");
    }
    let (lookupds, nsqds) = ctx.addresses();
    let outcome = ctx.cluster.delete_topic(topic, &lookupds, &nsqds).await;
    let failed = outcome.is_err();
    let reply = action_reply("delete topic", outcome);
    if !failed {
        notify(ctx, req, "delete_topic", topic, "", "");
    }
    reply
}

async fn delete_channel(ctx: &Context, req: &AdminRequest, topic: &str, channel: &str) -> Reply {
    if !is_admin(ctx, req) {
        return Reply::error(403, "FORBIDDEN");
    }
    let (lookupds, nsqds) = ctx.addresses();
    let outcome = ctx
        .cluster
        .delete_channel(topic, channel, &lookupds, &nsqds)
        .await;
    let failed = outcome.is_err();
    let reply = action_reply("delete channel", outcome);
    if !failed {
        notify(ctx, req, "delete_channel", topic, channel, "");
    }
    reply
}

/// `GET|PUT /config/:opt` (`doConfig`).
pub(crate) fn config(ctx: &Context, opt: &str, req: &AdminRequest) -> Reply {
    if let Some(cidr) = &ctx.config_cidr {
        if !cidr.contains(req.remote.ip()) {
            return Reply::error(403, "FORBIDDEN");
        }
    }
    if req.method == "PUT" {
        if req.body_too_big || req.body.is_empty() {
            return Reply::error(413, "INVALID_VALUE");
        }
        let mut options = ctx.options();
        match opt {
            "nsqlookupd_http_addresses" => match serde_json::from_slice::<Vec<String>>(&req.body) {
                Ok(list) => options.lookupd_http_addresses = list,
                Err(_) => return Reply::error(400, "INVALID_VALUE"),
            },
            "log_level" => match LogLevel::parse(&String::from_utf8_lossy(&req.body)) {
                Ok(level) => {
                    options.log_level = level;
                    crate::log::set_level(level);
                }
                Err(_) => return Reply::error(400, "INVALID_VALUE"),
            },
            _ => return Reply::error(400, "INVALID_OPTION"),
        }
        ctx.set_options(options);
    }
    match option_value(&ctx.options(), opt) {
        Some(value) => Reply::json(&value),
        None => Reply::error(400, "INVALID_OPTION"),
    }
}

/// An option by its config name (upstream's `getOptByCfgName`); durations in nanoseconds.
fn option_value(o: &crate::Options, name: &str) -> Option<Value> {
    let ns = |d: std::time::Duration| Value::from(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let value = match name {
        "log_level" => Value::from(o.log_level.as_int()),
        "log_prefix" => Value::from(o.log_prefix.clone()),
        "verbose" | "proxy_graphite" => Value::from(name == "proxy_graphite" && o.proxy_graphite),
        "http_address" => Value::from(o.http_address.clone()),
        "base_path" => Value::from(o.base_path.clone()),
        "graphite_url" => Value::from(o.graphite_url.clone()),
        "statsd_prefix" => Value::from(o.statsd_prefix.clone()),
        "statsd_counter_format" => Value::from(o.statsd_counter_format.clone()),
        "statsd_gauge_format" => Value::from(o.statsd_gauge_format.clone()),
        "statsd_interval" => ns(o.statsd_interval),
        "nsqlookupd_http_addresses" => Value::from(o.lookupd_http_addresses.clone()),
        "nsqd_http_addresses" => Value::from(o.nsqd_http_addresses.clone()),
        "http_client_connect_timeout" => ns(o.http_client_connect_timeout),
        "http_client_request_timeout" => ns(o.http_client_request_timeout),
        "http_client_tls_insecure_skip_verify" => {
            Value::from(o.http_client_tls_insecure_skip_verify)
        }
        "http_client_tls_root_ca_file" => Value::from(o.http_client_tls_root_ca_file.clone()),
        "http_client_tls_cert" => Value::from(o.http_client_tls_cert.clone()),
        "http_client_tls_key" => Value::from(o.http_client_tls_key.clone()),
        "allow_config_from_cidr" => Value::from(o.allow_config_from_cidr.clone()),
        "notification_http_endpoint" => Value::from(o.notification_http_endpoint.clone()),
        "acl_http_header" => Value::from(o.acl_http_header.clone()),
        "admin_users" => Value::from(o.admin_users.clone()),
        "sample_interval" => ns(o.sample_interval),
        "sample_history" => Value::from(o.sample_history),
        _ => return None,
    };
    Some(value)
}
