//! The decoder: wire bytes to [`Packet`], strictly.
//!
//! Order of work, so a hostile peer costs little: read the fixed header, check the packet
//! type, the flags and the size limit from it alone, and only then wait for and parse the
//! body. Binary fields (payload, password, correlation and authentication data) are
//! zero-copy slices of the frozen packet. This module owns the fixed header and the packet
//! layouts; the data types are read by `read.rs`, properties by `properties.rs`.

use bytes::{Buf, BytesMut};

use crate::properties::{read_boxed_properties, read_properties};
use crate::read::Reader;
use crate::wire::{self, packet_name, parse_var_int};
use crate::{
    AckProperties, Auth, AuthProperties, ConnAck, ConnAckProperties, Connect, ConnectProperties,
    DecodeError, Disconnect, DisconnectProperties, LastWill, Packet, PacketId, ProtocolVersion,
    PubAck, PubComp, PubRec, PubRel, Publish, PublishProperties, QoS, ReasonCode, RetainHandling,
    SubAck, Subscribe, SubscribeProperties, SubscriptionOptions, UnsubAck, Unsubscribe,
    WillProperties,
};

/// The fixed header of a packet [MQTT-2.1]: byte 1 and the Remaining Length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader {
    /// Bits 7-4 of byte 1.
    pub packet_type: u8,
    /// Bits 3-0 of byte 1.
    pub flags: u8,
    /// Bytes after the fixed header.
    pub remaining_length: u32,
    /// Size of the fixed header itself: 2 to 5 bytes.
    pub header_len: usize,
}

impl FixedHeader {
    /// Total packet size: `header_len + remaining_length`.
    pub fn packet_len(&self) -> usize {
        usize::try_from(self.remaining_length)
            .unwrap_or(usize::MAX)
            .saturating_add(self.header_len)
    }
}

/// Parses the fixed header at the front of `buf` without consuming anything.
///
/// `Ok(None)` when fewer than the full fixed header bytes are present. Errors on a
/// malformed Remaining Length (more than 4 bytes, or not minimally encoded) [MQTT-1.5.5-1].
pub fn peek_fixed_header(buf: &[u8]) -> Result<Option<FixedHeader>, DecodeError> {
    let Some((&first, rest)) = buf.split_first() else {
        return Ok(None);
    };
    Ok(
        parse_var_int(rest, "remaining length")?.map(|(remaining_length, used)| FixedHeader {
            packet_type: first >> 4,
            flags: first & 0x0F,
            remaining_length,
            header_len: 1 + used,
        }),
    )
}

/// Decodes a stream of packets of one connection.
///
/// Until a CONNECT has been decoded the protocol is unknown and only CONNECT is accepted;
/// decoding it fixes the protocol. Clients (which never receive CONNECT) call
/// [`Decoder::set_protocol`] after sending theirs.
#[derive(Debug, Clone)]
pub struct Decoder {
    protocol: Option<ProtocolVersion>,
    max_packet_size: u32,
}

impl Decoder {
    /// A decoder that accepts packets of at most `max_packet_size` bytes (fixed header
    /// included) and expects a CONNECT first.
    pub fn new(max_packet_size: u32) -> Decoder {
        Decoder {
            protocol: None,
            max_packet_size,
        }
    }

    /// The protocol in force, `None` before CONNECT.
    ///
    /// Also set when a CONNECT names a supported protocol but fails to decode further (a bad
    /// property, say), so that the caller can still answer in the right CONNACK form.
    pub fn protocol(&self) -> Option<ProtocolVersion> {
        self.protocol
    }

    /// Fixes the protocol, e.g. on the client side after sending CONNECT.
    pub fn set_protocol(&mut self, protocol: ProtocolVersion) {
        self.protocol = Some(protocol);
    }

    /// The size limit in force, in bytes.
    pub fn max_packet_size(&self) -> u32 {
        self.max_packet_size
    }

    /// Changes the size limit, e.g. after the CONNACK that announced it.
    pub fn set_max_packet_size(&mut self, max: u32) {
        self.max_packet_size = max;
    }

    /// Decodes one complete packet from the front of `buf` and advances `buf` past it.
    ///
    /// `Ok(None)`: more bytes are needed; nothing was consumed. The packet type, flags and
    /// size limit are checked from the fixed header alone, so an oversize packet is refused
    /// before its body is buffered. This never reserves capacity in `buf`: a peer announcing
    /// a large packet must not make us allocate for bytes it has not sent.
    ///
    /// Decoding a CONNECT sets the protocol to the CONNECT's version (see
    /// [`Decoder::protocol`]). After an error the stream cannot be resynchronised and the
    /// connection must be closed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let Some(header) = peek_fixed_header(buf)? else {
            return Ok(None);
        };
        self.check_header(&header)?;
        let size = u64::from(header.remaining_length) + header.header_len as u64;
        if size > u64::from(self.max_packet_size) {
            return Err(DecodeError::PacketTooLarge {
                size,
                max: self.max_packet_size,
            });
        }
        let packet_len = header.packet_len();
        if buf.len() < packet_len {
            return Ok(None);
        }
        let mut frame = buf.split_to(packet_len).freeze();
        frame.advance(header.header_len);
        let mut reader = Reader::new(frame);
        let packet = match self.protocol {
            None => {
                let protocol = decode_protocol(&mut reader)?;
                self.protocol = Some(protocol);
                Packet::Connect(Box::new(decode_connect(protocol, reader)?))
            }
            Some(protocol) => decode_packet(&header, protocol, reader)?,
        };
        Ok(Some(packet))
    }

    /// Everything that can be refused from the fixed header alone.
    fn check_header(&self, header: &FixedHeader) -> Result<(), DecodeError> {
        let packet_type = header.packet_type;
        if packet_type == 0 {
            return Err(DecodeError::InvalidPacketType { packet_type });
        }
        match (self.protocol, packet_type) {
            (None, wire::CONNECT) => {}
            (None, _) => return Err(DecodeError::FirstPacketNotConnect { packet_type }),
            (Some(_), wire::CONNECT) => return Err(DecodeError::SecondConnect),
            (Some(protocol), wire::AUTH) if !protocol.is_v5() => {
                return Err(DecodeError::InvalidPacketType { packet_type });
            }
            (Some(_), _) => {}
        }
        check_flags(packet_type, header.flags, self.protocol)
    }
}

/// Fixed header flags [MQTT-2.1.3-1]: PUBREL, SUBSCRIBE and UNSUBSCRIBE carry 0b0010,
/// PUBLISH carries DUP/QoS/RETAIN, everything else 0.
fn check_flags(
    packet_type: u8,
    flags: u8,
    protocol: Option<ProtocolVersion>,
) -> Result<(), DecodeError> {
    let valid = match packet_type {
        wire::PUBLISH => {
            let qos = (flags >> 1) & 0b11;
            if qos == 3 {
                return Err(DecodeError::InvalidPublishQoS);
            }
            if qos == 0 && flags & 0b1000 != 0 {
                return Err(DecodeError::DupWithQoS0);
            }
            true
        }
        // MQTT 3.1 clients may set DUP on a retransmitted PUBREL, SUBSCRIBE or UNSUBSCRIBE
        // (3.1 treated them as QoS 1 messages); 3.1.1 made the flags fixed.
        wire::PUBREL | wire::SUBSCRIBE | wire::UNSUBSCRIBE => {
            flags == 0b0010 || (protocol == Some(ProtocolVersion::V3_1) && flags == 0b1010)
        }
        _ => flags == 0,
    };
    if valid {
        Ok(())
    } else {
        Err(DecodeError::InvalidFixedHeaderFlags { packet_type, flags })
    }
}

fn decode_packet(
    header: &FixedHeader,
    protocol: ProtocolVersion,
    mut r: Reader,
) -> Result<Packet, DecodeError> {
    let v5 = protocol.is_v5();
    let packet_type = header.packet_type;
    let packet = match packet_type {
        wire::CONNECT => return Err(DecodeError::SecondConnect),
        wire::CONNACK => Packet::ConnAck(Box::new(decode_connack(&mut r, protocol)?)),
        wire::PUBLISH => Packet::Publish(decode_publish(header.flags, v5, &mut r)?),
        wire::PUBACK => {
            let (packet_id, reason_code, properties) = decode_ack(packet_type, v5, &mut r)?;
            Packet::PubAck(PubAck {
                packet_id,
                reason_code,
                properties,
            })
        }
        wire::PUBREC => {
            let (packet_id, reason_code, properties) = decode_ack(packet_type, v5, &mut r)?;
            Packet::PubRec(PubRec {
                packet_id,
                reason_code,
                properties,
            })
        }
        wire::PUBREL => {
            let (packet_id, reason_code, properties) = decode_ack(packet_type, v5, &mut r)?;
            Packet::PubRel(PubRel {
                packet_id,
                reason_code,
                properties,
            })
        }
        wire::PUBCOMP => {
            let (packet_id, reason_code, properties) = decode_ack(packet_type, v5, &mut r)?;
            Packet::PubComp(PubComp {
                packet_id,
                reason_code,
                properties,
            })
        }
        wire::SUBSCRIBE => Packet::Subscribe(decode_subscribe(v5, &mut r)?),
        wire::SUBACK => Packet::SubAck(Box::new(decode_suback(v5, &mut r)?)),
        wire::UNSUBSCRIBE => Packet::Unsubscribe(decode_unsubscribe(v5, &mut r)?),
        wire::UNSUBACK => Packet::UnsubAck(Box::new(decode_unsuback(v5, &mut r)?)),
        wire::PINGREQ => Packet::PingReq,
        wire::PINGRESP => Packet::PingResp,
        wire::DISCONNECT => Packet::Disconnect(Box::new(decode_disconnect(v5, &mut r)?)),
        wire::AUTH if v5 => Packet::Auth(Box::new(decode_auth(&mut r)?)),
        _ => return Err(DecodeError::InvalidPacketType { packet_type }),
    };
    r.finish(packet_type)?;
    Ok(packet)
}

fn packet_id(r: &mut Reader, packet_type: u8) -> Result<PacketId, DecodeError> {
    match r.u16("packet identifier")? {
        0 => Err(DecodeError::ZeroPacketId { packet_type }),
        id => Ok(id),
    }
}

/// Reads a v5 reason code and checks it is defined for the packet (MQTT 5.0 section 2.4).
fn reason_code(r: &mut Reader, packet_type: u8) -> Result<ReasonCode, DecodeError> {
    let code = r.u8("reason code")?;
    ReasonCode::from_u8(code)
        .filter(|reason| allowed_in(packet_type, *reason))
        .ok_or(DecodeError::InvalidReasonCode { packet_type, code })
}

/// The v5 reason codes each packet may carry (the "Packets" column of MQTT 5.0 table 2-6).
fn allowed_in(packet_type: u8, reason: ReasonCode) -> bool {
    use ReasonCode::*;
    match packet_type {
        wire::CONNACK => matches!(
            reason,
            Success
                | UnspecifiedError
                | MalformedPacket
                | ProtocolError
                | ImplementationSpecificError
                | UnsupportedProtocolVersion
                | ClientIdentifierNotValid
                | BadUserNameOrPassword
                | NotAuthorized
                | ServerUnavailable
                | ServerBusy
                | Banned
                | BadAuthenticationMethod
                | TopicNameInvalid
                | PacketTooLarge
                | QuotaExceeded
                | PayloadFormatInvalid
                | RetainNotSupported
                | QoSNotSupported
                | UseAnotherServer
                | ServerMoved
                | ConnectionRateExceeded
        ),
        wire::PUBACK | wire::PUBREC => matches!(
            reason,
            Success
                | NoMatchingSubscribers
                | UnspecifiedError
                | ImplementationSpecificError
                | NotAuthorized
                | TopicNameInvalid
                | PacketIdentifierInUse
                | QuotaExceeded
                | PayloadFormatInvalid
        ),
        wire::PUBREL | wire::PUBCOMP => matches!(reason, Success | PacketIdentifierNotFound),
        wire::SUBACK => matches!(
            reason,
            Success
                | GrantedQoS1
                | GrantedQoS2
                | UnspecifiedError
                | ImplementationSpecificError
                | NotAuthorized
                | TopicFilterInvalid
                | PacketIdentifierInUse
                | QuotaExceeded
                | SharedSubscriptionsNotSupported
                | SubscriptionIdentifiersNotSupported
                | WildcardSubscriptionsNotSupported
        ),
        wire::UNSUBACK => matches!(
            reason,
            Success
                | NoSubscriptionExisted
                | UnspecifiedError
                | ImplementationSpecificError
                | NotAuthorized
                | TopicFilterInvalid
                | PacketIdentifierInUse
        ),
        // Section 3.14.2.1 omits 0x8C, table 2-6 lists it for DISCONNECT: accept it.
        wire::DISCONNECT => !matches!(
            reason,
            GrantedQoS1
                | GrantedQoS2
                | NoMatchingSubscribers
                | NoSubscriptionExisted
                | ContinueAuthentication
                | ReAuthenticate
                | UnsupportedProtocolVersion
                | ClientIdentifierNotValid
                | BadUserNameOrPassword
                | ServerUnavailable
                | Banned
                | PacketIdentifierInUse
                | PacketIdentifierNotFound
        ),
        wire::AUTH => matches!(reason, Success | ContinueAuthentication | ReAuthenticate),
        _ => false,
    }
}

/// The Protocol Name and Protocol Level at the start of CONNECT [MQTT-3.1.2-1/2].
fn decode_protocol(r: &mut Reader) -> Result<ProtocolVersion, DecodeError> {
    let name = r.binary("protocol name")?;
    let level = r.u8("protocol level")?;
    match (name.as_ref(), level) {
        (b"MQTT", 4) => Ok(ProtocolVersion::V3_1_1),
        (b"MQTT", 5) => Ok(ProtocolVersion::V5),
        (b"MQIsdp", 3) => Ok(ProtocolVersion::V3_1),
        (b"MQTT" | b"MQIsdp", _) => Err(DecodeError::UnsupportedProtocolVersion { level }),
        _ => Err(DecodeError::InvalidProtocolName),
    }
}

/// The rest of CONNECT, after [`decode_protocol`].
fn decode_connect(protocol: ProtocolVersion, mut r: Reader) -> Result<Connect, DecodeError> {
    let v5 = protocol.is_v5();
    let flags = r.u8("connect flags")?;
    if flags & 0x01 != 0 {
        return Err(DecodeError::ConnectReservedFlag);
    }
    let has_will = flags & 0x04 != 0;
    let will_qos = (flags >> 3) & 0b11;
    let will_retain = flags & 0x20 != 0;
    if !has_will && (will_qos != 0 || will_retain) {
        return Err(DecodeError::WillFlagsWithoutWill { flags });
    }
    let will_qos = QoS::from_u8(will_qos).ok_or(DecodeError::InvalidWillQoS)?;
    let has_password = flags & 0x40 != 0;
    let has_username = flags & 0x80 != 0;
    if !v5 && has_password && !has_username {
        return Err(DecodeError::PasswordWithoutUsername);
    }
    let keep_alive = r.u16("keep alive")?;
    let properties: ConnectProperties = if v5 {
        read_properties(&mut r, "CONNECT")?
    } else {
        ConnectProperties::default()
    };
    if properties.authentication_data.is_some() && properties.authentication_method.is_none() {
        return Err(DecodeError::AuthDataWithoutMethod);
    }
    let client_id = r.string("client identifier")?;
    let will = if has_will {
        let properties: WillProperties = if v5 {
            read_properties(&mut r, "will properties")?
        } else {
            WillProperties::default()
        };
        let topic = r.string("will topic")?;
        let payload = r.binary("will payload")?;
        Some(LastWill {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            properties,
        })
    } else {
        None
    };
    let username = if has_username {
        Some(r.string("user name")?)
    } else {
        None
    };
    let password = if has_password {
        Some(r.binary("password")?)
    } else {
        None
    };
    r.finish(wire::CONNECT)?;
    Ok(Connect {
        protocol,
        clean_start: flags & 0x02 != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })
}

fn decode_connack(r: &mut Reader, protocol: ProtocolVersion) -> Result<ConnAck, DecodeError> {
    let flags = r.u8("connect acknowledge flags")?;
    // In MQTT 3.1 this byte is reserved and unused; 3.1.1 and 5.0 define bit 0 only.
    let session_present = match protocol {
        ProtocolVersion::V3_1 => false,
        _ if flags & 0xFE != 0 => return Err(DecodeError::InvalidConnAckFlags { flags }),
        _ => flags & 0x01 != 0,
    };
    if protocol.is_v5() {
        let reason_code = reason_code(r, wire::CONNACK)?;
        let properties: ConnAckProperties = read_properties(r, "CONNACK")?;
        Ok(ConnAck {
            session_present,
            reason_code,
            properties,
        })
    } else {
        let code = r.u8("connect return code")?;
        let reason_code =
            ReasonCode::from_v3_connack(code).ok_or(DecodeError::InvalidReasonCode {
                packet_type: wire::CONNACK,
                code,
            })?;
        Ok(ConnAck {
            session_present,
            reason_code,
            properties: ConnAckProperties::default(),
        })
    }
}

fn decode_publish(flags: u8, v5: bool, r: &mut Reader) -> Result<Publish, DecodeError> {
    // `check_flags` has rejected QoS 3 already.
    let qos = QoS::from_u8((flags >> 1) & 0b11).ok_or(DecodeError::InvalidPublishQoS)?;
    let topic = r.string("topic name")?;
    let packet_id = if qos == QoS::AtMostOnce {
        None
    } else {
        Some(packet_id(r, wire::PUBLISH)?)
    };
    let properties: Option<Box<PublishProperties>> = if v5 {
        read_boxed_properties(r, "PUBLISH")?
    } else {
        None
    };
    if topic.is_empty() && properties.as_ref().is_none_or(|p| p.topic_alias.is_none()) {
        return Err(DecodeError::MissingTopicName);
    }
    if topic.contains(['+', '#']) {
        return Err(DecodeError::WildcardInTopicName);
    }
    Ok(Publish {
        dup: flags & 0b1000 != 0,
        qos,
        retain: flags & 0b0001 != 0,
        topic,
        packet_id,
        properties,
        payload: r.rest(),
    })
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP. In v5 a Remaining Length of 2 means Success with no
/// properties, 3 means a reason code with no properties (MQTT 5.0 section 3.4.2.1).
fn decode_ack(
    packet_type: u8,
    v5: bool,
    r: &mut Reader,
) -> Result<(PacketId, ReasonCode, AckProperties), DecodeError> {
    let id = packet_id(r, packet_type)?;
    if !v5 || r.is_empty() {
        return Ok((id, ReasonCode::Success, AckProperties::default()));
    }
    let reason = reason_code(r, packet_type)?;
    let properties = if r.is_empty() {
        AckProperties::default()
    } else {
        read_properties(r, packet_name(packet_type))?
    };
    Ok((id, reason, properties))
}

fn subscription_options(byte: u8, v5: bool) -> Result<SubscriptionOptions, DecodeError> {
    let reserved = if v5 { 0b1100_0000 } else { 0b1111_1100 };
    if byte & reserved != 0 {
        return Err(DecodeError::InvalidSubscriptionOptions { options: byte });
    }
    let qos = QoS::from_u8(byte & 0b11).ok_or(DecodeError::InvalidSubscriptionQoS)?;
    let retain_handling = match (byte >> 4) & 0b11 {
        0 => RetainHandling::SendAtSubscribe,
        1 => RetainHandling::SendIfNewSubscription,
        2 => RetainHandling::DoNotSend,
        _ => return Err(DecodeError::InvalidRetainHandling),
    };
    Ok(SubscriptionOptions {
        qos,
        no_local: byte & 0b0100 != 0,
        retain_as_published: byte & 0b1000 != 0,
        retain_handling,
    })
}

fn decode_subscribe(v5: bool, r: &mut Reader) -> Result<Subscribe, DecodeError> {
    let packet_id = packet_id(r, wire::SUBSCRIBE)?;
    let properties: SubscribeProperties = if v5 {
        read_properties(r, "SUBSCRIBE")?
    } else {
        SubscribeProperties::default()
    };
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.string("topic filter")?;
        let options = subscription_options(r.u8("subscription options")?, v5)?;
        filters.push((filter, options));
    }
    if filters.is_empty() {
        return Err(DecodeError::NoTopicFilters {
            packet_type: wire::SUBSCRIBE,
        });
    }
    Ok(Subscribe {
        packet_id,
        filters,
        properties,
    })
}

fn decode_suback(v5: bool, r: &mut Reader) -> Result<SubAck, DecodeError> {
    let packet_id = packet_id(r, wire::SUBACK)?;
    let properties: AckProperties = if v5 {
        read_properties(r, "SUBACK")?
    } else {
        AckProperties::default()
    };
    let mut reason_codes = Vec::new();
    while !r.is_empty() {
        let code = if v5 {
            reason_code(r, wire::SUBACK)?
        } else {
            match r.u8("return code")? {
                0x00 => ReasonCode::Success,
                0x01 => ReasonCode::GrantedQoS1,
                0x02 => ReasonCode::GrantedQoS2,
                0x80 => ReasonCode::UnspecifiedError,
                code => {
                    return Err(DecodeError::InvalidReasonCode {
                        packet_type: wire::SUBACK,
                        code,
                    });
                }
            }
        };
        reason_codes.push(code);
    }
    Ok(SubAck {
        packet_id,
        reason_codes,
        properties,
    })
}

fn decode_unsubscribe(v5: bool, r: &mut Reader) -> Result<Unsubscribe, DecodeError> {
    let packet_id = packet_id(r, wire::UNSUBSCRIBE)?;
    let user_properties = if v5 {
        read_properties(r, "UNSUBSCRIBE")?
    } else {
        Vec::new()
    };
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(r.string("topic filter")?);
    }
    if filters.is_empty() {
        return Err(DecodeError::NoTopicFilters {
            packet_type: wire::UNSUBSCRIBE,
        });
    }
    Ok(Unsubscribe {
        packet_id,
        filters,
        user_properties,
    })
}

/// UNSUBACK: in 3.1/3.1.1 only the packet identifier.
fn decode_unsuback(v5: bool, r: &mut Reader) -> Result<UnsubAck, DecodeError> {
    let packet_id = packet_id(r, wire::UNSUBACK)?;
    let mut unsuback = UnsubAck {
        packet_id,
        reason_codes: Vec::new(),
        properties: AckProperties::default(),
    };
    if v5 {
        unsuback.properties = read_properties(r, "UNSUBACK")?;
        while !r.is_empty() {
            unsuback.reason_codes.push(reason_code(r, wire::UNSUBACK)?);
        }
    }
    Ok(unsuback)
}

/// DISCONNECT: empty in 3.1/3.1.1; in v5 a Remaining Length of 0 means Normal
/// disconnection and 1 means a reason code with no properties (section 3.14.2.1).
fn decode_disconnect(v5: bool, r: &mut Reader) -> Result<Disconnect, DecodeError> {
    if !v5 || r.is_empty() {
        return Ok(Disconnect::new(ReasonCode::Success));
    }
    let reason_code = reason_code(r, wire::DISCONNECT)?;
    let properties = if r.is_empty() {
        DisconnectProperties::default()
    } else {
        read_properties(r, "DISCONNECT")?
    };
    Ok(Disconnect {
        reason_code,
        properties,
    })
}

/// AUTH (v5 only): a Remaining Length of 0 means Success with no properties. A lone reason
/// code is accepted too, as for DISCONNECT.
fn decode_auth(r: &mut Reader) -> Result<Auth, DecodeError> {
    if r.is_empty() {
        return Ok(Auth {
            reason_code: ReasonCode::Success,
            properties: AuthProperties::default(),
        });
    }
    let reason_code = reason_code(r, wire::AUTH)?;
    let properties = if r.is_empty() {
        AuthProperties::default()
    } else {
        read_properties(r, "AUTH")?
    };
    Ok(Auth {
        reason_code,
        properties,
    })
}
