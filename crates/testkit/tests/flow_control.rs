//! v5 flow control: Receive Maximum in both directions, Topic Aliases in both directions,
//! and Maximum Packet Size in both directions.

use ferrymq_testkit::codec::{ProtocolVersion, QoS, ReasonCode};
use ferrymq_testkit::{
    QUIET, RawClient, TestBroker, WAIT, connect, properties_of, puback, publish, pubrel, subscribe,
};

use ProtocolVersion::{V3_1_1, V5};

/// The client announces Receive Maximum 2: never more than two unacknowledged QoS 1
/// PUBLISHes in flight [MQTT-3.3.4-7]; each PUBACK releases the next one, in order.
#[tokio::test]
async fn client_receive_maximum_limits_unacked_deliveries() {
    let broker = TestBroker::start().await;
    let (mut sub, _) =
        RawClient::connect_ok(broker.addr(), connect(V5, "slow").receive_maximum(2)).await;
    sub.subscribe(subscribe(1, "rm", QoS::AtLeastOnce)).await;
    let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    for i in 0..6u16 {
        p.publish_acked(publish("rm", i.to_string()).qos1(i + 1))
            .await;
    }

    let mut in_flight = Vec::new();
    let mut received = Vec::new();
    for _ in 0..2 {
        let got = sub.expect_publish(WAIT).await;
        in_flight.push(got.packet_id.unwrap());
        received.push(got.payload.clone());
    }
    while received.len() < 6 {
        sub.expect_nothing(QUIET).await;
        let oldest = in_flight.remove(0);
        sub.send(puback(oldest)).await;
        let got = sub.expect_publish(WAIT).await;
        in_flight.push(got.packet_id.unwrap());
        received.push(got.payload.clone());
    }
    assert_eq!(received, ["0", "1", "2", "3", "4", "5"]);
    for id in in_flight {
        sub.send(puback(id)).await;
    }
    sub.expect_nothing(QUIET).await;
}

/// QoS 0 messages are not held back by a full window, but do not overtake queued QoS 1
/// messages either: the order per topic holds.
#[tokio::test]
async fn qos0_waits_behind_a_full_window_in_order() {
    let broker = TestBroker::start().await;
    let (mut sub, _) =
        RawClient::connect_ok(broker.addr(), connect(V5, "slow").receive_maximum(1)).await;
    sub.subscribe(subscribe(1, "mix", QoS::AtLeastOnce)).await;
    let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    p.publish_acked(publish("mix", "a").qos1(1)).await;
    p.publish_acked(publish("mix", "b").qos1(2)).await;
    p.send(publish("mix", "c")).await;
    p.ping().await;
    let a = sub.expect_publish(WAIT).await;
    assert_eq!(a.payload.as_ref(), b"a");
    sub.expect_nothing(QUIET).await;
    sub.send(puback(a.packet_id.unwrap())).await;
    let b = sub.expect_publish(WAIT).await;
    assert_eq!(b.payload.as_ref(), b"b");
    sub.send(puback(b.packet_id.unwrap())).await;
    let c = sub.expect_publish(WAIT).await;
    assert_eq!((c.payload.as_ref(), c.qos), (&b"c"[..], QoS::AtMostOnce));
}

/// More unreleased QoS 2 PUBLISHes from the client than the server's Receive Maximum:
/// DISCONNECT 0x93 [MQTT-3.3.4-9].
#[tokio::test]
async fn server_receive_maximum_exceeded_disconnects_with_0x93() {
    let broker = TestBroker::builder()
        .limits(|l| l.max_inflight = 2)
        .start()
        .await;
    let (mut client, connack) = RawClient::connect_ok(broker.addr(), connect(V5, "eager")).await;
    assert_eq!(connack.properties.receive_maximum, Some(2));
    client.send(publish("q", "1").qos2(1)).await;
    client.send(publish("q", "2").qos2(2)).await;
    assert_eq!(client.expect_pubrec(WAIT).await.packet_id, 1);
    assert_eq!(client.expect_pubrec(WAIT).await.packet_id, 2);
    // Releasing one frees its slot.
    client.send(pubrel(1)).await;
    assert_eq!(client.expect_pubcomp(WAIT).await.packet_id, 1);
    client.send(publish("q", "3").qos2(3)).await;
    assert_eq!(client.expect_pubrec(WAIT).await.packet_id, 3);
    // 2 and 3 unreleased: a third is one too many.
    client.send(publish("q", "4").qos2(4)).await;
    client
        .expect_disconnect_and_close(ReasonCode::ReceiveMaximumExceeded)
        .await;
}

/// Client-to-server aliases: set with topic + alias, used with an empty topic.
#[tokio::test]
async fn inbound_topic_alias_is_resolved() {
    let broker = TestBroker::builder()
        .limits(|l| l.topic_alias_maximum = 2)
        .start()
        .await;
    let (mut sub, _) = RawClient::connect_ok(broker.addr(), connect(V3_1_1, "s")).await;
    sub.subscribe(subscribe(1, "alias/#", QoS::AtMostOnce))
        .await;
    let (mut p, connack) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    assert_eq!(connack.properties.topic_alias_maximum, Some(2));
    p.send(publish("alias/one", "1").alias(1)).await;
    p.send(publish("", "2").alias(1)).await;
    p.send(publish("alias/two", "3").alias(2)).await;
    p.send(publish("", "4").alias(2)).await;
    // Re-mapping alias 1 to another topic.
    p.send(publish("alias/three", "5").alias(1)).await;
    p.send(publish("", "6").alias(1)).await;
    let mut got = Vec::new();
    for _ in 0..6 {
        let msg = sub.expect_publish(WAIT).await;
        got.push((msg.topic, msg.payload));
    }
    let expected = [
        ("alias/one", "1"),
        ("alias/one", "2"),
        ("alias/two", "3"),
        ("alias/two", "4"),
        ("alias/three", "5"),
        ("alias/three", "6"),
    ];
    let got: Vec<(&str, &[u8])> = got.iter().map(|(t, p)| (t.as_str(), p.as_ref())).collect();
    let expected: Vec<(&str, &[u8])> = expected.iter().map(|(t, p)| (*t, p.as_bytes())).collect();
    assert_eq!(got, expected);
}

/// An alias above the server's Topic Alias Maximum: DISCONNECT 0x94 [MQTT-3.3.2-10].
#[tokio::test]
async fn inbound_alias_above_maximum_disconnects_with_0x94() {
    let broker = TestBroker::builder()
        .limits(|l| l.topic_alias_maximum = 2)
        .start()
        .await;
    let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    p.send(publish("t", "x").alias(3)).await;
    p.expect_disconnect_and_close(ReasonCode::TopicAliasInvalid)
        .await;
}

/// Topic Alias 0 is never valid: 0x94.
#[tokio::test]
async fn inbound_alias_zero_disconnects_with_0x94() {
    let broker = TestBroker::start().await;
    let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    p.send(publish("t", "x").alias(0)).await;
    p.expect_disconnect_and_close(ReasonCode::TopicAliasInvalid)
        .await;
}

/// An empty topic with an alias that was never set: protocol error 0x82.
#[tokio::test]
async fn inbound_unknown_alias_disconnects_with_0x82() {
    let broker = TestBroker::start().await;
    let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    p.send(publish("", "x").alias(1)).await;
    p.expect_disconnect_and_close(ReasonCode::ProtocolError)
        .await;
}

/// Aliases belong to one connection [MQTT-3.3.2-7]: a new connection cannot use them.
#[tokio::test]
async fn inbound_aliases_do_not_survive_reconnection() {
    let broker = TestBroker::start().await;
    let request = || connect(V5, "p").clean_start(false).session_expiry(60);
    let (mut p, _) = RawClient::connect_ok(broker.addr(), request()).await;
    p.send(publish("t", "x").alias(1)).await;
    p.disconnect().await;
    let (mut p, _) = RawClient::connect_ok(broker.addr(), request()).await;
    p.send(publish("", "y").alias(1)).await;
    p.expect_disconnect_and_close(ReasonCode::ProtocolError)
        .await;
}

/// Server-to-client aliases only when the client announced a Topic Alias Maximum: the first
/// message carries topic and alias, later ones an empty topic and the alias; no more aliases
/// than the client allows.
#[tokio::test]
async fn outbound_topic_aliases_respect_the_client_maximum() {
    let broker = TestBroker::start().await;
    let (mut with, _) =
        RawClient::connect_ok(broker.addr(), connect(V5, "with").topic_alias_maximum(1)).await;
    with.subscribe(subscribe(1, "oa/#", QoS::AtMostOnce)).await;
    let (mut without, _) = RawClient::connect_ok(broker.addr(), connect(V5, "without")).await;
    without
        .subscribe(subscribe(1, "oa/#", QoS::AtMostOnce))
        .await;

    let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    for (topic, payload) in [("oa/a", "1"), ("oa/a", "2"), ("oa/b", "3"), ("oa/a", "4")] {
        p.send(publish(topic, payload)).await;
    }
    let mut seen = Vec::new();
    let mut raw = Vec::new();
    for _ in 0..4 {
        let msg = with.expect_publish(WAIT).await;
        seen.push((msg.topic.clone(), properties_of(&msg).topic_alias));
        raw.push(with.last_raw().to_vec());
    }
    assert_eq!(
        seen,
        [
            ("oa/a".to_owned(), Some(1)),
            (String::new(), Some(1)),
            ("oa/b".to_owned(), None),
            (String::new(), Some(1)),
        ]
    );
    // The second on the wire: empty topic, properties = Topic Alias (0x23) 1, payload "2".
    assert_eq!(
        raw[1],
        [0x30, 0x07, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01, b'2']
    );
    for _ in 0..4 {
        let msg = without.expect_publish(WAIT).await;
        assert!(msg.topic.starts_with("oa/"));
        assert_eq!(properties_of(&msg).topic_alias, None);
    }
}

/// The client's Maximum Packet Size: a message that would exceed it is skipped, a smaller
/// one is delivered [MQTT-3.1.2-25].
#[tokio::test]
async fn client_maximum_packet_size_skips_large_messages() {
    let broker = TestBroker::start().await;
    let (mut sub, _) =
        RawClient::connect_ok(broker.addr(), connect(V5, "small").maximum_packet_size(64)).await;
    sub.subscribe(subscribe(1, "size", QoS::AtLeastOnce)).await;
    let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    p.publish_acked(publish("size", vec![b'x'; 100]).qos1(1))
        .await;
    p.publish_acked(publish("size", "small").qos1(2)).await;
    let got = sub.expect_publish(WAIT).await;
    assert_eq!(got.payload.as_ref(), b"small");
    assert!(sub.last_raw().len() <= 64);
    sub.ack(&got).await;
    sub.expect_nothing(QUIET).await;
    assert_eq!(broker.metric("messages_dropped_too_large"), 1);
}

/// A packet above the broker's max_packet_size: DISCONNECT 0x95, decided from the fixed
/// header before the body is read.
#[tokio::test]
async fn packet_above_broker_maximum_disconnects_with_0x95() {
    let broker = TestBroker::builder()
        .limits(|l| l.max_packet_size = 1024)
        .start()
        .await;
    let (mut p, connack) = RawClient::connect_ok(broker.addr(), connect(V5, "big")).await;
    assert_eq!(connack.properties.maximum_packet_size, Some(1024));
    // A publish of exactly 1024 bytes passes: 0x30, 2-byte remaining length, 1021 bytes.
    let topic = "t";
    let payload = vec![b'y'; 1021 - 2 - topic.len() - 1];
    p.send(publish(topic, payload)).await;
    p.ping().await;
    // Only the fixed header of a 2000-byte PUBLISH: refused without reading the body.
    p.send_bytes(&[0x30, 0xCD, 0x0F]).await;
    p.expect_disconnect_and_close(ReasonCode::PacketTooLarge)
        .await;
    assert_eq!(broker.metric("packets_too_large"), 1);
}

#[tokio::test]
async fn v311_packet_above_broker_maximum_is_closed() {
    let broker = TestBroker::builder()
        .limits(|l| l.max_packet_size = 1024)
        .start()
        .await;
    let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V3_1_1, "big")).await;
    p.send(publish("t", vec![0u8; 2000])).await;
    p.expect_closed(WAIT).await;
}

/// A CONNECT above max_connect_packet_size is refused before authentication: closed,
/// no CONNACK.
#[tokio::test]
async fn connect_above_max_connect_packet_size_is_closed() {
    let broker = TestBroker::builder()
        .limits(|l| l.max_connect_packet_size = 256)
        .start()
        .await;
    let big = connect(V5, "huge").will("w", &[0u8; 400], QoS::AtMostOnce);
    let mut client = RawClient::connect(broker.addr(), big).await;
    client.expect_closed(WAIT).await;
    assert_eq!(broker.metric("packets_too_large"), 1);
    assert_eq!(broker.metric("auth_failures"), 0);
    // A CONNECT just under the limit is fine.
    RawClient::connect_ok(
        broker.addr(),
        connect(V5, "fine").will("w", &[0u8; 150], QoS::AtMostOnce),
    )
    .await;
}

/// [MQTT-3.1.2-25]: a message too large for the client is discarded "as if completed". A
/// QoS 1 message left unacknowledged by a previous connection, too large for the Maximum
/// Packet Size the client announces on reconnect, must not stay in flight forever and block
/// the Receive Maximum window.
#[tokio::test]
async fn unsendable_inflight_message_does_not_block_the_window_after_reconnect() {
    let broker = TestBroker::start().await;
    let request = || {
        connect(V5, "shrinking")
            .clean_start(false)
            .session_expiry(60)
            .receive_maximum(1)
    };
    let (mut sub, _) = RawClient::connect_ok(broker.addr(), request()).await;
    sub.subscribe(subscribe(1, "shrink", QoS::AtLeastOnce))
        .await;
    let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    p.publish_acked(publish("shrink", vec![b'x'; 200]).qos1(1))
        .await;
    let big = sub.expect_publish(WAIT).await;
    assert_eq!(big.payload.len(), 200);
    sub.reset(); // never acknowledged

    let (mut sub, connack) =
        RawClient::connect_ok(broker.addr(), request().maximum_packet_size(100)).await;
    assert!(connack.session_present);
    p.publish_acked(publish("shrink", "small").qos1(2)).await;
    let got = sub.expect_publish(WAIT).await;
    assert_eq!(got.payload.as_ref(), b"small");
}
