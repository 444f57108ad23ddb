//! Named scenarios: the settings of well-known benchmarks, applied before command-line flags.
//!
//! `bench` mirrors upstream's `bench.sh` with `bench/bench_writer` and `bench/bench_reader`
//! (200-byte messages, MPUB of 200, RDY 2500, one connection per core, publish a backlog
//! then drain it, nsqd started with `--mem-queue-size=1000000`).

use crate::load::{Mode, Settings};

/// A named set of settings.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// The name given to `--scenario`.
    pub name: &'static str,
    /// One line on what it measures.
    pub about: &'static str,
    /// Applies its settings.
    pub apply: fn(&mut Settings),
    /// The phases `compare` runs, in order (a `Sub` after a `Pub` drains its backlog).
    pub phases: &'static [Mode],
    /// Flags `compare` puts in place of `{flags}` in a server command.
    pub server_flags: &'static str,
}

/// Connections "one per core", as upstream's bench tools start `runtime.NumCPU()` of each.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn bench(s: &mut Settings) {
    s.topic = "sub_bench".into();
    s.channel = "ch".into();
    s.size = 200;
    s.batch = 200;
    s.rdy = 2500;
    s.producers = cores();
    s.consumers = cores();
}

fn nsq_published(s: &mut Settings) {
    s.size = 100;
    s.batch = 200;
    s.topics = 3;
    s.channels = 1;
    s.rdy = 2500;
    s.producers = 3;
    s.consumers = 1;
}

fn fanout(s: &mut Settings) {
    s.size = 200;
    s.batch = 200;
    s.topics = 1;
    s.channels = 10;
    s.rdy = 2500;
    s.producers = 1;
    s.consumers = 1;
}

fn many_topics(s: &mut Settings) {
    s.size = 200;
    s.batch = 20;
    s.topics = 1000;
    s.channels = 1;
    s.rdy = 100;
    s.producers = 4;
    s.consumers = 1;
}

fn many_connections(s: &mut Settings) {
    s.size = 200;
    s.batch = 10;
    s.topics = 1;
    s.channels = 1;
    s.rdy = 10;
    s.producers = 100;
    s.consumers = 900;
}

/// Every scenario.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "bench",
        about: "upstream bench_writer/bench_reader: 200 B, MPUB 200, RDY 2500, a connection \
                per core; publish a backlog, then drain it",
        apply: bench,
        phases: &[Mode::Pub, Mode::Sub],
        server_flags: "--mem-queue-size=1000000",
    },
    Scenario {
        name: "nsq-published",
        about: "NSQ's published benchmark shape: 100 B messages over 3 topics, published and \
                consumed at once",
        apply: nsq_published,
        phases: &[Mode::PubSub],
        server_flags: "--mem-queue-size=1000000",
    },
    Scenario {
        name: "fanout",
        about: "1 topic x 10 channels: every message delivered 10 times",
        apply: fanout,
        phases: &[Mode::PubSub],
        server_flags: "--mem-queue-size=1000000",
    },
    Scenario {
        name: "many-topics",
        about: "1000 topics, one channel and one consumer connection each",
        apply: many_topics,
        phases: &[Mode::PubSub],
        server_flags: "--mem-queue-size=100000",
    },
    Scenario {
        name: "many-connections",
        about: "1000 connections: 100 publishers and 900 consumers (RDY 10) on one channel",
        apply: many_connections,
        phases: &[Mode::PubSub],
        server_flags: "--mem-queue-size=1000000",
    },
    Scenario {
        name: "disk",
        about: "the bench shape through the disk path: the server keeps no message in memory \
                (--mem-queue-size=0); publish a backlog, then drain it",
        apply: bench,
        phases: &[Mode::Pub, Mode::Sub],
        server_flags: "--mem-queue-size=0",
    },
];

/// The scenario called `name`.
pub fn find(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}

/// Every name, for messages.
pub fn names() -> String {
    SCENARIOS
        .iter()
        .map(|s| s.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_gives_valid_settings() {
        for scenario in SCENARIOS {
            let mut settings = Settings::default();
            (scenario.apply)(&mut settings);
            settings.validate().unwrap();
            assert!(!scenario.phases.is_empty());
            assert!(find(scenario.name).is_some());
        }
        let mut settings = Settings::default();
        (find("many-connections").unwrap().apply)(&mut settings);
        assert_eq!(settings.producers + settings.consumers, 1000);
        assert!(find("nope").is_none());
    }
}
