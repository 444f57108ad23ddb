//! Record codec tests: round trips, and what a reader sees when a segment is cut at any byte or
//! has a bit flipped — a torn tail or a reported corruption, never a silently skipped record.

use bytes::Bytes;
use proptest::prelude::*;
use sluice_proto::{Message, MessageId};

use super::*;

fn message(n: u64, body: &[u8]) -> Message {
    Message {
        id: MessageId::from_u64(n),
        timestamp: 1_700_000_000_000_000_000 + n as i64,
        attempts: 0,
        body: Bytes::copy_from_slice(body),
    }
}

fn encode(topic: &str, first_id: u64, bodies: &[&[u8]]) -> Vec<u8> {
    let msgs: Vec<Message> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| message(first_id + i as u64, b))
        .collect();
    let mut out = Vec::new();
    put_batch(&mut out, topic, 7, msgs.iter().map(|m| (m, 0)));
    out
}

/// Reads every record of a buffer; returns the batches and how reading ended.
fn read_all(data: Bytes) -> (Vec<Batch>, Read) {
    let mut pos = 0;
    let mut batches = Vec::new();
    loop {
        match read(&data.slice(pos..)) {
            Read::Record(b, len) => {
                batches.push(b);
                pos += len;
            }
            other => return (batches, other),
        }
    }
}

#[test]
fn a_batch_round_trips() {
    let data = Bytes::from(encode("orders", 41, &[b"one", b"", b"three"]));
    let Read::Record(batch, len) = read(&data) else {
        panic!("not a record")
    };
    assert_eq!(len, data.len());
    assert_eq!(batch.topic, "orders");
    assert_eq!(batch.incarnation, 7);
    let seqs: Vec<u64> = batch.messages.iter().map(StoredMessage::key).collect();
    assert_eq!(seqs, [41, 42, 43]);
    assert_eq!(&batch.messages[2].msg.body[..], b"three");
}

#[test]
fn zeros_are_the_end_and_a_short_header_is_incomplete() {
    assert_eq!(read(&Bytes::from_static(&[0; 64])), Read::End);
    assert_eq!(read(&Bytes::from_static(&[0; 3])), Read::End);
    assert_eq!(read(&Bytes::new()), Read::Incomplete);
    assert_eq!(read(&Bytes::from_static(&[5, 0, 0])), Read::Incomplete);
}

#[test]
fn cutting_the_last_record_anywhere_leaves_the_earlier_ones_and_an_incomplete_tail() {
    let mut data = encode("t", 0, &[b"first"]);
    let first_len = data.len();
    data.extend_from_slice(&encode("t", 1, &[b"second", b"third"]));
    let data = Bytes::from(data);
    for cut in first_len..data.len() {
        let (batches, end) = read_all(data.slice(..cut));
        assert_eq!(batches.len(), 1, "cut at {cut}");
        assert!(
            matches!(end, Read::Incomplete | Read::End),
            "cut at {cut}: {end:?}"
        );
    }
}

#[test]
fn every_flipped_bit_is_reported_never_skipped() {
    let data = Bytes::from(encode("t", 0, &[b"payload one", b"payload two"]));
    for byte in 0..data.len() {
        for bit in 0..8 {
            let mut bad = data.to_vec();
            bad[byte] ^= 1 << bit;
            let (batches, end) = read_all(Bytes::from(bad));
            // The record must not come back as a valid one with different contents.
            if let Some(b) = batches.first() {
                panic!("flip at {byte}.{bit} accepted as {b:?}");
            }
            assert!(
                matches!(end, Read::Corrupt(_) | Read::Incomplete | Read::End),
                "flip at {byte}.{bit}: {end:?}"
            );
        }
    }
}

proptest! {
    #[test]
    fn any_batches_round_trip(
        batches in proptest::collection::vec(
            ("[a-z]{1,20}", 0u64..1_000_000, proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..20)),
            1..8,
        )
    ) {
        let mut out = Vec::new();
        for (topic, seq, bodies) in &batches {
            let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
            out.extend_from_slice(&encode(topic, *seq, &refs));
        }
        let (read_back, end) = read_all(Bytes::from(out));
        prop_assert_eq!(end, Read::Incomplete);
        prop_assert_eq!(read_back.len(), batches.len());
        for (got, (topic, seq, bodies)) in read_back.iter().zip(&batches) {
            prop_assert_eq!(&got.topic, topic);
            prop_assert_eq!(got.messages.len(), bodies.len());
            prop_assert_eq!(got.messages[0].key(), *seq);
            for (m, b) in got.messages.iter().zip(bodies) {
                prop_assert_eq!(&m.msg.body[..], &b[..]);
            }
        }
    }

    #[test]
    fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = read_all(Bytes::from(data));
    }
}
