//! Go-style command-line flags, as upstream's binaries parse them (Go's `flag` package).
//!
//! Every spelling Go accepts works: `-flag=value`, `-flag value`, `--flag=value`, `--flag value`;
//! a boolean flag takes no separate value (`--snappy`, `--snappy=false`). Unknown flags and bad
//! values are reported in Go's words (`flag provided but not defined: -bogus-flag`) with exit
//! code 2, and `-h`/`--help` prints a usage text in Go's layout. A TOML `--config` file supplies
//! values under the same names with `_` for `-`; the command line wins over the file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// What kind of value a flag takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `true`/`false`; given alone it means `true`.
    Bool,
    /// A boolean that also takes this one word (upstream's `--tls-required`, which takes
    /// `tcp-https`); given alone it means `true`.
    BoolOr(&'static str),
    /// A signed integer.
    Int,
    /// Free text.
    Str,
    /// A Go duration (`250ms`, `1m30s`, `1h`).
    Duration,
    /// Repeatable; each occurrence adds one value.
    List,
}

/// One flag: name, kind, default (as Go prints it) and usage text.
#[derive(Debug, Clone)]
pub struct Flag {
    /// Name without dashes.
    pub name: &'static str,
    /// Kind of value.
    pub kind: Kind,
    /// Default value text (empty: no default shown).
    pub default: String,
    /// Usage line.
    pub usage: &'static str,
}

/// The outcome of parsing argv.
#[derive(Debug)]
pub enum Parsed {
    /// Values by flag name (only flags that were given).
    Values(Values),
    /// `-h` or `--help` was given: print [`usage`] and exit 0.
    Help,
}

/// A parse failure, in Go's words; the caller prints it with the usage text and exits 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagError(pub String);

impl std::fmt::Display for FlagError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The values given for each flag (command line over config file).
#[derive(Debug, Default, Clone)]
pub struct Values {
    given: BTreeMap<&'static str, Vec<String>>,
}

impl Values {
    /// The last value given for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.given
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    /// Every value given for a repeatable flag.
    pub fn all(&self, name: &str) -> &[String] {
        self.given.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether `name` was given at all.
    pub fn has(&self, name: &str) -> bool {
        self.given.contains_key(name)
    }
}

/// Parses argv (without the program name) against `flags`.
///
/// # Errors
/// A [`FlagError`] in Go's words for an unknown flag, a missing value or a bad value.
pub fn parse(flags: &[Flag], args: &[String]) -> Result<Parsed, FlagError> {
    let mut values = Values::default();
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        i += 1;
        let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            // Go stops at the first non-flag argument; our daemons take none.
            return Err(FlagError(format!("unexpected argument {arg:?}")));
        };
        if body.is_empty() && arg == "--" {
            break;
        }
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (body, None),
        };
        if name == "h" || name == "help" {
            return Ok(Parsed::Help);
        }
        let Some(flag) = flags.iter().find(|f| f.name == name) else {
            return Err(FlagError(format!("flag provided but not defined: -{name}")));
        };
        let value = match (flag.kind, inline) {
            (_, Some(v)) => v,
            (Kind::Bool | Kind::BoolOr(_), None) => "true".to_owned(),
            (_, None) => {
                let Some(next) = args.get(i) else {
                    return Err(FlagError(format!("flag needs an argument: -{name}")));
                };
                i += 1;
                next.clone()
            }
        };
        check_value(flag, &value)?;
        values.given.entry(flag.name).or_default().push(value);
    }
    Ok(Parsed::Values(values))
}

/// Adds the values of a TOML config file under every flag not given on the command line.
///
/// Keys are flag names with `_` for `-` (upstream's config keys). Unknown keys are ignored, as
/// upstream ignores them.
///
/// # Errors
/// A message naming the key when a value has the wrong type.
pub fn merge_config(flags: &[Flag], values: &mut Values, toml_text: &str) -> Result<(), FlagError> {
    let table: toml::Table = toml_text
        .parse()
        .map_err(|e| FlagError(format!("failed to parse config file - {e}")))?;
    for flag in flags {
        if values.has(flag.name) {
            continue;
        }
        let key = flag.name.replace('-', "_");
        let Some(item) = table.get(&key) else {
            continue;
        };
        let items: Vec<String> = match item {
            toml::Value::Array(list) => list.iter().map(toml_scalar).collect::<Result<_, _>>(),
            other => toml_scalar(other).map(|v| vec![v]),
        }
        .map_err(|what| FlagError(format!("config key {key}: unsupported value {what}")))?;
        for value in &items {
            check_value(flag, value).map_err(|e| FlagError(format!("config key {key}: {e}")))?;
        }
        values.given.insert(flag.name, items);
    }
    Ok(())
}

fn toml_scalar(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(n) => Ok(n.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        other => Err(other.to_string()),
    }
}

fn check_value(flag: &Flag, value: &str) -> Result<(), FlagError> {
    let ok = match flag.kind {
        Kind::Bool => parse_bool(value).is_some(),
        Kind::BoolOr(word) => {
            parse_bool(&value.to_ascii_lowercase()).is_some() || value.eq_ignore_ascii_case(word)
        }
        Kind::Int => value.parse::<i64>().is_ok(),
        Kind::Duration => parse_duration(value).is_some(),
        Kind::Str | Kind::List => true,
    };
    if ok {
        Ok(())
    } else {
        let why = match flag.kind {
            Kind::Bool | Kind::BoolOr(_) => "parse error",
            Kind::Int => "parse error",
            _ => "invalid value",
        };
        Err(FlagError(format!(
            "invalid value {value:?} for flag -{}: {why}",
            flag.name
        )))
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

/// Go's `time.ParseDuration` for non-negative durations (`300ms`, `1m30s`, `1.5h`, `0`).
/// A bare integer is read as nanoseconds, as a TOML integer for a Go duration is.
pub fn parse_duration(text: &str) -> Option<Duration> {
    if text == "0" {
        return Some(Duration::ZERO);
    }
    if let Ok(ns) = text.parse::<u64>() {
        return Some(Duration::from_nanos(ns));
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.is_empty() {
        return None;
    }
    let mut total_ns: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        let number: f64 = num.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total_ns += number * scale;
        rest = tail;
    }
    if !total_ns.is_finite() || total_ns > u64::MAX as f64 {
        return None;
    }
    Some(Duration::from_nanos(total_ns.round() as u64))
}

/// Formats a duration as Go's `Duration.String()` does for the usage text (`1m0s`, `250ms`).
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".to_owned();
    }
    if ns < 1_000_000_000 {
        return if ns % 1_000_000 == 0 {
            format!("{}ms", ns / 1_000_000)
        } else if ns % 1_000 == 0 {
            format!("{}µs", ns / 1_000)
        } else {
            format!("{ns}ns")
        };
    }
    let secs = d.as_secs();
    let frac = d.subsec_nanos();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if h > 0 || m > 0 {
        let _ = write!(out, "{m}m");
    }
    if frac == 0 {
        let _ = write!(out, "{s}s");
    } else {
        let frac_text = format!("{frac:09}");
        let _ = write!(out, "{s}.{}s", frac_text.trim_end_matches('0'));
    }
    out
}

/// The usage text in Go's layout: `Usage of NAME:` then each flag, sorted by name.
pub fn usage(program: &str, flags: &[Flag]) -> String {
    let mut sorted: Vec<&Flag> = flags.iter().collect();
    sorted.sort_by_key(|f| f.name);
    let mut out = format!("Usage of {program}:\n");
    for flag in sorted {
        let type_name = match flag.kind {
            Kind::Bool | Kind::BoolOr(_) => "",
            Kind::Int => " int",
            Kind::Str => " string",
            Kind::Duration => " duration",
            Kind::List => " value",
        };
        let _ = writeln!(out, "  -{}{type_name}", flag.name);
        let _ = write!(out, "    \t{}", flag.usage);
        let is_bool = matches!(flag.kind, Kind::Bool | Kind::BoolOr(_));
        let hide_default = flag.default.is_empty() || (is_bool && flag.default == "false");
        let show_default = !hide_default;
        if show_default {
            if flag.kind == Kind::Str {
                let _ = write!(out, " (default {:?})", flag.default);
            } else {
                let _ = write!(out, " (default {})", flag.default);
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Vec<Flag> {
        vec![
            Flag {
                name: "tcp-address",
                kind: Kind::Str,
                default: "0.0.0.0:4150".into(),
                usage: "addr",
            },
            Flag {
                name: "snappy",
                kind: Kind::Bool,
                default: "true".into(),
                usage: "snappy",
            },
            Flag {
                name: "mem-queue-size",
                kind: Kind::Int,
                default: "10000".into(),
                usage: "n",
            },
            Flag {
                name: "msg-timeout",
                kind: Kind::Duration,
                default: "1m0s".into(),
                usage: "t",
            },
            Flag {
                name: "lookupd-tcp-address",
                kind: Kind::List,
                default: String::new(),
                usage: "l",
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

    #[test]
    fn every_go_spelling_works() {
        for spelling in [
            &["-tcp-address=1.2.3.4:5"][..],
            &["-tcp-address", "1.2.3.4:5"],
            &["--tcp-address=1.2.3.4:5"],
            &["--tcp-address", "1.2.3.4:5"],
        ] {
            assert_eq!(
                values(spelling).get("tcp-address"),
                Some("1.2.3.4:5"),
                "{spelling:?}"
            );
        }
    }

    #[test]
    fn bools_take_no_separate_value() {
        assert_eq!(values(&["--snappy"]).get("snappy"), Some("true"));
        assert_eq!(values(&["-snappy=false"]).get("snappy"), Some("false"));
        assert!(parse(&table(), &args(&["--snappy", "false"])).is_err());
    }

    #[test]
    fn repeatable_flags_collect_every_value() {
        let v = values(&["--lookupd-tcp-address=a:1", "-lookupd-tcp-address", "b:2"]);
        assert_eq!(v.all("lookupd-tcp-address"), ["a:1", "b:2"]);
    }

    #[test]
    fn unknown_and_bad_values_use_go_words() {
        let err = parse(&table(), &args(&["--bogus-flag"])).unwrap_err();
        assert_eq!(err.0, "flag provided but not defined: -bogus-flag");
        let err = parse(&table(), &args(&["--mem-queue-size=x"])).unwrap_err();
        assert!(err
            .0
            .starts_with("invalid value \"x\" for flag -mem-queue-size"));
        assert!(parse(&table(), &args(&["--msg-timeout"])).is_err());
        assert!(matches!(parse(&table(), &args(&["-h"])), Ok(Parsed::Help)));
    }

    #[test]
    fn durations_as_go_writes_them() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(format_duration(Duration::from_secs(60)), "1m0s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format_duration(Duration::from_secs(900)), "15m0s");
    }

    #[test]
    fn config_file_fills_what_the_command_line_did_not_give() {
        let mut v = values(&["--mem-queue-size=5"]);
        let toml = "mem_queue_size = 7\ntcp_address = \"9.9.9.9:1\"\nmsg_timeout = \"2s\"\nlookupd_tcp_address = [\"x:1\", \"y:2\"]\nunknown_key = 1\n";
        merge_config(&table(), &mut v, toml).unwrap();
        assert_eq!(v.get("mem-queue-size"), Some("5"));
        assert_eq!(v.get("tcp-address"), Some("9.9.9.9:1"));
        assert_eq!(v.get("msg-timeout"), Some("2s"));
        assert_eq!(v.all("lookupd-tcp-address"), ["x:1", "y:2"]);
        let mut v = values(&[]);
        assert!(merge_config(&table(), &mut v, "mem_queue_size = \"lots\"").is_err());
    }
}
