//! Replays `../shared/golden/http_nsqd.jsonl` (recorded from upstream nsqd v1.3.0) in order against
//! one `sluiced` started with the flags from `servers.json`: status, the two content-type headers
//! and the body of every line, TCP `setup` steps included, masks as the file's `variable` says.
//!
//! Report one line: `GOLDEN_ONLY=stats_json cargo test -p sluice-tests --test golden_http_nsqd`
//! (earlier lines still run, since later ones depend on their state).

/// Go-runtime endpoints sluiced does not imitate (README, "Compatibility with NSQ"): it answers
/// them `501 NOT_SUPPORTED` (tested in broker/tests/http_api.rs).
const GO_RUNTIME: &str = "Go runtime profiling/tuning endpoint: sluiced answers 501";
const INTENDED: &[(&str, &str)] = &[
    ("debug_freememory", GO_RUNTIME),
    ("debug_setblockrate_ok", GO_RUNTIME),
    ("debug_setblockrate_invalid", GO_RUNTIME),
    ("debug_pprof_index", GO_RUNTIME),
    ("debug_pprof_cmdline", GO_RUNTIME),
    ("debug_pprof_symbol_get", GO_RUNTIME),
    ("debug_pprof_symbol_post", GO_RUNTIME),
    ("debug_pprof_heap", GO_RUNTIME),
    ("debug_pprof_goroutine", GO_RUNTIME),
    ("debug_pprof_block", GO_RUNTIME),
    ("debug_pprof_threadcreate", GO_RUNTIME),
    ("debug_pprof_profile", GO_RUNTIME),
];

#[test]
fn http_nsqd_transcript_replays_against_sluiced() {
    let outcomes = sluice_tests::golden::replay_http_file("http_nsqd.jsonl", "nsqd").unwrap();
    sluice_tests::golden::report_with_intended_differences("http_nsqd.jsonl", &outcomes, INTENDED);
}
