//! What a run measured, and how it is shown: a human table and `--json`. Also the small
//! statistics used by `compare` (ratios and their min/median/max). Pure: no IO.

use serde_json::{json, Value};

use crate::cpu::CpuUse;
use crate::latency::Summary;
use crate::tracker::Delivery;

/// Messages and body bytes over a measured span.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Throughput {
    /// Messages counted.
    pub messages: u64,
    /// Their body bytes.
    pub bytes: u64,
    /// The span, in seconds.
    pub seconds: f64,
}

impl Throughput {
    /// Messages per second (0 over an empty span).
    pub fn msgs_per_s(&self) -> f64 {
        per_second(self.messages as f64, self.seconds)
    }

    /// Megabytes (10^6 bytes) of bodies per second.
    pub fn mb_per_s(&self) -> f64 {
        per_second(self.bytes as f64 / 1e6, self.seconds)
    }
}

fn per_second(amount: f64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        amount / seconds
    } else {
        0.0
    }
}

/// One reporting interval (billion runs, progress).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Interval {
    /// Seconds since measuring started, at the end of the interval.
    pub end_s: f64,
    /// Messages acknowledged per second in the interval.
    pub pub_rate: f64,
    /// Messages received per second in the interval.
    pub sub_rate: f64,
    /// Latency of the messages received in the interval.
    pub latency: Summary,
}

/// Everything one run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// `pub`, `sub`, `pubsub` or `billion`.
    pub mode: String,
    /// The scenario name (`custom` when none).
    pub scenario: String,
    /// The resolved settings, for the record.
    pub settings: Value,
    /// Seconds of warm-up excluded from the figures.
    pub warmup_s: f64,
    /// Messages acknowledged by the broker in the measured span.
    pub publish: Option<Throughput>,
    /// Messages received in the measured span.
    pub consume: Option<Throughput>,
    /// End-to-end latency of messages received after the warm-up.
    pub latency: Summary,
    /// Loss and duplicates, when every message's fate could be checked.
    pub delivery: Option<Delivery>,
    /// The generator's own CPU use over the measured span.
    pub cpu: CpuUse,
    /// The server's pid and peak RSS in bytes, when known.
    pub server: Option<(u32, Option<u64>)>,
    /// Publishes refused or lost with their connection (then retried).
    pub pub_errors: u64,
    /// Per-interval figures (billion runs).
    pub intervals: Vec<Interval>,
}

impl Report {
    /// Nanoseconds of this generator's CPU per message it moved (published or consumed): its
    /// cost, whatever else ran on the machine. `1e9 / this` is its ceiling on one free core.
    pub fn generator_ns_per_message(&self) -> Option<f64> {
        let rate = self.publish.map_or(0.0, |t| t.msgs_per_s())
            + self.consume.map_or(0.0, |t| t.msgs_per_s());
        (rate > 0.0 && self.cpu.cores_used > 0.0).then(|| self.cpu.cores_used * 1e9 / rate)
    }

    /// The machine-readable form.
    pub fn to_json(&self) -> Value {
        let throughput = |t: &Option<Throughput>| {
            t.map(|t| {
                json!({"messages": t.messages, "bytes": t.bytes, "seconds": t.seconds,
                       "msgs_per_s": t.msgs_per_s(), "mb_per_s": t.mb_per_s()})
            })
        };
        json!({
            "mode": self.mode,
            "scenario": self.scenario,
            "settings": self.settings,
            "warmup_s": self.warmup_s,
            "publish": throughput(&self.publish),
            "consume": throughput(&self.consume),
            "latency_us": summary_json(&self.latency),
            "delivery": self.delivery.map(|d| json!({
                "expected": d.expected, "unique": d.unique, "lost": d.lost,
                "duplicates": d.duplicates, "foreign": d.foreign, "misrouted": d.misrouted})),
            "perf_cpu": {
                "cores_used": self.cpu.cores_used,
                "cores_available": self.cpu.cores_available,
                "busiest_thread": self.cpu.busiest_thread,
                "by_cpu": self.cpu.by_cpu.iter()
                    .map(|(cpu, used)| (cpu.to_string(), json!(used)))
                    .collect::<serde_json::Map<String, Value>>(),
                "saturated": self.cpu.saturated(),
                "ns_per_message": self.generator_ns_per_message(),
                "ceiling_msgs_per_s_per_core": self.generator_ns_per_message()
                    .filter(|_| self.settings["rate"].is_null())
                    .map(|ns| 1e9 / ns),
            },
            "server": self.server.map(|(pid, rss)| json!({"pid": pid, "peak_rss_bytes": rss})),
            "pub_errors": self.pub_errors,
            "intervals": self.intervals.iter().map(|i| json!({
                "end_s": i.end_s, "pub_rate": i.pub_rate, "sub_rate": i.sub_rate,
                "latency_us": summary_json(&i.latency)})).collect::<Vec<_>>(),
        })
    }

    /// The human-readable table.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let measured = self.publish.or(self.consume).map_or(0.0, |t| t.seconds);
        out.push_str(&format!(
            "sluice-perf {} (scenario {}): {:.1} s measured after {:.1} s warm-up\n",
            self.mode, self.scenario, measured, self.warmup_s
        ));
        out.push_str(&format!(
            "  {:<12} {:>14} {:>12} {:>9}\n",
            "", "messages", "msgs/s", "MB/s"
        ));
        for (name, t) in [("published", &self.publish), ("consumed", &self.consume)] {
            if let Some(t) = t {
                out.push_str(&format!(
                    "  {:<12} {:>14} {:>12} {:>9.1}\n",
                    name,
                    group(t.messages as f64),
                    group(t.msgs_per_s()),
                    t.mb_per_s()
                ));
            }
        }
        if self.latency.count > 0 {
            out.push_str(&format!(
                "  {:<12} {}\n",
                "latency",
                latency_line(&self.latency)
            ));
        }
        if let Some(d) = &self.delivery {
            out.push_str(&format!(
                "  {:<12} expected {}  received {}  lost {}  duplicates {}  misrouted {}  foreign {}\n",
                "delivery",
                group(d.expected as f64),
                group(d.unique as f64),
                d.lost,
                d.duplicates,
                d.misrouted,
                d.foreign
            ));
        }
        out.push_str(&format!("  {:<12} {}\n", "perf cpu", cpu_line(&self.cpu)));
        let paced = !self.settings["rate"].is_null();
        if let (Some(ns), true) = (self.generator_ns_per_message(), paced) {
            out.push_str(&format!(
                "  {:<12} {ns:.0} ns of generator CPU per message moved (paced: wake-ups, not a ceiling)\n",
                ""
            ));
        } else if let Some(ns) = self.generator_ns_per_message() {
            out.push_str(&format!(
                "  {:<12} {ns:.0} ns of generator CPU per message moved: ceiling about {} msgs/s per free core\n",
                "",
                group(1e9 / ns)
            ));
        }
        if let Some((pid, rss)) = self.server {
            let rss = rss.map_or("unknown".to_owned(), |b| format!("{:.1} MiB", mib(b)));
            out.push_str(&format!("  {:<12} pid {pid}, peak RSS {rss}\n", "server"));
        }
        if self.pub_errors > 0 {
            out.push_str(&format!(
                "  {:<12} {} (retried)\n",
                "pub errors", self.pub_errors
            ));
        }
        out
    }
}

/// `p50 … max` in the most readable unit.
pub fn latency_line(s: &Summary) -> String {
    let p = s.percentiles_us;
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}",
        micros(p[0]),
        micros(p[1]),
        micros(p[2]),
        micros(p[3]),
        micros(p[4]),
        micros(s.max_us)
    )
}

fn cpu_line(cpu: &CpuUse) -> String {
    let by_cpu: Vec<String> = cpu
        .by_cpu
        .iter()
        .filter(|(_, used)| **used >= 0.01)
        .map(|(c, used)| format!("cpu{c} {:.0}%", used * 100.0))
        .collect();
    let warning = if cpu.saturated() {
        "  WARNING: the generator may be the bottleneck"
    } else {
        ""
    };
    let by_cpu = if by_cpu.is_empty() {
        String::new()
    } else {
        format!(" ({})", by_cpu.join(", "))
    };
    format!(
        "{:.2} cores of {} available, busiest thread {:.0}% of a core{by_cpu}{warning}",
        cpu.cores_used,
        cpu.cores_available,
        cpu.busiest_thread * 100.0,
    )
}

fn summary_json(s: &Summary) -> Value {
    json!({"count": s.count, "p50": s.percentiles_us[0], "p90": s.percentiles_us[1],
           "p99": s.percentiles_us[2], "p99_9": s.percentiles_us[3],
           "p99_99": s.percentiles_us[4], "max": s.max_us, "mean": s.mean_us})
}

/// Microseconds as `850us`, `1.25ms` or `2.50s`.
pub fn micros(us: u64) -> String {
    if us < 1000 {
        format!("{us}us")
    } else if us < 1_000_000 {
        format!("{:.2}ms", us as f64 / 1e3)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}

/// Bytes as MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// A number rounded to an integer with thousands separators: `1,234,567`.
pub fn group(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The minimum, median and maximum of some values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// Smallest.
    pub min: f64,
    /// Middle value (mean of the two middle ones for an even count).
    pub median: f64,
    /// Largest.
    pub max: f64,
}

/// The spread of `values` (`None` when empty or when any is NaN).
pub fn spread(values: &[f64]) -> Option<Spread> {
    if values.is_empty() || values.iter().any(|v| v.is_nan()) {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    Some(Spread {
        min: sorted[0],
        median,
        max: sorted[n - 1],
    })
}

/// `a / b` for each pair of runs (pairs with `b == 0` are skipped).
pub fn ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .filter(|(_, b)| **b != 0.0)
        .map(|(a, b)| a / b)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_units() {
        let t = Throughput {
            messages: 1_000_000,
            bytes: 200_000_000,
            seconds: 4.0,
        };
        assert_eq!(t.msgs_per_s(), 250_000.0);
        assert_eq!(t.mb_per_s(), 50.0);
        assert_eq!(Throughput::default().msgs_per_s(), 0.0);
        assert_eq!(group(1_234_567.4), "1,234,567");
        assert_eq!(group(999.0), "999");
        assert_eq!(group(1000.0), "1,000");
        assert_eq!(micros(850), "850us");
        assert_eq!(micros(1250), "1.25ms");
        assert_eq!(micros(2_500_000), "2.50s");
    }

    #[test]
    fn spreads_and_ratios() {
        let s = spread(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.min, s.median, s.max), (1.0, 2.0, 3.0));
        let s = spread(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!(s.median, 2.5);
        assert_eq!(spread(&[]), None);
        assert_eq!(spread(&[1.0, f64::NAN]), None);
        assert_eq!(ratios(&[2.0, 3.0, 4.0], &[1.0, 0.0, 8.0]), vec![2.0, 0.5]);
    }

    #[test]
    fn table_and_json_show_every_figure() {
        let report = Report {
            mode: "pubsub".into(),
            scenario: "bench".into(),
            publish: Some(Throughput {
                messages: 10,
                bytes: 2000,
                seconds: 1.0,
            }),
            latency: Summary {
                count: 10,
                percentiles_us: [1, 2, 3, 4, 5],
                max_us: 6,
                mean_us: 2.0,
            },
            delivery: Some(Delivery {
                expected: 10,
                unique: 9,
                lost: 1,
                ..Delivery::default()
            }),
            server: Some((42, Some(10 * 1024 * 1024))),
            ..Report::default()
        };
        let table = report.render();
        assert!(table.contains("published"), "{table}");
        assert!(table.contains("p99 3us"), "{table}");
        assert!(table.contains("lost 1"), "{table}");
        assert!(table.contains("peak RSS 10.0 MiB"), "{table}");
        let json = report.to_json();
        assert_eq!(json["publish"]["msgs_per_s"], 10.0);
        assert_eq!(json["latency_us"]["p99"], 3);
        assert_eq!(json["delivery"]["lost"], 1);
        assert_eq!(json["server"]["peak_rss_bytes"], 10 * 1024 * 1024);
        assert!(json["consume"].is_null());
        assert!(report.generator_ns_per_message().is_none());
        let busy = Report {
            cpu: CpuUse {
                cores_used: 0.5,
                ..CpuUse::default()
            },
            ..report
        };
        assert_eq!(busy.generator_ns_per_message(), Some(50_000_000.0));
        assert!(busy
            .render()
            .contains("ceiling about 20 msgs/s per free core"));
    }
}
