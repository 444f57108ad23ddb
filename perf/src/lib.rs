//! sluice-perf: a load generator and side-by-side benchmark for any NSQ-compatible server
//! over TCP V2 (sluiced, upstream nsqd).
//!
//! - [`load`]: one measured run (publishers, consumers, the monitor).
//! - [`pacer`]: coordinated-omission-safe rate control; [`body`]: the stamp in every message.
//! - [`latency`]: HdrHistogram percentiles; [`tracker`]: loss and duplicate accounting.
//! - [`report`]: tables, JSON and the ratio maths; [`cpu`]: this process's CPU use and a
//!   server's peak RSS from `/proc`.
//! - [`scenario`]: named settings (upstream's bench_writer/bench_reader and others).
//! - [`compare`] and [`server`]: run the same scenario against two server commands.
//! - [`billion`] and [`svg`]: the billion-messages-a-day run and its chart.
//! - [`sink`]: a server that discards, to measure this tool's own ceiling.
//!
//! IO is blocking std sockets (via sluice-client) with large batched reads and writes, one
//! thread per connection. There is no `unsafe` here, so neither io_uring nor thread pinning
//! syscalls: pinning is done per process with `taskset` ([`pin`]).
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod billion;
pub mod body;
pub mod cli;
pub mod compare;
pub mod cpu;
pub mod latency;
pub mod load;
pub mod pacer;
pub mod pin;
pub mod report;
pub mod scenario;
pub mod server;
pub mod sink;
pub mod svg;
pub mod tracker;

use cli::{Cli, Command, LoadArgs};
use load::Mode;

/// Runs a parsed command line.
///
/// # Errors
/// Whatever stopped the command, with context.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Pub(args) => run_load(&args, Mode::Pub),
        Command::Sub(args) => run_load(&args, Mode::Sub),
        Command::Pubsub(args) => run_load(&args, Mode::PubSub),
        Command::Compare(args) => compare::run(&args),
        Command::Billion(args) => billion::run(&args),
        Command::Sink(args) => sink::run(&args),
        Command::Scenarios => {
            for s in scenario::SCENARIOS {
                println!(
                    "{:<17} {}",
                    s.name,
                    s.about.split_whitespace().collect::<Vec<_>>().join(" ")
                );
            }
            Ok(())
        }
    }
}

fn run_load(args: &LoadArgs, mode: Mode) -> anyhow::Result<()> {
    if let Some(cpus) = &args.cpus {
        pin::pin_self(cpus)?;
    }
    let settings = args.settings()?;
    let (report, _) = load::run(&settings, mode, None)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print!("{}", report.render());
    }
    Ok(())
}
