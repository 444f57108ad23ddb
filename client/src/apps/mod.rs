//! NSQ's command-line utilities on this client: `sluice tail | to-file | to-http | to-nsq |
//! pub | stat`, also run as `nsq_tail`, `nsq_to_file`, `nsq_to_http`, `nsq_to_nsq`, `to_nsq`
//! and `nsq_stat` when the binary is invoked under those names (a symlink or a copy).
//!
//! Mirrors upstream's `apps/` directory: each utility takes upstream's flag names and
//! defaults, Go-style (see [`flags`]), and behaves as upstream's does, except where upstream
//! can lose a message (each module's documentation says where and how this one differs).
//! The shared pieces: [`source`] (where a consumer reads from), [`gate`] (drain before
//! close), [`signals`], [`log`], [`strftime`], and for the forwarding utilities
//! [`http_client`], [`hostpool`] and [`timer_metrics`].
//!
//! Exit status: 0 on success (and for `--help` and `--version`), 2 for a flag that does not
//! parse (Go's `flag.ExitOnError`), 1 for everything else, after a `FATAL:` line on stderr.

pub mod flags;
pub mod gate;
pub mod hostpool;
pub mod http_client;
pub mod log;
pub mod publish;
pub mod signals;
pub mod source;
pub mod stat;
pub mod strftime;
pub mod tail;
pub mod timer_metrics;
pub mod to_file;
pub mod to_http;
pub mod to_nsq;

use flags::{Flag, Parsed, Values};
use signals::Signals;

/// One utility: its names, flags and body.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    /// Upstream's binary name, e.g. `nsq_tail` (also the log prefix and `--version` name).
    pub name: &'static str,
    /// The `sluice` subcommand, e.g. `tail`.
    pub command: &'static str,
    /// One line for `sluice --help`.
    pub about: &'static str,
    /// The flag table.
    pub flags: fn() -> Vec<Flag>,
    /// Runs until done or until SIGINT/SIGTERM; an error is printed as a `FATAL:` line.
    pub run: fn(&Values, &Signals) -> Result<(), String>,
}

/// Every utility.
pub const TOOLS: [Tool; 6] = [
    Tool {
        name: "nsq_tail",
        command: "tail",
        about: "print the messages of topics to stdout",
        flags: tail::flags,
        run: tail::run,
    },
    Tool {
        name: "nsq_to_file",
        command: "to-file",
        about: "archive topics to rotating (optionally gzipped) files",
        flags: to_file::flags,
        run: to_file::run,
    },
    Tool {
        name: "nsq_to_http",
        command: "to-http",
        about: "send each message of a topic to HTTP endpoints (GET or POST)",
        flags: to_http::flags,
        run: to_http::run,
    },
    Tool {
        name: "nsq_to_nsq",
        command: "to-nsq",
        about: "relay topics to other brokers, optionally filtering JSON",
        flags: to_nsq::flags,
        run: to_nsq::run,
    },
    Tool {
        name: "to_nsq",
        command: "pub",
        about: "publish the lines of stdin to a topic",
        flags: publish::flags,
        run: publish::run,
    },
    Tool {
        name: "nsq_stat",
        command: "stat",
        about: "print a channel's depth and rates every interval",
        flags: stat::flags,
        run: stat::run,
    },
];

/// The utility called `name`, by subcommand or by upstream binary name.
pub fn find(name: &str) -> Option<&'static Tool> {
    TOOLS
        .iter()
        .find(|tool| tool.command == name || tool.name == name)
}

/// The whole program: `args` is argv, program name included. Returns the exit status.
pub fn main(args: &[String]) -> i32 {
    let program = args
        .first()
        .map(|p| p.rsplit('/').next().unwrap_or(p))
        .unwrap_or("sluice");
    if let Some(tool) = TOOLS.iter().find(|tool| tool.name == program) {
        return run_tool(tool, args.get(1..).unwrap_or_default());
    }
    match args.get(1).map(String::as_str) {
        Some("-h" | "-help" | "--help" | "help") => {
            eprint!("{}", overview());
            0
        }
        Some("-version" | "--version") => {
            println!("sluice v{}", env!("CARGO_PKG_VERSION"));
            0
        }
        Some(command) => match find(command) {
            Some(tool) => run_tool(tool, args.get(2..).unwrap_or_default()),
            None => {
                eprintln!("unknown command {command:?}");
                eprint!("{}", overview());
                2
            }
        },
        None => {
            eprint!("{}", overview());
            2
        }
    }
}

/// `sluice --help`.
pub fn overview() -> String {
    let mut out = String::from("Usage: sluice COMMAND [flags]   (COMMAND --help for its flags)\n");
    for tool in &TOOLS {
        out.push_str(&format!(
            "  {:<8} {} (upstream {})\n",
            tool.command, tool.about, tool.name
        ));
    }
    out
}

/// Parses `args` (the flags, program and subcommand removed) and runs `tool`.
pub fn run_tool(tool: &Tool, args: &[String]) -> i32 {
    let table = (tool.flags)();
    let values = match flags::parse(&table, args) {
        Ok(Parsed::Values(values)) => values,
        Ok(Parsed::Help) => {
            eprint!("{}", flags::usage(tool.name, &table));
            return 0;
        }
        Err(err) => {
            eprintln!("{err}");
            eprint!("{}", flags::usage(tool.name, &table));
            return 2;
        }
    };
    if values.bool("version") == Some(true) {
        println!("{} v{} (sluice)", tool.name, env!("CARGO_PKG_VERSION"));
        return 0;
    }
    let level = values
        .get("log-level")
        .map_or(Ok(log::Level::Info), log::Level::parse);
    let prefix = values
        .get("log-prefix")
        .map_or_else(|| format!("[{}] ", tool.name), str::to_owned);
    log::init(&prefix, level.clone().unwrap_or(log::Level::Info));
    let result = level
        .map_err(|_| "--log-level is invalid".to_owned())
        .and_then(|_| {
            if values.rest.is_empty() {
                Ok(())
            } else {
                Err(format!("unknown arguments: [{}]", values.rest.join(" ")))
            }
        })
        .and_then(|()| Signals::install())
        .and_then(|signals| (tool.run)(&values, &signals));
    match result {
        Ok(()) => 0,
        Err(message) => {
            log::fatal(&message);
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_are_found_by_both_names_and_have_version_flags() {
        assert_eq!(find("tail").map(|t| t.name), Some("nsq_tail"));
        assert_eq!(find("to_nsq").map(|t| t.command), Some("pub"));
        assert_eq!(find("nsq_to_nsq").map(|t| t.command), Some("to-nsq"));
        assert!(find("nsqd").is_none());
        for tool in &TOOLS {
            let table = (tool.flags)();
            assert!(table.iter().any(|f| f.name == "version"), "{}", tool.name);
            let mut names: Vec<&str> = table.iter().map(|f| f.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), table.len(), "duplicate flag in {}", tool.name);
        }
    }
}
