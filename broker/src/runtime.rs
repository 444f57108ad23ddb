//! Starts the shards: one glommio executor per core, pinned, each with its own SO_REUSEPORT
//! listeners for TCP and HTTP, connected by the mesh. Owns no domain logic.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::Duration;

use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};

use crate::options::Options;
use crate::shard::mesh::{self, MeshEnds};

/// The addresses the broker listens on, once every shard is up.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    /// TCP (protocol V2).
    pub tcp: SocketAddr,
    /// HTTP.
    pub http: SocketAddr,
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error("listen ({addr}) failed - {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// io_uring (or the executor) is not available.
    #[error("{0}")]
    Executor(String),
    /// A file named by the options is unusable (TLS certificate, key, authorities).
    #[error("{0}")]
    Config(String),
}

/// Shared between the shards and the thread that started them.
pub struct Control {
    /// Set to stop every shard.
    pub stop: AtomicBool,
    /// The addresses shard 0 bound, for the other shards to share (SO_REUSEPORT).
    bound: Mutex<Option<Result<Bound, String>>>,
    bound_cv: Condvar,
    /// `--lookupd-tcp-address` as changed at run time by `PUT /config/nsqlookupd_tcp_addresses`.
    pub lookupd_tcp_addresses: Mutex<Vec<String>>,
    /// Topic and channel creation and deletion, for the lookupd registration thread.
    pub events: crate::lookupd::Events,
    /// When the broker started (one time for every shard's `/info` and `/stats`).
    pub started_at: std::time::SystemTime,
    /// Shards that finished their orderly stop (log flushed, state saved).
    finished: Mutex<usize>,
    finished_cv: Condvar,
    /// Storage problems found by any shard (corruption, failed writes): `/ping` answers 500
    /// and `/stats` shows them until restart.
    pub problems: Mutex<Vec<String>>,
    /// The HTTPS address every shard listens on (`--https-address` when TLS is configured).
    pub https: Mutex<Option<SocketAddr>>,
}

impl Control {
    fn publish_bound(&self, result: Result<Bound, String>) {
        if let Ok(mut slot) = self.bound.lock() {
            *slot = Some(result);
        }
        self.bound_cv.notify_all();
    }

    /// Called by each shard once its orderly stop is complete.
    pub fn shard_finished(&self) {
        if let Ok(mut n) = self.finished.lock() {
            *n += 1;
        }
        self.finished_cv.notify_all();
    }

    /// Waits until `shards` shards finished (or `limit` passed); returns how many did.
    fn wait_finished(&self, shards: usize, limit: Duration) -> usize {
        let deadline = std::time::Instant::now() + limit;
        let Ok(mut n) = self.finished.lock() else {
            return 0;
        };
        while *n < shards {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            n = match self.finished_cv.wait_timeout(n, left) {
                Ok((guard, _)) => guard,
                Err(_) => return 0,
            };
        }
        *n
    }

    /// The addresses every shard listens on (after start-up).
    pub fn bound(&self) -> Option<Bound> {
        self.bound.lock().ok()?.as_ref()?.as_ref().ok().copied()
    }

    fn wait_bound(&self) -> Result<Bound, String> {
        let Ok(mut slot) = self.bound.lock() else {
            return Err("poisoned".into());
        };
        loop {
            if let Some(result) = slot.as_ref() {
                return result.clone();
            }
            slot = match self.bound_cv.wait(slot) {
                Ok(s) => s,
                Err(_) => return Err("poisoned".into()),
            };
        }
    }
}

/// How long a failed start waits for the other shards to stop.
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// The CPUs this process may run on (`Cpus_allowed_list` of /proc/self/status).
pub fn allowed_cpus() -> Vec<usize> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap_or("")
        .trim();
    let mut cpus = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.trim().parse::<usize>(), b.trim().parse::<usize>()) {
            cpus.extend(a..=b);
        }
    }
    if cpus.is_empty() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        cpus.extend(0..n);
    }
    cpus
}

/// The locked-memory limit (RLIMIT_MEMLOCK soft limit, bytes), from /proc/self/limits.
fn memlock_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max locked memory"))?;
    let soft = line.split_whitespace().nth(3)?;
    if soft == "unlimited" {
        return Some(u64::MAX);
    }
    soft.parse().ok()
}

/// glommio's registered IO memory per shard, sized so that every shard fits under the
/// locked-memory limit (8 MiB on many systems) with room left for the rings.
fn io_memory_per_shard(shards: usize) -> usize {
    const MAX: usize = 2 << 20;
    const MIN: usize = 64 << 10;
    let limit = memlock_limit().unwrap_or(8 << 20).min(1 << 40) as usize;
    let budget = limit / 2 / shards.max(1);
    budget.clamp(MIN, MAX)
}

/// Runs the broker until `control.stop` is set. `on_bound` is called once every shard listens.
///
/// # Errors
/// A [`StartError`] when a listener or an executor cannot start.
pub fn run(
    opts: Arc<Options>,
    control: Arc<Control>,
    on_bound: impl FnOnce(Bound) + Send + 'static,
) -> Result<(), StartError> {
    let cpus = allowed_cpus();
    let shards = if opts.cores == 0 {
        cpus.len()
    } else {
        opts.cores
    };
    let opts = crate::conn::tls::prepare(opts).map_err(StartError::Config)?;
    crate::storage::meta::check_data_dir(&opts.data_path, shards).map_err(StartError::Executor)?;
    check_exclusive(opts.tcp_address)?;
    check_exclusive(opts.http_address)?;
    if opts.security.tls_config.is_some() {
        check_exclusive(opts.security.https_address)?;
    }
    let ends = mesh::build(shards);
    let io_memory = io_memory_per_shard(shards);
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let mut handles = Vec::new();
    for (id, ends) in ends.into_iter().enumerate() {
        let cpu = cpus.get(id % cpus.len()).copied().unwrap_or(0);
        let opts = opts.clone();
        let control = control.clone();
        let ready = ready_tx.clone();
        let handle = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("shard-{id}"))
            .io_memory(io_memory)
            .spawn(move || async move { shard_main(id, shards, opts, control, ends, ready).await })
            .map_err(|e| StartError::Executor(executor_error(&e.to_string())))?;
        handles.push(handle);
    }
    drop(ready_tx);
    let mut failure = None;
    for _ in 0..shards {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some("a shard failed to start".to_owned()),
        }
    }
    if let Some(e) = failure {
        control.stop.store(true, Ordering::SeqCst);
        control.wait_finished(shards, STOP_LIMIT);
        return Err(StartError::Executor(e));
    }
    match control.wait_bound() {
        Ok(bound) => on_bound(bound),
        Err(e) => return Err(StartError::Executor(e)),
    }
    // The shard threads are not joined: an executor waits for every armed io_uring operation
    // when it is dropped (idle client sockets would keep it forever). Once every shard has
    // flushed its log and saved its state, the process may exit.
    while control.wait_finished(shards, Duration::from_secs(3600)) < shards {}
    drop(handles);
    Ok(())
}

fn executor_error(detail: &str) -> String {
    format!(
        "cannot start a glommio executor ({detail}): sluiced needs io_uring (Linux 5.8 or later); \
         in a container, allow the io_uring_setup, io_uring_enter and io_uring_register system \
         calls in its seccomp profile, and a locked-memory limit (ulimit -l) of at least 8 MiB"
    )
}

/// Refuses to start when another process already listens on a fixed address: SO_REUSEPORT
/// would otherwise let two brokers of the same user share the port silently.
fn check_exclusive(addr: SocketAddr) -> Result<(), StartError> {
    if addr.port() == 0 {
        return Ok(());
    }
    std::net::TcpListener::bind(addr)
        .map(drop)
        .map_err(|source| StartError::Listen { addr, source })
}

fn bind_pair(
    opts: &Options,
    shared: Option<Bound>,
) -> Result<(TcpListener, TcpListener, Bound), String> {
    let (tcp_addr, http_addr) = match shared {
        Some(b) => (b.tcp, b.http),
        None => (opts.tcp_address, opts.http_address),
    };
    let tcp = crate::conn::handoff::listen(tcp_addr)
        .map_err(|e| format!("listen ({tcp_addr}) failed - {e}"))?;
    let http = crate::conn::handoff::listen(http_addr)
        .map_err(|e| format!("listen ({http_addr}) failed - {e}"))?;
    let bound = Bound {
        tcp: tcp.local_addr().map_err(|e| e.to_string())?,
        http: http.local_addr().map_err(|e| e.to_string())?,
    };
    Ok((tcp, http, bound))
}

async fn shard_main(
    id: usize,
    shards: usize,
    opts: Arc<Options>,
    control: Arc<Control>,
    ends: MeshEnds,
    ready: mpsc::Sender<Result<(), String>>,
) {
    let opened = match crate::shard::open_storage(&opts, id) {
        Ok((log, state, recovered)) => {
            // Known before any listener accepts, so no `/ping` can answer OK meanwhile.
            if let Ok(mut problems) = control.problems.lock() {
                for problem in &recovered.corruption {
                    problems.push(format!("shard {id}: corrupt segment data: {problem}"));
                }
            }
            crate::shard::run::Opened {
                log,
                state,
                recovered,
            }
        }
        Err(e) => {
            if id == 0 {
                control.publish_bound(Err(e.clone()));
            }
            let _ = ready.send(Err(e));
            return;
        }
    };
    let shared = if id == 0 {
        None
    } else {
        control.wait_bound().ok()
    };
    if id != 0 && shared.is_none() {
        let _ = ready.send(Err("shard 0 failed to bind".into()));
        return;
    }
    let (tcp, http, bound) = match bind_pair(&opts, shared) {
        Ok(b) => b,
        Err(e) => {
            if id == 0 {
                control.publish_bound(Err(e.clone()));
            }
            let _ = ready.send(Err(e));
            return;
        }
    };
    let https = match bind_https(&opts, &control, id) {
        Ok(listener) => listener,
        Err(e) => {
            if id == 0 {
                control.publish_bound(Err(e.clone()));
            }
            let _ = ready.send(Err(e));
            return;
        }
    };
    if id == 0 {
        control.publish_bound(Ok(bound));
    }
    let _ = ready.send(Ok(()));
    let listeners = crate::shard::run::Listeners { tcp, http, https };
    crate::shard::run::serve(id, shards, opts, control, ends, listeners, opened).await;
}

/// Binds `--https-address` when TLS is configured: shard 0 first, the others on the address
/// it got (SO_REUSEPORT), as the TCP and HTTP listeners.
fn bind_https(opts: &Options, control: &Control, id: usize) -> Result<Option<TcpListener>, String> {
    if opts.security.tls_config.is_none() {
        return Ok(None);
    }
    let shared = control.https.lock().ok().and_then(|a| *a);
    let addr = match shared {
        Some(addr) if id != 0 => addr,
        _ => opts.security.https_address,
    };
    let listener =
        crate::conn::handoff::listen(addr).map_err(|e| format!("listen ({addr}) failed - {e}"))?;
    if id == 0 {
        let bound = listener.local_addr().map_err(|e| e.to_string())?;
        if let Ok(mut slot) = control.https.lock() {
            *slot = Some(bound);
        }
    }
    Ok(Some(listener))
}

/// Polls the stop flag; resolves once it is set.
pub async fn stopped(control: &Control) {
    while !control.stop.load(Ordering::Relaxed) {
        glommio::timer::sleep(Duration::from_millis(50)).await;
    }
}

/// A fresh control block.
pub fn control(opts: &Options) -> Arc<Control> {
    Arc::new(Control {
        stop: AtomicBool::new(false),
        bound: Mutex::new(None),
        bound_cv: Condvar::new(),
        lookupd_tcp_addresses: Mutex::new(opts.lookupd_tcp_addresses.clone()),
        events: crate::lookupd::Events::new(),
        problems: Mutex::new(Vec::new()),
        started_at: std::time::SystemTime::now(),
        finished: Mutex::new(0),
        finished_cv: Condvar::new(),
        https: Mutex::new(None),
    })
}
