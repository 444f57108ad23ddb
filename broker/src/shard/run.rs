//! A shard's tasks: accepting TCP and HTTP connections, draining the mesh, the timer, and the
//! orderly stop.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use futures_lite::future;
use glommio::channels::shared_channel::ConnectedReceiver;
use glommio::net::TcpListener;

use super::mesh::{Mesh, MeshEnds, PubItem, Reply, Request};
use super::Shard;
use crate::options::Options;
use crate::runtime::{stopped, Control};
use crate::storage::log::SegmentLog;
use crate::storage::meta::ShardState;
use crate::storage::recovery::Recovered;

/// A shard's storage, opened before it serves.
pub struct Opened {
    /// The log.
    pub log: Rc<SegmentLog>,
    /// The saved state.
    pub state: ShardState,
    /// What recovery read.
    pub recovered: Recovered,
}

/// A shard's listeners (SO_REUSEPORT: every shard has its own on the same addresses).
pub struct Listeners {
    /// `--tcp-address`
    pub tcp: TcpListener,
    /// `--http-address`
    pub http: TcpListener,
    /// `--https-address`, when TLS is configured.
    pub https: Option<TcpListener>,
}

/// Runs shard `id` until the broker stops.
pub async fn serve(
    id: usize,
    shards: usize,
    opts: Arc<Options>,
    control: Arc<Control>,
    ends: MeshEnds,
    listeners: Listeners,
    opened: Opened,
) {
    let Listeners { tcp, http, https } = listeners;
    let (mesh, inbound) = Mesh::connect(ends).await;
    let Opened {
        log,
        state,
        recovered,
    } = opened;
    let shard = Rc::new(Shard::new(
        id,
        shards,
        opts,
        mesh,
        control.clone(),
        log.clone(),
    ));
    shard.restore(&state, &recovered).await;
    drop(recovered);
    glommio::spawn_local(log.clone().run_writer()).detach();
    glommio::spawn_local(shard.clone().run_refiller()).detach();
    glommio::spawn_local(shard.clone().run_saver()).detach();
    if let Some(why) = log.poisoned() {
        shard.report_problem(why);
    }
    for (from, rx) in inbound.requests {
        glommio::spawn_local(handle_requests(shard.clone(), from, rx)).detach();
    }
    for rx in inbound.replies {
        glommio::spawn_local(handle_replies(shard.clone(), rx)).detach();
    }
    glommio::spawn_local(timer_loop(shard.clone())).detach();
    glommio::spawn_local(crate::conn::https::serve_http(shard.clone(), http)).detach();
    if let Some(https) = https {
        glommio::spawn_local(crate::conn::https::serve(shard.clone(), https)).detach();
    }
    future::or(accept(&shard, &tcp), stopped(&control)).await;
    if id == 0 {
        if let Ok(addr) = tcp.local_addr() {
            tracing::info!("TCP: closing {addr}");
        }
    }
    stop(&shard).await;
}

/// Accepts TCP clients until the task is dropped.
async fn accept(shard: &Rc<Shard>, tcp: &TcpListener) {
    loop {
        match tcp.accept().await {
            Ok(stream) => {
                glommio::spawn_local(crate::conn::serve(shard.clone(), stream)).detach();
            }
            Err(e) => {
                tracing::warn!("TCP: accept error - {e}");
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

/// The orderly stop: everything appended is written and synced, then the state is saved.
async fn stop(shard: &Shard) {
    if let Err(why) = shard.log.flush().await {
        shard.report_problem(why);
    }
    shard.save_state().await;
    let log = &shard.log;
    tracing::info!(
        "STORAGE: shard {}: {} writes, {} bytes written, {} fsyncs",
        shard.id,
        log.writes.get(),
        log.bytes_written.get(),
        log.fsyncs.get()
    );
    shard.control.shard_finished();
}

async fn handle_requests(shard: Rc<Shard>, from: usize, rx: ConnectedReceiver<Request>) {
    while let Some(request) = rx.recv().await {
        match request {
            Request::Publish { token, items } => {
                // The reply waits for the log; the next request need not.
                glommio::spawn_local(publish_and_reply(shard.clone(), from, token, items)).detach();
            }
            Request::Handoff(handoff) => {
                glommio::spawn_local(crate::conn::resume(shard.clone(), handoff)).detach();
            }
            Request::Admin { token, op } => {
                let result = shard.admin_local(&op);
                let shard = shard.clone();
                glommio::spawn_local(async move {
                    shard.state_durable().await;
                    shard.mesh.reply(from, token, Reply::Admin(result)).await;
                })
                .detach();
            }
            Request::Producers { token } => {
                let producers = shard.producers_local();
                shard
                    .mesh
                    .reply(from, token, Reply::Producers(producers))
                    .await;
            }
            Request::Metrics { token } => {
                let snapshot = Box::new(crate::metrics::snapshot::take(&shard));
                shard
                    .mesh
                    .reply(from, token, Reply::Metrics(snapshot))
                    .await;
            }
            Request::Stats { token, query } => {
                let stats = shard.stats_local(&query);
                shard.mesh.reply(from, token, Reply::Stats(stats)).await;
            }
        }
    }
}

async fn publish_and_reply(shard: Rc<Shard>, from: usize, token: u64, items: Vec<PubItem>) {
    let count: usize = items.iter().map(|i| i.bodies.len()).sum();
    shard
        .forwarded_in
        .set(shard.forwarded_in.get() + count as u64);
    let results = shard
        .publish_durable(
            items
                .into_iter()
                .map(|i| (i.topic.as_str().to_owned(), i.bodies, i.defer)),
        )
        .await;
    shard.mesh.reply(from, token, Reply::Publish(results)).await;
}

async fn handle_replies(shard: Rc<Shard>, rx: ConnectedReceiver<(u64, Reply)>) {
    while let Some((token, reply)) = rx.recv().await {
        shard.mesh.complete(token, reply);
    }
}

async fn timer_loop(shard: Rc<Shard>) {
    loop {
        match shard.timer.armed() {
            Some(deadline) => {
                let wait = deadline.saturating_duration_since(Instant::now());
                let sleep = async { glommio::timer::sleep(wait).await };
                future::or(sleep, shard.timer.wake.wait()).await;
            }
            None => shard.timer.wake.wait().await,
        }
        let now = Instant::now();
        if shard.timer.armed().is_some_and(|d| d <= now) {
            // Deliveries made while handling timeouts note their own deadlines; the scan after
            // them catches every other channel's.
            shard.timer.set(None);
            shard.poll_timeouts(now);
            shard.timer.note(shard.next_deadline());
        }
    }
}
