//! A connection's AUTH state: the secret it sent, the authorizations the auth server gave, and
//! the checks PUB, MPUB, DPUB and SUB make against them.
//!
//! Mirrors upstream `nsqd/protocol_v2.go` (`AUTH`, `CheckAuth`) and the auth half of
//! `nsqd/client_v2.go` (`Auth`, `QueryAuthd`, `IsAuthorized`, `HasAuthorizations`). The HTTP
//! call itself happens in the connection's read path (`Transport`), never inside a command:
//! AUTH records the secret here and the answer is sent once the server replied; an expired
//! answer is refreshed before the next PUB or SUB is executed. Sync, no IO.

use std::time::Instant;

use sluice_proto::{ErrorCode, ProtoError};

use crate::auth::Authorizations;

/// What a connection knows about its authorization. Moves with the connection to another shard.
#[derive(Debug, Default)]
pub struct ConnAuth {
    secret: Option<String>,
    state: Option<Authorizations>,
    /// The last refresh failed: the next check answers `E_AUTH_FAILED`.
    refresh_failed: bool,
}

impl ConnAuth {
    /// Upstream `HasAuthorizations`: an answer with at least one authorization.
    pub fn has_authorizations(&self) -> bool {
        self.state.as_ref().is_some_and(|s| !s.list.is_empty())
    }

    /// The secret sent in AUTH.
    pub fn secret(&self) -> Option<&str> {
        self.secret.as_deref()
    }

    /// Handles the AUTH command's checks, in upstream's order, and keeps its secret.
    ///
    /// # Errors
    /// `E_INVALID AUTH already set`, `E_AUTH_DISABLED AUTH disabled` (both fatal).
    pub fn handle_auth(&mut self, enabled: bool, secret: &[u8]) -> Result<(), ProtoError> {
        if self.has_authorizations() {
            return Err(ProtoError::new(ErrorCode::Invalid, "AUTH already set"));
        }
        if !enabled {
            return Err(ProtoError::new(ErrorCode::AuthDisabled, "AUTH disabled"));
        }
        self.secret = Some(String::from_utf8_lossy(secret).into_owned());
        Ok(())
    }

    /// Takes the auth server's answer to AUTH; returns the response body for the client.
    ///
    /// # Errors
    /// `E_UNAUTHORIZED AUTH no authorizations found` when the answer grants nothing (fatal).
    pub fn handle_answer(&mut self, answer: Authorizations) -> Result<Vec<u8>, ProtoError> {
        let body = answer.response_json();
        self.state = Some(answer);
        if !self.has_authorizations() {
            return Err(ProtoError::new(
                ErrorCode::Unauthorized,
                "AUTH no authorizations found",
            ));
        }
        Ok(body)
    }

    /// Takes the result of a refresh.
    pub fn handle_refresh(&mut self, result: Result<Authorizations, String>) {
        match result {
            Ok(answer) => {
                self.state = Some(answer);
                self.refresh_failed = false;
            }
            Err(_) => self.refresh_failed = true,
        }
    }

    /// Whether the answer's ttl has passed (upstream refetches before the next check).
    pub fn needs_refresh(&self, now: Instant) -> bool {
        self.state.as_ref().is_some_and(|s| s.is_expired(now))
    }

    /// Upstream `CheckAuth` for `cmd` on `topic` (and `channel`, empty for a publish).
    ///
    /// # Errors
    /// `E_AUTH_FIRST AUTH required before CMD`, `E_AUTH_FAILED AUTH failed` (the auth server
    /// could not be asked again), `E_UNAUTHORIZED AUTH failed for CMD on "T" "C"`; all fatal.
    pub fn check(
        &self,
        enabled: bool,
        cmd: &str,
        topic: &str,
        channel: &str,
    ) -> Result<(), ProtoError> {
        if !enabled {
            return Ok(());
        }
        // After a refresh that granted nothing the answer is still there (upstream's check of
        // HasAuthorizations comes before the refetch), so this is E_UNAUTHORIZED below.
        let Some(state) = self.state.as_ref() else {
            return Err(ProtoError::new(
                ErrorCode::AuthFirst,
                format!("AUTH required before {cmd}"),
            ));
        };
        if self.refresh_failed {
            return Err(ProtoError::new(ErrorCode::AuthFailed, "AUTH failed"));
        }
        if !state.is_allowed(topic, channel) {
            return Err(ProtoError::new(
                ErrorCode::Unauthorized,
                format!("AUTH failed for {cmd} on {topic:?} {channel:?}"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(json: &str, now: Instant) -> Authorizations {
        Authorizations::from_json(json.as_bytes(), now).unwrap()
    }

    const GRANT: &str = r#"{"ttl":10,"identity":"i","authorizations":[{"topic":"^allowed$","channels":[".*"],"permissions":["publish","subscribe"]}]}"#;

    #[test]
    fn checks_follow_upstreams_order_and_texts() {
        let now = Instant::now();
        let mut auth = ConnAuth::default();
        assert!(auth.check(false, "PUB", "t", "").is_ok(), "auth disabled");
        let e = auth.check(true, "PUB", "t", "").unwrap_err();
        assert_eq!(e.frame_text(), "E_AUTH_FIRST AUTH required before PUB");
        auth.handle_auth(true, b"secret").unwrap();
        let body = auth.handle_answer(answer(GRANT, now)).unwrap();
        assert_eq!(
            body,
            br#"{"identity":"i","identity_url":"","permission_count":1}"#
        );
        assert!(auth.check(true, "PUB", "allowed", "").is_ok());
        assert!(auth.check(true, "SUB", "allowed", "ch").is_ok());
        let e = auth.check(true, "MPUB", "other", "").unwrap_err();
        assert_eq!(
            e.frame_text(),
            r#"E_UNAUTHORIZED AUTH failed for MPUB on "other" """#
        );
        let e = auth.handle_auth(true, b"again").unwrap_err();
        assert_eq!(e.frame_text(), "E_INVALID AUTH already set");
    }

    #[test]
    fn auth_disabled_and_empty_answers_are_refused() {
        let mut auth = ConnAuth::default();
        let e = auth.handle_auth(false, b"s").unwrap_err();
        assert_eq!(e.frame_text(), "E_AUTH_DISABLED AUTH disabled");
        auth.handle_auth(true, b"s").unwrap();
        let e = auth
            .handle_answer(answer(r#"{"ttl":1,"authorizations":[]}"#, Instant::now()))
            .unwrap_err();
        assert_eq!(
            e.frame_text(),
            "E_UNAUTHORIZED AUTH no authorizations found"
        );
    }

    #[test]
    fn refresh_results_change_the_checks() {
        let now = Instant::now();
        let mut auth = ConnAuth::default();
        auth.handle_auth(true, b"s").unwrap();
        auth.handle_answer(answer(GRANT, now)).unwrap();
        assert!(!auth.needs_refresh(now));
        assert!(auth.needs_refresh(now + std::time::Duration::from_secs(11)));
        auth.handle_refresh(Err("connection refused".into()));
        let e = auth.check(true, "PUB", "allowed", "").unwrap_err();
        assert_eq!(e.frame_text(), "E_AUTH_FAILED AUTH failed");
        auth.handle_refresh(Ok(answer(r#"{"ttl":5,"authorizations":[]}"#, now)));
        let e = auth.check(true, "PUB", "allowed", "").unwrap_err();
        assert_eq!(
            e.frame_text(),
            r#"E_UNAUTHORIZED AUTH failed for PUB on "allowed" """#
        );
        auth.handle_refresh(Ok(answer(GRANT, now)));
        assert!(auth.check(true, "PUB", "allowed", "").is_ok());
    }
}
