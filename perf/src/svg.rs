//! A small SVG line chart of a billion run: messages per second (published, consumed, the
//! target) on the left axis and p99 latency on the right, over time. Hand-written SVG: no
//! dependency, and the JSON it is drawn from is written beside it.

use std::fmt::Write as _;

use crate::report::Interval;

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 80.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;

/// The chart of `intervals`, with a dashed line at `target_rate` if given.
pub fn render(title: &str, intervals: &[Interval], target_rate: Option<f64>) -> String {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let t_max = intervals.iter().map(|i| i.end_s).fold(1.0, f64::max);
    let rate_max = intervals
        .iter()
        .flat_map(|i| [i.pub_rate, i.sub_rate])
        .chain(target_rate)
        .fold(1.0, f64::max)
        * 1.1;
    let p99_max = intervals
        .iter()
        .map(|i| i.latency.p99_us() as f64 / 1e3)
        .fold(1.0, f64::max)
        * 1.1;
    let x = |t: f64| LEFT + t / t_max * plot_w;
    let y_rate = |r: f64| TOP + plot_h - r / rate_max * plot_h;
    let y_p99 = |ms: f64| TOP + plot_h - ms / p99_max * plot_h;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>
<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>
"##,
        WIDTH / 2.0,
        escape(title)
    );
    for k in 0..=4 {
        let f = f64::from(k) / 4.0;
        let yy = TOP + plot_h - f * plot_h;
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{:.0}</text><text x="{}" y="{:.1}">{:.2}</text><text x="{:.1}" y="{}" text-anchor="middle">{:.0}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            yy + 4.0,
            f * rate_max,
            LEFT + plot_w + 6.0,
            yy + 4.0,
            f * p99_max,
            LEFT + f * plot_w,
            TOP + plot_h + 18.0,
            f * t_max
        );
    }
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="{}" text-anchor="middle">seconds</text><text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">messages per second</text><text x="{}" y="{}" transform="rotate(90 {} {})" text-anchor="middle">p99 latency (ms)</text>"##,
        LEFT + plot_w / 2.0,
        HEIGHT - 12.0,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
        WIDTH - 16.0,
        TOP + plot_h / 2.0,
        WIDTH - 16.0,
        TOP + plot_h / 2.0
    );
    if let Some(target) = target_rate {
        let yy = y_rate(target);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#2a2" stroke-dasharray="6 4"/>"##,
            LEFT + plot_w
        );
    }
    let line = |points: Vec<(f64, f64)>, color: &str| {
        let pts: Vec<String> = points
            .iter()
            .map(|(a, b)| format!("{a:.1},{b:.1}"))
            .collect();
        format!(
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            pts.join(" ")
        )
    };
    let _ = writeln!(
        svg,
        "{}",
        line(
            intervals
                .iter()
                .map(|i| (x(i.end_s), y_rate(i.pub_rate)))
                .collect(),
            "#36c"
        )
    );
    let _ = writeln!(
        svg,
        "{}",
        line(
            intervals
                .iter()
                .map(|i| (x(i.end_s), y_rate(i.sub_rate)))
                .collect(),
            "#f90"
        )
    );
    let _ = writeln!(
        svg,
        "{}",
        line(
            intervals
                .iter()
                .map(|i| (x(i.end_s), y_p99(i.latency.p99_us() as f64 / 1e3)))
                .collect(),
            "#c33"
        )
    );
    let legend = [
        ("#36c", "published/s"),
        ("#f90", "consumed/s"),
        ("#c33", "p99 ms"),
        ("#2a2", "target/s"),
    ];
    for (k, (color, label)) in legend.iter().enumerate() {
        let lx = LEFT + 10.0 + k as f64 * 130.0;
        let _ = writeln!(
            svg,
            r##"<rect x="{lx}" y="{}" width="14" height="4" fill="{color}"/><text x="{}" y="{}">{label}</text>"##,
            TOP + 10.0,
            lx + 18.0,
            TOP + 15.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::Summary;

    #[test]
    fn one_point_per_interval_on_each_line() {
        let intervals: Vec<Interval> = (1..=5)
            .map(|i| Interval {
                end_s: f64::from(i) * 10.0,
                pub_rate: 11_574.0,
                sub_rate: 11_500.0,
                latency: Summary {
                    count: 10,
                    percentiles_us: [100, 200, 300 * i as u64, 400, 500],
                    max_us: 900,
                    mean_us: 150.0,
                },
            })
            .collect();
        let svg = render("billion <test>", &intervals, Some(11_574.0));
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("billion &lt;test&gt;"));
        assert_eq!(svg.matches("<polyline").count(), 3);
        let first = svg.split("points=\"").nth(1).unwrap();
        let points = first.split('"').next().unwrap();
        assert_eq!(points.split(' ').count(), 5);
        assert!(svg.trim_end().ends_with("</svg>"));
    }
}
