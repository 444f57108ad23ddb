//! A consumer: `SUB` to one topic and channel on any number of brokers, one thread per
//! connection, `max_in_flight` spread over the connections as RDY counts.
//!
//! Mirrors go-nsq's `consumer.go`: brokers are given directly ([`Consumer::connect_to_nsqd`],
//! reconnected with backoff) or found by polling lookupds ([`Consumer::connect_to_lookupd`]);
//! a handler's result becomes `FIN` or `REQ`; [`Consumer::stop`] sends `CLS`, waits for
//! `CLOSE_WAIT` and joins every thread. Each connection reads in large chunks, hands every
//! message of the read to its handler and writes all the answers in one call
//! (see [`session`]).

pub mod rdy;
pub mod session;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use sluice_proto::names::{is_valid_channel_name, is_valid_topic_name};
use sluice_proto::v2::{put_command, Command};
use sluice_proto::{Message, MessageId};

use crate::config::Config;
use crate::error::Error;

/// How often blocked threads look at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

/// What to do with a message once the handler has seen it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Send `FIN`: the message is done.
    Finish,
    /// Send `REQ` with this delay (`None`: [`Config::default_requeue_delay`]).
    Requeue(Option<Duration>),
    /// Send nothing now: the handler answers later through the [`Responder`].
    Hold,
}

/// Handles the messages of one connection (each connection gets its own handler).
pub trait Handler: Send + 'static {
    /// Called for each message, in the order the broker delivered them on this connection.
    fn handle_message(&mut self, msg: &Message, responder: &Responder) -> Disposition;

    /// Called after the messages of one read were handled, before their answers are written.
    fn handle_batch_end(&mut self) {}
}

impl<F> Handler for F
where
    F: FnMut(&Message) -> Disposition + Send + 'static,
{
    fn handle_message(&mut self, msg: &Message, _responder: &Responder) -> Disposition {
        self(msg)
    }
}

/// Answers messages of one connection from any thread (for [`Disposition::Hold`]).
#[derive(Debug, Clone)]
pub struct Responder {
    writer: Arc<Mutex<TcpStream>>,
    addr: Arc<str>,
    /// The RDY count this connection last sent (0 before the first).
    rdy: Arc<AtomicU64>,
}

impl Responder {
    fn write(&self, cmd: &Command) -> Result<(), Error> {
        self.write_all(std::iter::once(cmd.clone()))
    }

    /// Encodes every command into one buffer and writes it in one call.
    fn write_all(&self, cmds: impl Iterator<Item = Command>) -> Result<(), Error> {
        let mut out = BytesMut::with_capacity(64);
        for cmd in cmds {
            put_command(&mut out, &cmd);
        }
        if out.is_empty() {
            return Ok(());
        }
        let mut stream = lock(&self.writer);
        std::io::Write::write_all(&mut *stream, &out)
            .map_err(|e| Error::io(format!("writing to {}", self.addr), e))
    }

    /// The broker address of this connection.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether both answer the same connection (a reconnect gets a new responder).
    pub fn same_connection(&self, other: &Responder) -> bool {
        Arc::ptr_eq(&self.writer, &other.writer)
    }

    /// The RDY count this connection last sent: how many messages the broker may have in
    /// flight on it (go-nsq `Conn.LastRDY`). A handler holding this many is starved.
    pub fn rdy(&self) -> u64 {
        self.rdy.load(Ordering::Relaxed)
    }

    /// Sends `FIN` for every id, all in one write.
    ///
    /// # Errors
    /// As [`Responder::finish`].
    pub fn finish_all(&self, ids: &[MessageId]) -> Result<(), Error> {
        self.write_all(ids.iter().map(|id| Command::Fin(*id)))
    }

    /// Sends `REQ id delay` for every id, all in one write.
    ///
    /// # Errors
    /// As [`Responder::finish`].
    pub fn requeue_all(&self, ids: &[MessageId], delay: Duration) -> Result<(), Error> {
        self.write_all(ids.iter().map(|id| Command::Req { id: *id, delay }))
    }

    /// Sends `FIN id`.
    ///
    /// # Errors
    /// [`Error::Io`] when the connection is gone (the broker requeues the message).
    pub fn finish(&self, id: MessageId) -> Result<(), Error> {
        self.write(&Command::Fin(id))
    }

    /// Sends `REQ id delay`.
    ///
    /// # Errors
    /// As [`Responder::finish`].
    pub fn requeue(&self, id: MessageId, delay: Duration) -> Result<(), Error> {
        self.write(&Command::Req { id, delay })
    }

    /// Sends `TOUCH id` (resets the message's timeout).
    ///
    /// # Errors
    /// As [`Responder::finish`].
    pub fn touch(&self, id: MessageId) -> Result<(), Error> {
        self.write(&Command::Touch(id))
    }
}

/// Counters of a consumer, summed over its connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsumerStats {
    /// Messages delivered to handlers.
    pub messages_received: u64,
    /// `FIN`s sent for [`Disposition::Finish`].
    pub messages_finished: u64,
    /// `REQ`s sent for [`Disposition::Requeue`].
    pub messages_requeued: u64,
    /// Connections subscribed right now.
    pub connections: usize,
    /// Successful subscriptions so far (reconnects included).
    pub subscriptions: u64,
    /// Connection or broker errors seen.
    pub errors: u64,
}

type HandlerFactory = dyn Fn() -> Box<dyn Handler> + Send + Sync;

/// State shared by the consumer handle and its threads.
struct Shared {
    topic: String,
    channel: String,
    config: Config,
    stop: AtomicBool,
    factory: Mutex<Option<Arc<HandlerFactory>>>,
    /// One thread per broker address.
    threads: Mutex<BTreeMap<String, JoinHandle<()>>>,
    /// The brokers the lookupds listed at the last poll.
    listed: Mutex<BTreeSet<String>>,
    lookupds: Mutex<Vec<String>>,
    poller: Mutex<Option<JoinHandle<()>>>,
    recheck: AtomicBool,
    live: AtomicUsize,
    /// Bumped whenever the RDY share may have changed.
    rdy_epoch: AtomicU64,
    max_in_flight: AtomicU64,
    received: AtomicU64,
    finished: AtomicU64,
    requeued: AtomicU64,
    subscriptions: AtomicU64,
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A consumer of one topic and channel.
///
/// # Examples
/// ```no_run
/// use sluice_client::{Config, Consumer, Disposition, Message};
/// let mut config = Config::default();
/// config.max_in_flight = 100;
/// let consumer = Consumer::new("events", "archive", config)?;
/// consumer.start(|| |msg: &Message| {
///     if msg.body.is_empty() { Disposition::Requeue(None) } else { Disposition::Finish }
/// });
/// consumer.connect_to_lookupd("127.0.0.1:4161")?;
/// consumer.wait_connected(1, std::time::Duration::from_secs(5));
/// consumer.stop();
/// # Ok::<(), sluice_client::Error>(())
/// ```
pub struct Consumer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("topic", &self.shared.topic)
            .field("channel", &self.shared.channel)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Consumer {
    /// A consumer of `topic`/`channel`; nothing connects until a broker or lookupd is added.
    ///
    /// # Errors
    /// [`Error::InvalidTopic`], [`Error::InvalidChannel`].
    pub fn new(topic: &str, channel: &str, config: Config) -> Result<Consumer, Error> {
        if !is_valid_topic_name(topic) {
            return Err(Error::InvalidTopic(topic.to_owned()));
        }
        if !is_valid_channel_name(channel) {
            return Err(Error::InvalidChannel(channel.to_owned()));
        }
        let max_in_flight = config.max_in_flight;
        Ok(Consumer {
            shared: Arc::new(Shared {
                topic: topic.to_owned(),
                channel: channel.to_owned(),
                config,
                stop: AtomicBool::new(false),
                factory: Mutex::new(None),
                threads: Mutex::new(BTreeMap::new()),
                listed: Mutex::new(BTreeSet::new()),
                lookupds: Mutex::new(Vec::new()),
                poller: Mutex::new(None),
                recheck: AtomicBool::new(false),
                live: AtomicUsize::new(0),
                rdy_epoch: AtomicU64::new(0),
                max_in_flight: AtomicU64::new(max_in_flight),
                received: AtomicU64::new(0),
                finished: AtomicU64::new(0),
                requeued: AtomicU64::new(0),
                subscriptions: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                last_error: Mutex::new(None),
            }),
        })
    }

    /// Sets how each connection's handler is made. Call it before adding brokers; later
    /// calls affect only connections started afterwards.
    pub fn start<F, H>(&self, factory: F)
    where
        F: Fn() -> H + Send + Sync + 'static,
        H: Handler,
    {
        let boxed: Arc<HandlerFactory> = Arc::new(move || Box::new(factory()) as Box<dyn Handler>);
        *lock(&self.shared.factory) = Some(boxed);
    }

    /// Connects to a broker (`host:port`) in a new thread, which reconnects with backoff until
    /// [`Consumer::stop`].
    ///
    /// # Errors
    /// [`Error::Usage`] before [`Consumer::start`], after [`Consumer::stop`], or when already
    /// connected to `addr`.
    pub fn connect_to_nsqd(&self, addr: &str) -> Result<(), Error> {
        if !spawn_session(&self.shared, addr, true)? {
            return Err(Error::Usage(format!("already connected to {addr}")));
        }
        Ok(())
    }

    /// Adds a lookupd (`host:port` of its HTTP API), queries it now and then every
    /// [`Config::lookupd_poll_interval`], and connects to every broker it lists.
    ///
    /// # Errors
    /// [`Error::Usage`] before [`Consumer::start`] or after [`Consumer::stop`]. A lookupd that
    /// cannot be reached is not an error (it is retried at each poll; see
    /// [`Consumer::last_error`]).
    pub fn connect_to_lookupd(&self, addr: &str) -> Result<(), Error> {
        check_usable(&self.shared)?;
        {
            let mut lookupds = lock(&self.shared.lookupds);
            if !lookupds.iter().any(|known| known == addr) {
                lookupds.push(addr.to_owned());
            }
        }
        session::poll_lookupds(&self.shared);
        let mut poller = lock(&self.shared.poller);
        if poller.is_none() {
            let shared = self.shared.clone();
            let handle = std::thread::Builder::new()
                .name("nsq-lookupd-poll".into())
                .spawn(move || session::run_poller(&shared))
                .map_err(|e| Error::io("starting the lookupd poller", e))?;
            *poller = Some(handle);
        }
        Ok(())
    }

    /// Changes `max_in_flight`; every connection sends its new RDY share.
    pub fn set_max_in_flight(&self, max_in_flight: u64) {
        self.shared
            .max_in_flight
            .store(max_in_flight, Ordering::SeqCst);
        self.shared.rdy_epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Waits until at least `connections` connections are subscribed, or `timeout` passes.
    /// Returns whether they are.
    pub fn wait_connected(&self, connections: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.shared.live.load(Ordering::SeqCst) >= connections {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> ConsumerStats {
        let s = &self.shared;
        ConsumerStats {
            messages_received: s.received.load(Ordering::Relaxed),
            messages_finished: s.finished.load(Ordering::Relaxed),
            messages_requeued: s.requeued.load(Ordering::Relaxed),
            connections: s.live.load(Ordering::Relaxed),
            subscriptions: s.subscriptions.load(Ordering::Relaxed),
            errors: s.errors.load(Ordering::Relaxed),
        }
    }

    /// The most recent connection, broker or lookupd error, if any.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.shared.last_error).clone()
    }

    /// Tells every connection to close (each sends `CLS` within about 100 ms) without
    /// waiting; [`Consumer::stop`] then waits. Stopping many consumers is faster this way.
    pub fn request_stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }

    /// Sends `CLS` on every connection, waits for `CLOSE_WAIT` (a few seconds at most), answers
    /// what arrived meanwhile, and joins every thread. Idempotent.
    pub fn stop(&self) {
        self.request_stop();
        if let Some(poller) = lock(&self.shared.poller).take() {
            let _ = poller.join();
        }
        // Threads remove their own entry on exit, so take the handles out before joining.
        let handles: Vec<JoinHandle<()>> = std::mem::take(&mut *lock(&self.shared.threads))
            .into_values()
            .collect();
        for handle in handles {
            let _ = handle.join();
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn check_usable(shared: &Shared) -> Result<(), Error> {
    if shared.stop.load(Ordering::SeqCst) {
        return Err(Error::Usage("the consumer is stopped".into()));
    }
    if lock(&shared.factory).is_none() {
        return Err(Error::Usage("call start() with a handler first".into()));
    }
    Ok(())
}

/// Starts a connection thread for `addr` unless one runs; returns whether one was started.
fn spawn_session(shared: &Arc<Shared>, addr: &str, direct: bool) -> Result<bool, Error> {
    check_usable(shared)?;
    let Some(factory) = lock(&shared.factory).clone() else {
        return Err(Error::Usage("call start() with a handler first".into()));
    };
    let mut threads = lock(&shared.threads);
    if threads.contains_key(addr) {
        return Ok(false);
    }
    let thread_shared = shared.clone();
    let thread_addr = addr.to_owned();
    let handle = std::thread::Builder::new()
        .name(format!("nsq-conn {addr}"))
        .spawn(move || {
            let handler = factory();
            session::run_connection(&thread_shared, &thread_addr, handler, direct);
        })
        .map_err(|e| Error::io(format!("starting the thread for {addr}"), e))?;
    threads.insert(addr.to_owned(), handle);
    Ok(true)
}

/// Locks a mutex, taking the data even if a panicking thread poisoned it (every value kept
/// under these locks stays consistent between statements).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
