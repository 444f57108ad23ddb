//! Exponential backoff between reconnect attempts. Pure: it computes delays, the caller sleeps.
//!
//! Mirrors go-nsq's `ExponentialStrategy` (`delay = min * 2^attempt`, capped), without jitter
//! so that tests are deterministic.

use std::time::Duration;

/// The delay before each reconnect attempt: `min`, `2·min`, `4·min`… up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff starting at `min` and capped at `max` (`max` is raised to `min` if lower).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let mut backoff = sluice_client::Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
    /// let delays: Vec<u128> = (0..4).map(|_| backoff.next_delay().as_millis()).collect();
    /// assert_eq!(delays, [100, 200, 350, 350]);
    /// backoff.reset();
    /// assert_eq!(backoff.next_delay(), Duration::from_millis(100));
    /// ```
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            attempt: 0,
        }
    }

    /// The delay before the next attempt; each call doubles it until the cap.
    pub fn next_delay(&mut self) -> Duration {
        // 2^20 times any sane minimum is past any sane maximum: stop doubling there.
        let factor = 1u32 << self.attempt.min(20);
        self.attempt = self.attempt.saturating_add(1);
        self.min.saturating_mul(factor).min(self.max)
    }

    /// Back to the first delay (after a successful connection).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Attempts since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubling_saturates_at_the_cap_without_overflow() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let delays: Vec<u64> = (0..100).map(|_| backoff.next_delay().as_secs()).collect();
        assert_eq!(&delays[..7], &[1, 2, 4, 8, 16, 32, 60]);
        assert!(delays.iter().all(|d| *d <= 60));
        assert_eq!(backoff.attempts(), 100);
    }

    #[test]
    fn a_max_below_min_means_a_constant_delay() {
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(10));
        assert_eq!(backoff.next_delay(), Duration::from_millis(50));
        assert_eq!(backoff.next_delay(), Duration::from_millis(50));
    }
}
