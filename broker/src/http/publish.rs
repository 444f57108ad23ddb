//! `POST /pub` and `POST /mpub`.
//!
//! Mirrors `nsqd/http.go` `doPUB`, `doMPUB` and `getTopicFromQuery`, check for check and in
//! upstream's order: `/pub` checks the body before the topic (`MSG_EMPTY` beats
//! `MISSING_ARG_TOPIC`), `/mpub` checks a declared length, then the topic, then the body.
//! Bodies are read with a bound (never more than `max + 1` bytes, chunked or not).
//!
//! Upstream creates the topic as soon as its name is valid, before it looks at `defer` or the
//! MPUB body; a refused publish therefore still creates the topic here too.
//!
//! A refused publish answers 503: upstream's `EXITING` when the broker is stopping, and
//! `PUB_FAILED mem-queue-size N reached` (or `MPUB_FAILED …`) when a channel has no room in
//! memory — upstream never refuses for that reason (it spills to disk), so the message says
//! why in the words of the TCP `E_PUB_FAILED` error (README, "Differences from nsqd").

use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use sluice_proto::names;

use super::body::{declared_len, read_bounded};
use super::mpub;
use super::owner;
use super::query::{bool_param, Query};
use super::reply::Reply;
use crate::shard::mesh::{AdminOp, PublishError};
use crate::shard::Shard;

/// `POST /pub?topic=…[&defer=ms]`: one message.
pub async fn pub_message(shard: &Shard, req: Request<Incoming>) -> Reply {
    let max = shard.opts.limits.max_msg_size as usize;
    let (parts, body) = req.into_parts();
    if declared_len(&body).is_some_and(|n| n > max as u64) {
        return Reply::v1_error(StatusCode::PAYLOAD_TOO_LARGE, "MSG_TOO_BIG");
    }
    let bounded = match read_bounded(body, max).await {
        Ok(b) => b,
        Err(e) => return read_failed(&e),
    };
    if bounded.exceeded {
        return Reply::v1_error(StatusCode::PAYLOAD_TOO_LARGE, "MSG_TOO_BIG");
    }
    if bounded.bytes.is_empty() {
        return Reply::v1_error(StatusCode::BAD_REQUEST, "MSG_EMPTY");
    }
    let (query, topic) = match topic_from_query(parts.uri.query()) {
        Ok(found) => found,
        Err(reply) => return reply,
    };
    let defer = match parse_defer(query.get("defer"), shard.opts.limits.max_req_timeout) {
        Ok(d) => d,
        Err(()) => {
            return refused(shard, &topic, StatusCode::BAD_REQUEST, "INVALID_DEFER").await;
        }
    };
    let result = owner::publish(shard, &topic, vec![bounded.bytes], defer).await;
    published("PUB", result, shard.opts.mem_queue_size)
}

/// `POST /mpub?topic=…[&binary=true]`: several messages, all or none.
pub async fn mpub_messages(shard: &Shard, req: Request<Incoming>) -> Reply {
    let limits = &shard.opts.limits;
    let max_body = limits.max_body_size as usize;
    let (parts, body) = req.into_parts();
    if declared_len(&body).is_some_and(|n| n > max_body as u64) {
        return Reply::v1_error(StatusCode::PAYLOAD_TOO_LARGE, "BODY_TOO_BIG");
    }
    let (query, topic) = match topic_from_query(parts.uri.query()) {
        Ok(found) => found,
        Err(reply) => return reply,
    };
    // Upstream: text mode by default; a `binary` value it does not recognise means binary.
    let binary = query
        .get("binary")
        .is_some_and(|v| bool_param(Some(v)).unwrap_or(true));
    let bounded = match read_bounded(body, max_body).await {
        Ok(b) => b,
        Err(e) => return read_failed(&e),
    };
    let split = if binary {
        mpub::split_binary(
            &bounded.bytes,
            bounded.exceeded,
            limits.max_msg_size,
            limits.max_mpub_count(),
        )
    } else {
        mpub::split_text(&bounded.bytes, max_body + 1, limits.max_msg_size as usize)
    };
    let bodies = match split {
        Ok(bodies) => bodies,
        Err(e) => return refused(shard, &topic, StatusCode::PAYLOAD_TOO_LARGE, e.code()).await,
    };
    let result = owner::publish(shard, &topic, bodies, None).await;
    published("MPUB", result, shard.opts.mem_queue_size)
}

/// Upstream's `getTopicFromQuery`: the parameters and the (valid) topic name.
fn topic_from_query(raw: Option<&str>) -> Result<(Query, String), Reply> {
    let query = Query::parse(raw)
        .map_err(|_| Reply::v1_error(StatusCode::BAD_REQUEST, "INVALID_REQUEST"))?;
    let topic = query
        .get("topic")
        .ok_or_else(|| Reply::v1_error(StatusCode::BAD_REQUEST, "MISSING_ARG_TOPIC"))?
        .to_owned();
    if !names::is_valid_topic_name(&topic) {
        return Err(Reply::v1_error(StatusCode::BAD_REQUEST, "INVALID_TOPIC"));
    }
    Ok((query, topic))
}

/// `defer` in milliseconds, `0..=max_req_timeout` (upstream parses it with `ParseInt`, so a
/// sign is allowed); zero means no delay.
fn parse_defer(value: Option<&str>, max: Duration) -> Result<Option<Duration>, ()> {
    let Some(text) = value else {
        return Ok(None);
    };
    let ms: i64 = text.parse().map_err(|_| ())?;
    let ms = u64::try_from(ms).map_err(|_| ())?;
    let defer = Duration::from_millis(ms);
    if defer > max {
        return Err(());
    }
    Ok((!defer.is_zero()).then_some(defer))
}

/// A refusal after the topic name was accepted: upstream has created the topic by then.
async fn refused(shard: &Shard, topic: &str, status: StatusCode, code: &str) -> Reply {
    if owner::admin(shard, topic, AdminOp::CreateTopic(topic.to_owned()))
        .await
        .is_err()
    {
        return Reply::v1_error(StatusCode::SERVICE_UNAVAILABLE, "EXITING");
    }
    Reply::v1_error(status, code)
}

fn read_failed(e: &hyper::Error) -> Reply {
    tracing::debug!("HTTP: failed to read a request body - {e}");
    Reply::v1_error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR")
}

fn published(verb: &str, result: Result<(), PublishError>, mem_queue_size: usize) -> Reply {
    match result {
        Ok(()) => Reply::v1_text(Bytes::from_static(b"OK")),
        Err(PublishError::Full) => Reply::v1_error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("{verb}_FAILED mem-queue-size {mem_queue_size} reached"),
        ),
        Err(PublishError::Exiting) => Reply::v1_error(StatusCode::SERVICE_UNAVAILABLE, "EXITING"),
        // Upstream answers 500 when a message cannot be written to its disk queue.
        Err(PublishError::Storage) => {
            Reply::v1_error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{verb}_FAILED"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defer_is_milliseconds_within_max_req_timeout() {
        let max = Duration::from_secs(3600);
        assert_eq!(parse_defer(None, max), Ok(None));
        assert_eq!(parse_defer(Some("0"), max), Ok(None));
        assert_eq!(
            parse_defer(Some("1000"), max),
            Ok(Some(Duration::from_secs(1)))
        );
        assert_eq!(
            parse_defer(Some("+5"), max),
            Ok(Some(Duration::from_millis(5)))
        );
        assert_eq!(parse_defer(Some("3600000"), max), Ok(Some(max)));
        assert_eq!(parse_defer(Some("3600001"), max), Err(()));
        assert_eq!(parse_defer(Some("-1"), max), Err(()));
        assert_eq!(parse_defer(Some("abc"), max), Err(()));
        assert_eq!(parse_defer(Some(""), max), Err(()));
        assert_eq!(parse_defer(Some("99999999999999999999"), max), Err(()));
    }

    #[test]
    fn topic_errors_in_upstreams_words() {
        let message = |raw: Option<&str>| {
            let reply = topic_from_query(raw).unwrap_err();
            String::from_utf8(reply.body.to_vec()).unwrap()
        };
        assert_eq!(message(None), r#"{"message":"MISSING_ARG_TOPIC"}"#);
        assert_eq!(
            message(Some("topic=bad$topic")),
            r#"{"message":"INVALID_TOPIC"}"#
        );
        assert_eq!(message(Some("topic=")), r#"{"message":"INVALID_TOPIC"}"#);
        assert_eq!(
            message(Some("topic=%zz")),
            r#"{"message":"INVALID_REQUEST"}"#
        );
        assert_eq!(
            topic_from_query(Some("topic=a.b_c-1")).unwrap().1,
            "a.b_c-1"
        );
    }
}
