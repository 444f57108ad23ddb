//! `sluice pub` (upstream `to_nsq`): publish stdin, split on `--delimiter`, to a topic on
//! every `--nsqd-tcp-address`, at most `--rate` messages a second.
//!
//! Mirrors `apps/to_nsq/to_nsq.go`: empty records are skipped, each record goes to every
//! broker given, a failed publish ends the program with status 1, SIGINT/SIGTERM stop reading
//! and publish what was read. Differences: records are batched into `MPUB`s (up to
//! [`BATCH_MAX_MESSAGES`] messages or [`BATCH_MAX_BYTES`] bytes, sent as soon as stdin has no
//! more data ready, so piped input is not delayed) and pipelined, where upstream sends one
//! `PUB` and waits for each; the last record is kept whole when stdin does not end with the
//! delimiter (upstream cuts its last byte); `--status-every` (ours) logs progress.

use std::io::Read;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use sluice_proto::names::is_valid_topic_name;

use crate::apps::flags::{Flag, Kind, Values};
use crate::apps::log;
use crate::apps::signals::Signals;
use crate::apps::source::{flag, ClientOpts};
use crate::Producer;

/// The most messages in one `MPUB`.
pub const BATCH_MAX_MESSAGES: usize = 1000;
/// The most body bytes in one `MPUB` (below nsqd's default 5 MiB `--max-body-size`).
pub const BATCH_MAX_BYTES: usize = 1024 * 1024;
/// Bytes asked of stdin per read.
const READ_CHUNK: usize = 64 * 1024;

/// The flag table.
pub fn flags() -> Vec<Flag> {
    vec![
        flag("topic", Kind::Str, "", "NSQ topic to publish to"),
        flag("delimiter", Kind::Str, "\n", "character to split input from stdin"),
        flag("nsqd-tcp-address", Kind::List, "", "destination nsqd TCP address (may be given multiple times)"),
        flag("producer-opt", Kind::List, "", "option to passthrough to nsq.Producer (may be given multiple times, http://godoc.org/github.com/nsqio/go-nsq#Config)"),
        flag("rate", Kind::Int, "0", "Throttle messages to n/second. 0 to disable"),
        flag("status-every", Kind::Int, "0", "the # of messages between logging progress, 0 disables (sluice)"),
        flag("version", Kind::Bool, "false", "print version string"),
    ]
}

/// Runs `to_nsq`.
///
/// # Errors
/// Bad flags, an unreachable broker, a refused publish or a failed read of stdin.
pub fn run(values: &Values, signals: &Signals) -> Result<(), String> {
    let topic = values.get("topic").unwrap_or_default();
    if topic.is_empty() {
        return Err("--topic required".into());
    }
    if !is_valid_topic_name(topic) {
        return Err(format!("--topic is invalid: {topic:?}"));
    }
    let delimiter = match values.get("delimiter").unwrap_or("\n").as_bytes() {
        [byte] => *byte,
        _ => return Err("--delimiter must be a single byte".into()),
    };
    let addrs = values.all("nsqd-tcp-address");
    if addrs.is_empty() {
        return Err("--nsqd-tcp-address required".into());
    }
    let rate = values.int("rate").unwrap_or(0);
    let opts = ClientOpts::new("to_nsq", values.all("producer-opt"))?;
    let mut producers = addrs
        .iter()
        .map(|addr| {
            Producer::connect(addr, &opts.config)
                .map_err(|e| format!("failed to create nsq.Producer - {e}"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    if rate >= 1 {
        log::info(&format!("Throttling messages rate to max:{rate}/second"));
    }
    let mut publisher = Publisher {
        topic,
        producers: &mut producers,
        pacer: (rate >= 1).then(|| Pacer::new(rate.unsigned_abs(), Instant::now())),
        status_every: values
            .int("status-every")
            .unwrap_or(0)
            .max(0)
            .unsigned_abs(),
        published: 0,
        started: Instant::now(),
    };
    let chunks = spawn_reader()?;
    pump(&chunks, Splitter::new(delimiter), &mut publisher, signals)?;
    publisher.finish()
}

/// Splits what stdin gives and publishes it, a round at a time, until the end of input or a
/// termination signal.
fn pump(
    chunks: &Receiver<Result<Vec<u8>, String>>,
    mut splitter: Splitter,
    publisher: &mut Publisher<'_>,
    signals: &Signals,
) -> Result<(), String> {
    let mut records = Vec::new();
    while !signals.terminated() {
        let mut eof = match chunks.recv_timeout(Duration::from_millis(50)) {
            Ok(chunk) => {
                splitter.push(&chunk?, &mut records);
                false
            }
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        // Take what else is already here, then publish: a full batch is not waited for.
        while !eof && records.len() < BATCH_MAX_MESSAGES {
            match chunks.try_recv() {
                Ok(chunk) => splitter.push(&chunk?, &mut records),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => eof = true,
            }
        }
        if eof {
            splitter.finish(&mut records);
        }
        publisher.publish(&records, signals)?;
        records.clear();
        if eof {
            break;
        }
    }
    Ok(())
}

/// Reads stdin on its own thread (a blocked read must not delay a signal), in chunks; a
/// read error arrives as the last item.
fn spawn_reader() -> Result<Receiver<Result<Vec<u8>, String>>, String> {
    let (tx, rx) = mpsc::sync_channel(4);
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            loop {
                let mut chunk = vec![0; READ_CHUNK];
                match stdin.read(&mut chunk) {
                    Ok(0) => return,
                    Ok(n) => {
                        chunk.truncate(n);
                        if tx.send(Ok(chunk)).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Err(format!("reading stdin: {e}")));
                        return;
                    }
                }
            }
        })
        .map_err(|e| format!("starting the stdin reader: {e}"))?;
    Ok(rx)
}

/// Splits a byte stream into records on a delimiter. Pure.
#[derive(Debug)]
pub struct Splitter {
    delimiter: u8,
    partial: Vec<u8>,
}

impl Splitter {
    /// A splitter on `delimiter`.
    pub fn new(delimiter: u8) -> Splitter {
        Splitter {
            delimiter,
            partial: Vec::new(),
        }
    }

    /// Appends the complete, non-empty records of `chunk` (with what was left from earlier
    /// chunks) to `records`.
    ///
    /// # Examples
    /// ```
    /// use sluice_client::apps::publish::Splitter;
    /// let mut splitter = Splitter::new(b'\n');
    /// let mut records = Vec::new();
    /// splitter.push(b"a\n\nb", &mut records);
    /// splitter.push(b"c\nd", &mut records);
    /// splitter.finish(&mut records);
    /// assert_eq!(records, [b"a".to_vec(), b"bc".to_vec(), b"d".to_vec()]);
    /// ```
    pub fn push(&mut self, chunk: &[u8], records: &mut Vec<Vec<u8>>) {
        let mut rest = chunk;
        while let Some(at) = rest.iter().position(|b| *b == self.delimiter) {
            let (head, tail) = rest.split_at(at);
            self.partial.extend_from_slice(head);
            if !self.partial.is_empty() {
                records.push(std::mem::take(&mut self.partial));
            }
            rest = tail.get(1..).unwrap_or_default();
        }
        self.partial.extend_from_slice(rest);
    }

    /// At the end of input: the last record, when it did not end with the delimiter.
    pub fn finish(&mut self, records: &mut Vec<Vec<u8>>) {
        if !self.partial.is_empty() {
            records.push(std::mem::take(&mut self.partial));
        }
    }
}

/// `--rate`: message `k` may leave at `start + k/rate`; at most one second of unused
/// allowance builds up (upstream's balance is capped at `rate`). Pure: time is an argument.
#[derive(Debug, Clone)]
pub struct Pacer {
    interval: Duration,
    next: Instant,
}

impl Pacer {
    /// A pacer of `rate` messages a second starting at `now`.
    pub fn new(rate: u64, now: Instant) -> Pacer {
        Pacer {
            interval: Duration::from_secs(1) / u32::try_from(rate.max(1)).unwrap_or(u32::MAX),
            next: now,
        }
    }

    /// How many of `wanted` messages may be sent at `now` (they are counted as sent).
    ///
    /// # Examples
    /// ```
    /// use std::time::{Duration, Instant};
    /// use sluice_client::apps::publish::Pacer;
    /// let start = Instant::now();
    /// let mut pacer = Pacer::new(10, start);
    /// assert_eq!(pacer.take(start, 5), 1);
    /// assert_eq!(pacer.take(start + Duration::from_millis(350), 5), 3);
    /// assert_eq!(pacer.take(start + Duration::from_secs(60), 50), 11);
    /// ```
    pub fn take(&mut self, now: Instant, wanted: usize) -> usize {
        let floor = now.checked_sub(Duration::from_secs(1)).unwrap_or(now);
        if self.next < floor {
            self.next = floor;
        }
        let mut allowed = 0;
        while allowed < wanted && self.next <= now {
            allowed += 1;
            self.next += self.interval;
        }
        allowed
    }

    /// How long until the next message may leave.
    pub fn wait(&self, now: Instant) -> Duration {
        self.next.saturating_duration_since(now)
    }
}

struct Publisher<'a> {
    topic: &'a str,
    producers: &'a mut [Producer],
    pacer: Option<Pacer>,
    status_every: u64,
    published: u64,
    started: Instant,
}

impl Publisher<'_> {
    /// Sends `records` to every broker, paced and batched (without waiting for the acks).
    fn publish(&mut self, records: &[Vec<u8>], signals: &Signals) -> Result<(), String> {
        let mut rest = records;
        while !rest.is_empty() {
            let allowed = match &mut self.pacer {
                Some(pacer) => {
                    let allowed = pacer.take(Instant::now(), rest.len().min(BATCH_MAX_MESSAGES));
                    if allowed == 0 {
                        let wait = pacer.wait(Instant::now()).min(Duration::from_millis(50));
                        if signals.sleep(wait) {
                            // Stopping: what was read but not yet paced out is still sent.
                            self.pacer = None;
                        }
                        continue;
                    }
                    allowed
                }
                None => rest.len(),
            };
            let (now, later) = rest.split_at(allowed.min(rest.len()));
            for batch in batches(now) {
                self.send(batch)?;
            }
            rest = later;
        }
        // Write now (the producer buffers) and take the answers already there, so piped
        // input is published as it comes and a refusal stops the run early.
        for producer in self.producers.iter_mut() {
            producer.poll_acks().map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn send(&mut self, batch: &[Vec<u8>]) -> Result<(), String> {
        for producer in self.producers.iter_mut() {
            let result = match batch {
                [one] => producer.send_pub(self.topic, one),
                many => producer.send_mpub(self.topic, many),
            };
            result.map_err(|e| e.to_string())?;
        }
        let before = self.published;
        self.published += batch.len() as u64;
        if self.status_every > 0 && before / self.status_every != self.published / self.status_every
        {
            let secs = self.started.elapsed().as_secs_f64().max(1e-9);
            log::info(&format!(
                "published {} messages ({:.0}/s)",
                self.published,
                self.published as f64 / secs
            ));
        }
        Ok(())
    }

    /// Waits for every broker to acknowledge everything sent.
    fn finish(self) -> Result<(), String> {
        for producer in self.producers.iter_mut() {
            producer.wait_all().map_err(|e| e.to_string())?;
        }
        log::info(&format!("published {} messages", self.published));
        Ok(())
    }
}

/// Splits records into `MPUB`-sized runs.
fn batches(records: &[Vec<u8>]) -> Vec<&[Vec<u8>]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, record) in records.iter().enumerate() {
        let full = i - start >= BATCH_MAX_MESSAGES
            || (bytes + record.len() > BATCH_MAX_BYTES && i > start);
        if full {
            out.push(records.get(start..i).unwrap_or_default());
            start = i;
            bytes = 0;
        }
        bytes += record.len();
    }
    if start < records.len() {
        out.push(records.get(start..).unwrap_or_default());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitting_keeps_records_across_chunks_and_skips_empty_ones() {
        let mut splitter = Splitter::new(b',');
        let mut records = Vec::new();
        for chunk in [&b",,x"[..], b"y,", b"", b"z"] {
            splitter.push(chunk, &mut records);
        }
        assert_eq!(records, [b"xy".to_vec()]);
        splitter.finish(&mut records);
        assert_eq!(records, [b"xy".to_vec(), b"z".to_vec()]);
        splitter.finish(&mut records);
        assert_eq!(records.len(), 2);
    }

    #[test]
    fn batches_respect_count_and_byte_limits() {
        let small: Vec<Vec<u8>> = (0..2500).map(|i| vec![b'x'; i % 3 + 1]).collect();
        let sizes: Vec<usize> = batches(&small).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [1000, 1000, 500]);
        let big: Vec<Vec<u8>> = (0..5).map(|_| vec![0; BATCH_MAX_BYTES / 2]).collect();
        let sizes: Vec<usize> = batches(&big).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [2, 2, 1]);
        let huge = vec![vec![0; BATCH_MAX_BYTES * 2]];
        assert_eq!(batches(&huge).len(), 1);
        assert!(batches(&[]).is_empty());
    }

    #[test]
    fn pacing_never_exceeds_the_rate_and_caps_the_backlog() {
        let start = Instant::now();
        let mut pacer = Pacer::new(100, start);
        let mut sent = 0;
        for ms in (0..=1000).step_by(7) {
            sent += pacer.take(start + Duration::from_millis(ms), 1000);
        }
        // Messages at 0, 10, …, 1000 ms: 101 at most.
        assert!(sent <= 101, "{sent}");
        assert!(sent >= 99, "{sent}");
        let idle = start + Duration::from_secs(30);
        assert_eq!(pacer.take(idle, 10_000), 101);
        assert!(pacer.wait(idle) > Duration::ZERO);
    }
}
