//! Arbitrary bytes through the lookup V1 `LookupDecoder` (magic included), in arbitrary
//! chunkings, with IDENTIFY acknowledged as the lookup service would; and through the
//! broker-side `ReplyDecoder`.
//!
//! Checks, crashing on a breach: no panic; `Ok(None)` consumes nothing once the magic is
//! past; the stream fed in chunks decodes to the same commands and error as fed at once.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sluice_proto::lookup::{LookupCommand, LookupDecoder, ReplyDecoder};
use sluice_proto::ProtoError;

/// Bytes of the input that steer the run (magic or not, chunk sizes).
const CONTROL_LEN: usize = 3;

fn run(stream: &[u8], chunks: &[u8]) -> (Vec<LookupCommand>, Option<ProtoError>) {
    let mut decoder = LookupDecoder::new();
    let mut buf = BytesMut::new();
    let mut commands = Vec::new();
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
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(Some(command)) => {
                    if let LookupCommand::Identify(_) = command {
                        decoder.mark_identified();
                    }
                    commands.push(command);
                }
                Ok(None) => {
                    // Only the 4-byte magic may be consumed without a command.
                    assert!(
                        before - buf.len() <= 4,
                        "Ok(None) consumed a command's bytes"
                    );
                    break;
                }
                Err(err) => return (commands, Some(err)),
            }
        }
    }
    (commands, None)
}

fn replies(stream: &[u8], max: u32) {
    let mut decoder = ReplyDecoder::new(max);
    let mut buf = BytesMut::from(stream);
    while let Ok(Some(_)) = decoder.decode(&mut buf) {}
}

fuzz_target!(|data: &[u8]| {
    let (control, stream) = data.split_at(data.len().min(CONTROL_LEN));
    // Usually start past the magic, so that the fuzzer spends its time on commands.
    let with_magic = if control.first().is_some_and(|c| c & 1 == 1) {
        stream.to_vec()
    } else {
        [&b"  V1"[..], stream].concat()
    };
    let whole = run(&with_magic, &[]);
    let chunked = run(&with_magic, control.get(1..).unwrap_or_default());
    assert_eq!(whole, chunked, "chunking changed the outcome");
    replies(stream, 64);
});
