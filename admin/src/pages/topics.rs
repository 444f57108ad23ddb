//! The topics page, a topic's page and a channel's page.
//!
//! Mirrors upstream's `topics.hbs`, `topic.hbs` and `channel.hbs`: per node and in total,
//! depth (memory + disk), in-flight, deferred, requeued, timed out, messages, connections and
//! end-to-end latency percentiles; a channel's clients; pause/unpause, empty and delete with a
//! confirmation, and tombstoning a node's topic. Rates and the charts come from the sampled
//! history (upstream asks Graphite).

use std::fmt::Write as _;

use super::{button, failure_html, warnings_html, Frame};
use crate::api::{self, Warnings};
use crate::chart::line_chart;
use crate::clusterinfo::types::{ChannelStats, ClientStats, E2eAggregate, TopicStats};
use crate::history::{self, Point};
use crate::html::{commafy, escape, nanos, seconds};

pub(super) async fn topics(frame: &Frame<'_>) -> String {
    let mut warnings = Warnings::default();
    let topics = match api::fetch_topics(frame.ctx).await {
        Ok(partial) => {
            warnings.note(&partial);
            partial.value
        }
        Err(e) => return failure_html("Topics", &e),
    };
    let mut out = format!("<h1>Topics</h1>{}", warnings_html(&warnings));
    if topics.is_empty() {
        out.push_str("<p class=\"muted\">No topics.</p>");
        return out;
    }
    out.push_str(
        "<table><tr><th>topic</th><th>depth</th><th>messages</th><th>rate (msgs/s)</th></tr>",
    );
    for topic in &topics {
        let points = frame.ctx.history_points(topic, "");
        let last = points.last();
        let _ = write!(
            out,
            "<tr><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&frame.topic_link(topic)),
            escape(topic),
            last.map_or("–".to_owned(), |p| commafy(p.depth.into())),
            last.map_or("–".to_owned(), |p| commafy(p.message_count.into())),
            rate_text(&points),
        );
    }
    out.push_str("</table>");
    out
}

fn rate_text(points: &[Point]) -> String {
    history::latest_rate(points).map_or("–".to_owned(), |r| format!("{r:.1}"))
}

fn charts(frame: &Frame<'_>, topic: &str, channel: &str) -> String {
    let points = frame.ctx.history_points(topic, channel);
    let rates = history::rates(&points);
    let depth: Vec<(i64, f64)> = points.iter().map(|p| (p.at_ms, p.depth as f64)).collect();
    let mut out = String::from("<h2>History</h2><div class=\"charts\">");
    out.push_str(&line_chart("rate (msgs/s)", "", &rates));
    out.push_str(&line_chart("depth", "", &depth));
    if !channel.is_empty() {
        let in_flight: Vec<(i64, f64)> = points
            .iter()
            .map(|p| (p.at_ms, p.in_flight as f64))
            .collect();
        out.push_str(&line_chart("in-flight", "", &in_flight));
    }
    out.push_str("</div>");
    out
}

fn paused_badge(paused: bool) -> &'static str {
    if paused {
        " <span class=\"badge paused\">paused</span>"
    } else {
        ""
    }
}

/// `p50=1.2ms p99=3ms`, or `–`.
fn e2e_text(e2e: Option<&E2eAggregate>) -> String {
    let Some(percentiles) = e2e.and_then(|e| e.percentiles.as_ref()) else {
        return "–".to_owned();
    };
    let parts: Vec<String> = percentiles
        .iter()
        .map(|p| {
            let q = p.get("quantile").copied().unwrap_or_default() * 100.0;
            let v = p.get("average").copied().unwrap_or_default();
            format!("p{q:.0}={}", nanos(v))
        })
        .collect();
    if parts.is_empty() {
        "–".to_owned()
    } else {
        parts.join(" ")
    }
}

fn depth_cell(depth: i64, memory: i64, backend: i64) -> String {
    format!(
        "<td>{} <span class=\"muted\">({} + {})</span></td>",
        commafy(depth.into()),
        commafy(memory.into()),
        commafy(backend.into())
    )
}

fn topic_actions(frame: &Frame<'_>, topic: &str, paused: bool) -> String {
    if !frame.admin {
        return String::new();
    }
    let url = frame.link(&format!("/api/topics/{}", crate::html::path_segment(topic)));
    let (verb, label) = if paused {
        ("unpause", "Unpause")
    } else {
        ("pause", "Pause")
    };
    let body = |action: &str| format!("{{\"action\":\"{action}\"}}");
    format!(
        "<div class=\"actions\">{}{}{}</div>",
        button(
            label,
            "POST",
            &url,
            &body(verb),
            &format!("{label} topic {topic}?"),
            None,
            ""
        ),
        button(
            "Empty",
            "POST",
            &url,
            &body("empty"),
            &format!("Empty topic {topic}? Its queued messages are deleted."),
            None,
            "danger"
        ),
        button(
            "Delete",
            "DELETE",
            &url,
            "",
            &format!("Delete topic {topic} and all its channels?"),
            Some(&frame.link("/topics")),
            "danger"
        ),
    )
}

pub(super) async fn topic(frame: &Frame<'_>, topic: &str) -> String {
    let mut warnings = Warnings::default();
    let (producers, sum) = match api::topic_stats(frame.ctx, topic, &mut warnings).await {
        Ok(found) => found,
        Err(e) => return failure_html(&format!("Topic {topic}"), &e),
    };
    let mut out = format!(
        "<div class=\"breadcrumb\"><a href=\"{}\">topics</a> /</div><h1>Topic {}{}</h1>{}{}",
        escape(&frame.link("/topics")),
        escape(topic),
        paused_badge(sum.paused),
        warnings_html(&warnings),
        topic_actions(frame, topic, sum.paused)
    );
    if producers.is_empty() {
        out.push_str("<p class=\"muted\">No node has this topic.</p>");
    }
    out.push_str(&topic_nodes_table(frame, topic, &sum));
    out.push_str(&channels_table(frame, topic, &sum));
    out.push_str(&charts(frame, topic, ""));
    out
}

fn topic_nodes_table(frame: &Frame<'_>, topic: &str, sum: &TopicStats) -> String {
    let tombstone = frame.admin && !frame.ctx.addresses().0.is_empty();
    let mut out = String::from(
        "<h2>Nodes</h2><table><tr><th>node</th><th>depth (memory + disk)</th><th>messages</th>\
         <th>channels</th><th>e2e latency</th><th></th></tr>",
    );
    for node in sum.nodes.iter().flatten() {
        let action = if tombstone {
            let url = frame.link(&format!(
                "/api/nodes/{}",
                crate::html::path_segment(&node.node)
            ));
            let body = serde_json::json!({ "topic": topic }).to_string();
            let question = format!("Tombstone topic {topic} on node {}? The node deletes the topic and lookupds hide it.", node.node);
            button(
                "Tombstone",
                "DELETE",
                &url,
                &body,
                &question,
                None,
                "small danger",
            )
        } else {
            String::new()
        };
        let _ = write!(
            out,
            "<tr><td><a href=\"{}\">{}</a>{}</td>{}<td>{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>",
            escape(&frame.node_link(&node.node)),
            escape(&node.node),
            paused_badge(node.paused),
            depth_cell(node.depth, node.memory_depth, node.backend_depth),
            commafy(node.message_count.into()),
            node.channels.as_ref().map_or(0, Vec::len),
            e2e_text(node.e2e_processing_latency.as_ref()),
        );
    }
    let _ = write!(
        out,
        "<tr class=\"total\"><td>total</td>{}<td>{}</td><td>{}</td><td>{}</td><td></td></tr></table>",
        depth_cell(sum.depth, sum.memory_depth, sum.backend_depth),
        commafy(sum.message_count.into()),
        sum.channels.as_ref().map_or(0, Vec::len),
        e2e_text(sum.e2e_processing_latency.as_ref()),
    );
    out
}

const CHANNEL_HEADER: &str = "<tr><th>{first}</th><th>depth (memory + disk)</th><th>in-flight</th>\
    <th>deferred</th><th>requeued</th><th>timed out</th><th>messages</th><th>rate (msgs/s)</th>\
    <th>connections</th><th>e2e latency</th></tr>";

fn channel_row(first: &str, c: &ChannelStats, rate: &str, class: &str) -> String {
    format!(
        "<tr{class}><td>{first}{}</td>{}<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
         <td>{rate}</td><td>{}</td><td>{}</td></tr>",
        paused_badge(c.paused),
        depth_cell(c.depth, c.memory_depth, c.backend_depth),
        commafy(c.in_flight_count.into()),
        commafy(c.deferred_count.into()),
        commafy(c.requeue_count.into()),
        commafy(c.timeout_count.into()),
        commafy(c.message_count.into()),
        commafy(c.client_count.into()),
        e2e_text(c.e2e_processing_latency.as_ref()),
    )
}

fn channels_table(frame: &Frame<'_>, topic: &str, sum: &TopicStats) -> String {
    let channels = sum.channels.as_deref().unwrap_or_default();
    if channels.is_empty() {
        return "<h2>Channels</h2><p class=\"muted\">No channels.</p>".to_owned();
    }
    let mut out = format!(
        "<h2>Channels</h2><table>{}",
        CHANNEL_HEADER.replace("{first}", "channel")
    );
    for c in channels {
        let link = format!(
            "<a href=\"{}\">{}</a>",
            escape(&frame.channel_link(topic, &c.channel_name)),
            escape(&c.channel_name)
        );
        let rate = rate_text(&frame.ctx.history_points(topic, &c.channel_name));
        out.push_str(&channel_row(&link, c, &rate, ""));
    }
    out.push_str("</table>");
    out
}

fn channel_actions(frame: &Frame<'_>, topic: &str, channel: &str, paused: bool) -> String {
    if !frame.admin {
        return String::new();
    }
    let seg = crate::html::path_segment;
    let url = frame.link(&format!("/api/topics/{}/{}", seg(topic), seg(channel)));
    let (verb, label) = if paused {
        ("unpause", "Unpause")
    } else {
        ("pause", "Pause")
    };
    let body = |action: &str| format!("{{\"action\":\"{action}\"}}");
    let name = format!("{topic}/{channel}");
    format!(
        "<div class=\"actions\">{}{}{}</div>",
        button(
            label,
            "POST",
            &url,
            &body(verb),
            &format!("{label} channel {name}?"),
            None,
            ""
        ),
        button(
            "Empty",
            "POST",
            &url,
            &body("empty"),
            &format!("Empty channel {name}? Its queued messages are deleted."),
            None,
            "danger"
        ),
        button(
            "Delete",
            "DELETE",
            &url,
            "",
            &format!("Delete channel {name}?"),
            Some(&frame.topic_link(topic)),
            "danger"
        ),
    )
}

pub(super) async fn channel(frame: &Frame<'_>, topic: &str, channel: &str) -> String {
    let mut warnings = Warnings::default();
    let stats = match api::channel_stats(frame.ctx, topic, channel, &mut warnings).await {
        Ok(stats) => stats,
        Err(e) => return failure_html(&format!("Channel {topic}/{channel}"), &e),
    };
    let paused = stats.as_ref().is_some_and(|s| s.paused);
    let mut out = format!(
        "<div class=\"breadcrumb\"><a href=\"{}\">topics</a> / <a href=\"{}\">{}</a> /</div>\
         <h1>Channel {}{}</h1>{}{}",
        escape(&frame.link("/topics")),
        escape(&frame.topic_link(topic)),
        escape(topic),
        escape(channel),
        paused_badge(paused),
        warnings_html(&warnings),
        channel_actions(frame, topic, channel, paused)
    );
    let Some(stats) = stats else {
        out.push_str("<p class=\"muted\">No node has this channel.</p>");
        return out;
    };
    out.push_str(&format!(
        "<h2>Nodes</h2><table>{}",
        CHANNEL_HEADER.replace("{first}", "node")
    ));
    for node in stats.nodes.iter().flatten() {
        let link = format!(
            "<a href=\"{}\">{}</a>",
            escape(&frame.node_link(&node.node)),
            escape(&node.node)
        );
        out.push_str(&channel_row(&link, node, "", ""));
    }
    let rate = rate_text(&frame.ctx.history_points(topic, channel));
    out.push_str(&channel_row("total", &stats, &rate, " class=\"total\""));
    out.push_str("</table>");
    out.push_str(&clients_table(
        frame,
        stats.clients.as_deref().unwrap_or_default(),
    ));
    out.push_str(&charts(frame, topic, channel));
    out
}

fn flags_text(c: &ClientStats) -> String {
    let mut flags = Vec::new();
    if c.tls {
        flags.push(format!("TLS {}", c.tls_version));
    }
    if c.snappy {
        flags.push("snappy".to_owned());
    }
    if c.deflate {
        flags.push("deflate".to_owned());
    }
    if c.authed {
        flags.push(format!("authed {}", c.auth_identity));
    }
    flags.join(", ")
}

fn clients_table(frame: &Frame<'_>, clients: &[ClientStats]) -> String {
    if clients.is_empty() {
        return "<h2>Clients</h2><p class=\"muted\">No clients connected.</p>".to_owned();
    }
    let mut out = String::from(
        "<h2>Clients</h2><table><tr><th>client host</th><th class=\"text\">user agent</th>\
         <th class=\"text\">node</th><th class=\"text\">TLS / compression</th><th>sample rate</th>\
         <th>ready</th><th>in-flight</th><th>finished</th><th>requeued</th><th>messages</th>\
         <th>connected</th></tr>",
    );
    for c in clients {
        let sample = if c.sample_rate > 0 {
            format!("{}%", c.sample_rate)
        } else {
            "–".to_owned()
        };
        let _ = write!(
            out,
            "<tr><td>{} <span class=\"muted\">{}</span></td><td class=\"text\">{}</td>\
             <td class=\"text\"><a href=\"{}\">{}</a></td><td class=\"text\">{}</td><td>{sample}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&c.hostname),
            escape(&c.remote_address),
            escape(&c.user_agent),
            escape(&frame.node_link(&c.node)),
            escape(&c.node),
            escape(&flags_text(c)),
            commafy(c.ready_count.into()),
            commafy(c.in_flight_count.into()),
            commafy(c.finish_count.into()),
            commafy(c.requeue_count.into()),
            commafy(c.message_count.into()),
            seconds(c.connected as f64 / 1e9),
        );
    }
    out.push_str("</table>");
    out
}
