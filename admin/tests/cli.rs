//! The command line as upstream nsqadmin's: `--version`, `--help`, Go's flag errors (exit 2),
//! and the start-up refusals of `nsqadmin.New` as a fatal log line (exit 1).

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice-admin"))
        .args(args)
        .output()
        .expect("run sluice-admin")
}

#[test]
fn version_and_help() {
    let out = run(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "sluice-admin v0.1.0 (nsqadmin v1.3.0 compatible)\n"
    );
    let out = run(&["-help"]);
    assert!(out.status.success());
    let usage = String::from_utf8_lossy(&out.stderr);
    assert!(usage.starts_with("Usage of sluice-admin:\n"), "{usage}");
    for flag in [
        "-acl-http-header string",
        "-admin-user value",
        "-allow-config-from-cidr string",
        "-base-path string",
        "-http-address string",
        "-http-client-connect-timeout duration",
        "-lookupd-http-address value",
        "-notification-http-endpoint string",
        "-nsqd-http-address value",
        "-log-level value",
    ] {
        assert!(usage.contains(flag), "{flag} missing from\n{usage}");
    }
    assert!(usage.contains("(default \"0.0.0.0:4171\")"));
}

#[test]
fn bad_flags_exit_2_in_gos_words() {
    let out = run(&["--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("flag provided but not defined: -bogus\nUsage of sluice-admin:"),
        "{err}"
    );
}

#[test]
fn refused_options_exit_1_with_a_fatal_line() {
    for (args, why) in [
        (
            &[][..],
            "--nsqd-http-address or --lookupd-http-address required",
        ),
        (
            &[
                "--nsqd-http-address=127.0.0.1:4151",
                "--lookupd-http-address=127.0.0.1:4161",
            ][..],
            "use --nsqd-http-address or --lookupd-http-address not both",
        ),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err.lines().last().unwrap_or_default();
        assert!(line.starts_with("[sluice-admin] "), "{err}");
        assert!(
            line.ends_with(&format!(
                " FATAL: failed to instantiate sluice-admin - {why}"
            )),
            "{err}"
        );
    }
}
