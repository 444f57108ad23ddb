//! Go's `%q` for byte strings, so that error texts quoting a bad name match upstream's.
//!
//! Mirrors Go's `strconv.Quote` (used by `fmt`'s `%q` in `nsqd/protocol_v2.go`, e.g.
//! `SUB topic name %q is not valid`). Each invalid UTF-8 byte becomes `\xNN`; `"` and `\` are
//! escaped; printable characters stay; the rest become `\a`..`\v`, `\xNN`, `\uNNNN` or
//! `\UNNNNNNNN`.
//!
//! Go decides "printable" with Unicode tables (`unicode.IsPrint`). Without those tables this
//! approximation treats every non-ASCII character as printable except controls, non-ASCII
//! spaces, format characters, private-use characters and noncharacters. The two only disagree
//! on unassigned code points, which are quoted raw here and escaped by Go.

use std::fmt::Write;

/// Quotes `bytes` as Go's `%q` would.
pub(crate) fn go_quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_escaped(&mut out, c);
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out.push('"');
    out
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '"' | '\\' => {
            out.push('\\');
            out.push(c);
        }
        _ if is_print(c) => out.push(c),
        '\u{07}' => out.push_str("\\a"),
        '\u{08}' => out.push_str("\\b"),
        '\u{0c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{0b}' => out.push_str("\\v"),
        _ if c < ' ' || c == '\u{7f}' => {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        }
        _ if u32::from(c) < 0x10000 => {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        }
        _ => {
            let _ = write!(out, "\\U{:08x}", u32::from(c));
        }
    }
}

/// An approximation of Go's `unicode.IsPrint` (see the module docs).
fn is_print(c: char) -> bool {
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    let code = u32::from(c);
    !(c.is_control() || c.is_whitespace() || is_format(code) || is_private_or_noncharacter(code))
}

/// Unicode general category Cf (format characters).
fn is_format(code: u32) -> bool {
    matches!(
        code,
        0xAD | 0x600..=0x605
            | 0x61C
            | 0x6DD
            | 0x70F
            | 0x890..=0x891
            | 0x8E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

fn is_private_or_noncharacter(code: u32) -> bool {
    matches!(code, 0xE000..=0xF8FF | 0xF0000.. | 0xFDD0..=0xFDEF) || code & 0xFFFE == 0xFFFE
}

#[cfg(test)]
mod tests {
    use super::go_quote;

    #[test]
    fn matches_go_strconv_quote() {
        // Expected values are what Go's fmt.Sprintf("%q", string(b)) prints.
        let cases: [(&[u8], &str); 10] = [
            (b"bad$topic", r#""bad$topic""#),
            (b"", r#""""#),
            (b"a\"b\\c", r#""a\"b\\c""#),
            (b"t\r", r#""t\r""#),
            (b"\x07\x08\x0c\n\t\x0b", r#""\a\b\f\n\t\v""#),
            (b"\x00\x1f\x7f", r#""\x00\x1f\x7f""#),
            (b"\xff\xfe", r#""\xff\xfe""#),
            (b"\xf0\x9f\x98A", r#""\xf0\x9f\x98A""#),
            ("é😀".as_bytes(), "\"é😀\""),
            (
                "\u{a0}\u{feff}\u{10ffff}".as_bytes(),
                r#""\u00a0\ufeff\U0010ffff""#,
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(go_quote(input), expected, "{input:?}");
        }
    }
}
