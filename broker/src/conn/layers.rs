//! The negotiated layers of one connection: TLS, then compression (upstream's order), both
//! directions, synchronously.
//!
//! Reads: raw socket bytes → rustls → (the decompressor's input) → plaintext. Writes: plaintext →
//! compressed pieces → one rustls write each (so a piece with its header travels in one record
//! when it fits) → records. Mirrors the reader and writer stacks that upstream
//! `nsqd/client_v2.go` builds in `UpgradeTLS`, `UpgradeSnappy` and `UpgradeDeflate`. No IO: the
//! `Transport` moves the bytes.

use std::io::{self, Read, Write};

use bytes::{Buf, BytesMut};
use rustls::Connection;

use super::compress::Codec;
use super::tls_stream;

/// Bytes taken from rustls per plaintext read.
const PLAINTEXT_STEP: usize = 16 * 1024;
/// Bound on feed steps for one input (each consumes input; this only guards a bug).
const FEED_STEPS_MAX: usize = 1 << 16;

/// The negotiated layers: TLS, then compression (upstream's order).
pub(super) struct Layers {
    pub(super) tls: Option<Box<Connection>>,
    /// Raw bytes rustls has not taken yet.
    pub(super) raw: BytesMut,
    pub(super) codec: Option<Codec>,
    /// The peer ended its stream (TLS close_notify, a final DEFLATE block).
    pub(super) ended: bool,
    /// The client certificate's subject common name.
    pub(super) common_name: String,
    /// Compressed output waiting for encryption, and where each piece ends.
    pub(super) compressed: Vec<u8>,
    pub(super) chunks: Vec<usize>,
}

impl Layers {
    pub(super) fn new(tls: Option<Box<Connection>>, raw: BytesMut, common_name: String) -> Layers {
        Layers {
            tls,
            raw,
            codec: None,
            ended: false,
            common_name,
            compressed: Vec::new(),
            chunks: Vec::new(),
        }
    }

    /// Runs `raw` (and anything left from before) through TLS and the decompressor; plaintext
    /// is appended to `out`, at most about `limit` bytes from the decompressor.
    pub(super) fn pump(
        &mut self,
        raw: &[u8],
        out: &mut BytesMut,
        limit: usize,
    ) -> io::Result<usize> {
        let before = out.len();
        let Layers {
            tls,
            raw: pending,
            codec,
            ended,
            ..
        } = self;
        match tls.as_deref_mut() {
            Some(tls) => {
                let plain = match codec.as_mut() {
                    Some(codec) => codec.input_mut(),
                    None => &mut *out,
                };
                *ended |= decrypt(tls, pending, raw, plain)?;
            }
            None => {
                if let Some(codec) = codec.as_mut() {
                    codec.push_input(raw);
                }
            }
        }
        if let Some(codec) = codec.as_mut() {
            let done = codec.decode(out, limit)?;
            *ended |= done.end;
        }
        Ok(out.len() - before)
    }

    /// `data` compressed (each piece a TLS write of its own) and encrypted, into `wire`.
    pub(super) fn encode(&mut self, data: &[u8], wire: &mut Vec<u8>) -> io::Result<()> {
        match (self.tls.as_deref_mut(), self.codec.as_mut()) {
            (None, Some(codec)) => {
                self.chunks.clear();
                codec.encode(data, wire, &mut self.chunks)
            }
            (Some(tls), codec) => {
                match codec {
                    Some(codec) if !data.is_empty() => {
                        self.compressed.clear();
                        self.chunks.clear();
                        codec.encode(data, &mut self.compressed, &mut self.chunks)?;
                        let mut from = 0;
                        for &end in &self.chunks {
                            let piece = self.compressed.get(from..end).unwrap_or_default();
                            tls.writer().write_all(piece)?;
                            from = end;
                        }
                    }
                    _ => tls.writer().write_all(data)?,
                }
                while tls.wants_write() {
                    tls.write_tls(wire)?;
                }
                Ok(())
            }
            (None, None) => {
                wire.extend_from_slice(data);
                Ok(())
            }
        }
    }
}

/// Feeds raw bytes (first those left from before) to rustls and appends the plaintext to
/// `plain`; returns whether the peer closed its side (close_notify).
fn decrypt(
    tls: &mut Connection,
    pending: &mut BytesMut,
    raw: &[u8],
    plain: &mut BytesMut,
) -> io::Result<bool> {
    let mut fresh = raw;
    let mut ended = false;
    for _ in 0..FEED_STEPS_MAX {
        ended |= drain_plaintext(tls, plain)?;
        let from_pending = !pending.is_empty();
        let source: &[u8] = if from_pending { pending } else { fresh };
        if source.is_empty() {
            return Ok(ended);
        }
        let n = tls_stream::feed(tls, source)?;
        if n == 0 {
            break;
        }
        if from_pending {
            pending.advance(n);
        } else {
            fresh = fresh.get(n..).unwrap_or_default();
        }
    }
    pending.extend_from_slice(fresh);
    ended |= drain_plaintext(tls, plain)?;
    Ok(ended)
}

/// Moves rustls's plaintext into `plain`; true once the peer sent close_notify.
fn drain_plaintext(tls: &mut Connection, plain: &mut BytesMut) -> io::Result<bool> {
    loop {
        let start = plain.len();
        plain.resize(start + PLAINTEXT_STEP, 0);
        let read = tls
            .reader()
            .read(plain.get_mut(start..).unwrap_or_default());
        match read {
            Ok(0) => {
                plain.truncate(start);
                return Ok(true);
            }
            Ok(n) => plain.truncate(start + n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                plain.truncate(start);
                return Ok(false);
            }
            Err(e) => {
                plain.truncate(start);
                return Err(e);
            }
        }
    }
}
