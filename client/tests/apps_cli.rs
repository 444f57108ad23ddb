//! The `sluice` binary's command line, without a broker where none is needed: subcommands and
//! upstream names (argv[0] through symlinks), `--help` and `--version`, Go-style flag errors
//! (exit 2), upstream's checks of missing flags and unreachable servers (exit 1 with a
//! `FATAL:` line naming the problem).

mod apps_support;

use apps_support::{free_port, linked_as, run_sluice, Running, TempDir};
use std::process::Stdio;

#[test]
fn no_command_or_an_unknown_one_prints_the_overview_and_exits_2() {
    let out = run_sluice(&[]);
    assert_eq!(out.status.code(), Some(2));
    for command in ["tail", "to-file", "to-http", "to-nsq", "pub", "stat"] {
        assert!(out.stderr.contains(command), "{command}: {}", out.stderr);
    }
    let out = run_sluice(&["bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("unknown command \"bogus\""));
    let out = run_sluice(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn help_and_version_follow_go() {
    let out = run_sluice(&["to-file", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stderr.starts_with("Usage of nsq_to_file:\n"));
    assert!(out
        .stderr
        .contains("  -rotate-size rotate-size\n    \trotate the file when it grows bigger than rotate-size bytes\n"));
    assert!(out
        .stderr
        .contains("  -channel string\n    \tnsq channel (default \"nsq_to_file\")\n"));
    let out = run_sluice(&["stat", "-version"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.starts_with("nsq_stat v"), "{}", out.stdout);
}

#[test]
fn upstream_names_dispatch_through_argv0() {
    let dir = TempDir::new("argv0");
    for (name, usage) in [
        ("nsq_tail", "Usage of nsq_tail:"),
        ("nsq_to_file", "Usage of nsq_to_file:"),
        ("nsq_to_http", "Usage of nsq_to_http:"),
        ("nsq_to_nsq", "Usage of nsq_to_nsq:"),
        ("to_nsq", "Usage of to_nsq:"),
        ("nsq_stat", "Usage of nsq_stat:"),
    ] {
        let link = linked_as(&dir, name);
        let out = Running::spawn(&link, &["-h"], Stdio::null()).wait();
        assert_eq!(out.status.code(), Some(0), "{name}");
        assert!(out.stderr.starts_with(usage), "{name}: {}", out.stderr);
    }
}

#[test]
fn bad_flags_exit_2_in_gos_words() {
    let out = run_sluice(&["tail", "--bogus-flag"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out
        .stderr
        .starts_with("flag provided but not defined: -bogus-flag\nUsage of nsq_tail:"));
    let out = run_sluice(&["to-file", "--rotate-interval=soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out
        .stderr
        .starts_with("invalid value \"soon\" for flag -rotate-interval: parse error"));
    let out = run_sluice(&["pub", "--topic"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.starts_with("flag needs an argument: -topic"));
}

/// Runs a utility that must refuse to start; returns its stderr.
fn refused(args: &[&str]) -> String {
    let out = run_sluice(args);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {}", out.stderr);
    assert!(out.stderr.contains(" FATAL: "), "{}", out.stderr);
    out.stderr
}

#[test]
fn missing_or_conflicting_flags_exit_1_with_upstreams_message() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["tail", "--topic=t"],
            "--nsqd-tcp-address or --lookupd-http-address required",
        ),
        (
            &[
                "tail",
                "--nsqd-tcp-address=a:1",
                "--lookupd-http-address=b:2",
                "--topic=t",
            ],
            "use --nsqd-tcp-address or --lookupd-http-address not both",
        ),
        (&["tail", "--nsqd-tcp-address=a:1"], "--topic required"),
        (
            &["to-file", "--nsqd-tcp-address=a:1"],
            "--topic or --topic-pattern required",
        ),
        (
            &[
                "to-file",
                "--topic=t",
                "--nsqd-tcp-address=a:1",
                "--gzip-level=10",
            ],
            "invalid --gzip-level value (10), should be 1-9",
        ),
        (
            &["to-http", "--topic=t", "--nsqd-tcp-address=a:1"],
            "--get or --post required",
        ),
        (
            &[
                "to-http",
                "--topic=t",
                "--nsqd-tcp-address=a:1",
                "--get=http://x/",
            ],
            "invalid GET address - must be a printf string",
        ),
        (
            &[
                "to-http",
                "--topic=t",
                "--nsqd-tcp-address=a:1",
                "--get=http://x/%s",
                "--content-type=a/b",
            ],
            "--content-type only used with --post",
        ),
        (
            &[
                "to-http",
                "--topic=t",
                "--nsqd-tcp-address=a:1",
                "--post=http://x/",
                "--header=nocolon",
            ],
            "--header value format should be 'key=value'",
        ),
        (
            &[
                "to-http",
                "--topic=t",
                "--nsqd-tcp-address=a:1",
                "--post=http://x/",
                "--sample=2",
            ],
            "--sample must be between 0.0 and 1.0",
        ),
        (
            &["to-nsq", "--topic=t", "--nsqd-tcp-address=a:1"],
            "--destination-nsqd-tcp-address required",
        ),
        (
            &["to-nsq", "--topic=bad topic", "--nsqd-tcp-address=a:1"],
            "--topic is invalid",
        ),
        (&["pub", "--topic=t"], "--nsqd-tcp-address required"),
        (
            &[
                "pub",
                "--topic=t",
                "--nsqd-tcp-address=a:1",
                "--delimiter=ab",
            ],
            "--delimiter must be a single byte",
        ),
        (&["stat", "--topic=t"], "--topic and --channel are required"),
        (
            &[
                "stat",
                "--topic=t",
                "--channel=c",
                "--count=0",
                "--nsqd-http-address=a:1",
            ],
            "--count should be positive",
        ),
        (
            &[
                "stat",
                "--topic=t",
                "--channel=c",
                "--nsqd-http-address=http://a:1",
            ],
            "--nsqd-http-address error - address should not contain scheme",
        ),
        (
            &["tail", "--nsqd-tcp-address=a:1", "--topic=t", "extra"],
            "unknown arguments: [extra]",
        ),
    ];
    for (args, message) in cases {
        let stderr = refused(args);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[test]
fn unreachable_servers_exit_1_naming_the_address() {
    let nowhere = format!("127.0.0.1:{}", free_port());
    let tcp = format!("--nsqd-tcp-address={nowhere}");
    let lookupd = format!("--lookupd-http-address={nowhere}");
    let http = format!("--nsqd-http-address={nowhere}");
    let dest = format!("--destination-nsqd-tcp-address={nowhere}");
    for args in [
        vec!["tail", "--topic=t", tcp.as_str()],
        vec!["tail", "--topic=t", lookupd.as_str()],
        vec!["to-file", "--topic=t", tcp.as_str(), "--output-dir=/tmp"],
        vec!["to-file", "--topic-pattern=.", lookupd.as_str()],
        vec![
            "to-http",
            "--topic=t",
            tcp.as_str(),
            "--post=http://127.0.0.1:1/",
        ],
        vec!["to-nsq", "--topic=t", tcp.as_str(), dest.as_str()],
        vec!["pub", "--topic=t", tcp.as_str()],
        vec![
            "stat",
            "--topic=t",
            "--channel=c",
            http.as_str(),
            "--count=1",
        ],
    ] {
        let stderr = refused(&args);
        assert!(stderr.contains(&nowhere), "{args:?}: {stderr}");
    }
}
