//! Which handler a method and path reach, decided as upstream's router decides it.
//!
//! Mirrors the route table of `nsqd/http.go` `newHTTPServer` and the behaviour of
//! `julienschmidt/httprouter` v1.3.0 that clients can observe: a trailing-slash or
//! case/dot-segment mismatch redirects (301 for GET, 307 otherwise) to the route, `OPTIONS`
//! answers with `Allow`, a path served under other methods is `405` with `Allow`, anything else
//! `404`. Only GET, POST and PUT have routes, so any other method is never redirected. Pure.

use hyper::StatusCode;

/// A handler of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /ping`
    Ping,
    /// `GET /info`
    Info,
    /// `POST /pub`
    Pub,
    /// `POST /mpub`
    Mpub,
    /// `GET /stats`
    Stats,
    /// `GET /metrics` (ours: Prometheus text, [`crate::metrics::scrape`])
    Metrics,
    /// `POST /topic/<action>`
    Topic(Action),
    /// `POST /channel/<action>`
    Channel(Action),
    /// `GET` and `PUT /config/:opt`
    Config,
    /// `/debug/pprof/*` (Go runtime profiles)
    Pprof,
    /// `POST /debug/freememory`
    FreeMemory,
    /// `PUT /debug/setblockrate`
    SetBlockRate,
}

/// What a `/topic/*` or `/channel/*` route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `create`
    Create,
    /// `delete`
    Delete,
    /// `empty`
    Empty,
    /// `pause`
    Pause,
    /// `unpause`
    Unpause,
}

/// The one parameterized route, `/config/:opt`.
const CONFIG_PREFIX: &str = "/config/";

/// Every route: method, path (`:opt` marks the parameter), handler.
const ROUTES: &[(&str, &str, Endpoint)] = &[
    ("GET", "/ping", Endpoint::Ping),
    ("GET", "/info", Endpoint::Info),
    ("POST", "/pub", Endpoint::Pub),
    ("POST", "/mpub", Endpoint::Mpub),
    ("GET", "/stats", Endpoint::Stats),
    ("GET", "/metrics", Endpoint::Metrics),
    ("POST", "/topic/create", Endpoint::Topic(Action::Create)),
    ("POST", "/topic/delete", Endpoint::Topic(Action::Delete)),
    ("POST", "/topic/empty", Endpoint::Topic(Action::Empty)),
    ("POST", "/topic/pause", Endpoint::Topic(Action::Pause)),
    ("POST", "/topic/unpause", Endpoint::Topic(Action::Unpause)),
    ("POST", "/channel/create", Endpoint::Channel(Action::Create)),
    ("POST", "/channel/delete", Endpoint::Channel(Action::Delete)),
    ("POST", "/channel/empty", Endpoint::Channel(Action::Empty)),
    ("POST", "/channel/pause", Endpoint::Channel(Action::Pause)),
    (
        "POST",
        "/channel/unpause",
        Endpoint::Channel(Action::Unpause),
    ),
    ("GET", "/config/:opt", Endpoint::Config),
    ("PUT", "/config/:opt", Endpoint::Config),
    ("GET", "/debug/pprof/", Endpoint::Pprof),
    ("GET", "/debug/pprof/cmdline", Endpoint::Pprof),
    ("GET", "/debug/pprof/symbol", Endpoint::Pprof),
    ("POST", "/debug/pprof/symbol", Endpoint::Pprof),
    ("GET", "/debug/pprof/profile", Endpoint::Pprof),
    ("GET", "/debug/pprof/heap", Endpoint::Pprof),
    ("GET", "/debug/pprof/goroutine", Endpoint::Pprof),
    ("GET", "/debug/pprof/block", Endpoint::Pprof),
    ("PUT", "/debug/setblockrate", Endpoint::SetBlockRate),
    ("POST", "/debug/freememory", Endpoint::FreeMemory),
    ("GET", "/debug/pprof/threadcreate", Endpoint::Pprof),
];

/// The router's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Run the handler; `param` is `:opt` of `/config/:opt`.
    Handle {
        /// The handler.
        endpoint: Endpoint,
        /// The path parameter, if the route has one.
        param: Option<String>,
    },
    /// Redirect to the route's own spelling (`location` keeps the query).
    Redirect {
        /// 301 for GET, 307 otherwise.
        status: StatusCode,
        /// Path and query.
        location: String,
    },
    /// `OPTIONS` on a served path: answer 200 with this `Allow`.
    Options {
        /// Methods, sorted, `OPTIONS` included.
        allow: String,
    },
    /// The path is served under other methods.
    MethodNotAllowed {
        /// Methods, sorted, `OPTIONS` included.
        allow: String,
    },
    /// No route.
    NotFound,
}

/// Decides what answers `method path` (the path already percent-decoded).
pub fn resolve(method: &str, path: &str, query: Option<&str>) -> Resolution {
    if let Some((endpoint, param)) = lookup(method, path) {
        return Resolution::Handle { endpoint, param };
    }
    let has_tree = ROUTES.iter().any(|(m, _, _)| *m == method);
    if has_tree && method != "CONNECT" && path != "/" {
        let status = if method == "GET" {
            StatusCode::MOVED_PERMANENTLY
        } else {
            StatusCode::TEMPORARY_REDIRECT
        };
        let fixed = toggle_slash(path)
            .filter(|p| lookup(method, p).is_some())
            .or_else(|| fixed_path(method, path));
        if let Some(fixed) = fixed {
            let location = match query {
                Some(q) if !q.is_empty() => format!("{fixed}?{q}"),
                _ => fixed,
            };
            return Resolution::Redirect { status, location };
        }
    }
    if method == "OPTIONS" {
        if let Some(allow) = allowed(path, method) {
            return Resolution::Options { allow };
        }
    } else if let Some(allow) = allowed(path, method) {
        return Resolution::MethodNotAllowed { allow };
    }
    Resolution::NotFound
}

/// The handler of exactly `method path`.
fn lookup(method: &str, path: &str) -> Option<(Endpoint, Option<String>)> {
    ROUTES
        .iter()
        .filter(|(m, _, _)| *m == method)
        .find_map(
            |(_, pattern, endpoint)| match pattern.strip_suffix(":opt") {
                Some(_) => config_param(path).map(|p| (*endpoint, Some(p.to_owned()))),
                None => (*pattern == path).then_some((*endpoint, None)),
            },
        )
}

/// The `:opt` of a `/config/:opt` path: one non-empty segment.
fn config_param(path: &str) -> Option<&str> {
    let rest = path.strip_prefix(CONFIG_PREFIX)?;
    (!rest.is_empty() && !rest.contains('/')).then_some(rest)
}

/// The path with its trailing slash removed, or added.
fn toggle_slash(path: &str) -> Option<String> {
    match path.strip_suffix('/') {
        Some(stem) if !stem.is_empty() => Some(stem.to_owned()),
        Some(_) => None,
        None => Some(format!("{path}/")),
    }
}

/// httprouter's `RedirectFixedPath`: the cleaned path matched case-insensitively, with or
/// without its trailing slash; the route's own spelling (the parameter keeps its case).
fn fixed_path(method: &str, path: &str) -> Option<String> {
    let cleaned = clean_path(path);
    let candidates = [Some(cleaned.clone()), toggle_slash(&cleaned)];
    for candidate in candidates.iter().flatten() {
        for (m, pattern, _) in ROUTES {
            if *m != method {
                continue;
            }
            if pattern.ends_with(":opt") {
                let rest = candidate
                    .get(..CONFIG_PREFIX.len())
                    .filter(|prefix| prefix.eq_ignore_ascii_case(CONFIG_PREFIX))
                    .and_then(|_| candidate.get(CONFIG_PREFIX.len()..));
                if let Some(rest) = rest.filter(|r| !r.is_empty() && !r.contains('/')) {
                    return Some(format!("{CONFIG_PREFIX}{rest}"));
                }
            } else if pattern.eq_ignore_ascii_case(candidate) {
                return Some((*pattern).to_owned());
            }
        }
    }
    None
}

/// httprouter's `CleanPath`: one leading slash, no empty, `.` or `..` segments, the trailing
/// slash kept.
pub fn clean_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let trailing = path.ends_with('/') || path.ends_with("/.");
    let mut out = format!("/{}", segments.join("/"));
    if trailing && out.len() > 1 {
        out.push('/');
    }
    out
}

/// The methods serving `path` other than `except`, plus `OPTIONS`, sorted and joined; `None`
/// when no other method serves it.
fn allowed(path: &str, except: &str) -> Option<String> {
    let mut methods: Vec<&str> = ROUTES
        .iter()
        .map(|(m, _, _)| *m)
        .filter(|m| *m != except && lookup(m, path).is_some())
        .collect();
    if methods.is_empty() {
        return None;
    }
    methods.push("OPTIONS");
    methods.sort_unstable();
    methods.dedup();
    Some(methods.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(endpoint: Endpoint) -> Resolution {
        Resolution::Handle {
            endpoint,
            param: None,
        }
    }

    #[test]
    fn exact_routes_and_the_config_parameter() {
        assert_eq!(resolve("GET", "/ping", None), handle(Endpoint::Ping));
        assert_eq!(
            resolve("POST", "/channel/unpause", None),
            handle(Endpoint::Channel(Action::Unpause))
        );
        assert_eq!(
            resolve("PUT", "/config/log_level", None),
            Resolution::Handle {
                endpoint: Endpoint::Config,
                param: Some("log_level".into())
            }
        );
        assert_eq!(resolve("GET", "/config/", None), Resolution::NotFound);
    }

    #[test]
    fn trailing_slashes_redirect_as_httprouter() {
        assert_eq!(
            resolve("GET", "/ping/", None),
            Resolution::Redirect {
                status: StatusCode::MOVED_PERMANENTLY,
                location: "/ping".into()
            }
        );
        assert_eq!(
            resolve("POST", "/pub/", Some("topic=t")),
            Resolution::Redirect {
                status: StatusCode::TEMPORARY_REDIRECT,
                location: "/pub?topic=t".into()
            }
        );
        assert_eq!(
            resolve("GET", "/debug/pprof", None),
            Resolution::Redirect {
                status: StatusCode::MOVED_PERMANENTLY,
                location: "/debug/pprof/".into()
            }
        );
        // GET has no /pub, so nothing to redirect to; POST serves it only with the exact path.
        assert_eq!(resolve("GET", "/pub/", None), Resolution::NotFound);
    }

    #[test]
    fn case_and_dot_segments_are_fixed() {
        let redirect = |location: &str| Resolution::Redirect {
            status: StatusCode::MOVED_PERMANENTLY,
            location: location.into(),
        };
        assert_eq!(resolve("GET", "/PING", None), redirect("/ping"));
        assert_eq!(resolve("GET", "//stats", None), redirect("/stats"));
        assert_eq!(resolve("GET", "/x/../info", None), redirect("/info"));
        assert_eq!(
            resolve("GET", "/CONFIG/Log_Level", None),
            redirect("/config/Log_Level")
        );
    }

    #[test]
    fn other_methods_get_405_with_allow_and_options_gets_200() {
        let not_allowed = |allow: &str| Resolution::MethodNotAllowed {
            allow: allow.into(),
        };
        assert_eq!(resolve("POST", "/ping", None), not_allowed("GET, OPTIONS"));
        assert_eq!(resolve("HEAD", "/ping", None), not_allowed("GET, OPTIONS"));
        assert_eq!(
            resolve("DELETE", "/config/x", None),
            not_allowed("GET, OPTIONS, PUT")
        );
        assert_eq!(resolve("BREW", "/stats", None), not_allowed("GET, OPTIONS"));
        assert_eq!(
            resolve("OPTIONS", "/debug/pprof/symbol", None),
            Resolution::Options {
                allow: "GET, OPTIONS, POST".into()
            }
        );
        assert_eq!(resolve("OPTIONS", "/nope", None), Resolution::NotFound);
        assert_eq!(resolve("GET", "/no_such_route", None), Resolution::NotFound);
        assert_eq!(resolve("GET", "/", None), Resolution::NotFound);
    }

    #[test]
    fn clean_path_as_httprouter() {
        assert_eq!(clean_path(""), "/");
        assert_eq!(clean_path("a/b"), "/a/b");
        assert_eq!(clean_path("/a//b/./c/"), "/a/b/c/");
        assert_eq!(clean_path("/../a/.."), "/");
    }
}
