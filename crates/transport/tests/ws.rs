//! MQTT over WebSocket against the real listener: HTTP answers, subprotocols, origins, the
//! byte stream over frames, close codes, pings, and the real client address behind proxies.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use ferrymq_broker::{BrokerConfig, Limits};
use ferrymq_codec::Packet;
use ferrymq_transport::proxy::TrustedProxies;
use ferrymq_transport::{ProxyOptions, WsConfig};
use futures_util::SinkExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

fn trusting(nets: &[&str]) -> Arc<TrustedProxies> {
    Arc::new(TrustedProxies::new(
        nets.iter().map(|n| n.parse().unwrap()).collect(),
    ))
}

#[tokio::test]
async fn plain_http_answers() {
    let broker = broker();
    let addr = start_ws(&broker, WsConfig::default(), None);
    let (status, body) = http(addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status, 200);
    assert!(body.ends_with("\r\n\r\nok\n"), "{body}");
    assert_eq!(
        http(addr, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n").await.0,
        404
    );
    let (status, body) = http(addr, "GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status, 426);
    assert!(body.contains("WebSocket client"), "{body}");
    assert_eq!(
        http(
            addr,
            "POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        )
        .await
        .0,
        405
    );
    assert_eq!(
        http(addr, "DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .0,
        405
    );
}

#[tokio::test]
async fn malformed_handshakes() {
    let broker = broker();
    let addr = start_ws(&broker, WsConfig::default(), None);
    let bad_key = upgrade_request("/mqtt", "").replace("dGhlIHNhbXBsZSBub25jZQ==", "not-a-key");
    assert_eq!(http(addr, &bad_key).await.0, 400);
    let bad_version = upgrade_request("/mqtt", "").replace("Version: 13", "Version: 8");
    let (status, body) = http(addr, &bad_version).await;
    assert_eq!(status, 400);
    assert!(
        body.to_ascii_lowercase()
            .contains("sec-websocket-version: 13"),
        "{body}"
    );
    let huge = format!("Cookie: {}\r\n", "x".repeat(9000));
    assert_eq!(http(addr, &upgrade_request("/mqtt", &huge)).await.0, 431);
    assert_eq!(http(addr, "GARBAGE\r\n\r\n").await.0, 400);
    // Still serving after all that.
    assert_eq!(http(addr, &upgrade_request("/ws", "")).await.0, 101);
}

#[tokio::test]
async fn header_limit_below_hypers_minimum_is_enforced() {
    let broker = broker();
    let config = WsConfig {
        max_header_bytes: 1024,
        ..WsConfig::default()
    };
    let addr = start_ws(&broker, config, None);
    let big = format!("Cookie: {}\r\n", "x".repeat(1500));
    assert_eq!(http(addr, &upgrade_request("/mqtt", &big)).await.0, 431);
}

#[tokio::test]
async fn subprotocol_negotiation() {
    let broker = broker();
    let addr = start_ws(&broker, WsConfig::default(), None);
    let answered = |text: &str| {
        text.lines().find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("sec-websocket-protocol: ")
                .map(str::to_owned)
        })
    };
    let (status, text) = http(
        addr,
        &upgrade_request("/mqtt", "Sec-WebSocket-Protocol: chat, mqtt-v5, mqtt\r\n"),
    )
    .await;
    assert_eq!((status, answered(&text).as_deref()), (101, Some("mqtt-v5")));
    let (status, text) = http(
        addr,
        &upgrade_request("/mqtt", "Sec-WebSocket-Protocol: mqttv3.1\r\n"),
    )
    .await;
    assert_eq!(
        (status, answered(&text).as_deref()),
        (101, Some("mqttv3.1"))
    );
    let (status, text) = http(addr, &upgrade_request("/mqtt", "")).await;
    assert_eq!(
        (status, answered(&text)),
        (101, None),
        "none offered: none answered"
    );
    let (status, _) = http(
        addr,
        &upgrade_request("/mqtt", "Sec-WebSocket-Protocol: chat\r\n"),
    )
    .await;
    assert_eq!(status, 400, "only unknown ones");

    let strict = start_ws(
        &broker,
        WsConfig {
            require_subprotocol: true,
            ..WsConfig::default()
        },
        None,
    );
    assert_eq!(http(strict, &upgrade_request("/mqtt", "")).await.0, 400);
    assert_eq!(
        http(
            strict,
            &upgrade_request("/mqtt", "Sec-WebSocket-Protocol: mqtt\r\n")
        )
        .await
        .0,
        101
    );
}

#[tokio::test]
async fn origin_allow_list() {
    let broker = broker();
    let config = WsConfig {
        allowed_origins: vec![
            "https://app.example.com".parse().unwrap(),
            "https://*.example.org".parse().unwrap(),
        ],
        allow_missing_origin: false,
        ..WsConfig::default()
    };
    let addr = start_ws(&broker, config, None);
    for (origin, status) in [
        ("https://app.example.com", 101),
        ("https://x.example.org", 101),
        ("https://evil.example", 403),
        ("http://app.example.com", 403),
    ] {
        let request = upgrade_request("/mqtt", &format!("Origin: {origin}\r\n"));
        assert_eq!(http(addr, &request).await.0, status, "{origin}");
    }
    assert_eq!(
        http(addr, &upgrade_request("/mqtt", "")).await.0,
        403,
        "missing Origin"
    );
}

#[tokio::test]
async fn mqtt_packets_split_across_frames_and_batched_in_one() {
    let broker = broker();
    let addr = start_ws(&broker, WsConfig::default(), None);
    let mut client = ws_client(addr, "/ws", &[]).await;
    assert_eq!(client.protocol.as_deref(), Some("mqtt"));
    // CONNECT in three frames, cut inside the fixed header and inside the payload.
    let connect = bytes(&[connect("split", Some("guest"), Some("guest"))]);
    client.send_frame(connect[..1].to_vec()).await;
    client.send_frame(connect[1..9].to_vec()).await;
    client.send_frame(connect[9..].to_vec()).await;
    assert_eq!(connack_code(client.recv().await), 0);
    // SUBSCRIBE and two PUBLISHes in one frame.
    client
        .send(&[
            subscribe("t/#"),
            publish("t/a", b"one"),
            publish("t/b", b"two"),
        ])
        .await;
    assert!(matches!(client.recv().await, Packet::SubAck(_)));
    for (topic, payload) in [("t/a", &b"one"[..]), ("t/b", b"two")] {
        match client.recv().await {
            Packet::Publish(p) => assert_eq!((p.topic.as_str(), &p.payload[..]), (topic, payload)),
            other => panic!("{other:?}"),
        }
    }
    // A fragmented message (continuation frames) carrying a large PUBLISH.
    let big = vec![7u8; 100_000];
    let data = bytes(&[publish("t/big", &big)]);
    let frames = data.chunks(30_000).count();
    for (i, chunk) in data.chunks(30_000).enumerate() {
        let frame = tokio_tungstenite::tungstenite::protocol::frame::Frame::message(
            chunk.to_vec(),
            if i == 0 {
                tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode::Data(
                    tokio_tungstenite::tungstenite::protocol::frame::coding::Data::Binary,
                )
            } else {
                tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode::Data(
                    tokio_tungstenite::tungstenite::protocol::frame::coding::Data::Continue,
                )
            },
            i + 1 == frames,
        );
        client.ws.send(Message::Frame(frame)).await.unwrap();
    }
    match client.recv().await {
        Packet::Publish(p) => assert_eq!(p.payload.len(), big.len()),
        other => panic!("{other:?}"),
    }
    // A client ping gets a pong.
    client
        .ws
        .send(Message::Ping(b"hi".to_vec().into()))
        .await
        .unwrap();
    loop {
        if let Message::Pong(payload) = client.next_message().await {
            assert_eq!(&payload[..], b"hi");
            break;
        }
    }
    // DISCONNECT: the server ends with close code 1000.
    client
        .send(&[Packet::Disconnect(ferrymq_codec::Disconnect::new(
            ferrymq_codec::ReasonCode::Success,
        ))])
        .await;
    assert_eq!(client.close_code().await, 1000);
}

#[tokio::test]
async fn text_frame_gets_close_1003() {
    let broker = broker();
    let addr = start_ws(&broker, WsConfig::default(), None);
    let mut client = ws_client(addr, "/mqtt", &[]).await;
    client
        .ws
        .send(Message::Text("{\"hello\":1}".into()))
        .await
        .unwrap();
    assert_eq!(client.close_code().await, 1003);
}

#[tokio::test]
async fn oversize_frame_gets_close_1009() {
    let limits = Limits {
        max_packet_size: 2000,
        max_connect_packet_size: 1000,
        ..Limits::default()
    };
    let broker = broker_with(
        BrokerConfig {
            limits,
            ..BrokerConfig::default()
        },
        Default::default(),
    );
    let addr = start_ws(&broker, WsConfig::default(), None);
    let mut client = ws_client(addr, "/mqtt", &[]).await;
    client.send_frame(vec![0; 2000 + 4096 + 1]).await;
    assert_eq!(client.close_code().await, 1009);
}

#[tokio::test]
async fn frames_sent_with_the_upgrade_request_are_not_lost() {
    // A client that does not wait for the 101: hyper reads the CONNECT frame along with the
    // request, and the connection must get it back once it takes over the socket.
    let broker = broker();
    let addr = start_ws(&broker, WsConfig::default(), None);
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let connect = bytes(&[connect("eager", Some("guest"), Some("guest"))]);
    let mask = [7u8, 1, 9, 3];
    let mut request = upgrade_request("/mqtt", "Sec-WebSocket-Protocol: mqtt\r\n").into_bytes();
    request.extend([0x82, 0x80 | connect.len() as u8]);
    request.extend(mask);
    request.extend(connect.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    tcp.write_all(&request).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.unwrap());
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    let mut connack = [0u8; 6];
    tokio::time::timeout(TIMEOUT, tcp.read_exact(&mut connack))
        .await
        .expect("CONNACK in time")
        .unwrap();
    assert_eq!(connack, [0x82, 4, 0x20, 2, 0, 0]);
}

#[tokio::test]
async fn unmasked_client_frame_gets_close_1002() {
    let broker = broker();
    let addr = start_ws(&broker, WsConfig::default(), None);
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(upgrade_request("/mqtt", "").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.unwrap());
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    tcp.write_all(&[0x82, 0x02, 0x10, 0x00]).await.unwrap(); // no MASK bit
    let mut close = [0u8; 4];
    tcp.read_exact(&mut close).await.unwrap();
    assert_eq!(close, [0x88, 2, 0x03, 0xEA]);
}

#[tokio::test]
async fn idle_connections_get_server_pings() {
    let broker = broker();
    let config = WsConfig {
        ping_interval: Some(Duration::from_millis(300)),
        ..WsConfig::default()
    };
    let addr = start_ws(&broker, config, None);
    let mut client = ws_client(addr, "/mqtt", &[]).await;
    assert_eq!(
        client.login("pinged", Some("guest"), Some("guest")).await,
        0
    );
    let started = std::time::Instant::now();
    for _ in 0..2 {
        // tokio-tungstenite answers each ping with a pong by itself.
        assert!(matches!(client.next_message().await, Message::Ping(_)));
    }
    assert!(started.elapsed() >= Duration::from_millis(500));
}

#[tokio::test]
async fn handshake_must_finish_in_time() {
    let broker = broker();
    let config = WsConfig {
        handshake_timeout: Duration::from_millis(300),
        ..WsConfig::default()
    };
    let addr = start_ws(&broker, config, None);
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /mqtt HTTP/1.1\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(TIMEOUT, tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    let answer = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(n == 0 || answer.starts_with("HTTP/1.1 408"), "{answer}");
}

/// guest/guest is loopback-only, so the address the broker believes decides the CONNACK.
#[tokio::test]
async fn forwarded_for_counts_only_from_trusted_proxies() {
    let broker = broker();
    let trusted = WsConfig {
        proxy: ProxyOptions {
            proxy_protocol: false,
            trusted: trusting(&["127.0.0.0/8"]),
        },
        ..WsConfig::default()
    };
    let untrusted = WsConfig {
        proxy: ProxyOptions {
            proxy_protocol: false,
            trusted: trusting(&["10.0.0.0/8"]),
        },
        ..WsConfig::default()
    };
    let via_trusted = start_ws(&broker, trusted, None);
    let via_untrusted = start_ws(&broker, untrusted, None);
    for (name, value) in [
        ("x-forwarded-for", "203.0.113.5"),
        ("forwarded", "for=203.0.113.5"),
        ("x-real-ip", "203.0.113.5"),
    ] {
        let mut client = ws_client(via_trusted, "/mqtt", &[(name, value)]).await;
        assert_eq!(
            client.login("xff", Some("guest"), Some("guest")).await,
            0x86,
            "{name} from a trusted proxy"
        );
        let mut client = ws_client(via_untrusted, "/mqtt", &[(name, value)]).await;
        assert_eq!(
            client.login("xff", Some("guest"), Some("guest")).await,
            0,
            "{name} from a stranger"
        );
    }
    // A trusted proxy forwarding a loopback client.
    let mut client = ws_client(via_trusted, "/mqtt", &[("x-forwarded-for", "127.0.0.9")]).await;
    assert_eq!(client.login("xff", Some("guest"), Some("guest")).await, 0);
}
