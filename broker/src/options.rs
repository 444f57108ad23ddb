//! `sluiced` options: upstream nsqd's flag names, defaults and meanings (`nsqd/options.go`).
//!
//! [`Options::from_args`] turns argv (and an optional TOML `--config`) into [`Options`]; the
//! runtime never sees a flag. Flags of features not built yet (none at present: see `NOT_YET`)
//! are refused with a clear message rather than silently ignored. Files named by flags (TLS certificates) are read when
//! the broker starts ([`crate::conn::tls::prepare`]), not here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use sluice_proto::Limits;

use crate::flags::{self, format_duration, Flag, FlagError, Kind, Parsed, Values};

/// The version line printed by `--version`.
pub const VERSION_LINE: &str = concat!(
    "sluiced v",
    env!("CARGO_PKG_VERSION"),
    " (nsqd v1.3.0 compatible)"
);

/// The version reported in IDENTIFY and `/info` (what clients compare against nsqd's).
pub const NSQ_VERSION: &str = "1.3.0";

/// When to fsync the segment log (see the segment log issue); kept here for flag parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// fsync after `--sync-every` messages or `--sync-timeout`, as upstream.
    Periodic,
    /// Acknowledge a publish only after fdatasync (group commit).
    Always,
}

/// Log verbosity, upstream's levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// `debug`
    Debug,
    /// `info`
    Info,
    /// `warn`
    Warn,
    /// `error`
    Error,
    /// `fatal`
    Fatal,
}

impl LogLevel {
    /// Parses upstream's level names (case-insensitive).
    pub fn parse(text: &str) -> Option<LogLevel> {
        match text.to_ascii_lowercase().as_str() {
            "debug" => Some(LogLevel::Debug),
            "info" => Some(LogLevel::Info),
            "warn" => Some(LogLevel::Warn),
            "error" => Some(LogLevel::Error),
            "fatal" => Some(LogLevel::Fatal),
            _ => None,
        }
    }

    /// The name as upstream prints it in `/config/log_level`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Fatal => "fatal",
        }
    }
}

/// `--tls-required`, upstream's `TLSNotRequired`, `TLSRequiredExceptHTTP`, `TLSRequired`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsRequired {
    /// `false`: TLS is offered, not required.
    No,
    /// `tcp-https`: TCP clients must upgrade to TLS before any command but IDENTIFY; plain HTTP
    /// is still served.
    TcpHttps,
    /// `true`: as `tcp-https`, and plain HTTP answers 403 `TLS_REQUIRED`.
    Yes,
}

/// `--tls-client-auth-policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthPolicy {
    /// No policy: no client certificate is asked for (upstream `tls.NoClientCert`).
    None,
    /// `require`: a client certificate is required but not verified.
    Require,
    /// `require-verify`: a client certificate is required and verified against
    /// `--tls-root-ca-file`.
    RequireVerify,
}

/// `--tls-min-version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMinVersion {
    /// `ssl3.0`, `tls1.0`, `tls1.1` or `tls1.2`: TLS 1.2 and 1.3 are offered (rustls implements
    /// nothing older; see the README).
    Tls12,
    /// `tls1.3`: only TLS 1.3.
    Tls13,
}

/// The TLS, HTTPS and auth options (upstream's `--tls-*`, `--https-address`,
/// `--auth-http-address`, `--http-client-*-timeout`).
#[derive(Debug, Clone)]
pub struct SecurityOptions {
    /// `--https-address`
    pub https_address: SocketAddr,
    /// `--tls-cert`
    pub tls_cert: PathBuf,
    /// `--tls-key`
    pub tls_key: PathBuf,
    /// `--tls-root-ca-file`
    pub tls_root_ca_file: PathBuf,
    /// `--tls-client-auth-policy`
    pub tls_client_auth_policy: ClientAuthPolicy,
    /// `--tls-required` (forced to `true` by a client auth policy, as upstream does)
    pub tls_required: TlsRequired,
    /// `--tls-min-version`
    pub tls_min_version: TlsMinVersion,
    /// The TLS configuration built from the files above when the broker starts; `None` when no
    /// certificate is configured (or before start).
    pub tls_config: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// `--auth-http-address` (repeatable)
    pub auth_http_addresses: Vec<String>,
    /// `--http-client-connect-timeout`
    pub http_client_connect_timeout: Duration,
    /// `--http-client-request-timeout`
    pub http_client_request_timeout: Duration,
    /// The roots the auth client trusts for `https://` auth servers (`--tls-root-ca-file`, or
    /// the system's bundle), built when the broker starts if an address needs them.
    pub auth_client_tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl SecurityOptions {
    /// Whether a TLS certificate and key are configured.
    pub fn tls_configured(&self) -> bool {
        !self.tls_cert.as_os_str().is_empty() || !self.tls_key.as_os_str().is_empty()
    }

    /// Whether AUTH is required (upstream `IsAuthEnabled`).
    pub fn auth_enabled(&self) -> bool {
        !self.auth_http_addresses.is_empty()
    }
}

/// The statsd options (upstream's `--statsd-*`, `nsqd/options.go`); see [`crate::metrics::statsd`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsdOptions {
    /// `--statsd-address`: UDP `<addr>:<port>`; empty means statsd is off.
    pub address: String,
    /// `--statsd-interval`
    pub interval: Duration,
    /// `--statsd-prefix`, before the `%s` expansion (done once the HTTP port is bound).
    pub prefix: String,
    /// `--statsd-mem-stats`
    pub mem_stats: bool,
    /// `--statsd-udp-packet-size`
    pub udp_packet_size: usize,
    /// `--statsd-exclude-ephemeral`
    pub exclude_ephemeral: bool,
}

/// Every option of the broker.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--tcp-address`
    pub tcp_address: SocketAddr,
    /// `--http-address`
    pub http_address: SocketAddr,
    /// `--broadcast-address` (default: the host name)
    pub broadcast_address: String,
    /// `--broadcast-tcp-port` (0: the bound TCP port)
    pub broadcast_tcp_port: u16,
    /// `--broadcast-http-port` (0: the bound HTTP port)
    pub broadcast_http_port: u16,
    /// `--lookupd-tcp-address` (repeatable)
    pub lookupd_tcp_addresses: Vec<String>,
    /// `--data-path` (default: the working directory, as upstream)
    pub data_path: PathBuf,
    /// `--mem-queue-size`
    pub mem_queue_size: usize,
    /// `--max-bytes-per-file`
    pub max_bytes_per_file: u64,
    /// `--sync-every`
    pub sync_every: u64,
    /// `--sync-timeout`
    pub sync_timeout: Duration,
    /// `--sync-mode` (ours): `periodic` (upstream) or `always`.
    pub sync_mode: SyncMode,
    /// `--msg-timeout`, `--max-msg-timeout`, `--max-msg-size`, `--max-body-size`,
    /// `--max-req-timeout`, `--max-rdy-count`, `--max-heartbeat-interval`,
    /// `--max-output-buffer-size`, `--output-buffer-timeout`, `--min/--max-output-buffer-timeout`,
    /// `--max-deflate-level`: the bounds the protocol enforces.
    pub limits: Limits,
    /// `--max-channel-consumers` (0: unlimited)
    pub max_channel_consumers: usize,
    /// `--node-id`
    pub node_id: u16,
    /// `--e2e-processing-latency-percentile` (repeatable or comma separated)
    pub e2e_percentiles: Vec<f64>,
    /// `--e2e-processing-latency-window-time`
    pub e2e_window: Duration,
    /// `--log-level`
    pub log_level: LogLevel,
    /// `--log-prefix`
    pub log_prefix: String,
    /// `--snappy` (feature negotiation offered to clients)
    pub snappy: bool,
    /// `--deflate`
    pub deflate: bool,
    /// `--cores` (ours): shards to run; 0 means every CPU the process may use.
    pub cores: usize,
    /// TLS, HTTPS and AUTH.
    pub security: SecurityOptions,
    /// `--statsd-*`
    pub statsd: StatsdOptions,
}

struct FlagSpec {
    name: &'static str,
    kind: Kind,
    default: fn() -> String,
    usage: &'static str,
}

fn s(v: &str) -> String {
    v.to_owned()
}

fn hostname_default() -> String {
    crate::host::hostname()
}

fn node_id_default() -> String {
    crate::host::default_node_id().to_string()
}

/// Flags of features that are not built yet: refused when given (not silently ignored).
const NOT_YET: &[&str] = &[];

const SPECS: &[FlagSpec] = &[
    FlagSpec { name: "auth-http-address", kind: Kind::List, default: String::new, usage: "<addr>:<port> or a full url to query auth server (may be given multiple times)" },
    FlagSpec { name: "broadcast-address", kind: Kind::Str, default: hostname_default, usage: "address that will be registered with lookupd (defaults to the OS hostname)" },
    FlagSpec { name: "broadcast-http-port", kind: Kind::Int, default: String::new, usage: "HTTP port that will be registered with lookupd (defaults to the HTTP port that this nsqd is listening on)" },
    FlagSpec { name: "broadcast-tcp-port", kind: Kind::Int, default: String::new, usage: "TCP port that will be registered with lookupd (defaults to the TCP port that this nsqd is listening on)" },
    FlagSpec { name: "config", kind: Kind::Str, default: String::new, usage: "path to config file" },
    FlagSpec { name: "cores", kind: Kind::Int, default: || s("0"), usage: "number of shards (pinned cores) to run; 0 means every CPU this process may use" },
    FlagSpec { name: "data-path", kind: Kind::Str, default: String::new, usage: "path to store disk-backed messages" },
    FlagSpec { name: "deflate", kind: Kind::Bool, default: || s("true"), usage: "enable deflate feature negotiation (client compression)" },
    FlagSpec { name: "e2e-processing-latency-percentile", kind: Kind::List, default: String::new, usage: "message processing time percentiles (as float (0, 1.0]) to track (can be specified multiple times or comma separated '1.0,0.99,0.95', default none)" },
    FlagSpec { name: "e2e-processing-latency-window-time", kind: Kind::Duration, default: || s("10m0s"), usage: "calculate end to end latency quantiles for this duration of time (ie: 60s would only show quantile calculations from the past 60 seconds)" },
    FlagSpec { name: "http-address", kind: Kind::Str, default: || s("0.0.0.0:4151"), usage: "address to listen on for HTTP clients (<addr>:<port> for TCP/IP)" },
    FlagSpec { name: "http-client-connect-timeout", kind: Kind::Duration, default: || s("2s"), usage: "timeout for HTTP connect" },
    FlagSpec { name: "http-client-request-timeout", kind: Kind::Duration, default: || s("5s"), usage: "timeout for HTTP request" },
    FlagSpec { name: "https-address", kind: Kind::Str, default: || s("0.0.0.0:4152"), usage: "<addr>:<port> to listen on for HTTPS clients" },
    FlagSpec { name: "log-level", kind: Kind::Str, default: || s("INFO"), usage: "set log verbosity: debug, info, warn, error, or fatal" },
    FlagSpec { name: "log-prefix", kind: Kind::Str, default: || s("[sluiced] "), usage: "log message prefix" },
    FlagSpec { name: "lookupd-tcp-address", kind: Kind::List, default: String::new, usage: "lookupd TCP address (may be given multiple times)" },
    FlagSpec { name: "max-body-size", kind: Kind::Int, default: || s("5242880"), usage: "maximum size of a single command body" },
    FlagSpec { name: "max-bytes-per-file", kind: Kind::Int, default: || s("104857600"), usage: "number of bytes per segment file before rolling" },
    FlagSpec { name: "max-channel-consumers", kind: Kind::Int, default: || s("0"), usage: "maximum channel consumer connection count per nsqd instance (default 0, i.e., unlimited)" },
    FlagSpec { name: "max-deflate-level", kind: Kind::Int, default: || s("6"), usage: "max deflate compression level a client can negotiate (> values == > nsqd CPU usage)" },
    FlagSpec { name: "max-heartbeat-interval", kind: Kind::Duration, default: || s("1m0s"), usage: "maximum client configurable duration of time between client heartbeats" },
    FlagSpec { name: "max-msg-size", kind: Kind::Int, default: || s("1048576"), usage: "maximum size of a single message in bytes" },
    FlagSpec { name: "max-msg-timeout", kind: Kind::Duration, default: || s("15m0s"), usage: "maximum duration before a message will timeout" },
    FlagSpec { name: "max-output-buffer-size", kind: Kind::Int, default: || s("65536"), usage: "maximum client configurable size (in bytes) for a client output buffer" },
    FlagSpec { name: "max-output-buffer-timeout", kind: Kind::Duration, default: || s("30s"), usage: "maximum client configurable duration of time between flushing to a client" },
    FlagSpec { name: "max-rdy-count", kind: Kind::Int, default: || s("2500"), usage: "maximum RDY count for a client" },
    FlagSpec { name: "max-req-timeout", kind: Kind::Duration, default: || s("1h0m0s"), usage: "maximum requeuing timeout for a message" },
    FlagSpec { name: "mem-queue-size", kind: Kind::Int, default: || s("10000"), usage: "number of messages to keep in memory (per topic/channel)" },
    FlagSpec { name: "min-output-buffer-timeout", kind: Kind::Duration, default: || s("25ms"), usage: "minimum client configurable duration of time between flushing to a client" },
    FlagSpec { name: "msg-timeout", kind: Kind::Duration, default: || s("1m0s"), usage: "default duration to wait before auto-requeing a message" },
    FlagSpec { name: "node-id", kind: Kind::Int, default: node_id_default, usage: "unique part for message IDs, (int) in range [0,1024) (default is hash of hostname)" },
    FlagSpec { name: "output-buffer-timeout", kind: Kind::Duration, default: || s("250ms"), usage: "default duration of time between flushing data to clients" },
    FlagSpec { name: "queue-scan-interval", kind: Kind::Duration, default: || s("100ms"), usage: "[accepted for compatibility] sluiced pops exactly what is due, it does not scan" },
    FlagSpec { name: "queue-scan-refresh-interval", kind: Kind::Duration, default: || s("5s"), usage: "[accepted for compatibility] no effect" },
    FlagSpec { name: "queue-scan-selection-count", kind: Kind::Int, default: || s("20"), usage: "[accepted for compatibility] no effect" },
    FlagSpec { name: "queue-scan-worker-pool-max", kind: Kind::Int, default: || s("4"), usage: "[accepted for compatibility] no effect" },
    FlagSpec { name: "queue-scan-dirty-percent", kind: Kind::Str, default: || s("0.25"), usage: "[accepted for compatibility] no effect" },
    FlagSpec { name: "snappy", kind: Kind::Bool, default: || s("true"), usage: "enable snappy feature negotiation (client compression)" },
    FlagSpec { name: "statsd-address", kind: Kind::Str, default: String::new, usage: "UDP <addr>:<port> of a statsd daemon for pushing stats" },
    FlagSpec { name: "statsd-exclude-ephemeral", kind: Kind::Bool, default: || s("false"), usage: "Skip ephemeral topics and channels when sending stats to statsd" },
    FlagSpec { name: "statsd-interval", kind: Kind::Duration, default: || s("1m0s"), usage: "duration between pushing to statsd" },
    FlagSpec { name: "statsd-mem-stats", kind: Kind::Bool, default: || s("true"), usage: "toggle sending memory and GC stats to statsd" },
    FlagSpec { name: "statsd-prefix", kind: Kind::Str, default: || s("nsq.%s"), usage: "prefix used for keys sent to statsd (%s for host replacement)" },
    FlagSpec { name: "statsd-udp-packet-size", kind: Kind::Int, default: || s("508"), usage: "the size in bytes of statsd UDP packets" },
    FlagSpec { name: "sync-every", kind: Kind::Int, default: || s("2500"), usage: "number of segment log writes (each a batch of messages) per fsync" },
    FlagSpec { name: "sync-mode", kind: Kind::Str, default: || s("periodic"), usage: "'periodic': fsync per --sync-every/--sync-timeout as nsqd; 'always': acknowledge a publish only after fdatasync (group commit)" },
    FlagSpec { name: "sync-timeout", kind: Kind::Duration, default: || s("2s"), usage: "duration of time per fsync of the segment log" },
    FlagSpec { name: "tcp-address", kind: Kind::Str, default: || s("0.0.0.0:4150"), usage: "address to listen on for TCP clients (<addr>:<port> for TCP/IP)" },
    FlagSpec { name: "tls-cert", kind: Kind::Str, default: String::new, usage: "path to certificate file" },
    FlagSpec { name: "tls-client-auth-policy", kind: Kind::Str, default: String::new, usage: "client certificate auth policy ('require' or 'require-verify')" },
    FlagSpec { name: "tls-key", kind: Kind::Str, default: String::new, usage: "path to key file" },
    FlagSpec { name: "tls-min-version", kind: Kind::List, default: || s("tls1.0"), usage: "minimum SSL/TLS version acceptable ('ssl3.0', 'tls1.0', 'tls1.1', 'tls1.2' or 'tls1.3')" },
    FlagSpec { name: "tls-required", kind: Kind::BoolOr("tcp-https"), default: || s("false"), usage: "require TLS for client connections (true, false, tcp-https)" },
    FlagSpec { name: "tls-root-ca-file", kind: Kind::Str, default: String::new, usage: "path to certificate authority file" },
    FlagSpec { name: "verbose", kind: Kind::Bool, default: || s("false"), usage: "[deprecated] has no effect, use --log-level" },
    FlagSpec { name: "version", kind: Kind::Bool, default: || s("false"), usage: "print version string" },
    FlagSpec { name: "worker-id", kind: Kind::Int, default: String::new, usage: "[deprecated] use --node-id" },
];

/// What the command line asked for.
#[derive(Debug)]
pub enum Invocation {
    /// Run the broker.
    Run(Box<Options>),
    /// Print this text to stdout and exit 0 (`--version`).
    Version,
    /// Print this text to stderr and exit 0 (`--help`).
    Help(String),
}

/// The flag table, with defaults computed now (host name, node id).
pub fn flag_table() -> Vec<Flag> {
    SPECS
        .iter()
        .map(|spec| Flag {
            name: spec.name,
            kind: spec.kind,
            default: (spec.default)(),
            usage: spec.usage,
        })
        .collect()
}

impl Options {
    /// Parses argv (without the program name).
    ///
    /// # Errors
    /// A [`FlagError`] in Go's words; `main` prints it with the usage text and exits 2.
    pub fn from_args(args: &[String]) -> Result<Invocation, FlagError> {
        let table = flag_table();
        let mut values = match flags::parse(&table, args)? {
            Parsed::Help => return Ok(Invocation::Help(flags::usage("sluiced", &table))),
            Parsed::Values(v) => v,
        };
        if values.get("version").and_then(flags::parse_bool) == Some(true) {
            return Ok(Invocation::Version);
        }
        if let Some(path) = values.get("config").map(str::to_owned) {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| FlagError(format!("failed to load config file {path} - {e}")))?;
            flags::merge_config(&table, &mut values, &text)?;
        }
        Options::from_values(&table, &values).map(|o| Invocation::Run(Box::new(o)))
    }

    /// Options with every default (for tests and embedding).
    pub fn defaults() -> Options {
        let table = flag_table();
        // The defaults are valid by construction; a failure here is a bug in the table.
        match Options::from_values(&table, &Values::default()) {
            Ok(o) => o,
            Err(e) => unreachable!("default options are invalid: {e}"),
        }
    }

    fn from_values(table: &[Flag], values: &Values) -> Result<Options, FlagError> {
        for name in NOT_YET {
            let given = values.all(name).iter().any(|v| !v.is_empty());
            if given {
                return Err(FlagError(format!(
                    "-{name}: this feature is not available in this build of sluiced yet"
                )));
            }
        }
        let v = Lookup { table, values };
        let limits = v.limits()?;
        let log_level_text = v.text("log-level");
        let log_level = LogLevel::parse(&log_level_text).ok_or_else(|| {
            FlagError(format!(
                "invalid value {log_level_text:?} for flag -log-level: invalid log level '{log_level_text}' (debug, info, warn, error, fatal)"
            ))
        })?;
        let sync_mode = match v.text("sync-mode").as_str() {
            "periodic" => SyncMode::Periodic,
            "always" => SyncMode::Always,
            other => {
                return Err(FlagError(format!(
                    "invalid value {other:?} for flag -sync-mode: expected 'periodic' or 'always'"
                )))
            }
        };
        let node_id = match values.get("worker-id") {
            Some(_) if !values.has("node-id") => v.int_in("worker-id", 0, 1023)?,
            _ => v.int_in("node-id", 0, 1023)?,
        } as u16;
        Ok(Options {
            tcp_address: v.addr("tcp-address")?,
            http_address: v.addr("http-address")?,
            broadcast_address: v.text("broadcast-address"),
            broadcast_tcp_port: v.int_in("broadcast-tcp-port", 0, 65535)? as u16,
            broadcast_http_port: v.int_in("broadcast-http-port", 0, 65535)? as u16,
            lookupd_tcp_addresses: values.all("lookupd-tcp-address").to_vec(),
            data_path: PathBuf::from(v.text("data-path")),
            mem_queue_size: v.int_in("mem-queue-size", 0, i64::MAX)? as usize,
            max_bytes_per_file: v.int_in("max-bytes-per-file", 1, i64::MAX)? as u64,
            sync_every: v.int_in("sync-every", 1, i64::MAX)? as u64,
            sync_timeout: v.duration("sync-timeout")?,
            sync_mode,
            limits,
            max_channel_consumers: v.int_in("max-channel-consumers", 0, i64::MAX)? as usize,
            node_id,
            e2e_percentiles: v.percentiles("e2e-processing-latency-percentile")?,
            e2e_window: v.duration("e2e-processing-latency-window-time")?,
            log_level,
            log_prefix: v.text("log-prefix"),
            snappy: v.boolean("snappy")?,
            deflate: v.boolean("deflate")?,
            cores: v.int_in("cores", 0, 1024)? as usize,
            security: security_options(&v, values)?,
            statsd: StatsdOptions {
                address: v.text("statsd-address"),
                interval: v.positive_duration("statsd-interval")?,
                prefix: v.text("statsd-prefix"),
                mem_stats: v.boolean("statsd-mem-stats")?,
                // The largest UDP payload; upstream takes any size (bufio), but a datagram
                // cannot be larger.
                udp_packet_size: v.int_in("statsd-udp-packet-size", 1, 65507)? as usize,
                exclude_ephemeral: v.boolean("statsd-exclude-ephemeral")?,
            },
        })
    }
}

/// The TLS, HTTPS and auth flags, checked as upstream's `nsqd.New` does.
fn security_options(v: &Lookup<'_>, values: &Values) -> Result<SecurityOptions, FlagError> {
    let policy_text = v.text("tls-client-auth-policy");
    let tls_client_auth_policy = match policy_text.as_str() {
        "" => ClientAuthPolicy::None,
        "require" => ClientAuthPolicy::Require,
        "require-verify" => ClientAuthPolicy::RequireVerify,
        other => {
            return Err(Lookup::bad(
                "tls-client-auth-policy",
                other,
                "expected 'require' or 'require-verify'",
            ))
        }
    };
    let required_text = v.text("tls-required");
    let mut tls_required = if required_text.eq_ignore_ascii_case("tcp-https") {
        TlsRequired::TcpHttps
    } else {
        match flags::parse_bool(&required_text.to_ascii_lowercase()) {
            Some(true) => TlsRequired::Yes,
            Some(false) => TlsRequired::No,
            None => return Err(Lookup::bad("tls-required", &required_text, "parse error")),
        }
    };
    // Upstream: a client auth policy implies that TLS is required.
    if tls_client_auth_policy != ClientAuthPolicy::None && tls_required == TlsRequired::No {
        tls_required = TlsRequired::Yes;
    }
    let version_text = v.text("tls-min-version");
    let tls_min_version = match version_text.to_ascii_lowercase().as_str() {
        "ssl3.0" | "tls1.0" | "tls1.1" | "tls1.2" => TlsMinVersion::Tls12,
        "tls1.3" => TlsMinVersion::Tls13,
        _ => {
            return Err(Lookup::bad(
                "tls-min-version",
                &version_text,
                "unknown tls version",
            ))
        }
    };
    let auth_http_addresses: Vec<String> = values
        .all("auth-http-address")
        .iter()
        .filter(|a| !a.is_empty())
        .cloned()
        .collect();
    Ok(SecurityOptions {
        https_address: v.addr("https-address")?,
        tls_cert: PathBuf::from(v.text("tls-cert")),
        tls_key: PathBuf::from(v.text("tls-key")),
        tls_root_ca_file: PathBuf::from(v.text("tls-root-ca-file")),
        tls_client_auth_policy,
        tls_required,
        tls_min_version,
        tls_config: None,
        auth_http_addresses,
        http_client_connect_timeout: v.positive_duration("http-client-connect-timeout")?,
        http_client_request_timeout: v.positive_duration("http-client-request-timeout")?,
        auth_client_tls: None,
    })
}

/// Reads typed values, falling back to the table's defaults.
struct Lookup<'a> {
    table: &'a [Flag],
    values: &'a Values,
}

impl Lookup<'_> {
    /// The protocol bounds the flags set.
    fn limits(&self) -> Result<Limits, FlagError> {
        Ok(Limits {
            max_msg_size: self.int_in("max-msg-size", 1, i64::from(u32::MAX))? as u32,
            max_body_size: self.int_in("max-body-size", 1, i64::from(u32::MAX))? as u32,
            max_line_len: sluice_proto::limits::DEFAULT_MAX_LINE_LEN,
            max_rdy_count: self.int_in("max-rdy-count", 0, i64::MAX)? as u64,
            max_msg_timeout: self.duration("max-msg-timeout")?,
            msg_timeout: self.duration("msg-timeout")?,
            max_req_timeout: self.duration("max-req-timeout")?,
            max_heartbeat_interval: self.duration("max-heartbeat-interval")?,
            max_output_buffer_size: self.int_in("max-output-buffer-size", 0, i64::MAX)? as u64,
            min_output_buffer_timeout: self.duration("min-output-buffer-timeout")?,
            max_output_buffer_timeout: self.duration("max-output-buffer-timeout")?,
            output_buffer_timeout: self.duration("output-buffer-timeout")?,
            max_deflate_level: self.int_in("max-deflate-level", 1, 9)? as u32,
        })
    }

    fn text(&self, name: &str) -> String {
        match self.values.get(name) {
            Some(v) => v.to_owned(),
            None => self
                .table
                .iter()
                .find(|f| f.name == name)
                .map(|f| f.default.clone())
                .unwrap_or_default(),
        }
    }

    fn bad(name: &str, value: &str, why: &str) -> FlagError {
        FlagError(format!("invalid value {value:?} for flag -{name}: {why}"))
    }

    fn int_in(&self, name: &str, min: i64, max: i64) -> Result<i64, FlagError> {
        let text = self.text(name);
        if text.is_empty() {
            return Ok(min.max(0));
        }
        let n: i64 = text
            .parse()
            .map_err(|_| Self::bad(name, &text, "parse error"))?;
        if n < min || n > max {
            return Err(Self::bad(
                name,
                &text,
                &format!("out of range [{min}, {max}]"),
            ));
        }
        Ok(n)
    }

    fn duration(&self, name: &str) -> Result<Duration, FlagError> {
        let text = self.text(name);
        flags::parse_duration(&text).ok_or_else(|| Self::bad(name, &text, "invalid duration"))
    }

    fn positive_duration(&self, name: &str) -> Result<Duration, FlagError> {
        let d = self.duration(name)?;
        if d.is_zero() {
            return Err(Self::bad(name, &self.text(name), "must be > 0"));
        }
        Ok(d)
    }

    fn boolean(&self, name: &str) -> Result<bool, FlagError> {
        let text = self.text(name);
        flags::parse_bool(&text).ok_or_else(|| Self::bad(name, &text, "parse error"))
    }

    fn addr(&self, name: &str) -> Result<SocketAddr, FlagError> {
        let text = self.text(name);
        crate::host::resolve_listen_address(&text)
            .ok_or_else(|| Self::bad(name, &text, "expected <addr>:<port>"))
    }

    fn percentiles(&self, name: &str) -> Result<Vec<f64>, FlagError> {
        let mut out = Vec::new();
        for item in self.values.all(name) {
            for part in item.split(',').filter(|p| !p.trim().is_empty()) {
                let p: f64 = part
                    .trim()
                    .parse()
                    .map_err(|_| Self::bad(name, item, "not a float"))?;
                if !(p > 0.0 && p <= 1.0) {
                    return Err(Self::bad(name, item, "percentile must be in (0, 1.0]"));
                }
                out.push(p);
            }
        }
        Ok(out)
    }
}

/// Renders a duration the way `/config` and the usage text print it.
pub fn duration_text(d: Duration) -> String {
    format_duration(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Options, FlagError> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        match Options::from_args(&args)? {
            Invocation::Run(o) => Ok(*o),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn defaults_are_upstreams() {
        let o = run(&[]).unwrap();
        assert_eq!(o.tcp_address.to_string(), "0.0.0.0:4150");
        assert_eq!(o.http_address.to_string(), "0.0.0.0:4151");
        assert_eq!(o.mem_queue_size, 10000);
        assert_eq!(o.limits, Limits::default());
        assert_eq!(o.sync_every, 2500);
        assert_eq!(o.sync_timeout, Duration::from_secs(2));
        assert_eq!(o.e2e_window, Duration::from_secs(600));
        assert!(o.snappy && o.deflate);
        assert!(o.node_id < 1024);
    }

    #[test]
    fn flags_override_defaults() {
        let o = run(&[
            "-mem-queue-size=5",
            "--msg-timeout",
            "30s",
            "--max-rdy-count=10",
        ])
        .unwrap();
        assert_eq!(o.mem_queue_size, 5);
        assert_eq!(o.limits.msg_timeout, Duration::from_secs(30));
        assert_eq!(o.limits.max_rdy_count, 10);
    }

    #[test]
    fn bad_values_are_refused_in_go_words() {
        let err = run(&["--log-level=loud"]).unwrap_err();
        assert_eq!(
            err.0,
            "invalid value \"loud\" for flag -log-level: invalid log level 'loud' (debug, info, warn, error, fatal)"
        );
        assert!(run(&["--node-id=1024"]).is_err());
        assert!(run(&["--statsd-interval=0s"]).is_err());
        assert!(run(&["--statsd-udp-packet-size=0"]).is_err());
        assert!(run(&["--e2e-processing-latency-percentile=1.5"]).is_err());
    }

    #[test]
    fn security_defaults_are_upstreams() {
        let o = run(&[]).unwrap().security;
        assert_eq!(o.https_address.to_string(), "0.0.0.0:4152");
        assert_eq!(o.tls_required, TlsRequired::No);
        assert_eq!(o.tls_client_auth_policy, ClientAuthPolicy::None);
        assert_eq!(o.tls_min_version, TlsMinVersion::Tls12);
        assert!(!o.tls_configured() && !o.auth_enabled());
        assert_eq!(o.http_client_connect_timeout, Duration::from_secs(2));
        assert_eq!(o.http_client_request_timeout, Duration::from_secs(5));
    }

    #[test]
    fn tls_required_takes_a_bool_or_tcp_https() {
        let required = |args: &[&str]| run(args).unwrap().security.tls_required;
        assert_eq!(required(&["--tls-required"]), TlsRequired::Yes);
        assert_eq!(required(&["--tls-required=true"]), TlsRequired::Yes);
        assert_eq!(required(&["-tls-required=false"]), TlsRequired::No);
        assert_eq!(
            required(&["--tls-required=tcp-https"]),
            TlsRequired::TcpHttps
        );
        assert_eq!(
            required(&["--tls-client-auth-policy=require"]),
            TlsRequired::Yes,
            "a client auth policy implies TLS required, as upstream"
        );
        assert!(run(&["--tls-required=maybe"]).is_err());
        assert!(run(&["--tls-client-auth-policy=sometimes"]).is_err());
    }

    #[test]
    fn auth_addresses_repeat_and_timeouts_parse() {
        let o = run(&[
            "--auth-http-address=127.0.0.1:4181",
            "--auth-http-address",
            "http://auth.example/v1/auth",
            "--http-client-request-timeout=250ms",
            "--tls-min-version=tls1.3",
        ])
        .unwrap()
        .security;
        assert_eq!(
            o.auth_http_addresses,
            vec!["127.0.0.1:4181", "http://auth.example/v1/auth"]
        );
        assert!(o.auth_enabled());
        assert_eq!(o.http_client_request_timeout, Duration::from_millis(250));
        assert_eq!(o.tls_min_version, TlsMinVersion::Tls13);
        assert!(run(&["--tls-min-version=tls9"]).is_err());
        assert!(run(&["--http-client-connect-timeout=0s"]).is_err());
    }

    #[test]
    fn statsd_defaults_are_upstreams() {
        let o = run(&[]).unwrap().statsd;
        assert_eq!(o.address, "");
        assert_eq!(o.interval, Duration::from_secs(60));
        assert_eq!(o.prefix, "nsq.%s");
        assert!(o.mem_stats && !o.exclude_ephemeral);
        assert_eq!(o.udp_packet_size, 508);
        let o = run(&[
            "--statsd-address=127.0.0.1:8125",
            "--statsd-interval=200ms",
            "--statsd-prefix=",
            "--statsd-mem-stats=false",
            "--statsd-udp-packet-size=1400",
            "--statsd-exclude-ephemeral",
        ])
        .unwrap()
        .statsd;
        assert_eq!(o.address, "127.0.0.1:8125");
        assert_eq!(o.interval, Duration::from_millis(200));
        assert_eq!(o.prefix, "");
        assert!(!o.mem_stats && o.exclude_ephemeral);
        assert_eq!(o.udp_packet_size, 1400);
    }

    #[test]
    fn percentiles_accept_lists_and_repeats() {
        let o = run(&[
            "--e2e-processing-latency-percentile=1.0,0.99",
            "--e2e-processing-latency-percentile=0.5",
        ])
        .unwrap();
        assert_eq!(o.e2e_percentiles, vec![1.0, 0.99, 0.5]);
    }
}
