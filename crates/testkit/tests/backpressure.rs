//! Back-pressure for fan-in: a QoS 1 message for a connected subscriber whose queue is full
//! is not dropped; its publisher stops being read and gets no PUBACK for it until the
//! subscriber has made room (or stalled for `publish_backpressure_timeout`, or left).
//!
//! The subscribers here are raw clients with a small Receive Maximum that acknowledge
//! nothing until the test says so: once their window is full and their queue too, the next
//! message must wait.

use std::time::Duration;

use ferrymq_testkit::codec::{Packet, ProtocolVersion, Publish, QoS, ReasonCode};
use ferrymq_testkit::{
    QUIET, QueueOverflow, RawClient, TestBroker, WAIT, connect, puback, publish, subscribe,
};
use tokio::time::Instant;

use ProtocolVersion::V5;
use ReasonCode::{QuotaExceeded, Success};

const TOPIC: &str = "fan/in";

/// A broker whose session queues hold `max_queued` messages and whose subscribers may hold
/// publishers back for `timeout` without progress.
async fn broker(max_queued: usize, timeout: Duration) -> TestBroker {
    TestBroker::builder()
        .limits(|l| {
            l.max_queued_messages = max_queued;
            l.publish_backpressure_timeout = timeout;
        })
        .start()
        .await
}

/// A subscriber to [`TOPIC`] at QoS 1 that takes `window` messages in flight (its Receive
/// Maximum) and no more until the test acknowledges them.
async fn slow_subscriber(broker: &TestBroker, client_id: &str, window: u16) -> RawClient {
    let login = connect(V5, client_id).receive_maximum(window);
    let (mut sub, _) = RawClient::connect_ok(broker.addr(), login).await;
    sub.subscribe(subscribe(1, TOPIC, QoS::AtLeastOnce)).await;
    sub
}

async fn publisher(broker: &TestBroker, client_id: &str) -> RawClient {
    RawClient::connect_ok(broker.addr(), connect(V5, client_id))
        .await
        .0
}

/// Publishes `ids` as QoS 1 messages whose payload is their id, each acknowledged with
/// Success before the next.
async fn publish_accepted(publisher: &mut RawClient, ids: std::ops::RangeInclusive<u16>) {
    for id in ids {
        let reason = publisher
            .publish_acked(publish(TOPIC, id.to_string()).qos1(id))
            .await;
        assert_eq!(reason, Success, "PUBACK of message {id}");
    }
}

/// Fills `sub`'s window and queue with messages 1 to `window + queued` from `publisher`.
/// The subscriber reads the first `window` (so they are surely in flight and the others
/// queued) and does not acknowledge them: they are returned for that.
async fn fill(
    publisher: &mut RawClient,
    sub: &mut RawClient,
    window: u16,
    queued: u16,
) -> Vec<Publish> {
    publish_accepted(publisher, 1..=window).await;
    let mut in_flight = Vec::new();
    for _ in 0..window {
        in_flight.push(sub.expect_publish(WAIT).await);
    }
    publish_accepted(publisher, window + 1..=window + queued).await;
    in_flight
}

/// Acknowledges deliveries read earlier; returns their payloads.
async fn ack_read(sub: &mut RawClient, read: Vec<Publish>) -> Vec<String> {
    let mut payloads = Vec::new();
    for msg in read {
        sub.ack(&msg).await;
        payloads.push(String::from_utf8_lossy(&msg.payload).into_owned());
    }
    payloads
}

/// Reads `count` deliveries, acknowledging each; returns their payloads.
async fn read_and_ack(sub: &mut RawClient, count: usize) -> Vec<String> {
    let mut got = Vec::with_capacity(count);
    while got.len() < count {
        let msg = sub.expect_publish(WAIT).await;
        sub.ack(&msg).await;
        got.push(String::from_utf8_lossy(&msg.payload).into_owned());
    }
    got
}

fn numbers(ids: std::ops::RangeInclusive<u16>) -> Vec<String> {
    ids.map(|id| id.to_string()).collect()
}

#[tokio::test]
async fn a_slow_subscriber_gets_every_message_in_order_and_the_publisher_waits_for_it() {
    let broker = broker(5, Duration::from_secs(30)).await;
    let mut sub = slow_subscriber(&broker, "slow", 2).await;
    let mut publisher = publisher(&broker, "pub").await;
    let in_flight = fill(&mut publisher, &mut sub, 2, 5).await;
    const N: u16 = 40;
    for id in 8..=N {
        publisher
            .send(publish(TOPIC, id.to_string()).qos1(id))
            .await;
    }
    // The eighth waits for room: no PUBACK for it, and nothing after it is read.
    publisher.expect_nothing(QUIET).await;
    assert_eq!(broker.metric("publishers_blocked"), 1);

    // The subscriber reads and acknowledges: every message, in order, once.
    let mut got = ack_read(&mut sub, in_flight).await;
    got.extend(read_and_ack(&mut sub, usize::from(N) - 2).await);
    assert_eq!(got, numbers(1..=N));
    sub.expect_nothing(QUIET).await;
    // The publisher got the rest of its PUBACKs, in order.
    for id in 8..=N {
        let ack = publisher.expect_puback(WAIT).await;
        assert_eq!((ack.packet_id, ack.reason_code), (id, Success));
    }
    assert_eq!(broker.metric("messages_dropped_queue_full"), 0);
    assert!(broker.metric("publishes_blocked") >= 1);
    assert_eq!(broker.metric("publishers_blocked"), 0);
}

#[tokio::test]
async fn many_publishers_to_one_slow_subscriber_lose_nothing() {
    let broker = broker(4, Duration::from_secs(30)).await;
    let mut sub = slow_subscriber(&broker, "sink", 3).await;
    const PUBLISHERS: u16 = 8;
    const EACH: u16 = 25;
    let mut publishers = Vec::new();
    for p in 0..PUBLISHERS {
        let mut publisher = publisher(&broker, &format!("pub-{p}")).await;
        for id in 1..=EACH {
            let payload = format!("{p}/{id}");
            publisher.send(publish(TOPIC, payload).qos1(id)).await;
        }
        publishers.push(publisher);
    }
    let got = read_and_ack(&mut sub, usize::from(PUBLISHERS * EACH)).await;
    sub.expect_nothing(QUIET).await;
    // Each publisher's messages arrive in the order it sent them.
    for p in 0..PUBLISHERS {
        let own: Vec<&str> = got
            .iter()
            .filter_map(|m| m.strip_prefix(&format!("{p}/")))
            .collect();
        let sent = numbers(1..=EACH);
        assert_eq!(own, sent.iter().map(String::as_str).collect::<Vec<_>>());
    }
    for publisher in &mut publishers {
        for id in 1..=EACH {
            let ack = publisher.expect_puback(WAIT).await;
            assert_eq!((ack.packet_id, ack.reason_code), (id, Success));
        }
    }
    assert_eq!(broker.metric("messages_dropped_queue_full"), 0);
    assert!(broker.metric("publishes_blocked") >= 1);
}

#[tokio::test]
async fn subscribers_with_room_get_the_message_at_once_and_only_once() {
    let broker = broker(2, Duration::from_secs(30)).await;
    let mut slow = slow_subscriber(&broker, "slow", 1).await;
    let mut fast = slow_subscriber(&broker, "fast", 100).await;
    let mut publisher = publisher(&broker, "pub").await;
    let in_flight = fill(&mut publisher, &mut slow, 1, 2).await;
    assert_eq!(read_and_ack(&mut fast, 3).await, numbers(1..=3));

    publisher.send(publish(TOPIC, "4").qos1(4)).await;
    // The fast subscriber has it while the publisher still waits for the slow one.
    assert_eq!(read_and_ack(&mut fast, 1).await, ["4"]);
    publisher.expect_nothing(QUIET).await;

    let mut got = ack_read(&mut slow, in_flight).await;
    got.extend(read_and_ack(&mut slow, 3).await);
    assert_eq!(got, numbers(1..=4));
    let ack = publisher.expect_puback(WAIT).await;
    assert_eq!((ack.packet_id, ack.reason_code), (4, Success));
    // Letting the publisher go delivered nothing twice.
    fast.expect_nothing(QUIET).await;
    slow.expect_nothing(QUIET).await;
}

#[tokio::test]
async fn a_subscriber_that_sends_nothing_for_the_timeout_costs_a_drop_and_the_publisher_goes_on() {
    // Longer than the publisher's keep-alive x grace (1.5 s): it must not be dropped for
    // silence while it is not read.
    let timeout = Duration::from_secs(2);
    let broker = broker(2, timeout).await;
    let mut stuck = slow_subscriber(&broker, "stuck", 1).await;
    let login = connect(V5, "pub").keep_alive(1);
    let (mut publisher, _) = RawClient::connect_ok(broker.addr(), login).await;
    fill(&mut publisher, &mut stuck, 1, 2).await;

    let started = Instant::now();
    publisher.send(publish(TOPIC, "4").qos1(4)).await;
    let ack = publisher.expect_puback(timeout + WAIT).await;
    assert!(
        started.elapsed() >= timeout,
        "let go after {:?}",
        started.elapsed()
    );
    // Refused by the overflow policy: no subscriber took it.
    assert_eq!((ack.packet_id, ack.reason_code), (4, QuotaExceeded));
    assert_eq!(broker.metric("messages_dropped_queue_full"), 1);
    assert_eq!(broker.metric("publish_backpressure_timeouts"), 1);

    // The stalled subscriber holds nobody back any more: refused at once.
    let started = Instant::now();
    let reason = publisher.publish_acked(publish(TOPIC, "5").qos1(5)).await;
    assert_eq!(reason, QuotaExceeded);
    assert!(started.elapsed() < timeout / 2);
    assert_eq!(broker.metric("messages_dropped_queue_full"), 2);
    publisher.ping().await;
    assert_eq!(broker.metric("keep_alive_timeouts"), 0);
}

#[tokio::test]
async fn offline_subscribers_never_hold_publishers_back() {
    let broker = broker(2, Duration::from_secs(30)).await;
    let away = || connect(V5, "away").clean_start(false).session_expiry(60);
    let (mut sub, _) = RawClient::connect_ok(broker.addr(), away()).await;
    sub.subscribe(subscribe(1, TOPIC, QoS::AtLeastOnce)).await;
    sub.disconnect().await;

    let mut publisher = publisher(&broker, "pub").await;
    let mut reasons = Vec::new();
    for id in 1..=4 {
        reasons.push(publisher.publish_acked(publish(TOPIC, "x").qos1(id)).await);
    }
    assert_eq!(reasons, [Success, Success, QuotaExceeded, QuotaExceeded]);
    assert_eq!(broker.metric("publishes_blocked"), 0);
}

#[tokio::test]
async fn a_subscriber_that_goes_offline_lets_its_publishers_go_at_once() {
    let broker = broker(2, Duration::from_secs(30)).await;
    let mut sub = slow_subscriber(&broker, "leaves", 1).await;
    let mut publisher = publisher(&broker, "pub").await;
    fill(&mut publisher, &mut sub, 1, 2).await;
    publisher.send(publish(TOPIC, "4").qos1(4)).await;
    publisher.expect_nothing(QUIET).await;

    sub.drop_connection();
    let ack = publisher.expect_puback(WAIT).await;
    assert_eq!(ack.packet_id, 4);
    assert_eq!(broker.metric("publish_backpressure_timeouts"), 0);
    assert_eq!(broker.metric("publishers_blocked"), 0);
}

#[tokio::test]
async fn a_client_subscribed_to_what_it_publishes_does_not_wait_for_itself() {
    // Its acknowledgements of its own deliveries arrive behind the PUBLISHes it sent, so
    // it can only make room in its own queue if they are read while it waits.
    let broker = broker(3, Duration::from_secs(30)).await;
    let login = connect(V5, "narcissus").receive_maximum(2);
    let (mut client, _) = RawClient::connect_ok(broker.addr(), login).await;
    client
        .subscribe(subscribe(1, TOPIC, QoS::AtLeastOnce))
        .await;
    const N: u16 = 40;
    for id in 1..=N {
        client.send(publish(TOPIC, id.to_string()).qos1(id)).await;
    }
    let (mut delivered, mut acked) = (Vec::new(), Vec::new());
    while delivered.len() < usize::from(N) || acked.len() < usize::from(N) {
        match client.expect_packet(WAIT).await {
            Packet::Publish(msg) => {
                let id = msg.packet_id.expect("QoS 1 delivery");
                client.send(puback(id)).await;
                delivered.push(String::from_utf8_lossy(&msg.payload).into_owned());
            }
            Packet::PubAck(ack) => {
                assert_eq!(ack.reason_code, Success, "PUBACK {}", ack.packet_id);
                acked.push(ack.packet_id);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(delivered, numbers(1..=N));
    assert_eq!(acked, (1..=N).collect::<Vec<_>>());
    assert!(
        broker.metric("publishes_blocked") >= 1,
        "the client never had to wait for itself: the test proves nothing"
    );
    assert_eq!(broker.metric("messages_dropped_queue_full"), 0);
}

/// QoS 0 waits only for a subscriber the broker is behind with; this one is held up by its
/// client (its window is full), so QoS 0 for it is dropped rather than waited for.
#[tokio::test]
async fn qos0_messages_for_a_subscriber_held_up_by_its_client_are_dropped_and_never_hold_the_publisher()
 {
    let broker = broker(2, Duration::from_secs(30)).await;
    let mut sub = slow_subscriber(&broker, "slow", 1).await;
    let mut publisher = publisher(&broker, "pub").await;
    let in_flight = fill(&mut publisher, &mut sub, 1, 2).await;
    for _ in 0..5 {
        publisher.send(publish(TOPIC, "q0")).await;
    }
    // Answered: nothing holds the publisher back for long. (A QoS 0 message may wait for
    // the subscriber's connection's next turn, which finds the window full and lets it go.)
    publisher.ping().await;
    assert_eq!(broker.metric("messages_dropped_queue_full"), 5);
    let mut got = ack_read(&mut sub, in_flight).await;
    got.extend(read_and_ack(&mut sub, 2).await);
    assert_eq!(got, numbers(1..=3));
    sub.expect_nothing(QUIET).await;
}

#[tokio::test]
async fn the_drop_policy_refuses_at_once_as_for_an_offline_session() {
    let broker = TestBroker::builder()
        .limits(|l| {
            l.max_queued_messages = 2;
            l.queue_overflow = QueueOverflow::Drop;
        })
        .start()
        .await;
    let mut sub = slow_subscriber(&broker, "slow", 1).await;
    let mut publisher = publisher(&broker, "pub").await;
    fill(&mut publisher, &mut sub, 1, 2).await;
    let reason = publisher.publish_acked(publish(TOPIC, "4").qos1(4)).await;
    assert_eq!(reason, QuotaExceeded);
    assert_eq!(broker.metric("messages_dropped_queue_full"), 1);
    assert_eq!(broker.metric("publishes_blocked"), 0);
}

#[tokio::test]
async fn a_waiting_publisher_is_taken_over_and_shut_down_at_once() {
    let broker = broker(2, Duration::from_secs(30)).await;
    let mut sub = slow_subscriber(&broker, "slow", 1).await;
    let mut first = publisher(&broker, "pub").await;
    fill(&mut first, &mut sub, 1, 2).await;
    first.send(publish(TOPIC, "4").qos1(4)).await;
    first.expect_nothing(QUIET).await;

    // Another connection with its client id: the waiting one goes at once, and its message
    // stops waiting (refused by the overflow policy: its client never had a PUBACK).
    let mut second = publisher(&broker, "pub").await;
    first
        .expect_disconnect_and_close(ReasonCode::SessionTakenOver)
        .await;
    assert_eq!(broker.metric("publishers_blocked"), 0);
    assert_eq!(broker.metric("messages_dropped_queue_full"), 1);

    second.send(publish(TOPIC, "5").qos1(1)).await;
    second.expect_nothing(QUIET).await;
    broker.broker().begin_shutdown();
    second
        .expect_disconnect_and_close(ReasonCode::ServerShuttingDown)
        .await;
}
