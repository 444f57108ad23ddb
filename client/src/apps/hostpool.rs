//! Choosing a destination among several: round-robin over the hosts that are not marked dead,
//! a failed host skipped until its retry time, which doubles on each failed retry.
//!
//! Mirrors bitly's `go-hostpool` standard pool (`hostpool.New`), which nsq_to_http and
//! nsq_to_nsq use for `--mode=hostpool` (the default): the initial retry delay is 30 s, the
//! longest 900 s, and when every host is dead all are revived. `--mode=epsilon-greedy`
//! (go-hostpool's response-time-weighted pool) uses this same pool. Pure: time is an argument.

use std::time::{Duration, Instant};

/// go-hostpool's `initialRetryDelay`.
const INITIAL_RETRY_DELAY: Duration = Duration::from_secs(30);
/// go-hostpool's `maxRetryInterval`.
const MAX_RETRY_INTERVAL: Duration = Duration::from_secs(900);

#[derive(Debug, Clone)]
struct Host {
    dead: bool,
    retry_at: Option<Instant>,
    retry_delay: Duration,
}

/// The hosts and which of them are usable.
#[derive(Debug, Clone)]
pub struct HostPool {
    hosts: Vec<Host>,
    next: usize,
}

impl HostPool {
    /// A pool of `count` hosts, all alive.
    pub fn new(count: usize) -> HostPool {
        HostPool {
            hosts: vec![
                Host {
                    dead: false,
                    retry_at: None,
                    retry_delay: INITIAL_RETRY_DELAY,
                };
                count
            ],
            next: 0,
        }
    }

    /// The index of the host to use next: the next alive one in turn, or a dead one whose
    /// retry time has come (its next retry is then pushed back).
    ///
    /// # Examples
    /// ```
    /// use std::time::Instant;
    /// use sluice_client::apps::hostpool::HostPool;
    /// let now = Instant::now();
    /// let mut pool = HostPool::new(2);
    /// let first = pool.get(now);
    /// pool.mark(first, false, now);
    /// assert_ne!(pool.get(now), first);
    /// assert_ne!(pool.get(now), first);
    /// ```
    pub fn get(&mut self, now: Instant) -> usize {
        let count = self.hosts.len();
        for step in 0..count {
            let index = (self.next + step) % count;
            let Some(host) = self.hosts.get_mut(index) else {
                continue;
            };
            let retry_due = host.retry_at.is_some_and(|at| now >= at);
            if !host.dead || retry_due {
                if host.dead {
                    host.retry_delay = (host.retry_delay * 2).min(MAX_RETRY_INTERVAL);
                    host.retry_at = Some(now + host.retry_delay);
                }
                self.next = (index + 1) % count;
                return index;
            }
        }
        // Every host is dead: revive them all (go-hostpool `doResetAll`).
        for host in &mut self.hosts {
            host.dead = false;
            host.retry_at = None;
            host.retry_delay = INITIAL_RETRY_DELAY;
        }
        let index = self.next % count.max(1);
        self.next = (index + 1) % count.max(1);
        index
    }

    /// Records the outcome of a request to host `index`.
    pub fn mark(&mut self, index: usize, ok: bool, now: Instant) {
        let Some(host) = self.hosts.get_mut(index) else {
            return;
        };
        if ok {
            host.dead = false;
            host.retry_at = None;
            host.retry_delay = INITIAL_RETRY_DELAY;
        } else if !host.dead {
            host.dead = true;
            host.retry_delay = INITIAL_RETRY_DELAY;
            host.retry_at = Some(now + INITIAL_RETRY_DELAY);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_hosts_are_skipped_until_their_retry_and_all_dead_revives_all() {
        let now = Instant::now();
        let mut pool = HostPool::new(3);
        assert_eq!(
            (pool.get(now), pool.get(now), pool.get(now), pool.get(now)),
            (0, 1, 2, 0)
        );
        pool.mark(1, false, now);
        let picks: Vec<usize> = (0..4).map(|_| pool.get(now)).collect();
        assert_eq!(picks, [2, 0, 2, 0]);
        // Retry due: host 1 is tried once, then waits twice as long.
        let later = now + INITIAL_RETRY_DELAY;
        let picks: Vec<usize> = (0..4).map(|_| pool.get(later)).collect();
        assert_eq!(picks, [1, 2, 0, 2]);
        pool.mark(1, true, later);
        assert!((0..3).map(|_| pool.get(later)).any(|i| i == 1));
        for i in 0..3 {
            pool.mark(i, false, later);
        }
        let revived: Vec<usize> = (0..3).map(|_| pool.get(later)).collect();
        let mut sorted = revived.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [0, 1, 2]);
    }
}
