//! `compare`: the same scenario against two server commands, alternating A B A B so that drift
//! in the machine (thermal, page cache, neighbours) spreads over both, and the ratios A/B of
//! throughput, p99 and peak RSS with their min/median/max over the pairs.

use std::time::Duration;

use anyhow::{anyhow, bail};
use serde_json::{json, Value};

use crate::cli::CompareArgs;
use crate::load::{self, Carry, Mode, Settings};
use crate::pin;
use crate::report::{self, ratios, spread};
use crate::scenario::{self, Scenario};
use crate::server::Server;

/// The figures of one run of one server: (metric name, value) in a fixed order.
#[derive(Debug, Clone, Default)]
pub struct RunFigures {
    /// `A` or `B`.
    pub label: &'static str,
    /// 1-based run number.
    pub run: usize,
    /// Metric name → value.
    pub metrics: Vec<(String, f64)>,
    /// Each phase's full report (JSON).
    pub reports: Vec<Value>,
}

/// Runs the comparison and prints the table (or JSON).
///
/// # Errors
/// When a server cannot start or a run fails.
pub fn run(args: &CompareArgs) -> anyhow::Result<()> {
    if let Some(cpus) = &args.load.cpus {
        pin::pin_self(cpus)?;
    }
    let name = args.load.scenario.clone().unwrap_or_else(|| "bench".into());
    let scenario = scenario::find(&name)
        .ok_or_else(|| anyhow!("unknown scenario {name:?}; known: {}", scenario::names()))?;
    let mut load_args = args.load.clone();
    load_args.scenario = Some(name);
    let settings = load_args.settings()?;
    let phases = match &args.phases {
        Some(list) => parse_phases(list)?,
        None => scenario.phases.to_vec(),
    };
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let mut figures = Vec::new();
    for run in 1..=args.runs {
        for (label, command) in [("A", &args.a), ("B", &args.b)] {
            eprintln!("compare: run {run}/{} {label}: {command}", args.runs);
            let run_figures = run_server(args, scenario, &settings, &phases, command)?;
            figures.push(RunFigures {
                label,
                run,
                ..run_figures
            });
        }
    }
    if args.load.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&to_json(args, scenario, &figures))?
        );
    } else {
        print!("{}", render(args, scenario, &figures));
    }
    Ok(())
}

fn parse_phases(list: &str) -> anyhow::Result<Vec<Mode>> {
    list.split(',')
        .map(|p| match p.trim() {
            "pub" => Ok(Mode::Pub),
            "sub" => Ok(Mode::Sub),
            "pubsub" => Ok(Mode::PubSub),
            other => Err(anyhow!("unknown phase {other:?} (pub, sub, pubsub)")),
        })
        .collect()
}

/// Starts one server, runs every phase against it, stops it.
fn run_server(
    args: &CompareArgs,
    scenario: &Scenario,
    settings: &Settings,
    phases: &[Mode],
    command: &str,
) -> anyhow::Result<RunFigures> {
    let default_tcp = settings.addrs.first().cloned().unwrap_or_default();
    let server = Server::start(
        command,
        scenario.server_flags,
        &default_tcp,
        args.server_cpus.as_deref(),
        Duration::from_secs(args.start_timeout),
    )?;
    let mut settings = settings.clone();
    settings.addrs = vec![server.tcp.clone()];
    settings.server_pid = Some(server.pid());
    let result = run_phases(&settings, phases);
    let peak_rss = server.peak_rss();
    let log = server.log_tail();
    server.stop();
    let mut figures = result.map_err(|e| e.context(format!("server log tail:\n{log}")))?;
    if let Some(rss) = peak_rss {
        figures
            .metrics
            .push(("peak RSS MiB".into(), report::mib(rss)));
    }
    Ok(figures)
}

fn run_phases(settings: &Settings, phases: &[Mode]) -> anyhow::Result<RunFigures> {
    let mut figures = RunFigures::default();
    let mut carry: Option<Carry> = None;
    for &phase in phases {
        let mut phase_settings = settings.clone();
        if phase == Mode::Sub && carry.is_some() {
            phase_settings.warmup = Duration::ZERO;
        }
        let (report, next) = load::run(&phase_settings, phase, carry.as_ref())?;
        let name = phase.as_str();
        if let Some(t) = report.publish {
            figures
                .metrics
                .push((format!("{name}: published msgs/s"), t.msgs_per_s()));
        }
        if let Some(t) = report.consume {
            figures
                .metrics
                .push((format!("{name}: consumed msgs/s"), t.msgs_per_s()));
        }
        if report.latency.count > 0 {
            figures.metrics.push((
                format!("{name}: p99 ms"),
                report.latency.p99_us() as f64 / 1e3,
            ));
        }
        if let Some(d) = report.delivery {
            figures
                .metrics
                .push((format!("{name}: lost"), d.lost as f64));
        }
        figures.reports.push(report.to_json());
        if phase == Mode::Pub {
            carry = Some(next);
        }
    }
    Ok(figures)
}

/// The values of `metric` for `label`, in run order.
fn values(figures: &[RunFigures], label: &str, metric: &str) -> Vec<f64> {
    figures
        .iter()
        .filter(|f| f.label == label)
        .filter_map(|f| f.metrics.iter().find(|(m, _)| m == metric).map(|(_, v)| *v))
        .collect()
}

fn metric_names(figures: &[RunFigures]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for f in figures {
        for (m, _) in &f.metrics {
            if !names.contains(m) {
                names.push(m.clone());
            }
        }
    }
    names
}

/// The comparison table.
pub fn render(args: &CompareArgs, scenario: &Scenario, figures: &[RunFigures]) -> String {
    let mut out = format!(
        "compare: scenario {}, {} runs each, alternating A B\n  A: {}\n  B: {}\n",
        scenario.name, args.runs, args.a, args.b
    );
    out.push_str(&format!(
        "  {:<28} {:>14} {:>14} {:>8} {:>8} {:>8}\n",
        "metric", "A median", "B median", "A/B min", "median", "max"
    ));
    for metric in metric_names(figures) {
        let (a, b) = (values(figures, "A", &metric), values(figures, "B", &metric));
        let fmt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format_value(&metric, v));
        let r = spread(&ratios(&a, &b));
        let ratio = |pick: fn(&report::Spread) -> f64| {
            r.as_ref()
                .map_or("-".to_owned(), |s| format!("{:.2}", pick(s)))
        };
        out.push_str(&format!(
            "  {:<28} {:>14} {:>14} {:>8} {:>8} {:>8}\n",
            metric,
            fmt(spread(&a).map(|s| s.median)),
            fmt(spread(&b).map(|s| s.median)),
            ratio(|s| s.min),
            ratio(|s| s.median),
            ratio(|s| s.max)
        ));
    }
    out
}

fn format_value(metric: &str, value: f64) -> String {
    if metric.ends_with("msgs/s") || metric.ends_with("lost") {
        report::group(value)
    } else {
        format!("{value:.2}")
    }
}

fn to_json(args: &CompareArgs, scenario: &Scenario, figures: &[RunFigures]) -> Value {
    let metrics: Vec<Value> = metric_names(figures)
        .into_iter()
        .map(|metric| {
            let (a, b) = (values(figures, "A", &metric), values(figures, "B", &metric));
            let r = spread(&ratios(&a, &b));
            json!({"metric": metric, "a": a, "b": b,
                   "ratio_a_over_b": r.map(|s| json!({"min": s.min, "median": s.median, "max": s.max}))})
        })
        .collect();
    let runs: Vec<Value> = figures
        .iter()
        .map(|f| json!({"label": f.label, "run": f.run, "reports": f.reports}))
        .collect();
    json!({"scenario": scenario.name, "a": args.a, "b": args.b, "runs": args.runs,
           "metrics": metrics, "details": runs})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_parse_and_values_pair_up_by_label() {
        assert_eq!(
            parse_phases("pub, sub").unwrap(),
            vec![Mode::Pub, Mode::Sub]
        );
        assert!(parse_phases("both").is_err());
        let run = |label, v| RunFigures {
            label,
            run: 1,
            metrics: vec![("x msgs/s".into(), v)],
            reports: vec![],
        };
        let figures = vec![
            run("A", 10.0),
            run("B", 5.0),
            run("A", 30.0),
            run("B", 10.0),
        ];
        assert_eq!(values(&figures, "A", "x msgs/s"), vec![10.0, 30.0]);
        let r = spread(&ratios(
            &values(&figures, "A", "x msgs/s"),
            &values(&figures, "B", "x msgs/s"),
        ))
        .unwrap();
        assert_eq!((r.min, r.median, r.max), (2.0, 2.5, 3.0));
    }
}
