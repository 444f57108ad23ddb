//! Replays the nsqlookupd transcripts recorded from upstream v1.3.0 against `sluice-lookupd`:
//! `lookup_v1.jsonl` (TCP protocol V1, one fresh daemon per scenario) and `http_lookupd.jsonl`
//! (the HTTP API, in order against one daemon, `unordered` arrays compared as multisets).
//!
//! Run one scenario: `GOLDEN_ONLY=ping_before_identify cargo test -p sluice-tests --test golden_lookup`.

#[test]
fn lookup_v1_transcripts_replay_against_sluice_lookupd() {
    if sluice_tests::golden::only_filter().is_some() && !only_names_in("lookup_v1.jsonl") {
        return;
    }
    let outcomes = sluice_tests::golden::replay_tcp_file("lookup_v1.jsonl").unwrap();
    sluice_tests::golden::report("lookup_v1.jsonl", &outcomes);
}

#[test]
fn http_lookupd_transcript_replays_against_sluice_lookupd() {
    if sluice_tests::golden::only_filter().is_some() && !only_names_in("http_lookupd.jsonl") {
        return;
    }
    let outcomes =
        sluice_tests::golden::replay_http_file("http_lookupd.jsonl", "nsqlookupd").unwrap();
    sluice_tests::golden::report("http_lookupd.jsonl", &outcomes);
}

/// With `GOLDEN_ONLY` set, each test runs only if the names belong to its file (the two files
/// share this test binary).
fn only_names_in(file: &str) -> bool {
    let text = std::fs::read_to_string(sluice_tests::bins::golden_dir().join(file)).unwrap();
    let names = sluice_tests::golden::only_filter().unwrap_or_default();
    names
        .iter()
        .any(|name| text.contains(&format!("\"name\": \"{name}\"")))
}
