//! `sluice to-http` (upstream `nsq_to_http`): send every message of a topic to HTTP
//! endpoints, as a `POST` body or as the `%s` of a `GET` URL, from `-n` concurrent workers.
//! A message is finished when the request succeeds (2xx for POST, 200 for GET) and requeued,
//! never dropped, when it fails.
//!
//! Mirrors `apps/nsq_to_http/nsq_to_http.go` and `http.go`: the same flags, defaults and
//! checks; `--mode` `hostpool` (default; `epsilon-greedy` is the same pool here),
//! `round-robin` or the deprecated `multicast` (every address); `--sample`; custom
//! `--header key: value`; [`TimerMetrics`] lines every `--status-every` requests. A failed
//! request is requeued with go-nsq's delay (`default_requeue_delay` × attempts, capped at
//! `max_requeue_delay`; both settable with `--consumer-opt`). Differences: go-nsq gives up on
//! a message after 5 attempts and finishes it unsent (`max_attempts`); here it is retried
//! until it succeeds. go-nsq also pauses the whole consumer after failures (backoff); here
//! only the failed messages wait. An unknown `--mode` is an error (upstream silently falls
//! back to multicast).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_proto::MessageId;

use crate::apps::flags::{Flag, Kind, Values};
use crate::apps::gate::Gate;
use crate::apps::hostpool::HostPool;
use crate::apps::http_client::{HttpClient, Url};
use crate::apps::log;
use crate::apps::signals::Signals;
use crate::apps::source::{consumer_flags, flag, max_in_flight, ClientOpts, Source};
use crate::apps::timer_metrics::TimerMetrics;
use crate::{Consumer, Disposition, Handler, Message, Responder};

const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// The flag table.
pub fn flags() -> Vec<Flag> {
    let mut table = consumer_flags("200");
    table.extend([
        flag("topic", Kind::Str, "", "nsq topic"),
        flag("channel", Kind::Str, "nsq_to_http", "nsq channel"),
        flag("n", Kind::Int, "100", "number of concurrent publishers"),
        flag("mode", Kind::Str, "hostpool", "the upstream request mode options: multicast, round-robin, hostpool (default), epsilon-greedy"),
        flag("sample", Kind::Float, "1", "% of messages to publish (float b/w 0 -> 1)"),
        flag("http-client-connect-timeout", Kind::Duration, "2s", "timeout for HTTP connect"),
        flag("http-client-request-timeout", Kind::Duration, "20s", "timeout for HTTP request"),
        flag("status-every", Kind::Int, "250", "the # of requests between logging status (per handler), 0 disables"),
        flag("content-type", Kind::Str, DEFAULT_CONTENT_TYPE, "the Content-Type used for POST requests"),
        flag("header", Kind::List, "", "Custom header for HTTP requests (may be given multiple times)"),
        flag("post", Kind::List, "", "HTTP address to make a POST request to.  data will be in the body (may be given multiple times)"),
        flag("get", Kind::List, "", "HTTP address to make a GET request to. '%s' will be printf replaced with data (may be given multiple times)"),
    ]);
    table
}

/// How a message picks its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every address, in turn (deprecated upstream).
    Multicast,
    /// The next address in turn.
    RoundRobin,
    /// go-hostpool: the next healthy address.
    HostPool,
}

impl Mode {
    /// Parses `--mode`.
    ///
    /// # Errors
    /// An unknown mode.
    pub fn parse(text: &str) -> Result<Mode, String> {
        match text {
            "multicast" => {
                log::warn("multicast mode is deprecated in favor of using separate nsq_to_http on different channels (and will be dropped in a future release)");
                Ok(Mode::Multicast)
            }
            "round-robin" => Ok(Mode::RoundRobin),
            "hostpool" | "epsilon-greedy" => Ok(Mode::HostPool),
            other => Err(format!(
                "invalid --mode {other:?} (round-robin, hostpool, epsilon-greedy, multicast)"
            )),
        }
    }
}

/// The endpoints and how requests are made.
struct Endpoints {
    post: bool,
    /// For GET, the URL text with `%s`; for POST, the URL.
    addresses: Vec<String>,
    urls: Vec<Url>,
    headers: Vec<(String, String)>,
    mode: Mode,
    pool: Mutex<HostPool>,
    counter: AtomicU64,
    per_address: Vec<TimerMetrics>,
    aggregate: TimerMetrics,
}

/// Runs `nsq_to_http`.
///
/// # Errors
/// Bad flags or an unreachable server.
pub fn run(values: &Values, signals: &Signals) -> Result<(), String> {
    let topic = values.get("topic").unwrap_or_default();
    let channel = values.get("channel").unwrap_or("nsq_to_http");
    if topic.is_empty() || channel.is_empty() {
        return Err("--topic and --channel are required".into());
    }
    let endpoints = Arc::new(endpoints(values)?);
    let source = Source::from_values(values)?;
    let sample = values.float("sample").unwrap_or(1.0);
    if !(0.0..=1.0).contains(&sample) {
        return Err("ERROR: --sample must be between 0.0 and 1.0".into());
    }
    let workers = match values.int("n").unwrap_or(100) {
        n if n >= 1 => usize::try_from(n).unwrap_or(usize::MAX).min(10_000),
        n => return Err(format!("-n must be at least 1 (got {n})")),
    };
    let mut opts = ClientOpts::new("nsq_to_http", values.all("consumer-opt"))?;
    opts.config.max_in_flight = max_in_flight(values, 200)?;
    let timeouts = (
        values
            .duration("http-client-connect-timeout")
            .unwrap_or(Duration::from_secs(2)),
        values
            .duration("http-client-request-timeout")
            .unwrap_or(Duration::from_secs(20)),
    );
    source.preflight(topic, &opts.config)?;

    let gate = Arc::new(Gate::new());
    let (tx, rx) = mpsc::channel::<Job>();
    let stop = Arc::new(AtomicBool::new(false));
    let pool = WorkerPool {
        rx: Arc::new(Mutex::new(rx)),
        endpoints,
        gate: gate.clone(),
        opts: Arc::new(opts.clone()),
        stop: stop.clone(),
        timeouts,
    };
    let threads = (0..workers)
        .map(|i| pool.spawn(i))
        .collect::<Result<Vec<_>, String>>()?;
    let consumer = Consumer::new(topic, channel, opts.config.clone()).map_err(|e| e.to_string())?;
    let handler_gate = gate.clone();
    let seed = std::process::id();
    consumer.start(move || PostHandler {
        tx: tx.clone(),
        gate: handler_gate.clone(),
        sample,
        rng: seed_rng(seed),
    });
    source.attach(&consumer)?;
    while !signals.sleep(Duration::from_secs(3600)) {}
    // Drain: refuse new messages, let the workers answer what they hold, then close.
    gate.close();
    if !gate.wait_drained(timeouts.0 + timeouts.1 * 2) {
        log::warn(&format!(
            "{} messages still in progress at exit (the broker redelivers them)",
            gate.outstanding()
        ));
    }
    stop.store(true, Ordering::SeqCst);
    for thread in threads {
        let _ = thread.join();
    }
    consumer.stop();
    Ok(())
}

/// Reads and checks the endpoint flags (upstream's order and words).
fn endpoints(values: &Values) -> Result<Endpoints, String> {
    let (post, get) = (values.all("post"), values.all("get"));
    let content_type = values.get("content-type").unwrap_or(DEFAULT_CONTENT_TYPE);
    if content_type != DEFAULT_CONTENT_TYPE {
        if post.is_empty() {
            return Err("--content-type only used with --post".into());
        }
        if content_type.is_empty() {
            return Err("--content-type requires a value when used".into());
        }
    }
    if get.is_empty() && post.is_empty() {
        return Err("--get or --post required".into());
    }
    if !get.is_empty() && !post.is_empty() {
        return Err("use --get or --post not both".into());
    }
    if get.iter().any(|g| g.matches("%s").count() != 1) {
        return Err("invalid GET address - must be a printf string".into());
    }
    let mut headers = parse_custom_headers(values.all("header"))
        .map_err(|_| "--header value format should be 'key=value'".to_owned())?;
    let is_post = !post.is_empty();
    if is_post {
        headers.insert(0, ("Content-Type".to_owned(), content_type.to_owned()));
    }
    let addresses: Vec<String> = if is_post { post.to_vec() } else { get.to_vec() };
    let urls = addresses
        .iter()
        .map(|a| Url::parse(&a.replace("%s", "")))
        .collect::<Result<Vec<_>, String>>()?;
    let mode = Mode::parse(values.get("mode").unwrap_or("hostpool"))?;
    let every = values
        .int("status-every")
        .unwrap_or(250)
        .max(0)
        .unsigned_abs() as usize;
    // With one address its own line would repeat the aggregate: upstream disables it.
    let per_address = addresses
        .iter()
        .map(|a| {
            TimerMetrics::new(
                if addresses.len() == 1 { 0 } else { every },
                &format!("[{a}]:"),
            )
        })
        .collect();
    Ok(Endpoints {
        post: is_post,
        pool: Mutex::new(HostPool::new(addresses.len())),
        addresses,
        urls,
        headers,
        mode,
        counter: AtomicU64::new(0),
        per_address,
        aggregate: TimerMetrics::new(every, "[aggregate]:"),
    })
}

/// Upstream `parseCustomHeaders`: `key: value`, both parts non-empty after trimming.
///
/// # Errors
/// The first header that does not fit.
pub fn parse_custom_headers(headers: &[String]) -> Result<Vec<(String, String)>, String> {
    headers
        .iter()
        .map(|header| {
            let (key, value) = header
                .split_once(':')
                .ok_or_else(|| format!("Invalid header: {header:?}"))?;
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty()
                || value.is_empty()
                || key.contains(['\r', '\n'])
                || value.contains(['\r', '\n'])
            {
                return Err(format!("Invalid header: {header:?}"));
            }
            Ok((key.to_owned(), value.to_owned()))
        })
        .collect()
}

/// Go's `url.QueryEscape`: unreserved bytes kept, space as `+`, the rest `%XX`.
///
/// # Examples
/// ```
/// assert_eq!(sluice_client::apps::to_http::query_escape(b"a b&c~"), "a+b%26c~");
/// ```
pub fn query_escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &byte in bytes {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// A message on its way to an endpoint.
struct Job {
    id: MessageId,
    attempts: u16,
    body: Bytes,
    responder: Responder,
}

/// One connection's handler: samples, then hands the message to the workers.
struct PostHandler {
    tx: Sender<Job>,
    gate: Arc<Gate>,
    sample: f64,
    rng: u64,
}

impl Handler for PostHandler {
    fn handle_message(&mut self, msg: &Message, responder: &Responder) -> Disposition {
        if self.sample < 1.0 && next_unit(&mut self.rng) > self.sample {
            return Disposition::Finish;
        }
        let tx = &self.tx;
        self.gate.admit(|| {
            tx.send(Job {
                id: msg.id,
                attempts: msg.attempts,
                body: msg.body.clone(),
                responder: responder.clone(),
            })
            .is_ok()
        })
    }
}

fn seed_rng(seed: u32) -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(seed) | 1
}

/// xorshift64*: a uniform number in [0, 1).
fn next_unit(state: &mut u64) -> f64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    let x = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// What every worker shares.
#[derive(Clone)]
struct WorkerPool {
    rx: Arc<Mutex<Receiver<Job>>>,
    endpoints: Arc<Endpoints>,
    gate: Arc<Gate>,
    opts: Arc<ClientOpts>,
    stop: Arc<AtomicBool>,
    timeouts: (Duration, Duration),
}

impl WorkerPool {
    fn spawn(&self, index: usize) -> Result<JoinHandle<()>, String> {
        let pool = self.clone();
        std::thread::Builder::new()
            .name(format!("to-http {index}"))
            .stack_size(256 * 1024)
            .spawn(move || pool.work())
            .map_err(|e| format!("starting worker {index}: {e}"))
    }

    fn work(&self) {
        let user_agent = self.opts.config.user_agent.clone();
        let mut client = HttpClient::new(self.timeouts.0, self.timeouts.1, &user_agent);
        loop {
            let job = {
                let rx = self.rx.lock().unwrap_or_else(PoisonError::into_inner);
                rx.recv_timeout(Duration::from_millis(100))
            };
            match job {
                Ok(job) => self.handle(&mut client, job),
                Err(RecvTimeoutError::Timeout) if !self.stop.load(Ordering::SeqCst) => {}
                Err(_) => return,
            }
        }
    }

    fn handle(&self, client: &mut HttpClient, job: Job) {
        let start = Instant::now();
        let result = self.publish(client, &job.body);
        let answered = match &result {
            Ok(()) => {
                self.endpoints.aggregate.status(start.elapsed());
                job.responder.finish(job.id)
            }
            Err(err) => {
                let delay = self.opts.requeue_delay(job.attempts);
                log::warn(&format!(
                    "message {} attempt {} failed: {err} (requeued for {delay:?})",
                    job.id, job.attempts
                ));
                job.responder.requeue(job.id, delay)
            }
        };
        if let Err(err) = answered {
            log::warn(&format!(
                "message {} not answered (the broker redelivers it): {err}",
                job.id
            ));
        }
        self.gate.answered(1);
    }

    /// Sends `body` as the mode says.
    fn publish(&self, client: &mut HttpClient, body: &[u8]) -> Result<(), String> {
        let ep = &self.endpoints;
        let count = ep.addresses.len().max(1);
        match ep.mode {
            Mode::Multicast => {
                for index in 0..ep.addresses.len() {
                    self.publish_to(client, index, body)?;
                }
                Ok(())
            }
            Mode::RoundRobin => {
                let n = ep.counter.fetch_add(1, Ordering::Relaxed) + 1;
                self.publish_to(client, (n % count as u64) as usize, body)
            }
            Mode::HostPool => {
                let index = ep
                    .pool
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(Instant::now());
                let result = self.publish_to(client, index, body);
                ep.pool.lock().unwrap_or_else(PoisonError::into_inner).mark(
                    index,
                    result.is_ok(),
                    Instant::now(),
                );
                result
            }
        }
    }

    fn publish_to(&self, client: &mut HttpClient, index: usize, body: &[u8]) -> Result<(), String> {
        let ep = &self.endpoints;
        let (Some(address), Some(url)) = (ep.addresses.get(index), ep.urls.get(index)) else {
            return Err(format!("no address {index}"));
        };
        let start = Instant::now();
        let response = if ep.post {
            let response = client.request("POST", url, &ep.headers, Some(body))?;
            if !(200..300).contains(&response.status) {
                return Err(format!("got status code {}", response.status));
            }
            response
        } else {
            let endpoint = Url::parse(&address.replacen("%s", &query_escape(body), 1))?;
            let response = client.request("GET", &endpoint, &ep.headers, None)?;
            if response.status != 200 {
                return Err(format!("got status code {}", response.status));
            }
            response
        };
        drop(response);
        if let Some(metrics) = ep.per_address.get(index) {
            metrics.status(start.elapsed());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_headers_parse_as_upstream() {
        let ok: Vec<String> = ["header1: value1", "header2:value2"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            parse_custom_headers(&ok).unwrap(),
            [
                ("header1".to_owned(), "value1".to_owned()),
                ("header2".to_owned(), "value2".to_owned())
            ]
        );
        for bad in ["header1:", ": value2", ":", "nocolon"] {
            assert!(parse_custom_headers(&[bad.to_owned()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn modes_and_sampling() {
        assert_eq!(Mode::parse("epsilon-greedy"), Ok(Mode::HostPool));
        assert_eq!(Mode::parse("round-robin"), Ok(Mode::RoundRobin));
        assert!(Mode::parse("random").is_err());
        let mut rng = seed_rng(7);
        let draws: Vec<f64> = (0..1000).map(|_| next_unit(&mut rng)).collect();
        assert!(draws.iter().all(|x| (0.0..1.0).contains(x)));
        let below = draws.iter().filter(|x| **x < 0.5).count();
        assert!((400..600).contains(&below), "{below}");
    }

    #[test]
    fn query_escape_matches_go() {
        assert_eq!(query_escape(b"{\"a\":1}"), "%7B%22a%22%3A1%7D");
        assert_eq!(query_escape("é".as_bytes()), "%C3%A9");
    }
}
