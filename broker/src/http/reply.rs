//! One HTTP answer and how it goes on the wire, as upstream's decorators and Go's `net/http`
//! write it.
//!
//! Mirrors `internal/http_api/api_response.go` (`RespondV1` behind the `V1` decorator, and
//! `PlainText`) plus the parts of Go's `net/http` that clients can see: the reason phrase
//! (`413 Request Entity Too Large`), the header order (the handler's headers sorted by name,
//! then `Date`, `Content-Length`, a sniffed `Content-Type`, `Connection`) and the content type
//! Go sniffs for a body the handler left untyped (`text/plain; charset=utf-8` for ours).
//! Header names go out title-cased (`X-Nsq-Content-Type`), as Go canonicalizes them.

use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Response, StatusCode};
use serde::Serialize;

/// `X-NSQ-Content-Type`, sent by every `V1` answer.
pub const NSQ_CONTENT_TYPE: &str = "x-nsq-content-type";
/// Its value.
pub const NSQ_V1: &str = "nsq; version=1.0";
/// Content type of JSON answers.
pub const JSON: &str = "application/json; charset=utf-8";
/// Content type Go sniffs for our text bodies.
pub const TEXT: &str = "text/plain; charset=utf-8";
/// Content type of a redirect's body.
pub const HTML: &str = "text/html; charset=utf-8";

/// An answer before it is framed: status, the headers a handler sets, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// Headers set by the handler (lower-case names), in any order.
    pub headers: Vec<(&'static str, String)>,
    /// The body (dropped on the wire for `HEAD`).
    pub body: Bytes,
}

/// What of the request shapes its answer.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo {
    /// A `HEAD` request gets headers only.
    pub head: bool,
    /// The client asked `Connection: close`; Go echoes it.
    pub close: bool,
    /// For the `Date` header.
    pub now: SystemTime,
}

impl Reply {
    /// A `V1` success with a text body (upstream returns a `string` or `[]byte`): no content
    /// type of its own, Go sniffs `text/plain`.
    pub fn v1_text(body: impl Into<Bytes>) -> Reply {
        Reply {
            status: StatusCode::OK,
            headers: vec![(NSQ_CONTENT_TYPE, NSQ_V1.to_owned())],
            body: body.into(),
        }
    }

    /// A `V1` success with no body (upstream returns `nil`): no content type at all.
    pub fn v1_empty() -> Reply {
        Reply::v1_text(Bytes::new())
    }

    /// A `V1` success with a JSON body, serialized as Go's `encoding/json` would.
    pub fn v1_json<T: Serialize>(value: &T) -> Reply {
        match serde_json::to_vec(value) {
            Ok(json) => Reply::v1_json_text(go_json_escape(json)),
            Err(e) => {
                tracing::error!("HTTP: cannot serialize a reply - {e}");
                Reply::v1_error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR")
            }
        }
    }

    /// A `V1` success whose JSON text is already built.
    pub fn v1_json_text(json: impl Into<Bytes>) -> Reply {
        Reply {
            status: StatusCode::OK,
            headers: vec![
                ("content-type", JSON.to_owned()),
                (NSQ_CONTENT_TYPE, NSQ_V1.to_owned()),
            ],
            body: json.into(),
        }
    }

    /// A `V1` error: `{"message":"CODE"}` with the JSON content type.
    pub fn v1_error(status: StatusCode, message: &str) -> Reply {
        let body = serde_json::to_vec(&sluice_proto::http_json::ErrorBody {
            message: message.to_owned(),
        })
        .map(go_json_escape)
        .unwrap_or_else(|_| b"{\"message\":\"INTERNAL_ERROR\"}".to_vec());
        Reply {
            status,
            ..Reply::v1_json_text(body)
        }
    }

    /// A `PlainText` answer (upstream's `/ping`): the text alone, no `X-NSQ-Content-Type`.
    pub fn plain(status: StatusCode, body: impl Into<Bytes>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Go's `http.Redirect` to `location` (already a path with its query).
    pub fn redirect(status: StatusCode, location: &str, get: bool, head: bool) -> Reply {
        let location = escape_location(location);
        let mut headers = vec![("location", location.clone())];
        if get || head {
            headers.push(("content-type", HTML.to_owned()));
        }
        // Go writes a body for GET only ("shouldn't send the body for POST or HEAD").
        let body = if get {
            let reason = go_reason(status).unwrap_or("");
            format!("<a href=\"{}\">{reason}</a>.\n\n", html_escape(&location))
        } else {
            String::new()
        };
        Reply {
            status,
            headers,
            body: body.into(),
        }
    }

    /// Adds a header the handler sets (such as `Allow`).
    pub fn with_header(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }

    /// The response in Go's shape: the handler's headers sorted, then `Date`,
    /// `Content-Length`, the sniffed `Content-Type` and `Connection`.
    pub fn into_response(self, info: &RequestInfo) -> Response<Full<Bytes>> {
        let Reply {
            status,
            mut headers,
            body,
        } = self;
        headers.sort_by(|a, b| a.0.cmp(b.0));
        let typed = headers.iter().any(|(n, _)| *n == "content-type");
        let mut extra = vec![("date", super::go_time::http_date(info.now))];
        if body_allowed(status) {
            extra.push(("content-length", body.len().to_string()));
        }
        if !typed && !body.is_empty() {
            extra.push(("content-type", TEXT.to_owned()));
        }
        if info.close {
            extra.push(("connection", "close".to_owned()));
        }
        let body = if info.head { Bytes::new() } else { body };
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = status;
        let map = response.headers_mut();
        for (name, value) in headers.into_iter().chain(extra) {
            match HeaderValue::from_str(&value) {
                Ok(v) => {
                    map.append(HeaderName::from_static(name), v);
                }
                Err(_) => tracing::warn!("HTTP: dropping header {name} with an invalid value"),
            }
        }
        if let Some(reason) = go_reason(status) {
            response
                .extensions_mut()
                .insert(hyper::ext::ReasonPhrase::from_static(reason.as_bytes()));
        }
        response
    }
}

/// Whether a status may carry a body (not 1xx, 204 or 304).
fn body_allowed(status: StatusCode) -> bool {
    !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
}

/// Go's `http.StatusText` for the statuses this server sends, where it differs from (or must
/// be pinned against) the `http` crate's canonical reason.
fn go_reason(status: StatusCode) -> Option<&'static str> {
    Some(match status.as_u16() {
        200 => "OK",
        301 => "Moved Permanently",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Request Entity Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => return None,
    })
}

/// Escapes what Go's `encoding/json` escapes and `serde_json` does not: `<`, `>`, `&`,
/// U+2028 and U+2029. They can only occur inside JSON strings, so a byte-level rewrite is safe.
pub fn go_json_escape(json: Vec<u8>) -> Vec<u8> {
    let needs = json
        .windows(3)
        .any(|w| w == "\u{2028}".as_bytes() || w == "\u{2029}".as_bytes())
        || json.iter().any(|b| matches!(b, b'<' | b'>' | b'&'));
    if !needs {
        return json;
    }
    let text = String::from_utf8_lossy(&json);
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.into_bytes()
}

/// Go's `htmlEscape` in `http.Redirect`.
fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes bytes that may not appear in a header value (Go's `hexEscapeNonASCII`
/// escapes non-ASCII; control characters are escaped too so the header is always valid).
fn escape_location(location: &str) -> String {
    let mut out = String::with_capacity(location.len());
    for b in location.bytes() {
        if b.is_ascii_graphic() || b == b' ' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn info() -> RequestInfo {
        RequestInfo {
            head: false,
            close: true,
            now: UNIX_EPOCH + Duration::from_secs(1_795_250_703),
        }
    }

    fn header_lines(response: &Response<Full<Bytes>>) -> Vec<String> {
        response
            .headers()
            .iter()
            .map(|(n, v)| format!("{}: {}", n, v.to_str().unwrap()))
            .collect()
    }

    #[test]
    fn v1_errors_come_in_gos_header_order() {
        let r =
            Reply::v1_error(StatusCode::PAYLOAD_TOO_LARGE, "MSG_TOO_BIG").into_response(&info());
        assert_eq!(
            header_lines(&r),
            [
                "content-type: application/json; charset=utf-8",
                "x-nsq-content-type: nsq; version=1.0",
                "date: Sat, 21 Nov 2026 08:45:03 GMT",
                "content-length: 25",
                "connection: close",
            ]
        );
        let reason = r.extensions().get::<hyper::ext::ReasonPhrase>().unwrap();
        assert_eq!(reason.as_bytes(), b"Request Entity Too Large");
    }

    #[test]
    fn untyped_text_is_sniffed_after_the_length_and_empty_bodies_stay_untyped() {
        let r = Reply::v1_text("OK").into_response(&info());
        assert_eq!(
            header_lines(&r)[2..4],
            [
                "content-length: 2",
                "content-type: text/plain; charset=utf-8"
            ]
        );
        let r = Reply::v1_empty().into_response(&info());
        assert!(!header_lines(&r)
            .iter()
            .any(|l| l.starts_with("content-type")));
    }

    #[test]
    fn redirects_write_gos_body_for_get_only() {
        let r = Reply::redirect(StatusCode::MOVED_PERMANENTLY, "/ping?a=1&b", true, false);
        assert_eq!(
            r.body,
            Bytes::from("<a href=\"/ping?a=1&amp;b\">Moved Permanently</a>.\n\n")
        );
        let r = Reply::redirect(StatusCode::TEMPORARY_REDIRECT, "/pub", false, false);
        assert!(r.body.is_empty());
        assert_eq!(r.headers, [("location", "/pub".to_owned())]);
    }

    #[test]
    fn json_escapes_match_gos() {
        let json = serde_json::to_vec(&"a<b>&\u{2028}").unwrap();
        assert_eq!(
            go_json_escape(json),
            br#""a\u003cb\u003e\u0026\u2028""#.to_vec()
        );
    }

    #[test]
    fn head_answers_drop_the_body() {
        let mut i = info();
        i.head = true;
        let r =
            Reply::v1_error(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED").into_response(&i);
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert!(header_lines(&r).contains(&"content-length: 32".to_owned()));
    }
}
