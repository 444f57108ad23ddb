//! One client connection of a golden replay: blocking socket, bounded reads, frame splitting,
//! and the switch to a raw-DEFLATE server stream after a negotiated `IDENTIFY`
//! (upstream `nsqd/protocol_v2.go` `IDENTIFY` → `UpgradeDeflate`, RFC 1951, sync-flushed).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use flate2::{Decompress, FlushDecompress, Status};

use crate::frame::{split_frame, Frame, Framing};

/// Largest decoded backlog kept before the stream is declared broken.
const BUFFERED_BYTES_MAX: usize = 64 << 20;

/// What one bounded read produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// A complete frame.
    Frame(Frame),
    /// The server closed the connection: `"FIN"` or `"RST"`.
    Closed(&'static str),
    /// Nothing complete before the deadline.
    TimedOut,
}

/// A replay connection.
#[derive(Debug)]
pub struct ReplayConn {
    stream: TcpStream,
    framing: Framing,
    /// Decoded server bytes not yet split into frames.
    plain: Vec<u8>,
    inflater: Option<Decompress>,
    closed: Option<&'static str>,
    last_message_id: Option<[u8; 16]>,
}

impl ReplayConn {
    /// Connects (bounded by 3 s).
    ///
    /// # Errors
    /// The connection is refused or times out.
    pub fn connect(addr: SocketAddr, framing: Framing) -> Result<ReplayConn, String> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(ReplayConn {
            stream,
            framing,
            plain: Vec::new(),
            inflater: None,
            closed: None,
            last_message_id: None,
        })
    }

    /// Writes all bytes.
    ///
    /// # Errors
    /// The write fails (for example the server already closed).
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .map_err(|e| format!("send failed: {e}"))
    }

    /// Half-closes: the client sends nothing more.
    ///
    /// # Errors
    /// The socket refuses the shutdown.
    pub fn shutdown_write(&mut self) -> Result<(), String> {
        self.stream
            .shutdown(Shutdown::Write)
            .map_err(|e| format!("shutdown(write) failed: {e}"))
    }

    /// The id of the last message frame received on this connection.
    pub fn last_message_id(&self) -> Option<[u8; 16]> {
        self.last_message_id
    }

    /// Decoded bytes received but not yet taken as frames.
    pub fn buffered(&self) -> &[u8] {
        &self.plain
    }

    /// From now on the server's bytes are raw DEFLATE. Bytes already received after the last
    /// frame were compressed too, so they go through the inflater.
    ///
    /// # Errors
    /// Those bytes are not valid DEFLATE.
    pub fn switch_to_deflate(&mut self) -> Result<(), String> {
        let pending = std::mem::take(&mut self.plain);
        self.inflater = Some(Decompress::new(false));
        self.absorb(&pending)
    }

    /// The next frame, the close, or a timeout at `deadline`.
    ///
    /// # Errors
    /// A malformed frame, a corrupt DEFLATE stream, or a socket error other than a reset.
    pub fn next(&mut self, deadline: Instant) -> Result<Next, String> {
        loop {
            if let Some(frame) = split_frame(&mut self.plain, self.framing)? {
                if let Some(id) = frame.message_id() {
                    self.last_message_id = Some(id);
                }
                return Ok(Next::Frame(frame));
            }
            if let Some(how) = self.closed {
                return Ok(Next::Closed(how));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Next::TimedOut);
            }
            self.read_once(left)?;
        }
    }

    fn read_once(&mut self, left: Duration) -> Result<(), String> {
        self.stream
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => self.closed = Some("FIN"),
            Ok(n) => self.absorb(chunk.get(..n).unwrap_or_default())?,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => self.closed = Some("RST"),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read failed: {e}")),
        }
        Ok(())
    }

    fn absorb(&mut self, bytes: &[u8]) -> Result<(), String> {
        match self.inflater.as_mut() {
            None => self.plain.extend_from_slice(bytes),
            Some(inflater) => inflate_into(inflater, bytes, &mut self.plain)?,
        }
        if self.plain.len() > BUFFERED_BYTES_MAX {
            return Err(format!("more than {BUFFERED_BYTES_MAX} bytes buffered"));
        }
        Ok(())
    }
}

/// Inflates all of `input` (a piece of a raw DEFLATE stream) onto `out`.
///
/// # Errors
/// The input is not valid DEFLATE, or continues after the end of the stream.
pub fn inflate_into(
    inflater: &mut Decompress,
    mut input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    while !input.is_empty() {
        out.reserve(64 * 1024);
        let (in_before, out_before) = (inflater.total_in(), inflater.total_out());
        let status = inflater
            .decompress_vec(input, out, FlushDecompress::Sync)
            .map_err(|e| format!("bad DEFLATE stream: {e}"))?;
        let consumed = usize::try_from(inflater.total_in() - in_before).unwrap_or(usize::MAX);
        input = input.get(consumed..).unwrap_or_default();
        if status == Status::StreamEnd && !input.is_empty() {
            return Err(format!(
                "{} bytes after the end of the DEFLATE stream",
                input.len()
            ));
        }
        if consumed == 0 && inflater.total_out() == out_before && out.len() < out.capacity() {
            return Err("DEFLATE stream made no progress".to_owned());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compress, Compression, FlushCompress};

    fn deflate_sync(compressor: &mut Compress, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 64);
        compressor
            .compress_vec(data, &mut out, FlushCompress::Sync)
            .unwrap();
        out
    }

    #[test]
    fn inflates_the_recorded_upstream_ok_frame() {
        // `wire` of identify_deflate_level_20_with_deflate in tcp_v2.jsonl.
        let wire = crate::escape::decode(
            "b```c```\\xf0\\xf7\\x06\\x00\\x00\\x00\\xff\\xff\\x00\\x00\\x00\\xff\\xff",
        )
        .unwrap();
        let mut out = Vec::new();
        inflate_into(&mut Decompress::new(false), &wire, &mut out).unwrap();
        assert_eq!(out, b"\x00\x00\x00\x06\x00\x00\x00\x00OK");
    }

    #[test]
    fn inflates_byte_by_byte_across_flushes() {
        let mut compressor = Compress::new(Compression::new(6), false);
        let mut wire = deflate_sync(&mut compressor, b"first frame");
        wire.extend(deflate_sync(&mut compressor, b" and the second"));
        let mut inflater = Decompress::new(false);
        let mut out = Vec::new();
        for byte in &wire {
            inflate_into(&mut inflater, std::slice::from_ref(byte), &mut out).unwrap();
        }
        assert_eq!(out, b"first frame and the second");
    }

    #[test]
    fn garbage_is_an_error() {
        let mut out = Vec::new();
        let result = inflate_into(&mut Decompress::new(false), &[0xff; 32], &mut out);
        assert!(result.is_err());
    }
}
