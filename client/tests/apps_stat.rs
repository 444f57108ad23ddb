//! `sluice stat` against the real `sluiced` (directly and through `sluice-lookupd`): the
//! header lines and one row per `--interval`, `--count` rows, the columns holding the
//! channel's figures; a channel no broker has is an error.

mod apps_support;

use apps_support::{run_sluice, wait_for, Broker, Lookupd};

const HEADER: &str = "------rate------+----------------depth----------------+--------------metadata---------------\n\
                      ingress  egress |   total     mem    disk inflt   def |     req     t-o         msgs clients\n";

/// The numbers of a data row.
fn columns(row: &str) -> Vec<i64> {
    row.split_whitespace()
        .filter(|w| *w != "|")
        .map(|w| w.parse().unwrap())
        .collect()
}

#[test]
fn rows_show_the_channel_every_interval_count_times() {
    let broker = Broker::start();
    broker.create_channel("t", "c");
    broker.publish("t", &(0..7).map(|i| format!("m{i}")).collect::<Vec<_>>());
    let out = run_sluice(&[
        "stat",
        "--topic=t",
        "--channel=c",
        &format!("--nsqd-http-address={}", broker.http),
        "--interval=100ms",
        "--count=2",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let rows = out.stdout.strip_prefix(HEADER).expect(&out.stdout);
    let rows: Vec<Vec<i64>> = rows.lines().map(columns).collect();
    assert_eq!(rows.len(), 2, "{}", out.stdout);
    for row in rows {
        // ingress egress | total mem disk inflt def | req t-o msgs clients
        assert_eq!(row[2..], [7, 7, 0, 0, 0, 0, 0, 7, 0], "{}", out.stdout);
        assert_eq!(row[..2], [0, 0]);
    }
}

#[test]
fn brokers_are_found_through_lookupd_and_a_missing_channel_is_an_error() {
    let lookupd = Lookupd::start();
    let broker = Broker::start_registered(&lookupd);
    broker.create_channel("looked", "c");
    wait_for("the topic in lookupd", || lookupd.knows("looked"));
    let lookupd_flag = format!("--lookupd-http-address={}", lookupd.http);
    let out = run_sluice(&[
        "stat",
        "--topic=looked",
        "--channel=c",
        &lookupd_flag,
        "--interval=50ms",
        "--count=1",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout.lines().count(), 3, "{}", out.stdout);
    let out = run_sluice(&[
        "stat",
        "--topic=looked",
        "--channel=nope",
        &lookupd_flag,
        "--count=1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out
        .stderr
        .contains("failed to find channel(nope) in stats metadata for topic(looked)"));
}
