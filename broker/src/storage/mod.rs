//! The per-shard segment log: every acknowledged message of a non-ephemeral topic is in it
//! before its `OK`. See ARCHITECTURE.md ("The segment log") and the README's storage section.
//!
//! - [`record`]: the on-disk record format (pure).
//! - [`log`]: segment files, group commit, the fsync policy, poisoning.
//! - [`recovery`]: reading segments back at start-up, torn tails, corruption.
//! - [`reader`]: reading a topic's messages back for channels with a backlog.
//! - [`relocated`]: a slow topic's live messages copied out of the shard log (compaction).
//! - [`meta`]: the shard's saved state (topics, channels, cursors) and the data directory.
//! - [`watermark`]: positions publishers wait on.

pub mod log;
pub mod meta;
pub mod reader;
pub mod record;
pub mod recovery;
pub mod relocated;
pub mod watermark;
