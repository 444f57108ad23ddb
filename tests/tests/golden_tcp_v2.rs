//! Replays every scenario of `../shared/golden/tcp_v2.jsonl` (recorded from upstream nsqd v1.3.0)
//! against a fresh `sluiced` per scenario, with the scenario's flags, and fails listing every
//! scenario whose frames, close behaviour or stats differ. Byte-exact except where the file's
//! `variable` entries mask timestamps, ids and versions.
//!
//! Run one scenario: `GOLDEN_ONLY=pub_ok cargo test -p sluice-tests --test golden_tcp_v2`.

#[test]
fn tcp_v2_transcripts_replay_against_sluiced() {
    let outcomes = sluice_tests::golden::replay_tcp_file("tcp_v2.jsonl").unwrap();
    sluice_tests::golden::report("tcp_v2.jsonl", &outcomes);
}
