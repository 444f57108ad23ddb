//! `sluice to-http` against the real `sluiced` and a small HTTP server in the test: every
//! message is POSTed (with the content type, custom headers and user agent), a 500 makes the
//! message come back and be sent again until it succeeds (nothing is dropped), GET puts the
//! query-escaped body in the URL, round-robin spreads over endpoints, and SIGTERM drains.

mod apps_support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apps_support::{wait_for, Broker, Running};

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    target: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    status: u16,
}

/// Decides whether a request gets a 500, given the requests before it.
type Fail = fn(&Request, &[Request]) -> bool;

/// A keep-alive HTTP/1.1 server on a loopback port, answering after `delay`.
struct Server {
    addr: String,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    fn start(fail: Fail) -> Server {
        Server::start_slow(fail, Duration::ZERO)
    }

    fn start_slow(fail: Fail, delay: Duration) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let server_seen = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let seen = server_seen.clone();
                std::thread::spawn(move || serve(stream, &seen, fail, delay));
            }
        });
        Server { addr, seen }
    }

    fn requests(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }

    /// Bodies answered 200, with how many times each was.
    fn delivered(&self) -> BTreeMap<Vec<u8>, usize> {
        let mut out = BTreeMap::new();
        for r in self.requests().into_iter().filter(|r| r.status == 200) {
            *out.entry(r.body).or_insert(0) += 1;
        }
        out
    }
}

fn serve(stream: TcpStream, seen: &Mutex<Vec<Request>>, fail: Fail, delay: Duration) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap().to_owned(),
            parts.next().unwrap().to_owned(),
        );
        let mut headers = BTreeMap::new();
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap();
            headers.insert(name.to_ascii_lowercase(), value.trim().to_owned());
        }
        let length: usize = headers
            .get("content-length")
            .map_or(0, |l| l.parse().unwrap());
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let mut request = Request {
            method,
            target,
            headers,
            body,
            status: 200,
        };
        std::thread::sleep(delay);
        let mut seen = seen.lock().unwrap();
        if fail(&request, &seen) {
            request.status = 500;
        }
        let status = request.status;
        seen.push(request);
        drop(seen);
        let reply = match status {
            200 => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK".to_owned(),
            _ => "HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nnope\r\n0\r\n\r\n".to_owned(),
        };
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

#[test]
fn every_message_is_posted_and_a_500_is_retried_until_it_succeeds() {
    let broker = Broker::start();
    // Each body's first attempt fails; its retry succeeds.
    let server = Server::start(|request, before| before.iter().all(|r| r.body != request.body));
    let run = Running::sluice(&[
        "to-http",
        "--topic=events",
        &format!("--nsqd-tcp-address={}", broker.tcp),
        &format!("--post=http://{}/ingest?src=nsq", server.addr),
        "--content-type=text/plain",
        "--header=X-Team: storage",
        "--consumer-opt=default_requeue_delay,20ms",
        "-n=4",
        "--status-every=10",
    ]);
    let published: Vec<String> = (0..30).map(|i| format!("e{i}")).collect();
    broker.publish("events", &published);
    wait_for("30 bodies delivered", || server.delivered().len() == 30);
    run.signal("TERM");
    let out = run.wait();
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("got status code 500"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("[aggregate]: finished 10 requests - 99th: "),
        "{}",
        out.stderr
    );
    let requests = server.requests();
    assert_eq!(requests.iter().filter(|r| r.status == 500).count(), 30);
    let first = &requests[0];
    assert_eq!(first.method, "POST");
    assert_eq!(first.target, "/ingest?src=nsq");
    assert_eq!(first.headers["content-type"], "text/plain");
    assert_eq!(first.headers["x-team"], "storage");
    assert!(first.headers["user-agent"].starts_with("nsq_to_http/"));
    let delivered = server.delivered();
    for body in &published {
        assert_eq!(delivered.get(body.as_bytes()), Some(&1), "{body}");
    }
    let channel = broker.channel("events", "nsq_to_http").unwrap();
    assert_eq!(
        (
            channel.depth,
            channel.in_flight_count,
            channel.deferred_count
        ),
        (0, 0, 0)
    );
    assert_eq!(channel.requeue_count, 30);
}

#[test]
fn sigterm_waits_for_requests_in_progress_and_leaves_the_rest_queued() {
    let broker = Broker::start();
    let server = Server::start_slow(|_, _| false, Duration::from_millis(300));
    let run = Running::sluice(&[
        "to-http",
        "--topic=slow",
        &format!("--nsqd-tcp-address={}", broker.tcp),
        &format!("--post=http://{}/", server.addr),
        "-n=3",
        "--max-in-flight=3",
    ]);
    let published: Vec<String> = (0..20).map(|i| format!("s{i}")).collect();
    broker.publish("slow", &published);
    wait_for("requests in progress", || {
        broker
            .channel("slow", "nsq_to_http")
            .is_some_and(|c| c.in_flight_count == 3)
    });
    run.signal("TERM");
    let out = run.wait();
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    // Every request that was sent got its answer and was finished; the rest are still queued.
    let delivered = server.delivered();
    assert!(!delivered.is_empty());
    let left = broker.drain("slow", "nsq_to_http");
    for body in &left {
        assert!(
            !delivered.contains_key(body),
            "delivered and still queued: {body:?}"
        );
    }
    assert_eq!(delivered.len() + left.len(), published.len());
}

#[test]
fn get_substitutes_the_escaped_body_and_round_robin_spreads() {
    let broker = Broker::start();
    let (a, b) = (Server::start(|_, _| false), Server::start(|_, _| false));
    let run = Running::sluice(&[
        "to-http",
        "--topic=clicks",
        &format!("--nsqd-tcp-address={}", broker.tcp),
        &format!("--get=http://{}/hit?m=%s", a.addr),
        &format!("--get=http://{}/hit?m=%s", b.addr),
        "--mode=round-robin",
        "-n=1",
    ]);
    broker.publish("clicks", &["a b&c", "x", "y", "z"]);
    wait_for("four GETs", || a.requests().len() + b.requests().len() == 4);
    run.signal("INT");
    let out = run.wait();
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert_eq!((a.requests().len(), b.requests().len()), (2, 2));
    let targets: Vec<String> = a
        .requests()
        .into_iter()
        .chain(b.requests())
        .map(|r| r.target)
        .collect();
    assert!(
        targets.contains(&"/hit?m=a+b%26c".to_owned()),
        "{targets:?}"
    );
    assert!(a
        .requests()
        .iter()
        .all(|r| r.method == "GET" && r.body.is_empty()));
}
