//! `sluice-perf sink`: the cheapest server that speaks enough V2 for the load generator, to
//! measure the generator's own ceiling. It answers `OK` to every publish without looking
//! inside the bodies, and delivers synthetic stamped messages to a subscriber as fast as its
//! RDY allows, taking `FIN`s as the only flow control. One blocking thread per connection,
//! one read and one write per cycle.
//!
//! It parses only what it must (mirroring upstream `nsqd/protocol_v2.go`'s framing: a line,
//! then `[u32 size][body]` for IDENTIFY, AUTH, PUB, MPUB, DPUB), and IDENTIFY is negotiated by
//! `sluice_proto::identify`, so real clients can connect too.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};

use anyhow::Context;
use bytes::{BufMut, BytesMut};
use sluice_proto::identify::{negotiate, IdentifyRequest, IdentifyResponse, ServerFeatures};
use sluice_proto::message::MESSAGE_HEADER_LEN;
use sluice_proto::v2::{put_error, put_response, FrameType, CLOSE_WAIT, MAGIC_V2, OK};
use sluice_proto::{ErrorCode, Limits, MessageId, ProtoError};

use crate::body::{wall_ns, Stamp, HEADER_LEN};
use crate::cli::SinkArgs;
use crate::pin;

/// The largest command body accepted (upstream's default `--max-body-size`).
const MAX_BODY: usize = 5 * 1024 * 1024;
const READ_CHUNK: usize = 256 * 1024;

/// Listens and serves every connection until killed.
///
/// # Errors
/// When the address cannot be bound.
pub fn run(args: &SinkArgs) -> anyhow::Result<()> {
    if let Some(cpus) = &args.cpus {
        pin::pin_self(cpus)?;
    }
    let listener = TcpListener::bind(&args.tcp_address)
        .with_context(|| format!("binding {}", args.tcp_address))?;
    eprintln!("sink: listening on {}", listener.local_addr()?);
    let size = args.size.max(HEADER_LEN);
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        std::thread::spawn(move || {
            let _ = Connection::new(stream, size).serve();
        });
    }
    Ok(())
}

/// One client connection's state.
struct Connection {
    stream: TcpStream,
    input: Vec<u8>,
    filled: usize,
    out: BytesMut,
    body: Vec<u8>,
    subscribed: bool,
    closing: bool,
    rdy: u64,
    in_flight: u64,
    seq: u64,
}

/// What one parsed command asks of the connection.
enum Step {
    /// Need more bytes.
    More,
    /// Consumed this many bytes.
    Done(usize),
    /// Close after writing what is queued.
    Close,
}

impl Connection {
    fn new(stream: TcpStream, size: usize) -> Connection {
        Connection {
            stream,
            input: vec![0; READ_CHUNK],
            filled: 0,
            out: BytesMut::with_capacity(READ_CHUNK),
            body: vec![b'x'; size],
            subscribed: false,
            closing: false,
            rdy: 0,
            in_flight: 0,
            seq: 0,
        }
    }

    fn serve(mut self) -> io::Result<()> {
        self.stream.set_nodelay(true)?;
        let mut magic = [0u8; 4];
        self.stream.read_exact(&mut magic)?;
        if &magic != MAGIC_V2 {
            put_error(&mut self.out, &ProtoError::bare(ErrorCode::BadProtocol));
            return self.stream.write_all(&self.out);
        }
        loop {
            if self.filled == self.input.len() {
                let grown = (self.input.len() * 2).min(MAX_BODY + READ_CHUNK);
                self.input.resize(grown, 0);
            }
            let n = self.stream.read(&mut self.input[self.filled..])?;
            if n == 0 {
                return Ok(());
            }
            self.filled += n;
            let keep_going = self.handle_input();
            self.deliver();
            if !self.out.is_empty() {
                self.stream.write_all(&self.out)?;
                self.out.clear();
            }
            if !keep_going {
                return Ok(());
            }
        }
    }

    /// Handles every complete command buffered; returns false to close.
    fn handle_input(&mut self) -> bool {
        let mut at = 0;
        let mut open = true;
        while at < self.filled {
            match self.handle_command(at) {
                Step::More => break,
                Step::Done(n) => at += n,
                Step::Close => {
                    open = false;
                    break;
                }
            }
        }
        self.input.copy_within(at..self.filled, 0);
        self.filled -= at;
        open
    }

    fn handle_command(&mut self, at: usize) -> Step {
        let pending = &self.input[at..self.filled];
        let Some(nl) = pending.iter().position(|b| *b == b'\n') else {
            return if pending.len() > 1024 {
                self.fail("line too long")
            } else {
                Step::More
            };
        };
        let line = &pending[..nl];
        let verb = line.split(|b| *b == b' ').next().unwrap_or_default();
        let has_body = matches!(verb, b"PUB" | b"MPUB" | b"DPUB" | b"IDENTIFY" | b"AUTH");
        if !has_body {
            let arg = line.get(verb.len() + 1..).unwrap_or_default().to_vec();
            let verb = verb.to_vec();
            return match self.handle_line(&verb, &arg) {
                true => Step::Done(nl + 1),
                false => Step::Close,
            };
        }
        let Some(size_bytes) = pending.get(nl + 1..nl + 5) else {
            return Step::More;
        };
        let size = u32::from_be_bytes([size_bytes[0], size_bytes[1], size_bytes[2], size_bytes[3]])
            as usize;
        if size > MAX_BODY {
            return self.fail("body too big");
        }
        let total = nl + 5 + size;
        if pending.len() < total {
            return Step::More;
        }
        if verb == b"IDENTIFY" {
            let body = pending[nl + 5..total].to_vec();
            return if self.identify(&body) {
                Step::Done(total)
            } else {
                Step::Close
            };
        }
        put_response(&mut self.out, OK);
        Step::Done(total)
    }

    fn handle_line(&mut self, verb: &[u8], arg: &[u8]) -> bool {
        match verb {
            b"SUB" => {
                self.subscribed = true;
                put_response(&mut self.out, OK);
            }
            b"RDY" => {
                self.rdy = std::str::from_utf8(arg)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
            }
            b"FIN" | b"REQ" => self.in_flight = self.in_flight.saturating_sub(1),
            b"TOUCH" | b"NOP" => {}
            b"CLS" => {
                self.closing = true;
                put_response(&mut self.out, CLOSE_WAIT);
            }
            _ => {
                let text = format!("invalid command {}", String::from_utf8_lossy(verb));
                put_error(&mut self.out, &ProtoError::new(ErrorCode::Invalid, text));
                return false;
            }
        }
        true
    }

    fn identify(&mut self, body: &[u8]) -> bool {
        let limits = Limits::default();
        let features = ServerFeatures::default();
        let negotiated =
            IdentifyRequest::from_json(body).and_then(|r| negotiate(&r, &limits, &features));
        match negotiated {
            Ok(n) if n.feature_negotiation => {
                let json = IdentifyResponse::new(&n, &limits, &features, "1.3.0").to_json();
                put_response(&mut self.out, &json);
                true
            }
            Ok(_) => {
                put_response(&mut self.out, OK);
                true
            }
            Err(err) => {
                put_error(&mut self.out, &err);
                false
            }
        }
    }

    fn fail(&mut self, why: &'static str) -> Step {
        put_error(&mut self.out, &ProtoError::new(ErrorCode::Invalid, why));
        Step::Close
    }

    /// Queues as many messages as RDY allows, all in this cycle's one write.
    fn deliver(&mut self) {
        if !self.subscribed || self.closing || self.in_flight >= self.rdy {
            return;
        }
        let count = self.rdy - self.in_flight;
        let now = wall_ns();
        let frame_len = 4 + MESSAGE_HEADER_LEN + self.body.len();
        self.out
            .reserve(frame_len.saturating_add(4) * count as usize);
        for _ in 0..count {
            Stamp {
                sent_ns: now,
                run_id: 0,
                producer: 0,
                topic: 0,
                seq: self.seq,
            }
            .write(&mut self.body[..HEADER_LEN]);
            self.out.put_u32(frame_len as u32);
            self.out.put_u32(FrameType::Message.as_u32());
            self.out.put_i64(now as i64);
            self.out.put_u16(1);
            self.out.put_slice(MessageId::from_u64(self.seq).as_bytes());
            self.out.put_slice(&self.body);
            self.seq += 1;
        }
        self.in_flight += count;
    }
}
