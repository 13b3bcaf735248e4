//! Configured limits: subscriptions per session, topic length and levels, connections,
//! the CONNECT deadline (also against a trickled CONNECT), the outbound in-flight window,
//! and the queue of an offline session.

use std::time::Duration;

use bytes::BytesMut;
use ferrymq_testkit::codec::{Packet, ProtocolVersion, QoS, ReasonCode, encode};
use ferrymq_testkit::{
    Event, Metrics, QUIET, RawClient, TestBroker, WAIT, assert_pubsub_works, connect, options,
    puback, publish, subscribe,
};

use ProtocolVersion::{V3_1_1, V5};

#[tokio::test]
async fn max_subscriptions_per_session_refuses_the_excess() {
    let broker = TestBroker::builder()
        .limits(|l| l.max_subscriptions_per_session = 2)
        .start()
        .await;
    let three = || {
        subscribe(1, "s/1", QoS::AtLeastOnce)
            .filter("s/2", options(QoS::AtLeastOnce))
            .filter("s/3", options(QoS::AtLeastOnce))
    };
    let (mut v5, _) = RawClient::connect_ok(broker.addr(), connect(V5, "five")).await;
    v5.send(three()).await;
    // id 1, no properties, 0x01 0x01, 0x97 Quota Exceeded.
    assert_eq!(
        v5.expect_raw(WAIT).await.as_ref(),
        [0x90, 0x06, 0x00, 0x01, 0x00, 0x01, 0x01, 0x97]
    );
    // Replacing an existing subscription is not a new one.
    let again = v5.subscribe(subscribe(2, "s/1", QoS::AtMostOnce)).await;
    assert_eq!(again.reason_codes, [ReasonCode::Success]);

    let (mut v3, _) = RawClient::connect_ok(broker.addr(), connect(V3_1_1, "three")).await;
    v3.send(three()).await;
    assert_eq!(
        v3.expect_raw(WAIT).await.as_ref(),
        [0x90, 0x05, 0x00, 0x01, 0x01, 0x01, 0x80]
    );
    assert_eq!(broker.metric("subscriptions_refused_limit"), 2);
}

fn topic_limited() -> ferrymq_testkit::TestBrokerBuilder {
    TestBroker::builder().limits(|l| {
        l.max_topic_length = 16;
        l.max_topic_levels = 3;
    })
}

#[tokio::test]
async fn topic_over_limits_in_subscribe_gets_0x8f() {
    let broker = topic_limited().start().await;
    let (mut v5, _) = RawClient::connect_ok(broker.addr(), connect(V5, "five")).await;
    let suback = v5
        .subscribe(
            subscribe(1, "a/b/c", QoS::AtMostOnce)
                .filter("a/b/c/d", options(QoS::AtMostOnce))
                .filter("seventeen-bytes-x", options(QoS::AtMostOnce))
                .filter("sixteen-bytes-xx", options(QoS::AtMostOnce)),
        )
        .await;
    use ReasonCode::{Success, TopicFilterInvalid};
    assert_eq!(
        suback.reason_codes,
        [Success, TopicFilterInvalid, TopicFilterInvalid, Success]
    );
    let (mut v3, _) = RawClient::connect_ok(broker.addr(), connect(V3_1_1, "three")).await;
    v3.send(subscribe(7, "a/b/c/d", QoS::AtMostOnce)).await;
    assert_eq!(
        v3.expect_raw(WAIT).await.as_ref(),
        [0x90, 0x03, 0x00, 0x07, 0x80]
    );
}

#[tokio::test]
async fn topic_over_limits_in_publish_disconnects_with_0x90() {
    let broker = topic_limited().start().await;
    for topic in ["a/b/c/d", "seventeen-bytes-x"] {
        let (mut v5, _) = RawClient::connect_ok(broker.addr(), connect(V5, "five")).await;
        v5.send(publish(topic, "x")).await;
        v5.expect_disconnect_and_close(ReasonCode::TopicNameInvalid)
            .await;
        let (mut v3, _) = RawClient::connect_ok(broker.addr(), connect(V3_1_1, "three")).await;
        v3.send(publish(topic, "x").qos1(1)).await;
        v3.expect_closed(WAIT).await;
    }
    assert_eq!(broker.metric("topics_invalid"), 4);
    // Exactly at the limits is fine.
    let (mut ok, _) = RawClient::connect_ok(broker.addr(), connect(V3_1_1, "ok")).await;
    ok.publish_acked(publish("sixteen-bytes-xx", "x").qos1(1))
        .await;
    ok.publish_acked(publish("a/b/c", "x").qos1(2)).await;
}

#[tokio::test]
async fn will_topic_over_limits_is_refused_in_connack() {
    let broker = topic_limited().start().await;
    let request = connect(V5, "w").will("a/b/c/d", b"x", QoS::AtMostOnce);
    let mut client = RawClient::connect(broker.addr(), request).await;
    assert_eq!(
        client.expect_raw(WAIT).await.as_ref(),
        [0x20, 0x03, 0x00, 0x90, 0x00]
    );
    client.expect_closed(WAIT).await;
}

#[tokio::test]
async fn max_connections_closes_extra_sockets() {
    let broker = TestBroker::builder()
        .limits(|l| l.max_connections = 2)
        .start()
        .await;
    let (first, _) = RawClient::connect_ok(broker.addr(), connect(V5, "one")).await;
    let (mut second, _) = RawClient::connect_ok(broker.addr(), connect(V3_1_1, "two")).await;
    let mut third = RawClient::connect(broker.addr(), connect(V5, "three")).await;
    third.expect_closed(WAIT).await;
    assert_eq!(broker.metric("connections_refused_limit"), 1);
    second.ping().await;

    // A slot frees when a connection closes.
    first.disconnect().await;
    let freed = broker
        .wait_for(WAIT, |m| Metrics::get(&m.connections_open) < 2)
        .await;
    assert!(freed);
    RawClient::connect_ok(broker.addr(), connect(V5, "four")).await;
}

#[tokio::test]
async fn silent_socket_is_closed_at_the_connect_deadline() {
    let broker = TestBroker::builder()
        .mqtt(|m| m.connect_timeout = Duration::from_secs(1))
        .start()
        .await;
    let mut idle = RawClient::open(broker.addr()).await.unwrap();
    idle.expect_closed(Duration::from_secs(4)).await;
    assert_eq!(broker.metric("connect_timeouts"), 1);
}

/// A CONNECT trickled one byte every 200 ms does not extend the 1 s deadline: the socket is
/// closed long before the last byte.
#[tokio::test]
async fn trickled_connect_is_closed_at_the_deadline() {
    let broker = TestBroker::builder()
        .mqtt(|m| m.connect_timeout = Duration::from_secs(1))
        .start()
        .await;
    let mut bytes = BytesMut::new();
    let request = connect(V3_1_1, "trickle-trickle-trickle").build();
    encode(&Packet::Connect(Box::new(request)), V3_1_1, &mut bytes).unwrap();
    assert!(bytes.len() > 30, "long enough to outlast the deadline");
    let mut client = RawClient::open(broker.addr()).await.unwrap();
    client.set_protocol(V3_1_1);
    let (sent, event) = client.trickle(&bytes, Duration::from_millis(200)).await;
    assert_eq!(event, Event::Closed, "closed, not answered");
    assert!(
        sent < bytes.len() / 2,
        "closed after {sent} of {} bytes",
        bytes.len()
    );
    assert_eq!(broker.metric("connect_timeouts"), 1);
    assert_pubsub_works(broker.addr()).await;
}

/// max_inflight bounds unacknowledged deliveries to clients that announce no Receive
/// Maximum (every v3 client).
#[tokio::test]
async fn max_inflight_bounds_deliveries_to_v3_clients() {
    let broker = TestBroker::builder()
        .limits(|l| l.max_inflight = 2)
        .start()
        .await;
    let (mut sub, _) = RawClient::connect_ok(broker.addr(), connect(V3_1_1, "s")).await;
    sub.subscribe(subscribe(1, "win", QoS::AtLeastOnce)).await;
    let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    for i in 0..3u16 {
        p.publish_acked(publish("win", i.to_string()).qos1(i + 1))
            .await;
    }
    let a = sub.expect_publish(WAIT).await;
    let b = sub.expect_publish(WAIT).await;
    sub.expect_nothing(QUIET).await;
    sub.send(puback(a.packet_id.unwrap())).await;
    let c = sub.expect_publish(WAIT).await;
    let payloads = [a.payload, b.payload, c.payload];
    assert_eq!(payloads, ["0", "1", "2"]);
}

/// An offline session's queue holds at most max_queued_messages: later QoS 1 messages are
/// refused (v5 PUBACK 0x97 when no other subscriber took them) and never delivered.
#[tokio::test]
async fn offline_queue_overflow_delivers_at_most_the_limit() {
    let broker = TestBroker::builder()
        .limits(|l| l.max_queued_messages = 5)
        .start()
        .await;
    let persistent = || connect(V5, "away").clean_start(false).session_expiry(60);
    let (mut sub, _) = RawClient::connect_ok(broker.addr(), persistent()).await;
    sub.subscribe(subscribe(1, "q", QoS::AtLeastOnce)).await;
    sub.disconnect().await;

    let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    let mut reasons = Vec::new();
    for i in 0..8u16 {
        reasons.push(
            p.publish_acked(publish("q", i.to_string()).qos1(i + 1))
                .await,
        );
    }
    use ReasonCode::{QuotaExceeded, Success};
    assert_eq!(
        reasons,
        [
            Success,
            Success,
            Success,
            Success,
            Success,
            QuotaExceeded,
            QuotaExceeded,
            QuotaExceeded
        ]
    );
    assert_eq!(broker.metric("messages_dropped_queue_full"), 3);

    let (mut sub, _) = RawClient::connect_ok(broker.addr(), persistent()).await;
    let mut got = Vec::new();
    for _ in 0..5 {
        let msg = sub.expect_publish(WAIT).await;
        sub.ack(&msg).await;
        got.push(msg.payload);
    }
    assert_eq!(got, ["0", "1", "2", "3", "4"]);
    sub.expect_nothing(QUIET).await;
}

/// Overflow policy: the oldest queued QoS 0 message is dropped first to make room.
#[tokio::test]
async fn queue_overflow_drops_the_oldest_qos0_first() {
    let broker = TestBroker::builder()
        .limits(|l| l.max_queued_messages = 3)
        .start()
        .await;
    let (mut sub, _) =
        RawClient::connect_ok(broker.addr(), connect(V5, "s").receive_maximum(1)).await;
    sub.subscribe(subscribe(1, "o", QoS::AtLeastOnce)).await;
    let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    p.publish_acked(publish("o", "a").qos1(1)).await;
    // "a" is in flight (the window of 1 is full) once the client has it.
    let a = sub.expect_publish(WAIT).await;
    assert_eq!(a.payload.as_ref(), b"a");
    p.publish_acked(publish("o", "b").qos1(2)).await; // queued behind the window
    for payload in ["c", "d", "e"] {
        p.send(publish("o", payload)).await; // QoS 0, queued; "e" pushes "c" out
    }
    p.ping().await;
    sub.send(puback(a.packet_id.unwrap())).await;
    let mut rest = Vec::new();
    for _ in 0..3 {
        let msg = sub.expect_publish(WAIT).await;
        sub.ack(&msg).await;
        rest.push(msg.payload);
    }
    assert_eq!(rest, ["b", "d", "e"]);
    sub.expect_nothing(QUIET).await;
    assert_eq!(broker.metric("messages_dropped_queue_full"), 1);
}

/// max_queued_bytes bounds the queue by size as well as by count.
#[tokio::test]
async fn queue_is_bounded_in_bytes() {
    let broker = TestBroker::builder()
        .limits(|l| l.max_queued_bytes = 1000)
        .start()
        .await;
    let persistent = || connect(V5, "away").clean_start(false).session_expiry(60);
    let (mut sub, _) = RawClient::connect_ok(broker.addr(), persistent()).await;
    sub.subscribe(subscribe(1, "b", QoS::AtLeastOnce)).await;
    sub.disconnect().await;
    let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    let mut reasons = Vec::new();
    for i in 0..4u16 {
        reasons.push(
            p.publish_acked(publish("b", vec![b'0' + i as u8; 400]).qos1(i + 1))
                .await,
        );
    }
    use ReasonCode::{QuotaExceeded, Success};
    assert_eq!(reasons, [Success, Success, QuotaExceeded, QuotaExceeded]);
    let (mut sub, _) = RawClient::connect_ok(broker.addr(), persistent()).await;
    for expected in [b'0', b'1'] {
        let msg = sub.expect_publish(WAIT).await;
        assert_eq!(msg.payload[0], expected);
        sub.ack(&msg).await;
    }
    sub.expect_nothing(QUIET).await;
}
