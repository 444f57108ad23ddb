//! `POST /topic/{create,delete,empty,pause,unpause}` and
//! `POST /channel/{create,delete,empty,pause,unpause}`, each run on the shard that owns the
//! topic.
//!
//! Mirrors `nsqd/http.go` `doCreateTopic`, `doDeleteTopic`, `doEmptyTopic`, `doPauseTopic`,
//! `doCreateChannel`, `doDeleteChannel`, `doEmptyChannel`, `doPauseChannel`, whose checks differ
//! route by route and are kept exactly:
//! - create: the name must be valid (`INVALID_TOPIC`);
//! - empty: valid (`INVALID_TOPIC`) and existing (`TOPIC_NOT_FOUND`);
//! - delete, pause, unpause: no name check, so an invalid name is simply not found;
//! - every channel route (`http_api.GetTopicChannelArgs`): `MISSING_ARG_TOPIC`,
//!   `INVALID_ARG_TOPIC`, `MISSING_ARG_CHANNEL`, `INVALID_ARG_CHANNEL`, then the topic must
//!   exist (`TOPIC_NOT_FOUND`, also for create) and, except for create, the channel
//!   (`CHANNEL_NOT_FOUND`).
//!
//! Success is `200` with an empty body.

use hyper::{StatusCode, Uri};
use sluice_proto::names;

use super::owner;
use super::query::Query;
use super::reply::Reply;
use super::router::Action;
use crate::shard::mesh::{AdminOp, AdminResult};
use crate::shard::Shard;

/// A `/topic/*` route.
pub async fn topic(shard: &Shard, action: Action, uri: &Uri) -> Reply {
    let query = match Query::parse(uri.query()) {
        Ok(q) => q,
        Err(_) => return bad_request("INVALID_REQUEST"),
    };
    let Some(topic) = query.get("topic").map(str::to_owned) else {
        return bad_request("MISSING_ARG_TOPIC");
    };
    let validated = matches!(action, Action::Create | Action::Empty);
    if validated && !names::is_valid_topic_name(&topic) {
        return bad_request("INVALID_TOPIC");
    }
    let op = match action {
        Action::Create => AdminOp::CreateTopic(topic.clone()),
        Action::Delete => AdminOp::DeleteTopic(topic.clone()),
        Action::Empty => AdminOp::EmptyTopic(topic.clone()),
        Action::Pause => AdminOp::PauseTopic(topic.clone(), true),
        Action::Unpause => AdminOp::PauseTopic(topic.clone(), false),
    };
    answer(owner::admin(shard, &topic, op).await)
}

/// A `/channel/*` route.
pub async fn channel(shard: &Shard, action: Action, uri: &Uri) -> Reply {
    let (topic, channel) = match topic_channel_args(uri.query()) {
        Ok(args) => args,
        Err(reply) => return reply,
    };
    let result = match action {
        Action::Create => owner::create_channel(shard, &topic, &channel).await,
        Action::Delete => {
            let op = AdminOp::DeleteChannel(topic.clone(), channel);
            owner::admin(shard, &topic, op).await
        }
        Action::Empty => {
            let op = AdminOp::EmptyChannel(topic.clone(), channel);
            owner::admin(shard, &topic, op).await
        }
        Action::Pause | Action::Unpause => {
            let op = AdminOp::PauseChannel(topic.clone(), channel, action == Action::Pause);
            owner::admin(shard, &topic, op).await
        }
    };
    answer(result)
}

/// Upstream's `GetTopicChannelArgs`.
fn topic_channel_args(raw: Option<&str>) -> Result<(String, String), Reply> {
    let query = Query::parse(raw).map_err(|_| bad_request("INVALID_REQUEST"))?;
    let topic = query
        .get("topic")
        .ok_or_else(|| bad_request("MISSING_ARG_TOPIC"))?;
    if !names::is_valid_topic_name(topic) {
        return Err(bad_request("INVALID_ARG_TOPIC"));
    }
    let channel = query
        .get("channel")
        .ok_or_else(|| bad_request("MISSING_ARG_CHANNEL"))?;
    if !names::is_valid_channel_name(channel) {
        return Err(bad_request("INVALID_ARG_CHANNEL"));
    }
    Ok((topic.to_owned(), channel.to_owned()))
}

fn answer<E>(result: Result<AdminResult, E>) -> Reply {
    match result {
        Ok(AdminResult::Ok) => Reply::v1_empty(),
        Ok(AdminResult::TopicNotFound) => Reply::v1_error(StatusCode::NOT_FOUND, "TOPIC_NOT_FOUND"),
        Ok(AdminResult::ChannelNotFound) => {
            Reply::v1_error(StatusCode::NOT_FOUND, "CHANNEL_NOT_FOUND")
        }
        Err(_) => Reply::v1_error(StatusCode::SERVICE_UNAVAILABLE, "EXITING"),
    }
}

fn bad_request(message: &str) -> Reply {
    Reply::v1_error(StatusCode::BAD_REQUEST, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(raw: Option<&str>) -> String {
        let reply = topic_channel_args(raw).unwrap_err();
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        String::from_utf8(reply.body.to_vec()).unwrap()
    }

    #[test]
    fn channel_args_are_checked_in_upstreams_order() {
        assert_eq!(
            message(Some("channel=c")),
            r#"{"message":"MISSING_ARG_TOPIC"}"#
        );
        assert_eq!(
            message(Some("topic=bad$topic&channel=bad*c")),
            r#"{"message":"INVALID_ARG_TOPIC"}"#
        );
        assert_eq!(
            message(Some("topic=t")),
            r#"{"message":"MISSING_ARG_CHANNEL"}"#
        );
        assert_eq!(
            message(Some("topic=t&channel=bad*channel")),
            r#"{"message":"INVALID_ARG_CHANNEL"}"#
        );
        assert_eq!(
            message(Some("topic=t;")),
            r#"{"message":"INVALID_REQUEST"}"#
        );
        assert_eq!(
            topic_channel_args(Some("topic=t&channel=c#ephemeral")).unwrap(),
            ("t".to_owned(), "c#ephemeral".to_owned())
        );
    }
}
