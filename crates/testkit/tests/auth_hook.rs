//! The HTTP authentication hook end to end: a tiny HTTP server in the test plays the
//! operator's user store, the broker asks it about CONNECTs. What the hook is told (user,
//! vhost, client id, real address), that its rights are enforced and nothing more, refusals
//! and their CONNACK codes, failures under both `on_error` policies, the answer cache, the
//! internal database first, and `expires_at`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ferrymq_auth::PasswordHash;
use ferrymq_auth::Permissions;
use ferrymq_auth::definitions::{Definitions, PermissionRecord, UserRecord, VhostRecord};
use ferrymq_testkit::codec::{Packet, ProtocolVersion, QoS, ReasonCode};
use ferrymq_testkit::{
    AuthHookConfig, HookOnError, HookOrder, RawClient, TestBroker, WAIT, connect, publish,
    subscribe,
};
use ferrymq_transport::proxy::TrustedProxies;
use ferrymq_transport::{MqttListenerOptions, ProxyOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use ProtocolVersion::{V3_1_1, V5};

/// What the test hook answers to one request.
struct Reply {
    status: u16,
    body: Value,
    delay: Duration,
}

fn answer(body: Value) -> Reply {
    Reply {
        status: 200,
        body,
        delay: Duration::ZERO,
    }
}

type Responder = dyn Fn(&Value) -> Reply + Send + Sync;

/// The operator's user store: an HTTP server that records each request's JSON body and
/// answers with `respond`. One request per connection (`Connection: close`).
struct Hook {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Value>>>,
}

impl Hook {
    async fn start(respond: impl Fn(&Value) -> Reply + Send + Sync + 'static) -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let respond: Arc<Responder> = Arc::new(respond);
        let recorded = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (respond, recorded) = (Arc::clone(&respond), Arc::clone(&recorded));
                tokio::spawn(serve(stream, respond, recorded));
            }
        });
        Hook { addr, seen }
    }

    /// The store of these tests: dave/dave-pw may publish under devices/{client_id}/ and
    /// subscribe to devices/#; "slow" is answered after 3 s; everyone else is denied.
    async fn store() -> Hook {
        Hook::start(|request| {
            let user = request["username"].as_str().unwrap_or_default();
            let password = request["password"].as_str().unwrap_or_default();
            match (user, password) {
                ("dave", "dave-pw") => answer(json!({
                    "result": "allow",
                    "publish": ["devices/{client_id}/#"],
                    "subscribe": ["devices/#"],
                })),
                ("slow", _) => Reply {
                    delay: Duration::from_secs(3),
                    ..answer(json!({"result": "allow"}))
                },
                _ => answer(json!({"result": "deny"})),
            }
        })
        .await
    }

    fn url(&self) -> String {
        format!("http://{}/mqtt/auth", self.addr)
    }

    fn seen(&self) -> Vec<Value> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

async fn serve(mut stream: TcpStream, respond: Arc<Responder>, seen: Arc<Mutex<Vec<Value>>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_end, length) = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (end + 4, length);
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    while buf.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let request: Value = serde_json::from_slice(&buf[head_end..]).unwrap_or(Value::Null);
    let reply = respond(&request);
    seen.lock().unwrap_or_else(|p| p.into_inner()).push(request);
    tokio::time::sleep(reply.delay).await;
    let body = reply.body.to_string();
    let response = format!(
        "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        reply.status,
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
}

/// argon2id of "pw" with cheap parameters (m=8 KiB, t=1).
fn cheap_hash() -> PasswordHash {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(8, 1, 1, None).expect("params");
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::from_b64("c2FsdHNhbHRzYWx0").expect("salt");
    PasswordHash::Argon2id(argon.hash_password(b"pw", &salt).expect("hash").to_string())
}

/// An internal user "admin" (password "pw") with full rights in "/" and "tenant".
fn definitions() -> Definitions {
    let vhost = |name: &str| VhostRecord {
        name: name.into(),
        description: String::new(),
        max_connections: None,
    };
    let grant = |vhost: &str| PermissionRecord {
        user: "admin".into(),
        vhost: vhost.into(),
        permissions: Permissions::full(),
    };
    Definitions {
        users: vec![UserRecord {
            name: "admin".into(),
            password_hash: cheap_hash(),
            tags: vec![],
            max_connections: None,
        }],
        vhosts: vec![vhost("/"), vhost("tenant"), vhost("web")],
        permissions: vec![grant("/"), grant("tenant")],
    }
}

fn hook_config(hook: &Hook) -> AuthHookConfig {
    AuthHookConfig::with_url(hook.url())
}

async fn broker_with(config: AuthHookConfig) -> TestBroker {
    let broker = TestBroker::builder().auth_hook(config).start().await;
    broker.broker().auth().replace_definitions(&definitions());
    broker
}

async fn connack(broker: &TestBroker, connect: ferrymq_testkit::ConnectBuilder) -> ReasonCode {
    let mut client = RawClient::connect(broker.addr(), connect).await;
    client.expect_connack(WAIT).await.reason_code
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

#[tokio::test]
async fn an_allowed_user_gets_the_hooks_rights_and_nothing_more() {
    let hook = Hook::store().await;
    let broker = broker_with(hook_config(&hook)).await;
    let dave = |id: &str| connect(V5, id).credentials("dave", "dave-pw");
    let (mut dev, _) = RawClient::connect_ok(broker.addr(), dave("dev1")).await;
    let suback = dev
        .subscribe(
            subscribe(1, "devices/#", QoS::AtLeastOnce)
                .filter("other/#", ferrymq_testkit::options(QoS::AtLeastOnce)),
        )
        .await;
    assert_eq!(
        suback.reason_codes,
        vec![ReasonCode::GrantedQoS1, ReasonCode::NotAuthorized]
    );
    assert_eq!(
        dev.publish_acked(publish("devices/dev1/temp", "21").qos1(2))
            .await,
        ReasonCode::Success
    );
    assert_eq!(dev.expect_publish(WAIT).await.topic, "devices/dev1/temp");
    for topic in ["devices/dev2/temp", "elsewhere", "$SYS/x"] {
        assert_eq!(
            dev.publish_acked(publish(topic, "x").qos1(3)).await,
            ReasonCode::NotAuthorized,
            "{topic}"
        );
    }
    assert_eq!(broker.metric("publishes_denied"), 3);

    let seen = hook.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0]["peer_port"].as_u64().map(|port| port > 0),
        Some(true)
    );
    let mut request = seen[0].clone();
    request
        .as_object_mut()
        .map(|fields| fields.remove("peer_port"));
    assert_eq!(
        request,
        json!({
            "username": "dave",
            "password": "dave-pw",
            "client_id": "dev1",
            "vhost": "/",
            "peer_address": "127.0.0.1",
            "protocol_version": 5,
            "transport": "tcp",
        })
    );
}

#[tokio::test]
async fn a_denied_user_gets_bad_credentials_and_counts_for_the_throttle() {
    let hook = Hook::store().await;
    let broker = TestBroker::builder()
        .auth_hook(hook_config(&hook))
        .limits(|l| l.max_failed_logins = 3)
        .start()
        .await;
    let bad = |protocol, id: &str| connect(protocol, id).credentials("dave", "wrong");
    assert_eq!(
        connack(&broker, bad(V5, "a")).await,
        ReasonCode::BadUserNameOrPassword
    );
    assert_eq!(connack(&broker, bad(V3_1_1, "b")).await.to_v3_connack(), 4);
    assert_eq!(
        connack(&broker, bad(V5, "c")).await,
        ReasonCode::BadUserNameOrPassword
    );
    assert_eq!(broker.metric("auth_failures"), 3);
    // The address is blocked now: refused before the hook is asked.
    assert_eq!(
        connack(&broker, connect(V5, "d").credentials("dave", "dave-pw")).await,
        ReasonCode::ConnectionRateExceeded
    );
    assert_eq!(hook.seen().len(), 3);
}

#[tokio::test]
async fn a_hook_that_does_not_answer_in_time_refuses_with_server_unavailable() {
    let hook = Hook::store().await;
    let mut config = hook_config(&hook);
    config.timeout = Duration::from_millis(300);
    let broker = TestBroker::builder()
        .auth_hook(config)
        .limits(|l| l.max_failed_logins = 1)
        .start()
        .await;
    for _ in 0..2 {
        assert_eq!(
            connack(&broker, connect(V5, "s").credentials("slow", "pw")).await,
            ReasonCode::ServerUnavailable,
            "not throttled: the hook failed, not the client"
        );
    }
    assert_eq!(
        connack(&broker, connect(V3_1_1, "s").credentials("slow", "pw"))
            .await
            .to_v3_connack(),
        3
    );
    assert_eq!(broker.metric("auth_hook_errors"), 3);
    assert_eq!(broker.metric("auth_failures"), 0);
    assert_eq!(broker.metric("logins_throttled"), 0);
}

#[tokio::test]
async fn with_on_error_internal_the_internal_database_decides_while_the_hook_is_down() {
    let fallback = |hook: &Hook| {
        let mut config = hook_config(hook);
        config.timeout = Duration::from_millis(300);
        config.order = HookOrder::HookFirst;
        config.on_error = HookOnError::Internal;
        config
    };
    // Too slow: admin, whom the database knows, gets in all the same.
    let slow = Hook::start(|_| Reply {
        delay: Duration::from_secs(3),
        ..answer(json!({"result": "deny"}))
    })
    .await;
    let broker = broker_with(fallback(&slow)).await;
    RawClient::connect_ok(broker.addr(), connect(V5, "a").credentials("admin", "pw")).await;
    assert_eq!(broker.metric("auth_hook_errors"), 1);

    let hook_down = Hook::start(|_| Reply {
        status: 503,
        body: json!({}),
        delay: Duration::ZERO,
    })
    .await;
    let broker = broker_with(fallback(&hook_down)).await;
    RawClient::connect_ok(broker.addr(), connect(V5, "a").credentials("admin", "pw")).await;
    assert_eq!(
        connack(&broker, connect(V5, "b").credentials("dave", "dave-pw")).await,
        ReasonCode::BadUserNameOrPassword,
        "the database does not know dave"
    );
    assert_eq!(hook_down.seen().len(), 2, "hook_first asks about everyone");
    assert_eq!(broker.metric("auth_hook_errors"), 2);

    // With hook_first, an answer is final even for a user the database knows.
    let hook = Hook::store().await;
    let broker = {
        let mut config = hook_config(&hook);
        config.order = HookOrder::HookFirst;
        broker_with(config).await
    };
    assert_eq!(
        connack(&broker, connect(V5, "c").credentials("admin", "pw")).await,
        ReasonCode::BadUserNameOrPassword
    );
}

#[tokio::test]
async fn internal_users_are_not_sent_to_the_hook() {
    let hook = Hook::store().await;
    // No user anywhere: the built-in guest exists, and the hook never hears of it.
    let guest_only = TestBroker::builder()
        .auth_hook(hook_config(&hook))
        .start()
        .await;
    RawClient::connect_ok(guest_only.addr(), connect(V5, "g")).await;
    assert!(hook.seen().is_empty());

    let broker = broker_with(hook_config(&hook)).await;
    RawClient::connect_ok(broker.addr(), connect(V5, "a").credentials("admin", "pw")).await;
    assert_eq!(
        connack(
            &broker,
            connect(V5, "b").credentials("tenant:admin", "wrong")
        )
        .await,
        ReasonCode::BadUserNameOrPassword,
        "a wrong password of an internal user is not a question for the hook"
    );
    assert!(hook.seen().is_empty());
    RawClient::connect_ok(
        broker.addr(),
        connect(V5, "d").credentials("dave", "dave-pw"),
    )
    .await;
    assert_eq!(hook.seen().len(), 1);
    assert_eq!(broker.metric("auth_hook_requests"), 1);
}

#[tokio::test]
async fn answers_are_cached_for_the_same_question() {
    let hook = Hook::store().await;
    let broker = broker_with(hook_config(&hook)).await;
    for _ in 0..2 {
        let (client, _) = RawClient::connect_ok(
            broker.addr(),
            connect(V5, "dev1").credentials("dave", "dave-pw"),
        )
        .await;
        client.disconnect().await;
    }
    for _ in 0..2 {
        assert_eq!(
            connack(&broker, connect(V5, "dev1").credentials("dave", "nope")).await,
            ReasonCode::BadUserNameOrPassword
        );
    }
    assert_eq!(hook.seen().len(), 2, "one request per distinct question");
    assert_eq!(broker.metric("auth_hook_requests"), 2);
    assert_eq!(broker.metric("auth_hook_cache_hits"), 2);
    // Another client id is another question.
    RawClient::connect_ok(
        broker.addr(),
        connect(V5, "dev2").credentials("dave", "dave-pw"),
    )
    .await;
    assert_eq!(hook.seen().len(), 3);
}

#[tokio::test]
async fn the_hook_sees_the_selected_vhost_and_the_real_address() {
    let hook = Hook::start(|request| {
        answer(json!({"result": "allow", "publish": [format!("{}/#", request["client_id"].as_str().unwrap_or("x"))]}))
    })
    .await;
    let trusted = TrustedProxies::new(vec!["127.0.0.0/8".parse().expect("net")]);
    let broker = TestBroker::builder()
        .auth_hook(hook_config(&hook))
        .listener(MqttListenerOptions {
            proxy: ProxyOptions {
                proxy_protocol: true,
                trusted: Arc::new(trusted),
            },
            tls: None,
            vhost: Some(Arc::from("web")),
            hibernate_after: None,
        })
        .start()
        .await;
    broker.broker().auth().replace_definitions(&definitions());
    for (username, client_id) in [("tenant:dave", "c1"), ("carol", "c2")] {
        let mut client = RawClient::open(broker.addr()).await.expect("connect");
        client
            .send_bytes(b"PROXY TCP4 203.0.113.9 127.0.0.1 40001 1883\r\n")
            .await;
        client
            .send(Packet::Connect(Box::new(
                connect(V3_1_1, client_id)
                    .credentials(username, "pw")
                    .build(),
            )))
            .await;
        assert_eq!(
            client.expect_connack(WAIT).await.reason_code,
            ReasonCode::Success
        );
    }
    let seen = hook.seen();
    let fields = |i: usize| {
        let r: &Value = &seen[i];
        (
            r["username"].clone(),
            r["vhost"].clone(),
            r["listener_vhost"].clone(),
            r["peer_address"].clone(),
            r["peer_port"].clone(),
            r["protocol_version"].clone(),
        )
    };
    assert_eq!(
        fields(0),
        (
            json!("dave"),
            json!("tenant"),
            json!("web"),
            json!("203.0.113.9"),
            json!(40001),
            json!(4)
        )
    );
    assert_eq!(fields(1).0, json!("carol"));
    assert_eq!(fields(1).1, json!("web"), "no prefix: the listener's vhost");
}

#[tokio::test]
async fn the_hook_may_move_a_client_to_a_vhost_that_exists() {
    let hook = Hook::start(|request| {
        let vhost = request["username"].as_str().unwrap_or_default();
        answer(json!({"result": "allow", "vhost": vhost, "publish": ["#"]}))
    })
    .await;
    let broker = broker_with(hook_config(&hook)).await;
    let (mut watcher, _) = RawClient::connect_ok(
        broker.addr(),
        connect(V5, "w").credentials("tenant:admin", "pw"),
    )
    .await;
    watcher
        .subscribe(subscribe(1, "news/#", QoS::AtMostOnce))
        .await;
    // The user named "tenant" is sent to the vhost "tenant", whatever it asked for.
    let (mut moved, _) = RawClient::connect_ok(
        broker.addr(),
        connect(V5, "m").credentials("web:tenant", "x"),
    )
    .await;
    moved.send(publish("news/today", "moved")).await;
    assert_eq!(
        watcher.expect_publish(WAIT).await.payload,
        Bytes::from_static(b"moved")
    );
    assert_eq!(
        connack(&broker, connect(V5, "g").credentials("ghost", "x")).await,
        ReasonCode::NotAuthorized,
        "the vhost ghost does not exist"
    );
}

#[tokio::test]
async fn binary_passwords_reach_the_hook_as_base64() {
    let hook = Hook::start(|_| answer(json!({"result": "deny"}))).await;
    let broker = broker_with(hook_config(&hook)).await;
    let binary = connect(V5, "b")
        .credentials("dave", "")
        .with(|c| c.password = Some(Bytes::from_static(&[0xff, 0xfe, 0x00])));
    assert_eq!(
        connack(&broker, binary).await,
        ReasonCode::BadUserNameOrPassword
    );
    let seen = hook.seen();
    assert_eq!(seen[0]["password_base64"], json!("//4A"));
    assert_eq!(seen[0].get("password"), None);
}

#[tokio::test]
async fn the_connection_closes_when_the_hooks_grant_expires() {
    let hook =
        Hook::start(|_| answer(json!({"result": "allow", "expires_at": unix_now() + 2}))).await;
    let broker = broker_with(hook_config(&hook)).await;
    let (mut client, _) =
        RawClient::connect_ok(broker.addr(), connect(V5, "e").credentials("dave", "x")).await;
    client
        .expect_disconnect_and_close(ReasonCode::MaximumConnectTime)
        .await;
    // An answer that already expired is a deny.
    let expired =
        Hook::start(|_| answer(json!({"result": "allow", "expires_at": unix_now() - 1}))).await;
    let broker = broker_with(hook_config(&expired)).await;
    assert_eq!(
        connack(&broker, connect(V5, "x").credentials("dave", "x")).await,
        ReasonCode::BadUserNameOrPassword
    );
}
