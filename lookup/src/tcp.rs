//! The TCP side: one task per broker connection speaking lookup protocol V1.
//!
//! Mirrors upstream `nsqlookupd/tcp.go` and the `IOLoop`/`Exec` half of
//! `nsqlookupd/lookup_protocol_v1.go`. Each read cycle decodes every buffered command, executes
//! them in order against the registration database, and writes all replies in one write. An
//! error is sent, then the connection is closed (every lookup error is fatal upstream). When
//! the connection ends, the broker's registrations go with it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use sluice_proto::lookup::{
    put_error, put_reply, IdentifyInfo, LookupCommand, LookupDecoder, COMPATIBLE_VERSION,
};
use sluice_proto::ProtoError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::registry::{PeerId, Registration};
use crate::Context;

/// The read buffer's initial size and growth step.
const READ_CHUNK: usize = 4096;

/// Accepts broker connections until `shutdown` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    ctx: Arc<Context>,
    mut shutdown: watch::Receiver<bool>,
) {
    let next_id = AtomicU64::new(1);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        match accepted {
            Ok((stream, remote)) => {
                let id = PeerId(next_id.fetch_add(1, Ordering::Relaxed));
                info!("TCP: new client({remote})");
                let ctx = Arc::clone(&ctx);
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    Connection::new(id, remote, ctx).run(stream, shutdown).await;
                });
            }
            // Out of file descriptors and the like: keep serving the connections we have.
            Err(e) => {
                warn!("TCP: accept error - {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// One broker connection.
struct Connection {
    id: PeerId,
    remote: SocketAddr,
    ctx: Arc<Context>,
    decoder: LookupDecoder,
}

impl Connection {
    fn new(id: PeerId, remote: SocketAddr, ctx: Arc<Context>) -> Connection {
        Connection {
            id,
            remote,
            ctx,
            decoder: LookupDecoder::new(),
        }
    }

    async fn run(mut self, mut stream: TcpStream, mut shutdown: watch::Receiver<bool>) {
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        let mut out = BytesMut::new();
        loop {
            buf.reserve(READ_CHUNK);
            let read = tokio::select! {
                read = stream.read_buf(&mut buf) => read,
                _ = shutdown.changed() => break,
            };
            let eof = !matches!(read, Ok(n) if n > 0);
            let fatal = self.handle_bytes(&mut buf, &mut out, eof);
            if !out.is_empty() && stream.write_all(&out).await.is_err() {
                break;
            }
            out.clear();
            if fatal || eof {
                break;
            }
        }
        let _ = stream.shutdown().await;
        info!("CLIENT({}): closing", self.remote);
        if self.decoder.is_identified() {
            let left = self.ctx.lock_db().handle_disconnect(self.id);
            for r in left {
                self.log_change("UNREGISTER", &r);
            }
        }
    }

    /// Decodes and executes every complete command in `buf`, appending replies to `out`.
    /// Returns whether the connection must close (an error was sent).
    fn handle_bytes(&mut self, buf: &mut BytesMut, out: &mut BytesMut, eof: bool) -> bool {
        loop {
            let decoded = match eof {
                false => self.decoder.decode(buf),
                true => self.decoder.decode_eof(buf),
            };
            let result = match decoded {
                Ok(Some(command)) => self.exec(command),
                Ok(None) => return false,
                Err(err) => Err(err),
            };
            match result {
                Ok(reply) => put_reply(out, &reply),
                Err(err) => {
                    warn!("[{}] - {}", self.remote, err.frame_text());
                    put_error(out, &err);
                    return true;
                }
            }
        }
    }

    /// Upstream's `Exec`: one command, its reply data.
    fn exec(&mut self, command: LookupCommand) -> Result<Vec<u8>, ProtoError> {
        let now = crate::now();
        match command {
            LookupCommand::Ping => {
                if self.decoder.is_identified() {
                    debug!("CLIENT({}): pinged", self.remote);
                    self.ctx.lock_db().handle_ping(self.id, now);
                }
            }
            LookupCommand::Identify(body) => return self.identify(&body),
            LookupCommand::Register { topic, channel } => {
                let channel = channel.as_ref().map(|c| c.as_str());
                let added = self
                    .ctx
                    .lock_db()
                    .handle_register(self.id, topic.as_str(), channel);
                for r in added {
                    self.log_change("REGISTER", &r);
                }
            }
            LookupCommand::Unregister { topic, channel } => {
                let channel = channel.as_ref().map(|c| c.as_str());
                let removed =
                    self.ctx
                        .lock_db()
                        .handle_unregister(self.id, topic.as_str(), channel);
                for r in removed {
                    self.log_change("UNREGISTER", &r);
                }
            }
        }
        Ok(b"OK".to_vec())
    }

    fn identify(&mut self, body: &[u8]) -> Result<Vec<u8>, ProtoError> {
        let info = IdentifyInfo::from_json(body)?;
        info!(
            "CLIENT({}): IDENTIFY Address:{} TCP:{} HTTP:{} Version:{}",
            self.remote, info.broadcast_address, info.tcp_port, info.http_port, info.version
        );
        let peer = info.into_peer_info(self.remote.to_string());
        self.ctx
            .lock_db()
            .handle_identify(self.id, peer, crate::now());
        self.decoder.mark_identified();
        let reply = IdentifyInfo {
            broadcast_address: self.ctx.options.broadcast_address.clone(),
            hostname: self.ctx.hostname.clone(),
            http_port: self.ctx.http_addr.port(),
            tcp_port: self.ctx.tcp_addr.port(),
            version: COMPATIBLE_VERSION.to_owned(),
        };
        Ok(reply.to_json())
    }

    fn log_change(&self, what: &str, r: &Registration) {
        info!(
            "DB: client({}) {what} category:{} key:{} subkey:{}",
            self.remote,
            r.category.as_str(),
            r.key,
            r.subkey
        );
    }
}
