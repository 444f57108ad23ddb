//! The registration thread's own copy of which topics and channels exist, built from
//! [`Event`]s, and the lookup commands each change means.
//!
//! Pure: no IO, no clock. The shards own the real topics; this mirror only remembers names, so
//! that a (re)connected lookupd can be told everything (upstream `nsqd/lookup.go`
//! `connectCallback` walks `topicMap` instead).

use std::collections::{BTreeMap, BTreeSet};

use sluice_proto::lookup::LookupCommand;
use sluice_proto::Name;

use super::Event;

/// Topic name -> its channel names.
#[derive(Debug, Default)]
pub struct Mirror {
    topics: BTreeMap<String, BTreeSet<String>>,
}

impl Mirror {
    /// An empty mirror.
    pub fn new() -> Mirror {
        Mirror::default()
    }

    /// Records `event` and returns the commands every connected lookupd must receive (none
    /// when the event changes nothing, e.g. a topic created twice).
    pub fn handle_event(&mut self, event: &Event) -> Vec<LookupCommand> {
        match event {
            Event::TopicCreated { topic, .. } => {
                if self.topics.contains_key(topic) {
                    return Vec::new();
                }
                self.topics.insert(topic.clone(), BTreeSet::new());
                vec![register(topic, None)]
            }
            Event::TopicDeleted { topic } => {
                let Some(channels) = self.topics.remove(topic) else {
                    return Vec::new();
                };
                // Channels first, then the topic, as upstream's topic.Delete notifies them.
                let mut commands: Vec<LookupCommand> = channels
                    .iter()
                    .map(|channel| unregister(topic, Some(channel)))
                    .collect();
                commands.push(unregister(topic, None));
                commands
            }
            Event::ChannelCreated { topic, channel } => {
                let mut commands = Vec::new();
                let channels = self.topics.entry(topic.clone()).or_insert_with(|| {
                    commands.push(register(topic, None));
                    BTreeSet::new()
                });
                if channels.insert(channel.clone()) {
                    commands.push(register(topic, Some(channel)));
                }
                commands
            }
            Event::ChannelDeleted { topic, channel } => {
                let removed = self
                    .topics
                    .get_mut(topic)
                    .is_some_and(|channels| channels.remove(channel));
                if removed {
                    vec![unregister(topic, Some(channel))]
                } else {
                    Vec::new()
                }
            }
        }
    }

    /// Every registration, for a lookupd that just connected: each topic, then its channels.
    pub fn register_all(&self) -> Vec<LookupCommand> {
        let mut commands = Vec::new();
        for (topic, channels) in &self.topics {
            commands.push(register(topic, None));
            commands.extend(channels.iter().map(|c| register(topic, Some(c))));
        }
        commands
    }

    /// Whether `topic` exists (as far as the events said).
    pub fn has_topic(&self, topic: &str) -> bool {
        self.topics.contains_key(topic)
    }
}

fn register(topic: &str, channel: Option<&String>) -> LookupCommand {
    LookupCommand::Register {
        topic: Name::new(topic),
        channel: channel.map(|c| Name::new(c)),
    }
}

fn unregister(topic: &str, channel: Option<&String>) -> LookupCommand {
    LookupCommand::Unregister {
        topic: Name::new(topic),
        channel: channel.map(|c| Name::new(c)),
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use sluice_proto::lookup::put_lookup_command;

    use super::*;

    fn lines(commands: &[LookupCommand]) -> String {
        let mut out = BytesMut::new();
        for command in commands {
            put_lookup_command(&mut out, command);
        }
        String::from_utf8(out.to_vec()).unwrap()
    }

    fn topic_created(topic: &str) -> Event {
        Event::TopicCreated {
            topic: topic.into(),
            ask_lookupds: true,
        }
    }

    fn channel_created(topic: &str, channel: &str) -> Event {
        Event::ChannelCreated {
            topic: topic.into(),
            channel: channel.into(),
        }
    }

    #[test]
    fn a_new_topic_is_registered_once() {
        let mut mirror = Mirror::new();
        assert_eq!(
            lines(&mirror.handle_event(&topic_created("t"))),
            "REGISTER t\n"
        );
        assert_eq!(lines(&mirror.handle_event(&topic_created("t"))), "");
        assert!(mirror.has_topic("t"));
        assert!(!mirror.has_topic("u"));
    }

    #[test]
    fn a_channel_of_an_unknown_topic_registers_both() {
        let mut mirror = Mirror::new();
        assert_eq!(
            lines(&mirror.handle_event(&channel_created("t", "c"))),
            "REGISTER t\nREGISTER t c\n"
        );
        assert_eq!(lines(&mirror.handle_event(&channel_created("t", "c"))), "");
    }

    #[test]
    fn deleting_a_topic_unregisters_its_channels_first() {
        let mut mirror = Mirror::new();
        mirror.handle_event(&channel_created("t", "a"));
        mirror.handle_event(&channel_created("t", "b"));
        let deleted = Event::TopicDeleted { topic: "t".into() };
        assert_eq!(
            lines(&mirror.handle_event(&deleted)),
            "UNREGISTER t a\nUNREGISTER t b\nUNREGISTER t\n"
        );
        assert_eq!(lines(&mirror.handle_event(&deleted)), "");
        assert_eq!(lines(&mirror.register_all()), "");
    }

    #[test]
    fn deleting_an_unknown_channel_says_nothing() {
        let mut mirror = Mirror::new();
        let deleted = Event::ChannelDeleted {
            topic: "t".into(),
            channel: "c".into(),
        };
        assert_eq!(lines(&mirror.handle_event(&deleted)), "");
        mirror.handle_event(&channel_created("t", "c"));
        assert_eq!(lines(&mirror.handle_event(&deleted)), "UNREGISTER t c\n");
        assert_eq!(lines(&mirror.register_all()), "REGISTER t\n");
    }

    #[test]
    fn register_all_lists_every_topic_and_channel() {
        let mut mirror = Mirror::new();
        mirror.handle_event(&topic_created("b"));
        mirror.handle_event(&channel_created("a", "x#ephemeral"));
        mirror.handle_event(&channel_created("a", "y"));
        assert_eq!(
            lines(&mirror.register_all()),
            "REGISTER a\nREGISTER a x#ephemeral\nREGISTER a y\nREGISTER b\n"
        );
    }
}
