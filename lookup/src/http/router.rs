//! Which handler a method and path reach, with upstream's router behaviour around the edges.
//!
//! Mirrors the route table of `nsqlookupd/http.go` and julienschmidt/httprouter v1.3.0's
//! `ServeHTTP` as upstream configures it: a path with or without a trailing slash, or in the
//! wrong case, is redirected (301 for GET, 307 otherwise) to the route; OPTIONS answers with
//! `Allow`; a path known for another method is 405 with `Allow`; anything else is 404.

/// A handler of the HTTP API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    Ping,
    Info,
    Debug,
    Lookup,
    Topics,
    Channels,
    Nodes,
    TopicCreate,
    TopicDelete,
    ChannelCreate,
    ChannelDelete,
    TopicTombstone,
    PprofIndex,
    PprofCmdline,
    /// `GET /metrics` (ours: Prometheus text, [`super::metrics`]).
    Metrics,
}

/// Upstream's routes. The Go runtime profiles under `/debug/pprof/` have no equivalent here
/// and are not routed (404).
const ROUTES: &[(&str, &str, Route)] = &[
    ("GET", "/ping", Route::Ping),
    ("GET", "/info", Route::Info),
    ("GET", "/debug", Route::Debug),
    ("GET", "/lookup", Route::Lookup),
    ("GET", "/topics", Route::Topics),
    ("GET", "/channels", Route::Channels),
    ("GET", "/nodes", Route::Nodes),
    ("POST", "/topic/create", Route::TopicCreate),
    ("POST", "/topic/delete", Route::TopicDelete),
    ("POST", "/channel/create", Route::ChannelCreate),
    ("POST", "/channel/delete", Route::ChannelDelete),
    ("POST", "/topic/tombstone", Route::TopicTombstone),
    ("GET", "/debug/pprof", Route::PprofIndex),
    ("GET", "/debug/pprof/cmdline", Route::PprofCmdline),
    ("GET", "/metrics", Route::Metrics),
];

/// What the router decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Dispatch {
    /// Run this handler.
    Handle(Route),
    /// Redirect to this path (the query is kept by the caller) with this status.
    Redirect { path: &'static str, status: u16 },
    /// OPTIONS on a known path: 200 with this `Allow`.
    Options { allow: String },
    /// Known path, other method: 405 with this `Allow`.
    MethodNotAllowed { allow: String },
    /// 404.
    NotFound,
}

/// Routes a request by method and (decoded) path.
pub(crate) fn dispatch(method: &str, path: &str) -> Dispatch {
    let for_method = || ROUTES.iter().filter(move |(m, _, _)| *m == method);
    if let Some((_, _, route)) = for_method().find(|(_, p, _)| *p == path) {
        return Dispatch::Handle(*route);
    }
    if method != "CONNECT" && path != "/" {
        let status = if method == "GET" { 301 } else { 307 };
        let toggled = toggle_trailing_slash(path);
        if let Some((_, p, _)) = for_method().find(|(_, p, _)| *p == toggled) {
            return Dispatch::Redirect { path: p, status };
        }
        let cleaned = clean_path(path);
        let cleaned_toggled = toggle_trailing_slash(&cleaned);
        if let Some((_, p, _)) = for_method().find(|(_, p, _)| {
            p.eq_ignore_ascii_case(&cleaned) || p.eq_ignore_ascii_case(&cleaned_toggled)
        }) {
            return Dispatch::Redirect { path: p, status };
        }
    }
    let allow = allowed(method, path);
    match (method, allow) {
        (_, None) => Dispatch::NotFound,
        ("OPTIONS", Some(allow)) => Dispatch::Options { allow },
        (_, Some(allow)) => Dispatch::MethodNotAllowed { allow },
    }
}

/// httprouter's `allowed`: the other methods that have this path, then `OPTIONS`.
fn allowed(method: &str, path: &str) -> Option<String> {
    let mut methods: Vec<&str> = ROUTES
        .iter()
        .filter(|(m, p, _)| *p == path && *m != method)
        .map(|(m, _, _)| *m)
        .collect();
    if methods.is_empty() {
        return None;
    }
    methods.dedup();
    methods.push("OPTIONS");
    Some(methods.join(", "))
}

fn toggle_trailing_slash(path: &str) -> String {
    match path.strip_suffix('/') {
        Some(stripped) if !stripped.is_empty() => stripped.to_owned(),
        _ => format!("{path}/"),
    }
}

/// httprouter's `CleanPath`: one leading slash, no empty, `.` or `..` segments, and the
/// trailing slash kept.
pub(crate) fn clean_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut out = format!("/{}", segments.join("/"));
    if path.ends_with('/') && out != "/" {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_routes_by_method() {
        assert_eq!(dispatch("GET", "/lookup"), Dispatch::Handle(Route::Lookup));
        assert_eq!(
            dispatch("POST", "/topic/tombstone"),
            Dispatch::Handle(Route::TopicTombstone)
        );
        assert_eq!(
            dispatch("POST", "/ping"),
            Dispatch::MethodNotAllowed {
                allow: "GET, OPTIONS".into()
            }
        );
        assert_eq!(
            dispatch("GET", "/topic/create"),
            Dispatch::MethodNotAllowed {
                allow: "POST, OPTIONS".into()
            }
        );
        assert_eq!(
            dispatch("OPTIONS", "/nodes"),
            Dispatch::Options {
                allow: "GET, OPTIONS".into()
            }
        );
        assert_eq!(dispatch("GET", "/no_such_route"), Dispatch::NotFound);
        assert_eq!(dispatch("POST", "/ping/"), Dispatch::NotFound);
    }

    #[test]
    fn near_misses_redirect() {
        assert_eq!(
            dispatch("GET", "/topics/"),
            Dispatch::Redirect {
                path: "/topics",
                status: 301
            }
        );
        assert_eq!(
            dispatch("POST", "/Topic/Create"),
            Dispatch::Redirect {
                path: "/topic/create",
                status: 307
            }
        );
        assert_eq!(
            dispatch("GET", "//debug/./pprof/"),
            Dispatch::Redirect {
                path: "/debug/pprof",
                status: 301
            }
        );
    }

    #[test]
    fn clean_path_as_httprouter() {
        assert_eq!(clean_path(""), "/");
        assert_eq!(clean_path("a/b/../c/"), "/a/c/");
        assert_eq!(clean_path("/../x"), "/x");
        assert_eq!(clean_path("//"), "/");
    }
}
