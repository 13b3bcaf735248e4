//! CONNECT / CONNACK: authentication outcomes, client identifiers, protocol levels, the v5
//! CONNACK properties, keep-alive, and graceful shutdown, with byte-exact CONNACKs.

use std::time::Duration;

use ferrymq_testkit::codec::{Packet, ProtocolVersion, QoS, ReasonCode};
use ferrymq_testkit::{
    QUIET, RawClient, TestBroker, WAIT, assert_pubsub_works, connect, publish, subscribe,
};

use ProtocolVersion::{V3_1, V3_1_1, V5};

/// Connects, expects exactly `connack` as bytes, then the connection to close.
async fn refused(broker: &TestBroker, request: ferrymq_testkit::ConnectBuilder, connack: &[u8]) {
    let mut client = RawClient::connect(broker.addr(), request).await;
    let raw = client.expect_raw(WAIT).await;
    assert_eq!(raw.as_ref(), connack);
    client.expect_closed(WAIT).await;
}

#[tokio::test]
async fn v5_bad_password_is_refused_with_0x86() {
    let broker = TestBroker::start().await;
    let request = connect(V5, "c").credentials("guest", "wrong");
    refused(&broker, request, &[0x20, 0x03, 0x00, 0x86, 0x00]).await;
    assert_eq!(broker.metric("auth_failures"), 1);
}

#[tokio::test]
async fn v311_bad_password_is_refused_with_return_code_4() {
    let broker = TestBroker::start().await;
    let request = connect(V3_1_1, "c").credentials("guest", "wrong");
    refused(&broker, request, &[0x20, 0x02, 0x00, 0x04]).await;
}

#[tokio::test]
async fn unknown_user_is_refused_like_a_bad_password() {
    let broker = TestBroker::start().await;
    let request = connect(V5, "c").credentials("mallory", "guest");
    refused(&broker, request, &[0x20, 0x03, 0x00, 0x86, 0x00]).await;
}

#[tokio::test]
async fn v5_anonymous_is_refused_with_0x87() {
    let broker = TestBroker::start().await;
    refused(
        &broker,
        connect(V5, "c").anonymous(),
        &[0x20, 0x03, 0x00, 0x87, 0x00],
    )
    .await;
}

#[tokio::test]
async fn v311_and_v31_anonymous_are_refused_with_return_code_5() {
    let broker = TestBroker::start().await;
    let bytes = [0x20, 0x02, 0x00, 0x05];
    refused(&broker, connect(V3_1_1, "c").anonymous(), &bytes).await;
    refused(&broker, connect(V3_1, "c").anonymous(), &bytes).await;
}

#[tokio::test]
async fn anonymous_is_accepted_when_allowed() {
    let broker = TestBroker::builder().allow_anonymous(true).start().await;
    let mut client = RawClient::connect(broker.addr(), connect(V3_1_1, "anon").anonymous()).await;
    assert_eq!(
        client.expect_raw(WAIT).await.as_ref(),
        [0x20, 0x02, 0x00, 0x00]
    );
    client.ping().await;
}

/// A CONNECT whose protocol name is "MQTT" but whose level is 6: answered in the 3.1.1 form
/// with return code 1 "unacceptable protocol version" [MQTT-3.1.2-2], then closed.
#[tokio::test]
async fn unsupported_protocol_level_gets_v3_connack_1() {
    let broker = TestBroker::start().await;
    let mut client = RawClient::open(broker.addr()).await.unwrap();
    client.set_protocol(V3_1_1);
    #[rustfmt::skip]
    client.send_bytes(&[
        0x10, 0x0D,
        0x00, 0x04, b'M', b'Q', b'T', b'T',
        0x06, // protocol level 6
        0x02, // clean start
        0x00, 0x3C,
        0x00, 0x01, b'x',
    ]).await;
    assert_eq!(
        client.expect_raw(WAIT).await.as_ref(),
        [0x20, 0x02, 0x00, 0x01]
    );
    client.expect_closed(WAIT).await;
    assert_pubsub_works(broker.addr()).await;
}

/// An unknown protocol name cannot be answered in any version: closed without CONNACK.
#[tokio::test]
async fn unknown_protocol_name_is_closed_without_connack() {
    let broker = TestBroker::start().await;
    let mut client = RawClient::open(broker.addr()).await.unwrap();
    #[rustfmt::skip]
    client.send_bytes(&[
        0x10, 0x0D,
        0x00, 0x04, b'M', b'Q', b'T', b'X',
        0x04, 0x02, 0x00, 0x3C,
        0x00, 0x01, b'x',
    ]).await;
    client.expect_closed(WAIT).await;
}

#[tokio::test]
async fn v5_authentication_method_is_refused_with_0x8c() {
    let broker = TestBroker::start().await;
    refused(
        &broker,
        connect(V5, "c").authentication_method("SCRAM-SHA-256"),
        &[0x20, 0x03, 0x00, 0x8C, 0x00],
    )
    .await;
}

/// [MQTT-3.1.3-8]: an empty client id with Clean Session 0 is rejected with return code 2.
#[tokio::test]
async fn v311_empty_client_id_without_clean_session_is_refused_with_2() {
    let broker = TestBroker::start().await;
    refused(
        &broker,
        connect(V3_1_1, "").clean_start(false),
        &[0x20, 0x02, 0x00, 0x02],
    )
    .await;
}

#[tokio::test]
async fn v311_empty_client_id_with_clean_session_is_accepted() {
    let broker = TestBroker::start().await;
    let mut client = RawClient::connect(broker.addr(), connect(V3_1_1, "")).await;
    assert_eq!(
        client.expect_raw(WAIT).await.as_ref(),
        [0x20, 0x02, 0x00, 0x00]
    );
    client.ping().await;
}

/// v5: an empty client id gets an Assigned Client Identifier, which then names the session.
#[tokio::test]
async fn v5_empty_client_id_gets_an_assigned_identifier() {
    let broker = TestBroker::start().await;
    let (first, connack) =
        RawClient::connect_ok(broker.addr(), connect(V5, "").session_expiry(60)).await;
    let assigned = connack
        .properties
        .assigned_client_identifier
        .expect("Assigned Client Identifier");
    assert!(!assigned.is_empty());
    first.disconnect().await;

    let (_second, connack) = RawClient::connect_ok(
        broker.addr(),
        connect(V5, &assigned).clean_start(false).session_expiry(60),
    )
    .await;
    assert!(connack.session_present, "the assigned id names the session");
    assert_eq!(connack.properties.assigned_client_identifier, None);

    let (_other, other) = RawClient::connect_ok(broker.addr(), connect(V5, "")).await;
    let other = other.properties.assigned_client_identifier.unwrap();
    assert_ne!(other, assigned, "assigned identifiers are unique");
}

#[tokio::test]
async fn client_id_over_max_length_is_refused() {
    let broker = TestBroker::builder()
        .limits(|l| l.max_client_id_length = 8)
        .start()
        .await;
    refused(
        &broker,
        connect(V5, "123456789"),
        &[0x20, 0x03, 0x00, 0x85, 0x00],
    )
    .await;
    refused(
        &broker,
        connect(V3_1_1, "123456789"),
        &[0x20, 0x02, 0x00, 0x02],
    )
    .await;
    // Exactly at the limit is fine.
    RawClient::connect_ok(broker.addr(), connect(V5, "12345678")).await;
}

#[tokio::test]
async fn v5_connack_announces_the_broker_limits() {
    let broker = TestBroker::builder()
        .limits(|l| {
            l.max_inflight = 20;
            l.max_packet_size = 4096;
            l.topic_alias_maximum = 7;
        })
        .start()
        .await;
    let (_client, connack) = RawClient::connect_ok(broker.addr(), connect(V5, "c")).await;
    assert!(!connack.session_present);
    let p = &connack.properties;
    assert_eq!(p.receive_maximum, Some(20));
    assert_eq!(p.maximum_packet_size, Some(4096));
    assert_eq!(p.topic_alias_maximum, Some(7));
    assert_eq!(p.assigned_client_identifier, None);
    assert_eq!(p.maximum_qos, None, "QoS 2 is supported: property absent");
    assert_eq!(
        p.retain_available, None,
        "retain is supported: property absent"
    );
}

#[tokio::test]
async fn v5_connack_caps_session_expiry_at_the_maximum() {
    let broker = TestBroker::builder()
        .mqtt(|m| m.max_session_expiry = 100)
        .start()
        .await;
    let (_client, connack) =
        RawClient::connect_ok(broker.addr(), connect(V5, "c").session_expiry(5000)).await;
    assert_eq!(connack.properties.session_expiry_interval, Some(100));
}

#[tokio::test]
async fn v5_server_keep_alive_overrides_the_client() {
    let broker = TestBroker::builder()
        .mqtt(|m| m.server_keep_alive = Some(30))
        .start()
        .await;
    let (_client, connack) =
        RawClient::connect_ok(broker.addr(), connect(V5, "c").keep_alive(600)).await;
    assert_eq!(connack.properties.server_keep_alive, Some(30));
}

#[tokio::test]
async fn v311_connack_bytes_and_session_present() {
    let broker = TestBroker::start().await;
    let mut first =
        RawClient::connect(broker.addr(), connect(V3_1_1, "p").clean_start(false)).await;
    assert_eq!(
        first.expect_raw(WAIT).await.as_ref(),
        [0x20, 0x02, 0x00, 0x00]
    );
    first.disconnect().await;
    let mut second =
        RawClient::connect(broker.addr(), connect(V3_1_1, "p").clean_start(false)).await;
    assert_eq!(
        second.expect_raw(WAIT).await.as_ref(),
        [0x20, 0x02, 0x01, 0x00]
    );
}

#[tokio::test]
async fn pingreq_gets_pingresp() {
    let broker = TestBroker::start().await;
    for version in [V3_1, V3_1_1, V5] {
        let (mut client, _) = RawClient::connect_ok(broker.addr(), connect(version, "ping")).await;
        client.send(Packet::PingReq).await;
        assert_eq!(client.expect_raw(WAIT).await.as_ref(), [0xD0, 0x00]);
    }
}

/// MQTT 3.1 (`MQIsdp`, level 3): connect, subscribe, publish at QoS 0/1/2, receive.
#[tokio::test]
async fn v31_connect_subscribe_publish() {
    let broker = TestBroker::start().await;
    let mut sub = RawClient::connect(broker.addr(), connect(V3_1, "old-sub")).await;
    // 3.1 has no Session Present flag.
    assert_eq!(
        sub.expect_raw(WAIT).await.as_ref(),
        [0x20, 0x02, 0x00, 0x00]
    );
    sub.send(subscribe(1, "legacy/#", QoS::ExactlyOnce)).await;
    assert_eq!(
        sub.expect_raw(WAIT).await.as_ref(),
        [0x90, 0x03, 0x00, 0x01, 0x02]
    );
    let (mut publisher, _) = RawClient::connect_ok(broker.addr(), connect(V3_1, "old-pub")).await;
    publisher.send(publish("legacy/0", "zero")).await;
    publisher.send(publish("legacy/1", "one").qos1(10)).await;
    assert_eq!(
        publisher.expect_raw(WAIT).await.as_ref(),
        [0x40, 0x02, 0x00, 0x0A]
    );
    assert_eq!(
        publisher
            .publish_acked(publish("legacy/2", "two").qos2(11))
            .await,
        ReasonCode::Success
    );
    for (qos, topic, payload) in [
        (QoS::AtMostOnce, "legacy/0", "zero"),
        (QoS::AtLeastOnce, "legacy/1", "one"),
        (QoS::ExactlyOnce, "legacy/2", "two"),
    ] {
        let received = sub.expect_publish(WAIT).await;
        assert_eq!(
            (
                received.qos,
                received.topic.as_str(),
                received.payload.as_ref()
            ),
            (qos, topic, payload.as_bytes())
        );
        sub.ack(&received).await;
    }
    sub.expect_nothing(QUIET).await;
}

/// MQTT 3.1 requires a Client Identifier of 1 to 23 characters; an empty one is answered
/// with return code 2 "identifier rejected" (MQTT 3.1 section 3.1, as Mosquitto does). The
/// server-assigned identifier is a 3.1.1 feature.
#[tokio::test]
async fn v31_empty_client_id_is_refused_with_2() {
    let broker = TestBroker::start().await;
    refused(&broker, connect(V3_1, ""), &[0x20, 0x02, 0x00, 0x02]).await;
}

/// v5 Server Keep Alive is enforced, not only announced: 1 s instead of the client's 60 s.
#[tokio::test]
async fn v5_server_keep_alive_is_enforced() {
    let broker = TestBroker::builder()
        .mqtt(|m| m.server_keep_alive = Some(1))
        .start()
        .await;
    let (mut client, connack) =
        RawClient::connect_ok(broker.addr(), connect(V5, "c").keep_alive(60)).await;
    assert_eq!(connack.properties.server_keep_alive, Some(1));
    client
        .expect_disconnect_and_close(ReasonCode::KeepAliveTimeout)
        .await;
}

/// Keep-alive 1 s with the 1.5x rule: a silent v5 client gets DISCONNECT 0x8D.
#[tokio::test]
async fn v5_keep_alive_timeout_disconnects_with_0x8d() {
    let broker = TestBroker::start().await;
    let (mut client, _) =
        RawClient::connect_ok(broker.addr(), connect(V5, "sleepy").keep_alive(1)).await;
    let event = client.next_event(Duration::from_secs(4)).await;
    assert_eq!(
        event,
        ferrymq_testkit::Event::Packet(Packet::Disconnect(Box::new(
            ferrymq_testkit::codec::Disconnect::new(ReasonCode::KeepAliveTimeout)
        )))
    );
    assert_eq!(client.last_raw(), [0xE0, 0x01, 0x8D]);
    client.expect_closed(WAIT).await;
    assert_eq!(broker.metric("keep_alive_timeouts"), 1);
}

/// A listener's per-connection keep-alive grace (`Connection::with_keep_alive_grace`, used
/// by WebSocket listeners for throttled browser tabs) replaces the broker-wide factor: with
/// grace 3 and keep-alive 1 s, a silent client is dropped after 3 s, not after 1 s.
#[tokio::test]
async fn per_connection_keep_alive_grace_is_honoured() {
    let broker = TestBroker::builder()
        .mqtt(|m| m.keep_alive_grace = 1.0)
        .connection_keep_alive_grace(3.0)
        .start()
        .await;
    let (mut client, _) =
        RawClient::connect_ok(broker.addr(), connect(V5, "tab").keep_alive(1)).await;
    client.expect_nothing(Duration::from_millis(2000)).await;
    client
        .expect_disconnect_and_close(ReasonCode::KeepAliveTimeout)
        .await;
}

/// PINGREQs within the keep-alive keep the connection open.
#[tokio::test]
async fn pings_keep_the_connection_alive() {
    let broker = TestBroker::start().await;
    let (mut client, _) =
        RawClient::connect_ok(broker.addr(), connect(V3_1_1, "awake").keep_alive(1)).await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        client.ping().await;
    }
    assert_eq!(broker.metric("keep_alive_timeouts"), 0);
}

/// `begin_shutdown`: v5 clients get DISCONNECT 0x8B, v3 clients are closed, no new
/// connections are accepted.
#[tokio::test]
async fn graceful_shutdown_sends_0x8b_to_v5_clients() {
    let broker = TestBroker::start().await;
    let addr = broker.addr();
    let (mut v5, _) = RawClient::connect_ok(addr, connect(V5, "five")).await;
    let (mut v3, _) = RawClient::connect_ok(addr, connect(V3_1_1, "three")).await;
    broker.broker().begin_shutdown();
    v5.expect_disconnect_and_close(ReasonCode::ServerShuttingDown)
        .await;
    v3.expect_closed(WAIT).await;
    broker.shutdown().await;
    match RawClient::open(addr).await {
        Err(_) => {}
        Ok(mut late) => late.expect_closed(WAIT).await,
    }
}
