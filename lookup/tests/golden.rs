//! Replays upstream nsqlookupd v1.3.0's transcripts (`shared/golden/lookup_v1.jsonl`, one fresh
//! daemon per scenario, and `shared/golden/http_lookupd.jsonl`, one daemon for the whole file,
//! lines in order) against the real `sluice-lookupd` binary, and fails listing every scenario or
//! line whose bytes, status, headers or JSON differ (masks per the files' `variable` entries).
//!
//! The replay harness is the workspace referee, `sluice-tests`; it finds `sluice-lookupd` in the
//! directory Cargo built it into for this test (`CARGO_BIN_EXE_sluice-lookupd`).
//! Run one scenario: `GOLDEN_ONLY=identify_twice cargo test -p sluice-lookup --test golden`.

use std::path::Path;

/// Points the harness at the binary Cargo built for this package's tests.
fn use_this_packages_binary() {
    let binary = Path::new(env!("CARGO_BIN_EXE_sluice-lookupd"));
    let dir = binary.parent().expect("the binary has a directory");
    std::env::set_var("SLUICE_BIN_DIR", dir);
}

#[test]
fn lookup_v1_transcripts_replay() {
    use_this_packages_binary();
    let outcomes = sluice_tests::golden::replay_tcp_file("lookup_v1.jsonl").unwrap();
    assert_eq!(outcomes.len(), 16, "every scenario of the file ran");
    sluice_tests::golden::report("lookup_v1.jsonl", &outcomes);
}

#[test]
fn http_lookupd_transcript_replays() {
    use_this_packages_binary();
    let outcomes =
        sluice_tests::golden::replay_http_file("http_lookupd.jsonl", "nsqlookupd").unwrap();
    assert_eq!(outcomes.len(), 46, "every line of the file ran");
    sluice_tests::golden::report("http_lookupd.jsonl", &outcomes);
}
