//! Back-pressure, the publisher's side. When a QoS 1/2 PUBLISH leaves a delivery waiting in
//! a connected subscriber's full queue (`crate::backpressure`), this connection *parks*: it
//! holds back that PUBLISH's PUBACK/PUBREC, decodes no further packet, and tells its
//! transport to stop reading once [`READ_AHEAD`] bytes are buffered, so that TCP (or
//! WebSocket) flow control reaches the client. It unparks, acknowledges and reads on when
//! every waiting delivery is in its subscriber's queue, or was given up because that
//! subscriber stalled, went offline or ended.
//!
//! A parked connection still serves its own session: it writes its own deliveries, answers
//! takeover, shutdown and its timers, and *reads ahead* in the bytes it buffered for the
//! packets that concern them (PUBACK, PUBREC and PUBCOMP of its deliveries, and PINGREQ),
//! which it handles at once, out of order; everything else stays in order for later.
//! Without that, a client subscribed to what it publishes (or two clients publishing to
//! each other) would wait for its own queue to drain while the acknowledgements that drain
//! it sit behind the PUBLISH it is parked on. Its keep-alive does not run while it does not
//! read; it restarts when the connection unparks.
//!
//! The state is boxed (in the place of the handshake, see `Aside`): idle connections pay
//! nothing for it in their task beyond that shared pointer. It outlives the
//! park while bytes that were read ahead remain buffered, so that a publisher that parks
//! again and again (one whose subscriber's queue stays at its limit) reads each buffered
//! byte ahead once, not once per park.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::BytesMut;
use ferrymq_codec::{Packet, PacketId, PubComp, QoS, ReasonCode, peek_fixed_header};

use super::{Aside, Closed, Connection};
use crate::PublishOutcome;
use crate::backpressure::{Publisher, QOS0_HOLD, Settled};
use crate::metrics::Metrics;
use crate::registry::SessionHandle;

/// Bytes of input a parked connection buffers at most. Enough for the acknowledgements of a
/// full in-flight window behind a few PUBLISHes; little enough that a blocked publisher costs
/// a bounded amount of memory. Beyond it the socket is not read at all.
pub(super) const READ_AHEAD: usize = 64 * 1024;

/// MQTT control packet types [MQTT-2.1.2] that a parked connection reads ahead for.
const PUBACK: u8 = 4;
const PUBREC: u8 = 5;
const PUBCOMP: u8 = 7;
const PINGREQ: u8 = 12;

/// A connection's back-pressure state, while it is parked or has input it read ahead in.
#[derive(Debug, Default)]
pub(super) struct Backpressure {
    /// The PUBLISH the connection is parked on; `None` once it went on.
    parked: Option<Parked>,
    /// Bytes at the front of the input already read ahead: whole packets that stay (none of
    /// them one that is read ahead for). Reduced by what is decoded after unparking.
    scanned: usize,
}

/// A PUBLISH whose acknowledgement waits for room in subscribers' queues.
#[derive(Debug)]
struct Parked {
    /// The connected sessions holding a delivery of it, each once.
    waiting_for: Vec<Arc<SessionHandle>>,
    qos: QoS,
    packet_id: PacketId,
    /// Routing's outcome; refusals of the waiting deliveries are added as they settle.
    outcome: PublishOutcome,
    since: Instant,
    /// When to look whether the sessions still waited for have stalled.
    check_at: Instant,
}

impl Connection {
    /// Whether the transport should read more input while `buffered` bytes are not yet
    /// handled: always, except when parked with [`READ_AHEAD`] bytes buffered.
    pub fn wants_input(&self, buffered: usize) -> bool {
        !self.is_parked() || buffered < READ_AHEAD
    }

    /// Whether the connection is parked: it decodes nothing but what it reads ahead for,
    /// and resumes (the transport then hands it its buffered input again) once woken.
    pub fn is_parked(&self) -> bool {
        self.parked().is_some()
    }

    fn parked(&self) -> Option<&Parked> {
        self.backpressure()?.parked.as_ref()
    }

    fn take_parked(&mut self) -> Option<Parked> {
        self.backpressure_mut()?.parked.take()
    }

    fn backpressure(&self) -> Option<&Backpressure> {
        match self.aside.as_deref() {
            Some(Aside::Backpressure(state)) => Some(state),
            _ => None,
        }
    }

    fn backpressure_mut(&mut self) -> Option<&mut Backpressure> {
        match self.aside.as_deref_mut() {
            Some(Aside::Backpressure(state)) => Some(state),
            _ => None,
        }
    }

    /// Parks on `parked`, making the state when there is none. Only after CONNECT, when
    /// the handshake is gone.
    fn set_parked(&mut self, parked: Parked) {
        match self.backpressure_mut() {
            Some(state) => state.parked = Some(parked),
            None => {
                self.aside = Some(Box::new(Aside::Backpressure(Backpressure {
                    parked: Some(parked),
                    scanned: 0,
                })));
            }
        }
    }

    /// `consumed` bytes were decoded from the front of the input, which is now `empty` or
    /// not: they leave the part already read ahead. Without a park and with nothing read
    /// ahead left, the state goes.
    pub(super) fn decoded(&mut self, consumed: usize, empty: bool) {
        let Some(state) = self.backpressure_mut() else {
            return;
        };
        state.scanned = match empty {
            true => 0,
            false => state.scanned.saturating_sub(consumed),
        };
        if state.parked.is_none() && state.scanned == 0 {
            self.aside = None;
        }
    }

    /// Parks the connection on the PUBLISH just routed, whose deliveries to `waiting_for`
    /// wait for room.
    pub(super) fn park(
        &mut self,
        waiting_for: Vec<Arc<SessionHandle>>,
        qos: QoS,
        packet_id: PacketId,
        outcome: PublishOutcome,
    ) {
        let metrics = &self.broker.metrics;
        Metrics::inc(&metrics.publishes_blocked);
        Metrics::inc(&metrics.publishers_blocked);
        let now = Instant::now();
        // A QoS 0 PUBLISH looks again after the QoS 0 hold: a subscriber's client may fall
        // behind meanwhile, and then it waits no longer. (A QoS 1/2 one whose deliveries to
        // some subscribers are QoS 0 looks at the stall timeout, as for the others.)
        let timeout = self.broker.config.limits.publish_backpressure_timeout;
        let check_at = match qos {
            QoS::AtMostOnce => now + timeout.min(QOS0_HOLD),
            _ => now + timeout,
        };
        self.set_parked(Parked {
            waiting_for,
            qos,
            packet_id,
            outcome,
            since: now,
            check_at,
        });
    }

    /// Ready when a delivery the connection waits for was settled (or its session went away);
    /// registers the task's waker with the others.
    pub(super) fn poll_unparked(&self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(parked) = self.parked() else {
            return Poll::Pending;
        };
        let mut ready = false;
        for session in &parked.waiting_for {
            ready |= session.poll_parked(self.id, cx).is_ready();
        }
        match ready {
            true => Poll::Ready(()),
            false => Poll::Pending,
        }
    }

    /// When the parked connection must next look at the sessions it waits for.
    pub(super) fn parked_deadline(&self) -> Option<Instant> {
        self.parked().map(|p| p.check_at)
    }

    /// Collects what was settled, gives up on stalled sessions; when nothing waits any more,
    /// sends the held-back acknowledgement and unparks.
    pub(super) fn resume_parked(&mut self, now: Instant) {
        let Some(mut parked) = self.take_parked() else {
            return;
        };
        let limits = &self.broker.config.limits;
        let publisher = Publisher {
            connection: self.id,
            now,
            timeout: limits.publish_backpressure_timeout,
        };
        let queue_limits = self.broker.queue_limits();
        let metrics = &self.broker.metrics;
        let mut check_at: Option<Instant> = None;
        let outcome = &mut parked.outcome;
        parked.waiting_for.retain(|session| {
            match session.settle_parked(publisher, queue_limits, metrics, false) {
                Settled::Waiting { recheck_at } => {
                    check_at = Some(check_at.map_or(recheck_at, |at| at.min(recheck_at)));
                    true
                }
                Settled::Done { refused } => {
                    outcome.refused += refused;
                    false
                }
            }
        });
        if let Some(at) = check_at {
            parked.check_at = at;
            self.set_parked(parked);
            return;
        }
        self.unparked(&parked, now);
        let Some(session) = self.established.as_ref().map(|e| e.session.clone()) else {
            return;
        };
        self.acknowledge(&session, parked.qos, parked.packet_id, parked.outcome);
    }

    /// The connection is closing while parked: its deliveries stop waiting (the overflow
    /// policy decides about them); the client never got their acknowledgement.
    pub(super) fn withdraw_parked(&mut self) {
        let Some(parked) = self.take_parked() else {
            return;
        };
        let now = Instant::now();
        let publisher = Publisher {
            connection: self.id,
            now,
            timeout: self.broker.config.limits.publish_backpressure_timeout,
        };
        for session in &parked.waiting_for {
            session.settle_parked(
                publisher,
                self.broker.queue_limits(),
                &self.broker.metrics,
                true,
            );
        }
        self.unparked(&parked, now);
    }

    fn unparked(&mut self, parked: &Parked, now: Instant) {
        let metrics = &self.broker.metrics;
        Metrics::dec(&metrics.publishers_blocked);
        let blocked = now.saturating_duration_since(parked.since);
        Metrics::add(
            &metrics.publishers_blocked_ms,
            u64::try_from(blocked.as_millis()).unwrap_or(u64::MAX),
        );
        if let Some(e) = &mut self.established {
            // The client could not be heard while its bytes were not read.
            e.state.on_packet_received(now);
        }
    }

    /// Handles, out of order, the buffered packets a parked connection must not wait for:
    /// acknowledgements of its deliveries and PINGREQ. They are cut out of `input`; every
    /// other packet stays where it is, to be decoded in order once the connection unparks.
    pub(super) fn read_ahead(&mut self, input: &mut BytesMut) -> Result<(), Closed> {
        let Some(state) = self.backpressure().filter(|s| s.parked.is_some()) else {
            return Ok(());
        };
        let mut at = state.scanned.min(input.len());
        let max = usize::try_from(self.decoder.max_packet_size()).unwrap_or(usize::MAX);
        while let Some(rest) = input.get(at..) {
            // A malformed header is left for the decoder to report in order.
            let Ok(Some(header)) = peek_fixed_header(rest) else {
                break;
            };
            let len = header.packet_len();
            if len > max || rest.len() < len {
                break;
            }
            if !matches!(header.packet_type, PUBACK | PUBREC | PUBCOMP | PINGREQ) {
                at += len;
                continue;
            }
            let mut frame = BytesMut::from(&rest[..len]);
            input.copy_within(at + len.., at);
            input.truncate(input.len() - len);
            match self.decoder.decode(&mut frame) {
                Ok(Some(packet)) => {
                    if let Some(e) = &mut self.established {
                        e.state.on_packet_received(Instant::now());
                    }
                    // Only packets `on_session_packet` handles were cut out.
                    let _ = self.on_session_packet(packet);
                }
                Ok(None) => break,
                Err(error) => return Err(self.on_decode_error(error)),
            }
        }
        if let Some(state) = self.backpressure_mut() {
            state.scanned = at;
        }
        Ok(())
    }

    /// PUBACK, PUBREC and PUBCOMP for this connection's deliveries, PUBREL and PINGREQ:
    /// packets that touch nothing but the session's own state. Hands any other packet back.
    pub(super) fn on_session_packet(&mut self, packet: Packet) -> Option<Packet> {
        match packet {
            Packet::PubAck(ack) => {
                self.with_session(|s| s.state.on_puback(ack.packet_id));
            }
            Packet::PubRec(rec) => {
                if let Some(rel) =
                    self.with_session(|s| s.state.on_pubrec(rec.packet_id, rec.reason_code))
                {
                    self.send(&Packet::PubRel(rel));
                }
            }
            Packet::PubRel(rel) => {
                let known = self.with_session(|s| s.state.release_qos2(rel.packet_id));
                let reason = match known {
                    true => ReasonCode::Success,
                    false => ReasonCode::PacketIdentifierNotFound,
                };
                self.send(&Packet::PubComp(PubComp::new(rel.packet_id, reason)));
            }
            Packet::PubComp(comp) => {
                self.with_session(|s| s.state.on_pubcomp(comp.packet_id));
            }
            Packet::PingReq => self.send(&Packet::PingResp),
            other => return Some(other),
        }
        None
    }
}
