//! Arbitrary bytes through the V2 `CommandDecoder` and `FrameDecoder`, in arbitrary chunkings.
//!
//! The first bytes of the input steer the run (limits, chunk sizes); the rest is the stream.
//! Besides "never panics", each run checks the decoders' contracts and crashes on a breach:
//! - `Ok(None)` consumes nothing and never waits with more buffered than the bounds allow;
//! - `Ok(Some)` consumes something;
//! - every error has a code a decoder may produce, and is fatal;
//! - the stream fed in chunks decodes to the same commands and error as fed at once;
//! - a decoded command re-encoded with `put_command` decodes to itself.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sluice_proto::v2::{put_command, Command, CommandDecoder, Frame, FrameDecoder};
use sluice_proto::{ErrorCode, Limits, ProtoError};

/// Bytes of the input that steer the run.
const CONTROL_LEN: usize = 4;

struct Outcome<T> {
    values: Vec<T>,
    error: Option<ProtoError>,
}

fn small_limits() -> Limits {
    Limits {
        max_msg_size: 16,
        max_body_size: 64,
        max_line_len: 32,
        ..Limits::default()
    }
}

/// Feeds `stream` in chunks (sizes cycled from `chunks`; empty means all at once), checking
/// the contract after every call. `bound` is the most a decoder may hold while waiting.
fn run<T>(
    stream: &[u8],
    chunks: &[u8],
    bound: usize,
    mut decode: impl FnMut(&mut BytesMut) -> Result<Option<T>, ProtoError>,
) -> Outcome<T> {
    let mut buf = BytesMut::new();
    let mut values = Vec::new();
    let mut rest = stream;
    let mut sizes = chunks.iter().map(|&c| usize::from(c % 64) + 1).cycle();
    while !rest.is_empty() {
        let take = if chunks.is_empty() {
            rest.len()
        } else {
            sizes.next().unwrap_or(1).min(rest.len())
        };
        let (chunk, tail) = rest.split_at(take);
        buf.extend_from_slice(chunk);
        rest = tail;
        loop {
            let before = buf.clone();
            match decode(&mut buf) {
                Ok(Some(value)) => {
                    assert!(buf.len() < before.len(), "a value from no bytes");
                    values.push(value);
                }
                Ok(None) => {
                    assert_eq!(buf, before, "Ok(None) consumed bytes");
                    assert!(buf.len() < bound, "waiting with {} bytes", buf.len());
                    break;
                }
                Err(err) => {
                    return Outcome {
                        values,
                        error: Some(err),
                    }
                }
            }
        }
    }
    Outcome {
        values,
        error: None,
    }
}

fn check_commands(stream: &[u8], chunks: &[u8], limits: &Limits) {
    let bound = limits.max_line_len + 4 + limits.max_body_size.max(limits.max_msg_size) as usize;
    let mut at_once = CommandDecoder::new(limits.clone());
    let whole = run(stream, &[], bound, |buf| at_once.decode(buf));
    let mut chunked_decoder = CommandDecoder::new(limits.clone());
    let chunked = run(stream, chunks, bound, |buf| chunked_decoder.decode(buf));
    assert_eq!(
        whole.values, chunked.values,
        "chunking changed the commands"
    );
    assert_eq!(whole.error, chunked.error, "chunking changed the error");
    if let Some(err) = &whole.error {
        assert!(
            matches!(
                err.code,
                ErrorCode::Invalid
                    | ErrorCode::BadTopic
                    | ErrorCode::BadChannel
                    | ErrorCode::BadMessage
                    | ErrorCode::BadBody
            ),
            "unexpected code in {err}"
        );
        assert!(err.is_fatal());
    }
    for cmd in &whole.values {
        check_reencoding(cmd, limits);
    }
}

fn check_reencoding(cmd: &Command, limits: &Limits) {
    // A delay that wrapped around Go's int64 nanoseconds is not a whole number of
    // milliseconds, so the millisecond wire form cannot carry it.
    let whole_ms = |d: &std::time::Duration| d.subsec_nanos() % 1_000_000 == 0;
    match cmd {
        Command::Req { delay, .. } if !whole_ms(delay) => return,
        Command::Dpub { defer, .. } if !whole_ms(defer) => return,
        // `FIN <id>\r\r\n` decodes (as upstream) to an id ending in `\r`, which the encoder's
        // `FIN <id>\n` cannot carry: the decoder strips that `\r` as a line end. Brokers only
        // hand out hex ids, so clients never echo such an id.
        Command::Fin(id) | Command::Touch(id) if id.0.ends_with(b"\r") => return,
        _ => {}
    }
    let mut wire = BytesMut::new();
    put_command(&mut wire, cmd);
    let again = CommandDecoder::new(limits.clone()).decode(&mut wire);
    assert_eq!(again, Ok(Some(cmd.clone())), "re-encoding changed {cmd:?}");
    assert!(wire.is_empty());
}

fn check_frames(stream: &[u8], chunks: &[u8], max: usize) {
    let mut at_once = FrameDecoder::new(max);
    let whole = run(stream, &[], 4 + max, |buf| at_once.decode(buf));
    let mut chunked_decoder = FrameDecoder::new(max);
    let chunked = run(stream, chunks, 4 + max, |buf| chunked_decoder.decode(buf));
    assert_eq!(whole.values, chunked.values);
    assert_eq!(whole.error, chunked.error);
    if let Some(err) = &whole.error {
        assert!(matches!(
            err.code,
            ErrorCode::Invalid | ErrorCode::BadMessage
        ));
    }
    for frame in &whole.values {
        if let Frame::Error(_) = frame {
            let _ = frame.error();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (control, stream) = data.split_at(data.len().min(CONTROL_LEN));
    let small = control.first().is_some_and(|c| c & 1 == 1);
    let limits = if small {
        small_limits()
    } else {
        Limits::default()
    };
    let chunks = control.get(1..).unwrap_or_default();
    check_commands(stream, chunks, &limits);
    check_frames(stream, chunks, if small { 64 } else { 1 << 20 });
});
