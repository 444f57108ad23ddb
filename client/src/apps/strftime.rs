//! Calendar fields of a UTC time and `strftime`-style formatting, for `--datetime-format` and log
//! lines. Pure: the time is an argument.
//!
//! Mirrors nsq_to_file's `strftime.go` (copied upstream from `jehiah/go-strftime`): the same
//! directives (`%Y %y %m %d %H %I %M %S %p %B %b %A %a %Z %z %%`); an unknown directive is
//! written as it is. Upstream formats the local time; these are UTC, as the lookupd's log lines
//! are (reading the zone database is not worth a dependency). Unlike upstream, characters
//! outside directives are always literal (upstream passes them through Go's layout, where a
//! stray `1` or `Jan` would be read as a date field).

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// A UTC time broken into calendar fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    /// The year, e.g. 2026.
    pub year: i64,
    /// 1 to 12.
    pub month: u32,
    /// 1 to 31.
    pub day: u32,
    /// 0 to 23.
    pub hour: u32,
    /// 0 to 59.
    pub minute: u32,
    /// 0 to 59.
    pub second: u32,
    /// 0 to 999 999.
    pub micros: u32,
    /// 0 is Sunday.
    pub weekday: u32,
}

impl UtcTime {
    /// The calendar fields of `at` (times before 1970 count as 1970-01-01).
    ///
    /// # Examples
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use sluice_client::apps::strftime::UtcTime;
    /// let t = UtcTime::from_system(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    /// assert_eq!((t.year, t.month, t.day, t.hour, t.weekday), (2023, 11, 14, 22, 2));
    /// ```
    pub fn from_system(at: SystemTime) -> UtcTime {
        let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let days = secs / 86_400;
        let (year, month, day) = civil_from_days(days);
        let rem = secs % 86_400;
        UtcTime {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: ((rem / 60) % 60) as u32,
            second: (rem % 60) as u32,
            micros: since.subsec_micros(),
            // 1970-01-01 was a Thursday.
            weekday: ((days + 4) % 7) as u32,
        }
    }

    /// `YYYY/MM/DD HH:MM:SS.micro` (Go's `log.Ldate|log.Ltime|log.Lmicroseconds`).
    pub fn log_stamp(&self) -> String {
        format!(
            "{:04}/{:02}/{:02} {:02}:{:02}:{:02}.{:06}",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.micros
        )
    }
}

/// Formats `t` by `format`'s `strftime` directives.
///
/// # Examples
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use sluice_client::apps::strftime::{strftime, UtcTime};
/// let t = UtcTime::from_system(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
/// assert_eq!(strftime("%Y-%m-%d_%H", &t), "2023-11-14_22");
/// ```
pub fn strftime(format: &str, t: &UtcTime) -> String {
    let mut out = String::with_capacity(format.len() + 8);
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(directive) = chars.next() else {
            out.push('%');
            break;
        };
        if !put_directive(&mut out, directive, t) {
            out.push('%');
            out.push(directive);
        }
    }
    out
}

/// Appends one directive's text; false for a directive upstream does not know.
fn put_directive(out: &mut String, directive: char, t: &UtcTime) -> bool {
    let month = MONTHS
        .get(t.month.saturating_sub(1) as usize)
        .copied()
        .unwrap_or("");
    let weekday = WEEKDAYS.get(t.weekday as usize).copied().unwrap_or("");
    let hour12 = match t.hour % 12 {
        0 => 12,
        h => h,
    };
    let _ = match directive {
        'Y' => write!(out, "{:04}", t.year),
        'y' => write!(out, "{:02}", t.year.rem_euclid(100)),
        'm' => write!(out, "{:02}", t.month),
        'd' => write!(out, "{:02}", t.day),
        'H' => write!(out, "{:02}", t.hour),
        'I' => write!(out, "{hour12:02}"),
        'M' => write!(out, "{:02}", t.minute),
        'S' => write!(out, "{:02}", t.second),
        'p' => out.write_str(if t.hour < 12 { "AM" } else { "PM" }),
        'B' => out.write_str(month),
        'b' => out.write_str(month.get(..3).unwrap_or(month)),
        'A' => out.write_str(weekday),
        'a' => out.write_str(weekday.get(..3).unwrap_or(weekday)),
        'Z' => out.write_str("UTC"),
        'z' => out.write_str("+0000"),
        '%' => out.write_str("%"),
        _ => return false,
    };
    true
}

/// Howard Hinnant's `civil_from_days`: (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(days: u64) -> (i64, u32, u32) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> UtcTime {
        UtcTime::from_system(UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[test]
    fn calendar_fields_cross_leap_days_and_years() {
        assert_eq!(
            (at(0).year, at(0).month, at(0).day, at(0).weekday),
            (1970, 1, 1, 4)
        );
        // 2024-02-29 12:00:00 UTC, a Thursday.
        let leap = at(1_709_208_000);
        assert_eq!(
            (leap.year, leap.month, leap.day, leap.hour, leap.weekday),
            (2024, 2, 29, 12, 4)
        );
        // 2000-12-31 23:59:59 UTC.
        let end = at(978_307_199);
        assert_eq!(
            (end.year, end.month, end.day, end.hour, end.minute, end.second),
            (2000, 12, 31, 23, 59, 59)
        );
    }

    #[test]
    fn every_directive_and_unknown_ones_pass_through() {
        let t = at(1_709_208_000 + 3 * 3600 + 4 * 60 + 5);
        assert_eq!(
            strftime("%Y %y %m %d %H %I %M %S %p %B %b %A %a %Z %z %%", &t),
            "2024 24 02 29 15 03 04 05 PM February Feb Thursday Thu UTC +0000 %"
        );
        assert_eq!(strftime("%Q-1-Jan-%", &t), "%Q-1-Jan-%");
        assert_eq!(strftime("", &t), "");
        assert_eq!(at(0).log_stamp(), "1970/01/01 00:00:00.000000");
    }
}
