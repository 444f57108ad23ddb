//! The shard's side of the segment log: opening and restoring it at start-up, saving the
//! shard's state (topics, channels, cursors), reclaiming segments, and refilling channels that
//! have a backlog in the log.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use futures_lite::future;

use super::{wall_ns, Shard};
use crate::options::Options;
use crate::storage::log::TopicSpan;
use crate::storage::log::{SegmentLog, SyncPolicy};
use crate::storage::meta::{self, ChannelState, ShardState, TopicState};
use crate::storage::reader::{read_topic, Source, Wanted};
use crate::storage::recovery::{self, Recovered};
use crate::storage::relocated;
use crate::topic::{Backlog, Restore, Topic};

/// The most messages one refill read brings into a channel.
pub const REFILL_BATCH_MAX: usize = 4096;

/// Opens shard `id`'s log: reads its saved state and its segments back.
///
/// # Errors
/// A message when the directory, the state file or a segment cannot be read.
pub fn open(opts: &Options, id: usize) -> Result<(Rc<SegmentLog>, ShardState, Recovered), String> {
    let dir = meta::shard_dir(&opts.data_path, id);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let state = meta::load_shard_state(&dir)?;
    let mut recovered = recovery::scan(&dir)?;
    let policy = SyncPolicy {
        mode: opts.sync_mode,
        every: opts.sync_every,
        timeout: opts.sync_timeout,
    };
    let segments = std::mem::take(&mut recovered.segments);
    let log = SegmentLog::new(
        dir,
        opts.max_bytes_per_file,
        policy,
        segments,
        recovered.end,
    );
    Ok((Rc::new(log), state, recovered))
}

impl Shard {
    /// Rebuilds topics and channels from the saved state and what the log holds.
    pub async fn restore(&self, state: &ShardState, recovered: &Recovered) {
        self.restore_topics(state, recovered);
        self.restore_relocations(state).await;
    }

    fn restore_topics(&self, state: &ShardState, recovered: &Recovered) {
        let mut newest_id = 0u64;
        let mut last_incarnation = state.last_incarnation;
        for saved in &state.topics {
            let topic = self.restore_topic(saved, recovered);
            newest_id = newest_id.max(topic.head());
            last_incarnation = last_incarnation.max(saved.incarnation);
            self.topics.borrow_mut().insert(saved.name.clone(), topic);
        }
        for (name, in_log) in &recovered.topics {
            let head = in_log.max_id.values().copied().max().unwrap_or(0);
            newest_id = newest_id.max(head);
            last_incarnation = last_incarnation.max(in_log.incarnation);
            let known = self.topics.borrow().contains_key(name);
            // Created after the last save (else it was deleted, and stays deleted).
            if !known && in_log.incarnation > state.last_incarnation {
                let index = in_log
                    .index
                    .get(&in_log.incarnation)
                    .cloned()
                    .unwrap_or_default();
                let first = index.first().map(|&(id, _)| id);
                let mut topic = self.new_topic(name, in_log.incarnation);
                let head = in_log.max_id.get(&in_log.incarnation).copied().unwrap_or(0);
                topic.restore(false, head, first, index);
                self.topics.borrow_mut().insert(name.clone(), topic);
            }
        }
        self.ids.borrow_mut().advance_past(newest_id);
        self.last_incarnation.set(last_incarnation);
        let topics = self.topics.borrow();
        for name in topics.keys() {
            // Restored, not created: registered with lookupd without asking for its channels.
            self.control.events.topic_loaded(name);
            if let Some(t) = topics.get(name) {
                for c in t.channels() {
                    self.control.events.channel_created(name, c.name());
                }
            }
        }
    }

    /// Opens the relocated files the saved state names; deletes any other (a relocation a crash
    /// interrupted before its switch was saved).
    async fn restore_relocations(&self, state: &ShardState) {
        let dir = self.log.dir().to_owned();
        let mut wanted = Vec::new();
        for saved in state.topics.iter().filter(|t| !t.relocated.is_empty()) {
            wanted.push(saved.relocated.clone());
            match relocated::open(&dir, &saved.relocated, saved.relocated_upto).await {
                Ok(r) => {
                    if let Some(topic) = self.topics.borrow_mut().get_mut(&saved.name) {
                        topic.set_relocated(r);
                    }
                }
                Err(e) => self.report_problem(format!("relocated messages unreadable: {e}")),
            }
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if relocated::is_relocated_name(&name) && !wanted.contains(&name) {
                tracing::info!("STORAGE: removing unfinished relocation {name}");
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    fn restore_topic(&self, saved: &TopicState, recovered: &Recovered) -> Topic {
        let inc = saved.incarnation;
        let in_log = recovered.topics.get(&saved.name);
        let log_head = in_log
            .and_then(|t| t.max_id.get(&inc))
            .copied()
            .unwrap_or(0);
        let head = saved.head.max(log_head);
        let index = in_log
            .and_then(|t| t.index.get(&inc))
            .cloned()
            .unwrap_or_default();
        let mut topic = self.new_topic(&saved.name, inc);
        let retain = (saved.retain_from != 0).then_some(saved.retain_from);
        topic.restore(saved.paused, head, retain, index);
        // How many messages wait in the log, for `/stats` (estimated from the recovered runs).
        let in_log_from = |from: u64| in_log.map_or(0, |t| t.count_from(inc, from));
        if let Some(from) = retain {
            topic.set_retained(in_log_from(from));
        }
        for c in saved
            .channels
            .iter()
            .filter(|c| !sluice_proto::names::is_ephemeral(&c.name))
        {
            let backlog = restored_backlog(&topic, c).map(|mut b| {
                b.pending = in_log_from(b.fresh_from) + b.restore.len() as u64;
                b
            });
            topic.restore_channel(&c.name, c.paused, backlog);
        }
        topic
    }

    /// The shard's state as it will be saved, and what each topic still needs of the log.
    pub fn snapshot(&self) -> (ShardState, HashMap<String, Needs>) {
        let now = Instant::now();
        let now_wall = wall_ns(SystemTime::now());
        let topics = self.topics.borrow();
        let mut state = ShardState {
            version: 1,
            last_incarnation: self.last_incarnation.get(),
            topics: Vec::new(),
        };
        let mut lows = HashMap::new();
        for topic in topics.values().filter(|t| t.is_durable()) {
            let (saved, low) = snapshot_topic(topic, now, now_wall);
            let needs = Needs {
                incarnation: topic.incarnation(),
                low,
                relocated_upto: topic.relocated().map_or(0, |r| r.upto),
            };
            lows.insert(topic.name().to_owned(), needs);
            state.topics.push(saved);
        }
        state.topics.sort_by(|a, b| a.name.cmp(&b.name));
        (state, lows)
    }

    /// Saves the state if it changed, then deletes the segments nothing needs any more.
    pub async fn save_state(&self) {
        let version = self.state_version.get();
        let (state, lows) = self.snapshot();
        let unchanged = self.last_saved.borrow().as_ref() == Some(&state);
        if !unchanged {
            let dir = self.log.dir().to_owned();
            let to_save = state.clone();
            let result = glommio::executor()
                .spawn_blocking(move || meta::save_shard_state(&dir, &to_save))
                .await;
            if let Err(e) = result {
                self.report_problem(format!("cannot save the shard state: {e}"));
                return;
            }
            *self.last_saved.borrow_mut() = Some(state);
        }
        self.state_saved.advance(version);
        self.reclaim(&lows).await;
        self.drop_read_relocations(&lows);
        *self.last_needs.borrow_mut() = lows;
    }

    /// Deletes relocated files that every channel has read past (the saved state no longer
    /// names them).
    fn drop_read_relocations(&self, lows: &HashMap<String, Needs>) {
        if self.relocating.get() {
            return;
        }
        for (name, topic) in self.topics.borrow_mut().iter_mut() {
            let done = match (topic.relocated(), lows.get(name)) {
                (Some(r), Some(n)) => n.low > r.upto,
                _ => false,
            };
            if !done {
                continue;
            }
            if let Some(r) = topic.take_relocated() {
                tracing::info!(
                    "TOPIC({name}): relocated messages all read, deleting {}",
                    r.name
                );
                let _ = std::fs::remove_file(self.log.dir().join(&r.name));
            }
        }
    }

    /// Deletes every segment (but the newest) that no topic needs any more: all its messages are
    /// done for every channel, relocated, or of deleted topics. A pinned segment does not keep
    /// later ones alive (reads skip the gaps).
    async fn reclaim(&self, lows: &HashMap<String, Needs>) {
        let spans = self.log.segment_spans();
        let newest = spans.last().map(|s| s.0);
        for (base, _, topics) in spans {
            if Some(base) == newest {
                break;
            }
            let needed = topics
                .iter()
                .any(|(name, span)| lows.get(name).is_some_and(|n| n.needs(span)));
            if !needed {
                self.log.remove_segment(base).await;
            }
        }
        if let Some(first) = self.log.first_base() {
            for topic in self.topics.borrow_mut().values_mut() {
                topic.trim_index(first);
            }
        }
    }

    /// Notes that the saved state is out of date; returns the version to wait for.
    pub fn state_changed(&self) -> u64 {
        let v = self.state_version.get() + 1;
        self.state_version.set(v);
        self.state_wake.notify();
        v
    }

    /// Records a storage problem: logged, shown by `/stats` and `/ping` (500) until restart.
    pub fn report_problem(&self, why: String) {
        tracing::error!("STORAGE: {why}");
        if let Ok(mut problems) = self.control.problems.lock() {
            problems.push(format!("shard {}: {why}", self.id));
        }
    }

    /// The state saver: after every change, and every `--sync-timeout` (the window of FIN state
    /// a crash can lose), until the broker stops.
    pub async fn run_saver(self: Rc<Self>) {
        let interval = self.opts.sync_timeout.max(Duration::from_millis(100));
        let mut reported = false;
        loop {
            future::or(self.state_wake.wait(), glommio::timer::sleep(interval)).await;
            self.save_state().await;
            if !self.relocating.get() {
                let job = self.relocation_candidate(&self.last_needs.borrow());
                if let Some(job) = job {
                    self.relocating.set(true);
                    glommio::spawn_local(self.clone().relocate(job)).detach();
                }
            }
            if let (false, Some(why)) = (reported, self.log.poisoned()) {
                self.report_problem(why);
                reported = true;
            }
        }
    }

    /// The refiller: reads backlogs back from the log into channels with room.
    pub async fn run_refiller(self: Rc<Self>) {
        loop {
            let jobs = self.refill_jobs();
            if jobs.is_empty() {
                self.refill_wake.wait().await;
                continue;
            }
            let mut progressed = false;
            for job in jobs {
                progressed |= self.refill(job).await;
            }
            if !progressed {
                // Wait for more of the log to be written, or for room.
                let written = self.log.written.get();
                let more = async {
                    let _ = self.log.written.wait_for(written + 1).await;
                };
                let tick = glommio::timer::sleep(Duration::from_millis(20));
                future::or(future::or(more, self.refill_wake.wait()), tick).await;
            }
        }
    }

    fn refill_jobs(&self) -> Vec<RefillJob> {
        let mem = self.opts.mem_queue_size;
        let topics = self.topics.borrow();
        let mut jobs = Vec::new();
        for topic in topics.values().filter(|t| t.is_durable() && !t.is_paused()) {
            for slot in topic.slots() {
                let Some(backlog) = &slot.backlog else {
                    continue;
                };
                let ready = slot.channel.ready_len();
                let room = if mem > 0 {
                    if ready > mem / 2 {
                        0
                    } else {
                        mem - ready
                    }
                } else {
                    (slot.channel.consumer_room() as usize).saturating_sub(ready)
                };
                if room == 0 {
                    continue;
                }
                let relocated = topic
                    .relocated()
                    .filter(|r| backlog.from <= r.upto)
                    .map(|r| (r.file.clone(), r.len, r.upto, r.index_lookup(backlog.from)));
                jobs.push(RefillJob {
                    topic: topic.name().to_owned(),
                    channel: slot.channel.name().to_owned(),
                    incarnation: topic.incarnation(),
                    from: backlog.from,
                    pos: backlog.pos,
                    room: room.min(REFILL_BATCH_MAX),
                    relocated,
                });
            }
        }
        jobs
    }

    /// Runs one refill; returns whether anything moved.
    async fn refill(&self, job: RefillJob) -> bool {
        let want = Wanted {
            topic: &job.topic,
            incarnation: job.incarnation,
            from: job.from,
            upto: job.relocated.as_ref().map_or(u64::MAX, |r| r.2),
            max: job.room,
        };
        let read = match &job.relocated {
            Some((file, len, _, pos)) => read_topic(&Source::File(file, *len), &want, *pos).await,
            None => read_topic(&Source::Log(&self.log), &want, job.pos).await,
        };
        let mut out = match read {
            Ok(out) => out,
            Err(e) => {
                self.report_problem_once(format!("cannot read topic {} back: {e}", job.topic));
                return false;
            }
        };
        tracing::debug!(
            "REFILL({}/{}): from {} pos {} room {}: read {} messages, next {:?}",
            job.topic,
            job.channel,
            job.from,
            job.pos,
            job.room,
            out.messages.len(),
            out.next
        );
        let now = Instant::now();
        let mut topics = self.topics.borrow_mut();
        let Some(topic) = topics.get_mut(&job.topic) else {
            return false;
        };
        if topic.incarnation() != job.incarnation {
            return false;
        }
        if let Some((_, _, upto, _)) = &job.relocated {
            // Positions in the relocated file mean nothing in the log: continue in the log at
            // the first id after the relocation once the file is read through.
            out.next = if out.exhausted {
                (upto + 1, topic.index_lookup(upto + 1))
            } else {
                (out.next.0, job.pos)
            };
        }
        let moved = out.next != (job.from, job.pos) || !out.messages.is_empty();
        let now_wall = wall_ns(SystemTime::now());
        let handed = topic.apply_refill(
            now,
            now_wall,
            &job.channel,
            job.from,
            job.room,
            out.messages,
            out.next,
        );
        drop(topics);
        if handed > 0 {
            self.mark_dirty(&job.topic);
            self.deliver(now);
        }
        moved
    }

    /// Reports a problem unless the same one was reported already.
    pub fn report_problem_once(&self, why: String) {
        let known = self
            .control
            .problems
            .lock()
            .map(|p| p.iter().any(|w| w.ends_with(&why)))
            .unwrap_or(true);
        if !known {
            self.report_problem(why);
        }
    }
}

/// What a topic still needs of the shard log.
#[derive(Debug, Clone, Copy)]
pub struct Needs {
    /// Its incarnation.
    pub incarnation: u64,
    /// The lowest message id any of its channels (or the topic itself) still needs.
    pub low: u64,
    /// Ids up to this one are in its relocated file (0: none).
    pub relocated_upto: u64,
}

impl Needs {
    /// Whether the topic needs its records in a segment with this span.
    pub fn needs(&self, span: &TopicSpan) -> bool {
        self.incarnation == span.incarnation
            && self.low <= span.max_id
            && span.max_id > self.relocated_upto
    }
}

struct RefillJob {
    topic: String,
    channel: String,
    incarnation: u64,
    from: u64,
    pos: u64,
    room: usize,
    /// The relocated file when `from` is in it: file, length, last id, position to read from.
    relocated: Option<(Rc<glommio::io::BufferedFile>, u64, u64, u64)>,
}

/// What a saved channel still has to read after a restart.
fn restored_backlog(topic: &Topic, saved: &ChannelState) -> Option<Backlog> {
    let mut restore = HashMap::new();
    for &(id, attempts) in &saved.requeued {
        restore.insert(id, Restore::Returned { attempts });
    }
    for &(id, due_ns, attempts) in &saved.deferred {
        restore.insert(id, Restore::Deferred { due_ns, attempts });
    }
    let from = restore
        .keys()
        .copied()
        .min()
        .unwrap_or(u64::MAX)
        .min(saved.fresh_from);
    if from > topic.head() && restore.is_empty() {
        return None;
    }
    Some(Backlog {
        from,
        pos: topic.index_lookup(from),
        fresh_from: saved.fresh_from,
        restore,
        pending: 0,
    })
}

/// One topic's saved state, and the lowest message id any of its channels still needs.
fn snapshot_topic(topic: &Topic, now: Instant, now_wall: i64) -> (TopicState, u64) {
    let head = topic.head();
    let mut low = topic.retain_from().unwrap_or(head.saturating_add(1));
    let mut channels = Vec::new();
    let durable = topic
        .slots()
        .iter()
        .filter(|s| !s.channel.options().ephemeral);
    for slot in durable {
        let (saved, channel_low) = snapshot_channel(slot, head, now, now_wall);
        low = low.min(channel_low);
        channels.push(saved);
    }
    // A relocated file every channel has read past is not needed any more.
    let relocated = topic.relocated().filter(|r| r.upto >= low);
    let saved = TopicState {
        name: topic.name().to_owned(),
        incarnation: topic.incarnation(),
        paused: topic.is_paused(),
        head,
        retain_from: topic.retain_from().unwrap_or(0),
        channels,
        relocated: relocated.map(|r| r.name.clone()).unwrap_or_default(),
        relocated_upto: relocated.map_or(0, |r| r.upto),
    };
    (saved, low)
}

/// One channel's saved state, and the lowest message id it still needs.
fn snapshot_channel(
    slot: &crate::topic::Slot,
    head: u64,
    now: Instant,
    now_wall: i64,
) -> (ChannelState, u64) {
    let channel = &slot.channel;
    let fresh_from = match (channel.fresh_front(), &slot.backlog) {
        (Some(id), _) => id.to_u64().unwrap_or(0),
        (None, Some(b)) => b.from.max(b.fresh_from),
        (None, None) => head.saturating_add(1),
    };
    let mut saved = ChannelState {
        name: channel.name().to_owned(),
        paused: channel.is_paused(),
        fresh_from,
        ..ChannelState::default()
    };
    for s in channel.scattered() {
        let id = s.id.to_u64().unwrap_or(0);
        match s.due {
            Some(due) => {
                let ahead = due.saturating_duration_since(now).as_nanos() as i64;
                let due_ns = now_wall.saturating_add(ahead);
                saved.deferred.push((id, due_ns, s.attempts));
            }
            None => saved.requeued.push((id, s.attempts)),
        }
    }
    for (&id, r) in slot.backlog.iter().flat_map(|b| b.restore.iter()) {
        match *r {
            Restore::Returned { attempts } => saved.requeued.push((id, attempts)),
            Restore::Deferred { due_ns, attempts } => saved.deferred.push((id, due_ns, attempts)),
        }
    }
    saved.requeued.sort_unstable();
    saved.deferred.sort_unstable();
    let scattered_low = saved
        .requeued
        .iter()
        .map(|r| r.0)
        .chain(saved.deferred.iter().map(|d| d.0))
        .min()
        .unwrap_or(u64::MAX);
    (saved, fresh_from.min(scattered_low))
}
