//! The shard's one timer: it sleeps until the earliest in-flight timeout or deferred due time of
//! any channel on the shard, and is woken early when a new, earlier deadline appears.
//!
//! Upstream scans random channels every 100 ms (`queueScanLoop`); a shard owns its heaps and can
//! pop exactly what is due instead.

use std::cell::Cell;
use std::time::Instant;

use crate::signal::Signal;

/// The armed deadline and the signal that re-arms it.
#[derive(Debug, Default)]
pub struct Timer {
    armed: Cell<Option<Instant>>,
    /// Wakes the timer task.
    pub wake: Signal,
}

impl Timer {
    /// Notes a deadline; wakes the timer task if it is earlier than the armed one.
    pub fn note(&self, deadline: Option<Instant>) {
        let Some(d) = deadline else { return };
        match self.armed.get() {
            Some(armed) if armed <= d => {}
            _ => {
                self.armed.set(Some(d));
                self.wake.notify();
            }
        }
    }

    /// The armed deadline.
    pub fn armed(&self) -> Option<Instant> {
        self.armed.get()
    }

    /// Replaces the armed deadline (after the timer task ran).
    pub fn set(&self, deadline: Option<Instant>) {
        self.armed.set(deadline);
    }
}
