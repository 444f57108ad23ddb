//! A position that only grows, and tasks waiting for it to reach theirs (single-threaded).
//!
//! The log's "written" and "synced" positions are watermarks: a publisher waits until the
//! position after its record is reached, then answers `OK`. One advance wakes every waiter whose
//! position it covers, which is what makes group commit cheap.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// A monotonic position with waiters.
#[derive(Debug, Default)]
pub struct Watermark {
    value: Cell<u64>,
    failed: Cell<bool>,
    waiters: RefCell<Vec<(u64, Waker)>>,
}

/// The watermark will never reach the position: the log failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failed;

impl Watermark {
    /// A watermark at `value`.
    pub fn new(value: u64) -> Watermark {
        Watermark {
            value: Cell::new(value),
            ..Watermark::default()
        }
    }

    /// The current position.
    pub fn get(&self) -> u64 {
        self.value.get()
    }

    /// Moves to `value` (never backwards) and wakes the waiters it covers.
    pub fn advance(&self, value: u64) {
        if value <= self.value.get() {
            return;
        }
        self.value.set(value);
        let ready: Vec<Waker> = {
            let mut waiters = self.waiters.borrow_mut();
            let (done, pending): (Vec<_>, Vec<_>) =
                waiters.drain(..).partition(|(at, _)| *at <= value);
            *waiters = pending;
            done.into_iter().map(|(_, w)| w).collect()
        };
        for waker in ready {
            waker.wake();
        }
    }

    /// Marks the watermark as failed: every waiter, present and future, gets [`Failed`].
    pub fn fail(&self) {
        self.failed.set(true);
        for (_, waker) in self.waiters.borrow_mut().drain(..) {
            waker.wake();
        }
    }

    /// Waits until the position is at least `at`.
    ///
    /// # Errors
    /// [`Failed`] once [`Watermark::fail`] was called (unless `at` was already reached).
    pub async fn wait_for(&self, at: u64) -> Result<(), Failed> {
        poll_fn(|cx| {
            if self.value.get() >= at {
                Poll::Ready(Ok(()))
            } else if self.failed.get() {
                Poll::Ready(Err(Failed))
            } else {
                self.waiters.borrow_mut().push((at, cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}
