//! One request in, one answer out: the path is decoded, [`router::resolve`] picks the handler
//! (or a redirect, `405`, `404`), the handler runs, and the answer is framed as Go frames it.
//!
//! Mirrors upstream's `httprouter` setup in `nsqd/http.go` `newHTTPServer`: the `NotFound` and
//! `MethodNotAllowed` handlers answer through the `V1` decorator (`{"message":"NOT_FOUND"}`,
//! `{"message":"METHOD_NOT_ALLOWED"}` with `Allow`), and every request is logged at debug
//! level as upstream's `http_api.Log` does.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::CONNECTION;
use hyper::{Method, Request, Response, StatusCode};

use super::reply::{Reply, RequestInfo};
use super::router::{self, Endpoint, Resolution};
use super::{admin, config, debug, info, publish, stats};
use crate::shard::Shard;

/// Answers one request.
pub async fn handle(
    shard: &Shard,
    remote: Option<SocketAddr>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let info = RequestInfo {
        head: req.method() == Method::HEAD,
        close: wants_close(&req),
        now: SystemTime::now(),
    };
    let method = req.method().clone();
    let target = req
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), ToString::to_string);
    let reply = dispatch(shard, req).await;
    tracing::debug!(
        "{} {method} {target} ({}) {:?}",
        reply.status.as_u16(),
        remote.map_or_else(String::new, |r| r.to_string()),
        started.elapsed()
    );
    reply.into_response(&info)
}

async fn dispatch(shard: &Shard, req: Request<Incoming>) -> Reply {
    let Some(path) = percent_decode(req.uri().path()) else {
        // Go's server cannot parse such a URL and answers a plain 400 before any handler.
        return Reply::plain(StatusCode::BAD_REQUEST, "400 Bad Request");
    };
    let method = req.method().as_str().to_owned();
    match router::resolve(&method, &path, req.uri().query()) {
        Resolution::Handle { endpoint, param } => run(shard, endpoint, param, req).await,
        Resolution::Redirect { status, location } => {
            Reply::redirect(status, &location, method == "GET", method == "HEAD")
        }
        Resolution::Options { allow } => {
            Reply::plain(StatusCode::OK, Bytes::new()).with_header("allow", allow)
        }
        Resolution::MethodNotAllowed { allow } => {
            Reply::v1_error(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED")
                .with_header("allow", allow)
        }
        Resolution::NotFound => Reply::v1_error(StatusCode::NOT_FOUND, "NOT_FOUND"),
    }
}

async fn run(
    shard: &Shard,
    endpoint: Endpoint,
    param: Option<String>,
    req: Request<Incoming>,
) -> Reply {
    match endpoint {
        Endpoint::Ping => info::ping(shard),
        Endpoint::Info => info::info(shard),
        Endpoint::Pub => publish::pub_message(shard, req).await,
        Endpoint::Mpub => publish::mpub_messages(shard, req).await,
        Endpoint::Stats => stats::stats(shard, req.uri()).await,
        Endpoint::Metrics => crate::metrics::scrape::metrics(shard).await,
        Endpoint::Topic(action) => admin::topic(shard, action, req.uri()).await,
        Endpoint::Channel(action) => admin::channel(shard, action, req.uri()).await,
        Endpoint::Config => {
            let opt = param.unwrap_or_default();
            config::config(shard, &opt, req).await
        }
        Endpoint::Pprof | Endpoint::FreeMemory | Endpoint::SetBlockRate => {
            debug::not_supported(endpoint)
        }
    }
}

/// Whether the request asked to close the connection after the answer (Go echoes it).
fn wants_close(req: &Request<Incoming>) -> bool {
    let listed = req.headers().get_all(CONNECTION).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    });
    // Go writes `Connection: close` only to HTTP/1.1 clients.
    listed && req.version() != hyper::Version::HTTP_10
}

/// The path with `%XX` escapes decoded, as Go's `URL.Path` (`None` for a bad escape or bytes
/// that are not UTF-8, which no route could match anyway but Go refuses outright).
fn percent_decode(path: &str) -> Option<String> {
    if !path.contains('%') {
        return Some(path.to_owned());
    }
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_decode_like_gos_url_path() {
        assert_eq!(percent_decode("/ping").as_deref(), Some("/ping"));
        assert_eq!(percent_decode("/p%69ng").as_deref(), Some("/ping"));
        assert_eq!(percent_decode("/a%2Fb").as_deref(), Some("/a/b"));
        assert_eq!(percent_decode("/bad%zz"), None);
        assert_eq!(percent_decode("/bad%4"), None);
        assert_eq!(percent_decode("/bad%+F"), None);
        assert_eq!(percent_decode("/%FF"), None);
    }
}
