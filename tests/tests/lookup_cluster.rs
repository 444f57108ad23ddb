//! Brokers registering with lookupds: two `sluiced` (`--cores=2`) and two `sluice-lookupd` as
//! separate processes on loopback.
//!
//! Goal: show that sluiced's registration (broker/src/lookupd/) gives NSQ's discovery behaviour
//! end to end: every broker is a node of every lookupd it is configured with, its topics and
//! channels are found there, a killed broker disappears, a tombstone hides a producer for its
//! lifetime, `PUT /config/nsqlookupd_tcp_addresses` moves a broker between lookupds, a new topic
//! gets the channels the lookupds already know, a pynsq Reader that knows only the lookupds
//! consumes everything published to both brokers, and bad lookupd addresses never take a broker
//! down. Method: the real binaries (found by `sluice_tests::bins`, built by
//! `cargo build --bins`), driven over their HTTP APIs with the harness's raw HTTP client. Every
//! wait polls with a deadline and reports the daemons' last log lines when it expires; the only
//! time measurement is a lower bound (a tombstone must not end early).

use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_tests::daemon::Daemon;
use sluice_tests::http;

/// How long any awaited state may take to appear.
const WAIT: Duration = Duration::from_secs(20);
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

fn lookupd(extra: &[&str]) -> Daemon {
    let mut args = vec!["--broadcast-address=127.0.0.1".to_owned()];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    Daemon::start("sluice-lookupd", &args).unwrap()
}

fn broker(lookupds: &[&Daemon]) -> Daemon {
    let addresses: Vec<String> = lookupds.iter().map(|l| l.tcp_addr().to_string()).collect();
    broker_with(&addresses)
}

fn broker_with(lookupd_tcp_addresses: &[String]) -> Daemon {
    let mut args = vec![
        "--cores=2".to_owned(),
        "--broadcast-address=127.0.0.1".to_owned(),
    ];
    for address in lookupd_tcp_addresses {
        args.push(format!("--lookupd-tcp-address={address}"));
    }
    Daemon::sluiced(&args).unwrap()
}

/// Waits until `check` returns `Some`, or fails with every daemon's last output lines.
fn eventually<T>(what: &str, daemons: &[&Daemon], mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() >= deadline {
            let logs: String = daemons
                .iter()
                .map(|d| format!("--- pid {} ---\n{}", d.pid(), d.log_tail()))
                .collect();
            panic!("timed out after {WAIT:?} waiting for {what}\n{logs}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn request(daemon: &Daemon, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let response = http::request(daemon.http_addr(), method, path, body, HTTP_TIMEOUT)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", daemon.log_tail()));
    (
        response.status,
        String::from_utf8_lossy(&response.body).into_owned(),
    )
}

fn post_ok(daemon: &Daemon, path: &str, body: &[u8]) {
    let (status, text) = request(daemon, "POST", path, body);
    assert_eq!(status, 200, "POST {path}: {text}\n{}", daemon.log_tail());
}

fn get_json(daemon: &Daemon, path: &str) -> (u16, Value) {
    let (status, text) = request(daemon, "GET", path, b"");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, json)
}

fn tcp_ports(producers: Option<&Value>) -> Vec<u16> {
    let mut ports: Vec<u16> = producers
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|p| p.get("tcp_port")?.as_u64())
                .filter_map(|p| u16::try_from(p).ok())
                .collect()
        })
        .unwrap_or_default();
    ports.sort_unstable();
    ports
}

/// The TCP ports of the brokers `/lookup?topic=` lists (empty when the topic is unknown).
fn lookup_ports(lookupd: &Daemon, topic: &str) -> Vec<u16> {
    let (_, json) = get_json(lookupd, &format!("/lookup?topic={topic}"));
    tcp_ports(json.get("producers"))
}

/// The TCP ports of the brokers `/nodes` lists.
fn node_ports(lookupd: &Daemon) -> Vec<u16> {
    let (_, json) = get_json(lookupd, "/nodes");
    tcp_ports(json.get("producers"))
}

fn strings(value: Option<&Value>) -> Vec<String> {
    let mut list: Vec<String> = value
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|s| Some(s.as_str()?.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    list.sort();
    list
}

fn lookupd_channels(lookupd: &Daemon, topic: &str) -> Vec<String> {
    let (_, json) = get_json(lookupd, &format!("/channels?topic={topic}"));
    strings(json.get("channels"))
}

/// The channels a broker's `/stats` shows for `topic`.
fn broker_channels(broker: &Daemon, topic: &str) -> Vec<String> {
    let (_, json) = get_json(broker, &format!("/stats?format=json&topic={topic}"));
    let topics = json.get("topics").and_then(Value::as_array).cloned();
    let Some(entry) = topics
        .unwrap_or_default()
        .into_iter()
        .find(|t| t.get("topic_name").and_then(Value::as_str) == Some(topic))
    else {
        return Vec::new();
    };
    let mut names: Vec<String> = entry
        .get("channels")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| Some(c.get("channel_name")?.as_str()?.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn port(daemon: &Daemon) -> u16 {
    daemon.tcp_addr().port()
}

fn sorted(mut ports: Vec<u16>) -> Vec<u16> {
    ports.sort_unstable();
    ports
}

fn sigkill(daemon: &Daemon) {
    let pid = libc::pid_t::try_from(daemon.pid()).unwrap();
    // SAFETY: kill(2) on our own child, not yet reaped (Daemon waits for it only on drop), so
    // the pid cannot belong to another process.
    let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill -9 {pid}");
}

#[test]
fn every_broker_is_a_node_of_every_lookupd() {
    let (l1, l2) = (lookupd(&[]), lookupd(&[]));
    let (a, b) = (broker(&[&l1, &l2]), broker(&[&l1, &l2]));
    let all = [&l1, &l2, &a, &b];
    let both = sorted(vec![port(&a), port(&b)]);
    for l in [&l1, &l2] {
        eventually("both brokers in /nodes", &all, || {
            (node_ports(l) == both).then_some(())
        });
        let (_, nodes) = get_json(l, "/nodes");
        let producers = nodes["producers"].as_array().unwrap();
        for (node, broker) in producers.iter().map(|n| {
            let broker = if n["tcp_port"] == port(&a) { &a } else { &b };
            (n, broker)
        }) {
            // What IDENTIFY said: upstream's fields, the bound ports, --broadcast-address.
            assert_eq!(node["broadcast_address"], "127.0.0.1", "{node}");
            assert_eq!(node["http_port"], broker.http_addr().port(), "{node}");
            assert_eq!(node["version"], "1.3.0", "{node}");
            assert!(!node["hostname"].as_str().unwrap().is_empty(), "{node}");
        }
    }
}

#[test]
fn a_topic_published_on_one_broker_is_found_on_both_lookupds() {
    let (l1, l2) = (lookupd(&[]), lookupd(&[]));
    let (a, b) = (broker(&[&l1, &l2]), broker(&[&l1, &l2]));
    let all = [&l1, &l2, &a, &b];
    post_ok(&a, "/pub?topic=cluster_found", b"hello");
    for l in [&l1, &l2] {
        eventually("the topic on a, and only a", &all, || {
            (lookup_ports(l, "cluster_found") == [port(&a)]).then_some(())
        });
        let (_, topics) = get_json(l, "/topics");
        assert!(
            strings(topics.get("topics")).contains(&"cluster_found".to_owned()),
            "{topics}"
        );
    }
    post_ok(&b, "/topic/create?topic=cluster_found", b"");
    for l in [&l1, &l2] {
        eventually("the topic on both brokers", &all, || {
            (lookup_ports(l, "cluster_found") == sorted(vec![port(&a), port(&b)])).then_some(())
        });
    }
    // Deleting it on a unregisters a.
    post_ok(&a, "/topic/delete?topic=cluster_found", b"");
    for l in [&l1, &l2] {
        eventually("the topic on b only", &all, || {
            (lookup_ports(l, "cluster_found") == [port(&b)]).then_some(())
        });
    }
}

#[test]
fn a_channel_created_on_a_broker_appears_in_channels() {
    let (l1, l2) = (lookupd(&[]), lookupd(&[]));
    let a = broker(&[&l1, &l2]);
    let all = [&l1, &l2, &a];
    // Upstream's /channel/create needs the topic (404 TOPIC_NOT_FOUND otherwise).
    post_ok(&a, "/topic/create?topic=cluster_ch", b"");
    post_ok(&a, "/channel/create?topic=cluster_ch&channel=archive", b"");
    for l in [&l1, &l2] {
        eventually("the channel in /channels", &all, || {
            (lookupd_channels(l, "cluster_ch") == ["archive"]).then_some(())
        });
        let (_, lookup) = get_json(l, "/lookup?topic=cluster_ch");
        assert_eq!(strings(lookup.get("channels")), ["archive"], "{lookup}");
        assert_eq!(tcp_ports(lookup.get("producers")), [port(&a)], "{lookup}");
    }
}

#[test]
fn a_killed_broker_vanishes_from_nodes() {
    let l1 = lookupd(&[]);
    let (a, b) = (broker(&[&l1]), broker(&[&l1]));
    let all = [&l1, &a, &b];
    let both = sorted(vec![port(&a), port(&b)]);
    eventually("both brokers in /nodes", &all, || {
        (node_ports(&l1) == both).then_some(())
    });
    sigkill(&a);
    eventually("only b in /nodes", &all, || {
        (node_ports(&l1) == [port(&b)]).then_some(())
    });
}

#[test]
fn a_killed_broker_vanishes_from_lookup() {
    let (l1, l2) = (lookupd(&[]), lookupd(&[]));
    let (a, b) = (broker(&[&l1, &l2]), broker(&[&l1, &l2]));
    let all = [&l1, &l2, &a, &b];
    post_ok(&a, "/pub?topic=cluster_kill", b"m");
    post_ok(&b, "/pub?topic=cluster_kill", b"m");
    let both = sorted(vec![port(&a), port(&b)]);
    for l in [&l1, &l2] {
        eventually("both producers", &all, || {
            (lookup_ports(l, "cluster_kill") == both).then_some(())
        });
    }
    sigkill(&a);
    for l in [&l1, &l2] {
        eventually("only b after kill -9 of a", &all, || {
            (lookup_ports(l, "cluster_kill") == [port(&b)]).then_some(())
        });
    }
}

#[test]
fn a_tombstoned_producer_is_hidden_for_the_lifetime() {
    let lifetime = Duration::from_secs(3);
    let l1 = lookupd(&["--tombstone-lifetime=3s"]);
    let (a, b) = (broker(&[&l1]), broker(&[&l1]));
    let all = [&l1, &a, &b];
    post_ok(&a, "/pub?topic=cluster_tomb", b"m");
    post_ok(&b, "/pub?topic=cluster_tomb", b"m");
    let both = sorted(vec![port(&a), port(&b)]);
    eventually("both producers", &all, || {
        (lookup_ports(&l1, "cluster_tomb") == both).then_some(())
    });
    let node = format!("127.0.0.1:{}", a.http_addr().port());
    // Taken before the request, so that "reappeared after" is a sound lower bound.
    let tombstoned_at = Instant::now();
    post_ok(
        &l1,
        &format!("/topic/tombstone?topic=cluster_tomb&node={node}"),
        b"",
    );
    assert_eq!(lookup_ports(&l1, "cluster_tomb"), [port(&b)]);
    let (_, nodes) = get_json(&l1, "/nodes");
    let a_node = nodes["producers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["tcp_port"] == port(&a))
        .cloned()
        .unwrap();
    assert_eq!(
        a_node["topics"],
        serde_json::json!(["cluster_tomb"]),
        "{a_node}"
    );
    assert_eq!(a_node["tombstones"], serde_json::json!([true]), "{a_node}");
    // The broker stays registered; once the lifetime is over it is listed again.
    eventually("a listed again after the tombstone lifetime", &all, || {
        (lookup_ports(&l1, "cluster_tomb") == both).then_some(())
    });
    assert!(
        tombstoned_at.elapsed() >= lifetime,
        "the tombstone ended after {:?}, before its lifetime {lifetime:?}",
        tombstoned_at.elapsed()
    );
    // Bad input gets upstream's answers: an unknown node is silently OK (and hides nobody),
    // a missing node is an error.
    post_ok(
        &l1,
        "/topic/tombstone?topic=cluster_tomb&node=nowhere:1",
        b"",
    );
    assert_eq!(lookup_ports(&l1, "cluster_tomb"), both);
    let (status, text) = request(&l1, "POST", "/topic/tombstone?topic=cluster_tomb", b"");
    assert_eq!(
        (status, text.as_str()),
        (400, r#"{"message":"MISSING_ARG_NODE"}"#)
    );
}

#[test]
fn put_config_moves_a_broker_to_another_lookupd() {
    let (l1, l2) = (lookupd(&[]), lookupd(&[]));
    let a = broker(&[&l1]);
    let all = [&l1, &l2, &a];
    eventually("a in l1's /nodes", &all, || {
        (node_ports(&l1) == [port(&a)]).then_some(())
    });
    assert_eq!(node_ports(&l2), Vec::<u16>::new());
    let list = format!(r#"["{}"]"#, l2.tcp_addr());
    let (status, text) = request(
        &a,
        "PUT",
        "/config/nsqlookupd_tcp_addresses",
        list.as_bytes(),
    );
    assert_eq!(status, 200, "{text}");
    eventually("a in l2's /nodes only", &all, || {
        (node_ports(&l2) == [port(&a)] && node_ports(&l1).is_empty()).then_some(())
    });
    let (_, config) = get_json(&a, "/config/nsqlookupd_tcp_addresses");
    assert_eq!(config, serde_json::json!([l2.tcp_addr().to_string()]));
}

#[test]
fn put_config_moves_the_registered_topics_too() {
    let (l1, l2) = (lookupd(&[]), lookupd(&[]));
    let a = broker(&[&l1]);
    let all = [&l1, &l2, &a];
    post_ok(&a, "/topic/create?topic=cluster_move", b"");
    post_ok(&a, "/channel/create?topic=cluster_move&channel=c", b"");
    eventually("the topic on l1", &all, || {
        (lookup_ports(&l1, "cluster_move") == [port(&a)]).then_some(())
    });
    let list = format!(r#"["{}","{}"]"#, l1.tcp_addr(), l2.tcp_addr());
    let (status, _) = request(
        &a,
        "PUT",
        "/config/nsqlookupd_tcp_addresses",
        list.as_bytes(),
    );
    assert_eq!(status, 200);
    eventually("topic and channel on l2 as well", &all, || {
        (lookup_ports(&l2, "cluster_move") == [port(&a)]
            && lookupd_channels(&l2, "cluster_move") == ["c"])
        .then_some(())
    });
}

#[test]
fn a_new_topic_gets_the_channels_the_lookupds_know() {
    let (l1, l2) = (lookupd(&[]), lookupd(&[]));
    let (a, b) = (broker(&[&l1, &l2]), broker(&[&l1, &l2]));
    let all = [&l1, &l2, &a, &b];
    post_ok(&a, "/topic/create?topic=cluster_pre", b"");
    post_ok(&a, "/channel/create?topic=cluster_pre&channel=archive", b"");
    post_ok(
        &a,
        "/channel/create?topic=cluster_pre&channel=tail%23ephemeral",
        b"",
    );
    for l in [&l1, &l2] {
        eventually("both channels registered", &all, || {
            (lookupd_channels(l, "cluster_pre").len() == 2).then_some(())
        });
    }
    // b has never seen the topic: its first message creates it, then the lookupds' channels.
    post_ok(&b, "/pub?topic=cluster_pre", b"first");
    eventually(
        "b pre-created archive (not the ephemeral one)",
        &all,
        || (broker_channels(&b, "cluster_pre") == ["archive"]).then_some(()),
    );
    // The message published before the channel existed waited in the topic and reached it.
    eventually("the first message in archive", &all, || {
        let (_, json) = get_json(&b, "/stats?format=json&topic=cluster_pre&channel=archive");
        let depth = json["topics"][0]["channels"][0]["depth"].as_u64()?;
        (depth == 1).then_some(())
    });
}

#[test]
fn a_pynsq_reader_given_only_lookupds_consumes_from_both_brokers() {
    let python = sluice_tests::bins::workspace_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `bash scripts/setup.sh` to install pynsq",
        python.display()
    );
    let (l1, l2) = (lookupd(&[]), lookupd(&[]));
    let (a, b) = (broker(&[&l1, &l2]), broker(&[&l1, &l2]));
    let all = [&l1, &l2, &a, &b];
    let topic = "cluster_pynsq";
    let mut bodies = Vec::new();
    for (name, broker) in [("a", &a), ("b", &b)] {
        for i in 0..50 {
            let body = format!("{name}-pub-{i}");
            post_ok(broker, &format!("/pub?topic={topic}"), body.as_bytes());
            bodies.push(body);
        }
        let batch: Vec<String> = (0..50).map(|i| format!("{name}-mpub-{i}")).collect();
        post_ok(
            broker,
            &format!("/mpub?topic={topic}"),
            batch.join("\n").as_bytes(),
        );
        bodies.extend(batch);
    }
    let both = sorted(vec![port(&a), port(&b)]);
    for l in [&l1, &l2] {
        eventually("both producers of the topic", &all, || {
            (lookup_ports(l, topic) == both).then_some(())
        });
    }
    let dir = sluice_tests::daemon::TempDir::new("pynsq-lookup").unwrap();
    let expect = dir.path().join("expected.txt");
    std::fs::write(&expect, bodies.join("\n")).unwrap();
    let script = sluice_tests::bins::workspace_root().join("tests/compat/python/lookup_reader.py");
    let output = std::process::Command::new(&python)
        .arg(&script)
        .args(["--lookupd-http", &l1.http_addr().to_string()])
        .args(["--lookupd-http", &l2.http_addr().to_string()])
        .args(["--topic", topic, "--channel", "reader"])
        .arg("--expect")
        .arg(&expect)
        .args(["--expect-producer", &a.tcp_addr().to_string()])
        .args(["--expect-producer", &b.tcp_addr().to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "pynsq Reader failed ({}):\n{stdout}\n{stderr}\n{}\n{}",
        output.status,
        a.log_tail(),
        b.log_tail()
    );
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["received"], 200, "{summary}");
}

#[test]
fn bad_lookupd_addresses_never_take_a_broker_down() {
    let l1 = lookupd(&[]);
    // A port nothing listens on, a name that does not resolve, and an HTTP server (another
    // broker's HTTP port, which answers the V1 magic with an HTTP error).
    let other = broker_with(&[]);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let a = broker_with(&[
        closed,
        "no-such-host.invalid:4160".to_owned(),
        other.http_addr().to_string(),
        l1.tcp_addr().to_string(),
    ]);
    let all = [&l1, &a, &other];
    eventually("a registered with the real lookupd", &all, || {
        (node_ports(&l1) == [port(&a)]).then_some(())
    });
    let path = "/config/nsqlookupd_tcp_addresses";
    for body in [&b"not json"[..], b"{\"a\":1}", b"[1,2]", b""] {
        let (status, text) = request(&a, "PUT", path, body);
        assert!(
            status == 400 || status == 413,
            "PUT {:?}: {status} {text}",
            String::from_utf8_lossy(body)
        );
    }
    let (status, text) = request(&a, "PUT", path, br#"["not an address", ":", "[::1"]"#);
    assert_eq!(status, 200, "{text}");
    eventually("a gone from l1 once l1 is not in the list", &all, || {
        node_ports(&l1).is_empty().then_some(())
    });
    assert_eq!(request(&a, "GET", "/ping", b""), (200, "OK".to_owned()));
    let list = format!(r#"["{}"]"#, l1.tcp_addr());
    let (status, _) = request(&a, "PUT", path, list.as_bytes());
    assert_eq!(status, 200);
    eventually("a back in l1's /nodes", &all, || {
        (node_ports(&l1) == [port(&a)]).then_some(())
    });
    assert_eq!(request(&other, "GET", "/ping", b""), (200, "OK".to_owned()));
}
