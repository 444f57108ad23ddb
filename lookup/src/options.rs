//! sluice-lookupd's options: upstream nsqlookupd's flags, defaults and config keys.
//!
//! Mirrors `apps/nsqlookupd/options.go` (flag names, usage texts, defaults) and
//! `nsqlookupd/options.go` (the `Options` fields). The command line wins over the `--config`
//! TOML file, which wins over the defaults (upstream's `options.Resolve`).

use std::time::Duration;

use crate::flags::{self, Flag, FlagError, Kind, Parsed};
use crate::log::LogLevel;

/// The `--version` line.
pub const VERSION_LINE: &str = concat!(
    "sluice-lookupd v",
    env!("CARGO_PKG_VERSION"),
    " (nsqlookupd v1.3.0 compatible)"
);

/// The program name in the usage text.
pub const PROGRAM: &str = "sluice-lookupd";

/// Everything sluice-lookupd needs to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `--tcp-address`: where brokers connect (lookup protocol V1).
    pub tcp_address: String,
    /// `--http-address`: the HTTP API.
    pub http_address: String,
    /// `--broadcast-address`: this node's address, reported to brokers at IDENTIFY.
    pub broadcast_address: String,
    /// `--inactive-producer-timeout`: a broker not heard from for this long is hidden.
    pub inactive_producer_timeout: Duration,
    /// `--tombstone-lifetime`: how long a tombstoned producer stays hidden from `/lookup`.
    pub tombstone_lifetime: Duration,
    /// `--log-level`.
    pub log_level: LogLevel,
    /// `--log-prefix`.
    pub log_prefix: String,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            tcp_address: "0.0.0.0:4160".to_owned(),
            http_address: "0.0.0.0:4161".to_owned(),
            broadcast_address: hostname(),
            inactive_producer_timeout: Duration::from_secs(300),
            tombstone_lifetime: Duration::from_secs(45),
            log_level: LogLevel::Info,
            log_prefix: "[sluice-lookupd] ".to_owned(),
        }
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Cli {
    /// Start the service.
    Run(Options),
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

/// upstream nsqlookupd's flags.
pub fn flag_table() -> Vec<Flag> {
    let defaults = Options::default();
    let duration = flags::format_duration;
    vec![
        flag(
            "broadcast-address",
            Kind::Str,
            &defaults.broadcast_address,
            "address of this lookupd node, (default to the OS hostname)",
        ),
        flag("config", Kind::Str, "", "path to config file"),
        flag(
            "http-address",
            Kind::Str,
            &defaults.http_address,
            "<addr>:<port> to listen on for HTTP clients",
        ),
        flag(
            "inactive-producer-timeout",
            Kind::Duration,
            &duration(defaults.inactive_producer_timeout),
            "duration of time a producer will remain in the active list since its last ping",
        ),
        flag(
            "log-level",
            Kind::Value(check_log_level),
            "INFO",
            "set log verbosity: debug, info, warn, error, or fatal",
        ),
        flag(
            "log-prefix",
            Kind::Str,
            &defaults.log_prefix,
            "log message prefix",
        ),
        flag(
            "tcp-address",
            Kind::Str,
            &defaults.tcp_address,
            "<addr>:<port> to listen on for TCP clients",
        ),
        flag(
            "tombstone-lifetime",
            Kind::Duration,
            &duration(defaults.tombstone_lifetime),
            "duration of time a producer will remain tombstoned if registration remains",
        ),
        flag(
            "verbose",
            Kind::Bool,
            "false",
            "[deprecated] has no effect, use --log-level",
        ),
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
            // `config` and `version` only make sense on the command line.
            let file_flags: Vec<Flag> = table
                .into_iter()
                .filter(|f| f.name != "config" && f.name != "version")
                .collect();
            flags::merge_config(&file_flags, &mut values, &text).map_err(|e| {
                CliError::Config(format!("failed to load config file {path} - {e}"))
            })?;
        }
        let defaults = Options::default();
        let text = |name: &str, default: String| values.get(name).map_or(default, str::to_owned);
        Ok(Cli::Run(Options {
            tcp_address: text("tcp-address", defaults.tcp_address),
            http_address: text("http-address", defaults.http_address),
            broadcast_address: text("broadcast-address", defaults.broadcast_address),
            inactive_producer_timeout: values
                .duration("inactive-producer-timeout")
                .unwrap_or(defaults.inactive_producer_timeout),
            tombstone_lifetime: values
                .duration("tombstone-lifetime")
                .unwrap_or(defaults.tombstone_lifetime),
            log_level: values
                .get("log-level")
                .and_then(|v| LogLevel::parse(v).ok())
                .unwrap_or(defaults.log_level),
            log_prefix: text("log-prefix", defaults.log_prefix),
        }))
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
mod tests {
    use super::*;

    fn parse(list: &[&str]) -> Result<Cli, CliError> {
        let args: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        Cli::parse(&args)
    }

    fn options(list: &[&str]) -> Options {
        match parse(list).unwrap() {
            Cli::Run(options) => options,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_are_upstreams() {
        let o = options(&[]);
        assert_eq!(o.tcp_address, "0.0.0.0:4160");
        assert_eq!(o.http_address, "0.0.0.0:4161");
        assert_eq!(o.inactive_producer_timeout, Duration::from_secs(300));
        assert_eq!(o.tombstone_lifetime, Duration::from_secs(45));
        assert_eq!(o.log_level, LogLevel::Info);
        assert_eq!(o.broadcast_address, hostname());
    }

    #[test]
    fn flags_in_every_spelling() {
        let o = options(&[
            "-tcp-address=127.0.0.1:0",
            "--http-address",
            "127.0.0.1:0",
            "-inactive-producer-timeout",
            "1m30s",
            "--tombstone-lifetime=2s",
            "--log-level=WARN",
            "--broadcast-address=me",
            "--verbose",
        ]);
        assert_eq!(o.tcp_address, "127.0.0.1:0");
        assert_eq!(o.http_address, "127.0.0.1:0");
        assert_eq!(o.inactive_producer_timeout, Duration::from_secs(90));
        assert_eq!(o.tombstone_lifetime, Duration::from_secs(2));
        assert_eq!(o.log_level, LogLevel::Warn);
        assert_eq!(o.broadcast_address, "me");
    }

    #[test]
    fn version_help_and_bad_flags() {
        assert!(matches!(parse(&["--version"]), Ok(Cli::Version)));
        assert!(matches!(parse(&["-version=false"]), Ok(Cli::Run(_))));
        assert!(matches!(parse(&["--help"]), Ok(Cli::Help)));
        let Err(CliError::Flag(e)) = parse(&["--log-level=loud"]) else {
            panic!("accepted a bad level");
        };
        assert_eq!(
            e.0,
            "invalid value \"loud\" for flag -log-level: \
             invalid log level 'loud' (debug, info, warn, error, fatal)"
        );
        assert!(matches!(parse(&["--bogus-flag"]), Err(CliError::Flag(_))));
    }

    #[test]
    fn config_file_under_the_command_line() {
        let dir =
            std::env::temp_dir().join(format!("sluice-lookupd-options-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lookupd.toml");
        std::fs::write(
            &path,
            "tcp_address = \"127.0.0.1:7\"\nhttp_address = \"127.0.0.1:8\"\n\
             tombstone_lifetime = \"10s\"\ninactive_producer_timeout = 2000\n\
             log_level = \"debug\"\n",
        )
        .unwrap();
        let config = format!("--config={}", path.display());
        let o = options(&[&config, "--http-address=127.0.0.1:9"]);
        assert_eq!(o.tcp_address, "127.0.0.1:7");
        assert_eq!(o.http_address, "127.0.0.1:9");
        assert_eq!(o.tombstone_lifetime, Duration::from_secs(10));
        assert_eq!(o.inactive_producer_timeout, Duration::from_secs(2));
        assert_eq!(o.log_level, LogLevel::Debug);
        std::fs::write(&path, "log_level = \"loud\"\n").unwrap();
        assert!(matches!(parse(&[&config]), Err(CliError::Config(_))));
        let missing = format!("--config={}", dir.join("missing.toml").display());
        assert!(matches!(parse(&[&missing]), Err(CliError::Config(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
