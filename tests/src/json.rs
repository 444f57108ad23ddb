//! Order-preserving JSON for golden comparisons.
//!
//! The golden README says key order is significant, while `serde_json::Value` (without the
//! `preserve_order` feature, which would change every crate's JSON in a workspace build) sorts
//! object keys. So bodies are parsed into [`Json`], whose objects are key/value lists in wire
//! order, using serde_json's parser through a visitor. It also implements the golden `variable`
//! paths (dot-separated, `*` = any key or index), `select` paths (numbers index arrays),
//! `unordered` arrays (compared as multisets) and a precise first-difference report.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

/// A JSON value with object keys kept in the order they were read.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number as serde_json read it (integers and floats are distinct).
    Number(Number),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Json>),
    /// An object, keys in wire order (duplicates kept).
    Object(Vec<(String, Json)>),
    /// A value replaced by a `variable` mask; equal only to another mask.
    Masked,
}

impl Json {
    /// Parses a JSON document.
    ///
    /// # Errors
    /// The text is not one JSON value.
    pub fn parse(bytes: &[u8]) -> Result<Json, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("not JSON ({e})"))
    }

    /// Converts from `serde_json::Value` (key order is whatever the `Value` holds).
    pub fn from_value(value: &serde_json::Value) -> Json {
        use serde_json::Value;
        match value {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => Json::Number(n.clone()),
            Value::String(s) => Json::String(s.clone()),
            Value::Array(items) => Json::Array(items.iter().map(Json::from_value).collect()),
            Value::Object(map) => Json::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), Json::from_value(v)))
                    .collect(),
            ),
        }
    }

    /// Converts to `serde_json::Value` (key order is lost; masks become `"<masked>"`).
    pub fn to_value(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => Value::Number(n.clone()),
            Json::String(s) => Value::String(s.clone()),
            Json::Masked => Value::String("<masked>".to_owned()),
            Json::Array(items) => Value::Array(items.iter().map(Json::to_value).collect()),
            Json::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_value()))
                    .collect(),
            ),
        }
    }

    /// The value of `key` in an object (the first one, if repeated).
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Follows a golden `select` path: dot-separated keys, numbers index arrays; `""` is the root.
    pub fn select(&self, path: &str) -> Option<&Json> {
        if path.is_empty() {
            return Some(self);
        }
        path.split('.').try_fold(self, |node, segment| match node {
            Json::Object(_) => node.get(segment),
            Json::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        })
    }

    /// Replaces every value the path reaches with [`Json::Masked`] (`*` = any key or index).
    pub fn mask(&mut self, path: &str) {
        let segments: Vec<&str> = path.split('.').collect();
        self.for_each_at(&segments, &mut |node| *node = Json::Masked);
    }

    /// Sorts every array the path reaches by the compact text of its elements, so two arrays
    /// with the same elements in any order compare equal (multiset comparison).
    pub fn sort_arrays(&mut self, path: &str) {
        let segments: Vec<&str> = path.split('.').collect();
        self.for_each_at(&segments, &mut |node| {
            if let Json::Array(items) = node {
                items.sort_by_cached_key(Json::to_compact);
            }
        });
    }

    fn for_each_at(&mut self, segments: &[&str], apply: &mut dyn FnMut(&mut Json)) {
        let Some((first, rest)) = segments.split_first() else {
            apply(self);
            return;
        };
        match self {
            Json::Object(fields) => {
                for (key, value) in fields.iter_mut() {
                    if *first == "*" || key == first {
                        value.for_each_at(rest, apply);
                    }
                }
            }
            Json::Array(items) => {
                for (index, value) in items.iter_mut().enumerate() {
                    if *first == "*" || first.parse::<usize>().ok() == Some(index) {
                        value.for_each_at(rest, apply);
                    }
                }
            }
            _ => {}
        }
    }

    /// Compact JSON text in key order; masks print as `"<masked>"`.
    pub fn to_compact(&self) -> String {
        let mut out = String::new();
        self.write_compact(&mut out);
        out
    }

    fn write_compact(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(&n.to_string()),
            Json::String(s) => out.push_str(&serde_json::Value::from(s.as_str()).to_string()),
            Json::Masked => out.push_str("\"<masked>\""),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_compact(out);
                }
                out.push(']');
            }
            Json::Object(fields) => {
                out.push('{');
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::from(key.as_str()).to_string());
                    out.push(':');
                    value.write_compact(out);
                }
                out.push('}');
            }
        }
    }
}

/// Describes the first place where `got` differs from `expected` (key order counts), or `None`.
pub fn first_difference(expected: &Json, got: &Json) -> Option<String> {
    difference_at("$", expected, got)
}

fn difference_at(path: &str, expected: &Json, got: &Json) -> Option<String> {
    match (expected, got) {
        (Json::Object(want), Json::Object(have)) => {
            let want_keys: Vec<&str> = want.iter().map(|(k, _)| k.as_str()).collect();
            let have_keys: Vec<&str> = have.iter().map(|(k, _)| k.as_str()).collect();
            if want_keys != have_keys {
                return Some(format!(
                    "keys of {path}: expected {want_keys:?}, got {have_keys:?}"
                ));
            }
            want.iter()
                .zip(have)
                .find_map(|((key, w), (_, h))| difference_at(&format!("{path}.{key}"), w, h))
        }
        (Json::Array(want), Json::Array(have)) if want.len() == have.len() => want
            .iter()
            .zip(have)
            .enumerate()
            .find_map(|(i, (w, h))| difference_at(&format!("{path}.{i}"), w, h)),
        _ if expected == got => None,
        _ => Some(format!(
            "{path}: expected {}, got {}",
            expected.to_compact(),
            got.to_compact()
        )),
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Json, E> {
        Number::from_f64(v)
            .map(Json::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut fields = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Json>()? {
            fields.push((key, value));
        }
        Ok(Json::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Json {
        Json::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn key_order_is_kept_and_significant() {
        let a = parse(r#"{"b":1,"a":2}"#);
        let b = parse(r#"{"a":2,"b":1}"#);
        assert_eq!(a.to_compact(), r#"{"b":1,"a":2}"#);
        assert_ne!(a, b);
        let diff = first_difference(&a, &b).unwrap();
        assert!(
            diff.contains(r#"expected ["b", "a"], got ["a", "b"]"#),
            "{diff}"
        );
    }

    #[test]
    fn integers_and_floats_differ() {
        assert_ne!(parse("1"), parse("1.0"));
        assert_eq!(parse("-5"), parse("-5"));
    }

    #[test]
    fn select_follows_keys_and_indexes() {
        let doc = parse(r#"{"topics":[{"channels":[{"depth":7}]}]}"#);
        let depth = doc.select("topics.0.channels.0.depth").unwrap();
        assert_eq!(depth, &parse("7"));
        assert_eq!(doc.select("").unwrap(), &doc);
        assert!(doc.select("topics.1").is_none());
        assert!(doc.select("topics.x").is_none());
        assert!(doc.select("topics.0.channels.0.depth.more").is_none());
    }

    #[test]
    fn mask_with_wildcards_reaches_every_match() {
        let mut doc = parse(
            r#"{"topics":[{"channels":[{"clients":[{"remote_address":"a:1","state":3},
                {"remote_address":"b:2","state":3}]}]}],"start_time":5}"#,
        );
        doc.mask("topics.*.channels.*.clients.*.remote_address");
        doc.mask("start_time");
        doc.mask("no.such.path");
        assert_eq!(
            doc.to_compact(),
            r#"{"topics":[{"channels":[{"clients":[{"remote_address":"<masked>","state":3},{"remote_address":"<masked>","state":3}]}]}],"start_time":"<masked>"}"#
        );
    }

    #[test]
    fn masking_a_whole_object() {
        let mut a = parse(r#"{"memory":{"heap_objects":1},"x":1}"#);
        let mut b = parse(r#"{"memory":{"heap_objects":99,"more":2},"x":1}"#);
        a.mask("memory");
        b.mask("memory");
        assert_eq!(first_difference(&a, &b), None);
    }

    #[test]
    fn unordered_arrays_compare_as_multisets() {
        let mut a = parse(r#"{"topics":["x","y","y"],"other":[1,2]}"#);
        let mut b = parse(r#"{"topics":["y","x","y"],"other":[2,1]}"#);
        a.sort_arrays("topics");
        b.sort_arrays("topics");
        assert!(first_difference(&a, &b).unwrap().contains("$.other.0"));
        a.sort_arrays("other");
        b.sort_arrays("other");
        assert_eq!(first_difference(&a, &b), None);
        let mut c = parse(r#"{"topics":["x","x","y"],"other":[1,2]}"#);
        c.sort_arrays("topics");
        assert!(
            first_difference(&a, &c).is_some(),
            "multiplicity must count"
        );
    }

    #[test]
    fn first_difference_names_the_path() {
        let a = parse(r#"{"a":[1,{"b":"x"}]}"#);
        let b = parse(r#"{"a":[1,{"b":"y"}]}"#);
        assert_eq!(
            first_difference(&a, &b).unwrap(),
            r#"$.a.1.b: expected "x", got "y""#
        );
        let c = parse(r#"{"a":[1]}"#);
        assert_eq!(
            first_difference(&a, &c).unwrap(),
            r#"$.a: expected [1,{"b":"x"}], got [1]"#
        );
    }

    #[test]
    fn strings_print_escaped() {
        assert_eq!(parse(r#""a\"b\n""#).to_compact(), r#""a\"b\n""#);
    }

    #[test]
    fn from_value_matches_parse_for_sorted_keys() {
        let value: serde_json::Value = serde_json::from_str(r#"{"a":1,"b":[true,null]}"#).unwrap();
        assert_eq!(
            Json::from_value(&value),
            parse(r#"{"a":1,"b":[true,null]}"#)
        );
    }

    #[test]
    fn to_value_round_trips_through_from_value() {
        let value: serde_json::Value =
            serde_json::from_str(r#"{"b":[1,2.5,"x"],"a":null}"#).unwrap();
        assert_eq!(Json::from_value(&value).to_value(), value);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Json::parse(b"{").is_err());
        assert!(Json::parse(b"OK").is_err());
    }
}
