//! JWT authentication for browser apps: a token in the password field (or in v5
//! Authentication Data with method `JWT`), its scopes as permissions, the connection closed
//! when the token expires, and AUTH re-authentication with a fresh token.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ferrymq_auth::definitions::{Definitions, VhostRecord};
use ferrymq_auth::{JwtAlgorithm, JwtConfig, JwtKey};
use ferrymq_testkit::codec::{Auth, AuthProperties, Packet, ProtocolVersion, QoS, ReasonCode};
use ferrymq_testkit::{QUIET, RawClient, TestBroker, WAIT, connect, publish, subscribe};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use ProtocolVersion::{V3_1_1, V5};

const SECRET: &[u8] = b"jwt-integration-test-secret";

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn config() -> JwtConfig {
    JwtConfig {
        algorithms: vec![JwtAlgorithm::HS256],
        keys: vec![JwtKey::Secret {
            secret: SECRET.to_vec(),
            kid: None,
        }],
        audience: Some("ferrymq".into()),
        issuer: Some("https://idp.test".into()),
        // No leeway, so that expiry tests need not wait for it.
        leeway_secs: 0,
        ..JwtConfig::default()
    }
}

async fn broker() -> TestBroker {
    let broker = TestBroker::builder().jwt(config()).start().await;
    broker.broker().auth().replace_definitions(&Definitions {
        vhosts: vec![VhostRecord {
            name: "public".into(),
            description: String::new(),
            max_connections: None,
        }],
        ..Definitions::default()
    });
    broker
}

/// Claims of a token for user `web` in vhost `public`, valid for `secs` seconds, that may
/// publish to `chat/#` and subscribe to `chat/#` and `news/#`.
fn claims(secs: u64) -> Value {
    json!({
        "sub": "web",
        "aud": "ferrymq",
        "iss": "https://idp.test",
        "exp": unix_now() + secs,
        "vhost": "public",
        "scope": "ferrymq.publish:public/chat/# ferrymq.subscribe:public/chat/# ferrymq.subscribe:public/news/#",
    })
}

fn sign(claims: &Value, secret: &[u8]) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret).expect("key"),
    )
    .expect("sign")
}

fn token(claims: &Value) -> String {
    sign(claims, SECRET)
}

/// A v5 CONNECT with the token as Authentication Data, method `JWT`.
fn jwt_method_connect(id: &str, token: &str) -> ferrymq_testkit::ConnectBuilder {
    let data = Bytes::from(token.to_owned());
    connect(V5, id)
        .anonymous()
        .authentication_method("JWT")
        .with(|c| c.properties.authentication_data = Some(data))
}

fn reauth(token: &str, method: &str) -> Packet {
    Packet::Auth(Box::new(Auth {
        reason_code: ReasonCode::ReAuthenticate,
        properties: AuthProperties {
            authentication_method: Some(method.to_owned()),
            authentication_data: Some(Bytes::from(token.to_owned())),
            ..AuthProperties::default()
        },
    }))
}

#[tokio::test]
async fn token_in_the_password_grants_its_scopes() {
    let broker = broker().await;
    let jwt = token(&claims(60));
    // The user name may be empty or the token's user name.
    for (protocol, username) in [(V5, ""), (V3_1_1, "web")] {
        let (mut c, _) = RawClient::connect_ok(
            broker.addr(),
            connect(protocol, "browser").credentials(username, &jwt),
        )
        .await;
        let suback = c
            .subscribe(
                subscribe(1, "chat/#", QoS::AtLeastOnce)
                    .filter("admin/#", ferrymq_testkit::options(QoS::AtLeastOnce)),
            )
            .await;
        assert_eq!(suback.reason_codes[0], ReasonCode::GrantedQoS1);
        assert!(suback.reason_codes[1].is_error(), "{protocol:?}");
        assert_eq!(
            c.publish_acked(publish("chat/room", "hi").qos1(2)).await,
            ReasonCode::Success
        );
        assert_eq!(
            c.expect_publish(WAIT).await.payload,
            Bytes::from_static(b"hi")
        );
        if protocol == V5 {
            assert_eq!(
                c.publish_acked(publish("news/today", "no").qos1(3)).await,
                ReasonCode::NotAuthorized
            );
        }
        c.disconnect().await;
    }
}

#[tokio::test]
async fn the_token_vhost_isolates_its_clients() {
    let broker = broker().await;
    let (mut browser, _) = RawClient::connect_ok(
        broker.addr(),
        connect(V5, "browser").credentials("", &token(&claims(60))),
    )
    .await;
    browser
        .subscribe(subscribe(1, "chat/#", QoS::AtMostOnce))
        .await;
    // guest/guest lands in "/": same topic, another vhost.
    let (mut root, _) = RawClient::connect_ok(
        broker.addr(),
        connect(V5, "root").credentials("guest", "guest"),
    )
    .await;
    root.publish_acked(publish("chat/room", "root").qos1(1))
        .await;
    browser.expect_nothing(QUIET).await;
}

#[tokio::test]
async fn bad_tokens_are_bad_credentials() {
    let broker = broker().await;
    let expired = with(claims(60), "exp", json!(unix_now() - 10));
    let wrong_audience = with(claims(60), "aud", json!("someone-else"));
    let wrong_issuer = with(claims(60), "iss", json!("https://evil.test"));
    let cases = [
        ("expired", token(&expired)),
        ("wrong signature", sign(&claims(60), b"not-the-secret")),
        ("wrong audience", token(&wrong_audience)),
        ("wrong issuer", token(&wrong_issuer)),
        // A token for another user than the CONNECT's user name.
        (
            "user mismatch",
            token(&with(claims(60), "sub", json!("admin"))),
        ),
    ];
    for (what, jwt) in &cases {
        let username = if *what == "user mismatch" { "web" } else { "" };
        let mut c =
            RawClient::connect(broker.addr(), connect(V5, "c").credentials(username, jwt)).await;
        assert_eq!(
            c.expect_connack(WAIT).await.reason_code,
            ReasonCode::BadUserNameOrPassword,
            "{what} (v5)"
        );
        let mut c = RawClient::connect(
            broker.addr(),
            connect(V3_1_1, "c").credentials(username, jwt),
        )
        .await;
        assert_eq!(
            c.expect_connack(WAIT).await.reason_code.to_v3_connack(),
            4,
            "{what} (v3)"
        );
    }
}

#[tokio::test]
async fn a_token_for_an_unknown_vhost_is_not_authorized() {
    let broker = broker().await;
    let jwt = token(&with(claims(60), "vhost", json!("nowhere")));
    let mut c = RawClient::connect(broker.addr(), connect(V5, "c").credentials("", &jwt)).await;
    assert_eq!(
        c.expect_connack(WAIT).await.reason_code,
        ReasonCode::NotAuthorized
    );
    let mut c = RawClient::connect(broker.addr(), connect(V3_1_1, "c").credentials("", &jwt)).await;
    assert_eq!(c.expect_connack(WAIT).await.reason_code.to_v3_connack(), 5);
}

#[tokio::test]
async fn the_connection_closes_when_the_token_expires() {
    let broker = broker().await;
    let jwt = token(&claims(2));
    let started = Instant::now();
    let (mut v5, _) =
        RawClient::connect_ok(broker.addr(), connect(V5, "v5").credentials("", &jwt)).await;
    let (mut v3, _) =
        RawClient::connect_ok(broker.addr(), connect(V3_1_1, "v3").credentials("", &jwt)).await;
    // exp has one-second granularity: the token lives between 1 and 2 more seconds.
    let raw = v5.expect_raw(Duration::from_secs(4)).await;
    assert_eq!(
        raw.as_ref(),
        [0xE0, 0x01, ReasonCode::MaximumConnectTime.as_u8()]
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
    v5.expect_closed(WAIT).await;
    v3.expect_closed(WAIT).await;
}

#[tokio::test]
async fn the_jwt_method_echoes_and_reauthentication_extends_the_session() {
    let broker = broker().await;
    let started = Instant::now();
    let (mut c, connack) = RawClient::connect_ok(
        broker.addr(),
        jwt_method_connect("renewing", &token(&claims(2))),
    )
    .await;
    assert_eq!(
        connack.properties.authentication_method.as_deref(),
        Some("JWT")
    );
    c.subscribe(subscribe(1, "chat/#", QoS::AtLeastOnce)).await;
    // A fresh token, narrower: no more publishing.
    let mut fresh = claims(60);
    fresh["scope"] = json!("ferrymq.subscribe:public/chat/#");
    c.send(reauth(&token(&fresh), "JWT")).await;
    match c.expect_packet(WAIT).await {
        Packet::Auth(auth) => {
            assert_eq!(auth.reason_code, ReasonCode::Success);
            assert_eq!(
                auth.properties.authentication_method.as_deref(),
                Some("JWT")
            );
        }
        other => panic!("expected AUTH, got {other:?}"),
    }
    // Past the first token's expiry, the connection is still there.
    let past_old_expiry = Duration::from_secs(3).saturating_sub(started.elapsed());
    c.expect_nothing(past_old_expiry).await;
    assert_eq!(
        c.publish_acked(publish("chat/room", "x").qos1(2)).await,
        ReasonCode::NotAuthorized
    );
    c.ping().await;
}

#[tokio::test]
async fn reauthentication_as_someone_else_is_refused() {
    let broker = broker().await;
    for (fresh, method, reason) in [
        (
            with(claims(60), "sub", json!("admin")),
            "JWT",
            ReasonCode::NotAuthorized,
        ),
        (
            with(claims(60), "vhost", json!("/")),
            "JWT",
            ReasonCode::NotAuthorized,
        ),
        (
            with(claims(60), "aud", json!("other")),
            "JWT",
            ReasonCode::NotAuthorized,
        ),
        (
            claims(60),
            "SCRAM-SHA-1",
            ReasonCode::BadAuthenticationMethod,
        ),
    ] {
        let (mut c, _) =
            RawClient::connect_ok(broker.addr(), jwt_method_connect("c", &token(&claims(60))))
                .await;
        c.send(reauth(&token(&fresh), method)).await;
        c.expect_disconnect_and_close(reason).await;
    }
}

#[tokio::test]
async fn auth_is_a_protocol_error_for_a_password_login() {
    let broker = broker().await;
    let (mut c, _) = RawClient::connect_ok(
        broker.addr(),
        connect(V5, "c").credentials("", &token(&claims(60))),
    )
    .await;
    c.send(reauth(&token(&claims(60)), "JWT")).await;
    c.expect_disconnect_and_close(ReasonCode::ProtocolError)
        .await;
}

#[tokio::test]
async fn other_methods_and_jwt_when_off_are_bad_authentication_methods() {
    let broker = broker().await;
    let mut c = RawClient::connect(
        broker.addr(),
        connect(V5, "c")
            .anonymous()
            .authentication_method("SCRAM-SHA-1"),
    )
    .await;
    assert_eq!(
        c.expect_connack(WAIT).await.reason_code,
        ReasonCode::BadAuthenticationMethod
    );
    let off = TestBroker::start().await;
    let mut c = RawClient::connect(off.addr(), jwt_method_connect("c", &token(&claims(60)))).await;
    assert_eq!(
        c.expect_connack(WAIT).await.reason_code,
        ReasonCode::BadAuthenticationMethod
    );
    // With JWT off, a token in the password field is just a wrong password.
    let mut c = RawClient::connect(
        off.addr(),
        connect(V5, "c").credentials("web", &token(&claims(60))),
    )
    .await;
    assert_eq!(
        c.expect_connack(WAIT).await.reason_code,
        ReasonCode::BadUserNameOrPassword
    );
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}
