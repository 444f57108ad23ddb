//! Property tests of the V2 codecs.
//!
//! Goal: what the encoders write the decoders read back unchanged, however the bytes are cut
//! into reads; and arbitrary bytes never panic a decoder, never make it buffer past its bounds,
//! and fail only with the codes a decoder may produce. Method: proptest strategies for every
//! `Command`, `Frame` and `Message`, encoded with `put_*`, fed to `CommandDecoder` /
//! `FrameDecoder` in random chunks.

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use std::time::Duration;

use sluice_proto::v2::{
    put_command, put_error, put_frame, put_message, put_response, Command, CommandDecoder, Frame,
    FrameDecoder, FrameType, Name,
};
use sluice_proto::{ErrorCode, Limits, Message, MessageId, ProtoError};

fn name() -> impl Strategy<Value = Name> {
    ("[.a-zA-Z0-9_-]{1,54}", any::<bool>()).prop_map(|(stem, ephemeral)| {
        if ephemeral {
            Name::new(&format!("{stem}#ephemeral"))
        } else {
            Name::new(&stem)
        }
    })
}

fn body(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 1..=max).prop_map(Bytes::from)
}

/// Ids as a client echoes them: 16 bytes without spaces or line ends.
fn id() -> impl Strategy<Value = MessageId> {
    proptest::array::uniform16(0x21u8..=0x7e).prop_map(MessageId)
}

fn millis(max: u64) -> impl Strategy<Value = Duration> {
    (0..=max).prop_map(Duration::from_millis)
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        body(64).prop_map(Command::Identify),
        body(64).prop_map(Command::Auth),
        (name(), name()).prop_map(|(topic, channel)| Command::Sub { topic, channel }),
        (name(), body(64)).prop_map(|(topic, body)| Command::Pub { topic, body }),
        (name(), vec(body(16), 1..8)).prop_map(|(topic, bodies)| Command::Mpub { topic, bodies }),
        (name(), millis(3_600_000), body(64)).prop_map(|(topic, defer, body)| Command::Dpub {
            topic,
            defer,
            body
        }),
        (0..=2500u64).prop_map(Command::Rdy),
        id().prop_map(Command::Fin),
        (id(), millis(1 << 40)).prop_map(|(id, delay)| Command::Req { id, delay }),
        id().prop_map(Command::Touch),
        Just(Command::Cls),
        Just(Command::Nop),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (
        proptest::array::uniform16(any::<u8>()),
        any::<i64>(),
        any::<u16>(),
        vec(any::<u8>(), 0..64),
    )
        .prop_map(|(id, timestamp, attempts, body)| Message {
            id: MessageId(id),
            timestamp,
            attempts,
            body: Bytes::from(body),
        })
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        vec(any::<u8>(), 0..64).prop_map(|data| Frame::Response(Bytes::from(data))),
        vec(any::<u8>(), 0..64).prop_map(|data| Frame::Error(Bytes::from(data))),
        message().prop_map(Frame::Message),
    ]
}

fn put_frame_value(out: &mut BytesMut, frame: &Frame) {
    match frame {
        Frame::Response(data) => put_response(out, data),
        Frame::Error(data) => put_frame(out, FrameType::Error, data),
        Frame::Message(msg) => put_message(out, msg),
    }
}

/// What feeding a byte stream to a decoder gave.
struct Fed<T> {
    values: Vec<T>,
    error: Option<ProtoError>,
    left_over: usize,
}

/// Feeds `wire` in chunks of the given sizes (cycled), decoding everything after each chunk,
/// until the bytes run out or the decoder fails.
fn feed<T>(
    wire: &[u8],
    chunks: &[usize],
    mut decode: impl FnMut(&mut BytesMut) -> Result<Option<T>, ProtoError>,
) -> Fed<T> {
    let mut buf = BytesMut::new();
    let mut values = Vec::new();
    let mut rest = wire;
    let mut sizes = chunks.iter().cycle();
    while !rest.is_empty() {
        let take = sizes.next().copied().unwrap_or(1).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(take);
        buf.extend_from_slice(chunk);
        rest = tail;
        loop {
            match decode(&mut buf) {
                Ok(Some(value)) => values.push(value),
                Ok(None) => break,
                Err(err) => {
                    return Fed {
                        values,
                        error: Some(err),
                        left_over: buf.len(),
                    }
                }
            }
        }
    }
    Fed {
        values,
        error: None,
        left_over: buf.len(),
    }
}

/// Small limits so that random input reaches them.
fn small_limits() -> Limits {
    Limits {
        max_msg_size: 16,
        max_body_size: 64,
        max_line_len: 32,
        ..Limits::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_command_round_trips(cmd in command()) {
        let mut wire = BytesMut::new();
        put_command(&mut wire, &cmd);
        let mut decoder = CommandDecoder::new(Limits::default());
        prop_assert_eq!(decoder.decode(&mut wire).unwrap(), Some(cmd));
        prop_assert!(wire.is_empty());
    }

    #[test]
    fn commands_split_anywhere_decode_the_same(
        cmds in vec(command(), 1..12),
        chunks in vec(1usize..40, 1..16),
    ) {
        let mut wire = BytesMut::new();
        for cmd in &cmds {
            put_command(&mut wire, cmd);
        }
        let mut decoder = CommandDecoder::new(Limits::default());
        let fed = feed(&wire, &chunks, |buf| decoder.decode(buf));
        prop_assert_eq!(fed.error, None);
        prop_assert_eq!(fed.left_over, 0);
        prop_assert_eq!(fed.values, cmds);
    }

    #[test]
    fn every_frame_round_trips_split_anywhere(
        frames in vec(frame(), 1..12),
        chunks in vec(1usize..40, 1..16),
    ) {
        let mut wire = BytesMut::new();
        for frame in &frames {
            put_frame_value(&mut wire, frame);
        }
        let mut decoder = FrameDecoder::new(1024);
        let fed = feed(&wire, &chunks, |buf| decoder.decode(buf));
        prop_assert_eq!(fed.error, None);
        prop_assert_eq!(fed.left_over, 0);
        prop_assert_eq!(fed.values, frames);
    }

    #[test]
    fn error_frames_carry_their_proto_error(detail in "[ -~]{0,40}") {
        let err = ProtoError::new(ErrorCode::BadBody, detail.trim_start().to_owned());
        let mut wire = BytesMut::new();
        put_error(&mut wire, &err);
        let frame = FrameDecoder::new(1024).decode(&mut wire).unwrap().unwrap();
        prop_assert_eq!(frame.to_proto_error(), Some(err));
    }

    #[test]
    fn messages_round_trip(msg in message()) {
        let mut wire = BytesMut::new();
        msg.put(&mut wire);
        prop_assert_eq!(wire.len(), msg.wire_len());
        prop_assert_eq!(Message::decode(wire.freeze()).unwrap(), msg);
    }

    #[test]
    fn garbage_never_panics_or_overbuffers_the_command_decoder(
        prefix in prop_oneof![
            Just(&b""[..]), Just(&b"PUB t\n"[..]), Just(&b"MPUB t\n"[..]), Just(&b"DPUB t 1\n"[..]),
            Just(&b"IDENTIFY\n"[..]), Just(&b"AUTH\n"[..]), Just(&b"SUB "[..]), Just(&b"REQ "[..]),
            Just(&b"RDY "[..]), Just(&b"FIN "[..]), Just(&b"TOUCH "[..]),
        ],
        noise in vec(any::<u8>(), 0..400),
        chunks in vec(1usize..64, 1..8),
    ) {
        let limits = small_limits();
        let bound = limits.max_line_len + 4 + limits.max_body_size as usize;
        let wire = [prefix, &noise[..]].concat();
        let mut decoder = CommandDecoder::new(limits);
        let mut overbuffered = None;
        let fed = feed(&wire, &chunks, |buf| {
            let result = decoder.decode(buf);
            if matches!(result, Ok(None)) && buf.len() >= bound {
                overbuffered = Some(buf.len());
            }
            result
        });
        prop_assert_eq!(overbuffered, None);
        if let Some(err) = fed.error {
            prop_assert!(
                matches!(
                    err.code,
                    ErrorCode::Invalid
                        | ErrorCode::BadTopic
                        | ErrorCode::BadChannel
                        | ErrorCode::BadMessage
                        | ErrorCode::BadBody
                ),
                "unexpected code {:?}",
                err.code
            );
            prop_assert!(err.is_fatal());
        }
    }

    #[test]
    fn garbage_never_panics_or_overbuffers_the_frame_decoder(
        noise in vec(any::<u8>(), 0..400),
        chunks in vec(1usize..64, 1..8),
    ) {
        let max = 64;
        let mut decoder = FrameDecoder::new(max);
        let mut overbuffered = None;
        let fed = feed(&noise, &chunks, |buf| {
            let result = decoder.decode(buf);
            if matches!(result, Ok(None)) && buf.len() >= 4 + max {
                overbuffered = Some(buf.len());
            }
            result
        });
        prop_assert_eq!(overbuffered, None);
        if let Some(err) = fed.error {
            prop_assert!(matches!(err.code, ErrorCode::Invalid | ErrorCode::BadMessage));
        }
    }
}
