//! Encoder rules that the byte tables do not show: how v5-only content is dropped or
//! mapped in 3.1/3.1.1, and what cannot be encoded at all.

use bytes::{Bytes, BytesMut};
use ferrymq_codec::ProtocolVersion::{V3_1, V3_1_1, V5};
use ferrymq_codec::*;

use crate::common::{connect, encode_one, hex, publish, user};

#[test]
fn v3_drops_properties_and_ack_reason_codes() {
    let mut packet = publish("t", QoS::AtLeastOnce, Some(1), b"x");
    let properties = packet.properties.get_or_insert_default();
    properties.message_expiry_interval = Some(5);
    properties.forwarded_mut().user_properties = vec![user("a", "b")];
    assert_eq!(
        hex(&encode_one(&Packet::Publish(packet), V3_1_1).unwrap()),
        "32 06 00 01 74 00 01 78"
    );

    let puback = Packet::PubAck(PubAck {
        packet_id: 7,
        reason_code: ReasonCode::NotAuthorized,
        properties: AckProperties {
            reason_string: Some("no".into()),
            user_properties: vec![],
        },
    });
    assert_eq!(hex(&encode_one(&puback, V3_1_1).unwrap()), "40 02 00 07");

    let disconnect = Packet::Disconnect(Box::new(Disconnect::new(ReasonCode::ServerShuttingDown)));
    assert_eq!(hex(&encode_one(&disconnect, V3_1).unwrap()), "e0 00");

    let unsuback = Packet::UnsubAck(Box::new(UnsubAck {
        packet_id: 3,
        reason_codes: vec![ReasonCode::NoSubscriptionExisted],
        properties: AckProperties::default(),
    }));
    assert_eq!(hex(&encode_one(&unsuback, V3_1_1).unwrap()), "b0 02 00 03");

    let subscribe = Packet::Subscribe(Subscribe {
        packet_id: 4,
        filters: vec![(
            "a".into(),
            SubscriptionOptions {
                qos: QoS::ExactlyOnce,
                no_local: true,
                retain_as_published: true,
                retain_handling: RetainHandling::DoNotSend,
            },
        )],
        properties: SubscribeProperties {
            subscription_identifier: Some(9),
            user_properties: vec![],
        },
    });
    assert_eq!(
        hex(&encode_one(&subscribe, V3_1_1).unwrap()),
        "82 06 00 04 00 01 61 02"
    );
}

#[test]
fn v3_maps_connack_and_suback_codes() {
    let connack = |reason_code| {
        Packet::ConnAck(Box::new(ConnAck {
            session_present: true,
            reason_code,
            properties: ConnAckProperties::default(),
        }))
    };
    let table = [
        (ReasonCode::Success, "20 02 01 00"),
        (ReasonCode::UnsupportedProtocolVersion, "20 02 01 01"),
        (ReasonCode::ClientIdentifierNotValid, "20 02 01 02"),
        (ReasonCode::ServerBusy, "20 02 01 03"),
        (ReasonCode::BadUserNameOrPassword, "20 02 01 04"),
        (ReasonCode::NotAuthorized, "20 02 01 05"),
        (ReasonCode::Banned, "20 02 01 05"),
    ];
    for (code, bytes) in table {
        assert_eq!(
            hex(&encode_one(&connack(code), V3_1_1).unwrap()),
            bytes,
            "{code}"
        );
    }
    // 3.1 has no Session Present flag.
    assert_eq!(
        hex(&encode_one(&connack(ReasonCode::Success), V3_1).unwrap()),
        "20 02 00 00"
    );

    let suback = Packet::SubAck(Box::new(SubAck {
        packet_id: 1,
        reason_codes: vec![
            ReasonCode::GrantedQoS2,
            ReasonCode::NotAuthorized,
            ReasonCode::Success,
            ReasonCode::QuotaExceeded,
        ],
        properties: AckProperties {
            reason_string: Some("r".into()),
            user_properties: vec![],
        },
    }));
    assert_eq!(
        hex(&encode_one(&suback, V3_1_1).unwrap()),
        "90 06 00 01 02 80 00 80"
    );
}

#[test]
fn unrepresentable_packets_are_refused() {
    let auth = Packet::Auth(Box::new(Auth {
        reason_code: ReasonCode::Success,
        properties: AuthProperties::default(),
    }));
    for protocol in [V3_1, V3_1_1] {
        assert_eq!(
            encode_one(&auth, protocol),
            Err(EncodeError::NotInProtocol {
                packet: "AUTH",
                protocol
            })
        );
    }

    let long = "x".repeat(65_536);
    let packet = Packet::Publish(publish(&long, QoS::AtMostOnce, None, b""));
    assert_eq!(
        encoded_len(&packet, V5),
        Err(EncodeError::StringTooLong {
            field: "topic name",
            len: 65_536
        })
    );
    let mut with_long_user = publish("t", QoS::AtMostOnce, None, b"");
    with_long_user
        .properties
        .get_or_insert_default()
        .forwarded_mut()
        .user_properties = vec![user("k", &long)];
    assert_eq!(
        encoded_len(&Packet::Publish(with_long_user.clone()), V5),
        Err(EncodeError::StringTooLong {
            field: "user property value",
            len: 65_536
        })
    );
    // In v3 the properties are dropped, so the same packet is fine.
    assert!(encoded_len(&Packet::Publish(with_long_user), V3_1_1).is_ok());

    let mut will_connect = connect(V3_1_1, "c");
    will_connect.will = Some(LastWill {
        topic: "w".into(),
        payload: Bytes::from(vec![0; 65_536]),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: WillProperties::default(),
    });
    assert_eq!(
        encoded_len(&Packet::Connect(Box::new(will_connect)), V3_1_1),
        Err(EncodeError::BinaryTooLong {
            field: "will payload",
            len: 65_536
        })
    );

    let mut big_id = publish("t", QoS::AtMostOnce, None, b"");
    big_id
        .properties
        .get_or_insert_default()
        .subscription_identifiers = vec![268_435_456];
    assert_eq!(
        encoded_len(&Packet::Publish(big_id), V5),
        Err(EncodeError::VarIntTooLarge {
            field: "subscription identifier",
            value: 268_435_456
        })
    );

    for (qos, packet_id) in [(QoS::AtMostOnce, Some(1)), (QoS::AtLeastOnce, None)] {
        let packet = Packet::Publish(publish("t", qos, packet_id, b""));
        assert_eq!(encoded_len(&packet, V5), Err(EncodeError::PacketIdMismatch));
    }

    // A payload pushing the remaining length past 268,435,455. `vec![0; n]` is allocated
    // zeroed and never touched, so this costs no real memory.
    let payload = Bytes::from(vec![0u8; 268_435_455]);
    let packet = Packet::Publish(Publish {
        payload,
        ..publish("t", QoS::AtMostOnce, None, b"")
    });
    assert_eq!(
        encoded_len(&packet, V3_1_1),
        Err(EncodeError::VarIntTooLarge {
            field: "remaining length",
            value: 268_435_458
        })
    );
}

#[test]
fn failed_encode_appends_nothing() {
    let mut buf = BytesMut::from(&b"prefix"[..]);
    let packet = Packet::Publish(publish("t", QoS::AtLeastOnce, None, b"x"));
    assert!(encode(&packet, V5, &mut buf).is_err());
    assert_eq!(&buf[..], b"prefix");
    encode(&Packet::PingReq, V5, &mut buf).unwrap();
    assert_eq!(&buf[..], b"prefix\xc0\x00");
}

#[test]
fn connect_is_written_in_its_own_protocol() {
    let packet = Packet::Connect(Box::new(connect(V3_1, "c1")));
    let as_v5 = encode_one(&packet, V5).unwrap();
    let as_v3 = encode_one(&packet, V3_1).unwrap();
    assert_eq!(hex(&as_v5), hex(&as_v3));
    assert_eq!(hex(&as_v3[..10]), "10 10 00 06 4d 51 49 73 64 70");
}

#[test]
fn large_remaining_lengths_use_multi_byte_headers() {
    for (payload_len, header) in [
        (124, "30 7f"),
        (125, "30 80 01"),
        (16_380, "30 ff 7f"),
        (16_381, "30 80 80 01"),
    ] {
        let payload = Bytes::from(vec![7u8; payload_len]);
        let packet = Packet::Publish(Publish {
            payload,
            ..publish("t", QoS::AtMostOnce, None, b"")
        });
        let bytes = encode_one(&packet, V3_1_1).unwrap();
        assert!(
            hex(&bytes).starts_with(header),
            "{payload_len}: {}",
            hex(&bytes[..5])
        );
        let mut buf = BytesMut::from(&bytes[..]);
        let mut decoder = Decoder::new(u32::MAX);
        decoder.set_protocol(V3_1_1);
        assert_eq!(decoder.decode(&mut buf), Ok(Some(packet)));
    }
}
