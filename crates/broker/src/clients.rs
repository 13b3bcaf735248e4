//! The connected clients as the management API shows them, and closing one on request.
//!
//! There is no registry of its own: a connected client is a session with a connection
//! attached, so the vhosts' session maps already list them, and each session holds a small
//! [`Attachment`] record of the connection serving it (40 bytes, written once at CONNECT).
//! Listing walks the sessions; that costs nothing while nobody asks.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferrymq_auth::Identity;
use ferrymq_codec::{ProtocolVersion, ReasonCode};

use crate::Broker;
use crate::registry::SessionHandle;
use crate::vhost::Vhost;

/// The transport a client connection came over. The listener that accepted the connection
/// says which ([`crate::Connection::with_transport`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// MQTT over TCP.
    #[default]
    Tcp,
    /// MQTT over TLS.
    Tls,
    /// MQTT over WebSocket.
    Ws,
    /// MQTT over WebSocket over TLS.
    Wss,
}

impl Transport {
    /// `tcp`, `tls`, `ws` or `wss`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        }
    }
}

/// What a session records about the connection attached to it. Kept small on purpose: every
/// session pays for it. The peer address is split into IP and port (SocketAddr's IPv6
/// flow info and scope id would cost 16 bytes more and mean nothing here), and the time is
/// milliseconds since the Unix epoch (8 bytes rather than a 16-byte `SystemTime`). The user
/// name is read from the connection's identity, which is shared with the connection (8
/// bytes rather than 16 for a name of its own).
#[derive(Debug, Clone)]
pub(crate) struct Attachment {
    pub(crate) identity: Arc<Identity>,
    pub(crate) connected_at_ms: u64,
    pub(crate) peer_ip: IpAddr,
    pub(crate) peer_port: u16,
    pub(crate) keep_alive: u16,
    pub(crate) protocol: ProtocolVersion,
    pub(crate) transport: Transport,
}

impl Attachment {
    pub(crate) fn new(
        identity: Arc<Identity>,
        peer: SocketAddr,
        keep_alive: Duration,
        protocol: ProtocolVersion,
        transport: Transport,
    ) -> Attachment {
        let connected_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        Attachment {
            identity,
            connected_at_ms,
            peer_ip: peer.ip(),
            peer_port: peer.port(),
            keep_alive: u16::try_from(keep_alive.as_secs()).unwrap_or(u16::MAX),
            protocol,
            transport,
        }
    }
}

/// One connected client, as listed by [`Broker::connections`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The vhost the client is in.
    pub vhost: Arc<str>,
    /// Its client identifier (unique within the vhost).
    pub client_id: Arc<str>,
    /// The user it logged in as (`anonymous` for anonymous clients).
    pub username: Arc<str>,
    /// Its address: the real one, behind trusted proxies.
    pub peer: SocketAddr,
    /// How it connected.
    pub transport: Transport,
    /// The MQTT version it speaks.
    pub protocol: ProtocolVersion,
    /// When CONNECT succeeded, in milliseconds since the Unix epoch.
    pub connected_at_ms: u64,
    /// The keep-alive in force, in seconds (0: none).
    pub keep_alive: u16,
}

impl Broker {
    /// Every connected client, in no particular order.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        let mut all = Vec::new();
        for vhost in self.vhosts() {
            collect(&vhost, &mut all);
        }
        all
    }

    /// The clients connected to the vhost `name` (none when it does not exist).
    pub fn vhost_connections(&self, name: &str) -> Vec<ConnectionInfo> {
        let mut all = Vec::new();
        if let Some(vhost) = self.vhost(name) {
            collect(&vhost, &mut all);
        }
        all
    }

    /// Closes the connection of `client_id` in the vhost `vhost`: MQTT 5 clients are told
    /// `reason` with DISCONNECT, older ones see the socket close. The session stays as its
    /// expiry says, and the will is published as for any abnormal end. `false` when no such
    /// client is connected.
    pub fn close_connection(&self, vhost: &str, client_id: &str, reason: ReasonCode) -> bool {
        let Some(vhost) = self.vhost(vhost) else {
            return false;
        };
        let Some(session) = vhost.lock_sessions().get(client_id).cloned() else {
            return false;
        };
        session.kick(reason)
    }
}

fn collect(vhost: &Arc<Vhost>, into: &mut Vec<ConnectionInfo>) {
    // Handles first, then each session's lock: the registry lock is not held while
    // sessions are locked one by one.
    let online: Vec<Arc<SessionHandle>> = vhost
        .lock_sessions()
        .values()
        .filter(|session| session.is_online())
        .cloned()
        .collect();
    for session in online {
        let inner = session.lock();
        let Some(client) = inner.client() else {
            continue;
        };
        into.push(ConnectionInfo {
            vhost: Arc::clone(&vhost.name),
            client_id: Arc::clone(&session.client_id),
            username: Arc::clone(&client.identity.username),
            peer: SocketAddr::new(client.peer_ip, client.peer_port),
            transport: client.transport,
            protocol: client.protocol,
            connected_at_ms: client.connected_at_ms,
            keep_alive: client.keep_alive,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every session carries an `Option<Attachment>` (with the attached connection's id,
    /// in `registry::Link`): adding it once moved `SessionHandle`'s `Arc` allocation from
    /// mimalloc's 320-byte size class to the 384-byte one. Growing it costs every session;
    /// see docs/memory.md.
    #[test]
    fn the_attachment_record_stays_small() {
        assert!(std::mem::size_of::<Option<Attachment>>() <= 40);
    }
}
