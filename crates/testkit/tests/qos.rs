//! QoS 0/1/2 exchanges in both directions, with packet identifiers checked byte for byte:
//! exactly-once on duplicates, unknown identifiers, DUP re-delivery on reconnect, and
//! ordering per topic.

use ferrymq_testkit::codec::{ProtocolVersion, QoS, ReasonCode};
use ferrymq_testkit::{
    QUIET, RawClient, TestBroker, WAIT, connect, puback, pubcomp, publish, pubrec, pubrel,
    subscribe,
};

use ProtocolVersion::{V3_1_1, V5};

async fn subscriber(
    broker: &TestBroker,
    version: ProtocolVersion,
    id: &str,
    filter: &str,
    qos: QoS,
) -> RawClient {
    let (mut client, _) = RawClient::connect_ok(broker.addr(), connect(version, id)).await;
    client.subscribe(subscribe(1, filter, qos)).await;
    client
}

#[tokio::test]
async fn qos1_inbound_puback_bytes() {
    let broker = TestBroker::start().await;
    let _sub = subscriber(&broker, V5, "s", "q/1", QoS::AtLeastOnce).await;
    for version in [V3_1_1, V5] {
        let (mut client, _) = RawClient::connect_ok(broker.addr(), connect(version, "p")).await;
        client.send(publish("q/1", "x").qos1(0x1234)).await;
        assert_eq!(
            client.expect_raw(WAIT).await.as_ref(),
            [0x40, 0x02, 0x12, 0x34]
        );
    }
}

/// v5 PUBACK says 0x10 "No matching subscribers" when nobody is subscribed.
#[tokio::test]
async fn v5_qos1_without_subscribers_is_acked_with_0x10() {
    let broker = TestBroker::start().await;
    let (mut client, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    client.send(publish("nobody/home", "x").qos1(7)).await;
    assert_eq!(
        client.expect_raw(WAIT).await.as_ref(),
        [0x40, 0x03, 0x00, 0x07, 0x10]
    );
    client.send(publish("nobody/home", "x").qos2(8)).await;
    assert_eq!(
        client.expect_raw(WAIT).await.as_ref(),
        [0x50, 0x03, 0x00, 0x08, 0x10]
    );
}

#[tokio::test]
async fn qos1_outbound_carries_a_packet_id_until_acked() {
    let broker = TestBroker::start().await;
    let mut sub = subscriber(&broker, V5, "s", "q/#", QoS::AtLeastOnce).await;
    let (mut publisher, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    publisher.publish_acked(publish("q/a", "1").qos1(1)).await;
    let first = sub.expect_publish(WAIT).await;
    assert_eq!(first.qos, QoS::AtLeastOnce);
    assert!(!first.dup);
    let id = first.packet_id.expect("QoS 1 has a packet id");
    // PUBLISH QoS 1: 0x32, remaining 9 = topic (2+3) + id (2) + properties (1) + payload (1).
    let [hi, lo] = id.to_be_bytes();
    assert_eq!(
        sub.last_raw(),
        [0x32, 0x09, 0x00, 0x03, b'q', b'/', b'a', hi, lo, 0x00, b'1']
    );
    sub.send(puback(id)).await;
    publisher.publish_acked(publish("q/b", "2").qos1(2)).await;
    let second = sub.expect_publish(WAIT).await;
    assert_ne!(second.packet_id, None);
    assert_eq!(second.payload.as_ref(), b"2");
    sub.send(puback(second.packet_id.unwrap())).await;
    sub.expect_nothing(QUIET).await;
}

#[tokio::test]
async fn qos2_inbound_exchange_bytes() {
    let broker = TestBroker::start().await;
    let mut sub = subscriber(&broker, V3_1_1, "s", "q2", QoS::ExactlyOnce).await;
    let (mut client, _) = RawClient::connect_ok(broker.addr(), connect(V3_1_1, "p")).await;
    client.send(publish("q2", "once").qos2(9)).await;
    assert_eq!(
        client.expect_raw(WAIT).await.as_ref(),
        [0x50, 0x02, 0x00, 0x09]
    );
    client.send(pubrel(9)).await;
    assert_eq!(
        client.expect_raw(WAIT).await.as_ref(),
        [0x70, 0x02, 0x00, 0x09]
    );
    let received = sub.expect_publish(WAIT).await;
    assert_eq!(received.qos, QoS::ExactlyOnce);
    assert_eq!(received.payload.as_ref(), b"once");
}

/// A QoS 2 PUBLISH re-sent with DUP before PUBREL is acknowledged again but routed once
/// [MQTT-4.3.3-9]; after PUBREL the identifier is free and a new message with it is routed.
#[tokio::test]
async fn qos2_duplicate_publish_is_not_routed_twice() {
    for version in [V3_1_1, V5] {
        let broker = TestBroker::start().await;
        let mut sub = subscriber(&broker, V5, "s", "dup/#", QoS::ExactlyOnce).await;
        let (mut client, _) = RawClient::connect_ok(broker.addr(), connect(version, "p")).await;
        client.send(publish("dup/t", "first").qos2(5)).await;
        assert_eq!(client.expect_pubrec(WAIT).await.packet_id, 5);
        client.send(publish("dup/t", "first").qos2(5).dup()).await;
        let again = client.expect_pubrec(WAIT).await;
        assert_eq!(
            (again.packet_id, again.reason_code),
            (5, ReasonCode::Success)
        );
        client.send(pubrel(5)).await;
        assert_eq!(client.expect_pubcomp(WAIT).await.packet_id, 5);
        // Same identifier, new message: routed.
        client
            .publish_acked(publish("dup/t", "second").qos2(5))
            .await;
        client.send(publish("dup/end", "sentinel")).await;

        let mut payloads = Vec::new();
        loop {
            let p = sub.expect_publish(WAIT).await;
            if p.topic == "dup/end" {
                break;
            }
            payloads.push(p.payload.clone());
            sub.ack(&p).await;
        }
        assert_eq!(payloads, ["first", "second"], "{version:?}");
    }
}

/// PUBREL for an identifier the server does not know: PUBCOMP 0x92 in v5, plain PUBCOMP in v3.
#[tokio::test]
async fn pubrel_for_unknown_id_gets_pubcomp_0x92() {
    let broker = TestBroker::start().await;
    let (mut v5, _) = RawClient::connect_ok(broker.addr(), connect(V5, "five")).await;
    v5.send(pubrel(42)).await;
    assert_eq!(
        v5.expect_raw(WAIT).await.as_ref(),
        [0x70, 0x03, 0x00, 0x2A, 0x92]
    );
    v5.ping().await;
    let (mut v3, _) = RawClient::connect_ok(broker.addr(), connect(V3_1_1, "three")).await;
    v3.send(pubrel(42)).await;
    assert_eq!(v3.expect_raw(WAIT).await.as_ref(), [0x70, 0x02, 0x00, 0x2A]);
}

/// PUBREC for an identifier the server never sent: PUBREL 0x92 (v5).
#[tokio::test]
async fn pubrec_for_unknown_id_gets_pubrel_0x92() {
    let broker = TestBroker::start().await;
    let (mut client, _) = RawClient::connect_ok(broker.addr(), connect(V5, "c")).await;
    client.send(pubrec(77)).await;
    assert_eq!(
        client.expect_raw(WAIT).await.as_ref(),
        [0x62, 0x03, 0x00, 0x4D, 0x92]
    );
}

#[tokio::test]
async fn qos2_outbound_exchange() {
    let broker = TestBroker::start().await;
    for version in [V3_1_1, V5] {
        let mut sub = subscriber(&broker, version, "s2", "out/2", QoS::ExactlyOnce).await;
        let (mut publisher, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p2")).await;
        publisher
            .publish_acked(publish("out/2", "exactly").qos2(3))
            .await;
        let received = sub.expect_publish(WAIT).await;
        assert_eq!(received.qos, QoS::ExactlyOnce);
        let id = received.packet_id.unwrap();
        sub.send(pubrec(id)).await;
        let [hi, lo] = id.to_be_bytes();
        assert_eq!(sub.expect_raw(WAIT).await.as_ref(), [0x62, 0x02, hi, lo]);
        sub.send(pubcomp(id)).await;
        sub.expect_nothing(QUIET).await;
        sub.disconnect().await;
    }
}

/// The delivered QoS is the minimum of the publish QoS and the granted QoS.
#[tokio::test]
async fn delivery_qos_is_downgraded_to_the_subscription() {
    let broker = TestBroker::start().await;
    let mut sub0 = subscriber(&broker, V5, "s0", "down", QoS::AtMostOnce).await;
    let mut sub1 = subscriber(&broker, V5, "s1", "down", QoS::AtLeastOnce).await;
    let (mut publisher, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    publisher.publish_acked(publish("down", "x").qos2(1)).await;
    let p0 = sub0.expect_publish(WAIT).await;
    assert_eq!((p0.qos, p0.packet_id), (QoS::AtMostOnce, None));
    let p1 = sub1.expect_publish(WAIT).await;
    assert_eq!(p1.qos, QoS::AtLeastOnce);
    // Publishing at QoS 0 to a QoS 1 subscription delivers QoS 0.
    publisher.send(publish("down", "y")).await;
    let p1 = sub1.expect_publish(WAIT).await;
    assert_eq!((p1.qos, p1.payload.as_ref()), (QoS::AtMostOnce, &b"y"[..]));
}

/// An unacknowledged QoS 1 PUBLISH and an unacknowledged PUBREL are re-sent, with DUP and
/// the same identifiers, when the session resumes [MQTT-4.4.0-1].
#[tokio::test]
async fn unacked_publish_and_pubrel_are_resent_after_reconnect() {
    for version in [V3_1_1, V5] {
        let broker = TestBroker::start().await;
        let resume = || {
            connect(version, "resumer")
                .clean_start(false)
                .session_expiry(60)
        };
        let (mut sub, _) = RawClient::connect_ok(broker.addr(), resume()).await;
        sub.subscribe(subscribe(1, "r/1", QoS::AtLeastOnce)).await;
        sub.subscribe(subscribe(2, "r/2", QoS::ExactlyOnce)).await;
        let (mut publisher, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
        publisher.publish_acked(publish("r/1", "one").qos1(1)).await;
        publisher.publish_acked(publish("r/2", "two").qos2(2)).await;

        let q1 = sub.expect_publish(WAIT).await;
        let q2 = sub.expect_publish(WAIT).await;
        assert_eq!((q1.topic.as_str(), q2.topic.as_str()), ("r/1", "r/2"));
        let (id1, id2) = (q1.packet_id.unwrap(), q2.packet_id.unwrap());
        // Receive the QoS 2 message (PUBREC) but never complete it; never PUBACK the QoS 1.
        sub.send(pubrec(id2)).await;
        assert_eq!(sub.expect_pubrel(WAIT).await.packet_id, id2);
        sub.reset();

        let (mut sub, connack) = RawClient::connect_ok(broker.addr(), resume()).await;
        assert!(connack.session_present);
        let again = sub.expect_publish(WAIT).await;
        assert!(again.dup, "{version:?}: re-sent PUBLISH has DUP");
        assert_eq!(again.packet_id, Some(id1));
        assert_eq!(again.payload.as_ref(), b"one");
        let rel = sub.expect_pubrel(WAIT).await;
        assert_eq!(rel.packet_id, id2);
        let [hi, lo] = id2.to_be_bytes();
        assert_eq!(sub.last_raw(), [0x62, 0x02, hi, lo]);
        sub.send(puback(id1)).await;
        sub.send(pubcomp(id2)).await;
        sub.expect_nothing(QUIET).await;
        sub.disconnect().await;

        // Everything is acknowledged now: nothing is re-sent on the next resume.
        let (mut sub, _) = RawClient::connect_ok(broker.addr(), resume()).await;
        sub.expect_nothing(QUIET).await;
    }
}

/// Messages of one publisher on one topic arrive in order, at every QoS [MQTT-4.6.0-5].
#[tokio::test]
async fn messages_keep_their_order_per_topic() {
    let broker = TestBroker::start().await;
    let mut sub = subscriber(&broker, V5, "s", "ordered", QoS::ExactlyOnce).await;
    let (mut publisher, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    for i in 0u16..30 {
        let builder = publish("ordered", i.to_string());
        let builder = match i % 3 {
            0 => builder,
            1 => builder.qos1(i),
            _ => builder.qos2(i),
        };
        publisher.send(builder).await;
    }
    let mut received = Vec::new();
    while received.len() < 30 {
        let p = sub.expect_publish(WAIT).await;
        received.push(String::from_utf8(p.payload.to_vec()).unwrap());
        sub.ack(&p).await;
    }
    let expected: Vec<String> = (0..30).map(|i| i.to_string()).collect();
    assert_eq!(received, expected);
}

/// The QoS 2 packet-identifier state of a session survives reconnection: a PUBLISH re-sent
/// with DUP on the new connection is not routed again, and its PUBREL completes it.
#[tokio::test]
async fn inbound_qos2_state_survives_reconnection() {
    let broker = TestBroker::start().await;
    let mut sub = subscriber(&broker, V5, "s", "keep/#", QoS::ExactlyOnce).await;
    let request = || connect(V5, "p").clean_start(false).session_expiry(60);
    let (mut p, _) = RawClient::connect_ok(broker.addr(), request()).await;
    p.send(publish("keep/t", "once").qos2(11)).await;
    assert_eq!(p.expect_pubrec(WAIT).await.packet_id, 11);
    p.reset();

    let (mut p, connack) = RawClient::connect_ok(broker.addr(), request()).await;
    assert!(connack.session_present);
    p.send(publish("keep/t", "once").qos2(11).dup()).await;
    assert_eq!(p.expect_pubrec(WAIT).await.packet_id, 11);
    p.send(pubrel(11)).await;
    assert_eq!(p.expect_raw(WAIT).await.as_ref(), [0x70, 0x02, 0x00, 0x0B]);
    p.send(publish("keep/end", "sentinel")).await;

    let mut payloads = Vec::new();
    loop {
        let msg = sub.expect_publish(WAIT).await;
        if msg.topic == "keep/end" {
            break;
        }
        sub.ack(&msg).await;
        payloads.push(msg.payload);
    }
    assert_eq!(payloads, ["once"]);
}

/// A PUBREC with an error reason ends the QoS 2 delivery: no PUBREL, and the in-flight
/// slot is free again [MQTT-4.3.3-?] (MQTT 5.0 section 4.3.3).
#[tokio::test]
async fn pubrec_with_error_reason_ends_the_exchange() {
    let broker = TestBroker::start().await;
    let (mut sub, _) =
        RawClient::connect_ok(broker.addr(), connect(V5, "s").receive_maximum(1)).await;
    sub.subscribe(subscribe(1, "rej", QoS::ExactlyOnce)).await;
    let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    p.publish_acked(publish("rej", "no").qos2(1)).await;
    p.publish_acked(publish("rej", "yes").qos2(2)).await;
    let first = sub.expect_publish(WAIT).await;
    assert_eq!(first.payload.as_ref(), b"no");
    sub.send(ferrymq_testkit::codec::Packet::PubRec(
        ferrymq_testkit::codec::PubRec::new(first.packet_id.unwrap(), ReasonCode::UnspecifiedError),
    ))
    .await;
    let second = sub.expect_publish(WAIT).await;
    assert_eq!(second.payload.as_ref(), b"yes");
    sub.ack(&second).await;
    sub.expect_nothing(QUIET).await;
}

/// After a takeover, the new connection gets the unacknowledged QoS 1 message again, with
/// DUP and the same packet identifier.
#[tokio::test]
async fn takeover_resends_unacked_messages_to_the_new_connection() {
    let broker = TestBroker::start().await;
    let request = || connect(V5, "twin").clean_start(false).session_expiry(60);
    let (mut first, _) = RawClient::connect_ok(broker.addr(), request()).await;
    first.subscribe(subscribe(1, "tk", QoS::AtLeastOnce)).await;
    let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    p.publish_acked(publish("tk", "pending").qos1(1)).await;
    let original = first.expect_publish(WAIT).await;

    let (mut second, _) = RawClient::connect_ok(broker.addr(), request()).await;
    let again = second.expect_publish(WAIT).await;
    assert!(again.dup);
    assert_eq!(again.packet_id, original.packet_id);
    assert_eq!(again.payload.as_ref(), b"pending");
    second.ack(&again).await;
    first
        .expect_disconnect_and_close(ReasonCode::SessionTakenOver)
        .await;
}
