//! `sluice stat` (upstream `nsq_stat`): poll `/stats` of every broker that has a topic and
//! print the channel's figures, summed over brokers, every `--interval`, `--count` times.
//!
//! Mirrors `apps/nsq_stat/nsq_stat.go` and the parts of `internal/clusterinfo` it uses: the
//! brokers are the `--nsqd-http-address` values or the topic's producers in each lookupd
//! (`broadcast_address:http_port`); the header is printed before the first poll and every 25
//! polls after; the first poll only sets the baseline for the rates; each row is
//! `ingress egress | total mem disk inflt def | req t-o msgs clients`, the rates being the
//! changes of `message_count` (and of `depth`) over the interval. Differences: no sleep after
//! the last row, and SIGINT/SIGTERM end it with status 0 after the current poll.

use std::fmt::Write as _;
use std::time::Duration;

use sluice_proto::http_json::{LookupResponse, Stats};

use crate::apps::flags::{Flag, Kind, Values};
use crate::apps::signals::Signals;
use crate::apps::source::flag;
use crate::lookup;

/// A header every this many polls.
const HEADER_EVERY: u64 = 25;

/// The flag table.
pub fn flags() -> Vec<Flag> {
    vec![
        flag("version", Kind::Bool, "false", "print version"),
        flag("topic", Kind::Str, "", "NSQ topic"),
        flag("channel", Kind::Str, "", "NSQ channel"),
        flag(
            "interval",
            Kind::Duration,
            "2s",
            "duration of time between polling/printing output",
        ),
        flag(
            "http-client-connect-timeout",
            Kind::Duration,
            "2s",
            "timeout for HTTP connect",
        ),
        flag(
            "http-client-request-timeout",
            Kind::Duration,
            "5s",
            "timeout for HTTP request",
        ),
        flag("count", Kind::Value(check_count), "", "number of reports"),
        flag(
            "nsqd-http-address",
            Kind::List,
            "",
            "nsqd HTTP address (may be given multiple times)",
        ),
        flag(
            "lookupd-http-address",
            Kind::List,
            "",
            "lookupd HTTP address (may be given multiple times)",
        ),
    ]
}

fn check_count(value: &str) -> Result<(), String> {
    value
        .parse::<i32>()
        .map(|_| ())
        .map_err(|e| format!("strconv.ParseInt: parsing {value:?}: {e}"))
}

/// One channel's figures summed over brokers (upstream `clusterinfo.ChannelStats.Add`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelTotals {
    /// Messages waiting.
    pub depth: i64,
    /// Waiting in memory (`depth - backend_depth`).
    pub memory_depth: i64,
    /// Waiting on disk.
    pub backend_depth: i64,
    /// In flight.
    pub in_flight: i64,
    /// Deferred.
    pub deferred: i64,
    /// Requeued since start.
    pub requeued: i64,
    /// Timed out since start.
    pub timed_out: i64,
    /// Received since start.
    pub messages: i64,
    /// Subscribed connections.
    pub clients: i64,
}

/// Adds one broker's `/stats` figures for `topic`/`channel` to `totals`; returns whether the
/// broker has that channel.
pub fn add_channel(totals: &mut ChannelTotals, stats: &Stats, topic: &str, channel: &str) -> bool {
    let found = stats
        .topics
        .iter()
        .flatten()
        .filter(|t| t.topic_name == topic)
        .flat_map(|t| t.channels.iter())
        .find(|c| c.channel_name == channel);
    let Some(c) = found else {
        return false;
    };
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    totals.depth += c.depth;
    totals.memory_depth += c.depth - c.backend_depth;
    totals.backend_depth += c.backend_depth;
    totals.in_flight += c.in_flight_count;
    totals.deferred += c.deferred_count;
    totals.requeued += count(c.requeue_count);
    totals.timed_out += count(c.timeout_count);
    totals.messages += count(c.message_count);
    totals.clients += c.client_count;
    true
}

/// The two header lines.
pub fn header() -> String {
    format!(
        "{}+{}+{}\n{:>7} {:>7} | {:>7} {:>7} {:>7} {:>5} {:>5} | {:>7} {:>7} {:>12} {:>7}\n",
        "------rate------",
        "----------------depth----------------",
        "--------------metadata---------------",
        "ingress",
        "egress",
        "total",
        "mem",
        "disk",
        "inflt",
        "def",
        "req",
        "t-o",
        "msgs",
        "clients"
    )
}

/// One row: `now` against the previous poll `before`, `interval` apart.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use sluice_client::apps::stat::{row, ChannelTotals};
/// let before = ChannelTotals { messages: 100, depth: 10, ..Default::default() };
/// let now = ChannelTotals { messages: 140, depth: 20, memory_depth: 20, clients: 1, ..Default::default() };
/// assert_eq!(
///     row(&now, &before, Duration::from_secs(2)),
///     "     20      15 |      20      20       0     0     0 |       0       0          140       1\n"
/// );
/// ```
pub fn row(now: &ChannelTotals, before: &ChannelTotals, interval: Duration) -> String {
    let secs = interval.as_secs_f64().max(1e-9);
    let ingress = ((now.messages - before.messages) as f64 / secs) as i64;
    let egress =
        ((now.messages - before.messages - (now.depth - before.depth)) as f64 / secs) as i64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{ingress:>7} {egress:>7} | {:>7} {:>7} {:>7} {:>5} {:>5} | {:>7} {:>7} {:>12} {:>7}",
        now.depth,
        now.memory_depth,
        now.backend_depth,
        now.in_flight,
        now.deferred,
        now.requeued,
        now.timed_out,
        now.messages,
        now.clients
    );
    out
}

/// Runs `nsq_stat`.
///
/// # Errors
/// Bad flags, or a broker or lookupd that cannot be read, or a channel that no broker has.
pub fn run(values: &Values, signals: &Signals) -> Result<(), String> {
    let topic = values.get("topic").unwrap_or_default();
    let channel = values.get("channel").unwrap_or_default();
    if topic.is_empty() || channel.is_empty() {
        return Err("--topic and --channel are required".into());
    }
    let interval = values
        .duration("interval")
        .unwrap_or(Duration::from_secs(2));
    if interval.is_zero() {
        return Err("--interval should be positive".into());
    }
    for name in ["http-client-connect-timeout", "http-client-request-timeout"] {
        if values.duration(name) == Some(Duration::ZERO) {
            return Err(format!("--{name} should be positive"));
        }
    }
    let timeout = values
        .duration("http-client-request-timeout")
        .unwrap_or(Duration::from_secs(5));
    let count = match values.int("count") {
        Some(n) if n <= 0 => return Err("--count should be positive".into()),
        other => other.map(i64::unsigned_abs),
    };
    let (nsqds, lookupds) = (
        values.all("nsqd-http-address"),
        values.all("lookupd-http-address"),
    );
    if nsqds.is_empty() && lookupds.is_empty() {
        return Err("--nsqd-http-address or --lookupd-http-address required".into());
    }
    if !nsqds.is_empty() && !lookupds.is_empty() {
        return Err("use --nsqd-http-address or --lookupd-http-address not both".into());
    }
    for (name, addrs) in [
        ("nsqd-http-address", nsqds),
        ("lookupd-http-address", lookupds),
    ] {
        if addrs.iter().any(|a| a.starts_with("http")) {
            return Err(format!(
                "--{name} error - address should not contain scheme"
            ));
        }
    }
    let mut before: Option<ChannelTotals> = None;
    let mut polls = 0u64;
    loop {
        let producers = if lookupds.is_empty() {
            nsqds.to_vec()
        } else {
            lookupd_producers(lookupds, topic, timeout)
                .map_err(|e| format!("ERROR: failed to get topic producers - {e}"))?
        };
        let totals = channel_totals(&producers, topic, channel, timeout)?;
        let mut out = String::new();
        if polls % HEADER_EVERY == 0 {
            out.push_str(&header());
        }
        if let Some(before) = &before {
            out.push_str(&row(&totals, before, interval));
        }
        print!("{out}");
        before = Some(totals);
        if count.is_some_and(|count| polls >= count) || signals.sleep(interval) {
            return Ok(());
        }
        polls += 1;
    }
}

/// Sums the channel over `producers`' `/stats`.
fn channel_totals(
    producers: &[String],
    topic: &str,
    channel: &str,
    timeout: Duration,
) -> Result<ChannelTotals, String> {
    let mut totals = ChannelTotals::default();
    let mut found = false;
    let path = format!(
        "/stats?format=json&topic={}&channel={}&include_clients=false",
        escape(topic),
        escape(channel)
    );
    for addr in producers {
        let stats = lookup::http_get(addr, &path, timeout)
            .map_err(|e| e.to_string())
            .and_then(|(status, body)| match status {
                200 => serde_json::from_slice::<Stats>(&body)
                    .map_err(|e| format!("{addr}: bad stats JSON: {e}")),
                other => Err(format!("{addr}: status {other}")),
            })
            .map_err(|e| format!("ERROR: failed to get nsqd stats - {e}"))?;
        found |= add_channel(&mut totals, &stats, topic, channel);
    }
    if !found {
        return Err(format!(
            "ERROR: failed to find channel({channel}) in stats metadata for topic({topic})"
        ));
    }
    Ok(totals)
}

/// The HTTP addresses of `topic`'s producers in every lookupd (upstream
/// `GetLookupdTopicProducers`), deduplicated.
fn lookupd_producers(
    lookupds: &[String],
    topic: &str,
    timeout: Duration,
) -> Result<Vec<String>, String> {
    let mut producers = Vec::new();
    let mut errors = Vec::new();
    for addr in lookupds {
        let answer = lookup::http_get(addr, &format!("/lookup?topic={}", escape(topic)), timeout)
            .map_err(|e| e.to_string())
            .and_then(|(status, body)| match status {
                200 => serde_json::from_slice::<serde_json::Value>(&body)
                    .map(|v| match v.get("data") {
                        Some(data) if data.is_object() => data.clone(),
                        _ => v,
                    })
                    .and_then(serde_json::from_value::<LookupResponse>)
                    .map_err(|e| format!("{addr}: bad lookup JSON: {e}")),
                404 => Ok(LookupResponse::default()),
                other => Err(format!("{addr}: status {other}")),
            });
        match answer {
            Ok(response) => {
                for p in response.producers {
                    let http = lookup::join_host_port(&p.broadcast_address, p.http_port);
                    if !producers.contains(&http) {
                        producers.push(http);
                    }
                }
            }
            Err(err) => errors.push(err),
        }
    }
    if errors.len() == lookupds.len() {
        return Err(errors.join("; "));
    }
    Ok(producers)
}

/// Topic and channel names need only `#` escaped in a query.
fn escape(name: &str) -> String {
    name.replace('%', "%25").replace('#', "%23")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lines_are_upstreams() {
        assert_eq!(
            header(),
            "------rate------+----------------depth----------------+--------------metadata---------------\n\
             ingress  egress |   total     mem    disk inflt   def |     req     t-o         msgs clients\n"
        );
    }

    #[test]
    fn channels_sum_over_brokers() {
        let json = r#"{"topics":[{"topic_name":"t","channels":[
            {"channel_name":"c","depth":5,"backend_depth":2,"in_flight_count":1,"deferred_count":1,
             "message_count":9,"requeue_count":3,"timeout_count":4,"client_count":2},
            {"channel_name":"other","depth":100}]},
            {"topic_name":"u","channels":[{"channel_name":"c","depth":1000}]}]}"#;
        let stats: Stats = serde_json::from_str(json).unwrap();
        let mut totals = ChannelTotals::default();
        assert!(add_channel(&mut totals, &stats, "t", "c"));
        assert!(add_channel(&mut totals, &stats, "t", "c"));
        assert!(!add_channel(&mut totals, &stats, "t", "missing"));
        assert!(!add_channel(&mut totals, &Stats::default(), "t", "c"));
        assert_eq!(
            totals,
            ChannelTotals {
                depth: 10,
                memory_depth: 6,
                backend_depth: 4,
                in_flight: 2,
                deferred: 2,
                requeued: 6,
                timed_out: 8,
                messages: 18,
                clients: 4,
            }
        );
    }
}
