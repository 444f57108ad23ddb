//! `GET /ping`, `GET /info`, and the broker's health that `/ping` and `/stats` report.
//!
//! Mirrors `nsqd/http.go` `pingHandler` and `doInfo`, and `nsqd/nsqd.go` `GetHealth`:
//! healthy is `OK`; unhealthy is `NOK - <why>`, and `/ping` then answers 500 with that text.

use hyper::StatusCode;
use sluice_proto::http_json::NsqdInfo;

use super::reply::Reply;
use crate::options::NSQ_VERSION;
use crate::shard::Shard;

/// The broker's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// All is well.
    Ok,
    /// Something failed (upstream: a disk write error); the text says what.
    Failing(String),
}

impl Health {
    /// The text `/ping` and `/stats` show: `OK` or `NOK - <why>`.
    pub fn text(&self) -> String {
        match self {
            Health::Ok => "OK".to_owned(),
            Health::Failing(why) => format!("NOK - {why}"),
        }
    }
}

/// The health of the broker: failing once any shard reported a storage problem (a failed
/// write or fsync poisons that shard's log; corruption found at start-up), until restart.
pub fn health(shard: &Shard) -> Health {
    let problems = shard
        .control
        .problems
        .lock()
        .map(|p| p.clone())
        .unwrap_or_default();
    match problems.first() {
        None => Health::Ok,
        Some(first) if problems.len() == 1 => Health::Failing(first.clone()),
        Some(first) => Health::Failing(format!("{first} (and {} more)", problems.len() - 1)),
    }
}

/// `GET /ping`: `OK`, or 500 with the health text (upstream's `PlainText` decorator: no
/// `X-NSQ-Content-Type`).
pub fn ping(shard: &Shard) -> Reply {
    match health(shard) {
        Health::Ok => Reply::plain(StatusCode::OK, "OK"),
        failing => Reply::plain(StatusCode::INTERNAL_SERVER_ERROR, failing.text()),
    }
}

/// `GET /info`: version, addresses, start time and the client-facing limits. The ports are the
/// bound ones (upstream's `RealTCPAddr`/`RealHTTPAddr`), not `--broadcast-*-port`.
pub fn info(shard: &Shard) -> Reply {
    let bound = shard.control.bound();
    let limits = &shard.opts.limits;
    let nanos = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    let info = NsqdInfo {
        version: NSQ_VERSION.to_owned(),
        broadcast_address: shard.opts.broadcast_address.clone(),
        hostname: crate::host::hostname(),
        http_port: bound.map_or(0, |b| b.http.port()),
        tcp_port: bound.map_or(0, |b| b.tcp.port()),
        start_time: start_time(shard),
        max_heartbeat_interval: nanos(limits.max_heartbeat_interval),
        max_output_buffer_size: i64::try_from(limits.max_output_buffer_size).unwrap_or(i64::MAX),
        max_output_buffer_timeout: nanos(limits.max_output_buffer_timeout),
        max_deflate_level: i64::from(limits.max_deflate_level),
    };
    Reply::v1_json(&info)
}

/// When the broker started, Unix seconds.
pub fn start_time(shard: &Shard) -> i64 {
    shard
        .started_at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_text_is_upstreams() {
        assert_eq!(Health::Ok.text(), "OK");
        assert_eq!(
            Health::Failing("disk full".into()).text(),
            "NOK - disk full"
        );
    }
}
