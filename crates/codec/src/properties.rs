//! MQTT 5.0 properties [MQTT-2.2.2]: reading a property block into the packet's property
//! struct, and describing a property struct to a [`Sink`] for encoding.
//!
//! Each property struct says, in one `set` match, which properties its packet allows; a
//! property outside that match is Malformed, a second copy of a single-valued property is a
//! Protocol Error, and the value rules of section 3 (no zero Receive Maximum, booleans only
//! 0/1, …) are checked here. This module knows nothing of fixed headers or packet bodies.

use bytes::Bytes;

use crate::read::Reader;
use crate::write::Sink;
use crate::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DecodeError,
    DisconnectProperties, EncodeError, PublishProperties, QoS, SubscribeProperties, UserProperty,
    WillProperties,
};

const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
const CONTENT_TYPE: u8 = 0x03;
const RESPONSE_TOPIC: u8 = 0x08;
const CORRELATION_DATA: u8 = 0x09;
const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
const SERVER_KEEP_ALIVE: u8 = 0x13;
const AUTHENTICATION_METHOD: u8 = 0x15;
const AUTHENTICATION_DATA: u8 = 0x16;
const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
const WILL_DELAY_INTERVAL: u8 = 0x18;
const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
const RESPONSE_INFORMATION: u8 = 0x1A;
const SERVER_REFERENCE: u8 = 0x1C;
const REASON_STRING: u8 = 0x1F;
const RECEIVE_MAXIMUM: u8 = 0x21;
const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
const TOPIC_ALIAS: u8 = 0x23;
const MAXIMUM_QOS: u8 = 0x24;
const RETAIN_AVAILABLE: u8 = 0x25;
const USER_PROPERTY: u8 = 0x26;
const MAXIMUM_PACKET_SIZE: u8 = 0x27;
const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;

/// The property's name as the spec spells it, for error messages.
pub(crate) fn property_name(id: u8) -> &'static str {
    match id {
        PAYLOAD_FORMAT_INDICATOR => "Payload Format Indicator",
        MESSAGE_EXPIRY_INTERVAL => "Message Expiry Interval",
        CONTENT_TYPE => "Content Type",
        RESPONSE_TOPIC => "Response Topic",
        CORRELATION_DATA => "Correlation Data",
        SUBSCRIPTION_IDENTIFIER => "Subscription Identifier",
        SESSION_EXPIRY_INTERVAL => "Session Expiry Interval",
        ASSIGNED_CLIENT_IDENTIFIER => "Assigned Client Identifier",
        SERVER_KEEP_ALIVE => "Server Keep Alive",
        AUTHENTICATION_METHOD => "Authentication Method",
        AUTHENTICATION_DATA => "Authentication Data",
        REQUEST_PROBLEM_INFORMATION => "Request Problem Information",
        WILL_DELAY_INTERVAL => "Will Delay Interval",
        REQUEST_RESPONSE_INFORMATION => "Request Response Information",
        RESPONSE_INFORMATION => "Response Information",
        SERVER_REFERENCE => "Server Reference",
        REASON_STRING => "Reason String",
        RECEIVE_MAXIMUM => "Receive Maximum",
        TOPIC_ALIAS_MAXIMUM => "Topic Alias Maximum",
        TOPIC_ALIAS => "Topic Alias",
        MAXIMUM_QOS => "Maximum QoS",
        RETAIN_AVAILABLE => "Retain Available",
        USER_PROPERTY => "User Property",
        MAXIMUM_PACKET_SIZE => "Maximum Packet Size",
        WILDCARD_SUBSCRIPTION_AVAILABLE => "Wildcard Subscription Available",
        SUBSCRIPTION_IDENTIFIER_AVAILABLE => "Subscription Identifier Available",
        SHARED_SUBSCRIPTION_AVAILABLE => "Shared Subscription Available",
        _ => "unknown property",
    }
}

/// One property as read from the wire, typed by its identifier (MQTT 5.0 section 2.2.2.2).
#[derive(Debug)]
pub(crate) enum Property {
    /// Byte-valued: Payload Format Indicator, Request Problem/Response Information, Maximum
    /// QoS and the four "… Available" flags.
    Byte(u8, u8),
    /// Two Byte Integer: Server Keep Alive, Receive Maximum, Topic Alias (Maximum).
    U16(u8, u16),
    /// Four Byte Integer: expiry and delay intervals, Maximum Packet Size.
    U32(u8, u32),
    /// Variable Byte Integer: Subscription Identifier.
    VarInt(u8, u32),
    /// UTF-8 Encoded String.
    Text(u8, String),
    /// Binary Data: Correlation Data, Authentication Data.
    Binary(u8, Bytes),
    /// User Property: a UTF-8 string pair.
    User(String, String),
}

impl Property {
    fn read(r: &mut Reader) -> Result<Property, DecodeError> {
        let raw_id = r.var_int("property identifier")?;
        let id = u8::try_from(raw_id).map_err(|_| DecodeError::UnknownProperty { id: raw_id })?;
        let name = property_name(id);
        Ok(match id {
            PAYLOAD_FORMAT_INDICATOR
            | REQUEST_PROBLEM_INFORMATION
            | REQUEST_RESPONSE_INFORMATION
            | MAXIMUM_QOS
            | RETAIN_AVAILABLE
            | WILDCARD_SUBSCRIPTION_AVAILABLE
            | SUBSCRIPTION_IDENTIFIER_AVAILABLE
            | SHARED_SUBSCRIPTION_AVAILABLE => Property::Byte(id, r.u8(name)?),
            SERVER_KEEP_ALIVE | RECEIVE_MAXIMUM | TOPIC_ALIAS_MAXIMUM | TOPIC_ALIAS => {
                Property::U16(id, r.u16(name)?)
            }
            MESSAGE_EXPIRY_INTERVAL
            | SESSION_EXPIRY_INTERVAL
            | WILL_DELAY_INTERVAL
            | MAXIMUM_PACKET_SIZE => Property::U32(id, r.u32(name)?),
            SUBSCRIPTION_IDENTIFIER => Property::VarInt(id, r.var_int(name)?),
            CONTENT_TYPE
            | RESPONSE_TOPIC
            | ASSIGNED_CLIENT_IDENTIFIER
            | AUTHENTICATION_METHOD
            | RESPONSE_INFORMATION
            | SERVER_REFERENCE
            | REASON_STRING => Property::Text(id, r.string(name)?),
            CORRELATION_DATA | AUTHENTICATION_DATA => Property::Binary(id, r.binary(name)?),
            USER_PROPERTY => Property::User(
                r.string("user property name")?,
                r.string("user property value")?,
            ),
            _ => return Err(DecodeError::UnknownProperty { id: raw_id }),
        })
    }

    fn id(&self) -> u8 {
        match self {
            Property::Byte(id, _)
            | Property::U16(id, _)
            | Property::U32(id, _)
            | Property::VarInt(id, _)
            | Property::Text(id, _)
            | Property::Binary(id, _) => *id,
            Property::User(..) => USER_PROPERTY,
        }
    }
}

/// A packet's property struct: what it accepts when decoding, what it writes when encoding.
pub(crate) trait Properties: Default {
    /// Stores one decoded property; `packet` names the packet for errors.
    fn set(&mut self, property: Property, packet: &'static str) -> Result<(), DecodeError>;
    /// Describes every present property to `sink`, in identifier order.
    fn encode<S: Sink>(&self, sink: &mut S) -> Result<(), EncodeError>;
}

/// Reads a Property Length and the block it announces into `P` [MQTT-2.2.2].
pub(crate) fn read_properties<P: Properties>(
    r: &mut Reader,
    packet: &'static str,
) -> Result<P, DecodeError> {
    Ok(read_block(r, packet)?.unwrap_or_default())
}

/// Like [`read_properties`], for the packets that keep their properties behind a pointer:
/// `None` for an empty block (Property Length 0), which allocates nothing.
pub(crate) fn read_boxed_properties<P: Properties>(
    r: &mut Reader,
    packet: &'static str,
) -> Result<Option<Box<P>>, DecodeError> {
    Ok(read_block(r, packet)?.map(Box::new))
}

/// A property block; `None` when it is empty. Every property read sets something, so a
/// `Some` is never equal to `P::default()`.
fn read_block<P: Properties>(
    r: &mut Reader,
    packet: &'static str,
) -> Result<Option<P>, DecodeError> {
    let len = r.var_int("property length")?;
    if len == 0 {
        return Ok(None);
    }
    let mut block = r.sub(len, "properties")?;
    let mut properties = P::default();
    while !block.is_empty() {
        properties.set(Property::read(&mut block)?, packet)?;
    }
    Ok(Some(properties))
}

fn not_allowed(property: &Property, packet: &'static str) -> DecodeError {
    DecodeError::PropertyNotAllowed {
        id: property.id(),
        packet,
    }
}

/// Stores a single-valued property; a second copy is a Protocol Error.
fn once<T>(slot: &mut Option<T>, value: T, id: u8) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::DuplicateProperty { id });
    }
    *slot = Some(value);
    Ok(())
}

fn flag(value: u8, id: u8) -> Result<bool, DecodeError> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::InvalidPropertyValue {
            id,
            value: value.into(),
        }),
    }
}

fn zero_or_one(value: u8, id: u8) -> Result<u8, DecodeError> {
    flag(value, id).map(u8::from)
}

fn non_zero_u16(value: u16, id: u8) -> Result<u16, DecodeError> {
    if value == 0 {
        Err(DecodeError::InvalidPropertyValue { id, value: 0 })
    } else {
        Ok(value)
    }
}

fn non_zero_u32(value: u32, id: u8) -> Result<u32, DecodeError> {
    if value == 0 {
        Err(DecodeError::InvalidPropertyValue { id, value: 0 })
    } else {
        Ok(value)
    }
}

fn put_u8<S: Sink>(sink: &mut S, id: u8, value: Option<u8>) -> Result<(), EncodeError> {
    match value {
        Some(value) => {
            sink.u8(id)?;
            sink.u8(value)
        }
        None => Ok(()),
    }
}

fn put_bool<S: Sink>(sink: &mut S, id: u8, value: Option<bool>) -> Result<(), EncodeError> {
    put_u8(sink, id, value.map(u8::from))
}

fn put_u16<S: Sink>(sink: &mut S, id: u8, value: Option<u16>) -> Result<(), EncodeError> {
    match value {
        Some(value) => {
            sink.u8(id)?;
            sink.u16(value)
        }
        None => Ok(()),
    }
}

fn put_u32<S: Sink>(sink: &mut S, id: u8, value: Option<u32>) -> Result<(), EncodeError> {
    match value {
        Some(value) => {
            sink.u8(id)?;
            sink.u32(value)
        }
        None => Ok(()),
    }
}

fn put_var_int<S: Sink>(sink: &mut S, id: u8, value: u32) -> Result<(), EncodeError> {
    sink.u8(id)?;
    let value = usize::try_from(value).unwrap_or(usize::MAX);
    sink.var_int(value, "subscription identifier")
}

fn put_str<S: Sink>(sink: &mut S, id: u8, value: Option<&String>) -> Result<(), EncodeError> {
    match value {
        Some(value) => {
            sink.u8(id)?;
            sink.string(value, property_name(id))
        }
        None => Ok(()),
    }
}

fn put_bin<S: Sink>(sink: &mut S, id: u8, value: Option<&Bytes>) -> Result<(), EncodeError> {
    match value {
        Some(value) => {
            sink.u8(id)?;
            sink.binary(value, property_name(id))
        }
        None => Ok(()),
    }
}

fn put_users<S: Sink>(sink: &mut S, users: &[UserProperty]) -> Result<(), EncodeError> {
    for (name, value) in users {
        sink.u8(USER_PROPERTY)?;
        sink.string(name, "user property name")?;
        sink.string(value, "user property value")?;
    }
    Ok(())
}

impl Properties for ConnectProperties {
    fn set(&mut self, property: Property, packet: &'static str) -> Result<(), DecodeError> {
        use Property::*;
        match property {
            U32(id @ SESSION_EXPIRY_INTERVAL, v) => once(&mut self.session_expiry_interval, v, id),
            U16(id @ RECEIVE_MAXIMUM, v) => {
                once(&mut self.receive_maximum, non_zero_u16(v, id)?, id)
            }
            U32(id @ MAXIMUM_PACKET_SIZE, v) => {
                once(&mut self.maximum_packet_size, non_zero_u32(v, id)?, id)
            }
            U16(id @ TOPIC_ALIAS_MAXIMUM, v) => once(&mut self.topic_alias_maximum, v, id),
            Byte(id @ REQUEST_RESPONSE_INFORMATION, v) => {
                once(&mut self.request_response_information, flag(v, id)?, id)
            }
            Byte(id @ REQUEST_PROBLEM_INFORMATION, v) => {
                once(&mut self.request_problem_information, flag(v, id)?, id)
            }
            User(name, value) => {
                self.user_properties.push((name, value));
                Ok(())
            }
            Text(id @ AUTHENTICATION_METHOD, v) => once(&mut self.authentication_method, v, id),
            Binary(id @ AUTHENTICATION_DATA, v) => once(&mut self.authentication_data, v, id),
            other => Err(not_allowed(&other, packet)),
        }
    }

    fn encode<S: Sink>(&self, sink: &mut S) -> Result<(), EncodeError> {
        put_u32(sink, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval)?;
        put_str(
            sink,
            AUTHENTICATION_METHOD,
            self.authentication_method.as_ref(),
        )?;
        put_bin(sink, AUTHENTICATION_DATA, self.authentication_data.as_ref())?;
        put_bool(
            sink,
            REQUEST_PROBLEM_INFORMATION,
            self.request_problem_information,
        )?;
        put_bool(
            sink,
            REQUEST_RESPONSE_INFORMATION,
            self.request_response_information,
        )?;
        put_u16(sink, RECEIVE_MAXIMUM, self.receive_maximum)?;
        put_u16(sink, TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum)?;
        put_users(sink, &self.user_properties)?;
        put_u32(sink, MAXIMUM_PACKET_SIZE, self.maximum_packet_size)
    }
}

impl Properties for WillProperties {
    fn set(&mut self, property: Property, packet: &'static str) -> Result<(), DecodeError> {
        use Property::*;
        match property {
            U32(id @ WILL_DELAY_INTERVAL, v) => once(&mut self.will_delay_interval, v, id),
            Byte(id @ PAYLOAD_FORMAT_INDICATOR, v) => {
                once(&mut self.payload_format_indicator, zero_or_one(v, id)?, id)
            }
            U32(id @ MESSAGE_EXPIRY_INTERVAL, v) => once(&mut self.message_expiry_interval, v, id),
            Text(id @ CONTENT_TYPE, v) => once(&mut self.content_type, v, id),
            Text(id @ RESPONSE_TOPIC, v) => once(&mut self.response_topic, v, id),
            Binary(id @ CORRELATION_DATA, v) => once(&mut self.correlation_data, v, id),
            User(name, value) => {
                self.user_properties.push((name, value));
                Ok(())
            }
            other => Err(not_allowed(&other, packet)),
        }
    }

    fn encode<S: Sink>(&self, sink: &mut S) -> Result<(), EncodeError> {
        put_u8(
            sink,
            PAYLOAD_FORMAT_INDICATOR,
            self.payload_format_indicator,
        )?;
        put_u32(sink, MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval)?;
        put_str(sink, CONTENT_TYPE, self.content_type.as_ref())?;
        put_str(sink, RESPONSE_TOPIC, self.response_topic.as_ref())?;
        put_bin(sink, CORRELATION_DATA, self.correlation_data.as_ref())?;
        put_u32(sink, WILL_DELAY_INTERVAL, self.will_delay_interval)?;
        put_users(sink, &self.user_properties)
    }
}

impl Properties for ConnAckProperties {
    fn set(&mut self, property: Property, packet: &'static str) -> Result<(), DecodeError> {
        use Property::*;
        match property {
            U32(id @ SESSION_EXPIRY_INTERVAL, v) => once(&mut self.session_expiry_interval, v, id),
            U16(id @ RECEIVE_MAXIMUM, v) => {
                once(&mut self.receive_maximum, non_zero_u16(v, id)?, id)
            }
            Byte(id @ MAXIMUM_QOS, v) => {
                let qos = if flag(v, id)? {
                    QoS::AtLeastOnce
                } else {
                    QoS::AtMostOnce
                };
                once(&mut self.maximum_qos, qos, id)
            }
            Byte(id @ RETAIN_AVAILABLE, v) => once(&mut self.retain_available, flag(v, id)?, id),
            U32(id @ MAXIMUM_PACKET_SIZE, v) => {
                once(&mut self.maximum_packet_size, non_zero_u32(v, id)?, id)
            }
            Text(id @ ASSIGNED_CLIENT_IDENTIFIER, v) => {
                once(&mut self.assigned_client_identifier, v, id)
            }
            U16(id @ TOPIC_ALIAS_MAXIMUM, v) => once(&mut self.topic_alias_maximum, v, id),
            Text(id @ REASON_STRING, v) => once(&mut self.reason_string, v, id),
            User(name, value) => {
                self.user_properties.push((name, value));
                Ok(())
            }
            Byte(id @ WILDCARD_SUBSCRIPTION_AVAILABLE, v) => {
                once(&mut self.wildcard_subscription_available, flag(v, id)?, id)
            }
            Byte(id @ SUBSCRIPTION_IDENTIFIER_AVAILABLE, v) => once(
                &mut self.subscription_identifiers_available,
                flag(v, id)?,
                id,
            ),
            Byte(id @ SHARED_SUBSCRIPTION_AVAILABLE, v) => {
                once(&mut self.shared_subscription_available, flag(v, id)?, id)
            }
            U16(id @ SERVER_KEEP_ALIVE, v) => once(&mut self.server_keep_alive, v, id),
            Text(id @ RESPONSE_INFORMATION, v) => once(&mut self.response_information, v, id),
            Text(id @ SERVER_REFERENCE, v) => once(&mut self.server_reference, v, id),
            Text(id @ AUTHENTICATION_METHOD, v) => once(&mut self.authentication_method, v, id),
            Binary(id @ AUTHENTICATION_DATA, v) => once(&mut self.authentication_data, v, id),
            other => Err(not_allowed(&other, packet)),
        }
    }

    fn encode<S: Sink>(&self, sink: &mut S) -> Result<(), EncodeError> {
        put_u32(sink, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval)?;
        put_str(
            sink,
            ASSIGNED_CLIENT_IDENTIFIER,
            self.assigned_client_identifier.as_ref(),
        )?;
        put_u16(sink, SERVER_KEEP_ALIVE, self.server_keep_alive)?;
        put_str(
            sink,
            AUTHENTICATION_METHOD,
            self.authentication_method.as_ref(),
        )?;
        put_bin(sink, AUTHENTICATION_DATA, self.authentication_data.as_ref())?;
        put_str(
            sink,
            RESPONSE_INFORMATION,
            self.response_information.as_ref(),
        )?;
        put_str(sink, SERVER_REFERENCE, self.server_reference.as_ref())?;
        put_str(sink, REASON_STRING, self.reason_string.as_ref())?;
        put_u16(sink, RECEIVE_MAXIMUM, self.receive_maximum)?;
        put_u16(sink, TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum)?;
        put_u8(sink, MAXIMUM_QOS, self.maximum_qos.map(QoS::as_u8))?;
        put_bool(sink, RETAIN_AVAILABLE, self.retain_available)?;
        put_users(sink, &self.user_properties)?;
        put_u32(sink, MAXIMUM_PACKET_SIZE, self.maximum_packet_size)?;
        put_bool(
            sink,
            WILDCARD_SUBSCRIPTION_AVAILABLE,
            self.wildcard_subscription_available,
        )?;
        put_bool(
            sink,
            SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            self.subscription_identifiers_available,
        )?;
        put_bool(
            sink,
            SHARED_SUBSCRIPTION_AVAILABLE,
            self.shared_subscription_available,
        )
    }
}

impl Properties for PublishProperties {
    fn set(&mut self, property: Property, packet: &'static str) -> Result<(), DecodeError> {
        use Property::*;
        match property {
            Byte(id @ PAYLOAD_FORMAT_INDICATOR, v) => once(
                &mut self.forwarded_mut().payload_format_indicator,
                zero_or_one(v, id)?,
                id,
            ),
            U32(id @ MESSAGE_EXPIRY_INTERVAL, v) => once(&mut self.message_expiry_interval, v, id),
            U16(id @ TOPIC_ALIAS, v) => {
                if v == 0 {
                    return Err(DecodeError::TopicAliasZero);
                }
                once(&mut self.topic_alias, v, id)
            }
            Text(id @ RESPONSE_TOPIC, v) => once(&mut self.forwarded_mut().response_topic, v, id),
            Binary(id @ CORRELATION_DATA, v) => {
                once(&mut self.forwarded_mut().correlation_data, v, id)
            }
            User(name, value) => {
                self.forwarded_mut().user_properties.push((name, value));
                Ok(())
            }
            // The one property PUBLISH may repeat: one per matching subscription.
            VarInt(id @ SUBSCRIPTION_IDENTIFIER, v) => {
                self.subscription_identifiers.push(non_zero_u32(v, id)?);
                Ok(())
            }
            Text(id @ CONTENT_TYPE, v) => once(&mut self.forwarded_mut().content_type, v, id),
            other => Err(not_allowed(&other, packet)),
        }
    }

    fn encode<S: Sink>(&self, sink: &mut S) -> Result<(), EncodeError> {
        // In identifier order, the per-hop and the forwarded properties interleaved.
        let forwarded = self.forwarded.as_deref();
        put_u8(
            sink,
            PAYLOAD_FORMAT_INDICATOR,
            forwarded.and_then(|f| f.payload_format_indicator),
        )?;
        put_u32(sink, MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval)?;
        put_str(
            sink,
            CONTENT_TYPE,
            forwarded.and_then(|f| f.content_type.as_ref()),
        )?;
        put_str(
            sink,
            RESPONSE_TOPIC,
            forwarded.and_then(|f| f.response_topic.as_ref()),
        )?;
        put_bin(
            sink,
            CORRELATION_DATA,
            forwarded.and_then(|f| f.correlation_data.as_ref()),
        )?;
        for id in &self.subscription_identifiers {
            put_var_int(sink, SUBSCRIPTION_IDENTIFIER, *id)?;
        }
        put_u16(sink, TOPIC_ALIAS, self.topic_alias)?;
        put_users(
            sink,
            forwarded.map_or(&[][..], |f| f.user_properties.as_slice()),
        )
    }
}

impl Properties for AckProperties {
    fn set(&mut self, property: Property, packet: &'static str) -> Result<(), DecodeError> {
        match property {
            Property::Text(id @ REASON_STRING, v) => once(&mut self.reason_string, v, id),
            Property::User(name, value) => {
                self.user_properties.push((name, value));
                Ok(())
            }
            other => Err(not_allowed(&other, packet)),
        }
    }

    fn encode<S: Sink>(&self, sink: &mut S) -> Result<(), EncodeError> {
        put_str(sink, REASON_STRING, self.reason_string.as_ref())?;
        put_users(sink, &self.user_properties)
    }
}

impl Properties for SubscribeProperties {
    fn set(&mut self, property: Property, packet: &'static str) -> Result<(), DecodeError> {
        match property {
            Property::VarInt(id @ SUBSCRIPTION_IDENTIFIER, v) => {
                once(&mut self.subscription_identifier, non_zero_u32(v, id)?, id)
            }
            Property::User(name, value) => {
                self.user_properties.push((name, value));
                Ok(())
            }
            other => Err(not_allowed(&other, packet)),
        }
    }

    fn encode<S: Sink>(&self, sink: &mut S) -> Result<(), EncodeError> {
        if let Some(id) = self.subscription_identifier {
            put_var_int(sink, SUBSCRIPTION_IDENTIFIER, id)?;
        }
        put_users(sink, &self.user_properties)
    }
}

/// UNSUBSCRIBE carries User Properties only.
impl Properties for Vec<UserProperty> {
    fn set(&mut self, property: Property, packet: &'static str) -> Result<(), DecodeError> {
        match property {
            Property::User(name, value) => {
                self.push((name, value));
                Ok(())
            }
            other => Err(not_allowed(&other, packet)),
        }
    }

    fn encode<S: Sink>(&self, sink: &mut S) -> Result<(), EncodeError> {
        put_users(sink, self)
    }
}

impl Properties for DisconnectProperties {
    fn set(&mut self, property: Property, packet: &'static str) -> Result<(), DecodeError> {
        use Property::*;
        match property {
            U32(id @ SESSION_EXPIRY_INTERVAL, v) => once(&mut self.session_expiry_interval, v, id),
            Text(id @ REASON_STRING, v) => once(&mut self.reason_string, v, id),
            User(name, value) => {
                self.user_properties.push((name, value));
                Ok(())
            }
            Text(id @ SERVER_REFERENCE, v) => once(&mut self.server_reference, v, id),
            other => Err(not_allowed(&other, packet)),
        }
    }

    fn encode<S: Sink>(&self, sink: &mut S) -> Result<(), EncodeError> {
        put_u32(sink, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval)?;
        put_str(sink, SERVER_REFERENCE, self.server_reference.as_ref())?;
        put_str(sink, REASON_STRING, self.reason_string.as_ref())?;
        put_users(sink, &self.user_properties)
    }
}

impl Properties for AuthProperties {
    fn set(&mut self, property: Property, packet: &'static str) -> Result<(), DecodeError> {
        use Property::*;
        match property {
            Text(id @ AUTHENTICATION_METHOD, v) => once(&mut self.authentication_method, v, id),
            Binary(id @ AUTHENTICATION_DATA, v) => once(&mut self.authentication_data, v, id),
            Text(id @ REASON_STRING, v) => once(&mut self.reason_string, v, id),
            User(name, value) => {
                self.user_properties.push((name, value));
                Ok(())
            }
            other => Err(not_allowed(&other, packet)),
        }
    }

    fn encode<S: Sink>(&self, sink: &mut S) -> Result<(), EncodeError> {
        put_str(
            sink,
            AUTHENTICATION_METHOD,
            self.authentication_method.as_ref(),
        )?;
        put_bin(sink, AUTHENTICATION_DATA, self.authentication_data.as_ref())?;
        put_str(sink, REASON_STRING, self.reason_string.as_ref())?;
        put_users(sink, &self.user_properties)
    }
}
