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
const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
const PLOT_H: f64 = HEIGHT - TOP - BOTTOM;

/// The three axes' maxima.
struct Scale {
    t_max: f64,
    rate_max: f64,
    p99_max: f64,
}

impl Scale {
    fn of(intervals: &[Interval], target_rate: Option<f64>) -> Scale {
        Scale {
            t_max: intervals.iter().map(|i| i.end_s).fold(1.0, f64::max),
            rate_max: intervals
                .iter()
                .flat_map(|i| [i.pub_rate, i.sub_rate])
                .chain(target_rate)
                .fold(1.0, f64::max)
                * 1.1,
            p99_max: intervals.iter().map(p99_ms).fold(1.0, f64::max) * 1.1,
        }
    }

    fn x(&self, t: f64) -> f64 {
        LEFT + t / self.t_max * PLOT_W
    }

    fn y_rate(&self, rate: f64) -> f64 {
        TOP + PLOT_H - rate / self.rate_max * PLOT_H
    }

    fn y_p99(&self, ms: f64) -> f64 {
        TOP + PLOT_H - ms / self.p99_max * PLOT_H
    }
}

fn p99_ms(interval: &Interval) -> f64 {
    interval.latency.p99_us() as f64 / 1e3
}

/// The chart of `intervals`, with a dashed line at `target_rate` if given.
pub fn render(title: &str, intervals: &[Interval], target_rate: Option<f64>) -> String {
    let scale = Scale::of(intervals, target_rate);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>
<rect x="{LEFT}" y="{TOP}" width="{PLOT_W}" height="{PLOT_H}" fill="none" stroke="#888"/>
"##,
        WIDTH / 2.0,
        escape(title)
    );
    put_grid(&mut svg, &scale);
    if let Some(target) = target_rate {
        let yy = scale.y_rate(target);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#2a2" stroke-dasharray="6 4"/>"##,
            LEFT + PLOT_W
        );
    }
    let pub_line: Vec<(f64, f64)> = intervals
        .iter()
        .map(|i| (scale.x(i.end_s), scale.y_rate(i.pub_rate)))
        .collect();
    let sub_line: Vec<(f64, f64)> = intervals
        .iter()
        .map(|i| (scale.x(i.end_s), scale.y_rate(i.sub_rate)))
        .collect();
    let p99_line: Vec<(f64, f64)> = intervals
        .iter()
        .map(|i| (scale.x(i.end_s), scale.y_p99(p99_ms(i))))
        .collect();
    for (points, color) in [(pub_line, "#36c"), (sub_line, "#f90"), (p99_line, "#c33")] {
        put_polyline(&mut svg, &points, color);
    }
    put_legend(&mut svg);
    svg.push_str("</svg>\n");
    svg
}

/// Grid lines with the rate, p99 and time ticks, and the axis titles.
fn put_grid(svg: &mut String, scale: &Scale) {
    for k in 0..=4 {
        let f = f64::from(k) / 4.0;
        let yy = TOP + PLOT_H - f * PLOT_H;
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{:.0}</text><text x="{}" y="{:.1}">{:.2}</text><text x="{:.1}" y="{}" text-anchor="middle">{:.0}</text>"##,
            LEFT + PLOT_W,
            LEFT - 6.0,
            yy + 4.0,
            f * scale.rate_max,
            LEFT + PLOT_W + 6.0,
            yy + 4.0,
            f * scale.p99_max,
            LEFT + f * PLOT_W,
            TOP + PLOT_H + 18.0,
            f * scale.t_max
        );
    }
    let mid = TOP + PLOT_H / 2.0;
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="{}" text-anchor="middle">seconds</text><text x="16" y="{mid}" transform="rotate(-90 16 {mid})" text-anchor="middle">messages per second</text><text x="{}" y="{mid}" transform="rotate(90 {} {mid})" text-anchor="middle">p99 latency (ms)</text>"##,
        LEFT + PLOT_W / 2.0,
        HEIGHT - 12.0,
        WIDTH - 16.0,
        WIDTH - 16.0,
    );
}

fn put_polyline(svg: &mut String, points: &[(f64, f64)], color: &str) {
    let pts: Vec<String> = points
        .iter()
        .map(|(a, b)| format!("{a:.1},{b:.1}"))
        .collect();
    let _ = writeln!(
        svg,
        r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
        pts.join(" ")
    );
}

fn put_legend(svg: &mut String) {
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
