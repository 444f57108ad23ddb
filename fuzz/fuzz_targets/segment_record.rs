//! Arbitrary bytes as a segment file: reading records one after another must never panic, and
//! every record it accepts must re-encode to the very bytes it was read from (so a damaged
//! record can never pass as a different, valid one).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_broker::storage::record::{self, Read};

fuzz_target!(|data: &[u8]| {
    let data = Bytes::copy_from_slice(data);
    let mut pos = 0;
    while let Read::Record(batch, len) = record::read(&data.slice(pos..)) {
        let mut again = Vec::new();
        let msgs = batch.messages.iter().map(|m| (&m.msg, m.due_ns));
        record::put_batch(&mut again, &batch.topic, batch.incarnation, msgs);
        assert_eq!(
            &again[..],
            &data[pos..pos + len],
            "a record did not re-encode to its bytes"
        );
        pos += len;
    }
});
