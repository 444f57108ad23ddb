//! Admission of messages to a stage that answers them later ([`Disposition::Hold`]), and the
//! count of those not yet answered, so that a utility can drain before it closes.
//!
//! Upstream's apps stop a go-nsq consumer, which waits for in-flight messages to be answered
//! before closing each connection. This client's [`Consumer::stop`] closes once the broker
//! answers `CLS`, so the utilities drain first: [`Gate::close`] makes handlers requeue
//! whatever arrives from then on (it is never taken, so never duplicated), the stage answers
//! everything it took, [`Gate::wait_drained`] sees the count reach zero, and only then is the
//! consumer stopped.
//!
//! [`Consumer::stop`]: crate::Consumer::stop

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sluice_proto::MessageId;

use crate::{Disposition, Responder};

/// A handler's answer for a message refused at a closed gate: back to the broker at once.
pub const REFUSED: Disposition = Disposition::Requeue(Some(Duration::ZERO));

/// The admission lock and the count of messages taken and not yet answered.
#[derive(Debug, Default)]
pub struct Gate {
    closed: Mutex<bool>,
    outstanding: AtomicU64,
}

impl Gate {
    /// An open gate.
    pub fn new() -> Gate {
        Gate::default()
    }

    /// Runs `take` (which hands the message to the stage) unless the gate is closed, and
    /// returns the handler's answer: [`Disposition::Hold`] when taken, [`REFUSED`] when not.
    /// `take` runs under the lock, so once [`Gate::close`] returns no message is taken.
    /// A `take` that fails (the stage is gone) also refuses.
    pub fn admit(&self, take: impl FnOnce() -> bool) -> Disposition {
        let closed = self.closed.lock().unwrap_or_else(PoisonError::into_inner);
        if *closed {
            return REFUSED;
        }
        self.outstanding.fetch_add(1, Ordering::SeqCst);
        if take() {
            Disposition::Hold
        } else {
            self.outstanding.fetch_sub(1, Ordering::SeqCst);
            REFUSED
        }
    }

    /// Records that `count` taken messages were answered (FIN or REQ, or their connection
    /// is gone).
    pub fn answered(&self, count: u64) {
        // Saturating: a bug elsewhere must not wrap the count and hang the drain.
        let _ = self
            .outstanding
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_sub(count))
            });
    }

    /// Messages taken and not yet answered.
    pub fn outstanding(&self) -> u64 {
        self.outstanding.load(Ordering::SeqCst)
    }

    /// Refuses every message from now on.
    pub fn close(&self) {
        *self.closed.lock().unwrap_or_else(PoisonError::into_inner) = true;
    }

    /// Whether [`Gate::close`] was called.
    pub fn is_closed(&self) -> bool {
        *self.closed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until every taken message was answered, or `timeout` passes; returns whether
    /// they were.
    pub fn wait_drained(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.outstanding() > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }
}

/// Sends `FIN` for every message, one write per connection (the pairs may mix connections).
/// Returns the failures: each connection that could not be written, with how many messages
/// it had (the broker redelivers those).
pub fn finish_grouped<'a>(
    items: impl IntoIterator<Item = (&'a Responder, MessageId)>,
) -> Vec<(String, usize)> {
    let mut groups: Vec<(&Responder, Vec<MessageId>)> = Vec::new();
    for (responder, id) in items {
        match groups
            .iter_mut()
            .find(|(known, _)| known.same_connection(responder))
        {
            Some((_, ids)) => ids.push(id),
            None => groups.push((responder, vec![id])),
        }
    }
    groups
        .into_iter()
        .filter_map(|(responder, ids)| {
            responder
                .finish_all(&ids)
                .err()
                .map(|err| (err.to_string(), ids.len()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_gate_refuses_and_counts_only_what_it_took() {
        let gate = Gate::new();
        assert_eq!(gate.admit(|| true), Disposition::Hold);
        assert_eq!(gate.admit(|| false), REFUSED);
        assert_eq!(gate.outstanding(), 1);
        gate.close();
        let mut ran = false;
        assert_eq!(
            gate.admit(|| {
                ran = true;
                true
            }),
            REFUSED
        );
        assert!(!ran);
        assert!(!gate.wait_drained(Duration::from_millis(10)));
        gate.answered(5);
        assert_eq!(gate.outstanding(), 0);
        assert!(gate.wait_drained(Duration::ZERO));
    }
}
