//! Small HTML helpers for the server-rendered pages: escaping and number formatting.
//!
//! Pure. Everything that reaches a page from a broker or a request (topic names, host names,
//! user agents, error texts) goes through [`escape`].

/// Escapes text for HTML element content and double-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// Escapes a path segment for a link (percent-encoding everything but unreserved characters
/// and `:`, which node names hold).
pub fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An integer with thousands separators (`1,234,567`), as upstream's `commafy`.
pub fn commafy(value: i128) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if value < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// A duration in nanoseconds as `1h2m3s`, `4m5s`, `6s`, `1.5ms`, `750µs`.
pub fn nanos(ns: f64) -> String {
    if !ns.is_finite() || ns <= 0.0 {
        return "0".to_owned();
    }
    if ns < 1e3 {
        format!("{ns:.0}ns")
    } else if ns < 1e6 {
        format!("{:.1}µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.1}ms", ns / 1e6)
    } else {
        seconds(ns / 1e9)
    }
}

/// Whole seconds as `1h2m3s`, `4m5s`, `6s`.
pub fn seconds(secs: f64) -> String {
    let total = secs.max(0.0) as u64;
    let (h, m, s) = (total / 3600, (total / 60) % 60, total % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(path_segment("127.0.0.1:4151"), "127.0.0.1:4151");
        assert_eq!(path_segment("t#ephemeral"), "t%23ephemeral");
        assert_eq!(path_segment("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn numbers_and_durations_read_well() {
        assert_eq!(commafy(0), "0");
        assert_eq!(commafy(1234567), "1,234,567");
        assert_eq!(commafy(-1000), "-1,000");
        assert_eq!(nanos(1_500_000.0), "1.5ms");
        assert_eq!(nanos(3_723e9), "1h2m3s");
        assert_eq!(seconds(65.0), "1m5s");
    }
}
