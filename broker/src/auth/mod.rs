//! Authorizations from an auth server: what a client may publish and subscribe to.
//!
//! Mirrors upstream `internal/auth/authorizations.go`: the auth server answers
//! `{"ttl": N, "identity": …, "identity_url": …, "authorizations": [{"topic": REGEX,
//! "channels": [REGEX…], "permissions": ["subscribe", "publish"]}]}`; a topic or channel is
//! allowed when some authorization has the permission (`subscribe` for SUB, `publish` for
//! PUB/MPUB/DPUB, whose channel is the empty string), its topic regex matches the topic and one
//! of its channel regexes matches the channel. Regexes are searched unanchored, as Go's
//! `MatchString`. Pure: the clock is an argument; [`query`] does the HTTP.

pub mod query;

use std::time::{Duration, Instant};

use regex::Regex;
use serde::Deserialize;

/// Bound on the regexes of one answer, so a hostile auth server cannot make a connection
/// compile without end (each regex is also size-limited by the regex crate).
pub const REGEXES_MAX: usize = 4096;

/// One authorization of an answer.
#[derive(Debug, Clone)]
pub struct Authorization {
    topic: Regex,
    channels: Vec<Regex>,
    publish: bool,
    subscribe: bool,
}

impl Authorization {
    /// Upstream `Authorization.IsAllowed`.
    fn is_allowed(&self, topic: &str, channel: &str) -> bool {
        let permitted = if channel.is_empty() {
            self.publish
        } else {
            self.subscribe
        };
        permitted && self.topic.is_match(topic) && self.channels.iter().any(|c| c.is_match(channel))
    }
}

/// A client's authorizations, valid until `expires`.
#[derive(Debug, Clone)]
pub struct Authorizations {
    /// `identity` of the answer.
    pub identity: String,
    /// `identity_url` of the answer.
    pub identity_url: String,
    /// The authorizations.
    pub list: Vec<Authorization>,
    /// When they must be asked for again (`ttl` seconds after the answer).
    pub expires: Instant,
}

/// The answer as it is on the wire (upstream `auth.State`).
#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(default)]
    ttl: i64,
    #[serde(default)]
    identity: String,
    #[serde(default)]
    identity_url: String,
    #[serde(default)]
    authorizations: Vec<WireAuthorization>,
}

#[derive(Debug, Deserialize)]
struct WireAuthorization {
    #[serde(default)]
    topic: String,
    #[serde(default)]
    channels: Vec<String>,
    #[serde(default)]
    permissions: Vec<String>,
}

impl Authorizations {
    /// Parses and validates an auth server's answer received at `now`.
    ///
    /// # Errors
    /// Upstream's texts: a JSON error, `unknown permission P`, `unable to compile topic "R" …`,
    /// `unable to compile channel "R" …`, `invalid TTL N (must be >0)`.
    pub fn from_json(body: &[u8], now: Instant) -> Result<Authorizations, String> {
        let answer: Answer = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let regexes: usize = answer
            .authorizations
            .iter()
            .map(|a| 1 + a.channels.len())
            .sum();
        if regexes > REGEXES_MAX {
            return Err(format!("too many regexes {regexes} > {REGEXES_MAX}"));
        }
        let mut list = Vec::with_capacity(answer.authorizations.len());
        for wire in answer.authorizations {
            let (mut publish, mut subscribe) = (false, false);
            for p in &wire.permissions {
                match p.as_str() {
                    "publish" => publish = true,
                    "subscribe" => subscribe = true,
                    other => return Err(format!("unknown permission {other}")),
                }
            }
            let topic = Regex::new(&wire.topic)
                .map_err(|e| format!("unable to compile topic {:?} {e}", wire.topic))?;
            let channels = wire
                .channels
                .iter()
                .map(|c| Regex::new(c).map_err(|e| format!("unable to compile channel {c:?} {e}")))
                .collect::<Result<_, _>>()?;
            list.push(Authorization {
                topic,
                channels,
                publish,
                subscribe,
            });
        }
        if answer.ttl <= 0 {
            return Err(format!("invalid TTL {} (must be >0)", answer.ttl));
        }
        let ttl = Duration::from_secs(u64::try_from(answer.ttl).unwrap_or(u64::MAX));
        Ok(Authorizations {
            identity: answer.identity,
            identity_url: answer.identity_url,
            list,
            // A TTL too large for the clock never expires in practice.
            expires: now
                .checked_add(ttl)
                .or_else(|| now.checked_add(Duration::from_secs(1 << 40)))
                .unwrap_or(now),
        })
    }

    /// Whether `topic` (and `channel`, empty for a publish) is allowed (upstream
    /// `State.IsAllowed`).
    pub fn is_allowed(&self, topic: &str, channel: &str) -> bool {
        self.list.iter().any(|a| a.is_allowed(topic, channel))
    }

    /// Whether the answer's ttl has passed (upstream `State.IsExpired`).
    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires < now
    }

    /// The AUTH response body: `{"identity":…,"identity_url":…,"permission_count":N}`.
    pub fn response_json(&self) -> Vec<u8> {
        serde_json::json!({
            "identity": self.identity,
            "identity_url": self.identity_url,
            "permission_count": self.list.len(),
        })
        .to_string()
        .into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Authorizations, String> {
        Authorizations::from_json(json.as_bytes(), Instant::now())
    }

    #[test]
    fn permissions_topics_and_channels_are_checked() {
        let a = parse(
            r#"{"ttl":60,"identity":"me","authorizations":[
                {"topic":"^orders$","channels":[".*"],"permissions":["subscribe","publish"]},
                {"topic":"logs","channels":["^archive$"],"permissions":["subscribe"]}]}"#,
        )
        .unwrap();
        assert!(a.is_allowed("orders", ""));
        assert!(a.is_allowed("orders", "billing"));
        assert!(!a.is_allowed("orders2", ""));
        assert!(
            a.is_allowed("app-logs", "archive"),
            "unanchored, as Go's MatchString"
        );
        assert!(!a.is_allowed("logs", ""), "no publish permission on logs");
        assert!(!a.is_allowed("logs", "live"));
    }

    #[test]
    fn publish_needs_a_channel_regex_matching_the_empty_string() {
        // Upstream passes "" as the channel of a publish, so ["^x$"] denies it.
        let a = parse(r#"{"ttl":1,"authorizations":[{"topic":".*","channels":["^x$"],"permissions":["publish"]}]}"#).unwrap();
        assert!(!a.is_allowed("t", ""));
    }

    #[test]
    fn bad_answers_get_upstreams_errors() {
        assert_eq!(
            parse(r#"{"ttl":1,"authorizations":[{"topic":"t","channels":[],"permissions":["admin"]}]}"#).unwrap_err(),
            "unknown permission admin"
        );
        assert!(parse(
            r#"{"ttl":1,"authorizations":[{"topic":"(","channels":[],"permissions":[]}]}"#
        )
        .unwrap_err()
        .starts_with("unable to compile topic \"(\""));
        assert!(parse(
            r#"{"ttl":1,"authorizations":[{"topic":"t","channels":["["],"permissions":[]}]}"#
        )
        .unwrap_err()
        .starts_with("unable to compile channel \"[\""));
        assert_eq!(
            parse(r#"{"ttl":0}"#).unwrap_err(),
            "invalid TTL 0 (must be >0)"
        );
        assert!(parse("not json").is_err());
        let forever = parse(r#"{"ttl":9223372036854775807,"authorizations":[]}"#).unwrap();
        assert!(!forever.is_expired(Instant::now() + Duration::from_secs(1 << 30)));
    }

    #[test]
    fn ttl_sets_the_expiry_and_the_response_counts_permissions() {
        let now = Instant::now();
        let a = Authorizations::from_json(
            br#"{"ttl":2,"identity":"id","identity_url":"http://x","authorizations":[{"topic":"t","channels":[".*"],"permissions":["publish"]}]}"#,
            now,
        )
        .unwrap();
        assert!(!a.is_expired(now + Duration::from_secs(2)));
        assert!(a.is_expired(now + Duration::from_millis(2001)));
        assert_eq!(
            String::from_utf8(a.response_json()).unwrap(),
            r#"{"identity":"id","identity_url":"http://x","permission_count":1}"#
        );
    }
}
