//! The writer of a connection: it sends everything queued in the outbox in one write, and the
//! heartbeats.
//!
//! Responses and errors go out at once (upstream flushes them immediately). Deliveries are
//! coalesced: the writer is woken by the first frame queued, yields once so that everything the
//! shard produces in the same round joins the same write, then writes it all. Under load that
//! is one write per delivery round, far below one per message; when idle it adds no latency,
//! which is why `--output-buffer-timeout` is an upper bound here rather than a waiting time.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Instant;

use bytes::BytesMut;
use futures_lite::future;
use futures_lite::AsyncWrite;
use sluice_proto::v2::{self, FrameType};

use super::shared::ConnShared;
use super::SharedStream;

/// Writes all of `data`.
///
/// # Errors
/// The socket's error; `WriteZero` if it accepts nothing.
pub async fn write_all(stream: &SharedStream, data: &[u8]) -> io::Result<()> {
    let mut written = 0;
    while written < data.len() {
        let rest = data.get(written..).unwrap_or_default();
        let n = poll_fn(|cx| Pin::new(&mut *stream.borrow_mut()).poll_write(cx, rest)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        written += n;
    }
    Ok(())
}

/// Runs until the connection is closed (then flushes what is left) or a write fails.
pub async fn run(stream: SharedStream, conn: Rc<ConnShared>) {
    let mut spare = BytesMut::with_capacity(16 * 1024);
    let mut next_heartbeat = heartbeat_due(&conn, Instant::now());
    loop {
        match next_heartbeat {
            Some(due) => {
                let sleep = async {
                    glommio::timer::sleep(due.saturating_duration_since(Instant::now())).await;
                };
                future::or(conn.wake_writer.wait(), sleep).await;
            }
            None => conn.wake_writer.wait().await,
        }
        let now = Instant::now();
        if next_heartbeat.is_some_and(|due| due <= now) {
            v2::put_frame(
                &mut conn.outbox.borrow_mut(),
                FrameType::Response,
                v2::HEARTBEAT,
            );
        }
        // The heartbeat interval may have changed with IDENTIFY.
        next_heartbeat = heartbeat_due(&conn, now).map(|d| match next_heartbeat {
            Some(prev) if prev > now => prev.min(d),
            _ => d,
        });
        if !conn.closed.get() {
            // Let the rest of this round's deliveries join the same write.
            future::yield_now().await;
        }
        std::mem::swap(&mut *conn.outbox.borrow_mut(), &mut spare);
        if !spare.is_empty() {
            let result = write_all(&stream, &spare).await;
            spare.clear();
            if result.is_err() {
                conn.closed.set(true);
                return;
            }
        }
        if conn.closed.get() && conn.outbox.borrow().is_empty() {
            return;
        }
    }
}

fn heartbeat_due(conn: &ConnShared, now: Instant) -> Option<Instant> {
    conn.identity.borrow().heartbeat_interval.map(|h| now + h)
}
