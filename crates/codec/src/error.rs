//! Decode errors: one variant per rule the decoder enforces, each message naming the
//! spec's normative statement, and the one mapping from an error to the MQTT 5.0 reason
//! code a server reports ([`DecodeError::reason_code`]).
//!
//! Malformed Packet (0x81) means the bytes cannot be parsed; Protocol Error (0x82) means
//! they parse but carry something the protocol forbids (MQTT 5.0 section 4.13).
//! Errors never carry peer-supplied strings, so they are cheap and safe to log.

use crate::ReasonCode;
use crate::properties::property_name;
use crate::wire::packet_name;

/// Why a byte stream is not a valid MQTT packet. After any error the stream cannot be
/// resynchronised: the caller answers (CONNACK or DISCONNECT with
/// [`DecodeError::reason_code`], where the protocol allows) and closes the connection.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// A Variable Byte Integer is longer than 4 bytes or not minimally encoded. Malformed.
    #[error(
        "[MQTT-1.5.5-1] malformed variable byte integer in {field}: more than 4 bytes or not minimally encoded"
    )]
    MalformedVariableByteInteger {
        /// What the integer encodes, e.g. "remaining length".
        field: &'static str,
    },

    /// Packet type 0 (reserved), or 15 (AUTH) outside MQTT 5.0. Malformed.
    #[error("[MQTT-2.1.2] packet type {packet_type} is reserved in this protocol version")]
    InvalidPacketType {
        /// The 4-bit packet type.
        packet_type: u8,
    },

    /// The first packet of a connection is not CONNECT. Protocol Error; the server
    /// closes the connection without a reply.
    #[error(
        "[MQTT-3.1.0-1] the first packet must be CONNECT, got {}",
        packet_name(*.packet_type)
    )]
    FirstPacketNotConnect {
        /// The 4-bit packet type received instead.
        packet_type: u8,
    },

    /// A second CONNECT on a connection that already sent one. Protocol Error.
    #[error("[MQTT-3.1.0-2] a second CONNECT packet is a protocol error")]
    SecondConnect,

    /// Fixed header flags other than the ones the packet type requires. Malformed.
    #[error(
        "[MQTT-2.1.3-1] invalid fixed header flags 0x{flags:X} for {}",
        packet_name(*.packet_type)
    )]
    InvalidFixedHeaderFlags {
        /// The 4-bit packet type.
        packet_type: u8,
        /// The 4 flag bits received.
        flags: u8,
    },

    /// PUBLISH with both QoS bits set. Malformed.
    #[error("[MQTT-3.3.1-4] PUBLISH must not have both QoS bits set")]
    InvalidPublishQoS,

    /// PUBLISH with QoS 0 and the DUP flag set. Malformed.
    #[error("[MQTT-3.3.1-2] the DUP flag must be 0 for a QoS 0 PUBLISH")]
    DupWithQoS0,

    /// The whole packet (fixed header included) is above the receiver's limit; detected
    /// from the fixed header alone. Packet Too Large.
    #[error(
        "[MQTT-3.2.2-15] packet of {size} bytes exceeds the maximum packet size of {max} bytes"
    )]
    PacketTooLarge {
        /// Total packet size announced by the fixed header.
        size: u64,
        /// The limit in force.
        max: u32,
    },

    /// The remaining length ends in the middle of a field. Malformed.
    #[error("[MQTT-2.1.4] remaining length too short: packet ends inside {field}")]
    UnexpectedEnd {
        /// The field being read.
        field: &'static str,
    },

    /// Bytes left over after the last field of the packet. Malformed.
    #[error(
        "[MQTT-2.1.4] {len} unexpected bytes after the end of {}",
        packet_name(*.packet_type)
    )]
    TrailingBytes {
        /// The 4-bit packet type.
        packet_type: u8,
        /// How many bytes were left.
        len: usize,
    },

    /// A UTF-8 Encoded String that is not well-formed UTF-8. Malformed.
    #[error("[MQTT-1.5.4-1] {field} is not well-formed UTF-8")]
    InvalidUtf8 {
        /// The string's role, e.g. "topic name".
        field: &'static str,
    },

    /// A UTF-8 Encoded String containing U+0000. Malformed.
    #[error("[MQTT-1.5.4-2] {field} contains the null character U+0000")]
    NullCharacter {
        /// The string's role, e.g. "topic name".
        field: &'static str,
    },

    /// CONNECT whose protocol name is neither "MQTT" nor "MQIsdp". Protocol Error: the
    /// server closes the connection without CONNACK, since it cannot know which protocol
    /// the peer speaks.
    #[error("[MQTT-3.1.2-1] protocol name is neither \"MQTT\" nor \"MQIsdp\"")]
    InvalidProtocolName,

    /// CONNECT with a known protocol name but an unsupported protocol level. The caller
    /// answers CONNACK 0x84 (v5) or return code 0x01 (v3) and closes.
    #[error("[MQTT-3.1.2-2] unsupported protocol level {level}")]
    UnsupportedProtocolVersion {
        /// The protocol level byte received.
        level: u8,
    },

    /// CONNECT with the reserved flag (bit 0) set. Malformed.
    #[error("[MQTT-3.1.2-3] the reserved CONNECT flag must be 0")]
    ConnectReservedFlag,

    /// Will QoS or Will Retain set while the Will Flag is 0. Malformed.
    #[error(
        "[MQTT-3.1.2-11/13/15] Will QoS and Will Retain must be 0 when the Will Flag is 0 (flags 0x{flags:02X})"
    )]
    WillFlagsWithoutWill {
        /// The CONNECT flags byte.
        flags: u8,
    },

    /// Will QoS 3. Malformed.
    #[error("[MQTT-3.1.2-12] Will QoS 3 is invalid")]
    InvalidWillQoS,

    /// MQTT 3.1/3.1.1 CONNECT with the Password Flag but not the User Name Flag. Malformed.
    #[error("[MQTT-3.1.2-22] the password flag requires the user name flag in MQTT 3.1.1")]
    PasswordWithoutUsername,

    /// CONNACK acknowledge flags with reserved bits 7-1 set. Malformed.
    #[error("[MQTT-3.2.2-1] CONNACK flags 0x{flags:02X} have reserved bits set")]
    InvalidConnAckFlags {
        /// The acknowledge flags byte.
        flags: u8,
    },

    /// A Packet Identifier of 0. Protocol Error.
    #[error("[MQTT-2.2.1-3] packet identifier 0 in {}", packet_name(*.packet_type))]
    ZeroPacketId {
        /// The 4-bit packet type.
        packet_type: u8,
    },

    /// A reason code (or v3 return code) not defined for this packet type. Malformed.
    #[error(
        "[MQTT-2.4] reason code 0x{code:02X} is not valid in {}",
        packet_name(*.packet_type)
    )]
    InvalidReasonCode {
        /// The 4-bit packet type.
        packet_type: u8,
        /// The byte received.
        code: u8,
    },

    /// A property identifier MQTT 5.0 does not define. Malformed.
    #[error("[MQTT-2.2.2.2] unknown property identifier 0x{id:02X}")]
    UnknownProperty {
        /// The identifier received.
        id: u32,
    },

    /// A property that is not valid in this packet. Malformed (MQTT 5.0 section 2.2.2.2).
    #[error("[MQTT-2.2.2.2] property {} is not allowed in {packet}", property_name(*.id))]
    PropertyNotAllowed {
        /// The property identifier.
        id: u8,
        /// The packet (or "will properties").
        packet: &'static str,
    },

    /// A property other than User Property (or Subscription Identifier in PUBLISH)
    /// included twice. Protocol Error.
    #[error("[MQTT-2.2.2.2] property {} included more than once", property_name(*.id))]
    DuplicateProperty {
        /// The property identifier.
        id: u8,
    },

    /// A property value the spec forbids: 0 for Receive Maximum, Maximum Packet Size or
    /// Subscription Identifier; a boolean, Maximum QoS or Payload Format Indicator other
    /// than 0/1. Protocol Error.
    #[error("[MQTT-2.2.2.2] invalid value {value} for property {}", property_name(*.id))]
    InvalidPropertyValue {
        /// The property identifier.
        id: u8,
        /// The value received.
        value: u32,
    },

    /// A Topic Alias of 0. Topic Alias Invalid.
    #[error("[MQTT-3.3.2-8] topic alias 0 is not permitted")]
    TopicAliasZero,

    /// CONNECT with Authentication Data but no Authentication Method. Protocol Error.
    #[error("[MQTT-3.1.2.11.10] authentication data without an authentication method")]
    AuthDataWithoutMethod,

    /// PUBLISH with an empty topic name and no Topic Alias (v5), or with an empty topic
    /// name (v3). Protocol Error.
    #[error("[MQTT-3.3.2-1/MQTT-4.7.3-1] PUBLISH topic name is empty and no topic alias is given")]
    MissingTopicName,

    /// PUBLISH topic name containing `+` or `#`. Topic Name Invalid.
    #[error("[MQTT-3.3.2-2] PUBLISH topic name must not contain wildcard characters")]
    WildcardInTopicName,

    /// SUBSCRIBE or UNSUBSCRIBE without any topic filter. Protocol Error.
    #[error(
        "[MQTT-3.8.3-2/MQTT-3.10.3-2] {} must contain at least one topic filter",
        packet_name(*.packet_type)
    )]
    NoTopicFilters {
        /// The 4-bit packet type.
        packet_type: u8,
    },

    /// Subscription options with reserved bits set (bits 6-7 in v5, bits 2-7 in v3).
    /// Malformed.
    #[error(
        "[MQTT-3.8.3-5/MQTT-3-8.3-4] reserved bits set in subscription options 0x{options:02X}"
    )]
    InvalidSubscriptionOptions {
        /// The options byte.
        options: u8,
    },

    /// Subscription options with Maximum QoS 3. Protocol Error (Malformed in v3).
    #[error("[MQTT-3.8.3.1] subscription QoS 3 is invalid")]
    InvalidSubscriptionQoS,

    /// Subscription options with Retain Handling 3. Protocol Error.
    #[error("[MQTT-3.8.3.1] retain handling 3 is invalid")]
    InvalidRetainHandling,
}

impl DecodeError {
    /// The v5 reason code a server sends in DISCONNECT (or CONNACK, for an error in
    /// CONNECT) for this error: Malformed Packet 0x81, Protocol Error 0x82, Unsupported
    /// Protocol Version 0x84, Topic Name Invalid 0x90, Topic Alias Invalid 0x94, Packet Too
    /// Large 0x95.
    pub fn reason_code(&self) -> ReasonCode {
        use DecodeError::*;
        match self {
            PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
            UnsupportedProtocolVersion { .. } => ReasonCode::UnsupportedProtocolVersion,
            TopicAliasZero => ReasonCode::TopicAliasInvalid,
            WildcardInTopicName => ReasonCode::TopicNameInvalid,
            FirstPacketNotConnect { .. }
            | SecondConnect
            | InvalidProtocolName
            | ZeroPacketId { .. }
            | DuplicateProperty { .. }
            | InvalidPropertyValue { .. }
            | AuthDataWithoutMethod
            | MissingTopicName
            | NoTopicFilters { .. }
            | InvalidSubscriptionQoS
            | InvalidRetainHandling => ReasonCode::ProtocolError,
            MalformedVariableByteInteger { .. }
            | InvalidPacketType { .. }
            | InvalidFixedHeaderFlags { .. }
            | InvalidPublishQoS
            | DupWithQoS0
            | UnexpectedEnd { .. }
            | TrailingBytes { .. }
            | InvalidUtf8 { .. }
            | NullCharacter { .. }
            | ConnectReservedFlag
            | WillFlagsWithoutWill { .. }
            | InvalidWillQoS
            | PasswordWithoutUsername
            | InvalidConnAckFlags { .. }
            | InvalidReasonCode { .. }
            | UnknownProperty { .. }
            | PropertyNotAllowed { .. }
            | InvalidSubscriptionOptions { .. } => ReasonCode::MalformedPacket,
        }
    }
}
