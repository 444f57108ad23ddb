//! One lookupd, seen from the broker: a blocking TCP connection speaking lookup protocol V1,
//! reconnected with a capped backoff.
//!
//! Mirrors upstream `nsqd/lookup_peer.go` (1 s dial timeout, 1 s read and write deadlines, one
//! reply per command, any failure closes the connection) and `nsqd/lookup.go`
//! `connectCallback` (`"  V1"`, IDENTIFY, then REGISTER everything). Unlike upstream, which
//! reconnects lazily on its next command, a peer reconnects on its own schedule (first at
//! once, then after 250 ms doubling up to 15 s), and notices a lookupd that went away within a
//! second (see [`Peer::check_closed`]) rather than at the next 15 s PING. Time is an argument:
//! the registration thread reads the clock.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use sluice_proto::lookup::{
    put_lookup_command, IdentifyInfo, LookupCommand, LookupReply, ReplyDecoder, MAGIC_V1,
};
use sluice_proto::ProtoError;

/// Upstream's dial timeout (`lookup_peer.go` `Connect`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Upstream's read and write deadline per command (`lookup_peer.go` `Read`/`Write`).
pub const IO_TIMEOUT: Duration = Duration::from_secs(1);
/// Upstream's heartbeat (`lookup.go` `lookupLoop`: `time.Tick(15 * time.Second)`).
pub const PING_INTERVAL: Duration = Duration::from_secs(15);
/// The first wait before reconnecting after a failure.
pub const RETRY_MIN: Duration = Duration::from_millis(250);
/// The longest wait between two connection attempts.
pub const RETRY_MAX: Duration = Duration::from_secs(15);
/// Commands written before their replies are read. Pipelining keeps a registration of many
/// topics fast; the bound keeps both socket buffers far from full (256 lines of at most 141
/// bytes one way, 256 six-byte replies the other), so neither side can block the other.
pub const PIPELINE_MAX: usize = 256;

/// Why an exchange with a lookupd failed; the connection is closed after any of them.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The address did not resolve.
    #[error("cannot resolve {0}")]
    Resolve(String),
    /// Connecting, writing or reading failed (timeouts included).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The lookupd closed the connection.
    #[error("connection closed by lookupd")]
    Closed,
    /// A reply could not be framed.
    #[error("{0}")]
    Protocol(#[from] ProtoError),
    /// The lookupd answered with an error (it closes the connection after it).
    #[error("lookupd replied {0}")]
    Refused(String),
    /// The IDENTIFY reply is not the JSON expected.
    #[error("parsing response - {0}")]
    BadIdentify(String),
}

/// A lookupd this broker registers with.
#[derive(Debug)]
pub struct Peer {
    address: String,
    connection: Option<Connection>,
    /// What the lookupd said about itself at the last IDENTIFY (kept across reconnects, as
    /// upstream keeps `lp.Info`).
    info: Option<IdentifyInfo>,
    retry_at: Instant,
    retry_delay: Duration,
    ping_at: Instant,
}

#[derive(Debug)]
struct Connection {
    stream: TcpStream,
    read_buf: BytesMut,
    replies: ReplyDecoder,
}

impl Peer {
    /// A peer for `address` (`host:port`), to be connected at `now`.
    pub fn new(address: &str, now: Instant) -> Peer {
        Peer {
            address: address.to_owned(),
            connection: None,
            info: None,
            retry_at: now,
            retry_delay: RETRY_MIN,
            ping_at: now,
        }
    }

    /// The address it was configured with.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Whether it is connected and registered.
    pub fn is_connected(&self) -> bool {
        self.connection.is_some()
    }

    /// The lookupd's HTTP address as it announced it at IDENTIFY (`broadcast_address:http_port`,
    /// upstream `lookupdHTTPAddrs`), once it has connected at least once.
    pub fn http_address(&self) -> Option<String> {
        let info = self.info.as_ref()?;
        if info.broadcast_address.is_empty() {
            return None;
        }
        Some(join_host_port(&info.broadcast_address, info.http_port))
    }

    /// When [`Peer::poll`] next has something to do.
    pub fn next_deadline(&self) -> Instant {
        if self.connection.is_some() {
            self.ping_at
        } else {
            self.retry_at
        }
    }

    /// Connects (then IDENTIFY and `registrations`) when a connection attempt is due, or sends a
    /// PING when one is due. `registrations` is only called when connecting.
    pub fn poll(
        &mut self,
        now: Instant,
        identify: &LookupCommand,
        registrations: impl FnOnce() -> Vec<LookupCommand>,
    ) {
        if self.connection.is_none() {
            if now >= self.retry_at {
                self.connect(now, identify, registrations);
            }
        } else if now >= self.ping_at {
            tracing::debug!("LOOKUPD({}): sending heartbeat", self.address);
            self.send(now, &[LookupCommand::Ping]);
            self.ping_at = now + PING_INTERVAL;
        }
    }

    fn connect(
        &mut self,
        now: Instant,
        identify: &LookupCommand,
        registrations: impl FnOnce() -> Vec<LookupCommand>,
    ) {
        tracing::info!("LOOKUP connecting to {}", self.address);
        let mut connection = match Connection::open(&self.address) {
            Ok(connection) => connection,
            Err(e) => return self.failed(now, &e),
        };
        let info = match connection.identify(identify) {
            Ok(info) => info,
            Err(e) => return self.failed(now, &e),
        };
        tracing::info!("LOOKUPD({}): peer info {info:?}", self.address);
        if info.broadcast_address.is_empty() {
            tracing::error!("LOOKUPD({}): no broadcast address", self.address);
        }
        self.info = Some(info);
        let commands = registrations();
        for command in &commands {
            tracing::info!("LOOKUPD({}): {}", self.address, describe(command));
        }
        if let Err(e) = connection.exchange(&commands) {
            return self.failed(now, &e);
        }
        self.connection = Some(connection);
        self.retry_delay = RETRY_MIN;
        self.ping_at = now + PING_INTERVAL;
    }

    /// Sends `commands` (REGISTER, UNREGISTER, PING) if connected, and reads their replies.
    /// When disconnected they are dropped: the next connection registers everything anew.
    pub fn send(&mut self, now: Instant, commands: &[LookupCommand]) {
        let Some(connection) = self.connection.as_mut() else {
            return;
        };
        if let Err(e) = connection.exchange(commands) {
            self.failed(now, &e);
        }
    }

    /// Closes the connection if the lookupd closed its side or sent something unasked (it
    /// only ever replies), so a restarted lookupd is registered with again within the polling
    /// interval instead of at the next PING. Never blocks.
    pub fn check_closed(&mut self, now: Instant) {
        let Some(connection) = self.connection.as_ref() else {
            return;
        };
        if connection.peer_closed() {
            self.failed(now, &PeerError::Closed);
        }
    }

    fn failed(&mut self, now: Instant, error: &PeerError) {
        tracing::error!("LOOKUPD({}): {error}", self.address);
        self.connection = None;
        self.retry_at = now + self.retry_delay;
        self.retry_delay = (self.retry_delay * 2).min(RETRY_MAX);
    }
}

impl Connection {
    fn open(address: &str) -> Result<Connection, PeerError> {
        let addrs: Vec<SocketAddr> = address
            .to_socket_addrs()
            .map_err(|_| PeerError::Resolve(address.to_owned()))?
            .collect();
        let mut last = PeerError::Resolve(address.to_owned());
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(IO_TIMEOUT))?;
                    stream.set_write_timeout(Some(IO_TIMEOUT))?;
                    stream.set_nodelay(true)?;
                    let mut connection = Connection {
                        stream,
                        read_buf: BytesMut::with_capacity(4096),
                        replies: ReplyDecoder::default(),
                    };
                    connection.stream.write_all(MAGIC_V1)?;
                    return Ok(connection);
                }
                Err(e) => last = e.into(),
            }
        }
        Err(last)
    }

    /// IDENTIFY and its reply, the lookupd's own description (upstream `connectCallback`).
    fn identify(&mut self, identify: &LookupCommand) -> Result<IdentifyInfo, PeerError> {
        let reply = self
            .exchange(std::slice::from_ref(identify))?
            .pop()
            .ok_or(PeerError::Closed)?;
        serde_json::from_slice::<IdentifyInfo>(&reply)
            .map_err(|_| PeerError::BadIdentify(String::from_utf8_lossy(&reply).into_owned()))
    }

    /// Writes `commands` (at most [`PIPELINE_MAX`] before reading their replies) and returns
    /// the replies' data. An error reply ends the exchange.
    fn exchange(&mut self, commands: &[LookupCommand]) -> Result<Vec<Bytes>, PeerError> {
        let mut replies = Vec::with_capacity(commands.len());
        let mut out = BytesMut::new();
        for batch in commands.chunks(PIPELINE_MAX) {
            out.clear();
            for command in batch {
                put_lookup_command(&mut out, command);
            }
            self.stream.write_all(&out)?;
            for _ in batch {
                let data = self.read_reply()?;
                match LookupReply::parse(data) {
                    LookupReply::Error(text) => {
                        return Err(PeerError::Refused(String::from_utf8_lossy(&text).into()))
                    }
                    LookupReply::Ok => replies.push(Bytes::from_static(b"OK")),
                    LookupReply::Data(data) => replies.push(data),
                }
            }
        }
        Ok(replies)
    }

    fn read_reply(&mut self) -> Result<Bytes, PeerError> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(reply) = self.replies.decode(&mut self.read_buf)? {
                return Ok(reply);
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(PeerError::Closed);
            }
            self.read_buf
                .extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
    }

    fn peer_closed(&self) -> bool {
        if self.stream.set_nonblocking(true).is_err() {
            return true;
        }
        let mut byte = [0u8; 1];
        let closed = match self.stream.peek(&mut byte) {
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
            // End of stream, or bytes nobody asked for: either way the exchange is over.
            Ok(_) => true,
        };
        self.stream.set_nonblocking(false).is_err() || closed
    }
}

/// `REGISTER t c` as upstream logs a command (`nsq.Command.String`).
pub fn describe(command: &LookupCommand) -> String {
    match command {
        LookupCommand::Register { topic, channel }
        | LookupCommand::Unregister { topic, channel } => match channel {
            Some(channel) => format!("{} {topic} {channel}", command.verb()),
            None => format!("{} {topic}", command.verb()),
        },
        LookupCommand::Identify(_) | LookupCommand::Ping => command.verb().to_owned(),
    }
}

/// `host:port`, bracketing IPv6 literals (Go's `net.JoinHostPort`).
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
