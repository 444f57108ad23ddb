//! The errors of this crate, typed so callers can tell a broker's refusal from a network
//! failure.
//!
//! Mirrors go-nsq's `ErrProtocol`/`ErrIdentify` split (`errors.go`): a [`BrokerError`] carries
//! the NSQ error code from an error frame; everything else is IO, framing or usage.

use std::io;

use sluice_proto::{ErrorCode, ProtoError, Verb};

/// An error frame sent by the broker, e.g. `E_PUB_FAILED PUB failed queue full`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerError {
    /// The request it answered, when known (producers match errors to requests in order).
    pub verb: Option<Verb>,
    /// The code, or `None` for a code this crate does not know (a newer broker's).
    pub code: Option<ErrorCode>,
    /// The whole frame text, code included.
    pub text: String,
}

impl BrokerError {
    /// Parses the data of an error frame.
    ///
    /// # Examples
    /// ```
    /// use sluice_client::BrokerError;
    /// use sluice_proto::ErrorCode;
    /// let err = BrokerError::from_frame(None, b"E_FIN_FAILED FIN 0 failed");
    /// assert_eq!(err.code, Some(ErrorCode::FinFailed));
    /// assert!(!err.is_fatal());
    /// ```
    pub fn from_frame(verb: Option<Verb>, data: &[u8]) -> BrokerError {
        let text = String::from_utf8_lossy(data).into_owned();
        let code = ErrorCode::from_code(text.split(' ').next().unwrap_or_default());
        BrokerError { verb, code, text }
    }

    /// Whether the broker closes the connection after this error (unknown codes count as
    /// fatal, as upstream treats every error but FIN/REQ/TOUCH failures).
    pub fn is_fatal(&self) -> bool {
        self.code.is_none_or(ErrorCode::is_fatal)
    }
}

impl std::fmt::Display for BrokerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.verb {
            Some(verb) => write!(f, "{} refused: {}", verb.as_str(), self.text),
            None => f.write_str(&self.text),
        }
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket operation failed (connect, read, write, timeout).
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the address.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The broker closed the connection.
    #[error("connection to {0} closed by the broker")]
    Closed(String),
    /// The broker answered with an error frame.
    #[error("broker {addr}: {error}")]
    Broker {
        /// The broker's address.
        addr: String,
        /// What it said.
        error: BrokerError,
    },
    /// The broker sent bytes that are not a valid V2 frame stream.
    #[error("bad frame from {addr}: {error}")]
    Protocol {
        /// The broker's address.
        addr: String,
        /// What was wrong.
        error: ProtoError,
    },
    /// The broker sent a valid frame the client did not expect at this point.
    #[error("unexpected frame from {addr}: {detail}")]
    Unexpected {
        /// The broker's address.
        addr: String,
        /// What arrived, and what was expected.
        detail: String,
    },
    /// A topic name that the broker would refuse.
    #[error("invalid topic name {0:?}")]
    InvalidTopic(String),
    /// A channel name that the broker would refuse.
    #[error("invalid channel name {0:?}")]
    InvalidChannel(String),
    /// A call that cannot be made (empty MPUB, zero window, stopped consumer…).
    #[error("invalid use: {0}")]
    Usage(String),
    /// A lookupd query failed.
    #[error("lookupd {addr}: {detail}")]
    Lookup {
        /// The lookupd HTTP address.
        addr: String,
        /// What went wrong.
        detail: String,
    },
}

impl Error {
    /// An IO error with its context.
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The broker's error frame, if this is one.
    pub fn broker_error(&self) -> Option<&BrokerError> {
        match self {
            Error::Broker { error, .. } => Some(error),
            _ => None,
        }
    }

    /// Whether the connection that produced this error can no longer be used.
    pub fn is_fatal(&self) -> bool {
        match self {
            Error::Broker { error, .. } => error.is_fatal(),
            Error::InvalidTopic(_) | Error::InvalidChannel(_) | Error::Usage(_) => false,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_errors_parse_known_unknown_and_bare_codes() {
        let err = BrokerError::from_frame(Some(Verb::Pub), b"E_PUB_FAILED PUB failed");
        assert_eq!(err.code, Some(ErrorCode::PubFailed));
        assert!(err.is_fatal());
        assert_eq!(err.to_string(), "PUB refused: E_PUB_FAILED PUB failed");
        let err = BrokerError::from_frame(None, b"E_SOMETHING_NEW x");
        assert_eq!(err.code, None);
        assert!(err.is_fatal());
        let err = BrokerError::from_frame(None, b"E_TOUCH_FAILED");
        assert_eq!(err.code, Some(ErrorCode::TouchFailed));
        assert!(!err.is_fatal());
    }
}
