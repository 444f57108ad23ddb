//! The consumer side of a run: each connection's handler reads the stamp of every message,
//! and once per read adds the latencies to the shared histogram and the sequence numbers to
//! the channel's tracker (one lock each per read, none per message).
//!
//! Mirrors upstream `bench/bench_reader` (`FIN` every message, `--rdy` per connection).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use sluice_client::{Disposition, Handler, Message, Responder};

use super::{lock, Shared};
use crate::body::{wall_ns, Stamp};

/// The handler of one consumer connection.
pub struct PerfHandler {
    shared: Arc<Shared>,
    /// Index of the (topic, channel) this connection consumes.
    slot: usize,
    /// Receipt time of the current read (one clock reading per read).
    now_ns: Option<u64>,
    latencies: Vec<u64>,
    arrivals: Vec<(u16, u16, u64)>,
    messages: u64,
    bytes: u64,
    foreign: u64,
}

impl PerfHandler {
    /// A handler for the connection consuming channel slot `slot`.
    pub fn new(shared: Arc<Shared>, slot: usize) -> PerfHandler {
        PerfHandler {
            shared,
            slot,
            now_ns: None,
            latencies: Vec::with_capacity(4096),
            arrivals: Vec::with_capacity(4096),
            messages: 0,
            bytes: 0,
            foreign: 0,
        }
    }
}

impl Handler for PerfHandler {
    fn handle_message(&mut self, msg: &Message, _responder: &Responder) -> Disposition {
        let now = *self.now_ns.get_or_insert_with(wall_ns);
        self.messages += 1;
        self.bytes += msg.body.len() as u64;
        match Stamp::read(&msg.body) {
            Some(stamp) if stamp.run_id == self.shared.run_id => {
                self.latencies.push(now.saturating_sub(stamp.sent_ns));
                if self.shared.track {
                    self.arrivals.push((stamp.producer, stamp.topic, stamp.seq));
                }
            }
            Some(stamp) => {
                // Left over from another run (or made by the sink): still a latency sample
                // when the run accepts foreign messages, never a delivery to check.
                self.foreign += 1;
                if self.shared.accept_foreign {
                    self.latencies.push(now.saturating_sub(stamp.sent_ns));
                }
            }
            None => self.foreign += 1,
        }
        Disposition::Finish
    }

    fn handle_batch_end(&mut self) {
        self.now_ns = None;
        if !self.latencies.is_empty() {
            let mut latency = lock(&self.shared.latency);
            for ns in self.latencies.drain(..) {
                latency.record_ns(ns);
            }
        }
        if !self.arrivals.is_empty() || self.foreign > 0 {
            if let Some(tracker) = self.shared.trackers.get(self.slot) {
                let mut tracker = lock(tracker);
                for (producer, topic, seq) in self.arrivals.drain(..) {
                    tracker.record(producer, topic, seq);
                }
                tracker.foreign += self.foreign;
            }
            self.arrivals.clear();
            self.foreign = 0;
        }
        let counters = &self.shared.counters;
        counters
            .received
            .fetch_add(self.messages, Ordering::Relaxed);
        counters
            .received_bytes
            .fetch_add(self.bytes, Ordering::Relaxed);
        self.messages = 0;
        self.bytes = 0;
    }
}
