//! Replays `../shared/golden/http_nsqd.jsonl` (recorded from upstream nsqd v1.3.0) in order against
//! one `sluiced` started with the flags from `servers.json`: status, the two content-type headers
//! and the body of every line, TCP `setup` steps included, masks as the file's `variable` says.
//!
//! Report one line: `GOLDEN_ONLY=stats_json cargo test -p sluice-tests --test golden_http_nsqd`
//! (earlier lines still run, since later ones depend on their state).

#[test]
fn http_nsqd_transcript_replays_against_sluiced() {
    let outcomes = sluice_tests::golden::replay_http_file("http_nsqd.jsonl", "nsqd").unwrap();
    sluice_tests::golden::report("http_nsqd.jsonl", &outcomes);
}
