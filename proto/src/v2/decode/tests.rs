//! Command decoder unit tests.
//!
//! Goal: every verb's success and error paths with upstream's exact texts, every limit at its
//! bound (max passes, max + 1 fails, huge prefixes fail with only the prefix buffered), and
//! the decoder's contract (nothing consumed on `Ok(None)`, exactly one command consumed on
//! `Ok(Some)`, bodies sharing the read buffer). Method: byte strings in, commands or error
//! frame texts out. Split-anywhere and garbage properties live in `proto/tests/`.

use super::*;
use bytes::Bytes;

/// The golden `--max-msg-size=100 --max-body-size=200` configuration.
fn small_limits() -> Limits {
    Limits {
        max_msg_size: 100,
        max_body_size: 200,
        ..Limits::default()
    }
}

fn decode_with(limits: Limits, bytes: &[u8]) -> Result<Option<Command>, ProtoError> {
    let mut buf = BytesMut::from(bytes);
    let mut decoder = CommandDecoder::new(limits);
    let result = decoder.decode(&mut buf);
    if let Ok(Some(_)) = result {
        assert!(buf.is_empty(), "left over {buf:?} after {bytes:?}");
    }
    result
}

fn decode(bytes: &[u8]) -> Command {
    decode_with(Limits::default(), bytes)
        .unwrap()
        .unwrap_or_else(|| panic!("incomplete: {bytes:?}"))
}

fn error(bytes: &[u8]) -> String {
    error_with(Limits::default(), bytes)
}

fn error_with(limits: Limits, bytes: &[u8]) -> String {
    match decode_with(limits, bytes) {
        Err(err) => err.frame_text(),
        Ok(other) => panic!("expected an error for {bytes:?}, got {other:?}"),
    }
}

fn sized(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

const ID: &[u8; 16] = b"0123456789abcdef";

#[test]
fn commands_without_bodies() {
    assert_eq!(decode(b"NOP\n"), Command::Nop);
    assert_eq!(decode(b"NOP extra params\n"), Command::Nop);
    assert_eq!(decode(b"CLS\n"), Command::Cls);
    assert_eq!(decode(b"CLS x\n"), Command::Cls);
    assert_eq!(decode(b"RDY 25\n"), Command::Rdy(25));
    assert_eq!(decode(b"RDY\n"), Command::Rdy(1));
    assert_eq!(decode(b"RDY 3 ignored\n"), Command::Rdy(3));
    assert_eq!(
        decode(&cat(&[b"FIN ", ID, b"\n"])),
        Command::Fin(MessageId(*ID))
    );
    assert_eq!(
        decode(&cat(&[b"TOUCH ", ID, b"\n"])),
        Command::Touch(MessageId(*ID))
    );
    assert_eq!(
        decode(&cat(&[b"REQ ", ID, b" 1500\n"])),
        Command::Req {
            id: MessageId(*ID),
            delay: Duration::from_millis(1500)
        }
    );
    assert_eq!(
        decode(b"SUB orders archive#ephemeral\n"),
        Command::Sub {
            topic: Name::new("orders"),
            channel: Name::new("archive#ephemeral")
        }
    );
}

#[test]
fn commands_with_bodies() {
    assert_eq!(
        decode(&cat(&[b"PUB t\n", &sized(b"hello")])),
        Command::Pub {
            topic: Name::new("t"),
            body: Bytes::from_static(b"hello")
        }
    );
    assert_eq!(
        decode(&cat(&[b"DPUB t 1000\n", &sized(b"later")])),
        Command::Dpub {
            topic: Name::new("t"),
            defer: Duration::from_secs(1),
            body: Bytes::from_static(b"later")
        }
    );
    assert_eq!(
        decode(&cat(&[b"IDENTIFY\n", &sized(b"{}")])),
        Command::Identify(Bytes::from_static(b"{}"))
    );
    assert_eq!(
        decode(&cat(&[b"AUTH\n", &sized(b"secret")])),
        Command::Auth(Bytes::from_static(b"secret"))
    );
    let mpub = b"MPUB golden_topic\n\0\0\0\x1b\0\0\0\x03\0\0\0\x03one\0\0\0\x03two\0\0\0\x05three";
    assert_eq!(
        decode(mpub),
        Command::Mpub {
            topic: Name::new("golden_topic"),
            bodies: vec![
                Bytes::from_static(b"one"),
                Bytes::from_static(b"two"),
                Bytes::from_static(b"three")
            ]
        }
    );
}

#[test]
fn crlf_and_pipelining() {
    let mut buf = BytesMut::from(&b"NOP\r\nPUB t\r\n\0\0\0\x04crlfRDY 2\n"[..]);
    let mut decoder = CommandDecoder::new(Limits::default());
    assert_eq!(decoder.decode(&mut buf).unwrap(), Some(Command::Nop));
    assert_eq!(
        decoder.decode(&mut buf).unwrap(),
        Some(Command::Pub {
            topic: Name::new("t"),
            body: Bytes::from_static(b"crlf")
        })
    );
    assert_eq!(decoder.decode(&mut buf).unwrap(), Some(Command::Rdy(2)));
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    // Only one \r is stripped: the second belongs to the last parameter (found by fuzzing:
    // an id ending in \r is 16 bytes, as upstream reads it).
    let id = *b"000000000000000\r";
    assert_eq!(
        decode(&cat(&[b"FIN ", &id, b"\r\n"])),
        Command::Fin(MessageId(id))
    );
    assert_eq!(
        error(b"SUB t c\r\r\n"),
        r#"E_BAD_CHANNEL SUB channel name "c\r" is not valid"#
    );
}

#[test]
fn unknown_verbs() {
    assert_eq!(error(b"FOO bar\n"), "E_INVALID invalid command FOO");
    assert_eq!(error(b"nop\n"), "E_INVALID invalid command nop");
    assert_eq!(error(b"\n"), "E_INVALID invalid command ");
    assert_eq!(error(b"\r\n"), "E_INVALID invalid command ");
    assert_eq!(error(b" NOP\n"), "E_INVALID invalid command ");
    assert_eq!(error(b"\xff\n"), "E_INVALID invalid command \u{fffd}");
}

#[test]
fn parameter_counts() {
    let cases: [(&[u8], &str); 11] = [
        (
            b"SUB t\n",
            "E_INVALID SUB insufficient number of parameters",
        ),
        (b"SUB\n", "E_INVALID SUB insufficient number of parameters"),
        (b"PUB\n", "E_INVALID PUB insufficient number of parameters"),
        (
            b"MPUB\n",
            "E_INVALID MPUB insufficient number of parameters",
        ),
        (
            b"DPUB t\n",
            "E_INVALID DPUB insufficient number of parameters",
        ),
        (b"FIN\n", "E_INVALID FIN insufficient number of params"),
        (b"TOUCH\n", "E_INVALID TOUCH insufficient number of params"),
        (
            b"REQ 0123456789abcdef\n",
            "E_INVALID REQ insufficient number of params",
        ),
        (b"AUTH x\n", "E_INVALID AUTH invalid number of parameters"),
        (b"AUTH \n", "E_INVALID AUTH invalid number of parameters"),
        (b"FIN 123\n", "E_INVALID invalid message ID"),
    ];
    for (bytes, text) in cases {
        assert_eq!(error(bytes), text, "{bytes:?}");
    }
    assert_eq!(
        error(b"TOUCH 0123456789abcdefg\n"),
        "E_INVALID invalid message ID"
    );
    assert_eq!(error(b"REQ 123 0\n"), "E_INVALID invalid message ID");
}

#[test]
fn names_are_validated_and_quoted_like_go() {
    assert_eq!(
        error(b"SUB bad$topic golden_ch\n"),
        r#"E_BAD_TOPIC SUB topic name "bad$topic" is not valid"#
    );
    assert_eq!(
        error(b"SUB golden_topic bad*channel\n"),
        r#"E_BAD_CHANNEL SUB channel name "bad*channel" is not valid"#
    );
    assert_eq!(
        error(b"SUB  t c\n"),
        r#"E_BAD_TOPIC SUB topic name "" is not valid"#
    );
    assert_eq!(
        error(b"PUB bad$topic\n\0\0\0\x05hello"),
        r#"E_BAD_TOPIC PUB topic name "bad$topic" is not valid"#
    );
    assert_eq!(
        error(b"MPUB bad$topic\n"),
        r#"E_BAD_TOPIC E_BAD_TOPIC MPUB topic name "bad$topic" is not valid"#
    );
    assert_eq!(
        error(b"DPUB t\xff 5\n"),
        r#"E_BAD_TOPIC DPUB topic name "t\xff" is not valid"#
    );
    let long = format!("SUB {} c\n", "t".repeat(65));
    assert_eq!(
        error(long.as_bytes()),
        format!(
            r#"E_BAD_TOPIC SUB topic name "{}" is not valid"#,
            "t".repeat(65)
        )
    );
}

#[test]
fn rdy_counts() {
    assert_eq!(decode(b"RDY 2500\n"), Command::Rdy(2500));
    assert_eq!(decode(b"RDY 0\n"), Command::Rdy(0));
    // Upstream's ByteToBase10 reads the empty string as 0.
    assert_eq!(decode(b"RDY \n"), Command::Rdy(0));
    assert_eq!(
        error(b"RDY 2501\n"),
        "E_INVALID RDY count 2501 out of range 0-2500"
    );
    assert_eq!(
        error(b"RDY abc\n"),
        "E_INVALID RDY could not parse count abc"
    );
    assert_eq!(error(b"RDY -1\n"), "E_INVALID RDY could not parse count -1");
    // Go's uint64 arithmetic wraps, then int64() makes 2^64 - 1 into -1.
    assert_eq!(
        error(b"RDY 18446744073709551615\n"),
        "E_INVALID RDY count -1 out of range 0-2500"
    );
    assert_eq!(decode(b"RDY 18446744073709551616\n"), Command::Rdy(0));
}

#[test]
fn dpub_timeouts() {
    let dpub = |timeout: &str| cat(&[b"DPUB t ", timeout.as_bytes(), b"\n", &sized(b"x")]);
    let defer = |timeout: &str| match decode(&dpub(timeout)) {
        Command::Dpub { defer, .. } => defer,
        other => panic!("{other:?}"),
    };
    assert_eq!(defer("3600000"), Duration::from_secs(3600));
    assert_eq!(defer("0"), Duration::ZERO);
    assert_eq!(defer(""), Duration::ZERO);
    assert_eq!(
        error(&dpub("3600001")),
        "E_INVALID DPUB timeout 3600001 out of range 0-3600000"
    );
    assert_eq!(
        error(&dpub("-1")),
        "E_INVALID DPUB could not parse timeout -1"
    );
    assert_eq!(
        error(&dpub("1.5")),
        "E_INVALID DPUB could not parse timeout 1.5"
    );
    // Past 2^63 ns Go's int64 duration wraps: negative here, so out of range…
    assert_eq!(
        error(&dpub("9223372036855")),
        "E_INVALID DPUB timeout 9223372036855 out of range 0-3600000"
    );
    // …and here all the way round to 192 µs, which upstream accepts too.
    assert_eq!(defer("9223372036854776"), Duration::from_micros(192));
    // The timeout is checked before any body byte is needed.
    assert!(decode_with(Limits::default(), b"DPUB t 3600001\n").is_err());
}

#[test]
fn req_delays_are_not_range_checked() {
    let delay = |timeout: &str| match decode(&cat(&[b"REQ ", ID, b" ", timeout.as_bytes(), b"\n"]))
    {
        Command::Req { delay, .. } => delay,
        other => panic!("{other:?}"),
    };
    assert_eq!(delay("99999999999"), Duration::from_millis(99_999_999_999));
    assert_eq!(delay(""), Duration::ZERO);
    // Wrapped to a negative Go duration, which upstream clamps to 0.
    assert_eq!(delay("9223372036855"), Duration::ZERO);
    assert_eq!(
        error(&cat(&[b"REQ ", ID, b" x\n"])),
        "E_INVALID REQ could not parse timeout x"
    );
}

#[test]
fn pub_and_dpub_body_bounds() {
    let limits = small_limits;
    for verb in ["PUB t", "DPUB t 0"] {
        let name = verb.split(' ').next().unwrap();
        let line = format!("{verb}\n");
        let at_max = cat(&[line.as_bytes(), &sized(&[b'x'; 100])]);
        assert!(matches!(decode_with(limits(), &at_max), Ok(Some(_))));
        let over = cat(&[line.as_bytes(), &sized(&[b'x'; 101])]);
        assert_eq!(
            error_with(limits(), &over),
            format!("E_BAD_MESSAGE {name} message too big 101 > 100")
        );
        // Only the size prefix is buffered: the error does not wait for the body.
        let huge = cat(&[line.as_bytes(), b"\x7f\xff\xff\xff"]);
        assert_eq!(
            error_with(limits(), &huge),
            format!("E_BAD_MESSAGE {name} message too big 2147483647 > 100")
        );
        let zero = cat(&[line.as_bytes(), b"\0\0\0\0"]);
        assert_eq!(
            error_with(limits(), &zero),
            format!("E_BAD_MESSAGE {name} invalid message body size 0")
        );
        let negative = cat(&[line.as_bytes(), b"\xff\xff\xff\xff"]);
        assert_eq!(
            error_with(limits(), &negative),
            format!("E_BAD_MESSAGE {name} invalid message body size -1")
        );
    }
}

#[test]
fn identify_and_auth_body_bounds() {
    for verb in ["IDENTIFY", "AUTH"] {
        let line = format!("{verb}\n");
        let at_max = cat(&[line.as_bytes(), &sized(&[b' '; 200])]);
        assert!(matches!(decode_with(small_limits(), &at_max), Ok(Some(_))));
        let over = cat(&[line.as_bytes(), b"\0\0\0\xc9"]);
        assert_eq!(
            error_with(small_limits(), &over),
            format!("E_BAD_BODY {verb} body too big 201 > 200")
        );
        assert_eq!(
            error(&cat(&[line.as_bytes(), b"\0\0\0\0"])),
            format!("E_BAD_BODY {verb} invalid body size 0")
        );
        assert_eq!(
            error(&cat(&[line.as_bytes(), b"\xff\xff\xff\xfe"])),
            format!("E_BAD_BODY {verb} invalid body size -2")
        );
    }
}

/// An MPUB of `bodies` with the body size and count as encoded.
fn mpub(bodies: &[&[u8]]) -> Vec<u8> {
    let mut body = (bodies.len() as u32).to_be_bytes().to_vec();
    for message in bodies {
        body.extend_from_slice(&sized(message));
    }
    cat(&[b"MPUB t\n", &sized(&body)])
}

#[test]
fn mpub_bounds() {
    // Body size: exactly max passes, max + 1 fails from the prefix alone.
    let message = [b'm'; 96];
    let at_max = mpub(&[&message, &message[..92]]);
    assert_eq!(at_max.len() - 7 - 4, 200);
    assert!(matches!(decode_with(small_limits(), &at_max), Ok(Some(_))));
    assert_eq!(
        error_with(small_limits(), b"MPUB t\n\0\0\0\xc9"),
        "E_BAD_BODY MPUB body too big 201 > 200"
    );
    assert_eq!(
        error(b"MPUB t\n\xff\xff\xff\xff"),
        "E_BAD_BODY MPUB invalid body size -1"
    );
    // Count: upstream's (200 - 4) / 5 = 39 messages at most, checked from the first 8 bytes.
    let most: Vec<&[u8]> = vec![b"x"; 39];
    assert!(matches!(
        decode_with(small_limits(), &mpub(&most)),
        Ok(Some(_))
    ));
    assert_eq!(
        error_with(small_limits(), b"MPUB t\n\0\0\0\xc8\0\0\0\x28"),
        "E_BAD_BODY MPUB invalid message count 40"
    );
    assert_eq!(
        error(b"MPUB t\n\0\0\0\x04\0\0\0\0"),
        "E_BAD_BODY MPUB invalid message count 0"
    );
    assert_eq!(
        error(b"MPUB t\n\0\0\0\x04\xff\xff\xff\xff"),
        "E_BAD_BODY MPUB invalid message count -1"
    );
    // Each message: exactly max_msg_size passes, one more fails.
    assert!(matches!(
        decode_with(small_limits(), &mpub(&[&[b'y'; 100]])),
        Ok(Some(_))
    ));
    assert_eq!(
        error_with(small_limits(), &mpub(&[&[b'y'; 101]])),
        "E_BAD_MESSAGE MPUB message too big 101 > 100"
    );
}

#[test]
fn mpub_inner_errors_fail_the_whole_command() {
    assert_eq!(
        error(b"MPUB t\n\0\0\0\x0f\0\0\0\x02\0\0\0\0\0\0\0\x03abc"),
        "E_BAD_MESSAGE MPUB invalid message(0) body size 0"
    );
    assert_eq!(
        error(b"MPUB t\n\0\0\0\x0f\0\0\0\x02\0\0\0\x03abc\xff\xff\xff\xff"),
        "E_BAD_MESSAGE MPUB invalid message(1) body size -1"
    );
    // Messages running past the body, and bytes left after the last one.
    assert_eq!(
        error(b"MPUB t\n\0\0\0\x0a\0\0\0\x02\0\0\0\x01a\0"),
        "E_BAD_MESSAGE MPUB failed to read message(1) body size"
    );
    assert_eq!(
        error(b"MPUB t\n\0\0\0\x0a\0\0\0\x01\0\0\0\x03ab"),
        "E_BAD_MESSAGE MPUB failed to read message body"
    );
    assert_eq!(
        error(b"MPUB t\n\0\0\0\x0a\0\0\0\x01\0\0\0\x01ab"),
        "E_BAD_BODY MPUB invalid body size 10"
    );
    assert_eq!(
        error(b"MPUB t\n\0\0\0\x02ab"),
        "E_BAD_BODY MPUB failed to read message count"
    );
}

#[test]
fn the_line_length_is_bounded() {
    let limits = Limits {
        max_line_len: 16,
        ..Limits::default()
    };
    // 15 bytes and the newline: exactly the limit.
    let at_max = b"RDY 00000000001\n";
    assert_eq!(at_max.len(), 16);
    assert_eq!(
        decode_with(limits.clone(), at_max).unwrap(),
        Some(Command::Rdy(1))
    );
    // 16 bytes without a newline can never become a valid line: refused before more arrive.
    let mut decoder = CommandDecoder::new(limits.clone());
    let mut buf = BytesMut::from(&b"RDY 000000000001"[..]);
    let err = decoder.decode(&mut buf).unwrap_err();
    assert_eq!(
        err.frame_text(),
        "E_INVALID invalid command line longer than 16 bytes"
    );
    assert_eq!(decoder.last_verb(), Some(Verb::Rdy));
    // One byte less is merely incomplete.
    let mut buf = BytesMut::from(&b"RDY 00000000000"[..]);
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
}

#[test]
fn incomplete_input_consumes_nothing_and_completes_later() {
    let wire = cat(&[
        b"PUB t\n",
        &sized(b"hello"),
        &mpub(&[b"one", b"two"]),
        b"DPUB t 5\n",
        &sized(b"x"),
        b"SUB t c\nNOP\n",
    ]);
    let mut decoder = CommandDecoder::new(Limits::default());
    let mut expected = Vec::new();
    let mut whole = BytesMut::from(&wire[..]);
    while let Some(cmd) = decoder.decode(&mut whole).unwrap() {
        expected.push(cmd);
    }
    assert_eq!(expected.len(), 5);
    // Byte by byte: every prefix either decodes a command or leaves the buffer untouched.
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for &byte in &wire {
        buf.extend_from_slice(&[byte]);
        loop {
            let before = buf.clone();
            match decoder.decode(&mut buf).unwrap() {
                Some(cmd) => got.push(cmd),
                None => {
                    assert_eq!(buf, before);
                    break;
                }
            }
        }
    }
    assert_eq!(got, expected);
    assert!(buf.is_empty());
}

#[test]
fn bodies_and_names_share_the_read_buffer() {
    let mut buf = BytesMut::with_capacity(256);
    buf.extend_from_slice(&mpub(&[b"first", b"second"]));
    buf.extend_from_slice(b"PUB topic\n\0\0\0\x04body");
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    let inside = |bytes: &[u8]| range.contains(&(bytes.as_ptr() as usize));
    let mut decoder = CommandDecoder::new(Limits::default());
    let Some(Command::Mpub { topic, bodies }) = decoder.decode(&mut buf).unwrap() else {
        panic!("not an MPUB");
    };
    assert!(inside(topic.as_bytes()));
    assert!(bodies.iter().all(|b| inside(b)));
    let Some(Command::Pub { topic, body }) = decoder.decode(&mut buf).unwrap() else {
        panic!("not a PUB");
    };
    assert!(inside(topic.as_bytes()) && inside(&body));
}

#[test]
fn last_verb_names_the_failing_line() {
    let mut decoder = CommandDecoder::new(Limits::default());
    assert_eq!(decoder.last_verb(), None);
    let mut buf = BytesMut::from(&b"RDY abc\n"[..]);
    assert!(decoder.decode(&mut buf).is_err());
    assert_eq!(decoder.last_verb(), Some(Verb::Rdy));
    let mut buf = BytesMut::from(&b"FOO\n"[..]);
    assert!(decoder.decode(&mut buf).is_err());
    assert_eq!(decoder.last_verb(), None);
    let mut buf = BytesMut::from(&b"IDENTIFY\n\0\0\0\0"[..]);
    assert!(decoder.decode(&mut buf).is_err());
    assert_eq!(decoder.last_verb(), Some(Verb::Identify));
}

#[test]
fn a_zero_line_limit_refuses_everything_but_waits_on_nothing() {
    let mut decoder = CommandDecoder::new(Limits {
        max_line_len: 0,
        ..Limits::default()
    });
    assert_eq!(decoder.decode(&mut BytesMut::new()).unwrap(), None);
    assert!(decoder.decode(&mut BytesMut::from(&b"NOP\n"[..])).is_err());
}

#[test]
fn a_bad_inner_mpub_size_is_refused_before_the_body_arrives() {
    let mut decoder = CommandDecoder::new(Limits::default());
    let mut buf = BytesMut::from(&b"MPUB t\n"[..]);
    buf.extend_from_slice(&5_242_880i32.to_be_bytes());
    buf.extend_from_slice(&2i32.to_be_bytes());
    buf.extend_from_slice(&3i32.to_be_bytes());
    buf.extend_from_slice(b"abc");
    // The first message is fine and the body is far from complete: wait.
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(&i32::MAX.to_be_bytes());
    let err = decoder.decode(&mut buf).unwrap_err();
    assert_eq!(
        err.frame_text(),
        "E_BAD_MESSAGE MPUB message too big 2147483647 > 1048576"
    );
}
