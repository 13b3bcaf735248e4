//! Malformed and forbidden inputs: each must fail with the expected error and map to the
//! expected v5 reason code. Plus the streaming behaviour: partial input, several packets
//! per buffer, size limit from the fixed header alone, zero-copy payloads.

use bytes::BytesMut;
use ferrymq_codec::DecodeError::*;
use ferrymq_codec::ProtocolVersion::{V3_1, V3_1_1, V5};
use ferrymq_codec::*;

use crate::common::{decode_one, decoder, hex};

const MALFORMED: ReasonCode = ReasonCode::MalformedPacket;
const PROTOCOL: ReasonCode = ReasonCode::ProtocolError;

/// Name, decoder state (`None`: before CONNECT), input, expected error, expected reason.
type Case = (
    &'static str,
    Option<ProtocolVersion>,
    &'static [u8],
    DecodeError,
    ReasonCode,
);

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    vec![
        // Fixed header.
        ("first packet not CONNECT", None, b"\x30\x02\x00\x00", FirstPacketNotConnect { packet_type: 3 }, PROTOCOL),
        ("reserved type 0", None, b"\x00\x00", InvalidPacketType { packet_type: 0 }, MALFORMED),
        ("reserved type 0 after CONNECT", Some(V5), b"\x00\x00", InvalidPacketType { packet_type: 0 }, MALFORMED),
        ("AUTH in 3.1.1", Some(V3_1_1), b"\xf0\x00", InvalidPacketType { packet_type: 15 }, MALFORMED),
        ("AUTH in 3.1", Some(V3_1), b"\xf0\x00", InvalidPacketType { packet_type: 15 }, MALFORMED),
        ("second CONNECT", Some(V3_1_1), b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02c1", SecondConnect, PROTOCOL),
        ("PUBACK flags", Some(V5), b"\x41\x02\x00\x01", InvalidFixedHeaderFlags { packet_type: 4, flags: 1 }, MALFORMED),
        ("PUBREL flags 0", Some(V3_1_1), b"\x60\x02\x00\x01", InvalidFixedHeaderFlags { packet_type: 6, flags: 0 }, MALFORMED),
        ("SUBSCRIBE flags 0", Some(V5), b"\x80\x06\x00\x01\x00\x01a\x00", InvalidFixedHeaderFlags { packet_type: 8, flags: 0 }, MALFORMED),
        ("SUBSCRIBE DUP in 3.1.1", Some(V3_1_1), b"\x8a\x06\x00\x01\x00\x01a\x00", InvalidFixedHeaderFlags { packet_type: 8, flags: 0xa }, MALFORMED),
        ("UNSUBSCRIBE flags 0", Some(V3_1_1), b"\xa0\x05\x00\x01\x00\x01a", InvalidFixedHeaderFlags { packet_type: 10, flags: 0 }, MALFORMED),
        ("PINGREQ flags", Some(V3_1_1), b"\xc1\x00", InvalidFixedHeaderFlags { packet_type: 12, flags: 1 }, MALFORMED),
        ("CONNECT flags", None, b"\x12\x00", InvalidFixedHeaderFlags { packet_type: 1, flags: 2 }, MALFORMED),
        ("PUBLISH QoS 3", Some(V3_1_1), b"\x36\x05\x00\x01t\x00\x01", InvalidPublishQoS, MALFORMED),
        ("PUBLISH QoS 0 with DUP", Some(V5), b"\x38\x04\x00\x01t\x00", DupWithQoS0, MALFORMED),
        ("remaining length of 5 bytes", Some(V3_1_1), b"\x30\xff\xff\xff\xff\x7f", MalformedVariableByteInteger { field: "remaining length" }, MALFORMED),
        ("remaining length not minimal", Some(V3_1_1), b"\x30\x80\x00", MalformedVariableByteInteger { field: "remaining length" }, MALFORMED),
        // Remaining length disagrees with the content.
        ("trailing byte after PUBACK", Some(V3_1_1), b"\x40\x03\x00\x01\x00", TrailingBytes { packet_type: 4, len: 1 }, MALFORMED),
        ("v3 DISCONNECT with a body", Some(V3_1_1), b"\xe0\x01\x00", TrailingBytes { packet_type: 14, len: 1 }, MALFORMED),
        ("PINGRESP with a body", Some(V5), b"\xd0\x01\x00", TrailingBytes { packet_type: 13, len: 1 }, MALFORMED),
        ("trailing byte after CONNECT", None, b"\x10\x0f\x00\x04MQTT\x04\x02\x00\x3c\x00\x02c1!", TrailingBytes { packet_type: 1, len: 1 }, MALFORMED),
        ("PUBACK too short", Some(V5), b"\x40\x01\x00", UnexpectedEnd { field: "packet identifier" }, MALFORMED),
        ("topic longer than packet", Some(V3_1_1), b"\x32\x04\x00\x03a/", UnexpectedEnd { field: "topic name" }, MALFORMED),
        ("QoS 1 PUBLISH without packet id", Some(V3_1_1), b"\x32\x03\x00\x01t", UnexpectedEnd { field: "packet identifier" }, MALFORMED),
        ("property length beyond packet", Some(V5), b"\x40\x05\x00\x01\x00\x09\x1f", UnexpectedEnd { field: "properties" }, MALFORMED),
        ("property value cut short", Some(V5), b"\x40\x06\x00\x01\x00\x02\x1f\x00", UnexpectedEnd { field: "Reason String" }, MALFORMED),
        // Packet identifiers.
        ("PUBACK packet id 0", Some(V3_1_1), b"\x40\x02\x00\x00", ZeroPacketId { packet_type: 4 }, PROTOCOL),
        ("PUBLISH QoS 1 packet id 0", Some(V5), b"\x32\x06\x00\x01t\x00\x00\x00", ZeroPacketId { packet_type: 3 }, PROTOCOL),
        ("PUBREL packet id 0", Some(V5), b"\x62\x02\x00\x00", ZeroPacketId { packet_type: 6 }, PROTOCOL),
        ("SUBSCRIBE packet id 0", Some(V3_1_1), b"\x82\x06\x00\x00\x00\x01a\x00", ZeroPacketId { packet_type: 8 }, PROTOCOL),
        ("SUBACK packet id 0", Some(V3_1_1), b"\x90\x03\x00\x00\x00", ZeroPacketId { packet_type: 9 }, PROTOCOL),
        ("UNSUBSCRIBE packet id 0", Some(V5), b"\xa2\x06\x00\x00\x00\x00\x01a", ZeroPacketId { packet_type: 10 }, PROTOCOL),
        ("UNSUBACK packet id 0", Some(V3_1), b"\xb0\x02\x00\x00", ZeroPacketId { packet_type: 11 }, PROTOCOL),
        // Strings.
        ("topic not UTF-8", Some(V3_1_1), b"\x30\x04\x00\x02\xc3\x28", InvalidUtf8 { field: "topic name" }, MALFORMED),
        ("topic with U+0000", Some(V3_1_1), b"\x30\x05\x00\x03a\x00b", NullCharacter { field: "topic name" }, MALFORMED),
        ("filter with U+0000", Some(V5), b"\xa2\x06\x00\x01\x00\x00\x01\x00", NullCharacter { field: "topic filter" }, MALFORMED),
        ("client id not UTF-8", None, b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01\xff", InvalidUtf8 { field: "client identifier" }, MALFORMED),
        ("user property with U+0000", Some(V5), b"\x40\x0b\x00\x01\x00\x07\x26\x00\x01\x00\x00\x01v", NullCharacter { field: "user property name" }, MALFORMED),
        ("empty topic in 3.1.1", Some(V3_1_1), b"\x30\x02\x00\x00", MissingTopicName, PROTOCOL),
        ("empty topic without alias", Some(V5), b"\x30\x03\x00\x00\x00", MissingTopicName, PROTOCOL),
        ("wildcard in topic name", Some(V5), b"\x30\x06\x00\x03a/#\x00", WildcardInTopicName, ReasonCode::TopicNameInvalid),
        // CONNECT.
        ("unsupported level 6", None, b"\x10\x0e\x00\x04MQTT\x06\x02\x00\x3c\x00\x02c1", UnsupportedProtocolVersion { level: 6 }, ReasonCode::UnsupportedProtocolVersion),
        ("MQTT with level 3", None, b"\x10\x0e\x00\x04MQTT\x03\x02\x00\x3c\x00\x02c1", UnsupportedProtocolVersion { level: 3 }, ReasonCode::UnsupportedProtocolVersion),
        ("MQIsdp with level 4", None, b"\x10\x10\x00\x06MQIsdp\x04\x02\x00\x3c\x00\x02c1", UnsupportedProtocolVersion { level: 4 }, ReasonCode::UnsupportedProtocolVersion),
        ("unknown protocol name", None, b"\x10\x0e\x00\x04MQTX\x04\x02\x00\x3c\x00\x02c1", InvalidProtocolName, PROTOCOL),
        ("reserved CONNECT flag", None, b"\x10\x0e\x00\x04MQTT\x04\x03\x00\x3c\x00\x02c1", ConnectReservedFlag, MALFORMED),
        ("will QoS without will flag", None, b"\x10\x0e\x00\x04MQTT\x04\x0a\x00\x3c\x00\x02c1", WillFlagsWithoutWill { flags: 0x0a }, MALFORMED),
        ("will retain without will flag", None, b"\x10\x0f\x00\x04MQTT\x05\x22\x00\x3c\x00\x00\x02c1", WillFlagsWithoutWill { flags: 0x22 }, MALFORMED),
        ("will QoS 3", None, b"\x10\x13\x00\x04MQTT\x04\x1e\x00\x3c\x00\x02c1\x00\x01w\x00\x00", InvalidWillQoS, MALFORMED),
        ("password without user name in 3.1.1", None, b"\x10\x12\x00\x04MQTT\x04\x42\x00\x3c\x00\x02c1\x00\x02pw", PasswordWithoutUsername, MALFORMED),
        ("password without user name in 3.1", None, b"\x10\x14\x00\x06MQIsdp\x03\x42\x00\x3c\x00\x02c1\x00\x02pw", PasswordWithoutUsername, MALFORMED),
        ("receive maximum 0", None, b"\x10\x11\x00\x04MQTT\x05\x02\x00\x3c\x03\x21\x00\x00\x00\x01c", InvalidPropertyValue { id: 0x21, value: 0 }, PROTOCOL),
        ("maximum packet size 0", None, b"\x10\x13\x00\x04MQTT\x05\x02\x00\x3c\x05\x27\x00\x00\x00\x00\x00\x01c", InvalidPropertyValue { id: 0x27, value: 0 }, PROTOCOL),
        ("request problem information 2", None, b"\x10\x10\x00\x04MQTT\x05\x02\x00\x3c\x02\x17\x02\x00\x01c", InvalidPropertyValue { id: 0x17, value: 2 }, PROTOCOL),
        ("duplicate session expiry", None, b"\x10\x18\x00\x04MQTT\x05\x02\x00\x3c\x0a\x11\x00\x00\x00\x01\x11\x00\x00\x00\x02\x00\x01c", DuplicateProperty { id: 0x11 }, PROTOCOL),
        ("authentication data without method", None, b"\x10\x11\x00\x04MQTT\x05\x02\x00\x3c\x03\x16\x00\x00\x00\x01c", AuthDataWithoutMethod, PROTOCOL),
        ("topic alias in CONNECT", None, b"\x10\x11\x00\x04MQTT\x05\x02\x00\x3c\x03\x23\x00\x01\x00\x01c", PropertyNotAllowed { id: 0x23, packet: "CONNECT" }, MALFORMED),
        ("will delay in CONNECT properties", None, b"\x10\x13\x00\x04MQTT\x05\x02\x00\x3c\x05\x18\x00\x00\x00\x01\x00\x01c", PropertyNotAllowed { id: 0x18, packet: "CONNECT" }, MALFORMED),
        ("session expiry in will properties", None, b"\x10\x19\x00\x04MQTT\x05\x06\x00\x3c\x00\x00\x01c\x05\x11\x00\x00\x00\x01\x00\x01w\x00\x00", PropertyNotAllowed { id: 0x11, packet: "will properties" }, MALFORMED),
        // Properties elsewhere.
        ("duplicate message expiry", Some(V5), b"\x30\x0e\x00\x01t\x0a\x02\x00\x00\x00\x01\x02\x00\x00\x00\x02", DuplicateProperty { id: 0x02 }, PROTOCOL),
        ("duplicate reason string", Some(V5), b"\x40\x0c\x00\x01\x80\x08\x1f\x00\x01a\x1f\x00\x01b", DuplicateProperty { id: 0x1f }, PROTOCOL),
        ("duplicate subscription identifier in SUBSCRIBE", Some(V5), b"\x82\x0b\x00\x01\x04\x0b\x01\x0b\x02\x00\x01a\x00", DuplicateProperty { id: 0x0b }, PROTOCOL),
        ("session expiry in PUBACK", Some(V5), b"\x40\x09\x00\x01\x00\x05\x11\x00\x00\x00\x01", PropertyNotAllowed { id: 0x11, packet: "PUBACK" }, MALFORMED),
        ("subscription identifier in UNSUBSCRIBE", Some(V5), b"\xa2\x07\x00\x01\x02\x0b\x01\x00\x00", PropertyNotAllowed { id: 0x0b, packet: "UNSUBSCRIBE" }, MALFORMED),
        ("unknown property", Some(V5), b"\xe0\x03\x00\x01\x7f", UnknownProperty { id: 0x7f }, MALFORMED),
        ("two-byte unknown property id", Some(V5), b"\xe0\x04\x00\x02\x80\x01", UnknownProperty { id: 0x80 }, MALFORMED),
        ("topic alias 0", Some(V5), b"\x30\x07\x00\x01t\x03\x23\x00\x00", TopicAliasZero, ReasonCode::TopicAliasInvalid),
        ("subscription identifier 0", Some(V5), b"\x82\x09\x00\x01\x02\x0b\x00\x00\x01a\x00", InvalidPropertyValue { id: 0x0b, value: 0 }, PROTOCOL),
        ("subscription identifier 0 in PUBLISH", Some(V5), b"\x30\x06\x00\x01t\x02\x0b\x00", InvalidPropertyValue { id: 0x0b, value: 0 }, PROTOCOL),
        ("payload format indicator 2", Some(V5), b"\x30\x06\x00\x01t\x02\x01\x02", InvalidPropertyValue { id: 0x01, value: 2 }, PROTOCOL),
        ("maximum QoS 2", Some(V5), b"\x20\x05\x00\x00\x02\x24\x02", InvalidPropertyValue { id: 0x24, value: 2 }, PROTOCOL),
        ("retain available 2", Some(V5), b"\x20\x05\x00\x00\x02\x25\x02", InvalidPropertyValue { id: 0x25, value: 2 }, PROTOCOL),
        ("receive maximum 0 in CONNACK", Some(V5), b"\x20\x06\x00\x00\x03\x21\x00\x00", InvalidPropertyValue { id: 0x21, value: 0 }, PROTOCOL),
        ("malformed subscription identifier", Some(V5), b"\x30\x09\x00\x01t\x05\x0b\xff\xff\xff\xff", MalformedVariableByteInteger { field: "Subscription Identifier" }, MALFORMED),
        // Reason codes.
        ("DISCONNECT 0x01", Some(V5), b"\xe0\x01\x01", InvalidReasonCode { packet_type: 14, code: 0x01 }, MALFORMED),
        ("PUBACK unknown code", Some(V5), b"\x40\x03\x00\x01\x05", InvalidReasonCode { packet_type: 4, code: 0x05 }, MALFORMED),
        ("PUBREL with a PUBACK code", Some(V5), b"\x62\x03\x00\x01\x10", InvalidReasonCode { packet_type: 6, code: 0x10 }, MALFORMED),
        ("AUTH with 0x80", Some(V5), b"\xf0\x02\x80\x00", InvalidReasonCode { packet_type: 15, code: 0x80 }, MALFORMED),
        ("v5 CONNACK with 0x01", Some(V5), b"\x20\x03\x00\x01\x00", InvalidReasonCode { packet_type: 2, code: 0x01 }, MALFORMED),
        ("v3 CONNACK return code 6", Some(V3_1_1), b"\x20\x02\x00\x06", InvalidReasonCode { packet_type: 2, code: 0x06 }, MALFORMED),
        ("v3 SUBACK return code 3", Some(V3_1_1), b"\x90\x03\x00\x01\x03", InvalidReasonCode { packet_type: 9, code: 0x03 }, MALFORMED),
        ("v3 SUBACK return code 0x87", Some(V3_1_1), b"\x90\x03\x00\x01\x87", InvalidReasonCode { packet_type: 9, code: 0x87 }, MALFORMED),
        ("UNSUBACK with SUBACK code", Some(V5), b"\xb0\x04\x00\x01\x00\x01", InvalidReasonCode { packet_type: 11, code: 0x01 }, MALFORMED),
        ("CONNACK reserved flags", Some(V3_1_1), b"\x20\x02\x02\x00", InvalidConnAckFlags { flags: 0x02 }, MALFORMED),
        // SUBSCRIBE / UNSUBSCRIBE payloads.
        ("SUBSCRIBE without filters", Some(V3_1_1), b"\x82\x02\x00\x01", NoTopicFilters { packet_type: 8 }, PROTOCOL),
        ("v5 SUBSCRIBE without filters", Some(V5), b"\x82\x03\x00\x01\x00", NoTopicFilters { packet_type: 8 }, PROTOCOL),
        ("UNSUBSCRIBE without filters", Some(V3_1_1), b"\xa2\x02\x00\x01", NoTopicFilters { packet_type: 10 }, PROTOCOL),
        ("filter without options byte", Some(V3_1_1), b"\x82\x05\x00\x01\x00\x01a", UnexpectedEnd { field: "subscription options" }, MALFORMED),
        ("v3 options reserved bits", Some(V3_1_1), b"\x82\x06\x00\x01\x00\x01a\x04", InvalidSubscriptionOptions { options: 0x04 }, MALFORMED),
        ("v3 options QoS 3", Some(V3_1), b"\x82\x06\x00\x01\x00\x01a\x03", InvalidSubscriptionQoS, PROTOCOL),
        ("v5 options reserved bits", Some(V5), b"\x82\x07\x00\x01\x00\x00\x01a\x40", InvalidSubscriptionOptions { options: 0x40 }, MALFORMED),
        ("v5 options QoS 3", Some(V5), b"\x82\x07\x00\x01\x00\x00\x01a\x03", InvalidSubscriptionQoS, PROTOCOL),
        ("v5 retain handling 3", Some(V5), b"\x82\x07\x00\x01\x00\x00\x01a\x30", InvalidRetainHandling, PROTOCOL),
    ]
}

#[test]
fn malformed_inputs_are_rejected_with_the_right_reason() {
    let cases = cases();
    assert!(cases.len() >= 80);
    for (name, protocol, bytes, error, reason) in cases {
        let result = decode_one(protocol, bytes);
        assert_eq!(result, Err(error.clone()), "{name}: {}", hex(bytes));
        assert_eq!(error.reason_code(), reason, "{name}");
        let message = error.to_string();
        assert!(
            message.starts_with("[MQTT-"),
            "{name}: message names no rule: {message}"
        );
    }
}

#[test]
fn oversize_packet_is_refused_from_the_fixed_header_alone() {
    let mut decoder = Decoder::new(100);
    decoder.set_protocol(V5);
    // PUBLISH announcing 1000 bytes of body; none of it has arrived.
    let mut buf = BytesMut::from(&b"\x30\xe8\x07"[..]);
    let error = decoder.decode(&mut buf).unwrap_err();
    assert_eq!(
        error,
        PacketTooLarge {
            size: 1003,
            max: 100
        }
    );
    assert_eq!(error.reason_code(), ReasonCode::PacketTooLarge);
    assert_eq!(buf.len(), 3, "nothing consumed");

    // Before CONNECT too: a huge CONNECT is refused as soon as its header is complete.
    let mut fresh = Decoder::new(1024);
    let mut buf = BytesMut::from(&b"\x10\xff\xff\xff\x7f"[..]);
    assert_eq!(
        fresh.decode(&mut buf),
        Err(PacketTooLarge {
            size: 268_435_460,
            max: 1024
        })
    );

    // The limit counts the fixed header: 98 + 2 = 100 passes, 99 + 2 = 101 does not.
    let mut decoder = Decoder::new(100);
    decoder.set_protocol(V3_1_1);
    assert_eq!(
        decoder.decode(&mut BytesMut::from(&b"\x30\x62"[..])),
        Ok(None)
    );
    assert_eq!(
        decoder.decode(&mut BytesMut::from(&b"\x30\x63"[..])),
        Err(PacketTooLarge {
            size: 101,
            max: 100
        })
    );
    decoder.set_max_packet_size(101);
    assert_eq!(decoder.max_packet_size(), 101);
    assert_eq!(
        decoder.decode(&mut BytesMut::from(&b"\x30\x63"[..])),
        Ok(None)
    );
}

#[test]
fn failed_connect_still_reports_its_protocol() {
    // A v5 CONNECT with Receive Maximum 0: the caller answers CONNACK 0x82 in v5 form.
    let mut decoder = decoder(None);
    let mut buf =
        BytesMut::from(&b"\x10\x11\x00\x04MQTT\x05\x02\x00\x3c\x03\x21\x00\x00\x00\x01c"[..]);
    assert!(decoder.decode(&mut buf).is_err());
    assert_eq!(decoder.protocol(), Some(V5));

    // An unsupported level or unknown name leaves the protocol unknown.
    let mut decoder = crate::common::decoder(None);
    let mut buf = BytesMut::from(&b"\x10\x0e\x00\x04MQTT\x06\x02\x00\x3c\x00\x02c1"[..]);
    assert!(decoder.decode(&mut buf).is_err());
    assert_eq!(decoder.protocol(), None);
}

#[test]
fn partial_input_consumes_nothing_and_resumes() {
    let packet = b"\x32\x06\x00\x01t\x00\x0ax";
    let mut decoder = decoder(Some(V3_1_1));
    let mut buf = BytesMut::new();
    for (index, byte) in packet.iter().enumerate() {
        assert_eq!(decoder.decode(&mut buf), Ok(None), "after {index} bytes");
        assert_eq!(buf.len(), index);
        buf.extend_from_slice(&[*byte]);
    }
    let decoded = decoder.decode(&mut buf).unwrap().unwrap();
    assert_eq!(decoded.name(), "PUBLISH");
    assert!(buf.is_empty());
    assert_eq!(decoder.decode(&mut buf), Ok(None));
}

#[test]
fn several_packets_in_one_buffer() {
    let mut decoder = decoder(None);
    let mut buf = BytesMut::from(
        &b"\x10\x0f\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x02c1\xc0\x00\x30\x05\x00\x01t\x00x\xe0"[..],
    );
    assert_eq!(decoder.protocol(), None);
    assert!(matches!(
        decoder.decode(&mut buf),
        Ok(Some(Packet::Connect(_)))
    ));
    assert_eq!(decoder.protocol(), Some(V5));
    assert_eq!(decoder.decode(&mut buf), Ok(Some(Packet::PingReq)));
    assert!(matches!(
        decoder.decode(&mut buf),
        Ok(Some(Packet::Publish(_)))
    ));
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert_eq!(&buf[..], b"\xe0");
}

#[test]
fn payload_and_binary_fields_are_zero_copy() {
    let bytes = b"\x10\x1b\x00\x04MQTT\x04\xc2\x00\x3c\x00\x02id\x00\x01u\x00\x08password";
    let mut buf = BytesMut::from(&bytes[..]);
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    let Some(Packet::Connect(connect)) = decoder(None).decode(&mut buf).unwrap() else {
        panic!("not a CONNECT");
    };
    let password = connect.password.unwrap();
    assert_eq!(&password[..], b"password");
    assert!(
        range.contains(&(password.as_ptr() as usize)),
        "password was copied"
    );

    let mut buf = BytesMut::from(&b"\x30\x0a\x00\x01tpayload"[..]);
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    let Some(Packet::Publish(publish)) = decoder(Some(V3_1_1)).decode(&mut buf).unwrap() else {
        panic!("not a PUBLISH");
    };
    assert_eq!(&publish.payload[..], b"payload");
    assert!(
        range.contains(&(publish.payload.as_ptr() as usize)),
        "payload was copied"
    );
}

#[test]
fn peek_fixed_header_reports_sizes() {
    assert_eq!(peek_fixed_header(b""), Ok(None));
    assert_eq!(peek_fixed_header(b"\x30"), Ok(None));
    assert_eq!(peek_fixed_header(b"\x30\x80"), Ok(None));
    let header = peek_fixed_header(b"\x32\x80\x01rest").unwrap().unwrap();
    assert_eq!(
        header,
        FixedHeader {
            packet_type: 3,
            flags: 2,
            remaining_length: 128,
            header_len: 3
        }
    );
    assert_eq!(header.packet_len(), 131);
    assert!(peek_fixed_header(b"\x30\xff\xff\xff\xff").is_err());
}
