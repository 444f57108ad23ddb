//! IDENTIFY parsing and negotiation against upstream's rules.
//!
//! Goal: every range, default and error text of `client_v2.go` and `protocol_v2.go` IDENTIFY,
//! and the Go `encoding/json` behaviours a client can observe. Method: table tests on
//! `from_json` and `negotiate`, with expected values taken from upstream's code and the golden
//! transcripts.

use super::*;

fn parse(json: &str) -> IdentifyRequest {
    IdentifyRequest::from_json(json.as_bytes()).unwrap()
}

fn negotiated(json: &str) -> Result<Negotiated, ProtoError> {
    negotiate(&parse(json), &Limits::default(), &golden_features())
}

/// nsqd v1.3.0's defaults: snappy and deflate on, no TLS, no auth.
fn golden_features() -> ServerFeatures {
    ServerFeatures {
        tls: false,
        snappy: true,
        deflate: true,
        auth_required: false,
    }
}

fn response(json: &str) -> String {
    let limits = Limits::default();
    let n = negotiate(&parse(json), &limits, &golden_features()).unwrap();
    let bytes = IdentifyResponse::new(&n, &limits, &golden_features(), "1.3.0").to_json();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn all_fields_parse_with_upstream_names() {
    let req = parse(
        r#"{"client_id":"c","hostname":"h","heartbeat_interval":5000,"output_buffer_size":100,
        "output_buffer_timeout":50,"feature_negotiation":true,"tls_v1":true,"snappy":true,
        "deflate":true,"deflate_level":3,"sample_rate":10,"user_agent":"ua","msg_timeout":2000,
        "short_id":"s","long_id":"l"}"#,
    );
    let expected = IdentifyRequest {
        client_id: "c".into(),
        hostname: "h".into(),
        heartbeat_interval: 5000,
        output_buffer_size: 100,
        output_buffer_timeout: 50,
        feature_negotiation: true,
        tls_v1: true,
        snappy: true,
        deflate: true,
        deflate_level: 3,
        sample_rate: 10,
        user_agent: "ua".into(),
        msg_timeout: 2000,
        short_id: "s".into(),
        long_id: "l".into(),
    };
    assert_eq!(req, expected);
}

#[test]
fn go_json_leniencies_are_mirrored() {
    // Top-level null and an empty object are empty requests.
    assert_eq!(parse("null"), IdentifyRequest::default());
    assert_eq!(parse(" {} "), IdentifyRequest::default());
    // Keys match case-insensitively, including Go's two non-ASCII folds.
    assert_eq!(parse(r#"{"CLIENT_ID":"a"}"#).client_id, "a");
    assert!(parse(r#"{"\u017fnappy":true}"#).snappy);
    assert_eq!(parse(r#"{"client\u005fid":"e"}"#).client_id, "e");
    // The last duplicate wins, and null leaves the field alone.
    assert_eq!(parse(r#"{"client_id":"a","Client_Id":"b"}"#).client_id, "b");
    assert_eq!(
        parse(r#"{"client_id":"a","client_id":null}"#).client_id,
        "a"
    );
    assert_eq!(
        parse(r#"{"msg_timeout":null,"tls_v1":null}"#),
        IdentifyRequest::default()
    );
    // Unknown keys are ignored whatever they hold, even numbers Go would not convert.
    assert_eq!(
        parse(r#"{"x":{"y":[1,2e999,"\ud800"]},"z":-0.5,"user_agent":"u"}"#).user_agent,
        "u"
    );
    // -0 is the integer 0 for Go.
    assert_eq!(parse(r#"{"heartbeat_interval":-0}"#).heartbeat_interval, 0);
}

#[test]
fn invalid_utf8_in_strings_becomes_replacement_characters() {
    let req = IdentifyRequest::from_json(b"{\"client_id\":\"a\xffb\xf0\x9f\x98\",\"x\":\"\xfe\"}")
        .unwrap();
    assert_eq!(req.client_id, "a\u{fffd}b\u{fffd}\u{fffd}\u{fffd}");
    // An escaped lone surrogate is one replacement character, as in Go; a valid pair is kept.
    let req = parse(r#"{"client_id":"a\ud800b\udc00\ud83d\ude00"}"#);
    assert_eq!(req.client_id, "a\u{fffd}b\u{fffd}\u{1f600}");
}

#[test]
fn what_go_refuses_is_refused() {
    for body in [
        "not json",
        "",
        " ",
        "[]",
        "1",
        "\"s\"",
        "true",
        "{} x",
        "{\"client_id\":1}",
        "{\"client_id\":[]}",
        "{\"heartbeat_interval\":1.0}",
        "{\"heartbeat_interval\":1e3}",
        "{\"heartbeat_interval\":\"5000\"}",
        "{\"heartbeat_interval\":9223372036854775808}",
        "{\"sample_rate\":2147483648}",
        "{\"tls_v1\":1}",
        "{\"tls_v1\":\"true\"}",
        "{\"client_id\":\"a\" \"b\"}",
        "{\"client_id\":\"\x01\"}",
        "{\"client_id\":\"\t\"}",
        "{\"x\x1f\":1}",
        "{\"x\":\"\n\"}",
    ] {
        let err = IdentifyRequest::from_json(body.as_bytes()).unwrap_err();
        assert_eq!(
            err.frame_text(),
            "E_BAD_BODY IDENTIFY failed to decode JSON body",
            "{body:?}"
        );
    }
    assert_eq!(
        parse("{\"heartbeat_interval\":9223372036854775807}").heartbeat_interval,
        i64::MAX
    );
    assert_eq!(parse("{\"sample_rate\":-2147483648}").sample_rate, i32::MIN);
}

#[test]
fn defaults_match_upstream() {
    let n = negotiated("{}").unwrap();
    let expected = Negotiated {
        client_id: String::new(),
        hostname: String::new(),
        user_agent: String::new(),
        heartbeat_interval: Some(Duration::from_secs(30)),
        output_buffer_size: 16384,
        output_buffer_timeout: Some(Duration::from_millis(250)),
        msg_timeout: Duration::from_secs(60),
        sample_rate: 0,
        feature_negotiation: false,
        tls_v1: false,
        snappy: false,
        deflate: false,
        deflate_level: 6,
    };
    assert_eq!(n, expected);
}

#[test]
fn ranges_are_inclusive_and_texts_are_upstreams() {
    let ok = |json: &str| negotiated(json).unwrap();
    let err = |json: &str| negotiated(json).unwrap_err().frame_text();
    assert_eq!(
        ok(r#"{"heartbeat_interval":1000}"#).heartbeat_interval,
        Some(Duration::from_secs(1))
    );
    assert_eq!(
        ok(r#"{"heartbeat_interval":60000}"#).heartbeat_interval,
        Some(Duration::from_secs(60))
    );
    assert_eq!(ok(r#"{"heartbeat_interval":-1}"#).heartbeat_interval, None);
    for bad in [999, 60001, -2] {
        assert_eq!(
            err(&format!(r#"{{"heartbeat_interval":{bad}}}"#)),
            format!("E_BAD_BODY IDENTIFY heartbeat interval ({bad}) is invalid")
        );
    }
    assert_eq!(ok(r#"{"output_buffer_size":64}"#).output_buffer_size, 64);
    assert_eq!(
        ok(r#"{"output_buffer_size":65536}"#).output_buffer_size,
        65536
    );
    for bad in [63, 65537, -2] {
        assert_eq!(
            err(&format!(r#"{{"output_buffer_size":{bad}}}"#)),
            format!("E_BAD_BODY IDENTIFY output buffer size ({bad}) is invalid")
        );
    }
    assert_eq!(
        ok(r#"{"output_buffer_timeout":25}"#).output_buffer_timeout,
        Some(Duration::from_millis(25))
    );
    assert_eq!(
        ok(r#"{"output_buffer_timeout":30000}"#).output_buffer_timeout,
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        ok(r#"{"output_buffer_timeout":-1}"#).output_buffer_timeout,
        None
    );
    for bad in [1, 24, 30001, -2] {
        assert_eq!(
            err(&format!(r#"{{"output_buffer_timeout":{bad}}}"#)),
            format!("E_BAD_BODY IDENTIFY output buffer timeout ({bad}) is invalid")
        );
    }
    assert_eq!(ok(r#"{"sample_rate":99}"#).sample_rate, 99);
    for bad in [100, -1] {
        assert_eq!(
            err(&format!(r#"{{"sample_rate":{bad}}}"#)),
            format!("E_BAD_BODY IDENTIFY sample rate ({bad}) is invalid")
        );
    }
    assert_eq!(
        ok(r#"{"msg_timeout":1000}"#).msg_timeout,
        Duration::from_secs(1)
    );
    assert_eq!(
        ok(r#"{"msg_timeout":900000}"#).msg_timeout,
        Duration::from_secs(900)
    );
    for bad in [999, 900001, -1] {
        assert_eq!(
            err(&format!(r#"{{"msg_timeout":{bad}}}"#)),
            format!("E_BAD_BODY IDENTIFY msg timeout ({bad}) is invalid")
        );
    }
}

#[test]
fn errors_come_in_upstreams_order() {
    // Heartbeat before output buffer, buffer timeout before size, then sample rate, then
    // msg timeout, then compression.
    let all_bad = r#"{"heartbeat_interval":1,"output_buffer_size":1,"output_buffer_timeout":1,
        "sample_rate":100,"msg_timeout":1,"feature_negotiation":true,"snappy":true,"deflate":true}"#;
    assert!(negotiated(all_bad)
        .unwrap_err()
        .frame_text()
        .contains("heartbeat interval (1)"));
    let buffer_bad = r#"{"output_buffer_size":1,"output_buffer_timeout":1,"sample_rate":100}"#;
    assert!(negotiated(buffer_bad)
        .unwrap_err()
        .frame_text()
        .contains("output buffer timeout (1)"));
    let rate_bad = r#"{"output_buffer_size":1,"sample_rate":100}"#;
    assert!(negotiated(rate_bad)
        .unwrap_err()
        .frame_text()
        .contains("output buffer size (1)"));
    let msg_bad = r#"{"sample_rate":100,"msg_timeout":1}"#;
    assert!(negotiated(msg_bad)
        .unwrap_err()
        .frame_text()
        .contains("sample rate (100)"));
}

#[test]
fn unbuffered_output_also_disables_the_buffer_timeout() {
    let n = negotiated(r#"{"output_buffer_size":-1,"output_buffer_timeout":100}"#).unwrap();
    assert_eq!((n.output_buffer_size, n.output_buffer_timeout), (0, None));
}

#[test]
fn compression_needs_negotiation_a_request_and_an_offer() {
    let both = r#"{"feature_negotiation":true,"snappy":true,"deflate":true}"#;
    assert_eq!(
        negotiated(both).unwrap_err().frame_text(),
        "E_IDENTIFY_FAILED cannot enable both deflate and snappy compression"
    );
    // Without feature negotiation upstream returns OK before looking at compression.
    let n = negotiated(r#"{"snappy":true,"deflate":true,"tls_v1":true}"#).unwrap();
    assert!(!n.snappy && !n.deflate && !n.tls_v1);
    // Only what the server offers is enabled.
    let offers_snappy = ServerFeatures {
        snappy: true,
        ..ServerFeatures::default()
    };
    let n = negotiate(&parse(both), &Limits::default(), &offers_snappy).unwrap();
    assert!(n.snappy && !n.deflate);
    let n = negotiate(
        &parse(r#"{"feature_negotiation":true,"tls_v1":true}"#),
        &Limits::default(),
        &ServerFeatures {
            tls: true,
            ..ServerFeatures::default()
        },
    )
    .unwrap();
    assert!(n.tls_v1);
}

#[test]
fn deflate_level_is_clamped_never_refused() {
    let level = |json: &str| negotiated(json).unwrap().deflate_level;
    assert_eq!(
        level(r#"{"feature_negotiation":true,"deflate":true,"deflate_level":3}"#),
        3
    );
    assert_eq!(
        level(r#"{"feature_negotiation":true,"deflate":true,"deflate_level":20}"#),
        6
    );
    assert_eq!(
        level(r#"{"feature_negotiation":true,"deflate":true,"deflate_level":-5}"#),
        6
    );
    // Without deflate the level reported is the default, clamped.
    assert_eq!(
        level(r#"{"feature_negotiation":true,"deflate_level":3}"#),
        6
    );
    let limits = Limits {
        max_deflate_level: 2,
        ..Limits::default()
    };
    let n = negotiate(&IdentifyRequest::default(), &limits, &golden_features()).unwrap();
    assert_eq!(n.deflate_level, 2);
}

#[test]
fn responses_match_the_golden_bytes() {
    let head = r#"{"client_id":"golden","hostname":"golden-host","user_agent":"golden/1.0","feature_negotiation":true"#;
    let cases = [
        (
            "}",
            r#"{"max_rdy_count":2500,"version":"1.3.0","max_msg_timeout":900000,"msg_timeout":60000,"tls_v1":false,"deflate":false,"deflate_level":6,"max_deflate_level":6,"snappy":false,"sample_rate":0,"auth_required":false,"output_buffer_size":16384,"output_buffer_timeout":250}"#,
        ),
        (
            r#","heartbeat_interval":5000,"output_buffer_size":16384,"output_buffer_timeout":100,"msg_timeout":30000,"sample_rate":50}"#,
            r#"{"max_rdy_count":2500,"version":"1.3.0","max_msg_timeout":900000,"msg_timeout":30000,"tls_v1":false,"deflate":false,"deflate_level":6,"max_deflate_level":6,"snappy":false,"sample_rate":50,"auth_required":false,"output_buffer_size":16384,"output_buffer_timeout":100}"#,
        ),
        (
            r#","output_buffer_size":-1,"output_buffer_timeout":-1}"#,
            r#"{"max_rdy_count":2500,"version":"1.3.0","max_msg_timeout":900000,"msg_timeout":60000,"tls_v1":false,"deflate":false,"deflate_level":6,"max_deflate_level":6,"snappy":false,"sample_rate":0,"auth_required":false,"output_buffer_size":1,"output_buffer_timeout":0}"#,
        ),
        (
            r#","deflate":true,"deflate_level":20}"#,
            r#"{"max_rdy_count":2500,"version":"1.3.0","max_msg_timeout":900000,"msg_timeout":60000,"tls_v1":false,"deflate":true,"deflate_level":6,"max_deflate_level":6,"snappy":false,"sample_rate":0,"auth_required":false,"output_buffer_size":16384,"output_buffer_timeout":250}"#,
        ),
    ];
    for (tail, expected) in cases {
        assert_eq!(response(&format!("{head}{tail}")), expected, "{tail}");
    }
}

#[test]
fn response_parses_back_and_tolerates_missing_or_extra_keys() {
    let json = response("{}");
    let parsed: IdentifyResponse = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed.to_json(), json.as_bytes());
    let sparse: IdentifyResponse =
        serde_json::from_str(r#"{"max_rdy_count":10,"future_key":1}"#).unwrap();
    assert_eq!(sparse.max_rdy_count, 10);
}

#[test]
fn request_serializes_with_upstream_names_and_parses_back() {
    let req = IdentifyRequest {
        client_id: "c".into(),
        feature_negotiation: true,
        heartbeat_interval: -1,
        ..IdentifyRequest::default()
    };
    let json = serde_json::to_string(&req).unwrap();
    assert!(json.starts_with(r#"{"client_id":"c","hostname":"","heartbeat_interval":-1,"#));
    assert!(!json.contains("short_id"));
    assert_eq!(IdentifyRequest::from_json(json.as_bytes()).unwrap(), req);
}
