//! Routes of the nsqd HTTP API (in progress).

use std::rc::Rc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use crate::shard::Shard;

/// Answers one request.
pub async fn handle(_shard: Rc<Shard>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, body) = match req.uri().path() {
        "/ping" => (StatusCode::OK, Bytes::from_static(b"OK")),
        _ => (
            StatusCode::NOT_FOUND,
            Bytes::from_static(b"{\"message\":\"NOT_FOUND\"}"),
        ),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
}
