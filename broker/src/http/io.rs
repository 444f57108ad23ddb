//! hyper 1.x's IO traits over a glommio TCP stream (ARCHITECTURE.md, "hyper 1.x HTTP/1.1 runs on
//! glommio"): no hyper executor, `Rc` state is fine, every call stays on the shard. Bytes read
//! before hyper took over (the first request line, judged by `request_line`) are replayed
//! first.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use hyper::rt::{Read, ReadBufCursor, Write};

/// A glommio stream as hyper sees it.
pub struct HyperIo {
    stream: TcpStream,
    prefix: Bytes,
    scratch: Box<[u8]>,
}

impl HyperIo {
    /// Wraps an accepted stream from which `prefix` was already read.
    pub fn new(stream: TcpStream, prefix: Bytes) -> HyperIo {
        HyperIo {
            stream,
            prefix,
            scratch: vec![0u8; 16 * 1024].into_boxed_slice(),
        }
    }
}

impl Read for HyperIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = buf.remaining().min(this.prefix.len());
            buf.put_slice(this.prefix.get(..n).unwrap_or_default());
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        let want = buf.remaining().min(this.scratch.len());
        let Some(scratch) = this.scratch.get_mut(..want) else {
            return Poll::Ready(Ok(()));
        };
        match Pin::new(&mut this.stream).poll_read(cx, scratch) {
            Poll::Ready(Ok(n)) => {
                buf.put_slice(scratch.get(..n).unwrap_or_default());
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Write for HyperIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.get_mut().stream).poll_close(cx) {
            // A client that closed first makes shutdown fail with ENOTCONN: that is success.
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::NotConnected => Poll::Ready(Ok(())),
            other => other,
        }
    }
}
