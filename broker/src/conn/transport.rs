//! A connection's byte path: the socket, and what IDENTIFY and AUTH put on it.
//!
//! Reads go socket → (TLS) → (inflate / snappy) → the command buffer; writes go outbox →
//! (deflate / snappy) → (TLS) → socket, one socket write per batch, each compressed piece
//! handed to TLS on its own so it travels in one record. Mirrors the stream swaps of upstream
//! `nsqd/client_v2.go` (`UpgradeTLS`, `UpgradeSnappy`, `UpgradeDeflate`), the order of
//! `nsqd/protocol_v2.go` `IDENTIFY` (response frame, handshake, `OK` over TLS, then the
//! compression's `OK` compressed), its `enforceTLSPolicy`, and the auth server calls of `AUTH`
//! and `CheckAuth`.
//!
//! While nothing is negotiated or pending, reads and writes take the plain path: one flag test,
//! no copy beyond the socket's. Otherwise reads go through [`Transport::read_slow`], which may
//! hold plaintext back from the cycle:
//! - before the first command other than IDENTIFY or AUTH, and while `--tls-required` waits for
//!   TLS, one command at a time, since what follows an upgrading IDENTIFY belongs to the new
//!   layers and what follows AUTH must wait for its answer (upstream reads one command at a
//!   time, so pipelining clients see the same order);
//! - with auth enabled, whole commands only, so that an expired authorization is refreshed
//!   (asynchronously, on this shard) before the PUB or SUB that needs it is executed.
//!
//! The writer never writes while the reader switches layers: the reader pauses it, writes the
//! IDENTIFY response, runs the handshake, writes the `OK` frames through the new layers, then
//! lets it go on.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use rustls::{Connection, ServerConnection};
use sluice_proto::v2::{self, FrameType, Verb};
use sluice_proto::{ErrorCode, ProtoError};

use super::auth::ConnAuth;
use super::compress::{Codec, Deflate, Snappy};
use super::layers::Layers;
use super::scan::{self, Scan};
use super::shared::ConnShared;
use super::tls_stream::{SharedSocket, TlsStream};
use crate::auth::query::{Client, Query};
use crate::options::{Options, TlsRequired};
use crate::signal::Signal;

/// The most plaintext one read step inflates before the cycle runs (the rest waits).
pub const DECODE_STEP_MAX: usize = 4 * super::READ_CHUNK;

/// What an IDENTIFY negotiated to switch on after its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upgrade {
    /// TLS first.
    pub tls: bool,
    /// Then snappy.
    pub snappy: bool,
    /// Or deflate, at this level.
    pub deflate: Option<u32>,
}

/// Which commands the transport hands to the cycle one at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// Everything read goes on.
    Open,
    /// Until the first command that is neither IDENTIFY nor AUTH: those go alone.
    Early,
    /// `--tls-required` without TLS yet: IDENTIFY goes alone, anything else is refused.
    TlsRequired,
}

/// What moves with a connection to another shard besides its socket and its settings.
pub struct Link {
    layers: Option<Box<Layers>>,
    auth: ConnAuth,
    gate: Gate,
    /// Plaintext read but not handed to the cycle yet.
    held: BytesMut,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field(
                "tls",
                &self.layers.as_ref().is_some_and(|l| l.tls.is_some()),
            )
            .field(
                "codec",
                &self.layers.as_ref().and_then(|l| l.codec.as_ref()),
            )
            .field("auth", &self.auth)
            .field("gate", &self.gate)
            .field("held", &self.held.len())
            .finish()
    }
}

/// What one release step decided.
enum Release {
    /// This many bytes moved to the command buffer.
    Moved(usize),
    /// Nothing can go yet: read more.
    Wait,
    /// An expired authorization must be refreshed before these commands run.
    Refresh,
    /// A command refused before it reaches the cycle (TLS required).
    Refused(ProtoError),
}

/// The writer's side of the pause the reader takes while it switches layers.
#[derive(Default)]
struct WriterControl {
    paused: Cell<bool>,
    busy: Cell<bool>,
    idle: Signal,
}

/// One connection's socket and its negotiated layers, shared by its reader and its writer.
pub struct Transport {
    socket: RefCell<TcpStream>,
    conn: Rc<ConnShared>,
    opts: Arc<Options>,
    /// Reads must take [`Transport::read_slow`].
    slow: Cell<bool>,
    /// Writes go through layers.
    encoded: Cell<bool>,
    link: RefCell<Link>,
    upgrade: Cell<Option<Upgrade>>,
    auth_pending: Cell<bool>,
    writer: WriterControl,
}

impl Transport {
    /// A new client's transport; `initial` is what was read after the protocol magic.
    pub fn new(
        socket: TcpStream,
        conn: Rc<ConnShared>,
        opts: Arc<Options>,
        initial: BytesMut,
    ) -> Transport {
        let sec = &opts.security;
        let gate = if sec.tls_required != TlsRequired::No && sec.tls_config.is_some() {
            Gate::TlsRequired
        } else if sec.tls_config.is_some() || opts.snappy || opts.deflate || sec.auth_enabled() {
            Gate::Early
        } else {
            Gate::Open
        };
        let link = Link {
            layers: None,
            auth: ConnAuth::default(),
            gate,
            held: initial,
        };
        Transport::resumed(socket, conn, opts, link)
    }

    /// A transport rebuilt on another shard from a handed-over connection.
    pub fn resumed(
        socket: TcpStream,
        conn: Rc<ConnShared>,
        opts: Arc<Options>,
        link: Link,
    ) -> Transport {
        let encoded = link.layers.is_some();
        let transport = Transport {
            socket: RefCell::new(socket),
            conn,
            opts,
            slow: Cell::new(true),
            encoded: Cell::new(encoded),
            link: RefCell::new(link),
            upgrade: Cell::new(None),
            auth_pending: Cell::new(false),
            writer: WriterControl::default(),
        };
        transport.update_mode();
        transport
    }

    /// The socket (for options and timeouts).
    pub fn socket(&self) -> std::cell::Ref<'_, TcpStream> {
        self.socket.borrow()
    }

    /// The socket and what must travel with it to another shard.
    pub fn into_parts(self) -> (TcpStream, Link) {
        (self.socket.into_inner(), self.link.into_inner())
    }

    /// Whether TLS is on.
    pub fn is_tls(&self) -> bool {
        self.link
            .borrow()
            .layers
            .as_ref()
            .is_some_and(|l| l.tls.is_some())
    }

    /// Whether any layer (TLS or compression) is on.
    pub fn is_upgraded(&self) -> bool {
        self.encoded.get()
    }

    fn update_mode(&self) {
        let link = self.link.borrow();
        let slow = link.layers.is_some()
            || link.gate != Gate::Open
            || !link.held.is_empty()
            || self.opts.security.auth_enabled()
            || self.upgrade.get().is_some()
            || self.auth_pending.get();
        self.slow.set(slow);
    }

    /// Arranges the upgrades an IDENTIFY negotiated; they happen before the next read, after
    /// its response was written.
    pub fn request_upgrade(&self, upgrade: Upgrade) {
        self.upgrade.set(Some(upgrade));
        self.slow.set(true);
    }

    /// The AUTH command: checks, keeps the secret, and arranges the auth server call before the
    /// next read (its answer goes out then).
    ///
    /// # Errors
    /// `E_INVALID AUTH already set`, `E_AUTH_DISABLED AUTH disabled`.
    pub fn handle_auth(&self, secret: &[u8]) -> Result<(), ProtoError> {
        let enabled = self.opts.security.auth_enabled();
        self.link.borrow_mut().auth.handle_auth(enabled, secret)?;
        self.auth_pending.set(true);
        self.slow.set(true);
        Ok(())
    }

    /// Upstream `CheckAuth` for PUB, MPUB, DPUB (empty channel) and SUB.
    ///
    /// # Errors
    /// `E_AUTH_FIRST`, `E_AUTH_FAILED`, `E_UNAUTHORIZED` (fatal).
    pub fn check_auth(&self, cmd: &str, topic: &str, channel: &str) -> Result<(), ProtoError> {
        let enabled = self.opts.security.auth_enabled();
        self.link.borrow().auth.check(enabled, cmd, topic, channel)
    }

    // ---- reading

    /// Reads what the client sent next into `buf` (plaintext commands); 0 at the end.
    ///
    /// # Errors
    /// The socket's error, a broken TLS or compressed stream, or a refusal whose error frame
    /// is already queued (the connection closes).
    pub async fn read_into(&self, scratch: &mut Vec<u8>, buf: &mut BytesMut) -> io::Result<usize> {
        if !self.slow.get() {
            return self.read_socket_into(buf).await;
        }
        // Only connections with TLS or compression keep a scratch buffer of their own.
        if scratch.len() < super::READ_CHUNK {
            scratch.resize(super::READ_CHUNK, 0);
        }
        let result = self.read_slow(scratch, buf).await;
        self.update_mode();
        result
    }

    /// Reads from the socket into `buf` through this thread's scratch buffer. The copy happens
    /// within the same poll as the read, so the buffer is never held across an await and one
    /// per shard serves every plain connection.
    async fn read_socket_into(&self, buf: &mut BytesMut) -> io::Result<usize> {
        std::future::poll_fn(|cx| {
            SCRATCH.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                let polled = std::pin::Pin::new(&mut *self.socket.borrow_mut())
                    .poll_read(cx, &mut scratch[..]);
                if let std::task::Poll::Ready(Ok(n)) = polled {
                    buf.extend_from_slice(scratch.get(..n).unwrap_or_default());
                }
                polled
            })
        })
        .await
    }

    async fn read_socket(&self, scratch: &mut [u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| {
            std::pin::Pin::new(&mut *self.socket.borrow_mut()).poll_read(cx, scratch)
        })
        .await
    }

    async fn read_slow(&self, scratch: &mut [u8], buf: &mut BytesMut) -> io::Result<usize> {
        if let Some(upgrade) = self.upgrade.take() {
            self.upgrade_now(upgrade, buf).await?;
        }
        if self.auth_pending.replace(false) {
            self.answer_auth().await?;
        }
        let mut refreshed = false;
        loop {
            match self.release(buf, refreshed) {
                Release::Moved(n) => return Ok(n),
                Release::Refresh => {
                    self.refresh_auth().await;
                    refreshed = true;
                    continue;
                }
                Release::Refused(err) => return Err(self.refuse(err)),
                Release::Wait => {}
            }
            if self.pump(&[])? > 0 {
                continue;
            }
            if self.ended() {
                return Ok(0);
            }
            let n = self.read_socket(scratch).await?;
            if n == 0 {
                return Ok(0);
            }
            self.pump(scratch.get(..n).unwrap_or_default())?;
        }
    }

    /// Runs `raw` (possibly empty: the backlog) through the layers into the held plaintext;
    /// returns the plaintext bytes added.
    fn pump(&self, raw: &[u8]) -> io::Result<usize> {
        let mut link = self.link.borrow_mut();
        let Link { layers, held, .. } = &mut *link;
        let Some(layers) = layers.as_mut() else {
            held.extend_from_slice(raw);
            return Ok(raw.len());
        };
        let result = layers.pump(raw, held, DECODE_STEP_MAX);
        if layers.tls.as_ref().is_some_and(|t| t.wants_write()) {
            // An alert or a key update to send: the writer sends it.
            self.conn.wake_writer.notify();
        }
        result.map_err(|e| {
            tracing::info!("client({}): {e}", self.conn.remote);
            e
        })
    }

    fn ended(&self) -> bool {
        self.link
            .borrow()
            .layers
            .as_ref()
            .is_some_and(|l| l.ended && !l.codec.as_ref().is_some_and(Codec::has_input))
    }

    /// Moves held plaintext to the command buffer, as the gate and auth allow.
    fn release(&self, buf: &mut BytesMut, refreshed: bool) -> Release {
        let mut link = self.link.borrow_mut();
        if link.held.is_empty() {
            return Release::Wait;
        }
        let limits = &self.opts.limits;
        let mut len = None;
        if link.gate == Gate::TlsRequired {
            // Upstream checks the TLS policy before it parses anything but the verb.
            let word = scan::first_word(&link.held, limits);
            if let Some(word) = word.filter(|w| *w != Verb::Identify.as_str().as_bytes()) {
                let word = String::from_utf8_lossy(word).into_owned();
                return Release::Refused(ProtoError::new(
                    ErrorCode::Invalid,
                    format!("cannot {word} in current state (TLS required)"),
                ));
            }
        }
        if link.gate == Gate::Early {
            // Only IDENTIFY and AUTH go alone; the first other command opens the gate.
            let word = scan::first_word(&link.held, limits);
            let alone = [Verb::Identify, Verb::Auth].map(|v| v.as_str().as_bytes());
            match word {
                None if link.held.len() < limits.max_line_len => return Release::Wait,
                Some(word) if alone.contains(&word) => {}
                _ => link.gate = Gate::Open,
            }
        }
        if link.gate != Gate::Open {
            match scan::next_command(&link.held, limits) {
                Scan::Incomplete => return Release::Wait,
                Scan::Unframed => link.gate = Gate::Open,
                Scan::Command { verb, len: n, .. } => {
                    let alone = verb == Some(Verb::Identify)
                        || (verb == Some(Verb::Auth) && link.gate == Gate::Early);
                    if alone {
                        len = Some(n);
                    } else {
                        link.gate = Gate::Open;
                    }
                }
            }
        }
        let auth = self.opts.security.auth_enabled();
        let len = match len {
            Some(n) => n,
            None if auth => {
                let verbs = [Verb::Pub, Verb::Mpub, Verb::Dpub, Verb::Sub];
                let (n, found) = scan::whole_commands(&link.held, limits, &verbs);
                if found && !refreshed && link.auth.needs_refresh(Instant::now()) {
                    return Release::Refresh;
                }
                n
            }
            None => link.held.len(),
        };
        if len == 0 {
            return Release::Wait;
        }
        if buf.is_empty() && len == link.held.len() {
            std::mem::swap(buf, &mut link.held);
        } else {
            let part = link.held.split_to(len);
            buf.extend_from_slice(&part);
        }
        Release::Moved(len)
    }

    /// Queues a fatal error frame and returns the error that ends the connection.
    fn refuse(&self, err: ProtoError) -> io::Error {
        tracing::info!("ERROR: client({}) - {err}", self.conn.remote);
        self.conn.send_error(&err);
        io::Error::other(err.frame_text())
    }

    // ---- AUTH

    fn auth_client(&self) -> Client {
        let sec = &self.opts.security;
        Client {
            addresses: sec.auth_http_addresses.clone(),
            connect_timeout: sec.http_client_connect_timeout,
            request_timeout: sec.http_client_request_timeout,
            tls: sec.auth_client_tls.clone(),
        }
    }

    fn auth_query(&self) -> Query {
        let link = self.link.borrow();
        let tls = link.layers.as_ref().and_then(|l| l.tls.as_ref().map(|_| l));
        Query {
            remote_ip: self.conn.remote.ip().to_string(),
            tls: tls.is_some(),
            secret: link.auth.secret().unwrap_or_default().to_owned(),
            common_name: tls.map(|l| l.common_name.clone()).unwrap_or_default(),
        }
    }

    async fn answer_auth(&self) -> io::Result<()> {
        let query = self.auth_query();
        let start = self.conn.client_id as usize;
        let result = self.auth_client().query_any(&query, start).await;
        let answer = match result {
            Ok(answer) => answer,
            Err(e) => {
                // Upstream does not tell untrusted clients why the auth server failed.
                tracing::warn!("PROTOCOL(V2): [{}] AUTH failed {e}", self.conn.remote);
                return Err(self.refuse(ProtoError::new(ErrorCode::AuthFailed, "AUTH failed")));
            }
        };
        let handled = self.link.borrow_mut().auth.handle_answer(answer);
        match handled {
            Ok(body) => {
                self.conn.send_response(&body);
                Ok(())
            }
            Err(e) => Err(self.refuse(e)),
        }
    }

    async fn refresh_auth(&self) {
        let query = self.auth_query();
        let start = self.conn.client_id as usize;
        let result = self.auth_client().query_any(&query, start).await;
        if let Err(e) = &result {
            tracing::warn!("PROTOCOL(V2): [{}] AUTH failed {e}", self.conn.remote);
        }
        self.link.borrow_mut().auth.handle_refresh(result);
    }

    // ---- IDENTIFY's upgrades

    async fn upgrade_now(&self, upgrade: Upgrade, buf: &mut BytesMut) -> io::Result<()> {
        // What was read after the IDENTIFY belongs to the new layers.
        let mut after = buf.split();
        {
            let mut link = self.link.borrow_mut();
            after.extend_from_slice(&link.held);
            link.held.clear();
        }
        self.pause_writer().await;
        let result = self.install(upgrade, after).await;
        self.writer.paused.set(false);
        self.conn.wake_writer.notify();
        result
    }

    async fn install(&self, upgrade: Upgrade, mut after: BytesMut) -> io::Result<()> {
        // The IDENTIFY response, and whatever was queued before it, as they are.
        let queued = std::mem::take(&mut *self.conn.outbox.borrow_mut());
        self.write_through_layers(&queued).await?;
        let remote = self.conn.remote;
        if upgrade.tls {
            tracing::info!("PROTOCOL(V2): [{remote}] upgrading connection to TLS");
            let (tls, rest) = match self.handshake(&after).await {
                Ok(done) => done,
                Err(e) => {
                    let text = format!("IDENTIFY failed {e}");
                    return Err(self.refuse(ProtoError::new(ErrorCode::IdentifyFailed, text)));
                }
            };
            after.clear();
            let common_name = tls
                .peer_certificates()
                .and_then(|certs| certs.first())
                .map(|cert| super::tls::common_name(cert))
                .unwrap_or_default();
            self.set_layers(Layers::new(Some(tls), rest, common_name));
            self.write_ok().await?;
        }
        let codec = match (upgrade.snappy, upgrade.deflate) {
            (true, _) => {
                tracing::info!("PROTOCOL(V2): [{remote}] upgrading connection to snappy");
                Some(Codec::Snappy(Box::new(Snappy::new())))
            }
            (false, Some(level)) => {
                tracing::info!(
                    "PROTOCOL(V2): [{remote}] upgrading connection to deflate (level {level})"
                );
                Some(Codec::Deflate(Box::new(Deflate::new(level))))
            }
            (false, None) => None,
        };
        if let Some(mut codec) = codec {
            codec.push_input(&after);
            self.add_codec(codec);
            self.write_ok().await?;
        }
        let mut link = self.link.borrow_mut();
        if link.gate == Gate::TlsRequired && upgrade.tls {
            link.gate = Gate::Early;
        }
        Ok(())
    }

    async fn handshake(&self, already_read: &[u8]) -> io::Result<(Box<Connection>, BytesMut)> {
        let Some(config) = self.opts.security.tls_config.clone() else {
            return Err(io::Error::other("TLS is not configured"));
        };
        let session = ServerConnection::new(config).map_err(io::Error::other)?;
        let mut stream = TlsStream::new(
            SharedSocket(&self.socket),
            Connection::Server(session),
            already_read,
        );
        stream.handshake(super::tls::HANDSHAKE_TIMEOUT).await?;
        let (_, mut session, rest) = stream.into_parts();
        session.set_buffer_limit(None);
        Ok((Box::new(session), BytesMut::from(&rest[..])))
    }

    fn set_layers(&self, layers: Layers) {
        self.link.borrow_mut().layers = Some(Box::new(layers));
        self.encoded.set(true);
    }

    fn add_codec(&self, codec: Codec) {
        let mut link = self.link.borrow_mut();
        match link.layers.as_mut() {
            Some(layers) => layers.codec = Some(codec),
            None => {
                let mut layers = Layers::new(None, BytesMut::new(), String::new());
                layers.codec = Some(codec);
                link.layers = Some(Box::new(layers));
            }
        }
        self.encoded.set(true);
    }

    async fn write_ok(&self) -> io::Result<()> {
        let mut frame = BytesMut::new();
        v2::put_frame(&mut frame, FrameType::Response, v2::OK);
        self.write_through_layers(&frame).await
    }

    async fn pause_writer(&self) {
        self.writer.paused.set(true);
        while self.writer.busy.get() {
            self.writer.idle.wait().await;
        }
    }

    // ---- writing

    /// Whether the writer must hold its output (the reader is switching layers).
    pub fn writer_paused(&self) -> bool {
        self.writer.paused.get()
    }

    /// Whether the layers have bytes of their own to send (TLS alerts, key updates).
    pub fn has_pending_output(&self) -> bool {
        self.encoded.get()
            && self
                .link
                .borrow()
                .layers
                .as_ref()
                .and_then(|l| l.tls.as_ref())
                .is_some_and(|t| t.wants_write())
    }

    /// The writer's one write of a batch: `data` through the layers, then the socket.
    ///
    /// # Errors
    /// The socket's error.
    pub async fn write_batch(&self, data: &[u8], wire: &mut Vec<u8>) -> io::Result<()> {
        self.writer.busy.set(true);
        let result = if self.encoded.get() {
            match self.encode(data, wire) {
                Ok(()) => write_all(&self.socket, wire).await,
                Err(e) => Err(e),
            }
        } else {
            write_all(&self.socket, data).await
        };
        self.writer.busy.set(false);
        self.writer.idle.notify();
        result
    }

    fn encode(&self, data: &[u8], wire: &mut Vec<u8>) -> io::Result<()> {
        wire.clear();
        match self.link.borrow_mut().layers.as_mut() {
            Some(layers) => layers.encode(data, wire),
            None => {
                wire.extend_from_slice(data);
                Ok(())
            }
        }
    }

    async fn write_through_layers(&self, data: &[u8]) -> io::Result<()> {
        let mut wire = Vec::new();
        if self.encoded.get() {
            self.encode(data, &mut wire)?;
            write_all(&self.socket, &wire).await
        } else {
            write_all(&self.socket, data).await
        }
    }
}

/// Writes all of `data` to the socket.
///
/// # Errors
/// The socket's error; `WriteZero` if it accepts nothing.
pub async fn write_all(socket: &RefCell<TcpStream>, data: &[u8]) -> io::Result<()> {
    let mut written = 0;
    while written < data.len() {
        let rest = data.get(written..).unwrap_or_default();
        let n = std::future::poll_fn(|cx| {
            std::pin::Pin::new(&mut *socket.borrow_mut()).poll_write(cx, rest)
        })
        .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        written += n;
    }
    Ok(())
}

thread_local! {
    /// The read buffer every plain connection of this shard (thread) reads through.
    static SCRATCH: std::cell::RefCell<Vec<u8>> =
        std::cell::RefCell::new(vec![0u8; super::READ_CHUNK]);
}
