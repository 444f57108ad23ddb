//! A Rust NSQ client on [`sluice_proto`]: a pipelined producer and a consumer with RDY
//! management, lookupd discovery and reconnects. Synchronous: blocking sockets and one thread
//! per consumer connection, which keeps tests and command-line utilities simple.
//!
//! Mirrors the behaviour of go-nsq (`producer.go`, `consumer.go`, `conn.go`): the same IDENTIFY
//! settings, `max_in_flight` spread over connections, heartbeats answered with `NOP`, a message
//! finished when the handler succeeds and requeued when it fails.
//!
//! - [`Producer`]: `PUB`, `MPUB` and `DPUB`, with several requests in flight on one connection;
//!   acknowledgements are matched to requests in order.
//! - [`Consumer`]: `SUB` on any number of brokers (given directly or found through lookupd),
//!   each connection read in large chunks, every message of a read handled, and all the
//!   `FIN`/`REQ` of that read sent in one write.
//! - [`Conn`]: one V2 connection (magic, IDENTIFY, buffered commands, frame reading), the piece
//!   both are built on; its framing is `sluice_proto`'s, so a faster IO engine can reuse it.
//!
//! # Examples
//! ```no_run
//! use std::time::Duration;
//! use sluice_client::{Config, Consumer, Disposition, Producer};
//!
//! let config = Config::default();
//! let mut producer = Producer::connect("127.0.0.1:4150", &config)?;
//! producer.publish("orders", b"hello")?;
//!
//! let consumer = Consumer::new("orders", "audit", config)?;
//! consumer.start(|| |msg: &sluice_client::Message| {
//!     println!("{:?}", msg.body);
//!     Disposition::Finish
//! });
//! consumer.connect_to_nsqd("127.0.0.1:4150")?;
//! std::thread::sleep(Duration::from_secs(1));
//! consumer.stop();
//! # Ok::<(), sluice_client::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

#[cfg(feature = "apps")]
pub mod apps;
pub mod backoff;
pub mod config;
pub mod conn;
pub mod consumer;
pub mod encode;
pub mod error;
pub mod lookup;
pub mod producer;

pub use backoff::Backoff;
pub use config::Config;
pub use conn::Conn;
pub use consumer::{Consumer, ConsumerStats, Disposition, Handler, Responder};
pub use error::{BrokerError, Error};
pub use producer::Producer;
pub use sluice_proto::Message;
