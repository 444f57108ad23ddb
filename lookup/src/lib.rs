//! sluice-lookupd: the discovery service of a Sluice (or NSQ) cluster.
//!
//! Mirrors upstream `nsqlookupd/nsqlookupd.go`: brokers connect over TCP (lookup protocol V1,
//! [`tcp`](crate::tcp)) to register their topics and channels; clients and admin tools ask over
//! HTTP ([`http`](crate::http)) which brokers have a topic. Registrations live in memory
//! ([`registry`]) and vanish with the broker's connection. Several instances run side by side
//! without talking to each other: each broker registers with every one.
//!
//! Not on the hot path, so it is a plain tokio (current-thread) + hyper 1 service. The binary
//! only turns flags into [`Options`] ([`options::Cli`]) and calls [`run`]; tests can start the
//! service in-process with [`Lookupd::start`].
#![forbid(unsafe_code)]

pub mod flags;
mod http;
pub mod log;
pub mod options;
pub mod registry;
mod tcp;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

pub use options::Options;
use registry::{Now, RegistrationDb, Visibility};

/// What every connection task shares.
struct Context {
    options: Options,
    visibility: Visibility,
    /// The OS host name, reported at IDENTIFY.
    hostname: String,
    tcp_addr: SocketAddr,
    http_addr: SocketAddr,
    db: Mutex<RegistrationDb>,
}

impl Context {
    /// The registration database. It is never held across an await, and a panic while it is
    /// held cannot leave it half-changed in a way later calls rely on, so poison is ignored.
    fn lock_db(&self) -> MutexGuard<'_, RegistrationDb> {
        self.db.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Reads the clocks once.
fn now() -> Now {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Now {
        instant: Instant::now(),
        unix_nanos: i64::try_from(unix.as_nanos()).unwrap_or(i64::MAX),
    }
}

/// Why the service could not start.
#[derive(Debug)]
pub enum StartError {
    /// A listener could not be bound.
    Listen {
        /// The address as given.
        address: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The async runtime could not be built.
    Runtime(std::io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Listen { address, source } => {
                write!(f, "listen ({address}) failed - {source}")
            }
            StartError::Runtime(e) => write!(f, "runtime - {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A running service.
pub struct Lookupd {
    ctx: Arc<Context>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Lookupd {
    /// Binds both listeners, logs `TCP: listening on ADDR` and `HTTP: listening on ADDR`, and
    /// starts serving on the current tokio runtime.
    ///
    /// # Errors
    /// [`StartError::Listen`] when an address cannot be bound.
    pub async fn start(options: Options) -> Result<Lookupd, StartError> {
        let tcp = bind(&options.tcp_address).await?;
        let http = bind(&options.http_address).await?;
        let listen_error = |address: &str| {
            let address = address.to_owned();
            move |source| StartError::Listen { address, source }
        };
        let tcp_addr = tcp
            .local_addr()
            .map_err(listen_error(&options.tcp_address))?;
        let http_addr = http
            .local_addr()
            .map_err(listen_error(&options.http_address))?;
        let ctx = Arc::new(Context {
            visibility: Visibility {
                inactive_producer_timeout: options.inactive_producer_timeout,
                tombstone_lifetime: options.tombstone_lifetime,
            },
            options,
            hostname: options::hostname(),
            tcp_addr,
            http_addr,
            db: Mutex::new(RegistrationDb::new()),
        });
        let (shutdown, watcher) = watch::channel(false);
        info!("TCP: listening on {tcp_addr}");
        info!("HTTP: listening on {http_addr}");
        let tasks = vec![
            tokio::spawn(tcp::serve(tcp, Arc::clone(&ctx), watcher.clone())),
            tokio::spawn(http::serve(http, Arc::clone(&ctx), watcher)),
        ];
        Ok(Lookupd {
            ctx,
            shutdown,
            tasks,
        })
    }

    /// The bound TCP address (the real port when `:0` was asked for).
    pub fn tcp_addr(&self) -> SocketAddr {
        self.ctx.tcp_addr
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.ctx.http_addr
    }

    /// Stops accepting, closes every connection, and waits for the listeners to finish.
    pub async fn shutdown(self) {
        info!("TCP: closing {}", self.ctx.tcp_addr);
        info!("HTTP: closing {}", self.ctx.http_addr);
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Binds a listener; `:PORT` means every IPv4 interface, as Go's `:PORT` does in practice.
async fn bind(address: &str) -> Result<TcpListener, StartError> {
    let full = match address.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => address.to_owned(),
    };
    TcpListener::bind(full.as_str())
        .await
        .map_err(|source| StartError::Listen {
            address: address.to_owned(),
            source,
        })
}

/// Runs the service until SIGINT or SIGTERM, then shuts it down.
///
/// # Errors
/// [`StartError`] when it cannot start; the caller logs it as fatal and exits 1.
pub fn run(options: Options) -> Result<(), StartError> {
    log::init(options.log_level, &options.log_prefix);
    info!("{}", options::VERSION_LINE);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StartError::Runtime)?;
    runtime.block_on(async {
        // Handlers first: a supervisor may signal as soon as it reads the listening lines.
        let signals = Signals::install();
        let lookupd = Lookupd::start(options).await?;
        signals.wait().await;
        lookupd.shutdown().await;
        Ok(())
    })
}

/// SIGINT and SIGTERM handlers.
struct Signals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        let signals = Signals {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        };
        if signals.interrupt.is_none() || signals.terminate.is_none() {
            tracing::warn!("cannot install signal handlers");
        }
        signals
    }

    /// Waits for either signal; without handlers, runs until killed.
    async fn wait(mut self) {
        match (&mut self.interrupt, &mut self.terminate) {
            (Some(interrupt), Some(terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            }
            _ => std::future::pending().await,
        }
    }
}
