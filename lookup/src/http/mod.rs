//! The HTTP side: hyper 1 (HTTP/1.1) serving upstream nsqlookupd's API.
//!
//! Mirrors `nsqlookupd/http.go` (routes and handlers, in [`routes`] and [`router`]) and the
//! parts of Go's `net/http` server that clients see: a request line Go cannot parse gets Go's
//! own `400 Bad Request` reply, byte for byte, before hyper sees the connection (a lookup V1
//! client that dials the HTTP port by mistake gets the answer upstream gives).

mod metrics;
mod query;
mod router;
mod routes;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::Context;
use router::Dispatch;
use routes::Reply;

/// Go's reply to a request line it cannot parse (`net/http/server.go`, `c.serve`).
const GO_BAD_REQUEST: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; \
charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request";

/// How much of a connection's start is read to find the request line. A longer line is left
/// to hyper's own limits.
const REQUEST_LINE_MAX: usize = 8 * 1024;

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
                let shutdown = shutdown.clone();
                tokio::spawn(serve_connection(stream, remote, ctx, shutdown));
            }
            Err(e) => {
                warn!("HTTP: accept error - {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    remote: SocketAddr,
    ctx: Arc<Context>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut start = BytesMut::with_capacity(1024);
    loop {
        let newline = start.iter().position(|&b| b == b'\n');
        if newline.is_some() || start.len() >= REQUEST_LINE_MAX {
            if newline.is_some_and(|n| !is_go_request_line(&start[..n])) {
                let _ = stream.write_all(GO_BAD_REQUEST).await;
                let _ = stream.shutdown().await;
                return;
            }
            break;
        }
        let read = tokio::select! {
            read = stream.read_buf(&mut start) => read,
            _ = shutdown.changed() => return,
        };
        if !matches!(read, Ok(n) if n > 0) {
            return;
        }
    }
    let io = TokioIo::new(Rewind {
        prefix: start.freeze(),
        inner: stream,
    });
    let service = hyper::service::service_fn(move |request| {
        let ctx = Arc::clone(&ctx);
        async move { Ok::<_, Infallible>(respond(&ctx, remote, &request)) }
    });
    let connection = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = shutdown.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// Go's `parseRequestLine`, `validMethod` and `ParseHTTPVersion` for HTTP/1.x: `METHOD URI
/// HTTP/1.0|1` with single spaces (a trailing `\r` is part of the line ending).
fn is_go_request_line(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.splitn(3, |&b| b == b' ');
    let (Some(method), Some(uri), Some(proto)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let token = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    !method.is_empty()
        && method.iter().all(token)
        && !uri.is_empty()
        && matches!(proto, b"HTTP/1.0" | b"HTTP/1.1")
}

fn respond(
    ctx: &Context,
    remote: SocketAddr,
    request: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let method = request.method().as_str();
    let uri = request.uri();
    let raw_query = uri.query().unwrap_or_default();
    let reply = match query::unescape(uri.path(), false) {
        // Go refuses a request whose path has a bad escape before routing it.
        None => Reply::text(400, "400 Bad Request").with_header("Connection", "close".into()),
        Some(path) => route(ctx, method, &path, raw_query),
    };
    info!(
        "{} {} {} ({remote}) {:?}",
        reply.status,
        method,
        uri.path_and_query().map_or("/", |pq| pq.as_str()),
        started.elapsed()
    );
    into_response(reply)
}

fn route(ctx: &Context, method: &str, path: &str, raw_query: &str) -> Reply {
    match router::dispatch(method, path) {
        Dispatch::Handle(route) => routes::handle(ctx, route, raw_query, crate::now()),
        Dispatch::Redirect { path, status } => {
            let location = match raw_query {
                "" => path.to_owned(),
                query => format!("{path}?{query}"),
            };
            Reply::redirect(method, status, location)
        }
        Dispatch::Options { allow } => Reply {
            status: 200,
            headers: vec![("Allow", allow)],
            body: Bytes::new(),
        },
        Dispatch::MethodNotAllowed { allow } => {
            Reply::error(405, "METHOD_NOT_ALLOWED").with_header("Allow", allow)
        }
        Dispatch::NotFound => Reply::error(404, "NOT_FOUND"),
    }
}

fn into_response(reply: Reply) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(reply.body));
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

/// A stream that first yields bytes already read from it (the request line we looked at).
struct Rewind {
    prefix: Bytes,
    inner: TcpStream,
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let chunk = self.prefix.split_to(n);
            buf.put_slice(&chunk);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_as_go_parses_them() {
        assert!(is_go_request_line(b"GET /ping HTTP/1.1\r"));
        assert!(is_go_request_line(b"POST /topic/create?topic=x HTTP/1.0"));
        for bad in [
            &b"  V1PING"[..],
            b"",
            b"GET /ping",
            b"GET  HTTP/1.1",
            b"GET /a b HTTP/1.1",
            b"G(T / HTTP/1.1",
            b"GET / HTTP/2.0",
        ] {
            assert!(!is_go_request_line(bad), "{}", String::from_utf8_lossy(bad));
        }
    }
}
