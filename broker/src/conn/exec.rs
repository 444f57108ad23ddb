//! One function per verb, as upstream's `protocol_v2.go` has (`IDENTIFY`, `SUB`, `PUB`, …).
//!
//! Decoding already validated the bytes and parameters; these functions check the connection
//! state and act on the shard. Error texts are upstream's.

use std::time::Instant;

use bytes::Bytes;
use sluice_proto::identify::{self, IdentifyRequest, IdentifyResponse};
use sluice_proto::v2::{self, Command, Name, Verb};
use sluice_proto::{ErrorCode, MessageId, ProtoError};

use super::cycle::{publish_error, Reader, Step};
use super::shared::State;
use super::transport::Upgrade;
use super::{apply_timeouts_of, server_features};
use crate::channel::{Channel, ChannelError, ConsumerId, ConsumerSettings};
use crate::options::NSQ_VERSION;
use crate::shard::mesh::PubItem;

impl Reader {
    /// Executes one decoded command.
    ///
    /// # Errors
    /// The error frame to send; fatal ones close the connection.
    pub(super) fn exec(&mut self, cmd: Command) -> Result<Step, ProtoError> {
        if let Some(e) = self.state_check(cmd.verb()) {
            // RDY after CLS is ignored, as upstream does.
            if cmd.verb() == Verb::Rdy && self.conn.state.get() == State::Closing {
                return Ok(Step::Continue);
            }
            return Err(e);
        }
        match cmd {
            Command::Identify(body) => self.identify(&body),
            Command::Auth(secret) => self.auth(&secret),
            Command::Sub { topic, channel } => self.sub(topic, channel),
            Command::Pub { topic, body } => self.publish(Verb::Pub, topic, vec![body], None),
            Command::Mpub { topic, bodies } => self.publish(Verb::Mpub, topic, bodies, None),
            Command::Dpub { topic, defer, body } => {
                self.publish(Verb::Dpub, topic, vec![body], Some(defer))
            }
            Command::Rdy(count) => self.rdy(count),
            Command::Fin(id) => self.fin(&id),
            Command::Req { id, delay } => self.req(&id, delay),
            Command::Touch(id) => self.touch(&id),
            Command::Cls => self.cls(),
            Command::Nop => Ok(Step::Continue),
        }
    }

    fn identify(&mut self, body: &Bytes) -> Result<Step, ProtoError> {
        let request = IdentifyRequest::from_json(body)?;
        let features = server_features(&self.shard);
        let negotiated = identify::negotiate(&request, &self.shard.opts.limits, &features)?;
        let feature_negotiation = negotiated.feature_negotiation;
        *self.conn.identity.borrow_mut() = negotiated;
        self.conn.identified.set(true);
        apply_timeouts_of(self);
        if !feature_negotiation {
            self.emit_response(v2::OK);
            return Ok(Step::Continue);
        }
        let response = IdentifyResponse::new(
            &self.conn.identity.borrow(),
            &self.shard.opts.limits,
            &features,
            NSQ_VERSION,
        );
        let json = serde_json::to_vec(&response).map_err(|e| {
            ProtoError::new(ErrorCode::IdentifyFailed, format!("IDENTIFY failed {e}"))
        })?;
        self.emit_response(&json);
        let identity = self.conn.identity.borrow();
        let upgrade = Upgrade {
            tls: identity.tls_v1,
            snappy: identity.snappy,
            deflate: identity.deflate.then_some(identity.deflate_level),
        };
        // The layers go on after the response is written, before the next read (upstream's
        // order); a connection upgrades once.
        if (upgrade.tls || upgrade.snappy || upgrade.deflate.is_some())
            && !self.stream().is_upgraded()
        {
            self.stream().request_upgrade(upgrade);
        }
        Ok(Step::Continue)
    }

    /// AUTH: the auth server is asked before the next read, and its answer sent then.
    fn auth(&mut self, secret: &Bytes) -> Result<Step, ProtoError> {
        self.stream().handle_auth(secret)?;
        Ok(Step::Continue)
    }

    fn sub(&mut self, topic: Name, channel: Name) -> Result<Step, ProtoError> {
        if self.conn.identity.borrow().heartbeat_interval.is_none() {
            return Err(ProtoError::new(
                ErrorCode::Invalid,
                "cannot SUB with heartbeats disabled",
            ));
        }
        self.stream()
            .check_auth("SUB", topic.as_str(), channel.as_str())?;
        let owner = crate::shard::shard_of(topic.as_str(), self.shard.count);
        if owner != self.shard.id {
            return Ok(Step::Handoff(owner, topic, channel));
        }
        let held = self.sub_local(&topic, &channel)?;
        Ok(if held { Step::Drain } else { Step::Continue })
    }

    /// Subscribes on this shard, which owns the topic.
    /// Returns whether the `OK` waits for the saved state (a new channel).
    pub(super) fn sub_local(&mut self, topic: &Name, channel: &Name) -> Result<bool, ProtoError> {
        let consumer = ConsumerId(self.conn.client_id);
        let settings = {
            let identity = self.conn.identity.borrow();
            ConsumerSettings {
                msg_timeout: identity.msg_timeout,
                sample_rate: identity.sample_rate,
            }
        };
        let (added, version) = self
            .shard
            .with_channel(topic.as_str(), channel.as_str(), |c| {
                c.add_consumer(consumer, settings)
            });
        added.map_err(|e| sub_failed(topic, channel, e))?;
        self.conn.state.set(State::Subscribed);
        *self.conn.subscription.borrow_mut() =
            Some((topic.as_str().to_owned(), channel.as_str().to_owned()));
        self.shard
            .consumers
            .borrow_mut()
            .insert(consumer, self.conn.clone());
        self.shard.mark_dirty(topic.as_str());
        // A new channel is in the saved state before the consumer hears OK, so that a restart
        // keeps delivering to it everything published from now on.
        self.hold_state(version, v2::OK);
        Ok(version > 0)
    }

    fn publish(
        &mut self,
        verb: Verb,
        topic: Name,
        bodies: Vec<Bytes>,
        defer: Option<std::time::Duration>,
    ) -> Result<Step, ProtoError> {
        self.stream()
            .check_auth(verb.as_str(), topic.as_str(), "")?;
        self.conn.count_pub(topic.as_str(), bodies.len() as u64);
        let owner = crate::shard::shard_of(topic.as_str(), self.shard.count);
        if owner != self.shard.id {
            self.forward(
                owner,
                verb,
                PubItem {
                    topic,
                    bodies,
                    defer,
                },
            );
            return Ok(Step::Continue);
        }
        let mut results = self
            .shard
            .publish_local([(topic.as_str().to_owned(), bodies, defer)]);
        match results.pop() {
            Some(Ok(ticket)) => {
                self.hold_local(verb, ticket);
                Ok(Step::Continue)
            }
            Some(Err(e)) => Err(publish_error(verb, e, self.shard.opts.mem_queue_size)),
            None => Err(publish_error(verb, crate::shard::PublishError::Exiting, 0)),
        }
    }

    /// Runs `f` on this connection's channel and marks its topic for delivery.
    fn with_channel<R>(&self, f: impl FnOnce(&mut Channel) -> R) -> Option<R> {
        let subscription = self.conn.subscription.borrow();
        let (topic, channel) = subscription.as_ref()?;
        let result = {
            let mut topics = self.shard.topics.borrow_mut();
            f(topics.get_mut(topic)?.channel_mut(channel)?)
        };
        self.shard.mark_dirty(topic);
        Some(result)
    }

    fn rdy(&mut self, count: u64) -> Result<Step, ProtoError> {
        let consumer = ConsumerId(self.conn.client_id);
        self.conn.ready_count.set(count);
        self.with_channel(|c| c.handle_rdy(consumer, count));
        Ok(Step::Continue)
    }

    fn fin(&mut self, id: &MessageId) -> Result<Step, ProtoError> {
        let consumer = ConsumerId(self.conn.client_id);
        let wall = crate::shard::wall_ns(std::time::SystemTime::now());
        self.in_flight_op("FIN", ErrorCode::FinFailed, id, |c| {
            c.handle_fin(wall, consumer, id)
        })?;
        self.conn.count(|c| c.finish_count += 1);
        Ok(Step::Continue)
    }

    fn req(&mut self, id: &MessageId, delay: std::time::Duration) -> Result<Step, ProtoError> {
        let consumer = ConsumerId(self.conn.client_id);
        let now = Instant::now();
        // Upstream clamps the delay to --max-req-timeout rather than refusing it (v1.3.0).
        let delay = delay.min(self.shard.opts.limits.max_req_timeout);
        self.in_flight_op("REQ", ErrorCode::ReqFailed, id, |c| {
            c.handle_req(now, consumer, id, delay)
        })?;
        self.conn.count(|c| c.requeue_count += 1);
        Ok(Step::Continue)
    }

    fn touch(&mut self, id: &MessageId) -> Result<Step, ProtoError> {
        let consumer = ConsumerId(self.conn.client_id);
        let now = Instant::now();
        self.in_flight_op("TOUCH", ErrorCode::TouchFailed, id, |c| {
            c.handle_touch(now, consumer, id)
        })?;
        Ok(Step::Continue)
    }

    /// FIN, REQ and TOUCH: the channel call, and upstream's non-fatal error around its failure.
    fn in_flight_op(
        &mut self,
        verb: &str,
        code: ErrorCode,
        id: &MessageId,
        f: impl FnOnce(&mut Channel) -> Result<(), ChannelError>,
    ) -> Result<(), ProtoError> {
        let result = self
            .with_channel(f)
            .unwrap_or(Err(ChannelError::NotInFlight));
        result.map_err(|e| ProtoError::new(code, format!("{verb} {id} failed {e}")))
    }

    fn cls(&mut self) -> Result<Step, ProtoError> {
        let consumer = ConsumerId(self.conn.client_id);
        self.with_channel(|c| c.handle_close(consumer));
        self.conn.state.set(State::Closing);
        self.emit_response(v2::CLOSE_WAIT);
        Ok(Step::Continue)
    }
}

/// Upstream's SUB failure text: `SUB failed channel consumers for T:C exceeds limit of N`.
fn sub_failed(topic: &Name, channel: &Name, err: ChannelError) -> ProtoError {
    let detail = match err {
        ChannelError::TooManyConsumers { .. } => {
            // Upstream's AddClient text: "consumers for %s:%s exceeds limit of %d".
            format!("SUB failed consumers for {topic}:{channel} {err}")
        }
        other => format!("SUB failed {other}"),
    };
    ProtoError::new(ErrorCode::SubFailed, detail)
}
