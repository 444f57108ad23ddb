//! The broker's side of lookup replies: `[u32 size][data]` frames, bounded, and what they mean.
//!
//! Mirrors how nsqd's `lookup_peer.go` (`readResponseBounded`) reads a reply and how
//! `nsqd/lookup.go` interprets it (`OK`, IDENTIFY's JSON, or an `E_` error text).

use bytes::{Buf, Bytes, BytesMut};

use super::MAX_REPLY_SIZE;
use crate::error::{ErrorCode, ProtoError};

/// Decodes size-prefixed replies from a lookup service.
#[derive(Debug, Clone)]
pub struct ReplyDecoder {
    max_size: u32,
}

impl Default for ReplyDecoder {
    fn default() -> ReplyDecoder {
        ReplyDecoder::new(MAX_REPLY_SIZE)
    }
}

impl ReplyDecoder {
    /// A decoder that refuses replies larger than `max_size` bytes before buffering them.
    pub fn new(max_size: u32) -> ReplyDecoder {
        ReplyDecoder { max_size }
    }

    /// Decodes the next reply's data, consuming its bytes; `Ok(None)` when more are needed.
    ///
    /// # Examples
    /// ```
    /// use bytes::BytesMut;
    /// use sluice_proto::lookup::{LookupReply, ReplyDecoder};
    ///
    /// let mut buf = BytesMut::from(&b"\x00\x00\x00\x02OK"[..]);
    /// let data = ReplyDecoder::default().decode(&mut buf).unwrap().unwrap();
    /// assert_eq!(LookupReply::parse(data), LookupReply::Ok);
    /// ```
    ///
    /// # Errors
    /// `E_BAD_BODY` when the announced size exceeds the bound; the buffer is left as it was.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, ProtoError> {
        let Some(prefix) = buf.get(..4) else {
            return Ok(None);
        };
        let mut size = [0u8; 4];
        size.copy_from_slice(prefix);
        let size = u32::from_be_bytes(size);
        if size > self.max_size {
            return Err(ProtoError::new(
                ErrorCode::BadBody,
                format!("lookup reply too big {size} > {}", self.max_size),
            ));
        }
        let size = size as usize;
        if buf.len() < 4 + size {
            return Ok(None);
        }
        buf.advance(4);
        Ok(Some(buf.split_to(size).freeze()))
    }
}

/// What a reply says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupReply {
    /// `OK` (REGISTER, UNREGISTER, PING).
    Ok,
    /// An error text `E_CODE description`; the lookup service closes the connection after it.
    Error(Bytes),
    /// Anything else: IDENTIFY's JSON ([`IdentifyInfo`](super::IdentifyInfo)).
    Data(Bytes),
}

impl LookupReply {
    /// Classifies a reply's data.
    pub fn parse(data: Bytes) -> LookupReply {
        if data.as_ref() == b"OK" {
            LookupReply::Ok
        } else if data.starts_with(b"E_") {
            LookupReply::Error(data)
        } else {
            LookupReply::Data(data)
        }
    }

    /// The error code of an [`Error`](LookupReply::Error) reply, when it is one NSQ defines.
    pub fn error_code(&self) -> Option<ErrorCode> {
        let LookupReply::Error(text) = self else {
            return None;
        };
        let code = text.split(|&b| b == b' ').next().unwrap_or_default();
        ErrorCode::from_code(std::str::from_utf8(code).ok()?)
    }
}
