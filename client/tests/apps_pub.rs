//! `sluice pub` (upstream `to_nsq`) against the real `sluiced`: every line of a 100 000-line
//! file arrives exactly once; a custom delimiter splits records and a last record without
//! one is kept whole; `--rate` still delivers everything; each broker given gets every
//! record; SIGTERM while stdin stays open publishes what was read and exits 0.

mod apps_support;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::Stdio;

use apps_support::{sluice, wait_for, Broker, Running, TempDir};

#[test]
fn every_line_of_a_100k_line_file_arrives_once() {
    let broker = Broker::start();
    let dir = TempDir::new("pub-file");
    let path = dir.path().join("lines.txt");
    let mut text = String::new();
    for i in 0..100_000 {
        text.push_str(&format!("line-{i}\n"));
    }
    std::fs::write(&path, text).unwrap();
    let run = Running::spawn(
        &sluice(),
        &[
            "pub",
            "--topic=bulk",
            &format!("--nsqd-tcp-address={}", broker.tcp),
            "--status-every=50000",
        ],
        Stdio::from(std::fs::File::open(&path).unwrap()),
    );
    let out = run.wait();
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("published 100000 messages"),
        "{}",
        out.stderr
    );
    assert_eq!(broker.topic_count("bulk"), 100_000);
    let received = broker.drain("bulk", "check");
    assert_eq!(received.len(), 100_000);
    let distinct: BTreeSet<Vec<u8>> = received.into_iter().collect();
    assert_eq!(distinct.len(), 100_000);
    assert!(distinct.contains(b"line-0".as_slice()) && distinct.contains(b"line-99999".as_slice()));
}

#[test]
fn delimiter_rate_and_several_brokers() {
    let (a, b) = (Broker::start(), Broker::start());
    let mut run = Running::spawn(
        &sluice(),
        &[
            "pub",
            "--topic=csv",
            &format!("--nsqd-tcp-address={}", a.tcp),
            &format!("--nsqd-tcp-address={}", b.tcp),
            "--delimiter=,",
            "--rate=50",
        ],
        Stdio::piped(),
    );
    let mut stdin = run.stdin();
    stdin
        .write_all(b"one,two,,three\nstill three,four")
        .unwrap();
    drop(stdin);
    let out = run.wait();
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(out
        .stderr
        .contains("Throttling messages rate to max:50/second"));
    for broker in [&a, &b] {
        let got: BTreeSet<Vec<u8>> = broker.drain("csv", "check").into_iter().collect();
        let want: BTreeSet<Vec<u8>> = ["one", "two", "three\nstill three", "four"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        assert_eq!(got, want);
    }
}

#[test]
fn sigterm_with_stdin_open_publishes_what_was_read() {
    let broker = Broker::start();
    let mut run = Running::spawn(
        &sluice(),
        &[
            "pub",
            "--topic=live",
            &format!("--nsqd-tcp-address={}", broker.tcp),
        ],
        Stdio::piped(),
    );
    let mut stdin = run.stdin();
    stdin.write_all(b"a\nb\n").unwrap();
    stdin.flush().unwrap();
    // Lines are published as they come, not when a batch fills.
    wait_for("two messages", || broker.topic_count("live") == 2);
    run.signal("TERM");
    let out = run.wait();
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    drop(stdin);
}
