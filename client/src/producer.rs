//! A pipelined producer: `PUB`, `MPUB` and `DPUB` on one connection with up to
//! [`Config::max_pending`] requests awaiting their `OK`.
//!
//! Mirrors go-nsq's `producer.go` (`Publish`, `MultiPublish`, `DeferredPublish` and their
//! `*Async` forms; responses are matched to requests in the order they were sent, as the
//! broker answers a connection's commands in order). Where go-nsq reconnects lazily on the
//! next publish, so does this producer.

use std::collections::VecDeque;
use std::time::Duration;

use sluice_proto::names::is_valid_topic_name;
use sluice_proto::v2::{Frame, OK};
use sluice_proto::Verb;

use crate::config::Config;
use crate::conn::{Conn, ReadOutcome};
use crate::encode::{put_dpub, put_mpub, put_pub, MpubWriter};
use crate::error::{BrokerError, Error};

/// Output buffered beyond this many bytes is written even before the caller flushes.
const AUTO_FLUSH_BYTES: usize = 256 * 1024;

/// A connection to one broker for publishing.
///
/// # Examples
/// ```no_run
/// use sluice_client::{Config, Producer};
/// let mut producer = Producer::connect("127.0.0.1:4150", &Config::default())?;
/// producer.publish("events", b"one")?;
/// producer.multi_publish("events", &[b"two".as_slice(), b"three".as_slice()])?;
/// // Pipelined: several requests in flight, acknowledged in order.
/// for i in 0..1000u32 {
///     producer.send_pub("events", &i.to_be_bytes())?;
/// }
/// producer.wait_all()?;
/// assert_eq!(producer.acked(), 1002);
/// # Ok::<(), sluice_client::Error>(())
/// ```
#[derive(Debug)]
pub struct Producer {
    addr: String,
    config: Config,
    conn: Option<Conn>,
    pending: VecDeque<Verb>,
    frames: Vec<Frame>,
    acked: u64,
    unanswered: u64,
}

impl Producer {
    /// Connects to the broker at `addr` (`host:port`).
    ///
    /// # Errors
    /// As [`Conn::connect`]; [`Error::Usage`] when `config.max_pending` is 0.
    pub fn connect(addr: &str, config: &Config) -> Result<Producer, Error> {
        if config.max_pending == 0 {
            return Err(Error::Usage("max_pending must be at least 1".into()));
        }
        let conn = Conn::connect(addr, config)?;
        Ok(Producer {
            addr: addr.to_owned(),
            config: config.clone(),
            conn: Some(conn),
            pending: VecDeque::with_capacity(config.max_pending),
            frames: Vec::new(),
            acked: 0,
            unanswered: 0,
        })
    }

    /// The broker's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Requests acknowledged with `OK` since this producer was created.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Requests whose fate is unknown: they were pending when a connection failed (the broker
    /// may or may not have taken them).
    pub fn unanswered(&self) -> u64 {
        self.unanswered
    }

    /// Requests sent (or buffered) and not yet answered.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Publishes one message and waits for every pending request's answer.
    ///
    /// # Errors
    /// [`Error::Broker`] when the broker refuses this or an earlier pending request; IO and
    /// framing errors as [`Conn`].
    pub fn publish(&mut self, topic: &str, body: &[u8]) -> Result<(), Error> {
        self.send_pub(topic, body)?;
        self.wait_all()
    }

    /// Publishes several messages in one `MPUB` and waits for every pending answer.
    ///
    /// # Errors
    /// As [`Producer::publish`]; [`Error::Usage`] when `bodies` is empty.
    pub fn multi_publish<B: AsRef<[u8]>>(
        &mut self,
        topic: &str,
        bodies: &[B],
    ) -> Result<(), Error> {
        self.send_mpub(topic, bodies)?;
        self.wait_all()
    }

    /// Publishes one message to be delivered after `delay` and waits for every pending answer.
    ///
    /// # Errors
    /// As [`Producer::publish`].
    pub fn deferred_publish(
        &mut self,
        topic: &str,
        delay: Duration,
        body: &[u8],
    ) -> Result<(), Error> {
        self.send_dpub(topic, delay, body)?;
        self.wait_all()
    }

    /// Sends a `PUB` without waiting for its answer (unless the window is full).
    ///
    /// # Errors
    /// [`Error::InvalidTopic`]; errors of earlier requests read while waiting for room.
    pub fn send_pub(&mut self, topic: &str, body: &[u8]) -> Result<(), Error> {
        check_topic(topic)?;
        put_pub(self.conn()?.out_mut(), topic, body);
        self.sent(Verb::Pub)
    }

    /// Sends an `MPUB` without waiting for its answer (unless the window is full).
    ///
    /// # Errors
    /// As [`Producer::send_pub`]; [`Error::Usage`] when `bodies` is empty.
    pub fn send_mpub<B: AsRef<[u8]>>(&mut self, topic: &str, bodies: &[B]) -> Result<(), Error> {
        check_topic(topic)?;
        if bodies.is_empty() {
            return Err(Error::Usage("MPUB needs at least one message".into()));
        }
        put_mpub(self.conn()?.out_mut(), topic, bodies);
        self.sent(Verb::Mpub)
    }

    /// Sends an `MPUB` whose bodies `fill` writes in place, and returns how many it wrote.
    /// Nothing is sent when `fill` writes none.
    ///
    /// # Errors
    /// As [`Producer::send_pub`].
    pub fn send_mpub_with(
        &mut self,
        topic: &str,
        fill: impl FnOnce(&mut MpubWriter<'_>),
    ) -> Result<u32, Error> {
        check_topic(topic)?;
        let mut writer = MpubWriter::begin(self.conn()?.out_mut(), topic);
        fill(&mut writer);
        let count = writer.finish();
        if count > 0 {
            self.sent(Verb::Mpub)?;
        }
        Ok(count)
    }

    /// Sends a `DPUB` without waiting for its answer (unless the window is full).
    ///
    /// # Errors
    /// As [`Producer::send_pub`].
    pub fn send_dpub(&mut self, topic: &str, delay: Duration, body: &[u8]) -> Result<(), Error> {
        check_topic(topic)?;
        put_dpub(self.conn()?.out_mut(), topic, delay, body);
        self.sent(Verb::Dpub)
    }

    /// Writes every buffered request.
    ///
    /// # Errors
    /// [`Error::Io`]; the connection is then dropped and the next send reconnects.
    pub fn flush(&mut self) -> Result<(), Error> {
        let result = match self.conn.as_mut() {
            Some(conn) => conn.flush(),
            None => Ok(()),
        };
        self.check(result)
    }

    /// Reads the answers already received, without blocking, and returns how many requests
    /// they acknowledged.
    ///
    /// # Errors
    /// The first refused request's [`Error::Broker`], or a connection error.
    pub fn poll_acks(&mut self) -> Result<u64, Error> {
        self.flush()?;
        let before = self.acked;
        let outcome = match self.conn.as_mut() {
            Some(conn) => conn.try_read_into(&mut self.frames),
            None => return Ok(0),
        };
        self.check(outcome)?;
        self.settle()?;
        self.flush()?;
        Ok(self.acked - before)
    }

    /// Flushes, then blocks until at most `max_pending` requests are unanswered.
    ///
    /// # Errors
    /// As [`Producer::poll_acks`], plus a read timeout.
    pub fn wait_until_pending_at_most(&mut self, max_pending: usize) -> Result<(), Error> {
        self.flush()?;
        while self.pending.len() > max_pending {
            // Also sends the NOP answering a heartbeat read in the previous round.
            self.flush()?;
            let outcome = match self.conn.as_mut() {
                Some(conn) => conn.read_into(&mut self.frames),
                None => return Err(Error::Closed(self.addr.clone())),
            };
            if self.check(outcome)? == ReadOutcome::Idle {
                let err = Error::io(
                    format!("waiting for acknowledgements from {}", self.addr),
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"),
                );
                return self.check(Err(err));
            }
            self.settle()?;
        }
        Ok(())
    }

    /// Flushes and waits for the answer to every pending request.
    ///
    /// # Errors
    /// As [`Producer::wait_until_pending_at_most`].
    pub fn wait_all(&mut self) -> Result<(), Error> {
        self.wait_until_pending_at_most(0)
    }

    /// The connection, reconnecting first if an earlier failure dropped it.
    fn conn(&mut self) -> Result<&mut Conn, Error> {
        if self.conn.is_none() {
            self.conn = Some(Conn::connect(&self.addr, &self.config)?);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| Error::Closed(self.addr.clone()))
    }

    fn sent(&mut self, verb: Verb) -> Result<(), Error> {
        self.pending.push_back(verb);
        let queued = self.conn.as_ref().map_or(0, Conn::queued_len);
        if self.pending.len() >= self.config.max_pending {
            self.wait_until_pending_at_most(self.config.max_pending - 1)
        } else if queued >= AUTO_FLUSH_BYTES {
            self.flush()
        } else {
            Ok(())
        }
    }

    /// Matches the frames read so far to the pending requests, in order.
    fn settle(&mut self) -> Result<(), Error> {
        let mut frames = std::mem::take(&mut self.frames);
        let mut result = Ok(());
        for frame in frames.drain(..) {
            let verb = self.pending.pop_front();
            match frame {
                Frame::Response(data) if data.as_ref() == OK && verb.is_some() => self.acked += 1,
                Frame::Error(data) => {
                    let error = BrokerError::from_frame(verb, &data);
                    result = result.and(Err(Error::Broker {
                        addr: self.addr.clone(),
                        error,
                    }));
                }
                other => {
                    result = result.and(Err(Error::Unexpected {
                        addr: self.addr.clone(),
                        detail: format!("{other:?} while awaiting {verb:?}"),
                    }));
                }
            }
        }
        self.frames = frames;
        self.check(result)
    }

    /// Drops the connection after a fatal error so the next send reconnects.
    fn check<T>(&mut self, result: Result<T, Error>) -> Result<T, Error> {
        if let Err(err) = &result {
            if err.is_fatal() {
                if let Some(conn) = self.conn.take() {
                    conn.shutdown();
                }
                self.unanswered += self.pending.len() as u64;
                self.pending.clear();
                self.frames.clear();
            }
        }
        result
    }
}

fn check_topic(topic: &str) -> Result<(), Error> {
    if is_valid_topic_name(topic) {
        Ok(())
    } else {
        Err(Error::InvalidTopic(topic.to_owned()))
    }
}
