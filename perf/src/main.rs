//! `sluice-perf`: parses flags and hands them to [`sluice_perf::run`].
use clap::Parser;

fn main() {
    let cli = sluice_perf::cli::Cli::parse();
    if let Err(err) = sluice_perf::run(cli) {
        eprintln!("sluice-perf: {err:#}");
        std::process::exit(1);
    }
}
