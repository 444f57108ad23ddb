//! Query strings and paths decoded as Go's `net/url` decodes them.
//!
//! Mirrors `url.ParseQuery` (pairs split on `&`, a `;` makes the query invalid, `+` is a space,
//! a bad `%` escape is an error) and `url.PathUnescape`, which upstream's handlers rely on
//! through `http_api.NewReqParams` (`INVALID_REQUEST` on error) and the router (`req.URL.Path`).

/// The decoded parameters of a query string, in order, keys repeated as given.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses a raw query string (without the `?`).
    ///
    /// # Errors
    /// When upstream's `url.ParseQuery` reports one: a `;` in a pair or a bad escape.
    pub(crate) fn parse(raw: &str) -> Result<Query, ()> {
        let mut pairs = Vec::new();
        let mut failed = false;
        for pair in raw.split('&') {
            if pair.contains(';') {
                failed = true;
                continue;
            }
            if pair.is_empty() {
                continue;
            }
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match (unescape(key, true), unescape(value, true)) {
                (Some(key), Some(value)) => pairs.push((key, value)),
                _ => failed = true,
            }
        }
        if failed {
            Err(())
        } else {
            Ok(Query { pairs })
        }
    }

    /// The first value of `key` (upstream's `ReqParams.Get`), present even when empty.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Decodes `%XX` escapes (and `+` as a space in a query). Bytes that do not form UTF-8 are
/// replaced, which no valid topic, channel or node name contains anyway.
pub(crate) fn unescape(text: &str, plus_is_space: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hi = hex_value(*bytes.get(i + 1)?)?;
                let lo = hex_value(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_go() {
        let q = Query::parse("topic=a%20b&topic=second&node=h%3A1&flag&&x=1+2").unwrap();
        assert_eq!(q.get("topic"), Some("a b"));
        assert_eq!(q.get("node"), Some("h:1"));
        assert_eq!(q.get("flag"), Some(""));
        assert_eq!(q.get("x"), Some("1 2"));
        assert_eq!(q.get("missing"), None);
        assert_eq!(Query::parse("").unwrap(), Query::default());
        assert!(Query::parse("topic=a;b").is_err());
        assert!(Query::parse("topic=%zz").is_err());
        assert!(Query::parse("topic=%4").is_err());
    }

    #[test]
    fn paths_keep_plus() {
        assert_eq!(unescape("/l%6Fokup+", false).as_deref(), Some("/lookup+"));
    }
}
