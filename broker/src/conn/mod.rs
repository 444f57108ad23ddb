//! A client connection: the protocol magic, the read → decode → execute cycle, and the writer.
//!
//! Mirrors upstream `nsqd/tcp.go` and the IO loop of `nsqd/protocol_v2.go`. Each cycle reads what
//! the socket has (up to [`READ_CHUNK`]), decodes every complete command, executes them in order
//! ([`exec`]), then lets the writer send every reply and delivery in one write. Publishes to
//! topics owned by another shard travel there as one batch per shard per cycle. What IDENTIFY
//! and AUTH add to the byte path (TLS, snappy, deflate, the auth server) is [`transport`]'s.

pub mod auth;
pub mod compress;
mod cycle;
pub mod exec;
pub mod handoff;
pub mod https;
mod layers;
pub mod scan;
pub mod shared;
pub mod tls;
pub mod tls_stream;
pub mod transport;
mod writer;

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use futures_lite::AsyncRead;
use glommio::net::TcpStream;
use sluice_proto::identify::{self, IdentifyRequest, Negotiated, ServerFeatures};
use sluice_proto::v2::{self, FrameType, MAGIC_V2};
use sluice_proto::{ErrorCode, ProtoError};
use transport::Transport;

use crate::shard::mesh::Handoff;
use crate::shard::Shard;
use shared::ConnShared;

/// The most bytes one read takes from the socket.
pub const READ_CHUNK: usize = 64 * 1024;

/// A connection's socket and negotiated layers, shared by its reader and its writer (one
/// thread; each borrow lasts one poll).
pub type SharedStream = Rc<Transport>;

/// The features this broker offers in IDENTIFY: TLS when a certificate is loaded, snappy and
/// deflate as `--snappy` and `--deflate` say, AUTH when an auth server is configured.
pub fn server_features(shard: &Shard) -> ServerFeatures {
    let opts = &shard.opts;
    ServerFeatures {
        tls: opts.security.tls_config.is_some(),
        snappy: opts.snappy,
        deflate: opts.deflate,
        auth_required: opts.security.auth_enabled(),
    }
}

/// The settings of a client that has not sent IDENTIFY: upstream's defaults.
pub fn default_identity(shard: &Shard) -> Negotiated {
    let features = server_features(shard);
    match identify::negotiate(&IdentifyRequest::default(), &shard.opts.limits, &features) {
        Ok(n) => n,
        // The empty request only takes defaults, which the options validated.
        Err(e) => unreachable!("default IDENTIFY refused: {e}"),
    }
}

/// Reads what the client sent next into `buf` (plaintext, whatever layers are on); returns the
/// bytes added (0 at end of stream).
///
/// # Errors
/// The socket's error, a broken TLS or compressed stream, or a refusal whose error frame is
/// already queued; the connection closes.
pub async fn read_some(
    stream: &SharedStream,
    scratch: &mut Vec<u8>,
    buf: &mut BytesMut,
) -> io::Result<usize> {
    stream.read_into(scratch, buf).await
}

/// Serves a newly accepted connection until it closes or moves to another shard.
pub async fn serve(shard: Rc<Shard>, stream: TcpStream) {
    let remote = stream
        .peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let _ = stream.set_nodelay(true);
    let stream = RefCell::new(stream);
    // Small: the magic and whatever came with it; the rest is read by the cycle.
    let mut scratch = vec![0u8; 256];
    let mut buf = BytesMut::new();
    while buf.len() < MAGIC_V2.len() {
        let read = poll_fn(|cx| Pin::new(&mut *stream.borrow_mut()).poll_read(cx, &mut scratch));
        match read.await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(scratch.get(..n).unwrap_or_default()),
        }
    }
    let magic = buf.split_to(MAGIC_V2.len());
    if magic.as_ref() != MAGIC_V2 {
        refuse_protocol(&stream, &magic).await;
        return;
    }
    let conn = Rc::new(ConnShared::new(
        shard.new_client_id(),
        remote,
        default_identity(&shard),
    ));
    tracing::debug!("TCP: new client({remote})");
    // What came with the magic goes through the transport, which may hold part of it back
    // (see `transport`); the cycle starts with an empty buffer.
    let transport = Transport::new(stream.into_inner(), conn.clone(), shard.opts.clone(), buf);
    // No per-connection read buffer is allocated up front: plain reads go through the shard's
    // scratch buffer (see `Transport::read_into`), so an idle connection costs little memory.
    run(
        shard,
        Rc::new(transport),
        conn,
        BytesMut::new(),
        Vec::new(),
        None,
    )
    .await;
}

/// Resumes a connection handed over by another shard: executes its SUB here, then serves it.
pub async fn resume(shard: Rc<Shard>, handoff: Box<Handoff>) {
    let Handoff {
        fd,
        client_id,
        identity,
        identified,
        topic,
        channel,
        leftover,
        link,
    } = *handoff;
    let stream = handoff::into_stream(fd);
    let remote = stream
        .peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let conn = Rc::new(ConnShared::new(client_id, remote, identity));
    conn.identified.set(identified);
    let stream: SharedStream = Rc::new(Transport::resumed(
        stream,
        conn.clone(),
        shard.opts.clone(),
        link,
    ));
    run(
        shard,
        stream,
        conn,
        leftover,
        Vec::new(),
        Some((topic, channel)),
    )
    .await;
}

async fn run(
    shard: Rc<Shard>,
    stream: SharedStream,
    conn: Rc<ConnShared>,
    buf: BytesMut,
    scratch: Vec<u8>,
    pending_sub: Option<(v2::Name, v2::Name)>,
) {
    apply_timeouts(&stream, &conn);
    shard.add_client(&conn);
    let writer = glommio::spawn_local(writer::run(stream.clone(), conn.clone()));
    let mut reader = cycle::Reader::new(shard.clone(), conn.clone(), stream, buf, scratch);
    let outcome = reader.run(pending_sub).await;
    // The reader holds the socket too; a handoff needs the only reference.
    drop(reader);
    conn.close();
    writer.await;
    shard.remove_client(&conn);
    if let cycle::Outcome::Handoff {
        to,
        stream,
        topic,
        channel,
        leftover,
    } = outcome
    {
        handoff::send(&shard, to, &conn, stream, topic, channel, leftover).await;
    }
}

/// Sets the socket timeouts that follow from the negotiated heartbeat: a client that sends
/// nothing for two heartbeat intervals is closed, and a write stalls at most one interval
/// (upstream's read and write deadlines in `protocol_v2.go`).
pub fn apply_timeouts(stream: &SharedStream, conn: &ConnShared) {
    let heartbeat = conn.identity.borrow().heartbeat_interval;
    let s = stream.socket();
    let _ = s.set_read_timeout(heartbeat.map(|h| h * 2));
    let _ = s.set_write_timeout(heartbeat.map(|h| h.max(Duration::from_secs(1))));
}

/// Re-applies the timeouts after IDENTIFY changed the heartbeat.
fn apply_timeouts_of(reader: &cycle::Reader) {
    apply_timeouts(reader.stream(), &reader.conn);
}

/// Answers a connection that did not start with `"  V2"`: an HTTP status line for what looks
/// like HTTP (someone pointed a browser or curl at the TCP port), `E_BAD_PROTOCOL` otherwise.
async fn refuse_protocol(stream: &RefCell<TcpStream>, magic: &[u8]) {
    const HTTP_VERBS: [&[u8]; 7] = [
        b"GET ", b"POST", b"PUT ", b"HEAD", b"DELE", b"OPTI", b"PATC",
    ];
    let mut out = BytesMut::new();
    if HTTP_VERBS.contains(&magic) {
        out.extend_from_slice(
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request: this is the NSQ TCP port; use the HTTP address for HTTP\n",
        );
    } else {
        v2::put_frame(
            &mut out,
            FrameType::Error,
            ErrorCode::BadProtocol.as_str().as_bytes(),
        );
    }
    let _ = transport::write_all(stream, &out).await;
}

/// The error a state check gives, as upstream words it: `cannot VERB in current state`.
pub fn state_error(verb: &str) -> ProtoError {
    ProtoError::new(
        ErrorCode::Invalid,
        format!("cannot {verb} in current state"),
    )
}
