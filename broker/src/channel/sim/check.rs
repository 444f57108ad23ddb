//! The simulation's invariant checks, run after every step: the channel's internals against
//! the independent model (placement of every message, counters, deadlines, RDY).

use super::*;

impl Sim {
    pub(super) fn check(&self) {
        let ch = &self.ch;
        let model = &self.model;
        ch.consumers.check();
        // Ready: same messages (sorted vectors: cheaper than sets in debug builds).
        let mut ready: Vec<u64> = ch.ready_iter().map(|m| num(&m.id)).collect();
        ready.sort_unstable();
        assert!(ready.iter().eq(model.ready.iter()), "ready set");
        // Deferred: same messages, same due times.
        let mut deferred: Vec<(u64, Instant)> = ch
            .deferred
            .iter()
            .map(|(due, m)| (num(&m.id), due))
            .collect();
        deferred.sort_unstable();
        let expected = model.deferred.iter().map(|(id, due)| (*id, *due));
        assert!(deferred.into_iter().eq(expected), "deferred set");
        // In flight: same messages, owners, deadlines; deadlines within the cap.
        assert_eq!(ch.in_flight.len(), model.in_flight.len(), "in-flight count");
        for entry in ch.in_flight.entries() {
            let id = num(&entry.msg.id);
            let flight = model
                .in_flight
                .get(&id)
                .expect("in flight only in the channel");
            assert_eq!(entry.consumer, flight.owner, "owner of {id}");
            assert_eq!(entry.delivered_at, flight.delivered_at);
            assert_eq!(entry.deadline, flight.deadline, "deadline of {id}");
            assert!(entry.deadline >= entry.delivered_at);
            let cap = later(entry.delivered_at, self.opts.max_msg_timeout);
            assert!(
                entry.deadline <= cap,
                "deadline past delivery + max_msg_timeout"
            );
            assert_eq!(
                Some(&entry.msg.attempts),
                model.attempts.get(&id),
                "attempts of {id}"
            );
        }
        // Every published message is in exactly one place.
        let placed = model.ready.len()
            + model.deferred.len()
            + model.in_flight.len()
            + model.finished.len()
            + model.dropped.len();
        assert_eq!(
            placed as u64, model.published,
            "a message is lost or in two places"
        );
        // The union is O(published): check it now and then, and at the end.
        if self.steps % 256 == 0 {
            self.check_partition();
        }
        self.check_counters();
        if let Some(earliest) = self.true_next_deadline() {
            let next = ch.next_deadline().expect("a deadline is pending");
            assert!(next <= earliest, "next_deadline is late");
        }
    }

    /// Every published id is in exactly one of the model's sets.
    fn check_partition(&self) {
        let model = &self.model;
        let mut all: BTreeSet<u64> = model.ready.clone();
        all.extend(model.deferred.keys());
        all.extend(model.in_flight.keys());
        all.extend(&model.finished);
        all.extend(&model.dropped);
        assert_eq!(
            all.len() as u64,
            model.published,
            "a message is in two places"
        );
    }

    fn check_counters(&self) {
        let (ch, model) = (&self.ch, &self.model);
        // Merging latency histograms is the slowest part of `stats`: take it now and then.
        let full = self.steps % 64 == 0;
        let stats = if full {
            ch.stats(self.wall_ns())
        } else {
            ChannelStats {
                e2e_processing_latency: E2eProcessingLatency::untracked(),
                ..ch.counters()
            }
        };
        assert_eq!(stats.requeue_count, model.requeue_count, "requeue_count");
        assert_eq!(stats.timeout_count, model.timeout_count, "timeout_count");
        assert_eq!(stats.dropped_count, model.dropped_count, "dropped_count");
        assert_eq!(stats.paused, model.paused);
        assert_eq!(stats.client_count, self.registered().len());
        if self.opts.e2e.is_some() && full {
            let count = stats.e2e_processing_latency.count;
            assert_eq!(count, model.finished.len() as u64, "e2e count");
        }
        for id in &model.live {
            let mc = &model.consumers[id];
            let got = ch.consumer_stats(*id).expect("registered consumer");
            let want = ConsumerStats {
                ready_count: mc.rdy,
                in_flight_count: mc.in_flight,
                message_count: mc.message_count,
                finish_count: mc.finish_count,
                requeue_count: mc.requeue_count,
            };
            assert_eq!(got, want, "stats of {id:?}");
        }
        let room = model.live.iter().any(|id| {
            let c = &model.consumers[id];
            !c.closed && c.in_flight < c.rdy
        });
        let wants = !model.paused && !model.ready.is_empty() && room;
        assert_eq!(ch.wants_delivery(), wants, "wants_delivery");
    }
}
