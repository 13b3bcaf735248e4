//! Retained messages: set, replace, delete, wildcard delivery, the RETAIN flag on delivery,
//! and the `$`-topic rule [MQTT-4.7.2-1] for live and retained messages.

use ferrymq_testkit::codec::{ProtocolVersion, Publish, QoS, ReasonCode};
use ferrymq_testkit::{QUIET, RawClient, TestBroker, WAIT, connect, publish, subscribe};

use ProtocolVersion::{V3_1_1, V5};

/// Subscribes a new client to `filter` then to the retained sentinel topic, and returns the
/// retained messages delivered for `filter` (everything before the sentinel).
async fn retained_for(broker: &TestBroker, version: ProtocolVersion, filter: &str) -> Vec<Publish> {
    let (mut client, _) = RawClient::connect_ok(broker.addr(), connect(version, "late")).await;
    client
        .subscribe(subscribe(1, filter, QoS::AtLeastOnce))
        .await;
    client
        .subscribe(subscribe(2, "sentinel", QoS::AtMostOnce))
        .await;
    let mut before = client.publishes_until("sentinel").await;
    for p in &before {
        client.ack(p).await;
    }
    // A filter matching the sentinel (`#`) gets it twice: drop the connection, not DISCONNECT.
    client.drop_connection();
    before.sort_by(|a, b| a.topic.cmp(&b.topic));
    before
}

async fn publisher(broker: &TestBroker) -> RawClient {
    let (mut client, _) = RawClient::connect_ok(broker.addr(), connect(V5, "retainer")).await;
    client.send(publish("sentinel", "s").retain()).await;
    client
}

#[tokio::test]
async fn retained_message_is_set_replaced_and_deleted() {
    for version in [V3_1_1, V5] {
        let broker = TestBroker::start().await;
        let mut p = publisher(&broker).await;
        p.publish_acked(publish("r/t", "first").retain().qos1(1))
            .await;
        let got = retained_for(&broker, version, "r/t").await;
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].retain, got[0].payload.as_ref(), got[0].qos),
            (true, &b"first"[..], QoS::AtLeastOnce)
        );

        p.publish_acked(publish("r/t", "second").retain().qos1(2))
            .await;
        let got = retained_for(&broker, version, "r/t").await;
        assert_eq!(got.len(), 1, "replaced, not added");
        assert_eq!(got[0].payload.as_ref(), b"second");

        // An empty retained payload deletes [MQTT-3.3.1-6].
        p.publish_acked(publish("r/t", "").retain().qos1(3)).await;
        assert_eq!(retained_for(&broker, version, "r/t").await, []);
        assert_eq!(
            broker.metric("retained_messages"),
            1,
            "only the sentinel is left"
        );
    }
}

#[tokio::test]
async fn retained_messages_reach_wildcard_subscribers() {
    let broker = TestBroker::start().await;
    let mut p = publisher(&broker).await;
    for (topic, payload) in [("w/a", "A"), ("w/b", "B"), ("w/b/c", "C"), ("other", "X")] {
        p.publish_acked(publish(topic, payload).retain().qos1(1))
            .await;
    }
    let topics = |got: Vec<Publish>| -> Vec<String> { got.into_iter().map(|p| p.topic).collect() };
    assert_eq!(
        topics(retained_for(&broker, V5, "w/+").await),
        ["w/a", "w/b"]
    );
    assert_eq!(
        topics(retained_for(&broker, V5, "w/#").await),
        ["w/a", "w/b", "w/b/c"]
    );
    // `#` also matches the parent level [MQTT-4.7.1-2].
    assert_eq!(
        topics(retained_for(&broker, V3_1_1, "+/b/#").await),
        ["w/b", "w/b/c"]
    );
}

/// Retained messages sent because of a new subscription carry RETAIN 1; the same message
/// forwarded live to an existing v3.1.1 subscriber carries RETAIN 0 [MQTT-3.3.1-9].
#[tokio::test]
async fn retain_flag_is_set_only_on_subscribe_time_delivery() {
    let broker = TestBroker::start().await;
    let (mut live, _) = RawClient::connect_ok(broker.addr(), connect(V3_1_1, "live")).await;
    live.subscribe(subscribe(1, "flag", QoS::AtMostOnce)).await;
    let mut p = publisher(&broker).await;
    p.send(publish("flag", "v").retain()).await;
    let forwarded = live.expect_publish(WAIT).await;
    assert!(!forwarded.retain);
    // 0x30: QoS 0 PUBLISH without RETAIN.
    assert_eq!(live.last_raw()[0], 0x30);
    let stored = retained_for(&broker, V3_1_1, "flag").await;
    assert!(stored[0].retain);
}

/// The retained QoS is the minimum of the stored message's and the granted QoS.
#[tokio::test]
async fn retained_delivery_uses_the_granted_qos() {
    let broker = TestBroker::start().await;
    let mut p = publisher(&broker).await;
    p.publish_acked(publish("rq", "x").retain().qos2(1)).await;
    let (mut client, _) = RawClient::connect_ok(broker.addr(), connect(V5, "c")).await;
    client.subscribe(subscribe(1, "rq", QoS::AtMostOnce)).await;
    let got = client.expect_publish(WAIT).await;
    assert_eq!(
        (got.qos, got.packet_id, got.retain),
        (QoS::AtMostOnce, None, true)
    );
}

/// `#` and `+` at the first level do not match topics starting with `$` [MQTT-4.7.2-1];
/// a filter starting with `$` does.
#[tokio::test]
async fn dollar_topics_are_not_matched_by_leading_wildcards() {
    let broker = TestBroker::start().await;
    let (mut hash, _) = RawClient::connect_ok(broker.addr(), connect(V5, "hash")).await;
    hash.subscribe(subscribe(1, "#", QoS::AtMostOnce)).await;
    let (mut plus, _) = RawClient::connect_ok(broker.addr(), connect(V3_1_1, "plus")).await;
    plus.subscribe(subscribe(1, "+/status", QoS::AtMostOnce))
        .await;
    let (mut dollar, _) = RawClient::connect_ok(broker.addr(), connect(V5, "dollar")).await;
    dollar
        .subscribe(subscribe(1, "$app/#", QoS::AtMostOnce))
        .await;

    let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    p.send(publish("$app/status", "hidden").retain()).await;
    p.send(publish("dev/status", "visible")).await;

    let got = dollar.expect_publish(WAIT).await;
    assert_eq!(got.topic, "$app/status");
    for client in [&mut hash, &mut plus] {
        let got = client.expect_publish(WAIT).await;
        assert_eq!(got.topic, "dev/status", "the $ topic must not come first");
    }
    hash.expect_nothing(QUIET).await;

    // Retained: a new `#` subscriber does not get the retained `$app/status`.
    p.send(publish("sentinel", "s").retain()).await;
    assert_eq!(retained_for(&broker, V5, "#").await, []);
    assert_eq!(retained_for(&broker, V5, "+/status").await, []);
    let got = retained_for(&broker, V5, "$app/+").await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].topic, "$app/status");
}

/// v5: a QoS 1 retained publish with no subscriber is acknowledged 0x10 and still stored.
#[tokio::test]
async fn retained_publish_without_subscribers_is_stored() {
    let broker = TestBroker::start().await;
    let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    assert_eq!(
        p.publish_acked(publish("kept", "k").retain().qos1(1)).await,
        ReasonCode::NoMatchingSubscribers
    );
    p.send(publish("sentinel", "s").retain()).await;
    let got = retained_for(&broker, V5, "kept").await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload.as_ref(), b"k");
}
