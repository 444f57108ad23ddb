//! `sluice tail` (upstream `nsq_tail`): print the messages of one or more topics to stdout,
//! one per line, optionally prefixed with `topic | `, until `-n` messages were shown or
//! SIGINT/SIGTERM.
//!
//! Mirrors `apps/nsq_tail/nsq_tail.go`: one consumer per topic on the same channel (default a
//! random `tail#######ephemeral`), `--max-in-flight` lowered to `-n`. Differences: upstream
//! calls `os.Exit` on the n-th message, leaving later deliveries unanswered until they time
//! out; here a message past the n-th is requeued at once and the consumers close cleanly.
//! Output is written per read (one write for all the messages of a read), before their
//! `FIN`s are sent.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::apps::flags::{Flag, Kind, Values};
use crate::apps::log;
use crate::apps::signals::Signals;
use crate::apps::source::{consumer_flags, flag, max_in_flight, ClientOpts, Source};
use crate::{Consumer, Disposition, Handler, Message, Responder};

/// Output buffered by one connection's handler before it is written mid-read.
const FLUSH_BYTES: usize = 64 * 1024;

/// The flag table.
pub fn flags() -> Vec<Flag> {
    let mut table = consumer_flags("200");
    table.extend([
        flag(
            "topic",
            Kind::List,
            "",
            "NSQ topic (may be given multiple times)",
        ),
        flag("channel", Kind::Str, "", "NSQ channel"),
        flag(
            "n",
            Kind::Int,
            "0",
            "total messages to show (will wait if starved)",
        ),
        flag(
            "print-topic",
            Kind::Bool,
            "false",
            "print topic name where message was received",
        ),
    ]);
    table
}

/// Runs `nsq_tail`.
///
/// # Errors
/// Bad flags, an unreachable server, or stdout failing.
pub fn run(values: &Values, signals: &Signals) -> Result<(), String> {
    let source = Source::from_values(values)?;
    let topics = values.all("topic");
    let Some(first_topic) = topics.first() else {
        return Err("--topic required".into());
    };
    let channel = match values.get("channel") {
        Some(channel) if !channel.is_empty() => channel.to_owned(),
        _ => random_channel(),
    };
    let total = values.int("n").map_or(0, |n| n.max(0).unsigned_abs());
    let mut in_flight = max_in_flight(values, 200)?;
    // Don't ask for more messages than we want.
    if total > 0 && total < in_flight {
        in_flight = total;
    }
    let mut opts = ClientOpts::new("nsq_tail", values.all("consumer-opt"))?;
    opts.config.max_in_flight = in_flight;
    source.preflight(first_topic, &opts.config)?;

    let output = Arc::new(Output {
        stdout: Mutex::new(std::io::stdout()),
        shown: AtomicU64::new(0),
        total,
        print_topic: values.bool("print-topic") == Some(true),
        failure: Mutex::new(None),
    });
    let mut consumers = Vec::new();
    for topic in topics {
        log::info(&format!("Adding consumer for topic: {topic}"));
        let consumer =
            Consumer::new(topic, &channel, opts.config.clone()).map_err(|e| e.to_string())?;
        let topic: Arc<str> = Arc::from(topic.as_str());
        let shared = output.clone();
        consumer.start(move || TailHandler {
            topic: topic.clone(),
            output: shared.clone(),
            buf: Vec::new(),
        });
        source.attach(&consumer)?;
        consumers.push(consumer);
    }
    while !output.done() && !signals.sleep(Duration::from_millis(50)) {}
    for consumer in &consumers {
        consumer.request_stop();
    }
    for consumer in &consumers {
        consumer.stop();
    }
    let failure = output
        .failure
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    match failure {
        Some(err) => Err(format!("failed to write to os.Stdout - {err}")),
        None => Ok(()),
    }
}

/// `tail` plus six random digits, on an ephemeral channel (upstream's default).
fn random_channel() -> String {
    let random = RandomState::new().hash_one(std::process::id());
    format!("tail{:06}#ephemeral", random % 999_999)
}

/// What every connection's handler shares.
struct Output {
    stdout: Mutex<std::io::Stdout>,
    shown: AtomicU64,
    total: u64,
    print_topic: bool,
    failure: Mutex<Option<String>>,
}

impl Output {
    /// Whether `-n` messages were shown or stdout failed.
    fn done(&self) -> bool {
        let failed = self
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some();
        failed || (self.total > 0 && self.shown.load(Ordering::SeqCst) >= self.total)
    }

    fn write(&self, bytes: &[u8]) {
        let mut stdout = self.stdout.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(err) = stdout.write_all(bytes).and_then(|()| stdout.flush()) {
            let mut failure = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
            failure.get_or_insert_with(|| err.to_string());
        }
    }
}

struct TailHandler {
    topic: Arc<str>,
    output: Arc<Output>,
    buf: Vec<u8>,
}

impl TailHandler {
    fn flush(&mut self) {
        if !self.buf.is_empty() {
            self.output.write(&self.buf);
            self.buf.clear();
        }
    }
}

impl Handler for TailHandler {
    fn handle_message(&mut self, msg: &Message, _responder: &Responder) -> Disposition {
        let failed = self
            .output
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some();
        let shown = self.output.shown.fetch_add(1, Ordering::SeqCst) + 1;
        if failed || (self.output.total > 0 && shown > self.output.total) {
            // Not shown: give it back for whoever reads the channel next.
            return Disposition::Requeue(Some(Duration::ZERO));
        }
        if self.output.print_topic {
            self.buf.extend_from_slice(self.topic.as_bytes());
            self.buf.extend_from_slice(b" | ");
        }
        self.buf.extend_from_slice(&msg.body);
        self.buf.push(b'\n');
        if self.buf.len() >= FLUSH_BYTES {
            self.flush();
        }
        Disposition::Finish
    }

    fn handle_batch_end(&mut self) {
        self.flush();
    }
}

impl Drop for TailHandler {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_channels_are_ephemeral_tail_channels() {
        let channel = random_channel();
        assert!(channel.starts_with("tail") && channel.ends_with("#ephemeral"));
        assert_eq!(channel.len(), "tail000000#ephemeral".len());
        assert!(sluice_proto::names::is_valid_channel_name(&channel));
    }
}
