//! `GET /metrics`: the registration database in the Prometheus text format (version 0.0.4).
//!
//! Upstream nsqlookupd has no such route (nsqio/nsq #732); this one is Sluice's. It shows what
//! `/nodes`, `/topics` and `/debug` show, counted:
//!
//! - `sluice_lookupd_producers`: brokers registered and active (as `/nodes` lists them);
//! - `sluice_lookupd_topics`: topics known (as `/topics` lists them);
//! - `sluice_lookupd_registrations{category}`: topic and channel registrations that have at
//!   least one broker (as `/debug` lists them), by category `topic` and `channel`;
//! - `sluice_lookupd_topic_producers{topic}`: active brokers that have the topic and are not
//!   tombstoned for it (those `/lookup` returns);
//! - `sluice_lookupd_tombstones`: (topic, broker) pairs tombstoned now.
//!
//! The `topic` label is bounded as the broker's `/metrics` bounds it: ephemeral topics are
//! summed into `topic="#ephemeral"`, and past [`TOPIC_SERIES_MAX`] named topics (first by
//! name) the rest into `topic="#other"`. Neither is a valid topic name, so neither collides
//! with one. Nothing here changes the database; it is read under its lock once.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bytes::Bytes;

use super::routes::Reply;
use crate::registry::Now;
use crate::Context;

/// The `Content-Type` of a scrape answer.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Topics with a series of their own; the rest are `#other`.
pub(crate) const TOPIC_SERIES_MAX: usize = 512;

/// The figures of one scrape, read from the database.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Figures {
    producers: u64,
    topics: u64,
    registrations: [(&'static str, u64); 2],
    tombstones: u64,
    /// Active, not tombstoned brokers per topic (every topic some broker has).
    topic_producers: BTreeMap<String, u64>,
}

/// `GET /metrics`.
pub(crate) fn metrics(ctx: &Context, now: Now) -> Reply {
    let figures = read(ctx, now);
    Reply {
        status: 200,
        headers: vec![("Content-Type", CONTENT_TYPE.to_owned())],
        body: Bytes::from(render(&figures)),
    }
}

fn read(ctx: &Context, now: Now) -> Figures {
    let db = ctx.lock_db();
    let nodes = db.nodes(now, ctx.visibility);
    let topics = db.topics().len() as u64;
    let debug = db.debug();
    drop(db);
    let mut figures = Figures {
        producers: nodes.producers.len() as u64,
        topics,
        registrations: [("topic", 0), ("channel", 0)],
        ..Figures::default()
    };
    for key in debug.keys() {
        let category = key.split(':').next().unwrap_or_default();
        if let Some(entry) = figures
            .registrations
            .iter_mut()
            .find(|(c, _)| *c == category)
        {
            entry.1 += 1;
        }
    }
    for node in &nodes.producers {
        for (topic, tombstoned) in node.topics.iter().zip(&node.tombstones) {
            let count = figures.topic_producers.entry(topic.clone()).or_default();
            if *tombstoned {
                figures.tombstones += 1;
            } else {
                *count += 1;
            }
        }
    }
    figures
}

/// Topic series with the folding rule applied, by label.
fn fold(topic_producers: &BTreeMap<String, u64>) -> BTreeMap<&str, u64> {
    let mut out = BTreeMap::new();
    let mut named = 0usize;
    for (topic, count) in topic_producers {
        let label = if topic.ends_with("#ephemeral") {
            "#ephemeral"
        } else if named < TOPIC_SERIES_MAX {
            named += 1;
            topic.as_str()
        } else {
            "#other"
        };
        *out.entry(label).or_default() += count;
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value with `\`, `"` and newline escaped.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub(crate) fn render(f: &Figures) -> String {
    let mut out = String::new();
    for (name, help, value) in [
        (
            "sluice_lookupd_producers",
            "Brokers registered and active (as /nodes lists them).",
            f.producers,
        ),
        (
            "sluice_lookupd_topics",
            "Topics known (as /topics lists them).",
            f.topics,
        ),
        (
            "sluice_lookupd_tombstones",
            "(topic, broker) registrations tombstoned now.",
            f.tombstones,
        ),
    ] {
        family(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    }
    let name = "sluice_lookupd_registrations";
    family(
        &mut out,
        name,
        "gauge",
        "Topic and channel registrations with at least one broker, by category (as /debug \
         lists them).",
    );
    for (category, count) in f.registrations {
        let _ = writeln!(out, "{name}{{category=\"{category}\"}} {count}");
    }
    let name = "sluice_lookupd_topic_producers";
    family(
        &mut out,
        name,
        "gauge",
        "Active brokers that have the topic and are not tombstoned for it (ephemeral topics \
         summed in topic=\"#ephemeral\", topics past the cap in topic=\"#other\").",
    );
    for (topic, count) in fold(&f.topic_producers) {
        let _ = writeln!(out, "{name}{{topic=\"{}\"}} {count}", escape_label(topic));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_gauges_and_folds_topics() {
        let mut topic_producers = BTreeMap::new();
        topic_producers.insert("a".to_owned(), 2);
        topic_producers.insert("x#ephemeral".to_owned(), 1);
        topic_producers.insert("y#ephemeral".to_owned(), 1);
        let figures = Figures {
            producers: 2,
            topics: 3,
            registrations: [("topic", 3), ("channel", 1)],
            tombstones: 1,
            topic_producers,
        };
        let text = render(&figures);
        for line in [
            "# TYPE sluice_lookupd_producers gauge",
            "sluice_lookupd_producers 2",
            "sluice_lookupd_topics 3",
            "sluice_lookupd_tombstones 1",
            "sluice_lookupd_registrations{category=\"channel\"} 1",
            "sluice_lookupd_topic_producers{topic=\"a\"} 2",
            "sluice_lookupd_topic_producers{topic=\"#ephemeral\"} 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(!text.contains("x#ephemeral"));
    }

    #[test]
    fn topics_past_the_cap_are_other() {
        let topic_producers: BTreeMap<String, u64> = (0..TOPIC_SERIES_MAX + 3)
            .map(|i| (format!("t{i:05}"), 1))
            .collect();
        let folded = fold(&topic_producers);
        assert_eq!(folded.len(), TOPIC_SERIES_MAX + 1);
        assert_eq!(folded.get("#other"), Some(&3));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
