//! The registration thread against stand-in lookupds.
//!
//! Goal: show that what the broker says to a lookupd is upstream's conversation (magic,
//! IDENTIFY with the broker's identity, REGISTER of everything known, events forwarded in
//! order, PING), that it survives a lookupd going away, follows a changed address list, stops
//! on the flag, and pre-creates the channels lookupds know. Method: a stand-in lookupd decodes
//! with sluice-proto's own `LookupDecoder` (the one sluice-lookupd uses) and records every
//! command per connection; stand-in HTTP servers answer `/channels` and record
//! `/channel/create`. Waits poll with a deadline; the PING and backoff schedules are checked
//! through `Peer`, whose time is an argument, not by sleeping.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use sluice_proto::lookup::{put_error, put_reply, IdentifyInfo, LookupCommand, LookupDecoder};

use super::http_client::HttpClient;
use super::peer::{self, Peer, PING_INTERVAL, RETRY_MAX, RETRY_MIN};
use super::precreate::{self, Seed};
use super::*;

const WAIT: Duration = Duration::from_secs(10);

fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Accepts connections on a non-blocking listener until `stop`, handing each to `serve`.
fn accept_loop(
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    serve: impl Fn(TcpStream) + Send + Sync + 'static,
) {
    listener.set_nonblocking(true).unwrap();
    let serve = Arc::new(serve);
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    let serve = Arc::clone(&serve);
                    std::thread::spawn(move || serve(stream));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
}

#[derive(Default)]
struct FakeState {
    /// (connection number, command as upstream logs it).
    lines: Mutex<Vec<(usize, String)>>,
    /// Every accepted connection, so a test can cut them.
    streams: Mutex<Vec<TcpStream>>,
    /// Connections whose peer closed them (end of stream seen).
    ended: Mutex<Vec<usize>>,
    /// The data of the IDENTIFY reply.
    identify_reply: Mutex<Vec<u8>>,
    stop: Arc<AtomicBool>,
}

/// A lookupd stand-in on loopback.
struct FakeLookupd {
    address: String,
    state: Arc<FakeState>,
}

impl FakeLookupd {
    /// Answers IDENTIFY as sluice-lookupd does, announcing `http_port` as its HTTP port.
    fn start(http_port: u16) -> FakeLookupd {
        let info = IdentifyInfo {
            broadcast_address: "127.0.0.1".into(),
            hostname: "fake".into(),
            tcp_port: 1,
            http_port,
            version: "1.3.0".into(),
        };
        FakeLookupd::with_identify_reply(info.to_json())
    }

    fn with_identify_reply(reply: Vec<u8>) -> FakeLookupd {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let state = Arc::new(FakeState::default());
        *state.identify_reply.lock().unwrap() = reply;
        let served = Arc::clone(&state);
        accept_loop(listener, Arc::clone(&state.stop), move |stream| {
            serve_v1(&served, stream);
        });
        FakeLookupd { address, state }
    }

    fn lines(&self) -> Vec<(usize, String)> {
        self.state.lines.lock().unwrap().clone()
    }

    /// The commands of connection `n`, IDENTIFY's JSON left out.
    fn commands_of(&self, n: usize) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|(c, _)| *c == n)
            .map(|(_, line)| line)
            .collect()
    }

    fn connections(&self) -> usize {
        self.state.streams.lock().unwrap().len()
    }

    fn cut_all(&self) {
        for stream in self.state.streams.lock().unwrap().iter() {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    fn ended(&self, n: usize) -> bool {
        self.state.ended.lock().unwrap().contains(&n)
    }
}

impl Drop for FakeLookupd {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        self.cut_all();
    }
}

fn serve_v1(state: &FakeState, mut stream: TcpStream) {
    let n = {
        let mut streams = state.streams.lock().unwrap();
        streams.push(stream.try_clone().unwrap());
        streams.len() - 1
    };
    let mut decoder = LookupDecoder::new();
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = stream.read(&mut chunk).unwrap_or(0);
        if read == 0 {
            state.ended.lock().unwrap().push(n);
            return;
        }
        buf.extend_from_slice(&chunk[..read]);
        let mut out = BytesMut::new();
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(command)) => {
                    let line = match &command {
                        LookupCommand::Identify(body) => {
                            decoder.mark_identified();
                            let info = IdentifyInfo::from_json(body).unwrap();
                            format!("IDENTIFY {}", serde_json::to_string(&info).unwrap())
                        }
                        other => peer::describe(other),
                    };
                    state.lines.lock().unwrap().push((n, line));
                    if matches!(command, LookupCommand::Identify(_)) {
                        put_reply(&mut out, &state.identify_reply.lock().unwrap());
                    } else {
                        put_reply(&mut out, b"OK");
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    put_error(&mut out, &e);
                    let _ = stream.write_all(&out);
                    state.lines.lock().unwrap().push((n, format!("error {e}")));
                    return;
                }
            }
        }
        if stream.write_all(&out).is_err() {
            return;
        }
    }
}

/// An HTTP stand-in: records request lines, answers each with `reply(request_line)`.
struct FakeHttp {
    address: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl FakeHttp {
    fn start(reply: impl Fn(&str) -> (u16, String) + Send + Sync + 'static) -> FakeHttp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let recorded = Arc::clone(&requests);
        accept_loop(listener, Arc::clone(&stop), move |mut stream| {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let line = head.lines().next().unwrap_or_default().to_owned();
            let (status, body) = reply(&line);
            recorded.lock().unwrap().push(line);
            let response = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        });
        FakeHttp {
            address,
            requests,
            stop,
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeHttp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn identity() -> IdentifyInfo {
    IdentifyInfo {
        broadcast_address: "127.0.0.1".into(),
        hostname: "test-host".into(),
        tcp_port: 4150,
        http_port: 4151,
        version: "1.3.0".into(),
    }
}

fn client() -> HttpClient {
    HttpClient {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
    }
}

/// The registration loop in a thread, as `spawn` runs it.
struct Running {
    stop: Arc<AtomicBool>,
    addresses: Arc<Mutex<Vec<String>>>,
    events: Events,
    handle: Option<JoinHandle<()>>,
}

impl Running {
    fn start(addresses: &[&str], broker_http: SocketAddr, events: Events) -> Running {
        let stop = Arc::new(AtomicBool::new(false));
        let addresses = Arc::new(Mutex::new(
            addresses.iter().map(|a| (*a).to_owned()).collect(),
        ));
        let rx = events.take_receiver().unwrap();
        let settings = Settings {
            identity: identity(),
            broker_http,
            client: client(),
        };
        let (s, a) = (Arc::clone(&stop), Arc::clone(&addresses));
        let handle = std::thread::spawn(move || run(&settings, &s, &a, &rx));
        Running {
            stop,
            addresses,
            events,
            handle: Some(handle),
        }
    }

    fn set_addresses(&self, addresses: &[&str]) {
        *self.addresses.lock().unwrap() = addresses.iter().map(|a| (*a).to_owned()).collect();
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            eventually("the lookupd thread to stop", || handle.is_finished());
            handle.join().unwrap();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn unused_http() -> SocketAddr {
    // Nothing listens here once the listener is dropped: pre-creation attempts just fail.
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn identify_line() -> String {
    format!("IDENTIFY {}", serde_json::to_string(&identity()).unwrap())
}

#[test]
fn identifies_then_registers_everything_known() {
    let lookupd = FakeLookupd::start(1);
    let events = Events::new();
    events.channel_created("t", "c");
    events.topic_loaded("u");
    let _running = Running::start(&[&lookupd.address], unused_http(), events);
    eventually("registrations", || lookupd.commands_of(0).len() >= 4);
    assert_eq!(
        lookupd.commands_of(0),
        [
            identify_line(),
            "REGISTER t".into(),
            "REGISTER t c".into(),
            "REGISTER u".into()
        ]
    );
}

#[test]
fn forwards_events_in_order_to_every_lookupd() {
    let (a, b) = (FakeLookupd::start(1), FakeLookupd::start(1));
    let running = Running::start(&[&a.address, &b.address], unused_http(), Events::new());
    eventually("both identified", || {
        a.commands_of(0).len() == 1 && b.commands_of(0).len() == 1
    });
    let events = running.events.clone();
    events.topic_loaded("t");
    events.channel_created("t", "c1");
    events.channel_created("t", "c2#ephemeral");
    events.channel_deleted("t", "c1");
    events.channel_deleted("t", "never-created");
    events.topic_deleted("t");
    let expected = [
        identify_line(),
        "REGISTER t".into(),
        "REGISTER t c1".into(),
        "REGISTER t c2#ephemeral".into(),
        "UNREGISTER t c1".into(),
        "UNREGISTER t c2#ephemeral".into(),
        "UNREGISTER t".into(),
    ];
    for lookupd in [&a, &b] {
        eventually("every event", || {
            lookupd.commands_of(0).len() >= expected.len()
        });
        assert_eq!(lookupd.commands_of(0), expected);
        assert_eq!(lookupd.connections(), 1);
    }
}

#[test]
fn registers_again_after_the_lookupd_drops_the_connection() {
    let lookupd = FakeLookupd::start(1);
    let running = Running::start(&[&lookupd.address], unused_http(), Events::new());
    running.events.channel_created("t", "c");
    eventually("first registration", || lookupd.commands_of(0).len() == 3);
    lookupd.cut_all();
    eventually("a second connection", || lookupd.commands_of(1).len() == 3);
    assert_eq!(
        lookupd.commands_of(1),
        [identify_line(), "REGISTER t".into(), "REGISTER t c".into()]
    );
}

#[test]
fn follows_a_changed_address_list() {
    let (a, b) = (FakeLookupd::start(1), FakeLookupd::start(1));
    let running = Running::start(&[&a.address], unused_http(), Events::new());
    running.events.topic_loaded("t");
    eventually("registration with a", || a.commands_of(0).len() == 2);
    running.set_addresses(&[&b.address]);
    eventually("registration with b", || b.commands_of(0).len() == 2);
    assert_eq!(b.commands_of(0), [identify_line(), "REGISTER t".to_owned()]);
    eventually("a's connection closed", || a.ended(0));
    running.events.topic_loaded("u");
    eventually("u registered with b", || b.commands_of(0).len() == 3);
    assert_eq!(a.lines().len(), 2, "a removed lookupd hears nothing more");
    running.set_addresses(&[]);
    eventually("b's connection closed", || b.ended(0));
}

#[test]
fn an_unreachable_lookupd_does_not_hold_up_the_others() {
    let good = FakeLookupd::start(1);
    let closed_port = unused_http().to_string();
    let running = Running::start(
        &[&closed_port, "not an address", &good.address],
        unused_http(),
        Events::new(),
    );
    running.events.topic_loaded("t");
    eventually("registration with the good one", || {
        good.commands_of(0).len() == 2
    });
}

#[test]
fn stops_when_the_flag_is_set_and_closes_its_connections() {
    let lookupd = FakeLookupd::start(1);
    let mut running = Running::start(&[&lookupd.address], unused_http(), Events::new());
    eventually("identified", || lookupd.commands_of(0).len() == 1);
    running.stop();
    eventually("connection closed", || lookupd.ended(0));
    // The thread is gone: events are dropped, not a panic.
    running.events.topic_created("late");
}

#[test]
fn precreates_the_channels_the_lookupds_know() {
    let lookupd_http = FakeHttp::start(|line| {
        if line.starts_with("GET /channels?topic=t%23ephemeral ")
            || line.starts_with("GET /channels?topic=t ")
        {
            (200, r#"{"channels":["a","b#ephemeral","c"]}"#.into())
        } else {
            (404, r#"{"message":"NOT_FOUND"}"#.into())
        }
    });
    let broker_http = FakeHttp::start(|_| (200, String::new()));
    let lookupd = FakeLookupd::start(lookupd_http.address.port());
    let running = Running::start(&[&lookupd.address], broker_http.address, Events::new());
    eventually("identified", || lookupd.commands_of(0).len() == 1);
    running.events.topic_created("t");
    eventually("two channels created", || broker_http.requests().len() == 2);
    assert_eq!(
        broker_http.requests(),
        [
            "POST /channel/create?topic=t&channel=a HTTP/1.1",
            "POST /channel/create?topic=t&channel=c HTTP/1.1"
        ]
    );
    assert_eq!(lookupd_http.requests(), ["GET /channels?topic=t HTTP/1.1"]);
    // A restored topic is registered but the lookupds are not asked.
    running.events.topic_loaded("t2");
    eventually("t2 registered", || lookupd.commands_of(0).len() == 3);
    assert_eq!(lookupd_http.requests().len(), 1);
}

#[test]
fn the_channel_union_skips_failures_and_ephemeral_names() {
    let first = FakeHttp::start(|_| (200, r#"{"channels":["x","y#ephemeral"]}"#.into()));
    let second = FakeHttp::start(|_| (200, r#"{"channels":["w","x"]}"#.into()));
    let broken = FakeHttp::start(|_| (500, "oops".into()));
    let garbage = FakeHttp::start(|_| (200, "not json".into()));
    let seed = Seed {
        topic: "t#ephemeral".into(),
        lookupds: vec![
            first.address.to_string(),
            broken.address.to_string(),
            garbage.address.to_string(),
            unused_http().to_string(),
            second.address.to_string(),
        ],
    };
    let channels = precreate::lookupd_channels(&client(), &seed).unwrap();
    assert_eq!(channels.into_iter().collect::<Vec<_>>(), ["w", "x"]);
    assert_eq!(
        first.requests(),
        ["GET /channels?topic=t%23ephemeral HTTP/1.1"]
    );
    let all_bad = Seed {
        topic: "t".into(),
        lookupds: vec![broken.address.to_string(), garbage.address.to_string()],
    };
    let err = precreate::lookupd_channels(&client(), &all_bad).unwrap_err();
    assert!(err.contains("bad JSON"), "{err}");
}

#[test]
fn a_topic_deleted_meanwhile_gets_no_channels() {
    // The lookupd's answer about "gone" is held back until the deletion has reached the
    // lookupd (so it has reached the mirror first), then the worker must not create "a".
    let released = Arc::new(AtomicBool::new(false));
    let gate = Arc::clone(&released);
    let lookupd_http = FakeHttp::start(move |line| {
        if line.contains("topic=gone") {
            let deadline = Instant::now() + WAIT;
            while !gate.load(Ordering::Relaxed) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        (200, r#"{"channels":["a"]}"#.into())
    });
    let broker_http = FakeHttp::start(|_| (200, String::new()));
    let lookupd = FakeLookupd::start(lookupd_http.address.port());
    let running = Running::start(&[&lookupd.address], broker_http.address, Events::new());
    eventually("identified", || lookupd.commands_of(0).len() == 1);
    running.events.topic_created("gone");
    running.events.topic_deleted("gone");
    eventually("gone unregistered", || {
        lookupd
            .commands_of(0)
            .contains(&"UNREGISTER gone".to_owned())
    });
    released.store(true, Ordering::Relaxed);
    running.events.topic_created("kept");
    eventually("kept's channel created", || {
        broker_http.requests().len() == 1
    });
    assert_eq!(
        broker_http.requests(),
        ["POST /channel/create?topic=kept&channel=a HTTP/1.1"]
    );
    assert_eq!(lookupd_http.requests().len(), 2);
}

#[test]
fn a_peer_pings_on_schedule() {
    let lookupd = FakeLookupd::start(1);
    let identify = LookupCommand::identify(&identity());
    let start = Instant::now();
    let mut peer = Peer::new(&lookupd.address, start);
    peer.poll(start, &identify, Vec::new);
    assert!(peer.is_connected());
    assert_eq!(peer.next_deadline(), start + PING_INTERVAL);
    peer.poll(
        start + PING_INTERVAL - Duration::from_millis(1),
        &identify,
        Vec::new,
    );
    peer.poll(start + PING_INTERVAL, &identify, Vec::new);
    assert_eq!(lookupd.commands_of(0), [identify_line(), "PING".into()]);
    assert_eq!(peer.next_deadline(), start + 2 * PING_INTERVAL);
    assert_eq!(peer.http_address().as_deref(), Some("127.0.0.1:1"));
}

#[test]
fn a_refused_identify_backs_off_up_to_the_cap() {
    let lookupd = FakeLookupd::with_identify_reply(b"E_INVALID client must IDENTIFY".to_vec());
    let identify = LookupCommand::identify(&identity());
    let mut now = Instant::now();
    let mut peer = Peer::new(&lookupd.address, now);
    let mut delay = RETRY_MIN;
    for attempt in 0..8 {
        peer.poll(now, &identify, || {
            panic!("no registration without IDENTIFY")
        });
        assert!(!peer.is_connected());
        assert_eq!(peer.next_deadline(), now + delay, "attempt {attempt}");
        now = peer.next_deadline();
        delay = (delay * 2).min(RETRY_MAX);
    }
    assert_eq!(delay, RETRY_MAX);
    assert_eq!(lookupd.connections(), 8);
    assert!(peer.http_address().is_none());
}

#[test]
fn bad_replies_close_the_connection_without_panicking() {
    let cases: [&[u8]; 3] = [b"not json at all", b"{\"broadcast_address\": 7}", b""];
    for reply in cases {
        let lookupd = FakeLookupd::with_identify_reply(reply.to_vec());
        let now = Instant::now();
        let mut peer = Peer::new(&lookupd.address, now);
        peer.poll(now, &LookupCommand::identify(&identity()), Vec::new);
        assert!(!peer.is_connected(), "{reply:?}");
    }
    // A lookupd announcing a 4 GB reply.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = [0u8; 256];
        let _ = stream.read(&mut buf).unwrap();
        stream.write_all(&[0xff, 0xff, 0xff, 0xff, b'x']).unwrap();
        let _ = stream.read(&mut buf);
    });
    let now = Instant::now();
    let mut peer = Peer::new(&address, now);
    peer.poll(now, &LookupCommand::identify(&identity()), Vec::new);
    assert!(!peer.is_connected());
    drop(peer);
    server.join().unwrap();
}

#[test]
fn settings_follow_upstreams_identify_fields() {
    let mut opts = Options::defaults();
    opts.broadcast_address = "broker.example".into();
    let bound = Bound {
        tcp: "0.0.0.0:4150".parse().unwrap(),
        http: "[::]:4151".parse().unwrap(),
    };
    let settings = Settings::new(&opts, bound);
    assert_eq!(settings.identity.broadcast_address, "broker.example");
    assert_eq!(settings.identity.tcp_port, 4150);
    assert_eq!(settings.identity.http_port, 4151);
    assert_eq!(settings.identity.version, crate::options::NSQ_VERSION);
    assert_eq!(settings.identity.hostname, crate::host::hostname());
    assert_eq!(settings.broker_http, "[::1]:4151".parse().unwrap());
    opts.broadcast_tcp_port = 14150;
    opts.broadcast_http_port = 14151;
    let settings = Settings::new(&opts, bound);
    assert_eq!(
        (settings.identity.tcp_port, settings.identity.http_port),
        (14150, 14151)
    );
}

#[test]
fn events_before_and_after_the_thread_never_fail() {
    let events = Events::new();
    events.topic_created("t");
    let rx = events.take_receiver().unwrap();
    assert!(events.take_receiver().is_none(), "taken once");
    assert_eq!(
        rx.try_recv().unwrap(),
        Event::TopicCreated {
            topic: "t".into(),
            ask_lookupds: true
        }
    );
    drop(rx);
    events.channel_deleted("t", "c");
}
