//! MQTT over TLS and WSS with self-signed certificates (rcgen): connect and pub/sub, client
//! certificates mapped to user names, and certificate reload (a good new certificate is
//! served, a bad one is refused and the old one stays).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ferrymq_auth::{AuthConfig, UserConfig};
use ferrymq_codec::Packet;
use ferrymq_transport::tls::{CertUsername, ClientAuth, TlsReloader, TlsSettings};
use ferrymq_transport::{MqttListenerOptions, WsConfig};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName,
};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

// argon2id of "alice-secret" with cheap parameters (m=8 KiB, t=1).
const CHEAP_HASH: &str = "$argon2id$v=19$m=8,t=1,p=1$YWxpY2Utc2VjcmV0LXRlc3Qtc2FsdA$IIIuuumCOhX8LRy0FCvFR5bVXgARKxXPg0rDnQyqDYI";

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        der: cert.der().clone(),
        issuer: Issuer::new(params, key),
    }
}

/// A leaf certificate signed by `ca`: (PEM cert, PEM key, DER cert).
fn leaf(ca: &Ca, cn: &str, sans: &[&str]) -> (String, String, CertificateDer<'static>) {
    let mut params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().clone())
}

fn pem(der: &CertificateDer<'_>) -> String {
    pem_encode("CERTIFICATE", der.as_ref())
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(name: &str) -> Files {
        let dir = std::env::temp_dir().join(format!("ferrymq-tls-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Files { dir }
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn settings(files: &Files, server_ca: &Ca) -> TlsSettings {
    let (cert, key, _) = leaf(server_ca, "localhost", &["localhost", "127.0.0.1"]);
    TlsSettings {
        cert_file: files.write("cert.pem", &cert),
        key_file: files.write("key.pem", &key),
        client_ca_file: None,
        client_auth: ClientAuth::None,
        username_from: CertUsername::None,
        reload_interval: None,
    }
}

fn client_config(
    server_ca: &Ca,
    alpn: &[u8],
    identity: Option<(&CertificateDer<'static>, &str)>,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(server_ca.der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key_pem)) => {
            use rustls::pki_types::pem::PemObject;
            let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
            builder
                .with_client_auth_cert(vec![cert.clone()], key)
                .unwrap()
        }
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

async fn tls_connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// The leaf certificate the server at `addr` presents.
async fn served_certificate(addr: SocketAddr, ca: &Ca) -> CertificateDer<'static> {
    let stream = tls_connect(addr, client_config(ca, b"mqtt", None))
        .await
        .unwrap();
    stream.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

#[tokio::test]
async fn mqtt_over_tls_and_wss_with_pubsub_between_them() {
    let files = Files::new("pubsub");
    let server_ca = ca("server CA");
    let tls = TlsReloader::load(settings(&files, &server_ca)).unwrap();
    let broker = broker();
    let mqtts = start_mqtt(
        &broker,
        MqttListenerOptions {
            tls: Some(tls.clone()),
            ..Default::default()
        },
    );
    let wss = start_ws(&broker, WsConfig::default(), Some(tls.clone()));

    let stream = tls_connect(wss, client_config(&server_ca, b"http/1.1", None))
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut browser =
        ws_client_over(stream, &format!("wss://localhost:{}/mqtt", wss.port()), &[]).await;
    assert_eq!(
        browser.login("browser", Some("guest"), Some("guest")).await,
        0
    );
    browser.send(&[subscribe("dev/#")]).await;
    assert!(matches!(browser.recv().await, Packet::SubAck(_)));

    let mut device = tls_connect(mqtts, client_config(&server_ca, b"mqtt", None))
        .await
        .unwrap();
    assert_eq!(device.get_ref().1.alpn_protocol(), Some(&b"mqtt"[..]));
    assert_eq!(
        mqtt_login(&mut device, Some("guest"), Some("guest")).await,
        Some(0)
    );
    use tokio::io::AsyncWriteExt;
    device
        .write_all(&bytes(&[publish("dev/temp", b"21.5")]))
        .await
        .unwrap();
    match browser.recv().await {
        Packet::Publish(p) => assert_eq!(
            (p.topic.as_str(), &p.payload[..]),
            ("dev/temp", &b"21.5"[..])
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn client_certificates_map_to_users() {
    let files = Files::new("clientcert");
    let server_ca = ca("server CA");
    let client_ca = ca("client CA");
    let mut settings = settings(&files, &server_ca);
    settings.client_ca_file = Some(files.write("client-ca.pem", &pem(&client_ca.der)));
    settings.client_auth = ClientAuth::Optional;
    settings.username_from = CertUsername::CommonName;
    let tls = TlsReloader::load(settings).unwrap();
    let auth = AuthConfig {
        vhost_in_username: true,
        allow_anonymous: false,
        users: vec![UserConfig {
            name: "device-1".into(),
            password_hash: CHEAP_HASH.into(),
            loopback_only: false,
        }],
    };
    let broker = broker_with(Default::default(), auth);
    let addr = start_mqtt(
        &broker,
        MqttListenerOptions {
            tls: Some(tls.clone()),
            ..Default::default()
        },
    );

    // A certificate for an existing user: no user name or password needed.
    let (_, key, der) = leaf(&client_ca, "device-1", &[]);
    let mut stream = tls_connect(addr, client_config(&server_ca, b"mqtt", Some((&der, &key))))
        .await
        .unwrap();
    assert_eq!(mqtt_login(&mut stream, None, None).await, Some(0));
    // A valid certificate for an unknown user is refused.
    let (_, key, der) = leaf(&client_ca, "intruder", &[]);
    let mut stream = tls_connect(addr, client_config(&server_ca, b"mqtt", Some((&der, &key))))
        .await
        .unwrap();
    assert_eq!(mqtt_login(&mut stream, None, None).await, Some(0x86));
    // Optional: no certificate means the password is checked as usual.
    let mut stream = tls_connect(addr, client_config(&server_ca, b"mqtt", None))
        .await
        .unwrap();
    assert_eq!(
        mqtt_login(&mut stream, Some("device-1"), Some("alice-secret")).await,
        Some(0)
    );
    // A certificate from another CA fails the handshake.
    let other_ca = ca("other CA");
    let (_, key, der) = leaf(&other_ca, "device-1", &[]);
    let result = async {
        let mut stream =
            tls_connect(addr, client_config(&server_ca, b"mqtt", Some((&der, &key)))).await?;
        Ok::<_, std::io::Error>(mqtt_login(&mut stream, None, None).await)
    };
    assert!(!matches!(result.await, Ok(Some(0))));

    // SAN mapping.
    let mut san = tls.settings().clone();
    san.username_from = CertUsername::SanEmail;
    let (_, _, der) = leaf(&client_ca, "ignored", &["device@example.com"]);
    assert_eq!(
        ferrymq_transport::tls::certificate_name(&der, CertUsername::SanEmail).as_deref(),
        None,
        "rcgen puts plain names in DNS SANs"
    );
    let (_, _, der) = leaf(&client_ca, "cn-name", &["dev.example.com"]);
    assert_eq!(
        ferrymq_transport::tls::certificate_name(&der, CertUsername::SanDns).as_deref(),
        Some("dev.example.com")
    );
    assert_eq!(
        ferrymq_transport::tls::certificate_name(&der, CertUsername::CommonName).as_deref(),
        Some("cn-name")
    );
}

#[tokio::test]
async fn required_client_certificates() {
    let files = Files::new("required");
    let server_ca = ca("server CA");
    let client_ca = ca("client CA");
    let mut settings = settings(&files, &server_ca);
    settings.client_ca_file = Some(files.write("client-ca.pem", &pem(&client_ca.der)));
    settings.client_auth = ClientAuth::Required;
    let tls = TlsReloader::load(settings).unwrap();
    let broker = broker();
    let addr = start_mqtt(
        &broker,
        MqttListenerOptions {
            tls: Some(tls),
            ..Default::default()
        },
    );
    let result = async {
        let mut stream = tls_connect(addr, client_config(&server_ca, b"mqtt", None)).await?;
        Ok::<_, std::io::Error>(mqtt_login(&mut stream, Some("guest"), Some("guest")).await)
    };
    assert!(
        !matches!(result.await, Ok(Some(0))),
        "no certificate, no connection"
    );
    let (_, key, der) = leaf(&client_ca, "anyone", &[]);
    let mut stream = tls_connect(addr, client_config(&server_ca, b"mqtt", Some((&der, &key))))
        .await
        .unwrap();
    assert_eq!(
        mqtt_login(&mut stream, Some("guest"), Some("guest")).await,
        Some(0),
        "certificate, and guest/guest"
    );
}

#[tokio::test]
async fn reload_serves_a_new_certificate_and_keeps_the_old_one_when_the_new_is_bad() {
    let files = Files::new("reload");
    let server_ca = ca("server CA");
    let mut settings = settings(&files, &server_ca);
    settings.reload_interval = Some(Duration::from_millis(100));
    let tls = TlsReloader::load(settings.clone()).unwrap();
    let broker = broker();
    let addr = start_mqtt(
        &broker,
        MqttListenerOptions {
            tls: Some(tls.clone()),
            ..Default::default()
        },
    );
    tokio::spawn(tls.clone().watch(broker.shutdown_token().clone()));
    let first = served_certificate(addr, &server_ca).await;

    // A new certificate and key: picked up by the file watcher.
    let (cert, key, second) = leaf(&server_ca, "localhost", &["localhost"]);
    std::fs::write(&settings.key_file, key).unwrap();
    std::fs::write(&settings.cert_file, cert).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while served_certificate(addr, &server_ca).await != second {
        assert!(
            std::time::Instant::now() < deadline,
            "new certificate not served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_ne!(first, second);

    // A broken certificate: reload fails, the second one is still served.
    std::fs::write(
        &settings.cert_file,
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    assert!(tls.reload().is_err());
    assert_eq!(served_certificate(addr, &server_ca).await, second);
    // A certificate that does not match the key: also refused.
    let (cert, _, _) = leaf(&server_ca, "localhost", &["localhost"]);
    std::fs::write(&settings.cert_file, cert).unwrap();
    assert!(tls.reload().is_err());
    assert_eq!(served_certificate(addr, &server_ca).await, second);
}

#[test]
fn unreadable_files_are_reported() {
    let settings = TlsSettings {
        cert_file: Path::new("/nonexistent/cert.pem").into(),
        key_file: Path::new("/nonexistent/key.pem").into(),
        client_ca_file: None,
        client_auth: ClientAuth::None,
        username_from: CertUsername::None,
        reload_interval: None,
    };
    let error = ferrymq_transport::tls::check_tls_settings(&settings)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("cannot read the certificate file /nonexistent/cert.pem"),
        "{error}"
    );
    let _ = PrivatePkcs8KeyDer::from(Vec::new());
}

/// Opens a WebSocket as an HTTP/2 extended CONNECT stream (RFC 8441).
async fn h2_websocket(
    sender: &mut hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    path: &str,
) -> WsClient<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>> {
    let mut request = hyper::Request::builder()
        .method(hyper::Method::CONNECT)
        .uri(format!("https://localhost{path}"))
        .header("sec-websocket-version", "13")
        .header("sec-websocket-protocol", "mqtt")
        .body(http_body_util::Empty::new())
        .unwrap();
    request
        .extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let protocol = response
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_owned());
    let upgraded = hyper::upgrade::on(response).await.unwrap();
    let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        hyper_util::rt::TokioIo::new(upgraded),
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await;
    WsClient {
        ws,
        reader: PacketReader::new(),
        protocol,
    }
}

#[tokio::test]
async fn websockets_over_http2_extended_connect() {
    let files = Files::new("h2");
    let server_ca = ca("server CA");
    let tls = TlsReloader::load(settings(&files, &server_ca)).unwrap();
    let broker = broker();
    let wss = start_ws(&broker, WsConfig::default(), Some(tls.clone()));
    let stream = tls_connect(wss, client_config(&server_ca, b"h2", None))
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    // Wait for the server's SETTINGS (ENABLE_CONNECT_PROTOCOL) before an extended CONNECT.
    sender.ready().await.unwrap();

    // Two WebSockets, two MQTT connections, one TCP connection.
    let mut subscriber = h2_websocket(&mut sender, "/mqtt").await;
    assert_eq!(subscriber.protocol.as_deref(), Some("mqtt"));
    assert_eq!(
        subscriber
            .login("h2-sub", Some("guest"), Some("guest"))
            .await,
        0
    );
    subscriber.send(&[subscribe("h2/#")]).await;
    assert!(matches!(subscriber.recv().await, Packet::SubAck(_)));
    let mut publisher = h2_websocket(&mut sender, "/ws").await;
    assert_eq!(
        publisher
            .login("h2-pub", Some("guest"), Some("guest"))
            .await,
        0
    );
    publisher
        .send(&[publish("h2/x", &vec![3u8; 100_000])])
        .await;
    match subscriber.recv().await {
        Packet::Publish(p) => assert_eq!((p.topic.as_str(), p.payload.len()), ("h2/x", 100_000)),
        other => panic!("{other:?}"),
    }

    // Plain requests on the same connection.
    let get = |path: &str| {
        hyper::Request::builder()
            .uri(format!("https://localhost{path}"))
            .body(http_body_util::Empty::new())
            .unwrap()
    };
    assert_eq!(
        sender.send_request(get("/healthz")).await.unwrap().status(),
        200
    );
    assert_eq!(
        sender.send_request(get("/mqtt")).await.unwrap().status(),
        426
    );
    assert_eq!(
        sender.send_request(get("/other")).await.unwrap().status(),
        404
    );

    // HTTP/2 can be turned off: then only http/1.1 is negotiated.
    let h1_only = start_ws(
        &broker,
        WsConfig {
            http2: false,
            ..WsConfig::default()
        },
        Some(tls),
    );
    let mut config = (*client_config(&server_ca, b"h2", None)).clone();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let stream = tls_connect(h1_only, Arc::new(config)).await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
}

#[tokio::test]
async fn permessage_deflate_over_http2() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let files = Files::new("h2-deflate");
    let server_ca = ca("server CA");
    let tls = TlsReloader::load(settings(&files, &server_ca)).unwrap();
    let broker = broker();
    let config = WsConfig {
        permessage_deflate: true,
        ..WsConfig::default()
    };
    let wss = start_ws(&broker, config, Some(tls));
    let stream = tls_connect(wss, client_config(&server_ca, b"h2", None))
        .await
        .unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    sender.ready().await.unwrap();
    let mut request = hyper::Request::builder()
        .method(hyper::Method::CONNECT)
        .uri("https://localhost/mqtt")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-protocol", "mqtt")
        .header(
            "sec-websocket-extensions",
            "permessage-deflate; client_max_window_bits",
        )
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    request
        .extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get("sec-websocket-extensions").unwrap(),
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    );
    let mut io = hyper_util::rt::TokioIo::new(hyper::upgrade::on(response).await.unwrap());
    // CONNECT as one compressed message (RSV1), masked.
    let mut compress = flate2::Compress::new(flate2::Compression::default(), false);
    let mut payload = Vec::with_capacity(256);
    compress
        .compress_vec(
            &bytes(&[connect("h2-deflate", Some("guest"), Some("guest"))]),
            &mut payload,
            flate2::FlushCompress::Sync,
        )
        .unwrap();
    payload.truncate(payload.len() - 4);
    let mut frame = vec![0xC2, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(&payload);
    io.write_all(&frame).await.unwrap();
    let mut connack = [0u8; 6];
    tokio::time::timeout(Duration::from_secs(5), io.read_exact(&mut connack))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        connack,
        [0x82, 4, 0x20, 2, 0, 0],
        "CONNACK, uncompressed (short)"
    );
}
