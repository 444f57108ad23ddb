//! Command-line flags (clap) and their translation into [`Settings`]. Flag names follow
//! upstream's bench tools and nsqd where one exists (`--nsqd-tcp-address`, `--size`,
//! `--batch-size` as an alias of `--batch`, `--rdy`, `--topic`, `--channel`).

use std::time::Duration;

use anyhow::{anyhow, bail};
use clap::{Args, Parser, Subcommand};

use crate::load::Settings;
use crate::scenario;

/// Load generator and side-by-side benchmark for NSQ-compatible servers.
#[derive(Debug, Parser)]
#[command(name = "sluice-perf", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Publish only.
    Pub(LoadArgs),
    /// Consume only (for example the backlog a `pub` run left).
    Sub(LoadArgs),
    /// Publish and consume at once; checks every message arrived once per channel.
    Pubsub(LoadArgs),
    /// Run a scenario against two server commands in turn (A B A B …) and print ratios.
    Compare(CompareArgs),
    /// The "billion messages a day" run: pub+sub at a target rate, loss and duplicates,
    /// per-interval figures, an SVG chart and its JSON.
    Billion(BillionArgs),
    /// A server that answers OK to every publish and delivers synthetic messages to
    /// subscribers: measures sluice-perf's own ceiling.
    Sink(SinkArgs),
    /// List the scenarios.
    Scenarios,
}

/// Flags of a load run.
#[derive(Debug, Clone, Args, Default)]
pub struct LoadArgs {
    /// Broker TCP address (repeatable).
    #[arg(long = "nsqd-tcp-address", value_name = "ADDR")]
    pub nsqd_tcp_address: Vec<String>,
    /// Start from a named scenario's settings (see `sluice-perf scenarios`).
    #[arg(long)]
    pub scenario: Option<String>,
    /// Topic name (several topics: NAME.0, NAME.1, …).
    #[arg(long)]
    pub topic: Option<String>,
    /// Number of topics.
    #[arg(long)]
    pub topics: Option<usize>,
    /// Channel name (several channels: NAME.0, NAME.1, …).
    #[arg(long)]
    pub channel: Option<String>,
    /// Channels per topic.
    #[arg(long)]
    pub channels: Option<usize>,
    /// Publishing connections in all.
    #[arg(long)]
    pub producers: Option<usize>,
    /// Consumer connections per channel (and per broker).
    #[arg(long)]
    pub consumers: Option<usize>,
    /// Message body size in bytes (at least 24: the stamp).
    #[arg(long)]
    pub size: Option<usize>,
    /// Messages per MPUB (1 sends PUB).
    #[arg(long, alias = "batch-size")]
    pub batch: Option<usize>,
    /// Offered rate in messages per second over all publishers (default: unlimited).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Measured run time, e.g. 10s, 2m (after the warm-up).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Messages to publish (pub, pubsub) or to receive (sub), instead of a duration.
    #[arg(long)]
    pub count: Option<u64>,
    /// RDY per consumer connection.
    #[arg(long)]
    pub rdy: Option<u64>,
    /// Time excluded from the figures at the start, e.g. 2s.
    #[arg(long, value_parser = parse_duration)]
    pub warmup: Option<Duration>,
    /// Publish requests in flight per connection.
    #[arg(long)]
    pub max_pending: Option<usize>,
    /// How long to wait for the last messages once publishing stopped.
    #[arg(long, value_parser = parse_duration)]
    pub drain_timeout: Option<Duration>,
    /// Output buffer timeout consumers ask for in IDENTIFY, e.g. 25ms (default: the
    /// server's; upstream's is 250ms).
    #[arg(long, value_parser = parse_duration)]
    pub output_buffer_timeout: Option<Duration>,
    /// The server's pid: its peak RSS (VmHWM) is reported.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Pin this process to these CPUs (taskset list, e.g. 1 or 2-3).
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<String>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
}

/// Flags of `compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// Server command A. `{tcp}`, `{http}`, `{data}` and `{flags}` are replaced by a free TCP
    /// address, a free HTTP address, a fresh data directory and the scenario's server flags.
    #[arg(long = "a", value_name = "COMMAND")]
    pub a: String,
    /// Server command B (same placeholders).
    #[arg(long = "b", value_name = "COMMAND")]
    pub b: String,
    /// Runs of each server (alternating A B A B …).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Pin the servers to these CPUs (taskset list).
    #[arg(long, value_name = "LIST")]
    pub server_cpus: Option<String>,
    /// Only these phases instead of the scenario's (pub, sub, pubsub; comma separated).
    #[arg(long)]
    pub phases: Option<String>,
    /// Seconds to wait for a server to accept connections.
    #[arg(long, default_value_t = 15)]
    pub start_timeout: u64,
    /// The load (`--scenario` names the scenario; `--nsqd-tcp-address` is used only when a
    /// command has no `{tcp}`).
    #[command(flatten)]
    pub load: LoadArgs,
}

/// Flags of `billion`.
#[derive(Debug, Clone, Args)]
pub struct BillionArgs {
    /// Target rate as a multiple of a billion a day (1e9 / 86400 ≈ 11,574 msg/s).
    #[arg(long, default_value_t = 1.0)]
    pub times: f64,
    /// Publish as fast as possible instead of at a target rate.
    #[arg(long)]
    pub max: bool,
    /// Total messages instead of a duration (1000000000 runs it for real).
    #[arg(long)]
    pub messages: Option<u64>,
    /// Seconds per reported interval.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub interval: Duration,
    /// Where to write PREFIX.svg and PREFIX.json.
    #[arg(long, default_value = "billion")]
    pub out: String,
    /// The load (`--duration` defaults to 60s; `--rate` overrides `--times`).
    #[command(flatten)]
    pub load: LoadArgs,
}

/// Flags of `sink`.
#[derive(Debug, Clone, Args)]
pub struct SinkArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4150")]
    pub tcp_address: String,
    /// Body size of the messages delivered to subscribers.
    #[arg(long, default_value_t = 200)]
    pub size: usize,
    /// Pin this process to these CPUs (taskset list).
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<String>,
}

/// Parses `10s`, `500ms`, `2m`, `1h`, `250us`, `100ns` or a plain number of seconds.
///
/// # Errors
/// A message naming the bad text.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("bad duration {text:?} (try 10s, 500ms, 2m)"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "ns" => value / 1e9,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("bad duration unit {other:?} in {text:?}")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("bad duration {text:?}: {e}"))
}

impl LoadArgs {
    /// The settings: defaults, then the scenario's, then the flags given.
    ///
    /// # Errors
    /// An unknown scenario, or settings that cannot run.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let mut s = Settings::default();
        if let Some(name) = &self.scenario {
            let scenario = scenario::find(name).ok_or_else(|| {
                anyhow!("unknown scenario {name:?}; known: {}", scenario::names())
            })?;
            (scenario.apply)(&mut s);
            s.scenario = name.clone();
        }
        if !self.nsqd_tcp_address.is_empty() {
            s.addrs = self.nsqd_tcp_address.clone();
        }
        macro_rules! take {
            ($($field:ident),*) => { $( if let Some(v) = &self.$field { s.$field = v.clone(); } )* };
        }
        take!(topic, topics, channel, channels, producers, consumers, size, batch, rdy, warmup);
        take!(max_pending, drain_timeout);
        if self.rate.is_some() {
            s.rate = self.rate;
        }
        if self.count.is_some() {
            s.count = self.count;
            s.duration = self.duration;
        } else if self.duration.is_some() {
            s.duration = self.duration;
        }
        s.server_pid = self.server_pid;
        s.output_buffer_timeout = self.output_buffer_timeout;
        s.progress = !self.quiet;
        if s.max_pending == 0 {
            bail!("--max-pending must be at least 1");
        }
        s.validate()?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("100us"), Ok(Duration::from_micros(100)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5y").is_err());
    }

    #[test]
    fn flags_override_the_scenario() {
        let cli = Cli::try_parse_from([
            "sluice-perf",
            "pubsub",
            "--scenario",
            "bench",
            "--size",
            "100",
            "--nsqd-tcp-address",
            "a:1",
            "--nsqd-tcp-address",
            "b:2",
            "--count",
            "5",
            "--batch-size",
            "7",
        ])
        .unwrap();
        let Command::Pubsub(args) = cli.command else {
            panic!("not pubsub");
        };
        let s = args.settings().unwrap();
        assert_eq!((s.size, s.batch, s.rdy), (100, 7, 2500));
        assert_eq!(s.addrs, vec!["a:1", "b:2"]);
        assert_eq!((s.count, s.duration), (Some(5), None));
        assert_eq!(s.topic, "sub_bench");
        let bad = LoadArgs {
            scenario: Some("nope".into()),
            ..LoadArgs::default()
        };
        assert!(bad.settings().is_err());
        let small = LoadArgs {
            size: Some(10),
            ..LoadArgs::default()
        };
        assert!(small.settings().is_err());
    }
}
