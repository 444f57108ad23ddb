//! TCP protocol V2: client commands and server frames.
//!
//! Mirrors upstream `nsqd/protocol_v2.go` (commands) and `internal/protocol` (frames).

pub mod command;

pub use command::{Command, Name, Verb};

/// The 4 bytes a V2 client sends first.
pub const MAGIC_V2: &[u8; 4] = b"  V2";
