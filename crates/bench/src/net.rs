//! Opening a generator connection: TCP (optionally bound to a spread 127.x source address),
//! then TLS (rustls; `--insecure` accepts any certificate), then the WebSocket upgrade (a
//! hand-written HTTP exchange, subprotocol `mqtt`; frames by tokio-tungstenite). The result
//! is one boxed byte stream; WebSocket binary messages are adapted to bytes by [`WsIo`], so
//! the MQTT client code is the same for every transport.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    self, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Message, Role, WebSocketConfig};

use crate::args::{BenchArgs, Transport};

/// A connected byte stream of any transport.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Everything needed to open connections to the broker, prepared once per process.
#[derive(Clone)]
pub(crate) struct Dialer {
    addr: SocketAddr,
    host: String,
    transport: Transport,
    ws_path: String,
    tls: Option<TlsConnector>,
    source_ips: u32,
}

/// Why a connection could not be opened; the kind string groups errors in the summary.
#[derive(Debug)]
pub(crate) struct DialError {
    pub kind: String,
}

impl DialError {
    fn new(stage: &str, err: impl std::fmt::Display) -> DialError {
        DialError {
            kind: format!("{stage}: {err}"),
        }
    }

    fn io(stage: &str, err: &io::Error) -> DialError {
        DialError::new(stage, io_kind(err))
    }
}

/// A short, address-free name for an I/O error.
pub(crate) fn io_kind(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(24) => "too many open files (EMFILE)".to_owned(),
        Some(99) => "no free local port (EADDRNOTAVAIL)".to_owned(),
        // WebSocket and TLS errors travel as `Other` with the real error inside.
        _ if err.kind() == io::ErrorKind::Other && err.get_ref().is_some() => {
            let inner = err.get_ref().map(ToString::to_string).unwrap_or_default();
            inner.chars().take(80).collect()
        }
        _ => format!("{:?}", err.kind()),
    }
}

impl Dialer {
    /// Resolves the broker address and builds the TLS configuration.
    pub(crate) async fn new(args: &BenchArgs) -> Result<Dialer, String> {
        let port = args.port();
        let addr = tokio::net::lookup_host((args.host.as_str(), port))
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", args.host))?
            .next()
            .ok_or_else(|| format!("{} resolves to no address", args.host))?;
        let tls = if args.transport.is_tls() {
            Some(TlsConnector::from(Arc::new(tls_config(args)?)))
        } else {
            None
        };
        let source_ips = match args.source_ips {
            Some(n) => n,
            None if addr.ip().is_loopback() && addr.is_ipv4() => 64,
            None => 0,
        };
        Ok(Dialer {
            addr,
            host: args.host.clone(),
            transport: args.transport,
            ws_path: args.ws_path.clone(),
            tls,
            source_ips: if addr.ip().is_loopback() {
                source_ips
            } else {
                0
            },
        })
    }

    /// True for MQTT over plain TCP, whose connections need no closing handshake.
    pub(crate) fn is_plain_tcp(&self) -> bool {
        self.transport == Transport::Tcp
    }

    /// The source address of client `index`: spread over 127.0.0.2.. for loopback targets.
    fn source(&self, index: u64) -> Option<SocketAddr> {
        if self.source_ips == 0 || !self.addr.is_ipv4() {
            return None;
        }
        // At most 65,000 addresses: 127.0.0.2 up to 127.0.253.233, all loopback.
        let spread = u64::from(self.source_ips.min(65_000));
        let offset = u32::try_from(index % spread).unwrap_or(0);
        let ip = Ipv4Addr::from(0x7F00_0002u32 + offset);
        Some(SocketAddr::new(IpAddr::V4(ip), 0))
    }

    /// Opens the byte stream of client `index`. `busy`: the client expects traffic (a larger
    /// WebSocket read buffer; idle connections keep a small one).
    pub(crate) async fn dial(&self, index: u64, busy: bool) -> Result<Box<dyn Io>, DialError> {
        let socket = if self.addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(|e| DialError::io("socket", &e))?;
        if let Some(source) = self.source(index) {
            socket.bind(source).map_err(|e| DialError::io("bind", &e))?;
        }
        let tcp = socket
            .connect(self.addr)
            .await
            .map_err(|e| DialError::io("connect", &e))?;
        tcp.set_nodelay(true)
            .map_err(|e| DialError::io("connect", &e))?;
        match (self.transport, &self.tls) {
            (Transport::Tcp, _) => Ok(Box::new(tcp)),
            (Transport::Ws, _) => Ok(Box::new(self.upgrade(tcp, busy).await?)),
            (Transport::Tls, Some(tls)) => Ok(Box::new(self.handshake(tls, tcp).await?)),
            (Transport::Wss, Some(tls)) => {
                let stream = self.handshake(tls, tcp).await?;
                Ok(Box::new(self.upgrade(stream, busy).await?))
            }
            (_, None) => Err(DialError::new("tls", "no TLS configuration")),
        }
    }

    async fn handshake(
        &self,
        tls: &TlsConnector,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, DialError> {
        let name = ServerName::try_from(self.host.clone()).map_err(|e| DialError::new("tls", e))?;
        tls.connect(name, tcp)
            .await
            .map_err(|e| DialError::new("tls", tls_error_kind(&e)))
    }

    /// The WebSocket upgrade, written and checked by hand: tungstenite's client handshake
    /// builds an `http::Request` (URI parsing, a header map) and parses the answer into an
    /// `http::Response`, allocations and copies that every connection of a connect-rate run
    /// would pay. One `write` out, usually one `read` in.
    async fn upgrade<S>(&self, mut stream: S, busy: bool) -> Result<WsIo<S>, DialError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let key = generate_key();
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}:{}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\
             Sec-WebSocket-Protocol: mqtt\r\n\r\n",
            self.ws_path,
            self.host,
            self.addr.port()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| DialError::io("ws", &e))?;
        stream.flush().await.map_err(|e| DialError::io("ws", &e))?;
        let mut head = Vec::with_capacity(512);
        let end = loop {
            if let Some(end) = head_end(&head) {
                break end;
            }
            if head.len() >= MAX_RESPONSE_HEAD {
                return Err(DialError::new("ws", "response head too large"));
            }
            head.reserve(512);
            match stream.read_buf(&mut head).await {
                Ok(0) => return Err(DialError::new("ws", "closed during the handshake")),
                Ok(_) => {}
                Err(e) => return Err(DialError::io("ws", &e)),
            }
        };
        check_upgrade(&head[..end], &key).map_err(|e| DialError::new("ws", e))?;
        // Frames the broker sent right behind its answer belong to the WebSocket.
        let rest = head.split_off(end);
        // tungstenite's default read buffer is 128 KiB, zero-filled per connection: it made
        // the generator's WebSocket connects cost ~0.4 ms of CPU each (page faults) and 19k
        // connections 2.4 GiB. 16 KiB reads keep syscalls few enough for a busy client.
        let config = WebSocketConfig::default()
            .read_buffer_size(if busy { 16 * 1024 } else { 4 * 1024 })
            .write_buffer_size(0)
            .max_write_buffer_size(usize::MAX)
            // A generator measures; it does not police the broker's frame sizes.
            .max_frame_size(None)
            .max_message_size(None);
        let ws =
            WebSocketStream::from_partially_read(stream, rest, Role::Client, Some(config)).await;
        Ok(WsIo {
            ws,
            pending: Bytes::new(),
        })
    }
}

/// The longest HTTP response head the generator reads before giving up.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// The length of the response head (up to and including the empty line), once complete.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Checks an upgrade answer: status 101 and the `Sec-WebSocket-Accept` that proves the server
/// read our key [RFC 6455 §4.1]. Errors are summary kinds (`HTTP 404 Not Found`).
fn check_upgrade(head: &[u8], key: &str) -> Result<(), String> {
    let text = std::str::from_utf8(head).map_err(|_| "response head is not UTF-8".to_owned())?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .ok_or_else(|| "not an HTTP/1.1 response".to_owned())?;
    if !status.starts_with("101") {
        return Err(format!("HTTP {}", status.trim()));
    }
    let accept = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("sec-websocket-accept"))
        .map(|(_, value)| value.trim());
    match accept {
        Some(value) if value == derive_accept_key(key.as_bytes()) => Ok(()),
        Some(_) => Err("wrong Sec-WebSocket-Accept".to_owned()),
        None => Err("no Sec-WebSocket-Accept".to_owned()),
    }
}

fn tls_error_kind(err: &io::Error) -> String {
    match err.get_ref() {
        Some(inner) => inner.to_string(),
        None => io_kind(err),
    }
}

fn tls_config(args: &BenchArgs) -> Result<ClientConfig, String> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    if args.insecure {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth());
    }
    let mut roots = RootCertStore::empty();
    if let Some(path) = &args.cafile {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("--cafile {}: {e}", path.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("--cafile {}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("--cafile {}: {e}", path.display()))?;
        }
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// `--insecure`: accepts any server certificate, still checking handshake signatures.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A WebSocket connection as a byte stream: each write becomes one binary message (the
/// generator batches, so a message holds many MQTT packets); reads hand out the bytes of
/// binary messages in order, whatever their framing. Pings are answered by tungstenite.
pub(crate) struct WsIo<S> {
    ws: WebSocketStream<S>,
    pending: Bytes,
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                buf.put_slice(&self.pending[..n]);
                self.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(data))) => self.pending = data,
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(Ok(())),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut ws = Pin::new(&mut self.ws);
        ready!(ws.as_mut().poll_ready(cx)).map_err(io::Error::other)?;
        ws.as_mut()
            .start_send(Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(io::Error::other)?;
        // Push it towards the socket now; whatever does not fit is flushed by poll_flush.
        if let Poll::Ready(Err(e)) = ws.poll_flush(cx) {
            return Poll::Ready(Err(io::Error::other(e)));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws)
            .poll_flush(cx)
            .map_err(io::Error::other)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws)
            .poll_close(cx)
            .map_err(io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of RFC 6455 §1.3.
    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    #[test]
    fn an_upgrade_answer_needs_101_and_the_accept_key() {
        let ok = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\
                   connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
                   sec-websocket-protocol: mqtt\r\n\r\n";
        assert_eq!(head_end(ok), Some(ok.len()));
        assert_eq!(head_end(&ok[..ok.len() - 1]), None);
        assert_eq!(check_upgrade(ok, KEY), Ok(()));
        let wrong = b"HTTP/1.1 101 Switching Protocols\r\nsec-websocket-accept: AAAA\r\n\r\n";
        assert_eq!(
            check_upgrade(wrong, KEY),
            Err("wrong Sec-WebSocket-Accept".to_owned())
        );
        let missing = b"HTTP/1.1 101 Switching Protocols\r\n\r\n";
        assert_eq!(
            check_upgrade(missing, KEY),
            Err("no Sec-WebSocket-Accept".to_owned())
        );
        let refused = b"HTTP/1.1 404 Not Found\r\ncontent-length: 10\r\n\r\n";
        assert_eq!(
            check_upgrade(refused, KEY),
            Err("HTTP 404 Not Found".to_owned())
        );
    }
}
