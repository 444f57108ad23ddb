//! A shard: one pinned core's topics, channels, subscribed connections and timers.
//!
//! The shard owns every topic whose name hashes to it ([`shard_of`]) and is the only code that
//! touches them; connections on the shard call it synchronously between awaits, so no lock is
//! ever taken. Work for a topic owned elsewhere travels over the [`mesh`] in batches.

pub mod admin;
mod compaction;
pub mod mesh;
pub mod run;
mod storage;
mod timer;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use sluice_proto::{IdGenerator, Message};

use crate::channel::{ChannelOptions, ConsumerId, E2eConfig};
use crate::conn::shared::ConnShared;
use crate::options::Options;
use crate::runtime::Control;
use crate::signal::Signal;
use crate::storage::log::{SegmentLog, TopicSpan};
use crate::storage::meta::ShardState;
use crate::storage::record;
use crate::storage::watermark::Watermark;
use crate::topic::Topic;

pub use mesh::{Mesh, PublishError};
pub use storage::open as open_storage;
pub use timer::Timer;

/// The most deliveries one channel makes in one call, so one busy channel cannot starve the
/// others on the shard for long.
pub const DELIVERY_BATCH_MAX: usize = 4096;

/// The shard that owns `topic`: a stable FNV-1a hash of the name, modulo the shard count.
///
/// Stable across restarts and builds, since the segment log stores topics by shard.
pub fn shard_of(topic: &str, shards: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in topic.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % shards.max(1) as u64) as usize
}

/// Nanoseconds since the Unix epoch, as message timestamps carry.
pub fn wall_ns(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// One shard's state.
pub struct Shard {
    /// This shard's index.
    pub id: usize,
    /// How many shards run.
    pub count: usize,
    /// The broker's options.
    pub opts: Arc<Options>,
    /// Topics owned here, by name.
    pub topics: RefCell<HashMap<String, Topic>>,
    /// Subscribed connections on this shard, by consumer id (= client id).
    pub consumers: RefCell<HashMap<ConsumerId, Rc<ConnShared>>>,
    /// Every connection on this shard, for `/stats` (producers too).
    pub clients: RefCell<HashMap<u64, Rc<ConnShared>>>,
    /// Topics with something to deliver since the last delivery round.
    dirty: RefCell<Vec<String>>,
    ids: RefCell<IdGenerator>,
    next_client: Cell<u64>,
    last_incarnation: Cell<u64>,
    /// The cross-shard queues.
    pub mesh: Mesh,
    /// The in-flight and deferred timer.
    pub timer: Timer,
    /// When the broker started.
    pub started_at: SystemTime,
    /// Broker-wide state shared by every shard (stop flag, bound addresses, runtime config).
    pub control: Arc<Control>,
    /// The segment log of this shard's durable topics.
    pub log: Rc<SegmentLog>,
    /// Wakes the refiller (a channel with a backlog has room).
    refill_wake: Signal,
    /// Bumped by every change the saved state must show.
    pub(crate) state_version: Cell<u64>,
    /// The state version last saved.
    pub state_saved: Watermark,
    state_wake: Signal,
    last_saved: RefCell<Option<ShardState>>,
    /// What each topic needed of the log at the last save (for compaction).
    last_needs: RefCell<HashMap<String, storage::Needs>>,
    /// A relocation is running.
    relocating: Cell<bool>,
    /// Messages sent to other shards' topics (metrics).
    pub forwarded_out: Cell<u64>,
    /// Messages received from other shards for topics owned here (metrics).
    pub forwarded_in: Cell<u64>,
}

impl Shard {
    /// A shard with no topics, over its (opened) log.
    pub fn new(
        id: usize,
        count: usize,
        opts: Arc<Options>,
        mesh: Mesh,
        control: Arc<Control>,
        log: Rc<SegmentLog>,
    ) -> Shard {
        Shard {
            id,
            count,
            ids: RefCell::new(IdGenerator::with_stride(
                opts.node_id,
                id as u64,
                count as u64,
            )),
            opts,
            topics: RefCell::new(HashMap::new()),
            consumers: RefCell::new(HashMap::new()),
            clients: RefCell::new(HashMap::new()),
            dirty: RefCell::new(Vec::new()),
            next_client: Cell::new(1),
            last_incarnation: Cell::new(0),
            mesh,
            timer: Timer::default(),
            started_at: control.started_at,
            control,
            log,
            refill_wake: Signal::default(),
            state_version: Cell::new(0),
            state_saved: Watermark::new(0),
            state_wake: Signal::default(),
            last_saved: RefCell::new(None),
            last_needs: RefCell::new(HashMap::new()),
            relocating: Cell::new(false),
            forwarded_out: Cell::new(0),
            forwarded_in: Cell::new(0),
        }
    }

    /// A client id unique across shards: the shard index in the low bits.
    pub fn new_client_id(&self) -> u64 {
        let n = self.next_client.get();
        self.next_client.set(n + 1);
        n * self.count as u64 + self.id as u64
    }

    /// Whether this shard owns `topic`.
    pub fn owns(&self, topic: &str) -> bool {
        shard_of(topic, self.count) == self.id
    }

    /// The options every channel of this broker starts with.
    pub fn channel_options(&self) -> ChannelOptions {
        let e2e = if self.opts.e2e_percentiles.is_empty() {
            None
        } else {
            Some(E2eConfig {
                percentiles: self.opts.e2e_percentiles.clone(),
                window: self.opts.e2e_window,
            })
        };
        ChannelOptions {
            mem_queue_size: self.opts.mem_queue_size,
            max_msg_timeout: self.opts.limits.max_msg_timeout,
            max_channel_consumers: self.opts.max_channel_consumers,
            ephemeral: false,
            e2e,
        }
    }

    /// An empty topic of this shard.
    pub fn new_topic(&self, name: &str, incarnation: u64) -> Topic {
        Topic::new(
            name,
            incarnation,
            self.opts.mem_queue_size,
            self.channel_options(),
        )
    }

    /// A fresh incarnation number: larger than any issued before on this shard.
    fn next_incarnation(&self) -> u64 {
        let now = u64::try_from(wall_ns(SystemTime::now())).unwrap_or(0);
        let next = now.max(self.last_incarnation.get() + 1);
        self.last_incarnation.set(next);
        next
    }

    /// Runs `f` on the topic named `name`, creating it first if needed.
    pub fn with_topic<R>(&self, name: &str, f: impl FnOnce(&mut Topic) -> R) -> R {
        let mut topics = self.topics.borrow_mut();
        if !topics.contains_key(name) {
            tracing::info!("TOPIC({name}): created");
            let topic = self.new_topic(name, self.next_incarnation());
            topics.insert(name.to_owned(), topic);
            self.control.events.topic_created(name);
            self.state_changed();
        }
        match topics.get_mut(name) {
            Some(topic) => f(topic),
            None => unreachable!("topic {name} was just inserted"),
        }
    }

    /// Runs `f` on channel `channel` of `topic`, creating both if needed; returns the state
    /// version to wait for when the channel was created (0 when it existed).
    pub fn with_channel<R>(
        &self,
        topic: &str,
        channel: &str,
        f: impl FnOnce(&mut crate::channel::Channel) -> R,
    ) -> (R, u64) {
        let now = Instant::now();
        let mut created = false;
        let result = self.with_topic(topic, |t| {
            created = t.channel(channel).is_none();
            f(t.channel_or_create(now, channel))
        });
        let version = if created {
            tracing::info!("TOPIC({topic}): new channel({channel})");
            self.control.events.channel_created(topic, channel);
            self.state_changed()
        } else {
            0
        };
        (result, version)
    }

    /// Publishes batches to topics owned here; one result per batch, in order: the log position
    /// to wait for before answering `OK` (0 for an ephemeral topic), or why it failed.
    pub fn publish_local(
        &self,
        items: impl IntoIterator<Item = (String, Vec<Bytes>, Option<Duration>)>,
    ) -> Vec<Result<u64, PublishError>> {
        let now = Instant::now();
        let now_wall = wall_ns(SystemTime::now());
        let mut results = Vec::new();
        for (topic, bodies, defer) in items {
            let messages = self.make_messages(now_wall, bodies);
            let result = self.with_topic(&topic, |t| self.put(t, now, now_wall, messages, defer));
            results.push(result);
            self.mark_dirty(&topic);
        }
        self.deliver(now);
        results
    }

    /// Appends a batch to the log (durable topics) and hands it to the topic.
    fn put(
        &self,
        topic: &mut Topic,
        now: Instant,
        now_wall: i64,
        messages: Vec<Message>,
        defer: Option<Duration>,
    ) -> Result<u64, PublishError> {
        if !topic.is_durable() {
            topic.put_batch(now, messages, defer, None);
            return Ok(0);
        }
        let Some(last) = messages.last() else {
            return Ok(0);
        };
        let span = TopicSpan {
            incarnation: topic.incarnation(),
            max_id: crate::topic::key(last),
            bytes: 0,
        };
        let due_ns = defer.map_or(0, |d| now_wall.saturating_add(d.as_nanos() as i64));
        let record_pos = self.log.appended();
        let (name, incarnation) = (topic.name(), topic.incarnation());
        let end = self
            .log
            .append(name, span, messages.len() as u64, |buf| {
                record::put_batch(buf, name, incarnation, messages.iter().map(|m| (m, due_ns)));
            })
            .map_err(|_| PublishError::Storage)?;
        topic.put_batch(now, messages, defer, Some(record_pos));
        Ok(end)
    }

    /// Waits until a publish answered by [`Shard::publish_local`] may be acknowledged.
    ///
    /// # Errors
    /// [`PublishError::Storage`] when the log failed first.
    pub async fn wait_durable(&self, ticket: u64) -> Result<(), PublishError> {
        if ticket == 0 {
            return Ok(());
        }
        self.log
            .wait_durable(ticket)
            .await
            .map_err(|_| PublishError::Storage)
    }

    /// Publishes and waits until every batch may be acknowledged.
    pub async fn publish_durable(
        &self,
        items: impl IntoIterator<Item = (String, Vec<Bytes>, Option<Duration>)>,
    ) -> Vec<Result<(), PublishError>> {
        let results = self.publish_local(items);
        let ticket = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .copied()
            .max();
        let durable = match ticket {
            Some(t) => self.wait_durable(t).await,
            None => Ok(()),
        };
        results
            .into_iter()
            .map(|r| r.and_then(|t| if t == 0 { Ok(()) } else { durable }))
            .collect()
    }

    fn make_messages(&self, now_wall: i64, bodies: Vec<Bytes>) -> Vec<Message> {
        let mut ids = self.ids.borrow_mut();
        bodies
            .into_iter()
            .map(|body| Message {
                id: ids.next_id(now_wall),
                timestamp: now_wall,
                attempts: 0,
                body,
            })
            .collect()
    }

    /// Notes that `topic` may have something to deliver.
    pub fn mark_dirty(&self, topic: &str) {
        let mut dirty = self.dirty.borrow_mut();
        if !dirty.iter().any(|t| t == topic) {
            dirty.push(topic.to_owned());
        }
    }

    /// Delivers whatever the dirty topics' channels can hand to their consumers, re-arms the
    /// timer if a deadline moved earlier, and wakes the refiller for channels with a backlog.
    pub fn deliver(&self, now: Instant) {
        let dirty = std::mem::take(&mut *self.dirty.borrow_mut());
        if dirty.is_empty() {
            return;
        }
        let mut topics = self.topics.borrow_mut();
        let consumers = self.consumers.borrow();
        let mut sink = |consumer: ConsumerId, msg: &Message| {
            if let Some(conn) = consumers.get(&consumer) {
                conn.send_message(msg);
            }
        };
        let mut refill = false;
        for name in &dirty {
            let Some(topic) = topics.get_mut(name) else {
                continue;
            };
            for slot in topic.slots_mut() {
                while slot.channel.wants_delivery() {
                    if slot
                        .channel
                        .poll_deliveries(now, DELIVERY_BATCH_MAX, &mut sink)
                        == 0
                    {
                        break;
                    }
                }
                refill |= slot.backlog.is_some();
            }
            self.timer.note(topic.next_deadline());
        }
        if refill {
            self.refill_wake.notify();
        }
    }

    /// Handles every due in-flight timeout and deferred message, then delivers.
    pub fn poll_timeouts(&self, now: Instant) {
        let mut due_topics = Vec::new();
        for (name, topic) in self.topics.borrow_mut().iter_mut() {
            let mut touched = false;
            for channel in topic.channels_mut() {
                if channel.next_deadline().is_some_and(|d| d <= now) {
                    channel.poll_timeouts(now);
                    touched = true;
                }
            }
            if touched {
                due_topics.push(name.clone());
            }
        }
        for name in &due_topics {
            self.mark_dirty(name);
        }
        self.deliver(now);
    }

    /// The earliest deadline of any channel on this shard.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.topics
            .borrow()
            .values()
            .filter_map(Topic::next_deadline)
            .min()
    }

    /// Registers a connection for `/stats`.
    pub fn add_client(&self, conn: &Rc<ConnShared>) {
        self.clients
            .borrow_mut()
            .insert(conn.client_id, conn.clone());
    }

    /// Forgets a connection: leaves its channel (`Channel::remove_consumer` says what becomes of
    /// its in-flight messages) and removes an ephemeral channel or topic left without users.
    pub fn remove_client(&self, conn: &ConnShared) {
        self.clients.borrow_mut().remove(&conn.client_id);
        let consumer = ConsumerId(conn.client_id);
        self.consumers.borrow_mut().remove(&consumer);
        let Some((topic_name, channel_name)) = conn.subscription.borrow_mut().take() else {
            return;
        };
        let now = Instant::now();
        let mut topics = self.topics.borrow_mut();
        let Some(topic) = topics.get_mut(&topic_name) else {
            return;
        };
        if let Some(channel) = topic.channel_mut(&channel_name) {
            channel.remove_consumer(consumer);
            if channel.options().ephemeral && channel.consumer_count() == 0 {
                tracing::info!("CHANNEL({channel_name}): deleting (ephemeral, no consumers)");
                topic.delete_channel(&channel_name);
                self.control
                    .events
                    .channel_deleted(&topic_name, &channel_name);
            }
        }
        if topic.is_ephemeral() && topic.has_no_channel() {
            tracing::info!("TOPIC({topic_name}): deleting (ephemeral, no channels)");
            topics.remove(&topic_name);
            self.control.events.topic_deleted(&topic_name);
        } else {
            drop(topics);
            self.mark_dirty(&topic_name);
            self.deliver(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_of_is_stable_and_spreads() {
        assert_eq!(shard_of("orders", 1), 0);
        assert_eq!(shard_of("orders", 4), shard_of("orders", 4));
        let mut seen = [0usize; 4];
        for i in 0..1000 {
            seen[shard_of(&format!("topic-{i}"), 4)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 150), "{seen:?}");
    }
}
