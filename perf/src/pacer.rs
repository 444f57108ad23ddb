//! Rate control that is safe from coordinated omission: a fixed schedule of intended send
//! times, never moved by the publisher falling behind. Pure: the caller passes `now`.
//!
//! Message `i` of a producer running at `rate` per second is due at `start + i / rate`. The
//! publisher sends every due message at once when it wakes (up to its batch size) and stamps
//! each with its *intended* time, so when it or the broker stalls, the backlog it sends later
//! carries the stall in its latency (as wrk2 and HdrHistogram's `recordCorrectedValue` intend)
//! instead of silently lowering the offered rate.

use std::time::{Duration, Instant};

/// The send schedule of one producer.
#[derive(Debug, Clone)]
pub struct Pacer {
    start: Instant,
    /// Messages per second; `None` means as fast as possible.
    rate: Option<f64>,
    sent: u64,
}

impl Pacer {
    /// A schedule starting at `start`; `rate` in messages per second (`None` or a
    /// non-positive rate: unlimited).
    pub fn new(start: Instant, rate: Option<f64>) -> Pacer {
        Pacer {
            start,
            rate: rate.filter(|r| *r > 0.0 && r.is_finite()),
            sent: 0,
        }
    }

    /// Messages sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// How many messages are due at `now` and not yet sent, at most `cap`.
    pub fn ready(&self, now: Instant, cap: u64) -> u64 {
        let Some(rate) = self.rate else {
            return cap;
        };
        let elapsed = now.saturating_duration_since(self.start).as_secs_f64();
        // Message 0 is due at the start, message i at i / rate.
        let due = (elapsed * rate).floor() as u64 + 1;
        due.saturating_sub(self.sent).min(cap)
    }

    /// When message `index` is meant to be sent (`start` itself when unlimited).
    pub fn intended(&self, index: u64) -> Duration {
        match self.rate {
            Some(rate) => Duration::from_secs_f64(index as f64 / rate),
            None => Duration::ZERO,
        }
    }

    /// When the next unsent message is due (`None` when unlimited: always).
    pub fn next_due(&self) -> Option<Instant> {
        self.rate.map(|_| self.start + self.intended(self.sent))
    }

    /// Records `n` messages as sent.
    pub fn mark_sent(&mut self, n: u64) {
        self.sent += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_fixed_and_a_late_publisher_catches_up_in_one_batch() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start, Some(1000.0));
        assert_eq!(pacer.ready(start, 100), 1);
        pacer.mark_sent(1);
        assert_eq!(pacer.ready(start + Duration::from_micros(999), 100), 0);
        assert_eq!(pacer.next_due(), Some(start + Duration::from_millis(1)));
        // Stalled for 50 ms: 50 messages are due at once, each keeping its own intended time.
        let late = start + Duration::from_millis(50);
        assert_eq!(pacer.ready(late, 1000), 50);
        assert_eq!(pacer.ready(late, 20), 20);
        assert_eq!(pacer.intended(25), Duration::from_millis(25));
        pacer.mark_sent(50);
        assert_eq!(pacer.ready(late, 1000), 0);
        assert_eq!(pacer.sent(), 51);
    }

    #[test]
    fn the_rate_over_a_long_run_is_exact() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start, Some(11_574.074));
        let mut now = start;
        // Wake at irregular intervals for 10 simulated seconds.
        for step in 0..20_000u64 {
            now += Duration::from_micros(300 + (step * 7919) % 400);
            let n = pacer.ready(now, 200);
            pacer.mark_sent(n);
        }
        let expected = (now - start).as_secs_f64() * 11_574.074;
        assert!((pacer.sent() as f64 - expected).abs() <= 1.0 + 1e-6);
    }

    #[test]
    fn unlimited_is_always_ready_and_never_due() {
        let pacer = Pacer::new(Instant::now(), None);
        assert_eq!(pacer.ready(Instant::now(), 200), 200);
        assert_eq!(pacer.next_due(), None);
        assert_eq!(
            Pacer::new(Instant::now(), Some(0.0)).ready(Instant::now(), 5),
            5
        );
    }
}
