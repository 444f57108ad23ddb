//! A tiny blocking HTTP/1.1 client for the registration thread: one request per connection
//! (`Connection: close`), bounded by `--http-client-connect-timeout` and
//! `--http-client-request-timeout` (upstream `internal/http_api/api_request.go` `NewClient`).
//!
//! It only talks to lookupds (`GET /channels`) and to this broker's own HTTP API
//! (`POST /channel/create`), so it reads bodies by `Content-Length`, chunked, or until close,
//! and refuses replies larger than [`RESPONSE_SIZE_MAX`]. Never used on the hot path.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Replies larger than this are an error rather than buffered (a `/channels` reply for 10,000
/// channels of 64 characters is about 700 KB).
pub const RESPONSE_SIZE_MAX: usize = 4 << 20;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The address did not resolve.
    #[error("cannot resolve {0}")]
    Resolve(String),
    /// Connecting, sending or receiving failed (including timeouts).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The reply is not HTTP/1.x, is truncated or too big.
    #[error("bad reply: {0}")]
    BadReply(String),
    /// The request took longer than the request timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// A reply: status code and body (de-chunked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

/// The client's timeouts.
#[derive(Debug, Clone, Copy)]
pub struct HttpClient {
    /// `--http-client-connect-timeout`.
    pub connect_timeout: Duration,
    /// `--http-client-request-timeout`: the whole exchange, connect included.
    pub request_timeout: Duration,
}

impl HttpClient {
    /// Sends `method target` (e.g. `GET /channels?topic=t`) to `address` (`host:port`) with an
    /// empty body and reads the whole reply.
    ///
    /// # Errors
    /// An [`HttpError`] when the address does not resolve, the exchange fails or times out, or
    /// the reply is not a complete HTTP/1.x reply.
    pub fn request(
        &self,
        method: &str,
        address: &str,
        target: &str,
    ) -> Result<Response, HttpError> {
        let deadline = Instant::now() + self.request_timeout;
        let mut stream = self.connect(address, deadline)?;
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: sluiced\r\n\
             Accept: application/vnd.nsq; version=1.0\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        );
        stream.set_write_timeout(Some(remaining(deadline, self.request_timeout)?))?;
        stream.write_all(head.as_bytes())?;
        let mut received = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(response) = parse(&received, false)? {
                return Ok(response);
            }
            stream.set_read_timeout(Some(remaining(deadline, self.request_timeout)?))?;
            let n = match stream.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if is_timeout(&e) => return Err(HttpError::Timeout(self.request_timeout)),
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                return parse(&received, true)?
                    .ok_or_else(|| HttpError::BadReply("closed before a complete reply".into()));
            }
            received.extend_from_slice(chunk.get(..n).unwrap_or_default());
            if received.len() > RESPONSE_SIZE_MAX {
                return Err(HttpError::BadReply(format!(
                    "reply too big {} > {RESPONSE_SIZE_MAX}",
                    received.len()
                )));
            }
        }
    }

    fn connect(&self, address: &str, deadline: Instant) -> Result<TcpStream, HttpError> {
        let addrs: Vec<SocketAddr> = address
            .to_socket_addrs()
            .map_err(|_| HttpError::Resolve(address.to_owned()))?
            .collect();
        let mut last = HttpError::Resolve(address.to_owned());
        for addr in addrs {
            let budget = remaining(deadline, self.request_timeout)?.min(self.connect_timeout);
            match TcpStream::connect_timeout(&addr, budget) {
                Ok(stream) => return Ok(stream),
                Err(e) => last = e.into(),
            }
        }
        Err(last)
    }
}

fn remaining(deadline: Instant, request_timeout: Duration) -> Result<Duration, HttpError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(HttpError::Timeout(request_timeout))
    } else {
        Ok(left)
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Parses a complete reply from `bytes`, or `None` when more bytes are needed. `closed` says
/// the peer closed the connection (a body without length ends there).
fn parse(bytes: &[u8], closed: bool) -> Result<Option<Response>, HttpError> {
    let Some(head_end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(bytes.get(..head_end).unwrap_or_default())
        .map_err(|_| HttpError::BadReply("head is not UTF-8".into()))?;
    let body = bytes.get(head_end + 4..).unwrap_or_default();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_code(status_line)?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse::<usize>()
                .map_err(|_| HttpError::BadReply(format!("content-length {value:?}")))?;
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        }
    }
    let body = if chunked {
        match dechunk(body)? {
            Some(body) => body,
            None => return Ok(None),
        }
    } else if let Some(n) = length {
        match body.get(..n) {
            Some(body) => body.to_vec(),
            None => return Ok(None),
        }
    } else if closed {
        body.to_vec()
    } else {
        return Ok(None);
    };
    Ok(Some(Response { status, body }))
}

fn status_code(line: &str) -> Result<u16, HttpError> {
    let mut parts = line.split(' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(HttpError::BadReply(format!("status line {line:?}")));
    }
    code.parse::<u16>()
        .map_err(|_| HttpError::BadReply(format!("status line {line:?}")))
}

/// Decodes a chunked body, or `None` until its last chunk has arrived.
fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>, HttpError> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_text = std::str::from_utf8(rest.get(..line_end).unwrap_or_default())
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| HttpError::BadReply(format!("chunk size {size_text:?}")))?;
        rest = rest.get(line_end + 2..).unwrap_or_default();
        if size == 0 {
            return Ok(Some(body));
        }
        let Some(data) = rest.get(..size) else {
            return Ok(None);
        };
        body.extend_from_slice(data);
        let Some(after) = rest.get(size + 2..) else {
            return Ok(None);
        };
        rest = after;
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    fn client() -> HttpClient {
        HttpClient {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
        }
    }

    /// Serves one connection with `reply` and returns the request it read.
    fn serve_once(reply: &'static [u8]) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let n = stream.read(&mut buf).unwrap();
                assert!(n > 0, "client closed early");
                request.extend_from_slice(&buf[..n]);
            }
            stream.write_all(reply).unwrap();
            String::from_utf8(request).unwrap()
        });
        (address, handle)
    }

    #[test]
    fn reads_a_body_by_content_length() {
        let (address, server) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiXX");
        let response = client().request("GET", &address, "/ping").unwrap();
        assert_eq!(
            response,
            Response {
                status: 200,
                body: b"hi".to_vec()
            }
        );
        let request = server.join().unwrap();
        assert!(request.starts_with("GET /ping HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("Connection: close\r\n"), "{request}");
    }

    #[test]
    fn reads_a_chunked_body() {
        let (address, _server) = serve_once(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n",
        );
        let response = client().request("POST", &address, "/x").unwrap();
        assert_eq!(response.status, 404);
        assert_eq!(response.body, b"abcde");
    }

    #[test]
    fn reads_a_body_until_close() {
        let (address, _server) = serve_once(b"HTTP/1.0 200 OK\r\n\r\nall of it");
        let response = client().request("GET", &address, "/").unwrap();
        assert_eq!(response.body, b"all of it");
    }

    #[test]
    fn refuses_a_reply_that_is_not_http() {
        let (address, _server) = serve_once(b"SSH-2.0-OpenSSH\r\n\r\n");
        let err = client().request("GET", &address, "/").unwrap_err();
        assert!(matches!(err, HttpError::BadReply(_)), "{err}");
    }

    #[test]
    fn a_truncated_reply_is_an_error() {
        let (address, _server) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort");
        let err = client().request("GET", &address, "/").unwrap_err();
        assert!(matches!(err, HttpError::BadReply(_)), "{err}");
    }

    #[test]
    fn a_silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let quick = HttpClient {
            connect_timeout: Duration::from_millis(200),
            request_timeout: Duration::from_millis(200),
        };
        let err = quick.request("GET", &address, "/").unwrap_err();
        assert!(matches!(err, HttpError::Timeout(_)), "{err}");
        drop(listener);
    }

    #[test]
    fn a_closed_port_is_an_io_error() {
        let address = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().to_string()
        };
        let err = client().request("GET", &address, "/").unwrap_err();
        assert!(matches!(err, HttpError::Io(_)), "{err}");
    }

    #[test]
    fn an_unresolvable_address_is_reported() {
        let err = client().request("GET", "no port here", "/").unwrap_err();
        assert!(matches!(err, HttpError::Resolve(_)), "{err}");
    }
}
