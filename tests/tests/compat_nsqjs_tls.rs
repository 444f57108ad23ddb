//! Runs `tests/compat/node/nsqjs_tls_auth.test.js` (nsqjs over TLS, deflate, snappy and AUTH)
//! against the built `sluiced`.
//!
//! `scripts/test.sh` runs `tests/compat/node/nsqjs.test.js` itself but not this file, so this
//! runner runs it whether or not `SLUICE_COMPAT_BY_SCRIPT` is set. Missing nsqjs skips it with a
//! loud message on a developer machine and fails it when `CI=true`, as `compat.rs` does. The
//! pynsq counterpart (`tests/compat/python/test_pynsq_tls_auth.py`) runs with the rest of the
//! pytest directory.

use std::process::Command;

#[test]
fn nsqjs_tls_compression_auth_suite_passes_against_sluiced() {
    let compat = sluice_tests::bins::workspace_root().join("tests/compat");
    if !compat.join("node_modules/nsqjs").exists() {
        let message = "nsqjs TLS suite: tests/compat/node_modules/nsqjs is missing; run \
                       `bash scripts/setup.sh` to install the client";
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "{message}"
        );
        eprintln!("\n!!!!! SKIPPED: {message} !!!!!\n");
        return;
    }
    let sluiced = sluice_tests::bins::binary("sluiced").unwrap();
    let status = Command::new("node")
        .args(["--test", "node/nsqjs_tls_auth.test.js"])
        .env("SLUICED", &sluiced)
        .current_dir(&compat)
        .status()
        .unwrap_or_else(|e| panic!("cannot start node: {e}"));
    assert!(
        status.success(),
        "nsqjs TLS suite failed ({status}); output above"
    );
}
