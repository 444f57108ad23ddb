//! Runs the real-client suites in `tests/compat/` against the built `sluiced`: pynsq (pytest, in
//! the `.venv` that `scripts/setup.sh` creates) and nsqjs (`node --test`, with the
//! `tests/compat/node_modules` that `npm ci` installs).
//!
//! Missing client dependencies skip a suite with a loud message on a developer machine, and fail
//! it when `CI=true`. `scripts/test.sh` runs the suites itself (so their own runners print their
//! summaries) and sets `SLUICE_COMPAT_BY_SCRIPT=1` so they do not run twice.

use std::path::{Path, PathBuf};
use std::process::Command;

fn compat_dir() -> PathBuf {
    sluice_tests::bins::workspace_root().join("tests/compat")
}

fn run_by_script() -> bool {
    std::env::var("SLUICE_COMPAT_BY_SCRIPT").is_ok_and(|v| v == "1")
}

/// True (after a loud message) when `needed` is absent; under `CI=true` that is a failure.
fn missing(what: &str, needed: &Path) -> bool {
    if needed.exists() {
        return false;
    }
    let message = format!(
        "{what} compat suite: {} is missing; run `bash scripts/setup.sh` to install the client",
        needed.display()
    );
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "{message}"
    );
    eprintln!("\n!!!!! SKIPPED: {message} !!!!!\n");
    true
}

fn run(what: &str, mut command: Command) {
    let sluiced = sluice_tests::bins::binary("sluiced").unwrap();
    command.env("SLUICED", &sluiced).current_dir(compat_dir());
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("{what}: cannot start {command:?}: {e}"));
    assert!(
        status.success(),
        "{what} compat suite failed ({status}); output above"
    );
}

#[test]
fn pynsq_suite_passes_against_sluiced() {
    if run_by_script() {
        eprintln!("pynsq suite: run by scripts/test.sh directly");
        return;
    }
    let python = sluice_tests::bins::workspace_root().join(".venv/bin/python");
    if missing("pynsq", &python) {
        return;
    }
    let mut command = Command::new(python);
    command.args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "python"]);
    run("pynsq", command);
}

#[test]
fn nsqjs_suite_passes_against_sluiced() {
    if run_by_script() {
        eprintln!("nsqjs suite: run by scripts/test.sh directly");
        return;
    }
    if missing("nsqjs", &compat_dir().join("node_modules/nsqjs")) {
        return;
    }
    let mut command = Command::new("node");
    command.args(["--test", "node/nsqjs.test.js"]);
    run("nsqjs", command);
}
