//! Where a consuming utility reads from, and the client settings it passes through: the
//! `--nsqd-tcp-address` / `--lookupd-http-address` pair, `--consumer-opt` / `--producer-opt`,
//! and the start-up check that the servers answer.
//!
//! Mirrors what every upstream app does in `main` (the same "required" and "not both" texts)
//! and go-nsq's `ConfigFlag` (`--consumer-opt=name,value`, option names as go-nsq's `opt`
//! tags). Unlike go-nsq, which only logs an unreachable lookupd and retries, a server that does
//! not answer at start-up is an error here: a utility started with a typo should exit non-zero
//! rather than wait silently. Later failures are logged and retried.

use std::time::Duration;

use crate::apps::flags::{parse_duration, Flag, Kind, Values};
use crate::apps::log;
use crate::{lookup, Config, Conn, Consumer};

/// go-nsq's default `max_requeue_delay`.
const MAX_REQUEUE_DELAY: Duration = Duration::from_secs(15 * 60);

/// A flag table entry.
pub fn flag(name: &'static str, kind: Kind, default: &str, usage: &'static str) -> Flag {
    Flag {
        name,
        kind,
        default: default.to_owned(),
        usage,
    }
}

/// The flags every consuming utility shares.
pub fn consumer_flags(max_in_flight: &str) -> Vec<Flag> {
    vec![
        flag(
            "nsqd-tcp-address",
            Kind::List,
            "",
            "nsqd TCP address (may be given multiple times)",
        ),
        flag(
            "lookupd-http-address",
            Kind::List,
            "",
            "lookupd HTTP address (may be given multiple times)",
        ),
        flag(
            "consumer-opt",
            Kind::List,
            "",
            "option to passthrough to nsq.Consumer (may be given multiple times, http://godoc.org/github.com/nsqio/go-nsq#Config)",
        ),
        flag(
            "max-in-flight",
            Kind::Int,
            max_in_flight,
            "max number of messages to allow in flight",
        ),
        flag("version", Kind::Bool, "false", "print version string"),
    ]
}

/// The brokers or lookupds a consumer connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// `--nsqd-tcp-address` values.
    pub nsqd: Vec<String>,
    /// `--lookupd-http-address` values.
    pub lookupd: Vec<String>,
}

impl Source {
    /// Reads the address flags.
    ///
    /// # Errors
    /// Upstream's texts when neither or both kinds are given.
    pub fn from_values(values: &Values) -> Result<Source, String> {
        let source = Source {
            nsqd: values.all("nsqd-tcp-address").to_vec(),
            lookupd: values.all("lookupd-http-address").to_vec(),
        };
        if source.nsqd.is_empty() && source.lookupd.is_empty() {
            return Err("--nsqd-tcp-address or --lookupd-http-address required".into());
        }
        if !source.nsqd.is_empty() && !source.lookupd.is_empty() {
            return Err("use --nsqd-tcp-address or --lookupd-http-address not both".into());
        }
        Ok(source)
    }

    /// Checks that every broker accepts a connection and every lookupd answers about `topic`.
    ///
    /// # Errors
    /// Which server failed, and how.
    pub fn preflight(&self, topic: &str, config: &Config) -> Result<(), String> {
        for addr in &self.nsqd {
            let conn = Conn::connect(addr, config)
                .map_err(|e| format!("failed to connect to nsqd {addr}: {e}"))?;
            conn.shutdown();
        }
        for addr in &self.lookupd {
            lookup::lookup(addr, topic, config.dial_timeout.max(Duration::from_secs(1)))
                .map_err(|e| format!("failed to query lookupd: {e}"))?;
        }
        Ok(())
    }

    /// Connects `consumer` to every broker or lookupd.
    ///
    /// # Errors
    /// The consumer's refusal (it has no handler, or is stopped).
    pub fn attach(&self, consumer: &Consumer) -> Result<(), String> {
        for addr in &self.nsqd {
            consumer.connect_to_nsqd(addr).map_err(|e| e.to_string())?;
        }
        for addr in &self.lookupd {
            log::info(&format!("lookupd addr {addr}"));
            consumer
                .connect_to_lookupd(addr)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// Client settings from `--*-opt` flags, with what [`Config`] does not hold.
#[derive(Debug, Clone)]
pub struct ClientOpts {
    /// The client library's settings.
    pub config: Config,
    /// The longest delay of a `REQ` after a failure (go-nsq `max_requeue_delay`).
    pub max_requeue_delay: Duration,
}

impl ClientOpts {
    /// Defaults for `tool` (user agent, host names), then each `name,value` option applied.
    ///
    /// # Errors
    /// go-nsq's text for an unknown option (`invalid option bogus`), or a bad value.
    pub fn new(tool: &str, opts: &[String]) -> Result<ClientOpts, String> {
        let host = hostname();
        let mut config = Config {
            client_id: host.split('.').next().unwrap_or_default().to_owned(),
            hostname: host,
            user_agent: format!(
                "{tool}/{version} sluice-client/{version}",
                version = env!("CARGO_PKG_VERSION")
            ),
            ..Config::default()
        };
        let mut max_requeue_delay = MAX_REQUEUE_DELAY;
        for opt in opts {
            apply_opt(&mut config, &mut max_requeue_delay, opt)?;
        }
        Ok(ClientOpts {
            config,
            max_requeue_delay,
        })
    }

    /// The delay of a `REQ` after a failed attempt: go-nsq's `default_requeue_delay` times
    /// the attempts, capped at `max_requeue_delay`.
    pub fn requeue_delay(&self, attempts: u16) -> Duration {
        self.config
            .default_requeue_delay
            .saturating_mul(u32::from(attempts.max(1)))
            .min(self.max_requeue_delay)
    }
}

/// Applies one `name,value` option (a bare `name` means `true`, as go-nsq's `ConfigFlag`).
fn apply_opt(config: &mut Config, max_requeue: &mut Duration, opt: &str) -> Result<(), String> {
    let (name, value) = opt.split_once(',').unwrap_or((opt, "true"));
    let bad = |why: &str| format!("invalid value {value:?} for option {name}: {why}");
    let duration = || parse_duration(value).ok_or_else(|| bad("not a duration"));
    let number = || value.parse::<u64>().map_err(|_| bad("not a number"));
    match name {
        "dial_timeout" => config.dial_timeout = duration()?,
        "read_timeout" => config.read_timeout = duration()?,
        "write_timeout" => config.write_timeout = duration()?,
        "lookupd_poll_interval" => config.lookupd_poll_interval = duration()?,
        "default_requeue_delay" => config.default_requeue_delay = duration()?,
        "max_requeue_delay" => *max_requeue = duration()?,
        "max_backoff_duration" => config.backoff_max = duration()?,
        "heartbeat_interval" => config.heartbeat_interval = Some(duration()?),
        "msg_timeout" => config.msg_timeout = Some(duration()?),
        "output_buffer_timeout" => config.output_buffer_timeout = Some(duration()?),
        "output_buffer_size" => {
            config.output_buffer_size = Some(u32::try_from(number()?).map_err(|_| bad("too big"))?)
        }
        "max_in_flight" => config.max_in_flight = number()?,
        "client_id" => config.client_id = value.to_owned(),
        "hostname" => config.hostname = value.to_owned(),
        "user_agent" => config.user_agent = value.to_owned(),
        "tls_v1"
        | "tls_root_ca_file"
        | "tls_insecure_skip_verify"
        | "tls_cert"
        | "tls_key"
        | "tls_min_version"
        | "deflate"
        | "deflate_level"
        | "snappy"
        | "sample_rate"
        | "auth_secret"
        | "max_attempts"
        | "backoff_multiplier"
        | "lookupd_poll_jitter"
        | "rdy_redistribute_interval"
        | "low_rdy_idle_timeout"
        | "local_addr" => return Err(format!("option {name} is not supported by sluice")),
        _ => return Err(format!("invalid option {name}")),
    }
    Ok(())
}

/// `--max-in-flight`, checked to be at least 1.
///
/// # Errors
/// When it is below 1.
pub fn max_in_flight(values: &Values, default: u64) -> Result<u64, String> {
    match values.int("max-in-flight") {
        None => Ok(default),
        Some(n) if n >= 1 => Ok(n.unsigned_abs()),
        Some(n) => Err(format!("--max-in-flight must be at least 1 (got {n})")),
    }
}

/// The host name (upstream's `os.Hostname`), `localhost` when it cannot be read.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::flags::{parse, Parsed};

    fn values(args: &[&str]) -> Values {
        let mut table = consumer_flags("200");
        table.push(flag("topic", Kind::List, "", "t"));
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match parse(&table, &args).unwrap() {
            Parsed::Values(v) => v,
            Parsed::Help => panic!("help"),
        }
    }

    #[test]
    fn sources_need_exactly_one_kind() {
        assert_eq!(
            Source::from_values(&values(&[])).unwrap_err(),
            "--nsqd-tcp-address or --lookupd-http-address required"
        );
        assert_eq!(
            Source::from_values(&values(&[
                "--nsqd-tcp-address=a:1",
                "--lookupd-http-address=b:2"
            ]))
            .unwrap_err(),
            "use --nsqd-tcp-address or --lookupd-http-address not both"
        );
        let source = Source::from_values(&values(&[
            "--nsqd-tcp-address=a:1",
            "--nsqd-tcp-address=c:3",
        ]))
        .unwrap();
        assert_eq!(source.nsqd, ["a:1", "c:3"]);
    }

    #[test]
    fn options_pass_through_by_go_nsq_names() {
        let opts = ClientOpts::new(
            "nsq_tail",
            &[
                "default_requeue_delay,2s".into(),
                "max_requeue_delay,5s".into(),
                "msg_timeout,1m".into(),
                "client_id,me".into(),
            ],
        )
        .unwrap();
        assert_eq!(opts.config.msg_timeout, Some(Duration::from_secs(60)));
        assert_eq!(opts.config.client_id, "me");
        assert!(opts.config.user_agent.starts_with("nsq_tail/"));
        assert_eq!(opts.requeue_delay(1), Duration::from_secs(2));
        assert_eq!(opts.requeue_delay(2), Duration::from_secs(4));
        assert_eq!(opts.requeue_delay(9), Duration::from_secs(5));
        assert_eq!(
            ClientOpts::new("x", &["bogus,1".into()]).unwrap_err(),
            "invalid option bogus"
        );
        assert!(ClientOpts::new("x", &["snappy".into()])
            .unwrap_err()
            .contains("not supported"));
        assert!(ClientOpts::new("x", &["dial_timeout,soon".into()]).is_err());
    }

    #[test]
    fn max_in_flight_must_be_positive() {
        assert_eq!(max_in_flight(&values(&[]), 200), Ok(200));
        assert_eq!(max_in_flight(&values(&["--max-in-flight=7"]), 200), Ok(7));
        assert!(max_in_flight(&values(&["--max-in-flight=0"]), 200).is_err());
    }
}
