//! The client side of V2: decoding the frames a broker sends.
//!
//! Mirrors go-nsq's `ReadResponse`/`UnpackResponse` (`protocol.go`) for the layout upstream's
//! `internal/protocol.SendFramedResponse` writes:
//! ```text
//! [ u32 size ][ u32 frame type ][ size - 4 bytes of data ]
//! ```
//! Used by the client library, the load generator and tests. No IO.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::{ErrorCode, ProtoError};
use crate::message::Message;
use crate::v2::{FrameType, HEARTBEAT};

/// Bytes of the size field.
const SIZE_LEN: usize = 4;
/// The smallest valid size field: the frame type alone.
const MIN_FRAME_SIZE: u32 = 4;

/// One frame from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A response: `OK`, `CLOSE_WAIT`, `_heartbeat_`, or JSON.
    Response(Bytes),
    /// An error: `E_CODE description`.
    Error(Bytes),
    /// A message.
    Message(Message),
}

impl Frame {
    /// Whether this is a heartbeat (answer it with `NOP`).
    ///
    /// # Examples
    /// ```
    /// use bytes::Bytes;
    /// use sluice_proto::v2::Frame;
    /// assert!(Frame::Response(Bytes::from_static(b"_heartbeat_")).is_heartbeat());
    /// assert!(!Frame::Response(Bytes::from_static(b"OK")).is_heartbeat());
    /// ```
    pub fn is_heartbeat(&self) -> bool {
        matches!(self, Frame::Response(data) if data.as_ref() == HEARTBEAT)
    }

    /// For an error frame: its code (`None` for a code Sluice does not know, such as a newer
    /// broker's) and its description (empty for a bare code). `None` for other frames.
    ///
    /// # Examples
    /// ```
    /// use bytes::Bytes;
    /// use sluice_proto::v2::Frame;
    /// use sluice_proto::ErrorCode;
    /// let frame = Frame::Error(Bytes::from_static(b"E_FIN_FAILED FIN 0000000000000000 failed ID not in flight"));
    /// let (code, text) = frame.error().unwrap();
    /// assert_eq!(code, Some(ErrorCode::FinFailed));
    /// assert_eq!(text, "FIN 0000000000000000 failed ID not in flight");
    /// ```
    pub fn error(&self) -> Option<(Option<ErrorCode>, String)> {
        let Frame::Error(data) = self else {
            return None;
        };
        let text = String::from_utf8_lossy(data);
        let (code, detail) = text.split_once(' ').unwrap_or((&text, ""));
        Some((ErrorCode::from_code(code), detail.to_owned()))
    }

    /// For an error frame with a known code: the [`ProtoError`] it carries.
    pub fn to_proto_error(&self) -> Option<ProtoError> {
        let (code, detail) = self.error()?;
        Some(ProtoError::new(code?, detail))
    }
}

/// Decodes the frame stream of one V2 connection, bounding each frame's size.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_frame_size: usize,
}

impl FrameDecoder {
    /// A decoder refusing frames whose size field (frame type plus data) exceeds
    /// `max_frame_size`.
    ///
    /// # Examples
    /// ```
    /// use bytes::BytesMut;
    /// use sluice_proto::v2::{put_response, Frame, FrameDecoder};
    /// let mut buf = BytesMut::new();
    /// put_response(&mut buf, b"OK");
    /// let mut decoder = FrameDecoder::new(1024);
    /// let frame = decoder.decode(&mut buf).unwrap().unwrap();
    /// assert_eq!(frame, Frame::Response(bytes::Bytes::from_static(b"OK")));
    /// assert!(buf.is_empty());
    /// ```
    pub fn new(max_frame_size: usize) -> FrameDecoder {
        FrameDecoder { max_frame_size }
    }

    /// The largest size field accepted.
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// Decodes the next frame at the front of `buf`: `Ok(Some(frame))` having consumed exactly
    /// its bytes, or `Ok(None)` having consumed nothing when more are needed. The data shares
    /// `buf`'s memory.
    ///
    /// # Errors
    /// `E_INVALID` for a size below 4 or above the maximum (as soon as the size is readable)
    /// or an unknown frame type; `E_BAD_MESSAGE` for a message frame too short for a message.
    /// The stream cannot be resynchronised after an error: close the connection.
    ///
    /// # Examples
    /// ```
    /// use bytes::BytesMut;
    /// use sluice_proto::v2::FrameDecoder;
    /// let mut buf = BytesMut::from(&b"\xff\xff\xff\xff"[..]);
    /// assert!(FrameDecoder::new(1 << 20).decode(&mut buf).is_err());
    /// ```
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, ProtoError> {
        let Some(size) = read_u32(buf, 0) else {
            return Ok(None);
        };
        if size < MIN_FRAME_SIZE {
            return Err(ProtoError::new(
                ErrorCode::Invalid,
                format!("invalid frame size {size} < {MIN_FRAME_SIZE}"),
            ));
        }
        let size_len = size as usize;
        if size_len > self.max_frame_size {
            return Err(ProtoError::new(
                ErrorCode::Invalid,
                format!("frame too big {size} > {}", self.max_frame_size),
            ));
        }
        let Some(raw_type) = read_u32(buf, SIZE_LEN) else {
            return Ok(None);
        };
        let Some(frame_type) = FrameType::from_u32(raw_type) else {
            return Err(ProtoError::new(
                ErrorCode::Invalid,
                format!("invalid frame type {raw_type}"),
            ));
        };
        let total = SIZE_LEN + size_len;
        if buf.len() < total {
            return Ok(None);
        }
        let data = {
            let mut frame = buf.split_to(total).freeze();
            frame.advance(2 * SIZE_LEN);
            frame
        };
        match frame_type {
            FrameType::Response => Ok(Some(Frame::Response(data))),
            FrameType::Error => Ok(Some(Frame::Error(data))),
            FrameType::Message => Ok(Some(Frame::Message(Message::decode(data)?))),
        }
    }
}

fn read_u32(buf: &[u8], offset: usize) -> Option<u32> {
    let bytes = buf.get(offset..offset + SIZE_LEN)?;
    Some(u32::from_be_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::MessageId;
    use crate::v2::{put_error, put_frame, put_message, put_response};

    fn decode_all(bytes: &[u8], max: usize) -> Result<Vec<Frame>, ProtoError> {
        let mut buf = BytesMut::from(bytes);
        let mut decoder = FrameDecoder::new(max);
        let mut frames = Vec::new();
        while let Some(frame) = decoder.decode(&mut buf)? {
            frames.push(frame);
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        Ok(frames)
    }

    #[test]
    fn every_frame_type_round_trips() {
        let msg = Message {
            id: MessageId::from_u64(42),
            timestamp: 1_700_000_000_000_000_000,
            attempts: 3,
            body: Bytes::from_static(b"payload"),
        };
        let err = ProtoError::new(ErrorCode::Invalid, "invalid command FOO");
        let mut buf = BytesMut::new();
        put_response(&mut buf, b"OK");
        put_error(&mut buf, &err);
        put_message(&mut buf, &msg);
        put_response(&mut buf, HEARTBEAT);
        let frames = decode_all(&buf, 1024).unwrap();
        assert_eq!(frames.len(), 4);
        assert_eq!(frames[0], Frame::Response(Bytes::from_static(b"OK")));
        assert_eq!(frames[1].to_proto_error(), Some(err));
        assert_eq!(frames[2], Frame::Message(msg));
        assert!(frames[3].is_heartbeat());
    }

    #[test]
    fn size_at_the_limit_passes_and_one_more_fails_with_only_the_prefix_buffered() {
        let mut buf = BytesMut::new();
        put_frame(&mut buf, FrameType::Response, &[b'x'; 60]);
        assert_eq!(decode_all(&buf, 64).unwrap().len(), 1);
        let mut buf = BytesMut::new();
        put_frame(&mut buf, FrameType::Response, &[b'x'; 61]);
        buf.truncate(4);
        let err = FrameDecoder::new(64).decode(&mut buf).unwrap_err();
        assert_eq!(err.frame_text(), "E_INVALID frame too big 65 > 64");
    }

    #[test]
    fn short_sizes_unknown_types_and_short_messages_fail() {
        let err = decode_all(b"\0\0\0\x03\0\0\0", 64).unwrap_err();
        assert_eq!(err.frame_text(), "E_INVALID invalid frame size 3 < 4");
        let err = decode_all(b"\0\0\0\x04\0\0\0\x03", 64).unwrap_err();
        assert_eq!(err.frame_text(), "E_INVALID invalid frame type 3");
        let err = decode_all(b"\0\0\0\x05\0\0\0\x02x", 64).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadMessage);
    }

    #[test]
    fn empty_frames_and_partial_input() {
        assert_eq!(
            decode_all(b"\0\0\0\x04\0\0\0\0", 64).unwrap(),
            vec![Frame::Response(Bytes::new())]
        );
        let mut buf = BytesMut::from(&b"\0\0\0\x06\0\0\0\0O"[..]);
        assert_eq!(FrameDecoder::new(64).decode(&mut buf).unwrap(), None);
        assert_eq!(buf.len(), 9);
    }

    #[test]
    fn error_parts_of_unknown_and_bare_codes() {
        let unknown = Frame::Error(Bytes::from_static(b"E_TOO_MANY_CHANNEL_CONSUMERS x"));
        assert_eq!(unknown.error(), Some((None, "x".to_owned())));
        assert_eq!(unknown.to_proto_error(), None);
        let bare = Frame::Error(Bytes::from_static(b"E_BAD_PROTOCOL"));
        assert_eq!(
            bare.to_proto_error(),
            Some(ProtoError::bare(ErrorCode::BadProtocol))
        );
        assert_eq!(Frame::Response(Bytes::new()).error(), None);
    }
}
