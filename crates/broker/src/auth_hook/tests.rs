//! The hook client against a tiny hand-written HTTP server (plain and TLS): what is sent,
//! caching, timeouts, the concurrency bound, certificate verification, config checks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::*;

/// What the test hook answers.
#[derive(Clone)]
struct Reply {
    status: u16,
    body: String,
    delay: Duration,
}

fn reply(status: u16, body: &str) -> Reply {
    Reply {
        status,
        body: body.to_owned(),
        delay: Duration::ZERO,
    }
}

/// One request as the hook saw it.
#[derive(Debug, Clone)]
struct Seen {
    head: String,
    body: Vec<u8>,
}

struct TestHook {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    requests: Arc<AtomicUsize>,
}

impl TestHook {
    async fn start(reply: Reply, tls: Option<TlsAcceptor>) -> TestHook {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(AtomicUsize::new(0));
        let (seen_by_task, counted) = (Arc::clone(&seen), Arc::clone(&requests));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (reply, seen, tls) = (reply.clone(), Arc::clone(&seen_by_task), tls.clone());
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    match tls {
                        Some(tls) => {
                            // A failed handshake (an untrusting client) just ends here.
                            if let Ok(stream) = tls.accept(stream).await {
                                answer(stream, reply, seen).await;
                            }
                        }
                        None => answer(stream, reply, seen).await,
                    }
                });
            }
        });
        TestHook {
            addr,
            seen,
            requests,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Reads one request (head, then Content-Length bytes), answers, closes.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    reply: Reply,
    seen: Arc<Mutex<Vec<Seen>>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    seen.lock().unwrap_or_else(|p| p.into_inner()).push(Seen {
        head,
        body: buf[head_end..head_end + length].to_vec(),
    });
    tokio::time::sleep(reply.delay).await;
    let response = format!(
        "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        reply.status,
        reply.body.len(),
        reply.body
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn question() -> HookRequest<'static> {
    HookRequest {
        username: "dave",
        password: Some(b"pw"),
        client_id: "dev-1",
        vhost: "/",
        listener_vhost: None,
        peer: SocketAddr::from(([192, 0, 2, 7], 40001)),
        protocol_version: 4,
        transport: Some("tcp"),
    }
}

fn hook(config: AuthHookConfig) -> AuthHook {
    AuthHook::new(config).expect("valid hook config")
}

const ALLOW: &str = r#"{"result": "allow", "publish": ["a/#"]}"#;

#[tokio::test]
async fn posts_json_and_caches_the_answer() {
    let server = TestHook::start(reply(200, ALLOW), None).await;
    let mut config = AuthHookConfig::with_url(format!("http://{}/mqtt/auth?x=1", server.addr));
    config.bearer_token = Some(BearerToken("t0ken".into()));
    let hook = hook(config);
    let metrics = Metrics::default();
    for _ in 0..2 {
        let verdict = hook.ask(&question(), &metrics).await.expect("an answer");
        assert!(
            matches!(&*verdict, HookVerdict::Allow(grant) if grant.permissions.publish.allow == ["a/#"])
        );
    }
    assert_eq!(Metrics::get(&metrics.auth_hook_requests), 1);
    assert_eq!(Metrics::get(&metrics.auth_hook_cache_hits), 1);
    assert_eq!(Metrics::get(&metrics.auth_hook_errors), 0);

    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let head = seen[0].head.to_ascii_lowercase();
    assert!(
        head.starts_with("post /mqtt/auth?x=1 http/1.1\r\n"),
        "{head}"
    );
    for header in [
        "content-type: application/json",
        "accept: application/json",
        "authorization: bearer t0ken",
        "user-agent: ferrymq/",
        "host: 127.0.0.1:",
    ] {
        assert!(head.contains(header), "{header} missing in {head}");
    }
    assert_eq!(seen[0].body, question().to_json());

    // Another password is another question.
    let other = HookRequest {
        password: Some(b"other"),
        ..question()
    };
    hook.ask(&other, &metrics).await.expect("an answer");
    assert_eq!(Metrics::get(&metrics.auth_hook_requests), 2);
}

#[tokio::test]
async fn denials_are_cached_too() {
    let server = TestHook::start(reply(200, r#"{"result": "deny"}"#), None).await;
    let hook = hook(AuthHookConfig::with_url(format!("http://{}/", server.addr)));
    let metrics = Metrics::default();
    for _ in 0..3 {
        let verdict = hook.ask(&question(), &metrics).await.expect("an answer");
        assert_eq!(*verdict, HookVerdict::Deny);
    }
    assert_eq!(server.seen().len(), 1);
    assert_eq!(Metrics::get(&metrics.auth_hook_cache_hits), 2);
}

#[tokio::test]
async fn failures_are_counted_and_not_cached() {
    let metrics = Metrics::default();
    let status = TestHook::start(reply(503, ALLOW), None).await;
    let hook_503 = hook(AuthHookConfig::with_url(format!("http://{}/", status.addr)));
    for _ in 0..2 {
        assert_eq!(
            hook_503.ask(&question(), &metrics).await,
            Err(HookFailure::Answer(HookResponseError::Status(503)))
        );
    }
    assert_eq!(status.seen().len(), 2, "a failure is asked again");

    let garbage = TestHook::start(reply(200, "<html>oops</html>"), None).await;
    let hook_garbage = hook(AuthHookConfig::with_url(format!(
        "http://{}/",
        garbage.addr
    )));
    assert!(matches!(
        hook_garbage.ask(&question(), &metrics).await,
        Err(HookFailure::Answer(HookResponseError::Malformed(_)))
    ));

    let huge = format!(
        r#"{{"result": "allow", "publish": ["{}"]}}"#,
        "a".repeat(MAX_RESPONSE_BYTES)
    );
    let big = TestHook::start(reply(200, &huge), None).await;
    let hook_big = hook(AuthHookConfig::with_url(format!("http://{}/", big.addr)));
    match hook_big.ask(&question(), &metrics).await {
        Err(HookFailure::Exchange(message)) => {
            assert!(message.contains("length limit"), "{message}")
        }
        other => panic!("a huge answer: {other:?}"),
    }

    // Nothing listens there any more.
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = closed.local_addr().expect("address");
    drop(closed);
    let hook_down = hook(AuthHookConfig::with_url(format!("http://{addr}/")));
    match hook_down.ask(&question(), &metrics).await {
        Err(HookFailure::Exchange(message)) => assert!(message.contains("onnect"), "{message}"),
        other => panic!("a refused connection: {other:?}"),
    }
    assert_eq!(Metrics::get(&metrics.auth_hook_errors), 5);
    assert_eq!(Metrics::get(&metrics.auth_hook_requests), 5);
}

#[tokio::test]
async fn a_slow_hook_times_out_including_the_wait_for_a_slot() {
    let slow = Reply {
        delay: Duration::from_millis(300),
        ..reply(200, ALLOW)
    };
    let server = TestHook::start(slow, None).await;
    let mut config = AuthHookConfig::with_url(format!("http://{}/", server.addr));
    config.max_concurrent_requests = 1;
    config.timeout = Duration::from_millis(450);
    let hook = hook(config);
    let metrics = Metrics::default();
    let other = HookRequest {
        client_id: "dev-2",
        ..question()
    };
    let first_question = question();
    let (first, second) = tokio::join!(hook.ask(&first_question, &metrics), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        hook.ask(&other, &metrics).await
    });
    assert!(first.is_ok(), "{first:?}");
    assert_eq!(
        second,
        Err(HookFailure::Timeout(Duration::from_millis(450))),
        "waited 250 ms for the slot, then 300 ms for the answer"
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);

    let mut config = AuthHookConfig::with_url(format!("http://{}/", server.addr));
    config.timeout = Duration::from_millis(100);
    assert_eq!(
        AuthHook::new(config)
            .expect("valid")
            .ask(&question(), &metrics)
            .await,
        Err(HookFailure::Timeout(Duration::from_millis(100)))
    );
}

struct Pki {
    dir: PathBuf,
    ca_pem: String,
    acceptor: TlsAcceptor,
}

impl Pki {
    /// A CA and a `localhost` / `127.0.0.1` server certificate it signed.
    fn new(name: &str) -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "hook test CA");
        let ca_key = KeyPair::generate().expect("key");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA");
        let issuer = Issuer::new(ca_params, ca_key);
        let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("params");
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &issuer).expect("leaf");
        let certs = vec![CertificateDer::from(cert.der().to_vec())];
        let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).expect("key");
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server config");
        let dir = std::env::temp_dir().join(format!("ferrymq-hook-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Pki {
            dir,
            ca_pem: ca_cert.pem(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
        }
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, contents).expect("write");
        path
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn https_verifies_the_hook_against_the_ca_file_or_the_webpki_roots() {
    let pki = Pki::new("https");
    let server = TestHook::start(reply(200, ALLOW), Some(pki.acceptor.clone())).await;
    let metrics = Metrics::default();
    for host in ["localhost", "127.0.0.1"] {
        let mut config =
            AuthHookConfig::with_url(format!("https://{host}:{}/", server.addr.port()));
        config.ca_file = Some(pki.write("ca.pem", &pki.ca_pem));
        let verdict = hook(config).ask(&question(), &metrics).await;
        assert!(
            matches!(verdict.as_deref(), Ok(HookVerdict::Allow(_))),
            "{host}: {verdict:?}"
        );
    }
    // The test CA is not a public one.
    let untrusted = hook(AuthHookConfig::with_url(format!(
        "https://localhost:{}/",
        server.addr.port()
    )));
    match untrusted.ask(&question(), &metrics).await {
        Err(HookFailure::Exchange(message)) => {
            assert!(message.contains("certificate"), "{message}")
        }
        other => panic!("an unknown issuer: {other:?}"),
    }
    assert_eq!(
        server.seen().len(),
        2,
        "nothing was sent to the untrusted server"
    );
}

#[test]
fn urls_must_be_http_or_https_with_a_host_and_no_credentials() {
    for good in [
        "http://127.0.0.1:8080/auth",
        "https://auth.example.com/mqtt?tenant=a",
        "http://[::1]:9000",
        "  http://hook/  ",
    ] {
        assert_eq!(AuthHookConfig::with_url(good).check(), Ok(()), "{good}");
    }
    for (bad, says) in [
        ("", "invalid URL"),
        ("hook:8080/auth", "http:// or https://"),
        ("ftp://hook/auth", "http:// or https://"),
        ("/auth", "http:// or https://"),
        ("http://", "invalid URL"),
        ("http://user:secret@hook/auth", "bearer_token_file"),
        ("http://hook /auth", "invalid URL"),
    ] {
        match AuthHookConfig::with_url(bad).check() {
            Err(error @ AuthHookError::InvalidUrl(_)) => {
                assert!(error.to_string().contains(says), "{bad}: {error}")
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
    let with_query = AuthHookConfig::with_url("https://hook/auth?key=secret#frag");
    assert_eq!(with_query.display_url(), "https://hook/auth");
}

#[test]
fn a_fallback_to_the_internal_database_needs_hook_first() {
    let mut config = AuthHookConfig::with_url("http://hook/");
    config.on_error = HookOnError::Internal;
    assert_eq!(config.check(), Err(AuthHookError::FallbackNeedsHookFirst));
    config.order = HookOrder::HookFirst;
    assert_eq!(config.check(), Ok(()));
}

#[test]
fn the_ca_file_must_hold_certificates() {
    let pki = Pki::new("ca-file");
    let mut config = AuthHookConfig::with_url("https://hook/");
    config.ca_file = Some(pki.dir.join("missing.pem"));
    assert!(matches!(config.check(), Err(AuthHookError::CaFile { .. })));
    config.ca_file = Some(pki.write("empty.pem", "not a certificate\n"));
    match config.check() {
        Err(AuthHookError::CaFile { reason, .. }) => assert!(reason.contains("no certificate")),
        other => panic!("{other:?}"),
    }
    config.ca_file = Some(pki.write("ca.pem", &pki.ca_pem));
    assert_eq!(config.check(), Ok(()));
    // A plain http:// hook does not read the file at all.
    config.url = "http://hook/".into();
    config.ca_file = Some(pki.dir.join("missing.pem"));
    assert_eq!(config.check(), Ok(()));
}

#[test]
fn a_bearer_token_must_be_a_header_value() {
    let mut config = AuthHookConfig::with_url("http://hook/");
    config.bearer_token = Some(BearerToken("line\nbreak".into()));
    assert!(matches!(
        AuthHook::new(config),
        Err(AuthHookError::InvalidToken)
    ));
    assert_eq!(
        format!("{:?}", BearerToken("s3cret".into())),
        "BearerToken(..)"
    );
}
