//! A minimal blocking HTTP/1.1 client for the suites: one request per connection
//! (`Connection: close`), bodies by `Content-Length`, chunked, or until close.
//!
//! Hand-written on purpose: the golden lines include raw exchanges and exact header checks, so
//! the harness must see the bytes the server sent, with nothing normalised by a client library.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Replies larger than this are a failure rather than buffered.
pub const RESPONSE_SIZE_MAX: usize = 64 << 20;

/// A parsed reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Status code from the status line.
    pub status: u16,
    /// Header names as sent, in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request and reads the reply within `timeout`.
///
/// # Errors
/// Connection failures, a timeout, or a reply that is not HTTP/1.x.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<Response, String> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if !body.is_empty() || !matches!(method, "GET" | "HEAD") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    let is_head = method == "HEAD";
    let deadline = Instant::now() + timeout;
    let mut stream = connect(addr, deadline)?;
    stream
        .write_all(&bytes)
        .map_err(|e| format!("HTTP send to {addr}: {e}"))?;
    let mut received = Vec::new();
    loop {
        if let Some(response) = parse_response(&received, is_head, false)? {
            return Ok(response);
        }
        if !read_some(&mut stream, &mut received, deadline)? {
            return parse_response(&received, is_head, true)?
                .ok_or_else(|| "connection closed before a complete HTTP reply".to_owned());
        }
    }
}

/// Sends raw bytes and returns everything the server sends until it closes the connection.
///
/// # Errors
/// Connection failures, or the server not closing within `timeout`.
pub fn raw_exchange(addr: SocketAddr, bytes: &[u8], timeout: Duration) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + timeout;
    let mut stream = connect(addr, deadline)?;
    stream
        .write_all(bytes)
        .map_err(|e| format!("raw send to {addr}: {e}"))?;
    let mut received = Vec::new();
    while read_some(&mut stream, &mut received, deadline)? {}
    Ok(received)
}

fn connect(addr: SocketAddr, deadline: Instant) -> Result<TcpStream, String> {
    let budget = deadline.saturating_duration_since(Instant::now());
    TcpStream::connect_timeout(&addr, budget.max(Duration::from_millis(1)))
        .map_err(|e| format!("connect to {addr}: {e}"))
}

/// Reads once; `Ok(false)` on end of stream (a reset after the reply counts as the end).
fn read_some(
    stream: &mut TcpStream,
    into: &mut Vec<u8>,
    deadline: Instant,
) -> Result<bool, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(format!(
            "timed out waiting for the HTTP reply; received so far: \"{}\"",
            crate::escape::encode_short(into, 400)
        ));
    }
    stream
        .set_read_timeout(Some(left))
        .map_err(|e| e.to_string())?;
    let mut chunk = [0u8; 16 * 1024];
    match stream.read(&mut chunk) {
        Ok(0) => Ok(false),
        Ok(n) if into.len() + n > RESPONSE_SIZE_MAX => Err("HTTP reply too large".to_owned()),
        Ok(n) => {
            into.extend_from_slice(chunk.get(..n).unwrap_or_default());
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !into.is_empty() => Ok(false),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            read_some(stream, into, deadline)
        }
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(true),
        Err(e) => Err(format!("HTTP read: {e}")),
    }
}

/// Parses a complete reply from `bytes`, `Ok(None)` if it is not complete yet. With `at_eof`, a
/// body without length or chunking ends where the bytes end.
///
/// # Errors
/// A malformed status line, header or chunk.
pub fn parse_response(
    bytes: &[u8],
    is_head: bool,
    at_eof: bool,
) -> Result<Option<Response>, String> {
    let Some(head_end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if at_eof && !bytes.is_empty() {
            Err(format!(
                "truncated HTTP head: \"{}\"",
                crate::escape::encode_short(bytes, 400)
            ))
        } else {
            Ok(None)
        };
    };
    let head = std::str::from_utf8(bytes.get(..head_end).unwrap_or_default())
        .map_err(|_| "HTTP head is not UTF-8".to_owned())?;
    let mut lines = head.split("\r\n");
    let status = parse_status_line(lines.next().unwrap_or_default())?;
    let headers = lines
        .map(|line| {
            line.split_once(':')
                .map(|(n, v)| (n.to_owned(), v.trim().to_owned()))
                .ok_or_else(|| format!("bad header line {line:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let rest = bytes.get(head_end + 4..).unwrap_or_default();
    let no_body = is_head || status / 100 == 1 || status == 204 || status == 304;
    let body = if no_body {
        Some(Vec::new())
    } else if response
        .header("Transfer-Encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        dechunk(rest)?
    } else if let Some(length) = response.header("Content-Length") {
        let length: usize = length
            .parse()
            .map_err(|_| format!("bad Content-Length {length:?}"))?;
        rest.get(..length).map(<[u8]>::to_vec)
    } else if at_eof {
        Some(rest.to_vec())
    } else {
        None
    };
    Ok(body.map(|body| {
        response.body = body;
        response
    }))
}

fn parse_status_line(line: &str) -> Result<u16, String> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().and_then(|c| c.parse().ok());
    match code {
        Some(code) if version.starts_with("HTTP/1.") => Ok(code),
        _ => Err(format!("bad status line {line:?}")),
    }
}

/// Decodes a chunked body; `Ok(None)` until the terminating zero-size chunk has arrived.
fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_text = String::from_utf8_lossy(rest.get(..line_end).unwrap_or_default());
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        let data_start = line_end + 2;
        if size == 0 {
            return Ok(Some(body));
        }
        let Some(data) = rest.get(data_start..data_start + size) else {
            return Ok(None);
        };
        body.extend_from_slice(data);
        rest = rest.get(data_start + size + 2..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_body() {
        let reply = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK";
        let response = parse_response(reply, false, false).unwrap().unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.header("content-type"), Some("text/plain"));
        assert_eq!(response.body, b"OK");
        let partial = &reply[..reply.len() - 1];
        assert_eq!(parse_response(partial, false, false).unwrap(), None);
    }

    #[test]
    fn chunked_body() {
        let reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n3;x=y\r\ncde\r\n0\r\n\r\n";
        let response = parse_response(reply, false, false).unwrap().unwrap();
        assert_eq!(response.body, b"abcde");
        assert_eq!(parse_response(&reply[..60], false, false).unwrap(), None);
    }

    #[test]
    fn body_until_close_and_head_requests() {
        let reply = b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nrest";
        assert_eq!(parse_response(reply, false, false).unwrap(), None);
        assert_eq!(
            parse_response(reply, false, true).unwrap().unwrap().body,
            b"rest"
        );
        let head = b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 20\r\n\r\n";
        let response = parse_response(head, true, false).unwrap().unwrap();
        assert_eq!((response.status, response.body.len()), (405, 0));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_response(b"E_BAD_PROTOCOL\r\n\r\n", false, false).is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK", false, true).is_err());
    }
}
