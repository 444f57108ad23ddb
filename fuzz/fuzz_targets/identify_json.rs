//! Arbitrary bytes as an IDENTIFY body: `IdentifyRequest::from_json`, then `negotiate` with
//! the default limits, then the response.
//!
//! Checks, crashing on a breach: parsing and negotiation never panic; an error from parsing is
//! upstream's one text; a parsed request serializes and parses back to itself; negotiated
//! settings lie within the limits; the response JSON parses back to the same response.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_proto::identify::{negotiate, IdentifyRequest, IdentifyResponse, ServerFeatures};
use sluice_proto::{ErrorCode, Limits};

fuzz_target!(|data: &[u8]| {
    let req = match IdentifyRequest::from_json(data) {
        Ok(req) => req,
        Err(err) => {
            assert_eq!(
                err.frame_text(),
                "E_BAD_BODY IDENTIFY failed to decode JSON body"
            );
            return;
        }
    };
    let json = serde_json::to_vec(&req).expect("a request always serializes");
    assert_eq!(
        IdentifyRequest::from_json(&json).as_ref(),
        Ok(&req),
        "request round trip"
    );

    let limits = Limits::default();
    let features = ServerFeatures {
        tls: data.len() % 2 == 0,
        snappy: true,
        deflate: true,
        auth_required: data.len() % 3 == 0,
    };
    let n = match negotiate(&req, &limits, &features) {
        Ok(n) => n,
        Err(err) => {
            assert!(matches!(
                err.code,
                ErrorCode::BadBody | ErrorCode::IdentifyFailed
            ));
            return;
        }
    };
    if let Some(interval) = n.heartbeat_interval {
        assert!(interval <= limits.max_heartbeat_interval);
    }
    if let Some(timeout) = n.output_buffer_timeout {
        assert!(timeout <= limits.max_output_buffer_timeout);
    }
    assert!(n.output_buffer_size as u64 <= limits.max_output_buffer_size);
    assert!(n.msg_timeout <= limits.max_msg_timeout);
    assert!(n.sample_rate <= 99);
    assert!(n.deflate_level <= limits.max_deflate_level);
    assert!(!(n.snappy && n.deflate));
    assert!(!n.tls_v1 || (features.tls && n.feature_negotiation));

    let response = IdentifyResponse::new(&n, &limits, &features, "1.3.0");
    let parsed: IdentifyResponse =
        serde_json::from_slice(&response.to_json()).expect("the response is JSON");
    assert_eq!(parsed, response);
});
