//! One V2 connection over a blocking `TcpStream`: magic and IDENTIFY, commands buffered and
//! written in one call, frames read in large chunks and decoded by `sluice_proto`.
//!
//! Mirrors go-nsq's `conn.go` (`Connect`, `identify`, `readLoop`'s heartbeat answer). The
//! framing is `sluice_proto`'s `put_*` encoders and [`FrameDecoder`]; this type only adds the
//! socket, so another IO engine can reuse the same buffers and decoders.

use bytes::BytesMut;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use sluice_proto::identify::IdentifyResponse;
use sluice_proto::v2::{put_command, put_magic, Command, Frame, FrameDecoder, OK};

use crate::config::Config;
use crate::error::{BrokerError, Error};

/// What one read produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Bytes arrived; the complete frames among them were appended (possibly none).
    Data,
    /// The read timed out (or, for a non-blocking read, nothing was there).
    Idle,
}

/// A V2 connection that has sent its magic and IDENTIFY.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    addr: String,
    read_buf: BytesMut,
    /// What each read fills; its bytes are then appended to `read_buf`. Reading into
    /// `read_buf`'s spare capacity directly would need `unsafe` (it is uninitialised), and
    /// zeroing a whole chunk before every read costs more than copying what was read.
    scratch: Vec<u8>,
    decoder: FrameDecoder,
    out: BytesMut,
    identify: IdentifyResponse,
    heartbeats: u64,
}

impl Conn {
    /// Connects to `addr` (`host:port`), sends the magic and IDENTIFY with
    /// `feature_negotiation`, and reads the broker's answer.
    ///
    /// # Errors
    /// [`Error::Io`] when the broker cannot be reached, [`Error::Broker`] when it refuses the
    /// IDENTIFY, [`Error::Unexpected`] when it answers something else.
    pub fn connect(addr: &str, config: &Config) -> Result<Conn, Error> {
        let stream = dial(addr, config.dial_timeout)?;
        let context = |what: &str| format!("{what} {addr}");
        stream
            .set_nodelay(true)
            .and_then(|()| stream.set_write_timeout(Some(config.write_timeout)))
            .and_then(|()| stream.set_read_timeout(Some(config.read_timeout)))
            .map_err(|e| Error::io(context("configuring the socket to"), e))?;
        let mut conn = Conn {
            stream,
            addr: addr.to_owned(),
            read_buf: BytesMut::with_capacity(config.read_chunk),
            scratch: vec![0; config.read_chunk.max(4096)],
            decoder: FrameDecoder::new(config.max_frame_size),
            out: BytesMut::with_capacity(config.read_chunk),
            identify: IdentifyResponse::default(),
            heartbeats: 0,
        };
        conn.identify = conn.handshake(config)?;
        Ok(conn)
    }

    fn handshake(&mut self, config: &Config) -> Result<IdentifyResponse, Error> {
        let body = serde_json::to_vec(&config.identify_request()).unwrap_or_default();
        put_magic(&mut self.out);
        put_command(&mut self.out, &Command::Identify(body.into()));
        self.flush()?;
        match self.read_frame()? {
            Frame::Response(data) if data.as_ref() == OK => Ok(IdentifyResponse::default()),
            Frame::Response(data) => serde_json::from_slice(&data).map_err(|e| {
                self.unexpected(format!(
                    "IDENTIFY response is not JSON ({e}): {}",
                    String::from_utf8_lossy(&data)
                ))
            }),
            Frame::Error(data) => Err(self.broker_error(&data)),
            Frame::Message(_) => Err(self.unexpected("a message in answer to IDENTIFY".into())),
        }
    }

    /// The address this connection was opened to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The broker's IDENTIFY answer (defaults when it only said `OK`).
    pub fn identify(&self) -> &IdentifyResponse {
        &self.identify
    }

    /// Heartbeats received (and answered) so far.
    pub fn heartbeats(&self) -> u64 {
        self.heartbeats
    }

    /// Appends a command to the output buffer (nothing is written until [`Conn::flush`]).
    pub fn queue(&mut self, cmd: &Command) {
        put_command(&mut self.out, cmd);
    }

    /// The output buffer, for encoders such as [`crate::encode::MpubWriter`].
    pub fn out_mut(&mut self) -> &mut BytesMut {
        &mut self.out
    }

    /// Bytes waiting to be written.
    pub fn queued_len(&self) -> usize {
        self.out.len()
    }

    /// Writes everything buffered, in one call when the kernel takes it.
    ///
    /// # Errors
    /// [`Error::Io`] when the write fails or times out.
    pub fn flush(&mut self) -> Result<(), Error> {
        if self.out.is_empty() {
            return Ok(());
        }
        let result = self.stream.write_all(&self.out);
        self.out.clear();
        result.map_err(|e| Error::io(format!("writing to {}", self.addr), e))
    }

    /// Reads once (blocking up to the read timeout) and appends every complete frame to
    /// `frames`. Heartbeats are not returned: a `NOP` is queued for each, which the caller's
    /// next [`Conn::flush`] sends.
    ///
    /// # Errors
    /// [`Error::Closed`] at end of stream, [`Error::Io`] on a socket error, [`Error::Protocol`]
    /// on bytes that are not frames (the connection is then unusable).
    pub fn read_into(&mut self, frames: &mut Vec<Frame>) -> Result<ReadOutcome, Error> {
        let outcome = self.read_once_raw()?;
        if outcome == ReadOutcome::Data {
            self.decode_buffered(frames)?;
        }
        Ok(outcome)
    }

    /// Like [`Conn::read_into`], but returns [`ReadOutcome::Idle`] at once when nothing is
    /// buffered in the kernel.
    ///
    /// # Errors
    /// As [`Conn::read_into`].
    pub fn try_read_into(&mut self, frames: &mut Vec<Frame>) -> Result<ReadOutcome, Error> {
        self.set_nonblocking(true)?;
        let outcome = self.read_into(frames);
        self.set_nonblocking(false)?;
        outcome
    }

    /// Reads until one frame other than a heartbeat is complete, and returns it. Unlike
    /// [`Conn::read_into`] it writes the `NOP` for a heartbeat (and whatever else is queued)
    /// at once.
    ///
    /// # Errors
    /// As [`Conn::read_into`], and [`Error::Io`] with `TimedOut` when the read timeout passes
    /// with no frame.
    pub fn read_frame(&mut self) -> Result<Frame, Error> {
        loop {
            let frame = self.decode_one()?;
            // Answer heartbeats at once: this caller may not flush for a while.
            self.flush()?;
            if let Some(frame) = frame {
                return Ok(frame);
            }
            if self.read_once_raw()? == ReadOutcome::Idle {
                let timeout = io::Error::new(ErrorKind::TimedOut, "no frame before the timeout");
                return Err(Error::io(format!("reading from {}", self.addr), timeout));
            }
        }
    }

    fn read_once_raw(&mut self) -> Result<ReadOutcome, Error> {
        let n = match self.stream.read(&mut self.scratch) {
            Ok(0) => return Err(Error::Closed(self.addr.clone())),
            Ok(n) => n,
            Err(e) => {
                return match e.kind() {
                    ErrorKind::WouldBlock | ErrorKind::TimedOut => Ok(ReadOutcome::Idle),
                    ErrorKind::Interrupted => Ok(ReadOutcome::Data),
                    _ => Err(Error::io(format!("reading from {}", self.addr), e)),
                }
            }
        };
        self.read_buf
            .extend_from_slice(self.scratch.get(..n).unwrap_or_default());
        Ok(ReadOutcome::Data)
    }

    fn decode_one(&mut self) -> Result<Option<Frame>, Error> {
        loop {
            let frame =
                self.decoder
                    .decode(&mut self.read_buf)
                    .map_err(|error| Error::Protocol {
                        addr: self.addr.clone(),
                        error,
                    })?;
            match frame {
                Some(frame) if frame.is_heartbeat() => self.answer_heartbeat(),
                other => return Ok(other),
            }
        }
    }

    fn decode_buffered(&mut self, frames: &mut Vec<Frame>) -> Result<(), Error> {
        while let Some(frame) = self.decode_one()? {
            frames.push(frame);
        }
        Ok(())
    }

    /// Queues the `NOP` a heartbeat asks for; the caller's next flush sends it.
    fn answer_heartbeat(&mut self) {
        self.heartbeats += 1;
        put_command(&mut self.out, &Command::Nop);
    }

    /// Switches the socket between blocking and non-blocking reads and writes.
    ///
    /// # Errors
    /// [`Error::Io`] if the OS refuses.
    pub fn set_nonblocking(&self, nonblocking: bool) -> Result<(), Error> {
        self.stream
            .set_nonblocking(nonblocking)
            .map_err(|e| Error::io(format!("configuring the socket to {}", self.addr), e))
    }

    /// Changes the read timeout (how long [`Conn::read_into`] blocks).
    ///
    /// # Errors
    /// [`Error::Io`] if the OS refuses (e.g. a zero duration).
    pub fn set_read_timeout(&self, timeout: Duration) -> Result<(), Error> {
        self.stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| Error::io(format!("configuring the socket to {}", self.addr), e))
    }

    /// A second handle on the socket, for writing from another thread.
    ///
    /// # Errors
    /// [`Error::Io`] if the descriptor cannot be duplicated.
    pub fn try_clone_stream(&self) -> Result<TcpStream, Error> {
        self.stream
            .try_clone()
            .map_err(|e| Error::io(format!("duplicating the socket to {}", self.addr), e))
    }

    /// Closes both directions (other handles on the socket see the end of stream).
    pub fn shutdown(&self) {
        // Nothing useful can be done if the socket is already gone.
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// The error for an error frame on this connection.
    pub fn broker_error(&self, data: &[u8]) -> Error {
        Error::Broker {
            addr: self.addr.clone(),
            error: BrokerError::from_frame(None, data),
        }
    }

    fn unexpected(&self, detail: String) -> Error {
        Error::Unexpected {
            addr: self.addr.clone(),
            detail,
        }
    }
}

/// Connects to the first address `addr` resolves to that accepts within `timeout`.
fn dial(addr: &str, timeout: Duration) -> Result<TcpStream, Error> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| Error::io(format!("resolving {addr}"), e))?
        .collect();
    let mut last = io::Error::new(ErrorKind::NotFound, "no address");
    for candidate in addrs {
        match TcpStream::connect_timeout(&candidate, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(Error::io(format!("connecting to {addr}"), last))
}
