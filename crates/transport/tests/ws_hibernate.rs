//! Plain WebSocket connections hibernate (`WsConfig::hibernate_after`): a quiet connection
//! sleeps without a task, its keep-alive PINGREQs, the server's pings and the client's pongs
//! are handled without waking it, and anything else wakes it to carry on as if it had never
//! slept. Raw frames where the exact bytes matter, tokio-tungstenite elsewhere.

mod common;

use std::time::Duration;

use common::*;
use ferrymq_broker::Broker;
use ferrymq_codec::{Connect, ConnectProperties, Packet, ProtocolVersion};
use ferrymq_transport::WsConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// Connections sleep after 50 ms of quiet; no server pings unless a test wants them.
fn hibernating() -> WsConfig {
    WsConfig {
        hibernate_after: Some(Duration::from_millis(50)),
        ping_interval: None,
        ..WsConfig::default()
    }
}

fn metric(broker: &Broker, name: &str) -> u64 {
    broker
        .metrics()
        .snapshot()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
        .unwrap_or_else(|| panic!("no broker metric named {name:?}"))
}

/// Waits until `name` reads `value`; panics after 5 s.
async fn wait_for(broker: &Broker, name: &str, value: u64) {
    let waited = tokio::time::timeout(TIMEOUT, async {
        while metric(broker, name) != value {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "{name} is {}, not {value}",
        metric(broker, name)
    );
}

/// A client frame: masked, as RFC 6455 requires (with a mask that changes the bytes).
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x5A, 0x01, 0xC3, 0x7E];
    let mut out = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    out.extend(mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

const PINGREQ: [u8; 2] = [0xC0, 0x00];
/// PINGRESP in an unmasked binary frame, as the server sends it.
const PINGRESP_FRAME: [u8; 4] = [0x82, 0x02, 0xD0, 0x00];

/// A raw WebSocket client, logged in: the socket after the CONNACK frame.
async fn raw_client(addr: std::net::SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = upgrade_request("/mqtt", "Sec-WebSocket-Protocol: mqtt\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.unwrap());
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    let connect = bytes(&[connect("raw", Some("guest"), Some("guest"))]);
    tcp.write_all(&frame(0x2, &connect)).await.unwrap();
    let mut connack = [0u8; 6];
    read_exactly(&mut tcp, &mut connack).await;
    assert_eq!(connack, [0x82, 4, 0x20, 2, 0, 0]);
    tcp
}

async fn read_exactly(tcp: &mut TcpStream, buf: &mut [u8]) {
    tokio::time::timeout(TIMEOUT, tcp.read_exact(buf))
        .await
        .expect("an answer in time")
        .unwrap();
}

#[tokio::test]
async fn keep_alive_and_pongs_are_answered_asleep_and_anything_else_wakes() {
    let broker = broker();
    let addr = start_ws(&broker, hibernating(), None);
    let mut tcp = raw_client(addr).await;
    wait_for(&broker, "connections_hibernated", 1).await;

    // A PINGREQ, a pong and a PINGREQ split over two frames, one write at a time.
    let mut exchanges = vec![
        frame(0x2, &PINGREQ),
        [frame(0xA, &[]), frame(0x2, &PINGREQ)].concat(),
        [frame(0x2, &PINGREQ[..1]), frame(0x2, &PINGREQ[1..])].concat(),
    ];
    for (n, ping) in exchanges.drain(..).enumerate() {
        tcp.write_all(&ping).await.unwrap();
        let mut answer = [0u8; 4];
        read_exactly(&mut tcp, &mut answer).await;
        assert_eq!(answer, PINGRESP_FRAME);
        assert_eq!(metric(&broker, "hibernated_pings_answered"), n as u64 + 1);
    }
    // A pong alone is taken without an answer.
    tcp.write_all(&frame(0xA, b"x")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(metric(&broker, "hibernated_wakes"), 0);
    assert_eq!(metric(&broker, "connections_hibernated"), 1);

    // A PINGREQ with a SUBSCRIBE behind it wakes the connection, which answers both.
    let subscribe = bytes(&[subscribe("t/#")]);
    tcp.write_all(&frame(0x2, &[&PINGREQ[..], &subscribe].concat()))
        .await
        .unwrap();
    let mut answer = [0u8; 2 + 2 + 5];
    read_exactly(&mut tcp, &mut answer).await;
    assert_eq!(answer, [0x82, 7, 0xD0, 0x00, 0x90, 3, 0, 1, 0]);
    assert_eq!(metric(&broker, "hibernated_wakes"), 1);
    assert_eq!(metric(&broker, "hibernated_pings_answered"), 3);

    // Asleep again, a client ping frame wakes it: the pong comes from the woken stream.
    wait_for(&broker, "connections_hibernated", 1).await;
    tcp.write_all(&frame(0x9, b"hey")).await.unwrap();
    let mut pong = [0u8; 5];
    read_exactly(&mut tcp, &mut pong).await;
    assert_eq!(pong, [0x8A, 3, b'h', b'e', b'y']);
    assert_eq!(metric(&broker, "hibernated_wakes"), 2);

    // Asleep again, an unmasked frame wakes it and closes it with 1002.
    wait_for(&broker, "connections_hibernated", 1).await;
    tcp.write_all(&[0x82, 0x02, 0xC0, 0x00]).await.unwrap();
    let mut close = [0u8; 4];
    read_exactly(&mut tcp, &mut close).await;
    assert_eq!(close, [0x88, 2, 0x03, 0xEA]);
    wait_for(&broker, "connections_hibernated", 0).await;
}

#[tokio::test]
async fn sleeping_subscribers_get_their_messages() {
    let broker = broker();
    let addr = start_ws(&broker, hibernating(), None);
    let mut subscribers = Vec::new();
    for n in 0..5 {
        let mut client = ws_client(addr, "/mqtt", &[]).await;
        let id = format!("sleeper-{n}");
        assert_eq!(client.login(&id, Some("guest"), Some("guest")).await, 0);
        client.send(&[subscribe("news/#")]).await;
        assert!(matches!(client.recv().await, Packet::SubAck(_)));
        subscribers.push(client);
    }
    wait_for(&broker, "connections_hibernated", 5).await;
    let mut publisher = ws_client(addr, "/mqtt", &[]).await;
    assert_eq!(
        publisher.login("pub", Some("guest"), Some("guest")).await,
        0
    );
    for round in 0..2 {
        let payload = format!("round {round}");
        publisher
            .send(&[publish("news/today", payload.as_bytes())])
            .await;
        for client in &mut subscribers {
            match client.recv().await {
                Packet::Publish(p) => assert_eq!(p.payload, payload.as_bytes()),
                other => panic!("expected PUBLISH, got {other:?}"),
            }
        }
        // All six fall asleep before the next round.
        wait_for(&broker, "connections_hibernated", 6).await;
    }
    assert!(metric(&broker, "hibernated_wakes") >= 10);
}

#[tokio::test]
async fn server_pings_go_out_and_pongs_come_back_without_waking() {
    let broker = broker();
    let config = WsConfig {
        ping_interval: Some(Duration::from_secs(1)),
        ..hibernating()
    };
    let addr = start_ws(&broker, config, None);
    let mut client = ws_client(addr, "/mqtt", &[]).await;
    assert_eq!(
        client.login("pinged", Some("guest"), Some("guest")).await,
        0
    );
    wait_for(&broker, "connections_hibernated", 1).await;
    let started = std::time::Instant::now();
    for _ in 0..3 {
        // tokio-tungstenite queues a pong for each ping and sends it at the next read.
        assert!(matches!(client.next_message().await, Message::Ping(_)));
    }
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert_eq!(metric(&broker, "hibernated_wakes"), 0);
    assert_eq!(metric(&broker, "connections_hibernated"), 1);
    // Still served: a PINGREQ is answered.
    client.send(&[Packet::PingReq]).await;
    assert_eq!(client.recv().await, Packet::PingResp);
}

#[tokio::test]
async fn keep_alive_runs_out_asleep() {
    let broker = broker();
    let addr = start_ws(&broker, hibernating(), None);
    let mut client = ws_client(addr, "/mqtt", &[]).await;
    client
        .send(&[Packet::Connect(Box::new(Connect {
            protocol: ProtocolVersion::V3_1_1,
            clean_start: true,
            keep_alive: 1,
            client_id: "silent".to_owned(),
            will: None,
            username: Some("guest".to_owned()),
            password: Some(bytes::Bytes::from_static(b"guest")),
            properties: ConnectProperties::default(),
        }))])
        .await;
    assert_eq!(connack_code(client.recv().await), 0);
    wait_for(&broker, "connections_hibernated", 1).await;
    let started = std::time::Instant::now();
    assert_eq!(client.close_code().await, 1000);
    // Keep-alive 1 s with the default grace of 1.5.
    assert!(started.elapsed() >= Duration::from_millis(1000));
    wait_for(&broker, "connections_hibernated", 0).await;
}

#[tokio::test]
async fn client_close_and_broker_shutdown_reach_sleepers() {
    let broker = broker();
    let addr = start_ws(&broker, hibernating(), None);
    let mut leaving = ws_client(addr, "/mqtt", &[]).await;
    assert_eq!(
        leaving.login("leaving", Some("guest"), Some("guest")).await,
        0
    );
    let mut staying = ws_client(addr, "/mqtt", &[]).await;
    assert_eq!(
        staying.login("staying", Some("guest"), Some("guest")).await,
        0
    );
    wait_for(&broker, "connections_hibernated", 2).await;

    leaving.ws.close(None).await.unwrap();
    // The server echoes a close without a code with 1000.
    assert_eq!(leaving.close_code().await, 1000);
    wait_for(&broker, "connections_hibernated", 1).await;

    broker.shutdown_token().cancel();
    assert_eq!(staying.close_code().await, 1001);
    wait_for(&broker, "connections_hibernated", 0).await;
}
