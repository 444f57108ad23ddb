//! `GET /config/:opt` and `PUT /config/:opt`.
//!
//! Mirrors `nsqd/http.go` `doConfig` and `getOptByCfgName`: GET reads any option by its config
//! name (the flag name with `_` for `-`, or its `cfg` tag) as Go marshals the field (durations
//! in nanoseconds, the log level as upstream's number: debug 1, info 2, warn 3, error 4,
//! fatal 5); PUT changes only `nsqlookupd_tcp_addresses` (a JSON list) and `log_level` (a
//! level name), then answers with the new value. A PUT body is read up to `--max-msg-size`;
//! empty or longer is `413 INVALID_VALUE`, unparsable `400 INVALID_VALUE`, any other option
//! `400 INVALID_OPTION`. Options of features sluiced refuses at start-up (TLS, auth, statsd)
//! are not listed.

use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};

use super::body::read_bounded;
use super::reply::{go_json_escape, Reply};
use crate::options::{LogLevel, Options};
use crate::shard::Shard;

/// `/config/:opt`, GET or PUT.
pub async fn config(shard: &Shard, opt: &str, req: Request<Incoming>) -> Reply {
    if req.method() == Method::PUT {
        if let Err(reply) = put(shard, opt, req).await {
            return reply;
        }
    }
    match get(shard, opt) {
        Some(json) => Reply::v1_json_text(go_json_escape(json.into_bytes())),
        None => Reply::v1_error(StatusCode::BAD_REQUEST, "INVALID_OPTION"),
    }
}

async fn put(shard: &Shard, opt: &str, req: Request<Incoming>) -> Result<(), Reply> {
    let max = shard.opts.limits.max_msg_size as usize;
    let body = read_bounded(req.into_body(), max)
        .await
        .map_err(|_| Reply::v1_error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR"))?;
    if body.exceeded || body.bytes.is_empty() {
        return Err(Reply::v1_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "INVALID_VALUE",
        ));
    }
    let invalid = || Reply::v1_error(StatusCode::BAD_REQUEST, "INVALID_VALUE");
    match opt {
        "nsqlookupd_tcp_addresses" => {
            let list: Option<Vec<String>> =
                serde_json::from_slice(&body.bytes).map_err(|_| invalid())?;
            let list = list.unwrap_or_default();
            tracing::info!("HTTP: nsqlookupd_tcp_addresses set to {list:?}");
            if let Ok(mut addresses) = shard.control.lookupd_tcp_addresses.lock() {
                *addresses = list;
            }
        }
        "log_level" => {
            let text = std::str::from_utf8(&body.bytes).map_err(|_| invalid())?;
            let level = LogLevel::parse(text).ok_or_else(invalid)?;
            crate::log::set_level(level);
        }
        _ => return Err(Reply::v1_error(StatusCode::BAD_REQUEST, "INVALID_OPTION")),
    }
    Ok(())
}

/// Upstream's number for a log level (`internal/lg` `LogLevel`).
pub fn level_number(level: LogLevel) -> u8 {
    match level {
        LogLevel::Debug => 1,
        LogLevel::Info => 2,
        LogLevel::Warn => 3,
        LogLevel::Error => 4,
        LogLevel::Fatal => 5,
    }
}

/// The JSON of option `opt`, or `None` if there is no such option.
fn get(shard: &Shard, opt: &str) -> Option<String> {
    match opt {
        "log_level" => Some(level_number(crate::log::level()).to_string()),
        "nsqlookupd_tcp_addresses" => {
            let list = shard
                .control
                .lookupd_tcp_addresses
                .lock()
                .map(|l| l.clone())
                .unwrap_or_default();
            serde_json::to_string(&list).ok()
        }
        _ => static_option(&shard.opts, opt),
    }
}

/// Options fixed at start-up, by config name.
fn static_option(o: &Options, opt: &str) -> Option<String> {
    let l = &o.limits;
    let text = |s: &str| serde_json::to_string(s).ok();
    let num = |n: u64| Some(n.to_string());
    let nanos = |d: Duration| Some(d.as_nanos().to_string());
    match opt {
        "id" => num(u64::from(o.node_id)),
        "log_prefix" => text(&o.log_prefix),
        "tcp_address" => text(&o.tcp_address.to_string()),
        "http_address" => text(&o.http_address.to_string()),
        "broadcast_address" => text(&o.broadcast_address),
        "broadcast_tcp_port" => num(u64::from(o.broadcast_tcp_port)),
        "broadcast_http_port" => num(u64::from(o.broadcast_http_port)),
        "data_path" => text(&o.data_path.to_string_lossy()),
        "mem_queue_size" => num(o.mem_queue_size as u64),
        "max_bytes_per_file" => num(o.max_bytes_per_file),
        "sync_every" => num(o.sync_every),
        "sync_timeout" => nanos(o.sync_timeout),
        "msg_timeout" => nanos(l.msg_timeout),
        "max_msg_timeout" => nanos(l.max_msg_timeout),
        "max_msg_size" => num(u64::from(l.max_msg_size)),
        "max_body_size" => num(u64::from(l.max_body_size)),
        "max_req_timeout" => nanos(l.max_req_timeout),
        "max_heartbeat_interval" => nanos(l.max_heartbeat_interval),
        "max_rdy_count" => num(l.max_rdy_count),
        "max_output_buffer_size" => num(l.max_output_buffer_size),
        "max_output_buffer_timeout" => nanos(l.max_output_buffer_timeout),
        "min_output_buffer_timeout" => nanos(l.min_output_buffer_timeout),
        "output_buffer_timeout" => nanos(l.output_buffer_timeout),
        "max_channel_consumers" => num(o.max_channel_consumers as u64),
        "e2e_processing_latency_window_time" => nanos(o.e2e_window),
        "e2e_processing_latency_percentiles" => Some(go_floats(&o.e2e_percentiles)),
        "deflate" => Some(o.deflate.to_string()),
        "max_deflate_level" => num(u64::from(l.max_deflate_level)),
        "snappy" => Some(o.snappy.to_string()),
        _ => None,
    }
}

/// A JSON list of floats as Go prints them (`1`, not `1.0`).
fn go_floats(values: &[f64]) -> String {
    let items: Vec<String> = values
        .iter()
        .map(|v| {
            if v.fract() == 0.0 && v.abs() < 1e15 {
                format!("{}", *v as i64)
            } else {
                format!("{v}")
            }
        })
        .collect();
    format!("[{}]", items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_options_marshal_as_go_does() {
        let mut o = Options::defaults();
        o.limits.max_msg_size = 100;
        o.e2e_percentiles = vec![1.0, 0.99];
        assert_eq!(static_option(&o, "max_msg_size").as_deref(), Some("100"));
        assert_eq!(
            static_option(&o, "msg_timeout").as_deref(),
            Some("60000000000")
        );
        assert_eq!(
            static_option(&o, "tcp_address").as_deref(),
            Some("\"0.0.0.0:4150\"")
        );
        assert_eq!(static_option(&o, "snappy").as_deref(), Some("true"));
        assert_eq!(
            static_option(&o, "e2e_processing_latency_percentiles").as_deref(),
            Some("[1,0.99]")
        );
        assert_eq!(static_option(&o, "no_such_option"), None);
        assert_eq!(static_option(&o, "max-msg-size"), None);
    }

    #[test]
    fn log_levels_are_upstreams_numbers() {
        assert_eq!(level_number(LogLevel::Info), 2);
        assert_eq!(level_number(LogLevel::Warn), 3);
        assert_eq!(level_number(LogLevel::Fatal), 5);
    }
}
