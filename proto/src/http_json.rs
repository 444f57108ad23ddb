//! The JSON shapes of the HTTP APIs of nsqd and nsqlookupd: types only, no HTTP.
//!
//! Mirrors upstream v1.3.0 `nsqlookupd/http.go` (`/lookup`, `/topics`, `/channels`, `/nodes`,
//! `/info`), `nsqd/http.go` (`/info`, `/stats?format=json`), `nsqd/stats.go` (`TopicStats`,
//! `ChannelStats`, `ClientV2Stats`, `PubCount`), `internal/quantile/result.go` and
//! `internal/http_api/api_response.go` (the `{"message": ...}` error body). Field names and
//! their order are upstream's, as recorded in `shared/golden/http_nsqd.jsonl` and
//! `http_lookupd.jsonl`, so serializing these gives upstream's bytes.
//!
//! Every type also deserializes, tolerating missing fields (`#[serde(default)]`) and unknown
//! ones, so utilities can read both Sluice's and upstream nsqd's output. Where upstream writes
//! `null` for an empty Go slice, the field is an `Option<Vec<_>>`: `None` serializes as `null`.

use serde::{Deserialize, Serialize};

use crate::lookup::PeerInfo;

/// The body of every non-200 reply: `{"message":"TOPIC_NOT_FOUND"}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorBody {
    /// Upstream's error word, e.g. `MISSING_ARG_TOPIC`.
    pub message: String,
}

// ---------------------------------------------------------------------------------------------
// nsqlookupd

/// nsqlookupd `GET /lookup?topic=`: the topic's channels and its active, untombstoned producers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LookupResponse {
    /// Channel names registered for the topic.
    pub channels: Vec<String>,
    /// The brokers that have the topic.
    pub producers: Vec<PeerInfo>,
}

/// nsqlookupd `GET /topics`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TopicsResponse {
    /// Every registered topic name.
    pub topics: Vec<String>,
}

/// nsqlookupd `GET /channels?topic=`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ChannelsResponse {
    /// Channel names registered for the topic.
    pub channels: Vec<String>,
}

/// nsqlookupd `GET /nodes`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NodesResponse {
    /// Every active broker, tombstoned or not.
    pub producers: Vec<Node>,
}

/// One broker in `/nodes` (upstream's `node` struct in `nsqlookupd/http.go`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Node {
    /// The address its lookup connection came from.
    pub remote_address: String,
    /// Its host name.
    pub hostname: String,
    /// The address clients connect to.
    pub broadcast_address: String,
    /// Its TCP port.
    pub tcp_port: u16,
    /// Its HTTP port.
    pub http_port: u16,
    /// Its version.
    pub version: String,
    /// For each of `topics`, whether this broker is tombstoned for it.
    pub tombstones: Vec<bool>,
    /// The topics it registered.
    pub topics: Vec<String>,
}

/// nsqlookupd `GET /info`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LookupdInfo {
    /// The version, e.g. `1.3.0`.
    pub version: String,
}

// ---------------------------------------------------------------------------------------------
// nsqd

/// nsqd `GET /info`. Durations are in nanoseconds, as Go marshals `time.Duration`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NsqdInfo {
    /// The version, e.g. `1.3.0`.
    pub version: String,
    /// `--broadcast-address`.
    pub broadcast_address: String,
    /// The OS host name.
    pub hostname: String,
    /// The HTTP port (`--broadcast-http-port` or the bound one).
    pub http_port: u16,
    /// The TCP port (`--broadcast-tcp-port` or the bound one).
    pub tcp_port: u16,
    /// Start time, Unix seconds.
    pub start_time: i64,
    /// `--max-heartbeat-interval` in nanoseconds.
    pub max_heartbeat_interval: u64,
    /// `--max-output-buffer-size` in bytes.
    pub max_output_buffer_size: i64,
    /// `--max-output-buffer-timeout` in nanoseconds.
    pub max_output_buffer_timeout: u64,
    /// `--max-deflate-level`.
    pub max_deflate_level: i64,
}

/// nsqd `GET /stats?format=json`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    /// The version, e.g. `1.3.0`.
    pub version: String,
    /// `OK`, or the health error text.
    pub health: String,
    /// Start time, Unix seconds.
    pub start_time: i64,
    /// The topics, sorted by name. `null` when a `topic=` filter matched nothing.
    pub topics: Option<Vec<TopicStats>>,
    /// Memory figures; absent with `include_mem=false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemStats>,
    /// Publishing connections; `null` when there are none or with `include_clients=false`.
    pub producers: Option<Vec<ClientStats>>,
    /// Sluice only, with `include_storage=true`: each shard's segment log. Absent otherwise, so
    /// the document is upstream's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<Vec<ShardStorage>>,
}

/// One shard's segment log in `/stats?include_storage=true` (Sluice only).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ShardStorage {
    /// The shard.
    pub shard: usize,
    /// Bytes of its segment files.
    pub disk_bytes: u64,
    /// Its segment files.
    pub segments: u64,
    /// Writes to its log since start.
    pub writes: u64,
    /// fsyncs of its log since start.
    pub fsyncs: u64,
}

/// One topic in `/stats` (upstream `TopicStats`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TopicStats {
    /// The topic name.
    pub topic_name: String,
    /// Its channels, sorted by name (`[]` when none).
    pub channels: Vec<ChannelStats>,
    /// Messages waiting (memory and disk).
    pub depth: i64,
    /// Messages waiting on disk.
    pub backend_depth: i64,
    /// Messages published since start.
    pub message_count: u64,
    /// Body bytes published since start.
    pub message_bytes: u64,
    /// Whether the topic is paused.
    pub paused: bool,
    /// End-to-end processing latency quantiles.
    pub e2e_processing_latency: E2eProcessingLatency,
}

/// One channel in `/stats` (upstream `ChannelStats`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ChannelStats {
    /// The channel name.
    pub channel_name: String,
    /// Messages waiting (memory and disk).
    pub depth: i64,
    /// Messages waiting on disk.
    pub backend_depth: i64,
    /// Messages delivered and not yet finished.
    pub in_flight_count: i64,
    /// Messages deferred (DPUB or REQ with a delay).
    pub deferred_count: i64,
    /// Messages the channel received since start.
    pub message_count: u64,
    /// Requeues since start.
    pub requeue_count: u64,
    /// In-flight timeouts since start.
    pub timeout_count: u64,
    /// Subscribed connections.
    pub client_count: i64,
    /// The subscribed connections; `null` with `include_clients=false`.
    pub clients: Option<Vec<ClientStats>>,
    /// Whether the channel is paused.
    pub paused: bool,
    /// End-to-end processing latency quantiles.
    pub e2e_processing_latency: E2eProcessingLatency,
}

/// One client connection in `/stats` (upstream v1.3.0 `ClientV2Stats`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientStats {
    /// IDENTIFY `client_id`.
    pub client_id: String,
    /// IDENTIFY `hostname`.
    pub hostname: String,
    /// The protocol, `V2`.
    pub version: String,
    /// The peer address (`ip:port`).
    pub remote_address: String,
    /// Connection state: 0 init, 1 disconnected, 2 connected, 3 subscribed, 4 closing.
    pub state: i32,
    /// The client's RDY count.
    pub ready_count: i64,
    /// Messages in flight to this client.
    pub in_flight_count: i64,
    /// Messages delivered to this client.
    pub message_count: u64,
    /// FINs from this client.
    pub finish_count: u64,
    /// REQs from this client.
    pub requeue_count: u64,
    /// Connect time, Unix seconds.
    pub connect_ts: i64,
    /// IDENTIFY `sample_rate`.
    pub sample_rate: i32,
    /// Whether deflate was negotiated.
    pub deflate: bool,
    /// Whether snappy was negotiated.
    pub snappy: bool,
    /// IDENTIFY `user_agent`.
    pub user_agent: String,
    /// Whether AUTH succeeded (omitted when false).
    #[serde(skip_serializing_if = "is_false")]
    pub authed: bool,
    /// The identity the auth server gave (omitted when empty).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub auth_identity: String,
    /// The identity URL the auth server gave (omitted when empty).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub auth_identity_url: String,
    /// Messages published per topic by this connection (omitted when empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pub_counts: Vec<PubCount>,
    /// Whether TLS was negotiated.
    pub tls: bool,
    /// The TLS cipher suite name.
    pub tls_cipher_suite: String,
    /// The TLS version name.
    pub tls_version: String,
    /// The negotiated ALPN protocol.
    pub tls_negotiated_protocol: String,
    /// Whether the ALPN protocol was mutually agreed.
    pub tls_negotiated_protocol_is_mutual: bool,
}

/// Messages a producer published to one topic (upstream `PubCount`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PubCount {
    /// The topic.
    pub topic: String,
    /// Messages published to it.
    pub count: u64,
}

/// End-to-end processing latency (upstream `quantile.Result`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct E2eProcessingLatency {
    /// Samples in the window.
    pub count: i64,
    /// The configured quantiles; `null` when `--e2e-processing-latency-percentile` is unset.
    pub percentiles: Option<Vec<Percentile>>,
}

/// One quantile of [`E2eProcessingLatency`] (upstream writes a `map[string]float64`, keys
/// sorted).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Percentile {
    /// The quantile, e.g. 0.99.
    pub quantile: f64,
    /// The latency at that quantile, nanoseconds.
    pub value: f64,
}

/// The `memory` object of `/stats` (upstream `memStats`, Go runtime figures; a non-Go server
/// fills what it can measure).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MemStats {
    /// Live heap objects.
    pub heap_objects: u64,
    /// Idle heap bytes.
    pub heap_idle_bytes: u64,
    /// In-use heap bytes.
    pub heap_in_use_bytes: u64,
    /// Heap bytes returned to the OS.
    pub heap_released_bytes: u64,
    /// GC pause, 100th percentile, microseconds.
    pub gc_pause_usec_100: u64,
    /// GC pause, 99th percentile, microseconds.
    pub gc_pause_usec_99: u64,
    /// GC pause, 95th percentile, microseconds.
    pub gc_pause_usec_95: u64,
    /// Heap size of the next GC.
    pub next_gc_bytes: u64,
    /// GC runs.
    pub gc_total_runs: u32,
}

fn is_false(value: &bool) -> bool {
    !*value
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `response_body` of the named line of a golden HTTP file.
    fn golden_body(file: &str, name: &str) -> String {
        let path = format!("{}/../../shared/golden/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        let line = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no line {name} in {file}"));
        line["response_body"].as_str().unwrap().to_owned()
    }

    /// Deserializing a golden body and serializing it again gives the same bytes.
    fn round_trips<T: Serialize + serde::de::DeserializeOwned>(file: &str, name: &str) {
        let body = golden_body(file, name);
        let value: T = serde_json::from_str(&body).unwrap();
        assert_eq!(serde_json::to_string(&value).unwrap(), body, "{name}");
    }

    #[test]
    fn lookupd_shapes_are_upstreams() {
        let file = "http_lookupd.jsonl";
        round_trips::<LookupResponse>(file, "lookup_found");
        round_trips::<LookupResponse>(file, "lookup_created_topic");
        round_trips::<TopicsResponse>(file, "topics_after_delete");
        round_trips::<ChannelsResponse>(file, "channels");
        round_trips::<NodesResponse>(file, "nodes");
        round_trips::<NodesResponse>(file, "nodes_empty");
        round_trips::<LookupdInfo>(file, "info");
        round_trips::<ErrorBody>(file, "lookup_not_found");
    }

    #[test]
    fn nsqd_shapes_are_upstreams() {
        let file = "http_nsqd.jsonl";
        round_trips::<NsqdInfo>(file, "info");
        for name in [
            "stats_json",
            "stats_json_no_clients",
            "stats_json_no_mem",
            "stats_json_unknown_topic",
            "stats_json_topic_channel_filter",
        ] {
            round_trips::<Stats>(file, name);
        }
    }

    #[test]
    fn missing_fields_take_defaults() {
        let stats: Stats = serde_json::from_str(r#"{"version":"1.2.1","topics":[{"topic_name":"t","channels":[{"channel_name":"c"}]}]}"#).unwrap();
        let topics = stats.topics.unwrap();
        assert_eq!(topics[0].channels[0].channel_name, "c");
        assert_eq!(topics[0].channels[0].clients, None);
        assert!(stats.memory.is_none());
        let client = ClientStats {
            pub_counts: vec![PubCount {
                topic: "t".into(),
                count: 1,
            }],
            authed: true,
            ..ClientStats::default()
        };
        let text = serde_json::to_string(&client).unwrap();
        assert!(text.contains(r#""user_agent":"","authed":true,"pub_counts":[{"topic":"t","count":1}],"tls":false"#), "{text}");
    }

    #[test]
    fn percentiles_keep_upstream_keys() {
        let e2e = E2eProcessingLatency {
            count: 2,
            percentiles: Some(vec![Percentile {
                quantile: 0.99,
                value: 1500.0,
            }]),
        };
        let text = serde_json::to_string(&e2e).unwrap();
        assert_eq!(
            text,
            r#"{"count":2,"percentiles":[{"quantile":0.99,"value":1500.0}]}"#
        );
        assert_eq!(
            serde_json::from_str::<E2eProcessingLatency>(&text).unwrap(),
            e2e
        );
    }
}
