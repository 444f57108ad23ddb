//! The codecs against reference implementations (flate2's raw inflate, the `snap` crate's frame
//! reader and writer), the recorded upstream bytes, splits at every boundary, the output limit,
//! and corrupt input.

use super::*;
use std::io::{Read, Write};

/// Deterministic test data: compressible text with a counter, or pseudo-random bytes.
fn text(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(format!("message {i} of the sluice test stream; ").as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Decodes everything, feeding `wire` in pieces of `step` bytes, with an output limit per call.
fn decode_all(codec: &mut Codec, wire: &[u8], step: usize, limit: usize) -> io::Result<Vec<u8>> {
    let mut out = BytesMut::new();
    for piece in wire.chunks(step.max(1)) {
        codec.push_input(piece);
        loop {
            let done = codec.decode(&mut out, limit)?;
            assert!(done.produced <= limit + INFLATE_STEP);
            if !done.more {
                break;
            }
        }
    }
    Ok(out.to_vec())
}

fn encode(codec: &mut Codec, batches: &[&[u8]]) -> (Vec<u8>, Vec<usize>) {
    let mut wire = Vec::new();
    let mut chunks = Vec::new();
    for batch in batches {
        codec.encode(batch, &mut wire, &mut chunks).unwrap();
    }
    (wire, chunks)
}

#[test]
fn crc32c_matches_the_standard_check_value() {
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    assert_eq!(crc32c(b""), 0);
}

#[test]
fn deflate_inflates_the_recorded_upstream_ok_frame() {
    // `wire` of identify_deflate_level_20_with_deflate in the golden tcp_v2.jsonl.
    let wire = b"b```c```\xf0\xf7\x06\x00\x00\x00\xff\xff\x00\x00\x00\xff\xff";
    let mut codec = Codec::Deflate(Box::new(Deflate::new(6)));
    let out = decode_all(&mut codec, wire, 1, 1 << 20).unwrap();
    assert_eq!(out, b"\x00\x00\x00\x06\x00\x00\x00\x00OK");
}

#[test]
fn deflate_batches_inflate_with_a_reference_inflater() {
    let batches: Vec<Vec<u8>> = vec![text(10), noise(70_000, 3), text(300_000), b"x".to_vec()];
    let refs: Vec<&[u8]> = batches.iter().map(Vec::as_slice).collect();
    let mut codec = Codec::Deflate(Box::new(Deflate::new(6)));
    let mut wire = Vec::new();
    let mut chunks = Vec::new();
    let mut inflater = flate2::Decompress::new(false);
    for batch in &refs {
        let from = wire.len();
        codec.encode(batch, &mut wire, &mut chunks).unwrap();
        // Each batch is complete on its own (sync flush): everything so far inflates.
        let mut plain = Vec::with_capacity(batch.len() + 1024);
        inflater
            .decompress_vec(&wire[from..], &mut plain, flate2::FlushDecompress::Sync)
            .unwrap();
        assert_eq!(&plain, batch);
        assert_eq!(chunks.last(), Some(&wire.len()));
    }
}

#[test]
fn deflate_round_trips_split_anywhere() {
    let batches: Vec<Vec<u8>> = (0..50).map(|i| text(1 + i * 97)).collect();
    let refs: Vec<&[u8]> = batches.iter().map(Vec::as_slice).collect();
    let (wire, _) = encode(&mut Codec::Deflate(Box::new(Deflate::new(1))), &refs);
    let expected = batches.concat();
    for step in [1, 2, 3, 7, 64, 1000, wire.len()] {
        let mut codec = Codec::Deflate(Box::new(Deflate::new(6)));
        assert_eq!(
            decode_all(&mut codec, &wire, step, 1 << 20).unwrap(),
            expected
        );
    }
}

#[test]
fn deflate_output_is_bounded_per_call() {
    let big = vec![b'a'; 4 << 20];
    let (wire, _) = encode(&mut Codec::Deflate(Box::new(Deflate::new(9))), &[&big]);
    assert!(
        wire.len() < 64 * 1024,
        "highly compressible: {}",
        wire.len()
    );
    let mut codec = Codec::Deflate(Box::new(Deflate::new(6)));
    codec.push_input(&wire);
    let mut out = BytesMut::new();
    let first = codec.decode(&mut out, 100_000).unwrap();
    assert!(first.more && first.produced >= 100_000 && first.produced < 200_000);
    let mut calls = 1;
    while codec.decode(&mut out, 100_000).unwrap().more {
        calls += 1;
        assert!(calls < 1000);
    }
    assert_eq!(out.len(), big.len());
}

#[test]
fn deflate_stream_end_is_reported() {
    let mut compressor = flate2::Compress::new(flate2::Compression::new(6), false);
    let mut wire = Vec::with_capacity(1024);
    compressor
        .compress_vec(b"last words", &mut wire, flate2::FlushCompress::Finish)
        .unwrap();
    let mut codec = Codec::Deflate(Box::new(Deflate::new(6)));
    codec.push_input(&wire);
    codec.push_input(b"trailing garbage is never read");
    let mut out = BytesMut::new();
    let done = codec.decode(&mut out, 1 << 20).unwrap();
    assert!(done.end);
    assert_eq!(&out[..], b"last words");
    assert!(!codec.has_input());
}

#[test]
fn deflate_garbage_is_an_error() {
    let mut codec = Codec::Deflate(Box::new(Deflate::new(6)));
    codec.push_input(&[0xff; 64]);
    let err = codec.decode(&mut BytesMut::new(), 1 << 20).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
}

#[test]
fn snappy_output_reads_with_the_reference_frame_decoder() {
    let batches: Vec<Vec<u8>> = vec![text(2), noise(200_000, 7), text(1 << 20), b"OK".to_vec()];
    let refs: Vec<&[u8]> = batches.iter().map(Vec::as_slice).collect();
    let (wire, chunks) = encode(&mut Codec::Snappy(Box::new(Snappy::new())), &refs);
    assert!(wire.starts_with(SNAPPY_STREAM_IDENTIFIER));
    assert_eq!(chunks.last(), Some(&wire.len()));
    let mut plain = Vec::new();
    snap::read::FrameDecoder::new(&wire[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain, batches.concat());
}

#[test]
fn snappy_reads_the_reference_frame_encoder_split_anywhere() {
    let expected = [text(150_000), noise(70_000, 11), text(33)].concat();
    let mut writer = snap::write::FrameEncoder::new(Vec::new());
    writer.write_all(&expected).unwrap();
    let wire = writer.into_inner().unwrap();
    for step in [1, 3, 4, 5, 100, 65_540, wire.len()] {
        let mut codec = Codec::Snappy(Box::new(Snappy::new()));
        assert_eq!(
            decode_all(&mut codec, &wire, step, 1 << 20).unwrap(),
            expected
        );
    }
}

#[test]
fn snappy_sends_incompressible_blocks_uncompressed() {
    let block = noise(1000, 5);
    let (wire, _) = encode(&mut Codec::Snappy(Box::new(Snappy::new())), &[&block]);
    let chunk = &wire[SNAPPY_STREAM_IDENTIFIER.len()..];
    assert_eq!(chunk[0], CHUNK_UNCOMPRESSED);
    assert_eq!(&chunk[8..], &block[..]);
}

#[test]
fn snappy_skips_padding_and_skippable_chunks() {
    let mut wire = SNAPPY_STREAM_IDENTIFIER.to_vec();
    wire.extend_from_slice(&[CHUNK_PADDING, 3, 0, 0, 0, 0, 0]);
    wire.extend_from_slice(&[0x80, 1, 0, 0, 9]);
    let mut codec = Codec::Snappy(Box::new(Snappy::new()));
    let (data, _) = encode(&mut Codec::Snappy(Box::new(Snappy::new())), &[b"hello"]);
    wire.extend_from_slice(&data[SNAPPY_STREAM_IDENTIFIER.len()..]);
    assert_eq!(decode_all(&mut codec, &wire, 2, 1 << 20).unwrap(), b"hello");
}

#[test]
fn snappy_refuses_corrupt_streams() {
    let (good, _) = encode(&mut Codec::Snappy(Box::new(Snappy::new())), &[&text(500)]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "no identifier",
            good[SNAPPY_STREAM_IDENTIFIER.len()..].to_vec(),
        ),
        ("garbage", b"garbage after the upgrade\n".to_vec()),
        ("bad identifier", b"\xff\x06\x00\x00sNaPpZ".to_vec()),
        ("bad checksum", {
            let mut w = good.clone();
            let at = SNAPPY_STREAM_IDENTIFIER.len() + 4;
            w[at] ^= 1;
            w
        }),
        ("unsupported chunk", {
            let mut w = SNAPPY_STREAM_IDENTIFIER.to_vec();
            w.extend_from_slice(&[0x02, 1, 0, 0, 0]);
            w
        }),
        ("oversized chunk", {
            let mut w = SNAPPY_STREAM_IDENTIFIER.to_vec();
            w.extend_from_slice(&[CHUNK_COMPRESSED, 0xff, 0xff, 0xff]);
            w
        }),
        ("short data chunk", {
            let mut w = SNAPPY_STREAM_IDENTIFIER.to_vec();
            w.extend_from_slice(&[CHUNK_UNCOMPRESSED, 2, 0, 0, 1, 2]);
            w
        }),
    ];
    for (name, wire) in cases {
        let mut codec = Codec::Snappy(Box::new(Snappy::new()));
        let err = decode_all(&mut codec, &wire, wire.len(), 1 << 20).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{name}");
    }
}

#[test]
fn snappy_output_is_bounded_per_call() {
    let big = text(1 << 20);
    let (wire, _) = encode(&mut Codec::Snappy(Box::new(Snappy::new())), &[&big]);
    let mut codec = Codec::Snappy(Box::new(Snappy::new()));
    codec.push_input(&wire);
    let mut out = BytesMut::new();
    let first = codec.decode(&mut out, 100_000).unwrap();
    // Whole chunks only: at most one chunk past the limit.
    assert!(first.more && first.produced < 100_000 + SNAPPY_BLOCK_MAX);
    while codec.decode(&mut out, 100_000).unwrap().more {}
    assert_eq!(&out[..], &big[..]);
}

#[test]
fn each_sync_flushed_write_decodes_without_waiting_for_more() {
    // A client's writer flushes after each command; the command must come out at once.
    let mut writer = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
    let mut codec = Codec::Deflate(Box::new(Deflate::new(6)));
    let mut out = BytesMut::new();
    let mut expected = Vec::new();
    for i in 0..20 {
        let command = format!("PUB topic_{i}\n\x00\x00\x00\x02hi");
        writer.write_all(command.as_bytes()).unwrap();
        writer.flush().unwrap();
        let wire = std::mem::take(writer.get_mut());
        codec.push_input(&wire);
        codec.decode(&mut out, 1 << 20).unwrap();
        expected.extend_from_slice(command.as_bytes());
        assert_eq!(&out[..], &expected[..], "after command {i}");
    }
}
