//! How much CPU sluice-perf itself used (so a reader can tell when the load generator, not the
//! server, was the bottleneck), and the server's peak memory.
//!
//! Reads `/proc/self/task/*/stat` (user + system ticks per thread, and the CPU each last ran
//! on) and `/proc/PID/status` (`VmHWM`, `VmRSS`). No `getrusage`: this crate forbids `unsafe`,
//! and `/proc` gives per-thread figures too. Linux's `/proc` counts in USER_HZ = 100 ticks per
//! second on every architecture.

use std::collections::BTreeMap;
use std::time::Instant;

/// Ticks per second in `/proc/*/stat` (USER_HZ).
const TICKS_PER_SECOND: f64 = 100.0;

/// One reading of this process's per-thread CPU time.
#[derive(Debug, Clone)]
pub struct CpuSample {
    at: Instant,
    /// The whole process's ticks, threads that already ended included.
    process: u64,
    /// tid → (user + system ticks, CPU it last ran on).
    threads: BTreeMap<u32, (u64, i32)>,
}

/// CPU used between two samples.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuUse {
    /// CPU seconds per wall second, all threads (1.0 = one core busy).
    pub cores_used: f64,
    /// CPUs this process may run on.
    pub cores_available: usize,
    /// The busiest thread's share of one core (near 1.0: that thread was saturated).
    pub busiest_thread: f64,
    /// Cores used, attributed to the CPU each thread last ran on (approximate when threads
    /// migrate; exact when pinned).
    pub by_cpu: BTreeMap<i32, f64>,
}

impl CpuUse {
    /// Whether the load generator was likely the bottleneck: a saturated thread, or nearly
    /// every available core busy.
    pub fn saturated(&self) -> bool {
        self.busiest_thread > 0.9 || self.cores_used > 0.9 * self.cores_available.max(1) as f64
    }
}

/// Reads the CPU time of every thread of this process now.
pub fn sample() -> CpuSample {
    let mut threads = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for entry in dir.flatten() {
            let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            if let Some(parsed) = parse_stat(&stat) {
                threads.insert(tid, parsed);
            }
        }
    }
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    CpuSample {
        at: Instant::now(),
        process: parse_stat(&stat).map_or(0, |(ticks, _)| ticks),
        threads,
    }
}

/// (utime + stime in ticks, processor) from the text of a `/proc/*/stat` file.
pub fn parse_stat(text: &str) -> Option<(u64, i32)> {
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = text.get(text.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); utime is field 14, stime 15, processor 39.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let processor: i32 = fields.get(36)?.parse().ok()?;
    Some((utime + stime, processor))
}

/// CPU used from `before` to `after`. The total counts every thread; the busiest thread and
/// the split by CPU count only threads still alive at `after`.
pub fn usage(before: &CpuSample, after: &CpuSample) -> CpuUse {
    let wall = after.at.duration_since(before.at).as_secs_f64().max(1e-9);
    let mut used = CpuUse {
        cores_available: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cores_used: after.process.saturating_sub(before.process) as f64 / TICKS_PER_SECOND / wall,
        ..CpuUse::default()
    };
    for (tid, (ticks, cpu)) in &after.threads {
        let start = before.threads.get(tid).map_or(0, |(t, _)| *t);
        let share = ticks.saturating_sub(start) as f64 / TICKS_PER_SECOND / wall;
        used.busiest_thread = used.busiest_thread.max(share);
        *used.by_cpu.entry(*cpu).or_insert(0.0) += share;
    }
    used
}

/// A process's peak resident memory (`VmHWM`) in bytes.
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:").map(|kib| kib * 1024)
}

/// A process's current resident memory (`VmRSS`) in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:").map(|kib| kib * 1024)
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&status, key)
}

/// The value in kB of `key` in the text of a `/proc/PID/status` file.
pub fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.get(key.len()..)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_found_after_a_tricky_command_name() {
        let stat = "1234 (a) b (c) R 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 3 0 100 1000 10 \
                    18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_stat(stat), Some((300, 1)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn status_values_and_our_own_process() {
        let status = "Name:\tx\nVmHWM:\t  123456 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(123_456));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
        let me = std::process::id();
        assert!(peak_rss_bytes(me).unwrap() >= rss_bytes(me).unwrap() / 2);
        let before = sample();
        let mut x = 0u64;
        let start = Instant::now();
        while start.elapsed().as_millis() < 50 {
            x = x.wrapping_mul(31).wrapping_add(1);
        }
        std::hint::black_box(x);
        let used = usage(&before, &sample());
        assert!(used.cores_used >= 0.0 && used.busiest_thread <= used.cores_used + 0.05);
        assert!(!before.threads.is_empty());
    }
}
