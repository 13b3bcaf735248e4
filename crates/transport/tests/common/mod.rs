//! Shared helpers for the transport's integration tests: an in-process broker behind real
//! listeners on 127.0.0.1:0, raw HTTP, MQTT packets encoded with `ferrymq-codec`, and a
//! WebSocket client (tokio-tungstenite) that speaks MQTT over binary frames.
#![allow(dead_code, unreachable_pub)] // each test binary uses a different subset

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ferrymq_auth::{AuthConfig, Authenticator};
use ferrymq_broker::{Broker, BrokerConfig};
use ferrymq_codec::{
    Connect, ConnectProperties, Decoder, Packet, ProtocolVersion, Publish, QoS, Subscribe,
    SubscribeProperties, SubscriptionOptions, encode,
};
use ferrymq_transport::tls::TlsReloader;
use ferrymq_transport::{MqttListenerOptions, WsConfig, bind_tcp, serve_mqtt, serve_ws};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub const TIMEOUT: Duration = Duration::from_secs(5);

pub fn broker_with(config: BrokerConfig, auth: AuthConfig) -> Arc<Broker> {
    Broker::new(config, Authenticator::new(auth).unwrap())
}

/// The default broker: guest/guest from loopback only.
pub fn broker() -> Arc<Broker> {
    broker_with(BrokerConfig::default(), AuthConfig::default())
}

pub fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Serves WebSocket (WSS with `tls`) with `config`. With the environment variable
/// `FERRYMQ_TEST_HIBERNATE_MS` set (as for the testkit's brokers), plain connections that
/// may hibernate do so after that many milliseconds: every test then also runs against
/// connections that fall asleep at every pause.
pub fn start_ws(
    broker: &Arc<Broker>,
    mut config: WsConfig,
    tls: Option<Arc<TlsReloader>>,
) -> SocketAddr {
    if config.hibernate_after.is_some()
        && let Ok(ms) = std::env::var("FERRYMQ_TEST_HIBERNATE_MS")
    {
        let ms = ms.parse().expect("FERRYMQ_TEST_HIBERNATE_MS: milliseconds");
        config.hibernate_after = Some(Duration::from_millis(ms));
    }
    let listener = bind_tcp(local()).unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_ws(listener, broker.clone(), config, tls));
    addr
}

pub fn start_mqtt(broker: &Arc<Broker>, options: MqttListenerOptions) -> SocketAddr {
    let listener = bind_tcp(local()).unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_mqtt(listener, broker.clone(), options));
    addr
}

/// Sends raw bytes and reads the response: up to the end of the headers for a 101, to the
/// server's close otherwise. Returns (status, response text).
pub async fn http(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let read = async {
        let mut response = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            response.extend_from_slice(&buf[..n]);
            if response.starts_with(b"HTTP/1.1 101")
                && response.windows(4).any(|w| w == b"\r\n\r\n")
            {
                break;
            }
        }
        response
    };
    let response = tokio::time::timeout(TIMEOUT, read)
        .await
        .expect("server did not close");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// A WebSocket upgrade request for `path` with `extra` header lines (each ending in \r\n).
pub fn upgrade_request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

pub fn connect(client_id: &str, user: Option<&str>, password: Option<&str>) -> Packet {
    Packet::Connect(Box::new(Connect {
        protocol: ProtocolVersion::V3_1_1,
        clean_start: true,
        keep_alive: 60,
        client_id: client_id.to_owned(),
        will: None,
        username: user.map(str::to_owned),
        password: password.map(|p| Bytes::copy_from_slice(p.as_bytes())),
        properties: ConnectProperties::default(),
    }))
}

pub fn subscribe(filter: &str) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: 1,
        filters: vec![(
            filter.to_owned(),
            SubscriptionOptions {
                qos: QoS::AtMostOnce,
                no_local: false,
                retain_as_published: false,
                retain_handling: Default::default(),
            },
        )],
        properties: SubscribeProperties::default(),
    })
}

pub fn publish(topic: &str, payload: &[u8]) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: topic.to_owned(),
        packet_id: None,
        properties: None,
        payload: Bytes::copy_from_slice(payload),
    })
}

pub fn bytes(packets: &[Packet]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for packet in packets {
        encode(packet, ProtocolVersion::V3_1_1, &mut out).unwrap();
    }
    out.to_vec()
}

/// Decodes server-to-client packets from a growing buffer.
pub struct PacketReader {
    decoder: Decoder,
    buf: BytesMut,
}

impl PacketReader {
    pub fn new() -> PacketReader {
        let mut decoder = Decoder::new(16 * 1024 * 1024);
        decoder.set_protocol(ProtocolVersion::V3_1_1);
        PacketReader {
            decoder,
            buf: BytesMut::new(),
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    pub fn next(&mut self) -> Option<Packet> {
        self.decoder.decode(&mut self.buf).unwrap()
    }
}

/// MQTT over a tungstenite WebSocket client.
pub struct WsClient<S> {
    pub ws: WebSocketStream<S>,
    pub reader: PacketReader,
    /// Subprotocol the server answered.
    pub protocol: Option<String>,
}

pub async fn ws_client(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> WsClient<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    ws_client_over(tcp, &format!("ws://{addr}{path}"), headers).await
}

pub async fn ws_client_over<S>(io: S, url: &str, headers: &[(&str, &str)]) -> WsClient<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "mqtt".parse().unwrap());
    for (name, value) in headers {
        let name =
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        request.headers_mut().insert(name, value.parse().unwrap());
    }
    let (ws, response) = tokio_tungstenite::client_async(request, io).await.unwrap();
    let protocol = response
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_owned());
    WsClient {
        ws,
        reader: PacketReader::new(),
        protocol,
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsClient<S> {
    pub async fn send_frame(&mut self, data: Vec<u8>) {
        self.ws.send(Message::Binary(data.into())).await.unwrap();
    }

    pub async fn send(&mut self, packets: &[Packet]) {
        self.send_frame(bytes(packets)).await;
    }

    /// The next MQTT packet (pings and pongs are skipped).
    pub async fn recv(&mut self) -> Packet {
        loop {
            if let Some(packet) = self.reader.next() {
                return packet;
            }
            match self.next_message().await {
                Message::Binary(data) => self.reader.push(&data),
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("expected a binary frame, got {other:?}"),
            }
        }
    }

    pub async fn next_message(&mut self) -> Message {
        tokio::time::timeout(TIMEOUT, self.ws.next())
            .await
            .expect("no WebSocket message in time")
            .expect("WebSocket ended")
            .expect("WebSocket error")
    }

    /// Reads until the server's close frame; returns its code.
    pub async fn close_code(&mut self) -> u16 {
        loop {
            match self.next_message().await {
                Message::Close(Some(frame)) => return frame.code.into(),
                Message::Close(None) => return 1005,
                _ => {}
            }
        }
    }

    /// CONNECT and the CONNACK's return code.
    pub async fn login(
        &mut self,
        client_id: &str,
        user: Option<&str>,
        password: Option<&str>,
    ) -> u8 {
        self.send(&[connect(client_id, user, password)]).await;
        connack_code(self.recv().await)
    }
}

pub fn connack_code(packet: Packet) -> u8 {
    match packet {
        Packet::ConnAck(ack) => ack.reason_code as u8,
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

/// MQTT over a raw byte stream (TCP or TLS): CONNECT, then the CONNACK code; `None` when the
/// server closed instead.
pub async fn mqtt_login<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    user: Option<&str>,
    password: Option<&str>,
) -> Option<u8> {
    stream
        .write_all(&bytes(&[connect("raw", user, password)]))
        .await
        .ok()?;
    let mut reader = PacketReader::new();
    let mut buf = [0u8; 256];
    loop {
        if let Some(packet) = reader.next() {
            return Some(connack_code(packet));
        }
        let n = tokio::time::timeout(TIMEOUT, stream.read(&mut buf))
            .await
            .expect("no answer in time")
            .ok()?;
        if n == 0 {
            return None;
        }
        reader.push(&buf[..n]);
    }
}
