//! Comparisons with golden expectations, each returning a precise, human-readable difference:
//! frames (with byte-range and JSON-key masks), HTTP bodies (JSON paths, regexes, `$body`,
//! unordered arrays), the two content-type headers, and `select`/`keys` checks.
//! Bytes are shown in the golden notation so a report lines up with the file.

use std::collections::BTreeMap;

use crate::escape::{decode, encode_short};
use crate::frame::Frame;
use crate::golden::model::{Check, ExpectedFrame, FrameVariable, HttpLine, Variable};
use crate::http::Response;
use crate::json::{first_difference, Json};

/// Shown instead of a masked value or text.
pub const MASK: &str = "<masked>";
/// How much of a long byte string a report shows.
const SHOW_BYTES: usize = 600;

/// Compares frame `index` of a step with its expectation, applying the step's masks.
///
/// # Errors
/// The difference, with both frames shown.
pub fn compare_frame(
    index: usize,
    expected: &ExpectedFrame,
    got: &Frame,
    variables: &[FrameVariable],
) -> Result<(), String> {
    let want = decode(&expected.raw)?;
    let masks: Vec<&FrameVariable> = variables.iter().filter(|v| v.frame == index).collect();
    let json_keys: Vec<&str> = masks.iter().filter_map(|v| v.json.as_deref()).collect();
    let problem = if json_keys.is_empty() {
        let ranges: Vec<[usize; 2]> = masks.iter().filter_map(|v| v.bytes).collect();
        compare_masked_bytes(&want, &got.raw, &ranges)
    } else {
        compare_json_frame(&want, got, &json_keys)
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(format!(
            "frame {index}: {problem}\n      expected: raw \"{}\"\n      got:      {} raw \"{}\"",
            encode_short(&want, SHOW_BYTES),
            got.describe(),
            encode_short(&got.raw, SHOW_BYTES)
        )),
    }
}

/// Byte comparison where `ranges` (`[a, b)`) are ignored; lengths must match.
fn compare_masked_bytes(want: &[u8], got: &[u8], ranges: &[[usize; 2]]) -> Option<String> {
    if want.len() != got.len() {
        return Some(format!("length {} expected, got {}", want.len(), got.len()));
    }
    let masked = |at: usize| ranges.iter().any(|[a, b]| (*a..*b).contains(&at));
    let first = (0..want.len()).find(|&at| !masked(at) && want.get(at) != got.get(at))?;
    Some(format!("bytes differ from offset {first}"))
}

/// Compares frame type and JSON payload with top-level `keys` masked (key order counts).
fn compare_json_frame(want: &[u8], got: &Frame, keys: &[&str]) -> Option<String> {
    let (want_type, got_type) = (want.get(4..8), got.raw.get(4..8));
    if want_type != got_type {
        return Some("frame type differs".to_owned());
    }
    let header = got.raw.len() - got.data().len();
    let want_payload = want.get(header..).unwrap_or_default();
    let parse = |bytes: &[u8], who: &str| Json::parse(bytes).map_err(|e| format!("{who} {e}"));
    let (mut want_json, mut got_json) =
        match (parse(want_payload, "expected"), parse(got.data(), "got")) {
            (Ok(w), Ok(g)) => (w, g),
            (Err(e), _) | (_, Err(e)) => return Some(e),
        };
    for key in keys {
        mask_top_level(&mut want_json, key);
        mask_top_level(&mut got_json, key);
    }
    first_difference(&want_json, &got_json).map(|d| format!("JSON payload: {d}"))
}

fn mask_top_level(json: &mut Json, key: &str) {
    if let Json::Object(fields) = json {
        for (k, v) in fields.iter_mut() {
            if k == key {
                *v = Json::Masked;
            }
        }
    }
}

/// Compares a reply body with the line's `response_body` under its `variable` and `unordered`.
///
/// # Errors
/// The difference.
pub fn compare_http_body(line: &HttpLine, got: &[u8]) -> Result<(), String> {
    if line
        .variable
        .iter()
        .any(|v| *v == Variable::Path("$body".to_owned()))
    {
        return Ok(());
    }
    let recorded = line
        .response_body
        .as_deref()
        .ok_or("the line has no recorded body and no $body mask")?;
    let want = decode(recorded)?;
    let paths: Vec<&str> = line
        .variable
        .iter()
        .filter_map(|v| match v {
            Variable::Path(path) => Some(path.as_str()),
            Variable::Regex { .. } => None,
        })
        .collect();
    let regexes: Vec<&str> = line
        .variable
        .iter()
        .filter_map(|v| match v {
            Variable::Regex { regex } => Some(regex.as_str()),
            Variable::Path(_) => None,
        })
        .collect();
    if !paths.is_empty() || !line.unordered.is_empty() {
        compare_json_bodies(&want, got, &paths, &line.unordered)
    } else if !regexes.is_empty() {
        compare_text_bodies(&want, got, &regexes)
    } else if want == got {
        Ok(())
    } else {
        Err(format!(
            "body differs\n      expected: \"{}\"\n      got:      \"{}\"",
            encode_short(&want, SHOW_BYTES),
            encode_short(got, SHOW_BYTES)
        ))
    }
}

/// Parses both bodies, masks `paths`, sorts `unordered` arrays, then compares in key order.
///
/// # Errors
/// Either body is not JSON, or the first difference.
pub fn compare_json_bodies(
    want: &[u8],
    got: &[u8],
    paths: &[&str],
    unordered: &[String],
) -> Result<(), String> {
    let mut want_json = Json::parse(want).map_err(|e| format!("expected body {e}"))?;
    let mut got_json = Json::parse(got)
        .map_err(|e| format!("got body {e}: \"{}\"", encode_short(got, SHOW_BYTES)))?;
    for json in [&mut want_json, &mut got_json] {
        for path in paths {
            json.mask(path);
        }
        for path in unordered {
            json.sort_arrays(path);
        }
    }
    match first_difference(&want_json, &got_json) {
        None => Ok(()),
        Some(difference) => Err(format!(
            "JSON body: {difference}\n      expected (masked): {}\n      got (masked):      {}",
            truncate(&want_json.to_compact()),
            truncate(&got_json.to_compact())
        )),
    }
}

/// Replaces every match of each multi-line regex in both texts, then compares them.
///
/// # Errors
/// A bad pattern, or the first differing line.
pub fn compare_text_bodies(want: &[u8], got: &[u8], regexes: &[&str]) -> Result<(), String> {
    let mut want_text = String::from_utf8_lossy(want).into_owned();
    let mut got_text = String::from_utf8_lossy(got).into_owned();
    for pattern in regexes {
        let regex = fancy_regex::Regex::new(&format!("(?m){pattern}"))
            .map_err(|e| format!("bad regex {pattern:?}: {e}"))?;
        want_text = regex.replace_all(&want_text, MASK).into_owned();
        got_text = regex.replace_all(&got_text, MASK).into_owned();
    }
    if want_text == got_text {
        return Ok(());
    }
    let line = want_text
        .split('\n')
        .zip(got_text.split('\n'))
        .position(|(w, g)| w != g)
        .unwrap_or_else(|| {
            want_text
                .split('\n')
                .count()
                .min(got_text.split('\n').count())
        });
    let show = |text: &str| {
        text.split('\n')
            .nth(line)
            .unwrap_or("(no such line)")
            .to_owned()
    };
    Err(format!(
        "text body differs at line {} (after masking)\n      expected line: \"{}\"\n      got line:      \"{}\"\n      expected (masked): \"{}\"\n      got (masked):      \"{}\"",
        line + 1,
        encode_short(show(&want_text).as_bytes(), SHOW_BYTES),
        encode_short(show(&got_text).as_bytes(), SHOW_BYTES),
        encode_short(want_text.as_bytes(), SHOW_BYTES * 3),
        encode_short(got_text.as_bytes(), SHOW_BYTES * 3)
    ))
}

/// Compares `Content-Type` and `X-NSQ-Content-Type` (present or absent) with the recorded pair.
///
/// # Errors
/// The recorded and received pairs.
pub fn compare_headers(expected: &BTreeMap<String, String>, got: &Response) -> Result<(), String> {
    let mut received = BTreeMap::new();
    for name in ["Content-Type", "X-NSQ-Content-Type"] {
        if let Some(value) = got.header(name) {
            received.insert(name.to_owned(), value.to_owned());
        }
    }
    let expected: BTreeMap<String, String> = expected
        .iter()
        .map(|(name, value)| (canonical_header(name), value.clone()))
        .collect();
    if expected == received {
        Ok(())
    } else {
        Err(format!("headers: expected {expected:?}, got {received:?}"))
    }
}

fn canonical_header(name: &str) -> String {
    if name.eq_ignore_ascii_case("content-type") {
        "Content-Type".to_owned()
    } else if name.eq_ignore_ascii_case("x-nsq-content-type") {
        "X-NSQ-Content-Type".to_owned()
    } else {
        name.to_owned()
    }
}

/// Runs `select`/`keys` checks against a JSON reply.
///
/// # Errors
/// Each failed check, one per line.
pub fn run_checks(checks: &[Check], body: &[u8]) -> Result<(), String> {
    let json = Json::parse(body)
        .map_err(|e| format!("reply {e}: \"{}\"", encode_short(body, SHOW_BYTES)))?;
    let failures: Vec<String> = checks
        .iter()
        .filter_map(|check| check_one(check, &json).err())
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n    "))
    }
}

fn check_one(check: &Check, json: &Json) -> Result<(), String> {
    let Some(node) = json.select(&check.select) else {
        return Err(format!(
            "select {:?}: not found in {}",
            check.select,
            truncate(&json.to_compact())
        ));
    };
    let got = node.to_value();
    let (got, want) = match &check.keys {
        None => (got, check.result.clone()),
        Some(keys) => {
            let pick = |v: &serde_json::Value| -> BTreeMap<String, Option<serde_json::Value>> {
                keys.iter()
                    .map(|k| (k.clone(), v.get(k).cloned()))
                    .collect()
            };
            (
                serde_json::to_value(pick(&got)).unwrap_or_default(),
                serde_json::to_value(pick(&check.result)).unwrap_or_default(),
            )
        }
    };
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "select {:?}: expected {want}, got {got}",
            check.select
        ))
    }
}

fn truncate(text: &str) -> String {
    encode_short(text.as_bytes(), SHOW_BYTES * 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Framing;

    fn frame(raw: &[u8]) -> Frame {
        Frame {
            raw: raw.to_vec(),
            framing: Framing::V2,
        }
    }

    fn expected(raw: &str) -> ExpectedFrame {
        ExpectedFrame {
            kind: None,
            data: None,
            json: None,
            raw: raw.to_owned(),
        }
    }

    fn bytes_mask(frame: usize, a: usize, b: usize) -> FrameVariable {
        FrameVariable {
            frame,
            bytes: Some([a, b]),
            json: None,
            what: None,
        }
    }

    #[test]
    fn exact_frames_match_and_differences_are_shown_escaped() {
        let ok = expected("\\x00\\x00\\x00\\x06\\x00\\x00\\x00\\x00OK");
        assert!(compare_frame(0, &ok, &frame(b"\0\0\0\x06\0\0\0\0OK"), &[]).is_ok());
        let err = compare_frame(0, &ok, &frame(b"\0\0\0\x06\0\0\0\x01OK"), &[]).unwrap_err();
        assert!(err.contains("bytes differ from offset 7"), "{err}");
        assert!(
            err.contains("raw \"\\x00\\x00\\x00\\x06\\x00\\x00\\x00\\x01OK\""),
            "{err}"
        );
        assert!(err.contains("got:      error \"OK\""), "{err}");
    }

    #[test]
    fn byte_masks_apply_only_to_their_frame_and_range() {
        let want = expected("\\x00\\x00\\x00\\x06\\x00\\x00\\x00\\x02ab");
        let got = frame(b"\0\0\0\x06\0\0\0\x02xy");
        assert!(compare_frame(1, &want, &got, &[bytes_mask(1, 8, 10)]).is_ok());
        assert!(compare_frame(1, &want, &got, &[bytes_mask(0, 8, 10)]).is_err());
        assert!(compare_frame(1, &want, &got, &[bytes_mask(1, 8, 9)]).is_err());
        let longer = frame(b"\0\0\0\x07\0\0\0\x02xyz");
        let err = compare_frame(1, &want, &longer, &[bytes_mask(1, 8, 10)]).unwrap_err();
        assert!(err.contains("length 10 expected, got 11"), "{err}");
    }

    #[test]
    fn json_masks_ignore_length_but_not_order_or_type() {
        let want =
            expected("\\x00\\x00\\x00\\x1b\\x00\\x00\\x00\\x00{\"version\":\"1.3.0\",\"a\":1}");
        let mask = [FrameVariable {
            frame: 0,
            bytes: None,
            json: Some("version".to_owned()),
            what: None,
        }];
        let same = frame(b"\0\0\0\x1e\0\0\0\0{\"version\":\"0.1.0-x\",\"a\":1}");
        assert!(compare_frame(0, &want, &same, &mask).is_ok());
        let reordered = frame(b"\0\0\0\x1e\0\0\0\0{\"a\":1,\"version\":\"0.1.0-x\"}");
        assert!(compare_frame(0, &want, &reordered, &mask).is_err());
        let error_type = frame(b"\0\0\0\x1e\0\0\0\x01{\"version\":\"0.1.0-x\",\"a\":1}");
        assert!(compare_frame(0, &want, &error_type, &mask).is_err());
        let changed = frame(b"\0\0\0\x1e\0\0\0\0{\"version\":\"0.1.0-x\",\"a\":2}");
        let err = compare_frame(0, &want, &changed, &mask).unwrap_err();
        assert!(err.contains("$.a: expected 1, got 2"), "{err}");
    }

    fn line(body: &str, variable: Vec<Variable>, unordered: Vec<String>) -> HttpLine {
        HttpLine {
            name: "t".to_owned(),
            description: None,
            setup: Vec::new(),
            method: "GET".to_owned(),
            path: Some("/".to_owned()),
            body: None,
            status: 200,
            headers: BTreeMap::new(),
            response_body: Some(body.to_owned()),
            variable,
            unordered,
        }
    }

    #[test]
    fn http_bodies_without_variables_compare_bytewise() {
        let l = line("{\"a\":1}", vec![], vec![]);
        assert!(compare_http_body(&l, b"{\"a\":1}").is_ok());
        assert!(
            compare_http_body(&l, b"{\"a\": 1}").is_err(),
            "spacing counts when exact"
        );
    }

    #[test]
    fn http_json_paths_mask_in_both_bodies() {
        let l = line(
            "{\"start_time\":1,\"topics\":[{\"n\":\"a\"},{\"n\":\"b\"}]}",
            vec![Variable::Path("start_time".to_owned())],
            vec![],
        );
        assert!(compare_http_body(
            &l,
            b"{\"start_time\":99,\"topics\":[{\"n\":\"a\"},{\"n\":\"b\"}]}"
        )
        .is_ok());
        let err = compare_http_body(
            &l,
            b"{\"start_time\":9,\"topics\":[{\"n\":\"b\"},{\"n\":\"a\"}]}",
        )
        .unwrap_err();
        assert!(err.contains("$.topics.0.n"), "{err}");
        let l = line(
            "{\"topics\":[\"a\",\"b\"]}",
            vec![],
            vec!["topics".to_owned()],
        );
        assert!(compare_http_body(&l, b"{\"topics\":[\"b\",\"a\"]}").is_ok());
        assert!(compare_http_body(&l, b"{\"topics\":[\"b\",\"b\"]}").is_err());
    }

    #[test]
    fn http_regexes_are_multiline_and_support_lookbehind() {
        let l = line(
            "nsqd v1.3.0 (built w/go1.19.8)\\x0auptime 2.3s\\x0a[V2 golden-host:51362 golden/1.0]\\x0a",
            vec![
                Variable::Regex { regex: "^nsqd v.*$".to_owned() },
                Variable::Regex { regex: "^uptime .*$".to_owned() },
                Variable::Regex { regex: "(?<=golden-host:)\\d+".to_owned() },
            ],
            vec![],
        );
        let got = b"nsqd v0.1.0-sluice\nuptime 5ms\n[V2 golden-host:40000 golden/1.0]\n";
        assert!(compare_http_body(&l, got).is_ok());
        let wrong = b"nsqd v0.1.0-sluice\nuptime 5ms\n[V2 other-host:40000 golden/1.0]\n";
        let err = compare_http_body(&l, wrong).unwrap_err();
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn dollar_body_skips_the_body() {
        let mut l = line("", vec![Variable::Path("$body".to_owned())], vec![]);
        l.response_body = None;
        assert!(compare_http_body(&l, b"anything").is_ok());
    }

    #[test]
    fn headers_compare_the_pair_exactly() {
        let response = Response {
            status: 200,
            headers: vec![
                (
                    "content-type".to_owned(),
                    "text/plain; charset=utf-8".to_owned(),
                ),
                ("Date".to_owned(), "now".to_owned()),
            ],
            body: Vec::new(),
        };
        let mut expected = BTreeMap::new();
        expected.insert(
            "Content-Type".to_owned(),
            "text/plain; charset=utf-8".to_owned(),
        );
        assert!(compare_headers(&expected, &response).is_ok());
        expected.insert(
            "X-NSQ-Content-Type".to_owned(),
            "nsq; version=1.0".to_owned(),
        );
        let err = compare_headers(&expected, &response).unwrap_err();
        assert!(err.contains("X-NSQ-Content-Type"), "{err}");
    }

    #[test]
    fn checks_select_and_restrict_to_keys() {
        let body = br#"{"topics":[{"channels":[{"depth":0,"in_flight_count":1,"extra":5}]}]}"#;
        let check = |keys: Option<Vec<&str>>, result: &str| Check {
            select: "topics.0.channels.0".to_owned(),
            keys: keys.map(|k| k.into_iter().map(str::to_owned).collect()),
            result: serde_json::from_str(result).unwrap(),
        };
        let good = check(
            Some(vec!["depth", "in_flight_count"]),
            r#"{"in_flight_count":1,"depth":0}"#,
        );
        assert!(run_checks(&[good], body).is_ok());
        let bad = check(Some(vec!["depth"]), r#"{"depth":1}"#);
        assert!(run_checks(&[bad], body)
            .unwrap_err()
            .contains("expected {\"depth\":1}"));
        let whole = check(None, r#"{"depth":0,"in_flight_count":1}"#);
        assert!(
            run_checks(&[whole], body).is_err(),
            "keys: null compares the whole value"
        );
        let missing = Check {
            select: "topics.3".to_owned(),
            keys: None,
            result: serde_json::Value::Null,
        };
        assert!(run_checks(&[missing], body)
            .unwrap_err()
            .contains("not found"));
    }
}
