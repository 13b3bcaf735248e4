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
        .send(&[Packet::Disconnect(Box::new(
            ferrymq_codec::Disconnect::new(ferrymq_codec::ReasonCode::Success),
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

/// A raw permessage-deflate client over TCP (tokio-tungstenite has no permessage-deflate):
/// frames built by hand, payloads compressed with flate2 as a browser does.
struct DeflateClient {
    tcp: TcpStream,
    reader: PacketReader,
}

const TAIL: [u8; 4] = [0, 0, 0xFF, 0xFF];

impl DeflateClient {
    /// Upgrades with `offer`; returns the client and the extension the server answered.
    async fn connect(addr: std::net::SocketAddr, offer: &str) -> (DeflateClient, Option<String>) {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let extra =
            format!("Sec-WebSocket-Protocol: mqtt\r\nSec-WebSocket-Extensions: {offer}\r\n");
        tcp.write_all(upgrade_request("/mqtt", &extra).as_bytes())
            .await
            .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(tcp.read_u8().await.unwrap());
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let answer = head.lines().find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("sec-websocket-extensions: ")
                .map(str::to_owned)
        });
        let reader = PacketReader::new();
        (DeflateClient { tcp, reader }, answer)
    }

    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x11u8, 0x22, 0x33, 0x44];
        let mut out = vec![first];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    fn compress(data: &[u8]) -> Vec<u8> {
        let mut compress = flate2::Compress::new(flate2::Compression::default(), false);
        let mut out = Vec::with_capacity(data.len() + 64);
        compress
            .compress_vec(data, &mut out, flate2::FlushCompress::Sync)
            .unwrap();
        assert!(out.ends_with(&TAIL));
        out.truncate(out.len() - TAIL.len());
        out
    }

    /// Sends `packets` as one compressed message in `fragments` frames.
    async fn send(&mut self, packets: &[Packet], fragments: usize) {
        let compressed = Self::compress(&bytes(packets));
        let size = compressed.len().div_ceil(fragments).max(1);
        let chunks: Vec<&[u8]> = compressed.chunks(size).collect();
        let mut out = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            let fin = if i + 1 == chunks.len() { 0x80 } else { 0 };
            let first = match i {
                0 => 0x40 | 0x02, // RSV1 on the first frame only
                _ => 0x00,
            };
            out.extend(Self::frame(fin | first, chunk));
        }
        self.tcp.write_all(&out).await.unwrap();
    }

    /// The next packet; `compressed` counts the compressed messages it took.
    async fn recv(&mut self, compressed: &mut usize) -> Packet {
        loop {
            if let Some(packet) = self.reader.next() {
                return packet;
            }
            let (first, payload) = tokio::time::timeout(TIMEOUT, self.read_frame())
                .await
                .expect("a frame in time");
            assert_eq!(first & 0x0F, 0x2, "binary");
            if first & 0x40 != 0 {
                *compressed += 1;
                let mut input = payload;
                input.extend_from_slice(&TAIL);
                let mut inflate = flate2::Decompress::new(false);
                let mut out = Vec::with_capacity(1 << 22);
                inflate
                    .decompress_vec(&input, &mut out, flate2::FlushDecompress::Sync)
                    .unwrap();
                self.reader.push(&out);
            } else {
                self.reader.push(&payload);
            }
        }
    }

    async fn read_frame(&mut self) -> (u8, Vec<u8>) {
        let first = self.tcp.read_u8().await.unwrap();
        let len = match self.tcp.read_u8().await.unwrap() {
            126 => u64::from(self.tcp.read_u16().await.unwrap()),
            127 => self.tcp.read_u64().await.unwrap(),
            n => u64::from(n),
        };
        let mut payload = vec![0; len as usize];
        self.tcp.read_exact(&mut payload).await.unwrap();
        (first, payload)
    }
}

#[tokio::test]
async fn permessage_deflate_both_ways() {
    let broker = broker();
    let config = WsConfig {
        permessage_deflate: true,
        ..WsConfig::default()
    };
    let addr = start_ws(&broker, config, None);
    // Chromium's offer.
    let offer = "permessage-deflate; client_max_window_bits";
    let (mut client, answer) = DeflateClient::connect(addr, offer).await;
    assert_eq!(
        answer.as_deref(),
        Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    );
    let mut compressed = 0;
    client
        .send(&[connect("deflate", Some("guest"), Some("guest"))], 1)
        .await;
    assert_eq!(connack_code(client.recv(&mut compressed).await), 0);
    client.send(&[subscribe("d/#")], 2).await;
    assert!(matches!(
        client.recv(&mut compressed).await,
        Packet::SubAck(_)
    ));
    // 256 KiB of JSON in one compressed message of five frames, echoed back compressed.
    let mut json = Vec::new();
    let mut i = 0;
    while json.len() < 256 * 1024 {
        json.extend_from_slice(format!("{{\"sensor\":{i},\"value\":{}}},", i % 13).as_bytes());
        i += 1;
    }
    client
        .send(&[publish("d/big", &json), publish("d/small", b"hi")], 5)
        .await;
    match client.recv(&mut compressed).await {
        Packet::Publish(p) => assert!(p.topic.as_str() == "d/big" && p.payload[..] == json[..]),
        other => panic!("{other:?}"),
    }
    match client.recv(&mut compressed).await {
        Packet::Publish(p) => assert_eq!(&p.payload[..], b"hi"),
        other => panic!("{other:?}"),
    }
    assert!(compressed >= 1, "the large message came back compressed");
}

#[tokio::test]
async fn permessage_deflate_off_by_default_and_rsv1_then_fails() {
    let broker = broker();
    let addr = start_ws(&broker, WsConfig::default(), None);
    let (mut client, answer) = DeflateClient::connect(addr, "permessage-deflate").await;
    assert_eq!(answer, None, "not negotiated unless enabled");
    client
        .send(&[connect("x", Some("guest"), Some("guest"))], 1)
        .await;
    let (first, payload) = client.read_frame().await;
    assert_eq!(
        (first, &payload[..]),
        (0x88, &[0x03, 0xEA][..]),
        "close 1002"
    );
}
