//! A peer's socket address in 24 bytes instead of `SocketAddr`'s 32, for the record every
//! connection keeps for its life.

use std::fmt;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};

/// A `SocketAddr` without the IPv6 flow label, which nothing here reads (it is not even
/// displayed); the scope id is kept, so addresses print as before.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeerAddr {
    ip: IpAddr,
    port: u16,
    scope_id: u32,
}

impl PeerAddr {
    pub(crate) fn ip(&self) -> IpAddr {
        self.ip
    }
}

impl From<SocketAddr> for PeerAddr {
    fn from(addr: SocketAddr) -> PeerAddr {
        let scope_id = match addr {
            SocketAddr::V4(_) => 0,
            SocketAddr::V6(v6) => v6.scope_id(),
        };
        PeerAddr {
            ip: addr.ip(),
            port: addr.port(),
            scope_id,
        }
    }
}

impl From<PeerAddr> for SocketAddr {
    fn from(peer: PeerAddr) -> SocketAddr {
        match peer.ip {
            IpAddr::V4(ip) => SocketAddr::new(IpAddr::V4(ip), peer.port),
            IpAddr::V6(ip) => SocketAddr::V6(SocketAddrV6::new(ip, peer.port, 0, peer.scope_id)),
        }
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&SocketAddr::from(*self), f)
    }
}

impl fmt::Debug for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&SocketAddr::from(*self), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_and_converts_back_as_the_socket_address() {
        for text in [
            "192.0.2.7:1883",
            "[2001:db8::1]:15675",
            "[fe80::1%3]:8883",
            "[::ffff:192.0.2.7]:1883",
        ] {
            let addr: SocketAddr = text.parse().unwrap();
            let peer = PeerAddr::from(addr);
            assert_eq!(peer.to_string(), addr.to_string());
            assert_eq!(format!("{peer:?}"), format!("{addr:?}"));
            assert_eq!(SocketAddr::from(peer), addr);
            assert_eq!(peer.ip(), addr.ip());
        }
        assert_eq!(std::mem::size_of::<PeerAddr>(), 24);
    }
}
