//! End-to-end processing latency: how long messages took from PUB to FIN, as percentiles over a
//! sliding time window (`--e2e-processing-latency-percentile`,
//! `--e2e-processing-latency-window-time`).
//!
//! Mirrors upstream `internal/quantile/quantile.go`: two half-window streams, the current one
//! receiving inserts; when half a window has passed the other stream is reset and becomes
//! current, so a query sees between half a window and a whole window of data. Upstream's
//! streams are biased-quantile sketches (perks); ours are HdrHistograms with two significant
//! figures (values within 1%), which merge exactly. No clock: wall-clock nanoseconds are
//! arguments. A topic reports the merge of its channels' latencies ([`E2eLatency::merged`]), as
//! upstream's `AggregateChannelE2eProcessingLatency` does.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Serialize, Serializer};

/// Significant figures kept by the histograms (1% resolution, about 40 KiB per histogram for
/// latencies up to minutes).
const SIGNIFICANT_FIGURES: u8 = 2;

/// The largest latency recorded; longer ones are recorded as this (one year, in ns). The
/// histogram can resize up to `i64::MAX / 2`, so recording never fails.
const MAX_LATENCY_NS: u64 = 365 * 24 * 3600 * 1_000_000_000;

/// Which percentiles to keep and over what window.
#[derive(Debug, Clone, PartialEq)]
pub struct E2eConfig {
    /// Quantiles in `(0, 1]`, e.g. `[0.99, 0.999]` (validated by the caller, as upstream's
    /// option parsing does).
    pub percentiles: Vec<f64>,
    /// The window (upstream default 10m).
    pub window: Duration,
}

/// The `e2e_processing_latency` object of `/stats`, in upstream's JSON shape:
/// `{"count": N, "percentiles": [{"quantile": 0.99, "value": ns}, ...]}`, with `percentiles`
/// `null` when latency is not tracked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct E2eProcessingLatency {
    /// Messages measured in the window.
    pub count: u64,
    /// One entry per configured quantile, or `None` when not configured.
    pub percentiles: Option<Vec<E2ePercentile>>,
}

impl E2eProcessingLatency {
    /// The value reported when latency is not tracked: `{"count":0,"percentiles":null}`.
    pub fn untracked() -> E2eProcessingLatency {
        E2eProcessingLatency {
            count: 0,
            percentiles: None,
        }
    }
}

/// One quantile and its latency.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct E2ePercentile {
    /// The quantile, e.g. `0.99`.
    #[serde(serialize_with = "serialize_quantile")]
    pub quantile: f64,
    /// Latency in nanoseconds.
    pub value: u64,
}

/// Writes `1.0` as `1`, as Go's encoder does for whole floats; other values as floats.
fn serialize_quantile<S: Serializer>(quantile: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if quantile.fract() == 0.0 && (0.0..=1.0).contains(quantile) {
        serializer.serialize_u64(*quantile as u64)
    } else {
        serializer.serialize_f64(*quantile)
    }
}

/// A sliding-window latency recorder.
#[derive(Debug, Clone)]
pub struct E2eLatency {
    percentiles: Vec<f64>,
    half_window_ns: i64,
    windows: [Histogram<u64>; 2],
    current: usize,
    /// When the current half-window began; set by the first insert.
    window_start_ns: Option<i64>,
    /// Every latency since start in microseconds, never reset: what a Prometheus histogram
    /// (cumulative counts) is drawn from.
    total_us: Histogram<u64>,
}

impl E2eLatency {
    /// An empty recorder.
    pub fn new(config: &E2eConfig) -> E2eLatency {
        let half = config.window / 2;
        // A zero window would make upstream loop forever; one nanosecond is the least we take.
        let half_window_ns = i64::try_from(half.as_nanos()).unwrap_or(i64::MAX).max(1);
        let empty = empty_histogram();
        E2eLatency {
            percentiles: config.percentiles.clone(),
            half_window_ns,
            windows: [empty.clone(), empty],
            current: 0,
            window_start_ns: None,
            total_us: empty_histogram(),
        }
    }

    /// Records a message published at `published_ns` and finished at `now_ns` (both
    /// nanoseconds since the Unix epoch). A negative latency (clocks disagree) counts as 0.
    pub fn insert(&mut self, now_ns: i64, published_ns: i64) {
        self.advance(now_ns);
        let latency = u64::try_from(now_ns.saturating_sub(published_ns)).unwrap_or(0);
        if let Some(window) = self.windows.get_mut(self.current) {
            // Cannot fail: the value is within the auto-resizing range.
            let _ = window.record(latency.min(MAX_LATENCY_NS));
        }
        let _ = self
            .total_us
            .record((latency / 1_000).min(MAX_LATENCY_NS / 1_000));
    }

    /// Every latency recorded since start, in microseconds (cumulative, never reset).
    pub fn total_us(&self) -> &Histogram<u64> {
        &self.total_us
    }

    /// The percentiles over the window as seen at `now_ns`.
    pub fn result(&self, now_ns: i64) -> E2eProcessingLatency {
        E2eLatency::merged([self], now_ns)
    }

    /// The percentiles over several recorders merged (a topic over its channels). With no
    /// recorders the result is [`E2eProcessingLatency::untracked`], as upstream's topic reports
    /// when it has no channel.
    pub fn merged<'a>(
        parts: impl IntoIterator<Item = &'a E2eLatency>,
        now_ns: i64,
    ) -> E2eProcessingLatency {
        let mut parts = parts.into_iter().peekable();
        let Some(first) = parts.peek() else {
            return E2eProcessingLatency::untracked();
        };
        let percentiles = first.percentiles.clone();
        let mut merged = empty_histogram();
        for part in parts {
            for window in part.live_windows(now_ns) {
                // Cannot fail: `merged` resizes automatically.
                let _ = merged.add(window);
            }
        }
        E2eProcessingLatency {
            count: merged.len(),
            percentiles: Some(
                percentiles
                    .into_iter()
                    .map(|quantile| E2ePercentile {
                        quantile,
                        value: merged.value_at_quantile(quantile),
                    })
                    .collect(),
            ),
        }
    }

    /// Half-window moves due at `now_ns` (upstream loops `for q.IsDataStale(now)`).
    fn moves_due(&self, now_ns: i64) -> u64 {
        let Some(start) = self.window_start_ns else {
            return 0;
        };
        let elapsed = i128::from(now_ns) - i128::from(start) - i128::from(self.half_window_ns);
        if elapsed <= 0 {
            return 0;
        }
        // Stale while now > start + half: moves = ceil(elapsed / half).
        let half = i128::from(self.half_window_ns);
        u64::try_from((elapsed + half - 1) / half).unwrap_or(u64::MAX)
    }

    fn advance(&mut self, now_ns: i64) {
        let Some(start) = self.window_start_ns else {
            self.window_start_ns = Some(now_ns);
            return;
        };
        let moves = self.moves_due(now_ns);
        if moves == 0 {
            return;
        }
        if moves >= 2 {
            self.windows.iter_mut().for_each(Histogram::reset);
        } else if let Some(other) = self.windows.get_mut(self.current ^ 1) {
            other.reset();
        }
        if moves % 2 == 1 {
            self.current ^= 1;
        }
        let shift = i128::from(self.half_window_ns) * i128::from(moves);
        let start = i128::from(start) + shift;
        self.window_start_ns = Some(i64::try_from(start).unwrap_or(i64::MAX));
    }

    /// The histograms that still hold data at `now_ns`, without moving the window.
    fn live_windows(&self, now_ns: i64) -> impl Iterator<Item = &Histogram<u64>> {
        let moves = self.moves_due(now_ns);
        self.windows
            .iter()
            .enumerate()
            .filter_map(move |(index, window)| {
                let live = match moves {
                    0 => true,
                    1 => index == self.current,
                    _ => false,
                };
                live.then_some(window)
            })
    }
}

/// An empty auto-resizing histogram.
#[allow(clippy::expect_used)]
fn empty_histogram() -> Histogram<u64> {
    // Construction fails only for a precision outside 0..=5; ours is a constant 2.
    Histogram::new(SIGNIFICANT_FIGURES).expect("2 significant figures is a valid precision")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000_000;

    fn recorder(window_secs: u64) -> E2eLatency {
        E2eLatency::new(&E2eConfig {
            percentiles: vec![0.5, 0.99, 1.0],
            window: Duration::from_secs(window_secs),
        })
    }

    fn values(result: &E2eProcessingLatency) -> Vec<u64> {
        let percentiles = result.percentiles.as_ref().unwrap();
        percentiles.iter().map(|p| p.value).collect()
    }

    #[test]
    fn percentiles_of_recorded_latencies() {
        let mut e2e = recorder(600);
        let now = 1_000 * SECOND;
        for ms in 1..=100i64 {
            e2e.insert(now, now - ms * 1_000_000);
        }
        let result = e2e.result(now);
        assert_eq!(result.count, 100);
        let [p50, p99, p100] = values(&result)[..] else {
            panic!("three percentiles")
        };
        assert!((49_000_000..=51_000_000).contains(&p50), "p50 {p50}");
        assert!((98_000_000..=100_000_000).contains(&p99), "p99 {p99}");
        assert!((99_000_000..=101_000_000).contains(&p100), "p100 {p100}");
    }

    #[test]
    fn window_forgets_old_latencies_in_two_halves() {
        let mut e2e = recorder(10);
        let start = 1_000 * SECOND;
        e2e.insert(start, start - SECOND);
        // Within the first half: one sample.
        e2e.insert(start + 4 * SECOND, start);
        assert_eq!(e2e.result(start + 5 * SECOND).count, 2);
        // The first half has ended: inserts go to the second stream, the first still counts.
        e2e.insert(start + 6 * SECOND, start);
        assert_eq!(e2e.result(start + 6 * SECOND).count, 3);
        // After the second move the first stream is reset.
        assert_eq!(e2e.result(start + 11 * SECOND).count, 1);
        // Much later, everything is gone.
        assert_eq!(e2e.result(start + 60 * SECOND).count, 0);
        e2e.insert(start + 60 * SECOND, start + 59 * SECOND);
        assert_eq!(e2e.result(start + 60 * SECOND).count, 1);
    }

    #[test]
    fn merged_recorders_count_everything() {
        let mut a = recorder(600);
        let mut b = recorder(600);
        let now = 1_000 * SECOND;
        a.insert(now, now - SECOND);
        b.insert(now, now - 3 * SECOND);
        b.insert(now, now - 3 * SECOND);
        let merged = E2eLatency::merged([&a, &b], now);
        assert_eq!(merged.count, 3);
        assert_eq!(
            E2eLatency::merged([], now),
            E2eProcessingLatency::untracked()
        );
    }

    #[test]
    fn negative_latency_counts_as_zero() {
        let mut e2e = recorder(600);
        e2e.insert(SECOND, 2 * SECOND);
        assert_eq!(values(&e2e.result(SECOND)), vec![0, 0, 0]);
    }

    #[test]
    fn json_shape_matches_upstream() {
        let untracked = serde_json::to_string(&E2eProcessingLatency::untracked()).unwrap();
        assert_eq!(untracked, r#"{"count":0,"percentiles":null}"#);
        let e2e = recorder(600);
        let empty = serde_json::to_string(&e2e.result(0)).unwrap();
        assert_eq!(
            empty,
            r#"{"count":0,"percentiles":[{"quantile":0.5,"value":0},{"quantile":0.99,"value":0},{"quantile":1,"value":0}]}"#
        );
    }
}
