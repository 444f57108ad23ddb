//! sluice-admin: the web UI of a Sluice (or NSQ) cluster, nsqadmin-compatible, with charts that
//! need no Graphite.
//!
//! Mirrors upstream `nsqadmin/nsqadmin.go`: it knows the cluster through its lookupds
//! (`--lookupd-http-address`) or a fixed list of brokers (`--nsqd-http-address`), asks them over
//! their HTTP APIs ([`clusterinfo`]), serves pages ([`pages`]) and nsqadmin's JSON API
//! ([`api`]) on one HTTP port, forwards admin actions to the brokers and lookupds, and POSTs a
//! record of each to `--notification-http-endpoint` ([`notify`]). Ours: a sampler task asks
//! every broker's `/stats` every `--sample-interval` and keeps a bounded [`history`] that the
//! pages draw as SVG [`chart`]s.
//!
//! Off the brokers' hot path by construction: it is a separate process that only speaks HTTP
//! to them. A plain tokio (current-thread) + hyper 1 service. The binary turns flags into
//! [`Options`] and calls [`run`]; tests may start it in-process with [`Admin::start`].
#![forbid(unsafe_code)]

mod api;
pub mod chart;
pub mod cidr;
pub mod client;
pub mod clusterinfo;
pub mod flags;
pub mod history;
pub mod html;
mod http;
pub mod log;
pub mod notify;
pub mod options;
mod pages;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use cidr::Cidr;
use client::HttpClient;
use clusterinfo::ClusterInfo;
use history::{History, Point};
use notify::Notifier;
pub use options::Options;

/// What every request handler shares.
pub(crate) struct Context {
    options: RwLock<Options>,
    pub(crate) cluster: ClusterInfo,
    history: Mutex<History>,
    pub(crate) notifier: Option<Notifier>,
    /// This host's name (the `via` of notifications).
    pub(crate) hostname: String,
    /// The normalized `--base-path`.
    pub(crate) base_path: String,
    /// `--allow-config-from-cidr`, parsed; `None` allows everyone.
    pub(crate) config_cidr: Option<Cidr>,
}

impl Context {
    /// The options in force (`PUT /config` changes some).
    pub(crate) fn options(&self) -> Options {
        self.options
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_options(&self, options: Options) {
        *self.options.write().unwrap_or_else(PoisonError::into_inner) = options;
    }

    /// The lookupd and broker addresses in force.
    pub(crate) fn addresses(&self) -> (Vec<String>, Vec<String>) {
        let options = self.options.read().unwrap_or_else(PoisonError::into_inner);
        (
            options.lookupd_http_addresses.clone(),
            options.nsqd_http_addresses.clone(),
        )
    }

    /// The history. It is never held across an await, so poison is ignored.
    fn lock_history(&self) -> MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn history_points(&self, topic: &str, channel: &str) -> Vec<Point> {
        self.lock_history().points(topic, channel)
    }
}

/// Why the service could not start.
#[derive(Debug)]
pub enum StartError {
    /// The options were refused (upstream's `New` checks).
    Options(String),
    /// The listener could not be bound.
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
            StartError::Options(e) => f.write_str(e),
            StartError::Listen { address, source } => {
                write!(f, "listen ({address}) failed - {source}")
            }
            StartError::Runtime(e) => write!(f, "runtime - {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A running admin.
pub struct Admin {
    http_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Admin {
    /// Checks the options as upstream does, binds the listener, logs
    /// `HTTP: listening on ADDR`, and starts serving and sampling on the current tokio runtime.
    ///
    /// # Errors
    /// [`StartError::Options`] for refused options, [`StartError::Listen`] when the address
    /// cannot be bound.
    pub async fn start(options: Options) -> Result<Admin, StartError> {
        options::validate(&options).map_err(StartError::Options)?;
        let listener = bind(&options.http_address).await?;
        let http_addr = listener.local_addr().map_err(|source| StartError::Listen {
            address: options.http_address.clone(),
            source,
        })?;
        let client = HttpClient {
            connect_timeout: options.http_client_connect_timeout,
            request_timeout: options.http_client_request_timeout,
        };
        let notifier = (!options.notification_http_endpoint.is_empty())
            .then(|| Notifier::start(options.notification_http_endpoint.clone(), client));
        let config_cidr = Cidr::parse(&options.allow_config_from_cidr).ok();
        let ctx = Arc::new(Context {
            history: Mutex::new(History::new(options.sample_history)),
            cluster: ClusterInfo { client },
            notifier,
            hostname: options::hostname(),
            base_path: options.base_path.clone(),
            config_cidr,
            options: RwLock::new(options),
        });
        let (shutdown, watcher) = watch::channel(false);
        info!("HTTP: listening on {http_addr}");
        let tasks = vec![
            tokio::spawn(http::serve(listener, Arc::clone(&ctx), watcher.clone())),
            tokio::spawn(sample(ctx, watcher)),
        ];
        Ok(Admin {
            http_addr,
            shutdown,
            tasks,
        })
    }

    /// The bound HTTP address (the real port when `:0` was asked for).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Stops accepting, closes every connection, and waits for the tasks to finish.
    pub async fn shutdown(self) {
        info!("HTTP: closing {}", self.http_addr);
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Binds the listener; `:PORT` means every IPv4 interface, as Go's `:PORT` does in practice.
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

/// The sampler: every `--sample-interval`, every broker's `/stats` (without clients), summed
/// per topic and channel into the history. A round that reaches no broker records nothing.
async fn sample(ctx: Arc<Context>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let interval = ctx
            .options()
            .sample_interval
            .max(Duration::from_millis(100));
        sample_once(&ctx).await;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => break,
        }
    }
}

async fn sample_once(ctx: &Context) {
    let Ok(producers) = api::fetch_producers(ctx).await else {
        return;
    };
    let Ok(stats) = ctx
        .cluster
        .nsqd_stats(&producers.value, "", "", false)
        .await
    else {
        return;
    };
    let mut sums: Vec<clusterinfo::types::TopicStats> = Vec::new();
    for node in &stats.value.0 {
        match sums.iter_mut().find(|t| t.topic_name == node.topic_name) {
            Some(sum) => sum.add(node),
            None => {
                let mut sum = clusterinfo::types::TopicStats::sum(&node.topic_name);
                sum.add(node);
                sums.push(sum);
            }
        }
    }
    let at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    ctx.lock_history().record(at_ms, &sums);
}

/// Runs the service until SIGINT or SIGTERM, then shuts it down.
///
/// # Errors
/// [`StartError`] when it cannot start; the caller logs it as fatal and exits 1.
pub fn run(options: Options) -> Result<(), StartError> {
    log::init(options.log_level, &options.log_prefix);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StartError::Runtime)?;
    runtime.block_on(async {
        // Handlers first: a supervisor may signal as soon as it reads the listening line.
        let signals = Signals::install();
        options::validate(&options).map_err(StartError::Options)?;
        info!("{}", options::VERSION_LINE);
        let admin = Admin::start(options).await?;
        signals.wait().await;
        admin.shutdown().await;
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
