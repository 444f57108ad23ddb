//! Golden replay: runs upstream nsqd/nsqlookupd v1.3.0 transcripts (`../shared/golden/`)
//! against our daemons and reports every difference.
//!
//! - TCP files ([`replay_tcp_file`]): one fresh daemon per scenario, with the scenario's flags,
//!   scenarios run on a few threads in parallel (deferred scenarios wait seconds).
//! - HTTP files ([`replay_http_file`]): one daemon with the flags from `servers.json`, lines in
//!   order (state carries over), `setup` connections kept open to the end of the file.
//!
//! Every scenario runs even when others fail; the report names each failure with a precise diff
//! (bytes in the golden notation) and the daemon's last log lines. Environment:
//! `GOLDEN_ONLY=a,b` runs only those names, `GOLDEN_THREADS=n` sets the parallelism.

pub mod compare;
pub mod conn;
pub mod model;
pub mod session;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::daemon::Daemon;
use crate::escape::decode;
use crate::frame::Framing;
use model::{load_jsonl, server_flags, HttpLine, TcpScenario};
use session::{Session, HTTP_TIMEOUT};

/// Scenarios run at once unless `GOLDEN_THREADS` says otherwise.
pub const DEFAULT_THREADS: usize = 4;

/// The result of one scenario or line.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Scenario or line name.
    pub name: String,
    /// `Err(report)` when it failed.
    pub result: Result<(), String>,
    /// Wall time.
    pub elapsed: Duration,
}

/// Names selected by `GOLDEN_ONLY` (comma-separated), if set.
pub fn only_filter() -> Option<Vec<String>> {
    let value = std::env::var("GOLDEN_ONLY").ok()?;
    let names: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    (!names.is_empty()).then_some(names)
}

/// Keeps the items `GOLDEN_ONLY` names.
///
/// # Errors
/// A requested name does not exist (a typo must not pass as "nothing failed").
pub fn select<T>(
    items: Vec<T>,
    name: impl Fn(&T) -> &str,
    only: Option<&[String]>,
) -> Result<Vec<T>, String> {
    let Some(only) = only else { return Ok(items) };
    let unknown: Vec<&String> = only
        .iter()
        .filter(|wanted| !items.iter().any(|item| name(item) == wanted.as_str()))
        .collect();
    if !unknown.is_empty() {
        return Err(format!("GOLDEN_ONLY names unknown scenarios: {unknown:?}"));
    }
    Ok(items
        .into_iter()
        .filter(|item| only.iter().any(|wanted| wanted == name(item)))
        .collect())
}

/// Runs `work` over `items` on at most `threads` threads; results keep the input order.
pub fn run_bounded<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    work: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new(items.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, items.len().max(1)) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(index) else { break };
                let result = work(item);
                if let Ok(mut slots) = results.lock() {
                    if let Some(slot) = slots.get_mut(index) {
                        *slot = Some(result);
                    }
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect()
}

fn threads() -> usize {
    std::env::var("GOLDEN_THREADS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_THREADS)
}

fn daemon_for(kind: &str, flags: &[String]) -> Result<(Daemon, Framing), String> {
    match kind {
        "nsqd" => Ok((Daemon::sluiced(flags)?, Framing::V2)),
        "nsqlookupd" => Ok((Daemon::start("sluice-lookupd", flags)?, Framing::LookupV1)),
        other => Err(format!("unknown daemon kind {other:?}")),
    }
}

/// Runs one TCP scenario against a fresh daemon.
///
/// # Errors
/// The first failing step, with the daemon's last log lines.
pub fn run_tcp_scenario(scenario: &TcpScenario) -> Result<(), String> {
    let (daemon, framing) = daemon_for(&scenario.daemon, &scenario.flags)?;
    let mut session = Session::new(daemon.tcp_addr(), daemon.http_addr(), framing);
    session.run_steps(&scenario.steps).map_err(|e| {
        format!(
            "{e}\n  daemon flags: {:?}\n  daemon log:\n{}",
            scenario.flags,
            daemon.log_tail()
        )
    })
}

/// Replays every scenario of a TCP golden file (e.g. `tcp_v2.jsonl`) and returns the outcomes.
///
/// # Errors
/// The file cannot be read or `GOLDEN_ONLY` names an unknown scenario.
pub fn replay_tcp_file(file: &str) -> Result<Vec<Outcome>, String> {
    let path = crate::bins::golden_dir().join(file);
    let scenarios: Vec<TcpScenario> = load_jsonl(&path)?;
    let scenarios = select(scenarios, |s| &s.name, only_filter().as_deref())?;
    Ok(run_bounded(&scenarios, threads(), |scenario| {
        let start = Instant::now();
        let result = run_tcp_scenario(scenario);
        Outcome {
            name: scenario.name.clone(),
            result,
            elapsed: start.elapsed(),
        }
    }))
}

/// Replays an HTTP golden file (e.g. `http_nsqd.jsonl`) in order against one daemon.
///
/// # Errors
/// The file cannot be read, or the daemon does not start.
pub fn replay_http_file(file: &str, daemon_kind: &str) -> Result<Vec<Outcome>, String> {
    let dir = crate::bins::golden_dir();
    let lines: Vec<HttpLine> = load_jsonl(&dir.join(file))?;
    let only = only_filter();
    // `GOLDEN_ONLY` must not drop earlier lines whose state later lines rely on, so every line
    // still runs; only the named ones are reported.
    select(lines.iter().collect(), |l| &l.name, only.as_deref())?;
    let flags = server_flags(&dir, file)?;
    let (daemon, framing) = daemon_for(daemon_kind, &flags)?;
    let mut session = Session::new(daemon.tcp_addr(), daemon.http_addr(), framing);
    let mut outcomes = Vec::new();
    for line in &lines {
        let start = Instant::now();
        let result = session
            .run_steps(&line.setup)
            .map_err(|e| format!("setup {e}"))
            .and_then(|()| run_http_line(&daemon, line))
            .map_err(|e| format!("{e}\n  daemon log:\n{}", daemon.log_tail()));
        let wanted = only.as_ref().is_none_or(|names| names.contains(&line.name));
        if wanted {
            outcomes.push(Outcome {
                name: line.name.clone(),
                result,
                elapsed: start.elapsed(),
            });
        }
    }
    Ok(outcomes)
}

/// Sends one HTTP line's request and compares status, headers and body.
///
/// # Errors
/// Every difference found, one per line.
pub fn run_http_line(daemon: &Daemon, line: &HttpLine) -> Result<(), String> {
    let body = decode(line.body.as_deref().unwrap_or_default())?;
    let request = match line.path.as_deref() {
        Some(path) => format!("{} {path}", line.method),
        None => {
            let first_line = body.split(|&b| b == b'\r' || b == b'\n').next();
            let first_line = crate::escape::encode_short(first_line.unwrap_or_default(), 80);
            format!("{} \"{first_line}\"", line.method)
        }
    };
    let (status, problems) = if line.method == "RAW" {
        let reply = crate::http::raw_exchange(daemon.http_addr(), &body, HTTP_TIMEOUT)?;
        let status = raw_status(&reply);
        (
            status,
            compare::compare_http_body(line, &reply)
                .err()
                .into_iter()
                .collect(),
        )
    } else {
        let path = line.path.as_deref().ok_or("the line has no path")?;
        let response =
            crate::http::request(daemon.http_addr(), &line.method, path, &body, HTTP_TIMEOUT)?;
        let problems: Vec<String> = [
            compare::compare_headers(&line.headers, &response).err(),
            compare::compare_http_body(line, &response.body).err(),
        ]
        .into_iter()
        .flatten()
        .collect();
        (Some(response.status), problems)
    };
    let mut problems = problems;
    if status != Some(line.status) {
        let got = status.map_or_else(|| "no status line".to_owned(), |s| s.to_string());
        problems.insert(0, format!("status {} expected, got {got}", line.status));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{request}: {}", problems.join("\n    ")))
    }
}

fn raw_status(reply: &[u8]) -> Option<u16> {
    let line = reply.split(|&b| b == b'\r').next()?;
    let text = std::str::from_utf8(line).ok()?;
    text.strip_prefix("HTTP/1.")?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}

/// Prints one line per outcome, the failures in full and a closing count, then fails (panics)
/// if anything failed. The panic message lists the failing names.
pub fn report(title: &str, outcomes: &[Outcome]) {
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.result.is_err()).collect();
    println!("golden {title}: {} scenario(s)", outcomes.len());
    for outcome in outcomes {
        let verdict = if outcome.result.is_ok() {
            "ok    "
        } else {
            "FAILED"
        };
        println!(
            "  {verdict} {} ({:.2}s)",
            outcome.name,
            outcome.elapsed.as_secs_f64()
        );
    }
    for outcome in &failed {
        if let Err(report) = &outcome.result {
            println!("\n--- {} FAILED:\n  {report}", outcome.name);
        }
    }
    println!(
        "\ngolden {title}: {} passed, {} failed",
        outcomes.len() - failed.len(),
        failed.len()
    );
    assert!(!outcomes.is_empty(), "golden {title}: no scenario ran");
    let names: Vec<&str> = failed.iter().map(|o| o.name.as_str()).collect();
    assert!(
        names.is_empty(),
        "{} of {} golden {title} scenario(s) failed (details above; rerun one with \
         GOLDEN_ONLY=name): {}",
        names.len(),
        outcomes.len(),
        names.join(", ")
    );
}

/// Like [`report`], for a file where some lines differ from upstream on purpose: each of
/// `intended` (name, reason — the README's "Compatibility with NSQ" section says why) must fail
/// (a line that starts passing means the list is stale, which fails too), and every other line
/// must pass.
///
/// # Panics
/// When a line outside `intended` fails, or a line in it passes.
pub fn report_with_intended_differences(
    title: &str,
    outcomes: &[Outcome],
    intended: &[(&str, &str)],
) {
    let is_intended = |name: &str| intended.iter().any(|(n, _)| *n == name);
    let (differing, others): (Vec<Outcome>, Vec<Outcome>) =
        outcomes.iter().cloned().partition(|o| is_intended(&o.name));
    for (name, why) in intended {
        println!("  intended difference: {name}: {why}");
    }
    let stale: Vec<&str> = differing
        .iter()
        .filter(|o| o.result.is_ok())
        .map(|o| o.name.as_str())
        .collect();
    report(title, &others);
    assert!(
        stale.is_empty(),
        "golden {title}: listed as intended differences but now matching upstream: {stale:?}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_bounded_keeps_order_and_runs_everything() {
        let items: Vec<u64> = (0..50).collect();
        let results = run_bounded(&items, 4, |n| n * 2);
        assert_eq!(results, items.iter().map(|n| n * 2).collect::<Vec<_>>());
        assert!(run_bounded(&Vec::<u64>::new(), 4, |n| *n).is_empty());
    }

    #[test]
    fn select_filters_and_rejects_unknown_names() {
        let items = vec!["a", "b", "c"];
        let only = vec!["c".to_owned(), "a".to_owned()];
        assert_eq!(
            select(items.clone(), |s| s, Some(&only)).unwrap(),
            vec!["a", "c"]
        );
        assert_eq!(select(items.clone(), |s| s, None).unwrap().len(), 3);
        let typo = vec!["pub_okk".to_owned()];
        assert!(select(items, |s| s, Some(&typo))
            .unwrap_err()
            .contains("pub_okk"));
    }

    #[test]
    fn raw_status_reads_the_status_line() {
        assert_eq!(
            raw_status(b"HTTP/1.1 413 Request Entity Too Large\r\n"),
            Some(413)
        );
        assert_eq!(raw_status(b"E_BAD_PROTOCOL"), None);
        assert_eq!(raw_status(b""), None);
    }

    #[test]
    fn report_passes_when_all_pass_and_fails_naming_failures() {
        let ok = Outcome {
            name: "a".to_owned(),
            result: Ok(()),
            elapsed: Duration::ZERO,
        };
        report("unit", std::slice::from_ref(&ok));
        let bad = Outcome {
            name: "b".to_owned(),
            result: Err("diff".to_owned()),
            elapsed: Duration::ZERO,
        };
        let outcomes = [ok, bad];
        let panic = std::panic::catch_unwind(|| report("unit", &outcomes)).unwrap_err();
        let message = panic.downcast_ref::<String>().unwrap();
        assert!(
            message.contains("1 of 2") && message.ends_with(": b"),
            "{message}"
        );
    }
}
