//! Topic and channel name validity.
//!
//! Mirrors upstream `internal/protocol/names.go`: 1 to 64 characters from `[.a-zA-Z0-9_-]`,
//! optionally ending in `#ephemeral` (the suffix counts toward the 64).

/// The longest valid topic or channel name, suffix included.
pub const MAX_NAME_LEN: usize = 64;

/// The suffix that marks a topic or channel as ephemeral (never written to disk).
pub const EPHEMERAL_SUFFIX: &str = "#ephemeral";

/// Whether `name` is a valid topic name.
///
/// # Examples
/// ```
/// assert!(sluice_proto::names::is_valid_topic_name("orders"));
/// assert!(sluice_proto::names::is_valid_topic_name("t#ephemeral"));
/// assert!(!sluice_proto::names::is_valid_topic_name("bad name"));
/// ```
pub fn is_valid_topic_name(name: &str) -> bool {
    is_valid_name(name)
}

/// Whether `name` is a valid channel name.
pub fn is_valid_channel_name(name: &str) -> bool {
    is_valid_name(name)
}

/// Whether a (valid) topic or channel name is ephemeral.
pub fn is_ephemeral(name: &str) -> bool {
    name.ends_with(EPHEMERAL_SUFFIX)
}

fn is_valid_name(name: &str) -> bool {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return false;
    }
    let stem = name.strip_suffix(EPHEMERAL_SUFFIX).unwrap_or(name);
    !stem.is_empty()
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_bounds_include_the_suffix() {
        assert!(is_valid_topic_name(&"a".repeat(64)));
        assert!(!is_valid_topic_name(&"a".repeat(65)));
        assert!(is_valid_topic_name(&format!(
            "{}#ephemeral",
            "a".repeat(54)
        )));
        assert!(!is_valid_topic_name(&format!(
            "{}#ephemeral",
            "a".repeat(55)
        )));
        assert!(!is_valid_topic_name(""));
    }

    #[test]
    fn only_the_allowed_characters() {
        for ok in ["a.b", "A_z-0", "...", "x#ephemeral"] {
            assert!(is_valid_channel_name(ok), "{ok}");
        }
        for bad in [
            "a b",
            "a#b",
            "#ephemeral",
            "a#ephemeral#ephemeral",
            "é",
            "a/b",
            "a\n",
        ] {
            assert!(!is_valid_channel_name(bad), "{bad}");
        }
    }
}
