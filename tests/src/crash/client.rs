//! A small blocking NSQ V2 client for the crash suites: the command encoders a publisher and a
//! consumer need (`PUB`, `MPUB`, `DPUB`, `SUB`, `RDY`, `FIN`, `REQ`, `NOP`), a frame reader with
//! deadlines that answers heartbeats, and a consume loop that acknowledges in batches.
//!
//! Layouts are upstream's (`nsqd/protocol_v2.go`, `nsqd/message.go`): frames are
//! `[u32 size][u32 type][data]` big-endian; a message frame's data is
//! `[i64 timestamp ns][u16 attempts][16-byte id][body]`. Like the rest of the harness it shares
//! no code with `sluice-proto`: the suites using it are the broker's referee.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::frame::{FRAME_SIZE_MAX, FRAME_TYPE_ERROR, FRAME_TYPE_MESSAGE, FRAME_TYPE_RESPONSE};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 256 * 1024;
/// Upstream's heartbeat text (`nsqd/protocol_v2.go` `heartbeatBytes`).
const HEARTBEAT: &[u8] = b"_heartbeat_";
/// Bytes before the body in a message frame's data: timestamp, attempts, id.
const MESSAGE_HEADER_LEN: usize = 8 + 2 + 16;

/// One delivered message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The 16-byte id, as sent back in `FIN`/`REQ`.
    pub id: [u8; 16],
    /// Deliveries so far, this one included.
    pub attempts: u16,
    /// Publish time, ns since the epoch.
    pub timestamp: i64,
    /// The body.
    pub body: Vec<u8>,
}

/// What the server sent (heartbeats are answered and never returned).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A response frame (`OK`, `CLOSE_WAIT`, …).
    Response(Vec<u8>),
    /// An error frame, as text (`E_PUB_FAILED …`).
    Error(String),
    /// A message frame.
    Message(Delivery),
}

/// What [`V2Client::consume`] does with a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ack {
    /// `FIN` it.
    Fin,
    /// `REQ` it with this delay in milliseconds.
    Req(u32),
    /// Leave it in flight.
    Hold,
}

/// Why [`V2Client::consume`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// The handler asked to stop.
    Done,
    /// No message arrived for the quiet period.
    Quiet,
    /// The deadline passed.
    Deadline,
}

/// One V2 connection.
#[derive(Debug)]
pub struct V2Client {
    stream: TcpStream,
    addr: SocketAddr,
    buf: Vec<u8>,
    /// Start of the unread bytes in `buf`.
    start: usize,
}

impl V2Client {
    /// Connects and sends the `  V2` magic.
    ///
    /// # Errors
    /// The connection or the write failed.
    pub fn connect(addr: SocketAddr) -> Result<V2Client, String> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let mut client = V2Client {
            stream,
            addr,
            buf: Vec::with_capacity(READ_CHUNK),
            start: 0,
        };
        client.send(b"  V2")?;
        Ok(client)
    }

    /// Connects, subscribes to `topic`/`channel` (waiting for the `OK`) and sends `RDY rdy`.
    ///
    /// # Errors
    /// Anything but `OK` to the `SUB`, or a connection failure.
    pub fn subscribe(
        addr: SocketAddr,
        topic: &str,
        channel: &str,
        rdy: u32,
    ) -> Result<V2Client, String> {
        let mut client = V2Client::connect(addr)?;
        let mut cmd = Vec::new();
        put_sub(&mut cmd, topic, channel);
        client.send(&cmd)?;
        client.expect_ok(Instant::now() + Duration::from_secs(10))?;
        cmd.clear();
        put_rdy(&mut cmd, rdy);
        client.send(&cmd)?;
        Ok(client)
    }

    /// Sends raw bytes.
    ///
    /// # Errors
    /// The write failed.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .map_err(|e| format!("send to {}: {e}", self.addr))
    }

    /// Sends one command and waits for its `OK`.
    ///
    /// # Errors
    /// An error frame (its text), a message frame, a timeout or a connection failure.
    pub fn request_ok(&mut self, command: &[u8], deadline: Instant) -> Result<(), String> {
        self.send(command)?;
        self.expect_ok(deadline)
    }

    fn expect_ok(&mut self, deadline: Instant) -> Result<(), String> {
        match self.next_event(deadline)? {
            Some(Event::Response(r)) if r == b"OK" => Ok(()),
            Some(Event::Error(e)) => Err(e),
            Some(other) => Err(format!("expected OK, got {other:?}")),
            None => Err(format!("no reply from {} before the deadline", self.addr)),
        }
    }

    /// The next frame, or `None` when `deadline` passes first. Heartbeats are answered with
    /// `NOP` and skipped.
    ///
    /// # Errors
    /// The connection closed or failed, or sent a malformed frame.
    pub fn next_event(&mut self, deadline: Instant) -> Result<Option<Event>, String> {
        loop {
            if let Some(event) = self.take_frame()? {
                if event == Event::Response(HEARTBEAT.to_vec()) {
                    self.send(b"NOP\n")?;
                    continue;
                }
                return Ok(Some(event));
            }
            if !self.fill(deadline)? {
                return Ok(None);
            }
        }
    }

    /// Reads more bytes; `false` when the deadline passed first.
    fn fill(&mut self, deadline: Instant) -> Result<bool, String> {
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        let wait = (deadline - now).max(Duration::from_millis(1));
        self.stream
            .set_read_timeout(Some(wait))
            .map_err(|e| e.to_string())?;
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > READ_CHUNK {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let len = self.buf.len();
        self.buf.resize(len + READ_CHUNK, 0);
        let read = self.stream.read(&mut self.buf[len..]);
        match read {
            Ok(0) => {
                self.buf.truncate(len);
                Err(format!("{} closed the connection", self.addr))
            }
            Ok(n) => {
                self.buf.truncate(len + n);
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                self.buf.truncate(len);
                Ok(Instant::now() < deadline)
            }
            Err(e) => {
                self.buf.truncate(len);
                Err(format!("read from {}: {e}", self.addr))
            }
        }
    }

    /// Takes one whole frame off the buffer, if there is one.
    fn take_frame(&mut self) -> Result<Option<Event>, String> {
        let rest = &self.buf[self.start..];
        let Some(prefix) = rest.get(..4) else {
            return Ok(None);
        };
        let size = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if !(4..=FRAME_SIZE_MAX).contains(&size) {
            return Err(format!("bad frame size {size} from {}", self.addr));
        }
        let Some(frame) = rest.get(4..4 + size) else {
            return Ok(None);
        };
        let frame_type = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        let data = &frame[4..];
        let event = match frame_type {
            FRAME_TYPE_RESPONSE => Event::Response(data.to_vec()),
            FRAME_TYPE_ERROR => Event::Error(String::from_utf8_lossy(data).into_owned()),
            FRAME_TYPE_MESSAGE => Event::Message(parse_message(data)?),
            other => return Err(format!("unknown frame type {other} from {}", self.addr)),
        };
        self.start += 4 + size;
        Ok(Some(event))
    }

    /// Receives messages and acknowledges each as `handle` says (acks are written once per
    /// read, as a real client batches them). `handle` returns the ack and whether to stop.
    /// Returns when `handle` says stop, when `quiet` passes with no message (if given), or at
    /// `deadline`.
    ///
    /// # Errors
    /// An error frame, a connection failure or a malformed frame.
    pub fn consume(
        &mut self,
        deadline: Instant,
        quiet: Option<Duration>,
        mut handle: impl FnMut(&Delivery) -> (Ack, bool),
    ) -> Result<Stopped, String> {
        let mut acks = Vec::new();
        let mut last_message = Instant::now();
        loop {
            let mut stop = false;
            while let Some(event) = self.take_frame()? {
                match event {
                    Event::Message(delivery) => {
                        last_message = Instant::now();
                        let (ack, done) = handle(&delivery);
                        match ack {
                            Ack::Fin => put_fin(&mut acks, &delivery.id),
                            Ack::Req(ms) => put_req(&mut acks, &delivery.id, ms),
                            Ack::Hold => {}
                        }
                        if done {
                            stop = true;
                            break;
                        }
                    }
                    Event::Response(r) if r == HEARTBEAT => acks.extend_from_slice(b"NOP\n"),
                    Event::Response(_) => {}
                    Event::Error(e) => return Err(format!("error frame while consuming: {e}")),
                }
            }
            if !acks.is_empty() {
                self.send(&acks)?;
                acks.clear();
            }
            if stop {
                return Ok(Stopped::Done);
            }
            let now = Instant::now();
            let quiet_end = quiet.map(|q| last_message + q);
            if quiet_end.is_some_and(|end| now >= end) {
                return Ok(Stopped::Quiet);
            }
            if now >= deadline {
                return Ok(Stopped::Deadline);
            }
            let until = quiet_end.map_or(deadline, |end| end.min(deadline));
            self.fill(until)?;
        }
    }
}

fn parse_message(data: &[u8]) -> Result<Delivery, String> {
    if data.len() < MESSAGE_HEADER_LEN {
        return Err(format!("message frame of {} bytes", data.len()));
    }
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&data[..8]);
    let mut id = [0u8; 16];
    id.copy_from_slice(&data[10..26]);
    Ok(Delivery {
        id,
        attempts: u16::from_be_bytes([data[8], data[9]]),
        timestamp: i64::from_be_bytes(ts),
        body: data[MESSAGE_HEADER_LEN..].to_vec(),
    })
}

/// Appends `PUB topic\n[size][body]`.
pub fn put_pub(buf: &mut Vec<u8>, topic: &str, body: &[u8]) {
    buf.extend_from_slice(format!("PUB {topic}\n").as_bytes());
    put_sized(buf, body);
}

/// Appends `DPUB topic defer_ms\n[size][body]`.
pub fn put_dpub(buf: &mut Vec<u8>, topic: &str, defer_ms: u32, body: &[u8]) {
    buf.extend_from_slice(format!("DPUB {topic} {defer_ms}\n").as_bytes());
    put_sized(buf, body);
}

/// Appends `MPUB topic\n[total size][count]([size][body])*`.
pub fn put_mpub<B: AsRef<[u8]>>(buf: &mut Vec<u8>, topic: &str, bodies: &[B]) {
    buf.extend_from_slice(format!("MPUB {topic}\n").as_bytes());
    let total: usize = 4 + bodies.iter().map(|b| 4 + b.as_ref().len()).sum::<usize>();
    buf.extend_from_slice(&(total as u32).to_be_bytes());
    buf.extend_from_slice(&(bodies.len() as u32).to_be_bytes());
    for body in bodies {
        put_sized(buf, body.as_ref());
    }
}

/// Appends `SUB topic channel\n`.
pub fn put_sub(buf: &mut Vec<u8>, topic: &str, channel: &str) {
    buf.extend_from_slice(format!("SUB {topic} {channel}\n").as_bytes());
}

/// Appends `RDY n\n`.
pub fn put_rdy(buf: &mut Vec<u8>, count: u32) {
    buf.extend_from_slice(format!("RDY {count}\n").as_bytes());
}

/// Appends `FIN id\n`.
pub fn put_fin(buf: &mut Vec<u8>, id: &[u8; 16]) {
    buf.extend_from_slice(b"FIN ");
    buf.extend_from_slice(id);
    buf.push(b'\n');
}

/// Appends `REQ id delay_ms\n`.
pub fn put_req(buf: &mut Vec<u8>, id: &[u8; 16], delay_ms: u32) {
    buf.extend_from_slice(b"REQ ");
    buf.extend_from_slice(id);
    buf.extend_from_slice(format!(" {delay_ms}\n").as_bytes());
}

fn put_sized(buf: &mut Vec<u8>, body: &[u8]) {
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpub_sizes_count_every_length_prefix() {
        let mut buf = Vec::new();
        put_mpub(&mut buf, "t", &[b"ab".as_slice(), b"c".as_slice()]);
        let mut want = b"MPUB t\n".to_vec();
        want.extend_from_slice(&[0, 0, 0, 15, 0, 0, 0, 2, 0, 0, 0, 2, b'a', b'b']);
        want.extend_from_slice(&[0, 0, 0, 1, b'c']);
        assert_eq!(buf, want);
    }

    #[test]
    fn message_frames_parse_upstreams_layout() {
        let mut data = 1_700_000_000_000_000_000i64.to_be_bytes().to_vec();
        data.extend_from_slice(&3u16.to_be_bytes());
        data.extend_from_slice(b"0123456789abcdef");
        data.extend_from_slice(b"body");
        let d = parse_message(&data).unwrap();
        assert_eq!(d.attempts, 3);
        assert_eq!(d.timestamp, 1_700_000_000_000_000_000);
        assert_eq!(&d.id, b"0123456789abcdef");
        assert_eq!(d.body, b"body");
        assert!(parse_message(&data[..20]).is_err());
    }

    #[test]
    fn req_and_fin_carry_the_id() {
        let mut buf = Vec::new();
        put_fin(&mut buf, b"0123456789abcdef");
        put_req(&mut buf, b"0123456789abcdef", 250);
        assert_eq!(
            buf,
            b"FIN 0123456789abcdef\nREQ 0123456789abcdef 250\n".to_vec()
        );
    }
}
