//! IDENTIFY: the client's JSON request, feature negotiation, and the JSON response.
//!
//! Mirrors upstream `nsqd/client_v2.go` (`identifyDataV2`, `Identify`, `SetHeartbeatInterval`,
//! `SetOutputBuffer`, `SetSampleRate`, `SetMsgTimeout`) and the negotiation half of
//! `nsqd/protocol_v2.go` `IDENTIFY`. Pure: [`negotiate`] takes the request, the limits and what
//! the server offers, and returns the settings or upstream's error. Sending the response and
//! upgrading the stream (TLS, snappy, deflate) are the broker's.
//!
//! Upstream decodes the body with Go's `encoding/json` into a struct, and Sluice mirrors what
//! that accepts: keys match field names exactly or case-insensitively (Go's `EqualFold`), a
//! later duplicate key wins, `null` leaves a field at its default, unknown keys are ignored
//! whatever they hold, integers must be integer literals in range (no `1.0`, no `1e3`), strings
//! may hold invalid UTF-8 (each bad byte becomes U+FFFD), and a top-level `null` is an empty
//! request. Known differences, all on inputs no client sends: `-0.0` is taken as the integer 0
//! (Go refuses it; `-0` is accepted by both), the raw (unescaped) UTF-8 encoding of a surrogate
//! in a known string field becomes one U+FFFD instead of three, and values nested deeper than
//! 128 levels are refused.

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

use crate::error::{ErrorCode, ProtoError};
use crate::limits::Limits;

/// The heartbeat interval when the client asks for none: upstream's default client timeout
/// (60 s) divided by two.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);
/// The shortest heartbeat interval a client may ask for (ms).
pub const MIN_HEARTBEAT_INTERVAL_MS: i64 = 1000;
/// The output buffer size when the client asks for none (upstream `defaultBufferSize`).
pub const DEFAULT_OUTPUT_BUFFER_SIZE: usize = 16 * 1024;
/// The smallest output buffer size a client may ask for.
pub const MIN_OUTPUT_BUFFER_SIZE: i64 = 64;
/// The shortest msg_timeout a client may ask for (ms).
pub const MIN_MSG_TIMEOUT_MS: i64 = 1000;
/// The highest sample rate (percent of messages delivered; 0 means all).
pub const MAX_SAMPLE_RATE: i32 = 99;
/// The deflate level when the client asks for none (before clamping to the server's maximum).
pub const DEFAULT_DEFLATE_LEVEL: i64 = 6;

/// The IDENTIFY body a client sends, with upstream's field names.
///
/// Every field is optional; an absent field holds Go's zero value, which upstream reads as
/// "use the default" (`-1` disables heartbeats, output buffering or its timeout).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IdentifyRequest {
    /// Shown in `/stats` as `client_id`.
    pub client_id: String,
    /// Shown in `/stats` as `hostname`.
    pub hostname: String,
    /// Milliseconds between heartbeats: 0 default, -1 disabled, else 1000..=max.
    pub heartbeat_interval: i64,
    /// Bytes buffered before a flush: 0 default, -1 unbuffered, else 64..=max.
    pub output_buffer_size: i64,
    /// Milliseconds before a buffered write is flushed: 0 default, -1 disabled, else min..=max.
    pub output_buffer_timeout: i64,
    /// Whether the client wants the negotiated settings back as JSON (else a plain `OK`).
    pub feature_negotiation: bool,
    /// Asks to upgrade the connection to TLS.
    pub tls_v1: bool,
    /// Asks for snappy compression.
    pub snappy: bool,
    /// Asks for deflate compression.
    pub deflate: bool,
    /// The deflate level asked for (clamped to the server's maximum, never refused).
    pub deflate_level: i64,
    /// Percent of messages to deliver, 0..=99 (0 means all).
    pub sample_rate: i32,
    /// Shown in `/stats` as `user_agent`.
    pub user_agent: String,
    /// Milliseconds before an unfinished message is requeued: 0 default, else 1000..=max.
    pub msg_timeout: i64,
    /// Deprecated before v1.0 and ignored by v1.3.0 (and by [`negotiate`]); parsed for clients
    /// that still send it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub short_id: String,
    /// Deprecated before v1.0 and ignored by v1.3.0 (and by [`negotiate`]).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub long_id: String,
}

/// What this server offers to negotiate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerFeatures {
    /// A TLS configuration is loaded.
    pub tls: bool,
    /// `--snappy`.
    pub snappy: bool,
    /// `--deflate`.
    pub deflate: bool,
    /// An auth server is configured (`--auth-http-address`).
    pub auth_required: bool,
}

/// The settings a connection runs with after IDENTIFY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The client's `client_id` (empty if it sent none, as upstream).
    pub client_id: String,
    /// The client's `hostname`.
    pub hostname: String,
    /// The client's `user_agent`.
    pub user_agent: String,
    /// `None` when the client disabled heartbeats (-1).
    pub heartbeat_interval: Option<Duration>,
    /// Bytes buffered before a flush; 0 means unbuffered (the client sent -1; upstream
    /// reports that as a 1-byte buffer).
    pub output_buffer_size: usize,
    /// `None` when disabled (the client sent -1 for it or for the buffer size).
    pub output_buffer_timeout: Option<Duration>,
    /// How long a delivered message may stay unfinished.
    pub msg_timeout: Duration,
    /// Percent of messages delivered, 0..=99 (0 means all).
    pub sample_rate: u8,
    /// Whether the client gets an [`IdentifyResponse`] (else `OK`).
    pub feature_negotiation: bool,
    /// Upgrade to TLS after the response.
    pub tls_v1: bool,
    /// Switch to snappy after the response (and after TLS).
    pub snappy: bool,
    /// Switch to deflate after the response (and after TLS).
    pub deflate: bool,
    /// The deflate level to use (also reported when deflate is off).
    pub deflate_level: u32,
}

/// The JSON a client with `feature_negotiation` gets back, keys in upstream's order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IdentifyResponse {
    /// `--max-rdy-count`.
    pub max_rdy_count: u64,
    /// The server's version string.
    pub version: String,
    /// `--max-msg-timeout` in ms.
    pub max_msg_timeout: u64,
    /// The negotiated msg_timeout in ms.
    pub msg_timeout: u64,
    /// Whether the connection upgrades to TLS next.
    pub tls_v1: bool,
    /// Whether the stream switches to deflate next.
    pub deflate: bool,
    /// The deflate level.
    pub deflate_level: u32,
    /// `--max-deflate-level`.
    pub max_deflate_level: u32,
    /// Whether the stream switches to snappy next.
    pub snappy: bool,
    /// The negotiated sample rate.
    pub sample_rate: u8,
    /// Whether AUTH is required before other commands.
    pub auth_required: bool,
    /// The output buffer size in bytes (1 when unbuffered, as upstream).
    pub output_buffer_size: u64,
    /// The output buffer timeout in ms (0 when disabled).
    pub output_buffer_timeout: u64,
}

impl IdentifyRequest {
    /// Parses an IDENTIFY body as upstream's `json.Unmarshal` would (see the module docs).
    ///
    /// # Errors
    /// `E_BAD_BODY IDENTIFY failed to decode JSON body` when Go would refuse the body.
    ///
    /// # Examples
    /// ```
    /// use sluice_proto::identify::IdentifyRequest;
    /// let req = IdentifyRequest::from_json(br#"{"client_id":"c","Heartbeat_Interval":5000,"x":[1]}"#).unwrap();
    /// assert_eq!((req.client_id.as_str(), req.heartbeat_interval), ("c", 5000));
    /// let err = IdentifyRequest::from_json(b"not json").unwrap_err();
    /// assert_eq!(err.frame_text(), "E_BAD_BODY IDENTIFY failed to decode JSON body");
    /// ```
    pub fn from_json(body: &[u8]) -> Result<IdentifyRequest, ProtoError> {
        let refused = || ProtoError::new(ErrorCode::BadBody, "IDENTIFY failed to decode JSON body");
        if has_raw_control_in_string(body) {
            return Err(refused());
        }
        serde_json::from_slice(body).map_err(|_| refused())
    }
}

/// Applies upstream's ranges and defaults to a request, in upstream's order (heartbeat, output
/// buffer timeout, output buffer size, sample rate, msg timeout, then compression).
///
/// TLS, snappy and deflate are on only when the client negotiates features, asks for them,
/// and `features` offers them.
///
/// # Errors
/// `E_BAD_BODY IDENTIFY <setting> (<value>) is invalid` for an out-of-range setting, and
/// `E_IDENTIFY_FAILED cannot enable both deflate and snappy compression`.
///
/// # Examples
/// ```
/// use sluice_proto::identify::{negotiate, IdentifyRequest, ServerFeatures};
/// use sluice_proto::Limits;
/// let req = IdentifyRequest { heartbeat_interval: 100, ..IdentifyRequest::default() };
/// let err = negotiate(&req, &Limits::default(), &ServerFeatures::default()).unwrap_err();
/// assert_eq!(err.frame_text(), "E_BAD_BODY IDENTIFY heartbeat interval (100) is invalid");
///
/// let n = negotiate(&IdentifyRequest::default(), &Limits::default(), &ServerFeatures::default()).unwrap();
/// assert_eq!(n.heartbeat_interval, Some(std::time::Duration::from_secs(30)));
/// assert_eq!(n.output_buffer_size, 16384);
/// ```
pub fn negotiate(
    req: &IdentifyRequest,
    limits: &Limits,
    features: &ServerFeatures,
) -> Result<Negotiated, ProtoError> {
    let heartbeat_interval = heartbeat_interval(req.heartbeat_interval, limits)?;
    let (output_buffer_size, output_buffer_timeout) =
        output_buffer(req.output_buffer_size, req.output_buffer_timeout, limits)?;
    let sample_rate = u8::try_from(req.sample_rate)
        .ok()
        .filter(|rate| i32::from(*rate) <= MAX_SAMPLE_RATE)
        .ok_or_else(|| invalid_setting("sample rate", req.sample_rate.into()))?;
    let msg_timeout = match req.msg_timeout {
        0 => limits.msg_timeout,
        ms => within_ms(ms, MIN_MSG_TIMEOUT_MS, limits.max_msg_timeout)
            .ok_or_else(|| invalid_setting("msg timeout", ms))?,
    };

    let negotiating = req.feature_negotiation;
    let tls_v1 = negotiating && features.tls && req.tls_v1;
    let snappy = negotiating && features.snappy && req.snappy;
    let deflate = negotiating && features.deflate && req.deflate;
    let asked_level = if deflate && req.deflate_level > 0 {
        req.deflate_level
    } else {
        DEFAULT_DEFLATE_LEVEL
    };
    let deflate_level = u32::try_from(asked_level)
        .unwrap_or(u32::MAX)
        .min(limits.max_deflate_level);
    if deflate && snappy {
        return Err(ProtoError::new(
            ErrorCode::IdentifyFailed,
            "cannot enable both deflate and snappy compression",
        ));
    }
    Ok(Negotiated {
        client_id: req.client_id.clone(),
        hostname: req.hostname.clone(),
        user_agent: req.user_agent.clone(),
        heartbeat_interval,
        output_buffer_size,
        output_buffer_timeout,
        msg_timeout,
        sample_rate,
        feature_negotiation: negotiating,
        tls_v1,
        snappy,
        deflate,
        deflate_level,
    })
}

/// Upstream `SetHeartbeatInterval`.
fn heartbeat_interval(ms: i64, limits: &Limits) -> Result<Option<Duration>, ProtoError> {
    match ms {
        -1 => Ok(None),
        0 => Ok(Some(DEFAULT_HEARTBEAT_INTERVAL)),
        ms => within_ms(ms, MIN_HEARTBEAT_INTERVAL_MS, limits.max_heartbeat_interval)
            .map(Some)
            .ok_or_else(|| invalid_setting("heartbeat interval", ms)),
    }
}

/// Upstream `SetOutputBuffer`: the timeout is checked first, and a size of -1 also disables
/// the timeout.
fn output_buffer(
    size: i64,
    timeout_ms: i64,
    limits: &Limits,
) -> Result<(usize, Option<Duration>), ProtoError> {
    let timeout = match timeout_ms {
        -1 => None,
        0 => Some(limits.output_buffer_timeout),
        ms => {
            let min_ms =
                i64::try_from(limits.min_output_buffer_timeout.as_millis()).unwrap_or(i64::MAX);
            let found = within_ms(ms, min_ms, limits.max_output_buffer_timeout);
            Some(found.ok_or_else(|| invalid_setting("output buffer timeout", timeout_ms))?)
        }
    };
    match size {
        -1 => Ok((0, None)),
        0 => Ok((DEFAULT_OUTPUT_BUFFER_SIZE, timeout)),
        size => {
            let max = i64::try_from(limits.max_output_buffer_size).unwrap_or(i64::MAX);
            match usize::try_from(size) {
                Ok(bytes) if (MIN_OUTPUT_BUFFER_SIZE..=max).contains(&size) => Ok((bytes, timeout)),
                _ => Err(invalid_setting("output buffer size", size)),
            }
        }
    }
}

/// `ms` as a duration when `min <= ms <= max` (max in whole milliseconds, as upstream's
/// `int(max / time.Millisecond)`).
fn within_ms(ms: i64, min: i64, max: Duration) -> Option<Duration> {
    let max_ms = i64::try_from(max.as_millis()).unwrap_or(i64::MAX);
    let ms = u64::try_from(ms)
        .ok()
        .filter(|_| ms >= min && ms <= max_ms)?;
    Some(Duration::from_millis(ms))
}

fn invalid_setting(setting: &str, value: i64) -> ProtoError {
    ProtoError::new(
        ErrorCode::BadBody,
        format!("IDENTIFY {setting} ({value}) is invalid"),
    )
}

impl IdentifyResponse {
    /// The response upstream sends for these negotiated settings.
    ///
    /// # Examples
    /// ```
    /// use sluice_proto::identify::{negotiate, IdentifyRequest, IdentifyResponse, ServerFeatures};
    /// use sluice_proto::Limits;
    /// let (limits, features) = (Limits::default(), ServerFeatures::default());
    /// let n = negotiate(&IdentifyRequest::default(), &limits, &features).unwrap();
    /// let json = IdentifyResponse::new(&n, &limits, &features, "1.3.0").to_json();
    /// assert!(json.starts_with(br#"{"max_rdy_count":2500,"version":"1.3.0","#));
    /// ```
    pub fn new(
        n: &Negotiated,
        limits: &Limits,
        features: &ServerFeatures,
        version: &str,
    ) -> IdentifyResponse {
        IdentifyResponse {
            max_rdy_count: limits.max_rdy_count,
            version: version.to_owned(),
            max_msg_timeout: millis(limits.max_msg_timeout),
            msg_timeout: millis(n.msg_timeout),
            tls_v1: n.tls_v1,
            deflate: n.deflate,
            deflate_level: n.deflate_level,
            max_deflate_level: limits.max_deflate_level,
            snappy: n.snappy,
            sample_rate: n.sample_rate,
            auth_required: features.auth_required,
            // Upstream implements "unbuffered" as a 1-byte buffer and reports it so.
            output_buffer_size: (n.output_buffer_size as u64).max(1),
            output_buffer_timeout: n.output_buffer_timeout.map_or(0, millis),
        }
    }

    /// The JSON body, byte for byte as upstream's `json.Marshal` writes it.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing a struct of numbers, booleans and a string cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------------------------------------
// Deserialization with Go's encoding/json semantics.

/// Request fields, for matching keys.
#[derive(Clone, Copy)]
enum Field {
    ClientId,
    Hostname,
    HeartbeatInterval,
    OutputBufferSize,
    OutputBufferTimeout,
    FeatureNegotiation,
    TlsV1,
    Snappy,
    Deflate,
    DeflateLevel,
    SampleRate,
    UserAgent,
    MsgTimeout,
    ShortId,
    LongId,
}

const FIELDS: [(&str, Field); 15] = [
    ("client_id", Field::ClientId),
    ("hostname", Field::Hostname),
    ("heartbeat_interval", Field::HeartbeatInterval),
    ("output_buffer_size", Field::OutputBufferSize),
    ("output_buffer_timeout", Field::OutputBufferTimeout),
    ("feature_negotiation", Field::FeatureNegotiation),
    ("tls_v1", Field::TlsV1),
    ("snappy", Field::Snappy),
    ("deflate", Field::Deflate),
    ("deflate_level", Field::DeflateLevel),
    ("sample_rate", Field::SampleRate),
    ("user_agent", Field::UserAgent),
    ("msg_timeout", Field::MsgTimeout),
    ("short_id", Field::ShortId),
    ("long_id", Field::LongId),
];

impl Field {
    /// Go's key matching: an exact match, else a case-insensitive one (`bytes.EqualFold`,
    /// under which U+017F folds to `s` and U+212A to `k`).
    fn matching(key: &[u8]) -> Option<Field> {
        if let Some((_, field)) = FIELDS.iter().find(|(name, _)| name.as_bytes() == key) {
            return Some(*field);
        }
        let key = std::str::from_utf8(key).ok()?;
        let mut folded = String::with_capacity(key.len());
        for c in key.chars() {
            folded.push(match c {
                '\u{17f}' => 's',
                '\u{212a}' => 'k',
                c => c.to_ascii_lowercase(),
            });
        }
        FIELDS
            .iter()
            .find(|(name, _)| *name == folded)
            .map(|(_, field)| *field)
    }
}

impl<'de> Deserialize<'de> for IdentifyRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<IdentifyRequest, D::Error> {
        deserializer.deserialize_any(RequestVisitor)
    }
}

struct RequestVisitor;

impl<'de> Visitor<'de> for RequestVisitor {
    type Value = IdentifyRequest;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an IDENTIFY object")
    }

    /// Go's `json.Unmarshal` of `null` into a struct changes nothing.
    fn visit_unit<E: de::Error>(self) -> Result<IdentifyRequest, E> {
        Ok(IdentifyRequest::default())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<IdentifyRequest, A::Error> {
        let mut req = IdentifyRequest::default();
        while let Some(GoKey(key)) = map.next_key()? {
            let Some(field) = Field::matching(&key) else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            set_field(&mut req, field, &mut map)?;
        }
        Ok(req)
    }
}

/// Reads the value of a known field; `null` leaves the field as it was.
fn set_field<'de, A: MapAccess<'de>>(
    req: &mut IdentifyRequest,
    field: Field,
    map: &mut A,
) -> Result<(), A::Error> {
    fn set<T>(slot: &mut T, value: Option<T>) {
        if let Some(value) = value {
            *slot = value;
        }
    }
    let string = |map: &mut A| -> Result<Option<String>, A::Error> {
        Ok(map.next_value::<Option<GoString>>()?.map(|s| s.0))
    };
    let int = |map: &mut A| -> Result<Option<i64>, A::Error> {
        Ok(map.next_value::<Option<GoInt>>()?.map(|i| i.0))
    };
    match field {
        Field::ClientId => set(&mut req.client_id, string(map)?),
        Field::Hostname => set(&mut req.hostname, string(map)?),
        Field::UserAgent => set(&mut req.user_agent, string(map)?),
        Field::ShortId => set(&mut req.short_id, string(map)?),
        Field::LongId => set(&mut req.long_id, string(map)?),
        Field::HeartbeatInterval => set(&mut req.heartbeat_interval, int(map)?),
        Field::OutputBufferSize => set(&mut req.output_buffer_size, int(map)?),
        Field::OutputBufferTimeout => set(&mut req.output_buffer_timeout, int(map)?),
        Field::DeflateLevel => set(&mut req.deflate_level, int(map)?),
        Field::MsgTimeout => set(&mut req.msg_timeout, int(map)?),
        Field::SampleRate => {
            let rate = int(map)?
                .map(|rate| i32::try_from(rate).map_err(|_| de::Error::custom("int32 overflow")))
                .transpose()?;
            set(&mut req.sample_rate, rate);
        }
        Field::FeatureNegotiation => set(&mut req.feature_negotiation, map.next_value()?),
        Field::TlsV1 => set(&mut req.tls_v1, map.next_value()?),
        Field::Snappy => set(&mut req.snappy, map.next_value()?),
        Field::Deflate => set(&mut req.deflate, map.next_value()?),
    }
    Ok(())
}

/// A key's raw bytes (escapes decoded, UTF-8 not required).
struct GoKey(Vec<u8>);

/// A JSON string as Go decodes it into a `string`: invalid UTF-8 bytes become U+FFFD.
struct GoString(String);

/// A JSON integer literal within `i64` (Go's `int`).
struct GoInt(i64);

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
        Ok(v.as_bytes().to_vec())
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }
}

impl<'de> Deserialize<'de> for GoKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<GoKey, D::Error> {
        deserializer.deserialize_bytes(BytesVisitor).map(GoKey)
    }
}

impl<'de> Deserialize<'de> for GoString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<GoString, D::Error> {
        let bytes = deserializer.deserialize_bytes(BytesVisitor)?;
        Ok(GoString(go_lossy_utf8(&bytes)))
    }
}

/// Go's decoding of a JSON string's bytes: each invalid UTF-8 byte becomes one U+FFFD, and so
/// does each lone surrogate escape (which serde_json hands over encoded as 3 WTF-8 bytes).
fn go_lossy_utf8(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        let valid_len = match std::str::from_utf8(rest) {
            Ok(valid) => {
                out.push_str(valid);
                break;
            }
            Err(err) => err.valid_up_to(),
        };
        let (valid, invalid) = rest.split_at(valid_len);
        out.push_str(std::str::from_utf8(valid).unwrap_or_default());
        out.push(char::REPLACEMENT_CHARACTER);
        let skip = match invalid {
            [0xED, 0xA0..=0xBF, 0x80..=0xBF, ..] => 3,
            _ => 1,
        };
        rest = invalid.get(skip..).unwrap_or_default();
    }
    out
}

/// Whether a raw control character (below 0x20) appears inside a string. Go's scanner refuses
/// those; serde_json's raw string path, used here to keep invalid UTF-8, does not check them.
/// Outside strings serde_json refuses them itself.
fn has_raw_control_in_string(body: &[u8]) -> bool {
    let mut in_string = false;
    let mut escaped = false;
    for &byte in body {
        if !in_string {
            in_string = byte == b'"';
        } else if escaped {
            escaped = false;
        } else if byte == b'\\' {
            escaped = true;
        } else if byte == b'"' {
            in_string = false;
        } else if byte < 0x20 {
            return true;
        }
    }
    false
}

impl<'de> Deserialize<'de> for GoInt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<GoInt, D::Error> {
        deserializer.deserialize_i64(IntVisitor).map(GoInt)
    }
}

struct IntVisitor;

impl<'de> Visitor<'de> for IntVisitor {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom("integer out of range"))
    }

    /// serde_json reads `-0` as a float; Go reads it as the integer 0.
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        if v == 0.0 && v.is_sign_negative() {
            Ok(0)
        } else {
            Err(E::invalid_type(de::Unexpected::Float(v), &self))
        }
    }
}

#[cfg(test)]
mod tests;
