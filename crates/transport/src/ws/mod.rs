//! MQTT over WebSocket (RFC 6455, MQTT §6) and over WSS: the HTTP/1.1 upgrade with hyper,
//! then [`WsStream`] turns the frames into the byte stream the MQTT driver reads.
//!
//! Per connection: accept (connection slot taken), optional PROXY header, optional TLS, one
//! HTTP exchange — all within `handshake_timeout` — then the MQTT CONNECT deadline runs as
//! on TCP. Every failure closes that socket only.

mod deflate;
mod frame;
mod h2;
pub mod handshake;
mod stream;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ferrymq_broker::{Broker, Connection, ConnectionPermit, Transport};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

pub use handshake::{OriginPattern, SUBPROTOCOLS};
use stream::WsDormant;
pub use stream::WsStream;

use tokio_rustls::server::TlsStream;

use crate::driver::{ConnectionIo, run_connection};
use crate::hibernate::{Hibernation, Sleepable};
use crate::proxy::Rewind;
use crate::tcp::{ProxyOptions, accept_loop};
use crate::tls::TlsReloader;

/// Extra room above `max_packet_size` for a frame: a frame may carry a whole packet plus a
/// few small ones, and payload is streamed, so the bound is about refusing absurd frames
/// (1009), not about memory.
const FRAME_SLACK: u64 = 4096;

/// One WebSocket listener's behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct WsConfig {
    /// Paths that serve MQTT, each starting with `/`.
    pub paths: Vec<String>,
    /// Refuse (400) clients that offer no subprotocol.
    pub require_subprotocol: bool,
    /// Allowed `Origin`s; empty allows any.
    pub allowed_origins: Vec<OriginPattern>,
    /// Allow requests without an `Origin` header (non-browser clients send none).
    pub allow_missing_origin: bool,
    /// Largest total size of request headers (431 above).
    pub max_header_bytes: usize,
    /// PROXY header, TLS and HTTP upgrade must finish within this.
    pub handshake_timeout: Duration,
    /// Send a WebSocket ping after this long without sending; `None`: never.
    pub ping_interval: Option<Duration>,
    /// MQTT keep-alive grace factor for this listener's connections; `None` keeps the
    /// broker-wide `mqtt.keep_alive_grace`.
    pub keep_alive_grace: Option<f32>,
    /// PROXY protocol and trusted proxies (also used for forwarding headers).
    pub proxy: ProxyOptions,
    /// On WSS: offer HTTP/2 (ALPN `h2`) and accept WebSockets as extended CONNECT streams
    /// (RFC 8441). Plain listeners are HTTP/1.1 only.
    pub http2: bool,
    /// The listener's default vhost: clients whose user name has no `vhost:` prefix land
    /// there. `None`: the vhost `/`.
    pub vhost: Option<Arc<str>>,
    /// The cookie whose value is a JSON Web Token for clients whose CONNECT has no
    /// password (`[auth.jwt] cookie`). `None`: cookies are ignored.
    pub token_cookie: Option<String>,
    /// Accept permessage-deflate offers (RFC 7692), each message compressed on its own.
    pub permessage_deflate: bool,
    /// Let connections quiet this long hibernate ([`crate::hibernate`]); plain WebSocket
    /// only (ignored with TLS). `None`: never.
    pub hibernate_after: Option<Duration>,
}

impl Default for WsConfig {
    fn default() -> WsConfig {
        WsConfig {
            paths: vec!["/ws".to_owned(), "/mqtt".to_owned()],
            require_subprotocol: false,
            allowed_origins: Vec::new(),
            allow_missing_origin: true,
            max_header_bytes: 8192,
            handshake_timeout: Duration::from_secs(10),
            ping_interval: Some(Duration::from_secs(30)),
            keep_alive_grace: None,
            proxy: ProxyOptions::default(),
            http2: true,
            vhost: None,
            token_cookie: None,
            permessage_deflate: false,
            // As `mqtt.hibernate_after_secs`: browser tabs are mostly idle.
            hibernate_after: Some(Duration::from_secs(5)),
        }
    }
}

impl WsConfig {
    /// The `Origin` rule: an empty allow-list allows every origin.
    pub fn origin_allowed(&self, origin: Option<&HeaderValue>) -> bool {
        let Some(origin) = origin else {
            return self.allow_missing_origin;
        };
        if self.allowed_origins.is_empty() {
            return true;
        }
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        self.allowed_origins.iter().any(|p| p.matches(origin))
    }
}

/// Accepts WebSocket (or, with `tls`, WSS) connections until the broker shuts down.
pub async fn serve_ws(
    listener: TcpListener,
    broker: Arc<Broker>,
    config: WsConfig,
    tls: Option<Arc<TlsReloader>>,
) {
    // WSS connections do not sleep (see `crate::hibernate`).
    let after = config.hibernate_after.filter(|_| tls.is_none());
    let hibernation = Hibernation::for_listener(after, broker.shutdown_token());
    let config = Arc::new(config);
    let b = Arc::clone(&broker);
    accept_loop(listener, &b, move |stream, peer, permit| {
        tokio::spawn(ws_connection(
            stream,
            peer,
            permit,
            Arc::clone(&broker),
            Arc::clone(&config),
            tls.clone(),
            hibernation.clone(),
        ));
    })
    .await;
}

/// What the HTTP exchange produced for an upgrade.
struct Accepted {
    on_upgrade: OnUpgrade,
    peer: SocketAddr,
    token: Option<String>,
    deflate: bool,
}

/// What the handshake learnt about the client, for CONNECT's authentication, and whether
/// it negotiated permessage-deflate.
#[derive(Default)]
struct Credentials {
    /// The user a verified TLS client certificate maps to.
    cert_user: Option<String>,
    /// The token cookie ([`WsConfig::token_cookie`]).
    token: Option<String>,
    deflate: bool,
}

async fn ws_connection(
    stream: TcpStream,
    tcp_peer: SocketAddr,
    permit: ConnectionPermit,
    broker: Arc<Broker>,
    config: Arc<WsConfig>,
    tls: Option<Arc<TlsReloader>>,
    hibernation: Option<Hibernation<WsDormant>>,
) {
    let deadline = tokio::time::Instant::now() + config.handshake_timeout;
    let transport = match tls {
        Some(_) => Transport::Wss,
        None => Transport::Ws,
    };
    // Boxed: hyper's connection state and a TLS handshake are several KiB; inline they would
    // size the task of every connection for its whole life, idle or not.
    let handshake = Box::pin(handshake_phase(stream, tcp_peer, &config, tls.as_deref()));
    let outcome = match tokio::time::timeout_at(deadline, handshake).await {
        Ok(Ok(Some(outcome))) => outcome,
        Ok(Ok(None)) => return,
        Ok(Err(error)) => {
            tracing::debug!(peer = %tcp_peer, %error, "WebSocket handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(peer = %tcp_peer, "WebSocket handshake timed out");
            return;
        }
    };
    match outcome {
        // The MQTT connection gets a task of its own and this one ends: what the handshake
        // needed (its arguments, `config`, `tls`) is then not kept for the connection's life.
        Handshook::Upgraded {
            upgraded,
            peer,
            credentials,
        } => match upgraded.downcast::<TokioIo<Rewind<TcpStream>>>() {
            // Plain ws://: our own TCP stream, unboxed, so the connection can wait for
            // socket readiness without a read buffer. Bytes hyper read past the request (a
            // client that did not wait for the 101) are put back in front; without any, as
            // usual, the bare socket saves the 32 bytes of an empty prefix.
            Ok(parts) => {
                let (pending, tcp) = parts.io.into_inner().into_parts();
                let unread = match (pending.is_empty(), parts.read_buf.is_empty()) {
                    (true, _) => parts.read_buf,
                    (false, true) => pending,
                    (false, false) => [parts.read_buf, pending].concat().into(),
                };
                let (broker, config) = (broker, &*config);
                if unread.is_empty() {
                    let (ws, conn) =
                        mqtt_connection(tcp, peer, credentials, permit, broker, config, transport);
                    spawn_connection(ws, conn, hibernation);
                } else {
                    let stream = Rewind::new(unread, tcp);
                    let (ws, conn) = mqtt_connection(
                        stream,
                        peer,
                        credentials,
                        permit,
                        broker,
                        config,
                        transport,
                    );
                    spawn_connection(ws, conn, hibernation);
                }
            }
            // wss:// over HTTP/1.1. Not downcast: the TLS session already lives on the heap
            // in hyper's box, and its buffered plaintext makes socket readiness useless,
            // so unboxing would gain nothing.
            Err(upgraded) => {
                let io = TokioIo::new(upgraded);
                let (ws, conn) =
                    mqtt_connection(io, peer, credentials, permit, broker, &config, transport);
                tokio::spawn(run_connection(ws, conn));
            }
        },
        Handshook::Http2 {
            stream,
            peer,
            cert_user,
        } => {
            Box::pin(h2::serve_h2(
                stream, peer, cert_user, permit, broker, config,
            ))
            .await
        }
    }
}

/// MQTT over an upgraded WebSocket byte stream: the stream and its connection, for a
/// task of their own.
fn mqtt_connection<S: ConnectionIo>(
    io: S,
    peer: SocketAddr,
    credentials: Credentials,
    permit: ConnectionPermit,
    broker: Arc<Broker>,
    config: &WsConfig,
    transport: Transport,
) -> (WsStream<S>, Connection) {
    let max_packet = u64::from(broker.config().limits.max_packet_size);
    let ws = WsStream::new(
        io,
        max_packet + FRAME_SLACK,
        config.ping_interval,
        broker.shutdown_token().clone(),
        credentials.deflate,
    );
    let mut conn = Connection::new(broker, peer, permit).with_transport(transport);
    if let Some(grace) = config.keep_alive_grace {
        conn = conn.with_keep_alive_grace(grace);
    }
    if let Some(user) = credentials.cert_user {
        conn = conn.with_certificate_user(user);
    }
    if let Some(token) = credentials.token {
        conn = conn.with_cookie_token(token);
    }
    if let Some(vhost) = &config.vhost {
        conn = conn.with_listener_vhost(Arc::clone(vhost));
    }
    (ws, conn)
}

/// Gives a plain WebSocket connection its task, one that may hibernate if the listener
/// lets it.
fn spawn_connection<S>(
    ws: WsStream<S>,
    conn: Connection,
    hibernation: Option<Hibernation<WsDormant>>,
) where
    WsStream<S>: Sleepable<Dormant = WsDormant>,
{
    match hibernation {
        Some(hibernation) => hibernation.run(ws, conn),
        None => drop(tokio::spawn(run_connection(ws, conn))),
    }
}

/// What the handshake phase produced.
enum Handshook {
    /// An HTTP/1.1 upgrade: one WebSocket.
    Upgraded {
        upgraded: hyper::upgrade::Upgraded,
        peer: SocketAddr,
        credentials: Credentials,
    },
    /// A TLS connection that chose HTTP/2: WebSockets come as extended CONNECT streams.
    /// (Boxed: a TLS session is large, and this enum lives in the connection's task.)
    Http2 {
        stream: Box<TlsStream<Rewind<TcpStream>>>,
        peer: SocketAddr,
        cert_user: Option<String>,
    },
}

/// PROXY header, TLS, HTTP: `Ok(None)` when the request was answered without an upgrade.
async fn handshake_phase(
    stream: TcpStream,
    tcp_peer: SocketAddr,
    config: &Arc<WsConfig>,
    tls: Option<&TlsReloader>,
) -> std::io::Result<Option<Handshook>> {
    let (stream, peer) = config
        .proxy
        .preamble(stream, tcp_peer, config.handshake_timeout)
        .await?;
    let Some(tls) = tls else {
        return Ok(http_upgrade(stream, peer, config).await.map(
            |(upgraded, peer, token, deflate)| Handshook::Upgraded {
                upgraded,
                peer,
                credentials: Credentials {
                    cert_user: None,
                    token,
                    deflate,
                },
            },
        ));
    };
    let stream = tls.wss_acceptor(config.http2).accept(stream).await?;
    let cert_user = tls.certificate_user(stream.get_ref().1);
    if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
        return Ok(Some(Handshook::Http2 {
            stream: Box::new(stream),
            peer,
            cert_user,
        }));
    }
    Ok(http_upgrade(stream, peer, config)
        .await
        .map(|(upgraded, peer, token, deflate)| Handshook::Upgraded {
            upgraded,
            peer,
            credentials: Credentials {
                cert_user,
                token,
                deflate,
            },
        }))
}

/// Runs one HTTP/1.1 exchange; returns the upgraded connection, the client address (from
/// forwarding headers when `peer` is a trusted proxy), the token cookie and whether
/// permessage-deflate was negotiated.
async fn http_upgrade<S>(
    io: S,
    peer: SocketAddr,
    config: &Arc<WsConfig>,
) -> Option<(hyper::upgrade::Upgraded, SocketAddr, Option<String>, bool)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let slot: Arc<Mutex<Option<Accepted>>> = Arc::new(Mutex::new(None));
    let service = {
        let slot = Arc::clone(&slot);
        let config = Arc::clone(config);
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let response = respond(request, peer, &config, &slot);
            std::future::ready(Ok::<_, Infallible>(response))
        })
    };
    // hyper refuses a read buffer under 8 KiB; smaller header limits are enforced by
    // `handshake::check` instead, and both answer 431. No timer of hyper's own: the caller
    // bounds the whole handshake, this exchange included, by `handshake_timeout` from the
    // accept (a header-read timeout of the same length could never fire first, and would
    // cost a boxed timer per connection).
    let max_buf = config.max_header_bytes.saturating_add(1024).max(8192);
    let connection = hyper::server::conn::http1::Builder::new()
        .header_read_timeout(None)
        .max_buf_size(max_buf)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    if let Err(error) = connection.await {
        tracing::debug!(%peer, %error, "HTTP connection ended with an error");
    }
    let accepted = slot.lock().unwrap_or_else(|e| e.into_inner()).take()?;
    match accepted.on_upgrade.await {
        Ok(upgraded) => Some((upgraded, accepted.peer, accepted.token, accepted.deflate)),
        Err(error) => {
            tracing::debug!(%peer, %error, "WebSocket upgrade failed");
            None
        }
    }
}

fn respond(
    mut request: Request<Incoming>,
    peer: SocketAddr,
    config: &WsConfig,
    slot: &Mutex<Option<Accepted>>,
) -> Response<Full<Bytes>> {
    match handshake::check(&request, config) {
        Ok(upgrade) => {
            let client = config.proxy.trusted.client_address(peer, request.headers());
            if client != peer {
                tracing::debug!(proxy = %peer, %client, "client address from forwarding headers");
            }
            let on_upgrade = hyper::upgrade::on(&mut request);
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(Accepted {
                on_upgrade,
                peer: client,
                token: handshake::cookie_token(request.headers(), config),
                deflate: upgrade.deflate.is_some(),
            });
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let headers = response.headers_mut();
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            if let Ok(accept) = HeaderValue::from_str(&upgrade.accept) {
                headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
            }
            if let Some(protocol) = upgrade
                .protocol
                .and_then(|p| HeaderValue::from_str(&p).ok())
            {
                headers.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
            }
            if let Some(answer) = upgrade.deflate {
                headers.insert(
                    header::SEC_WEBSOCKET_EXTENSIONS,
                    HeaderValue::from_static(answer),
                );
            }
            response
        }
        Err(reply) => {
            if reply.status != StatusCode::OK {
                tracing::debug!(%peer, status = %reply.status, path = request.uri().path(), "WebSocket request refused");
            }
            let mut response = plain_response(reply);
            // One request per connection unless it upgrades: a refused client cannot keep
            // the connection slot for more requests. (HTTP/1.1 only: HTTP/2 forbids it.)
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

/// A short text answer.
fn plain_response(reply: handshake::Reply) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{}\n", reply.reason))));
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some((name, value)) = reply.header {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
