//! TLS for MQTT (8883) and WSS (15676) with rustls (ring provider): certificate loading,
//! client certificates with user-name mapping, and reload without restart — on demand
//! (SIGHUP, wired by the server) and when the files change (polled modification times).
//! A new certificate that fails to load leaves the current one in service.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig, ServerConnection};
use tokio_util::sync::CancellationToken;

/// Whether clients must present a certificate (only meaningful with `client_ca_file`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// Certificates are not requested.
    #[default]
    None,
    /// Requested and verified when presented; clients without one still connect.
    Optional,
    /// Handshakes without a valid client certificate fail.
    Required,
}

/// Which part of a verified client certificate becomes the MQTT user name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CertUsername {
    /// None: the client still logs in with user name and password.
    #[default]
    None,
    /// The subject's Common Name.
    CommonName,
    /// The first DNS name among the Subject Alternative Names.
    SanDns,
    /// The first e-mail address (rfc822Name) among the SANs.
    SanEmail,
    /// The first URI among the SANs.
    SanUri,
}

/// The `[tls]` settings the transport needs.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsSettings {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM CA certificates that client certificates must chain to.
    pub client_ca_file: Option<PathBuf>,
    pub client_auth: ClientAuth,
    pub username_from: CertUsername,
    /// How often to look at the files' modification times; `None`: reload only on request.
    pub reload_interval: Option<Duration>,
}

/// Why a certificate set could not be loaded.
#[derive(Debug)]
pub struct TlsError(String);

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

/// ALPN protocol lists: `mqtt` on the MQTT port (clients such as AWS IoT's send it);
/// `http/1.1` for WSS, with `h2` first where the listener serves RFC 8441.
const ALPN_MQTT: &[&[u8]] = &[b"mqtt"];
const ALPN_WSS: &[&[u8]] = &[b"http/1.1"];
const ALPN_WSS_H2: &[&[u8]] = &[b"h2", b"http/1.1"];

/// The three configurations built from one certificate, differing only in ALPN.
struct Configs {
    mqtt: Arc<ServerConfig>,
    wss: Arc<ServerConfig>,
    wss_h2: Arc<ServerConfig>,
}

/// The files' identities, to notice a change without reading them.
type Stamps = Vec<Option<(SystemTime, u64)>>;

/// The current TLS configurations, swappable at run time. Each accept takes a snapshot,
/// so a reload never disturbs handshakes in progress.
pub struct TlsReloader {
    settings: TlsSettings,
    configs: RwLock<Arc<Configs>>,
    stamps: Mutex<Stamps>,
}

impl std::fmt::Debug for TlsReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsReloader")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl TlsReloader {
    /// Loads the files once; an error here stops the server from starting.
    pub fn load(settings: TlsSettings) -> Result<Arc<TlsReloader>, TlsError> {
        let stamps = stamps(&settings);
        let configs = build_configs(&settings)?;
        Ok(Arc::new(TlsReloader {
            settings,
            configs: RwLock::new(Arc::new(configs)),
            stamps: Mutex::new(stamps),
        }))
    }

    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// Re-reads the files; on failure the current certificate stays in service.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamps = stamps(&self.settings);
        *self.stamps.lock().unwrap_or_else(|e| e.into_inner()) = stamps;
        let configs = build_configs(&self.settings)?;
        *self.configs.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(configs);
        Ok(())
    }

    /// Reloads when a file's modification time or size changed since the last load
    /// attempt (a failed attempt is not retried until the files change again).
    pub fn reload_if_changed(&self) -> Option<Result<(), TlsError>> {
        let now = stamps(&self.settings);
        let changed = *self.stamps.lock().unwrap_or_else(|e| e.into_inner()) != now;
        changed.then(|| self.reload())
    }

    /// Logs the outcome of a reload.
    pub fn reload_and_log(&self, why: &str) {
        match self.reload() {
            Ok(()) => {
                tracing::info!(why, cert = %self.settings.cert_file.display(), "TLS certificate reloaded")
            }
            Err(error) => {
                tracing::error!(why, %error, "TLS certificate reload failed; keeping the current certificate")
            }
        }
    }

    /// Polls the files every `reload_interval` until `shutdown`.
    pub async fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(interval) = self.settings.reload_interval else {
            return;
        };
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = shutdown.cancelled() => return,
            }
            match self.reload_if_changed() {
                None => {}
                Some(Ok(())) => {
                    tracing::info!(cert = %self.settings.cert_file.display(), "TLS files changed: certificate reloaded")
                }
                Some(Err(error)) => {
                    tracing::error!(%error, "TLS files changed but do not load; keeping the current certificate")
                }
            }
        }
    }

    fn configs(&self) -> Arc<Configs> {
        self.configs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// An acceptor for the MQTT port (ALPN `mqtt`).
    pub fn mqtt_acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.configs().mqtt.clone())
    }

    /// An acceptor for WSS: ALPN `http/1.1`, preceded by `h2` when `http2`.
    pub fn wss_acceptor(&self, http2: bool) -> TlsAcceptor {
        let configs = self.configs();
        TlsAcceptor::from(if http2 {
            configs.wss_h2.clone()
        } else {
            configs.wss.clone()
        })
    }

    /// The user name a verified client certificate maps to, per `username_from`.
    pub fn certificate_user(&self, connection: &ServerConnection) -> Option<String> {
        if self.settings.client_auth == ClientAuth::None {
            return None;
        }
        let leaf = connection.peer_certificates()?.first()?;
        certificate_name(leaf, self.settings.username_from)
    }
}

/// Checks that the files load, without starting anything (`ferrymq check-config`).
pub fn check_tls_settings(settings: &TlsSettings) -> Result<(), TlsError> {
    build_configs(settings).map(drop)
}

fn stamps(settings: &TlsSettings) -> Stamps {
    let files = [
        Some(&settings.cert_file),
        Some(&settings.key_file),
        settings.client_ca_file.as_ref(),
    ];
    files
        .into_iter()
        .flatten()
        .map(|path| {
            std::fs::metadata(path)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path)
        .map_err(|e: io::Error| TlsError(format!("cannot read the {what} {}: {e}", path.display())))
}

fn build_configs(settings: &TlsSettings) -> Result<Configs, TlsError> {
    let pem = read(&settings.cert_file, "certificate file")?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError(format!("{}: {e}", settings.cert_file.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "{}: no PEM certificate found",
            settings.cert_file.display()
        )));
    }
    let key_pem = read(&settings.key_file, "key file")?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        TlsError(format!(
            "{}: no usable PEM private key ({e})",
            settings.key_file.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = match (&settings.client_ca_file, settings.client_auth) {
        (Some(ca_file), auth) if auth != ClientAuth::None => {
            Some(client_verifier(ca_file, auth, &provider)?)
        }
        _ => None,
    };
    let build = |alpn: &[&[u8]]| -> Result<Arc<ServerConfig>, TlsError> {
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError(e.to_string()))?;
        let builder = match &verifier {
            Some(verifier) => builder.with_client_cert_verifier(verifier.clone()),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(certs.clone(), key.clone_key())
            .map_err(|e| {
                TlsError(format!(
                    "{} / {}: {e}",
                    settings.cert_file.display(),
                    settings.key_file.display()
                ))
            })?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    };
    Ok(Configs {
        mqtt: build(ALPN_MQTT)?,
        wss: build(ALPN_WSS)?,
        wss_h2: build(ALPN_WSS_H2)?,
    })
}

fn client_verifier(
    ca_file: &Path,
    auth: ClientAuth,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let pem = read(ca_file, "client CA file")?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| TlsError(format!("{}: {e}", ca_file.display())))?;
        roots
            .add(cert)
            .map_err(|e| TlsError(format!("{}: {e}", ca_file.display())))?;
    }
    if roots.is_empty() {
        return Err(TlsError(format!(
            "{}: no PEM certificate found",
            ca_file.display()
        )));
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let builder = match auth {
        ClientAuth::Optional => builder.allow_unauthenticated(),
        _ => builder,
    };
    builder
        .build()
        .map_err(|e| TlsError(format!("{}: {e}", ca_file.display())))
}

/// The configured name from a DER certificate; `None` if it has no such field.
pub fn certificate_name(der: &CertificateDer<'_>, from: CertUsername) -> Option<String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let name = match from {
        CertUsername::None => return None,
        CertUsername::CommonName => cert
            .subject()
            .iter_common_name()
            .next()?
            .as_str()
            .ok()?
            .to_owned(),
        _ => {
            let san = cert.subject_alternative_name().ok()??;
            san.value
                .general_names
                .iter()
                .find_map(|name| match (from, name) {
                    (CertUsername::SanDns, GeneralName::DNSName(s))
                    | (CertUsername::SanEmail, GeneralName::RFC822Name(s))
                    | (CertUsername::SanUri, GeneralName::URI(s)) => Some((*s).to_owned()),
                    _ => None,
                })?
        }
    };
    (!name.is_empty()).then_some(name)
}
