//! The nsqd HTTP API on the shard's executor (hyper 1.x, HTTP/1.1).
//!
//! Mirrors upstream `nsqd/http.go`: same routes, parameters, status codes, `{"message":"CODE"}`
//! error bodies and the `X-NSQ-Content-Type: nsq; version=1.0` header. A request lands on
//! whichever shard accepted it; work on a topic owned elsewhere goes over the mesh
//! ([`owner`]).
//!
//! Files: [`routes`] dispatches; [`router`] is upstream's route table and router behaviour;
//! [`reply`] frames answers as Go does; [`publish`], [`admin`], [`stats`] (+ [`stats_text`],
//! [`memory`]), [`config`], [`info`] and [`debug`] are the handlers; [`query`], [`body`],
//! [`mpub`] parse input; [`request_line`] refuses non-HTTP bytes as Go does; [`io`] adapts
//! glommio streams to hyper.

pub mod admin;
pub mod body;
pub mod config;
pub mod debug;
pub mod go_time;
pub mod info;
mod io;
pub mod memory;
pub mod mpub;
pub mod owner;
pub mod publish;
pub mod query;
pub mod reply;
pub mod request_line;
pub mod router;
pub mod routes;
pub mod stats;
pub mod stats_text;

use std::convert::Infallible;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use hyper::server::conn::http1;
use hyper::service::service_fn;

use crate::shard::Shard;
use request_line::{Verdict, FIRST_LINE_MAX, GO_BAD_REQUEST};

/// How long a refused connection is drained before it closes (Go's `closeWriteAndWait`), so
/// the refusal reaches the client instead of being cut by a reset.
const REFUSED_DRAIN_TIME: Duration = Duration::from_millis(500);
/// The most bytes drained from a refused connection.
const REFUSED_DRAIN_MAX: usize = 256 * 1024;

/// Accepts HTTP connections until the task is dropped.
pub async fn serve(shard: Rc<Shard>, listener: TcpListener) {
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("HTTP: accept error - {e}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        glommio::spawn_local(connection(shard.clone(), stream)).detach();
    }
}

/// Serves one connection: its first line is judged as Go would, then hyper takes over.
async fn connection(shard: Rc<Shard>, mut stream: TcpStream) {
    let remote = stream.peer_addr().ok();
    let head = match read_head(&mut stream).await {
        Ok(head) if head.is_empty() => return,
        Ok(head) => head,
        Err(e) => {
            tracing::debug!("HTTP: read error - {e}");
            return;
        }
    };
    if request_line::judge(&head) == Verdict::Refuse {
        refuse(stream).await;
        return;
    }
    let service = service_fn(move |req| {
        let shard = shard.clone();
        async move { Ok::<_, Infallible>(routes::handle(&shard, remote, req).await) }
    });
    // Half-closed clients (write side shut after the request) still get their answer, as
    // from Go's server.
    let conn = http1::Builder::new()
        .keep_alive(true)
        .half_close(true)
        .title_case_headers(true)
        .serve_connection(io::HyperIo::new(stream, Bytes::from(head)), service);
    if let Err(e) = conn.await {
        tracing::debug!("HTTP: connection error - {e}");
    }
}

/// Reads until the first line is complete, the peer stops sending, or [`FIRST_LINE_MAX`].
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while head.len() < FIRST_LINE_MAX && !head.contains(&b'\n') {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    Ok(head)
}

/// Writes Go's `400 Bad Request`, stops writing, and drains briefly before closing.
async fn refuse(mut stream: TcpStream) {
    if stream.write_all(GO_BAD_REQUEST).await.is_err() {
        return;
    }
    let _ = stream.flush().await;
    let _ = stream.shutdown(std::net::Shutdown::Write).await;
    let drain = async {
        let mut chunk = [0u8; 4096];
        let mut drained = 0usize;
        while drained < REFUSED_DRAIN_MAX {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    };
    futures_lite::future::or(drain, glommio::timer::sleep(REFUSED_DRAIN_TIME)).await;
}
