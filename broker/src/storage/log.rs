//! One shard's append-only log: segment files under `--data-path/shard-N/`, written through
//! glommio's io_uring file API in large batches, with the fsync policy of `--sync-mode`.
//!
//! Appending is synchronous and only copies the record into the pending buffer; the writer task
//! turns everything appended meanwhile into one write (group commit) and advances the `written`
//! watermark, then syncs by policy and advances `synced`. Publishers wait on a watermark before
//! their `OK`. Positions are global byte offsets over the whole log: a segment file is named
//! after the position of its first byte, so recovery knows every record's position.
//!
//! A failed write or fsync poisons the log: it refuses every later append and fails every
//! waiter, and `/ping` reports it until restart. It never retries and carries on.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::future;
use glommio::io::BufferedFile;

use super::watermark::{Failed, Watermark};
use crate::options::SyncMode;
use crate::signal::Signal;

/// The suffix of segment files.
pub const SEGMENT_SUFFIX: &str = ".seg";

/// The path of the segment starting at `base`.
pub fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}{SEGMENT_SUFFIX}"))
}

/// What the log was told about one topic's messages in a segment, for reclaiming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSpan {
    /// The topic's incarnation.
    pub incarnation: u64,
    /// The highest message id of the topic in the segment.
    pub max_id: u64,
    /// Bytes of the topic's records in the segment.
    pub bytes: u64,
}

/// One segment file.
#[derive(Debug)]
pub struct Segment {
    /// Position of its first byte.
    pub base: u64,
    /// Bytes in it (written or pending).
    pub len: u64,
    /// Topics with messages in it.
    pub topics: HashMap<String, TopicSpan>,
    file: Option<Rc<BufferedFile>>,
}

/// Adds a record of `bytes` bytes to what a segment holds of `topic`.
pub fn note_span(
    topics: &mut HashMap<String, TopicSpan>,
    topic: &str,
    span: TopicSpan,
    bytes: u64,
) {
    let entry = topics
        .entry(topic.to_owned())
        .or_insert(TopicSpan { bytes: 0, ..span });
    if entry.incarnation != span.incarnation {
        // A newer life of the name: the older one's bytes no longer matter.
        *entry = TopicSpan { bytes: 0, ..span };
    }
    entry.max_id = entry.max_id.max(span.max_id);
    entry.bytes += bytes;
}

impl Segment {
    /// A segment found on disk by recovery.
    pub fn recovered(base: u64, len: u64, topics: HashMap<String, TopicSpan>) -> Segment {
        Segment {
            base,
            len,
            topics,
            file: None,
        }
    }
}

/// The durability settings.
#[derive(Debug, Clone, Copy)]
pub struct SyncPolicy {
    /// `--sync-mode`.
    pub mode: SyncMode,
    /// `--sync-every` (messages).
    pub every: u64,
    /// `--sync-timeout`.
    pub timeout: Duration,
}

/// Why an append was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("segment log failed: {0}")]
pub struct Poisoned(pub String);

/// One shard's log.
pub struct SegmentLog {
    dir: PathBuf,
    max_bytes_per_file: u64,
    policy: SyncPolicy,
    /// Records appended and not yet handed to a write.
    pending: RefCell<Vec<u8>>,
    pending_messages: Cell<u64>,
    /// Position after the last appended byte.
    appended: Cell<u64>,
    /// Segments, oldest first, by base position.
    segments: RefCell<BTreeMap<u64, Segment>>,
    /// Everything below this position is in the page cache.
    pub written: Watermark,
    /// Everything below this position is on stable storage.
    pub synced: Watermark,
    wake: Signal,
    poisoned: RefCell<Option<String>>,
    /// fsyncs done, for stats.
    pub fsyncs: Cell<u64>,
    /// Writes done, for stats.
    pub writes: Cell<u64>,
    /// Bytes written, for stats.
    pub bytes_written: Cell<u64>,
    /// fsync latency in microseconds, for stats.
    pub fsync_latency_us: RefCell<hdrhistogram::Histogram<u64>>,
    /// A segment was created or deleted since the directory was last synced.
    dir_dirty: Cell<bool>,
}

impl SegmentLog {
    /// A log over `dir` whose existing segments (found by recovery) end at `end`.
    pub fn new(
        dir: PathBuf,
        max_bytes_per_file: u64,
        policy: SyncPolicy,
        segments: Vec<Segment>,
        end: u64,
    ) -> SegmentLog {
        SegmentLog {
            dir,
            max_bytes_per_file,
            policy,
            pending: RefCell::new(Vec::with_capacity(1 << 20)),
            pending_messages: Cell::new(0),
            appended: Cell::new(end),
            segments: RefCell::new(segments.into_iter().map(|s| (s.base, s)).collect()),
            written: Watermark::new(end),
            synced: Watermark::new(end),
            wake: Signal::default(),
            poisoned: RefCell::new(None),
            fsyncs: Cell::new(0),
            writes: Cell::new(0),
            bytes_written: Cell::new(0),
            fsync_latency_us: RefCell::new(latency_histogram()),
            dir_dirty: Cell::new(true),
        }
    }

    /// The directory of this log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Why the log failed, if it did.
    pub fn poisoned(&self) -> Option<String> {
        self.poisoned.borrow().clone()
    }

    /// Appends one record for `topic` (messages up to `span.max_id`), written by `put`. Returns the
    /// position after it: wait for `written` (or `synced` in strict mode) to reach it.
    ///
    /// # Errors
    /// [`Poisoned`] once a write or fsync failed.
    pub fn append(
        &self,
        topic: &str,
        span: TopicSpan,
        messages: u64,
        put: impl FnOnce(&mut Vec<u8>),
    ) -> Result<u64, Poisoned> {
        if let Some(why) = self.poisoned.borrow().as_ref() {
            return Err(Poisoned(why.clone()));
        }
        let mut pending = self.pending.borrow_mut();
        let before = pending.len();
        put(&mut pending);
        let added = (pending.len() - before) as u64;
        drop(pending);
        let start = self.appended.get();
        self.roll_if_needed(start, added);
        let end = start + added;
        self.appended.set(end);
        self.pending_messages
            .set(self.pending_messages.get() + messages);
        if let Some((_, segment)) = self.segments.borrow_mut().iter_mut().next_back() {
            segment.len += added;
            note_span(&mut segment.topics, topic, span, added);
        }
        self.wake.notify();
        Ok(end)
    }

    /// Starts a new segment at `start` when the current one would pass `--max-bytes-per-file`.
    fn roll_if_needed(&self, start: u64, adding: u64) {
        let mut segments = self.segments.borrow_mut();
        let full = match segments.iter().next_back() {
            None => true,
            Some((_, s)) => s.len > 0 && s.len + adding > self.max_bytes_per_file,
        };
        if full {
            self.dir_dirty.set(true);
            segments.insert(
                start,
                Segment {
                    base: start,
                    len: 0,
                    topics: HashMap::new(),
                    file: None,
                },
            );
        }
    }

    /// The position after the last appended record.
    pub fn appended(&self) -> u64 {
        self.appended.get()
    }

    /// Waits until the record ending at `end` is durable as the policy requires for an `OK`.
    ///
    /// # Errors
    /// [`Failed`] when the log was poisoned first.
    pub async fn wait_durable(&self, end: u64) -> Result<(), Failed> {
        match self.policy.mode {
            SyncMode::Always => self.synced.wait_for(end).await,
            SyncMode::Periodic => self.written.wait_for(end).await,
        }
    }

    /// The segments, oldest first: (base, len, topics).
    pub fn segment_spans(&self) -> Vec<(u64, u64, HashMap<String, TopicSpan>)> {
        self.segments
            .borrow()
            .values()
            .map(|s| (s.base, s.len, s.topics.clone()))
            .collect()
    }

    /// Bytes in all segments.
    pub fn disk_bytes(&self) -> u64 {
        self.segments.borrow().values().map(|s| s.len).sum()
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.segments.borrow().len()
    }

    /// The open file of the segment starting at `base` (opened on first use).
    pub async fn file(&self, base: u64) -> std::io::Result<Rc<BufferedFile>> {
        if let Some(file) = self
            .segments
            .borrow()
            .get(&base)
            .and_then(|s| s.file.clone())
        {
            return Ok(file);
        }
        let path = segment_path(&self.dir, base);
        // Read and write: the writer appends, the refiller reads back.
        let file = glommio::io::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .buffered_open(&path)
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let file = Rc::new(file);
        if let Some(s) = self.segments.borrow_mut().get_mut(&base) {
            s.file = Some(file.clone());
        }
        Ok(file)
    }

    /// Deletes the segment starting at `base` (reclaim). The newest segment is never deleted.
    pub async fn remove_segment(&self, base: u64) {
        let removed = {
            let mut segments = self.segments.borrow_mut();
            let newest = segments.keys().next_back().copied();
            if newest == Some(base) {
                return;
            }
            segments.remove(&base)
        };
        if let Some(segment) = removed {
            drop(segment.file);
            let path = segment_path(&self.dir, base);
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!("SEGMENT({}): cannot delete - {e}", path.display());
            } else {
                self.dir_dirty.set(true);
                tracing::debug!("SEGMENT({}): reclaimed", path.display());
            }
        }
    }

    fn poison(&self, why: String) {
        tracing::error!("STORAGE: {why}; refusing publishes on this shard until restart");
        *self.poisoned.borrow_mut() = Some(why);
        self.written.fail();
        self.synced.fail();
    }

    /// The writer task: one write per batch of appends, fsync by policy. Runs until the log is
    /// poisoned or `stop` resolves with nothing pending.
    pub async fn run_writer(self: Rc<Self>) {
        let mut last_sync = Instant::now();
        // `--sync-every` counts log writes, as upstream's diskqueue counts its writes; here a
        // write carries every message appended since the previous one (group commit), so under
        // load `--sync-timeout` is what bounds the unsynced window. `--sync-mode=always` syncs
        // before every acknowledgement.
        let mut unsynced_writes: u64 = 0;
        loop {
            if self.pending.borrow().is_empty() {
                let sync_due = self.synced.get() < self.written.get();
                if sync_due {
                    let wait = self.policy.timeout.saturating_sub(last_sync.elapsed());
                    future::or(self.wake.wait(), glommio::timer::sleep(wait)).await;
                } else {
                    self.wake.wait().await;
                }
            }
            if self.poisoned.borrow().is_some() {
                return;
            }
            let had_pending =
                self.pending_messages.replace(0) > 0 || !self.pending.borrow().is_empty();
            if let Err(why) = self.write_pending().await {
                self.poison(why);
                return;
            }
            unsynced_writes += u64::from(had_pending);
            let sync_now = match self.policy.mode {
                SyncMode::Always => true,
                SyncMode::Periodic => {
                    unsynced_writes >= self.policy.every
                        || (last_sync.elapsed() >= self.policy.timeout
                            && self.synced.get() < self.written.get())
                }
            };
            if sync_now && self.synced.get() < self.written.get() {
                if let Err(why) = self.sync().await {
                    self.poison(why);
                    return;
                }
                unsynced_writes = 0;
                last_sync = Instant::now();
            }
        }
    }

    /// Writes everything pending, segment by segment. A short write counts as a failure: on a
    /// regular file it only happens when the disk is full or failing.
    async fn write_pending(&self) -> Result<(), String> {
        let data = std::mem::replace(&mut *self.pending.borrow_mut(), Vec::with_capacity(1 << 20));
        if data.is_empty() {
            return Ok(());
        }
        let start = self.written.get();
        let end = start + data.len() as u64;
        let (base, seg_end) = self
            .segment_at(start)
            .ok_or("no segment for a pending write")?;
        if seg_end >= end {
            // The usual case: one segment, one write, no copy.
            return self.write_chunk(base, start, data).await;
        }
        let mut pos = start;
        while pos < end {
            let (base, seg_end) = self
                .segment_at(pos)
                .ok_or("no segment for a pending write")?;
            let from = (pos - start) as usize;
            let to = (seg_end.min(end) - start) as usize;
            let chunk = data.get(from..to).unwrap_or_default().to_vec();
            self.write_chunk(base, pos, chunk).await?;
            pos = start + to as u64;
        }
        Ok(())
    }

    async fn write_chunk(&self, base: u64, pos: u64, chunk: Vec<u8>) -> Result<(), String> {
        let len = chunk.len();
        let file = self
            .file(base)
            .await
            .map_err(|e| format!("open segment {base}: {e}"))?;
        let n = file
            .write_at(chunk, pos - base)
            .await
            .map_err(|e| format!("write segment {base}: {e}"))?;
        if n != len {
            return Err(format!("write segment {base}: short write {n} < {len}"));
        }
        self.writes.set(self.writes.get() + 1);
        self.bytes_written
            .set(self.bytes_written.get() + len as u64);
        self.written.advance(pos + len as u64);
        Ok(())
    }

    /// The base of the oldest segment.
    pub fn first_base(&self) -> Option<u64> {
        self.segments.borrow().keys().next().copied()
    }

    /// The segment containing `pos`, or (when `pos` is in the gap a reclaimed segment left, or
    /// past the end) the next one: its base and the position after it.
    pub fn segment_at(&self, pos: u64) -> Option<(u64, u64)> {
        let segments = self.segments.borrow();
        if let Some((base, s)) = segments.range(..=pos).next_back() {
            if pos < base + s.len || segments.range(pos.saturating_add(1)..).next().is_none() {
                return Some((*base, base + s.len));
            }
        }
        let (base, s) = segments.range(pos.saturating_add(1)..).next()?;
        Some((*base, base + s.len))
    }

    /// fdatasync of every segment written since the last sync (normally just the newest).
    async fn sync(&self) -> Result<(), String> {
        let target = self.written.get();
        let from = self.synced.get();
        let bases: Vec<u64> = {
            let segments = self.segments.borrow();
            segments
                .iter()
                .filter(|(base, s)| **base + s.len > from && **base < target)
                .map(|(base, _)| *base)
                .collect()
        };
        for base in bases {
            let file = self
                .file(base)
                .await
                .map_err(|e| format!("open segment {base}: {e}"))?;
            let started = Instant::now();
            file.fdatasync()
                .await
                .map_err(|e| format!("fsync segment {base}: {e}"))?;
            self.fsyncs.set(self.fsyncs.get() + 1);
            let us = started.elapsed().as_micros().max(1) as u64;
            let _ = self
                .fsync_latency_us
                .borrow_mut()
                .record(us.min(3_600_000_000));
        }
        if self.dir_dirty.replace(false) {
            sync_dir(&self.dir).map_err(|e| format!("fsync {}: {e}", self.dir.display()))?;
        }
        self.synced.advance(target);
        Ok(())
    }

    /// Writes and syncs everything appended (clean shutdown).
    pub async fn flush(&self) -> Result<(), String> {
        self.write_pending().await?;
        self.sync().await
    }
}

/// An auto-resizing histogram (two significant figures): creating it cannot fail.
fn latency_histogram() -> hdrhistogram::Histogram<u64> {
    let mut h = hdrhistogram::Histogram::new(2).unwrap_or_else(|_| unreachable!("2 is valid"));
    h.auto(true);
    h
}

/// fsync of a directory, so that created, renamed and deleted entries are durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
