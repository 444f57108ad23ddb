//! The lookup page and the live message counter.
//!
//! Mirrors upstream's `lookup.hbs` (the lookupds, every topic they know with its channels, and
//! a form to create a topic or channel) and `counter.hbs` (one number: every message every
//! channel has received, polled from `/api/counter`).

use std::fmt::Write as _;

use super::{warnings_html, Frame};
use crate::api::{self, Warnings};
use crate::html::escape;

pub(super) async fn lookup(frame: &Frame<'_>) -> String {
    let (lookupds, nsqds) = frame.ctx.addresses();
    let mut out = String::from("<h1>Lookup</h1>");
    if lookupds.is_empty() {
        let _ = write!(
            out,
            "<p class=\"muted\">No lookupd is configured (--lookupd-http-address); topics and \
             channels are created directly on the nodes: {}.</p>",
            escape(&nsqds.join(", "))
        );
    } else {
        let _ = write!(out, "<p>lookupds: {}</p>", escape(&lookupds.join(", ")));
    }
    if frame.admin {
        out.push_str(
            "<h2>Create</h2><form class=\"create\"><input name=\"topic\" placeholder=\"topic\" required>\
             <input name=\"channel\" placeholder=\"channel (optional)\"><button type=\"submit\">Create</button></form>",
        );
    }
    let mut warnings = Warnings::default();
    let topics = match api::fetch_topics(frame.ctx).await {
        Ok(partial) => {
            warnings.note(&partial);
            partial.value
        }
        Err(e) => {
            let _ = write!(out, "<div class=\"warning error\">{}</div>", escape(&e));
            return out;
        }
    };
    let mut rows = String::new();
    for topic in &topics {
        let channels = if lookupds.is_empty() {
            Vec::new()
        } else {
            match frame
                .ctx
                .cluster
                .lookupd_topic_channels(topic, &lookupds)
                .await
            {
                Ok(partial) => partial.value,
                Err(_) => Vec::new(),
            }
        };
        let links: Vec<String> = channels
            .iter()
            .map(|c| {
                format!(
                    "<a href=\"{}\">{}</a>",
                    escape(&frame.channel_link(topic, c)),
                    escape(c)
                )
            })
            .collect();
        let _ = write!(
            rows,
            "<tr><td><a href=\"{}\">{}</a></td><td class=\"text\">{}</td></tr>",
            escape(&frame.topic_link(topic)),
            escape(topic),
            links.join(", ")
        );
    }
    let _ = write!(
        out,
        "{}<h2>Topology</h2><table><tr><th>topic</th><th class=\"text\">channels</th></tr>{rows}</table>",
        warnings_html(&warnings)
    );
    out
}

pub(super) fn counter(_frame: &Frame<'_>) -> String {
    "<h1>Messages processed</h1><div id=\"counter\" class=\"counter\">…</div>\
     <p id=\"counter-rate\" class=\"muted\">measuring…</p>\
     <p class=\"muted\">Every message every channel has received, on every node, polled every \
     2 seconds.</p><noscript>The counter needs JavaScript; see /api/counter.</noscript>"
        .to_owned()
}
