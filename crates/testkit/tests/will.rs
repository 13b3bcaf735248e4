//! Will messages: published on abnormal close, keep-alive expiry, protocol errors, v5
//! DISCONNECT 0x04 and takeover; not on a normal DISCONNECT; v5 Will Delay Interval and its
//! interplay with reconnection and session expiry [MQTT-3.1.2-8..10], [MQTT-3.1.3-9].

use std::time::Duration;

use ferrymq_testkit::codec::{ProtocolVersion, QoS, ReasonCode};
use ferrymq_testkit::{
    ConnectBuilder, QUIET, RawClient, TestBroker, WAIT, connect, disconnect, forwarded_of, publish,
    subscribe,
};

use ProtocolVersion::{V3_1, V3_1_1, V5};

/// A client subscribed to `will/#` and to the `sentinel` topic.
async fn watcher(broker: &TestBroker) -> RawClient {
    let (mut client, _) = RawClient::connect_ok(broker.addr(), connect(V5, "watcher")).await;
    client
        .subscribe(subscribe(1, "will/#", QoS::AtLeastOnce))
        .await;
    client
        .subscribe(subscribe(2, "sentinel", QoS::AtMostOnce))
        .await;
    client
}

fn with_will(version: ProtocolVersion, id: &str) -> ConnectBuilder {
    connect(version, id).will(&format!("will/{id}"), b"gone", QoS::AtLeastOnce)
}

/// Publishes the sentinel from a fresh client and returns the wills the watcher got before it.
async fn wills_before_sentinel(broker: &TestBroker, watcher: &mut RawClient) -> Vec<String> {
    let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V5, "sentinel-pub")).await;
    p.send(publish("sentinel", "s")).await;
    let mut topics = Vec::new();
    for will in watcher.publishes_until("sentinel").await {
        watcher.ack(&will).await;
        topics.push(will.topic);
    }
    p.disconnect().await;
    topics
}

async fn expect_will(watcher: &mut RawClient, id: &str, timeout: Duration) {
    let will = watcher.expect_publish(timeout).await;
    assert_eq!(will.topic, format!("will/{id}"));
    assert_eq!(will.payload.as_ref(), b"gone");
    assert_eq!(will.qos, QoS::AtLeastOnce);
    watcher.ack(&will).await;
}

#[tokio::test]
async fn will_is_published_when_the_connection_drops() {
    let broker = TestBroker::start().await;
    let mut w = watcher(&broker).await;
    for (version, id) in [(V3_1, "c31"), (V3_1_1, "c311"), (V5, "c5")] {
        let (client, _) = RawClient::connect_ok(broker.addr(), with_will(version, id)).await;
        client.drop_connection();
        expect_will(&mut w, id, WAIT).await;
    }
    let (client, _) = RawClient::connect_ok(broker.addr(), with_will(V5, "reset")).await;
    client.reset();
    expect_will(&mut w, "reset", WAIT).await;
    assert_eq!(broker.metric("wills_published"), 4);
}

#[tokio::test]
async fn will_is_published_on_keep_alive_expiry() {
    let broker = TestBroker::start().await;
    let mut w = watcher(&broker).await;
    let (mut client, _) =
        RawClient::connect_ok(broker.addr(), with_will(V3_1_1, "silent").keep_alive(1)).await;
    // 1.5 x 1 s of silence: the broker closes the connection and publishes the will.
    client.expect_closed(Duration::from_secs(4)).await;
    expect_will(&mut w, "silent", WAIT).await;
}

#[tokio::test]
async fn will_is_published_on_a_protocol_error() {
    let broker = TestBroker::start().await;
    let mut w = watcher(&broker).await;
    let (mut client, _) = RawClient::connect_ok(broker.addr(), with_will(V5, "bad")).await;
    client.send_bytes(&[0x00, 0x00]).await;
    client
        .expect_disconnect_and_close(ReasonCode::MalformedPacket)
        .await;
    expect_will(&mut w, "bad", WAIT).await;
}

#[tokio::test]
async fn v5_disconnect_0x04_publishes_the_will() {
    let broker = TestBroker::start().await;
    let mut w = watcher(&broker).await;
    let (mut client, _) = RawClient::connect_ok(broker.addr(), with_will(V5, "leaver")).await;
    client
        .send(disconnect(ReasonCode::DisconnectWithWillMessage))
        .await;
    client.expect_closed(WAIT).await;
    expect_will(&mut w, "leaver", WAIT).await;
}

#[tokio::test]
async fn normal_disconnect_discards_the_will() {
    let broker = TestBroker::start().await;
    let mut w = watcher(&broker).await;
    for (version, id) in [(V3_1_1, "polite3"), (V5, "polite5")] {
        let (client, _) = RawClient::connect_ok(
            broker.addr(),
            with_will(version, id).clean_start(false).session_expiry(60),
        )
        .await;
        client.disconnect().await;
    }
    assert_eq!(
        wills_before_sentinel(&broker, &mut w).await,
        Vec::<String>::new()
    );
    assert_eq!(broker.metric("wills_published"), 0);
}

#[tokio::test]
async fn will_properties_retain_and_qos_are_kept() {
    let broker = TestBroker::start().await;
    let (mut w, _) = RawClient::connect_ok(broker.addr(), connect(V5, "watcher")).await;
    w.subscribe(subscribe(1, "will/rich", QoS::ExactlyOnce))
        .await;
    let (client, _) = RawClient::connect_ok(
        broker.addr(),
        connect(V5, "rich")
            .will("will/rich", b"{}", QoS::ExactlyOnce)
            .will_retain()
            .with(|c| {
                if let Some(will) = &mut c.will {
                    will.properties.content_type = Some("application/json".into());
                    will.properties.user_properties = vec![("k".into(), "v".into())];
                    will.properties.response_topic = Some("reply/here".into());
                }
            }),
    )
    .await;
    client.reset();
    let live = w.expect_publish(WAIT).await;
    assert_eq!(live.qos, QoS::ExactlyOnce);
    assert!(!live.retain, "live delivery without Retain As Published");
    w.ack(&live).await;

    // The will was retained: a subscriber arriving later gets it with its properties.
    let (mut late, _) = RawClient::connect_ok(broker.addr(), connect(V5, "late")).await;
    late.subscribe(subscribe(1, "will/rich", QoS::ExactlyOnce))
        .await;
    let will = late.expect_publish(WAIT).await;
    assert!(will.retain);
    assert_eq!(will.qos, QoS::ExactlyOnce);
    assert_eq!(will.payload.as_ref(), b"{}");
    let props = forwarded_of(&will);
    assert_eq!(props.content_type.as_deref(), Some("application/json"));
    assert_eq!(props.user_properties, [("k".to_owned(), "v".to_owned())]);
    assert_eq!(props.response_topic.as_deref(), Some("reply/here"));
}

/// Will Delay Interval 2 s: not published at the close, published after the delay.
#[tokio::test]
async fn will_delay_postpones_the_will() {
    let broker = TestBroker::start().await;
    let mut w = watcher(&broker).await;
    let (client, _) = RawClient::connect_ok(
        broker.addr(),
        with_will(V5, "late")
            .will_delay(2)
            .clean_start(false)
            .session_expiry(60),
    )
    .await;
    client.reset();
    w.expect_nothing(Duration::from_millis(700)).await;
    expect_will(&mut w, "late", Duration::from_secs(4)).await;
}

/// Reconnecting (Clean Start 0) within the Will Delay Interval cancels the will.
#[tokio::test]
async fn reconnect_within_the_will_delay_cancels_the_will() {
    let broker = TestBroker::start().await;
    let mut w = watcher(&broker).await;
    let request = || {
        with_will(V5, "back")
            .will_delay(1)
            .clean_start(false)
            .session_expiry(60)
    };
    let (client, _) = RawClient::connect_ok(broker.addr(), request()).await;
    client.reset();
    let (mut back, connack) = RawClient::connect_ok(
        broker.addr(),
        connect(V5, "back").clean_start(false).session_expiry(60),
    )
    .await;
    assert!(connack.session_present);
    // Well past the delay: still no will.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    back.ping().await;
    assert_eq!(
        wills_before_sentinel(&broker, &mut w).await,
        Vec::<String>::new()
    );
}

/// The session ends (expiry 1 s) before the Will Delay Interval (30 s): the will is
/// published when the session ends [MQTT-3.1.3-9].
#[tokio::test]
async fn will_is_published_when_the_session_expires_before_the_delay() {
    let broker = TestBroker::start().await;
    let mut w = watcher(&broker).await;
    let (client, _) = RawClient::connect_ok(
        broker.addr(),
        with_will(V5, "expiring").will_delay(30).session_expiry(1),
    )
    .await;
    client.reset();
    expect_will(&mut w, "expiring", Duration::from_secs(4)).await;
    assert_eq!(broker.metric("sessions_expired"), 1);
}

/// Will Delay with Session Expiry 0: the session ends at the close, so does the delay.
#[tokio::test]
async fn will_delay_with_zero_session_expiry_publishes_at_once() {
    let broker = TestBroker::start().await;
    let mut w = watcher(&broker).await;
    let (client, _) =
        RawClient::connect_ok(broker.addr(), with_will(V5, "now").will_delay(30)).await;
    client.reset();
    expect_will(&mut w, "now", WAIT).await;
}

/// Takeover: the old connection's will (delay 0) is published when it is closed.
#[tokio::test]
async fn takeover_publishes_the_old_connections_will() {
    let broker = TestBroker::start().await;
    let mut w = watcher(&broker).await;
    let (mut first, _) = RawClient::connect_ok(
        broker.addr(),
        with_will(V5, "twin").clean_start(false).session_expiry(60),
    )
    .await;
    let (_second, _) = RawClient::connect_ok(
        broker.addr(),
        connect(V5, "twin").clean_start(false).session_expiry(60),
    )
    .await;
    first
        .expect_disconnect_and_close(ReasonCode::SessionTakenOver)
        .await;
    expect_will(&mut w, "twin", WAIT).await;
}

/// Takeover with Clean Start 0 and a Will Delay: the session continues, so the will is not
/// sent (MQTT 5.0 section 3.1.3.2.2).
#[tokio::test]
async fn takeover_within_the_will_delay_keeps_the_will_unsent() {
    let broker = TestBroker::start().await;
    let mut w = watcher(&broker).await;
    let (mut first, _) = RawClient::connect_ok(
        broker.addr(),
        with_will(V5, "twin")
            .will_delay(5)
            .clean_start(false)
            .session_expiry(60),
    )
    .await;
    let (_second, _) = RawClient::connect_ok(
        broker.addr(),
        connect(V5, "twin").clean_start(false).session_expiry(60),
    )
    .await;
    first
        .expect_disconnect_and_close(ReasonCode::SessionTakenOver)
        .await;
    assert_eq!(
        wills_before_sentinel(&broker, &mut w).await,
        Vec::<String>::new()
    );
    w.expect_nothing(QUIET).await;
}
