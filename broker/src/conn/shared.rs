//! What a connection shares with its shard: the outbox the channels deliver into, the signal
//! that wakes its writer, and the facts and counters `/stats` reports.
//!
//! Everything here lives on one shard and is touched by one thread; `Cell`/`RefCell` suffice.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::time::SystemTime;

use bytes::BytesMut;
use sluice_proto::identify::Negotiated;
use sluice_proto::v2::{self, FrameType};
use sluice_proto::{Message, ProtoError};

use crate::signal::Signal;

/// Connection state, as upstream's `stateInit`/`stateSubscribed`/`stateClosing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Before SUB.
    Init,
    /// After SUB.
    Subscribed,
    /// After CLS: no more deliveries; FIN/REQ/TOUCH still accepted.
    Closing,
}

impl State {
    /// Upstream's numeric state in `/stats` (`stateInit` = 0 ... `stateClosing` = 3).
    pub fn code(self) -> i32 {
        match self {
            State::Init => 0,
            State::Subscribed => 3,
            State::Closing => 4,
        }
    }
}

/// Per-connection counters shown in `/stats`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    /// Messages delivered.
    pub message_count: u64,
    /// Messages FINished.
    pub finish_count: u64,
    /// Messages REQueued.
    pub requeue_count: u64,
}

/// The part of a connection its shard can reach.
#[derive(Debug)]
pub struct ConnShared {
    /// Unique on this broker.
    pub client_id: u64,
    /// The peer.
    pub remote: SocketAddr,
    /// When it connected.
    pub connected_at: SystemTime,
    /// Frames waiting to be written.
    pub outbox: RefCell<BytesMut>,
    /// Wakes the writer.
    pub wake_writer: Signal,
    /// Set once the connection is going away; the writer stops.
    pub closed: Cell<bool>,
    /// Protocol state.
    pub state: Cell<State>,
    /// What IDENTIFY negotiated (defaults until then).
    pub identity: RefCell<Negotiated>,
    /// Whether IDENTIFY was received.
    pub identified: Cell<bool>,
    /// The subscription, once SUB succeeded: (topic, channel).
    pub subscription: RefCell<Option<(String, String)>>,
    /// RDY as last set.
    pub ready_count: Cell<u64>,
    /// Counters.
    pub counters: Cell<Counters>,
    /// Messages published, per topic, in first-publish order (upstream `pub_counts`).
    pub pub_counts: RefCell<Vec<(String, u64)>>,
}

impl ConnShared {
    /// A new connection in state Init with default negotiated settings.
    pub fn new(client_id: u64, remote: SocketAddr, identity: Negotiated) -> ConnShared {
        ConnShared {
            client_id,
            remote,
            connected_at: SystemTime::now(),
            outbox: RefCell::new(BytesMut::new()),
            wake_writer: Signal::default(),
            closed: Cell::new(false),
            state: Cell::new(State::Init),
            identity: RefCell::new(identity),
            identified: Cell::new(false),
            subscription: RefCell::new(None),
            ready_count: Cell::new(0),
            counters: Cell::new(Counters::default()),
            pub_counts: RefCell::new(Vec::new()),
        }
    }

    /// Queues a response frame and wakes the writer.
    pub fn send_response(&self, data: &[u8]) {
        v2::put_frame(&mut self.outbox.borrow_mut(), FrameType::Response, data);
        self.wake_writer.notify();
    }

    /// Queues an error frame and wakes the writer.
    pub fn send_error(&self, err: &ProtoError) {
        v2::put_error(&mut self.outbox.borrow_mut(), err);
        self.wake_writer.notify();
    }

    /// Queues a message frame (a delivery) and wakes the writer.
    pub fn send_message(&self, msg: &Message) {
        v2::put_message(&mut self.outbox.borrow_mut(), msg);
        let mut c = self.counters.get();
        c.message_count += 1;
        self.counters.set(c);
        self.wake_writer.notify();
    }

    /// Updates the counters.
    pub fn count(&self, f: impl FnOnce(&mut Counters)) {
        let mut c = self.counters.get();
        f(&mut c);
        self.counters.set(c);
    }

    /// Counts `n` messages published to `topic`.
    pub fn count_pub(&self, topic: &str, n: u64) {
        let mut counts = self.pub_counts.borrow_mut();
        match counts.iter_mut().find(|(t, _)| t == topic) {
            Some((_, count)) => *count += n,
            None => counts.push((topic.to_owned(), n)),
        }
    }

    /// Marks the connection closed and wakes the writer so it exits.
    pub fn close(&self) {
        self.closed.set(true);
        self.wake_writer.notify();
    }
}
