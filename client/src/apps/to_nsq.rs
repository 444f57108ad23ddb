//! `sluice to-nsq` (upstream `nsq_to_nsq`): relay topics to brokers of another cluster,
//! optionally passing only JSON messages with a required field (and value) and keeping only
//! whitelisted fields.
//!
//! Mirrors `apps/nsq_to_nsq/nsq_to_nsq.go`: one consumer per `--topic`, published to
//! `--destination-topic` (default: the consumed topic) on one of the
//! `--destination-nsqd-tcp-address` brokers chosen by `--mode` (`hostpool`, default, or
//! `round-robin`); a message is finished once the destination acknowledged it and requeued
//! when it refused or could not be reached. Each destination has one publisher thread that
//! pipelines the messages waiting for it (one round trip per batch, not per message).
//! Differences: a message the filter rejects is finished (not forwarded) in every case;
//! upstream requeues it forever when the required field is missing and a value is required,
//! or when a whitelist meets JSON that is not an object. go-nsq's `max_attempts` (give up
//! and finish unsent after 5 attempts) does not apply: a message is retried until relayed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Map, Value};
use sluice_proto::names::{is_valid_channel_name, is_valid_topic_name};
use sluice_proto::MessageId;

use crate::apps::flags::{Flag, Kind, Values};
use crate::apps::gate::{finish_grouped, Gate};
use crate::apps::hostpool::HostPool;
use crate::apps::log;
use crate::apps::signals::Signals;
use crate::apps::source::{consumer_flags, flag, max_in_flight, ClientOpts, Source};
use crate::apps::timer_metrics::TimerMetrics;
use crate::{Consumer, Disposition, Handler, Message, Producer, Responder};

/// The most messages one publisher sends before waiting for their acknowledgements.
const BATCH_MAX: usize = 256;

/// The flag table.
pub fn flags() -> Vec<Flag> {
    let mut table = consumer_flags("200");
    table.extend([
        flag("topic", Kind::List, "", "nsq topic (may be given multiple times)"),
        flag("channel", Kind::Str, "nsq_to_nsq", "nsq channel"),
        flag("destination-topic", Kind::Str, "", "use this destination topic for all consumed topics (default is consumed topic name)"),
        flag("destination-nsqd-tcp-address", Kind::List, "", "destination nsqd TCP address (may be given multiple times)"),
        flag("producer-opt", Kind::List, "", "option to passthrough to nsq.Producer (may be given multiple times, see http://godoc.org/github.com/nsqio/go-nsq#Config)"),
        flag("status-every", Kind::Int, "250", "the # of requests between logging status (per destination), 0 disables"),
        flag("mode", Kind::Str, "hostpool", "the upstream request mode options: round-robin, hostpool (default), epsilon-greedy"),
        flag("require-json-field", Kind::Str, "", "for JSON messages: only pass messages that contain this field"),
        flag("require-json-value", Kind::Str, "", "for JSON messages: only pass messages in which the required field has this value"),
        flag("whitelist-json-field", Kind::List, "", "for JSON messages: pass this field (may be given multiple times)"),
    ]);
    table
}

/// The JSON filter of `--require-json-field`, `--require-json-value` and
/// `--whitelist-json-field`. Pure.
#[derive(Debug, Clone, Default)]
pub struct JsonFilter {
    require_field: String,
    require_value: String,
    whitelist: Vec<String>,
}

/// What the filter decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Forward this body.
    Pass(Bytes),
    /// Do not forward (the reason, for the log).
    Skip(String),
}

impl JsonFilter {
    /// A filter from the three flags.
    pub fn new(require_field: &str, require_value: &str, whitelist: &[String]) -> JsonFilter {
        JsonFilter {
            require_field: require_field.to_owned(),
            require_value: require_value.to_owned(),
            whitelist: whitelist.to_vec(),
        }
    }

    /// Applies the filter to one body.
    ///
    /// # Examples
    /// ```
    /// use sluice_client::apps::to_nsq::{JsonFilter, Verdict};
    /// let filter = JsonFilter::new("kind", "click", &["kind".into(), "n".into()]);
    /// let body = bytes::Bytes::from_static(br#"{"n":2.0,"kind":"click","x":[1]}"#);
    /// assert_eq!(filter.apply(&body), Verdict::Pass(br#"{"kind":"click","n":2}"#.to_vec().into()));
    /// assert!(matches!(filter.apply(&br#"{"kind":"view"}"#.to_vec().into()), Verdict::Skip(_)));
    /// ```
    pub fn apply(&self, body: &Bytes) -> Verdict {
        if self.require_field.is_empty() && self.whitelist.is_empty() {
            return Verdict::Pass(body.clone());
        }
        let Ok(json) = serde_json::from_slice::<Value>(body) else {
            return Verdict::Skip(format!(
                "Unable to decode json: {}",
                String::from_utf8_lossy(body)
            ));
        };
        if let Some(reason) = self.rejects(&json) {
            return Verdict::Skip(reason);
        }
        if self.whitelist.is_empty() {
            return Verdict::Pass(body.clone());
        }
        let Some(object) = json.as_object() else {
            return Verdict::Skip("json is not an object".into());
        };
        Verdict::Pass(whitelisted(object, &self.whitelist))
    }

    /// Upstream `shouldPassMessage`: why the message does not pass, if it does not.
    fn rejects(&self, json: &Value) -> Option<String> {
        if self.require_field.is_empty() {
            return None;
        }
        let Some(value) = json.get(&self.require_field) else {
            return Some(if self.require_value.is_empty() {
                format!("no field {:?}", self.require_field)
            } else {
                "missing field to check required value".to_owned()
            });
        };
        if self.require_value.is_empty() {
            return None;
        }
        // A string compares as text; otherwise both must be numbers (compared as floats).
        let matches = match value {
            Value::String(text) => *text == self.require_value,
            Value::Number(number) => match (number.as_f64(), self.require_value.parse::<f64>()) {
                (Some(found), Ok(wanted)) => found == wanted,
                _ => false,
            },
            _ => false,
        };
        (!matches).then(|| {
            format!(
                "field {:?} is not {:?}",
                self.require_field, self.require_value
            )
        })
    }
}

/// The whitelisted fields as a JSON object with sorted keys (Go's `json.Marshal` of a map),
/// integral floats written as integers (upstream's "avoid printing int as float").
fn whitelisted(object: &Map<String, Value>, whitelist: &[String]) -> Bytes {
    let mut kept = BTreeMap::new();
    for key in whitelist {
        if let Some(value) = object.get(key) {
            let value = match value.as_f64() {
                Some(f)
                    if !value.is_i64()
                        && !value.is_u64()
                        && f.fract() == 0.0
                        && f.abs() < 9.0e15 =>
                {
                    Value::from(f as i64)
                }
                _ => value.clone(),
            };
            kept.insert(key.as_str(), value);
        }
    }
    Bytes::from(serde_json::to_vec(&kept).unwrap_or_default())
}

/// The checked flags.
struct Settings<'a> {
    topics: &'a [String],
    channel: &'a str,
    destination_topic: &'a str,
    destinations: &'a [String],
    round_robin: bool,
    source: Source,
    consumer: ClientOpts,
    producer: ClientOpts,
    status_every: usize,
}

impl<'a> Settings<'a> {
    /// Upstream's checks, in its order and words.
    fn from_values(values: &'a Values) -> Result<Settings<'a>, String> {
        let topics = values.all("topic");
        let channel = values.get("channel").unwrap_or("nsq_to_nsq");
        if topics.is_empty() || channel.is_empty() {
            return Err("--topic and --channel are required".into());
        }
        if topics.iter().any(|t| !is_valid_topic_name(t)) {
            return Err("--topic is invalid".into());
        }
        let destination_topic = values.get("destination-topic").unwrap_or_default();
        if !destination_topic.is_empty() && !is_valid_topic_name(destination_topic) {
            return Err("--destination-topic is invalid".into());
        }
        if !is_valid_channel_name(channel) {
            return Err("--channel is invalid".into());
        }
        let source = Source::from_values(values)?;
        let destinations = values.all("destination-nsqd-tcp-address");
        if destinations.is_empty() {
            return Err("--destination-nsqd-tcp-address required".into());
        }
        let round_robin = match values.get("mode").unwrap_or("hostpool") {
            "round-robin" => true,
            "hostpool" | "epsilon-greedy" => false,
            other => {
                return Err(format!(
                    "invalid --mode {other:?} (round-robin, hostpool, epsilon-greedy)"
                ))
            }
        };
        let mut consumer = ClientOpts::new("nsq_to_nsq", values.all("consumer-opt"))?;
        consumer.config.max_in_flight = max_in_flight(values, 200)?;
        Ok(Settings {
            topics,
            channel,
            destination_topic,
            destinations,
            round_robin,
            source,
            consumer,
            producer: ClientOpts::new("nsq_to_nsq", values.all("producer-opt"))?,
            status_every: values
                .int("status-every")
                .unwrap_or(250)
                .max(0)
                .unsigned_abs() as usize,
        })
    }
}

/// Runs `nsq_to_nsq`.
///
/// # Errors
/// Bad flags or an unreachable server.
pub fn run(values: &Values, signals: &Signals) -> Result<(), String> {
    let settings = Settings::from_values(values)?;
    if let Some(first) = settings.topics.first() {
        settings
            .source
            .preflight(first, &settings.consumer.config)?;
    }
    let gate = Arc::new(Gate::new());
    let stop = Arc::new(AtomicBool::new(false));
    let pool = Arc::new(Mutex::new(HostPool::new(settings.destinations.len())));
    let (senders, threads) = start_publishers(&settings, &gate, &stop, &pool)?;
    let router = Arc::new(Router {
        senders,
        round_robin: settings.round_robin,
        counter: AtomicU64::new(0),
        pool,
        filter: JsonFilter::new(
            values.get("require-json-field").unwrap_or_default(),
            values.get("require-json-value").unwrap_or_default(),
            values.all("whitelist-json-field"),
        ),
        gate: gate.clone(),
    });
    let mut consumers = Vec::new();
    for topic in settings.topics {
        let consumer = Consumer::new(topic, settings.channel, settings.consumer.config.clone())
            .map_err(|e| e.to_string())?;
        let target: Arc<str> = Arc::from(match settings.destination_topic {
            "" => topic.as_str(),
            other => other,
        });
        let router = router.clone();
        consumer.start(move || RelayHandler {
            router: router.clone(),
            topic: target.clone(),
        });
        settings.source.attach(&consumer)?;
        consumers.push(consumer);
    }
    while !signals.sleep(Duration::from_secs(3600)) {}
    // Drain: refuse new messages, let the publishers answer what they hold, then close.
    gate.close();
    if !gate.wait_drained(Duration::from_secs(30)) {
        log::warn(&format!(
            "{} messages still in progress at exit (the broker redelivers them)",
            gate.outstanding()
        ));
    }
    stop.store(true, Ordering::SeqCst);
    for thread in threads {
        let _ = thread.join();
    }
    for consumer in &consumers {
        consumer.request_stop();
    }
    for consumer in &consumers {
        consumer.stop();
    }
    Ok(())
}

type Started = (Vec<Sender<Job>>, Vec<JoinHandle<()>>);

/// Connects to every destination and starts its publisher thread.
fn start_publishers(
    settings: &Settings<'_>,
    gate: &Arc<Gate>,
    stop: &Arc<AtomicBool>,
    pool: &Arc<Mutex<HostPool>>,
) -> Result<Started, String> {
    let every = settings.status_every;
    let aggregate = Arc::new(TimerMetrics::new(every, "[aggregate]:"));
    let mut senders = Vec::new();
    let mut threads = Vec::new();
    for (index, addr) in settings.destinations.iter().enumerate() {
        let producer = Producer::connect(addr, &settings.producer.config)
            .map_err(|e| format!("failed creating producer {e}"))?;
        let (tx, rx) = mpsc::channel();
        // With one destination its own line would repeat the aggregate: upstream disables it.
        let own_every = if settings.destinations.len() == 1 {
            0
        } else {
            every
        };
        let publisher = Publisher {
            producer,
            rx,
            gate: gate.clone(),
            stop: stop.clone(),
            opts: settings.consumer.clone(),
            metrics: TimerMetrics::new(own_every, &format!("[{addr}]:")),
            aggregate: aggregate.clone(),
            index,
            pool: (!settings.round_robin).then(|| pool.clone()),
        };
        senders.push(tx);
        threads.push(publisher.spawn(addr)?);
    }
    Ok((senders, threads))
}

/// A message on its way to a destination.
struct Job {
    topic: Arc<str>,
    id: MessageId,
    attempts: u16,
    body: Bytes,
    responder: Responder,
    start: Instant,
}

/// Shared by every handler: the filter and the choice of destination.
struct Router {
    senders: Vec<Sender<Job>>,
    round_robin: bool,
    counter: AtomicU64,
    pool: Arc<Mutex<HostPool>>,
    filter: JsonFilter,
    gate: Arc<Gate>,
}

impl Router {
    fn destination(&self) -> usize {
        let count = self.senders.len().max(1);
        if self.round_robin {
            let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
            (n % count as u64) as usize
        } else {
            self.pool
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(Instant::now())
        }
    }
}

struct RelayHandler {
    router: Arc<Router>,
    topic: Arc<str>,
}

impl Handler for RelayHandler {
    fn handle_message(&mut self, msg: &Message, responder: &Responder) -> Disposition {
        let body = match self.router.filter.apply(&msg.body) {
            Verdict::Pass(body) => body,
            Verdict::Skip(reason) => {
                log::debug(&format!("message {} not relayed: {reason}", msg.id));
                return Disposition::Finish;
            }
        };
        let destination = self.router.destination();
        let Some(tx) = self.router.senders.get(destination) else {
            return Disposition::Requeue(None);
        };
        let topic = &self.topic;
        self.router.gate.admit(|| {
            tx.send(Job {
                topic: topic.clone(),
                id: msg.id,
                attempts: msg.attempts,
                body,
                responder: responder.clone(),
                start: Instant::now(),
            })
            .is_ok()
        })
    }
}

/// One destination's publisher thread.
struct Publisher {
    producer: Producer,
    rx: Receiver<Job>,
    gate: Arc<Gate>,
    stop: Arc<AtomicBool>,
    opts: ClientOpts,
    /// This destination's line every `--status-every` requests.
    metrics: TimerMetrics,
    aggregate: Arc<TimerMetrics>,
    /// This destination's place in the host pool (`None` in round-robin mode).
    index: usize,
    pool: Option<Arc<Mutex<HostPool>>>,
}

impl Publisher {
    fn spawn(self, addr: &str) -> Result<JoinHandle<()>, String> {
        std::thread::Builder::new()
            .name(format!("to-nsq {addr}"))
            .spawn(move || self.run())
            .map_err(|e| format!("starting the publisher for {addr}: {e}"))
    }

    fn run(mut self) {
        loop {
            let first = match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) if !self.stop.load(Ordering::SeqCst) => {
                    // Keeps the connection answering heartbeats while idle.
                    let _ = self.producer.poll_acks();
                    continue;
                }
                Err(_) => return,
            };
            let mut batch = vec![first];
            while batch.len() < BATCH_MAX {
                match self.rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.publish(batch);
        }
    }

    /// Pipelines the batch, waits for the answers, finishes what was acknowledged and
    /// requeues the rest.
    fn publish(&mut self, batch: Vec<Job>) {
        let before = self.producer.acked();
        let mut result = Ok(());
        for job in &batch {
            result = self.producer.send_pub(&job.topic, &job.body);
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            result = self.producer.wait_all();
        }
        let acked = usize::try_from(self.producer.acked() - before)
            .unwrap_or(usize::MAX)
            .min(batch.len());
        let (done, failed) = batch.split_at(acked);
        let ok = result.is_ok();
        for job in done {
            self.metrics.status(job.start.elapsed());
            self.aggregate.status(job.start.elapsed());
        }
        for (err, count) in finish_grouped(done.iter().map(|job| (&job.responder, job.id))) {
            log::warn(&format!(
                "{count} relayed messages not finished (the broker redelivers them): {err}"
            ));
        }
        if let Err(err) = &result {
            log::error(&format!("publishing to {}: {err}", self.producer.addr()));
        }
        for job in failed {
            let delay = self.opts.requeue_delay(job.attempts);
            if let Err(err) = job.responder.requeue(job.id, delay) {
                log::warn(&format!(
                    "message {} not requeued (the broker redelivers it): {err}",
                    job.id
                ));
            }
        }
        if let Some(pool) = &self.pool {
            pool.lock().unwrap_or_else(PoisonError::into_inner).mark(
                self.index,
                ok,
                Instant::now(),
            );
        }
        self.gate.answered(batch.len() as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(text: &str) -> Bytes {
        Bytes::copy_from_slice(text.as_bytes())
    }

    #[test]
    fn require_field_and_value_compare_strings_and_numbers() {
        let by_field = JsonFilter::new("a", "", &[]);
        assert_eq!(
            by_field.apply(&body(r#"{"a":null}"#)),
            Verdict::Pass(body(r#"{"a":null}"#))
        );
        assert!(matches!(
            by_field.apply(&body(r#"{"b":1}"#)),
            Verdict::Skip(_)
        ));
        assert!(matches!(
            by_field.apply(&body("not json")),
            Verdict::Skip(_)
        ));
        let by_number = JsonFilter::new("a", "2", &[]);
        assert!(matches!(
            by_number.apply(&body(r#"{"a":2.0}"#)),
            Verdict::Pass(_)
        ));
        assert!(matches!(
            by_number.apply(&body(r#"{"a":"2"}"#)),
            Verdict::Pass(_)
        ));
        assert!(matches!(
            by_number.apply(&body(r#"{"a":3}"#)),
            Verdict::Skip(_)
        ));
        assert!(matches!(
            by_number.apply(&body(r#"{"a":true}"#)),
            Verdict::Skip(_)
        ));
        let by_text = JsonFilter::new("a", "x", &[]);
        assert!(matches!(
            by_text.apply(&body(r#"{"a":1}"#)),
            Verdict::Skip(_)
        ));
        assert!(matches!(by_text.apply(&body(r#"[1]"#)), Verdict::Skip(_)));
        let none = JsonFilter::default();
        assert_eq!(none.apply(&body("raw")), Verdict::Pass(body("raw")));
    }

    #[test]
    fn whitelists_keep_sorted_fields_and_integral_numbers_as_integers() {
        let filter = JsonFilter::new("", "", &["z".into(), "a".into(), "missing".into()]);
        assert_eq!(
            filter.apply(&body(r#"{"z":3.0,"a":{"b":1.5},"c":1}"#)),
            Verdict::Pass(body(r#"{"a":{"b":1.5},"z":3}"#))
        );
        assert!(matches!(filter.apply(&body("[1,2]")), Verdict::Skip(_)));
    }
}
