//! End-to-end latency: an HdrHistogram of microseconds from the intended publish time in a
//! message's body to its receipt, and the percentiles reported.
//!
//! Consumers record into a per-batch list and add it to a shared [`Histogram`] once per read
//! (one lock per batch, not per message); the run loop swaps that histogram out every interval.

use hdrhistogram::Histogram;

/// The highest latency recorded exactly: one hour, in microseconds. Longer ones count as this.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

/// The percentiles every report shows.
pub const PERCENTILES: [f64; 5] = [50.0, 90.0, 99.0, 99.9, 99.99];

/// A latency histogram: 1 µs to one hour, 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Latency {
        Latency::new()
    }
}

/// Percentiles of one histogram, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    /// Values recorded.
    pub count: u64,
    /// p50, p90, p99, p99.9, p99.99 (see [`PERCENTILES`]).
    pub percentiles_us: [u64; 5],
    /// The largest value.
    pub max_us: u64,
    /// The mean.
    pub mean_us: f64,
}

impl Summary {
    /// p99 in microseconds.
    pub fn p99_us(&self) -> u64 {
        self.percentiles_us[2]
    }
}

impl Latency {
    /// An empty histogram.
    pub fn new() -> Latency {
        // The bounds are constants that hdrhistogram accepts; a failure would be a bug here.
        let hist = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
            .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()));
        Latency { hist }
    }

    /// Records one latency in nanoseconds (clamped to 1 µs ..= one hour).
    pub fn record_ns(&mut self, ns: u64) {
        let us = (ns / 1000).clamp(1, MAX_LATENCY_US);
        self.hist.saturating_record(us);
    }

    /// Records the latency of a message stamped `sent_ns` and received at `received_ns`
    /// (0 if the clock stepped back).
    pub fn record_between(&mut self, sent_ns: u64, received_ns: u64) {
        self.record_ns(received_ns.saturating_sub(sent_ns));
    }

    /// Adds every value of `other`.
    pub fn add(&mut self, other: &Latency) {
        // Both have the same bounds, so adding cannot fail; saturate rather than panic.
        let _ = self.hist.add(&other.hist);
    }

    /// Empties the histogram.
    pub fn clear(&mut self) {
        self.hist.reset();
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The percentiles, max and mean.
    pub fn summary(&self) -> Summary {
        if self.hist.is_empty() {
            return Summary::default();
        }
        Summary {
            count: self.hist.len(),
            percentiles_us: PERCENTILES.map(|p| self.hist.value_at_quantile(p / 100.0)),
            max_us: self.hist.max(),
            mean_us: self.hist.mean(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_uniform_ramp_are_within_the_precision() {
        let mut latency = Latency::new();
        for us in 1..=100_000u64 {
            latency.record_ns(us * 1000);
        }
        let s = latency.summary();
        assert_eq!(s.count, 100_000);
        let expect = [50_000.0, 90_000.0, 99_000.0, 99_900.0, 99_990.0];
        for (got, want) in s.percentiles_us.iter().zip(expect) {
            let error = (*got as f64 - want).abs() / want;
            assert!(error < 0.001, "{got} vs {want}");
        }
        assert!((s.max_us as f64 - 100_000.0).abs() / 100_000.0 < 0.001);
        assert!((s.mean_us - 50_000.5).abs() < 50.0);
    }

    #[test]
    fn clamping_merging_and_clock_steps() {
        let mut a = Latency::new();
        a.record_ns(10);
        a.record_ns(u64::MAX);
        a.record_between(2_000_000, 1_000_000);
        let mut b = Latency::new();
        b.record_ns(5_000_000);
        a.add(&b);
        let s = a.summary();
        assert_eq!(s.count, 4);
        assert_eq!(s.percentiles_us[0], 1);
        assert!(s.max_us >= MAX_LATENCY_US);
        a.clear();
        assert_eq!(a.summary(), Summary::default());
    }

    #[test]
    fn a_stall_shows_in_the_tail_only_when_timestamps_are_intended_times() {
        // 1000 messages paced at 1 ms; the publisher stalls 100 ms before message 500 and
        // then sends the backlog at once. Each is received 100 µs after it is sent.
        let pacer_start = 0u64;
        let (mut corrected, mut naive) = (Latency::new(), Latency::new());
        for i in 0..1000u64 {
            let intended = pacer_start + i * 1_000_000;
            let sent = if (500..600).contains(&i) {
                600 * 1_000_000
            } else {
                intended
            };
            corrected.record_between(intended, sent + 100_000);
            naive.record_between(sent, sent + 100_000);
        }
        assert!(naive.summary().p99_us() < 200);
        assert!(corrected.summary().p99_us() > 90_000);
    }
}
