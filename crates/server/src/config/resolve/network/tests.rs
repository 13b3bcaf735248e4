//! `[websocket]`, `[tls]`, `[proxy]`, `mqtt.proxy_protocol` and the listeners' vhosts:
//! defaults, wiring, errors.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ferrymq_transport::tls::{CertUsername, ClientAuth};

use crate::config::{Overrides, Settings, parse};

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn problems(source: &str) -> Vec<String> {
    match parse("f.toml", source) {
        Ok(settings) => panic!("expected errors, got {settings:?}"),
        Err(err) => err.to_string().lines().map(str::to_owned).collect(),
    }
}

/// A self-signed certificate and key in a fresh temp directory.
struct CertFiles {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl CertFiles {
    fn new(name: &str) -> CertFiles {
        let dir =
            std::env::temp_dir().join(format!("ferrymq-config-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_path, cert.cert.pem()).unwrap();
        std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
        CertFiles {
            dir,
            cert: cert_path,
            key: key_path,
        }
    }
}

impl Drop for CertFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn defaults() {
    let s = Settings::default();
    assert_eq!(s.websocket.len(), 1);
    assert_eq!(s.websocket[0].address, addr("0.0.0.0:15675"));
    assert_eq!(s.websocket[0].config.paths, ["/ws", "/mqtt"]);
    assert_eq!(
        s.websocket[0].config.ping_interval,
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        s.websocket[0].config.handshake_timeout,
        Duration::from_secs(10)
    );
    assert_eq!(s.websocket[0].config.max_header_bytes, 8192);
    assert!(s.websocket[0].config.allow_missing_origin);
    assert!(!s.websocket[0].config.require_subprotocol);
    assert_eq!(s.websocket[0].config.keep_alive_grace, None);
    assert!(s.websocket[0].config.http2);
    assert_eq!(s.websocket_tls[0].address, addr("0.0.0.0:15676"));
    assert_eq!(s.tls_listen, [addr("0.0.0.0:8883")]);
    assert_eq!(s.tls, None);
    assert!(s.trusted_proxies.is_empty());
    assert!(!s.mqtt_proxy.proxy_protocol);
}

#[test]
fn every_key_is_wired() {
    let files = CertFiles::new("wired");
    let source = format!(
        r#"
[mqtt]
proxy_protocol = true

[websocket]
listen = ["127.0.0.1:8080", {{ address = "127.0.0.1:8081", paths = ["/only"], proxy_protocol = false, keep_alive_grace = 4.0 }}]
tls_listen = ["127.0.0.1:8443"]
paths = ["/mqtt"]
require_subprotocol = true
allowed_origins = ["https://app.example.com", "https://*.example.org"]
allow_missing_origin = false
max_header_bytes = 4096
handshake_timeout_secs = 3
ping_interval_secs = 0
keep_alive_grace = 3.0
proxy_protocol = true
http2 = false

[tls]
cert_file = "{cert}"
key_file = "{key}"
client_ca_file = "{cert}"
client_auth = "required"
username_from = "san_dns"
listen = ["127.0.0.1:8883"]
proxy_protocol = true
reload_interval_secs = 0

[proxy]
trusted = ["10.0.0.0/8", "::1"]
"#,
        cert = files.cert.display(),
        key = files.key.display()
    );
    let s = parse("full.toml", &source).unwrap();
    assert!(s.mqtt_proxy.proxy_protocol);
    assert!(s.trusted_proxies.contains("10.9.8.7".parse().unwrap()));
    assert!(s.trusted_proxies.contains("::1".parse().unwrap()));
    let [first, second] = &s.websocket[..] else {
        panic!("{:?}", s.websocket)
    };
    assert_eq!(first.address, addr("127.0.0.1:8080"));
    assert_eq!(first.config.paths, ["/mqtt"]);
    assert!(first.config.require_subprotocol);
    assert_eq!(first.config.allowed_origins.len(), 2);
    assert!(!first.config.allow_missing_origin);
    assert_eq!(first.config.max_header_bytes, 4096);
    assert_eq!(first.config.handshake_timeout, Duration::from_secs(3));
    assert_eq!(first.config.ping_interval, None);
    assert_eq!(first.config.keep_alive_grace, Some(3.0));
    assert!(first.config.proxy.proxy_protocol);
    assert!(
        first
            .config
            .proxy
            .trusted
            .contains("10.0.0.1".parse().unwrap())
    );
    assert_eq!(second.address, addr("127.0.0.1:8081"));
    assert_eq!(second.config.paths, ["/only"]);
    assert!(!second.config.proxy.proxy_protocol);
    assert_eq!(second.config.keep_alive_grace, Some(4.0));
    assert!(
        second.config.require_subprotocol,
        "the section's settings apply to table entries"
    );
    assert_eq!(s.websocket_tls[0].address, addr("127.0.0.1:8443"));
    let tls = s.tls.as_ref().unwrap();
    assert_eq!(tls.cert_file, files.cert);
    assert_eq!(tls.key_file, files.key);
    assert_eq!(tls.client_ca_file.as_ref(), Some(&files.cert));
    assert_eq!(tls.client_auth, ClientAuth::Required);
    assert_eq!(tls.username_from, CertUsername::SanDns);
    assert_eq!(tls.reload_interval, None);
    assert_eq!(s.tls_listen, [addr("127.0.0.1:8883")]);
    assert!(s.tls_proxy.proxy_protocol);
}

#[test]
fn empty_lists_disable_listeners() {
    let s = parse(
        "f.toml",
        "[websocket]\nlisten = []\ntls_listen = []\n[tls]\nlisten = []\n",
    )
    .unwrap();
    assert!(s.websocket.is_empty());
    assert!(s.websocket_tls.is_empty());
    assert!(s.tls_listen.is_empty());
}

#[test]
fn ws_listen_flag_keeps_the_sections_settings() {
    let mut s = parse(
        "f.toml",
        "[websocket]\npaths = [\"/x\"]\nping_interval_secs = 5\n",
    )
    .unwrap();
    s.apply(&Overrides {
        ws_listen: Some(vec![addr("127.0.0.1:1"), addr("127.0.0.1:2")]),
        ..Overrides::default()
    });
    let addresses: Vec<_> = s.websocket.iter().map(|l| l.address).collect();
    assert_eq!(addresses, [addr("127.0.0.1:1"), addr("127.0.0.1:2")]);
    assert!(s.websocket.iter().all(|l| l.config.paths == ["/x"]));
    assert!(
        s.websocket
            .iter()
            .all(|l| l.config.ping_interval == Some(Duration::from_secs(5)))
    );
}

#[test]
fn ca_file_alone_means_optional_client_certificates() {
    let files = CertFiles::new("optional");
    let source = format!(
        "[tls]\ncert_file = \"{c}\"\nkey_file = \"{k}\"\nclient_ca_file = \"{c}\"\n",
        c = files.cert.display(),
        k = files.key.display()
    );
    let tls = parse("f.toml", &source).unwrap().tls.unwrap();
    assert_eq!(tls.client_auth, ClientAuth::Optional);
    assert_eq!(tls.reload_interval, Some(Duration::from_secs(5)));
}

#[test]
fn located_errors() {
    let files = CertFiles::new("errors");
    for (source, expected) in [
        (
            "[proxy]\ntrusted = [\"10.0.0.0/33\"]\n",
            "f.toml:2:12: proxy.trusted: \"10.0.0.0/33\": the prefix length must be 0 to 32",
        ),
        (
            "[proxy]\ntrusted = [\"10.1.2.3/8\"]\n",
            "f.toml:2:12: proxy.trusted: \"10.1.2.3/8\" has bits set after the /8 prefix",
        ),
        (
            "[websocket]\npaths = [\"mqtt\"]\n",
            "f.toml:2:10: websocket.paths: \"mqtt\" must start with '/'",
        ),
        (
            "[websocket]\npaths = [\"/healthz\"]\n",
            "f.toml:2:10: websocket.paths: /healthz is the health check",
        ),
        (
            "[websocket]\npaths = []\n",
            "f.toml:2:9: websocket.paths must list at least one path",
        ),
        (
            "[websocket]\nlisten = [{ address = \"x\", paths = [\"/a\"] }]\n",
            "f.toml:2:23: websocket.listen: \"x\" is not an IP:PORT address",
        ),
        (
            "[websocket]\nlisten = [{ address = \"127.0.0.1:1\", paths = [\"a\"] }]\n",
            "f.toml:2:47: websocket.listen.paths: \"a\" must start with '/'",
        ),
        (
            "[websocket]\nallowed_origins = [\"example.com\"]\n",
            "f.toml:2:20: websocket.allowed_origins: \"example.com\" is not an origin",
        ),
        (
            "[websocket]\nmax_header_bytes = 10\n",
            "f.toml:2:20: websocket.max_header_bytes must be between 1024 and 1048576, not 10",
        ),
        (
            "[websocket]\nproxy_protocol = true\n",
            "f.toml:2:18: websocket.proxy_protocol is true but proxy.trusted is empty",
        ),
        (
            "[mqtt]\nproxy_protocol = true\n",
            "f.toml:2:18: mqtt.proxy_protocol is true but proxy.trusted is empty",
        ),
        (
            "[tls]\ncert_file = \"/nonexistent/cert.pem\"\nkey_file = \"/nonexistent/key.pem\"\n",
            "f.toml:2:13: tls: cannot read the certificate file /nonexistent/cert.pem",
        ),
        (
            "[tls]\ncert_file = \"/a.pem\"\n",
            "f.toml:2:13: tls.cert_file and tls.key_file must be set together",
        ),
        (
            "[tls]\nclient_auth = \"sometimes\"\n",
            "f.toml:2:15: tls.client_auth must be \"none\", \"optional\" or \"required\"",
        ),
        (
            "[tls]\nusername_from = \"cn\"\n",
            "f.toml:2:17: tls.username_from needs client certificates",
        ),
    ] {
        let found = problems(source);
        assert!(
            found.iter().any(|p| p.starts_with(expected)),
            "{source}\nexpected {expected}\ngot {found:?}"
        );
    }
    // A key that does not belong to the certificate.
    let other = CertFiles::new("errors-other");
    let source = format!(
        "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        files.cert.display(),
        other.key.display()
    );
    let found = problems(&source);
    assert!(found[0].starts_with("f.toml:2:13: tls: "), "{found:?}");
}

#[test]
fn listener_vhosts() {
    let files = CertFiles::new("vhosts");
    let source = format!(
        r#"[mqtt]
vhost = "devices"
[websocket]
vhost = "browsers"
listen = ["127.0.0.1:1", {{ address = "127.0.0.1:2", vhost = "public" }}, {{ address = "127.0.0.1:3", vhost = "/" }}]
[tls]
cert_file = "{c}"
key_file = "{k}"
vhost = "secure:devices"
"#,
        c = files.cert.display(),
        k = files.key.display()
    );
    let s = parse("f.toml", &source).unwrap();
    assert_eq!(s.mqtt_vhost.as_deref(), Some("devices"));
    assert_eq!(s.tls_vhost.as_deref(), Some("secure:devices"));
    let ws: Vec<Option<&str>> = s
        .websocket
        .iter()
        .map(|l| l.config.vhost.as_deref())
        .collect();
    assert_eq!(ws, [Some("browsers"), Some("public"), None]);
    assert!(
        s.websocket_tls
            .iter()
            .all(|l| l.config.vhost.as_deref() == Some("browsers"))
    );
    assert_eq!(s.websocket_defaults.vhost.as_deref(), Some("browsers"));

    // "/" is the default, spelled out.
    let s = parse(
        "f.toml",
        "[mqtt]\nvhost = \"/\"\n[websocket]\nvhost = \"/\"\n",
    )
    .unwrap();
    assert_eq!(s, Settings::default());

    let problems = problems(
        "[mqtt]\nvhost = \"\"\n[websocket]\nlisten = [{ address = \"127.0.0.1:1\", vhost = \"\" }]\n[tls]\nvhost = \"\"\n",
    );
    assert_eq!(
        problems,
        [
            "f.toml:2:9: mqtt.vhost must not be empty; the default vhost is \"/\"",
            "f.toml:4:46: websocket.listen.vhost must not be empty; the default vhost is \"/\"",
            "f.toml:6:9: tls.vhost must not be empty; the default vhost is \"/\"",
        ]
    );
}
