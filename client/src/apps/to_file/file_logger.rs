//! The writer of one topic in `sluice to-file`: takes the messages its consumer's handlers
//! hold, appends each as a line, rotates, and `FIN`s messages only once they are durable.
//!
//! Mirrors `apps/nsq_to_file/file_logger.go` `router`: messages are written as they come and
//! answered together when the file is synced, which happens every `--sync-interval`, when
//! `--max-in-flight` messages wait, when a connection is starved (it holds 85% of its RDY, so
//! the broker sends nothing more until some are answered: go-nsq `IsStarved`), before a
//! rotation, on SIGHUP and at shutdown. The order is always write, flush, fsync, then `FIN`:
//! a crash at any point loses no message that was finished; a message written but not yet
//! finished is delivered again (so it may appear twice, never zero times). A failed write or
//! fsync requeues every message not yet finished and stops the utility (upstream exits on
//! the spot, leaving them to time out).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use sluice_proto::MessageId;

use super::output_file::{FileSpec, OutputFile};
use crate::apps::gate::{finish_grouped, Gate};
use crate::apps::log;
use crate::apps::strftime::{strftime, UtcTime};
use crate::{Disposition, Handler, Message, Responder};

/// How often a waiting writer looks for starved connections.
const STARVE_POLL: Duration = Duration::from_millis(50);

/// A message a handler handed over.
pub struct Item {
    id: MessageId,
    body: Bytes,
    responder: Responder,
    /// Messages held from the handler's connection (shared with the handler).
    held: Arc<AtomicU64>,
}

/// What the writer is told.
pub enum Event {
    /// A message to write.
    Message(Item),
    /// SIGHUP: sync and close the file (the next message opens a new one).
    Hup,
    /// Shutdown: sync, answer, close, and return.
    Stop,
}

/// Whether the writer goes on after a run of events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// The settings a writer needs.
#[derive(Debug, Clone)]
pub struct LoggerSpec {
    /// Naming and opening of files.
    pub file: FileSpec,
    /// The file name with `<TOPIC>`, `<HOST>`, `<PID>` filled in; `<DATETIME>` and `<REV>`
    /// remain.
    pub filename_format: String,
    /// `--datetime-format`.
    pub datetime_format: String,
    /// `--max-in-flight`: answer once this many wait.
    pub max_in_flight: usize,
    /// `--sync-interval`.
    pub sync_interval: Duration,
    /// `--rotate-interval` (`None`: off).
    pub rotate_interval: Option<Duration>,
    /// `--skip-empty-files`.
    pub skip_empty_files: bool,
    /// For log lines: `topic/channel`.
    pub label: String,
}

/// The handler of one connection: hands messages to the writer through the gate.
pub struct FileHandler {
    tx: Sender<Event>,
    gate: Arc<Gate>,
    held: Arc<AtomicU64>,
}

impl FileHandler {
    /// A handler feeding `tx`.
    pub fn new(tx: Sender<Event>, gate: Arc<Gate>) -> FileHandler {
        FileHandler {
            tx,
            gate,
            held: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Handler for FileHandler {
    fn handle_message(&mut self, msg: &Message, responder: &Responder) -> Disposition {
        let (tx, held) = (&self.tx, &self.held);
        self.gate.admit(|| {
            held.fetch_add(1, Ordering::SeqCst);
            let item = Item {
                id: msg.id,
                body: msg.body.clone(),
                responder: responder.clone(),
                held: held.clone(),
            };
            let sent = tx.send(Event::Message(item)).is_ok();
            if !sent {
                held.fetch_sub(1, Ordering::SeqCst);
            }
            sent
        })
    }
}

/// The writer's state.
pub struct FileLogger {
    spec: LoggerSpec,
    gate: Arc<Gate>,
    file: Option<OutputFile>,
    /// The current name (with `<REV>`), for revision numbering.
    filename: String,
    rev: u32,
    open_time: Instant,
    /// Written, not yet answered, in arrival order.
    pending: Vec<Item>,
}

impl FileLogger {
    /// A writer with no file open yet.
    pub fn new(spec: LoggerSpec, gate: Arc<Gate>) -> FileLogger {
        FileLogger {
            spec,
            gate,
            file: None,
            filename: String::new(),
            rev: 0,
            open_time: Instant::now(),
            pending: Vec::new(),
        }
    }

    /// Runs until [`Event::Stop`] (or every sender is gone). On an error every unanswered
    /// message is requeued before the error is returned.
    ///
    /// # Errors
    /// A file that cannot be opened, written, synced or moved.
    pub fn run(mut self, rx: &Receiver<Event>) -> Result<(), String> {
        let result = self.event_loop(rx);
        if let Err(err) = &result {
            log::error(&format!("[{}] {err}", self.spec.label));
            self.answer(false);
        }
        result
    }

    fn event_loop(&mut self, rx: &Receiver<Event>) -> Result<(), String> {
        let mut next_tick = Instant::now() + self.spec.sync_interval;
        loop {
            let now = Instant::now();
            if now >= next_tick {
                self.tick(now)?;
                next_tick = now + self.spec.sync_interval;
                continue;
            }
            let event = match rx.recv_timeout((next_tick - now).min(STARVE_POLL)) {
                Ok(event) => event,
                Err(RecvTimeoutError::Timeout) => {
                    if self.any_starved() {
                        self.sync()?;
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => Event::Stop,
            };
            if self.handle_events(event, rx)? == Flow::Stop {
                return self.close_file();
            }
        }
    }

    /// Handles `first` and every event already queued behind it, then syncs if a connection
    /// is starved. Starvation is judged only once the queue is empty: a connection's held
    /// count includes messages still in the queue, which are about to be written.
    fn handle_events(&mut self, first: Event, rx: &Receiver<Event>) -> Result<Flow, String> {
        let mut event = first;
        loop {
            match event {
                Event::Message(item) => self.handle_item(item)?,
                Event::Hup => self.close_file()?,
                Event::Stop => return Ok(Flow::Stop),
            }
            event = match rx.try_recv() {
                Ok(next) => next,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => Event::Stop,
            };
        }
        if self.any_starved() {
            self.sync()?;
        }
        Ok(Flow::Continue)
    }

    fn handle_item(&mut self, item: Item) -> Result<(), String> {
        let now = Instant::now();
        if self.needs_rotation(now) {
            self.update_file(now)?;
        }
        let Some(file) = self.file.as_mut() else {
            return Err("no file open".into());
        };
        file.write(&item.body)
            .and_then(|()| file.write(b"\n"))
            .map_err(|e| format!("writing message to disk: {e}"))?;
        self.pending.push(item);
        if self.pending.len() >= self.spec.max_in_flight {
            self.sync()?;
        }
        Ok(())
    }

    /// The sync ticker: rotate by time if due, then sync.
    fn tick(&mut self, now: Instant) -> Result<(), String> {
        if self.needs_rotation(now) {
            if self.spec.skip_empty_files {
                self.close_file()?;
            } else {
                self.update_file(now)?;
            }
        }
        self.sync()
    }

    /// Makes the file durable and finishes every pending message.
    fn sync(&mut self) -> Result<(), String> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let Some(file) = self.file.as_mut() else {
            return Err("messages pending with no file open".into());
        };
        log::debug(&format!(
            "[{}] syncing {} records to disk",
            self.spec.label,
            self.pending.len()
        ));
        file.sync()
            .map_err(|e| format!("failed syncing messages: {e}"))?;
        self.answer(true);
        Ok(())
    }

    /// Closes the file (sync, close, move to the output directory) and finishes what it holds.
    fn close_file(&mut self) -> Result<(), String> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        let from = file.path().to_path_buf();
        let to = file
            .close(&self.spec.file)
            .map_err(|e| format!("failed to close {}: {e}", from.display()))?;
        self.answer(true);
        if to == from {
            log::info(&format!("[{}] closed {}", self.spec.label, to.display()));
        } else {
            log::info(&format!(
                "[{}] closed {} and moved it to {}",
                self.spec.label,
                from.display(),
                to.display()
            ));
        }
        Ok(())
    }

    /// Closes the current file and opens the next one (upstream `updateFile`).
    fn update_file(&mut self, now: Instant) -> Result<(), String> {
        self.close_file()?;
        let filename = self.current_filename();
        if filename == self.filename {
            self.rev += 1;
        } else {
            self.rev = 0;
        }
        self.filename = filename;
        self.open_time = now;
        let file = OutputFile::open(&self.spec.file, &self.filename, self.rev)
            .map_err(|e| format!("unable to open {}: {e}", self.filename))?;
        self.rev = file.rev();
        log::info(&format!(
            "[{}] opening {}",
            self.spec.label,
            file.path().display()
        ));
        self.file = Some(file);
        Ok(())
    }

    fn current_filename(&self) -> String {
        let datetime = strftime(
            &self.spec.datetime_format,
            &UtcTime::from_system(SystemTime::now()),
        );
        self.spec.filename_format.replace("<DATETIME>", &datetime)
    }

    /// Upstream `needsRotation`: no file yet, a new name (the date moved on), the interval
    /// passed, or the size exceeded.
    fn needs_rotation(&self, now: Instant) -> bool {
        let Some(file) = &self.file else {
            return true;
        };
        if self.current_filename() != self.filename {
            return true;
        }
        if let Some(interval) = self.spec.rotate_interval {
            if now.duration_since(self.open_time) > interval {
                return true;
            }
        }
        self.spec.file.rotate_size > 0 && file.size() > self.spec.file.rotate_size
    }

    fn any_starved(&self) -> bool {
        self.pending
            .iter()
            .any(|item| is_starved(item.held.load(Ordering::SeqCst), item.responder.rdy()))
    }

    /// Sends `FIN` (or, when `finish` is false, `REQ` with no delay) for every pending
    /// message, one write per connection.
    fn answer(&mut self, finish: bool) {
        let pending = std::mem::take(&mut self.pending);
        let failures = if finish {
            finish_grouped(pending.iter().map(|item| (&item.responder, item.id)))
        } else {
            pending
                .iter()
                .filter_map(|item| {
                    item.responder
                        .requeue(item.id, Duration::ZERO)
                        .err()
                        .map(|err| (err.to_string(), 1))
                })
                .collect()
        };
        for (err, count) in failures {
            // The connection is gone: the broker redelivers these.
            log::warn(&format!(
                "[{}] {count} messages not answered: {err}",
                self.spec.label
            ));
        }
        for item in &pending {
            let _ = item
                .held
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    Some(n.saturating_sub(1))
                });
        }
        self.gate.answered(pending.len() as u64);
    }
}

/// go-nsq `IsStarved`: a connection holding 85% of its RDY gets nothing more until some of
/// its messages are answered.
fn is_starved(held: u64, rdy: u64) -> bool {
    held > 0 && held >= rdy.saturating_mul(85) / 100
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starvation_is_85_percent_of_rdy_as_go_nsq_rounds_it() {
        assert!(!is_starved(0, 200));
        assert!(!is_starved(169, 200));
        assert!(is_starved(170, 200));
        assert!(is_starved(1, 1));
        assert!(is_starved(2, 3));
        assert!(is_starved(1, 0));
    }
}
