//! Request bodies read with a bound, whether they come with a `Content-Length` or chunked.
//!
//! Mirrors upstream's `io.ReadAll(io.LimitReader(req.Body, max + 1))`: at most `max + 1` bytes
//! are kept, so "more than `max`" is detected without ever buffering more. The rest of an
//! oversized body is left unread; hyper then closes the connection rather than reuse it.

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};

/// A body read up to its bound.
#[derive(Debug)]
pub struct Bounded {
    /// At most `max + 1` bytes.
    pub bytes: Bytes,
    /// The body had more than `max` bytes (`bytes` then holds `max + 1`).
    pub exceeded: bool,
}

/// The length the client declared, if it declared one.
pub fn declared_len(body: &Incoming) -> Option<u64> {
    body.size_hint().exact()
}

/// Reads `body` until its end or until it has shown more than `max` bytes.
///
/// # Errors
/// The connection failed or the body was malformed (upstream answers `500 INTERNAL_ERROR`).
pub async fn read_bounded(mut body: Incoming, max: usize) -> Result<Bounded, hyper::Error> {
    let keep = max.saturating_add(1);
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut len = 0usize;
    while len < keep {
        let Some(frame) = body.frame().await else {
            break;
        };
        let Ok(data) = frame?.into_data() else {
            // Trailers carry no body bytes.
            continue;
        };
        let take = data.len().min(keep - len);
        let data = data.slice(..take);
        len += take;
        // One frame is kept as is (no copy); several are joined.
        match (first.take(), joined.as_mut()) {
            (None, None) => first = Some(data),
            (Some(prev), None) => {
                let mut buf = BytesMut::with_capacity(prev.len() + data.len());
                buf.extend_from_slice(&prev);
                buf.extend_from_slice(&data);
                joined = Some(buf);
            }
            (_, Some(buf)) => buf.extend_from_slice(&data),
        }
    }
    let bytes = match (first, joined) {
        (_, Some(buf)) => buf.freeze(),
        (Some(b), None) => b,
        (None, None) => Bytes::new(),
    };
    Ok(Bounded {
        exceeded: bytes.len() > max,
        bytes,
    })
}
