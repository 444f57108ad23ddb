//! The pages of the UI, rendered on the server.
//!
//! Mirrors the views of upstream nsqadmin (`static/js/views/*.hbs`: topics, topic, channel,
//! nodes, node, counter, lookup) as plain HTML: every page works without JavaScript; the
//! embedded `app.js` adds confirmations for actions, live refresh and the counter's polling.
//! Upstream serves one JavaScript app for every page path; here each path is its own page.
//! A page always renders: what could not be reached is named (a warning, and `unreachable`
//! rows), never the cause of an error page, unless nothing at all could be asked.

pub(crate) mod assets;
mod nodes;
mod tools;
mod topics;

use std::fmt::Write as _;
use std::sync::Arc;

use crate::api::{is_admin, Warnings};
use crate::html::{escape, path_segment};
use crate::http::router::Page;
use crate::http::{join_base, AdminRequest, Reply};
use crate::Context;

/// What a page needs besides its data.
pub(crate) struct Frame<'a> {
    pub ctx: &'a Context,
    /// Whether the user may act (buttons are shown).
    pub admin: bool,
}

impl Frame<'_> {
    /// A path under the base path.
    pub fn link(&self, path: &str) -> String {
        join_base(&self.ctx.base_path, path)
    }

    /// The link to a topic page.
    pub fn topic_link(&self, topic: &str) -> String {
        self.link(&format!("/topics/{}", path_segment(topic)))
    }

    /// The link to a channel page.
    pub fn channel_link(&self, topic: &str, channel: &str) -> String {
        self.link(&format!(
            "/topics/{}/{}",
            path_segment(topic),
            path_segment(channel)
        ))
    }

    /// The link to a node page.
    pub fn node_link(&self, node: &str) -> String {
        self.link(&format!("/nodes/{}", path_segment(node)))
    }
}

/// Renders `page`.
pub(crate) async fn render(ctx: &Arc<Context>, page: Page, req: &AdminRequest) -> Reply {
    let frame = Frame {
        ctx,
        admin: is_admin(ctx, req),
    };
    let (title, active, body) = match &page {
        Page::Topics => ("Topics", "topics", topics::topics(&frame).await),
        Page::Topic(t) => ("Topic", "topics", topics::topic(&frame, t).await),
        Page::Channel(t, c) => ("Channel", "topics", topics::channel(&frame, t, c).await),
        Page::Nodes => ("Nodes", "nodes", nodes::nodes(&frame).await),
        Page::Node(n) => ("Node", "nodes", nodes::node(&frame, n).await),
        Page::Counter => ("Counter", "counter", tools::counter(&frame)),
        Page::Lookup => ("Lookup", "lookup", tools::lookup(&frame).await),
    };
    Reply::typed(
        "text/html; charset=utf-8",
        layout(&frame, title, active, &body),
    )
}

fn layout(frame: &Frame<'_>, title: &str, active: &str, body: &str) -> String {
    let mut nav = String::new();
    for (key, label, path) in [
        ("topics", "Topics", "/topics"),
        ("nodes", "Nodes", "/nodes"),
        ("counter", "Counter", "/counter"),
        ("lookup", "Lookup", "/lookup"),
    ] {
        let class = if key == active {
            " class=\"active\""
        } else {
            ""
        };
        let _ = write!(
            nav,
            "<a href=\"{}\"{class}>{label}</a>",
            escape(&frame.link(path))
        );
    }
    let base = if frame.ctx.base_path == "/" {
        ""
    } else {
        frame.ctx.base_path.as_str()
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · sluice-admin</title>\
         <link rel=\"stylesheet\" href=\"{css}\"></head>\
         <body data-base=\"{base}\"><header><span class=\"brand\">sluice-admin</span>\
         <nav>{nav}</nav><span class=\"right\"><label><input type=\"checkbox\" id=\"live\"> live</label>\
          · v{version}</span></header>\
         <main><div id=\"flash\" class=\"warning\" hidden></div>{body}</main>\
         <script src=\"{js}\"></script></body></html>\n",
        title = escape(title),
        css = escape(&frame.link("/static/style.css")),
        js = escape(&frame.link("/static/app.js")),
        base = escape(base),
        version = env!("CARGO_PKG_VERSION"),
    )
}

/// The warning box and one `unreachable` line per address that failed.
pub(crate) fn warnings_html(warnings: &Warnings) -> String {
    let message = warnings.message();
    if message.is_empty() {
        return String::new();
    }
    let mut out = format!("<div class=\"warning\">{}</div>", escape(&message));
    if !warnings.unreachable.is_empty() {
        out.push_str("<table class=\"unreachable\"><tr><th>unreachable</th><th class=\"text\">error</th></tr>");
        for e in &warnings.unreachable {
            let _ = write!(
                out,
                "<tr class=\"unreachable\"><td>{} <span class=\"badge down\">unreachable</span></td>\
                 <td class=\"text\">{}</td></tr>",
                escape(&e.addr),
                escape(&e.text)
            );
        }
        out.push_str("</table>");
    }
    out
}

/// An error that left nothing to show.
pub(crate) fn failure_html(what: &str, error: &str) -> String {
    format!(
        "<h1>{}</h1><div class=\"warning error\">{}</div>",
        escape(what),
        escape(error)
    )
}

/// An action button: `method url` with a JSON `body`, after confirming `question`; then go to
/// `then` (or reload).
pub(crate) fn button(
    label: &str,
    method: &str,
    url: &str,
    body: &str,
    question: &str,
    then: Option<&str>,
    class: &str,
) -> String {
    let then = then.map_or(String::new(), |t| format!(" data-then=\"{}\"", escape(t)));
    let class = if class.is_empty() {
        String::new()
    } else {
        format!(" class=\"{class}\"")
    };
    format!(
        "<button{class} data-method=\"{method}\" data-url=\"{}\" data-body=\"{}\" data-confirm=\"{}\"{then}>{}</button>",
        escape(url),
        escape(body),
        escape(question),
        escape(label)
    )
}
