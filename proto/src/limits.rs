//! The bounds a decoder enforces before it buffers anything.
//!
//! Defaults are upstream nsqd v1.3.0's (`nsqd/options.go`).

use std::time::Duration;

/// Limits passed to decoders and to IDENTIFY negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `--max-msg-size`: the largest single message body (bytes).
    pub max_msg_size: u32,
    /// `--max-body-size`: the largest MPUB body, or any other command body (bytes).
    pub max_body_size: u32,
    /// The longest command line, newline included, before it is refused.
    pub max_line_len: usize,
    /// `--max-rdy-count`: the highest RDY a client may set.
    pub max_rdy_count: u64,
    /// `--max-msg-timeout`: the longest msg_timeout a client may ask for.
    pub max_msg_timeout: Duration,
    /// `--msg-timeout`: the default msg_timeout.
    pub msg_timeout: Duration,
    /// `--max-req-timeout`: REQ delays are clamped to this.
    pub max_req_timeout: Duration,
    /// `--max-heartbeat-interval`.
    pub max_heartbeat_interval: Duration,
    /// `--max-output-buffer-size`.
    pub max_output_buffer_size: u64,
    /// `--min-output-buffer-timeout`.
    pub min_output_buffer_timeout: Duration,
    /// `--max-output-buffer-timeout`.
    pub max_output_buffer_timeout: Duration,
    /// `--output-buffer-timeout`: the default.
    pub output_buffer_timeout: Duration,
    /// `--max-deflate-level`.
    pub max_deflate_level: u32,
}

/// Upstream's fixed ceiling on the line length (`bufio` default buffer in nsqd is 16 KiB;
/// commands longer than that cannot be valid since names are at most 64 characters).
pub const DEFAULT_MAX_LINE_LEN: usize = 1024;

/// The fewest bytes an MPUB message can take (its 4-byte length prefix and one byte of body),
/// which bounds the number of messages in an MPUB body of a given size.
pub const MPUB_MIN_MESSAGE_BYTES: u32 = 5;

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_msg_size: 1024 * 1024,
            max_body_size: 5 * 1024 * 1024,
            max_line_len: DEFAULT_MAX_LINE_LEN,
            max_rdy_count: 2500,
            max_msg_timeout: Duration::from_secs(15 * 60),
            msg_timeout: Duration::from_secs(60),
            max_req_timeout: Duration::from_secs(60 * 60),
            max_heartbeat_interval: Duration::from_secs(60),
            max_output_buffer_size: 64 * 1024,
            min_output_buffer_timeout: Duration::from_millis(25),
            max_output_buffer_timeout: Duration::from_secs(30),
            output_buffer_timeout: Duration::from_millis(250),
            max_deflate_level: 6,
        }
    }
}

impl Limits {
    /// The most messages an MPUB body within `max_body_size` can hold: upstream's
    /// `(maxBodySize - 4) / 5` (`readMPUB`), the 4 being the count itself.
    pub fn max_mpub_count(&self) -> u32 {
        self.max_body_size.saturating_sub(4) / MPUB_MIN_MESSAGE_BYTES
    }
}
