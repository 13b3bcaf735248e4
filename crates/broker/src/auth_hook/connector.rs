//! Connections to the hook: TCP through hyper-util's connector, then TLS (tokio-rustls, ring)
//! when the URL is `https://`, verified against the webpki roots or the configured CA file.
//!
//! The hook has one URL, so the connector knows its TLS server name up front and never
//! decides per request whether to speak TLS.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use super::AuthHookError;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Opens connections to the hook's host: plain TCP, or TLS for `https://` URLs.
#[derive(Clone)]
pub(super) struct HookConnector {
    tcp: HttpConnector,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl HookConnector {
    /// A connector for `uri` (already checked to be http or https with a host).
    pub(super) fn new(
        uri: &Uri,
        ca_file: Option<&Path>,
        connect_timeout: Duration,
    ) -> Result<HookConnector, AuthHookError> {
        let mut tcp = HttpConnector::new();
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(connect_timeout));
        let tls = match uri.scheme_str() {
            Some("https") => {
                // The TLS layer above it handles the scheme.
                tcp.enforce_http(false);
                let host = uri.host().unwrap_or_default();
                // IPv6 literals come bracketed in URLs, bare in certificates.
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let name = ServerName::try_from(host.to_owned()).map_err(|_| {
                    AuthHookError::InvalidUrl(format!("invalid host name {host:?}"))
                })?;
                Some((TlsConnector::from(client_config(ca_file)?), name))
            }
            _ => None,
        };
        Ok(HookConnector { tcp, tls })
    }
}

/// TLS 1.2/1.3 with ring, HTTP/1.1 by ALPN, server certificates verified against `ca_file`
/// (PEM) when given, else the webpki (Mozilla) roots.
fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, AuthHookError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let failed = |reason: String| AuthHookError::CaFile {
                path: path.to_owned(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| failed(e.to_string()))?;
                roots.add(cert).map_err(|e| failed(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(failed("no certificate in the file".to_owned()));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| AuthHookError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

impl tower_service::Service<Uri> for HookConnector {
    type Response = HookStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<HookStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.tcp.call(uri);
        let tls = self.tls.clone();
        Box::pin(async move {
            let tcp = connecting.await?;
            match tls {
                None => Ok(HookStream::Plain(tcp)),
                Some((connector, name)) => {
                    let stream = connector.connect(name, tcp.into_inner()).await?;
                    Ok(HookStream::Tls(Box::new(TokioIo::new(stream))))
                }
            }
        })
    }
}

/// A connection to the hook. (The TLS session, a kilobyte, is boxed: pooled plain
/// connections need not carry its size.)
pub(super) enum HookStream {
    Plain(TokioIo<TcpStream>),
    Tls(Box<TokioIo<TlsStream<TcpStream>>>),
}

impl Connection for HookStream {
    fn connected(&self) -> Connected {
        match self {
            HookStream::Plain(stream) => stream.connected(),
            HookStream::Tls(stream) => stream.inner().get_ref().0.connected(),
        }
    }
}

impl Read for HookStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            HookStream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            HookStream::Tls(stream) => Pin::new(&mut **stream).poll_read(cx, buf),
        }
    }
}

impl Write for HookStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            HookStream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            HookStream::Tls(stream) => Pin::new(&mut **stream).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            HookStream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            HookStream::Tls(stream) => Pin::new(&mut **stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            HookStream::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            HookStream::Tls(stream) => Pin::new(&mut **stream).poll_shutdown(cx),
        }
    }
}
