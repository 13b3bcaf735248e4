//! MQTT 5.0 message and subscription properties: Message Expiry, overlapping subscriptions
//! and Subscription Identifiers, No Local, Retain As Published, Retain Handling, and the
//! properties forwarded untouched (User Properties, Response Topic, Correlation Data, …).

use std::time::Duration;

use bytes::Bytes;
use ferrymq_testkit::codec::{ProtocolVersion, QoS, ReasonCode, RetainHandling};
use ferrymq_testkit::{
    QUIET, RawClient, TestBroker, WAIT, connect, forwarded_of, options, properties_of, publish,
    subscribe,
};

use ProtocolVersion::V5;

/// Messages queued for an offline session: the one whose expiry passed is dropped, the other
/// is delivered with its Message Expiry Interval reduced by the time it waited [MQTT-3.3.2-6].
#[tokio::test]
async fn message_expiry_drops_and_decrements_queued_messages() {
    let broker = TestBroker::start().await;
    let persistent = || connect(V5, "away").clean_start(false).session_expiry(60);
    let (mut sub, _) = RawClient::connect_ok(broker.addr(), persistent()).await;
    sub.subscribe(subscribe(1, "exp/#", QoS::AtLeastOnce)).await;
    sub.disconnect().await;

    let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    p.publish_acked(publish("exp/short", "short").qos1(1).expiry(1))
        .await;
    p.publish_acked(publish("exp/long", "long").qos1(2).expiry(10))
        .await;
    p.publish_acked(publish("exp/none", "none").qos1(3)).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let (mut sub, connack) = RawClient::connect_ok(broker.addr(), persistent()).await;
    assert!(connack.session_present);
    let long = sub.expect_publish(WAIT).await;
    assert_eq!(long.topic, "exp/long");
    let left = properties_of(&long)
        .message_expiry_interval
        .expect("expiry is forwarded");
    assert!(
        (1..=9).contains(&left),
        "10 s minus at least 1.2 s waited, got {left}"
    );
    sub.ack(&long).await;
    let none = sub.expect_publish(WAIT).await;
    assert_eq!(none.topic, "exp/none");
    assert_eq!(none.properties, None);
    sub.ack(&none).await;
    sub.expect_nothing(QUIET).await;
    assert_eq!(broker.metric("messages_dropped_expired"), 1);
}

/// A retained message whose expiry passed is no longer sent to new subscribers.
#[tokio::test]
async fn expired_retained_message_is_not_delivered() {
    let broker = TestBroker::start().await;
    let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    p.send(publish("rexp/short", "short").retain().expiry(1))
        .await;
    p.send(publish("rexp/long", "long").retain().expiry(100))
        .await;
    p.ping().await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (mut sub, _) = RawClient::connect_ok(broker.addr(), connect(V5, "s")).await;
    sub.subscribe(subscribe(1, "rexp/#", QoS::AtMostOnce)).await;
    let got = sub.expect_publish(WAIT).await;
    assert_eq!(got.topic, "rexp/long");
    let left = properties_of(&got).message_expiry_interval.unwrap();
    assert!((1..=99).contains(&left), "decremented, got {left}");
    sub.expect_nothing(QUIET).await;
}

/// Overlapping subscriptions: one copy, at the highest granted QoS, carrying every matching
/// Subscription Identifier (the broker's documented choice of [MQTT-3.3.4-4]).
#[tokio::test]
async fn overlapping_subscriptions_deliver_one_copy_with_all_identifiers() {
    let broker = TestBroker::start().await;
    let (mut sub, _) = RawClient::connect_ok(broker.addr(), connect(V5, "s")).await;
    sub.subscribe(subscribe(1, "ov/+", QoS::AtMostOnce).identifier(11))
        .await;
    sub.subscribe(subscribe(2, "ov/#", QoS::ExactlyOnce).identifier(22))
        .await;
    sub.subscribe(subscribe(3, "ov/a", QoS::AtLeastOnce)).await;
    sub.subscribe(subscribe(4, "sentinel", QoS::AtMostOnce))
        .await;

    let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    p.publish_acked(publish("ov/a", "x").qos2(1)).await;
    p.send(publish("sentinel", "s")).await;

    let copies = sub.publishes_until("sentinel").await;
    assert_eq!(copies.len(), 1, "one copy: {copies:?}");
    let copy = &copies[0];
    assert_eq!(copy.qos, QoS::ExactlyOnce);
    let mut ids = properties_of(copy).subscription_identifiers;
    ids.sort_unstable();
    assert_eq!(ids, [11, 22]);
}

/// Subscription Identifiers also travel with retained messages sent at subscribe time.
#[tokio::test]
async fn subscription_identifier_is_sent_with_retained_messages() {
    let broker = TestBroker::start().await;
    let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    p.send(publish("sid/r", "kept").retain()).await;
    p.ping().await;
    let (mut sub, _) = RawClient::connect_ok(broker.addr(), connect(V5, "s")).await;
    sub.subscribe(subscribe(1, "sid/#", QoS::AtMostOnce).identifier(268_435_455))
        .await;
    let got = sub.expect_publish(WAIT).await;
    assert_eq!(properties_of(&got).subscription_identifiers, [268_435_455]);
}

/// No Local: a client's own messages are not sent back to its No Local subscription
/// [MQTT-3.8.3-3]; other clients' messages are.
#[tokio::test]
async fn no_local_suppresses_own_messages() {
    let broker = TestBroker::start().await;
    let (mut me, _) = RawClient::connect_ok(broker.addr(), connect(V5, "me")).await;
    me.subscribe(subscribe(1, "chat", QoS::AtLeastOnce).no_local())
        .await;
    me.subscribe(subscribe(2, "sentinel", QoS::AtMostOnce))
        .await;
    me.publish_acked(publish("chat", "from me").qos1(1)).await;
    me.send(publish("sentinel", "s")).await;
    assert_eq!(me.publishes_until("sentinel").await, []);

    let (mut other, _) = RawClient::connect_ok(broker.addr(), connect(V5, "other")).await;
    other
        .publish_acked(publish("chat", "from other").qos1(1))
        .await;
    let got = me.expect_publish(WAIT).await;
    assert_eq!(got.payload.as_ref(), b"from other");
}

/// Retain As Published: 1 keeps the RETAIN flag on live deliveries, 0 clears it.
#[tokio::test]
async fn retain_as_published_keeps_the_flag() {
    let broker = TestBroker::start().await;
    let (mut rap, _) = RawClient::connect_ok(broker.addr(), connect(V5, "rap")).await;
    rap.subscribe(subscribe(1, "rap", QoS::AtMostOnce).retain_as_published())
        .await;
    let (mut plain, _) = RawClient::connect_ok(broker.addr(), connect(V5, "plain")).await;
    plain.subscribe(subscribe(1, "rap", QoS::AtMostOnce)).await;

    let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    p.send(publish("rap", "r").retain()).await;
    p.send(publish("rap", "n")).await;
    let flags = |a: bool, b: bool| (a, b);
    let (r, n) = (
        rap.expect_publish(WAIT).await,
        rap.expect_publish(WAIT).await,
    );
    assert_eq!(flags(r.retain, n.retain), (true, false));
    assert_eq!(rap.last_raw()[0], 0x30);
    let (r, n) = (
        plain.expect_publish(WAIT).await,
        plain.expect_publish(WAIT).await,
    );
    assert_eq!(flags(r.retain, n.retain), (false, false));
}

/// (Re-)subscribes to `rh` with `handling` and counts the retained messages sent for it.
async fn retained_count(sub: &mut RawClient, handling: RetainHandling) -> usize {
    sub.subscribe(subscribe(1, "rh", QoS::AtMostOnce).retain_handling(handling))
        .await;
    sub.subscribe(subscribe(2, "sentinel", QoS::AtMostOnce))
        .await;
    sub.publishes_until("sentinel").await.len()
}

/// Retain Handling 0 sends retained messages on every SUBSCRIBE, 1 only when the
/// subscription is new, 2 never [MQTT-3.3.1-9..11].
#[tokio::test]
async fn retain_handling_0_1_2() {
    let broker = TestBroker::start().await;
    let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    p.send(publish("rh", "kept").retain()).await;
    p.send(publish("sentinel", "s").retain()).await;
    p.ping().await;

    let (mut sub, _) = RawClient::connect_ok(broker.addr(), connect(V5, "s")).await;
    use RetainHandling::*;
    assert_eq!(retained_count(&mut sub, SendAtSubscribe).await, 1);
    assert_eq!(
        retained_count(&mut sub, SendAtSubscribe).await,
        1,
        "0: again on re-subscribe"
    );
    assert_eq!(
        retained_count(&mut sub, SendIfNewSubscription).await,
        0,
        "1: the subscription exists"
    );
    assert_eq!(retained_count(&mut sub, DoNotSend).await, 0, "2: never");

    let (mut fresh, _) = RawClient::connect_ok(broker.addr(), connect(V5, "fresh")).await;
    let new = subscribe(1, "rh", QoS::AtMostOnce).retain_handling(SendIfNewSubscription);
    fresh.subscribe(new).await;
    assert_eq!(fresh.expect_publish(WAIT).await.payload.as_ref(), b"kept");
    let (mut never, _) = RawClient::connect_ok(broker.addr(), connect(V5, "never")).await;
    never
        .subscribe(subscribe(1, "rh", QoS::AtMostOnce).retain_handling(DoNotSend))
        .await;
    never
        .subscribe(subscribe(2, "sentinel", QoS::AtMostOnce))
        .await;
    assert_eq!(never.publishes_until("sentinel").await, []);
}

/// User Properties, Response Topic, Correlation Data, Content Type and Payload Format
/// Indicator reach the subscriber unchanged, in order [MQTT-3.3.2-17/18/20].
#[tokio::test]
async fn request_response_and_user_properties_are_forwarded() {
    let broker = TestBroker::start().await;
    let (mut responder, _) = RawClient::connect_ok(broker.addr(), connect(V5, "responder")).await;
    responder
        .subscribe(subscribe(1, "req", QoS::AtLeastOnce))
        .await;
    let (mut requester, _) = RawClient::connect_ok(broker.addr(), connect(V5, "requester")).await;
    requester
        .subscribe(subscribe(1, "resp/requester", QoS::AtLeastOnce))
        .await;

    let users = vec![
        ("b".to_owned(), "2".to_owned()),
        ("a".to_owned(), "1".to_owned()),
        ("a".to_owned(), "0".to_owned()),
    ];
    let request = publish("req", "ping").qos1(1).forwarded(|p| {
        p.response_topic = Some("resp/requester".into());
        p.correlation_data = Some(Bytes::from_static(&[0, 1, 2, 0xFF]));
        p.content_type = Some("text/plain".into());
        p.payload_format_indicator = Some(1);
        p.user_properties = users.clone();
    });
    requester.publish_acked(request).await;
    let got = responder.expect_publish(WAIT).await;
    responder.ack(&got).await;
    let props = forwarded_of(&got);
    assert_eq!(props.response_topic.as_deref(), Some("resp/requester"));
    assert_eq!(
        props.correlation_data.as_deref(),
        Some(&[0, 1, 2, 0xFF][..])
    );
    assert_eq!(props.content_type.as_deref(), Some("text/plain"));
    assert_eq!(props.payload_format_indicator, Some(1));
    assert_eq!(props.user_properties, users);

    let reply = publish(props.response_topic.as_deref().unwrap(), "pong")
        .qos1(1)
        .forwarded(|p| p.correlation_data = props.correlation_data.clone());
    responder.publish_acked(reply).await;
    let answer = requester.expect_publish(WAIT).await;
    assert_eq!(answer.payload.as_ref(), b"pong");
    assert_eq!(
        forwarded_of(&answer).correlation_data.as_deref(),
        Some(&[0, 1, 2, 0xFF][..])
    );
}

/// SUBACK reason codes carry the granted QoS.
#[tokio::test]
async fn suback_grants_the_requested_qos() {
    let broker = TestBroker::start().await;
    let (mut sub, _) = RawClient::connect_ok(broker.addr(), connect(V5, "s")).await;
    sub.send(
        subscribe(9, "g/0", QoS::AtMostOnce)
            .filter("g/1", options(QoS::AtLeastOnce))
            .filter("g/2", options(QoS::ExactlyOnce))
            .filter("g/#/bad", options(QoS::AtMostOnce)),
    )
    .await;
    // SUBACK id 9, no properties, 0x00 0x01 0x02, 0x8F Topic Filter Invalid.
    assert_eq!(
        sub.expect_raw(WAIT).await.as_ref(),
        [0x90, 0x07, 0x00, 0x09, 0x00, 0x00, 0x01, 0x02, 0x8F]
    );
}

/// Maximum QoS 1 configured: QoS 2 subscriptions are granted QoS 1, CONNACK says so.
#[tokio::test]
async fn maximum_qos_caps_grants() {
    let broker = TestBroker::builder()
        .mqtt(|m| m.maximum_qos = QoS::AtLeastOnce)
        .start()
        .await;
    let (mut sub, connack) = RawClient::connect_ok(broker.addr(), connect(V5, "s")).await;
    assert_eq!(connack.properties.maximum_qos, Some(QoS::AtLeastOnce));
    let suback = sub.subscribe(subscribe(1, "m", QoS::ExactlyOnce)).await;
    assert_eq!(suback.reason_codes, [ReasonCode::GrantedQoS1]);
    // A QoS 2 PUBLISH above Maximum QoS is a protocol violation: 0x9B.
    sub.send(publish("m", "x").qos2(1)).await;
    sub.expect_disconnect_and_close(ReasonCode::QoSNotSupported)
        .await;
}

/// Will QoS above Maximum QoS: CONNACK 0x9B; Will Retain when retain is unavailable: 0x9A.
#[tokio::test]
async fn will_beyond_server_capabilities_is_refused() {
    let broker = TestBroker::builder()
        .mqtt(|m| {
            m.maximum_qos = QoS::AtLeastOnce;
            m.retain_available = false;
        })
        .start()
        .await;
    let mut c = RawClient::connect(
        broker.addr(),
        connect(V5, "w").will("w", b"x", QoS::ExactlyOnce),
    )
    .await;
    assert_eq!(
        c.expect_raw(WAIT).await.as_ref(),
        [0x20, 0x03, 0x00, 0x9B, 0x00]
    );
    let mut c = RawClient::connect(
        broker.addr(),
        connect(V5, "w")
            .will("w", b"x", QoS::AtMostOnce)
            .will_retain(),
    )
    .await;
    assert_eq!(
        c.expect_raw(WAIT).await.as_ref(),
        [0x20, 0x03, 0x00, 0x9A, 0x00]
    );
}

/// Retain unavailable: announced in CONNACK, a retained PUBLISH gets DISCONNECT 0x9A.
#[tokio::test]
async fn retain_unavailable_is_announced_and_enforced() {
    let broker = TestBroker::builder()
        .mqtt(|m| m.retain_available = false)
        .start()
        .await;
    let (mut c, connack) = RawClient::connect_ok(broker.addr(), connect(V5, "c")).await;
    assert_eq!(connack.properties.retain_available, Some(false));
    c.send(publish("t", "x").retain()).await;
    c.expect_disconnect_and_close(ReasonCode::RetainNotSupported)
        .await;
}

/// Shared subscriptions unavailable: announced in CONNACK, SUBSCRIBE gets 0x9E.
#[tokio::test]
async fn shared_subscriptions_unavailable_are_refused() {
    let broker = TestBroker::builder()
        .mqtt(|m| m.shared_subscriptions_available = false)
        .start()
        .await;
    let (mut c, connack) = RawClient::connect_ok(broker.addr(), connect(V5, "c")).await;
    assert_eq!(
        connack.properties.shared_subscription_available,
        Some(false)
    );
    let suback = c
        .subscribe(
            subscribe(1, "$share/g/t", QoS::AtMostOnce).filter("t", options(QoS::AtMostOnce)),
        )
        .await;
    assert_eq!(
        suback.reason_codes,
        [
            ReasonCode::SharedSubscriptionsNotSupported,
            ReasonCode::Success
        ]
    );
}

/// Message Expiry Interval 0 expires on arrival: connected subscribers get it (without the
/// property), an offline persistent session does not, and it is not retained.
#[tokio::test]
async fn message_expiry_zero_reaches_only_connected_subscribers() {
    let broker = TestBroker::start().await;
    let persistent = || {
        connect(V5, "zero-away")
            .clean_start(false)
            .session_expiry(60)
    };
    let (mut away, _) = RawClient::connect_ok(broker.addr(), persistent()).await;
    away.subscribe(subscribe(1, "zero/#", QoS::AtLeastOnce))
        .await;
    away.disconnect().await;
    let (mut online, _) = RawClient::connect_ok(broker.addr(), connect(V5, "zero-here")).await;
    online
        .subscribe(subscribe(1, "zero/#", QoS::AtLeastOnce))
        .await;

    let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V5, "zero-p")).await;
    p.publish_acked(publish("zero/now", "now").qos1(1).retain().expiry(0))
        .await;
    p.publish_acked(publish("zero/marker", "marker").qos1(2))
        .await;

    let now = online.expect_publish(WAIT).await;
    assert_eq!(now.payload, Bytes::from_static(b"now"));
    assert_eq!(now.properties, None);
    online.ack(&now).await;

    let (mut away, connack) = RawClient::connect_ok(broker.addr(), persistent()).await;
    assert!(connack.session_present);
    let first = away.expect_publish(WAIT).await;
    assert_eq!(
        first.topic, "zero/marker",
        "the expired-on-arrival message was not queued"
    );

    let (mut late, _) = RawClient::connect_ok(broker.addr(), connect(V5, "zero-late")).await;
    late.subscribe(subscribe(1, "zero/now", QoS::AtLeastOnce))
        .await;
    late.expect_nothing(QUIET).await;
}
