//! The encoder: [`Packet`] to canonical wire bytes for one protocol version.
//!
//! Each packet's body is described once, generically over [`Sink`]: [`encoded_len`] runs the
//! description through a byte counter (no allocation), [`encode`] reserves exactly that much
//! and runs it through a `BytesMut` writer. The encoder refuses only what cannot be written
//! (a string over 65,535 bytes, a packet over 268,435,455, AUTH in 3.1.1, a QoS > 0 PUBLISH
//! without packet identifier); it does not re-check protocol rules such as non-zero packet
//! identifiers, so test clients can produce invalid-but-representable packets.
//!
//! Version rules: 3.1/3.1.1 forms drop properties, v5-only subscription options and the
//! reason codes of PUBACK/PUBREC/PUBREL/PUBCOMP/UNSUBACK/DISCONNECT; CONNACK and SUBACK codes
//! are mapped with `reason.rs`. In v5, PUBACK/PUBREC/PUBREL/PUBCOMP/DISCONNECT/AUTH with
//! reason Success and no properties use the short forms (MQTT 5.0 sections 3.4.2.1, 3.14.2.1,
//! 3.15.2.1), as other brokers do.

use bytes::{BufMut, BytesMut};

use crate::wire::{self, MAX_VAR_INT, var_int_len};
use crate::write::{BufSink, LenSink, Sink, put_var_int};
use crate::{
    AckProperties, Auth, ConnAck, Connect, Disconnect, Packet, PacketId, ProtocolVersion, Publish,
    ReasonCode, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
};

/// Why a [`Packet`] cannot be written in the requested protocol version.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// A UTF-8 Encoded String longer than 65,535 bytes.
    #[error("[MQTT-1.5.4] {field} is {len} bytes; a UTF-8 string holds at most 65535")]
    StringTooLong {
        /// The string's role, e.g. "topic name".
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// Binary Data (will payload, password, correlation or authentication data) longer
    /// than 65,535 bytes.
    #[error("[MQTT-1.5.6] {field} is {len} bytes; binary data holds at most 65535")]
    BinaryTooLong {
        /// The field's role, e.g. "will payload".
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// A value (remaining length, property length, Subscription Identifier) above the
    /// Variable Byte Integer maximum of 268,435,455.
    #[error("[MQTT-1.5.5] {field} {value} exceeds the variable byte integer maximum 268435455")]
    VarIntTooLarge {
        /// What the integer encodes.
        field: &'static str,
        /// The value.
        value: usize,
    },
    /// The packet does not exist in this protocol version (AUTH before MQTT 5.0).
    #[error("[MQTT-2.1.2] {packet} does not exist in MQTT {protocol:?}")]
    NotInProtocol {
        /// The packet's name.
        packet: &'static str,
        /// The protocol version asked for.
        protocol: ProtocolVersion,
    },
    /// A PUBLISH whose packet identifier presence does not match its QoS.
    #[error("[MQTT-2.2.1-2] a PUBLISH carries a packet identifier exactly when its QoS is 1 or 2")]
    PacketIdMismatch,
}

/// Appends `packet` to `buf` in the wire format of `protocol`.
///
/// A CONNECT is always written in its own `Connect::protocol` (it is what selects the
/// protocol). On error nothing is appended.
pub fn encode(
    packet: &Packet,
    protocol: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    let remaining = remaining_length(packet, protocol)?;
    let header_len = 1 + var_int_len(remaining).unwrap_or(4);
    buf.reserve(header_len.saturating_add(remaining));
    let start = buf.len();
    let result = put_var_int_after(buf, first_byte(packet), remaining)
        .and_then(|()| body(packet, protocol, &mut BufSink { buf }));
    if result.is_err() {
        buf.truncate(start);
    }
    result
}

/// Exact total size in bytes (fixed header included) that [`encode`] would write, computed
/// without allocating. Used to honour a peer's Maximum Packet Size.
pub fn encoded_len(packet: &Packet, protocol: ProtocolVersion) -> Result<usize, EncodeError> {
    let remaining = remaining_length(packet, protocol)?;
    let header_len = 1 + var_int_len(remaining).unwrap_or(4);
    Ok(header_len.saturating_add(remaining))
}

fn put_var_int_after(buf: &mut BytesMut, first: u8, remaining: usize) -> Result<(), EncodeError> {
    buf.put_u8(first);
    put_var_int(buf, remaining, "remaining length")
}

/// The Remaining Length: the body's size, checked against the 268,435,455 limit.
fn remaining_length(packet: &Packet, protocol: ProtocolVersion) -> Result<usize, EncodeError> {
    let len = LenSink::measure(|sink| body(packet, protocol, sink))?;
    if len > MAX_VAR_INT {
        return Err(EncodeError::VarIntTooLarge {
            field: "remaining length",
            value: len,
        });
    }
    Ok(len)
}

/// Byte 1 of the fixed header: packet type and flags [MQTT-2.1.3].
fn first_byte(packet: &Packet) -> u8 {
    let (packet_type, flags) = match packet {
        Packet::Connect(_) => (wire::CONNECT, 0),
        Packet::ConnAck(_) => (wire::CONNACK, 0),
        Packet::Publish(p) => {
            let flags = (u8::from(p.dup) << 3) | (p.qos.as_u8() << 1) | u8::from(p.retain);
            (wire::PUBLISH, flags)
        }
        Packet::PubAck(_) => (wire::PUBACK, 0),
        Packet::PubRec(_) => (wire::PUBREC, 0),
        Packet::PubRel(_) => (wire::PUBREL, 0b0010),
        Packet::PubComp(_) => (wire::PUBCOMP, 0),
        Packet::Subscribe(_) => (wire::SUBSCRIBE, 0b0010),
        Packet::SubAck(_) => (wire::SUBACK, 0),
        Packet::Unsubscribe(_) => (wire::UNSUBSCRIBE, 0b0010),
        Packet::UnsubAck(_) => (wire::UNSUBACK, 0),
        Packet::PingReq => (wire::PINGREQ, 0),
        Packet::PingResp => (wire::PINGRESP, 0),
        Packet::Disconnect(_) => (wire::DISCONNECT, 0),
        Packet::Auth(_) => (wire::AUTH, 0),
    };
    (packet_type << 4) | flags
}

/// Describes the variable header and payload of `packet` to `sink`.
fn body<S: Sink>(
    packet: &Packet,
    protocol: ProtocolVersion,
    sink: &mut S,
) -> Result<(), EncodeError> {
    let v5 = protocol.is_v5();
    match packet {
        Packet::Connect(connect) => connect_body(connect, sink),
        Packet::ConnAck(connack) => connack_body(connack, protocol, sink),
        Packet::Publish(publish) => publish_body(publish, v5, sink),
        Packet::PubAck(p) => ack_body(p.packet_id, p.reason_code, &p.properties, v5, sink),
        Packet::PubRec(p) => ack_body(p.packet_id, p.reason_code, &p.properties, v5, sink),
        Packet::PubRel(p) => ack_body(p.packet_id, p.reason_code, &p.properties, v5, sink),
        Packet::PubComp(p) => ack_body(p.packet_id, p.reason_code, &p.properties, v5, sink),
        Packet::Subscribe(subscribe) => subscribe_body(subscribe, v5, sink),
        Packet::SubAck(suback) => suback_body(suback, v5, sink),
        Packet::Unsubscribe(unsubscribe) => unsubscribe_body(unsubscribe, v5, sink),
        Packet::UnsubAck(unsuback) => unsuback_body(unsuback, v5, sink),
        Packet::PingReq | Packet::PingResp => Ok(()),
        Packet::Disconnect(disconnect) => disconnect_body(disconnect, v5, sink),
        Packet::Auth(auth) => auth_body(auth, protocol, sink),
    }
}

fn connect_body<S: Sink>(connect: &Connect, sink: &mut S) -> Result<(), EncodeError> {
    let protocol = connect.protocol;
    let name = if protocol == ProtocolVersion::V3_1 {
        "MQIsdp"
    } else {
        "MQTT"
    };
    sink.string(name, "protocol name")?;
    sink.u8(protocol.level())?;
    let mut flags = 0u8;
    if connect.clean_start {
        flags |= 0x02;
    }
    if let Some(will) = &connect.will {
        flags |= 0x04 | (will.qos.as_u8() << 3);
        if will.retain {
            flags |= 0x20;
        }
    }
    if connect.password.is_some() {
        flags |= 0x40;
    }
    if connect.username.is_some() {
        flags |= 0x80;
    }
    sink.u8(flags)?;
    sink.u16(connect.keep_alive)?;
    if protocol.is_v5() {
        sink.properties(&connect.properties)?;
    }
    sink.string(&connect.client_id, "client identifier")?;
    if let Some(will) = &connect.will {
        if protocol.is_v5() {
            sink.properties(&will.properties)?;
        }
        sink.string(&will.topic, "will topic")?;
        sink.binary(&will.payload, "will payload")?;
    }
    if let Some(username) = &connect.username {
        sink.string(username, "user name")?;
    }
    if let Some(password) = &connect.password {
        sink.binary(password, "password")?;
    }
    Ok(())
}

fn connack_body<S: Sink>(
    connack: &ConnAck,
    protocol: ProtocolVersion,
    sink: &mut S,
) -> Result<(), EncodeError> {
    // MQTT 3.1 has no Session Present flag: its first CONNACK byte is reserved.
    let session_present = connack.session_present && protocol != ProtocolVersion::V3_1;
    sink.u8(u8::from(session_present))?;
    if protocol.is_v5() {
        sink.u8(connack.reason_code.as_u8())?;
        sink.properties(&connack.properties)
    } else {
        sink.u8(connack.reason_code.to_v3_connack())
    }
}

fn publish_body<S: Sink>(publish: &Publish, v5: bool, sink: &mut S) -> Result<(), EncodeError> {
    sink.string(&publish.topic, "topic name")?;
    match (publish.qos.as_u8(), publish.packet_id) {
        (0, None) => {}
        (1 | 2, Some(id)) => sink.u16(id)?,
        _ => return Err(EncodeError::PacketIdMismatch),
    }
    if v5 {
        match &publish.properties {
            Some(properties) => sink.properties(properties.as_ref())?,
            None => sink.var_int(0, "property length")?,
        }
    }
    sink.raw(&publish.payload)
}

fn ack_is_empty(properties: &AckProperties) -> bool {
    properties.reason_string.is_none() && properties.user_properties.is_empty()
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP share one layout (MQTT 5.0 section 3.4.2).
fn ack_body<S: Sink>(
    packet_id: PacketId,
    reason_code: ReasonCode,
    properties: &AckProperties,
    v5: bool,
    sink: &mut S,
) -> Result<(), EncodeError> {
    sink.u16(packet_id)?;
    if !v5 {
        return Ok(());
    }
    let no_properties = ack_is_empty(properties);
    if reason_code == ReasonCode::Success && no_properties {
        return Ok(());
    }
    sink.u8(reason_code.as_u8())?;
    if no_properties {
        Ok(())
    } else {
        sink.properties(properties)
    }
}

fn options_byte(options: &SubscriptionOptions, v5: bool) -> u8 {
    let mut byte = options.qos.as_u8();
    if v5 {
        byte |= u8::from(options.no_local) << 2;
        byte |= u8::from(options.retain_as_published) << 3;
        byte |= (options.retain_handling as u8) << 4;
    }
    byte
}

fn subscribe_body<S: Sink>(
    subscribe: &Subscribe,
    v5: bool,
    sink: &mut S,
) -> Result<(), EncodeError> {
    sink.u16(subscribe.packet_id)?;
    if v5 {
        sink.properties(&subscribe.properties)?;
    }
    for (filter, options) in &subscribe.filters {
        sink.string(filter, "topic filter")?;
        sink.u8(options_byte(options, v5))?;
    }
    Ok(())
}

fn suback_body<S: Sink>(suback: &SubAck, v5: bool, sink: &mut S) -> Result<(), EncodeError> {
    sink.u16(suback.packet_id)?;
    if v5 {
        sink.properties(&suback.properties)?;
    }
    for code in &suback.reason_codes {
        sink.u8(if v5 {
            code.as_u8()
        } else {
            code.to_v3_suback()
        })?;
    }
    Ok(())
}

fn unsubscribe_body<S: Sink>(
    unsubscribe: &Unsubscribe,
    v5: bool,
    sink: &mut S,
) -> Result<(), EncodeError> {
    sink.u16(unsubscribe.packet_id)?;
    if v5 {
        sink.properties(&unsubscribe.user_properties)?;
    }
    for filter in &unsubscribe.filters {
        sink.string(filter, "topic filter")?;
    }
    Ok(())
}

fn unsuback_body<S: Sink>(unsuback: &UnsubAck, v5: bool, sink: &mut S) -> Result<(), EncodeError> {
    sink.u16(unsuback.packet_id)?;
    if v5 {
        sink.properties(&unsuback.properties)?;
        for code in &unsuback.reason_codes {
            sink.u8(code.as_u8())?;
        }
    }
    Ok(())
}

fn disconnect_body<S: Sink>(
    disconnect: &Disconnect,
    v5: bool,
    sink: &mut S,
) -> Result<(), EncodeError> {
    if !v5 {
        return Ok(());
    }
    let properties = &disconnect.properties;
    let no_properties = properties.session_expiry_interval.is_none()
        && properties.reason_string.is_none()
        && properties.user_properties.is_empty()
        && properties.server_reference.is_none();
    if disconnect.reason_code == ReasonCode::Success && no_properties {
        return Ok(());
    }
    sink.u8(disconnect.reason_code.as_u8())?;
    if no_properties {
        Ok(())
    } else {
        sink.properties(properties)
    }
}

fn auth_body<S: Sink>(
    auth: &Auth,
    protocol: ProtocolVersion,
    sink: &mut S,
) -> Result<(), EncodeError> {
    if !protocol.is_v5() {
        return Err(EncodeError::NotInProtocol {
            packet: "AUTH",
            protocol,
        });
    }
    let properties = &auth.properties;
    let no_properties = properties.authentication_method.is_none()
        && properties.authentication_data.is_none()
        && properties.reason_string.is_none()
        && properties.user_properties.is_empty();
    if auth.reason_code == ReasonCode::Success && no_properties {
        return Ok(());
    }
    sink.u8(auth.reason_code.as_u8())?;
    // Unlike DISCONNECT, the spec only defines omitting both fields for AUTH, so the
    // Property Length is always written once the Reason Code is.
    sink.properties(properties)
}
