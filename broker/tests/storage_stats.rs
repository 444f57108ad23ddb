//! `/stats?include_storage=true` shows each shard's segment log (disk bytes, segments, writes,
//! fsyncs); without the parameter the document stays upstream's.

mod common;

use common::Broker;

#[test]
fn stats_show_disk_bytes_per_shard_only_when_asked() {
    let broker = Broker::start(2, &[]);
    for i in 0..8 {
        let (status, _) = broker.http("POST", &format!("/pub?topic=disk{i}"), b"0123456789");
        assert_eq!(status, 200);
    }
    let (status, body) = broker.http("GET", "/stats?format=json&include_storage=true", b"");
    assert_eq!(status, 200);
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    let shards = stats["storage"].as_array().expect("a storage array");
    assert_eq!(shards.len(), 2);
    let total: u64 = shards
        .iter()
        .map(|s| s["disk_bytes"].as_u64().unwrap())
        .sum();
    assert!(
        total > 8 * 10,
        "segment bytes {total} for 8 published messages"
    );
    for (i, s) in shards.iter().enumerate() {
        assert_eq!(s["shard"].as_u64(), Some(i as u64));
        assert!(s["segments"].as_u64().unwrap() >= 1);
    }
    let (_, plain) = broker.http("GET", "/stats?format=json", b"");
    let plain: serde_json::Value = serde_json::from_str(&plain).unwrap();
    assert!(
        plain.get("storage").is_none(),
        "upstream's document has no storage key"
    );
}
