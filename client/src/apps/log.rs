//! The utilities' log lines, on stderr: `<prefix><YYYY/MM/DD HH:MM:SS.micro> <LEVEL>: <message>`.
//!
//! Mirrors upstream's `internal/lg` (used by nsq_to_file, with its `--log-level` and
//! `--log-prefix`); every utility uses it here, with its upstream name as the prefix
//! (`[nsq_tail] `). Times are UTC (see [`super::strftime`]). The logger is process-wide: the
//! first [`init`] wins, later ones (several runs in one test process) are ignored.

use std::io::Write as _;
use std::sync::OnceLock;
use std::time::SystemTime;

use super::strftime::UtcTime;

/// Upstream's five levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// `debug`
    Debug,
    /// `info` (the default)
    Info,
    /// `warn`
    Warn,
    /// `error`
    Error,
    /// `fatal`: only the line before a failed exit.
    Fatal,
}

impl Level {
    /// Parses a level case-insensitively, as upstream's `lg.ParseLogLevel`.
    ///
    /// # Errors
    /// Upstream's text: `invalid log level 'loud' (debug, info, warn, error, fatal)`.
    pub fn parse(text: &str) -> Result<Level, String> {
        match text.to_ascii_lowercase().as_str() {
            "debug" => Ok(Level::Debug),
            "info" => Ok(Level::Info),
            "warn" => Ok(Level::Warn),
            "error" => Ok(Level::Error),
            "fatal" => Ok(Level::Fatal),
            _ => Err(format!(
                "invalid log level '{text}' (debug, info, warn, error, fatal)"
            )),
        }
    }

    fn word(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARNING",
            Level::Error => "ERROR",
            Level::Fatal => "FATAL",
        }
    }
}

struct Logger {
    prefix: String,
    level: Level,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Sets the prefix and the lowest level written, once per process.
pub fn init(prefix: &str, level: Level) {
    let _ = LOGGER.set(Logger {
        prefix: prefix.to_owned(),
        level,
    });
}

/// Writes one line at `level` (dropped below the configured level; `Fatal` always written).
pub fn log(level: Level, message: &str) {
    let (prefix, min) = match LOGGER.get() {
        Some(logger) => (logger.prefix.as_str(), logger.level),
        None => ("", Level::Info),
    };
    if level < min && level != Level::Fatal {
        return;
    }
    let stamp = UtcTime::from_system(SystemTime::now()).log_stamp();
    let line = format!("{prefix}{stamp} {}: {message}\n", level.word());
    // A log line that cannot be written has nowhere else to go.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// [`log`] at [`Level::Debug`].
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// [`log`] at [`Level::Info`].
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// [`log`] at [`Level::Warn`].
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// [`log`] at [`Level::Error`].
pub fn error(message: &str) {
    log(Level::Error, message);
}

/// [`log`] at [`Level::Fatal`]; the caller then exits with status 1.
pub fn fatal(message: &str) {
    log(Level::Fatal, message);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_as_upstream() {
        assert_eq!(Level::parse("WARN"), Ok(Level::Warn));
        assert_eq!(Level::parse("debug"), Ok(Level::Debug));
        assert_eq!(
            Level::parse("loud"),
            Err("invalid log level 'loud' (debug, info, warn, error, fatal)".to_owned())
        );
        assert!(Level::Debug < Level::Info && Level::Error < Level::Fatal);
    }
}
