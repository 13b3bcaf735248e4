//! An incoming PUBLISH: the checks the protocol and the client's rights require, routing,
//! and the PUBACK/PUBREC that answers it.

use std::time::Instant;

use ferrymq_codec::{Packet, PacketId, PubAck, PubRec, Publish, QoS, ReasonCode};
use ferrymq_session::{InboundTopicError, Message};
use ferrymq_topic::validate_topic_name;

use super::{Closed, Connection};
use crate::PublishOutcome;
use crate::metrics::Metrics;
use crate::registry::SessionHandle;

impl Connection {
    /// A PUBLISH from the client, received at `now`: checked, routed and acknowledged.
    pub(super) fn on_publish(&mut self, mut publish: Publish, now: Instant) -> Result<(), Closed> {
        self.refresh_permissions()?;
        // `self.broker` is read in place rather than through a clone of its `Arc`: every
        // connection's task would bump (and drop) the one reference count shared by all,
        // a cache line moving between the cores per PUBLISH.
        Metrics::inc(&self.broker.metrics.messages_received);
        let v5 = self.is_v5();
        let Some(e) = self.established.as_mut() else {
            return Err(Closed);
        };
        if let Err(error) = e.state.resolve_inbound_topic(&mut publish) {
            return Err(match error {
                InboundTopicError::AliasOutOfRange => self.violation(
                    ReasonCode::TopicAliasInvalid,
                    "topic alias out of range [MQTT-3.3.2-10]",
                ),
                InboundTopicError::UnknownAlias => self.violation(
                    ReasonCode::ProtocolError,
                    "topic alias never set [MQTT-3.3.4]",
                ),
                InboundTopicError::EmptyTopic => self.violation(
                    ReasonCode::TopicNameInvalid,
                    "empty topic name [MQTT-4.7.3-1]",
                ),
            });
        }
        let properties = publish.properties.as_deref();
        if properties.is_some_and(|p| !p.subscription_identifiers.is_empty()) {
            return Err(self.violation(
                ReasonCode::ProtocolError,
                "client PUBLISH with a Subscription Identifier [MQTT-3.3.4-6]",
            ));
        }
        if let Some(response) = properties
            .and_then(|p| p.forwarded.as_deref())
            .and_then(|f| f.response_topic.as_ref())
            && validate_topic_name(response, &self.broker.topic_limits).is_err()
        {
            return Err(self.violation(
                ReasonCode::ProtocolError,
                "Response Topic is not a valid topic name [MQTT-3.3.2-14]",
            ));
        }
        if let Err(error) = validate_topic_name(&publish.topic, &self.broker.topic_limits) {
            Metrics::inc(&self.broker.metrics.topics_invalid);
            return Err(self.violation(ReasonCode::TopicNameInvalid, &error.to_string()));
        }
        if publish.qos > self.broker.config.mqtt.maximum_qos {
            return Err(self.violation(
                ReasonCode::QoSNotSupported,
                "QoS above Maximum QoS [MQTT-3.2.2-11]",
            ));
        }
        if publish.retain && !self.broker.config.mqtt.retain_available {
            return Err(self.violation(
                ReasonCode::RetainNotSupported,
                "retain not available [MQTT-3.2.2-14]",
            ));
        }
        let packet_id = publish.packet_id.unwrap_or(0);
        let qos = publish.qos;
        let allowed = self
            .established
            .as_mut()
            .is_some_and(|e| e.permissions.may_publish(&publish.topic));
        if !allowed {
            // Not the user's to publish (`$SYS/` is nobody's): refused, connection kept.
            tracing::info!(peer = %self.peer, client_id = %self.client_id(), topic = %publish.topic, "refusing PUBLISH: not authorized");
            Metrics::inc(&self.broker.metrics.publishes_denied);
            if !v5 && self.broker.config.mqtt.disconnect_v3_on_denied_publish {
                return Err(self.disconnect(ReasonCode::NotAuthorized));
            }
            match qos {
                QoS::AtMostOnce => {}
                QoS::AtLeastOnce => self.send(&Packet::PubAck(PubAck::new(
                    packet_id,
                    ReasonCode::NotAuthorized,
                ))),
                QoS::ExactlyOnce => self.send(&Packet::PubRec(PubRec::new(
                    packet_id,
                    ReasonCode::NotAuthorized,
                ))),
            }
            return Ok(());
        }
        let session = self
            .established
            .as_ref()
            .map(|e| e.session.clone())
            .ok_or(Closed)?;
        if qos == QoS::ExactlyOnce {
            let mut inner = session.lock();
            let pending = inner.state.inbound_qos2_len();
            let new = !inner.state.has_inbound_qos2(packet_id);
            if new && pending >= usize::from(self.broker.config.limits.max_inflight) {
                drop(inner);
                return Err(self.violation(
                    ReasonCode::ReceiveMaximumExceeded,
                    "more QoS 2 PUBLISHes than Receive Maximum [MQTT-3.3.4-9]",
                ));
            }
            inner.state.receive_qos2(packet_id);
            drop(inner);
            if !new {
                // A re-sent QoS 2 PUBLISH we already routed: acknowledge, do not route twice.
                self.send(&Packet::PubRec(PubRec::new(packet_id, ReasonCode::Success)));
                return Ok(());
            }
        }
        let message = Message::from_publish(publish, now, Some(session.client_id.clone()));
        let routed = self
            .broker
            .publish_from(&session.vhost, message, self.id, now);
        match routed.parked.is_empty() {
            true => self.acknowledge(&session, qos, packet_id, routed.outcome),
            false => self.park(routed.parked, qos, packet_id, routed.outcome),
        }
        Ok(())
    }

    /// Answers a routed QoS 1/2 PUBLISH: PUBACK or PUBREC, whose v5 reason says whether
    /// any subscriber took the message.
    pub(super) fn acknowledge(
        &mut self,
        session: &SessionHandle,
        qos: QoS,
        packet_id: PacketId,
        outcome: PublishOutcome,
    ) {
        let reason = match (self.is_v5(), outcome.matched, outcome.refused) {
            (false, _, _) => ReasonCode::Success,
            (true, 0, _) => ReasonCode::NoMatchingSubscribers,
            (true, matched, refused) if refused == matched => ReasonCode::QuotaExceeded,
            _ => ReasonCode::Success,
        };
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.send(&Packet::PubAck(PubAck::new(packet_id, reason))),
            QoS::ExactlyOnce => {
                if reason.is_error() {
                    // A failed QoS 2 exchange ends at PUBREC [MQTT-4.3.3-?]: forget the id.
                    session.lock().state.release_qos2(packet_id);
                }
                self.send(&Packet::PubRec(PubRec::new(packet_id, reason)));
            }
        }
    }
}
