//! Sessions: persistence across connections, v5 Session Expiry, Clean Start, takeover by a
//! second connection with the same client id, and unsubscribing.

use std::time::Duration;

use ferrymq_testkit::codec::{
    Disconnect, DisconnectProperties, Packet, ProtocolVersion, QoS, ReasonCode,
};
use ferrymq_testkit::{
    Metrics, QUIET, RawClient, TestBroker, WAIT, connect, publish, subscribe, unsubscribe,
};

use ProtocolVersion::{V3_1_1, V5};

/// A persistent session keeps its subscriptions and queues QoS 1/2 messages published while
/// it is offline; QoS 0 messages are not kept for an offline client (the broker's documented
/// choice, as Mosquitto's default).
#[tokio::test]
async fn persistent_session_receives_what_was_published_while_offline() {
    for version in [V3_1_1, V5] {
        let broker = TestBroker::start().await;
        let persistent = || {
            connect(version, "keeper")
                .clean_start(false)
                .session_expiry(300)
        };
        let (mut sub, connack) = RawClient::connect_ok(broker.addr(), persistent()).await;
        assert!(!connack.session_present);
        sub.subscribe(subscribe(1, "offline/#", QoS::ExactlyOnce))
            .await;
        sub.disconnect().await;

        let (mut publisher, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
        publisher.send(publish("offline/0", "dropped")).await;
        publisher
            .publish_acked(publish("offline/1", "one").qos1(1))
            .await;
        publisher
            .publish_acked(publish("offline/2", "two").qos2(2))
            .await;

        let (mut sub, connack) = RawClient::connect_ok(broker.addr(), persistent()).await;
        assert!(connack.session_present, "{version:?}");
        let first = sub.expect_publish(WAIT).await;
        assert_eq!(
            (first.topic.as_str(), first.qos),
            ("offline/1", QoS::AtLeastOnce)
        );
        assert!(!first.dup, "never sent before, so no DUP");
        sub.ack(&first).await;
        let second = sub.expect_publish(WAIT).await;
        assert_eq!(
            (second.topic.as_str(), second.qos),
            ("offline/2", QoS::ExactlyOnce)
        );
        sub.ack(&second).await;
        sub.expect_nothing(QUIET).await;
    }
}

#[tokio::test]
async fn v311_session_present_flag_bytes() {
    let broker = TestBroker::start().await;
    let persistent = || connect(V3_1_1, "flags").clean_start(false);
    let (first, _) = RawClient::connect_ok(broker.addr(), persistent()).await;
    first.disconnect().await;
    let mut second = RawClient::connect(broker.addr(), persistent()).await;
    assert_eq!(
        second.expect_raw(WAIT).await.as_ref(),
        [0x20, 0x02, 0x01, 0x00]
    );
    second.disconnect().await;
    // Clean Session 1 discards the stored session: Session Present 0 [MQTT-3.2.2-1].
    let mut clean = RawClient::connect(broker.addr(), connect(V3_1_1, "flags")).await;
    assert_eq!(
        clean.expect_raw(WAIT).await.as_ref(),
        [0x20, 0x02, 0x00, 0x00]
    );
}

/// v5 Session Expiry Interval 1 s: resumed before it passes, gone after.
#[tokio::test]
async fn v5_session_expires_after_its_interval() {
    let broker = TestBroker::start().await;
    let short = || connect(V5, "brief").clean_start(false).session_expiry(1);
    let (mut client, _) = RawClient::connect_ok(broker.addr(), short()).await;
    client
        .subscribe(subscribe(1, "exp/t", QoS::AtLeastOnce))
        .await;
    client.disconnect().await;

    // Resumed at once: still there.
    let (client, connack) = RawClient::connect_ok(broker.addr(), short()).await;
    assert!(connack.session_present);
    client.disconnect().await;

    let expired = broker
        .wait_for(Duration::from_secs(4), |m| {
            Metrics::get(&m.sessions_expired) == 1
        })
        .await;
    assert!(
        expired,
        "the session expires about 1 s after the disconnect"
    );
    let (mut publisher, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    // The subscription went with the session: nobody matches any more.
    assert_eq!(
        publisher
            .publish_acked(publish("exp/t", "late").qos1(1))
            .await,
        ReasonCode::NoMatchingSubscribers
    );
    let (mut client, connack) = RawClient::connect_ok(broker.addr(), short()).await;
    assert!(!connack.session_present);
    client.expect_nothing(QUIET).await;
}

/// Session Expiry 0 (the v5 default): the session ends with the connection.
#[tokio::test]
async fn v5_session_without_expiry_ends_with_the_connection() {
    let broker = TestBroker::start().await;
    let (client, _) =
        RawClient::connect_ok(broker.addr(), connect(V5, "gone").clean_start(false)).await;
    client.disconnect().await;
    let (_client, connack) =
        RawClient::connect_ok(broker.addr(), connect(V5, "gone").clean_start(false)).await;
    assert!(!connack.session_present);
}

/// Clean Start discards the stored session: subscriptions and queued messages are gone.
#[tokio::test]
async fn clean_start_discards_the_session() {
    for version in [V3_1_1, V5] {
        let broker = TestBroker::start().await;
        let (mut sub, _) = RawClient::connect_ok(
            broker.addr(),
            connect(version, "fresh")
                .clean_start(false)
                .session_expiry(300),
        )
        .await;
        sub.subscribe(subscribe(1, "clean/t", QoS::AtLeastOnce))
            .await;
        sub.disconnect().await;
        let (mut publisher, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
        publisher
            .publish_acked(publish("clean/t", "queued").qos1(1))
            .await;

        let (mut sub, connack) =
            RawClient::connect_ok(broker.addr(), connect(version, "fresh")).await;
        assert!(!connack.session_present);
        assert_eq!(
            publisher
                .publish_acked(publish("clean/t", "after").qos1(2))
                .await,
            ReasonCode::NoMatchingSubscribers,
            "{version:?}: the old subscription must be gone"
        );
        sub.expect_nothing(QUIET).await;
    }
}

/// DISCONNECT may lower the Session Expiry Interval: 0 ends the session now.
#[tokio::test]
async fn v5_disconnect_can_end_the_session() {
    let broker = TestBroker::start().await;
    let persistent = || connect(V5, "ender").clean_start(false).session_expiry(300);
    let (mut client, _) = RawClient::connect_ok(broker.addr(), persistent()).await;
    client
        .send(Packet::Disconnect(Box::new(Disconnect {
            reason_code: ReasonCode::Success,
            properties: DisconnectProperties {
                session_expiry_interval: Some(0),
                ..DisconnectProperties::default()
            },
        })))
        .await;
    client.expect_closed(WAIT).await;
    let (_client, connack) = RawClient::connect_ok(broker.addr(), persistent()).await;
    assert!(!connack.session_present);
}

/// DISCONNECT must not raise a zero Session Expiry Interval [MQTT-3.14.2-2]: 0x82.
#[tokio::test]
async fn v5_disconnect_cannot_raise_a_zero_expiry() {
    let broker = TestBroker::start().await;
    let (mut client, _) = RawClient::connect_ok(broker.addr(), connect(V5, "raiser")).await;
    client
        .send(Packet::Disconnect(Box::new(Disconnect {
            reason_code: ReasonCode::Success,
            properties: DisconnectProperties {
                session_expiry_interval: Some(60),
                ..DisconnectProperties::default()
            },
        })))
        .await;
    client
        .expect_disconnect_and_close(ReasonCode::ProtocolError)
        .await;
}

/// A second connection with the same client id takes the session over: the first gets
/// DISCONNECT 0x8E (v5) and is closed [MQTT-3.1.4-3]; the session continues on the second.
#[tokio::test]
async fn v5_takeover_disconnects_the_first_connection_with_0x8e() {
    let broker = TestBroker::start().await;
    let twin = || connect(V5, "twin").clean_start(false).session_expiry(300);
    let (mut first, _) = RawClient::connect_ok(broker.addr(), twin()).await;
    first
        .subscribe(subscribe(1, "twin/t", QoS::AtLeastOnce))
        .await;

    let (mut second, connack) = RawClient::connect_ok(broker.addr(), twin()).await;
    assert!(connack.session_present);
    first
        .expect_disconnect_and_close(ReasonCode::SessionTakenOver)
        .await;
    assert_eq!(broker.metric("session_takeovers"), 1);

    let (mut publisher, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    assert_eq!(
        publisher
            .publish_acked(publish("twin/t", "to the new one").qos1(1))
            .await,
        ReasonCode::Success
    );
    let received = second.expect_publish(WAIT).await;
    assert_eq!(received.payload.as_ref(), b"to the new one");
    second.ack(&received).await;
}

#[tokio::test]
async fn v311_takeover_closes_the_first_connection() {
    let broker = TestBroker::start().await;
    let twin = || connect(V3_1_1, "twin").clean_start(false);
    let (mut first, _) = RawClient::connect_ok(broker.addr(), twin()).await;
    first
        .subscribe(subscribe(1, "twin/t", QoS::AtLeastOnce))
        .await;
    let (mut second, connack) = RawClient::connect_ok(broker.addr(), twin()).await;
    assert!(connack.session_present);
    first.expect_closed(WAIT).await;

    let (mut publisher, _) = RawClient::connect_ok(broker.addr(), connect(V3_1_1, "p")).await;
    publisher
        .publish_acked(publish("twin/t", "hi").qos1(1))
        .await;
    assert_eq!(second.expect_publish(WAIT).await.payload.as_ref(), b"hi");
}

/// Takeover with Clean Start: the old connection is still kicked, the session starts over.
#[tokio::test]
async fn v5_takeover_with_clean_start_starts_a_new_session() {
    let broker = TestBroker::start().await;
    let (mut first, _) = RawClient::connect_ok(
        broker.addr(),
        connect(V5, "twin").clean_start(false).session_expiry(300),
    )
    .await;
    first
        .subscribe(subscribe(1, "twin/t", QoS::AtLeastOnce))
        .await;
    let (_second, connack) = RawClient::connect_ok(broker.addr(), connect(V5, "twin")).await;
    assert!(!connack.session_present);
    first
        .expect_disconnect_and_close(ReasonCode::SessionTakenOver)
        .await;
    let (mut publisher, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    assert_eq!(
        publisher
            .publish_acked(publish("twin/t", "x").qos1(1))
            .await,
        ReasonCode::NoMatchingSubscribers
    );
}

#[tokio::test]
async fn unsubscribe_stops_delivery_and_reports_per_filter() {
    let broker = TestBroker::start().await;
    let (mut v5, _) = RawClient::connect_ok(broker.addr(), connect(V5, "five")).await;
    v5.subscribe(subscribe(1, "u/a", QoS::AtMostOnce)).await;
    v5.send(unsubscribe(3, &["u/a", "u/never"])).await;
    // UNSUBACK: id 3, no properties, 0x00 Success, 0x11 No subscription existed.
    assert_eq!(
        v5.expect_raw(WAIT).await.as_ref(),
        [0xB0, 0x05, 0x00, 0x03, 0x00, 0x00, 0x11]
    );
    let (mut v3, _) = RawClient::connect_ok(broker.addr(), connect(V3_1_1, "three")).await;
    v3.subscribe(subscribe(1, "u/a", QoS::AtMostOnce)).await;
    v3.send(unsubscribe(4, &["u/a"])).await;
    assert_eq!(v3.expect_raw(WAIT).await.as_ref(), [0xB0, 0x02, 0x00, 0x04]);

    let (mut publisher, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    assert_eq!(
        publisher.publish_acked(publish("u/a", "x").qos1(1)).await,
        ReasonCode::NoMatchingSubscribers
    );
    v5.expect_nothing(QUIET).await;
    v3.expect_nothing(QUIET).await;
}
