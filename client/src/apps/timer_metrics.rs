//! Request timing logged every `--status-every` requests: count, 99th and 95th percentile and
//! mean, per destination and in aggregate.
//!
//! Mirrors bitly's `timer_metrics` as nsq_to_http and nsq_to_nsq use it: the line
//! `[aggregate]: finished 250 requests - 99th: 1.92ms - 95th: 1.10ms - avg: 0.61ms`, with the
//! percentile index `ceil(p/100 * n + 0.5)` capped at the last sample. A zero `every`
//! disables it.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::apps::log;

/// Samples since the last status line.
#[derive(Debug)]
pub struct TimerMetrics {
    every: usize,
    prefix: String,
    samples: Mutex<Vec<Duration>>,
}

impl TimerMetrics {
    /// Logs a line every `every` samples (never when 0), starting with `prefix`.
    pub fn new(every: usize, prefix: &str) -> TimerMetrics {
        TimerMetrics {
            every,
            prefix: prefix.to_owned(),
            samples: Mutex::new(Vec::with_capacity(every)),
        }
    }

    /// Records one request's duration; every `every` requests, logs the status line.
    pub fn status(&self, elapsed: Duration) {
        if self.every == 0 {
            return;
        }
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        samples.push(elapsed);
        if samples.len() >= self.every {
            let line = status_line(&self.prefix, &mut samples);
            samples.clear();
            drop(samples);
            log::info(&line);
        }
    }
}

/// The status line of `samples` (sorted in place).
fn status_line(prefix: &str, samples: &mut [Duration]) -> String {
    samples.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let total: Duration = samples.iter().sum();
    let avg = ms(total) / samples.len().max(1) as f64;
    format!(
        "{prefix} finished {} requests - 99th: {:.2}ms - 95th: {:.2}ms - avg: {avg:.2}ms",
        samples.len(),
        ms(percentile(99.0, samples)),
        ms(percentile(95.0, samples)),
    )
}

fn percentile(perc: f64, sorted: &[Duration]) -> Duration {
    let len = sorted.len();
    let index = ((perc / 100.0) * len as f64 + 0.5).ceil() as usize;
    sorted
        .get(index.min(len.saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_read_as_upstream() {
        let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        assert_eq!(
            status_line("[aggregate]:", &mut samples),
            "[aggregate]: finished 100 requests - 99th: 100.00ms - 95th: 97.00ms - avg: 50.50ms"
        );
        assert_eq!(percentile(99.0, &[]), Duration::ZERO);
    }
}
