//! `sluiced`: an NSQ-compatible broker, thread-per-core.
//!
//! Topics are sharded onto pinned cores; each core runs one glommio executor that owns its
//! topics, their channels and its connections outright (see `ARCHITECTURE.md`). [`run`] starts
//! the shards from [`Options`] and returns when the broker stops; `main.rs` only parses flags.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod auth;
pub mod channel;
pub mod conn;
pub mod flags;
pub mod host;
pub mod http;
pub mod log;
pub mod lookupd;
pub mod metrics;
pub mod options;
pub mod runtime;
pub mod shard;
pub mod signal;
pub mod storage;
pub mod topic;

use std::sync::atomic::Ordering;
use std::sync::Arc;

pub use options::{Invocation, Options};
pub use runtime::{Bound, StartError};

/// Runs the broker until SIGINT or SIGTERM, logging upstream's start-up and shutdown lines.
///
/// # Errors
/// A [`StartError`] when it cannot listen or cannot start its executors.
pub fn run(opts: Options) -> Result<(), StartError> {
    log::init(&opts.log_prefix, opts.log_level);
    tracing::info!("{}", options::VERSION_LINE);
    tracing::info!("ID: {}", opts.node_id);
    let control = runtime::control(&opts);
    let watcher = control.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            use signal_hook::consts::{SIGINT, SIGTERM};
            if let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
                if signals.forever().next().is_some() {
                    watcher.stop.store(true, Ordering::SeqCst);
                }
            }
        })
        .map_err(|e| StartError::Executor(format!("cannot start the signal thread: {e}")))?;
    let opts = Arc::new(opts);
    let registration = lookupd::spawn(Arc::clone(&opts), Arc::clone(&control))
        .map_err(|e| StartError::Executor(format!("cannot start the lookupd thread: {e}")))?;
    let statsd = metrics::statsd::spawn(Arc::clone(&opts), Arc::clone(&control))
        .map_err(|e| StartError::Executor(format!("cannot start the statsd thread: {e}")))?;
    let https_control = Arc::clone(&control);
    let result = runtime::run(opts, Arc::clone(&control), move |bound| {
        tracing::info!("TCP: listening on {}", bound.tcp);
        tracing::info!("HTTP: listening on {}", bound.http);
        if let Some(https) = https_control.https.lock().ok().and_then(|a| *a) {
            tracing::info!("HTTPS: listening on {https}");
        }
    });
    // The lookupd thread stops with the shards, and when they could not start.
    control.stop.store(true, Ordering::SeqCst);
    let _ = registration.join();
    if let Some(statsd) = statsd {
        let _ = statsd.join();
    }
    result?;
    tracing::info!("NSQ: bye");
    Ok(())
}
