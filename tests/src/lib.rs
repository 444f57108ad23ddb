//! Harness for the workspace-level suites that run our binaries as separate processes.
//!
//! - [`bins`]: finds the workspace, its built binaries and the golden transcripts.
//! - [`daemon`]: starts `sluiced` / `sluice-lookupd` on loopback port 0 and parses the
//!   `TCP: listening on` / `HTTP: listening on` lines.
//! - [`golden`]: replays the upstream nsqd v1.3.0 transcripts (`../shared/golden/`).
//! - [`escape`], [`frame`], [`json`], [`http`]: the golden byte notation, V2/V1 frame splitting,
//!   order-preserving JSON with masks, and a raw HTTP/1.1 client.
//!
//! The harness deliberately shares no code with `sluice-proto` or the broker: it is the referee.
//! Suites live in `tests/tests/*.rs`; they need `cargo build --bins` first (`scripts/test.sh`).

pub mod bins;
pub mod crash;
pub mod daemon;
pub mod escape;
pub mod frame;
pub mod golden;
pub mod http;
pub mod json;
