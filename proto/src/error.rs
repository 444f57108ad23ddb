//! NSQ error codes and the one error type of this crate.
//!
//! Mirrors upstream `internal/protocol/errors.go` and the codes used in `nsqd/protocol_v2.go`.
//! The frame an nsqd client receives for an error is `CODE` followed by a space and the
//! description (or just `CODE` when the description is empty).

use std::borrow::Cow;
use std::fmt;

/// Every error code a V2 client can receive, spelled exactly as upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `E_INVALID`: an unknown or misplaced command.
    Invalid,
    /// `E_BAD_PROTOCOL`: the connection did not start with a known magic.
    BadProtocol,
    /// `E_BAD_TOPIC`: an invalid topic name.
    BadTopic,
    /// `E_BAD_CHANNEL`: an invalid channel name.
    BadChannel,
    /// `E_BAD_MESSAGE`: a bad message body or message size.
    BadMessage,
    /// `E_BAD_BODY`: a bad command body (size, JSON, values).
    BadBody,
    /// `E_PUB_FAILED`: the broker could not accept a PUB.
    PubFailed,
    /// `E_MPUB_FAILED`: the broker could not accept an MPUB.
    MpubFailed,
    /// `E_DPUB_FAILED`: the broker could not accept a DPUB.
    DpubFailed,
    /// `E_FIN_FAILED`: FIN of a message not in flight for this client (not fatal).
    FinFailed,
    /// `E_REQ_FAILED`: REQ of a message not in flight for this client (not fatal).
    ReqFailed,
    /// `E_TOUCH_FAILED`: TOUCH of a message not in flight for this client (not fatal).
    TouchFailed,
    /// `E_SUB_FAILED`: SUB refused (e.g. the topic or channel is exiting).
    SubFailed,
    /// `E_IDENTIFY_FAILED`: IDENTIFY could not be applied.
    IdentifyFailed,
    /// `E_AUTH_DISABLED`: AUTH sent to a broker without an auth server.
    AuthDisabled,
    /// `E_AUTH_FAILED`: the auth server refused the secret.
    AuthFailed,
    /// `E_AUTH_FIRST`: a command sent before a required AUTH.
    AuthFirst,
    /// `E_AUTH_ERROR`: the auth server could not be asked.
    AuthError,
    /// `E_UNAUTHORIZED`: the authorizations do not allow this command.
    Unauthorized,
}

impl ErrorCode {
    /// Every code, for tests and tables.
    pub const ALL: [ErrorCode; 19] = [
        ErrorCode::Invalid,
        ErrorCode::BadProtocol,
        ErrorCode::BadTopic,
        ErrorCode::BadChannel,
        ErrorCode::BadMessage,
        ErrorCode::BadBody,
        ErrorCode::PubFailed,
        ErrorCode::MpubFailed,
        ErrorCode::DpubFailed,
        ErrorCode::FinFailed,
        ErrorCode::ReqFailed,
        ErrorCode::TouchFailed,
        ErrorCode::SubFailed,
        ErrorCode::IdentifyFailed,
        ErrorCode::AuthDisabled,
        ErrorCode::AuthFailed,
        ErrorCode::AuthFirst,
        ErrorCode::AuthError,
        ErrorCode::Unauthorized,
    ];

    /// The exact upstream string, e.g. `E_BAD_TOPIC`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Invalid => "E_INVALID",
            ErrorCode::BadProtocol => "E_BAD_PROTOCOL",
            ErrorCode::BadTopic => "E_BAD_TOPIC",
            ErrorCode::BadChannel => "E_BAD_CHANNEL",
            ErrorCode::BadMessage => "E_BAD_MESSAGE",
            ErrorCode::BadBody => "E_BAD_BODY",
            ErrorCode::PubFailed => "E_PUB_FAILED",
            ErrorCode::MpubFailed => "E_MPUB_FAILED",
            ErrorCode::DpubFailed => "E_DPUB_FAILED",
            ErrorCode::FinFailed => "E_FIN_FAILED",
            ErrorCode::ReqFailed => "E_REQ_FAILED",
            ErrorCode::TouchFailed => "E_TOUCH_FAILED",
            ErrorCode::SubFailed => "E_SUB_FAILED",
            ErrorCode::IdentifyFailed => "E_IDENTIFY_FAILED",
            ErrorCode::AuthDisabled => "E_AUTH_DISABLED",
            ErrorCode::AuthFailed => "E_AUTH_FAILED",
            ErrorCode::AuthFirst => "E_AUTH_FIRST",
            ErrorCode::AuthError => "E_AUTH_ERROR",
            ErrorCode::Unauthorized => "E_UNAUTHORIZED",
        }
    }

    /// Parses an upstream code string.
    pub fn from_code(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == code)
    }

    /// Whether the broker closes the connection after sending this error.
    ///
    /// Upstream (`protocol_v2.go`) returns `ClientErr` (non-fatal) only for FIN, REQ and TOUCH
    /// of a message that is not in flight; every other error is a `FatalClientErr`.
    pub const fn is_fatal(self) -> bool {
        !matches!(
            self,
            ErrorCode::FinFailed | ErrorCode::ReqFailed | ErrorCode::TouchFailed
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A protocol error: the code a client sees and upstream's description text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.frame_text())]
pub struct ProtoError {
    /// The NSQ error code.
    pub code: ErrorCode,
    /// Upstream's description, e.g. `PUB message too big 1048577 > 1048576`.
    pub detail: Cow<'static, str>,
    /// The description's exact bytes when they are not UTF-8 (a client's bytes echoed back,
    /// as upstream's `invalid command %s` does); `detail` then holds a lossy copy.
    pub raw_detail: Option<Vec<u8>>,
}

impl ProtoError {
    /// An error with a description.
    pub fn new(code: ErrorCode, detail: impl Into<Cow<'static, str>>) -> ProtoError {
        ProtoError {
            code,
            detail: detail.into(),
            raw_detail: None,
        }
    }

    /// An error whose description is `prefix` followed by a client's bytes, echoed exactly.
    pub fn with_echo(code: ErrorCode, prefix: &str, echoed: &[u8]) -> ProtoError {
        let lossy = format!("{prefix}{}", String::from_utf8_lossy(echoed));
        let raw_detail = std::str::from_utf8(echoed).is_err().then(|| {
            let mut raw = prefix.as_bytes().to_vec();
            raw.extend_from_slice(echoed);
            raw
        });
        ProtoError {
            code,
            detail: Cow::Owned(lossy),
            raw_detail,
        }
    }

    /// The description as sent in an error frame.
    pub fn detail_bytes(&self) -> &[u8] {
        self.raw_detail.as_deref().unwrap_or(self.detail.as_bytes())
    }

    /// An error with no description: the frame carries the bare code.
    pub const fn bare(code: ErrorCode) -> ProtoError {
        ProtoError {
            code,
            detail: Cow::Borrowed(""),
            raw_detail: None,
        }
    }

    /// Whether the connection is closed after this error (see [`ErrorCode::is_fatal`]).
    pub const fn is_fatal(&self) -> bool {
        self.code.is_fatal()
    }

    /// The error frame's payload: `CODE description`, or `CODE` alone.
    pub fn frame_text(&self) -> String {
        if self.detail.is_empty() {
            self.code.as_str().to_owned()
        } else {
            format!("{} {}", self.code.as_str(), self.detail)
        }
    }
}
