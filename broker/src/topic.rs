//! A topic: its channels, what each channel still has to read from the log, its counters.
//!
//! Mirrors upstream `nsqd/topic.go` without the goroutine: a batch is fanned out to every
//! channel synchronously (bodies are shared, never copied per channel). Sync and IO-free; time
//! is passed in; the shard does the reading and writing.
//!
//! A durable topic's messages are in the shard's segment log before they reach a channel. A
//! channel holds up to `--mem-queue-size` of them in memory; past that it has a *backlog*: it
//! stops taking messages from publishes and reads them back from the log (from `Backlog::from`,
//! scanning from `Backlog::pos`) as its consumers make room, until it has caught up with the
//! topic's head. An ephemeral topic never touches the log: a full channel drops, as upstream.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use sluice_proto::Message;

use crate::channel::{Channel, ChannelOptions};
use crate::storage::record::StoredMessage;
use crate::storage::relocated::Relocated;

/// A new index entry at most every this many bytes of the log.
pub const INDEX_EVERY_BYTES: u64 = 256 * 1024;

/// How a message read back after a restart is restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restore {
    /// It was in flight or requeued: ready again, attempts kept.
    Returned {
        /// Deliveries so far.
        attempts: u16,
    },
    /// It was deferred: due at this wall-clock time, attempts kept.
    Deferred {
        /// Due time, ns since the epoch.
        due_ns: i64,
        /// Deliveries so far.
        attempts: u16,
    },
}

/// What a channel still has to read from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlog {
    /// The first message id not yet handed to the channel.
    pub from: u64,
    /// A log position at or before the record holding `from`.
    pub pos: u64,
    /// Fresh messages start here (after a restart `from` may be lower, for `restore`).
    pub fresh_from: u64,
    /// Messages below `fresh_from` to restore as they are read (after a restart).
    pub restore: HashMap<u64, Restore>,
    /// Messages still in the log for this channel (for `backend_depth`).
    pub pending: u64,
}

/// A channel and its backlog.
#[derive(Debug)]
pub struct Slot {
    /// The channel.
    pub channel: Channel,
    /// What it still has to read from the log, if anything.
    pub backlog: Option<Backlog>,
}

/// A message waiting in an ephemeral topic for a first channel or an unpause.
#[derive(Debug, Clone)]
struct Waiting {
    msg: Message,
    due: Option<Instant>,
}

/// One topic and its channels.
#[derive(Debug)]
pub struct Topic {
    name: String,
    ephemeral: bool,
    paused: bool,
    incarnation: u64,
    slots: Vec<Slot>,
    /// Ephemeral topics: messages kept in memory for a first channel or an unpause.
    waiting: VecDeque<Waiting>,
    /// Durable topics with no channel keep their messages in the log from this id.
    retain_from: Option<u64>,
    /// How many messages are kept that way.
    retained: u64,
    /// The newest message id published (0: none).
    head: u64,
    /// Sparse index of the topic's records: (first message id, log position), ascending.
    index: VecDeque<(u64, u64)>,
    /// The topic's relocated file, if it was compacted out of the shard log.
    relocated: Option<Relocated>,
    mem_queue_size: usize,
    channel_template: ChannelOptions,
    message_count: u64,
    message_bytes: u64,
}

impl Topic {
    /// A new topic; `channel_template` is applied to every channel it creates.
    pub fn new(
        name: &str,
        incarnation: u64,
        mem_queue_size: usize,
        channel_template: ChannelOptions,
    ) -> Topic {
        Topic {
            name: name.to_owned(),
            ephemeral: sluice_proto::names::is_ephemeral(name),
            paused: false,
            incarnation,
            slots: Vec::new(),
            waiting: VecDeque::new(),
            retain_from: None,
            retained: 0,
            head: 0,
            index: VecDeque::new(),
            relocated: None,
            mem_queue_size,
            channel_template,
            message_count: 0,
            message_bytes: 0,
        }
    }

    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether its messages are written to the log (not `#ephemeral`).
    pub fn is_durable(&self) -> bool {
        !self.ephemeral
    }

    /// Whether the name ends in `#ephemeral`.
    pub fn is_ephemeral(&self) -> bool {
        self.ephemeral
    }

    /// Which life of the name this is.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Whether delivery to channels is paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The newest message id published (0: none).
    pub fn head(&self) -> u64 {
        self.head
    }

    /// Messages accepted since the topic was created (or the broker started).
    pub fn message_count(&self) -> u64 {
        self.message_count
    }

    /// Body bytes accepted since the topic was created (or the broker started).
    pub fn message_bytes(&self) -> u64 {
        self.message_bytes
    }

    /// Messages the topic itself keeps: in memory (ephemeral) or in the log for a first channel.
    pub fn depth(&self) -> u64 {
        self.waiting.len() as u64 + self.retained
    }

    /// Of those, the ones past `--mem-queue-size` (all are in the log; upstream would hold
    /// the first `--mem-queue-size` in memory, and this keeps `/stats` meaning the same).
    pub fn backend_depth(&self) -> u64 {
        self.retained.saturating_sub(self.mem_queue_size as u64)
    }

    /// Accepts a batch (already in the log at `record_pos` when durable) and hands it to the
    /// channels that have room; the others read it from the log later. `defer` delays delivery.
    pub fn put_batch(
        &mut self,
        now: Instant,
        messages: Vec<Message>,
        defer: Option<Duration>,
        record_pos: Option<u64>,
    ) {
        let (Some(first), Some(last)) = (messages.first(), messages.last()) else {
            return;
        };
        let (first_id, last_id) = (key(first), key(last));
        self.head = self.head.max(last_id);
        self.message_count += messages.len() as u64;
        self.message_bytes += messages.iter().map(|m| m.body.len() as u64).sum::<u64>();
        let due = defer.map(|d| now + d);
        match record_pos {
            Some(pos) => {
                self.note_record(first_id, pos);
                self.route_durable(now, messages, due, first_id, pos);
            }
            None => {
                for msg in messages {
                    self.route_ephemeral(now, msg, due);
                }
            }
        }
    }

    fn note_record(&mut self, first_id: u64, pos: u64) {
        let due = self
            .index
            .back()
            .is_none_or(|&(_, last)| pos.saturating_sub(last) >= INDEX_EVERY_BYTES);
        if due {
            self.index.push_back((first_id, pos));
        }
    }

    fn route_durable(
        &mut self,
        now: Instant,
        messages: Vec<Message>,
        due: Option<Instant>,
        first_id: u64,
        pos: u64,
    ) {
        if self.slots.is_empty() {
            self.retain_from.get_or_insert(first_id);
            self.retained += messages.len() as u64;
            return;
        }
        let paused = self.paused;
        for slot in &mut self.slots {
            if slot.channel.options().ephemeral {
                if !paused {
                    for msg in &messages {
                        put(&mut slot.channel, now, msg.clone(), due);
                    }
                }
                continue;
            }
            if paused || slot.backlog.is_some() {
                let backlog = slot
                    .backlog
                    .get_or_insert_with(|| backlog_at(first_id, pos));
                backlog.pending += messages.len() as u64;
                continue;
            }
            for (i, msg) in messages.iter().enumerate() {
                if !slot.channel.has_room(1) {
                    let mut backlog = backlog_at(key(msg), pos);
                    backlog.pending = (messages.len() - i) as u64;
                    slot.backlog = Some(backlog);
                    break;
                }
                put(&mut slot.channel, now, msg.clone(), due);
            }
        }
    }

    fn route_ephemeral(&mut self, now: Instant, msg: Message, due: Option<Instant>) {
        if self.slots.is_empty() || self.paused {
            if self.waiting.len() < self.mem_queue_size {
                self.waiting.push_back(Waiting { msg, due });
            }
            return;
        }
        for slot in &mut self.slots {
            put(&mut slot.channel, now, msg.clone(), due);
        }
    }

    /// Moves the messages an ephemeral topic kept into its channels.
    fn flush_waiting(&mut self, now: Instant) {
        if self.slots.is_empty() || self.paused {
            return;
        }
        while let Some(w) = self.waiting.pop_front() {
            self.route_ephemeral(now, w.msg, w.due);
        }
    }

    /// The channel named `name`, created on first use. The first channel of a durable topic
    /// takes the messages the topic kept (upstream: they go to the first channel).
    pub fn channel_or_create(&mut self, now: Instant, name: &str) -> &mut Channel {
        let index = match self.slots.iter().position(|s| s.channel.name() == name) {
            Some(i) => i,
            None => self.create_channel(now, name),
        };
        &mut self.slots[index].channel
    }

    fn create_channel(&mut self, now: Instant, name: &str) -> usize {
        let mut opts = self.channel_template.clone();
        opts.ephemeral = sluice_proto::names::is_ephemeral(name);
        let backlog = match self.retain_from {
            Some(from) if !opts.ephemeral => {
                self.retain_from = None;
                Some(backlog_at(from, self.index_lookup(from)))
            }
            _ => None,
        };
        let backlog = backlog.map(|mut b| {
            b.pending = std::mem::take(&mut self.retained);
            b
        });
        self.slots.push(Slot {
            channel: Channel::new(name, opts),
            backlog,
        });
        self.flush_waiting(now);
        self.slots.len() - 1
    }

    /// Adds a channel restored after a restart, with what it still has to read.
    pub fn restore_channel(&mut self, name: &str, paused: bool, backlog: Option<Backlog>) {
        let mut opts = self.channel_template.clone();
        opts.ephemeral = sluice_proto::names::is_ephemeral(name);
        let mut channel = Channel::new(name, opts);
        if paused {
            channel.pause();
        }
        self.slots.push(Slot { channel, backlog });
    }

    /// Restores the topic's own state after a restart.
    pub fn restore(
        &mut self,
        paused: bool,
        head: u64,
        retain_from: Option<u64>,
        index: Vec<(u64, u64)>,
    ) {
        self.paused = paused;
        self.head = head;
        self.retain_from = retain_from;
        self.index = index.into();
    }

    /// Sets how many messages the topic keeps in the log for a first channel (after a restart).
    pub fn set_retained(&mut self, count: u64) {
        self.retained = count;
    }

    /// The relocated file, if any.
    pub fn relocated(&self) -> Option<&Relocated> {
        self.relocated.as_ref()
    }

    /// Switches reads of ids up to `relocated.upto` to `relocated`; returns the previous one.
    pub fn set_relocated(&mut self, relocated: Relocated) -> Option<Relocated> {
        let upto = relocated.upto;
        // Shared-log index entries wholly below the relocation are useless now; keep the last.
        while self.index.len() > 1 && self.index.get(1).is_some_and(|&(first, _)| first <= upto) {
            self.index.pop_front();
        }
        self.relocated.replace(relocated)
    }

    /// Forgets the relocated file (every channel read past it).
    pub fn take_relocated(&mut self) -> Option<Relocated> {
        self.relocated.take()
    }

    /// A log position at or before the record holding message `id`.
    pub fn index_lookup(&self, id: u64) -> u64 {
        // Before the first entry: from the start of the log (reads skip reclaimed gaps).
        let at = self.index.partition_point(|&(first, _)| first <= id);
        at.checked_sub(1)
            .and_then(|i| self.index.get(i))
            .map_or(0, |&(_, pos)| pos)
    }

    /// Forgets index entries below `pos` (their segments were reclaimed), keeping one.
    pub fn trim_index(&mut self, pos: u64) {
        while self.index.len() > 1 && self.index.get(1).is_some_and(|&(_, p)| p <= pos) {
            self.index.pop_front();
        }
    }

    /// The channel named `name`, if it exists.
    pub fn channel(&self, name: &str) -> Option<&Channel> {
        self.slot(name).map(|s| &s.channel)
    }

    /// The channel named `name`, if it exists, mutably.
    pub fn channel_mut(&mut self, name: &str) -> Option<&mut Channel> {
        self.slot_mut(name).map(|s| &mut s.channel)
    }

    /// A channel with its backlog.
    pub fn slot(&self, name: &str) -> Option<&Slot> {
        self.slots.iter().find(|s| s.channel.name() == name)
    }

    /// A channel with its backlog, mutably.
    pub fn slot_mut(&mut self, name: &str) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|s| s.channel.name() == name)
    }

    /// Every channel with its backlog, in creation order.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// Every channel with its backlog, mutably.
    pub fn slots_mut(&mut self) -> &mut [Slot] {
        &mut self.slots
    }

    /// Every channel, in creation order.
    pub fn channels(&self) -> impl Iterator<Item = &Channel> {
        self.slots.iter().map(|s| &s.channel)
    }

    /// Every channel, mutably.
    pub fn channels_mut(&mut self) -> impl Iterator<Item = &mut Channel> {
        self.slots.iter_mut().map(|s| &mut s.channel)
    }

    /// Whether the topic has no channel.
    pub fn has_no_channel(&self) -> bool {
        self.slots.is_empty()
    }

    /// Removes a channel; returns whether it existed.
    pub fn delete_channel(&mut self, name: &str) -> bool {
        let before = self.slots.len();
        self.slots.retain(|s| s.channel.name() != name);
        before != self.slots.len()
    }

    /// Empties a channel: its memory and what it had left in the log (upstream `Channel.Empty`).
    pub fn empty_channel(&mut self, name: &str) -> bool {
        let Some(slot) = self.slot_mut(name) else {
            return false;
        };
        slot.channel.empty();
        slot.backlog = None;
        true
    }

    /// Stops delivery to channels; publishing goes on (durable channels read it back later).
    pub fn pause(&mut self) {
        self.paused = true;
    }

    /// Resumes delivery.
    pub fn unpause(&mut self, now: Instant) {
        self.paused = false;
        self.flush_waiting(now);
    }

    /// Drops the messages the topic itself keeps (upstream `Topic.Empty`).
    pub fn empty(&mut self) {
        self.waiting.clear();
        self.retain_from = None;
        self.retained = 0;
    }

    /// Durable messages kept for a first channel, from this id.
    pub fn retain_from(&self) -> Option<u64> {
        self.retain_from
    }

    /// The earliest deadline among its channels (in-flight timeouts, deferred due times).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.channels().filter_map(Channel::next_deadline).min()
    }

    /// Hands messages read from the log to the channel `name` (at most `room`), if its backlog
    /// still starts where the read began (`from`); `next` is where the read ended (the first id
    /// not handed over and a position at or before its record). Returns how many went in.
    #[allow(clippy::too_many_arguments)]
    pub fn apply_refill(
        &mut self,
        now: Instant,
        now_wall: i64,
        name: &str,
        from: u64,
        room: usize,
        messages: Vec<StoredMessage>,
        next: (u64, u64),
    ) -> usize {
        let head = self.head;
        let paused = self.paused;
        let Some(slot) = self.slots.iter_mut().find(|s| s.channel.name() == name) else {
            return 0;
        };
        let Some(backlog) = slot.backlog.as_mut() else {
            return 0;
        };
        if backlog.from != from || paused {
            return 0;
        }
        let mut handed = 0;
        let mut stopped_early = false;
        for stored in messages {
            let id = stored.key();
            if id < backlog.from {
                continue;
            }
            if handed >= room {
                // Continue at this message next time, scanning again from the old position.
                stopped_early = true;
                break;
            }
            handed += usize::from(take_read(&mut slot.channel, backlog, now, now_wall, stored));
            backlog.from = id + 1;
            backlog.pending = backlog.pending.saturating_sub(1);
        }
        if !stopped_early {
            backlog.from = backlog.from.max(next.0);
            backlog.pos = next.1;
        }
        if backlog.from > head && backlog.restore.is_empty() {
            slot.backlog = None;
        }
        handed
    }
}

/// Puts one message read from the log into a channel: restored, fresh, or skipped (done before
/// a restart). Returns whether it went in.
fn take_read(
    channel: &mut Channel,
    backlog: &mut Backlog,
    now: Instant,
    now_wall: i64,
    stored: StoredMessage,
) -> bool {
    let id = stored.key();
    let mut msg = stored.msg;
    match backlog.restore.remove(&id) {
        Some(Restore::Returned { attempts }) => {
            msg.attempts = attempts;
            channel.restore_returned(msg);
            true
        }
        Some(Restore::Deferred { due_ns, attempts }) => {
            msg.attempts = attempts;
            let delay = Duration::from_nanos(due_ns.saturating_sub(now_wall).max(0) as u64);
            channel.restore_deferred(now, msg, delay);
            true
        }
        None if id >= backlog.fresh_from => {
            let delay = (stored.due_ns > now_wall)
                .then(|| Duration::from_nanos((stored.due_ns - now_wall) as u64));
            match delay {
                Some(d) => channel.handle_put_deferred(now, msg, d),
                None => channel.handle_put(msg),
            }
            true
        }
        None => false,
    }
}

fn put(channel: &mut Channel, now: Instant, msg: Message, due: Option<Instant>) {
    match due {
        Some(at) if at > now => channel.handle_put_deferred(now, msg, at - now),
        _ => channel.handle_put(msg),
    }
}

fn backlog_at(from: u64, pos: u64) -> Backlog {
    Backlog {
        from,
        pos,
        fresh_from: from,
        restore: HashMap::new(),
        pending: 0,
    }
}

/// A message id as a number (its order in the topic).
pub fn key(msg: &Message) -> u64 {
    msg.id.to_u64().unwrap_or(0)
}
