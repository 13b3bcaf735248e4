//! Malformed and illegal input: each case closes only the offending connection — v5 with
//! DISCONNECT and the reason code of MQTT 5.0 section 4.13 (0x81 malformed, 0x82 protocol
//! error, …) once a session exists, v3 and pre-CONNECT by just closing — and another
//! client's publish/subscribe keeps working afterwards.

use ferrymq_testkit::codec::{ProtocolVersion, QoS, ReasonCode};
use ferrymq_testkit::{
    Event, QUIET, RawClient, TestBroker, WAIT, assert_pubsub_works, connect, publish, subscribe,
};

use ProtocolVersion::{V3_1_1, V5};
use ReasonCode::{MalformedPacket, ProtocolError, TopicAliasInvalid, TopicNameInvalid};

/// (what, bytes sent after a successful v5 CONNECT, DISCONNECT reason expected).
#[rustfmt::skip]
const V5_CASES: &[(&str, &[u8], ReasonCode)] = &[
    ("reserved packet type 0", &[0x00, 0x00], MalformedPacket),
    ("PUBLISH with QoS 3", &[0x36, 0x03, 0x00, 0x01, b't'], MalformedPacket),
    ("PUBLISH QoS 0 with DUP", &[0x38, 0x04, 0x00, 0x01, b't', 0x00], MalformedPacket),
    ("PUBACK with flags 0x1", &[0x41, 0x02, 0x00, 0x01], MalformedPacket),
    ("SUBSCRIBE with flags 0x0", &[0x80, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b't', 0x00], MalformedPacket),
    ("PINGREQ with flags 0x1", &[0xC1, 0x00], MalformedPacket),
    ("remaining length of 5 bytes", &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], MalformedPacket),
    ("remaining length not minimal", &[0xC0, 0x80, 0x00], MalformedPacket),
    ("remaining length ends inside the topic", &[0x30, 0x02, 0x00, 0x05], MalformedPacket),
    ("bytes after the end of PINGREQ", &[0xC0, 0x01, 0x00], MalformedPacket),
    ("topic is not UTF-8", &[0x30, 0x05, 0x00, 0x02, 0xC3, 0x28, 0x00], MalformedPacket),
    ("topic contains U+0000", &[0x30, 0x05, 0x00, 0x02, b'a', 0x00, 0x00], MalformedPacket),
    ("unknown property 0x7F", &[0x30, 0x06, 0x00, 0x01, b't', 0x02, 0x7F, 0x00], MalformedPacket),
    ("subscription options reserved bits", &[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b't', 0xC0], MalformedPacket),
    ("topic with a wildcard", &[0x30, 0x06, 0x00, 0x03, b'a', b'/', b'#', 0x00], TopicNameInvalid),
    ("topic alias 0", &[0x30, 0x07, 0x00, 0x01, b't', 0x03, 0x23, 0x00, 0x00], TopicAliasInvalid),
    ("QoS 1 PUBLISH with packet id 0", &[0x32, 0x06, 0x00, 0x01, b't', 0x00, 0x00, 0x00], ProtocolError),
    ("empty topic and no alias", &[0x30, 0x03, 0x00, 0x00, 0x00], ProtocolError),
    ("duplicate Message Expiry Interval", &[0x30, 0x0F, 0x00, 0x01, b't', 0x0A, 0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2, b'x'], ProtocolError),
    ("SUBSCRIBE without filters", &[0x82, 0x03, 0x00, 0x01, 0x00], ProtocolError),
    ("Retain Handling 3", &[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b't', 0x30], ProtocolError),
    ("second CONNECT", &[0x10, 0x0D, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x3C, 0x00, 0x00, 0x00], ProtocolError),
    ("CONNACK from a client", &[0x20, 0x03, 0x00, 0x00, 0x00], ProtocolError),
    ("AUTH without an authentication method", &[0xF0, 0x00], ProtocolError),
];

#[tokio::test]
async fn v5_bad_packets_get_disconnect_with_the_right_reason() {
    let broker = TestBroker::start().await;
    // A bystander whose subscription must keep working throughout.
    let (mut bystander, _) = RawClient::connect_ok(broker.addr(), connect(V5, "bystander")).await;
    bystander
        .subscribe(subscribe(1, "still/here", QoS::AtLeastOnce))
        .await;
    let mut failures = Vec::new();
    for (i, (what, bytes, reason)) in V5_CASES.iter().enumerate() {
        let (mut client, _) =
            RawClient::connect_ok(broker.addr(), connect(V5, &format!("bad-{i}"))).await;
        client.send_bytes(bytes).await;
        // Every case is checked before the test fails, so one report lists them all.
        match client.next_event(WAIT).await {
            Event::Packet(_) if client.last_raw() == [0xE0, 0x01, reason.as_u8()] => {
                client.expect_closed(WAIT).await;
            }
            Event::Packet(_) => failures.push(format!(
                "{what}: expected DISCONNECT {reason}, got {:02X?}",
                client.last_raw()
            )),
            other => failures.push(format!(
                "{what}: expected DISCONNECT {reason}, got {other:?}"
            )),
        }
        let (mut publisher, _) =
            RawClient::connect_ok(broker.addr(), connect(V3_1_1, "publisher")).await;
        publisher
            .publish_acked(publish("still/here", what.as_bytes()).qos1(1))
            .await;
        let got = bystander.expect_publish(WAIT).await;
        assert_eq!(got.payload.as_ref(), what.as_bytes());
        bystander.ack(&got).await;
    }
    assert!(
        failures.is_empty(),
        "wrong reactions:\n{}",
        failures.join("\n")
    );
    assert_eq!(broker.metric("protocol_errors"), V5_CASES.len() as u64);
    assert_pubsub_works(broker.addr()).await;
}

/// [MQTT-3.3.4-6]: "A PUBLISH packet sent from a Client to a Server MUST NOT contain a
/// Subscription Identifier": a protocol error, DISCONNECT 0x82 (the codec's own model says
/// so). The identifier must not be silently dropped and the message routed.
#[tokio::test]
async fn v5_publish_with_a_subscription_identifier_is_a_protocol_error() {
    let broker = TestBroker::start().await;
    let (mut sub, _) = RawClient::connect_ok(broker.addr(), connect(V5, "sub")).await;
    sub.subscribe(subscribe(1, "t", QoS::AtMostOnce)).await;
    let (mut client, _) = RawClient::connect_ok(broker.addr(), connect(V5, "c")).await;
    // PUBLISH QoS 0 "t", properties: Subscription Identifier (0x0B) 1, payload "x".
    client
        .send_bytes(&[0x30, 0x07, 0x00, 0x01, b't', 0x02, 0x0B, 0x01, b'x'])
        .await;
    client.expect_disconnect_and_close(ProtocolError).await;
    sub.expect_nothing(QUIET).await;
}

/// [MQTT-3.3.2-14]: "The Response Topic MUST NOT contain wildcard characters": a PUBLISH
/// carrying `reply/#` as its Response Topic is a protocol error (0x82), not forwarded to the
/// responder, who could never publish to it.
#[tokio::test]
async fn v5_response_topic_with_wildcards_is_a_protocol_error() {
    let broker = TestBroker::start().await;
    let (mut sub, _) = RawClient::connect_ok(broker.addr(), connect(V5, "sub")).await;
    sub.subscribe(subscribe(1, "t", QoS::AtMostOnce)).await;
    let (mut client, _) = RawClient::connect_ok(broker.addr(), connect(V5, "c")).await;
    client
        .send(publish("t", "x").forwarded(|p| p.response_topic = Some("reply/#".into())))
        .await;
    client.expect_disconnect_and_close(ProtocolError).await;
    sub.expect_nothing(QUIET).await;
}

/// v3 has no DISCONNECT from the server: the connection just closes.
#[tokio::test]
async fn v311_bad_packets_close_the_connection() {
    let broker = TestBroker::start().await;
    #[rustfmt::skip]
    let cases: &[&[u8]] = &[
        &[0x00, 0x00],
        &[0x36, 0x03, 0x00, 0x01, b't'],
        &[0x41, 0x02, 0x00, 0x01],
        &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
        &[0x30, 0x04, 0x00, 0x02, 0xC3, 0x28],
        &[0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x00],
        &[0xF0, 0x00], // AUTH does not exist in 3.1.1
        &[0x32, 0x05, 0x00, 0x01, b't', 0x00, 0x00],
    ];
    for (i, bytes) in cases.iter().enumerate() {
        let (mut client, _) =
            RawClient::connect_ok(broker.addr(), connect(V3_1_1, &format!("bad-{i}"))).await;
        client.send_bytes(bytes).await;
        client.expect_closed(WAIT).await;
    }
    assert_pubsub_works(broker.addr()).await;
}

/// The first packet must be CONNECT [MQTT-3.1.0-1]: anything else is closed without a reply.
#[tokio::test]
async fn first_packet_other_than_connect_is_closed() {
    let broker = TestBroker::start().await;
    #[rustfmt::skip]
    let cases: &[&[u8]] = &[
        &[0xC0, 0x00],
        &[0x30, 0x04, 0x00, 0x01, b't', b'x'],
        &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b't', 0x00],
        &[0x00, 0x00],
        &[0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
        // CONNECT with the reserved flag set [MQTT-3.1.2-3].
        &[0x10, 0x0D, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x03, 0x00, 0x3C, 0x00, 0x01, b'x'],
        // CONNECT whose remaining length ends inside the client id.
        &[0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x05],
    ];
    for bytes in cases {
        let mut client = RawClient::open(broker.addr()).await.unwrap();
        client.send_bytes(bytes).await;
        client.expect_closed(WAIT).await;
    }
    assert_eq!(broker.metric("auth_failures"), 0);
    assert_pubsub_works(broker.addr()).await;
}

/// Packets before the bad one in the same read are handled: PINGRESP, then DISCONNECT 0x81.
#[tokio::test]
async fn packets_before_the_bad_one_are_answered() {
    let broker = TestBroker::start().await;
    let (mut client, _) = RawClient::connect_ok(broker.addr(), connect(V5, "c")).await;
    client
        .send_bytes(&[0xC0, 0x00, 0xC0, 0x00, 0x00, 0x00])
        .await;
    client.expect_pingresp(WAIT).await;
    client.expect_pingresp(WAIT).await;
    client
        .expect_disconnect_and_close(ReasonCode::MalformedPacket)
        .await;
}

/// A bad packet closes its connection only: a subscriber's session on another connection
/// keeps its queued messages and its in-flight window.
#[tokio::test]
async fn garbage_from_one_client_does_not_disturb_another_session() {
    let broker = TestBroker::start().await;
    let (mut sub, _) = RawClient::connect_ok(broker.addr(), connect(V5, "sub")).await;
    sub.subscribe(subscribe(1, "calm", QoS::ExactlyOnce)).await;
    let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    p.publish_acked(publish("calm", "before").qos2(1)).await;
    let (mut bad, _) = RawClient::connect_ok(broker.addr(), connect(V5, "bad")).await;
    bad.send_bytes(&[0xFF; 64]).await;
    bad.expect_disconnect_and_close(ReasonCode::MalformedPacket)
        .await;
    p.publish_acked(publish("calm", "after").qos2(2)).await;
    for expected in ["before", "after"] {
        let got = sub.expect_publish(WAIT).await;
        assert_eq!(got.payload.as_ref(), expected.as_bytes());
        sub.ack(&got).await;
    }
    sub.expect_nothing(QUIET).await;
}
