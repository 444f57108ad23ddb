//! The `sluice` binary: NSQ's utilities (`sluice tail | to-file | to-http | to-nsq | pub |
//! stat`), also run as `nsq_tail`, `nsq_to_file`, `nsq_to_http`, `nsq_to_nsq`, `to_nsq` and
//! `nsq_stat` when invoked under those names. Everything is in [`sluice_client::apps`].

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = Vec::new();
    for arg in std::env::args_os() {
        match arg.into_string() {
            Ok(arg) => args.push(arg),
            Err(bad) => {
                eprintln!("argument is not valid UTF-8: {bad:?}");
                return ExitCode::from(2);
            }
        }
    }
    let status = sluice_client::apps::main(&args);
    ExitCode::from(u8::try_from(status).unwrap_or(1))
}
