//! The command line as upstream nsqlookupd's (`shared/golden/cli.md`): `--version`, `--help`,
//! Go's words and exit code 2 for bad flags, every Go flag spelling, the `--config` TOML file,
//! a fatal exit 1 when a port is taken, the listening lines, and exit 0 on SIGTERM and SIGINT.

mod common;

use std::net::TcpListener;
use std::process::{Command, Output};

use common::{binary, start, Broker};

fn run(args: &[&str]) -> Output {
    Command::new(binary()).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn version_is_one_line_on_stdout() {
    let out = run(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        "sluice-lookupd v0.1.0 (nsqlookupd v1.3.0 compatible)\n"
    );
    assert!(out.stderr.is_empty());
    assert!(run(&["-version"]).status.success());
}

#[test]
fn help_lists_upstreams_flags_in_gos_layout() {
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    let usage = text(&out.stderr);
    assert!(usage.starts_with("Usage of sluice-lookupd:\n  -broadcast-address string\n"));
    for line in [
        "  -http-address string\n    \t<addr>:<port> to listen on for HTTP clients (default \"0.0.0.0:4161\")\n",
        "  -inactive-producer-timeout duration\n    \tduration of time a producer will remain in the active list since its last ping (default 5m0s)\n",
        "  -log-level value\n    \tset log verbosity: debug, info, warn, error, or fatal (default INFO)\n",
        "  -tcp-address string\n    \t<addr>:<port> to listen on for TCP clients (default \"0.0.0.0:4160\")\n",
        "  -tombstone-lifetime duration\n    \tduration of time a producer will remain tombstoned if registration remains (default 45s)\n",
        "  -verbose\n    \t[deprecated] has no effect, use --log-level\n",
        "  -version\n    \tprint version string\n",
    ] {
        assert!(usage.contains(line), "missing {line:?} in\n{usage}");
    }
}

#[test]
fn bad_flags_exit_2_in_gos_words() {
    let out = run(&["--bogus-flag"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr
        .starts_with("flag provided but not defined: -bogus-flag\nUsage of sluice-lookupd:\n"));
    let out = run(&["--log-level=loud"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with(
        "invalid value \"loud\" for flag -log-level: invalid log level 'loud' (debug, info, warn, error, fatal)\n"
    ));
    let out = run(&["--tombstone-lifetime=soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr)
        .starts_with("invalid value \"soon\" for flag -tombstone-lifetime: parse error\n"));
    let out = run(&["-tcp-address"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("flag needs an argument: -tcp-address\n"));
}

#[test]
fn every_go_spelling_reaches_the_options() {
    let lookupd = start(&[
        "-broadcast-address",
        "spelled",
        "--inactive-producer-timeout",
        "1m30s",
        "-tombstone-lifetime=45s",
        "--log-level=debug",
        "--verbose",
    ]);
    let mut broker = Broker::connect(&lookupd);
    assert_eq!(broker.identify("b", 2).broadcast_address, "spelled");
    broker.ping();
    common::eventually("a debug line for the ping", || {
        lookupd.log_tail().contains(" DEBUG: CLIENT(")
    });
}

#[test]
fn config_file_sets_upstreams_keys_under_the_command_line() {
    let dir = sluice_tests::daemon::TempDir::new("lookupd-config").unwrap();
    let path = dir.path().join("nsqlookupd.toml");
    std::fs::write(
        &path,
        "broadcast_address = \"from-config\"\ntombstone_lifetime = \"2s\"\n\
         inactive_producer_timeout = 300000\nlog_prefix = \"[cfg] \"\nsome_unknown_key = 1\n",
    )
    .unwrap();
    let config = format!("--config={}", path.display());
    let lookupd = start(&[&config]);
    let mut broker = Broker::connect(&lookupd);
    assert_eq!(broker.identify("b", 2).broadcast_address, "from-config");
    assert!(
        lookupd.log_tail().contains("[cfg] "),
        "{}",
        lookupd.log_tail()
    );
    let lookupd = start(&[&config, "--broadcast-address=from-flag"]);
    let mut broker = Broker::connect(&lookupd);
    assert_eq!(broker.identify("b", 2).broadcast_address, "from-flag");

    std::fs::write(&path, "tombstone_lifetime = \"soon\"\n").unwrap();
    let out = run(&[&config]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(" FATAL: failed to load config file "));
}

#[test]
fn a_taken_port_is_fatal_with_exit_1() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("--tcp-address={}", taken.local_addr().unwrap());
    let out = run(&[&address, "--http-address=127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(" FATAL: failed to instantiate sluice-lookupd - listen ("),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn logs_listening_lines_and_exits_0_on_sigterm() {
    let mut lookupd = start(&[]);
    let tcp_line = format!("INFO: TCP: listening on {}", lookupd.tcp_addr());
    let http_line = format!("INFO: HTTP: listening on {}", lookupd.http_addr());
    // The harness reports an address as soon as it parses it; the tail may lag a moment.
    common::eventually("both listening lines in upstream's layout", || {
        let log = lookupd.log_tail();
        log.contains(&tcp_line) && log.contains(&http_line) && log.contains("[sluice-lookupd] 20")
    });
    let status = lookupd.terminate(common::EVENTUALLY).unwrap();
    assert_eq!(status.code(), Some(0));
    let closing = format!("TCP: closing {}", lookupd.tcp_addr());
    common::eventually("the closing line is read from the pipe", || {
        lookupd.log_tail().contains(&closing)
    });
}

#[test]
fn exits_0_on_sigint_with_a_broker_connected() {
    let lookupd = start(&[]);
    let mut broker = Broker::identified(&lookupd, "b", 2);
    broker.register("t", None);
    let sent = Command::new("kill")
        .args(["-INT", &lookupd.pid().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    broker.expect_closed();
    let mut lookupd = lookupd;
    // Already exiting: terminate only collects the status (a second signal is harmless).
    let status = lookupd.terminate(common::EVENTUALLY).unwrap();
    assert_eq!(status.code(), Some(0));
}
