//! A topic: its channels, the messages waiting for a first channel or an unpause, its counters.
//!
//! Mirrors upstream `nsqd/topic.go`, without the goroutine: `put_batch` fans a batch out to every
//! channel synchronously (a message body is shared, never copied per channel). Sync and IO-free;
//! time is passed in. The shard owns every topic it holds outright.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use sluice_proto::Message;

use crate::channel::{Channel, ChannelOptions};

/// Why a topic refused a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicError {
    /// A channel (or the topic's own queue) has no room for the batch: the in-memory stage
    /// refuses rather than drops (see README, "Compatibility with NSQ").
    Full,
}

/// A message waiting in the topic's own queue, with its absolute due time when deferred.
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
    channels: Vec<Channel>,
    /// Messages kept while the topic has no channel or is paused (upstream's topic memory queue).
    waiting: VecDeque<Waiting>,
    mem_queue_size: usize,
    channel_template: ChannelOptions,
    message_count: u64,
    message_bytes: u64,
}

impl Topic {
    /// A new topic; `channel_template` is applied to every channel it creates.
    pub fn new(name: &str, mem_queue_size: usize, channel_template: ChannelOptions) -> Topic {
        Topic {
            name: name.to_owned(),
            ephemeral: sluice_proto::names::is_ephemeral(name),
            paused: false,
            channels: Vec::new(),
            waiting: VecDeque::new(),
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

    /// Whether the name ends in `#ephemeral`.
    pub fn is_ephemeral(&self) -> bool {
        self.ephemeral
    }

    /// Whether delivery to channels is paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Messages accepted since the topic was created.
    pub fn message_count(&self) -> u64 {
        self.message_count
    }

    /// Body bytes accepted since the topic was created.
    pub fn message_bytes(&self) -> u64 {
        self.message_bytes
    }

    /// Messages waiting in the topic itself (no channel yet, or paused).
    pub fn depth(&self) -> u64 {
        self.waiting.len() as u64
    }

    /// Whether `n` more messages fit everywhere they must go.
    pub fn has_room(&self, n: usize) -> bool {
        if self.ephemeral {
            return true;
        }
        if self.channels.is_empty() || self.paused {
            return self.waiting.len().saturating_add(n) <= self.mem_queue_size;
        }
        self.channels
            .iter()
            .all(|c| c.options().ephemeral || c.has_room(n))
    }

    /// Accepts a batch atomically: all messages or none.
    ///
    /// `defer` delays delivery (DPUB). Messages go to every channel, or wait in the topic when it
    /// has no channel or is paused.
    ///
    /// # Errors
    /// [`TopicError::Full`] when any non-ephemeral destination lacks room for the whole batch.
    pub fn put_batch(
        &mut self,
        now: Instant,
        messages: Vec<Message>,
        defer: Option<Duration>,
    ) -> Result<(), TopicError> {
        if !self.has_room(messages.len()) {
            return Err(TopicError::Full);
        }
        for msg in messages {
            self.message_count += 1;
            self.message_bytes += msg.body.len() as u64;
            self.route(now, msg, defer.map(|d| now + d));
        }
        Ok(())
    }

    fn route(&mut self, now: Instant, msg: Message, due: Option<Instant>) {
        if self.channels.is_empty() || self.paused {
            if self.waiting.len() < self.mem_queue_size || !self.ephemeral {
                self.waiting.push_back(Waiting { msg, due });
            }
            return;
        }
        for channel in &mut self.channels {
            // A clone shares the body (`Bytes` is reference counted): nothing is copied.
            let m = msg.clone();
            match due {
                Some(at) if at > now => channel.handle_put_deferred(now, m, at - now),
                _ => channel.handle_put(m),
            }
        }
    }

    /// Moves messages waiting in the topic into its channels (after a first channel appears or an
    /// unpause).
    fn flush_waiting(&mut self, now: Instant) {
        if self.channels.is_empty() || self.paused {
            return;
        }
        while let Some(w) = self.waiting.pop_front() {
            self.route(now, w.msg, w.due);
        }
    }

    /// The channel named `name`, created on first use.
    pub fn channel_or_create(&mut self, now: Instant, name: &str) -> &mut Channel {
        let index = match self.channels.iter().position(|c| c.name() == name) {
            Some(i) => i,
            None => {
                let mut opts = self.channel_template.clone();
                opts.ephemeral = sluice_proto::names::is_ephemeral(name);
                self.channels.push(Channel::new(name, opts));
                self.flush_waiting(now);
                self.channels.len() - 1
            }
        };
        // The index was just found or pushed.
        &mut self.channels[index]
    }

    /// The channel named `name`, if it exists.
    pub fn channel(&self, name: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.name() == name)
    }

    /// The channel named `name`, if it exists, mutably.
    pub fn channel_mut(&mut self, name: &str) -> Option<&mut Channel> {
        self.channels.iter_mut().find(|c| c.name() == name)
    }

    /// Every channel, in creation order.
    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    /// Every channel, mutably.
    pub fn channels_mut(&mut self) -> &mut [Channel] {
        &mut self.channels
    }

    /// Removes a channel; returns whether it existed.
    pub fn delete_channel(&mut self, name: &str) -> bool {
        let before = self.channels.len();
        self.channels.retain(|c| c.name() != name);
        before != self.channels.len()
    }

    /// Stops delivery to channels; publishing goes on into the topic's queue.
    pub fn pause(&mut self) {
        self.paused = true;
    }

    /// Resumes delivery, handing the topic's queue to its channels.
    pub fn unpause(&mut self, now: Instant) {
        self.paused = false;
        self.flush_waiting(now);
    }

    /// Drops the messages waiting in the topic itself (upstream `Topic.Empty`).
    pub fn empty(&mut self) {
        self.waiting.clear();
    }

    /// The earliest deadline among its channels (in-flight timeouts, deferred due times).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.channels
            .iter()
            .filter_map(Channel::next_deadline)
            .min()
    }
}
