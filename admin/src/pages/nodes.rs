//! The nodes page and a node's page.
//!
//! Mirrors upstream's `nodes.hbs` (every broker: host, broadcast address, ports, version, the
//! lookupds that know it, its topics) and `node.hbs` (one broker's topics and channels with
//! totals). A broker that cannot be reached is listed as `unreachable`.

use std::fmt::Write as _;

use super::{failure_html, warnings_html, Frame};
use crate::api::{self, Warnings};
use crate::html::{commafy, escape};

pub(super) async fn nodes(frame: &Frame<'_>) -> String {
    let mut warnings = Warnings::default();
    let producers = match api::fetch_producers(frame.ctx).await {
        Ok(partial) => {
            warnings.note(&partial);
            partial.value
        }
        Err(e) => return failure_html("Nodes", &e),
    };
    let (lookupds, _) = frame.ctx.addresses();
    let mut out = format!("<h1>Nodes</h1>{}", warnings_html(&warnings));
    out.push_str(
        "<table><tr><th>node</th><th class=\"text\">hostname</th><th>TCP port</th>\
         <th>HTTP port</th><th class=\"text\">version</th><th class=\"text\">lookupd connections</th>\
         <th>topics</th></tr>",
    );
    for p in &producers {
        let node = p.http_address();
        let version_class = if p.out_of_date {
            " class=\"text error\""
        } else {
            " class=\"text\""
        };
        let connections = p.remote_addresses.as_ref().map_or_else(
            || "–".to_owned(),
            |list| {
                let missing = !lookupds.is_empty() && list.len() != lookupds.len();
                let text = escape(&list.join(", "));
                if missing {
                    format!("{text} <span class=\"badge down\">not on every lookupd</span>")
                } else {
                    text
                }
            },
        );
        let _ = write!(
            out,
            "<tr><td><a href=\"{}\">{}</a> <span class=\"badge ok\">up</span></td><td class=\"text\">{}</td>\
             <td>{}</td><td>{}</td><td{version_class}>{}</td><td class=\"text\">{connections}</td><td>{}</td></tr>",
            escape(&frame.node_link(&node)),
            escape(&node),
            escape(&p.hostname),
            p.tcp_port,
            p.http_port,
            escape(&p.version),
            p.topics.as_ref().map_or(0, Vec::len),
        );
    }
    out.push_str("</table>");
    if producers.is_empty() {
        out.push_str("<p class=\"muted\">No nodes.</p>");
    }
    out
}

pub(super) async fn node(frame: &Frame<'_>, node: &str) -> String {
    let report = match api::node_report(frame.ctx, node).await {
        Ok(report) => report,
        Err((404, _)) => return failure_html(&format!("Node {node}"), "NODE_NOT_FOUND"),
        Err((_, message)) => {
            let mut out = failure_html(&format!("Node {node}"), &message);
            out.push_str("<p><span class=\"badge down\">unreachable</span></p>");
            return out;
        }
    };
    let mut out = format!(
        "<div class=\"breadcrumb\"><a href=\"{}\">nodes</a> /</div><h1>Node {}</h1>",
        escape(&frame.link("/nodes")),
        escape(node)
    );
    if !report.message.is_empty() {
        let _ = write!(
            out,
            "<div class=\"warning\">{}</div>",
            escape(&report.message)
        );
    }
    let _ = write!(
        out,
        "<p>{} topics · {} messages · {} clients</p>",
        report.topics.len(),
        commafy(report.total_messages.into()),
        commafy(i128::try_from(report.total_clients).unwrap_or(i128::MAX)),
    );
    out.push_str(
        "<table><tr><th>topic / channel</th><th>depth</th><th>in-flight</th><th>deferred</th>\
         <th>messages</th><th>clients</th></tr>",
    );
    for t in &report.topics {
        let _ = write!(
            out,
            "<tr class=\"total\"><td><a href=\"{}\">{}</a></td><td>{}</td><td></td><td></td><td>{}</td><td></td></tr>",
            escape(&frame.topic_link(&t.topic_name)),
            escape(&t.topic_name),
            commafy(t.depth.into()),
            commafy(t.message_count.into()),
        );
        for c in t.channels.iter().flatten() {
            let _ = write!(
                out,
                "<tr><td>&nbsp;&nbsp;<a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&frame.channel_link(&t.topic_name, &c.channel_name)),
                escape(&c.channel_name),
                commafy(c.depth.into()),
                commafy(c.in_flight_count.into()),
                commafy(c.deferred_count.into()),
                commafy(c.message_count.into()),
                c.clients.as_ref().map_or(0, Vec::len),
            );
        }
    }
    out.push_str("</table>");
    out
}
