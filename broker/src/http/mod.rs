//! The nsqd HTTP API on the shard's executor (hyper 1.x, HTTP/1.1).
//!
//! Mirrors upstream `nsqd/http.go`: same routes, parameters, status codes, `{"message":"CODE"}`
//! error bodies and the `X-NSQ-Content-Type: nsq; version=1.0` header. A request lands on
//! whichever shard accepted it; work on a topic owned elsewhere goes over the mesh.

mod io;
mod routes;

use std::convert::Infallible;
use std::rc::Rc;

use glommio::net::TcpListener;
use hyper::server::conn::http1;
use hyper::service::service_fn;

use crate::shard::Shard;

/// Accepts HTTP connections until the task is dropped.
pub async fn serve(shard: Rc<Shard>, listener: TcpListener) {
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("HTTP: accept error - {e}");
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let shard = shard.clone();
        glommio::spawn_local(async move {
            let service = service_fn(move |req| {
                let shard = shard.clone();
                async move { Ok::<_, Infallible>(routes::handle(shard, req).await) }
            });
            let conn = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(io::HyperIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!("HTTP: connection error - {e}");
            }
        })
        .detach();
    }
}
