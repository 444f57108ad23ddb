//! The HTTP client the admin talks to brokers, lookupds, Graphite and the notification endpoint
//! with: HTTP/1.1 over tokio + hyper, one connection per request, a connect timeout and a
//! whole-request timeout, and a cap on reply size.
//!
//! Mirrors `internal/http_api/api_request.go` (`GETV1`, `POSTV1`, the deadline transport and
//! the `Accept: application/vnd.nsq; version=1.0` header). Errors are one line in Go's words
//! (`Get "http://…": dial tcp …: connect: connection refused`, `got response 404 Not Found
//! "…"`), because they reach users verbatim in the API's `message` field, as upstream's do.
//! Only `http://` URLs are spoken; an `https://` one is refused with a clear error (see the
//! README's sluice-admin section).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;

/// The largest reply body read; a broker's `/stats` with every client of a big cluster stays
/// well below it.
pub const REPLY_BODY_MAX: usize = 64 << 20;

/// The user agent sent with every request.
const USER_AGENT: &str = concat!("sluice-admin/", env!("CARGO_PKG_VERSION"));

/// A client with upstream's two timeouts.
#[derive(Debug, Clone, Copy)]
pub struct HttpClient {
    /// `--http-client-connect-timeout`.
    pub connect_timeout: Duration,
    /// `--http-client-request-timeout`: the whole exchange, body included.
    pub request_timeout: Duration,
}

/// A reply: status and body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// The body.
    pub body: Bytes,
}

impl HttpClient {
    /// `GETV1`: GET `url` and decode the 200 reply as JSON.
    ///
    /// # Errors
    /// A Go-worded one-line error for a connection failure, a timeout, a non-200 reply or a body
    /// that does not decode.
    pub async fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let reply = self.request("GET", url, None).await?;
        check_ok(&reply)?;
        serde_json::from_slice(&reply.body).map_err(|e| e.to_string())
    }

    /// `POSTV1`: POST `url` with an empty body and require a 200 reply.
    ///
    /// # Errors
    /// As [`HttpClient::get_json`].
    pub async fn post_empty(&self, url: &str) -> Result<(), String> {
        let reply = self.request("POST", url, None).await?;
        check_ok(&reply)
    }

    /// Sends one request and reads the whole reply within the timeouts.
    ///
    /// # Errors
    /// A Go-worded one-line error.
    pub async fn request(
        &self,
        method: &str,
        url: &str,
        body: Option<(&str, Bytes)>,
    ) -> Result<Reply, String> {
        let verb = go_verb(method);
        let fail = |why: String| format!("{verb} \"{url}\": {why}");
        let target = Target::parse(url).map_err(fail)?;
        let exchange = self.exchange(method, &target, body);
        match tokio::time::timeout(self.request_timeout, exchange).await {
            Ok(result) => result.map_err(fail),
            Err(_) => Err(fail(
                "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                    .to_owned(),
            )),
        }
    }

    async fn exchange(
        &self,
        method: &str,
        target: &Target,
        body: Option<(&str, Bytes)>,
    ) -> Result<Reply, String> {
        let host = target.host.as_str();
        let stream =
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(host)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return Err(format!("dial tcp {host}: {}", dial_error(&e))),
                Err(_) => return Err(format!("dial tcp {host}: i/o timeout")),
            };
        let _ = stream.set_nodelay(true);
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        let driver = tokio::spawn(connection);
        let mut builder = Request::builder()
            .method(method)
            .uri(target.path_and_query.as_str())
            .header("Host", host)
            .header("User-Agent", USER_AGENT)
            .header("Accept", "application/vnd.nsq; version=1.0");
        let payload = match body {
            Some((content_type, bytes)) => {
                builder = builder.header("Content-Type", content_type);
                bytes
            }
            None => Bytes::new(),
        };
        let request = builder
            .body(Full::new(payload))
            .map_err(|e| e.to_string())?;
        let result = read_reply(&mut sender, request).await;
        driver.abort();
        result
    }
}

async fn read_reply(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> Result<Reply, String> {
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Some(data) = frame.data_ref() {
            if bytes.len() + data.len() > REPLY_BODY_MAX {
                return Err(format!("reply body larger than {REPLY_BODY_MAX} bytes"));
            }
            bytes.extend_from_slice(data);
        }
    }
    Ok(Reply {
        status,
        body: Bytes::from(bytes),
    })
}

/// Go's `got response STATUS "BODY"` for anything but 200.
fn check_ok(reply: &Reply) -> Result<(), String> {
    if reply.status == 200 {
        return Ok(());
    }
    let reason = hyper::StatusCode::from_u16(reply.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or_default();
    let body = String::from_utf8_lossy(&reply.body);
    Err(format!("got response {} {reason} {body:?}", reply.status))
}

fn go_verb(method: &str) -> String {
    let lower = method.to_ascii_lowercase();
    let mut chars = lower.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// Go's words for the common dial failures.
fn dial_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused".to_owned(),
        std::io::ErrorKind::TimedOut => "i/o timeout".to_owned(),
        _ => e.to_string(),
    }
}

/// An `http://host:port/path?query` URL, split.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    host: String,
    path_and_query: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, String> {
        let Some(rest) = url.strip_prefix("http://") else {
            let scheme = url.split_once("://").map_or("", |(s, _)| s);
            return Err(format!("unsupported protocol scheme {scheme:?}"));
        };
        let (host, path) = match rest.find(['/', '?']) {
            Some(at) => rest.split_at(at),
            None => (rest, "/"),
        };
        if host.is_empty() {
            return Err("no Host in request URL".to_owned());
        }
        let host = if host.rsplit_once(':').is_some_and(|(_, p)| !p.contains(']')) {
            host.to_owned()
        } else {
            format!("{host}:80")
        };
        let path_and_query = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        Ok(Target {
            host,
            path_and_query,
        })
    }
}

/// Go's `url.QueryEscape` as far as names and addresses need it.
pub fn query_escape(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_and_target() {
        let t = Target::parse("http://127.0.0.1:4151/stats?format=json").unwrap();
        assert_eq!(t.host, "127.0.0.1:4151");
        assert_eq!(t.path_and_query, "/stats?format=json");
        let t = Target::parse("http://example.invalid").unwrap();
        assert_eq!(t.host, "example.invalid:80");
        assert_eq!(t.path_and_query, "/");
        let t = Target::parse("http://[::1]:9/x").unwrap();
        assert_eq!(t.host, "[::1]:9");
        assert_eq!(
            Target::parse("https://x/").unwrap_err(),
            "unsupported protocol scheme \"https\""
        );
    }

    #[test]
    fn errors_read_like_gos() {
        let reply = Reply {
            status: 404,
            body: Bytes::from_static(b"{\"message\":\"TOPIC_NOT_FOUND\"}"),
        };
        assert_eq!(
            check_ok(&reply).unwrap_err(),
            r#"got response 404 Not Found "{\"message\":\"TOPIC_NOT_FOUND\"}""#
        );
        assert_eq!(go_verb("DELETE"), "Delete");
        assert_eq!(query_escape("127.0.0.1:4151"), "127.0.0.1%3A4151");
    }

    #[tokio::test]
    async fn refused_connection_is_reported_with_the_url() {
        // Bind then drop a listener so the port is (almost certainly) closed.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let client = HttpClient {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
        };
        let url = format!("http://127.0.0.1:{port}/ping");
        let err = client.post_empty(&url).await.unwrap_err();
        assert_eq!(
            err,
            format!("Post \"{url}\": dial tcp 127.0.0.1:{port}: connect: connection refused")
        );
    }
}
