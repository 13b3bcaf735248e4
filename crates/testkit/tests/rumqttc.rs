//! Interoperability with rumqttc, a third-party Rust client, in MQTT 3.1.1
//! (`rumqttc::AsyncClient`) and 5.0 (`rumqttc::v5::AsyncClient`): connect with guest/guest,
//! subscribe, publish at QoS 0/1/2 and receive, retained messages for a late subscriber, and
//! a persistent session that receives what was published while it was offline.
//!
//! Each client's event loop runs in its own task and forwards incoming packets to the test.

use std::net::SocketAddr;
use std::time::Duration;

use ferrymq_testkit::{TestBroker, WAIT};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::task::JoinHandle;

/// A rumqttc 3.1.1 client and the packets its event loop received.
struct V311 {
    client: rumqttc::AsyncClient,
    incoming: UnboundedReceiver<rumqttc::Packet>,
    task: JoinHandle<()>,
}

impl V311 {
    fn start(addr: SocketAddr, id: &str, clean: bool) -> V311 {
        let mut options = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
        options.set_credentials("guest", "guest");
        options.set_clean_session(clean);
        options.set_keep_alive(Duration::from_secs(30));
        let (client, mut event_loop) = rumqttc::AsyncClient::new(options, 16);
        let (tx, incoming) = unbounded_channel();
        let task = tokio::spawn(async move {
            // Stop at the first error: the tests want no automatic reconnection.
            while let Ok(event) = event_loop.poll().await {
                if let rumqttc::Event::Incoming(packet) = event
                    && tx.send(packet).is_err()
                {
                    break;
                }
            }
        });
        V311 {
            client,
            incoming,
            task,
        }
    }

    async fn next(&mut self) -> rumqttc::Packet {
        match tokio::time::timeout(WAIT, self.incoming.recv()).await {
            Ok(Some(packet)) => packet,
            other => panic!("rumqttc v3.1.1: expected a packet, got {other:?}"),
        }
    }

    async fn connack(&mut self) -> rumqttc::ConnAck {
        match self.next().await {
            rumqttc::Packet::ConnAck(connack) => connack,
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Waits for a packet satisfying `wanted`, skipping others.
    async fn until(&mut self, wanted: impl Fn(&rumqttc::Packet) -> bool) -> rumqttc::Packet {
        loop {
            let packet = self.next().await;
            if wanted(&packet) {
                return packet;
            }
        }
    }

    async fn publish(&mut self) -> rumqttc::Publish {
        match self
            .until(|p| matches!(p, rumqttc::Packet::Publish(_)))
            .await
        {
            rumqttc::Packet::Publish(publish) => publish,
            _ => unreachable!(),
        }
    }

    async fn stop(self) {
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(WAIT, self.task).await;
    }
}

#[tokio::test]
async fn v311_connect_subscribe_publish_all_qos() {
    use rumqttc::{ConnectReturnCode, Packet, QoS};
    let broker = TestBroker::start().await;
    let mut sub = V311::start(broker.addr(), "rumqttc-sub", true);
    assert_eq!(sub.connack().await.code, ConnectReturnCode::Success);
    sub.client
        .subscribe("rq/#", QoS::ExactlyOnce)
        .await
        .unwrap();
    sub.until(|p| matches!(p, Packet::SubAck(_))).await;

    let mut publisher = V311::start(broker.addr(), "rumqttc-pub", true);
    publisher.connack().await;
    for (qos, payload) in [
        (QoS::AtMostOnce, "zero"),
        (QoS::AtLeastOnce, "one"),
        (QoS::ExactlyOnce, "two"),
    ] {
        publisher
            .client
            .publish(format!("rq/{payload}"), qos, false, payload)
            .await
            .unwrap();
        let got = sub.publish().await;
        assert_eq!(got.topic, format!("rq/{payload}"));
        assert_eq!(got.payload.as_ref(), payload.as_bytes());
        assert_eq!(got.qos, qos);
    }
    publisher.stop().await;
    sub.stop().await;
}

#[tokio::test]
async fn v311_bad_password_is_refused() {
    let broker = TestBroker::start().await;
    let mut options = rumqttc::MqttOptions::new("bad", "127.0.0.1", broker.addr().port());
    options.set_credentials("guest", "nope");
    let (_client, mut event_loop) = rumqttc::AsyncClient::new(options, 4);
    let error = tokio::time::timeout(WAIT, event_loop.poll())
        .await
        .expect("an answer")
        .expect_err("refused");
    assert!(
        matches!(
            error,
            rumqttc::ConnectionError::ConnectionRefused(
                rumqttc::ConnectReturnCode::BadUserNamePassword
            )
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn v311_retained_message_reaches_a_late_subscriber() {
    use rumqttc::{Packet, QoS};
    let broker = TestBroker::start().await;
    let mut publisher = V311::start(broker.addr(), "rumqttc-pub", true);
    publisher.connack().await;
    publisher
        .client
        .publish("status/door", QoS::AtLeastOnce, true, "open")
        .await
        .unwrap();
    publisher.until(|p| matches!(p, Packet::PubAck(_))).await;

    let mut late = V311::start(broker.addr(), "rumqttc-late", true);
    late.connack().await;
    late.client
        .subscribe("status/+", QoS::AtLeastOnce)
        .await
        .unwrap();
    let got = late.publish().await;
    assert!(got.retain);
    assert_eq!(
        (got.topic.as_str(), got.payload.as_ref()),
        ("status/door", &b"open"[..])
    );
}

#[tokio::test]
async fn v311_persistent_session_gets_messages_published_while_offline() {
    use rumqttc::{Packet, QoS};
    let broker = TestBroker::start().await;
    let mut sub = V311::start(broker.addr(), "rumqttc-durable", false);
    assert!(!sub.connack().await.session_present);
    sub.client
        .subscribe("inbox/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    sub.until(|p| matches!(p, Packet::SubAck(_))).await;
    sub.stop().await;

    let mut publisher = V311::start(broker.addr(), "rumqttc-pub", true);
    publisher.connack().await;
    for i in 0..3 {
        publisher
            .client
            .publish(
                format!("inbox/{i}"),
                QoS::AtLeastOnce,
                false,
                format!("m{i}"),
            )
            .await
            .unwrap();
        publisher.until(|p| matches!(p, Packet::PubAck(_))).await;
    }

    let mut sub = V311::start(broker.addr(), "rumqttc-durable", false);
    assert!(sub.connack().await.session_present);
    for i in 0..3 {
        let got = sub.publish().await;
        assert_eq!(got.payload.as_ref(), format!("m{i}").as_bytes());
    }
}

mod v5 {
    use std::net::SocketAddr;
    use std::time::Duration;

    use ferrymq_testkit::{TestBroker, WAIT};
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::{ConnAck, ConnectReturnCode, Packet, Publish};
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};
    use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
    use tokio::task::JoinHandle;

    /// A rumqttc 5.0 client and the packets its event loop received.
    struct V5 {
        client: AsyncClient,
        incoming: UnboundedReceiver<Packet>,
        task: JoinHandle<()>,
    }

    impl V5 {
        fn start(addr: SocketAddr, id: &str, session_expiry: Option<u32>) -> V5 {
            let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
            options.set_credentials("guest", "guest");
            options.set_clean_start(session_expiry.is_none());
            options.set_session_expiry_interval(session_expiry);
            options.set_keep_alive(Duration::from_secs(30));
            let (client, mut event_loop) = AsyncClient::new(options, 16);
            let (tx, incoming) = unbounded_channel();
            let task = tokio::spawn(async move {
                while let Ok(event) = event_loop.poll().await {
                    if let Event::Incoming(packet) = event
                        && tx.send(packet).is_err()
                    {
                        break;
                    }
                }
            });
            V5 {
                client,
                incoming,
                task,
            }
        }

        async fn next(&mut self) -> Packet {
            match tokio::time::timeout(WAIT, self.incoming.recv()).await {
                Ok(Some(packet)) => packet,
                other => panic!("rumqttc v5: expected a packet, got {other:?}"),
            }
        }

        async fn connack(&mut self) -> ConnAck {
            match self.next().await {
                Packet::ConnAck(connack) => connack,
                other => panic!("expected CONNACK, got {other:?}"),
            }
        }

        async fn until(&mut self, wanted: impl Fn(&Packet) -> bool) -> Packet {
            loop {
                let packet = self.next().await;
                if wanted(&packet) {
                    return packet;
                }
            }
        }

        async fn publish(&mut self) -> Publish {
            match self.until(|p| matches!(p, Packet::Publish(_))).await {
                Packet::Publish(publish) => publish,
                _ => unreachable!(),
            }
        }

        async fn stop(self) {
            let _ = self.client.disconnect().await;
            let _ = tokio::time::timeout(WAIT, self.task).await;
        }
    }

    #[tokio::test]
    async fn v5_connect_subscribe_publish_all_qos() {
        let broker = TestBroker::start().await;
        let mut sub = V5::start(broker.addr(), "rumqttc5-sub", None);
        let connack = sub.connack().await;
        assert_eq!(connack.code, ConnectReturnCode::Success);
        let props = connack.properties.expect("v5 CONNACK properties");
        assert_eq!(props.receive_max, Some(128));
        sub.client
            .subscribe("rq5/#", QoS::ExactlyOnce)
            .await
            .unwrap();
        sub.until(|p| matches!(p, Packet::SubAck(_))).await;

        let mut publisher = V5::start(broker.addr(), "rumqttc5-pub", None);
        publisher.connack().await;
        for (qos, payload) in [
            (QoS::AtMostOnce, "zero"),
            (QoS::AtLeastOnce, "one"),
            (QoS::ExactlyOnce, "two"),
        ] {
            publisher
                .client
                .publish(format!("rq5/{payload}"), qos, false, payload)
                .await
                .unwrap();
            let got = sub.publish().await;
            assert_eq!(got.topic.as_ref(), format!("rq5/{payload}").as_bytes());
            assert_eq!(got.payload.as_ref(), payload.as_bytes());
            assert_eq!(got.qos, qos);
        }
        publisher.stop().await;
        sub.stop().await;
    }

    #[tokio::test]
    async fn v5_retained_message_reaches_a_late_subscriber() {
        let broker = TestBroker::start().await;
        let mut publisher = V5::start(broker.addr(), "rumqttc5-pub", None);
        publisher.connack().await;
        publisher
            .client
            .publish("status5/door", QoS::AtLeastOnce, true, "closed")
            .await
            .unwrap();
        publisher.until(|p| matches!(p, Packet::PubAck(_))).await;

        let mut late = V5::start(broker.addr(), "rumqttc5-late", None);
        late.connack().await;
        late.client
            .subscribe("status5/#", QoS::AtLeastOnce)
            .await
            .unwrap();
        let got = late.publish().await;
        assert!(got.retain);
        assert_eq!(got.topic.as_ref(), b"status5/door");
        assert_eq!(got.payload.as_ref(), b"closed");
    }

    #[tokio::test]
    async fn v5_persistent_session_gets_messages_published_while_offline() {
        let broker = TestBroker::start().await;
        let mut sub = V5::start(broker.addr(), "rumqttc5-durable", Some(300));
        assert!(!sub.connack().await.session_present);
        sub.client
            .subscribe("inbox5/#", QoS::ExactlyOnce)
            .await
            .unwrap();
        sub.until(|p| matches!(p, Packet::SubAck(_))).await;
        sub.stop().await;

        let mut publisher = V5::start(broker.addr(), "rumqttc5-pub", None);
        publisher.connack().await;
        for i in 0..3 {
            publisher
                .client
                .publish(
                    format!("inbox5/{i}"),
                    QoS::ExactlyOnce,
                    false,
                    format!("m{i}"),
                )
                .await
                .unwrap();
            publisher.until(|p| matches!(p, Packet::PubComp(_))).await;
        }

        let mut sub = V5::start(broker.addr(), "rumqttc5-durable", Some(300));
        assert!(sub.connack().await.session_present);
        for i in 0..3 {
            let got = sub.publish().await;
            assert_eq!(got.qos, QoS::ExactlyOnce);
            assert_eq!(got.payload.as_ref(), format!("m{i}").as_bytes());
        }
    }
}
