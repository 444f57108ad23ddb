//! Query strings parsed as Go's `url.ParseQuery` parses them, which upstream uses for every
//! parameter (`http_api.NewReqParams`, `getTopicFromQuery`).
//!
//! `&` separates pairs; a `;` anywhere in a pair is an error (Go 1.17 and later); `+` is a space
//! and `%XX` a byte, and a bad escape is an error. Upstream answers any error with
//! `400 INVALID_REQUEST`. A key may repeat; upstream reads its first value. Pure, no IO.

/// Why a query string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// A `;` separator (Go: "invalid semicolon separator in query").
    Semicolon,
    /// A `%` not followed by two hex digits.
    BadEscape,
}

/// The parameters of a request, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses a raw query string (without the `?`). `None` is an empty query.
    ///
    /// # Errors
    /// The first [`QueryError`], as `url.ParseQuery` reports it.
    pub fn parse(raw: Option<&str>) -> Result<Query, QueryError> {
        let mut pairs = Vec::new();
        let mut first_error = None;
        for part in raw.unwrap_or("").split('&') {
            if part.contains(';') {
                first_error.get_or_insert(QueryError::Semicolon);
                continue;
            }
            if part.is_empty() {
                continue;
            }
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            match (unescape(key), unescape(value)) {
                (Ok(k), Ok(v)) => pairs.push((k, v)),
                _ => {
                    first_error.get_or_insert(QueryError::BadEscape);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(Query { pairs }),
        }
    }

    /// The first value of `key`, if the key is present (possibly with an empty value).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Go's `QueryUnescape`: `+` is a space, `%XX` a byte. Bytes that are not UTF-8 become U+FFFD,
/// which no topic or channel name accepts, so they still fail validation as upstream's would.
fn unescape(text: &str) -> Result<String, QueryError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|c| hex(*c));
                let lo = bytes.get(i + 2).and_then(|c| hex(*c));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(QueryError::BadEscape),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Upstream's `boolParams` (`nsqd/http.go`): `true`/`1` and `false`/`0`; anything else is
/// "not given".
pub fn bool_param(value: Option<&str>) -> Option<bool> {
    match value? {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_value_wins_and_escapes_decode() {
        let q = Query::parse(Some("topic=a%2Eb&topic=second&x&msg=hello+world")).unwrap();
        assert_eq!(q.get("topic"), Some("a.b"));
        assert_eq!(q.get("x"), Some(""));
        assert_eq!(q.get("msg"), Some("hello world"));
        assert_eq!(q.get("missing"), None);
        assert_eq!(Query::parse(None).unwrap(), Query::default());
        assert_eq!(Query::parse(Some("&&")).unwrap(), Query::default());
    }

    #[test]
    fn bad_escapes_and_semicolons_are_errors() {
        assert_eq!(Query::parse(Some("topic=%zz")), Err(QueryError::BadEscape));
        assert_eq!(Query::parse(Some("topic=%4")), Err(QueryError::BadEscape));
        assert_eq!(Query::parse(Some("a=1;b=2")), Err(QueryError::Semicolon));
        assert_eq!(Query::parse(Some("a=1;2")), Err(QueryError::Semicolon));
    }

    #[test]
    fn non_utf8_bytes_cannot_form_a_valid_name() {
        let q = Query::parse(Some("topic=%FF")).unwrap();
        assert!(!sluice_proto::names::is_valid_topic_name(
            q.get("topic").unwrap()
        ));
    }

    #[test]
    fn bool_params_are_upstreams() {
        assert_eq!(bool_param(Some("1")), Some(true));
        assert_eq!(bool_param(Some("false")), Some(false));
        assert_eq!(bool_param(Some("yes")), None);
        assert_eq!(bool_param(None), None);
    }
}
