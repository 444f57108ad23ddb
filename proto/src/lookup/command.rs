//! The four commands of lookup protocol V1, as typed values.
//!
//! Mirrors the verbs of upstream `nsqlookupd/lookup_protocol_v1.go` (`Exec`). A command is
//! produced by [`LookupDecoder`](super::LookupDecoder) only once its line (and IDENTIFY's body)
//! is complete and valid; the JSON of IDENTIFY is checked by
//! [`IdentifyInfo::from_json`](super::IdentifyInfo::from_json).

use bytes::Bytes;

use crate::v2::Name;

/// One command from a broker to a lookup service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupCommand {
    /// `IDENTIFY\n[u32 size][JSON]`: the raw JSON body (an [`IdentifyInfo`](super::IdentifyInfo)).
    Identify(Bytes),
    /// `REGISTER <topic> [<channel>]\n`: the broker has this topic (and channel).
    Register {
        /// Topic name (validated).
        topic: Name,
        /// Channel name (validated), if one was given.
        channel: Option<Name>,
    },
    /// `UNREGISTER <topic> [<channel>]\n`: the broker no longer has this channel, or topic.
    Unregister {
        /// Topic name (validated).
        topic: Name,
        /// Channel name (validated), if one was given.
        channel: Option<Name>,
    },
    /// `PING\n`: the broker is alive (refreshes its last update time).
    Ping,
}

impl LookupCommand {
    /// The IDENTIFY a broker sends about itself.
    ///
    /// # Examples
    /// ```
    /// use sluice_proto::lookup::{IdentifyInfo, LookupCommand};
    ///
    /// let info = IdentifyInfo { tcp_port: 4150, http_port: 4151, ..IdentifyInfo::default() };
    /// let LookupCommand::Identify(body) = LookupCommand::identify(&info) else { unreachable!() };
    /// assert!(body.starts_with(b"{\"broadcast_address\":"));
    /// ```
    pub fn identify(info: &super::IdentifyInfo) -> LookupCommand {
        LookupCommand::Identify(Bytes::from(info.to_json()))
    }

    /// The verb as sent on the wire (`IDENTIFY`, `REGISTER`, `UNREGISTER`, `PING`).
    pub const fn verb(&self) -> &'static str {
        match self {
            LookupCommand::Identify(_) => "IDENTIFY",
            LookupCommand::Register { .. } => "REGISTER",
            LookupCommand::Unregister { .. } => "UNREGISTER",
            LookupCommand::Ping => "PING",
        }
    }
}
