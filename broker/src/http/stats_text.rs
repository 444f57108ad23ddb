//! `/stats` as text (the default `format`), byte for byte as upstream prints it.
//!
//! Mirrors `nsqd/http.go` `printStats`, `nsqd/stats.go` `ClientV2Stats.String` and
//! `internal/quantile` `Result.String` (with `stringy.NanoSecondToHuman`). Go's `%-15s` pads
//! by characters; names are ASCII, so Rust's `{:<15}` matches. Pure: the clock is passed in.

use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sluice_proto::http_json::{ClientStats, E2eProcessingLatency, MemStats, Stats};

use super::go_time;

/// The first line: upstream prints `nsqd v1.3.0 (built w/go1.x)`; tools match on `nsqd v`.
fn version_line(version: &str) -> String {
    format!(
        "nsqd v{version} (built w/sluiced v{})",
        env!("CARGO_PKG_VERSION")
    )
}

/// The whole text answer. `started_at` gives the uptime (with nanoseconds, as upstream).
pub fn render(stats: &Stats, started_at: SystemTime, now: SystemTime) -> String {
    let mut w = String::new();
    let start = unix_secs(stats.start_time);
    let uptime = now.duration_since(started_at).unwrap_or_default();
    let _ = writeln!(w, "{}", version_line(&stats.version));
    let _ = writeln!(w, "start_time {}", go_time::rfc3339_utc(start));
    let _ = writeln!(w, "uptime {}", go_time::duration(uptime));
    let _ = writeln!(w, "\nHealth: {}", stats.health);
    if let Some(memory) = &stats.memory {
        put_memory(&mut w, memory);
    }
    let topics = stats.topics.as_deref().unwrap_or_default();
    if topics.is_empty() {
        w.push_str("\nTopics: None\n");
    } else {
        w.push_str("\nTopics:");
    }
    for t in topics {
        let paused = if t.paused { "*P " } else { "   " };
        let _ = writeln!(
            w,
            "\n{paused}[{:<15}] depth: {:<5} be-depth: {:<5} msgs: {:<8} e2e%: {}",
            t.topic_name,
            t.depth,
            t.backend_depth,
            t.message_count,
            e2e(&t.e2e_processing_latency)
        );
        for c in &t.channels {
            let paused = if c.paused { "   *P " } else { "      " };
            let _ = writeln!(
                w,
                "{paused}[{:<25}] depth: {:<5} be-depth: {:<5} inflt: {:<4} def: {:<4} re-q: {:<5} timeout: {:<5} msgs: {:<8} e2e%: {}",
                c.channel_name,
                c.depth,
                c.backend_depth,
                c.in_flight_count,
                c.deferred_count,
                c.requeue_count,
                c.timeout_count,
                c.message_count,
                e2e(&c.e2e_processing_latency)
            );
            for client in c.clients.as_deref().unwrap_or_default() {
                let _ = writeln!(w, "        {}", client_line(client, now));
            }
        }
    }
    let producers = stats.producers.as_deref().unwrap_or_default();
    if producers.is_empty() {
        w.push_str("\nProducers: None\n");
    } else {
        w.push_str("\nProducers:\n");
        for client in producers {
            let _ = writeln!(w, "   {}", client_line(client, now));
        }
    }
    w
}

fn put_memory(w: &mut String, m: &MemStats) {
    w.push_str("\nMemory:\n");
    let rows: [(&str, u64); 9] = [
        ("heap_objects", m.heap_objects),
        ("heap_idle_bytes", m.heap_idle_bytes),
        ("heap_in_use_bytes", m.heap_in_use_bytes),
        ("heap_released_bytes", m.heap_released_bytes),
        ("gc_pause_usec_100", m.gc_pause_usec_100),
        ("gc_pause_usec_99", m.gc_pause_usec_99),
        ("gc_pause_usec_95", m.gc_pause_usec_95),
        ("next_gc_bytes", m.next_gc_bytes),
        ("gc_total_runs", u64::from(m.gc_total_runs)),
    ];
    for (name, value) in rows {
        let _ = writeln!(w, "   {name:<25}\t{value}");
    }
}

/// Upstream's `quantile.Result.String`: each percentile's value in human units, joined.
fn e2e(latency: &E2eProcessingLatency) -> String {
    latency
        .percentiles
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|p| nanos_to_human(p.value))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `stringy.NanoSecondToHuman`.
fn nanos_to_human(v: f64) -> String {
    let (v, suffix) = if v > 1e9 {
        (v / 1e9, "s")
    } else if v > 1e6 {
        (v / 1e6, "ms")
    } else if v > 1e3 {
        (v / 1e3, "us")
    } else {
        (v, "ns")
    };
    format!("{v:.1}{suffix}")
}

/// Unix seconds as a time (the epoch for values out of range).
fn unix_secs(secs: i64) -> SystemTime {
    let secs = Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    UNIX_EPOCH.checked_add(secs).unwrap_or(UNIX_EPOCH)
}

/// `ClientV2Stats.String`: a producer (with publish counts) or a consumer line.
fn client_line(c: &ClientStats, now: SystemTime) -> String {
    let connected = unix_secs(c.connect_ts);
    let age = Duration::from_secs(now.duration_since(connected).unwrap_or_default().as_secs());
    let port = c
        .remote_address
        .rsplit_once(':')
        .map_or("", |(_, port)| port);
    let id = format!("{}:{port} {}", c.hostname, c.user_agent);
    let age = go_time::duration(age);
    if !c.pub_counts.is_empty() {
        let total: u64 = c.pub_counts.iter().map(|p| p.count).sum();
        let topics: Vec<String> = c
            .pub_counts
            .iter()
            .map(|p| format!("{}={}", p.topic, p.count))
            .collect();
        return format!(
            "[{} {id:<21}] msgs: {total:<8} topics: {} connected: {age}",
            c.version,
            topics.join(",")
        );
    }
    format!(
        "[{} {id:<21}] state: {} inflt: {:<4} rdy: {:<4} fin: {:<8} re-q: {:<8} msgs: {:<8} connected: {age}",
        c.version,
        c.state,
        c.in_flight_count,
        c.ready_count,
        c.finish_count,
        c.requeue_count,
        c.message_count
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_proto::http_json::{ChannelStats, Percentile, PubCount, TopicStats};

    const START: u64 = 1_795_250_703;

    fn client(name: &str, port: u16, connect_ts: i64) -> ClientStats {
        ClientStats {
            client_id: name.into(),
            hostname: "golden-host".into(),
            version: "V2".into(),
            remote_address: format!("127.0.0.1:{port}"),
            user_agent: "golden/1.0".into(),
            connect_ts,
            ..ClientStats::default()
        }
    }

    fn golden_like() -> Stats {
        let consumer = ClientStats {
            state: 3,
            ready_count: 1,
            in_flight_count: 1,
            message_count: 1,
            ..client("golden-consumer", 51362, START as i64 + 1)
        };
        let producer = ClientStats {
            pub_counts: vec![PubCount {
                topic: "golden_stats".into(),
                count: 1,
            }],
            ..client("golden-producer", 51350, START as i64)
        };
        let channel = |name: &str, paused: bool, clients: Vec<ClientStats>| ChannelStats {
            channel_name: name.into(),
            in_flight_count: clients.len() as i64,
            message_count: clients.len() as u64,
            client_count: clients.len() as i64,
            clients: Some(clients),
            paused,
            ..ChannelStats::default()
        };
        Stats {
            version: "1.3.0".into(),
            health: "OK".into(),
            start_time: START as i64,
            topics: Some(vec![
                TopicStats {
                    topic_name: "golden_http".into(),
                    depth: 13,
                    message_count: 13,
                    ..TopicStats::default()
                },
                TopicStats {
                    topic_name: "golden_stats".into(),
                    channels: vec![channel("golden_ch", false, vec![consumer])],
                    message_count: 1,
                    ..TopicStats::default()
                },
                TopicStats {
                    topic_name: "golden_t1".into(),
                    channels: vec![channel("golden_c1", true, vec![])],
                    paused: true,
                    ..TopicStats::default()
                },
            ]),
            memory: Some(MemStats {
                heap_in_use_bytes: 2_187_264,
                ..MemStats::default()
            }),
            producers: Some(vec![producer]),
            storage: None,
        }
    }

    #[test]
    fn matches_upstreams_golden_text() {
        let now = UNIX_EPOCH + Duration::from_nanos(START * 1_000_000_000 + 2_387_097_127);
        let text = render(&golden_like(), UNIX_EPOCH + Duration::from_secs(START), now);
        let want = "nsqd v1.3.0 (built w/sluiced v".to_owned()
            + env!("CARGO_PKG_VERSION")
            + ")\nstart_time 2026-11-21T08:45:03Z\nuptime 2.387097127s\n\nHealth: OK\n\nMemory:\n"
            + "   heap_objects             \t0\n   heap_idle_bytes          \t0\n"
            + "   heap_in_use_bytes        \t2187264\n   heap_released_bytes      \t0\n"
            + "   gc_pause_usec_100        \t0\n   gc_pause_usec_99         \t0\n"
            + "   gc_pause_usec_95         \t0\n   next_gc_bytes            \t0\n"
            + "   gc_total_runs            \t0\n\nTopics:\n"
            + "   [golden_http    ] depth: 13    be-depth: 0     msgs: 13       e2e%: \n\n"
            + "   [golden_stats   ] depth: 0     be-depth: 0     msgs: 1        e2e%: \n"
            + "      [golden_ch                ] depth: 0     be-depth: 0     inflt: 1    def: 0    re-q: 0     timeout: 0     msgs: 1        e2e%: \n"
            + "        [V2 golden-host:51362 golden/1.0] state: 3 inflt: 1    rdy: 1    fin: 0        re-q: 0        msgs: 1        connected: 1s\n\n"
            + "*P [golden_t1      ] depth: 0     be-depth: 0     msgs: 0        e2e%: \n"
            + "   *P [golden_c1                ] depth: 0     be-depth: 0     inflt: 0    def: 0    re-q: 0     timeout: 0     msgs: 0        e2e%: \n\n"
            + "Producers:\n   [V2 golden-host:51350 golden/1.0] msgs: 1        topics: golden_stats=1 connected: 2s\n";
        assert_eq!(text, want);
    }

    /// The golden body of `name`, with `\xNN` escapes decoded.
    fn golden_body(name: &str) -> String {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/golden/http_nsqd.jsonl"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let line: serde_json::Value = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .find(|v: &serde_json::Value| v["name"] == name)
            .unwrap();
        let escaped = line["response_body"].as_str().unwrap();
        let mut out = Vec::new();
        let mut rest = escaped.as_bytes();
        while let Some((&b, tail)) = rest.split_first() {
            if b == b'\\' && tail.first() == Some(&b'x') {
                let hex = std::str::from_utf8(&tail[1..3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                rest = &tail[3..];
            } else {
                out.push(b);
                rest = tail;
            }
        }
        String::from_utf8(out).unwrap()
    }

    /// Masks what the golden file marks variable: the version, times, memory values, ports.
    fn masked(text: &str) -> String {
        text.lines()
            .map(|l| {
                if l.starts_with("nsqd v")
                    || l.starts_with("start_time ")
                    || l.starts_with("uptime ")
                {
                    return "*".to_owned();
                }
                if let Some((name, value)) = l.split_once('\t') {
                    if value.bytes().all(|b| b.is_ascii_digit()) {
                        return format!("{name}\t*");
                    }
                }
                let l = match l.split_once("golden-host:") {
                    Some((a, b)) => format!(
                        "{a}golden-host:*{}",
                        b.trim_start_matches(|c: char| c.is_ascii_digit())
                    ),
                    None => l.to_owned(),
                };
                match l.split_once("connected: ") {
                    Some((a, _)) => format!("{a}connected: *"),
                    None => l,
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn matches_the_recorded_upstream_text_after_masking() {
        let now = UNIX_EPOCH + Duration::from_secs(START + 2);
        let mine = render(&golden_like(), UNIX_EPOCH + Duration::from_secs(START), now);
        assert_eq!(masked(&mine), masked(&golden_body("stats_text")));
        let mut filtered = golden_like();
        filtered
            .topics
            .as_mut()
            .unwrap()
            .retain(|t| t.topic_name == "golden_stats");
        let mine = render(&filtered, UNIX_EPOCH + Duration::from_secs(START), now);
        assert_eq!(
            masked(&mine),
            masked(&golden_body("stats_text_topic_filter"))
        );
    }

    #[test]
    fn empty_sections_say_none() {
        let stats = Stats {
            version: "1.3.0".into(),
            health: "OK".into(),
            ..Stats::default()
        };
        let at = UNIX_EPOCH;
        let text = render(&stats, at, at);
        assert!(
            text.ends_with("\nHealth: OK\n\nTopics: None\n\nProducers: None\n"),
            "{text}"
        );
    }

    #[test]
    fn percentiles_print_in_human_units() {
        let latency = E2eProcessingLatency {
            count: 3,
            percentiles: Some(vec![
                Percentile {
                    quantile: 1.0,
                    value: 2_500_000_000.0,
                },
                Percentile {
                    quantile: 0.99,
                    value: 1_500_000.0,
                },
                Percentile {
                    quantile: 0.5,
                    value: 1_500.0,
                },
                Percentile {
                    quantile: 0.1,
                    value: 999.0,
                },
            ]),
        };
        assert_eq!(e2e(&latency), "2.5s, 1.5ms, 1.5us, 999.0ns");
    }
}
