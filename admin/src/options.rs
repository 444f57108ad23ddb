//! sluice-admin's options: upstream nsqadmin's flags, defaults and config keys, and the checks
//! upstream makes before it starts.
//!
//! Mirrors `apps/nsqadmin/main.go` (flag names, usage texts, defaults), `nsqadmin/options.go`
//! (the `Options` fields and their config names) and `nsqadmin/nsqadmin.go` `New` (the start-up
//! checks and their error texts). The command line wins over the `--config` TOML file, which
//! wins over the defaults (upstream's `options.Resolve`).
//!
//! Two flags are ours (see the README's sluice-admin section): `--sample-interval` and
//! `--sample-history` size the in-memory history the charts are drawn from.

use std::net::ToSocketAddrs;
use std::time::Duration;

use crate::cidr::Cidr;
use crate::flags::{self, Flag, FlagError, Kind, Parsed};
use crate::log::LogLevel;

/// The `--version` line.
pub const VERSION_LINE: &str = concat!(
    "sluice-admin v",
    env!("CARGO_PKG_VERSION"),
    " (nsqadmin v1.3.0 compatible)"
);

/// The program name in the usage text.
pub const PROGRAM: &str = "sluice-admin";

/// The most history points a series may keep (`--sample-history`).
pub const SAMPLE_HISTORY_MAX: i64 = 100_000;

/// Everything sluice-admin needs to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `--log-level`.
    pub log_level: LogLevel,
    /// `--log-prefix`.
    pub log_prefix: String,
    /// `--http-address`: where the UI and the API listen.
    pub http_address: String,
    /// `--base-path`: the URL path everything is served under (normalized, e.g. `/admin`).
    pub base_path: String,
    /// `--graphite-url`: used only by `/api/graphite`.
    pub graphite_url: String,
    /// `--proxy-graphite`: accepted for compatibility; nothing is proxied (the charts are built in).
    pub proxy_graphite: bool,
    /// `--statsd-prefix` (accepted, shown by `/config`).
    pub statsd_prefix: String,
    /// `--statsd-counter-format` (accepted, shown by `/config`).
    pub statsd_counter_format: String,
    /// `--statsd-gauge-format` (accepted, shown by `/config`).
    pub statsd_gauge_format: String,
    /// `--statsd-interval`: used by `/api/graphite`.
    pub statsd_interval: Duration,
    /// `--lookupd-http-address` (repeatable; changeable with `PUT /config`).
    pub lookupd_http_addresses: Vec<String>,
    /// `--nsqd-http-address` (repeatable).
    pub nsqd_http_addresses: Vec<String>,
    /// `--http-client-connect-timeout`.
    pub http_client_connect_timeout: Duration,
    /// `--http-client-request-timeout`.
    pub http_client_request_timeout: Duration,
    /// `--http-client-tls-insecure-skip-verify`.
    pub http_client_tls_insecure_skip_verify: bool,
    /// `--http-client-tls-root-ca-file`.
    pub http_client_tls_root_ca_file: String,
    /// `--http-client-tls-cert`.
    pub http_client_tls_cert: String,
    /// `--http-client-tls-key`.
    pub http_client_tls_key: String,
    /// `--allow-config-from-cidr`: who may use `/config`.
    pub allow_config_from_cidr: String,
    /// `--notification-http-endpoint`: where a JSON record of each admin action is POSTed.
    pub notification_http_endpoint: String,
    /// `--acl-http-header`: the header naming the authenticated user.
    pub acl_http_header: String,
    /// `--admin-user` (repeatable): when given, only these users may act.
    pub admin_users: Vec<String>,
    /// `--sample-interval` (ours): how often every node's `/stats` is sampled for the charts.
    pub sample_interval: Duration,
    /// `--sample-history` (ours): how many samples each chart series keeps.
    pub sample_history: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            log_level: LogLevel::Info,
            log_prefix: "[sluice-admin] ".to_owned(),
            http_address: "0.0.0.0:4171".to_owned(),
            base_path: "/".to_owned(),
            graphite_url: String::new(),
            proxy_graphite: false,
            statsd_prefix: "nsq.%s".to_owned(),
            statsd_counter_format: "stats.counters.%s.count".to_owned(),
            statsd_gauge_format: "stats.gauges.%s".to_owned(),
            statsd_interval: Duration::from_secs(60),
            lookupd_http_addresses: Vec::new(),
            nsqd_http_addresses: Vec::new(),
            http_client_connect_timeout: Duration::from_secs(2),
            http_client_request_timeout: Duration::from_secs(5),
            http_client_tls_insecure_skip_verify: false,
            http_client_tls_root_ca_file: String::new(),
            http_client_tls_cert: String::new(),
            http_client_tls_key: String::new(),
            allow_config_from_cidr: "127.0.0.1/8".to_owned(),
            notification_http_endpoint: String::new(),
            acl_http_header: "X-Forwarded-User".to_owned(),
            admin_users: Vec::new(),
            sample_interval: Duration::from_secs(5),
            sample_history: 720,
        }
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Cli {
    /// Start the service.
    Run(Box<Options>),
    /// `--help`: print [`usage`] to stderr, exit 0.
    Help,
    /// `--version`: print [`VERSION_LINE`] to stdout, exit 0.
    Version,
}

/// Why the command line could not be used.
#[derive(Debug)]
pub enum CliError {
    /// A bad flag: print it and the usage text, exit 2 (Go's `flag.ExitOnError`).
    Flag(FlagError),
    /// The config file could not be read or used: a fatal log line, exit 1 (upstream).
    Config(String),
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Flag(e) => write!(f, "{e}"),
            CliError::Config(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for CliError {}

/// upstream nsqadmin's flags, plus our two sampling flags.
pub fn flag_table() -> Vec<Flag> {
    let d = Options::default();
    let duration = flags::format_duration;
    vec![
        flag("acl-http-header", Kind::Str, &d.acl_http_header, "HTTP header to check for authenticated admin users"),
        flag("admin-user", Kind::List, "", "admin user (may be given multiple times; if specified, only these users will be able to perform privileged actions; acl-http-header is used to determine the authenticated user)"),
        flag("allow-config-from-cidr", Kind::Str, &d.allow_config_from_cidr, "A CIDR from which to allow HTTP requests to the /config endpoint"),
        flag("base-path", Kind::Str, &d.base_path, "URL base path"),
        flag("config", Kind::Str, "", "path to config file"),
        flag("graphite-url", Kind::Str, "", "graphite HTTP address"),
        flag("http-address", Kind::Str, &d.http_address, "<addr>:<port> to listen on for HTTP clients"),
        flag("http-client-connect-timeout", Kind::Duration, &duration(d.http_client_connect_timeout), "timeout for HTTP connect"),
        flag("http-client-request-timeout", Kind::Duration, &duration(d.http_client_request_timeout), "timeout for HTTP request"),
        flag("http-client-tls-cert", Kind::Str, "", "path to certificate file for the HTTP client"),
        flag("http-client-tls-insecure-skip-verify", Kind::Bool, "false", "configure the HTTP client to skip verification of TLS certificates"),
        flag("http-client-tls-key", Kind::Str, "", "path to key file for the HTTP client"),
        flag("http-client-tls-root-ca-file", Kind::Str, "", "path to CA file for the HTTP client"),
        flag("log-level", Kind::Value(check_log_level), "INFO", "set log verbosity: debug, info, warn, error, or fatal"),
        flag("log-prefix", Kind::Str, &d.log_prefix, "log message prefix"),
        flag("lookupd-http-address", Kind::List, "", "lookupd HTTP address (may be given multiple times)"),
        flag("notification-http-endpoint", Kind::Str, "", "HTTP endpoint (fully qualified) to which POST notifications of admin actions will be sent"),
        flag("nsqd-http-address", Kind::List, "", "nsqd HTTP address (may be given multiple times)"),
        flag("proxy-graphite", Kind::Bool, "false", "proxy HTTP requests to graphite"),
        flag("sample-history", Kind::Value(check_history), &d.sample_history.to_string(), "samples kept per chart series, in memory (sluice-admin only)"),
        flag("sample-interval", Kind::Value(check_interval), &duration(d.sample_interval), "how often every node's /stats is sampled for the charts (sluice-admin only)"),
        flag("statsd-counter-format", Kind::Str, &d.statsd_counter_format, "The counter stats key formatting applied by the implementation of statsd. If no formatting is desired, set this to an empty string."),
        flag("statsd-gauge-format", Kind::Str, &d.statsd_gauge_format, "The gauge stats key formatting applied by the implementation of statsd. If no formatting is desired, set this to an empty string."),
        flag("statsd-interval", Kind::Duration, &duration(d.statsd_interval), "time interval nsqd is configured to push to statsd (must match nsqd)"),
        flag("statsd-prefix", Kind::Str, &d.statsd_prefix, "prefix used for keys sent to statsd (%s for host replacement, must match nsqd)"),
        flag("verbose", Kind::Bool, "false", "[deprecated] has no effect, use --log-level"),
        flag("version", Kind::Bool, "false", "print version string"),
    ]
}

fn flag(name: &'static str, kind: Kind, default: &str, usage: &'static str) -> Flag {
    Flag {
        name,
        kind,
        default: default.to_owned(),
        usage,
    }
}

fn check_log_level(value: &str) -> Result<(), String> {
    LogLevel::parse(value).map(|_| ())
}

fn check_history(value: &str) -> Result<(), String> {
    match value.parse::<i64>() {
        Ok(n) if (2..=SAMPLE_HISTORY_MAX).contains(&n) => Ok(()),
        _ => Err(format!("must be an integer in 2..={SAMPLE_HISTORY_MAX}")),
    }
}

fn check_interval(value: &str) -> Result<(), String> {
    match flags::parse_duration(value) {
        Some(d) if d >= Duration::from_millis(100) => Ok(()),
        _ => Err("must be a duration of at least 100ms".to_owned()),
    }
}

/// The usage text, in Go's layout.
pub fn usage() -> String {
    flags::usage(PROGRAM, &flag_table())
}

impl Cli {
    /// Parses argv (without the program name), reading the `--config` file if one is given.
    ///
    /// # Errors
    /// [`CliError::Flag`] for a bad flag, [`CliError::Config`] for a bad config file.
    pub fn parse(args: &[String]) -> Result<Cli, CliError> {
        let table = flag_table();
        let mut values = match flags::parse(&table, args).map_err(CliError::Flag)? {
            Parsed::Help => return Ok(Cli::Help),
            Parsed::Values(values) => values,
        };
        if values.bool("version") == Some(true) {
            return Ok(Cli::Version);
        }
        if let Some(path) = values.get("config").filter(|p| !p.is_empty()) {
            let path = path.to_owned();
            let text = std::fs::read_to_string(&path).map_err(|e| {
                CliError::Config(format!("failed to load config file {path} - {e}"))
            })?;
            merge_config_file(&table, &mut values, &text).map_err(|e| {
                CliError::Config(format!("failed to load config file {path} - {e}"))
            })?;
        }
        Ok(Cli::Run(Box::new(options_from(&values))))
    }
}

/// Reads a config file under the command line. Two list options have config names that are
/// not their flag names (upstream's `cfg` tags): `nsqlookupd_http_addresses` and
/// `nsqd_http_addresses`; `admin_users` is the plural of `admin-user`.
fn merge_config_file(
    table: &[Flag],
    values: &mut flags::Values,
    text: &str,
) -> Result<(), FlagError> {
    let renamed = text_with_config_names(text)?;
    let file_flags: Vec<Flag> = table
        .iter()
        .filter(|f| f.name != "config" && f.name != "version")
        .cloned()
        .collect();
    flags::merge_config(&file_flags, values, &renamed)
}

/// Rewrites upstream's config names to the flag-derived keys [`flags::merge_config`] reads.
fn text_with_config_names(text: &str) -> Result<String, FlagError> {
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| FlagError(e.message().trim_end().to_owned()))?;
    for (config_name, key) in [
        ("nsqlookupd_http_addresses", "lookupd_http_address"),
        ("nsqd_http_addresses", "nsqd_http_address"),
        ("admin_users", "admin_user"),
    ] {
        if let Some(value) = table.remove(config_name) {
            table.insert(key.to_owned(), value);
        }
    }
    toml::to_string(&table).map_err(|e| FlagError(e.to_string()))
}

fn options_from(values: &flags::Values) -> Options {
    let d = Options::default();
    let text = |name: &str, default: String| values.get(name).map_or(default, str::to_owned);
    let duration = |name: &str, default: Duration| values.duration(name).unwrap_or(default);
    Options {
        log_level: values
            .get("log-level")
            .and_then(|v| LogLevel::parse(v).ok())
            .unwrap_or(d.log_level),
        log_prefix: text("log-prefix", d.log_prefix),
        http_address: text("http-address", d.http_address),
        base_path: normalize_base_path(&text("base-path", d.base_path)),
        graphite_url: text("graphite-url", d.graphite_url),
        proxy_graphite: values.bool("proxy-graphite").unwrap_or(false),
        statsd_prefix: text("statsd-prefix", d.statsd_prefix),
        statsd_counter_format: text("statsd-counter-format", d.statsd_counter_format),
        statsd_gauge_format: text("statsd-gauge-format", d.statsd_gauge_format),
        statsd_interval: duration("statsd-interval", d.statsd_interval),
        lookupd_http_addresses: values.all("lookupd-http-address").to_vec(),
        nsqd_http_addresses: values.all("nsqd-http-address").to_vec(),
        http_client_connect_timeout: duration(
            "http-client-connect-timeout",
            d.http_client_connect_timeout,
        ),
        http_client_request_timeout: duration(
            "http-client-request-timeout",
            d.http_client_request_timeout,
        ),
        http_client_tls_insecure_skip_verify: values
            .bool("http-client-tls-insecure-skip-verify")
            .unwrap_or(false),
        http_client_tls_root_ca_file: text(
            "http-client-tls-root-ca-file",
            d.http_client_tls_root_ca_file,
        ),
        http_client_tls_cert: text("http-client-tls-cert", d.http_client_tls_cert),
        http_client_tls_key: text("http-client-tls-key", d.http_client_tls_key),
        allow_config_from_cidr: text("allow-config-from-cidr", d.allow_config_from_cidr),
        notification_http_endpoint: text(
            "notification-http-endpoint",
            d.notification_http_endpoint,
        ),
        acl_http_header: text("acl-http-header", d.acl_http_header),
        admin_users: values.all("admin-user").to_vec(),
        sample_interval: duration("sample-interval", d.sample_interval),
        sample_history: values
            .int("sample-history")
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(d.sample_history),
    }
}

/// upstream's `normalizeBasePath`: a leading slash, then Go's `path.Clean`.
pub fn normalize_base_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    let rooted = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    clean_path(&rooted)
}

/// Go's `path.Clean` for a rooted path.
pub fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

/// upstream `nsqadmin.New`'s checks, in its order and words.
///
/// # Errors
/// The first problem, as upstream words it (the caller logs it as fatal and exits 1).
pub fn validate(options: &Options) -> Result<(), String> {
    let (lookupds, nsqds) = (
        &options.lookupd_http_addresses,
        &options.nsqd_http_addresses,
    );
    if lookupds.is_empty() && nsqds.is_empty() {
        return Err("--nsqd-http-address or --lookupd-http-address required".to_owned());
    }
    if !lookupds.is_empty() && !nsqds.is_empty() {
        return Err("use --nsqd-http-address or --lookupd-http-address not both".to_owned());
    }
    let (cert, key) = (&options.http_client_tls_cert, &options.http_client_tls_key);
    if !cert.is_empty() && key.is_empty() {
        return Err(
            "--http-client-tls-key must be specified with --http-client-tls-cert".to_owned(),
        );
    }
    if !key.is_empty() && cert.is_empty() {
        return Err(
            "--http-client-tls-cert must be specified with --http-client-tls-key".to_owned(),
        );
    }
    if !cert.is_empty() {
        for path in [cert, key] {
            read_pem(path).map_err(|e| format!("failed to LoadX509KeyPair {cert}, {key} - {e}"))?;
        }
    }
    let ca = &options.http_client_tls_root_ca_file;
    if !ca.is_empty() {
        read_pem(ca).map_err(|e| format!("failed to read TLS root CA file {ca} - {e}"))?;
    }
    for (flag, list) in [
        ("--lookupd-http-address", lookupds),
        ("--nsqd-http-address", nsqds),
    ] {
        for address in list {
            resolve(address).map_err(|e| format!("failed to resolve {flag} ({address}) - {e}"))?;
        }
    }
    let cidr = &options.allow_config_from_cidr;
    if !cidr.is_empty() {
        Cidr::parse(cidr)
            .map_err(|e| format!("failed to parse --allow-config-from-cidr ({cidr}) - {e}"))?;
    }
    Ok(())
}

/// Reads a PEM file (a certificate, key or CA bundle) and checks it holds a PEM block.
fn read_pem(path: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("open {path}: {e}"))?;
    if text.contains("-----BEGIN ") {
        Ok(())
    } else {
        Err("tls: failed to find any PEM data in input".to_owned())
    }
}

/// Go's `net.ResolveTCPAddr("tcp", address)`: `host:port`, the host resolvable.
fn resolve(address: &str) -> Result<(), String> {
    if address.rsplit_once(':').is_none() {
        return Err(format!("address {address}: missing port in address"));
    }
    let full = match address.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => address.to_owned(),
    };
    match full.to_socket_addrs() {
        Ok(addrs) if addrs.len() > 0 => Ok(()),
        Ok(_) => Err(format!("lookup {address}: no such host")),
        Err(e) => Err(format!("lookup {address}: {e}")),
    }
}

/// The OS host name (upstream's `os.Hostname()`), read without libc: the kernel's, then
/// `/etc/hostname`, then `$HOSTNAME`, then `localhost`.
pub fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .chain(std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests;
