//! The Prometheus text exposition format (version 0.0.4), written into a `String`.
//!
//! Owns the syntax only: `# HELP` and `# TYPE` lines, samples with escaped label values,
//! histogram buckets with `_sum` and `_count`, summary quantiles. What to expose is decided by
//! [`super::prometheus`]. Pure: no IO, no clock.
//!
//! Mirrors the text format of `prometheus/common` `expfmt` (what `client_golang` writes): a
//! family's lines are contiguous, label values escape `\`, `"` and newline, help text escapes
//! `\` and newline, and values are Go's shortest float text (`1`, `0.25`, `+Inf`).

use std::fmt::Write as _;

/// The `Content-Type` of a scrape answer.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (a restart resets it).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Cumulative buckets, `_sum` and `_count`.
    Histogram,
    /// Quantiles.
    Summary,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
        }
    }
}

/// A sample's value: counts stay exact integers, everything else is a float.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// An exact count.
    Int(u64),
    /// A signed gauge.
    Signed(i64),
    /// A measurement.
    Float(f64),
}

/// A histogram's data: cumulative counts at each upper bound (ascending, `+Inf` excluded),
/// the total count and the sum of the observed values.
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets<'a> {
    /// `(le, observations <= le)`, ascending.
    pub cumulative: &'a [(f64, u64)],
    /// All observations (the `+Inf` bucket).
    pub count: u64,
    /// Their sum.
    pub sum: f64,
}

/// The text of one scrape.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts a family: its `# HELP` and `# TYPE` lines. Every sample of the family must follow
    /// before the next family starts.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample of a counter or gauge.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: Value) {
        self.line(name, labels, None, value);
    }

    /// The `_bucket`, `_sum` and `_count` samples of one histogram series.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], buckets: &Buckets<'_>) {
        let bucket = format!("{name}_bucket");
        for &(le, count) in buckets.cumulative {
            self.line(&bucket, labels, Some(("le", &float(le))), Value::Int(count));
        }
        self.line(
            &bucket,
            labels,
            Some(("le", "+Inf")),
            Value::Int(buckets.count),
        );
        self.line(
            &format!("{name}_sum"),
            labels,
            None,
            Value::Float(buckets.sum),
        );
        self.line(
            &format!("{name}_count"),
            labels,
            None,
            Value::Int(buckets.count),
        );
    }

    /// One `quantile` sample of a summary series.
    pub fn quantile(&mut self, name: &str, labels: &[(&str, &str)], quantile: f64, value: f64) {
        self.line(
            name,
            labels,
            Some(("quantile", &float(quantile))),
            Value::Float(value),
        );
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }

    fn line(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        extra: Option<(&str, &str)>,
        value: Value,
    ) {
        self.out.push_str(name);
        let mut all = labels.iter().copied().chain(extra).peekable();
        if all.peek().is_some() {
            self.out.push('{');
            for (i, (key, value)) in all.enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{key}=\"{}\"", escape_label(value));
            }
            self.out.push('}');
        }
        let _ = match value {
            Value::Int(n) => writeln!(self.out, " {n}"),
            Value::Signed(n) => writeln!(self.out, " {n}"),
            Value::Float(f) => writeln!(self.out, " {}", float(f)),
        };
    }
}

/// A label value with `\`, `"` and newline escaped.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Help text with `\` and newline escaped.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A float as Go's `strconv.FormatFloat(f, 'g', -1, 64)` writes the usual cases: the shortest
/// text that reads back the same, `+Inf`, `-Inf`, `NaN`.
pub fn float(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_owned()
    } else if f.is_infinite() {
        if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_escapes() {
        let mut e = Exposition::new();
        e.family("sluice_x_total", Kind::Counter, "A \\ test\nwith two lines");
        e.sample(
            "sluice_x_total",
            &[("topic", "a\"b\\c\nd"), ("channel", "c")],
            Value::Int(7),
        );
        e.sample("sluice_x_total", &[], Value::Signed(-3));
        let text = e.finish();
        assert_eq!(
            text,
            "# HELP sluice_x_total A \\\\ test\\nwith two lines\n\
             # TYPE sluice_x_total counter\n\
             sluice_x_total{topic=\"a\\\"b\\\\c\\nd\",channel=\"c\"} 7\n\
             sluice_x_total -3\n"
        );
    }

    #[test]
    fn histogram_has_cumulative_buckets_inf_sum_and_count() {
        let mut e = Exposition::new();
        e.family("h_seconds", Kind::Histogram, "h");
        let buckets = Buckets {
            cumulative: &[(0.001, 1), (0.25, 3)],
            count: 4,
            sum: 1.5,
        };
        e.histogram("h_seconds", &[("shard", "0")], &buckets);
        let text = e.finish();
        assert!(text.contains("h_seconds_bucket{shard=\"0\",le=\"0.001\"} 1\n"));
        assert!(text.contains("h_seconds_bucket{shard=\"0\",le=\"0.25\"} 3\n"));
        assert!(text.contains("h_seconds_bucket{shard=\"0\",le=\"+Inf\"} 4\n"));
        assert!(text.contains("h_seconds_sum{shard=\"0\"} 1.5\n"));
        assert!(text.contains("h_seconds_count{shard=\"0\"} 4\n"));
    }

    #[test]
    fn floats_as_go_writes_them() {
        assert_eq!(float(1.0), "1");
        assert_eq!(float(0.99), "0.99");
        assert_eq!(float(0.0001), "0.0001");
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(float(f64::NAN), "NaN");
        let mut e = Exposition::new();
        e.quantile("s", &[], 1.0, 0.5);
        assert_eq!(e.finish(), "s{quantile=\"1\"} 0.5\n");
    }
}
