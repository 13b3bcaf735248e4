//! Hand-written wire bytes of every packet type in MQTT 3.1, 3.1.1 and 5.0, checked both
//! ways: the bytes decode to the packet, and the packet encodes to exactly the bytes.

use bytes::Bytes;
use ferrymq_codec::ProtocolVersion::{V3_1, V3_1_1, V5};
use ferrymq_codec::*;

use crate::common::{connect, decode_one, encode_one, hex, options, publish, user};

struct Case {
    name: &'static str,
    protocol: ProtocolVersion,
    bytes: &'static [u8],
    packet: Packet,
}

fn case(
    name: &'static str,
    protocol: ProtocolVersion,
    bytes: &'static [u8],
    packet: Packet,
) -> Case {
    Case {
        name,
        protocol,
        bytes,
        packet,
    }
}

/// Packets that are not CONNECT are decoded by a decoder that has seen CONNECT.
fn protocol_for(case: &Case) -> Option<ProtocolVersion> {
    match case.packet {
        Packet::Connect(_) => None,
        _ => Some(case.protocol),
    }
}

fn v3_cases(p: ProtocolVersion) -> Vec<Case> {
    vec![
        case(
            "CONNACK accepted",
            p,
            b"\x20\x02\x00\x00",
            Packet::ConnAck(Box::new(ConnAck {
                session_present: false,
                reason_code: ReasonCode::Success,
                properties: ConnAckProperties::default(),
            })),
        ),
        case(
            "CONNACK bad user name or password",
            p,
            b"\x20\x02\x00\x04",
            Packet::ConnAck(Box::new(ConnAck {
                session_present: false,
                reason_code: ReasonCode::BadUserNameOrPassword,
                properties: ConnAckProperties::default(),
            })),
        ),
        case(
            "PUBLISH QoS 0",
            p,
            b"\x30\x07\x00\x03a/bhi",
            Packet::Publish(publish("a/b", QoS::AtMostOnce, None, b"hi")),
        ),
        case(
            "PUBLISH QoS 1 dup retain",
            p,
            b"\x3b\x06\x00\x01t\x00\x0ax",
            {
                let mut packet = publish("t", QoS::AtLeastOnce, Some(10), b"x");
                packet.dup = true;
                packet.retain = true;
                Packet::Publish(packet)
            },
        ),
        case(
            "PUBLISH QoS 2 empty payload",
            p,
            b"\x34\x05\x00\x01t\x00\x01",
            Packet::Publish(publish("t", QoS::ExactlyOnce, Some(1), b"")),
        ),
        case(
            "PUBACK",
            p,
            b"\x40\x02\x00\x0a",
            Packet::PubAck(PubAck::new(10, ReasonCode::Success)),
        ),
        case(
            "PUBREC",
            p,
            b"\x50\x02\x00\x0a",
            Packet::PubRec(PubRec::new(10, ReasonCode::Success)),
        ),
        case(
            "PUBREL",
            p,
            b"\x62\x02\x00\x0a",
            Packet::PubRel(PubRel::new(10, ReasonCode::Success)),
        ),
        case(
            "PUBCOMP",
            p,
            b"\x70\x02\x00\x0a",
            Packet::PubComp(PubComp::new(10, ReasonCode::Success)),
        ),
        case(
            "SUBSCRIBE",
            p,
            b"\x82\x0c\x00\x01\x00\x03a/+\x01\x00\x01#\x02",
            Packet::Subscribe(Subscribe {
                packet_id: 1,
                filters: vec![
                    ("a/+".to_owned(), options(QoS::AtLeastOnce)),
                    ("#".to_owned(), options(QoS::ExactlyOnce)),
                ],
                properties: SubscribeProperties::default(),
            }),
        ),
        case(
            "SUBACK granted and failure",
            p,
            b"\x90\x04\x00\x01\x01\x80",
            Packet::SubAck(Box::new(SubAck {
                packet_id: 1,
                reason_codes: vec![ReasonCode::GrantedQoS1, ReasonCode::UnspecifiedError],
                properties: AckProperties::default(),
            })),
        ),
        case(
            "UNSUBSCRIBE",
            p,
            b"\xa2\x0a\x00\x02\x00\x03a/+\x00\x01#",
            Packet::Unsubscribe(Unsubscribe {
                packet_id: 2,
                filters: vec!["a/+".to_owned(), "#".to_owned()],
                user_properties: vec![],
            }),
        ),
        case(
            "UNSUBACK",
            p,
            b"\xb0\x02\x00\x02",
            Packet::UnsubAck(Box::new(UnsubAck {
                packet_id: 2,
                reason_codes: vec![],
                properties: AckProperties::default(),
            })),
        ),
        case("PINGREQ", p, b"\xc0\x00", Packet::PingReq),
        case("PINGRESP", p, b"\xd0\x00", Packet::PingResp),
        case(
            "DISCONNECT",
            p,
            b"\xe0\x00",
            Packet::Disconnect(Box::new(Disconnect::new(ReasonCode::Success))),
        ),
    ]
}

fn v3_1_1_cases() -> Vec<Case> {
    let mut cases = v3_cases(V3_1_1);
    cases.push(case(
        "CONNECT minimal",
        V3_1_1,
        b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02c1",
        Packet::Connect(Box::new(connect(V3_1_1, "c1"))),
    ));
    let mut full = connect(V3_1_1, "id");
    full.keep_alive = 10;
    full.will = Some(LastWill {
        topic: "w/t".to_owned(),
        payload: Bytes::from_static(b"bye"),
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: WillProperties::default(),
    });
    full.username = Some("u".to_owned());
    full.password = Some(Bytes::from_static(b"\x00\xff"));
    cases.push(case(
        "CONNECT will, user name, binary password",
        V3_1_1,
        b"\x10\x1f\x00\x04MQTT\x04\xee\x00\x0a\x00\x02id\x00\x03w/t\x00\x03bye\x00\x01u\x00\x02\x00\xff",
        Packet::Connect(Box::new(full)),
    ));
    let mut empty_id = connect(V3_1_1, "");
    empty_id.keep_alive = 0;
    cases.push(case(
        "CONNECT empty client id",
        V3_1_1,
        b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x00\x00\x00",
        Packet::Connect(Box::new(empty_id)),
    ));
    cases.push(case(
        "CONNACK session present",
        V3_1_1,
        b"\x20\x02\x01\x00",
        Packet::ConnAck(Box::new(ConnAck {
            session_present: true,
            reason_code: ReasonCode::Success,
            properties: ConnAckProperties::default(),
        })),
    ));
    cases
}

fn v3_1_cases() -> Vec<Case> {
    let mut cases = v3_cases(V3_1);
    cases.push(case(
        "CONNECT MQIsdp",
        V3_1,
        b"\x10\x10\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x02c1",
        Packet::Connect(Box::new(connect(V3_1, "c1"))),
    ));
    cases
}

fn v5_cases() -> Vec<Case> {
    let mut cases = vec![case(
        "CONNECT minimal",
        V5,
        b"\x10\x0f\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x02c1",
        Packet::Connect(Box::new(connect(V5, "c1"))),
    )];

    let mut full = connect(V5, "id");
    full.properties.session_expiry_interval = Some(60);
    full.properties.receive_maximum = Some(10);
    full.properties.user_properties = vec![user("k", "v")];
    full.will = Some(LastWill {
        topic: "w".to_owned(),
        payload: Bytes::new(),
        qos: QoS::ExactlyOnce,
        retain: false,
        properties: WillProperties {
            will_delay_interval: Some(5),
            payload_format_indicator: Some(1),
            ..WillProperties::default()
        },
    });
    full.username = Some("u".to_owned());
    full.password = Some(Bytes::from_static(b"p"));
    cases.push(case(
        "CONNECT properties, will properties, user name, password",
        V5,
        b"\x10\x31\x00\x04MQTT\x05\xd6\x00\x3c\x0f\x11\x00\x00\x00\x3c\x21\x00\x0a\x26\x00\x01k\x00\x01v\
          \x00\x02id\x07\x01\x01\x18\x00\x00\x00\x05\x00\x01w\x00\x00\x00\x01u\x00\x01p",
        Packet::Connect(Box::new(full)),
    ));

    // MQTT 5.0 allows a password without a user name (3.1.1 does not).
    let mut password_only = connect(V5, "c");
    password_only.password = Some(Bytes::from_static(b"tok"));
    cases.push(case(
        "CONNECT password without user name",
        V5,
        b"\x10\x13\x00\x04MQTT\x05\x42\x00\x3c\x00\x00\x01c\x00\x03tok",
        Packet::Connect(Box::new(password_only)),
    ));

    cases.push(case(
        "CONNACK with properties",
        V5,
        b"\x20\x0f\x00\x00\x0c\x12\x00\x02a1\x22\x00\x05\x24\x01\x25\x00",
        Packet::ConnAck(Box::new(ConnAck {
            session_present: false,
            reason_code: ReasonCode::Success,
            properties: ConnAckProperties {
                assigned_client_identifier: Some("a1".to_owned()),
                topic_alias_maximum: Some(5),
                maximum_qos: Some(QoS::AtLeastOnce),
                retain_available: Some(false),
                ..ConnAckProperties::default()
            },
        })),
    ));
    cases.push(case(
        "CONNACK not authorized",
        V5,
        b"\x20\x03\x00\x87\x00",
        Packet::ConnAck(Box::new(ConnAck {
            session_present: false,
            reason_code: ReasonCode::NotAuthorized,
            properties: ConnAckProperties::default(),
        })),
    ));

    let mut with_props = publish("t", QoS::AtLeastOnce, Some(5), b"hey");
    with_props.properties = Some(Box::new(PublishProperties {
        message_expiry_interval: Some(10),
        topic_alias: Some(3),
        subscription_identifiers: vec![128],
        forwarded: Some(
            ForwardedProperties {
                payload_format_indicator: Some(1),
                ..ForwardedProperties::default()
            }
            .into(),
        ),
    }));
    cases.push(case(
        "PUBLISH with properties",
        V5,
        b"\x32\x16\x00\x01t\x00\x05\x0d\x01\x01\x02\x00\x00\x00\x0a\x0b\x80\x01\x23\x00\x03hey",
        Packet::Publish(with_props),
    ));
    let mut aliased = publish("", QoS::AtMostOnce, None, b"p");
    aliased.properties.get_or_insert_default().topic_alias = Some(7);
    cases.push(case(
        "PUBLISH empty topic with topic alias",
        V5,
        b"\x30\x07\x00\x00\x03\x23\x00\x07p",
        Packet::Publish(aliased),
    ));

    cases.extend([
        case(
            "PUBACK short form",
            V5,
            b"\x40\x02\x00\x0a",
            Packet::PubAck(PubAck::new(10, ReasonCode::Success)),
        ),
        case(
            "PUBACK reason only",
            V5,
            b"\x40\x03\x00\x0a\x10",
            Packet::PubAck(PubAck::new(10, ReasonCode::NoMatchingSubscribers)),
        ),
        case(
            "PUBREC reason string",
            V5,
            b"\x50\x09\x00\x0a\x80\x05\x1f\x00\x02no",
            Packet::PubRec(PubRec {
                packet_id: 10,
                reason_code: ReasonCode::UnspecifiedError,
                properties: AckProperties {
                    reason_string: Some("no".to_owned()),
                    user_properties: vec![],
                },
            }),
        ),
        case(
            "PUBREL not found",
            V5,
            b"\x62\x03\x00\x0a\x92",
            Packet::PubRel(PubRel::new(10, ReasonCode::PacketIdentifierNotFound)),
        ),
        case(
            "PUBCOMP short form",
            V5,
            b"\x70\x02\x00\x0a",
            Packet::PubComp(PubComp::new(10, ReasonCode::Success)),
        ),
        case(
            "SUBSCRIBE options and identifier",
            V5,
            b"\x82\x0b\x00\x01\x02\x0b\x05\x00\x03a/b\x2d",
            Packet::Subscribe(Subscribe {
                packet_id: 1,
                filters: vec![(
                    "a/b".to_owned(),
                    SubscriptionOptions {
                        qos: QoS::AtLeastOnce,
                        no_local: true,
                        retain_as_published: true,
                        retain_handling: RetainHandling::DoNotSend,
                    },
                )],
                properties: SubscribeProperties {
                    subscription_identifier: Some(5),
                    user_properties: vec![],
                },
            }),
        ),
        case(
            "SUBACK",
            V5,
            b"\x90\x05\x00\x01\x00\x01\xa2",
            Packet::SubAck(Box::new(SubAck {
                packet_id: 1,
                reason_codes: vec![
                    ReasonCode::GrantedQoS1,
                    ReasonCode::WildcardSubscriptionsNotSupported,
                ],
                properties: AckProperties::default(),
            })),
        ),
        case(
            "UNSUBSCRIBE",
            V5,
            b"\xa2\x08\x00\x02\x00\x00\x03a/b",
            Packet::Unsubscribe(Unsubscribe {
                packet_id: 2,
                filters: vec!["a/b".to_owned()],
                user_properties: vec![],
            }),
        ),
        case(
            "UNSUBACK",
            V5,
            b"\xb0\x05\x00\x02\x00\x00\x11",
            Packet::UnsubAck(Box::new(UnsubAck {
                packet_id: 2,
                reason_codes: vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted],
                properties: AckProperties::default(),
            })),
        ),
        case("PINGREQ", V5, b"\xc0\x00", Packet::PingReq),
        case("PINGRESP", V5, b"\xd0\x00", Packet::PingResp),
        case(
            "DISCONNECT short form",
            V5,
            b"\xe0\x00",
            Packet::Disconnect(Box::new(Disconnect::new(ReasonCode::Success))),
        ),
        case(
            "DISCONNECT reason only",
            V5,
            b"\xe0\x01\x04",
            Packet::Disconnect(Box::new(Disconnect::new(
                ReasonCode::DisconnectWithWillMessage,
            ))),
        ),
        case(
            "DISCONNECT session expiry",
            V5,
            b"\xe0\x07\x00\x05\x11\x00\x00\x00\x00",
            Packet::Disconnect(Box::new(Disconnect {
                reason_code: ReasonCode::Success,
                properties: DisconnectProperties {
                    session_expiry_interval: Some(0),
                    ..DisconnectProperties::default()
                },
            })),
        ),
        case(
            "AUTH short form",
            V5,
            b"\xf0\x00",
            Packet::Auth(Box::new(Auth {
                reason_code: ReasonCode::Success,
                properties: AuthProperties::default(),
            })),
        ),
        case(
            "AUTH continue",
            V5,
            b"\xf0\x0b\x18\x09\x15\x00\x01m\x16\x00\x02\x01\x02",
            Packet::Auth(Box::new(Auth {
                reason_code: ReasonCode::ContinueAuthentication,
                properties: AuthProperties {
                    authentication_method: Some("m".to_owned()),
                    authentication_data: Some(Bytes::from_static(b"\x01\x02")),
                    ..AuthProperties::default()
                },
            })),
        ),
    ]);
    cases
}

fn all_cases() -> Vec<Case> {
    let mut cases = v3_1_cases();
    cases.extend(v3_1_1_cases());
    cases.extend(v5_cases());
    cases
}

#[test]
fn bytes_decode_to_packets() {
    for case in all_cases() {
        let decoded = decode_one(protocol_for(&case), case.bytes);
        assert_eq!(
            decoded,
            Ok(Some(case.packet.clone())),
            "{:?} {}: {}",
            case.protocol,
            case.name,
            hex(case.bytes)
        );
    }
}

#[test]
fn packets_encode_to_bytes() {
    for case in all_cases() {
        let encoded = encode_one(&case.packet, case.protocol).expect(case.name);
        assert_eq!(
            hex(&encoded),
            hex(case.bytes),
            "{:?} {}",
            case.protocol,
            case.name
        );
    }
}

#[test]
fn every_packet_type_is_covered_in_every_version() {
    for protocol in [V3_1, V3_1_1, V5] {
        let names: Vec<&str> = all_cases()
            .iter()
            .filter(|case| case.protocol == protocol)
            .map(|case| case.packet.name())
            .collect();
        let mut expected = vec![
            "CONNECT",
            "CONNACK",
            "PUBLISH",
            "PUBACK",
            "PUBREC",
            "PUBREL",
            "PUBCOMP",
            "SUBSCRIBE",
            "SUBACK",
            "UNSUBSCRIBE",
            "UNSUBACK",
            "PINGREQ",
            "PINGRESP",
            "DISCONNECT",
        ];
        if protocol == V5 {
            expected.push("AUTH");
        }
        for name in expected {
            assert!(names.contains(&name), "{protocol:?} has no {name} case");
        }
    }
}

/// Accepted on input, but not what the encoder writes: the encoder's canonical form differs.
#[test]
fn non_canonical_forms_decode() {
    let cases: Vec<(ProtocolVersion, &[u8], Packet, &[u8])> = vec![
        // v5 acks with an explicit empty property block.
        (
            V5,
            b"\x40\x04\x00\x0a\x00\x00",
            Packet::PubAck(PubAck::new(10, ReasonCode::Success)),
            b"\x40\x02\x00\x0a",
        ),
        (
            V5,
            b"\xe0\x02\x00\x00",
            Packet::Disconnect(Box::new(Disconnect::new(ReasonCode::Success))),
            b"\xe0\x00",
        ),
        // AUTH with a lone reason code: the encoder always adds the Property Length.
        (
            V5,
            b"\xf0\x01\x18",
            Packet::Auth(Box::new(Auth {
                reason_code: ReasonCode::ContinueAuthentication,
                properties: AuthProperties::default(),
            })),
            b"\xf0\x02\x18\x00",
        ),
        // MQTT 3.1 retransmissions may carry DUP on PUBREL / SUBSCRIBE.
        (
            V3_1,
            b"\x6a\x02\x00\x0a",
            Packet::PubRel(PubRel::new(10, ReasonCode::Success)),
            b"\x62\x02\x00\x0a",
        ),
        // MQTT 3.1's first CONNACK byte is reserved, not Session Present.
        (
            V3_1,
            b"\x20\x02\x01\x00",
            Packet::ConnAck(Box::new(ConnAck {
                session_present: false,
                reason_code: ReasonCode::Success,
                properties: ConnAckProperties::default(),
            })),
            b"\x20\x02\x00\x00",
        ),
    ];
    for (protocol, input, packet, canonical) in cases {
        assert_eq!(
            decode_one(Some(protocol), input),
            Ok(Some(packet.clone())),
            "{}",
            hex(input)
        );
        assert_eq!(hex(&encode_one(&packet, protocol).unwrap()), hex(canonical));
    }
}
