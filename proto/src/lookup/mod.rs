//! Lookup protocol V1: what a broker and a lookup service say to each other over TCP.
//!
//! Mirrors upstream `nsqlookupd/tcp.go` (the magic) and `nsqlookupd/lookup_protocol_v1.go` (the
//! commands), and the client side of it in `nsqd/lookup_peer.go` and go-nsq's `command.go`. No IO
//! here: decoders take a `BytesMut`, encoders append to one.
//!
//! ```text
//! broker -> lookupd   "  V1"                                    once, first
//!                     "IDENTIFY\n" [u32 size][JSON IdentifyInfo]
//!                     "REGISTER <topic> [<channel>]\n"
//!                     "UNREGISTER <topic> [<channel>]\n"
//!                     "PING\n"
//! lookupd -> broker   [u32 size][data]                          one reply per command
//!                     data = "OK" | IDENTIFY's JSON | "E_CODE description"
//! ```
//!
//! Unlike protocol V2, a reply carries no frame type: an error is just data starting with `E_`,
//! and every error closes the connection (upstream's lookup errors are all `FatalClientErr`).
//!
//! - [`command`]: [`LookupCommand`], one value per command line.
//! - [`decode`]: [`LookupDecoder`], the lookup service's side (magic, lines, IDENTIFY body).
//! - [`encode`]: the broker's `put_lookup_command` and the lookup service's [`put_reply`].
//! - [`reply`]: [`ReplyDecoder`] and [`LookupReply`], the broker's side of the replies.
//! - [`peer_info`]: the IDENTIFY JSON ([`IdentifyInfo`]) and a registered producer ([`PeerInfo`]).

pub mod command;
pub mod decode;
pub mod encode;
pub mod peer_info;
pub mod reply;

#[cfg(test)]
mod tests;

pub use command::LookupCommand;
pub use decode::LookupDecoder;
pub use encode::{put_error, put_lookup_command, put_reply};
pub use peer_info::{IdentifyInfo, PeerInfo};
pub use reply::{LookupReply, ReplyDecoder};

/// The 4 bytes a lookup client sends first (`nsqlookupd/tcp.go`).
pub const MAGIC_V1: &[u8; 4] = b"  V1";

/// The version string the lookup service reports in IDENTIFY replies and `/info`: the upstream
/// release whose protocol and HTTP API Sluice reproduces (clients compare it as semver).
pub const COMPATIBLE_VERSION: &str = "1.3.0";

/// The longest command line the lookup service buffers, newline included.
///
/// Upstream reads lines without a bound. The longest valid line is
/// `UNREGISTER <64-char topic> <64-char channel>\n` (141 bytes); the margin leaves room for
/// whitespace that upstream trims, while keeping a hostile peer from growing the buffer.
pub const MAX_LINE_LEN: usize = 1024;

/// The largest IDENTIFY body the lookup service accepts (bytes).
///
/// Upstream allocates whatever size the peer announces; nsqd sends about 120 bytes. The bound
/// is nsqd's own `--max-body-size` default, far above any real IDENTIFY.
pub const MAX_IDENTIFY_BODY: u32 = 5 * 1024 * 1024;

/// The largest reply a broker accepts from a lookup service (bytes).
///
/// Replies are `OK`, a short error text or IDENTIFY's JSON (about 100 bytes).
pub const MAX_REPLY_SIZE: u32 = 1024 * 1024;
