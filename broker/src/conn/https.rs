//! `--https-address`: the HTTP API over TLS, and the plain HTTP listener's answer when TLS is
//! required.
//!
//! Mirrors upstream `nsqd/nsqd.go` (`tls.Listen` on `--https-address` when a certificate is
//! configured, served by `newHTTPServer(n, true, true)`) and `nsqd/http.go` `ServeHTTP`: with
//! `--tls-required=true` the plain HTTP server answers every request with 403
//! `{"message": "TLS_REQUIRED", "https_port": N}`. The routes are the HTTP module's
//! ([`crate::http::routes::handle`]); this module only puts TLS under them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use glommio::net::{TcpListener, TcpStream};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};

use super::tls_stream::{HyperStream, TlsStream};
use crate::options::TlsRequired;
use crate::shard::Shard;

/// Serves the plain HTTP listener: the HTTP API, or 403 `TLS_REQUIRED` for everything when
/// `--tls-required=true` (`tcp-https` leaves plain HTTP open, as upstream).
pub async fn serve_http(shard: Rc<Shard>, listener: TcpListener) {
    if shard.opts.security.tls_required == TlsRequired::Yes {
        accept_loop("HTTP", &listener, |stream| {
            glommio::spawn_local(refuse_plain(shard.clone(), stream)).detach();
        })
        .await;
    } else {
        crate::http::serve(shard, listener).await;
    }
}

/// Serves the HTTPS listener until the task is dropped.
pub async fn serve(shard: Rc<Shard>, listener: TcpListener) {
    accept_loop("HTTPS", &listener, |stream| {
        glommio::spawn_local(connection(shard.clone(), stream)).detach();
    })
    .await;
}

async fn accept_loop(name: &str, listener: &TcpListener, mut spawn: impl FnMut(TcpStream)) {
    loop {
        match listener.accept().await {
            Ok(stream) => spawn(stream),
            Err(e) => {
                tracing::warn!("{name}: accept error - {e}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// One HTTPS connection: the handshake (bounded), then the HTTP API.
async fn connection(shard: Rc<Shard>, stream: TcpStream) {
    let remote = stream.peer_addr().ok();
    let Some(config) = shard.opts.security.tls_config.clone() else {
        return;
    };
    let tls = match TlsStream::accept(stream, config).await {
        Ok(tls) => tls,
        Err(e) => {
            let remote = remote.map_or_else(String::new, |r| r.to_string());
            tracing::info!("HTTPS: TLS handshake error from {remote}: {e}");
            return;
        }
    };
    let service = service_fn(move |req| {
        let shard = shard.clone();
        async move { Ok::<_, Infallible>(crate::http::routes::handle(&shard, remote, req).await) }
    });
    let conn = http1::Builder::new()
        .keep_alive(true)
        .half_close(true)
        .title_case_headers(true)
        .serve_connection(HyperStream::new(tls), service);
    if let Err(e) = conn.await {
        tracing::debug!("HTTPS: connection error - {e}");
    }
}

/// Answers every request of a plain HTTP connection with upstream's 403.
async fn refuse_plain(shard: Rc<Shard>, stream: TcpStream) {
    let https_port = https_address(&shard).map_or(0, |a| a.port());
    let service =
        service_fn(
            move |_req| async move { Ok::<_, Infallible>(tls_required_response(https_port)) },
        );
    let conn = http1::Builder::new()
        .keep_alive(true)
        .title_case_headers(true)
        .serve_connection(HyperStream::new(stream), service);
    if let Err(e) = conn.await {
        tracing::debug!("HTTP: connection error - {e}");
    }
}

/// Upstream's answer, byte for byte in its body (`fmt.Sprintf` with a space after each colon).
pub fn tls_required_response(https_port: u16) -> Response<Full<Bytes>> {
    let body = format!(r#"{{"message": "TLS_REQUIRED", "https_port": {https_port}}}"#);
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::FORBIDDEN;
    let headers = response.headers_mut();
    headers.insert(
        "x-nsq-content-type",
        hyper::header::HeaderValue::from_static("nsq; version=1.0"),
    );
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// The HTTPS address every shard listens on, once bound.
pub fn https_address(shard: &Shard) -> Option<SocketAddr> {
    shard.control.https.lock().ok().and_then(|a| *a)
}
