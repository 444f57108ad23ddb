//! Asking an nsqlookupd which brokers have a topic: `GET /lookup?topic=` over a one-shot
//! HTTP/1.1 request on a blocking socket.
//!
//! Mirrors go-nsq's `consumer.go` `queryLookupd` (the URL, a 404 read as "no producers yet",
//! the producer address built from `broadcast_address` and `tcp_port`). The response parsing
//! is pure and tested on its own; the only IO is [`http_get`].

use std::io::{Read, Write};
use std::time::Duration;

use sluice_proto::http_json::LookupResponse;

use crate::error::Error;

/// The largest HTTP response read from a lookupd.
const MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;

/// The TCP addresses (`host:port`) of the brokers lookupd `lookupd` lists for `topic`: empty
/// when it does not know the topic (404 `TOPIC_NOT_FOUND`).
///
/// # Errors
/// [`Error::Lookup`] when the lookupd cannot be reached or answers something unexpected.
pub fn lookup(lookupd: &str, topic: &str, timeout: Duration) -> Result<Vec<String>, Error> {
    let path = format!("/lookup?topic={}", encode_query_value(topic));
    let (status, body) = http_get(lookupd, &path, timeout)?;
    parse_lookup(status, &body).map_err(|detail| Error::Lookup {
        addr: lookupd.to_owned(),
        detail,
    })
}

/// Interprets a `/lookup` answer: the producers' addresses, or none for a 404.
///
/// # Errors
/// A description when the status is neither 200 nor 404 or the JSON is not a lookup answer.
///
/// # Examples
/// ```
/// let body = br#"{"channels":[],"producers":[{"broadcast_address":"h","tcp_port":4150}]}"#;
/// assert_eq!(sluice_client::lookup::parse_lookup(200, body).unwrap(), vec!["h:4150"]);
/// assert!(sluice_client::lookup::parse_lookup(404, b"{}").unwrap().is_empty());
/// ```
pub fn parse_lookup(status: u16, body: &[u8]) -> Result<Vec<String>, String> {
    match status {
        200 => {}
        404 => return Ok(Vec::new()),
        other => {
            return Err(format!(
                "status {other}: {}",
                String::from_utf8_lossy(body).trim()
            ))
        }
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("bad JSON: {e}"))?;
    // Pre-1.0 lookupds wrapped the answer in {"status_code":…, "data": {…}}.
    let value = match value.get("data") {
        Some(data) if data.is_object() => data.clone(),
        _ => value,
    };
    let response: LookupResponse =
        serde_json::from_value(value).map_err(|e| format!("bad lookup JSON: {e}"))?;
    Ok(response
        .producers
        .iter()
        .filter(|p| !p.broadcast_address.is_empty() && p.tcp_port != 0)
        .map(|p| join_host_port(&p.broadcast_address, p.tcp_port))
        .collect())
}

/// `host:port`, bracketing IPv6 literals.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Sends `GET path` to `addr` (`host:port` or `http://host:port`) and returns the status and
/// the body.
///
/// # Errors
/// [`Error::Lookup`] on connection failure, timeout or a malformed response.
pub fn http_get(addr: &str, path: &str, timeout: Duration) -> Result<(u16, Vec<u8>), Error> {
    let host = addr
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default();
    let fail = |detail: String| Error::Lookup {
        addr: addr.to_owned(),
        detail,
    };
    let sock = host
        .parse::<std::net::SocketAddr>()
        .map_err(|e| e.to_string())
        .or_else(|_| {
            std::net::ToSocketAddrs::to_socket_addrs(host)
                .map_err(|e| e.to_string())?
                .next()
                .ok_or_else(|| "no address".to_owned())
        })
        .map_err(|e| fail(format!("resolving {host}: {e}")))?;
    let mut stream = std::net::TcpStream::connect_timeout(&sock, timeout)
        .map_err(|e| fail(format!("connecting: {e}")))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/vnd.nsq; version=1.0\r\n\
         Connection: close\r\n\r\n"
    );
    let mut raw = Vec::new();
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .and_then(|()| stream.write_all(request.as_bytes()))
        .and_then(|()| (&mut stream).take(MAX_RESPONSE_BYTES).read_to_end(&mut raw))
        .map_err(|e| fail(format!("GET {path}: {e}")))?;
    parse_http_response(&raw).map_err(fail)
}

/// Splits a complete HTTP/1.x response into its status and body (undoing chunked encoding).
///
/// # Errors
/// A description of what is malformed.
///
/// # Examples
/// ```
/// let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
/// assert_eq!(sluice_client::lookup::parse_http_response(raw).unwrap(), (200, b"hi".to_vec()));
/// ```
pub fn parse_http_response(raw: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = String::from_utf8_lossy(raw.get(..split).unwrap_or_default());
    let body = raw.get(split + 4..).unwrap_or_default();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        }
    }
    let body = if chunked {
        dechunk(body)?
    } else {
        let end = length.unwrap_or(body.len()).min(body.len());
        body.get(..end).unwrap_or_default().to_vec()
    };
    Ok((status, body))
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = String::from_utf8_lossy(data.get(..line_end).unwrap_or_default());
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        let start = line_end + 2;
        if size == 0 {
            return Ok(out);
        }
        let chunk = data.get(start..start + size).ok_or("truncated chunk")?;
        out.extend_from_slice(chunk);
        data = data.get(start + size + 2..).ok_or("truncated chunk end")?;
    }
}

/// Percent-encodes a query value (topic names only need `#` escaped, but be general).
fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_joined() {
        let raw = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_http_response(raw).unwrap(), (200, b"abcde".to_vec()));
        let truncated = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nabc";
        assert!(parse_http_response(truncated).is_err());
        assert!(parse_http_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_http_response(b"garbage\r\n\r\n").is_err());
    }

    #[test]
    fn lookup_answers_old_and_new_shapes_and_errors() {
        let new = br#"{"channels":["c"],"producers":[{"remote_address":"127.0.0.1:1","hostname":"h","broadcast_address":"::1","tcp_port":4150,"http_port":4151,"version":"1.3.0"}]}"#;
        assert_eq!(parse_lookup(200, new).unwrap(), vec!["[::1]:4150"]);
        let old = br#"{"status_code":200,"status_txt":"OK","data":{"channels":[],"producers":[{"broadcast_address":"a","tcp_port":1}]}}"#;
        assert_eq!(parse_lookup(200, old).unwrap(), vec!["a:1"]);
        assert!(parse_lookup(500, b"{\"message\":\"INTERNAL\"}").is_err());
        assert!(parse_lookup(200, b"not json").is_err());
    }

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(encode_query_value("t#ephemeral"), "t%23ephemeral");
        assert_eq!(encode_query_value("a.b-c_d"), "a.b-c_d");
    }
}
