//! The `memory` section of `/stats`, filled with the process's real figures.
//!
//! Upstream reports Go runtime statistics (`nsqd/stats.go` `getMemStats`). sluiced has no Go
//! runtime and no garbage collector, so each field gets the honest Linux figure closest to its
//! meaning, from `/proc/self/status` (which gives every figure below in kB, so no page size is
//! needed, unlike `/proc/self/statm`):
//!
//! | field                 | value                                                        |
//! |-----------------------|--------------------------------------------------------------|
//! | `heap_in_use_bytes`   | `VmRSS`: memory the process holds in RAM now                 |
//! | `heap_released_bytes` | `VmHWM - VmRSS`: resident memory given back since the peak   |
//! | `heap_idle_bytes`     | 0: the allocator's free lists are not visible from outside   |
//! | `heap_objects`        | 0: the system allocator keeps no object count                |
//! | `next_gc_bytes`, `gc_pause_usec_*`, `gc_total_runs` | 0: there is no garbage collector |
//!
//! The README lists this among the differences from nsqd.

use sluice_proto::http_json::MemStats;

/// The figures now; all zero if `/proc/self/status` cannot be read.
pub fn read() -> MemStats {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    from_status(&status)
}

/// The figures from the text of `/proc/<pid>/status`.
pub fn from_status(status: &str) -> MemStats {
    let rss = kib_field(status, "VmRSS:").unwrap_or(0);
    let peak = kib_field(status, "VmHWM:").unwrap_or(rss);
    MemStats {
        heap_in_use_bytes: rss,
        heap_released_bytes: peak.saturating_sub(rss),
        ..MemStats::default()
    }
}

/// A `Name:   1234 kB` line's value, in bytes.
fn kib_field(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix(name))?;
    let mut words = line.split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => value.checked_mul(1024),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_rss_and_peak() {
        let status =
            "Name:\tsluiced\nVmHWM:\t   10240 kB\nVmRSS:\t    8192 kB\nRssAnon:\t 4096 kB\n";
        let m = from_status(status);
        assert_eq!(m.heap_in_use_bytes, 8192 * 1024);
        assert_eq!(m.heap_released_bytes, 2048 * 1024);
        assert_eq!(m.heap_objects, 0);
        assert_eq!(m.gc_total_runs, 0);
        assert_eq!(from_status(""), MemStats::default());
        assert_eq!(from_status("VmRSS: lots kB\n"), MemStats::default());
    }

    #[test]
    fn this_process_has_a_resident_set() {
        assert!(read().heap_in_use_bytes > 0);
    }
}
