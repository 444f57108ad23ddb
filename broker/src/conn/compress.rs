//! The stream compressions a client can negotiate in IDENTIFY: raw DEFLATE and framed snappy.
//!
//! Mirrors `UpgradeDeflate` and `UpgradeSnappy` of upstream `nsqd/client_v2.go`, which wrap the
//! connection in Go's `compress/flate` (raw DEFLATE, RFC 1951, one sync flush per flush of the
//! output buffer) and `github.com/golang/snappy` (the framing format: a stream identifier, then
//! checksummed chunks of at most 64 KiB). Pure and synchronous: bytes in, bytes out, no IO. A
//! connection's `Transport` feeds it what the socket (or TLS) gave and writes what it returns.
//!
//! Decoding is incremental (any split of the input gives the same output) and bounded: one call
//! produces at most the limit it is given and keeps the rest of its input for the next call, so
//! a small compressed input cannot make one read cycle inflate without end.

use std::io;

use bytes::{Buf, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The largest uncompressed chunk in the snappy framing format (and in Go's snappy writer).
pub const SNAPPY_BLOCK_MAX: usize = 65536;
/// The snappy stream identifier chunk: type 0xff, length 6, `sNaPpY`.
const SNAPPY_STREAM_IDENTIFIER: &[u8; 10] = b"\xff\x06\x00\x00sNaPpY";
/// Chunk types of the snappy framing format.
const CHUNK_COMPRESSED: u8 = 0x00;
const CHUNK_UNCOMPRESSED: u8 = 0x01;
const CHUNK_PADDING: u8 = 0xfe;
const CHUNK_STREAM_IDENTIFIER: u8 = 0xff;
/// Checksum bytes at the start of a data chunk.
const CHECKSUM_LEN: usize = 4;
/// How much one inflate step may produce before the output is checked against the limit.
const INFLATE_STEP: usize = 32 * 1024;
/// Bound on compression calls per batch (each makes progress; this only guards a bug).
const DEFLATE_CALLS_MAX: usize = 1 << 16;

/// What one decode call did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Bytes appended to the output.
    pub produced: usize,
    /// The peer ended its compressed stream (a final DEFLATE block): nothing more can follow.
    pub end: bool,
    /// Input is left that could produce more output (the limit was reached).
    pub more: bool,
}

/// A negotiated compression, both directions.
#[derive(Debug)]
pub enum Codec {
    /// `deflate`
    Deflate(Box<Deflate>),
    /// `snappy`
    Snappy(Box<Snappy>),
}

impl Codec {
    /// Adds bytes received from the peer (compressed).
    pub fn push_input(&mut self, data: &[u8]) {
        match self {
            Codec::Deflate(d) => d.input.extend_from_slice(data),
            Codec::Snappy(s) => s.input.extend_from_slice(data),
        }
    }

    /// The buffer of input waiting to be decoded (a TLS layer decrypts straight into it).
    pub fn input_mut(&mut self) -> &mut BytesMut {
        match self {
            Codec::Deflate(d) => &mut d.input,
            Codec::Snappy(s) => &mut s.input,
        }
    }

    /// Decodes buffered input into `out`, at most about `limit` bytes.
    ///
    /// # Errors
    /// `InvalidData` when the peer's stream is corrupt.
    pub fn decode(&mut self, out: &mut BytesMut, limit: usize) -> io::Result<Decoded> {
        match self {
            Codec::Deflate(d) => d.decode(out, limit),
            Codec::Snappy(s) => s.decode(out, limit),
        }
    }

    /// Compresses `data` for the peer, appending to `out`; each element of `chunks` ends one
    /// self-contained piece of `out` (a snappy chunk with its header, or one flushed DEFLATE
    /// run), so a TLS layer can put each piece in its own record.
    ///
    /// # Errors
    /// A compressor failure (not expected for valid state).
    pub fn encode(
        &mut self,
        data: &[u8],
        out: &mut Vec<u8>,
        chunks: &mut Vec<usize>,
    ) -> io::Result<()> {
        match self {
            Codec::Deflate(d) => d.encode(data, out, chunks),
            Codec::Snappy(s) => {
                s.encode(data, out, chunks);
                Ok(())
            }
        }
    }

    /// Whether input is waiting to be decoded.
    pub fn has_input(&self) -> bool {
        match self {
            Codec::Deflate(d) => !d.input.is_empty() && !d.ended,
            Codec::Snappy(s) => !s.input.is_empty(),
        }
    }
}

/// Raw DEFLATE both ways (upstream `flate.NewReader` / `flate.NewWriter(conn, level)`).
pub struct Deflate {
    inflate: Decompress,
    deflate: Compress,
    input: BytesMut,
    ended: bool,
}

impl std::fmt::Debug for Deflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflate")
            .field("input", &self.input.len())
            .field("ended", &self.ended)
            .finish()
    }
}

impl Deflate {
    /// A codec compressing at `level` (1–9).
    pub fn new(level: u32) -> Deflate {
        Deflate {
            inflate: Decompress::new(false),
            deflate: Compress::new(Compression::new(level.min(9)), false),
            input: BytesMut::new(),
            ended: false,
        }
    }

    fn decode(&mut self, out: &mut BytesMut, limit: usize) -> io::Result<Decoded> {
        let mut done = Decoded::default();
        while !self.ended {
            if done.produced >= limit {
                done.more = true;
                break;
            }
            let start = out.len();
            let step = INFLATE_STEP.min(limit - done.produced).max(1);
            out.resize(start + step, 0);
            let (in_before, out_before) = (self.inflate.total_in(), self.inflate.total_out());
            // Sync: hand out everything decodable now (with `None` the inflater may keep the
            // end of a sync-flushed write until more input comes, and the command would wait).
            let status = self.inflate.decompress(
                &self.input,
                out.get_mut(start..).unwrap_or_default(),
                FlushDecompress::Sync,
            );
            let consumed = (self.inflate.total_in() - in_before) as usize;
            let produced = (self.inflate.total_out() - out_before) as usize;
            out.truncate(start + produced);
            self.input.advance(consumed.min(self.input.len()));
            done.produced += produced;
            match status {
                Ok(Status::StreamEnd) => {
                    self.ended = true;
                    done.end = true;
                }
                // Inflate may stop short of the space it was given (at its window's end), so
                // only a call that did nothing means it needs more input.
                Ok(_) if produced == 0 && consumed == 0 => break,
                Ok(_) => {}
                Err(e) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("flate: corrupt input - {e}"),
                    ))
                }
            }
        }
        Ok(done)
    }

    /// Compresses `data` and sync-flushes, as upstream's `Flush` after each buffer: the peer
    /// can inflate everything sent so far.
    fn encode(
        &mut self,
        data: &[u8],
        out: &mut Vec<u8>,
        chunks: &mut Vec<usize>,
    ) -> io::Result<()> {
        let mut consumed = 0;
        for _ in 0..DEFLATE_CALLS_MAX {
            let rest = data.get(consumed..).unwrap_or_default();
            out.reserve(rest.len() / 2 + 64);
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(rest, out, FlushCompress::Sync)
                .map_err(|e| io::Error::other(format!("flate: {e}")))?;
            consumed += (self.deflate.total_in() - before) as usize;
            // The sync flush is complete once all input is in and the output had room to spare.
            if consumed >= data.len() && out.len() < out.capacity() {
                chunks.push(out.len());
                return Ok(());
            }
        }
        Err(io::Error::other("flate: compressor made no progress"))
    }
}

/// The snappy framing format both ways (golang/snappy `NewReader` / `NewWriter`).
#[derive(Debug, Default)]
pub struct Snappy {
    input: BytesMut,
    identifier_seen: bool,
    identifier_sent: bool,
    encoder: SnapEncoder,
}

/// `snap::raw::Encoder` keeps a hash table between calls; it is not `Debug`.
struct SnapEncoder(snap::raw::Encoder);

impl Default for SnapEncoder {
    fn default() -> SnapEncoder {
        SnapEncoder(snap::raw::Encoder::new())
    }
}

impl std::fmt::Debug for SnapEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SnapEncoder")
    }
}

fn corrupt(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("snappy: {why}"))
}

impl Snappy {
    /// A codec that has sent and seen nothing yet.
    pub fn new() -> Snappy {
        Snappy::default()
    }

    /// Decodes whole chunks from the input.
    ///
    /// ```text
    /// chunk: [type u8][length u24 LE][data: length bytes]
    /// data chunk (type 0x00 compressed, 0x01 uncompressed):
    ///        [masked CRC-32C of the uncompressed bytes, u32 LE][payload]
    /// ```
    fn decode(&mut self, out: &mut BytesMut, limit: usize) -> io::Result<Decoded> {
        let mut done = Decoded::default();
        loop {
            if done.produced >= limit {
                done.more = !self.input.is_empty();
                return Ok(done);
            }
            let Some(&[kind, l0, l1, l2]) = self.input.get(..4) else {
                return Ok(done);
            };
            let len = usize::from(l0) | usize::from(l1) << 8 | usize::from(l2) << 16;
            if len > snap::raw::max_compress_len(SNAPPY_BLOCK_MAX) + CHECKSUM_LEN {
                return Err(corrupt(&format!("chunk too large {len}")));
            }
            if self.input.len() < 4 + len {
                return Ok(done);
            }
            if !self.identifier_seen && kind != CHUNK_STREAM_IDENTIFIER {
                return Err(corrupt("stream does not start with the stream identifier"));
            }
            let chunk = self.input.split_to(4 + len);
            let data = chunk.get(4..).unwrap_or_default();
            done.produced += self.decode_chunk(kind, data, out)?;
        }
    }

    fn decode_chunk(&mut self, kind: u8, data: &[u8], out: &mut BytesMut) -> io::Result<usize> {
        match kind {
            CHUNK_STREAM_IDENTIFIER => {
                if Some(data) != SNAPPY_STREAM_IDENTIFIER.get(4..) {
                    return Err(corrupt("bad stream identifier"));
                }
                self.identifier_seen = true;
                Ok(0)
            }
            CHUNK_COMPRESSED | CHUNK_UNCOMPRESSED => {
                let (Some(sum), Some(payload)) =
                    (data.get(..CHECKSUM_LEN), data.get(CHECKSUM_LEN..))
                else {
                    return Err(corrupt("data chunk shorter than its checksum"));
                };
                let expected = u32::from_le_bytes(sum.try_into().unwrap_or_default());
                let start = out.len();
                if kind == CHUNK_UNCOMPRESSED {
                    if payload.len() > SNAPPY_BLOCK_MAX {
                        return Err(corrupt("uncompressed chunk too large"));
                    }
                    out.extend_from_slice(payload);
                } else {
                    let len =
                        snap::raw::decompress_len(payload).map_err(|e| corrupt(&e.to_string()))?;
                    if len > SNAPPY_BLOCK_MAX {
                        return Err(corrupt(&format!("decoded chunk too large {len}")));
                    }
                    out.resize(start + len, 0);
                    let target = out.get_mut(start..).unwrap_or_default();
                    if let Err(e) = snap::raw::Decoder::new().decompress(payload, target) {
                        out.truncate(start);
                        return Err(corrupt(&e.to_string()));
                    }
                }
                if masked_crc32c(out.get(start..).unwrap_or_default()) != expected {
                    out.truncate(start);
                    return Err(corrupt("checksum mismatch"));
                }
                Ok(out.len() - start)
            }
            // Reserved unskippable chunk types (golang/snappy: ErrUnsupported).
            0x02..=0x7f => Err(corrupt(&format!("unsupported chunk type {kind:#04x}"))),
            // Reserved skippable chunks (0x80-0xfd) and padding (0xfe) are skipped.
            0x80..=CHUNK_PADDING => Ok(0),
        }
    }

    /// Encodes `data` as chunks of at most 64 KiB each, the stream identifier first. Like Go's
    /// writer, a chunk that would not shrink by at least 1/8 is sent uncompressed.
    fn encode(&mut self, data: &[u8], out: &mut Vec<u8>, chunks: &mut Vec<usize>) {
        if !self.identifier_sent {
            out.extend_from_slice(SNAPPY_STREAM_IDENTIFIER);
            self.identifier_sent = true;
        }
        for block in data.chunks(SNAPPY_BLOCK_MAX) {
            let header_at = out.len();
            out.extend_from_slice(&[0; 4]);
            out.extend_from_slice(&masked_crc32c(block).to_le_bytes());
            let payload_at = out.len();
            out.resize(payload_at + snap::raw::max_compress_len(block.len()), 0);
            let compressed = self
                .encoder
                .0
                .compress(block, out.get_mut(payload_at..).unwrap_or_default())
                .ok()
                .filter(|&n| n < block.len() - block.len() / 8);
            let kind = match compressed {
                Some(n) => {
                    out.truncate(payload_at + n);
                    CHUNK_COMPRESSED
                }
                None => {
                    out.truncate(payload_at);
                    out.extend_from_slice(block);
                    CHUNK_UNCOMPRESSED
                }
            };
            let len = (out.len() - header_at - 4) as u32;
            let [l0, l1, l2, _] = len.to_le_bytes();
            if let Some(header) = out.get_mut(header_at..header_at + 4) {
                header.copy_from_slice(&[kind, l0, l1, l2]);
            }
            chunks.push(out.len());
        }
    }
}

/// CRC-32C (Castagnoli) lookup table.
const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// CRC-32C of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        let index = ((crc ^ u32::from(byte)) & 0xff) as usize;
        crc = CRC32C_TABLE.get(index).copied().unwrap_or(0) ^ (crc >> 8);
    }
    !crc
}

/// The framing format's masked checksum: `((crc >> 15) | (crc << 17)) + 0xa282ead8`.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

#[cfg(test)]
mod tests;
