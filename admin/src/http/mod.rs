//! The HTTP side: hyper 1 (HTTP/1.1) serving the pages, the static assets, the `/api/` routes
//! and `/config`, everything under `--base-path`.
//!
//! Mirrors `nsqadmin/http.go` (`NewHTTPServer`, the index and static handlers, `doConfig`,
//! `isAuthorizedAdminRequest`) and `internal/http_api` (`V1` replies: JSON bodies with
//! `X-NSQ-Content-Type: nsq; version=1.0`, errors as `{"message":"…"}`). The API handlers are
//! in [`crate::api`], the pages in [`crate::pages`].

pub(crate) mod router;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{HeaderMap, Request, Response};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::Context;
use router::{Dispatch, Route};

/// The largest request body read (upstream reads `/config` bodies up to 1 MiB; one more byte
/// tells "too big" apart).
pub(crate) const REQUEST_BODY_MAX: usize = 1024 * 1024 + 1;

/// How long a client may take to send a request's head (a slow or idle client is dropped).
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A request, read whole.
#[derive(Debug)]
pub(crate) struct AdminRequest {
    pub method: String,
    /// The decoded path, relative to the base path (`/topics/t`).
    pub path: String,
    /// The path as received (with the base path), for notification URLs.
    pub raw_path: String,
    /// The raw query string.
    pub query: String,
    pub headers: HeaderMap,
    pub remote: SocketAddr,
    pub body: Bytes,
    /// The body was longer than [`REQUEST_BODY_MAX`] and was cut there.
    pub body_too_big: bool,
}

impl AdminRequest {
    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A query parameter (the first value).
    pub fn param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// A reply before it becomes a hyper response.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl Reply {
    /// upstream's `RespondV1` for a 200 with a JSON body.
    pub fn json<T: Serialize>(value: &T) -> Reply {
        match serde_json::to_vec(value) {
            Ok(body) => Reply::v1(200, Bytes::from(body)),
            Err(e) => Reply::error(500, &format!("INTERNAL_ERROR: {e}")),
        }
    }

    /// upstream's `RespondV1` for an error: `{"message":TEXT}`.
    pub fn error(status: u16, message: &str) -> Reply {
        let body = serde_json::json!({ "message": message }).to_string();
        Reply::v1(status, Bytes::from(body))
    }

    fn v1(status: u16, body: Bytes) -> Reply {
        Reply {
            status,
            headers: vec![
                ("Content-Type", "application/json; charset=utf-8".to_owned()),
                ("X-NSQ-Content-Type", "nsq; version=1.0".to_owned()),
            ],
            body,
        }
    }

    /// A 200 with a body of the given type.
    pub fn typed(content_type: &str, body: impl Into<Bytes>) -> Reply {
        Reply {
            status: 200,
            headers: vec![("Content-Type", content_type.to_owned())],
            body: body.into(),
        }
    }

    /// A redirect.
    pub fn redirect(status: u16, location: String) -> Reply {
        Reply {
            status,
            headers: vec![("Location", location)],
            body: Bytes::new(),
        }
    }
}

/// Accepts HTTP connections until `shutdown` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    ctx: Arc<Context>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        match accepted {
            Ok((stream, remote)) => {
                let ctx = Arc::clone(&ctx);
                tokio::spawn(serve_connection(stream, remote, ctx, shutdown.clone()));
            }
            Err(e) => {
                warn!("HTTP: accept error - {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    ctx: Arc<Context>,
    mut shutdown: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |request| {
        let ctx = Arc::clone(&ctx);
        async move { Ok::<_, Infallible>(respond(ctx, remote, request).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = shutdown.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

async fn respond(
    ctx: Arc<Context>,
    remote: SocketAddr,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let method = parts.method.as_str().to_owned();
    let raw_path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or_default().to_owned();
    let (body, body_too_big) = match Limited::new(body, REQUEST_BODY_MAX).collect().await {
        Ok(collected) => (collected.to_bytes(), false),
        Err(_) => (Bytes::new(), true),
    };
    let reply = match decode_path(&raw_path) {
        None => Reply::error(400, "INVALID_REQUEST"),
        Some(path) => {
            let request = AdminRequest {
                method: method.clone(),
                path,
                raw_path: raw_path.clone(),
                query,
                headers: parts.headers,
                remote,
                body,
                body_too_big,
            };
            route(&ctx, request).await
        }
    };
    info!(
        "{} {} {} ({remote}) {:?}",
        reply.status,
        method,
        parts.uri.path_and_query().map_or("/", |pq| pq.as_str()),
        started.elapsed()
    );
    into_response(reply, method == "HEAD")
}

async fn route(ctx: &Arc<Context>, request: AdminRequest) -> Reply {
    let base = ctx.base_path.as_str();
    let relative = match strip_base(base, &request.path) {
        Some(relative) => relative,
        None => return Reply::error(404, "NOT_FOUND"),
    };
    match router::dispatch(&request.method, &relative) {
        Dispatch::Handle(route) => {
            handle(
                ctx,
                route,
                AdminRequest {
                    path: relative,
                    ..request
                },
            )
            .await
        }
        Dispatch::Redirect { path, status } => {
            let mut location = join_base(base, &path);
            if !request.query.is_empty() {
                location = format!("{location}?{}", request.query);
            }
            Reply::redirect(status, location)
        }
        Dispatch::MethodNotAllowed { allow } => {
            let mut reply = Reply::error(405, "METHOD_NOT_ALLOWED");
            reply.headers.push(("Allow", allow));
            reply
        }
        Dispatch::NotFound => Reply::error(404, "NOT_FOUND"),
    }
}

async fn handle(ctx: &Arc<Context>, route: Route, request: AdminRequest) -> Reply {
    match route {
        Route::Ping => Reply::typed("text/plain; charset=utf-8", "OK"),
        Route::Page(page) => crate::pages::render(ctx, page, &request).await,
        Route::Static(asset) => crate::pages::assets::serve(&asset),
        Route::Config(opt) => crate::api::config(ctx, &opt, &request),
        api => crate::api::handle(ctx, api, &request).await,
    }
}

/// The path relative to `base` (`/` for the base itself); `None` outside it.
pub(crate) fn strip_base(base: &str, path: &str) -> Option<String> {
    if base == "/" {
        return Some(path.to_owned());
    }
    let rest = path.strip_prefix(base)?;
    if rest.is_empty() {
        Some("/".to_owned())
    } else if rest.starts_with('/') {
        Some(rest.to_owned())
    } else {
        None
    }
}

/// `path.Join(base, path)`.
pub(crate) fn join_base(base: &str, path: &str) -> String {
    crate::options::clean_path(&format!("{base}/{path}"))
}

/// Percent-decodes a path; `None` for a bad escape or bytes that are not UTF-8.
fn decode_path(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let text = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(text, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn into_response(reply: Reply, head: bool) -> Response<Full<Bytes>> {
    let body = if head { Bytes::new() } else { reply.body };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = hyper::StatusCode::from_u16(reply.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    for (name, value) in reply.headers {
        if let Ok(value) = hyper::header::HeaderValue::from_str(&value) {
            headers.append(name, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_paths_nest_every_route() {
        assert_eq!(strip_base("/", "/topics").as_deref(), Some("/topics"));
        assert_eq!(strip_base("/admin", "/admin").as_deref(), Some("/"));
        assert_eq!(
            strip_base("/admin", "/admin/api/topics").as_deref(),
            Some("/api/topics")
        );
        assert_eq!(strip_base("/admin", "/administer"), None);
        assert_eq!(strip_base("/admin", "/topics"), None);
        assert_eq!(join_base("/admin", "/topics"), "/admin/topics");
        assert_eq!(join_base("/", "/"), "/");
        assert_eq!(join_base("/admin", "/"), "/admin");
    }

    #[test]
    fn paths_decode_or_fail() {
        assert_eq!(decode_path("/topics/a%2Eb").as_deref(), Some("/topics/a.b"));
        assert_eq!(decode_path("/x%zz"), None);
        assert_eq!(decode_path("/x%4"), None);
        assert_eq!(decode_path("/%FF"), None);
    }
}
