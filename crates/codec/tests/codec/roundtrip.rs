//! Property tests: arbitrary valid packets of each version survive encode → decode, with
//! `encoded_len` equal to the bytes written, also when a stream of them arrives in random
//! chunks; arbitrary and mutated bytes never make the decoder panic.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use ferrymq_codec::ProtocolVersion::{V3_1, V3_1_1, V5};
use ferrymq_codec::*;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;

/// Any UTF-8 string without U+0000 [MQTT-1.5.4-2].
fn text() -> impl Strategy<Value = String> {
    "[^\\x00]{0,6}"
}

/// A topic name: non-empty, no wildcards, no U+0000.
fn topic() -> impl Strategy<Value = String> {
    "[^\\x00+#]{1,6}"
}

fn bytes() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..12).prop_map(Bytes::from)
}

fn users() -> impl Strategy<Value = Vec<UserProperty>> {
    vec((text(), text()), 0..3)
}

fn qos() -> impl Strategy<Value = QoS> {
    select(vec![QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce])
}

fn packet_id() -> impl Strategy<Value = PacketId> + Clone {
    1..=u16::MAX
}

/// Authentication Method with optional Data: Data alone is a Protocol Error in CONNECT.
fn auth_pair() -> impl Strategy<Value = (Option<String>, Option<Bytes>)> {
    option::of((text(), option::of(bytes()))).prop_map(|pair| match pair {
        Some((method, data)) => (Some(method), data),
        None => (None, None),
    })
}

/// The v5 reason codes each packet may carry (MQTT 5.0 table 2-6), written out
/// independently of the decoder's own table.
fn v5_codes(packet: &str) -> Vec<ReasonCode> {
    let bytes: &[u8] = match packet {
        "CONNACK" => &[
            0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90,
            0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
        ],
        "PUBACK" => &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99],
        "PUBREL" => &[0x00, 0x92],
        "SUBACK" => &[
            0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
        ],
        "UNSUBACK" => &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91],
        "DISCONNECT" => &[
            0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8C, 0x8D, 0x8E, 0x8F, 0x90,
            0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0,
            0xA1, 0xA2,
        ],
        "AUTH" => &[0x00, 0x18, 0x19],
        _ => &[],
    };
    bytes
        .iter()
        .filter_map(|b| ReasonCode::from_u8(*b))
        .collect()
}

fn ack_properties(v5: bool) -> BoxedStrategy<AckProperties> {
    if !v5 {
        return Just(AckProperties::default()).boxed();
    }
    (option::of(text()), users())
        .prop_map(|(reason_string, user_properties)| AckProperties {
            reason_string,
            user_properties,
        })
        .boxed()
}

fn connect(protocol: ProtocolVersion) -> BoxedStrategy<Connect> {
    let v5 = protocol.is_v5();
    let will_properties = if v5 {
        (
            option::of(any::<u32>()),
            option::of(0..=1u8),
            option::of(any::<u32>()),
            option::of(text()),
            option::of(text()),
            option::of(bytes()),
            users(),
        )
            .prop_map(
                |(delay, format, expiry, content_type, response_topic, correlation, users)| {
                    WillProperties {
                        will_delay_interval: delay,
                        payload_format_indicator: format,
                        message_expiry_interval: expiry,
                        content_type,
                        response_topic,
                        correlation_data: correlation,
                        user_properties: users,
                    }
                },
            )
            .boxed()
    } else {
        Just(WillProperties::default()).boxed()
    };
    let will = (text(), bytes(), qos(), any::<bool>(), will_properties).prop_map(
        |(topic, payload, qos, retain, properties)| LastWill {
            topic,
            payload,
            qos,
            retain,
            properties,
        },
    );
    let properties = if v5 {
        (
            option::of(any::<u32>()),
            option::of(1..=u16::MAX),
            option::of(1..=u32::MAX),
            option::of(any::<u16>()),
            option::of(any::<bool>()),
            option::of(any::<bool>()),
            users(),
            auth_pair(),
        )
            .prop_map(
                |(expiry, receive, size, alias, response, problem, users, (method, data))| {
                    ConnectProperties {
                        session_expiry_interval: expiry,
                        receive_maximum: receive,
                        maximum_packet_size: size,
                        topic_alias_maximum: alias,
                        request_response_information: response,
                        request_problem_information: problem,
                        user_properties: users,
                        authentication_method: method,
                        authentication_data: data,
                    }
                },
            )
            .boxed()
    } else {
        Just(ConnectProperties::default()).boxed()
    };
    (
        any::<bool>(),
        any::<u16>(),
        text(),
        option::of(will),
        option::of(text()),
        option::of(bytes()),
        properties,
    )
        .prop_map(
            move |(clean_start, keep_alive, client_id, will, username, password, properties)| {
                // 3.1 and 3.1.1 allow a password only together with a user name [MQTT-3.1.2-22].
                let password = if v5 || username.is_some() {
                    password
                } else {
                    None
                };
                Connect {
                    protocol,
                    clean_start,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                    properties,
                }
            },
        )
        .boxed()
}

fn connack(protocol: ProtocolVersion) -> BoxedStrategy<ConnAck> {
    if !protocol.is_v5() {
        let codes = vec![
            ReasonCode::Success,
            ReasonCode::UnsupportedProtocolVersion,
            ReasonCode::ClientIdentifierNotValid,
            ReasonCode::ServerUnavailable,
            ReasonCode::BadUserNameOrPassword,
            ReasonCode::NotAuthorized,
        ];
        let has_session_present = protocol == V3_1_1;
        return (any::<bool>(), select(codes))
            .prop_map(move |(session_present, reason_code)| ConnAck {
                session_present: session_present && has_session_present,
                reason_code,
                properties: ConnAckProperties::default(),
            })
            .boxed();
    }
    let first = (
        option::of(any::<u32>()),
        option::of(1..=u16::MAX),
        option::of(select(vec![QoS::AtMostOnce, QoS::AtLeastOnce])),
        option::of(any::<bool>()),
        option::of(1..=u32::MAX),
        option::of(text()),
        option::of(any::<u16>()),
        option::of(text()),
    );
    let second = (
        users(),
        option::of(any::<bool>()),
        option::of(any::<bool>()),
        option::of(any::<bool>()),
        option::of(any::<u16>()),
        option::of(text()),
        option::of(text()),
        option::of((text(), option::of(bytes()))),
    );
    (any::<bool>(), select(v5_codes("CONNACK")), first, second)
        .prop_map(|(session_present, reason_code, first, second)| {
            let (expiry, receive, max_qos, retain, size, assigned, alias, reason) = first;
            let (users, wildcard, sub_ids, shared, keep_alive, info, reference, auth) = second;
            let (method, data) = auth.map_or((None, None), |(m, d)| (Some(m), d));
            ConnAck {
                session_present,
                reason_code,
                properties: ConnAckProperties {
                    session_expiry_interval: expiry,
                    receive_maximum: receive,
                    maximum_qos: max_qos,
                    retain_available: retain,
                    maximum_packet_size: size,
                    assigned_client_identifier: assigned,
                    topic_alias_maximum: alias,
                    reason_string: reason,
                    user_properties: users,
                    wildcard_subscription_available: wildcard,
                    subscription_identifiers_available: sub_ids,
                    shared_subscription_available: shared,
                    server_keep_alive: keep_alive,
                    response_information: info,
                    server_reference: reference,
                    authentication_method: method,
                    authentication_data: data,
                },
            }
        })
        .boxed()
}

/// The decoder gives `None` for an empty part, so the strategy never builds an empty one.
fn publish(v5: bool) -> BoxedStrategy<Publish> {
    let properties = if v5 {
        (
            option::of(0..=1u8),
            option::of(any::<u32>()),
            option::of(1..=u16::MAX),
            option::of(text()),
            option::of(bytes()),
            users(),
            vec(1..=268_435_455u32, 0..3),
            option::of(text()),
        )
            .prop_map(
                |(format, expiry, alias, response, correlation, users, ids, content)| {
                    let forwarded = ForwardedProperties {
                        payload_format_indicator: format,
                        content_type: content,
                        response_topic: response,
                        correlation_data: correlation,
                        user_properties: users,
                    };
                    let properties = PublishProperties {
                        message_expiry_interval: expiry,
                        topic_alias: alias,
                        subscription_identifiers: ids,
                        forwarded: (forwarded != ForwardedProperties::default())
                            .then(|| Arc::new(forwarded)),
                    };
                    (!properties.is_empty()).then(|| Box::new(properties))
                },
            )
            .boxed()
    } else {
        Just(None).boxed()
    };
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        topic(),
        any::<bool>(),
        packet_id(),
        properties,
        bytes(),
    )
        .prop_map(
            |(qos, dup, retain, topic, drop_topic, id, properties, payload)| {
                let aliased =
                    drop_topic && properties.as_ref().is_some_and(|p| p.topic_alias.is_some());
                let qos0 = qos == QoS::AtMostOnce;
                Publish {
                    dup: dup && !qos0,
                    qos,
                    retain,
                    topic: if aliased { String::new() } else { topic },
                    packet_id: if qos0 { None } else { Some(id) },
                    properties,
                    payload,
                }
            },
        )
        .boxed()
}

fn subscription_options(v5: bool) -> BoxedStrategy<SubscriptionOptions> {
    if !v5 {
        return qos()
            .prop_map(|qos| SubscriptionOptions {
                qos,
                ..Default::default()
            })
            .boxed();
    }
    let handling = select(vec![
        RetainHandling::SendAtSubscribe,
        RetainHandling::SendIfNewSubscription,
        RetainHandling::DoNotSend,
    ]);
    (qos(), any::<bool>(), any::<bool>(), handling)
        .prop_map(
            |(qos, no_local, retain_as_published, retain_handling)| SubscriptionOptions {
                qos,
                no_local,
                retain_as_published,
                retain_handling,
            },
        )
        .boxed()
}

fn packet(protocol: ProtocolVersion) -> BoxedStrategy<Packet> {
    let v5 = protocol.is_v5();
    let codes = |packet: &str, v3: Vec<ReasonCode>| if v5 { v5_codes(packet) } else { v3 };
    let success = vec![ReasonCode::Success];
    let ack = (
        packet_id(),
        select(codes("PUBACK", success.clone())),
        ack_properties(v5),
    );
    let rel = (
        packet_id(),
        select(codes("PUBREL", success.clone())),
        ack_properties(v5),
    );
    let subscribe_properties = if v5 {
        (option::of(1..=268_435_455u32), users())
            .prop_map(
                |(subscription_identifier, user_properties)| SubscribeProperties {
                    subscription_identifier,
                    user_properties,
                },
            )
            .boxed()
    } else {
        Just(SubscribeProperties::default()).boxed()
    };
    let v3_suback = vec![
        ReasonCode::Success,
        ReasonCode::GrantedQoS1,
        ReasonCode::GrantedQoS2,
        ReasonCode::UnspecifiedError,
    ];
    let unsuback_codes = if v5 {
        vec(select(v5_codes("UNSUBACK")), 0..4).boxed()
    } else {
        Just(vec![]).boxed()
    };
    let disconnect_properties = if v5 {
        (
            option::of(any::<u32>()),
            option::of(text()),
            users(),
            option::of(text()),
        )
            .prop_map(|(expiry, reason, users, reference)| DisconnectProperties {
                session_expiry_interval: expiry,
                reason_string: reason,
                user_properties: users,
                server_reference: reference,
            })
            .boxed()
    } else {
        Just(DisconnectProperties::default()).boxed()
    };

    let mut choices: Vec<BoxedStrategy<Packet>> = vec![
        connect(protocol)
            .prop_map(|c| Packet::Connect(Box::new(c)))
            .boxed(),
        connack(protocol)
            .prop_map(|c| Packet::ConnAck(Box::new(c)))
            .boxed(),
        publish(v5).prop_map(Packet::Publish).boxed(),
        ack.clone()
            .prop_map(|(packet_id, reason_code, properties)| {
                Packet::PubAck(PubAck {
                    packet_id,
                    reason_code,
                    properties,
                })
            })
            .boxed(),
        ack.prop_map(|(packet_id, reason_code, properties)| {
            Packet::PubRec(PubRec {
                packet_id,
                reason_code,
                properties,
            })
        })
        .boxed(),
        rel.clone()
            .prop_map(|(packet_id, reason_code, properties)| {
                Packet::PubRel(PubRel {
                    packet_id,
                    reason_code,
                    properties,
                })
            })
            .boxed(),
        rel.prop_map(|(packet_id, reason_code, properties)| {
            Packet::PubComp(PubComp {
                packet_id,
                reason_code,
                properties,
            })
        })
        .boxed(),
        (
            packet_id(),
            vec((text(), subscription_options(v5)), 1..4),
            subscribe_properties,
        )
            .prop_map(|(packet_id, filters, properties)| {
                Packet::Subscribe(Subscribe {
                    packet_id,
                    filters,
                    properties,
                })
            })
            .boxed(),
        (
            packet_id(),
            vec(select(codes("SUBACK", v3_suback)), 1..4),
            ack_properties(v5),
        )
            .prop_map(|(packet_id, reason_codes, properties)| {
                Packet::SubAck(Box::new(SubAck {
                    packet_id,
                    reason_codes,
                    properties,
                }))
            })
            .boxed(),
        (
            packet_id(),
            vec(text(), 1..4),
            if v5 {
                users().boxed()
            } else {
                Just(vec![]).boxed()
            },
        )
            .prop_map(|(packet_id, filters, user_properties)| {
                Packet::Unsubscribe(Unsubscribe {
                    packet_id,
                    filters,
                    user_properties,
                })
            })
            .boxed(),
        (packet_id(), unsuback_codes, ack_properties(v5))
            .prop_map(|(packet_id, reason_codes, properties)| {
                Packet::UnsubAck(Box::new(UnsubAck {
                    packet_id,
                    reason_codes,
                    properties,
                }))
            })
            .boxed(),
        Just(Packet::PingReq).boxed(),
        Just(Packet::PingResp).boxed(),
        (select(codes("DISCONNECT", success)), disconnect_properties)
            .prop_map(|(reason_code, properties)| {
                Packet::Disconnect(Box::new(Disconnect {
                    reason_code,
                    properties,
                }))
            })
            .boxed(),
    ];
    if v5 {
        let auth = (
            select(v5_codes("AUTH")),
            option::of(text()),
            option::of(bytes()),
            option::of(text()),
            users(),
        )
            .prop_map(|(reason_code, method, data, reason, users)| {
                Packet::Auth(Box::new(Auth {
                    reason_code,
                    properties: AuthProperties {
                        authentication_method: method,
                        authentication_data: data,
                        reason_string: reason,
                        user_properties: users,
                    },
                }))
            });
        choices.push(auth.boxed());
    }
    proptest::strategy::Union::new(choices).boxed()
}

fn decoder_for(packet: &Packet, protocol: ProtocolVersion) -> Decoder {
    let mut decoder = Decoder::new(u32::MAX);
    if !matches!(packet, Packet::Connect(_)) {
        decoder.set_protocol(protocol);
    }
    decoder
}

fn round_trip(packet: &Packet, protocol: ProtocolVersion) -> Result<(), TestCaseError> {
    let mut buf = BytesMut::new();
    encode(packet, protocol, &mut buf).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(encoded_len(packet, protocol), Ok(buf.len()));
    let decoded = decoder_for(packet, protocol).decode(&mut buf);
    prop_assert_eq!(decoded, Ok(Some(packet.clone())));
    prop_assert!(buf.is_empty());
    Ok(())
}

/// Every version's packets except CONNECT, for streams after the handshake.
fn session_packets(protocol: ProtocolVersion) -> impl Strategy<Value = Vec<Packet>> {
    vec(
        packet(protocol).prop_filter("CONNECT comes first", |p| !matches!(p, Packet::Connect(_))),
        1..8,
    )
}

fn version_and_packets() -> impl Strategy<Value = (ProtocolVersion, Vec<Packet>)> {
    select(vec![V3_1, V3_1_1, V5])
        .prop_flat_map(|protocol| (Just(protocol), session_packets(protocol)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trip_v3_1(packet in packet(V3_1)) {
        round_trip(&packet, V3_1)?;
    }

    #[test]
    fn round_trip_v3_1_1(packet in packet(V3_1_1)) {
        round_trip(&packet, V3_1_1)?;
    }

    #[test]
    fn round_trip_v5(packet in packet(V5)) {
        round_trip(&packet, V5)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// A CONNECT then a session's packets, delivered in random chunks, decode in order.
    #[test]
    fn chunked_stream_decodes_in_order(
        (protocol, packets) in version_and_packets(),
        keep_alive in any::<u16>(),
        chunks in vec(1..40usize, 1..64),
    ) {
        let connect = Connect {
            protocol,
            clean_start: true,
            keep_alive,
            client_id: "c".into(),
            will: None,
            username: None,
            password: None,
            properties: ConnectProperties::default(),
        };
        let mut all = vec![Packet::Connect(Box::new(connect))];
        all.extend(packets);
        let mut wire = BytesMut::new();
        for packet in &all {
            encode(packet, protocol, &mut wire).unwrap();
        }
        let wire = wire.freeze();

        let mut decoder = Decoder::new(u32::MAX);
        let mut buf = BytesMut::new();
        let mut decoded = Vec::new();
        let mut offset = 0;
        let mut sizes = chunks.iter().cycle();
        while offset < wire.len() {
            let size = (*sizes.next().unwrap()).min(wire.len() - offset);
            buf.extend_from_slice(&wire[offset..offset + size]);
            offset += size;
            while let Some(packet) = decoder.decode(&mut buf).unwrap() {
                decoded.push(packet);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(decoded, all);
    }

    /// Arbitrary bytes never make the decoder panic, in any state or chunking.
    #[test]
    fn random_bytes_never_panic(data in vec(any::<u8>(), 0..512)) {
        ferrymq_codec::fuzzing::fuzz_decode(&data);
    }

    /// Valid streams with a few bytes corrupted reach far deeper than random bytes.
    #[test]
    fn mutated_streams_never_panic(
        (protocol, packets) in version_and_packets(),
        flips in vec((any::<proptest::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut wire = BytesMut::new();
        for packet in &packets {
            encode(packet, protocol, &mut wire).unwrap();
        }
        let mut data = wire.to_vec();
        if !data.is_empty() {
            for (index, value) in &flips {
                let at = index.index(data.len());
                data[at] ^= value;
            }
        }
        ferrymq_codec::fuzzing::fuzz_decode(&data);
    }
}
