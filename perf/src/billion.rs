//! `sluice-perf billion`: NSQ's "billions of messages a day" as a run anyone can repeat.
//! Publishes and consumes at a target rate (a billion a day is 1e9 / 86400 ≈ 11,574 msg/s,
//! or a multiple, or as fast as possible) for a duration or a message count, numbers every
//! message to count loss and duplicates, and writes per-interval rates and latency percentiles
//! as JSON and as an SVG chart.

use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use crate::cli::BillionArgs;
use crate::load::{self, Mode};
use crate::pin;
use crate::report::{self, Report};
use crate::svg;

/// A billion messages a day, per second.
pub const DAILY_BILLION_RATE: f64 = 1e9 / 86_400.0;

/// The verdict of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// The rate the run sustained end to end (consumed per second).
    pub sustained_rate: f64,
    /// That rate over a day.
    pub daily_total: f64,
    /// Whether a billion a day is met with nothing lost.
    pub met: bool,
}

/// Judges a report: the consumed rate over 24 hours, and loss.
pub fn verdict(report: &Report) -> Verdict {
    let sustained_rate = report.consume.map_or(0.0, |t| t.msgs_per_s());
    let daily_total = sustained_rate * 86_400.0;
    let lost = report.delivery.map_or(u64::MAX, |d| d.lost);
    Verdict {
        sustained_rate,
        daily_total,
        met: daily_total >= 1e9 && lost == 0,
    }
}

/// Runs it, prints the table and the verdict, writes `OUT.json` and `OUT.svg`.
///
/// # Errors
/// When the run fails or the files cannot be written.
pub fn run(args: &BillionArgs) -> anyhow::Result<()> {
    if let Some(cpus) = &args.load.cpus {
        pin::pin_self(cpus)?;
    }
    let mut load_args = args.load.clone();
    if let Some(messages) = args.messages {
        load_args.count = Some(messages);
    } else if load_args.duration.is_none() && load_args.count.is_none() {
        load_args.duration = Some(Duration::from_secs(60));
    }
    let mut settings = load_args.settings()?;
    settings.scenario = "billion".into();
    settings.interval = args.interval;
    let target = if args.max {
        None
    } else {
        Some(args.load.rate.unwrap_or(args.times * DAILY_BILLION_RATE))
    };
    settings.rate = target;
    let (mut report, _) = load::run(&settings, Mode::PubSub, None)?;
    report.mode = "billion".into();
    let v = verdict(&report);
    let mut json = report.to_json();
    json["billion"] = json!({
        "target_rate": target, "sustained_rate": v.sustained_rate,
        "daily_total": v.daily_total, "met": v.met,
    });
    let title = format!(
        "sluice-perf billion: target {} msg/s, sustained {} msg/s ({} a day)",
        target.map_or("max".to_owned(), report::group),
        report::group(v.sustained_rate),
        report::group(v.daily_total)
    );
    let json_path = format!("{}.json", args.out);
    let svg_path = format!("{}.svg", args.out);
    std::fs::write(&json_path, serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("writing {json_path}"))?;
    std::fs::write(&svg_path, svg::render(&title, &report.intervals, target))
        .with_context(|| format!("writing {svg_path}"))?;
    if args.load.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print_table(&report, &v, &format!("{json_path}, {svg_path}"));
    }
    Ok(())
}

fn print_table(report: &Report, v: &Verdict, written: &str) {
    print!("{}", report.render());
    println!(
        "  {:<12} {:>8} {:>10} {:>10} {:>10} {:>10}",
        "interval", "end s", "pub/s", "sub/s", "p50", "p99"
    );
    for i in &report.intervals {
        println!(
            "  {:<12} {:>8.1} {:>10} {:>10} {:>10} {:>10}",
            "",
            i.end_s,
            report::group(i.pub_rate),
            report::group(i.sub_rate),
            report::micros(i.latency.percentiles_us[0]),
            report::micros(i.latency.p99_us())
        );
    }
    println!(
        "  {:<12} {} msg/s sustained = {} a day: {} (wrote {written})",
        "billion",
        report::group(v.sustained_rate),
        report::group(v.daily_total),
        if v.met {
            "a billion a day MET, nothing lost"
        } else {
            "NOT met"
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Throughput;
    use crate::tracker::Delivery;

    #[test]
    fn a_billion_a_day_needs_the_rate_and_no_loss() {
        let mut report = Report {
            consume: Some(Throughput {
                messages: 11_575 * 60,
                bytes: 0,
                seconds: 60.0,
            }),
            delivery: Some(Delivery::default()),
            ..Report::default()
        };
        let v = verdict(&report);
        assert!(v.met);
        assert!((v.daily_total - 11_575.0 * 86_400.0).abs() < 1.0);
        report.delivery = Some(Delivery {
            lost: 1,
            ..Delivery::default()
        });
        assert!(!verdict(&report).met);
        report.delivery = Some(Delivery::default());
        report.consume = Some(Throughput {
            messages: 11_000 * 60,
            bytes: 0,
            seconds: 60.0,
        });
        assert!(!verdict(&report).met);
        assert!((DAILY_BILLION_RATE - 11_574.07).abs() < 0.01);
    }
}
