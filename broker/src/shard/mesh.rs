//! The messages shards exchange, and the bounded queues that carry them.
//!
//! Two meshes connect every pair of shards: one for requests, one for replies. A shard's reply
//! receivers never send anything, so replies always drain and a request handler blocked on a
//! full reply queue always makes progress: the two-mesh split is what rules out the deadlock of
//! glommio issue #555 (see ARCHITECTURE.md, "Cross-shard queues"). Everything is batched: one
//! request carries every publish a connection read in one cycle for that shard.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_channel::oneshot;
use glommio::channels::shared_channel::{
    ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};
use sluice_proto::identify::Negotiated;
use sluice_proto::v2::Name;

use sluice_proto::http_json::TopicStats;

/// How many requests (or replies) may wait in one direction between two shards.
pub const MESH_CAPACITY: usize = 1024;

/// A publish to a topic owned by the receiving shard.
#[derive(Debug)]
pub struct PubItem {
    /// The topic.
    pub topic: Name,
    /// Message bodies (one for PUB/DPUB, many for MPUB).
    pub bodies: Vec<Bytes>,
    /// The delay of a DPUB.
    pub defer: Option<Duration>,
}

/// Why a publish failed on its owning shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishError {
    /// A destination had no room (kept for callers; the segment log never refuses for room).
    Full,
    /// The topic is being deleted or the shard is exiting.
    Exiting,
    /// The shard's segment log failed: it refuses publishes until restart.
    Storage,
}

/// A subscriber moving to the shard that owns its topic.
#[derive(Debug)]
pub struct Handoff {
    /// The socket, duplicated from the original (see `conn::handoff`).
    pub fd: OwnedFd,
    /// Client id (kept across the move).
    pub client_id: u64,
    /// What IDENTIFY negotiated.
    pub identity: Negotiated,
    /// Whether IDENTIFY was received.
    pub identified: bool,
    /// The SUB to execute on arrival.
    pub topic: Name,
    /// The channel of the SUB.
    pub channel: Name,
    /// Bytes already read after the SUB line.
    pub leftover: BytesMut,
    /// The connection's negotiated layers (TLS, compression), AUTH answer and held plaintext.
    pub link: crate::conn::transport::Link,
}

/// An administrative operation on a topic or channel owned by the receiving shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminOp {
    /// `/topic/create`
    CreateTopic(String),
    /// `/topic/delete`
    DeleteTopic(String),
    /// `/topic/empty`
    EmptyTopic(String),
    /// `/topic/pause` (true) or `/topic/unpause` (false)
    PauseTopic(String, bool),
    /// `/channel/create`
    CreateChannel(String, String),
    /// `/channel/delete`
    DeleteChannel(String, String),
    /// `/channel/empty`
    EmptyChannel(String, String),
    /// `/channel/pause` (true) or `/channel/unpause` (false)
    PauseChannel(String, String, bool),
}

/// The outcome of an [`AdminOp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminResult {
    /// Done.
    Ok,
    /// The topic does not exist.
    TopicNotFound,
    /// The channel does not exist.
    ChannelNotFound,
}

/// What to include in a stats answer.
#[derive(Debug, Clone, Default)]
pub struct StatsQuery {
    /// Only this topic.
    pub topic: Option<String>,
    /// Only this channel (with `topic`).
    pub channel: Option<String>,
    /// Include per-client stats.
    pub include_clients: bool,
}

/// A request from one shard to another.
#[derive(Debug)]
pub enum Request {
    /// Publish batches; the reply carries one result per item.
    Publish {
        /// Reply token.
        token: u64,
        /// The batches, in the order they were read.
        items: Vec<PubItem>,
    },
    /// A subscriber moving here. No reply.
    Handoff(Box<Handoff>),
    /// An administrative operation.
    Admin {
        /// Reply token.
        token: u64,
        /// The operation.
        op: AdminOp,
    },
    /// The publishing connections on this shard (`/stats` producers).
    Producers {
        /// Reply token.
        token: u64,
    },
    /// This shard's figures for `/metrics` ([`crate::metrics::snapshot`]).
    Metrics {
        /// Reply token.
        token: u64,
    },
    /// Stats of the topics this shard owns.
    Stats {
        /// Reply token.
        token: u64,
        /// Filter.
        query: StatsQuery,
    },
}

/// A reply to a [`Request`], matched by token.
#[derive(Debug)]
pub enum Reply {
    /// Results of a `Publish`, one per item.
    Publish(Vec<Result<(), PublishError>>),
    /// Result of an `Admin`.
    Admin(AdminResult),
    /// Topics of a `Stats`.
    Stats(Vec<TopicStats>),
    /// The snapshot of a `Metrics`.
    Metrics(Box<crate::metrics::snapshot::ShardSnapshot>),
    /// Connections of a `Producers`.
    Producers(Vec<sluice_proto::http_json::ClientStats>),
}

/// The unconnected ends for one shard, made before the executors start.
pub struct MeshEnds {
    /// Request senders to each other shard (None for itself).
    pub requests_out: Vec<Option<SharedSender<Request>>>,
    /// Request receivers from each other shard.
    pub requests_in: Vec<Option<SharedReceiver<Request>>>,
    /// Reply senders to each other shard.
    pub replies_out: Vec<Option<SharedSender<(u64, Reply)>>>,
    /// Reply receivers from each other shard.
    pub replies_in: Vec<Option<SharedReceiver<(u64, Reply)>>>,
}

/// Builds the ends of both meshes for `shards` shards; entry `i` belongs to shard `i`.
pub fn build(shards: usize) -> Vec<MeshEnds> {
    let mut ends: Vec<MeshEnds> = (0..shards)
        .map(|_| MeshEnds {
            requests_out: (0..shards).map(|_| None).collect(),
            requests_in: (0..shards).map(|_| None).collect(),
            replies_out: (0..shards).map(|_| None).collect(),
            replies_in: (0..shards).map(|_| None).collect(),
        })
        .collect();
    for from in 0..shards {
        for to in 0..shards {
            if from == to {
                continue;
            }
            let (tx, rx) = glommio::channels::shared_channel::new_bounded(MESH_CAPACITY);
            ends[from].requests_out[to] = Some(tx);
            ends[to].requests_in[from] = Some(rx);
            let (tx, rx) = glommio::channels::shared_channel::new_bounded(MESH_CAPACITY);
            ends[from].replies_out[to] = Some(tx);
            ends[to].replies_in[from] = Some(rx);
        }
    }
    ends
}

/// A shard's connected senders and its table of replies awaited.
pub struct Mesh {
    requests: Vec<Option<ConnectedSender<Request>>>,
    replies: Vec<Option<ConnectedSender<(u64, Reply)>>>,
    awaiting: RefCell<HashMap<u64, oneshot::Sender<Reply>>>,
    next_token: Cell<u64>,
}

/// The receiving ends a shard drains in its own tasks.
pub struct Inbound {
    /// Requests from each other shard.
    pub requests: Vec<(usize, ConnectedReceiver<Request>)>,
    /// Replies from each other shard.
    pub replies: Vec<ConnectedReceiver<(u64, Reply)>>,
}

/// Why a mesh send failed: the other shard is gone (shutting down).
#[derive(Debug)]
pub struct MeshClosed;

impl Mesh {
    /// Connects every end on the calling shard's executor.
    ///
    /// Each connect waits for the other side's, so all of them run at once (connecting them one
    /// by one deadlocks two shards that each wait for the other's first end).
    pub async fn connect(ends: MeshEnds) -> (Mesh, Inbound) {
        use glommio::spawn_local;
        let requests_out: Vec<_> = ends
            .requests_out
            .into_iter()
            .map(|tx| tx.map(|tx| spawn_local(tx.connect())))
            .collect();
        let replies_out: Vec<_> = ends
            .replies_out
            .into_iter()
            .map(|tx| tx.map(|tx| spawn_local(tx.connect())))
            .collect();
        let requests_in: Vec<_> = ends
            .requests_in
            .into_iter()
            .enumerate()
            .filter_map(|(from, rx)| rx.map(|rx| (from, spawn_local(rx.connect()))))
            .collect();
        let replies_in: Vec<_> = ends
            .replies_in
            .into_iter()
            .flatten()
            .map(|rx| spawn_local(rx.connect()))
            .collect();
        let mut requests = Vec::new();
        for task in requests_out {
            requests.push(match task {
                Some(t) => Some(t.await),
                None => None,
            });
        }
        let mut replies = Vec::new();
        for task in replies_out {
            replies.push(match task {
                Some(t) => Some(t.await),
                None => None,
            });
        }
        let mut inbound = Inbound {
            requests: Vec::new(),
            replies: Vec::new(),
        };
        for (from, task) in requests_in {
            inbound.requests.push((from, task.await));
        }
        for task in replies_in {
            inbound.replies.push(task.await);
        }
        let mesh = Mesh {
            requests,
            replies,
            awaiting: RefCell::new(HashMap::new()),
            next_token: Cell::new(1),
        };
        (mesh, inbound)
    }

    /// Sends a request that expects a reply; the returned receiver yields it.
    ///
    /// # Errors
    /// [`MeshClosed`] when the other shard no longer receives.
    pub async fn call(
        &self,
        to: usize,
        make: impl FnOnce(u64) -> Request,
    ) -> Result<oneshot::Receiver<Reply>, MeshClosed> {
        let token = self.next_token.get();
        self.next_token.set(token.wrapping_add(1));
        let (tx, rx) = oneshot::channel();
        self.awaiting.borrow_mut().insert(token, tx);
        let sender = self
            .requests
            .get(to)
            .and_then(Option::as_ref)
            .ok_or(MeshClosed)?;
        if sender.send(make(token)).await.is_err() {
            self.awaiting.borrow_mut().remove(&token);
            return Err(MeshClosed);
        }
        Ok(rx)
    }

    /// Sends a request with no reply (a handoff).
    ///
    /// # Errors
    /// [`MeshClosed`] when the other shard no longer receives (the request is dropped: for a
    /// handoff that closes the socket).
    pub async fn send(&self, to: usize, request: Request) -> Result<(), MeshClosed> {
        let sender = self
            .requests
            .get(to)
            .and_then(Option::as_ref)
            .ok_or(MeshClosed)?;
        sender.send(request).await.map_err(|_| MeshClosed)
    }

    /// Sends a reply back to the shard that asked.
    pub async fn reply(&self, to: usize, token: u64, reply: Reply) {
        if let Some(sender) = self.replies.get(to).and_then(Option::as_ref) {
            // A failed send means the asking shard is shutting down: nobody waits any more.
            let _ = sender.send((token, reply)).await;
        }
    }

    /// Hands a received reply to whoever awaits it.
    pub fn complete(&self, token: u64, reply: Reply) {
        if let Some(tx) = self.awaiting.borrow_mut().remove(&token) {
            let _ = tx.send(reply);
        }
    }
}
