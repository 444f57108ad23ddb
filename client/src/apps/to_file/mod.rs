//! `sluice to-file` (upstream `nsq_to_file`): archive topics to newline-delimited files,
//! rotated by date, size or interval, optionally gzipped, written in a work directory and
//! moved to the output directory when closed.
//!
//! Mirrors `apps/nsq_to_file/nsq_to_file.go` (flags, defaults and checks, in upstream's
//! words), `topic_discoverer.go` (one consumer and one writer per topic; with no `--topic`,
//! every topic the lookupds list that matches `--topic-pattern`, refreshed every
//! `--topic-refresh`) and `file_logger.go` (see [`file_logger`] and [`output_file`]).
//! Differences: a message is finished only after its line is fsynced (upstream does the same
//! in the normal case, but exits on a write error leaving the rest to time out); the first
//! topic discovery happens at start, not one `--topic-refresh` later; an invalid
//! `--topic-pattern` or `--filename-format` is an error at start rather than a topic silently
//! skipped; `<DATETIME>` is UTC.

pub mod file_logger;
pub mod output_file;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use regex::Regex;
use sluice_proto::http_json::TopicsResponse;

use crate::apps::flags::{Flag, Kind, Values};
use crate::apps::gate::Gate;
use crate::apps::log;
use crate::apps::signals::Signals;
use crate::apps::source::{consumer_flags, flag, hostname, max_in_flight, ClientOpts, Source};
use crate::{lookup, Consumer};
use file_logger::{Event, FileHandler, FileLogger, LoggerSpec};
use output_file::FileSpec;

/// The flag table.
pub fn flags() -> Vec<Flag> {
    let mut table = consumer_flags("200");
    table.extend([
        flag("log-level", Kind::Str, "info", "set log verbosity: debug, info, warn, error, or fatal"),
        flag("log-prefix", Kind::Str, "[nsq_to_file] ", "log message prefix"),
        flag("channel", Kind::Str, "nsq_to_file", "nsq channel"),
        flag("output-dir", Kind::Str, "/tmp", "directory to write output files to"),
        flag("work-dir", Kind::Str, "", "directory for in-progress files before moving to output-dir"),
        flag("datetime-format", Kind::Str, "%Y-%m-%d_%H", "strftime compatible format for <DATETIME> in filename format"),
        flag("filename-format", Kind::Str, "<TOPIC>.<HOST><REV>.<DATETIME>.log", "output filename format (<TOPIC>, <HOST>, <PID>, <DATETIME>, <REV> are replaced. <REV> is increased when file already exists)"),
        flag("host-identifier", Kind::Str, "", "value to output in log filename in place of hostname. <SHORT_HOST> and <HOSTNAME> are valid replacement tokens"),
        flag("gzip-level", Kind::Int, "6", "gzip compression level (1-9, 1=BestSpeed, 9=BestCompression)"),
        flag("gzip", Kind::Bool, "false", "gzip output files."),
        flag("skip-empty-files", Kind::Bool, "false", "skip writing empty files"),
        flag("topic-refresh", Kind::Duration, "1m0s", "how frequently the topic list should be refreshed"),
        flag("topic-pattern", Kind::Str, "", "only log topics matching the following pattern"),
        flag("rotate-size", Kind::Int, "0", "rotate the file when it grows bigger than `rotate-size` bytes"),
        flag("rotate-interval", Kind::Duration, "0s", "rotate the file every duration"),
        flag("sync-interval", Kind::Duration, "30s", "sync file to disk every duration"),
        flag("http-client-connect-timeout", Kind::Duration, "2s", "timeout for HTTP connect"),
        flag("http-client-request-timeout", Kind::Duration, "5s", "timeout for HTTP request"),
        flag("topic", Kind::List, "", "nsq topic (may be given multiple times)"),
    ]);
    table
}

/// The checked options (upstream `Options`).
#[derive(Debug, Clone)]
pub struct Options {
    /// `--topic` values.
    pub topics: Vec<String>,
    /// `--topic-pattern`, compiled.
    pub topic_pattern: Option<Regex>,
    /// `--topic-refresh`.
    pub topic_refresh: Duration,
    /// `--channel`.
    pub channel: String,
    /// `--max-in-flight`.
    pub max_in_flight: u64,
    /// `--output-dir`.
    pub output_dir: PathBuf,
    /// `--work-dir` (defaults to the output directory).
    pub work_dir: PathBuf,
    /// `--datetime-format`.
    pub datetime_format: String,
    /// `--filename-format`.
    pub filename_format: String,
    /// `--host-identifier`.
    pub host_identifier: String,
    /// `--gzip` with `--gzip-level`.
    pub gzip_level: Option<u32>,
    /// `--skip-empty-files`.
    pub skip_empty_files: bool,
    /// `--rotate-size` (0: off).
    pub rotate_size: u64,
    /// `--rotate-interval` (`None`: off).
    pub rotate_interval: Option<Duration>,
    /// `--sync-interval`.
    pub sync_interval: Duration,
    /// `--http-client-request-timeout`, for lookupd queries.
    pub http_timeout: Duration,
}

/// Upstream's checks of the flags, in its order and words.
fn check(
    values: &Values,
    channel: &str,
    sync_interval: Duration,
    gzip_level: i64,
    pattern: &str,
) -> Result<(), String> {
    if channel.is_empty() {
        return Err("--channel is required".into());
    }
    for name in ["http-client-connect-timeout", "http-client-request-timeout"] {
        if values.duration(name) == Some(Duration::ZERO) {
            return Err(format!("--{name} should be positive"));
        }
    }
    if sync_interval.is_zero() {
        return Err("--sync-interval should be positive".into());
    }
    if !(1..=9).contains(&gzip_level) {
        return Err(format!(
            "invalid --gzip-level value ({gzip_level}), should be 1-9"
        ));
    }
    let no_topic = values.all("topic").is_empty();
    if no_topic && pattern.is_empty() {
        return Err("--topic or --topic-pattern required".into());
    }
    if no_topic && values.all("lookupd-http-address").is_empty() {
        return Err("--lookupd-http-address must be specified when no --topic specified".into());
    }
    Ok(())
}

impl Options {
    /// Reads and checks the flags, with upstream's messages.
    ///
    /// # Errors
    /// The first flag that is missing or wrong.
    pub fn from_values(values: &Values) -> Result<Options, String> {
        let text = |name: &str, default: &str| values.get(name).unwrap_or(default).to_owned();
        let duration = |name: &str, default: Duration| values.duration(name).unwrap_or(default);
        let channel = text("channel", "nsq_to_file");
        let sync_interval = duration("sync-interval", Duration::from_secs(30));
        let gzip_level = values.int("gzip-level").unwrap_or(6);
        let topics = values.all("topic").to_vec();
        let pattern = text("topic-pattern", "");
        check(values, &channel, sync_interval, gzip_level, &pattern)?;
        let topic_pattern = match pattern.as_str() {
            "" => None,
            text => Some(Regex::new(text).map_err(|e| format!("--topic-pattern is invalid: {e}"))?),
        };
        let rotate_size = values.int("rotate-size").unwrap_or(0);
        if rotate_size < 0 {
            return Err(format!(
                "--rotate-size must not be negative (got {rotate_size})"
            ));
        }
        let output_dir = PathBuf::from(text("output-dir", "/tmp"));
        let work_dir = match text("work-dir", "") {
            dir if dir.is_empty() => output_dir.clone(),
            dir => PathBuf::from(dir),
        };
        let options = Options {
            topics,
            topic_pattern,
            topic_refresh: duration("topic-refresh", Duration::from_secs(60))
                .max(Duration::from_millis(100)),
            channel,
            max_in_flight: max_in_flight(values, 200)?,
            output_dir,
            work_dir,
            datetime_format: text("datetime-format", "%Y-%m-%d_%H"),
            filename_format: text("filename-format", "<TOPIC>.<HOST><REV>.<DATETIME>.log"),
            host_identifier: text("host-identifier", ""),
            gzip_level: (values.bool("gzip") == Some(true))
                .then_some(gzip_level.unsigned_abs() as u32),
            skip_empty_files: values.bool("skip-empty-files") == Some(true),
            rotate_size: rotate_size.unsigned_abs(),
            rotate_interval: values.duration("rotate-interval").filter(|d| !d.is_zero()),
            sync_interval,
            http_timeout: duration("http-client-request-timeout", Duration::from_secs(5)),
        };
        // Upstream finds a bad format only when a topic's logger is created; check it now.
        options.filename_format_for("t", "h", 1)?;
        Ok(options)
    }

    /// Upstream `computeFilenameFormat`: the name template of `topic`'s files, with
    /// `<TOPIC>`, `<HOST>` and `<PID>` replaced, `<REV>` kept only when revisions are
    /// needed, and `.gz` appended for gzip.
    ///
    /// # Errors
    /// `<REV>` missing while gzip, rotation or a work directory needs it.
    pub fn filename_format_for(&self, topic: &str, host: &str, pid: u32) -> Result<String, String> {
        let short_host = host.split('.').next().unwrap_or(host);
        let identifier = if self.host_identifier.is_empty() {
            short_host.to_owned()
        } else {
            self.host_identifier
                .replace("<SHORT_HOST>", short_host)
                .replace("<HOSTNAME>", host)
        };
        let needs_rev = self.gzip_level.is_some()
            || self.rotate_size > 0
            || self.rotate_interval.is_some()
            || self.work_dir != self.output_dir;
        let mut format = self.filename_format.clone();
        if needs_rev {
            if !format.contains("<REV>") {
                return Err(
                    "missing <REV> in --filename-format when gzip, rotation, or work dir enabled"
                        .into(),
                );
            }
        } else {
            format = format.replace("<REV>", "");
        }
        format = format
            .replace("<TOPIC>", topic)
            .replace("<HOST>", &identifier)
            .replace("<PID>", &pid.to_string());
        if self.gzip_level.is_some() && !format.ends_with(".gz") {
            format.push_str(".gz");
        }
        Ok(format)
    }

    fn allows(&self, topic: &str) -> bool {
        self.topic_pattern
            .as_ref()
            .is_none_or(|re| re.is_match(topic))
    }
}

/// Runs `nsq_to_file`.
///
/// # Errors
/// Bad flags, an unreachable server, or a file that cannot be written.
pub fn run(values: &Values, signals: &Signals) -> Result<(), String> {
    let source = Source::from_values(values)?;
    let options = Arc::new(Options::from_values(values)?);
    let mut opts = ClientOpts::new("nsq_to_file", values.all("consumer-opt"))?;
    opts.config.max_in_flight = options.max_in_flight;
    let discover = options.topics.is_empty();
    let initial = if discover {
        lookupd_topics(&source.lookupd, options.http_timeout)?
    } else {
        if let Some(first) = options.topics.first() {
            source.preflight(first, &opts.config)?;
        }
        options.topics.clone()
    };
    let mut discoverer = Discoverer {
        options,
        source,
        opts,
        loggers: BTreeMap::new(),
        failure: Arc::new(Mutex::new(None)),
    };
    discoverer.update_topics(&initial)?;
    let result = discoverer.watch(signals, discover);
    discoverer.stop();
    result
}

/// Upstream `GetLookupdTopics`: the union of every lookupd's `/topics`.
///
/// # Errors
/// When no lookupd answers.
fn lookupd_topics(lookupds: &[String], timeout: Duration) -> Result<Vec<String>, String> {
    let mut topics = BTreeSet::new();
    let mut errors = Vec::new();
    for addr in lookupds {
        match lookup::http_get(addr, "/topics", timeout)
            .map_err(|e| e.to_string())
            .and_then(|(status, body)| {
                parse_topics(status, &body).map_err(|e| format!("lookupd {addr}: {e}"))
            }) {
            Ok(list) => topics.extend(list),
            Err(err) => errors.push(err),
        }
    }
    if !errors.is_empty() && topics.is_empty() && errors.len() == lookupds.len() {
        return Err(format!(
            "could not retrieve topic list: {}",
            errors.join("; ")
        ));
    }
    for err in errors {
        log::error(&format!("could not retrieve topic list: {err}"));
    }
    Ok(topics.into_iter().collect())
}

/// Parses a `/topics` answer (also the pre-1.0 `{"data": {...}}` shape).
fn parse_topics(status: u16, body: &[u8]) -> Result<Vec<String>, String> {
    if status != 200 {
        return Err(format!(
            "status {status}: {}",
            String::from_utf8_lossy(body).trim()
        ));
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("bad JSON: {e}"))?;
    let value = match value.get("data") {
        Some(data) if data.is_object() => data.clone(),
        _ => value,
    };
    serde_json::from_value::<TopicsResponse>(value)
        .map(|r| r.topics)
        .map_err(|e| format!("bad topics JSON: {e}"))
}

/// One topic's consumer and writer.
struct TopicLogger {
    consumer: Consumer,
    gate: Arc<Gate>,
    tx: Sender<Event>,
    writer: Option<JoinHandle<()>>,
}

/// Upstream `TopicDiscoverer`: the topics being archived.
struct Discoverer {
    options: Arc<Options>,
    source: Source,
    opts: ClientOpts,
    loggers: BTreeMap<String, TopicLogger>,
    failure: Arc<Mutex<Option<String>>>,
}

impl Discoverer {
    fn update_topics(&mut self, topics: &[String]) -> Result<(), String> {
        for topic in topics {
            if self.loggers.contains_key(topic) {
                continue;
            }
            if !self.options.allows(topic) {
                log::debug(&format!("skipping topic {topic} (doesn't match pattern)"));
                continue;
            }
            let logger = self.start(topic)?;
            self.loggers.insert(topic.clone(), logger);
        }
        Ok(())
    }

    fn start(&self, topic: &str) -> Result<TopicLogger, String> {
        let options = &self.options;
        let spec = LoggerSpec {
            file: FileSpec {
                work_dir: options.work_dir.clone(),
                output_dir: options.output_dir.clone(),
                gzip_level: options.gzip_level,
                exclusive: options.gzip_level.is_some() || options.rotate_interval.is_some(),
                rotate_size: options.rotate_size,
            },
            filename_format: options.filename_format_for(topic, &hostname(), std::process::id())?,
            datetime_format: options.datetime_format.clone(),
            max_in_flight: usize::try_from(options.max_in_flight).unwrap_or(usize::MAX),
            sync_interval: options.sync_interval,
            rotate_interval: options.rotate_interval,
            skip_empty_files: options.skip_empty_files,
            label: format!("{topic}/{}", options.channel),
        };
        let consumer = Consumer::new(topic, &options.channel, self.opts.config.clone())
            .map_err(|e| e.to_string())?;
        let gate = Arc::new(Gate::new());
        let (tx, rx) = mpsc::channel();
        let writer = FileLogger::new(spec, gate.clone());
        let failure = self.failure.clone();
        let thread = std::thread::Builder::new()
            .name(format!("to-file {topic}"))
            .spawn(move || {
                if let Err(err) = writer.run(&rx) {
                    let mut slot = failure.lock().unwrap_or_else(PoisonError::into_inner);
                    slot.get_or_insert(err);
                }
            })
            .map_err(|e| format!("starting the writer of {topic}: {e}"))?;
        let (handler_tx, handler_gate) = (tx.clone(), gate.clone());
        consumer.start(move || FileHandler::new(handler_tx.clone(), handler_gate.clone()));
        self.source.attach(&consumer)?;
        Ok(TopicLogger {
            consumer,
            gate,
            tx,
            writer: Some(thread),
        })
    }

    /// Polls signals, failures and (when discovering) the lookupds until it is time to stop.
    fn watch(&mut self, signals: &Signals, discover: bool) -> Result<(), String> {
        let mut next_refresh = Instant::now() + self.options.topic_refresh;
        loop {
            if let Some(err) = self
                .failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
            {
                return Err(err);
            }
            if signals.terminated() {
                return Ok(());
            }
            if signals.take_hup() {
                for logger in self.loggers.values() {
                    let _ = logger.tx.send(Event::Hup);
                }
            }
            if discover && Instant::now() >= next_refresh {
                match lookupd_topics(&self.source.lookupd, self.options.http_timeout) {
                    Ok(topics) => self.update_topics(&topics)?,
                    Err(err) => log::error(&err),
                }
                next_refresh = Instant::now() + self.options.topic_refresh;
            }
            signals.sleep(Duration::from_millis(50));
        }
    }

    /// Drains every topic: refuse new messages, let each writer sync, finish and close, then
    /// close the consumers.
    fn stop(&mut self) {
        for logger in self.loggers.values() {
            logger.gate.close();
            let _ = logger.tx.send(Event::Stop);
        }
        for logger in self.loggers.values_mut() {
            if let Some(thread) = logger.writer.take() {
                let _ = thread.join();
            }
        }
        for logger in self.loggers.values() {
            logger.consumer.request_stop();
        }
        for logger in self.loggers.values() {
            logger.consumer.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::flags::{parse, Parsed};

    fn options(args: &[&str]) -> Result<Options, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match parse(&flags(), &args) {
            Ok(Parsed::Values(v)) => Options::from_values(&v),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn checks_use_upstream_words() {
        assert_eq!(
            options(&["--nsqd-tcp-address=a:1"]).unwrap_err(),
            "--topic or --topic-pattern required"
        );
        assert_eq!(
            options(&["--nsqd-tcp-address=a:1", "--topic-pattern=x"]).unwrap_err(),
            "--lookupd-http-address must be specified when no --topic specified"
        );
        assert_eq!(
            options(&["--topic=t", "--gzip-level=0"]).unwrap_err(),
            "invalid --gzip-level value (0), should be 1-9"
        );
        assert_eq!(
            options(&["--topic=t", "--gzip", "--filename-format=<TOPIC>.log"]).unwrap_err(),
            "missing <REV> in --filename-format when gzip, rotation, or work dir enabled"
        );
        assert!(options(&["--topic=t", "--topic-pattern=("]).is_err());
        assert_eq!(
            options(&["--topic=t", "--channel="]).unwrap_err(),
            "--channel is required"
        );
    }

    #[test]
    fn filename_formats_expand_as_upstream() {
        let plain = options(&["--topic=t"]).unwrap();
        assert_eq!(plain.work_dir, plain.output_dir);
        assert_eq!(
            plain
                .filename_format_for("orders", "web1.example.com", 7)
                .unwrap(),
            "orders.web1.<DATETIME>.log"
        );
        let gz = options(&[
            "--topic=t",
            "--gzip",
            "--host-identifier=<SHORT_HOST>-<HOSTNAME>",
            "--filename-format=<TOPIC>/<PID>.<HOST><REV>.<DATETIME>",
        ])
        .unwrap();
        assert_eq!(
            gz.filename_format_for("orders", "web1.example.com", 7)
                .unwrap(),
            "orders/7.web1-web1.example.com<REV>.<DATETIME>.gz"
        );
        let sized = options(&["--topic=t", "--rotate-size=10", "--work-dir=/w"]).unwrap();
        assert!(sized
            .filename_format_for("t", "h", 1)
            .unwrap()
            .contains("<REV>"));
    }

    #[test]
    fn patterns_filter_topics_and_lookupd_answers_parse() {
        let opts = options(&["--topic=t", "--topic-pattern=^ord"]).unwrap();
        assert!(opts.allows("orders") && !opts.allows("words"));
        assert_eq!(
            parse_topics(200, br#"{"topics":["a","b"]}"#).unwrap(),
            ["a", "b"]
        );
        assert_eq!(
            parse_topics(200, br#"{"status_code":200,"data":{"topics":["c"]}}"#).unwrap(),
            ["c"]
        );
        assert!(parse_topics(500, b"{}").is_err());
    }
}
