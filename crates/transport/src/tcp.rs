//! MQTT over TCP and over TLS, with an optional PROXY protocol header in front of either.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ferrymq_broker::{Broker, Connection, ConnectionPermit, Transport};
use tokio::net::{TcpListener, TcpStream};

use crate::driver::run_connection;
use crate::hibernate::{Hibernation, Plain};
use crate::proxy::{Rewind, TrustedProxies, read_proxy_header};
use crate::tls::TlsReloader;

/// Binds a TCP listener with SO_REUSEADDR (a restarted broker can rebind at once) and a
/// backlog large enough for connection bursts.
pub fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    TcpListener::from_std(socket.into())
}

/// What every listener kind may put in front of its protocol.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProxyOptions {
    /// Expect a PROXY protocol v1/v2 header first; connections from untrusted sources are
    /// closed.
    pub proxy_protocol: bool,
    /// Sources whose PROXY headers and forwarding headers are believed.
    pub trusted: Arc<TrustedProxies>,
}

impl ProxyOptions {
    /// Reads the PROXY header when enabled. Returns the stream (with any bytes read past
    /// the header put back) and the client's address; `Err` closes the connection.
    pub(crate) async fn preamble(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        timeout: Duration,
    ) -> io::Result<(Rewind<TcpStream>, SocketAddr)> {
        if !self.proxy_protocol {
            return Ok((Rewind::new(bytes::Bytes::new(), stream), peer));
        }
        if !self.trusted.contains(peer.ip()) {
            tracing::warn!(%peer, "refusing connection: PROXY protocol expected, but the peer is not a trusted proxy");
            return Err(io::ErrorKind::PermissionDenied.into());
        }
        let mut stream = stream;
        let (source, rest) = read_proxy_header(&mut stream, timeout).await?;
        let client = source.unwrap_or(peer);
        tracing::debug!(proxy = %peer, %client, "PROXY header accepted");
        Ok((Rewind::new(rest, stream), client))
    }
}

/// One MQTT listener (plain TCP or TLS).
#[derive(Debug, Clone, Default)]
pub struct MqttListenerOptions {
    pub proxy: ProxyOptions,
    /// TLS when set (MQTT over TLS, 8883).
    pub tls: Option<Arc<TlsReloader>>,
    /// The listener's default vhost (RabbitMQ's port-to-vhost mapping): clients whose user
    /// name has no `vhost:` prefix land there. `None`: the vhost `/`.
    pub vhost: Option<Arc<str>>,
    /// Connections quiet this long sleep without a task of their own
    /// ([`crate::hibernate`]); plain TCP only (ignored with TLS). `None`: never.
    pub hibernate_after: Option<Duration>,
}

impl MqttListenerOptions {
    /// A connection of this listener, with its default vhost.
    fn connection(
        &self,
        broker: Arc<Broker>,
        peer: SocketAddr,
        permit: ConnectionPermit,
    ) -> Connection {
        let transport = match self.tls {
            Some(_) => Transport::Tls,
            None => Transport::Tcp,
        };
        let conn = Connection::new(broker, peer, permit).with_transport(transport);
        match &self.vhost {
            Some(vhost) => conn.with_listener_vhost(Arc::clone(vhost)),
            None => conn,
        }
    }
}

/// Accepts sockets until shutdown and hands each, with its connection slot, to `serve`.
/// The slot (`max_connections`) is taken at accept, before any byte is read.
///
/// Every accepted socket gets `TCP_NODELAY` (MQTT packets are small and latency matters).
/// On Linux an accepted socket inherits it from the listening socket, so it is set once on
/// the listener instead of once per connection: at tens of thousands of connects per
/// second every system call per connection shows in the profile.
pub(crate) async fn accept_loop<F>(listener: TcpListener, broker: &Arc<Broker>, mut serve: F)
where
    F: FnMut(TcpStream, SocketAddr, ConnectionPermit),
{
    let inherited = nodelay_inherited(&listener);
    let shutdown = broker.shutdown_token().clone();
    // One wait for shutdown for the listener's life, not a new one per accepted socket.
    let mut cancelled = std::pin::pin!(shutdown.cancelled());
    loop {
        // tokio's `accept` takes sockets until the listener would block and only then waits
        // for readiness, so a burst of connections is accepted in a batch.
        let accepted = tokio::select! {
            biased;
            () = &mut cancelled => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(permit) = broker.try_open_connection() else {
            tracing::warn!(%peer, "refusing connection: max_connections reached");
            drop(stream);
            continue;
        };
        if !inherited {
            let _ = stream.set_nodelay(true);
        }
        serve(stream, peer, permit);
    }
}

/// Sets `TCP_NODELAY` on the listening socket; true when accepted sockets inherit it
/// (Linux copies the listener's TCP options into each accepted socket), so that they need
/// no `setsockopt` of their own.
fn nodelay_inherited(listener: &TcpListener) -> bool {
    cfg!(target_os = "linux")
        && socket2::SockRef::from(listener)
            .set_tcp_nodelay(true)
            .is_ok()
}

/// Accepts MQTT/TCP connections until the broker shuts down.
pub async fn serve_tcp(listener: TcpListener, broker: Arc<Broker>) {
    serve_mqtt(listener, broker, MqttListenerOptions::default()).await;
}

/// Accepts MQTT connections (TCP or TLS, optionally behind the PROXY protocol) until the
/// broker shuts down. The PROXY header and the TLS handshake must complete within the
/// CONNECT timeout.
pub async fn serve_mqtt(listener: TcpListener, broker: Arc<Broker>, options: MqttListenerOptions) {
    // TLS connections do not sleep (see `crate::hibernate`).
    let after = options.hibernate_after.filter(|_| options.tls.is_none());
    let hibernation = Hibernation::for_listener(after, broker.shutdown_token());
    let options = Arc::new(options);
    accept_loop(listener, &broker.clone(), |stream, peer, permit| {
        if !options.proxy.proxy_protocol && options.tls.is_none() {
            // The common case stays a direct spawn: no extra state per connection.
            let conn = options.connection(Arc::clone(&broker), peer, permit);
            match &hibernation {
                Some(hibernation) => hibernation.run(stream, conn),
                None => drop(tokio::spawn(run_connection(stream, conn))),
            }
            return;
        }
        tokio::spawn(mqtt_connection(
            stream,
            peer,
            permit,
            Arc::clone(&broker),
            Arc::clone(&options),
            hibernation.clone(),
        ));
    })
    .await;
}

async fn mqtt_connection(
    stream: TcpStream,
    tcp_peer: SocketAddr,
    permit: ConnectionPermit,
    broker: Arc<Broker>,
    options: Arc<MqttListenerOptions>,
    hibernation: Option<Hibernation<Plain>>,
) {
    let timeout = broker.config().mqtt.connect_timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    // Boxed, like the TLS handshake below: their state would otherwise size the task for
    // the connection's whole life.
    let (stream, peer) = match Box::pin(options.proxy.preamble(stream, tcp_peer, timeout)).await {
        Ok(pair) => pair,
        Err(error) => {
            tracing::debug!(peer = %tcp_peer, %error, "closing connection before MQTT");
            return;
        }
    };
    // The MQTT connection gets a task of its own and this one ends, so that what the
    // preamble needed (this function's arguments) is not kept for the connection's life.
    let Some(tls) = &options.tls else {
        let conn = options.connection(broker, peer, permit);
        match hibernation {
            Some(hibernation) => hibernation.run(stream, conn),
            None => drop(tokio::spawn(run_connection(stream, conn))),
        }
        return;
    };
    let handshake = Box::pin(tls.mqtt_acceptor().accept(stream));
    let stream = match tokio::time::timeout_at(deadline, handshake).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::info!(%peer, %error, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let mut conn = options.connection(broker, peer, permit);
    if let Some(user) = tls.certificate_user(stream.get_ref().1) {
        tracing::debug!(%peer, user, "client certificate maps to a user");
        conn = conn.with_certificate_user(user);
    }
    tokio::spawn(run_connection(stream, conn));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The accept loop relies on this to skip a `setsockopt` per connection.
    #[tokio::test]
    async fn accepted_sockets_inherit_nodelay_from_the_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let inherited = nodelay_inherited(&listener);
        assert_eq!(inherited, cfg!(target_os = "linux"));
        let _client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        if inherited {
            assert!(stream.nodelay().unwrap());
        }
    }
}
