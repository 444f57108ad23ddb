//! The writer of a connection: it sends everything queued in the outbox in one write, and the
//! heartbeats.
//!
//! Responses and errors go out at once (upstream flushes them immediately). Deliveries are
//! coalesced: the writer is woken by the first frame queued, yields once so that everything the
//! shard produces in the same round joins the same write, then writes it all. Under load that
//! is one write per delivery round, far below one per message; when idle it adds no latency,
//! which is why `--output-buffer-timeout` is an upper bound here rather than a waiting time.
//!
//! A batch goes through the connection's negotiated layers (compression, TLS) in
//! [`super::transport::Transport::write_batch`], still as one write; while the reader switches
//! layers after IDENTIFY the writer holds its output.

use std::rc::Rc;
use std::time::Instant;

use bytes::BytesMut;
use futures_lite::future;
use sluice_proto::v2::{self, FrameType};

use super::shared::ConnShared;
use super::SharedStream;

/// Runs until the connection is closed (then flushes what is left) or a write fails.
pub async fn run(stream: SharedStream, conn: Rc<ConnShared>) {
    let mut spare = BytesMut::new();
    // Compressed or encrypted output of a batch (unused on the plain path).
    let mut wire = Vec::new();
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
        if stream.writer_paused() {
            // The reader is switching layers; it wakes this task when done.
            continue;
        }
        std::mem::swap(&mut *conn.outbox.borrow_mut(), &mut spare);
        if !spare.is_empty() || stream.has_pending_output() {
            let result = stream.write_batch(&spare, &mut wire).await;
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
