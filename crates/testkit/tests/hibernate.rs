//! Hibernation (crates/transport/src/hibernate.rs): an MQTT/TCP connection quiet for
//! `hibernate_after` gives up its task and sleeps until its socket, its session, its
//! deadline or shutdown needs it. Each test first waits until the broker's
//! `connections_hibernated` gauge says its connections sleep, so that what follows happens
//! to sleeping connections, and checks that they behave exactly as awake ones do.

use std::time::Duration;

use bytes::BytesMut;
use ferrymq_testkit::codec::{Packet, ProtocolVersion, QoS, ReasonCode, encode};
use ferrymq_testkit::{Metrics, RawClient, TestBroker, WAIT, connect, publish, subscribe};
use tokio::sync::mpsc::unbounded_channel;

use ProtocolVersion::{V3_1_1, V5};

/// Short, so that the tests do not wait long for their clients to fall asleep.
const AFTER: Duration = Duration::from_millis(100);

async fn broker() -> TestBroker {
    TestBroker::builder().hibernate_after(AFTER).start().await
}

fn asleep(broker: &TestBroker) -> u64 {
    Metrics::get(&broker.metrics().connections_hibernated)
}

/// Waits until exactly `count` connections sleep.
async fn until_asleep(broker: &TestBroker, count: u64) {
    let reached = |m: &Metrics| Metrics::get(&m.connections_hibernated) == count;
    assert!(
        broker.wait_for(WAIT, reached).await,
        "expected {count} hibernated connections, the gauge says {}",
        asleep(broker)
    );
}

#[tokio::test]
async fn a_sleeping_clients_ping_is_answered_without_waking_it() {
    let broker = broker().await;
    let (mut client, _) = RawClient::connect_ok(broker.addr(), connect(V5, "pinger")).await;
    until_asleep(&broker, 1).await;
    for answered in 1..=3 {
        client.ping().await;
        assert_eq!(broker.metric("hibernated_pings_answered"), answered);
    }
    assert_eq!(broker.metric("hibernated_wakes"), 0);
    assert_eq!(asleep(&broker), 1);
    // A PINGREQ with more behind it in the same write wakes the connection for both.
    let mut bytes = BytesMut::new();
    encode(&Packet::PingReq, V5, &mut bytes).unwrap();
    let publish = publish("after/ping", "x").qos1(7).build();
    encode(&Packet::Publish(publish), V5, &mut bytes).unwrap();
    client.send_bytes(&bytes).await;
    client.expect_pingresp(WAIT).await;
    assert_eq!(client.expect_puback(WAIT).await.packet_id, 7);
    assert_eq!(broker.metric("hibernated_wakes"), 1);
    assert_eq!(broker.metric("hibernated_pings_answered"), 3);
}

#[tokio::test]
async fn a_sleeping_client_is_woken_by_its_own_packets() {
    let broker = broker().await;
    let (mut client, _) = RawClient::connect_ok(broker.addr(), connect(V3_1_1, "publisher")).await;
    until_asleep(&broker, 1).await;
    client.ping().await;
    until_asleep(&broker, 1).await;
    let reason = client
        .publish_acked(publish("own/packets", "hello").qos1(1))
        .await;
    assert_eq!(reason, ReasonCode::Success);
    until_asleep(&broker, 1).await;
    client.disconnect().await;
    until_asleep(&broker, 0).await;
    assert!(
        broker
            .wait_for(WAIT, |m| Metrics::get(&m.connections_open) == 0)
            .await
    );
}

#[tokio::test]
async fn sleeping_subscribers_are_woken_by_deliveries_at_every_qos() {
    let broker = broker().await;
    let mut subscribers = Vec::new();
    for i in 0..20 {
        let id = format!("sub-{i}");
        let (mut sub, _) = RawClient::connect_ok(broker.addr(), connect(V5, &id)).await;
        sub.subscribe(subscribe(1, "fan/#", QoS::ExactlyOnce)).await;
        subscribers.push(sub);
    }
    let (mut publisher, _) = RawClient::connect_ok(broker.addr(), connect(V5, "pub")).await;
    until_asleep(&broker, 21).await;
    publisher.send(publish("fan/0", "at most once")).await;
    publisher
        .publish_acked(publish("fan/1", "at least once").qos1(1))
        .await;
    publisher
        .publish_acked(publish("fan/2", "exactly once").qos2(2))
        .await;
    for sub in &mut subscribers {
        for (topic, payload) in [
            ("fan/0", "at most once"),
            ("fan/1", "at least once"),
            ("fan/2", "exactly once"),
        ] {
            let delivery = sub.expect_publish(WAIT).await;
            assert_eq!(delivery.topic, topic);
            assert_eq!(delivery.payload.as_ref(), payload.as_bytes());
            sub.ack(&delivery).await;
        }
    }
    // Every exchange completed (PUBREL answered with PUBCOMP), and all fell asleep again.
    until_asleep(&broker, 21).await;
}

#[tokio::test]
async fn a_sleeping_client_that_goes_silent_is_dropped_at_its_keep_alive() {
    let broker = broker().await;
    let (mut client, _) =
        RawClient::connect_ok(broker.addr(), connect(V5, "silent").keep_alive(1)).await;
    until_asleep(&broker, 1).await;
    // Keep-alive 1 s x grace 1.5: the deadline passes while the connection sleeps.
    client
        .expect_disconnect_and_close(ReasonCode::KeepAliveTimeout)
        .await;
    assert_eq!(Metrics::get(&broker.metrics().keep_alive_timeouts), 1);
    until_asleep(&broker, 0).await;
}

#[tokio::test]
async fn a_sleeping_client_that_pings_in_time_stays_connected() {
    let broker = broker().await;
    let (mut client, _) =
        RawClient::connect_ok(broker.addr(), connect(V3_1_1, "steady").keep_alive(1)).await;
    // Three keep-alive periods, asleep between the pings, which are answered without
    // waking the connection: each moves its deadline on while it sleeps.
    for _ in 0..3 {
        until_asleep(&broker, 1).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        client.ping().await;
    }
    assert_eq!(Metrics::get(&broker.metrics().keep_alive_timeouts), 0);
    assert_eq!(broker.metric("hibernated_pings_answered"), 3);
    // Then silence: the moved deadline still fires.
    client.expect_closed(WAIT).await;
    assert_eq!(Metrics::get(&broker.metrics().keep_alive_timeouts), 1);
}

#[tokio::test]
async fn a_sleeping_connection_is_taken_over() {
    let broker = broker().await;
    let (mut old, _) = RawClient::connect_ok(broker.addr(), connect(V5, "same")).await;
    until_asleep(&broker, 1).await;
    let (mut new, _) = RawClient::connect_ok(broker.addr(), connect(V5, "same")).await;
    old.expect_disconnect_and_close(ReasonCode::SessionTakenOver)
        .await;
    new.ping().await;
}

#[tokio::test]
async fn a_sleeping_connection_is_closed_on_request() {
    let broker = broker().await;
    let (mut client, _) = RawClient::connect_ok(broker.addr(), connect(V5, "kicked")).await;
    until_asleep(&broker, 1).await;
    assert!(
        broker
            .broker()
            .close_connection("/", "kicked", ReasonCode::AdministrativeAction)
    );
    client
        .expect_disconnect_and_close(ReasonCode::AdministrativeAction)
        .await;
}

#[tokio::test]
async fn a_sleeping_client_whose_socket_closes_leaves_its_will() {
    let broker = broker().await;
    let (mut watcher, _) = RawClient::connect_ok(broker.addr(), connect(V5, "watcher")).await;
    watcher
        .subscribe(subscribe(1, "wills/#", QoS::AtMostOnce))
        .await;
    let will = connect(V3_1_1, "mortal").will("wills/mortal", b"gone", QoS::AtMostOnce);
    let (mortal, _) = RawClient::connect_ok(broker.addr(), will).await;
    until_asleep(&broker, 2).await;
    mortal.drop_connection();
    let delivery = watcher.expect_publish(WAIT).await;
    assert_eq!(delivery.topic, "wills/mortal");
    assert_eq!(delivery.payload.as_ref(), b"gone");
    until_asleep(&broker, 1).await;
}

#[tokio::test]
async fn shutdown_wakes_sleeping_connections_to_say_goodbye() {
    let broker = broker().await;
    let (mut v5, _) = RawClient::connect_ok(broker.addr(), connect(V5, "five")).await;
    let (mut v3, _) = RawClient::connect_ok(broker.addr(), connect(V3_1_1, "three")).await;
    until_asleep(&broker, 2).await;
    broker.broker().begin_shutdown();
    v5.expect_disconnect_and_close(ReasonCode::ServerShuttingDown)
        .await;
    v3.expect_closed(WAIT).await;
    broker.shutdown().await;
}

/// A client nobody here wrote: rumqttc's event loop keeps pinging (keep-alive 1 s) and
/// subscribes; its connection sleeps between the pings and still gets what is published.
#[tokio::test]
async fn rumqttc_works_across_sleeps() {
    let broker = broker().await;
    let addr = broker.addr();
    let mut options =
        rumqttc::MqttOptions::new("rumqttc-sleeper", addr.ip().to_string(), addr.port());
    options.set_credentials("guest", "guest");
    options.set_keep_alive(Duration::from_secs(1));
    let (client, mut event_loop) = rumqttc::AsyncClient::new(options, 16);
    let (tx, mut publishes) = unbounded_channel();
    let task = tokio::spawn(async move {
        while let Ok(event) = event_loop.poll().await {
            if let rumqttc::Event::Incoming(rumqttc::Packet::Publish(publish)) = event
                && tx.send(publish).is_err()
            {
                break;
            }
        }
    });
    client
        .subscribe("rumqttc/#", rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    let (mut publisher, _) = RawClient::connect_ok(addr, connect(V3_1_1, "pub")).await;
    until_asleep(&broker, 2).await;
    // Pings every second wake it, and it falls asleep again in between.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    until_asleep(&broker, 2).await;
    for i in 0..3u16 {
        publisher
            .publish_acked(publish("rumqttc/x", format!("m{i}")).qos1(i + 1))
            .await;
        let delivery = tokio::time::timeout(WAIT, publishes.recv())
            .await
            .expect("a delivery")
            .expect("the event loop is running");
        assert_eq!(delivery.payload.as_ref(), format!("m{i}").as_bytes());
        until_asleep(&broker, 2).await;
    }
    assert_eq!(Metrics::get(&broker.metrics().keep_alive_timeouts), 0);
    task.abort();
}

/// A client that sends its CONNECT in the same write as a PROXY header: its first bytes
/// are read with the header, handed back to the connection, and once they are handled the
/// connection sleeps like any other.
#[tokio::test]
async fn a_connection_behind_the_proxy_protocol_sleeps() {
    use std::sync::Arc;

    use ferrymq_transport::proxy::TrustedProxies;
    use ferrymq_transport::{MqttListenerOptions, ProxyOptions};

    let trusted = TrustedProxies::new(vec!["127.0.0.0/8".parse().expect("net")]);
    let broker = TestBroker::builder()
        .listener(MqttListenerOptions {
            proxy: ProxyOptions {
                proxy_protocol: true,
                trusted: Arc::new(trusted),
            },
            hibernate_after: Some(AFTER),
            ..Default::default()
        })
        .start()
        .await;
    let mut bytes = BytesMut::from(&b"PROXY TCP4 127.0.0.7 127.0.0.1 40000 1883\r\n"[..]);
    let hello = connect(V3_1_1, "proxied").build();
    encode(&Packet::Connect(Box::new(hello)), V3_1_1, &mut bytes).unwrap();
    let mut client = RawClient::open(broker.addr()).await.unwrap();
    client.set_protocol(V3_1_1);
    client.send_bytes(&bytes).await;
    // guest/guest logs in from loopback only: the PROXY header's source counts.
    let connack = client.expect_connack(WAIT).await;
    assert_eq!(connack.reason_code, ReasonCode::Success);
    until_asleep(&broker, 1).await;
    client.ping().await;
    until_asleep(&broker, 1).await;
}
