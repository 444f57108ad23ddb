//! The reader side of a connection: read, decode every complete command, execute them in
//! order, then answer them in order.
//!
//! Replies keep command order even when some commands were publishes forwarded to another shard:
//! until the first forwarded publish of a cycle, replies go straight to the outbox; after it,
//! they queue behind the forwarded ones and are written once the other shards answered.

use std::rc::Rc;
use std::time::Instant;

use bytes::BytesMut;
use sluice_proto::v2::{self, CommandDecoder, FrameType, Name, Verb};
use sluice_proto::{ErrorCode, ProtoError};

use super::shared::{ConnShared, State};
use super::{read_some, state_error, SharedStream};
use crate::shard::mesh::{PubItem, PublishError, Reply, Request};
use crate::shard::Shard;

/// How a connection's reader ended.
pub enum Outcome {
    /// The connection is finished (closed by the client, by an error, or by shutdown).
    Closed,
    /// The SUB names a topic of another shard: move there.
    Handoff {
        /// The owning shard.
        to: usize,
        /// The socket.
        stream: SharedStream,
        /// The SUB's topic.
        topic: Name,
        /// The SUB's channel.
        channel: Name,
        /// Bytes read after the SUB line.
        leftover: BytesMut,
    },
}

/// What executing one command asks of the cycle.
pub enum Step {
    /// Go on with the next command.
    Continue,
    /// Move to the shard that owns this topic (SUB).
    Handoff(usize, Name, Name),
    /// Send this cycle's replies before executing the next command (a SUB whose `OK` waits for
    /// the saved state must reach the client before any delivery its next RDY allows).
    Drain,
}

/// A reply waiting for its turn in a cycle that forwarded publishes.
enum Out {
    Frame(FrameType, Vec<u8>),
    Error(ProtoError),
    Forwarded {
        shard: usize,
        index: usize,
        verb: Verb,
    },
    /// A publish on this shard, acknowledged once the log reaches `ticket`.
    Local {
        verb: Verb,
        ticket: u64,
    },
}

/// The reader of one connection.
pub struct Reader {
    pub(super) shard: Rc<Shard>,
    pub(super) conn: Rc<ConnShared>,
    stream: SharedStream,
    buf: BytesMut,
    scratch: Vec<u8>,
    decoder: CommandDecoder,
    /// Publishes to forward this cycle, per shard.
    forward: Vec<Vec<PubItem>>,
    /// Replies queued behind forwarded or not yet durable publishes (empty when none).
    outs: Vec<Out>,
    /// The log position this cycle's local publishes wait for (0: none).
    wait_ticket: u64,
    /// The state version this cycle's replies wait for (0: none).
    wait_state: u64,
}

impl Reader {
    /// A reader over `stream`, with `buf` already holding unread bytes.
    pub fn new(
        shard: Rc<Shard>,
        conn: Rc<ConnShared>,
        stream: SharedStream,
        buf: BytesMut,
        scratch: Vec<u8>,
    ) -> Reader {
        let decoder = CommandDecoder::new(shard.opts.limits.clone());
        let forward = (0..shard.count).map(|_| Vec::new()).collect();
        Reader {
            shard,
            conn,
            stream,
            buf,
            scratch,
            decoder,
            forward,
            outs: Vec::new(),
            wait_ticket: 0,
            wait_state: 0,
        }
    }

    /// The socket.
    pub fn stream(&self) -> &SharedStream {
        &self.stream
    }

    /// Runs cycles until the connection ends or moves; `pending_sub` is a SUB brought by a handoff.
    pub async fn run(&mut self, pending_sub: Option<(Name, Name)>) -> Outcome {
        if let Some((topic, channel)) = pending_sub {
            if let Err(e) = self.sub_local(&topic, &channel) {
                self.emit_error(e);
                return Outcome::Closed;
            }
            if self.finish_cycle().await {
                return Outcome::Closed;
            }
        }
        loop {
            let step = self.execute_buffered();
            let failed = self.finish_cycle().await;
            self.shard.deliver(Instant::now());
            match step {
                _ if failed => return Outcome::Closed,
                Ok(Step::Handoff(to, topic, channel)) => {
                    let leftover = std::mem::take(&mut self.buf);
                    return Outcome::Handoff {
                        to,
                        stream: self.stream.clone(),
                        topic,
                        channel,
                        leftover,
                    };
                }
                Err(()) => return Outcome::Closed,
                Ok(Step::Drain) => continue,
                Ok(Step::Continue) => {}
            }
            if self.conn.closed.get() {
                return Outcome::Closed;
            }
            match read_some(&self.stream, &mut self.scratch, &mut self.buf).await {
                Ok(0) | Err(_) => return Outcome::Closed,
                Ok(_) => {}
            }
        }
    }

    /// Decodes and executes every complete command in the buffer. `Err` means a fatal error was
    /// queued and the connection must close after this cycle's replies.
    fn execute_buffered(&mut self) -> Result<Step, ()> {
        loop {
            let cmd = match self.decoder.decode(&mut self.buf) {
                Ok(Some(cmd)) => cmd,
                Ok(None) => return Ok(Step::Continue),
                Err(e) => {
                    // Upstream checks the connection state before it parses parameters.
                    let state_err = self.decoder.last_verb().and_then(|v| self.state_check(v));
                    self.emit_error(state_err.unwrap_or(e));
                    return Err(());
                }
            };
            match self.exec(cmd) {
                Ok(Step::Continue) => {}
                Ok(handoff) => return Ok(handoff),
                Err(e) => {
                    let fatal = e.is_fatal();
                    self.emit_error(e);
                    if fatal {
                        return Err(());
                    }
                }
            }
        }
    }

    /// The state error for `verb`, if the connection's state does not allow it.
    pub(super) fn state_check(&self, verb: Verb) -> Option<ProtoError> {
        let state = self.conn.state.get();
        let allowed = match verb {
            Verb::Identify | Verb::Auth | Verb::Sub => state == State::Init,
            Verb::Rdy => state != State::Init,
            Verb::Fin | Verb::Req | Verb::Touch => state != State::Init,
            Verb::Cls => state == State::Subscribed,
            Verb::Pub | Verb::Mpub | Verb::Dpub | Verb::Nop => true,
        };
        (!allowed).then(|| state_error(verb.as_str()))
    }

    /// Queues a response frame in order.
    pub(super) fn emit_response(&mut self, data: &[u8]) {
        if self.outs.is_empty() {
            self.conn.send_response(data);
        } else {
            self.outs
                .push(Out::Frame(FrameType::Response, data.to_vec()));
        }
    }

    /// Queues an error frame in order.
    pub(super) fn emit_error(&mut self, err: ProtoError) {
        if !err.is_fatal() {
            tracing::debug!("client({}): {err}", self.conn.remote);
        } else {
            tracing::info!("ERROR: client({}) - {err}", self.conn.remote);
        }
        if self.outs.is_empty() {
            self.conn.send_error(&err);
        } else {
            self.outs.push(Out::Error(err));
        }
    }

    /// Queues the `OK` of a publish on this shard, sent once the log reaches `ticket` (at once
    /// for an ephemeral topic with nothing queued before it).
    pub(super) fn hold_local(&mut self, verb: Verb, ticket: u64) {
        if ticket == 0 && self.outs.is_empty() {
            self.conn.send_response(v2::OK);
            return;
        }
        self.wait_ticket = self.wait_ticket.max(ticket);
        self.outs.push(Out::Local { verb, ticket });
    }

    /// Queues a response sent once the shard state reaches `version` (at once for 0).
    pub(super) fn hold_state(&mut self, version: u64, data: &[u8]) {
        if version == 0 {
            self.emit_response(data);
            return;
        }
        self.wait_state = self.wait_state.max(version);
        self.outs
            .push(Out::Frame(FrameType::Response, data.to_vec()));
    }

    /// Queues a publish for the shard that owns its topic; its reply comes in order.
    pub(super) fn forward(&mut self, to: usize, verb: Verb, item: PubItem) {
        let sent = self.shard.forwarded_out.get() + item.bodies.len() as u64;
        self.shard.forwarded_out.set(sent);
        let Some(batch) = self.forward.get_mut(to) else {
            return;
        };
        batch.push(item);
        let index = batch.len() - 1;
        self.outs.push(Out::Forwarded {
            shard: to,
            index,
            verb,
        });
    }

    /// Sends this cycle's forwarded publishes, waits for their answers and writes every queued
    /// reply in order. Returns true if a forwarded publish failed (a fatal error was written).
    async fn finish_cycle(&mut self) -> bool {
        if self.outs.is_empty() {
            return false;
        }
        let answers = self.forward_and_wait().await;
        let log_ok = self
            .shard
            .wait_durable(std::mem::take(&mut self.wait_ticket))
            .await
            .is_ok();
        let state = std::mem::take(&mut self.wait_state);
        if state > 0 {
            let _ = self.shard.state_saved.wait_for(state).await;
        }
        for out in std::mem::take(&mut self.outs) {
            if self.emit_out(out, &answers, log_ok) {
                return true;
            }
        }
        false
    }

    /// Sends this cycle's forwarded publishes (all before awaiting any answer) and returns each
    /// shard's results, in the order of its batch.
    async fn forward_and_wait(&mut self) -> Vec<Vec<Result<(), PublishError>>> {
        let mut answers: Vec<Vec<Result<(), PublishError>>> =
            (0..self.shard.count).map(|_| Vec::new()).collect();
        let mut waits = Vec::new();
        for (to, batch) in self.forward.iter_mut().enumerate() {
            if batch.is_empty() {
                continue;
            }
            let items = std::mem::take(batch);
            let count = items.len();
            let call = self
                .shard
                .mesh
                .call(to, |token| Request::Publish { token, items });
            waits.push((to, count, call.await));
        }
        for (to, count, call) in waits {
            let results = match call {
                Ok(rx) => match rx.await {
                    Ok(Reply::Publish(results)) => results,
                    _ => vec![Err(PublishError::Exiting); count],
                },
                Err(_) => vec![Err(PublishError::Exiting); count],
            };
            if let Some(slot) = answers.get_mut(to) {
                *slot = results;
            }
        }
        answers
    }

    /// Writes one queued reply; returns true when it was a fatal error (the rest are dropped
    /// and the connection closes).
    fn emit_out(
        &mut self,
        out: Out,
        answers: &[Vec<Result<(), PublishError>>],
        log_ok: bool,
    ) -> bool {
        match out {
            Out::Frame(ft, data) => {
                v2::put_frame(&mut self.conn.outbox.borrow_mut(), ft, &data);
                self.conn.wake_writer.notify();
                false
            }
            Out::Error(e) => {
                self.conn.send_error(&e);
                e.is_fatal()
            }
            Out::Local { verb, ticket } => {
                if ticket == 0 || log_ok {
                    self.conn.send_response(v2::OK);
                    return false;
                }
                self.conn
                    .send_error(&publish_error(verb, PublishError::Storage, 0));
                true
            }
            Out::Forwarded { shard, index, verb } => {
                let result = answers
                    .get(shard)
                    .and_then(|r| r.get(index))
                    .copied()
                    .unwrap_or(Err(PublishError::Exiting));
                match result {
                    Ok(()) => {
                        self.conn.send_response(v2::OK);
                        false
                    }
                    Err(e) => {
                        let mem = self.shard.opts.mem_queue_size;
                        self.conn.send_error(&publish_error(verb, e, mem));
                        true
                    }
                }
            }
        }
    }
}

/// The client error for a failed publish: `E_PUB_FAILED PUB failed …` (and MPUB, DPUB).
pub fn publish_error(verb: Verb, err: PublishError, mem_queue_size: usize) -> ProtoError {
    let code = match verb {
        Verb::Mpub => ErrorCode::MpubFailed,
        Verb::Dpub => ErrorCode::DpubFailed,
        _ => ErrorCode::PubFailed,
    };
    let why = match err {
        PublishError::Full => format!("mem-queue-size {mem_queue_size} reached"),
        PublishError::Exiting => "exiting".to_owned(),
        PublishError::Storage => "storage failed".to_owned(),
    };
    ProtoError::new(code, format!("{} failed {why}", verb.as_str()))
}
