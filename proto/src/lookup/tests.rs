//! Tests of lookup protocol V1: every command and error text against upstream's (the cases of
//! `shared/golden/lookup_v1.jsonl` and the branches of `lookup_protocol_v1.go` it does not
//! record), then properties: encode/decode round-trips, the same bytes split anywhere give the
//! same commands, and arbitrary bytes give a value or an error, never a panic.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::error::{ErrorCode, ProtoError};
use crate::v2::Name;

const IDENTIFY_BODY: &[u8] = br#"{"broadcast_address":"golden-host","hostname":"golden-host","http_port":4151,"tcp_port":4150,"version":"1.3.0"}"#;

fn identify_bytes(body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    put_lookup_command(
        &mut out,
        &LookupCommand::Identify(Bytes::copy_from_slice(body)),
    );
    out.to_vec()
}

/// A decoder past the magic, identified or not.
fn decoder(identified: bool) -> LookupDecoder {
    let mut d = LookupDecoder::new();
    let mut buf = BytesMut::from(&MAGIC_V1[..]);
    assert_eq!(d.decode(&mut buf), Ok(None));
    if identified {
        d.mark_identified();
    }
    d
}

fn decode_one(identified: bool, bytes: &[u8]) -> Result<Option<LookupCommand>, ProtoError> {
    decoder(identified).decode(&mut BytesMut::from(bytes))
}

fn error_text(identified: bool, bytes: &[u8]) -> String {
    decode_one(identified, bytes).unwrap_err().frame_text()
}

#[test]
fn magic_other_than_v1_is_bad_protocol() {
    let mut d = LookupDecoder::new();
    assert_eq!(d.decode(&mut BytesMut::from(&b"  V"[..])), Ok(None));
    let err = d.decode(&mut BytesMut::from(&b"  V2"[..])).unwrap_err();
    assert_eq!(err.frame_text(), "E_BAD_PROTOCOL");
    let mut out = BytesMut::new();
    put_error(&mut out, &err);
    assert_eq!(&out[..], b"\x00\x00\x00\x0eE_BAD_PROTOCOL");
}

#[test]
fn ping_before_identify_and_with_surrounding_whitespace() {
    assert_eq!(decode_one(false, b"PING\n"), Ok(Some(LookupCommand::Ping)));
    assert_eq!(
        decode_one(false, b"  PING \r\n"),
        Ok(Some(LookupCommand::Ping))
    );
    assert_eq!(
        decode_one(false, b"\t\x0bPING extra words\n"),
        Ok(Some(LookupCommand::Ping))
    );
    // Go's TrimSpace also trims Unicode spaces such as U+00A0.
    assert_eq!(
        decode_one(false, "\u{a0}PING\u{3000}\n".as_bytes()),
        Ok(Some(LookupCommand::Ping))
    );
}

#[test]
fn unknown_and_empty_commands_are_invalid() {
    assert_eq!(
        error_text(false, b"FOO bar\n"),
        "E_INVALID invalid command FOO"
    );
    assert_eq!(error_text(true, b"\n"), "E_INVALID invalid command ");
    assert_eq!(
        error_text(true, b"ping\n"),
        "E_INVALID invalid command ping"
    );
}

#[test]
fn register_and_unregister_need_identify_first() {
    for line in [
        &b"REGISTER golden_topic golden_channel\n"[..],
        b"UNREGISTER golden_topic\n",
        b"REGISTER bad$topic\n",
        b"REGISTER\n",
    ] {
        assert_eq!(error_text(false, line), "E_INVALID client must IDENTIFY");
    }
}

#[test]
fn register_parameters_are_checked_as_upstream() {
    assert_eq!(
        error_text(true, b"REGISTER\n"),
        "E_INVALID REGISTER insufficient number of params"
    );
    assert_eq!(
        error_text(true, b"UNREGISTER \r\n"),
        "E_INVALID UNREGISTER insufficient number of params"
    );
    assert_eq!(
        error_text(true, b"REGISTER bad$topic\n"),
        "E_BAD_TOPIC REGISTER topic name 'bad$topic' is not valid"
    );
    assert_eq!(
        error_text(true, b"REGISTER golden_topic bad*channel\n"),
        "E_BAD_CHANNEL REGISTER channel name 'bad*channel' is not valid"
    );
    assert_eq!(
        error_text(true, b"UNREGISTER  t\n"),
        "E_BAD_TOPIC UNREGISTER topic name '' is not valid"
    );
    let long = format!("REGISTER {}\n", "a".repeat(65));
    assert!(error_text(true, long.as_bytes()).starts_with("E_BAD_TOPIC"));
}

#[test]
fn register_with_and_without_channel() {
    assert_eq!(
        decode_one(true, b"REGISTER t c extra\n"),
        Ok(Some(LookupCommand::Register {
            topic: Name::new("t"),
            channel: Some(Name::new("c")),
        }))
    );
    // An empty channel word means no channel, as upstream's `channelName != ""`.
    assert_eq!(
        decode_one(true, b"UNREGISTER t  c\n"),
        Ok(Some(LookupCommand::Unregister {
            topic: Name::new("t"),
            channel: None,
        }))
    );
    assert_eq!(
        decode_one(true, b"REGISTER t#ephemeral c#ephemeral\r\n"),
        Ok(Some(LookupCommand::Register {
            topic: Name::new("t#ephemeral"),
            channel: Some(Name::new("c#ephemeral")),
        }))
    );
}

#[test]
fn identify_reads_its_body_and_only_once() {
    let bytes = identify_bytes(IDENTIFY_BODY);
    assert_eq!(
        decode_one(false, &bytes),
        Ok(Some(LookupCommand::Identify(Bytes::from_static(
            IDENTIFY_BODY
        ))))
    );
    // A second IDENTIFY is refused before its body is read, whatever the body.
    assert_eq!(
        error_text(true, b"IDENTIFY\n"),
        "E_INVALID cannot IDENTIFY again"
    );
    // An empty body is a body: its JSON check fails later, as upstream.
    assert_eq!(
        decode_one(false, b"IDENTIFY\n\x00\x00\x00\x00"),
        Ok(Some(LookupCommand::Identify(Bytes::new())))
    );
}

#[test]
fn identify_body_size_is_bounded_before_buffering() {
    assert_eq!(
        error_text(false, b"IDENTIFY\n\xff\xff\xff\xff"),
        "E_BAD_BODY IDENTIFY invalid body size -1"
    );
    let mut d = LookupDecoder::with_limits(MAX_LINE_LEN, 100);
    d.decode(&mut BytesMut::from(&MAGIC_V1[..])).unwrap();
    let mut at_limit = BytesMut::from(&b"IDENTIFY\n\x00\x00\x00\x64"[..]);
    assert_eq!(d.decode(&mut at_limit), Ok(None));
    let err = d
        .decode(&mut BytesMut::from(&b"IDENTIFY\n\x00\x00\x00\x65"[..]))
        .unwrap_err();
    assert_eq!(
        err.frame_text(),
        "E_BAD_BODY IDENTIFY body too big 101 > 100"
    );
}

#[test]
fn lines_are_bounded() {
    let mut d = LookupDecoder::with_limits(16, MAX_IDENTIFY_BODY);
    d.decode(&mut BytesMut::from(&MAGIC_V1[..])).unwrap();
    let mut fits = BytesMut::from(&b"PING           \n"[..]);
    assert_eq!(fits.len(), 16);
    assert_eq!(d.decode(&mut fits), Ok(Some(LookupCommand::Ping)));
    let mut partial = BytesMut::from(&b"PING          "[..]);
    assert_eq!(d.decode(&mut partial), Ok(None));
    let mut too_long = BytesMut::from(&b"PING            \n"[..]);
    let err = d.decode(&mut too_long).unwrap_err();
    assert_eq!(err.code, ErrorCode::Invalid);
    assert_eq!(too_long.len(), 17, "an error consumes nothing");
}

#[test]
fn eof_mid_identify_gets_upstreams_errors() {
    let mut d = decoder(false);
    assert_eq!(d.decode_eof(&mut BytesMut::from(&b"PIN"[..])), Ok(None));
    let err = d
        .decode_eof(&mut BytesMut::from(&b"IDENTIFY\n\x00\x00"[..]))
        .unwrap_err();
    assert_eq!(
        err.frame_text(),
        "E_BAD_BODY IDENTIFY failed to read body size"
    );
    let err = d
        .decode_eof(&mut BytesMut::from(&b"IDENTIFY\n\x00\x00\x00\x05ab"[..]))
        .unwrap_err();
    assert_eq!(err.frame_text(), "E_BAD_BODY IDENTIFY failed to read body");
    let mut complete = BytesMut::from(&b"PING\n"[..]);
    assert_eq!(d.decode_eof(&mut complete), Ok(Some(LookupCommand::Ping)));
    let mut fresh = LookupDecoder::new();
    assert_eq!(fresh.decode_eof(&mut BytesMut::from(&b"  "[..])), Ok(None));
}

#[test]
fn identify_info_matches_upstream() {
    let info = IdentifyInfo::from_json(IDENTIFY_BODY).unwrap();
    assert_eq!(info.to_json(), IDENTIFY_BODY);
    assert_eq!(
        IdentifyInfo::from_json(br#"{"broadcast_address":"golden-host"}"#)
            .unwrap_err()
            .frame_text(),
        "E_BAD_BODY IDENTIFY missing fields"
    );
    for bad in [
        &b"not json"[..],
        b"",
        b"[]",
        br#"{"tcp_port":"4150"}"#,
        br#"{"tcp_port":70000}"#,
        br#"{"tcp_port":1} x"#,
    ] {
        assert_eq!(
            IdentifyInfo::from_json(bad).unwrap_err().frame_text(),
            "E_BAD_BODY IDENTIFY failed to decode JSON body",
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    for missing in [
        &b"null"[..],
        b"{}",
        br#"{"broadcast_address":"h","tcp_port":1,"http_port":2,"version":null}"#,
    ] {
        assert_eq!(
            IdentifyInfo::from_json(missing).unwrap_err().frame_text(),
            "E_BAD_BODY IDENTIFY missing fields"
        );
    }
    // Unknown keys are ignored and the host name is optional.
    let info = IdentifyInfo::from_json(
        br#"{"broadcast_address":"h","tcp_port":1,"http_port":2,"version":"v","extra":[1]}"#,
    )
    .unwrap();
    assert_eq!(info.hostname, "");
    let peer = info.into_peer_info("127.0.0.1:9".to_owned());
    assert_eq!(
        serde_json::to_string(&peer).unwrap(),
        r#"{"remote_address":"127.0.0.1:9","hostname":"","broadcast_address":"h","tcp_port":1,"http_port":2,"version":"v"}"#
    );
}

#[test]
fn replies_decode_bounded_and_classified() {
    let mut buf = BytesMut::new();
    put_reply(&mut buf, b"OK");
    put_reply(
        &mut buf,
        b"E_BAD_TOPIC REGISTER topic name 'x$' is not valid",
    );
    put_reply(&mut buf, b"{}");
    let mut d = ReplyDecoder::default();
    let replies: Vec<LookupReply> = std::iter::from_fn(|| d.decode(&mut buf).unwrap())
        .map(LookupReply::parse)
        .collect();
    assert_eq!(replies.len(), 3);
    assert_eq!(replies[0], LookupReply::Ok);
    assert_eq!(replies[1].error_code(), Some(ErrorCode::BadTopic));
    assert_eq!(replies[2], LookupReply::Data(Bytes::from_static(b"{}")));
    assert_eq!(replies[2].error_code(), None);

    let mut small = ReplyDecoder::new(2);
    let mut at_limit = BytesMut::from(&b"\x00\x00\x00\x02O"[..]);
    assert_eq!(small.decode(&mut at_limit), Ok(None));
    let mut over = BytesMut::from(&b"\x00\x00\x00\x03"[..]);
    assert_eq!(
        small.decode(&mut over).unwrap_err().code,
        ErrorCode::BadBody
    );
}

fn name_strategy() -> impl Strategy<Value = Name> {
    prop_oneof![
        "[.a-zA-Z0-9_-]{1,64}".prop_map(|s| Name::new(&s)),
        "[.a-zA-Z0-9_-]{1,54}".prop_map(|s| Name::new(&format!("{s}#ephemeral"))),
    ]
}

fn command_strategy() -> impl Strategy<Value = LookupCommand> {
    prop_oneof![
        Just(LookupCommand::Ping),
        proptest::collection::vec(any::<u8>(), 0..200)
            .prop_map(|body| LookupCommand::Identify(Bytes::from(body))),
        (name_strategy(), proptest::option::of(name_strategy()))
            .prop_map(|(topic, channel)| LookupCommand::Register { topic, channel }),
        (name_strategy(), proptest::option::of(name_strategy()))
            .prop_map(|(topic, channel)| LookupCommand::Unregister { topic, channel }),
    ]
}

/// Upstream's state rules, applied to a generated sequence: one IDENTIFY, first.
fn valid_sequence(mut commands: Vec<LookupCommand>, body: Bytes) -> Vec<LookupCommand> {
    commands.retain(|c| !matches!(c, LookupCommand::Identify(_)));
    commands.insert(0, LookupCommand::Identify(body));
    commands
}

/// Decodes everything in `chunks` fed one by one, marking IDENTIFY as a server would.
fn decode_chunks(chunks: &[&[u8]]) -> Result<Vec<LookupCommand>, ProtoError> {
    let mut decoder = LookupDecoder::new();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(cmd) = decoder.decode(&mut buf)? {
            if matches!(cmd, LookupCommand::Identify(_)) {
                decoder.mark_identified();
            }
            out.push(cmd);
        }
    }
    assert!(buf.is_empty(), "bytes left over: {buf:?}");
    Ok(out)
}

proptest! {
    #[test]
    fn every_command_round_trips(cmd in command_strategy()) {
        let mut wire = BytesMut::from(&MAGIC_V1[..]);
        put_lookup_command(&mut wire, &cmd);
        let identify_first = !matches!(cmd, LookupCommand::Identify(_));
        let mut d = LookupDecoder::new();
        if identify_first {
            d.mark_identified();
        }
        prop_assert_eq!(d.decode(&mut wire), Ok(Some(cmd)));
        prop_assert!(wire.is_empty());
    }

    #[test]
    fn split_anywhere_gives_the_same_commands(
        commands in proptest::collection::vec(command_strategy(), 0..12),
        body in proptest::collection::vec(any::<u8>(), 0..64),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..16),
    ) {
        let commands = valid_sequence(commands, Bytes::from(body));
        let mut wire = BytesMut::from(&MAGIC_V1[..]);
        for cmd in &commands {
            put_lookup_command(&mut wire, cmd);
        }
        let whole = decode_chunks(&[&wire[..]]).unwrap();
        prop_assert_eq!(&whole, &commands);
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for p in points {
            chunks.push(&wire[start..p]);
            start = p;
        }
        chunks.push(&wire[start..]);
        prop_assert_eq!(decode_chunks(&chunks).unwrap(), commands);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        prefix in prop_oneof![Just(MAGIC_V1.to_vec()), proptest::collection::vec(any::<u8>(), 0..6)],
        identified in any::<bool>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut d = LookupDecoder::with_limits(64, 128);
        if identified {
            d.mark_identified();
        }
        let mut buf = BytesMut::from(&prefix[..]);
        buf.extend_from_slice(&bytes);
        // Each successful step consumes at least one byte, so this loop is bounded.
        for _ in 0..=buf.len() {
            match d.decode(&mut buf) {
                Ok(Some(_)) => continue,
                Ok(None) => {
                    let _ = d.decode_eof(&mut buf);
                    break;
                }
                Err(err) => {
                    prop_assert!(err.frame_text().starts_with("E_"));
                    break;
                }
            }
        }
    }

    #[test]
    fn replies_round_trip_split_anywhere(
        replies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut wire = BytesMut::new();
        for r in &replies {
            put_reply(&mut wire, r);
        }
        let cut = cut.index(wire.len() + 1);
        let mut d = ReplyDecoder::default();
        let mut buf = BytesMut::from(&wire[..cut]);
        let mut out = Vec::new();
        while let Some(r) = d.decode(&mut buf).unwrap() {
            out.push(r.to_vec());
        }
        buf.extend_from_slice(&wire[cut..]);
        while let Some(r) = d.decode(&mut buf).unwrap() {
            out.push(r.to_vec());
        }
        prop_assert_eq!(out, replies);
    }
}
