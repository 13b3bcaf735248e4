//! The real binary with every listener kind: MQTT/TCP, WebSocket, MQTT/TLS and WSS on free
//! ports, a certificate from the config file, and SIGHUP reloading it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Broker {
    child: Child,
    dir: PathBuf,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn write_cert(dir: &Path) -> CertificateDer<'static> {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
    cert.cert.der().clone()
}

/// Trusts exactly `cert` (self-signed) for "localhost".
fn client_config(cert: &CertificateDer<'static>) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A TLS connection to `port`, or the handshake error (e.g. an untrusted certificate).
fn tls_connect(
    port: u16,
    cert: &CertificateDer<'static>,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, std::io::Error> {
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    let name = ServerName::try_from("localhost").unwrap();
    let conn =
        rustls::ClientConnection::new(client_config(cert), name).map_err(std::io::Error::other)?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    stream.conn.complete_io(&mut stream.sock)?;
    Ok(stream)
}

/// CONNECT guest/guest (MQTT 3.1.1); the CONNACK return code.
fn mqtt_login(stream: &mut impl ReadWrite) -> u8 {
    let connect = b"\x10\x1c\x00\x04MQTT\x04\xc2\x00\x3c\x00\x02id\x00\x05guest\x00\x05guest";
    stream.write_all(connect).unwrap();
    stream.flush().unwrap();
    let mut ack = [0u8; 4];
    stream.read_exact(&mut ack).unwrap();
    assert_eq!(ack[..2], [0x20, 0x02], "{ack:?}");
    ack[3]
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn http_get(stream: &mut impl ReadWrite, path: &str) -> String {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    stream.flush().unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

#[test]
fn every_listener_kind_and_sighup_reload() {
    let dir = std::env::temp_dir().join(format!("ferrymq-listeners-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let first = write_cert(&dir);
    let [mqtt, ws, mqtts, wss] = [free_port(), free_port(), free_port(), free_port()];
    let config = dir.join("ferrymq.toml");
    std::fs::write(
        &config,
        format!(
            "[websocket]\ntls_listen = [\"127.0.0.1:{wss}\"]\n\n[tls]\ncert_file = \"{d}/cert.pem\"\nkey_file = \"{d}/key.pem\"\nlisten = [\"127.0.0.1:{mqtts}\"]\nreload_interval_secs = 0\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ferrymq"))
        .args(["serve", "--mqtt-listen", &format!("127.0.0.1:{mqtt}")])
        .args(["--ws-listen", &format!("127.0.0.1:{ws}")])
        .args(["--management-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&config)
        .args(["--log-level", "warn"])
        .env_remove("FERRYMQ_WS_LISTEN")
        .env_remove("FERRYMQ_MQTT_LISTEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let broker = Broker {
        child,
        dir: dir.clone(),
    };
    for port in [mqtt, ws, mqtts, wss] {
        wait_for_port(port);
    }

    let mut tcp = TcpStream::connect(("127.0.0.1", ws)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(http_get(&mut tcp, "/healthz").starts_with("HTTP/1.1 200"));
    let mut tcp = TcpStream::connect(("127.0.0.1", mqtt)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(mqtt_login(&mut tcp), 0);
    assert_eq!(mqtt_login(&mut tls_connect(mqtts, &first).unwrap()), 0);
    let mut wss_stream = tls_connect(wss, &first).unwrap();
    assert_eq!(
        wss_stream.conn.alpn_protocol(),
        None,
        "the client offered no ALPN"
    );
    let answer = http_get(&mut wss_stream, "/ws");
    assert!(answer.starts_with("HTTP/1.1 426"), "{answer}");

    // A new certificate, then SIGHUP: new connections see it.
    let second = write_cert(&dir);
    let pid = broker.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while tls_connect(mqtts, &second).is_err() {
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        tls_connect(mqtts, &first).is_err(),
        "the old certificate is gone"
    );
}
