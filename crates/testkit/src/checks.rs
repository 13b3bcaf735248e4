//! Whole-broker checks shared by many tests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};

use ferrymq_codec::{ProtocolVersion, QoS, ReasonCode};

use crate::WAIT;
use crate::builders::{connect, publish, subscribe};
use crate::client::RawClient;

/// Asserts that the broker at `addr` still serves new clients: a fresh subscriber and a fresh
/// publisher exchange one QoS 1 message end to end (used after feeding another connection
/// bad input, to show that nothing else was affected).
pub async fn assert_pubsub_works(addr: SocketAddr) {
    static RUN: AtomicU32 = AtomicU32::new(0);
    let run = RUN.fetch_add(1, Ordering::Relaxed);
    let topic = format!("health/{run}");
    let (mut sub, _) = RawClient::connect_ok(
        addr,
        connect(ProtocolVersion::V5, &format!("health-sub-{run}")),
    )
    .await;
    let suback = sub.subscribe(subscribe(1, &topic, QoS::AtLeastOnce)).await;
    assert_eq!(suback.reason_codes, [ReasonCode::GrantedQoS1]);
    let (mut publisher, _) = RawClient::connect_ok(
        addr,
        connect(ProtocolVersion::V3_1_1, &format!("health-pub-{run}")),
    )
    .await;
    publisher
        .publish_acked(publish(&topic, b"still alive").qos1(1))
        .await;
    let received = sub.expect_publish(WAIT).await;
    assert_eq!(received.topic, topic);
    assert_eq!(received.payload.as_ref(), b"still alive");
    sub.ack(&received).await;
    sub.disconnect().await;
    publisher.disconnect().await;
}
