//! `sluice to-nsq` between two real `sluiced`: messages are relayed to the destination topic,
//! the JSON filter passes only the required field/value and keeps only whitelisted fields
//! (what it rejects is finished, not relayed); while the destination is unreachable the
//! messages are requeued and arrive once it is back; SIGTERM drains.

mod apps_support;

use std::collections::BTreeSet;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use apps_support::{wait_for, Broker, Running};

#[test]
fn json_messages_are_filtered_and_relayed_to_the_destination_topic() {
    let (source, destination) = (Broker::start(), Broker::start());
    let run = Running::sluice(&[
        "to-nsq",
        "--topic=raw",
        &format!("--nsqd-tcp-address={}", source.tcp),
        &format!("--destination-nsqd-tcp-address={}", destination.tcp),
        "--destination-topic=clicks",
        "--require-json-field=kind",
        "--require-json-value=click",
        "--whitelist-json-field=kind",
        "--whitelist-json-field=n",
    ]);
    let mut published = Vec::new();
    for i in 0..40 {
        published.push(match i % 4 {
            0 => format!(r#"{{"kind":"view","n":{i}}}"#),
            1 => "not json".to_owned(),
            _ => format!(r#"{{"kind":"click","n":{i},"secret":"x"}}"#),
        });
    }
    source.publish("raw", &published);
    wait_for("the source channel to empty", || {
        source
            .channel("raw", "nsq_to_nsq")
            .is_some_and(|c| c.depth == 0 && c.in_flight_count == 0)
    });
    run.signal("TERM");
    let out = run.wait();
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    destination.create_channel("clicks", "check");
    let relayed: BTreeSet<String> = destination
        .drain("clicks", "check")
        .into_iter()
        .map(|b| String::from_utf8(b).unwrap())
        .collect();
    let expected: BTreeSet<String> = (0..40)
        .filter(|i| i % 4 >= 2)
        .map(|i| format!(r#"{{"kind":"click","n":{i}}}"#))
        .collect();
    assert_eq!(relayed, expected);
}

/// A TCP forwarder that can refuse connections and cut the ones it has.
struct Switch {
    addr: String,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Switch {
    fn start(target: String) -> Switch {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let up = Arc::new(AtomicBool::new(true));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (accept_up, accept_conns) = (up.clone(), conns.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                if !accept_up.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let mut list = accept_conns.lock().unwrap();
                list.push(client.try_clone().unwrap());
                list.push(server.try_clone().unwrap());
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        Switch { addr, up, conns }
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        for stream in self.conns.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Both);
    });
}

#[test]
fn messages_wait_in_the_source_while_the_destination_is_down() {
    let (source, destination) = (Broker::start(), Broker::start());
    destination.create_channel("copy", "check");
    let switch = Switch::start(destination.tcp.clone());
    let run = Running::sluice(&[
        "to-nsq",
        "--topic=copy",
        &format!("--nsqd-tcp-address={}", source.tcp),
        &format!("--destination-nsqd-tcp-address={}", switch.addr),
        "--consumer-opt=default_requeue_delay,50ms",
        "--consumer-opt=max_requeue_delay,200ms",
        "--mode=round-robin",
    ]);
    source.publish("copy", &["warm-up"]);
    wait_for("the warm-up relayed", || {
        destination.topic_count("copy") == 1
    });
    switch.down();
    let published: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
    source.publish("copy", &published);
    wait_for("requeues while down", || {
        source
            .channel("copy", "nsq_to_nsq")
            .is_some_and(|c| c.requeue_count >= 5)
    });
    assert_eq!(destination.topic_count("copy"), 1);
    switch.up();
    wait_for("everything relayed", || {
        source
            .channel("copy", "nsq_to_nsq")
            .is_some_and(|c| c.depth == 0 && c.in_flight_count == 0 && c.deferred_count == 0)
    });
    run.signal("TERM");
    let out = run.wait();
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let relayed: BTreeSet<Vec<u8>> = destination.drain("copy", "check").into_iter().collect();
    for body in &published {
        assert!(relayed.contains(body.as_bytes()), "{body} lost");
    }
}
