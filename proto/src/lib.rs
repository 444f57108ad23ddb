//! NSQ's wire formats, and nothing else: no IO, no runtime, no clock.
//!
//! Every byte Sluice exchanges with an NSQ client, broker or lookup service is parsed and written
//! here, so that the broker, the lookup service, the client library and the load generator agree
//! on one implementation of the protocol, tested once.
//!
//! - [`v2`]: TCP protocol V2 (client commands, server frames).
//! - [`lookup`]: the lookup protocol V1 spoken between brokers and lookup services.
//! - [`message`]: message ids, the message layout, the id generator.
//! - [`identify`]: IDENTIFY request/response JSON and feature negotiation.
//! - [`names`]: topic and channel name validity.
//! - [`limits`]: the bounds decoders enforce before buffering.
//! - [`error`]: NSQ error codes.
//! - [`http_json`]: the JSON shapes of the HTTP APIs (types only).
//!
//! Decoders take a `BytesMut` and return `Ok(Some(value))`, `Ok(None)` when more bytes are needed,
//! or a [`ProtoError`] carrying the exact upstream error code and text.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod error;
pub mod http_json;
pub mod identify;
pub mod limits;
pub mod lookup;
pub mod message;
pub mod names;
pub mod v2;

pub use error::{ErrorCode, ProtoError};
pub use limits::Limits;
pub use message::{IdGenerator, Message, MessageId};
pub use v2::{Command, Name, Verb};
