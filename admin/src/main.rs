//! `sluice-admin`: flags to [`Options`], then [`sluice_admin::run`].
#![forbid(unsafe_code)]

use std::process::ExitCode;

use sluice_admin::options::{self, Cli, CliError};
use sluice_admin::{log, Options};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let defaults = Options::default();
    match Cli::parse(&args) {
        Ok(Cli::Help) => {
            eprint!("{}", options::usage());
            ExitCode::SUCCESS
        }
        Ok(Cli::Version) => {
            println!("{}", options::VERSION_LINE);
            ExitCode::SUCCESS
        }
        Ok(Cli::Run(options)) => {
            let prefix = options.log_prefix.clone();
            match sluice_admin::run(*options) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    let message = format!("failed to instantiate sluice-admin - {e}");
                    eprintln!("{}", log::fatal_line(&prefix, &message));
                    ExitCode::from(1)
                }
            }
        }
        Err(CliError::Flag(e)) => {
            eprintln!("{e}");
            eprint!("{}", options::usage());
            ExitCode::from(2)
        }
        Err(CliError::Config(e)) => {
            eprintln!("{}", log::fatal_line(&defaults.log_prefix, &e));
            ExitCode::from(1)
        }
    }
}
