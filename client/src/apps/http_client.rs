//! A small blocking HTTP/1.1 client for `sluice to-http`: `http://` URLs, one kept-alive
//! connection per host per client, bounded response reading.
//!
//! Mirrors what nsq_to_http gets from Go's `net/http` with `http_api.NewClient`: a connect
//! timeout, a request timeout (here applied to each write and read of the exchange), a
//! `User-Agent`, and connections reused while the server allows it. A reused connection that
//! fails before any byte of the answer arrived is retried once on a new one (the server may
//! have closed it while idle). No TLS: an `https://` URL is refused at start.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The most header bytes accepted in one response.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most body bytes accepted in one response (it is read only to reuse the connection).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// A parsed `http://host[:port]/path?query` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `host:port` (port 80 when absent).
    pub authority: String,
    /// The `Host` header value (as written in the URL).
    pub host: String,
    /// Path and query, at least `/`.
    pub target: String,
}

impl Url {
    /// Parses an `http://` URL.
    ///
    /// # Errors
    /// Go's words for a missing or unsupported scheme, or an empty host.
    ///
    /// # Examples
    /// ```
    /// use sluice_client::apps::http_client::Url;
    /// let url = Url::parse("http://127.0.0.1:8080/put?x=1").unwrap();
    /// assert_eq!((url.authority.as_str(), url.target.as_str()), ("127.0.0.1:8080", "/put?x=1"));
    /// assert_eq!(Url::parse("http://example.com").unwrap().authority, "example.com:80");
    /// assert!(Url::parse("https://example.com/").is_err());
    /// ```
    pub fn parse(url: &str) -> Result<Url, String> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(format!("unsupported protocol scheme \"\" in {url:?}"));
        };
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(format!("unsupported protocol scheme {scheme:?} in {url:?}"));
        }
        let (host, target) = match rest.find(['/', '?']) {
            Some(at) => (
                rest.get(..at).unwrap_or(rest),
                rest.get(at..).unwrap_or("/"),
            ),
            None => (rest, "/"),
        };
        if host.is_empty() {
            return Err(format!("no host in {url:?}"));
        }
        let target = if target.starts_with('?') {
            format!("/{target}")
        } else {
            target.to_owned()
        };
        let has_port = match host.rfind(':') {
            Some(colon) => host.rfind(']').is_none_or(|bracket| colon > bracket),
            None => false,
        };
        let authority = if has_port {
            host.to_owned()
        } else {
            format!("{host}:80")
        };
        Ok(Url {
            authority,
            host: host.to_owned(),
            target,
        })
    }
}

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body (dechunked).
    pub body: Vec<u8>,
}

/// One client: its kept-alive connections, its timeouts and fixed headers.
#[derive(Debug)]
pub struct HttpClient {
    connect_timeout: Duration,
    request_timeout: Duration,
    user_agent: String,
    idle: HashMap<String, BufReader<TcpStream>>,
}

impl HttpClient {
    /// A client with these timeouts and `User-Agent`.
    pub fn new(connect_timeout: Duration, request_timeout: Duration, user_agent: &str) -> Self {
        HttpClient {
            connect_timeout,
            request_timeout,
            user_agent: user_agent.to_owned(),
            idle: HashMap::new(),
        }
    }

    /// Sends one request and reads the whole answer.
    ///
    /// # Errors
    /// Connection, timeout or protocol failures, as text.
    pub fn request(
        &mut self,
        method: &str,
        url: &Url,
        headers: &[(String, String)],
        body: Option<&[u8]>,
    ) -> Result<Response, String> {
        let head = self.head(method, url, headers, body);
        if let Some(conn) = self.idle.remove(&url.authority) {
            match exchange(conn, &head, body) {
                Ok((response, conn)) => return Ok(self.keep(url, response, conn)),
                // Closed while idle: try once more on a new connection.
                Err(Failure::BeforeAnswer(_)) => {}
                Err(Failure::During(err)) => return Err(format!("{method} {}: {err}", url.host)),
            }
        }
        let conn = self.connect(url)?;
        match exchange(conn, &head, body) {
            Ok((response, conn)) => Ok(self.keep(url, response, conn)),
            Err(Failure::BeforeAnswer(err) | Failure::During(err)) => {
                Err(format!("{method} http://{}{}: {err}", url.host, url.target))
            }
        }
    }

    fn keep(
        &mut self,
        url: &Url,
        response: Response,
        conn: Option<BufReader<TcpStream>>,
    ) -> Response {
        if let Some(conn) = conn {
            self.idle.insert(url.authority.clone(), conn);
        }
        response
    }

    fn head(
        &self,
        method: &str,
        url: &Url,
        headers: &[(String, String)],
        body: Option<&[u8]>,
    ) -> Vec<u8> {
        let mut head = format!(
            "{method} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\n",
            url.target, url.host, self.user_agent
        );
        if let Some(body) = body {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        head.into_bytes()
    }

    fn connect(&self, url: &Url) -> Result<BufReader<TcpStream>, String> {
        let addrs = url
            .authority
            .to_socket_addrs()
            .map_err(|e| format!("resolving {}: {e}", url.authority))?;
        let mut last = format!("no address for {}", url.authority);
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.connect_timeout) {
                Ok(stream) => {
                    stream
                        .set_read_timeout(Some(self.request_timeout))
                        .and_then(|()| stream.set_write_timeout(Some(self.request_timeout)))
                        .and_then(|()| stream.set_nodelay(true))
                        .map_err(|e| e.to_string())?;
                    return Ok(BufReader::new(stream));
                }
                Err(e) => last = format!("dial tcp {addr}: {e}"),
            }
        }
        Err(last)
    }
}

/// How an exchange failed: before any byte of the answer (safe to retry on a new
/// connection), or during it.
enum Failure {
    BeforeAnswer(String),
    During(String),
}

/// Writes the request and reads the answer; returns the connection when it can be reused.
fn exchange(
    mut conn: BufReader<TcpStream>,
    head: &[u8],
    body: Option<&[u8]>,
) -> Result<(Response, Option<BufReader<TcpStream>>), Failure> {
    let stream = conn.get_mut();
    stream
        .write_all(head)
        .and_then(|()| stream.write_all(body.unwrap_or_default()))
        .and_then(|()| stream.flush())
        .map_err(|e| Failure::BeforeAnswer(e.to_string()))?;
    match conn.fill_buf() {
        Ok([]) => return Err(Failure::BeforeAnswer("server closed the connection".into())),
        Ok(_) => {}
        Err(e) => return Err(Failure::BeforeAnswer(e.to_string())),
    }
    let (response, reusable) =
        read_response(&mut conn).map_err(|e| Failure::During(e.to_string()))?;
    Ok((response, reusable.then_some(conn)))
}

/// Reads one response; returns it and whether the connection may carry another request.
fn read_response(reader: &mut impl BufRead) -> io::Result<(Response, bool)> {
    let mut budget = MAX_HEAD_BYTES;
    let status_line = read_line(reader, &mut budget)?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
    let mut length = None;
    let mut chunked = false;
    let mut reusable = version == "HTTP/1.1";
    loop {
        let line = read_line(reader, &mut budget)?;
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| bad(format!("bad Content-Length {value:?}")))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case("close") {
                reusable = false;
            } else if value.eq_ignore_ascii_case("keep-alive") {
                reusable = true;
            }
        }
    }
    let body = if chunked {
        read_chunked(reader, &mut budget)?
    } else if let Some(length) = length {
        read_exact_bounded(reader, length)?
    } else if status == 204 || status == 304 || (100..200).contains(&status) {
        Vec::new()
    } else {
        // No length: the body runs to the end of the connection.
        reusable = false;
        let mut body = Vec::new();
        reader
            .take(MAX_BODY_BYTES as u64 + 1)
            .read_to_end(&mut body)?;
        if body.len() > MAX_BODY_BYTES {
            return Err(bad(format!("body longer than {MAX_BODY_BYTES} bytes")));
        }
        body
    };
    Ok((Response { status, body }, reusable))
}

fn read_chunked(reader: &mut impl BufRead, budget: &mut usize) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader, budget)?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| bad(format!("bad chunk size {size_text:?}")))?;
        if size == 0 {
            // Trailers, up to the empty line.
            while !read_line(reader, budget)?.is_empty() {}
            return Ok(body);
        }
        if body.len() + size > MAX_BODY_BYTES {
            return Err(bad(format!("body longer than {MAX_BODY_BYTES} bytes")));
        }
        body.extend_from_slice(&read_exact_bounded(reader, size)?);
        if !read_line(reader, budget)?.is_empty() {
            return Err(bad("chunk not followed by CRLF".into()));
        }
    }
}

fn read_exact_bounded(reader: &mut impl Read, length: usize) -> io::Result<Vec<u8>> {
    if length > MAX_BODY_BYTES {
        return Err(bad(format!("body of {length} bytes > {MAX_BODY_BYTES}")));
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(body)
}

/// One CRLF- (or LF-) terminated line without its terminator, charged to `budget`.
fn read_line(reader: &mut impl BufRead, budget: &mut usize) -> io::Result<String> {
    let mut line = Vec::new();
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Err(io::Error::new(
                ErrorKind::UnexpectedEof,
                "connection closed mid-response",
            ));
        }
        let (take, done) = match available.iter().position(|b| *b == b'\n') {
            Some(at) => (at + 1, true),
            None => (available.len(), false),
        };
        if take > *budget {
            return Err(bad(format!(
                "response head longer than {MAX_HEAD_BYTES} bytes"
            )));
        }
        *budget -= take;
        line.extend_from_slice(available.get(..take).unwrap_or_default());
        reader.consume(take);
        if done {
            break;
        }
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

fn bad(detail: String) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> io::Result<(Response, bool)> {
        read_response(&mut BufReader::new(raw))
    }

    #[test]
    fn responses_by_length_chunks_and_close() {
        let (r, reuse) = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiEXTRA").unwrap();
        assert_eq!(
            (r.status, r.body.as_slice(), reuse),
            (200, &b"hi"[..], true)
        );
        let (r, reuse) = parse(
            b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n1;x\r\nd\r\n0\r\nT: 1\r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            (r.status, r.body.as_slice(), reuse),
            (500, &b"abcd"[..], false)
        );
        let (r, reuse) = parse(b"HTTP/1.0 200 OK\r\n\r\nto the end").unwrap();
        assert_eq!((r.body.as_slice(), reuse), (&b"to the end"[..], false));
        let (r, reuse) = parse(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
        assert_eq!((r.status, r.body.len(), reuse), (204, 0, true));
    }

    #[test]
    fn malformed_or_oversized_responses_are_errors() {
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab").is_err());
        assert!(parse(b"nonsense\r\n\r\n").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err());
        let mut long = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_HEAD_BYTES));
        assert!(parse(&long).is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n").is_err());
    }

    #[test]
    fn urls_need_http_and_keep_their_query() {
        let url = Url::parse("http://[::1]:81?a=b").unwrap();
        assert_eq!(
            (
                url.authority.as_str(),
                url.host.as_str(),
                url.target.as_str()
            ),
            ("[::1]:81", "[::1]:81", "/?a=b")
        );
        assert_eq!(Url::parse("http://[::1]/").unwrap().authority, "[::1]:80");
        assert!(Url::parse("127.0.0.1:80/x").is_err());
        assert!(Url::parse("http:///x").is_err());
    }
}
