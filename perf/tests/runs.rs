//! Black-box runs of the `sluice-perf` binary against the real `sluiced` and against its own
//! sink: every published message must arrive exactly once on every channel of its topic (and
//! on no other), `compare` must run a scenario against two server commands and pair their
//! figures, and `billion` must write its chart and data. Runs are short (a few seconds each)
//! and nothing asserts on speed.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use support::{perf, perf_json, Sluiced};

#[test]
fn pubsub_delivers_every_message_once_to_every_channel_of_its_topic() {
    let broker = Sluiced::start(&["--mem-queue-size=1000000"]);
    let addr = broker.addr();
    let report = perf_json(&[
        "pubsub",
        "--nsqd-tcp-address",
        &addr,
        "--topics",
        "3",
        "--channels",
        "2",
        "--producers",
        "2",
        "--consumers",
        "2",
        "--count",
        "30000",
        "--batch",
        "50",
        "--size",
        "64",
        "--rdy",
        "100",
        "--server-pid",
        &broker.pid().to_string(),
    ]);
    let delivery = &report["delivery"];
    assert_eq!(report["publish"]["messages"], 30_000, "{report:#}");
    assert_eq!(delivery["expected"], 60_000, "{report:#}");
    assert_eq!(delivery["unique"], 60_000, "{report:#}");
    for zero in ["lost", "duplicates", "misrouted", "foreign"] {
        assert_eq!(delivery[zero], 0, "{zero}: {report:#}");
    }
    assert_eq!(report["consume"]["messages"], 60_000, "{report:#}");
    assert!(report["latency_us"]["count"].as_u64().unwrap() == 60_000);
    assert!(report["server"]["peak_rss_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn single_pub_and_paced_runs_deliver_everything() {
    let broker = Sluiced::start(&[]);
    let addr = broker.addr();
    let report = perf_json(&[
        "pubsub",
        "--nsqd-tcp-address",
        &addr,
        "--topic",
        "paced",
        "--count",
        "600",
        "--batch",
        "1",
        "--size",
        "24",
        "--rate",
        "2000",
    ]);
    assert_eq!(report["delivery"]["unique"], 600, "{report:#}");
    assert_eq!(report["delivery"]["lost"], 0, "{report:#}");
    assert_eq!(report["settings"]["rate"], 2000.0);
}

#[test]
fn compare_runs_a_scenario_against_two_server_commands() {
    let command = format!(
        "{} --tcp-address={{tcp}} --http-address={{http}} --data-path={{data}} --cores=1 {{flags}}",
        support::binary("sluiced").display()
    );
    let report = perf_json(&[
        "compare",
        "--a",
        &command,
        "--b",
        &command.replace("--cores=1", "--cores=2"),
        "--scenario",
        "bench",
        "--runs",
        "1",
        "--count",
        "20000",
        "--producers",
        "2",
        "--consumers",
        "2",
    ]);
    let metrics = report["metrics"].as_array().unwrap();
    let metric = |name: &str| {
        metrics
            .iter()
            .find(|m| m["metric"] == name)
            .unwrap_or_else(|| panic!("no {name} in {report:#}"))
    };
    for name in [
        "pub: published msgs/s",
        "sub: consumed msgs/s",
        "peak RSS MiB",
    ] {
        let m = metric(name);
        assert_eq!(m["a"].as_array().unwrap().len(), 1, "{name}");
        assert_eq!(m["b"].as_array().unwrap().len(), 1, "{name}");
        assert!(
            m["ratio_a_over_b"]["median"].as_f64().unwrap() > 0.0,
            "{name}"
        );
    }
    assert_eq!(metric("sub: lost")["a"][0], 0.0, "{report:#}");
    assert_eq!(metric("sub: lost")["b"][0], 0.0, "{report:#}");
    let details = report["details"].as_array().unwrap();
    assert_eq!(details.len(), 2);
    assert_eq!(details[0]["label"], "A");
    assert_eq!(details[1]["reports"][1]["delivery"]["unique"], 20_000);
}

#[test]
fn the_sink_takes_publishes_and_feeds_subscribers() {
    let mut sink = Command::new(env!("CARGO_BIN_EXE_sluice-perf"))
        .args(["sink", "--tcp-address", "127.0.0.1:0", "--size", "100"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(sink.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("sink: listening on ")
        .unwrap()
        .to_owned();
    let published = perf_json(&["pub", "--nsqd-tcp-address", &addr, "--count", "10000"]);
    assert_eq!(published["publish"]["messages"], 10_000);
    let consumed = perf_json(&["sub", "--nsqd-tcp-address", &addr, "--count", "10000"]);
    assert!(consumed["consume"]["messages"].as_u64().unwrap() >= 10_000);
    assert!(consumed["latency_us"]["count"].as_u64().unwrap() >= 10_000);
    assert_eq!(consumed["consume"]["bytes"].as_u64().unwrap() % 100, 0);
    sink.kill().unwrap();
    sink.wait().unwrap();
}

#[test]
fn billion_writes_its_chart_and_data_and_counts_loss() {
    let broker = Sluiced::start(&[]);
    let dir = std::env::temp_dir().join(format!("sluice-perf-billion-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("run").display().to_string();
    let report = perf_json(&[
        "billion",
        "--nsqd-tcp-address",
        &broker.addr(),
        "--times",
        "0.2",
        "--duration",
        "1s",
        "--interval",
        "250ms",
        "--out",
        &out,
    ]);
    assert_eq!(report["mode"], "billion");
    assert_eq!(report["delivery"]["lost"], 0, "{report:#}");
    assert_eq!(report["delivery"]["duplicates"], 0, "{report:#}");
    assert!(report["billion"]["target_rate"].as_f64().unwrap() > 2000.0);
    assert!(!report["intervals"].as_array().unwrap().is_empty());
    let svg = std::fs::read_to_string(format!("{out}.svg")).unwrap();
    assert!(svg.contains("<polyline"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{out}.json")).unwrap()).unwrap();
    assert_eq!(json["billion"], report["billion"]);
    std::fs::remove_dir_all(&dir).unwrap();
    let table = perf(&["scenarios"]);
    assert!(table.contains("bench") && table.contains("many-connections"));
}
