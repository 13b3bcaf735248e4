//! Shared subscriptions `$share/{group}/{filter}` [MQTT-4.8.2]: round robin within a group,
//! one copy per group, re-delivery of unacknowledged messages when a member leaves, and the
//! rules that differ from normal subscriptions.

use ferrymq_testkit::codec::{ProtocolVersion, Publish, QoS, ReasonCode};
use ferrymq_testkit::{QUIET, RawClient, TestBroker, WAIT, connect, publish, subscribe};

use ProtocolVersion::{V3_1_1, V5};

async fn member(
    broker: &TestBroker,
    version: ProtocolVersion,
    id: &str,
    filter: &str,
) -> RawClient {
    let (mut client, _) = RawClient::connect_ok(broker.addr(), connect(version, id)).await;
    let suback = client
        .subscribe(subscribe(1, filter, QoS::AtLeastOnce))
        .await;
    assert_eq!(suback.reason_codes, [ReasonCode::GrantedQoS1]);
    client
        .subscribe(subscribe(2, "sentinel", QoS::AtMostOnce))
        .await;
    client
}

async fn payloads_until_sentinel(client: &mut RawClient) -> Vec<String> {
    let got: Vec<Publish> = client.publishes_until("sentinel").await;
    let mut payloads = Vec::new();
    for p in got {
        client.ack(&p).await;
        payloads.push(String::from_utf8(p.payload.to_vec()).unwrap());
    }
    payloads
}

#[tokio::test]
async fn messages_alternate_between_group_members() {
    let broker = TestBroker::start().await;
    let mut a = member(&broker, V5, "a", "$share/g/jobs/#").await;
    let mut b = member(&broker, V3_1_1, "b", "$share/g/jobs/#").await;
    let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    for i in 0..6u16 {
        assert_eq!(
            p.publish_acked(publish("jobs/x", i.to_string()).qos1(i + 1))
                .await,
            ReasonCode::Success
        );
    }
    p.send(publish("sentinel", "s")).await;
    let (got_a, got_b) = (
        payloads_until_sentinel(&mut a).await,
        payloads_until_sentinel(&mut b).await,
    );
    let (evens, odds) = (["0", "2", "4"], ["1", "3", "5"]);
    assert!(
        (got_a == evens && got_b == odds) || (got_a == odds && got_b == evens),
        "round robin: a got {got_a:?}, b got {got_b:?}"
    );
}

/// Each group gets one copy; a normal subscriber on the same filter gets its own.
#[tokio::test]
async fn each_group_and_each_normal_subscriber_get_a_copy() {
    let broker = TestBroker::start().await;
    let mut g1 = member(&broker, V5, "g1", "$share/one/t").await;
    let mut g2 = member(&broker, V5, "g2", "$share/two/t").await;
    let mut plain = member(&broker, V5, "plain", "t").await;
    let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    p.publish_acked(publish("t", "m").qos1(1)).await;
    p.send(publish("sentinel", "s")).await;
    for client in [&mut g1, &mut g2, &mut plain] {
        assert_eq!(payloads_until_sentinel(client).await, ["m"]);
    }
}

/// A member leaves with an unacknowledged QoS 1 message: it is re-delivered to another
/// member of the group.
#[tokio::test]
async fn unacked_message_of_a_leaving_member_goes_to_another() {
    for version in [V3_1_1, V5] {
        let broker = TestBroker::start().await;
        let mut a = member(&broker, version, "a", "$share/g/work").await;
        let mut b = member(&broker, version, "b", "$share/g/work").await;
        let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
        p.publish_acked(publish("work", "first").qos1(1)).await;
        p.publish_acked(publish("work", "second").qos1(2)).await;

        // One each; whoever got "first" leaves without acknowledging it.
        let got_a = a.expect_publish(WAIT).await;
        let got_b = b.expect_publish(WAIT).await;
        let (mut stayer, leaver, abandoned, kept) = if got_a.payload.as_ref() == b"first" {
            (b, a, got_a, got_b)
        } else {
            (a, b, got_b, got_a)
        };
        assert_eq!(abandoned.payload.as_ref(), b"first");
        stayer.ack(&kept).await;
        leaver.reset();

        let redelivered = stayer.expect_publish(WAIT).await;
        assert_eq!(redelivered.payload.as_ref(), b"first", "{version:?}");
        assert_eq!(redelivered.qos, QoS::AtLeastOnce);
        stayer.ack(&redelivered).await;
        stayer.expect_nothing(QUIET).await;
    }
}

/// A persistent member that leaves hands its unacknowledged message over and does not get
/// it again when it comes back.
#[tokio::test]
async fn persistent_member_does_not_get_a_handed_over_message_back() {
    let broker = TestBroker::start().await;
    let persistent = || connect(V5, "a").clean_start(false).session_expiry(60);
    let (mut a, _) = RawClient::connect_ok(broker.addr(), persistent()).await;
    a.subscribe(subscribe(1, "$share/g/work", QoS::AtLeastOnce))
        .await;
    let mut b = member(&broker, V5, "b", "$share/g/work").await;
    let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    p.publish_acked(publish("work", "one").qos1(1)).await;
    p.publish_acked(publish("work", "two").qos1(2)).await;
    let at_a = a.expect_publish(WAIT).await;
    let at_b = b.expect_publish(WAIT).await;
    b.ack(&at_b).await;
    a.reset();
    let handed = b.expect_publish(WAIT).await;
    assert_eq!(handed.payload, at_a.payload);
    b.ack(&handed).await;

    let (mut a, connack) = RawClient::connect_ok(broker.addr(), persistent()).await;
    assert!(connack.session_present);
    a.expect_nothing(QUIET).await;
}

/// While a persistent member is offline, the online member gets every message.
#[tokio::test]
async fn offline_members_are_skipped() {
    let broker = TestBroker::start().await;
    let persistent = || connect(V5, "away").clean_start(false).session_expiry(60);
    let (mut away, _) = RawClient::connect_ok(broker.addr(), persistent()).await;
    away.subscribe(subscribe(1, "$share/g/t", QoS::AtLeastOnce))
        .await;
    away.disconnect().await;
    let mut here = member(&broker, V5, "here", "$share/g/t").await;
    let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    for i in 0..4u16 {
        p.publish_acked(publish("t", i.to_string()).qos1(i + 1))
            .await;
    }
    p.send(publish("sentinel", "s")).await;
    assert_eq!(
        payloads_until_sentinel(&mut here).await,
        ["0", "1", "2", "3"]
    );
}

/// Retained messages are not sent for a shared subscription.
#[tokio::test]
async fn retained_messages_are_not_sent_to_shared_subscriptions() {
    let broker = TestBroker::start().await;
    let (mut p, _) = RawClient::connect_ok(broker.addr(), connect(V5, "p")).await;
    p.send(publish("ret", "kept").retain()).await;
    p.send(publish("sentinel", "s").retain()).await;
    p.ping().await;
    let mut m = member(&broker, V5, "m", "$share/g/ret").await;
    assert_eq!(m.publishes_until("sentinel").await, []);
}

/// No Local on a shared subscription is a protocol error [MQTT-3.8.3-4].
#[tokio::test]
async fn no_local_on_a_shared_subscription_is_a_protocol_error() {
    let broker = TestBroker::start().await;
    let (mut c, _) = RawClient::connect_ok(broker.addr(), connect(V5, "c")).await;
    c.send(subscribe(1, "$share/g/t", QoS::AtMostOnce).no_local())
        .await;
    c.expect_disconnect_and_close(ReasonCode::ProtocolError)
        .await;
}

/// Malformed share names are refused per filter with 0x8F.
#[tokio::test]
async fn invalid_share_names_are_refused() {
    let broker = TestBroker::start().await;
    let (mut c, _) = RawClient::connect_ok(broker.addr(), connect(V5, "c")).await;
    for (id, filter) in [(1u16, "$share/g"), (2, "$share//t"), (3, "$share/g+/t")] {
        let suback = c.subscribe(subscribe(id, filter, QoS::AtMostOnce)).await;
        assert_eq!(
            suback.reason_codes,
            [ReasonCode::TopicFilterInvalid],
            "{filter}"
        );
    }
}
