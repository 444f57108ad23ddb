//! The life of one consumer connection (connect, `SUB`, RDY, the read–handle–write loop,
//! reconnect with backoff) and the lookupd poller.
//!
//! Mirrors go-nsq's `conn.go` `readLoop`/`writeLoop` and `consumer.go` `onConnMessage`,
//! `onConnClose`, `lookupdLoop`, folded into one blocking thread per connection: each read
//! takes whatever the kernel has (up to [`Config::read_chunk`]), every message in it goes to
//! the handler, and the `FIN`/`REQ`/`RDY` that follow leave in one write.
//!
//! [`Config::read_chunk`]: crate::Config::read_chunk

use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_proto::v2::{Command, Frame, Name, CLOSE_WAIT, OK};

use super::{lock, rdy, spawn_session, Disposition, Handler, Responder, Shared, STOP_POLL};
use crate::backoff::Backoff;
use crate::conn::{Conn, ReadOutcome};
use crate::error::Error;
use crate::lookup;

/// How long a stopping connection waits for `CLOSE_WAIT`.
const CLOSE_WAIT_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs one broker's connection until the consumer stops (or, for a broker found through
/// lookupd, until the lookupds stop listing it).
pub(super) fn run_connection(
    shared: &Arc<Shared>,
    addr: &str,
    mut handler: Box<dyn Handler>,
    direct: bool,
) {
    let mut backoff = Backoff::new(shared.config.backoff_min, shared.config.backoff_max);
    while !shared.stop.load(Ordering::SeqCst) {
        match run_session(shared, addr, handler.as_mut(), &mut backoff) {
            Ok(()) => break,
            Err(err) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                *lock(&shared.last_error) = Some(err.to_string());
            }
        }
        if !direct && !lock(&shared.listed).contains(addr) {
            shared.recheck.store(true, Ordering::SeqCst);
            break;
        }
        sleep_unless_stopped(shared, backoff.next_delay());
    }
    lock(&shared.threads).remove(addr);
}

/// Decrements the live count when a subscribed session ends, however it ends.
struct LiveGuard<'a>(&'a Shared);

impl Drop for LiveGuard<'_> {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
        self.0.rdy_epoch.fetch_add(1, Ordering::SeqCst);
    }
}

/// Where one session is in its shutdown.
struct Closing {
    cls_sent: Option<Instant>,
    close_wait: bool,
}

fn run_session(
    shared: &Shared,
    addr: &str,
    handler: &mut dyn Handler,
    backoff: &mut Backoff,
) -> Result<(), Error> {
    let mut conn = subscribe(shared, addr)?;
    backoff.reset();
    shared.live.fetch_add(1, Ordering::SeqCst);
    shared.rdy_epoch.fetch_add(1, Ordering::SeqCst);
    shared.subscriptions.fetch_add(1, Ordering::Relaxed);
    let _live = LiveGuard(shared);
    let writer = Arc::new(Mutex::new(conn.try_clone_stream()?));
    let responder = Responder {
        writer: writer.clone(),
        addr: Arc::from(addr),
        rdy: Arc::new(AtomicU64::new(0)),
    };
    conn.set_read_timeout(STOP_POLL.min(shared.config.read_timeout))?;
    let mut frames = Vec::new();
    let mut rdy_state = (u64::MAX, None::<u64>);
    let mut closing = Closing {
        cls_sent: None,
        close_wait: false,
    };
    let mut last_data = Instant::now();
    loop {
        if shared.stop.load(Ordering::SeqCst) && closing.cls_sent.is_none() {
            conn.queue(&Command::Cls);
            closing.cls_sent = Some(Instant::now());
        }
        if closing.cls_sent.is_none() {
            update_rdy(shared, &mut conn, &mut rdy_state);
            responder
                .rdy
                .store(rdy_state.1.unwrap_or(0), Ordering::Relaxed);
        }
        flush_locked(&mut conn, &writer)?;
        if closing.close_wait {
            return Ok(());
        }
        frames.clear();
        let now = Instant::now();
        if conn.read_into(&mut frames)? == ReadOutcome::Idle {
            if now.duration_since(last_data) > shared.config.read_timeout {
                return Err(Error::io(
                    format!("reading from {addr}"),
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "no data or heartbeat"),
                ));
            }
            if closing
                .cls_sent
                .is_some_and(|t| t.elapsed() > CLOSE_WAIT_TIMEOUT)
            {
                return Ok(());
            }
            continue;
        }
        last_data = now;
        handle_frames(
            shared,
            &mut conn,
            &mut frames,
            handler,
            &responder,
            &mut closing,
        )?;
    }
}

/// Connects, sends `SUB` and waits for its `OK`.
fn subscribe(shared: &Shared, addr: &str) -> Result<Conn, Error> {
    let mut conn = Conn::connect(addr, &shared.config)?;
    conn.queue(&Command::Sub {
        topic: Name::new(&shared.topic),
        channel: Name::new(&shared.channel),
    });
    conn.flush()?;
    match conn.read_frame()? {
        Frame::Response(data) if data.as_ref() == OK => Ok(conn),
        Frame::Error(data) => Err(conn.broker_error(&data)),
        other => Err(Error::Unexpected {
            addr: addr.to_owned(),
            detail: format!("{other:?} in answer to SUB"),
        }),
    }
}

/// Queues `RDY` when this connection's share of `max_in_flight` changed.
/// `state` is (the epoch last looked at, the RDY last sent).
fn update_rdy(shared: &Shared, conn: &mut Conn, state: &mut (u64, Option<u64>)) {
    let epoch = shared.rdy_epoch.load(Ordering::SeqCst);
    if epoch == state.0 {
        return;
    }
    state.0 = epoch;
    let max_rdy = match conn.identify().max_rdy_count {
        0 => u64::MAX,
        max => max,
    };
    let count = rdy::per_connection(
        shared.max_in_flight.load(Ordering::SeqCst),
        shared.live.load(Ordering::SeqCst),
        max_rdy,
    );
    if state.1 != Some(count) {
        conn.queue(&Command::Rdy(count));
        state.1 = Some(count);
    }
}

fn handle_frames(
    shared: &Shared,
    conn: &mut Conn,
    frames: &mut Vec<Frame>,
    handler: &mut dyn Handler,
    responder: &Responder,
    closing: &mut Closing,
) -> Result<(), Error> {
    let (mut received, mut finished, mut requeued) = (0u64, 0u64, 0u64);
    for frame in frames.drain(..) {
        match frame {
            Frame::Message(msg) => {
                received += 1;
                match handler.handle_message(&msg, responder) {
                    Disposition::Finish => {
                        finished += 1;
                        conn.queue(&Command::Fin(msg.id));
                    }
                    Disposition::Requeue(delay) => {
                        requeued += 1;
                        let delay = delay.unwrap_or(shared.config.default_requeue_delay);
                        conn.queue(&Command::Req { id: msg.id, delay });
                    }
                    Disposition::Hold => {}
                }
            }
            Frame::Response(data) if data.as_ref() == CLOSE_WAIT => closing.close_wait = true,
            Frame::Response(_) => {}
            Frame::Error(data) => {
                let err = conn.broker_error(&data);
                if err.is_fatal() {
                    return Err(err);
                }
                shared.errors.fetch_add(1, Ordering::Relaxed);
                *lock(&shared.last_error) = Some(err.to_string());
            }
        }
    }
    if received > 0 {
        handler.handle_batch_end();
    }
    shared.received.fetch_add(received, Ordering::Relaxed);
    shared.finished.fetch_add(finished, Ordering::Relaxed);
    shared.requeued.fetch_add(requeued, Ordering::Relaxed);
    Ok(())
}

/// Writes the connection's buffered commands while holding the lock responders write under,
/// so that their commands never land inside ours.
fn flush_locked(conn: &mut Conn, writer: &Mutex<TcpStream>) -> Result<(), Error> {
    if conn.queued_len() == 0 {
        return Ok(());
    }
    let _guard = lock(writer);
    conn.flush()
}

fn sleep_unless_stopped(shared: &Shared, delay: Duration) {
    let deadline = Instant::now() + delay;
    while !shared.stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        std::thread::sleep((deadline - now).min(STOP_POLL));
    }
}

/// Polls the lookupds until the consumer stops; polls early when a connection to a listed
/// broker ended.
pub(super) fn run_poller(shared: &Arc<Shared>) {
    let mut next = Instant::now() + shared.config.lookupd_poll_interval;
    while !shared.stop.load(Ordering::SeqCst) {
        if Instant::now() >= next || shared.recheck.swap(false, Ordering::SeqCst) {
            poll_lookupds(shared);
            next = Instant::now() + shared.config.lookupd_poll_interval;
        }
        std::thread::sleep(STOP_POLL.min(shared.config.lookupd_poll_interval));
    }
}

/// Asks every lookupd once, records the brokers listed, and connects to new ones.
pub(super) fn poll_lookupds(shared: &Arc<Shared>) {
    let lookupds = lock(&shared.lookupds).clone();
    let mut listed = std::collections::BTreeSet::new();
    for lookupd in &lookupds {
        match lookup::lookup(
            lookupd,
            &shared.topic,
            shared.config.dial_timeout.max(STOP_POLL),
        ) {
            Ok(addrs) => listed.extend(addrs),
            Err(err) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                *lock(&shared.last_error) = Some(err.to_string());
            }
        }
    }
    *lock(&shared.listed) = listed.clone();
    for addr in listed {
        if let Err(err) = spawn_session(shared, &addr, false) {
            *lock(&shared.last_error) = Some(err.to_string());
        }
    }
}
