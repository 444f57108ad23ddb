//! Line charts as inline SVG, drawn on the server from the sampled history.
//!
//! Ours (upstream embeds Graphite images). Pure: points in, markup out. The y axis starts at 0
//! and ends at a rounded maximum; the x axis spans the points' time range, labelled with how
//! long ago its left edge is.

use std::fmt::Write as _;

use crate::html::escape;

/// Drawing size, in SVG user units.
const WIDTH: f64 = 520.0;
const HEIGHT: f64 = 160.0;
const MARGIN_LEFT: f64 = 56.0;
const MARGIN_RIGHT: f64 = 8.0;
const MARGIN_TOP: f64 = 20.0;
const MARGIN_BOTTOM: f64 = 22.0;

/// A chart of `(unix ms, value)` points titled `title`; a placeholder when there are fewer
/// than two points.
pub fn line_chart(title: &str, unit: &str, points: &[(i64, f64)]) -> String {
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
         aria-label=\"{t}\"><text class=\"chart-title\" x=\"{MARGIN_LEFT}\" y=\"14\">{t}</text>",
        t = escape(title)
    );
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return svg + &placeholder();
    };
    if points.len() < 2 || last.0 <= first.0 {
        return svg + &placeholder();
    }
    let top = nice_ceiling(points.iter().map(|p| p.1).fold(0.0, f64::max));
    let plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
    let plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM;
    let span_ms = (last.0 - first.0) as f64;
    let x = |at: i64| MARGIN_LEFT + (at - first.0) as f64 / span_ms * plot_w;
    let y = |v: f64| MARGIN_TOP + plot_h - (v / top).clamp(0.0, 1.0) * plot_h;
    let bottom = MARGIN_TOP + plot_h;
    let right = MARGIN_LEFT + plot_w;
    let _ = write!(
        svg,
        "<line class=\"axis\" x1=\"{MARGIN_LEFT}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\"/>\
         <line class=\"axis\" x1=\"{MARGIN_LEFT}\" y1=\"{MARGIN_TOP}\" x2=\"{MARGIN_LEFT}\" y2=\"{bottom}\"/>\
         <text class=\"tick\" x=\"{lx:.0}\" y=\"{ty:.0}\" text-anchor=\"end\">{top_label}</text>\
         <text class=\"tick\" x=\"{lx:.0}\" y=\"{bottom:.0}\" text-anchor=\"end\">0</text>\
         <text class=\"tick\" x=\"{MARGIN_LEFT}\" y=\"{HEIGHT}\">-{ago}</text>\
         <text class=\"tick\" x=\"{right}\" y=\"{HEIGHT}\" text-anchor=\"end\">now {unit}</text>",
        lx = MARGIN_LEFT - 4.0,
        ty = MARGIN_TOP + 4.0,
        top_label = format_number(top),
        ago = format_span(span_ms / 1000.0),
        unit = escape(unit),
    );
    let coords: Vec<String> = points
        .iter()
        .map(|&(at, v)| format!("{:.1},{:.1}", x(at), y(v)))
        .collect();
    let _ = write!(
        svg,
        "<polyline class=\"series\" fill=\"none\" points=\"{}\"/></svg>",
        coords.join(" ")
    );
    svg
}

fn placeholder() -> String {
    format!(
        "<text class=\"tick\" x=\"{MARGIN_LEFT}\" y=\"{}\">collecting samples…</text></svg>",
        HEIGHT / 2.0
    )
}

/// The smallest of 1, 2, 2.5 or 5 times a power of ten at or above `value` (1 for 0).
pub fn nice_ceiling(value: f64) -> f64 {
    if !value.is_finite() || value <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|&candidate| candidate >= value)
        .unwrap_or(10.0 * magnitude)
}

/// `1.2k`, `3.4M`, `17`, `0.5`.
pub fn format_number(value: f64) -> String {
    let abs = value.abs();
    let (scaled, suffix) = if abs >= 1e9 {
        (value / 1e9, "G")
    } else if abs >= 1e6 {
        (value / 1e6, "M")
    } else if abs >= 1e3 {
        (value / 1e3, "k")
    } else {
        (value, "")
    };
    let text = if scaled.fract() == 0.0 {
        format!("{scaled:.0}")
    } else {
        format!("{scaled:.1}")
    };
    format!("{text}{suffix}")
}

/// `45s`, `12m`, `3h`.
pub fn format_span(secs: f64) -> String {
    if secs < 120.0 {
        format!("{secs:.0}s")
    } else if secs < 7200.0 {
        format!("{:.0}m", secs / 60.0)
    } else {
        format!("{:.0}h", secs / 3600.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_and_labels_are_round() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(120.0), 200.0);
        assert_eq!(nice_ceiling(2100.0), 2500.0);
        assert_eq!(format_number(2500.0), "2.5k");
        assert_eq!(format_number(17.0), "17");
        assert_eq!(format_number(3_400_000.0), "3.4M");
        assert_eq!(format_span(45.0), "45s");
        assert_eq!(format_span(600.0), "10m");
    }

    #[test]
    fn a_chart_plots_every_point_inside_the_frame() {
        let svg = line_chart(
            "rate <t>",
            "msg/s",
            &[(0, 0.0), (5000, 50.0), (10_000, 100.0)],
        );
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.ends_with("</svg>"));
        assert!(svg.contains("rate &lt;t&gt;"));
        assert!(
            svg.contains("points=\"56.0,138.0 284.0,79.0 512.0,20.0\""),
            "{svg}"
        );
        assert!(svg.contains(">-10s<"));
    }

    #[test]
    fn too_few_points_say_so() {
        assert!(line_chart("depth", "", &[]).contains("collecting samples"));
        assert!(line_chart("depth", "", &[(5, 1.0)]).contains("collecting samples"));
    }
}
