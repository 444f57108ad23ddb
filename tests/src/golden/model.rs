//! The golden files' JSON shapes (`../shared/golden/README.md`), read strictly: an unknown key
//! fails the load, so a format change can never make the replayer silently skip a check.

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Deserialize;

/// One scenario of `tcp_v2.jsonl` / `lookup_v1.jsonl`: a fresh daemon, then the steps.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpScenario {
    /// Unique name (used by `GOLDEN_ONLY`).
    pub name: String,
    /// What it shows.
    #[serde(default)]
    pub description: Option<String>,
    /// `nsqd` or `nsqlookupd`.
    pub daemon: String,
    /// Extra daemon flags.
    #[serde(default)]
    pub flags: Vec<String>,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// One TCP step: a send, a half-close, an expectation, or an HTTP request with checks.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Connection name; absent = the default connection.
    #[serde(default)]
    pub conn: Option<String>,
    /// Bytes to write (golden encoding).
    #[serde(default)]
    pub send: Option<String>,
    /// Overwrites within `send` before writing.
    #[serde(default)]
    pub fill: Vec<Fill>,
    /// Half-close the connection.
    #[serde(default)]
    pub shutdown_write: bool,
    /// Frames to read, in order.
    #[serde(default)]
    pub expect: Option<Vec<ExpectedFrame>>,
    /// Whether the server then closes the connection.
    #[serde(default)]
    pub close: Option<bool>,
    /// Masks for `expect`.
    #[serde(default)]
    pub variable: Vec<FrameVariable>,
    /// Wait for the frames up to this long (default 3000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// `deflate`: the server's stream is raw DEFLATE after this step's frames.
    #[serde(default)]
    pub switch_to: Option<String>,
    /// The frames listed were inflated from the wire (informational).
    #[serde(default)]
    pub inflated: Option<bool>,
    /// The compressed bytes upstream sent (informational).
    #[serde(default)]
    pub wire: Option<String>,
    /// An HTTP request to the same daemon.
    #[serde(default)]
    pub http: Option<HttpRequest>,
    /// Expected status of `http`.
    #[serde(default)]
    pub status: Option<u16>,
    /// Checks on the JSON reply of `http`.
    #[serde(default)]
    pub checks: Vec<Check>,
}

/// `{"at", "len", "from": "last_message_id"}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fill {
    /// Offset in the send bytes.
    pub at: usize,
    /// Bytes to overwrite (16 for an id).
    pub len: usize,
    /// Source; only `last_message_id` exists.
    pub from: String,
}

/// An expected frame. `raw` is authoritative; `data`/`json` are decoded views of it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedFrame {
    /// `response`, `error` or `message` (absent for lookup V1 replies).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Decoded payload (informational).
    #[serde(default)]
    pub data: Option<serde_json::Value>,
    /// Parsed JSON payload (informational).
    #[serde(default)]
    pub json: Option<serde_json::Value>,
    /// The whole frame, golden-encoded.
    pub raw: String,
}

/// `{"frame": i, "bytes": [a, b]}` or `{"frame": i, "json": "key"}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameVariable {
    /// Index into the step's frames.
    pub frame: usize,
    /// Variable byte range `a..b` of the raw frame.
    #[serde(default)]
    pub bytes: Option<[usize; 2]>,
    /// Variable top-level key of the JSON payload.
    #[serde(default)]
    pub json: Option<String>,
    /// What the range holds (informational).
    #[serde(default)]
    pub what: Option<String>,
}

/// The request of an `http` step.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRequest {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Body (golden encoding).
    #[serde(default)]
    pub body: String,
}

/// `{"select", "keys", "result"}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// Dot path into the JSON reply.
    pub select: String,
    /// Keys to compare; `None` = the whole value.
    pub keys: Option<Vec<String>>,
    /// Expected value, restricted to `keys`.
    pub result: serde_json::Value,
}

/// One line of `http_nsqd.jsonl` / `http_lookupd.jsonl`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpLine {
    /// Unique name.
    pub name: String,
    /// What it shows.
    #[serde(default)]
    pub description: Option<String>,
    /// TCP steps to run first (their connections stay open to the end of the file).
    #[serde(default)]
    pub setup: Vec<Step>,
    /// Method, or `RAW` for raw bytes to the HTTP port.
    pub method: String,
    /// Path and query (`None` for `RAW`).
    pub path: Option<String>,
    /// Request body, or the raw bytes for `RAW` (golden encoding).
    #[serde(default)]
    pub body: Option<String>,
    /// Expected status.
    pub status: u16,
    /// `Content-Type` and `X-NSQ-Content-Type` when present.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Expected body (golden encoding); `None` when not recorded (`$body`).
    pub response_body: Option<String>,
    /// Masks.
    #[serde(default)]
    pub variable: Vec<Variable>,
    /// JSON paths of arrays compared as multisets.
    #[serde(default)]
    pub unordered: Vec<String>,
}

/// An HTTP `variable` entry.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Variable {
    /// A JSON path (`*` = any key or index), or `$body`.
    Path(String),
    /// A multi-line regex applied to text bodies.
    Regex {
        /// The pattern.
        regex: String,
    },
}

/// Reads a JSON-lines file.
///
/// # Errors
/// The file is missing or a line does not match the model (the line number is given).
pub fn load_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("read {path:?}: {e}"))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| format!("{path:?} line {}: {e}", i + 1))
        })
        .collect()
}

/// The daemon flags `servers.json` gives for a file (`null` = none).
///
/// # Errors
/// `servers.json` is missing or has no entry for `file`.
pub fn server_flags(golden_dir: &Path, file: &str) -> Result<Vec<String>, String> {
    let path = golden_dir.join("servers.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("read {path:?}: {e}"))?;
    let servers: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{path:?}: {e}"))?;
    let entry = servers
        .get(file)
        .ok_or_else(|| format!("{path:?} has no entry for {file}"))?;
    match entry.get("flags") {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(flags) => {
            serde_json::from_value(flags.clone()).map_err(|e| format!("{file} flags: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_golden_file_loads_with_the_strict_model() {
        let dir = crate::bins::golden_dir();
        let tcp: Vec<TcpScenario> = load_jsonl(&dir.join("tcp_v2.jsonl")).unwrap();
        let lookup: Vec<TcpScenario> = load_jsonl(&dir.join("lookup_v1.jsonl")).unwrap();
        let http: Vec<HttpLine> = load_jsonl(&dir.join("http_nsqd.jsonl")).unwrap();
        let http_lookup: Vec<HttpLine> = load_jsonl(&dir.join("http_lookupd.jsonl")).unwrap();
        assert!(
            tcp.len() >= 70 && lookup.len() >= 10,
            "{} {}",
            tcp.len(),
            lookup.len()
        );
        assert!(http.len() >= 100 && http_lookup.len() >= 40);
        assert!(http.iter().any(|l| !l.setup.is_empty()));
        assert!(http
            .iter()
            .flat_map(|l| &l.variable)
            .any(|v| matches!(v, Variable::Regex { .. })));
    }

    #[test]
    fn server_flags_follow_servers_json() {
        let dir = crate::bins::golden_dir();
        let flags = server_flags(&dir, "http_nsqd.jsonl").unwrap();
        assert_eq!(flags, ["--max-msg-size=100", "--max-body-size=1000"]);
        assert!(server_flags(&dir, "tcp_v2.jsonl").unwrap().is_empty());
        assert!(server_flags(&dir, "nope.jsonl").is_err());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let line = r#"{"send": "x", "sned": "typo"}"#;
        assert!(serde_json::from_str::<Step>(line).is_err());
    }
}
