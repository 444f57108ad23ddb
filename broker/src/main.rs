//! `sluiced`: flags in, broker out. Everything else lives in the library.

use std::process::ExitCode;

use sluice_broker::{Invocation, Options};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match Options::from_args(&args) {
        Ok(Invocation::Run(opts)) => *opts,
        Ok(Invocation::Version) => {
            println!("{}", sluice_broker::options::VERSION_LINE);
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::Help(usage)) => {
            eprint!("{usage}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let usage =
                sluice_broker::flags::usage("sluiced", &sluice_broker::options::flag_table());
            eprintln!("{e}");
            eprint!("{usage}");
            return ExitCode::from(2);
        }
    };
    match sluice_broker::run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("failed to instantiate sluiced - {e}");
            eprintln!("FATAL: failed to instantiate sluiced - {e}");
            ExitCode::from(1)
        }
    }
}
