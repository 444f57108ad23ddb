//! A rustls session over an async byte stream, as `futures` `AsyncRead`/`AsyncWrite`: the HTTPS
//! listener's connections, the auth client's `https://` requests, and the handshake of the
//! in-band TLS upgrade after IDENTIFY.
//!
//! rustls is sans-IO; this drives it. Reads decrypt what the socket gives (a TLS record may
//! arrive in pieces; nothing is returned until it is whole); writes encrypt into rustls and
//! flush the records to the socket. Upstream's counterpart is Go's `tls.Conn` (`tls.Server` in
//! `nsqd/client_v2.go` `UpgradeTLS`, `tls.Listen` for `--https-address`).

use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};
use hyper::rt::{Read as HyperRead, ReadBufCursor, Write as HyperWrite};
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};

/// Bytes read from the socket per read.
const RAW_READ: usize = 16 * 1024;

/// Feeds `raw` into the session: one `read_tls` and the processing of what it took. Returns
/// how many bytes were consumed; the caller drains the plaintext before feeding more (rustls
/// refuses input while its plaintext buffer is full).
///
/// # Errors
/// `InvalidData` when the peer broke the protocol (rustls has queued an alert for it).
pub fn feed(tls: &mut Connection, raw: &[u8]) -> io::Result<usize> {
    let mut reader = raw;
    let n = tls.read_tls(&mut reader)?;
    tls.process_new_packets()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(n)
}

/// A TLS session over `S`.
pub struct TlsStream<S> {
    io: S,
    tls: Connection,
    /// Raw bytes read but not yet taken by rustls.
    raw: Vec<u8>,
    raw_at: usize,
    /// Records waiting to be written.
    out: Vec<u8>,
    out_at: usize,
    eof: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream<S> {
    /// A session over `io` whose first input is `already_read` (bytes the caller read before it
    /// knew TLS would follow).
    pub fn new(io: S, tls: Connection, already_read: &[u8]) -> TlsStream<S> {
        TlsStream {
            io,
            tls,
            raw: already_read.to_vec(),
            raw_at: 0,
            out: Vec::new(),
            out_at: 0,
            eof: false,
        }
    }

    /// Accepts a TLS client on `io` (an HTTPS connection), handshake included, bounded by
    /// [`super::tls::HANDSHAKE_TIMEOUT`].
    ///
    /// # Errors
    /// The handshake failed, timed out, or the peer left.
    pub async fn accept(io: S, config: Arc<ServerConfig>) -> io::Result<TlsStream<S>> {
        let conn = ServerConnection::new(config).map_err(io::Error::other)?;
        let mut stream = TlsStream::new(io, Connection::Server(conn), &[]);
        stream.handshake(super::tls::HANDSHAKE_TIMEOUT).await?;
        Ok(stream)
    }

    /// Connects as a TLS client to `name` over `io` (the auth client's `https://`).
    ///
    /// # Errors
    /// The handshake failed or the peer left.
    pub async fn connect(
        io: S,
        config: Arc<ClientConfig>,
        name: rustls::pki_types::ServerName<'static>,
        timeout: std::time::Duration,
    ) -> io::Result<TlsStream<S>> {
        let conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
        let mut stream = TlsStream::new(io, Connection::Client(conn), &[]);
        stream.handshake(timeout).await?;
        Ok(stream)
    }

    /// Runs the handshake to its end, at most `timeout`.
    ///
    /// # Errors
    /// `TimedOut`, `UnexpectedEof` when the peer left, `InvalidData` for a protocol error
    /// (rustls's alert is sent first).
    pub async fn handshake(&mut self, timeout: std::time::Duration) -> io::Result<()> {
        let work = poll_fn(|cx| self.poll_handshake(cx));
        let expired = async {
            glommio::timer::sleep(timeout).await;
            Err(io::Error::new(io::ErrorKind::TimedOut, "i/o timeout"))
        };
        futures_lite::future::or(work, expired).await
    }

    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.poll_flush_tls(cx))?;
            if !self.tls.is_handshaking() {
                return Poll::Ready(Ok(()));
            }
            if ready!(self.poll_input(cx))? == 0 {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }

    /// The session and what was read past the handshake but not yet taken by rustls.
    pub fn into_parts(self) -> (S, Connection, Vec<u8>) {
        let rest = self.raw.get(self.raw_at..).unwrap_or_default().to_vec();
        (self.io, self.tls, rest)
    }

    /// The session.
    pub fn session(&self) -> &Connection {
        &self.tls
    }

    /// Writes every record rustls has queued.
    fn poll_flush_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if let Some(rest) = self.out.get(self.out_at..).filter(|r| !r.is_empty()) {
                let n = ready!(Pin::new(&mut self.io).poll_write(cx, rest))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.out_at += n;
                continue;
            }
            self.out.clear();
            self.out_at = 0;
            if !self.tls.wants_write() {
                return Poll::Ready(Ok(()));
            }
            self.tls.write_tls(&mut self.out)?;
        }
    }

    /// Gives rustls more input: buffered raw bytes first, else one socket read. Ready(0) at the
    /// end of the socket's stream.
    fn poll_input(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.raw_at >= self.raw.len() {
            if self.eof {
                return Poll::Ready(Ok(0));
            }
            self.raw.resize(RAW_READ, 0);
            self.raw_at = 0;
            let read = Pin::new(&mut self.io).poll_read(cx, &mut self.raw);
            let n = match read {
                Poll::Ready(Ok(n)) => n,
                other => {
                    self.raw.clear();
                    return other;
                }
            };
            self.raw.truncate(n);
            if n == 0 {
                self.eof = true;
                return Poll::Ready(Ok(0));
            }
        }
        let rest = self.raw.get(self.raw_at..).unwrap_or_default();
        // On a protocol error rustls queues an alert; it is not sent. Go's server sends none for
        // a first record that is not TLS, and the in-band upgrade answers with a plain error
        // frame instead (upstream `IDENTIFY failed …`), which an alert would garble.
        let taken = feed(&mut self.tls, rest)?;
        if taken == 0 {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "tls: input not accepted",
            )));
        }
        self.raw_at += taken;
        if let Poll::Ready(Err(e)) = self.poll_flush_tls(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(taken))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            match this.tls.reader().read(buf) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            if ready!(this.poll_input(cx))? == 0 {
                // The peer closed the socket without close_notify: the end of the stream.
                return Poll::Ready(Ok(0));
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            let n = this.tls.writer().write(buf)?;
            if n > 0 || buf.is_empty() {
                // Start sending now; what does not fit waits for the next poll_flush.
                if let Poll::Ready(Err(e)) = this.poll_flush_tls(cx) {
                    return Poll::Ready(Err(e));
                }
                return Poll::Ready(Ok(n));
            }
            ready!(this.poll_flush_tls(cx))?;
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_flush_tls(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.tls.send_close_notify();
        ready!(this.poll_flush_tls(cx))?;
        Pin::new(&mut this.io).poll_close(cx)
    }
}

/// A socket shared through a `RefCell` (a connection's reader and writer share one), as a
/// stream; each borrow lasts one poll.
pub struct SharedSocket<'a>(pub &'a std::cell::RefCell<glommio::net::TcpStream>);

impl AsyncRead for SharedSocket<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_read(cx, buf)
    }
}

impl AsyncWrite for SharedSocket<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_close(cx)
    }
}

/// hyper's IO traits over a `futures` stream (a TLS session or a glommio socket).
pub struct HyperStream<S> {
    io: S,
    scratch: Box<[u8]>,
}

impl<S> HyperStream<S> {
    /// Wraps `io`.
    pub fn new(io: S) -> HyperStream<S> {
        HyperStream {
            io,
            scratch: vec![0u8; 8 * 1024].into_boxed_slice(),
        }
    }
}

impl<S: AsyncRead + Unpin> HyperRead for HyperStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let want = buf.remaining().min(this.scratch.len());
        let scratch = this.scratch.get_mut(..want).unwrap_or_default();
        match Pin::new(&mut this.io).poll_read(cx, scratch) {
            Poll::Ready(Ok(n)) => {
                buf.put_slice(scratch.get(..n).unwrap_or_default());
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> HyperWrite for HyperStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.get_mut().io).poll_close(cx) {
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::NotConnected => Poll::Ready(Ok(())),
            other => other,
        }
    }
}
