//! TCP protocol V2: client commands and server frames.
//!
//! Mirrors upstream `nsqd/protocol_v2.go` (commands) and `internal/protocol` (frames). No IO
//! here: [`CommandDecoder`] and [`FrameDecoder`] take bytes already read, and the `put_*`
//! encoders append to a `BytesMut` that the caller writes.
//!
//! A V2 connection starts with the 4-byte magic [`MAGIC_V2`]. The client then sends command
//! lines (`VERB params…\n`), some followed by a size-prefixed body; the server answers with
//! frames:
//! ```text
//! [ u32 size ][ u32 frame type ][ size - 4 bytes of data ]
//!   size counts the type and the data, not itself; big-endian
//! ```

pub mod command;
pub mod decode;
pub mod encode;
pub mod frames;
mod quote;

pub use command::{Command, Name, Verb};
pub use decode::CommandDecoder;
pub use encode::{
    put_command, put_error, put_frame, put_magic, put_message, put_response, FRAME_HEADER_LEN,
};
pub use frames::{Frame, FrameDecoder};

/// The 4 bytes a V2 client sends first.
pub const MAGIC_V2: &[u8; 4] = b"  V2";

/// The payload of a heartbeat: a response frame the client must answer with `NOP`.
pub const HEARTBEAT: &[u8] = b"_heartbeat_";

/// The payload of the response to PUB, MPUB, DPUB, SUB and a plain IDENTIFY.
pub const OK: &[u8] = b"OK";

/// The payload of the response to CLS.
pub const CLOSE_WAIT: &[u8] = b"CLOSE_WAIT";

/// The type of a server frame (upstream `frameTypeResponse`, `frameTypeError`,
/// `frameTypeMessage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum FrameType {
    /// A response: `OK`, `CLOSE_WAIT`, a heartbeat, or IDENTIFY/AUTH JSON.
    Response = 0,
    /// An error: `E_CODE description`.
    Error = 1,
    /// A message for a consumer.
    Message = 2,
}

impl FrameType {
    /// The frame type with this wire value, if there is one.
    ///
    /// # Examples
    /// ```
    /// use sluice_proto::v2::FrameType;
    /// assert_eq!(FrameType::from_u32(2), Some(FrameType::Message));
    /// assert_eq!(FrameType::from_u32(3), None);
    /// ```
    pub const fn from_u32(value: u32) -> Option<FrameType> {
        match value {
            0 => Some(FrameType::Response),
            1 => Some(FrameType::Error),
            2 => Some(FrameType::Message),
            _ => None,
        }
    }

    /// The wire value.
    pub const fn as_u32(self) -> u32 {
        self as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_types_round_trip_and_nothing_else_parses() {
        for ft in [FrameType::Response, FrameType::Error, FrameType::Message] {
            assert_eq!(FrameType::from_u32(ft.as_u32()), Some(ft));
        }
        assert_eq!(FrameType::from_u32(3), None);
        assert_eq!(FrameType::from_u32(u32::MAX), None);
    }
}
