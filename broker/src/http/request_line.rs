//! The first request line of a connection, judged as Go's `net/http` judges it, so that bytes
//! which are not HTTP get Go's exact refusal rather than hyper's.
//!
//! Mirrors `net/http` `readRequest`: `parseRequestLine` (method, one space, target, one space,
//! version), `ParseHTTPVersion` (`HTTP/x.y`) and `validMethod` (an RFC 7230 token). A line that
//! fails any of these is answered with [`GO_BAD_REQUEST`] and the connection closes, as
//! upstream does for, e.g., a V2 client that dialled the HTTP port (golden
//! `tcp_magic_to_http_port`). Lines that pass go to hyper untouched. Pure, no IO.

/// Go's answer to a malformed request (`conn.serve`, "400 Bad Request" with `errorHeaders`).
pub const GO_BAD_REQUEST: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request";

/// The most bytes read while looking for the end of the first line. A longer line is not
/// judged here (hyper applies its own limits).
pub const FIRST_LINE_MAX: usize = 8 * 1024;

/// What to do with a connection, given its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The first line is complete and malformed: answer [`GO_BAD_REQUEST`] and close.
    Refuse,
    /// Hand the bytes to hyper.
    Pass,
}

/// Judges the first line of `head` (the bytes read so far). Incomplete lines pass.
pub fn judge(head: &[u8]) -> Verdict {
    let Some(end) = head.iter().position(|&b| b == b'\n') else {
        return Verdict::Pass;
    };
    let line = head.get(..end).unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if well_formed(line) {
        Verdict::Pass
    } else {
        Verdict::Refuse
    }
}

fn well_formed(line: &[u8]) -> bool {
    let mut parts = line.splitn(3, |&b| b == b' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    !method.is_empty()
        && method.iter().all(|&b| is_token(b))
        && !target.is_empty()
        && version_ok(version)
}

/// `HTTP/1.1`, `HTTP/1.0`, or `HTTP/` digit `.` digit.
fn version_ok(version: &[u8]) -> bool {
    match version {
        b"HTTP/1.1" | b"HTTP/1.0" => true,
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor] => {
            major.is_ascii_digit() && minor.is_ascii_digit()
        }
        _ => false,
    }
}

/// An RFC 7230 `tchar`.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_requests_pass() {
        assert_eq!(
            judge(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"),
            Verdict::Pass
        );
        assert_eq!(judge(b"POST /pub?topic=t HTTP/1.0\n"), Verdict::Pass);
        assert_eq!(judge(b"BREW /pot HTTP/1.1\r\n"), Verdict::Pass);
        // Not a complete line yet: nothing to judge.
        assert_eq!(judge(b"GET /pi"), Verdict::Pass);
        assert_eq!(judge(b""), Verdict::Pass);
    }

    #[test]
    fn what_go_refuses_is_refused() {
        assert_eq!(judge(b"  V2IDENTIFY\n\x00\x00\x00\x02{}"), Verdict::Refuse);
        assert_eq!(judge(b"GET /ping\r\n"), Verdict::Refuse);
        assert_eq!(judge(b"GET /ping HTTP/1.1 extra\r\n"), Verdict::Refuse);
        assert_eq!(judge(b"GET /ping HTTP/11\r\n"), Verdict::Refuse);
        assert_eq!(judge(b"G(T /ping HTTP/1.1\r\n"), Verdict::Refuse);
        assert_eq!(judge(b"GET  HTTP/1.1\r\n"), Verdict::Refuse);
        assert_eq!(judge(b"\r\n"), Verdict::Refuse);
    }
}
