//! Moving a subscriber's socket to the shard that owns its topic.
//!
//! After SUB, deliveries, RDY, FIN, REQ and TOUCH must never cross cores, so the connection
//! moves: the socket is duplicated (`dup(2)` through `try_clone_to_owned`, which sets CLOEXEC),
//! the glommio stream is dropped (closing the original descriptor and cancelling its armed
//! poll), and the duplicate travels over the mesh with the bytes already read and the
//! negotiated settings; the owner rebuilds a stream on its own reactor. Verified with glommio
//! 0.9 in ARCHITECTURE.md ("Moving a connection to another shard works"). The transport's
//! [`Link`](super::transport::Link) goes along: the TLS session and the compression streams
//! continue on the owner exactly where they stopped (rustls's and flate2's states are `Send`),
//! with the AUTH answer and any plaintext not yet handed to the command decoder.
//!
//! This is one of the two places `unsafe` is allowed in the broker (STYLE.md §2).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;

use bytes::BytesMut;
use glommio::net::TcpStream;
use sluice_proto::v2::Name;

use super::shared::ConnShared;
use super::SharedStream;
use crate::shard::mesh::{Handoff, Request};
use crate::shard::Shard;

/// Rebuilds a stream on the calling shard's reactor from a handed-over socket.
pub fn into_stream(fd: OwnedFd) -> TcpStream {
    // SAFETY: `fd` is an owned, open TCP socket (duplicated from an accepted stream); ownership
    // moves into the new stream, which will close it.
    unsafe { TcpStream::from_raw_fd(fd.into_raw_fd()) }
}

/// Sends the connection to shard `to`. The caller has stopped the writer, so the stream is only
/// referenced here; if the move fails the connection is simply closed.
pub async fn send(
    shard: &Shard,
    to: usize,
    conn: &Rc<ConnShared>,
    stream: SharedStream,
    topic: Name,
    channel: Name,
    leftover: BytesMut,
) {
    let Ok(transport) = Rc::try_unwrap(stream) else {
        tracing::error!(
            "handoff: socket still in use by client({}), closing",
            conn.remote
        );
        return;
    };
    let (stream, link) = transport.into_parts();
    // SAFETY: the descriptor belongs to `stream`, which is alive for the whole borrow.
    let borrowed = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    let fd = match borrowed.try_clone_to_owned() {
        Ok(fd) => fd,
        Err(e) => {
            tracing::error!("handoff: dup failed for client({}): {e}", conn.remote);
            return;
        }
    };
    drop(stream);
    let handoff = Handoff {
        fd,
        client_id: conn.client_id,
        identity: conn.identity.borrow().clone(),
        identified: conn.identified.get(),
        topic,
        channel,
        leftover,
        link,
    };
    if shard
        .mesh
        .send(to, Request::Handoff(Box::new(handoff)))
        .await
        .is_err()
    {
        tracing::warn!(
            "handoff: shard {to} is gone; closing client({})",
            conn.remote
        );
    }
}

/// A listening socket on `addr` shared by every shard (SO_REUSEPORT) that can also be bound
/// again at once after a restart while old connections linger in TIME_WAIT (SO_REUSEADDR, as
/// Go's listeners do), as a glommio listener on the calling shard's reactor.
///
/// # Errors
/// The socket error.
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<glommio::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    // SAFETY: the descriptor is an open, bound, listening TCP socket whose ownership moves
    // into the listener (into_raw_fd gives it up).
    Ok(unsafe { glommio::net::TcpListener::from_raw_fd(socket.into_raw_fd()) })
}
