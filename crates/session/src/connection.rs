//! What one network connection adds to a session: the protocol version, keep-alive, the
//! client's own limits (Receive Maximum, Maximum Packet Size, Topic Alias Maximum) and the
//! topic-alias tables in both directions. It ends with the connection [MQTT-3.3.2-7].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrymq_codec::{Packet, PacketId, ProtocolVersion, Publish, PublishProperties, encoded_len};

use crate::message::Delivery;

/// Why a received PUBLISH's topic could not be resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundTopicError {
    /// Topic Alias 0 or above our Topic Alias Maximum [MQTT-3.3.2-9], [MQTT-3.3.2-10]: 0x94.
    AliasOutOfRange,
    /// Empty topic with an alias that was never set [MQTT-3.3.4-...]: protocol error 0x82.
    UnknownAlias,
    /// Empty topic and no alias: protocol error 0x82.
    EmptyTopic,
}

#[derive(Debug)]
pub struct ConnectionState {
    pub protocol: ProtocolVersion,
    /// Effective keep-alive in seconds (after any Server Keep Alive override); zero
    /// disables it. Seconds as on the wire, not a `Duration`: 14 bytes less in every
    /// established connection.
    keep_alive: u16,
    /// How many QoS 1/2 PUBLISHes the client accepts unacknowledged (v5 Receive Maximum).
    pub client_receive_maximum: u16,
    /// Largest packet the client accepts (v5 Maximum Packet Size).
    pub client_maximum_packet_size: u32,
    /// Aliases the client accepts from us (v5 Topic Alias Maximum in CONNECT).
    pub client_topic_alias_maximum: u16,
    /// Aliases we accept from the client (announced in CONNACK).
    pub server_topic_alias_maximum: u16,
    /// Whether the client wants Reason Strings and User Properties on errors (v5).
    pub request_problem_information: bool,
    last_packet_at: Instant,
    /// Created on the first alias in either direction: most connections never use one
    /// (v3, or v5 without Topic Alias Maximum), and two empty maps inline would cost ~100
    /// bytes per idle connection.
    aliases: Option<Box<TopicAliases>>,
}

/// The topic-alias tables of one connection [MQTT-3.3.2-7].
#[derive(Debug, Default)]
struct TopicAliases {
    inbound: HashMap<u16, Arc<str>>,
    outbound: HashMap<Arc<str>, u16>,
}

impl ConnectionState {
    pub fn new(protocol: ProtocolVersion, now: Instant) -> ConnectionState {
        ConnectionState {
            protocol,
            keep_alive: 0,
            client_receive_maximum: u16::MAX,
            client_maximum_packet_size: u32::MAX,
            client_topic_alias_maximum: 0,
            server_topic_alias_maximum: 0,
            request_problem_information: true,
            last_packet_at: now,
            aliases: None,
        }
    }

    /// The effective keep-alive; zero when it is off.
    pub fn keep_alive(&self) -> Duration {
        Duration::from_secs(u64::from(self.keep_alive))
    }

    /// Sets the effective keep-alive, in seconds as CONNECT and CONNACK carry it.
    pub fn set_keep_alive(&mut self, seconds: u16) {
        self.keep_alive = seconds;
    }

    /// Any control packet from the client resets the keep-alive timer [MQTT-3.1.2-23].
    pub fn on_packet_received(&mut self, now: Instant) {
        self.last_packet_at = now;
    }

    /// The instant after which the client has been silent for `grace` x keep-alive and must
    /// be disconnected [MQTT-3.1.2-24]. `None` when keep-alive is off.
    pub fn keep_alive_deadline(&self, grace: f32) -> Option<Instant> {
        if self.keep_alive == 0 {
            return None;
        }
        Some(self.last_packet_at + self.keep_alive().mul_f32(grace.max(1.0)))
    }

    /// Resolves the topic of a received PUBLISH through its Topic Alias, recording a new
    /// mapping when both topic and alias are present [MQTT-3.3.2-12].
    pub fn resolve_inbound_topic(
        &mut self,
        publish: &mut Publish,
    ) -> Result<(), InboundTopicError> {
        let alias = publish
            .properties
            .as_mut()
            .and_then(|p| p.topic_alias.take());
        let Some(alias) = alias else {
            return match publish.topic.is_empty() {
                true => Err(InboundTopicError::EmptyTopic),
                false => Ok(()),
            };
        };
        if alias == 0 || alias > self.server_topic_alias_maximum {
            return Err(InboundTopicError::AliasOutOfRange);
        }
        if publish.topic.is_empty() {
            let topic = self
                .aliases
                .as_ref()
                .and_then(|a| a.inbound.get(&alias))
                .ok_or(InboundTopicError::UnknownAlias)?;
            publish.topic = topic.to_string();
        } else {
            self.aliases
                .get_or_insert_default()
                .inbound
                .insert(alias, Arc::from(publish.topic.as_str()));
        }
        Ok(())
    }

    /// Builds the PUBLISH for a delivery: packet id, DUP, remaining expiry, subscription
    /// identifiers and (v5, when the client allows aliases) a topic alias. Returns `None` when
    /// the packet would exceed the client's Maximum Packet Size [MQTT-3.1.2-25].
    ///
    /// The message's forwarded properties are shared, not copied: a v5 delivery allocates
    /// its per-delivery properties only when it has some (an expiry, a subscription
    /// identifier, an alias) or the message has forwarded ones.
    pub fn build_publish(
        &mut self,
        delivery: &Delivery,
        packet_id: Option<PacketId>,
        dup: bool,
        now: Instant,
    ) -> Option<Packet> {
        let message = &delivery.message;
        let v5 = self.protocol.is_v5();
        let properties = match v5 {
            true => {
                let properties = PublishProperties {
                    message_expiry_interval: message.remaining_expiry(now),
                    topic_alias: None,
                    subscription_identifiers: delivery.subscription_ids.clone(),
                    forwarded: message.forwarded.clone(),
                };
                (!properties.is_empty()).then(|| Box::new(properties))
            }
            false => None,
        };
        let mut publish = Publish {
            dup,
            qos: delivery.qos,
            retain: delivery.retain,
            topic: message.topic.to_string(),
            packet_id,
            properties,
            payload: message.payload.clone(),
        };
        // Re-sent messages carry their full topic: the alias table is per connection and the
        // client may not have seen the original mapping.
        let new_alias = v5
            && !dup
            && self.client_topic_alias_maximum > 0
            && self.apply_outbound_alias(&mut publish, &message.topic);
        let packet = Packet::Publish(publish);
        if self.client_maximum_packet_size != u32::MAX {
            let fits = encoded_len(&packet, self.protocol)
                .is_ok_and(|len| len <= self.client_maximum_packet_size as usize);
            if !fits {
                if new_alias && let Some(aliases) = &mut self.aliases {
                    // The client never saw this mapping: forget it.
                    aliases.outbound.remove(&message.topic);
                }
                return None;
            }
        }
        Some(packet)
    }

    /// Puts an alias on `publish`; returns true when the alias is new (sent with the topic).
    fn apply_outbound_alias(&mut self, publish: &mut Publish, topic: &Arc<str>) -> bool {
        let maximum = self.client_topic_alias_maximum;
        let outbound = &mut self.aliases.get_or_insert_default().outbound;
        if let Some(&alias) = outbound.get(topic) {
            publish.topic.clear();
            publish.properties.get_or_insert_default().topic_alias = Some(alias);
            return false;
        }
        let next = outbound.len() + 1;
        match u16::try_from(next) {
            Ok(alias) if alias <= maximum => {
                // First use of this alias: topic and alias go together so the client learns it.
                outbound.insert(topic.clone(), alias);
                publish.properties.get_or_insert_default().topic_alias = Some(alias);
                true
            }
            _ => false,
        }
    }
}
