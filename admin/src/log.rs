//! Log lines in upstream's layout, on stderr, through `tracing`.
//!
//! Mirrors `internal/lg/lg.go`: `<prefix><YYYY/MM/DD HH:MM:SS.micro> <LEVEL>: <message>`, e.g.
//! `[sluice-admin] 2026/11/21 08:43:55.213550 INFO: HTTP: listening on 127.0.0.1:4171`. Test
//! suites and tools find the bound address by the `HTTP: listening on ` line. Times are UTC (upstream uses the local zone; reading the zone
//! database is not worth a dependency here).

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// `--log-level`: upstream's five levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// `debug`
    Debug,
    /// `info` (the default)
    Info,
    /// `warn`
    Warn,
    /// `error`
    Error,
    /// `fatal`: only the line that ends the process.
    Fatal,
}

impl LogLevel {
    /// Parses a level, case-insensitively, as upstream's `lg.ParseLogLevel`.
    ///
    /// # Errors
    /// Upstream's text: `invalid log level 'loud' (debug, info, warn, error, fatal)`.
    pub fn parse(text: &str) -> Result<LogLevel, String> {
        match text.to_ascii_lowercase().as_str() {
            "debug" => Ok(LogLevel::Debug),
            "info" => Ok(LogLevel::Info),
            "warn" => Ok(LogLevel::Warn),
            "error" => Ok(LogLevel::Error),
            "fatal" => Ok(LogLevel::Fatal),
            _ => Err(format!(
                "invalid log level '{text}' (debug, info, warn, error, fatal)"
            )),
        }
    }

    /// The level as upstream's `lg.LogLevel` integer (`/config/log_level` shows it): debug 1,
    /// info 2, warn 3, error 4, fatal 5.
    pub fn as_int(self) -> u8 {
        match self {
            LogLevel::Debug => 1,
            LogLevel::Info => 2,
            LogLevel::Warn => 3,
            LogLevel::Error => 4,
            LogLevel::Fatal => 5,
        }
    }

    fn allows(self, level: Level) -> bool {
        let needed = match level {
            Level::ERROR => LogLevel::Error,
            Level::WARN => LogLevel::Warn,
            Level::INFO => LogLevel::Info,
            Level::DEBUG | Level::TRACE => LogLevel::Debug,
        };
        needed >= self
    }
}

/// The level in force, changed at run time by `PUT /config/log_level`.
static CURRENT_LEVEL: AtomicU8 = AtomicU8::new(2);

/// Sets the level in force for every later log line.
pub fn set_level(level: LogLevel) {
    CURRENT_LEVEL.store(level.as_int(), Ordering::Relaxed);
}

/// The level in force.
pub fn level() -> LogLevel {
    match CURRENT_LEVEL.load(Ordering::Relaxed) {
        1 => LogLevel::Debug,
        3 => LogLevel::Warn,
        4 => LogLevel::Error,
        5 => LogLevel::Fatal,
        _ => LogLevel::Info,
    }
}

/// Installs the stderr logger for this process at `level` (changeable with [`set_level`]). A
/// second call (several services in one test process) keeps the first logger.
pub fn init(level: LogLevel, prefix: &str) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    set_level(level);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .event_format(UpstreamFormat {
            prefix: prefix.to_owned(),
        })
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            self::level().allows(*meta.level())
        }));
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

/// The line upstream prints before exiting on a fatal error.
pub fn fatal_line(prefix: &str, message: &str) -> String {
    format!("{prefix}{} FATAL: {message}", timestamp(SystemTime::now()))
}

struct UpstreamFormat {
    prefix: String,
}

impl<S, N> FormatEvent<S, N> for UpstreamFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = match *event.metadata().level() {
            Level::ERROR => "ERROR",
            Level::WARN => "WARNING",
            Level::INFO => "INFO",
            Level::DEBUG | Level::TRACE => "DEBUG",
        };
        write!(
            writer,
            "{}{} {level}: ",
            self.prefix,
            timestamp(SystemTime::now())
        )?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// `YYYY/MM/DD HH:MM:SS.micro` in UTC (Go's `log.Ldate|log.Ltime|log.Lmicroseconds`).
pub fn timestamp(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    format!(
        "{year:04}/{month:02}/{day:02} {:02}:{:02}:{:02}.{:06}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        since.subsec_micros()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_in_gos_layout() {
        let at = UNIX_EPOCH + Duration::from_micros(1_795_250_632_609_493);
        assert_eq!(timestamp(at), "2026/11/21 08:43:52.609493");
        assert_eq!(timestamp(UNIX_EPOCH), "1970/01/01 00:00:00.000000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(timestamp(leap), "2000/02/29 00:00:00.000000");
    }

    #[test]
    fn levels_parse_as_upstream() {
        assert_eq!(LogLevel::parse("WARN"), Ok(LogLevel::Warn));
        assert_eq!(LogLevel::parse("fatal"), Ok(LogLevel::Fatal));
        assert_eq!(LogLevel::Info.as_int(), 2);
        assert!(LogLevel::Warn.allows(Level::ERROR));
        assert!(!LogLevel::Warn.allows(Level::INFO));
        assert!(LogLevel::Debug.allows(Level::DEBUG));
        assert_eq!(
            LogLevel::parse("loud").unwrap_err(),
            "invalid log level 'loud' (debug, info, warn, error, fatal)"
        );
    }
}
