//! Which handler a method and path reach.
//!
//! Mirrors the route table of `nsqadmin/http.go` `NewHTTPServer` (every route under
//! `--base-path`) and julienschmidt/httprouter's behaviour around the edges as upstream
//! configures it: a path with a trailing slash is redirected (301 for GET, 307 otherwise) to
//! the route without it; a path known for another method is 405 with `Allow`; anything else is
//! 404. Two routes are ours: `GET /api/history/:topic[/:channel]` (the chart data as JSON).

/// A page of the UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Page {
    Topics,
    Topic(String),
    Channel(String, String),
    Nodes,
    Node(String),
    Counter,
    Lookup,
}

/// A handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    Ping,
    Page(Page),
    Static(String),
    ApiTopics,
    ApiTopic(String),
    ApiChannel(String, String),
    ApiNodes,
    ApiNode(String),
    ApiCounter,
    ApiGraphite,
    ApiHistory(String, String),
    CreateTopicChannel,
    TopicAction(String),
    ChannelAction(String, String),
    TombstoneNode(String),
    DeleteTopic(String),
    DeleteChannel(String, String),
    Config(String),
}

/// What the router decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Dispatch {
    Handle(Route),
    /// Redirect to this path (relative to the base path) with this status.
    Redirect {
        path: String,
        status: u16,
    },
    MethodNotAllowed {
        allow: String,
    },
    NotFound,
}

/// The route table: method, pattern (`:name` matches one non-empty segment).
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/ping"),
    ("GET", "/topics"),
    ("GET", "/topics/:topic"),
    ("GET", "/topics/:topic/:channel"),
    ("GET", "/nodes"),
    ("GET", "/nodes/:node"),
    ("GET", "/counter"),
    ("GET", "/lookup"),
    ("GET", "/static/:asset"),
    ("GET", "/api/topics"),
    ("GET", "/api/topics/:topic"),
    ("GET", "/api/topics/:topic/:channel"),
    ("GET", "/api/nodes"),
    ("GET", "/api/nodes/:node"),
    ("POST", "/api/topics"),
    ("POST", "/api/topics/:topic"),
    ("POST", "/api/topics/:topic/:channel"),
    ("DELETE", "/api/nodes/:node"),
    ("DELETE", "/api/topics/:topic"),
    ("DELETE", "/api/topics/:topic/:channel"),
    ("GET", "/api/counter"),
    ("GET", "/api/graphite"),
    ("GET", "/api/history/:topic"),
    ("GET", "/api/history/:topic/:channel"),
    ("GET", "/config/:opt"),
    ("PUT", "/config/:opt"),
];

/// The captured segments if `path` matches `pattern`.
fn capture(pattern: &str, path: &str) -> Option<Vec<String>> {
    if pattern == "/" || path == "/" {
        return (pattern == path).then(Vec::new);
    }
    let mut pattern_parts = pattern.split('/').skip(1);
    let mut path_parts = path.split('/').skip(1);
    let mut captures = Vec::new();
    loop {
        match (pattern_parts.next(), path_parts.next()) {
            (None, None) => return Some(captures),
            (Some(p), Some(s)) if p.starts_with(':') && !s.is_empty() => {
                captures.push(s.to_owned())
            }
            (Some(p), Some(s)) if p == s => {}
            _ => return None,
        }
    }
}

fn route_for(method: &str, pattern: &str, captures: Vec<String>) -> Option<Route> {
    let mut captures = captures.into_iter();
    let (first, second) = (captures.next(), captures.next());
    let route = match (method, pattern, first, second) {
        ("GET", "/" | "/topics", None, None) => Route::Page(Page::Topics),
        ("GET", "/ping", None, None) => Route::Ping,
        ("GET", "/topics/:topic", Some(t), None) => Route::Page(Page::Topic(t)),
        ("GET", "/topics/:topic/:channel", Some(t), Some(c)) => Route::Page(Page::Channel(t, c)),
        ("GET", "/nodes", None, None) => Route::Page(Page::Nodes),
        ("GET", "/nodes/:node", Some(n), None) => Route::Page(Page::Node(n)),
        ("GET", "/counter", None, None) => Route::Page(Page::Counter),
        ("GET", "/lookup", None, None) => Route::Page(Page::Lookup),
        ("GET", "/static/:asset", Some(a), None) => Route::Static(a),
        ("GET", "/api/topics", None, None) => Route::ApiTopics,
        ("GET", "/api/topics/:topic", Some(t), None) => Route::ApiTopic(t),
        ("GET", "/api/topics/:topic/:channel", Some(t), Some(c)) => Route::ApiChannel(t, c),
        ("GET", "/api/nodes", None, None) => Route::ApiNodes,
        ("GET", "/api/nodes/:node", Some(n), None) => Route::ApiNode(n),
        ("POST", "/api/topics", None, None) => Route::CreateTopicChannel,
        ("POST", "/api/topics/:topic", Some(t), None) => Route::TopicAction(t),
        ("POST", "/api/topics/:topic/:channel", Some(t), Some(c)) => Route::ChannelAction(t, c),
        ("DELETE", "/api/nodes/:node", Some(n), None) => Route::TombstoneNode(n),
        ("DELETE", "/api/topics/:topic", Some(t), None) => Route::DeleteTopic(t),
        ("DELETE", "/api/topics/:topic/:channel", Some(t), Some(c)) => Route::DeleteChannel(t, c),
        ("GET", "/api/counter", None, None) => Route::ApiCounter,
        ("GET", "/api/graphite", None, None) => Route::ApiGraphite,
        ("GET", "/api/history/:topic", Some(t), None) => Route::ApiHistory(t, String::new()),
        ("GET", "/api/history/:topic/:channel", Some(t), Some(c)) => Route::ApiHistory(t, c),
        ("GET" | "PUT", "/config/:opt", Some(o), None) => Route::Config(o),
        _ => return None,
    };
    Some(route)
}

/// Routes a request by method and decoded path (already relative to the base path).
pub(crate) fn dispatch(method: &str, path: &str) -> Dispatch {
    let method = if method == "HEAD" { "GET" } else { method };
    let find = |path: &str, method: Option<&str>| {
        ROUTES.iter().find_map(|(m, pattern)| {
            if method.is_some_and(|want| want != *m) {
                return None;
            }
            capture(pattern, path).and_then(|c| route_for(m, pattern, c))
        })
    };
    if let Some(route) = find(path, Some(method)) {
        return Dispatch::Handle(route);
    }
    if path.len() > 1 && path.ends_with('/') {
        let trimmed = path.trim_end_matches('/');
        let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
        if find(trimmed, Some(method)).is_some() {
            let status = if method == "GET" { 301 } else { 307 };
            return Dispatch::Redirect {
                path: trimmed.to_owned(),
                status,
            };
        }
    }
    let allowed: Vec<&str> = ROUTES
        .iter()
        .filter(|(m, pattern)| {
            capture(pattern, path).is_some_and(|c| route_for(m, pattern, c).is_some())
        })
        .map(|(m, _)| *m)
        .collect();
    if allowed.is_empty() {
        return Dispatch::NotFound;
    }
    let mut allow: Vec<&str> = allowed;
    allow.push("OPTIONS");
    allow.sort_unstable();
    allow.dedup();
    Dispatch::MethodNotAllowed {
        allow: allow.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(method: &str, path: &str) -> Route {
        match dispatch(method, path) {
            Dispatch::Handle(route) => route,
            other => panic!("{method} {path}: {other:?}"),
        }
    }

    #[test]
    fn upstream_routes_reach_their_handlers() {
        assert_eq!(handle("GET", "/"), Route::Page(Page::Topics));
        assert_eq!(
            handle("GET", "/topics/t/c"),
            Route::Page(Page::Channel("t".into(), "c".into()))
        );
        assert_eq!(
            handle("GET", "/nodes/127.0.0.1:4151"),
            Route::Page(Page::Node("127.0.0.1:4151".into()))
        );
        assert_eq!(handle("GET", "/api/topics/t"), Route::ApiTopic("t".into()));
        assert_eq!(handle("POST", "/api/topics"), Route::CreateTopicChannel);
        assert_eq!(
            handle("POST", "/api/topics/t/c"),
            Route::ChannelAction("t".into(), "c".into())
        );
        assert_eq!(
            handle("DELETE", "/api/nodes/h:1"),
            Route::TombstoneNode("h:1".into())
        );
        assert_eq!(
            handle("PUT", "/config/log_level"),
            Route::Config("log_level".into())
        );
        assert_eq!(handle("HEAD", "/ping"), Route::Ping);
        assert_eq!(
            handle("GET", "/api/history/t"),
            Route::ApiHistory("t".into(), String::new())
        );
    }

    #[test]
    fn edges_behave_as_httprouter() {
        assert_eq!(
            dispatch("GET", "/topics/"),
            Dispatch::Redirect {
                path: "/topics".into(),
                status: 301
            }
        );
        assert_eq!(
            dispatch("POST", "/api/topics/t/"),
            Dispatch::Redirect {
                path: "/api/topics/t".into(),
                status: 307
            }
        );
        assert_eq!(
            dispatch("PUT", "/api/topics/t"),
            Dispatch::MethodNotAllowed {
                allow: "DELETE, GET, OPTIONS, POST".into()
            }
        );
        assert_eq!(dispatch("GET", "/nope"), Dispatch::NotFound);
        assert_eq!(dispatch("GET", "/api/topics//c"), Dispatch::NotFound);
        assert_eq!(dispatch("GET", "/topics/a/b/c"), Dispatch::NotFound);
    }
}
