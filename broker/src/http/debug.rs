//! `/debug/pprof/*`, `POST /debug/freememory` and `PUT /debug/setblockrate`.
//!
//! Upstream serves Go runtime profiles (`net/http/pprof`), returns memory to the OS with
//! `debug.FreeOSMemory` and sets Go's block profile rate. None of these has a meaning in a
//! program without a Go runtime, so each answers `501 Not Implemented` with a plain text
//! saying so, instead of an empty or fake profile (README, "Differences from nsqd"). The
//! routes stay registered so methods and redirects behave as upstream's router.

use hyper::StatusCode;

use super::reply::Reply;
use super::router::Endpoint;

/// The answer for a debug route.
pub fn not_supported(endpoint: Endpoint) -> Reply {
    let what = match endpoint {
        Endpoint::FreeMemory => "/debug/freememory (Go's debug.FreeOSMemory)",
        Endpoint::SetBlockRate => "/debug/setblockrate (Go's block profile rate)",
        _ => "/debug/pprof (Go runtime profiles)",
    };
    Reply::plain(
        StatusCode::NOT_IMPLEMENTED,
        format!("NOT_SUPPORTED: {what} is Go-runtime specific; sluiced is not a Go program\n"),
    )
}
