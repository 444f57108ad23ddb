//! Splits a server's byte stream into frames. NSQ V2 (nsqd): `[u32 size][u32 type][data]`,
//! big-endian, `size` counting type and data (upstream `internal/protocol/protocol.go`
//! `SendFramedResponse`). Lookup V1 (nsqlookupd): `[u32 size][data]`, no type
//! (`nsqlookupd/lookup_protocol_v1.go` `IOLoop`).
//!
//! The harness keeps its own splitter rather than `sluice_proto`'s decoder on purpose: the golden
//! replay is the referee for the broker and proto alike, so it must not share their code.

/// Frames larger than this are treated as a broken stream rather than buffered.
pub const FRAME_SIZE_MAX: usize = 64 << 20;

/// Frame type numbers (upstream `frameTypeResponse`, `frameTypeError`, `frameTypeMessage`).
pub const FRAME_TYPE_RESPONSE: u32 = 0;
/// See [`FRAME_TYPE_RESPONSE`].
pub const FRAME_TYPE_ERROR: u32 = 1;
/// See [`FRAME_TYPE_RESPONSE`].
pub const FRAME_TYPE_MESSAGE: u32 = 2;

/// Byte range of the message id inside a message frame's raw bytes (golden README).
pub const MESSAGE_ID_RANGE: std::ops::Range<usize> = 18..34;

/// Which protocol's framing a stream uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// nsqd TCP V2: size, type, data.
    V2,
    /// nsqlookupd V1: size, data.
    LookupV1,
}

impl Framing {
    fn header_len(self) -> usize {
        match self {
            Framing::V2 => 8,
            Framing::LookupV1 => 4,
        }
    }
}

/// One whole frame, size prefix included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The frame exactly as received: size, type (V2) and data.
    pub raw: Vec<u8>,
    /// The framing it was split with.
    pub framing: Framing,
}

impl Frame {
    /// The V2 frame type (`None` for lookup V1 frames).
    pub fn frame_type(&self) -> Option<u32> {
        if self.framing != Framing::V2 {
            return None;
        }
        let bytes: [u8; 4] = self.raw.get(4..8)?.try_into().ok()?;
        Some(u32::from_be_bytes(bytes))
    }

    /// The payload after the header.
    pub fn data(&self) -> &[u8] {
        self.raw
            .get(self.framing.header_len()..)
            .unwrap_or_default()
    }

    /// The 16-byte id of a message frame.
    pub fn message_id(&self) -> Option<[u8; 16]> {
        if self.frame_type() != Some(FRAME_TYPE_MESSAGE) {
            return None;
        }
        self.raw.get(MESSAGE_ID_RANGE)?.try_into().ok()
    }

    /// A one-line description: type name (V2) and escaped payload.
    pub fn describe(&self) -> String {
        let data = crate::escape::encode_short(self.data(), 300);
        match self.framing {
            Framing::V2 => format!("{} \"{data}\"", type_name(self.frame_type())),
            Framing::LookupV1 => format!("\"{data}\""),
        }
    }
}

/// The golden name of a frame type (`response`, `error`, `message`).
pub fn type_name(frame_type: Option<u32>) -> String {
    match frame_type {
        Some(FRAME_TYPE_RESPONSE) => "response".to_owned(),
        Some(FRAME_TYPE_ERROR) => "error".to_owned(),
        Some(FRAME_TYPE_MESSAGE) => "message".to_owned(),
        Some(other) => format!("type-{other}"),
        None => "truncated".to_owned(),
    }
}

/// Takes one complete frame off the front of `buffer`, or `Ok(None)` if more bytes are needed.
///
/// # Errors
/// A size prefix above [`FRAME_SIZE_MAX`], or (V2) below 4, leaving no room for the type.
pub fn split_frame(buffer: &mut Vec<u8>, framing: Framing) -> Result<Option<Frame>, String> {
    let Some(prefix) = buffer.get(..4) else {
        return Ok(None);
    };
    let size = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    let size_min = framing.header_len() - 4;
    if !(size_min..=FRAME_SIZE_MAX).contains(&size) {
        return Err(format!(
            "bad frame size {size} (prefix {})",
            crate::escape::encode_short(buffer, 64)
        ));
    }
    if buffer.len() < 4 + size {
        return Ok(None);
    }
    let rest = buffer.split_off(4 + size);
    let raw = std::mem::replace(buffer, rest);
    Ok(Some(Frame { raw, framing }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(frame_type: u32, data: &[u8]) -> Vec<u8> {
        let mut raw = ((data.len() + 4) as u32).to_be_bytes().to_vec();
        raw.extend_from_slice(&frame_type.to_be_bytes());
        raw.extend_from_slice(data);
        raw
    }

    #[test]
    fn splits_back_to_back_frames_and_waits_for_partial_ones() {
        let mut stream = frame(0, b"OK");
        stream.extend(frame(1, b"E_INVALID x"));
        let whole = stream.len();
        stream.extend_from_slice(&frame(0, b"partial")[..5]);
        let first = split_frame(&mut stream, Framing::V2).unwrap().unwrap();
        assert_eq!(first.raw, frame(0, b"OK"));
        assert_eq!(first.describe(), "response \"OK\"");
        let second = split_frame(&mut stream, Framing::V2).unwrap().unwrap();
        assert_eq!(second.frame_type(), Some(FRAME_TYPE_ERROR));
        assert_eq!(second.data(), b"E_INVALID x");
        assert_eq!(split_frame(&mut stream, Framing::V2).unwrap(), None);
        assert_eq!(
            stream.len(),
            5,
            "partial frame kept, {whole} bytes consumed"
        );
    }

    #[test]
    fn message_id_comes_from_bytes_18_to_34() {
        let mut data = vec![0u8; 10];
        data.extend_from_slice(b"0123456789abcdefbody");
        let message = Frame {
            raw: frame(2, &data),
            framing: Framing::V2,
        };
        assert_eq!(&message.message_id().unwrap(), b"0123456789abcdef");
        let response = Frame {
            raw: frame(0, &data),
            framing: Framing::V2,
        };
        assert_eq!(response.message_id(), None);
    }

    #[test]
    fn absurd_sizes_are_errors_not_allocations() {
        let mut huge = vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        assert!(split_frame(&mut huge, Framing::V2).is_err());
        let mut tiny = vec![0, 0, 0, 3, 0, 0, 0];
        assert!(split_frame(&mut tiny, Framing::V2).is_err());
    }

    #[test]
    fn lookup_frames_have_no_type() {
        let mut stream = b"\x00\x00\x00\x02OK\x00\x00\x00\x00".to_vec();
        let ok = split_frame(&mut stream, Framing::LookupV1)
            .unwrap()
            .unwrap();
        assert_eq!((ok.data(), ok.frame_type()), (&b"OK"[..], None));
        assert_eq!(ok.describe(), "\"OK\"");
        let empty = split_frame(&mut stream, Framing::LookupV1)
            .unwrap()
            .unwrap();
        assert_eq!(empty.data(), b"");
        assert!(stream.is_empty());
    }
}
