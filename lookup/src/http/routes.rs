//! The handlers of the HTTP API and the shape of their replies; no hyper here.
//!
//! Mirrors upstream `nsqlookupd/http.go` (one function per route, same parameters, checks and
//! error words) and `internal/http_api/api_response.go` (`RespondV1`: JSON with
//! `Content-Type: application/json; charset=utf-8`, `X-NSQ-Content-Type: nsq; version=1.0` on
//! every V1 reply, an empty 200 for handlers that return nothing, `{"message":...}` otherwise).

use bytes::Bytes;
use serde::Serialize;
use sluice_proto::http_json::{ChannelsResponse, ErrorBody, LookupdInfo, TopicsResponse};
use sluice_proto::lookup::COMPATIBLE_VERSION;
use sluice_proto::names::{is_valid_channel_name, is_valid_topic_name};

use super::query::Query;
use super::router::Route;
use crate::registry::Now;
use crate::Context;

const JSON: &str = "application/json; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// A reply, before it becomes an HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl Reply {
    fn new(status: u16, content_type: Option<&str>, body: impl Into<Bytes>) -> Reply {
        let headers = content_type
            .map(|ct| vec![("Content-Type", ct.to_owned())])
            .unwrap_or_default();
        Reply {
            status,
            headers,
            body: body.into(),
        }
    }

    /// `RespondV1` for a value: 200 and its JSON.
    pub(crate) fn json<T: Serialize>(value: &T) -> Reply {
        match serde_json::to_vec(value) {
            Ok(body) => Reply::new(200, Some(JSON), body).v1(),
            Err(e) => Reply::error(500, &e.to_string()),
        }
    }

    /// `RespondV1` for a handler that returned nothing: 200, empty, no `Content-Type`.
    pub(crate) fn empty() -> Reply {
        Reply::new(200, None, Bytes::new()).v1()
    }

    /// `RespondV1` for an error: the status and `{"message":"..."}`.
    pub(crate) fn error(status: u16, message: &str) -> Reply {
        let body = ErrorBody {
            message: message.to_owned(),
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        Reply::new(status, Some(JSON), bytes).v1()
    }

    /// Plain text, as upstream's `PlainText` decorator and Go's content sniffing send it.
    pub(crate) fn text(status: u16, body: impl Into<Bytes>) -> Reply {
        Reply::new(status, Some(TEXT), body)
    }

    /// Go's `http.Redirect` to `location`.
    pub(crate) fn redirect(method: &str, status: u16, location: String) -> Reply {
        let (content_type, body) = match method {
            "GET" => (
                Some(HTML),
                format!(
                    "<a href=\"{}\">{}</a>.\n\n",
                    html_escape(&location),
                    if status == 301 {
                        "Moved Permanently"
                    } else {
                        "Temporary Redirect"
                    }
                ),
            ),
            "HEAD" => (Some(HTML), String::new()),
            _ => (None, String::new()),
        };
        let mut reply = Reply::new(status, content_type, body);
        reply.headers.push(("Location", location));
        reply
    }

    pub(crate) fn with_header(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }

    fn v1(self) -> Reply {
        self.with_header("X-NSQ-Content-Type", "nsq; version=1.0".to_owned())
    }
}

/// Runs one handler.
pub(crate) fn handle(ctx: &Context, route: Route, raw_query: &str, now: Now) -> Reply {
    let result = match route {
        Route::Ping => return Reply::text(200, "OK"),
        Route::Info => Ok(Reply::json(&LookupdInfo {
            version: COMPATIBLE_VERSION.to_owned(),
        })),
        Route::Debug => Ok(Reply::json(&ctx.lock_db().debug())),
        Route::Topics => Ok(Reply::json(&TopicsResponse {
            topics: ctx.lock_db().topics(),
        })),
        Route::Nodes => Ok(Reply::json(&ctx.lock_db().nodes(now, ctx.visibility))),
        Route::Lookup => lookup(ctx, raw_query, now),
        Route::Channels => channels(ctx, raw_query),
        Route::TopicCreate => topic_create(ctx, raw_query),
        Route::TopicDelete => topic_delete(ctx, raw_query),
        Route::ChannelCreate => channel_create(ctx, raw_query),
        Route::ChannelDelete => channel_delete(ctx, raw_query),
        Route::TopicTombstone => topic_tombstone(ctx, raw_query, now),
        Route::PprofIndex => return pprof_index(),
        Route::PprofCmdline => return pprof_cmdline(),
        Route::Metrics => return super::metrics::metrics(ctx, now),
    };
    result.unwrap_or_else(|(status, message)| Reply::error(status, message))
}

/// A handler's failure: upstream's `http_api.Err{Code, Text}`.
type Failure = (u16, &'static str);

/// Upstream's `http_api.NewReqParams`.
fn params(raw_query: &str) -> Result<Query, Failure> {
    Query::parse(raw_query).map_err(|()| (400, "INVALID_REQUEST"))
}

fn topic_param(query: &Query) -> Result<&str, Failure> {
    query.get("topic").ok_or((400, "MISSING_ARG_TOPIC"))
}

/// Upstream's `http_api.GetTopicChannelArgs`.
fn topic_channel_args(query: &Query) -> Result<(&str, &str), Failure> {
    let topic = topic_param(query)?;
    if !is_valid_topic_name(topic) {
        return Err((400, "INVALID_ARG_TOPIC"));
    }
    let channel = query.get("channel").ok_or((400, "MISSING_ARG_CHANNEL"))?;
    if !is_valid_channel_name(channel) {
        return Err((400, "INVALID_ARG_CHANNEL"));
    }
    Ok((topic, channel))
}

fn lookup(ctx: &Context, raw_query: &str, now: Now) -> Result<Reply, Failure> {
    let query = params(raw_query)?;
    let topic = topic_param(&query)?;
    let found = ctx.lock_db().lookup(topic, now, ctx.visibility);
    found
        .map(|response| Reply::json(&response))
        .ok_or((404, "TOPIC_NOT_FOUND"))
}

fn channels(ctx: &Context, raw_query: &str) -> Result<Reply, Failure> {
    let query = params(raw_query)?;
    let topic = topic_param(&query)?;
    let channels = ctx.lock_db().channels(topic);
    Ok(Reply::json(&ChannelsResponse { channels }))
}

fn topic_create(ctx: &Context, raw_query: &str) -> Result<Reply, Failure> {
    let query = params(raw_query)?;
    let topic = topic_param(&query)?;
    if !is_valid_topic_name(topic) {
        return Err((400, "INVALID_ARG_TOPIC"));
    }
    tracing::info!("DB: adding topic({topic})");
    ctx.lock_db().create_topic(topic);
    Ok(Reply::empty())
}

fn topic_delete(ctx: &Context, raw_query: &str) -> Result<Reply, Failure> {
    let query = params(raw_query)?;
    // Upstream does not check the name here: an unknown or invalid topic is simply absent.
    let topic = topic_param(&query)?;
    tracing::info!("DB: removing topic({topic})");
    ctx.lock_db().delete_topic(topic);
    Ok(Reply::empty())
}

fn channel_create(ctx: &Context, raw_query: &str) -> Result<Reply, Failure> {
    let query = params(raw_query)?;
    let (topic, channel) = topic_channel_args(&query)?;
    tracing::info!("DB: adding channel({channel}) in topic({topic})");
    ctx.lock_db().create_channel(topic, channel);
    Ok(Reply::empty())
}

fn channel_delete(ctx: &Context, raw_query: &str) -> Result<Reply, Failure> {
    let query = params(raw_query)?;
    let (topic, channel) = topic_channel_args(&query)?;
    if !ctx.lock_db().delete_channel(topic, channel) {
        return Err((404, "CHANNEL_NOT_FOUND"));
    }
    tracing::info!("DB: removed channel({channel}) from topic({topic})");
    Ok(Reply::empty())
}

fn topic_tombstone(ctx: &Context, raw_query: &str, now: Now) -> Result<Reply, Failure> {
    let query = params(raw_query)?;
    let topic = topic_param(&query)?;
    let node = query.get("node").ok_or((400, "MISSING_ARG_NODE"))?;
    tracing::info!("DB: setting tombstone for producer@{node} of topic({topic})");
    ctx.lock_db().tombstone(topic, node, now);
    Ok(Reply::empty())
}

/// `/debug/pprof`: upstream serves Go's profiler index. A Rust process has no Go profiles, so
/// the page says so and links what there is.
fn pprof_index() -> Reply {
    let body = "<html>\n<head>\n<title>/debug/pprof/</title>\n</head>\n<body>\n\
                /debug/pprof/<br>\n<br>\n\
                sluice-lookupd is not a Go program: Go runtime profiles are not available.<br>\n\
                <a href=\"/debug/pprof/cmdline\">cmdline</a><br>\n\
                </body>\n</html>\n";
    Reply::new(200, Some(HTML), body)
}

/// `/debug/pprof/cmdline`: the command line, arguments separated by NUL bytes (Go's pprof).
fn pprof_cmdline() -> Reply {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    Reply::text(200, args.join("\0")).with_header("X-Content-Type-Options", "nosniff".to_owned())
}

/// Go's `htmlEscape` for the redirect body.
fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}
