//! The JSON a broker and a lookup service exchange at IDENTIFY, and a registered producer.
//!
//! Mirrors upstream `nsqlookupd/registration_db.go` (`PeerInfo`), `nsqlookupd/
//! lookup_protocol_v1.go` (`IDENTIFY`: decoding, the required fields, the reply map) and
//! `nsqd/lookup.go` (the map nsqd sends). Go marshals a map with its keys sorted, so both
//! IDENTIFY directions carry `broadcast_address, hostname, http_port, tcp_port, version` in
//! that order: one type, [`IdentifyInfo`], serves both.

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{ErrorCode, ProtoError};

/// The IDENTIFY body a broker sends, and the reply a lookup service sends back about itself.
///
/// Decoding is as tolerant as Go's `json.Unmarshal` into upstream's struct: unknown keys are
/// ignored, missing keys and `null` values leave the zero value.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct IdentifyInfo {
    /// The address clients should connect to (`--broadcast-address`).
    #[serde(deserialize_with = "null_as_default")]
    pub broadcast_address: String,
    /// The OS host name.
    #[serde(deserialize_with = "null_as_default")]
    pub hostname: String,
    /// The HTTP port (`--broadcast-http-port`, or the lookup service's own).
    #[serde(deserialize_with = "null_as_default")]
    pub http_port: u16,
    /// The TCP port (`--broadcast-tcp-port`, or the lookup service's own).
    #[serde(deserialize_with = "null_as_default")]
    pub tcp_port: u16,
    /// The version, e.g. `1.3.0`.
    #[serde(deserialize_with = "null_as_default")]
    pub version: String,
}

impl IdentifyInfo {
    /// Parses and checks an IDENTIFY body as upstream nsqlookupd does.
    ///
    /// # Examples
    /// ```
    /// use sluice_proto::lookup::IdentifyInfo;
    ///
    /// let body = br#"{"broadcast_address":"h","hostname":"h","http_port":4151,"tcp_port":4150,"version":"1.3.0"}"#;
    /// assert_eq!(IdentifyInfo::from_json(body).unwrap().tcp_port, 4150);
    /// let err = IdentifyInfo::from_json(br#"{"broadcast_address":"h"}"#).unwrap_err();
    /// assert_eq!(err.frame_text(), "E_BAD_BODY IDENTIFY missing fields");
    /// ```
    ///
    /// # Errors
    /// `E_BAD_BODY IDENTIFY failed to decode JSON body` when the body is not a JSON object of
    /// the right types (a port must fit in 16 bits here, where Go takes any `int`), and
    /// `E_BAD_BODY IDENTIFY missing fields` when `broadcast_address`, `tcp_port`, `http_port`
    /// or `version` is empty or zero.
    pub fn from_json(body: &[u8]) -> Result<IdentifyInfo, ProtoError> {
        // Go's json.Unmarshal accepts a bare `null` and leaves the struct as it was.
        let decode_error =
            || ProtoError::new(ErrorCode::BadBody, "IDENTIFY failed to decode JSON body");
        let text = body.trim_ascii();
        let info = if text == b"null" {
            IdentifyInfo::default()
        } else if text.starts_with(b"{") {
            // serde would also take a JSON array as a struct's fields in order; Go does not.
            serde_json::from_slice(body).map_err(|_| decode_error())?
        } else {
            return Err(decode_error());
        };
        if info.broadcast_address.is_empty()
            || info.tcp_port == 0
            || info.http_port == 0
            || info.version.is_empty()
        {
            return Err(ProtoError::new(
                ErrorCode::BadBody,
                "IDENTIFY missing fields",
            ));
        }
        Ok(info)
    }

    /// The JSON text, keys in upstream's (sorted) order.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The producer record of the peer that sent this IDENTIFY from `remote_address`.
    pub fn into_peer_info(self, remote_address: String) -> PeerInfo {
        PeerInfo {
            remote_address,
            hostname: self.hostname,
            broadcast_address: self.broadcast_address,
            tcp_port: self.tcp_port,
            http_port: self.http_port,
            version: self.version,
        }
    }
}

/// A producer (broker) as a lookup service knows it: upstream's `PeerInfo`, in its field order
/// (the `producers` of `/lookup`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PeerInfo {
    /// The address the broker's lookup connection came from (`ip:port`).
    pub remote_address: String,
    /// The broker's host name.
    pub hostname: String,
    /// The address clients should connect to.
    pub broadcast_address: String,
    /// The broker's TCP port for clients.
    pub tcp_port: u16,
    /// The broker's HTTP port.
    pub http_port: u16,
    /// The broker's version.
    pub version: String,
}

/// Reads a value, taking `null` as the type's default (as Go leaves the zero value).
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
