//! MQTT over plain TCP.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ferrymq_broker::{Broker, Connection};
use tokio::net::TcpListener;

use crate::driver::run_connection;

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

/// Accepts MQTT/TCP connections until the broker shuts down.
pub async fn serve_tcp(listener: TcpListener, broker: Arc<Broker>) {
    let shutdown = broker.shutdown_token().clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
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
        let _ = stream.set_nodelay(true);
        let conn = Connection::new(Arc::clone(&broker), peer, permit);
        tokio::spawn(run_connection(stream, conn));
    }
}
