//! The packet model: one Rust type per MQTT control packet, shared by all three protocol
//! versions. Fields that only exist in MQTT 5.0 (properties, most reason codes) are simply
//! empty / `Success` for 3.1 and 3.1.1; the encoder leaves them out and maps reason codes to
//! the v3 return codes (see `reason.rs`).
//!
//! This module owns no parsing or encoding logic; `decode.rs` and `encode.rs` do.

use std::sync::Arc;

use bytes::Bytes;

use crate::ReasonCode;

/// MQTT packet identifier. Never zero on the wire [MQTT-2.2.1-3]; the decoder rejects 0.
pub type PacketId = u16;

/// A v5 User Property: an ordered name/value pair; names may repeat [MQTT-3.1.3-10].
pub type UserProperty = (String, String);

/// The protocol level announced in CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProtocolVersion {
    /// MQTT 3.1, protocol name `MQIsdp`, level 3.
    V3_1,
    /// MQTT 3.1.1, protocol name `MQTT`, level 4.
    V3_1_1,
    /// MQTT 5.0, protocol name `MQTT`, level 5.
    V5,
}

impl ProtocolVersion {
    /// The protocol level byte of CONNECT.
    pub fn level(self) -> u8 {
        match self {
            ProtocolVersion::V3_1 => 3,
            ProtocolVersion::V3_1_1 => 4,
            ProtocolVersion::V5 => 5,
        }
    }

    pub fn is_v5(self) -> bool {
        self == ProtocolVersion::V5
    }
}

/// Quality of service of a PUBLISH or a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum QoS {
    #[default]
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    pub fn from_u8(value: u8) -> Option<QoS> {
        match value {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }

    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// Every MQTT control packet.
///
/// Kept small (72 bytes on 64-bit targets, checked by a test) because it travels by value:
/// the decoder returns it through two calls and the broker moves it on, once per packet.
/// The per-message packets (PUBLISH, its acknowledgements, PINGREQ/PINGRESP) are inline and
/// carry their rarely used parts behind a pointer; the variants that would be larger than a
/// PUBLISH are boxed, as they come once per connection or per subscription, where one
/// allocation costs less than moving a 224-byte enum for every message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connect(Box<Connect>),
    ConnAck(Box<ConnAck>),
    Publish(Publish),
    PubAck(PubAck),
    PubRec(PubRec),
    PubRel(PubRel),
    PubComp(PubComp),
    Subscribe(Subscribe),
    SubAck(Box<SubAck>),
    Unsubscribe(Unsubscribe),
    UnsubAck(Box<UnsubAck>),
    PingReq,
    PingResp,
    Disconnect(Box<Disconnect>),
    Auth(Box<Auth>),
}

impl Packet {
    /// The packet's name as the spec spells it, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Packet::Connect(_) => "CONNECT",
            Packet::ConnAck(_) => "CONNACK",
            Packet::Publish(_) => "PUBLISH",
            Packet::PubAck(_) => "PUBACK",
            Packet::PubRec(_) => "PUBREC",
            Packet::PubRel(_) => "PUBREL",
            Packet::PubComp(_) => "PUBCOMP",
            Packet::Subscribe(_) => "SUBSCRIBE",
            Packet::SubAck(_) => "SUBACK",
            Packet::Unsubscribe(_) => "UNSUBSCRIBE",
            Packet::UnsubAck(_) => "UNSUBACK",
            Packet::PingReq => "PINGREQ",
            Packet::PingResp => "PINGRESP",
            Packet::Disconnect(_) => "DISCONNECT",
            Packet::Auth(_) => "AUTH",
        }
    }
}

/// CONNECT [MQTT-3.1].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub protocol: ProtocolVersion,
    /// "Clean Session" in 3.1/3.1.1, "Clean Start" in 5.0.
    pub clean_start: bool,
    /// Seconds; 0 disables keep-alive.
    pub keep_alive: u16,
    /// May be empty: the server then assigns one (3.1.1 only with clean session; always in 5.0).
    pub client_id: String,
    pub will: Option<LastWill>,
    pub username: Option<String>,
    pub password: Option<Bytes>,
    pub properties: ConnectProperties,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectProperties {
    pub session_expiry_interval: Option<u32>,
    pub receive_maximum: Option<u16>,
    pub maximum_packet_size: Option<u32>,
    pub topic_alias_maximum: Option<u16>,
    pub request_response_information: Option<bool>,
    pub request_problem_information: Option<bool>,
    pub user_properties: Vec<UserProperty>,
    pub authentication_method: Option<String>,
    pub authentication_data: Option<Bytes>,
}

/// The Will Message carried in CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWill {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    pub properties: WillProperties,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WillProperties {
    pub will_delay_interval: Option<u32>,
    pub payload_format_indicator: Option<u8>,
    pub message_expiry_interval: Option<u32>,
    pub content_type: Option<String>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
    pub user_properties: Vec<UserProperty>,
}

/// CONNACK [MQTT-3.2]. For 3.1/3.1.1 the encoder maps `reason_code` to a v3 return code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    pub session_present: bool,
    pub reason_code: ReasonCode,
    pub properties: ConnAckProperties,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAckProperties {
    pub session_expiry_interval: Option<u32>,
    pub receive_maximum: Option<u16>,
    pub maximum_qos: Option<QoS>,
    pub retain_available: Option<bool>,
    pub maximum_packet_size: Option<u32>,
    pub assigned_client_identifier: Option<String>,
    pub topic_alias_maximum: Option<u16>,
    pub reason_string: Option<String>,
    pub user_properties: Vec<UserProperty>,
    pub wildcard_subscription_available: Option<bool>,
    pub subscription_identifiers_available: Option<bool>,
    pub shared_subscription_available: Option<bool>,
    pub server_keep_alive: Option<u16>,
    pub response_information: Option<String>,
    pub server_reference: Option<String>,
    pub authentication_method: Option<String>,
    pub authentication_data: Option<Bytes>,
}

/// PUBLISH [MQTT-3.3].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// May be empty in v5 when a Topic Alias property stands in for it.
    pub topic: String,
    /// Present exactly when `qos > 0`.
    pub packet_id: Option<PacketId>,
    /// v5 properties; `None` when there are none, as for every v3 PUBLISH and most v5 ones
    /// (the decoder never gives an empty one). Boxed: inline they would double the size of
    /// every [`Packet`].
    pub properties: Option<Box<PublishProperties>>,
    pub payload: Bytes,
}

/// The properties of a v5 PUBLISH, split by who sets them: the first three are set per hop
/// (a server recomputes or replaces them for each delivery), the `forwarded` ones are the
/// publisher's and reach every subscriber unaltered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublishProperties {
    /// Seconds the message lives; a server forwards the time remaining [MQTT-3.3.2-6].
    pub message_expiry_interval: Option<u32>,
    /// Stands for the topic on this connection, in this direction [MQTT-3.3.2-7].
    pub topic_alias: Option<u16>,
    /// One per matching subscription that has one. Only ever sent by the server; a client
    /// sending one is a protocol error [MQTT-3.3.4-6].
    pub subscription_identifiers: Vec<u32>,
    /// `None` when the publisher set none. Shared: a message delivered to many subscribers
    /// keeps one copy of these strings instead of one per delivery.
    pub forwarded: Option<Arc<ForwardedProperties>>,
}

impl PublishProperties {
    /// Whether no property is set (such a block encodes as a lone Property Length 0).
    pub fn is_empty(&self) -> bool {
        self.message_expiry_interval.is_none()
            && self.topic_alias.is_none()
            && self.subscription_identifiers.is_empty()
            && self.forwarded.is_none()
    }

    /// The forwarded properties, for changing them: created when absent, copied first when
    /// shared with another PUBLISH or message.
    pub fn forwarded_mut(&mut self) -> &mut ForwardedProperties {
        Arc::make_mut(self.forwarded.get_or_insert_default())
    }
}

/// The PUBLISH properties a server passes to every subscriber unaltered: Payload Format
/// Indicator [MQTT-3.3.2-4], Response Topic [MQTT-3.3.2-15], Correlation Data
/// [MQTT-3.3.2-16], User Properties, in order [MQTT-3.3.2-17], [MQTT-3.3.2-18], and Content
/// Type [MQTT-3.3.2-20].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ForwardedProperties {
    pub payload_format_indicator: Option<u8>,
    pub content_type: Option<String>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
    pub user_properties: Vec<UserProperty>,
}

/// Reason String and User Properties: the only properties of PUBACK, PUBREC, PUBREL,
/// PUBCOMP, SUBACK and UNSUBACK.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AckProperties {
    pub reason_string: Option<String>,
    pub user_properties: Vec<UserProperty>,
}

/// PUBACK [MQTT-3.4]: reply to a QoS 1 PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubAck {
    pub packet_id: PacketId,
    pub reason_code: ReasonCode,
    pub properties: AckProperties,
}

/// PUBREC [MQTT-3.5]: first reply to a QoS 2 PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubRec {
    pub packet_id: PacketId,
    pub reason_code: ReasonCode,
    pub properties: AckProperties,
}

/// PUBREL [MQTT-3.6]: reply to PUBREC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubRel {
    pub packet_id: PacketId,
    pub reason_code: ReasonCode,
    pub properties: AckProperties,
}

/// PUBCOMP [MQTT-3.7]: reply to PUBREL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubComp {
    pub packet_id: PacketId,
    pub reason_code: ReasonCode,
    pub properties: AckProperties,
}

/// The options byte of each SUBSCRIBE entry. In 3.1/3.1.1 only `qos` exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscriptionOptions {
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: RetainHandling,
}

/// v5 Retain Handling option [MQTT-3.8.3.1].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetainHandling {
    /// 0: send retained messages at the time of the subscribe.
    #[default]
    SendAtSubscribe = 0,
    /// 1: send retained messages only if the subscription did not already exist.
    SendIfNewSubscription = 1,
    /// 2: do not send retained messages.
    DoNotSend = 2,
}

/// SUBSCRIBE [MQTT-3.8].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub packet_id: PacketId,
    /// Never empty [MQTT-3.8.3-2]; filters are raw strings, validated by `ferrymq-topic`.
    pub filters: Vec<(String, SubscriptionOptions)>,
    pub properties: SubscribeProperties,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubscribeProperties {
    /// 1..=268_435_455; 0 is a protocol error [MQTT-3.8.2.1.2].
    pub subscription_identifier: Option<u32>,
    pub user_properties: Vec<UserProperty>,
}

/// SUBACK [MQTT-3.9]: one reason code per filter, in order. For v3 the encoder writes
/// 0x00/0x01/0x02 for granted QoS and 0x80 for any failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    pub packet_id: PacketId,
    pub reason_codes: Vec<ReasonCode>,
    pub properties: AckProperties,
}

/// UNSUBSCRIBE [MQTT-3.10].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub packet_id: PacketId,
    pub filters: Vec<String>,
    pub user_properties: Vec<UserProperty>,
}

/// UNSUBACK [MQTT-3.11]. `reason_codes` is empty for 3.1/3.1.1 (which carry none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    pub packet_id: PacketId,
    pub reason_codes: Vec<ReasonCode>,
    pub properties: AckProperties,
}

/// DISCONNECT [MQTT-3.14]. 3.1/3.1.1 DISCONNECT has no body: `reason_code` is `Success`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    pub reason_code: ReasonCode,
    pub properties: DisconnectProperties,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DisconnectProperties {
    pub session_expiry_interval: Option<u32>,
    pub reason_string: Option<String>,
    pub user_properties: Vec<UserProperty>,
    pub server_reference: Option<String>,
}

/// AUTH [MQTT-3.15], v5 only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    pub reason_code: ReasonCode,
    pub properties: AuthProperties,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthProperties {
    pub authentication_method: Option<String>,
    pub authentication_data: Option<Bytes>,
    pub reason_string: Option<String>,
    pub user_properties: Vec<UserProperty>,
}

impl Disconnect {
    pub fn new(reason_code: ReasonCode) -> Disconnect {
        Disconnect {
            reason_code,
            properties: DisconnectProperties::default(),
        }
    }
}

impl PubAck {
    pub fn new(packet_id: PacketId, reason_code: ReasonCode) -> PubAck {
        PubAck {
            packet_id,
            reason_code,
            properties: AckProperties::default(),
        }
    }
}

impl PubRec {
    pub fn new(packet_id: PacketId, reason_code: ReasonCode) -> PubRec {
        PubRec {
            packet_id,
            reason_code,
            properties: AckProperties::default(),
        }
    }
}

impl PubRel {
    pub fn new(packet_id: PacketId, reason_code: ReasonCode) -> PubRel {
        PubRel {
            packet_id,
            reason_code,
            properties: AckProperties::default(),
        }
    }
}

impl PubComp {
    pub fn new(packet_id: PacketId, reason_code: ReasonCode) -> PubComp {
        PubComp {
            packet_id,
            reason_code,
            properties: AckProperties::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The decoder returns a `Packet` by value and the broker moves it a few times per
    /// message: at 224 bytes (properties inline) that `memmove` was 60 % of a PUBACK decode
    /// and ~18 % of the broker's CPU at QoS 0. A PUBLISH's `String` topic and `Bytes` payload
    /// alone are 56 bytes, so 72 is as small as it gets without changing those types; a
    /// variant that grows past it should be boxed, not inlined.
    #[test]
    fn packet_stays_small() {
        assert!(size_of::<Publish>() <= 72, "{}", size_of::<Publish>());
        assert!(size_of::<Packet>() <= 72, "{}", size_of::<Packet>());
    }
}
