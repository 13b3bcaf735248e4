//! Routing of a topic that is published to again and again while its subscriptions change:
//! every change must show at the next message. The broker caches, per thread, which routes
//! a topic has (`router/cache.rs`); these tests publish the same topic before and after each
//! kind of change, so a cache that outlived a change fails them. The v5 PUBACK says whether
//! any subscription matched (0x10 when none), which checks the route set exactly.

use ferrymq_testkit::codec::{ProtocolVersion, QoS, ReasonCode};
use ferrymq_testkit::{
    QUIET, RawClient, TestBroker, WAIT, connect, publish, subscribe, unsubscribe,
};

use ProtocolVersion::V5;

async fn client(broker: &TestBroker, id: &str) -> RawClient {
    RawClient::connect_ok(broker.addr(), connect(V5, id))
        .await
        .0
}

/// Publishes `payload` to `r/1` at QoS 1 and returns the PUBACK's reason.
async fn publish_r1(publisher: &mut RawClient, id: u16, payload: &str) -> ReasonCode {
    publisher
        .publish_acked(publish("r/1", payload).qos1(id))
        .await
}

async fn expect_payload(client: &mut RawClient, payload: &str) {
    let got = client.expect_publish(WAIT).await;
    assert_eq!(got.topic, "r/1");
    assert_eq!(got.payload.as_ref(), payload.as_bytes());
}

#[tokio::test]
async fn every_subscription_change_shows_at_the_next_message_to_a_topic() {
    let broker = TestBroker::start().await;
    let mut publisher = client(&broker, "p").await;
    // Routed (and cached) with no route at all.
    for id in 1..=3 {
        assert_eq!(
            publish_r1(&mut publisher, id, "none").await,
            ReasonCode::NoMatchingSubscribers
        );
    }

    // A new wildcard subscription.
    let mut wild = client(&broker, "wild").await;
    wild.subscribe(subscribe(1, "r/+", QoS::AtMostOnce)).await;
    assert_eq!(
        publish_r1(&mut publisher, 4, "a").await,
        ReasonCode::Success
    );
    expect_payload(&mut wild, "a").await;

    // A second, exact subscription of another client.
    let mut exact = client(&broker, "exact").await;
    exact.subscribe(subscribe(1, "r/1", QoS::AtMostOnce)).await;
    assert_eq!(
        publish_r1(&mut publisher, 5, "b").await,
        ReasonCode::Success
    );
    expect_payload(&mut wild, "b").await;
    expect_payload(&mut exact, "b").await;

    // The same client again, overlapping: still one delivery to it.
    wild.subscribe(subscribe(2, "r/1", QoS::AtMostOnce)).await;
    assert_eq!(
        publish_r1(&mut publisher, 6, "c").await,
        ReasonCode::Success
    );
    expect_payload(&mut wild, "c").await;
    expect_payload(&mut exact, "c").await;
    wild.expect_nothing(QUIET).await;

    // Unsubscribed from both of its filters.
    wild.send(unsubscribe(3, &["r/+", "r/1"])).await;
    wild.expect_packet(WAIT).await; // UNSUBACK
    assert_eq!(
        publish_r1(&mut publisher, 7, "d").await,
        ReasonCode::Success
    );
    expect_payload(&mut exact, "d").await;
    wild.expect_nothing(QUIET).await;

    // A session that ends (clean start, disconnected) takes its subscription along.
    exact.disconnect().await;
    assert!(
        broker
            .wait_for(WAIT, |m| ferrymq_testkit::Metrics::get(&m.sessions) <= 2)
            .await,
        "the session of `exact` ended"
    );
    assert_eq!(
        publish_r1(&mut publisher, 8, "e").await,
        ReasonCode::NoMatchingSubscribers
    );

    // No Local is decided per message, not per route: the publisher's own subscription
    // is not delivered to (so nobody took the message), another publisher's message is.
    publisher
        .subscribe(subscribe(1, "r/1", QoS::AtMostOnce).no_local())
        .await;
    assert_eq!(
        publish_r1(&mut publisher, 9, "f").await,
        ReasonCode::NoMatchingSubscribers
    );
    publisher.expect_nothing(QUIET).await;
    let mut other = client(&broker, "other").await;
    assert_eq!(publish_r1(&mut other, 1, "g").await, ReasonCode::Success);
    expect_payload(&mut publisher, "g").await;
}

#[tokio::test]
async fn shared_group_members_coming_and_going_are_seen_at_once() {
    let broker = TestBroker::start().await;
    let mut publisher = client(&broker, "p").await;
    let mut first = client(&broker, "first").await;
    first
        .subscribe(subscribe(1, "$share/g/r/1", QoS::AtMostOnce))
        .await;
    for id in 1..=2 {
        assert_eq!(
            publish_r1(&mut publisher, id, "one").await,
            ReasonCode::Success
        );
        expect_payload(&mut first, "one").await;
    }

    // A second member: the group's messages are now shared between both.
    let mut second = client(&broker, "second").await;
    second
        .subscribe(subscribe(1, "$share/g/r/1", QoS::AtMostOnce))
        .await;
    for id in 3..=6 {
        assert_eq!(
            publish_r1(&mut publisher, id, "two").await,
            ReasonCode::Success
        );
    }
    let (mut to_first, mut to_second) = (0, 0);
    for _ in 0..4 {
        tokio::select! {
            _ = first.expect_publish(WAIT) => to_first += 1,
            _ = second.expect_publish(WAIT) => to_second += 1,
        }
    }
    assert_eq!(
        (to_first, to_second),
        (2, 2),
        "round robin over two members"
    );

    // The last members leave: the group is gone.
    first.send(unsubscribe(2, &["$share/g/r/1"])).await;
    first.expect_packet(WAIT).await;
    second.send(unsubscribe(2, &["$share/g/r/1"])).await;
    second.expect_packet(WAIT).await;
    assert_eq!(
        publish_r1(&mut publisher, 7, "gone").await,
        ReasonCode::NoMatchingSubscribers
    );
}
