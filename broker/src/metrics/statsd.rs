//! statsd: every `--statsd-interval`, the figures of `/stats` pushed over UDP as nsqd pushes
//! them, from a thread of its own.
//!
//! Mirrors `nsqd/statsd.go` `statsdLoop` with `internal/statsd/client.go` (`prefix + stat +
//! ":" + value + "|c"` or `"|g"`, one per line), `internal/writers/boundary_buffered_writer.go`
//! (lines packed into datagrams of at most `--statsd-udp-packet-size` bytes, a line never
//! split) and `spread_writer.go` (the datagrams spread over the interval less one second), and
//! the prefix expansion of `nsqd/nsqd.go` `New` ([`expand_prefix`]). The keys and their kinds:
//!
//! | key | kind |
//! |-----|------|
//! | `topic.T.message_count`, `topic.T.message_bytes` | counter (difference since the last push) |
//! | `topic.T.depth`, `topic.T.backend_depth` | gauge |
//! | `topic.T.e2e_processing_latency_P` (P = quantile × 100) | gauge, ns |
//! | `topic.T.channel.C.message_count`, `….requeue_count`, `….timeout_count` | counter (difference) |
//! | `topic.T.channel.C.depth`, `….backend_depth`, `….in_flight_count`, `….deferred_count`, `….clients` | gauge |
//! | `topic.T.channel.C.e2e_processing_latency_P` | gauge, ns |
//! | `mem.heap_objects`, `mem.heap_idle_bytes`, `mem.heap_in_use_bytes`, `mem.heap_released_bytes`, `mem.gc_pause_usec_100`, `mem.gc_pause_usec_99`, `mem.gc_pause_usec_95`, `mem.next_gc_bytes` | gauge (`--statsd-mem-stats`) |
//! | `mem.gc_runs` | counter (difference) |
//!
//! The `mem.*` figures are those of `/stats` (see [`crate::http::memory`] for what each means
//! without a Go runtime). The thread reads the broker's own `GET /stats?format=json` over
//! loopback, so it never runs on, or blocks, a shard: the shard answering it does what any
//! `/stats` request does. With `--tls-required=true` plain HTTP is refused and nothing is
//! pushed (an error is logged each interval); a `/stats` reply above
//! [`RESPONSE_SIZE_MAX`](crate::lookupd::http_client::RESPONSE_SIZE_MAX) is not pushed either.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sluice_proto::http_json::{ChannelStats, E2eProcessingLatency, MemStats, Stats, TopicStats};

use crate::lookupd::http_client::HttpClient;
use crate::options::{Options, StatsdOptions};
use crate::runtime::{Bound, Control};

/// How often the thread looks at the stop flag while it waits.
const STOP_POLL: Duration = Duration::from_millis(20);

/// Upstream's `statsd.HostKey`: `.` and `:` become `_`.
pub fn host_key(host: &str) -> String {
    host.replace(['.', ':'], "_")
}

/// The prefix with `%s` replaced by the host key of `broadcast_address:http_port` (Go's
/// `net.JoinHostPort`, so an IPv6 address is bracketed) and a `.` appended if missing, as
/// upstream `nsqd.New` rewrites `--statsd-prefix`. An empty prefix stays empty.
pub fn expand_prefix(prefix: &str, broadcast_address: &str, http_port: u16) -> String {
    if prefix.is_empty() {
        return String::new();
    }
    let host = if broadcast_address.contains(':') {
        format!("[{broadcast_address}]:{http_port}")
    } else {
        format!("{broadcast_address}:{http_port}")
    };
    let mut expanded = prefix.replace("%s", &host_key(&host));
    if !expanded.ends_with('.') {
        expanded.push('.');
    }
    expanded
}

/// The statsd lines of one push (each ending in `\n`), as upstream's loop writes them:
/// counters are differences from `last` (wrapping, as Go's `uint64` subtraction cast to
/// `int64`), gauges are current values.
pub fn lines(prefix: &str, current: &Stats, last: &Stats, opts: &StatsdOptions) -> Vec<String> {
    let mut out = Vec::new();
    let last_topics: HashMap<&str, &TopicStats> = last
        .topics
        .iter()
        .flatten()
        .map(|t| (t.topic_name.as_str(), t))
        .collect();
    for topic in current.topics.iter().flatten() {
        if opts.exclude_ephemeral && is_ephemeral(&topic.topic_name) {
            continue;
        }
        let last_topic = last_topics.get(topic.topic_name.as_str()).copied();
        topic_lines(&mut out, prefix, topic, last_topic, opts);
    }
    if opts.mem_stats {
        let empty = MemStats::default();
        let mem = current.memory.as_ref().unwrap_or(&empty);
        let last_mem = last.memory.as_ref().unwrap_or(&empty);
        mem_lines(&mut out, prefix, mem, last_mem);
    }
    out
}

fn is_ephemeral(name: &str) -> bool {
    name.ends_with("#ephemeral")
}

fn counter(out: &mut Vec<String>, prefix: &str, stat: &str, now: u64, before: u64) {
    // Go: `int64(now - before)` on uint64s.
    let diff = now.wrapping_sub(before) as i64;
    out.push(format!("{prefix}{stat}:{diff}|c\n"));
}

fn gauge(out: &mut Vec<String>, prefix: &str, stat: &str, value: i64) {
    out.push(format!("{prefix}{stat}:{value}|g\n"));
}

fn e2e_lines(out: &mut Vec<String>, prefix: &str, stem: &str, e2e: &E2eProcessingLatency) {
    for p in e2e.percentiles.iter().flatten() {
        // Go: `fmt.Sprintf("%.0f", quantile*100.0)` and `int64(value)`.
        let stat = format!("{stem}.e2e_processing_latency_{:.0}", p.quantile * 100.0);
        gauge(out, prefix, &stat, p.value as i64);
    }
}

fn topic_lines(
    out: &mut Vec<String>,
    prefix: &str,
    topic: &TopicStats,
    last: Option<&TopicStats>,
    opts: &StatsdOptions,
) {
    let stem = format!("topic.{}", topic.topic_name);
    let (count, bytes) = last.map_or((0, 0), |l| (l.message_count, l.message_bytes));
    counter(
        out,
        prefix,
        &format!("{stem}.message_count"),
        topic.message_count,
        count,
    );
    counter(
        out,
        prefix,
        &format!("{stem}.message_bytes"),
        topic.message_bytes,
        bytes,
    );
    gauge(out, prefix, &format!("{stem}.depth"), topic.depth);
    gauge(
        out,
        prefix,
        &format!("{stem}.backend_depth"),
        topic.backend_depth,
    );
    e2e_lines(out, prefix, &stem, &topic.e2e_processing_latency);
    for channel in &topic.channels {
        if opts.exclude_ephemeral && is_ephemeral(&channel.channel_name) {
            continue;
        }
        let last_channel = last.and_then(|l| {
            l.channels
                .iter()
                .find(|c| c.channel_name == channel.channel_name)
        });
        channel_lines(out, prefix, &stem, channel, last_channel);
    }
}

fn channel_lines(
    out: &mut Vec<String>,
    prefix: &str,
    topic_stem: &str,
    channel: &ChannelStats,
    last: Option<&ChannelStats>,
) {
    let stem = format!("{topic_stem}.channel.{}", channel.channel_name);
    let before = last.cloned().unwrap_or_default();
    let stat = |name: &str| format!("{stem}.{name}");
    counter(
        out,
        prefix,
        &stat("message_count"),
        channel.message_count,
        before.message_count,
    );
    gauge(out, prefix, &stat("depth"), channel.depth);
    gauge(out, prefix, &stat("backend_depth"), channel.backend_depth);
    gauge(
        out,
        prefix,
        &stat("in_flight_count"),
        channel.in_flight_count,
    );
    gauge(out, prefix, &stat("deferred_count"), channel.deferred_count);
    counter(
        out,
        prefix,
        &stat("requeue_count"),
        channel.requeue_count,
        before.requeue_count,
    );
    counter(
        out,
        prefix,
        &stat("timeout_count"),
        channel.timeout_count,
        before.timeout_count,
    );
    gauge(out, prefix, &stat("clients"), channel.client_count);
    e2e_lines(out, prefix, &stem, &channel.e2e_processing_latency);
}

fn mem_lines(out: &mut Vec<String>, prefix: &str, mem: &MemStats, last: &MemStats) {
    let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    for (stat, value) in [
        ("mem.heap_objects", mem.heap_objects),
        ("mem.heap_idle_bytes", mem.heap_idle_bytes),
        ("mem.heap_in_use_bytes", mem.heap_in_use_bytes),
        ("mem.heap_released_bytes", mem.heap_released_bytes),
        ("mem.gc_pause_usec_100", mem.gc_pause_usec_100),
        ("mem.gc_pause_usec_99", mem.gc_pause_usec_99),
        ("mem.gc_pause_usec_95", mem.gc_pause_usec_95),
        ("mem.next_gc_bytes", mem.next_gc_bytes),
    ] {
        gauge(out, prefix, stat, as_i64(value));
    }
    // Go: `int64(ms.GCTotalRuns - lastMemStats.GCTotalRuns)` on uint32s.
    let runs = i64::from(mem.gc_total_runs.wrapping_sub(last.gc_total_runs));
    out.push(format!("{prefix}mem.gc_runs:{runs}|c\n"));
}

/// Packs lines into datagrams of at most `size` bytes, in order, as upstream's
/// `BoundaryBufferedWriter` over a `bufio.Writer` of that size: a line that does not fit in
/// what is left of the current datagram starts the next one; a line longer than `size` alone
/// goes out as its own (larger) datagram, since a statsd line cannot be split.
pub fn pack(lines: &[String], size: usize) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    let mut current: Vec<u8> = Vec::with_capacity(size);
    for line in lines {
        if line.len() > size.saturating_sub(current.len()) && !current.is_empty() {
            packets.push(std::mem::replace(&mut current, Vec::with_capacity(size)));
        }
        current.extend_from_slice(line.as_bytes());
        if current.len() >= size {
            packets.push(std::mem::replace(&mut current, Vec::with_capacity(size)));
        }
    }
    if !current.is_empty() {
        packets.push(current);
    }
    packets
}

/// Starts the statsd thread when `--statsd-address` is set; it waits for the listeners, then
/// pushes every `--statsd-interval` until `control.stop` is set.
///
/// # Errors
/// The thread cannot be started.
pub fn spawn(opts: Arc<Options>, control: Arc<Control>) -> std::io::Result<Option<JoinHandle<()>>> {
    if opts.statsd.address.is_empty() {
        return Ok(None);
    }
    std::thread::Builder::new()
        .name("statsd".into())
        .spawn(move || {
            if let Some(bound) = wait_bound(&control) {
                run(&opts, bound, &control.stop);
            }
        })
        .map(Some)
}

fn wait_bound(control: &Control) -> Option<Bound> {
    loop {
        if control.stop.load(Ordering::Relaxed) {
            return None;
        }
        if let Some(bound) = control.bound() {
            return Some(bound);
        }
        std::thread::sleep(STOP_POLL);
    }
}

/// The push loop (upstream `statsdLoop`): the first push one interval after start.
fn run(opts: &Options, bound: Bound, stop: &AtomicBool) {
    let statsd = &opts.statsd;
    let http_port = match opts.broadcast_http_port {
        0 => bound.http.port(),
        port => port,
    };
    let prefix = expand_prefix(&statsd.prefix, &opts.broadcast_address, http_port);
    let broker = reachable(bound.http).to_string();
    let client = HttpClient {
        connect_timeout: opts.security.http_client_connect_timeout,
        request_timeout: opts.security.http_client_request_timeout,
    };
    let mut last = Stats::default();
    let mut next = Instant::now() + statsd.interval;
    while sleep_until(next, stop) {
        next += statsd.interval;
        if let Some(stats) = push(statsd, &prefix, &broker, &client, &last, stop) {
            last = stats;
        }
        // A push that outlasted the interval skips the ticks it missed, as Go's ticker drops
        // them, rather than pushing again at once.
        let now = Instant::now();
        if next <= now {
            next = now + statsd.interval;
        }
    }
    tracing::info!("STATSD: closing");
}

/// One push; the stats pushed, or `None` when nothing could be.
fn push(
    statsd: &StatsdOptions,
    prefix: &str,
    broker: &str,
    client: &HttpClient,
    last: &Stats,
    stop: &AtomicBool,
) -> Option<Stats> {
    let Some(socket) = connect(&statsd.address) else {
        tracing::error!("failed to create UDP socket to statsd({})", statsd.address);
        return None;
    };
    tracing::info!("STATSD: pushing stats to {}", statsd.address);
    let stats = match fetch(client, broker) {
        Ok(stats) => stats,
        Err(why) => {
            tracing::error!("STATSD: cannot read /stats - {why}");
            return None;
        }
    };
    let packets = pack(&lines(prefix, &stats, last, statsd), statsd.udp_packet_size);
    // Upstream's SpreadWriter: the datagrams spaced over the interval less one second.
    let spread = statsd.interval.saturating_sub(Duration::from_secs(1));
    let pause = spread / u32::try_from(packets.len().max(1)).unwrap_or(u32::MAX);
    for (i, packet) in packets.iter().enumerate() {
        if i > 0 && !sleep_until(Instant::now() + pause, stop) {
            break;
        }
        // Upstream ignores write errors (nobody listening is the usual one).
        let _ = socket.send(packet);
    }
    Some(stats)
}

fn connect(address: &str) -> Option<UdpSocket> {
    let target = address.to_socket_addrs().ok()?.next()?;
    let local: SocketAddr = match target {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).ok()?;
    socket.connect(target).ok()?;
    Some(socket)
}

fn fetch(client: &HttpClient, broker: &str) -> Result<Stats, String> {
    let reply = client
        .request("GET", broker, "/stats?format=json&include_clients=false")
        .map_err(|e| e.to_string())?;
    if reply.status != 200 {
        return Err(format!("status {}", reply.status));
    }
    serde_json::from_slice(&reply.body).map_err(|e| e.to_string())
}

/// Sleeps until `deadline`; false when the stop flag was set meanwhile.
fn sleep_until(deadline: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(STOP_POLL));
    }
}

/// A wildcard listen address is reached through loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

#[cfg(test)]
mod tests;
