//! The byte-string encoding of the golden transcripts (`../shared/golden/README.md`, "Byte
//! encoding"): printable ASCII 0x20–0x7e stands for itself except the backslash, every other byte
//! is `\xNN` with two hex digits. Used both to read the files and to show bytes in failure reports
//! in the same notation, so a diff can be pasted next to the golden line.

/// Decodes a golden byte string into raw bytes.
///
/// # Errors
/// A backslash not followed by `x` and two hex digits, or a character outside printable ASCII.
pub fn decode(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        if byte == b'\\' {
            let hex = bytes
                .get(at + 1..at + 4)
                .filter(|h| h.first() == Some(&b'x'))
                .and_then(|h| std::str::from_utf8(h.get(1..)?).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad escape at offset {at} in {text:?}"))?;
            out.push(hex);
            at += 4;
        } else if (0x20..=0x7e).contains(&byte) {
            out.push(byte);
            at += 1;
        } else {
            return Err(format!(
                "unescaped byte 0x{byte:02x} at offset {at} in {text:?}"
            ));
        }
    }
    Ok(out)
}

/// Encodes bytes in the golden notation (the inverse of [`decode`]).
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &byte in bytes {
        if (0x20..=0x7e).contains(&byte) && byte != b'\\' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// Encodes at most `limit` bytes, noting how many were left out, for readable reports.
pub fn encode_short(bytes: &[u8], limit: usize) -> String {
    match bytes.get(..limit) {
        Some(head) if bytes.len() > limit => {
            format!("{}... ({} bytes in all)", encode(head), bytes.len())
        }
        _ => encode(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_readme_example() {
        let text = "PUB t\\x0a\\x00\\x00\\x00\\x02hi";
        assert_eq!(decode(text).unwrap(), b"PUB t\n\x00\x00\x00\x02hi".to_vec());
    }

    #[test]
    fn backslash_is_escaped_and_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        let text = encode(&all);
        assert!(text.contains("\\x5c"));
        assert!(!text.contains("\\\\"));
        assert_eq!(decode(&text).unwrap(), all);
    }

    #[test]
    fn uppercase_hex_is_accepted() {
        assert_eq!(decode("\\xFF\\x0A").unwrap(), vec![0xff, 0x0a]);
    }

    #[test]
    fn bad_escapes_are_errors() {
        assert!(decode("\\x0").is_err());
        assert!(decode("\\n").is_err());
        assert!(decode("\\xzz").is_err());
        assert!(decode("tab\there").is_err());
        assert!(decode("é").is_err());
    }

    #[test]
    fn short_encoding_says_how_long() {
        assert_eq!(encode_short(b"abcdef", 3), "abc... (6 bytes in all)");
        assert_eq!(encode_short(b"abc", 3), "abc");
    }
}
