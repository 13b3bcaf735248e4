//! WebSocket over HTTP/2 on WSS listeners (RFC 8441): when TLS negotiates `h2`, every
//! WebSocket is an extended CONNECT stream (`:protocol websocket`) of one HTTP/2 connection,
//! and each becomes an MQTT connection of its own, with its own connection slot.
//!
//! The HTTP/2 connection's task drives all its streams, so it lives while any stream does;
//! one that carries no WebSocket for `handshake_timeout` is closed (gracefully), so idle
//! HTTP/2 connections cannot hold slots.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use ferrymq_broker::{Broker, ConnectionPermit, Transport};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

use super::handshake::{self, Reply};
use super::{Credentials, WsConfig, mqtt_connection, plain_response};
use crate::driver::run_connection;

/// Counts the WebSocket streams of one HTTP/2 connection that are still open.
struct StreamGuard(Arc<AtomicUsize>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one HTTP/2 connection (TLS already done) until it closes.
pub(super) async fn serve_h2<S>(
    io: S,
    peer: SocketAddr,
    cert_user: Option<String>,
    permit: ConnectionPermit,
    broker: Arc<Broker>,
    config: Arc<WsConfig>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let open = Arc::new(AtomicUsize::new(0));
    let service = {
        let (open, broker, config) = (open.clone(), broker.clone(), config.clone());
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let response = respond(request, peer, &cert_user, &broker, &config, &open);
            std::future::ready(Ok::<_, Infallible>(response))
        })
    };
    let header_limit =
        u32::try_from(config.max_header_bytes.saturating_add(1024)).unwrap_or(u32::MAX);
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .enable_connect_protocol()
        .timer(TokioTimer::new())
        .max_header_list_size(header_limit);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    let mut connection = std::pin::pin!(connection);
    let shutdown = broker.shutdown_token().clone();
    let mut closing = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "HTTP/2 connection ended with an error");
                }
                break;
            }
            () = tokio::time::sleep(config.handshake_timeout), if !closing => {
                if open.load(Ordering::Relaxed) == 0 {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
            () = shutdown.cancelled(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
    drop(permit);
}

fn respond(
    mut request: Request<Incoming>,
    peer: SocketAddr,
    cert_user: &Option<String>,
    broker: &Arc<Broker>,
    config: &Arc<WsConfig>,
    open: &Arc<AtomicUsize>,
) -> Response<Full<Bytes>> {
    let (protocol, deflate) = match handshake::check_h2(&request, config) {
        Ok(accepted) => accepted,
        Err(reply) => {
            if reply.status != StatusCode::OK {
                tracing::debug!(%peer, status = %reply.status, path = request.uri().path(), "HTTP/2 WebSocket request refused");
            }
            return plain_response(reply);
        }
    };
    let Some(permit) = broker.try_open_connection() else {
        tracing::warn!(%peer, "refusing WebSocket stream: max_connections reached");
        return plain_response(Reply {
            status: StatusCode::SERVICE_UNAVAILABLE,
            reason: "too many connections",
            header: None,
        });
    };
    let client = config.proxy.trusted.client_address(peer, request.headers());
    open.fetch_add(1, Ordering::Relaxed);
    let guard = StreamGuard(open.clone());
    let credentials = Credentials {
        cert_user: cert_user.clone(),
        token: handshake::cookie_token(request.headers(), config),
        deflate: deflate.is_some(),
    };
    tokio::spawn(stream_task(
        hyper::upgrade::on(&mut request),
        client,
        credentials,
        permit,
        broker.clone(),
        config.clone(),
        guard,
    ));
    let mut response = Response::new(Full::new(Bytes::new()));
    if let Some(protocol) = protocol.and_then(|p| HeaderValue::from_str(&p).ok()) {
        response
            .headers_mut()
            .insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    if let Some(answer) = deflate {
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::from_static(answer),
        );
    }
    response
}

async fn stream_task(
    on_upgrade: OnUpgrade,
    peer: SocketAddr,
    credentials: Credentials,
    permit: ConnectionPermit,
    broker: Arc<Broker>,
    config: Arc<WsConfig>,
    _guard: StreamGuard,
) {
    match on_upgrade.await {
        Ok(upgraded) => {
            // Awaited here rather than spawned: `_guard` must live as long as the stream.
            let (ws, conn) = mqtt_connection(
                TokioIo::new(upgraded),
                peer,
                credentials,
                permit,
                broker,
                &config,
                // Extended CONNECT is only offered on WSS listeners.
                Transport::Wss,
            );
            run_connection(ws, conn).await;
        }
        Err(error) => tracing::debug!(%peer, %error, "HTTP/2 WebSocket stream failed"),
    }
}
