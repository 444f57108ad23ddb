//! Registration with the lookupds (`--lookupd-tcp-address`), off the hot path.
//!
//! Mirrors upstream `nsqd/lookup.go` (`lookupLoop`, `connectCallback`) and
//! `nsqd/lookup_peer.go`. One std thread, `lookupd`, owns everything here:
//!
//! - the shards report topic and channel creation and deletion through [`Events`] (a cheap,
//!   non-blocking, never-failing send on an unbounded channel: these only happen on creation
//!   and deletion, never per message);
//! - the thread keeps its own [`Mirror`] of the names, and one [`Peer`] (a blocking TCP
//!   connection with timeouts) per lookupd: `"  V1"`, IDENTIFY, REGISTER of every topic and
//!   channel, a PING every 15 s, REGISTER/UNREGISTER as events arrive, reconnection with a
//!   capped backoff;
//! - about once a second it re-reads `Control::lookupd_tcp_addresses` (which
//!   `PUT /config/nsqlookupd_tcp_addresses` rewrites) and connects new lookupds and drops
//!   removed ones, as upstream's `optsNotificationChan` branch does;
//! - a second thread, `lookupd-channels` ([`precreate`]), asks the lookupds which channels a new
//!   topic has and creates them through this broker's HTTP API.
//!
//! Both threads stop when `Control::stop` is set; dropping a connection is what tells a lookupd
//! to forget this broker (UNREGISTER is not sent, as upstream does not).

pub mod http_client;
pub mod mirror;
pub mod peer;
pub mod precreate;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender};
use sluice_proto::lookup::{IdentifyInfo, LookupCommand};

use crate::options::Options;
use crate::runtime::{Bound, Control};
use http_client::HttpClient;
use mirror::Mirror;
use peer::Peer;
use precreate::Seed;

/// How often the thread re-reads the lookupd address list and checks its connections.
pub const ADDRESS_POLL: Duration = Duration::from_secs(1);
/// The longest the threads go without looking at the stop flag.
pub const STOP_POLL: Duration = Duration::from_millis(100);
/// The most events turned into one pipelined exchange per lookupd.
pub const EVENT_BATCH_MAX: usize = 1024;

/// What a shard reports to the registration thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A topic now exists. `ask_lookupds` is false for topics restored at start-up, which
    /// upstream does not pre-create channels for (`GetTopic` while `isLoading`).
    TopicCreated {
        /// Its name.
        topic: String,
        /// Whether to pre-create the channels the lookupds know for it.
        ask_lookupds: bool,
    },
    /// A topic was deleted (with its channels).
    TopicDeleted {
        /// Its name.
        topic: String,
    },
    /// A channel now exists (its topic too).
    ChannelCreated {
        /// The topic.
        topic: String,
        /// The channel.
        channel: String,
    },
    /// A channel was deleted.
    ChannelDeleted {
        /// The topic.
        topic: String,
        /// The channel.
        channel: String,
    },
}

/// The shards' side of the registration thread: every method is a non-blocking send that
/// never fails visibly (once the thread is gone, events are dropped).
#[derive(Debug, Clone)]
pub struct Events {
    tx: Sender<Event>,
    /// The receiving end, until the registration thread takes it.
    rx: Arc<Mutex<Option<Receiver<Event>>>>,
}

impl Default for Events {
    fn default() -> Events {
        Events::new()
    }
}

impl Events {
    /// A fresh event channel.
    pub fn new() -> Events {
        let (tx, rx) = crossbeam::channel::unbounded();
        Events {
            tx,
            rx: Arc::new(Mutex::new(Some(rx))),
        }
    }

    /// A topic was created at run time: register it, and pre-create the channels the lookupds
    /// know for it.
    pub fn topic_created(&self, topic: &str) {
        self.send(Event::TopicCreated {
            topic: topic.to_owned(),
            ask_lookupds: true,
        });
    }

    /// A topic was restored from disk at start-up: register it, ask the lookupds nothing.
    pub fn topic_loaded(&self, topic: &str) {
        self.send(Event::TopicCreated {
            topic: topic.to_owned(),
            ask_lookupds: false,
        });
    }

    /// A topic was deleted.
    pub fn topic_deleted(&self, topic: &str) {
        self.send(Event::TopicDeleted {
            topic: topic.to_owned(),
        });
    }

    /// A channel was created (at run time or restored).
    pub fn channel_created(&self, topic: &str, channel: &str) {
        self.send(Event::ChannelCreated {
            topic: topic.to_owned(),
            channel: channel.to_owned(),
        });
    }

    /// A channel was deleted (including an `#ephemeral` one that lost its last consumer).
    pub fn channel_deleted(&self, topic: &str, channel: &str) {
        self.send(Event::ChannelDeleted {
            topic: topic.to_owned(),
            channel: channel.to_owned(),
        });
    }

    fn send(&self, event: Event) {
        // An error means the registration thread has ended (the broker is stopping).
        let _ = self.tx.send(event);
    }

    /// The receiving end, once: the registration thread takes it when it starts.
    pub fn take_receiver(&self) -> Option<Receiver<Event>> {
        self.rx.lock().ok()?.take()
    }
}

/// What the thread needs to know about this broker.
#[derive(Debug, Clone)]
pub struct Settings {
    /// What IDENTIFY tells each lookupd.
    pub identity: IdentifyInfo,
    /// Where this broker's HTTP API answers (for pre-creating channels).
    pub broker_http: SocketAddr,
    /// The HTTP client's timeouts.
    pub client: HttpClient,
}

impl Settings {
    /// Upstream's IDENTIFY fields (`lookup.go` `connectCallback`): `--broadcast-address`, the
    /// host name, and `--broadcast-tcp-port`/`--broadcast-http-port` or else the bound ports.
    pub fn new(opts: &Options, bound: Bound) -> Settings {
        let port = |configured: u16, bound: SocketAddr| {
            if configured == 0 {
                bound.port()
            } else {
                configured
            }
        };
        Settings {
            identity: IdentifyInfo {
                broadcast_address: opts.broadcast_address.clone(),
                hostname: crate::host::hostname(),
                tcp_port: port(opts.broadcast_tcp_port, bound.tcp),
                http_port: port(opts.broadcast_http_port, bound.http),
                version: crate::options::NSQ_VERSION.to_owned(),
            },
            broker_http: reachable(bound.http),
            client: HttpClient {
                connect_timeout: opts.security.http_client_connect_timeout,
                request_timeout: opts.security.http_client_request_timeout,
            },
        }
    }
}

/// A wildcard listen address is reached through loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

/// Starts the `lookupd` thread. It waits until the shards are bound, then runs until
/// `control.stop` is set.
///
/// # Errors
/// The thread cannot be started, or was started already (the event receiver is taken).
pub fn spawn(
    opts: Arc<Options>,
    control: Arc<Control>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let events = control
        .events
        .take_receiver()
        .ok_or_else(|| std::io::Error::other("the lookupd thread is already running"))?;
    std::thread::Builder::new()
        .name("lookupd".into())
        .spawn(move || {
            let Some(bound) = wait_bound(&control) else {
                return;
            };
            let settings = Settings::new(&opts, bound);
            run(
                &settings,
                &control.stop,
                &control.lookupd_tcp_addresses,
                &events,
            );
        })
}

fn wait_bound(control: &Control) -> Option<Bound> {
    loop {
        if control.stop.load(Ordering::Relaxed) {
            return None;
        }
        if let Some(bound) = control.bound() {
            return Some(bound);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The registration loop and its channel pre-creation worker, until `stop` is set.
pub fn run(
    settings: &Settings,
    stop: &AtomicBool,
    addresses: &Mutex<Vec<String>>,
    events: &Receiver<Event>,
) {
    let mirror = Mutex::new(Mirror::new());
    let (seed_tx, seed_rx) = crossbeam::channel::unbounded::<Seed>();
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("lookupd-channels".into())
            .spawn_scoped(scope, || {
                precreate::run(
                    &settings.client,
                    settings.broker_http,
                    stop,
                    &seed_rx,
                    &mirror,
                );
            });
        if let Err(e) = worker {
            tracing::error!("LOOKUP: cannot start the channel pre-creation thread - {e}");
        }
        let mut registrar = Registrar::new(settings, &mirror, seed_tx);
        registrar.run(stop, addresses, events);
    });
    tracing::info!("LOOKUP: closing");
}

/// The `lookupd` thread's state: the peers and what to tell them.
struct Registrar<'a> {
    mirror: &'a Mutex<Mirror>,
    identify: LookupCommand,
    peers: Vec<Peer>,
    seeds: Sender<Seed>,
}

impl<'a> Registrar<'a> {
    fn new(settings: &Settings, mirror: &'a Mutex<Mirror>, seeds: Sender<Seed>) -> Registrar<'a> {
        Registrar {
            mirror,
            identify: LookupCommand::identify(&settings.identity),
            peers: Vec::new(),
            seeds,
        }
    }

    fn run(&mut self, stop: &AtomicBool, addresses: &Mutex<Vec<String>>, events: &Receiver<Event>) {
        let mut next_check = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= next_check {
                let wanted = addresses.lock().map(|a| a.clone()).unwrap_or_default();
                self.follow_addresses(&wanted, now);
                for peer in &mut self.peers {
                    peer.check_closed(now);
                }
                next_check = now + ADDRESS_POLL;
            }
            let mirror = self.mirror;
            for peer in &mut self.peers {
                peer.poll(now, &self.identify, || register_all(mirror));
            }
            let wake = self
                .peers
                .iter()
                .map(Peer::next_deadline)
                .fold(next_check.min(now + STOP_POLL), Instant::min);
            if let Ok(event) = events.recv_deadline(wake) {
                self.handle_events(event, events);
            }
        }
    }

    /// Connects lookupds new to `wanted` and drops those no longer in it.
    fn follow_addresses(&mut self, wanted: &[String], now: Instant) {
        self.peers.retain(|peer| {
            let keep = wanted.iter().any(|a| a == peer.address());
            if !keep {
                tracing::info!("LOOKUP({}): removing peer", peer.address());
            }
            keep
        });
        for address in wanted {
            if !self.peers.iter().any(|p| p.address() == address) {
                tracing::info!("LOOKUP({address}): adding peer");
                self.peers.push(Peer::new(address, now));
            }
        }
    }

    /// Applies `first` and whatever else is queued (up to [`EVENT_BATCH_MAX`]) to the mirror,
    /// then sends the resulting commands to every connected lookupd in one exchange.
    fn handle_events(&mut self, first: Event, events: &Receiver<Event>) {
        let mut commands = Vec::new();
        let mut next = Some(first);
        let mut handled = 0;
        while let Some(event) = next {
            if let Ok(mut mirror) = self.mirror.lock() {
                commands.extend(mirror.handle_event(&event));
            }
            if let Event::TopicCreated {
                topic,
                ask_lookupds: true,
            } = event
            {
                self.seed(topic);
            }
            handled += 1;
            next = if handled < EVENT_BATCH_MAX {
                events.try_recv().ok()
            } else {
                None
            };
        }
        if commands.is_empty() {
            return;
        }
        let now = Instant::now();
        for peer in &mut self.peers {
            if peer.is_connected() {
                for command in &commands {
                    tracing::info!("LOOKUPD({}): {}", peer.address(), peer::describe(command));
                }
                peer.send(now, &commands);
            }
        }
    }

    fn seed(&self, topic: String) {
        let lookupds: Vec<String> = self.peers.iter().filter_map(Peer::http_address).collect();
        if lookupds.is_empty() {
            if !self.peers.is_empty() {
                tracing::error!(
                    "no available nsqlookupd to query for channels to pre-create for topic {topic}"
                );
            }
            return;
        }
        let _ = self.seeds.send(Seed { topic, lookupds });
    }
}

fn register_all(mirror: &Mutex<Mirror>) -> Vec<LookupCommand> {
    mirror.lock().map(|m| m.register_all()).unwrap_or_default()
}
