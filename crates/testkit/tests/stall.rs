//! A subscriber that stops reading while a publisher floods it. Its connection task is then
//! blocked writing, and must still answer everything else: other clients are served, a
//! takeover and a broker shutdown end it at once, and a socket that accepts no bytes for the
//! write-stall limit (keep-alive x grace) is closed.

use std::time::Duration;

use bytes::BytesMut;
use ferrymq_testkit::codec::{Packet, ProtocolVersion, QoS, ReasonCode, encode};
use ferrymq_testkit::{Metrics, RawClient, TestBroker, WAIT, connect, publish, subscribe};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

use ProtocolVersion::{V3_1_1, V5};

const FLOOD: &str = "flood";

/// A broker whose session queues hold few messages, so that a stalled subscriber's queue
/// overflows (and says so in a metric) soon after its socket is full.
async fn broker() -> TestBroker {
    TestBroker::builder()
        .limits(|l| l.max_queued_messages = 10)
        .start()
        .await
}

fn open_connections(broker: &TestBroker) -> u64 {
    Metrics::get(&broker.metrics().connections_open)
}

/// Connects (MQTT 3.1.1, `keep_alive` seconds) with a small receive buffer, subscribes to
/// [`FLOOD`], and from then on never reads.
async fn stalled_subscriber(broker: &TestBroker, client_id: &str, keep_alive: u16) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(broker.addr()).await.unwrap();
    let mut out = BytesMut::new();
    let connect = connect(V3_1_1, client_id)
        .keep_alive(keep_alive)
        .clean_start(false)
        .build();
    encode(&Packet::Connect(Box::new(connect)), V3_1_1, &mut out).unwrap();
    let subscribe = subscribe(1, FLOOD, QoS::AtMostOnce).build();
    encode(&Packet::Subscribe(subscribe), V3_1_1, &mut out).unwrap();
    stream.write_all(&out).await.unwrap();
    // CONNACK (4 bytes) and SUBACK (5 bytes), then nothing more is read.
    let mut acks = [0u8; 9];
    tokio::time::timeout(WAIT, stream.read_exact(&mut acks))
        .await
        .expect("CONNACK and SUBACK")
        .unwrap();
    assert_eq!(acks[..2], [0x20, 0x02], "CONNACK");
    assert_eq!(
        acks[4..],
        [0x90, 0x03, 0x00, 0x01, 0x00],
        "SUBACK granting QoS 0"
    );
    stream
}

/// Publishes 20 MiB to [`FLOOD`] in 64 KiB QoS 0 messages: far more than the kernel buffers
/// of a loopback connection hold (4 MiB here), so the stalled subscriber's connection task
/// ends up blocked writing. Returns the publisher, still connected.
async fn flood(broker: &TestBroker) -> RawClient {
    let (mut publisher, _) = RawClient::connect_ok(broker.addr(), connect(V5, "flooder")).await;
    let payload = vec![0x5A; 64 * 1024];
    for _ in 0..320 {
        publisher.send(publish(FLOOD, &payload)).await;
    }
    let full = |m: &Metrics| Metrics::get(&m.messages_dropped_queue_full) > 0;
    assert!(
        broker.wait_for(WAIT, full).await,
        "the stalled subscriber's queue did not overflow"
    );
    // Let the broker write what the socket takes; then its task waits on the socket.
    tokio::time::sleep(Duration::from_millis(500)).await;
    publisher
}

/// Other clients keep being served while a connection is stalled.
async fn assert_responsive(broker: &TestBroker, client_id: &str) {
    let (mut client, _) = RawClient::connect_ok(broker.addr(), connect(V5, client_id)).await;
    client
        .subscribe(subscribe(1, client_id, QoS::AtLeastOnce))
        .await;
    let reason = client
        .publish_acked(publish(client_id, b"still here").qos1(2))
        .await;
    assert_eq!(reason, ReasonCode::Success);
    let delivered = client.expect_publish(WAIT).await;
    assert_eq!(delivered.payload.as_ref(), b"still here");
    client.ack(&delivered).await;
    client.disconnect().await;
}

#[tokio::test]
async fn a_client_that_accepts_nothing_is_dropped_after_the_write_stall_limit() {
    let broker = broker().await;
    // Keep-alive 2 s, grace 1.5: the write-stall limit is 3 s.
    let mut slow = stalled_subscriber(&broker, "slow", 2).await;
    // The client keeps sending PINGREQs, so it is never silent: only the stall can drop it.
    let pinger = tokio::spawn(async move {
        while slow.write_all(&[0xC0, 0x00]).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let _flooder = flood(&broker).await;
    let stalled_at = Instant::now();
    assert_responsive(&broker, "bystander").await;

    // The flooder is the one connection left.
    let dropped = |m: &Metrics| Metrics::get(&m.connections_open) == 1;
    assert!(
        broker.wait_for(Duration::from_secs(10), dropped).await,
        "the stalled subscriber is still connected {:?} after its queue overflowed",
        stalled_at.elapsed()
    );
    pinger.abort();
}

#[tokio::test]
async fn a_stalled_connection_is_taken_over_at_once() {
    let broker = broker().await;
    // No keep-alive: the write-stall limit is its maximum (60 s), far beyond this test.
    let _slow = stalled_subscriber(&broker, "device", 0).await;
    let _flooder = flood(&broker).await;
    assert_eq!(open_connections(&broker), 2);

    let (mut newer, connack) =
        RawClient::connect_ok(broker.addr(), connect(V3_1_1, "device").clean_start(false)).await;
    assert!(connack.session_present);
    // The old connection leaves within its close timeout (its last bytes cannot be written).
    let replaced = |m: &Metrics| Metrics::get(&m.connections_open) == 2;
    assert!(
        broker.wait_for(Duration::from_secs(5), replaced).await,
        "the stalled connection survived the takeover"
    );
    // The session lives on in the new connection, with what was queued for it.
    let delivered = newer.expect_publish(WAIT).await;
    assert_eq!(delivered.topic, FLOOD);
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_stalled_connection() {
    let broker = broker().await;
    let _slow = stalled_subscriber(&broker, "slow", 0).await;
    let (mut v5, _) = RawClient::connect_ok(broker.addr(), connect(V5, "v5")).await;
    let _flooder = flood(&broker).await;

    let started = Instant::now();
    broker.broker().begin_shutdown();
    v5.expect_disconnect_and_close(ReasonCode::ServerShuttingDown)
        .await;
    let closed = |m: &Metrics| Metrics::get(&m.connections_open) == 0;
    assert!(
        broker.wait_for(Duration::from_secs(5), closed).await,
        "{} connection(s) still open {:?} after shutdown began",
        open_connections(&broker),
        started.elapsed()
    );
}
