//! The real client address behind proxies and load balancers: trusted-proxy CIDR lists, the
//! PROXY protocol (v1 text and v2 binary, via `ppp`) read before anything else on a socket,
//! and the HTTP forwarding headers (`Forwarded`, `X-Forwarded-For`, `X-Real-IP`).
//!
//! Every claim about another address is believed only when the party making it — the TCP
//! peer — is in the configured trusted list: anybody can write a header, so believing an
//! untrusted one would let a client pick the address that auth rules and limits see.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::str::FromStr;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use crate::driver::ConnectionIo;

/// One CIDR block such as `10.0.0.0/8`, `2001:db8::/32` or a single address (`127.0.0.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` lies in this block. An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, what
    /// a dual-stack socket reports for IPv4 clients) matches the IPv4 block it maps to.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_match(
                u128::from(net.to_bits()),
                u128::from(ip.to_bits()),
                32,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_match(net.to_bits(), ip.to_bits(), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_match(net: u128, ip: u128, bits: u32, prefix: u8) -> bool {
    let prefix = u32::from(prefix);
    if prefix == 0 {
        return true;
    }
    let shift = bits - prefix;
    (net >> shift) == (ip >> shift)
}

/// IPv4-mapped IPv6 addresses become plain IPv4, so that one rule covers both spellings.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(text: &str) -> Result<IpNet, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR block (such as \"10.0.0.0/8\" or \"::1/128\")"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(prefix) => match prefix.parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(format!("{text:?}: the prefix length must be 0 to {max}")),
            },
        };
        let net = IpNet { addr, prefix };
        // "10.1.2.3/8" is almost certainly a typo for a host or a different block: refuse it
        // rather than silently trusting all of 10.0.0.0/8.
        let host_bits_set = match addr {
            IpAddr::V4(v4) => prefix < 32 && (v4.to_bits() << prefix) != 0,
            IpAddr::V6(v6) => prefix < 128 && (v6.to_bits() << prefix) != 0,
        };
        if host_bits_set {
            return Err(format!(
                "{text:?} has bits set after the /{prefix} prefix; write the network address"
            ));
        }
        Ok(net)
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The proxies whose word about the client's address is believed. Empty: nobody.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies { nets }
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(ip))
    }

    /// The client address an HTTP request stands for. `peer` is the TCP peer (after any
    /// PROXY header); its headers count only when it is trusted. `Forwarded` (RFC 7239) is
    /// preferred, then `X-Forwarded-For`, then `X-Real-IP`. In a list of hops the client is
    /// the right-most address that is not itself a trusted proxy: everything left of it was
    /// written by parties nobody vouches for. Unparseable values leave `peer` unchanged.
    pub fn client_address(&self, peer: SocketAddr, headers: &hyper::HeaderMap) -> SocketAddr {
        if !self.contains(peer.ip()) {
            return peer;
        }
        let joined = |name: &str| {
            let values: Vec<&str> = headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            (!values.is_empty()).then(|| values.join(","))
        };
        let hops: Option<Vec<Option<SocketAddr>>> = if let Some(forwarded) = joined("forwarded") {
            Some(forwarded_for(&forwarded))
        } else if let Some(xff) = joined("x-forwarded-for") {
            Some(xff.split(',').map(parse_hop).collect())
        } else {
            headers
                .get("x-real-ip")
                .and_then(|v| v.to_str().ok())
                .map(|ip| vec![parse_hop(ip)])
        };
        let Some(hops) = hops else { return peer };
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop {
                Some(addr) => {
                    client = *addr;
                    if !self.contains(addr.ip()) {
                        break;
                    }
                }
                // "unknown" or an obfuscated identifier: the chain cannot be followed past
                // it, so the last trusted hop is the best answer there is.
                None => break,
            }
        }
        client
    }
}

/// The `for=` values of a `Forwarded` header, in order (RFC 7239 §4; several elements are
/// separated by commas, parameters by semicolons, values may be quoted).
fn forwarded_for(header: &str) -> Vec<Option<SocketAddr>> {
    header
        .split(',')
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| parse_hop(value))
            })
        })
        .collect()
}

/// One hop: `203.0.113.5`, `"[2001:db8::1]:4711"`, `198.51.100.7:80`, `2001:db8::2`.
/// A hop without a port gets port 0, which logs read as "port unknown".
fn parse_hop(value: &str) -> Option<SocketAddr> {
    let value = value.trim().trim_matches('"').trim();
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Some(SocketAddr::new(canonical(addr.ip()), addr.port()));
    }
    let bare = value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(value);
    bare.parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(canonical(ip), 0))
}

/// The longest PROXY header: v1 is at most 107 bytes; v2 is 16 bytes plus a length field
/// that may announce up to 65,535 bytes of addresses and TLVs. Nothing we use needs TLVs
/// that large, so a header above this bound is refused rather than buffered.
const MAX_PROXY_HEADER: usize = 16 + 536;

/// Reads a PROXY protocol header (v1 or v2) from the start of `stream` within `timeout`.
/// Returns the client address it carries (`None` for `LOCAL` / `UNKNOWN`, meaning "use the
/// TCP peer") and the bytes read past the header, which belong to the next protocol.
pub async fn read_proxy_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> io::Result<(Option<SocketAddr>, Bytes)> {
    let read = async {
        let mut buf = BytesMut::with_capacity(64);
        loop {
            if buf.len() >= MAX_PROXY_HEADER {
                return Err(invalid("PROXY header too long"));
            }
            let n = stream.read_buf(&mut buf).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside the PROXY header",
                ));
            }
            if let Some(parsed) = parse_proxy_header(&buf)? {
                let (addr, len) = parsed;
                buf.advance(len);
                return Ok((addr, buf.freeze()));
            }
            if buf.capacity() == buf.len() {
                buf.reserve(64);
            }
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no PROXY header in time"))?
}

/// `Ok(None)`: incomplete, read more. `Ok(Some((address, header length)))`: done.
fn parse_proxy_header(buf: &[u8]) -> io::Result<Option<(Option<SocketAddr>, usize)>> {
    use ppp::{HeaderResult, PartialResult};
    // ppp reports "incomplete" for a v2 prefix shorter than its 16-byte fixed part even when
    // the bytes already rule v2 out, so decide v1/v2 from the first bytes ourselves.
    const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
    let is_v2 = V2_SIGNATURE.starts_with(&buf[..buf.len().min(V2_SIGNATURE.len())]);
    if is_v2 {
        let header = ppp::v2::Header::try_from(buf);
        if header.is_incomplete() {
            return Ok(None);
        }
        let header = header.map_err(|e| invalid(&format!("bad PROXY v2 header: {e}")))?;
        let addr = match (header.command, header.addresses) {
            (ppp::v2::Command::Local, _) => None,
            (_, ppp::v2::Addresses::IPv4(a)) => {
                Some(SocketAddr::from((a.source_address, a.source_port)))
            }
            (_, ppp::v2::Addresses::IPv6(a)) => Some(SocketAddr::new(
                canonical(IpAddr::V6(a.source_address)),
                a.source_port,
            )),
            _ => None,
        };
        return Ok(Some((addr, header.len())));
    }
    if !b"PROXY ".starts_with(&buf[..buf.len().min(6)]) {
        return Err(invalid("expected a PROXY protocol header"));
    }
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() >= 107 {
            return Err(invalid("PROXY v1 header too long"));
        }
        return Ok(None);
    };
    let line = &buf[..end + 2];
    let header = match HeaderResult::parse(line) {
        HeaderResult::V1(Ok(header)) => header,
        HeaderResult::V1(Err(e)) => return Err(invalid(&format!("bad PROXY v1 header: {e}"))),
        HeaderResult::V2(_) => return Err(invalid("bad PROXY header")),
    };
    let addr = match header.addresses {
        ppp::v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        ppp::v1::Addresses::Tcp6(a) => Some(SocketAddr::new(
            canonical(IpAddr::V6(a.source_address)),
            a.source_port,
        )),
        ppp::v1::Addresses::Unknown => None,
    };
    Ok(Some((addr, line.len())))
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

/// A stream with some bytes already read from it put back in front (what followed a PROXY
/// header in the same read). Holds nothing once the prefix is consumed.
#[derive(Debug)]
pub struct Rewind<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Rewind<S> {
    pub fn new(prefix: Bytes, inner: S) -> Rewind<S> {
        Rewind { prefix, inner }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The bytes not yet read back, and the stream.
    pub fn into_parts(self) -> (Bytes, S) {
        (self.prefix, self.inner)
    }
}

impl<S: ConnectionIo> ConnectionIo for Rewind<S> {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.prefix.is_empty() {
            true => self.inner.poll_read_ready(cx),
            false => Poll::Ready(Ok(())),
        }
    }

    fn busy(&self) -> bool {
        !self.prefix.is_empty() || self.inner.busy()
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_close(cx)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            if self.prefix.is_empty() {
                // Release the read buffer the prefix pointed into.
                self.prefix = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
