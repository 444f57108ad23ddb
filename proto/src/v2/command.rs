//! The twelve client commands of protocol V2, as typed values.
//!
//! Mirrors the verbs of upstream `nsqd/protocol_v2.go`. A command is produced by
//! [`CommandDecoder`](crate::v2::CommandDecoder) only once its line and body are complete and
//! valid in isolation; checks that depend on connection state (e.g. `cannot SUB in current state`)
//! belong to the broker.

use bytes::Bytes;
use std::time::Duration;

use crate::message::MessageId;

/// A validated topic or channel name, sharing the bytes of the read buffer it came from.
///
/// Holds only `[.a-zA-Z0-9_#-]` ASCII once validated by the decoder, so [`Name::as_str`] never
/// fails for decoded names.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Name(Bytes);

impl Name {
    /// Wraps bytes already known to be a valid name.
    pub fn from_bytes(bytes: Bytes) -> Name {
        Name(bytes)
    }

    /// Copies a string (for encoders and tests).
    pub fn new(name: &str) -> Name {
        Name(Bytes::copy_from_slice(name.as_bytes()))
    }

    /// The name as text (empty if the bytes were not UTF-8, which a decoded name never is).
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether the name ends in `#ephemeral`.
    pub fn is_ephemeral(&self) -> bool {
        crate::names::is_ephemeral(self.as_str())
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verb of a command line, known even when the rest of the line is bad.
///
/// The broker uses it to give a state error precedence over a parse error, as upstream checks
/// the connection state before it looks at parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// `IDENTIFY`
    Identify,
    /// `AUTH`
    Auth,
    /// `SUB`
    Sub,
    /// `PUB`
    Pub,
    /// `MPUB`
    Mpub,
    /// `DPUB`
    Dpub,
    /// `RDY`
    Rdy,
    /// `FIN`
    Fin,
    /// `REQ`
    Req,
    /// `TOUCH`
    Touch,
    /// `CLS`
    Cls,
    /// `NOP`
    Nop,
}

impl Verb {
    /// Every verb.
    pub const ALL: [Verb; 12] = [
        Verb::Identify,
        Verb::Auth,
        Verb::Sub,
        Verb::Pub,
        Verb::Mpub,
        Verb::Dpub,
        Verb::Rdy,
        Verb::Fin,
        Verb::Req,
        Verb::Touch,
        Verb::Cls,
        Verb::Nop,
    ];

    /// The verb as sent on the wire (case-sensitive, as upstream).
    pub const fn as_str(self) -> &'static str {
        match self {
            Verb::Identify => "IDENTIFY",
            Verb::Auth => "AUTH",
            Verb::Sub => "SUB",
            Verb::Pub => "PUB",
            Verb::Mpub => "MPUB",
            Verb::Dpub => "DPUB",
            Verb::Rdy => "RDY",
            Verb::Fin => "FIN",
            Verb::Req => "REQ",
            Verb::Touch => "TOUCH",
            Verb::Cls => "CLS",
            Verb::Nop => "NOP",
        }
    }

    /// Parses a verb from the first word of a line.
    pub fn from_bytes(word: &[u8]) -> Option<Verb> {
        Verb::ALL
            .into_iter()
            .find(|v| v.as_str().as_bytes() == word)
    }
}

/// One client command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `IDENTIFY\n[u32 size][JSON]`: the raw JSON body; see [`crate::identify::negotiate`].
    Identify(Bytes),
    /// `AUTH\n[u32 size][secret]`.
    Auth(Bytes),
    /// `SUB <topic> <channel>\n`.
    Sub {
        /// Topic name (validated).
        topic: Name,
        /// Channel name (validated).
        channel: Name,
    },
    /// `PUB <topic>\n[u32 size][body]`.
    Pub {
        /// Topic name (validated).
        topic: Name,
        /// Message body (1..=max_msg_size bytes).
        body: Bytes,
    },
    /// `MPUB <topic>\n[u32 size][u32 count]([u32 size][body])*`.
    Mpub {
        /// Topic name (validated).
        topic: Name,
        /// The message bodies, each 1..=max_msg_size bytes, at least one.
        bodies: Vec<Bytes>,
    },
    /// `DPUB <topic> <defer_ms>\n[u32 size][body]`.
    Dpub {
        /// Topic name (validated).
        topic: Name,
        /// How long to defer delivery (0..=max_req_timeout).
        defer: Duration,
        /// Message body.
        body: Bytes,
    },
    /// `RDY <count>\n` (count within 0..=max_rdy_count).
    Rdy(u64),
    /// `FIN <id>\n`.
    Fin(MessageId),
    /// `REQ <id> <timeout_ms>\n`. The delay is as sent (not clamped): the broker clamps it to
    /// `--max-req-timeout` as upstream does.
    Req {
        /// The message.
        id: MessageId,
        /// Requested delay before redelivery.
        delay: Duration,
    },
    /// `TOUCH <id>\n`.
    Touch(MessageId),
    /// `CLS\n`.
    Cls,
    /// `NOP\n`.
    Nop,
}

impl Command {
    /// The verb of this command.
    pub fn verb(&self) -> Verb {
        match self {
            Command::Identify(_) => Verb::Identify,
            Command::Auth(_) => Verb::Auth,
            Command::Sub { .. } => Verb::Sub,
            Command::Pub { .. } => Verb::Pub,
            Command::Mpub { .. } => Verb::Mpub,
            Command::Dpub { .. } => Verb::Dpub,
            Command::Rdy(_) => Verb::Rdy,
            Command::Fin(_) => Verb::Fin,
            Command::Req { .. } => Verb::Req,
            Command::Touch(_) => Verb::Touch,
            Command::Cls => Verb::Cls,
            Command::Nop => Verb::Nop,
        }
    }
}
