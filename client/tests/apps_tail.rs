//! `sluice tail` against the real `sluiced` (and `sluice-lookupd`): `-n` prints exactly n
//! messages and gives the rest back to the channel, `--print-topic` prefixes lines, topics are
//! found through lookupd, and SIGINT ends it cleanly with status 0.

mod apps_support;

use std::collections::BTreeSet;
use std::process::Stdio;

use apps_support::{linked_as, wait_for, Broker, Lookupd, Running, TempDir};

fn bodies(prefix: &str, count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| format!("{prefix}{i}").into_bytes())
        .collect()
}

#[test]
fn n_messages_are_printed_and_the_rest_stay_in_the_channel() {
    let broker = Broker::start();
    let published = bodies("m", 10);
    broker.publish("t", &published);
    let tail = Running::sluice(&[
        "tail",
        "--topic=t",
        "--channel=keep",
        &format!("--nsqd-tcp-address={}", broker.tcp),
        "-n",
        "4",
        "--max-in-flight=10",
    ]);
    let out = tail.wait();
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let printed: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(printed.len(), 4, "{}", out.stdout);
    // Nothing printed is lost or printed twice: the other six are still in the channel.
    let rest = broker.drain("t", "keep");
    let mut all: BTreeSet<Vec<u8>> = printed.iter().map(|l| l.as_bytes().to_vec()).collect();
    assert_eq!(all.len(), 4);
    for body in &rest {
        assert!(
            all.insert(body.clone()),
            "printed and still queued: {body:?}"
        );
    }
    assert_eq!(all, published.into_iter().collect::<BTreeSet<_>>());
}

#[test]
fn print_topic_prefixes_each_line_when_run_as_nsq_tail() {
    let broker = Broker::start();
    let dir = TempDir::new("tail-link");
    let nsq_tail = linked_as(&dir, "nsq_tail");
    let addr = format!("--nsqd-tcp-address={}", broker.tcp);
    let args = [
        "--topic=alpha",
        "--topic=beta",
        addr.as_str(),
        "--print-topic",
        "-n=2",
    ];
    let tail = Running::spawn(&nsq_tail, &args, Stdio::null());
    broker.wait_subscribed("alpha");
    broker.wait_subscribed("beta");
    broker.publish("alpha", &[b"one".to_vec()]);
    broker.publish("beta", &[b"two".to_vec()]);
    let out = tail.wait();
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let lines: BTreeSet<&str> = out.stdout.lines().collect();
    assert_eq!(lines, BTreeSet::from(["alpha | one", "beta | two"]));
    assert!(out.stderr.contains("Adding consumer for topic: alpha"));
}

#[test]
fn topics_are_found_through_lookupd_and_sigint_exits_zero() {
    let lookupd = Lookupd::start();
    let broker = Broker::start_registered(&lookupd);
    broker.create_channel("found", "other");
    wait_for("the topic in lookupd", || lookupd.knows("found"));
    let tail = Running::sluice(&[
        "tail",
        "--topic=found",
        &format!("--lookupd-http-address={}", lookupd.http),
    ]);
    broker.wait_subscribed("found");
    broker.publish("found", &[b"first".to_vec()]);
    wait_for("the first line", || tail.stdout() == "first\n");
    broker.publish("found", &[b"second".to_vec()]);
    wait_for("the second line", || tail.stdout() == "first\nsecond\n");
    tail.signal("INT");
    let out = tail.wait();
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(out
        .stderr
        .contains(&format!("lookupd addr {}", lookupd.http)));
}
