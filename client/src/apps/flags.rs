//! Go-style command-line flags for the utilities, parsed as upstream's apps parse them (Go's
//! `flag` package). A copy of `sluice-lookup`'s parser without the config file (upstream's
//! utilities take none), plus float flags and Go's back-quoted value names.
//!
//! - Every spelling Go accepts: `-flag=value`, `-flag value`, `--flag=value`, `--flag value`.
//!   A boolean flag takes no separate value (`--x`, `--x=false`). `--` ends the flags, and so
//!   does the first argument that is not a flag (the rest is returned, as Go leaves it).
//! - Errors in Go's words (`flag provided but not defined: -bogus-flag`, `invalid value "x" for
//!   flag -name: parse error`); the caller prints the error and [`usage`] and exits 2.
//! - `-h`/`-help`/`--help` ask for the usage text.
//! - Durations as Go writes them (`300s`, `1m30s`, `1.5h`, `250ms`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// What kind of value a flag takes; decides parsing, checking and the usage text.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// `true`/`false` (Go's `strconv.ParseBool`); given alone it means `true`.
    Bool,
    /// A signed decimal integer.
    Int,
    /// A decimal floating-point number (Go's `flag.Float64`).
    Float,
    /// Free text.
    Str,
    /// A Go duration.
    Duration,
    /// Repeatable text; each occurrence adds one value.
    List,
    /// Text checked by a function that returns the reason for a refusal (a Go `flag.Value`).
    Value(fn(&str) -> Result<(), String>),
}

/// One flag: name, kind, default (as Go prints it) and usage text.
#[derive(Debug, Clone)]
pub struct Flag {
    /// Name without dashes, e.g. `tcp-address`.
    pub name: &'static str,
    /// Kind of value.
    pub kind: Kind,
    /// The default as upstream's usage text shows it (empty: none shown).
    pub default: String,
    /// The usage line.
    pub usage: &'static str,
}

/// The outcome of parsing argv.
#[derive(Debug)]
pub enum Parsed {
    /// The flags given.
    Values(Values),
    /// `-h`, `-help` or `--help`: print [`usage`] and exit 0.
    Help,
}

/// A parse failure in Go's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagError(pub String);

impl std::fmt::Display for FlagError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FlagError {}

/// The values given for each flag, each already checked against its kind.
#[derive(Debug, Default, Clone)]
pub struct Values {
    given: BTreeMap<&'static str, Vec<String>>,
    /// Arguments after the flags (Go stops at the first non-flag argument or `--`).
    pub rest: Vec<String>,
}

impl Values {
    /// The last value given for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.given.get(name)?.last().map(String::as_str)
    }

    /// Every value given for a repeatable flag, in order.
    pub fn all(&self, name: &str) -> &[String] {
        self.given.get(name).map(Vec::as_slice).unwrap_or_default()
    }

    /// Whether `name` was given at all.
    pub fn has(&self, name: &str) -> bool {
        self.given.contains_key(name)
    }

    /// The value of a boolean flag, if given.
    pub fn bool(&self, name: &str) -> Option<bool> {
        self.get(name).and_then(parse_bool)
    }

    /// The value of a duration flag, if given.
    pub fn duration(&self, name: &str) -> Option<Duration> {
        self.get(name).and_then(parse_duration)
    }

    /// The value of an integer flag, if given.
    pub fn int(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(|v| v.parse().ok())
    }

    /// The value of a float flag, if given.
    pub fn float(&self, name: &str) -> Option<f64> {
        self.get(name).and_then(|v| v.parse().ok())
    }
}

/// Parses argv (without the program name) against `flags`, as Go's `FlagSet.Parse`.
///
/// # Errors
/// A [`FlagError`] in Go's words for bad syntax, an unknown flag, a missing or a bad value.
pub fn parse(flags: &[Flag], args: &[String]) -> Result<Parsed, FlagError> {
    let mut values = Values::default();
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        let body = match arg.strip_prefix("--") {
            Some("") => {
                i += 1;
                break;
            }
            Some(body) => body,
            None => match arg.strip_prefix('-') {
                Some(body) if !body.is_empty() => body,
                _ => break,
            },
        };
        i += 1;
        if body.starts_with('-') || body.starts_with('=') {
            return Err(FlagError(format!("bad flag syntax: {arg}")));
        }
        let (name, inline) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        let Some(flag) = flags.iter().find(|f| f.name == name) else {
            if name == "h" || name == "help" {
                return Ok(Parsed::Help);
            }
            return Err(FlagError(format!("flag provided but not defined: -{name}")));
        };
        let value = match (flag.kind, inline) {
            (Kind::Bool, Some(value)) => {
                if parse_bool(value).is_none() {
                    return Err(FlagError(format!(
                        "invalid boolean value {value:?} for -{name}: parse error"
                    )));
                }
                value.to_owned()
            }
            (Kind::Bool, None) => "true".to_owned(),
            (_, Some(value)) => value.to_owned(),
            (_, None) => {
                let Some(next) = args.get(i) else {
                    return Err(FlagError(format!("flag needs an argument: -{name}")));
                };
                i += 1;
                next.clone()
            }
        };
        check_value(flag, &value)
            .map_err(|why| FlagError(format!("invalid value {value:?} for flag -{name}: {why}")))?;
        values.given.entry(flag.name).or_default().push(value);
    }
    values.rest = args.get(i..).unwrap_or_default().to_vec();
    Ok(Parsed::Values(values))
}

fn check_value(flag: &Flag, value: &str) -> Result<(), String> {
    let ok = match flag.kind {
        Kind::Bool => parse_bool(value).is_some(),
        Kind::Int => value.parse::<i64>().is_ok(),
        Kind::Float => value.parse::<f64>().is_ok(),
        Kind::Duration => parse_duration(value).is_some(),
        Kind::Str | Kind::List => true,
        Kind::Value(check) => return check(value),
    };
    if ok {
        Ok(())
    } else {
        Err("parse error".to_owned())
    }
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `time.ParseDuration`, for durations that are not negative: a sequence of decimal
/// numbers, each with an optional fraction and a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`,
/// `h`), e.g. `300ms`, `1m30s`, `1.5h`; or `0`. Integer arithmetic, as Go's.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    // Go's largest duration; anything above overflows its int64 nanoseconds.
    const MAX_NANOS: u128 = i64::MAX as u128;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int_text, tail) = rest.split_at(int_len);
        let (frac_text, tail) = match tail.strip_prefix('.') {
            Some(after) => {
                let len = after
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(after.len());
                after.split_at(len)
            }
            None => ("", tail),
        };
        if int_text.is_empty() && frac_text.is_empty() {
            return None;
        }
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let whole: u128 = if int_text.is_empty() {
            0
        } else {
            int_text.parse().ok()?
        };
        total = total.checked_add(whole.checked_mul(scale)?)?;
        // The fraction, to nanosecond precision (Go also drops digits beyond its precision).
        let mut frac_scale = scale;
        for digit in frac_text.bytes().map(|b| u128::from(b - b'0')) {
            frac_scale /= 10;
            total = total.checked_add(digit * frac_scale)?;
        }
        if total > MAX_NANOS {
            return None;
        }
        rest = tail;
    }
    u64::try_from(total).ok().map(Duration::from_nanos)
}

/// A duration as Go's `Duration.String()` writes it (`5m0s`, `45s`, `250ms`, `1h0m0s`).
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".to_owned();
    }
    if ns < 1_000_000_000 {
        let (value, unit) = if ns < 1_000 {
            return format!("{ns}ns");
        } else if ns < 1_000_000 {
            (ns as f64 / 1e3, "µs")
        } else {
            (ns as f64 / 1e6, "ms")
        };
        return format!("{value}{unit}");
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if h > 0 || m > 0 {
        let _ = write!(out, "{m}m");
    }
    let frac = d.subsec_nanos();
    if frac == 0 {
        let _ = write!(out, "{s}s");
    } else {
        let digits = format!("{frac:09}");
        let _ = write!(out, "{s}.{}s", digits.trim_end_matches('0'));
    }
    out
}

/// The usage text in Go's layout (`flag.PrintDefaults`): `Usage of NAME:`, then each flag
/// sorted by name, its type word, and its usage line with the default when it is not the
/// zero value. As in Go, a back-quoted word in the usage line names the value instead of the
/// type word (`` `rotate-size` bytes `` gives `-rotate-size rotate-size`).
pub fn usage(program: &str, flags: &[Flag]) -> String {
    let mut sorted: Vec<&Flag> = flags.iter().collect();
    sorted.sort_by_key(|f| f.name);
    let mut out = format!("Usage of {program}:\n");
    for flag in sorted {
        let (type_word, text) = type_word_and_text(flag);
        let _ = write!(out, "  -{}{type_word}", flag.name);
        // Go puts a one-letter boolean's usage on the same line.
        if flag.name.len() == 1 && type_word.is_empty() {
            out.push('\t');
        } else {
            out.push_str("\n    \t");
        }
        out.push_str(&text.replace('\n', "\n    \t"));
        let zero = matches!(flag.default.as_str(), "" | "0" | "false" | "0s");
        if !zero {
            if matches!(flag.kind, Kind::Str) {
                let _ = write!(out, " (default {:?})", flag.default);
            } else {
                let _ = write!(out, " (default {})", flag.default);
            }
        }
        out.push('\n');
    }
    out
}

/// Go's `flag.UnquoteUsage`: the value name (a back-quoted word, else the kind's word) and the
/// usage text without the back quotes.
fn type_word_and_text(flag: &Flag) -> (String, String) {
    let mut parts = flag.usage.splitn(3, '`');
    if let (Some(before), Some(name), Some(after)) = (parts.next(), parts.next(), parts.next()) {
        return (format!(" {name}"), format!("{before}{name}{after}"));
    }
    let word = match flag.kind {
        Kind::Bool => "",
        Kind::Int => " int",
        Kind::Float => " float",
        Kind::Str => " string",
        Kind::Duration => " duration",
        Kind::List | Kind::Value(_) => " value",
    };
    (word.to_owned(), flag.usage.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_level(value: &str) -> Result<(), String> {
        match value {
            "info" | "debug" => Ok(()),
            _ => Err(format!("invalid log level '{value}'")),
        }
    }

    fn table() -> Vec<Flag> {
        vec![
            Flag {
                name: "tcp-address",
                kind: Kind::Str,
                default: "0.0.0.0:4160".into(),
                usage: "addr",
            },
            Flag {
                name: "verbose",
                kind: Kind::Bool,
                default: "false".into(),
                usage: "deprecated",
            },
            Flag {
                name: "count",
                kind: Kind::Int,
                default: "0".into(),
                usage: "n",
            },
            Flag {
                name: "tombstone-lifetime",
                kind: Kind::Duration,
                default: "45s".into(),
                usage: "t",
            },
            Flag {
                name: "peer",
                kind: Kind::List,
                default: String::new(),
                usage: "repeat",
            },
            Flag {
                name: "log-level",
                kind: Kind::Value(check_level),
                default: "INFO".into(),
                usage: "level",
            },
        ]
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn values(list: &[&str]) -> Values {
        match parse(&table(), &args(list)).unwrap() {
            Parsed::Values(v) => v,
            Parsed::Help => panic!("help"),
        }
    }

    fn error(list: &[&str]) -> String {
        parse(&table(), &args(list)).unwrap_err().0
    }

    #[test]
    fn every_go_spelling_works() {
        for spelling in [
            &["-tcp-address=1.2.3.4:5"][..],
            &["-tcp-address", "1.2.3.4:5"],
            &["--tcp-address=1.2.3.4:5"],
            &["--tcp-address", "1.2.3.4:5"],
        ] {
            let v = values(spelling);
            assert_eq!(v.get("tcp-address"), Some("1.2.3.4:5"), "{spelling:?}");
        }
        assert_eq!(values(&["--tcp-address="]).get("tcp-address"), Some(""));
    }

    #[test]
    fn booleans_take_no_separate_value() {
        assert_eq!(values(&["--verbose"]).bool("verbose"), Some(true));
        assert_eq!(values(&["-verbose=false"]).bool("verbose"), Some(false));
        // As in Go, `false` after a boolean is the first non-flag argument: parsing stops.
        let v = values(&["--verbose", "false", "--count=1"]);
        assert_eq!(v.bool("verbose"), Some(true));
        assert!(!v.has("count"));
        assert_eq!(v.rest, ["false", "--count=1"]);
        assert_eq!(
            error(&["--verbose=maybe"]),
            "invalid boolean value \"maybe\" for -verbose: parse error"
        );
    }

    #[test]
    fn double_dash_ends_flags_and_repeats_accumulate() {
        let v = values(&["--peer=a:1", "-peer", "b:2", "--", "--count=1"]);
        assert_eq!(v.all("peer"), ["a:1", "b:2"]);
        assert_eq!(v.rest, ["--count=1"]);
        assert_eq!(values(&["-count=3", "-count", "4"]).int("count"), Some(4));
    }

    #[test]
    fn errors_use_go_words() {
        assert_eq!(
            error(&["--bogus-flag"]),
            "flag provided but not defined: -bogus-flag"
        );
        assert_eq!(
            error(&["--count=x"]),
            "invalid value \"x\" for flag -count: parse error"
        );
        assert_eq!(
            error(&["--log-level=loud"]),
            "invalid value \"loud\" for flag -log-level: invalid log level 'loud'"
        );
        assert_eq!(
            error(&["--tombstone-lifetime"]),
            "flag needs an argument: -tombstone-lifetime"
        );
        assert_eq!(error(&["---x"]), "bad flag syntax: ---x");
        assert_eq!(error(&["-=x"]), "bad flag syntax: -=x");
        for help in ["-h", "-help", "--help", "--h"] {
            assert!(matches!(parse(&table(), &args(&[help])), Ok(Parsed::Help)));
        }
    }

    #[test]
    fn durations_as_go_parses_and_prints_them() {
        let secs = Duration::from_secs;
        assert_eq!(parse_duration("300s"), Some(secs(300)));
        assert_eq!(parse_duration("1m30s"), Some(secs(90)));
        assert_eq!(parse_duration("1.5h"), Some(secs(5400)));
        assert_eq!(parse_duration(".5s"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.s"), Some(secs(1)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("10µs"), Some(Duration::from_micros(10)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("+2s"), Some(secs(2)));
        for bad in ["", "5", "5x", ".s", "s", "-1s", "1e3s", "2562048h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(format_duration(secs(300)), "5m0s");
        assert_eq!(format_duration(secs(45)), "45s");
        assert_eq!(format_duration(secs(3600)), "1h0m0s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn usage_is_in_go_layout() {
        let text = usage("prog", &table());
        assert!(text.starts_with("Usage of prog:\n  -count int\n    \tn\n"));
        assert!(text.contains("  -log-level value\n    \tlevel (default INFO)\n"));
        assert!(text.contains("  -tcp-address string\n    \taddr (default \"0.0.0.0:4160\")\n"));
        assert!(text.contains("  -verbose\n    \tdeprecated\n"));
        assert!(text.contains("  -tombstone-lifetime duration\n    \tt (default 45s)\n"));
        let sized = Flag {
            name: "rotate-size",
            kind: Kind::Int,
            default: "0".into(),
            usage: "rotate when bigger than `rotate-size` bytes",
        };
        assert_eq!(
            usage("p", &[sized]),
            "Usage of p:\n  -rotate-size rotate-size\n    \trotate when bigger than rotate-size bytes\n"
        );
    }
}
