//! PROXY protocol v1/v2 in front of MQTT/TCP and WebSocket listeners: believed from trusted
//! proxies (the header's source address is what auth sees), refused from anyone else.

mod common;

use std::sync::Arc;

use common::*;
use ferrymq_transport::proxy::TrustedProxies;
use ferrymq_transport::{MqttListenerOptions, ProxyOptions, WsConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn proxy(nets: &[&str]) -> ProxyOptions {
    ProxyOptions {
        proxy_protocol: true,
        trusted: Arc::new(TrustedProxies::new(
            nets.iter().map(|n| n.parse().unwrap()).collect(),
        )),
    }
}

fn v1(source: &str) -> Vec<u8> {
    format!("PROXY TCP4 {source} 127.0.0.1 40000 1883\r\n").into_bytes()
}

fn v2(source: [u8; 4]) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x21, 0x11, 0, 12]);
    header.extend_from_slice(&source);
    header.extend_from_slice(&[127, 0, 0, 1, 0x9C, 0x40, 0x07, 0x5B]);
    header
}

/// guest/guest works from loopback only: the CONNACK tells which address the broker saw.
async fn login_behind(addr: std::net::SocketAddr, header: &[u8]) -> Option<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(header).await.unwrap();
    mqtt_login(&mut stream, Some("guest"), Some("guest")).await
}

#[tokio::test]
async fn mqtt_behind_a_trusted_proxy() {
    let broker = broker();
    let addr = start_mqtt(
        &broker,
        MqttListenerOptions {
            proxy: proxy(&["127.0.0.0/8"]),
            tls: None,
            vhost: None,
            hibernate_after: None,
        },
    );
    assert_eq!(
        login_behind(addr, &v1("203.0.113.5")).await,
        Some(0x86),
        "v1, remote client"
    );
    assert_eq!(
        login_behind(addr, &v1("127.0.0.7")).await,
        Some(0),
        "v1, loopback client"
    );
    assert_eq!(
        login_behind(addr, &v2([203, 0, 113, 5])).await,
        Some(0x86),
        "v2, remote client"
    );
    assert_eq!(
        login_behind(addr, &v2([127, 0, 0, 7])).await,
        Some(0),
        "v2, loopback client"
    );
    assert_eq!(
        login_behind(addr, b"PROXY UNKNOWN\r\n").await,
        Some(0),
        "UNKNOWN keeps the proxy's address"
    );
    assert_eq!(login_behind(addr, b"").await, None, "no header: closed");
}

#[tokio::test]
async fn proxy_headers_from_untrusted_peers_are_refused() {
    let broker = broker();
    let addr = start_mqtt(
        &broker,
        MqttListenerOptions {
            proxy: proxy(&["10.0.0.0/8"]),
            tls: None,
            vhost: None,
            hibernate_after: None,
        },
    );
    assert_eq!(login_behind(addr, &v1("127.0.0.7")).await, None);
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(TIMEOUT, stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without reading anything");
}

#[tokio::test]
async fn websocket_behind_a_proxy_protocol_proxy() {
    let broker = broker();
    let config = WsConfig {
        proxy: proxy(&["127.0.0.0/8"]),
        ..WsConfig::default()
    };
    let addr = start_ws(&broker, config, None);
    for (header, expected) in [(v1("203.0.113.5"), 0x86), (v2([127, 0, 0, 9]), 0)] {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(&header).await.unwrap();
        let mut client = ws_client_over(tcp, &format!("ws://{addr}/mqtt"), &[]).await;
        assert_eq!(
            client.login("pp", Some("guest"), Some("guest")).await,
            expected
        );
    }
    // The health check works through the proxy too.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&v1("198.51.100.1")).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}
