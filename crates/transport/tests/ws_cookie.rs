//! A JSON Web Token in a cookie of the WebSocket handshake (`[auth.jwt] cookie`): it
//! authenticates a CONNECT without a password, never overrides credentials the client sent,
//! and is ignored by listeners not configured for it.

mod common;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use ferrymq_auth::{AuthConfig, Authenticator, JwtAlgorithm, JwtConfig, JwtKey, JwtValidator};
use ferrymq_broker::{Broker, BrokerConfig};
use ferrymq_transport::WsConfig;
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::json;

const SECRET: &[u8] = b"cookie-test-secret";
const ORIGIN: &str = "https://app.example.com";
/// CONNACK codes as the decoder reports them (v3's 4 and 5 map to these v5 codes).
const BAD_CREDENTIALS: u8 = 0x86;
const NOT_AUTHORIZED: u8 = 0x87;

fn jwt_broker() -> Arc<Broker> {
    let jwt = JwtConfig {
        algorithms: vec![JwtAlgorithm::HS256],
        keys: vec![JwtKey::Secret {
            secret: SECRET.to_vec(),
            kid: None,
        }],
        ..JwtConfig::default()
    };
    let auth = Authenticator::new(AuthConfig::default())
        .unwrap()
        .with_jwt(JwtValidator::new(jwt).unwrap());
    Broker::new(BrokerConfig::default(), auth)
}

fn token(user: &str, secret: &[u8]) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 300;
    let claims = json!({"sub": user, "exp": exp, "scope": "ferrymq.subscribe:%2F/chat/#"});
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret).unwrap(),
    )
    .unwrap()
}

fn cookie_listener(broker: &Arc<Broker>) -> std::net::SocketAddr {
    let config = WsConfig {
        allowed_origins: vec![ORIGIN.parse().unwrap()],
        token_cookie: Some("mqtt_token".to_owned()),
        ..WsConfig::default()
    };
    start_ws(broker, config, None)
}

#[tokio::test]
async fn the_cookie_token_authenticates_a_connect_without_password() {
    let broker = jwt_broker();
    let addr = cookie_listener(&broker);
    let cookie = format!("theme=dark; mqtt_token={}; lang=en", token("web", SECRET));
    let headers = [("origin", ORIGIN), ("cookie", cookie.as_str())];
    let mut client = ws_client(addr, "/ws", &headers).await;
    assert_eq!(client.login("c1", None, None).await, 0);
    // The same user name as the token's is accepted too (mqtt.js may send one).
    let mut client = ws_client(addr, "/ws", &headers).await;
    assert_eq!(client.login("c2", Some("web"), None).await, 0);
    // Another user name with the cookie: someone else's token, bad credentials.
    let mut client = ws_client(addr, "/ws", &headers).await;
    assert_eq!(
        client.login("c3", Some("admin"), None).await,
        BAD_CREDENTIALS
    );
}

#[tokio::test]
async fn a_forged_or_missing_cookie_is_bad_credentials() {
    let broker = jwt_broker();
    let addr = cookie_listener(&broker);
    let forged = format!("mqtt_token={}", token("web", b"some-other-secret"));
    let headers = [("origin", ORIGIN), ("cookie", forged.as_str())];
    let mut client = ws_client(addr, "/ws", &headers).await;
    assert_eq!(client.login("forged", None, None).await, BAD_CREDENTIALS);
    // No cookie and no password: anonymous, which the default config refuses.
    let mut client = ws_client(addr, "/ws", &[("origin", ORIGIN)]).await;
    assert_eq!(client.login("none", None, None).await, NOT_AUTHORIZED);
}

#[tokio::test]
async fn a_password_in_connect_wins_over_the_cookie() {
    let broker = jwt_broker();
    let addr = cookie_listener(&broker);
    let cookie = format!("mqtt_token={}", token("web", SECRET));
    let headers = [("origin", ORIGIN), ("cookie", cookie.as_str())];
    // guest/guest is a valid login from loopback: the cookie plays no part.
    let mut client = ws_client(addr, "/ws", &headers).await;
    assert_eq!(client.login("pw", Some("guest"), Some("guest")).await, 0);
    // A wrong password is not rescued by a valid cookie.
    let mut client = ws_client(addr, "/ws", &headers).await;
    assert_eq!(
        client.login("bad", Some("guest"), Some("nope")).await,
        BAD_CREDENTIALS
    );
}

#[tokio::test]
async fn listeners_without_token_cookie_ignore_cookies() {
    let broker = jwt_broker();
    let addr = start_ws(&broker, WsConfig::default(), None);
    let cookie = format!("mqtt_token={}", token("web", SECRET));
    let headers = [("origin", ORIGIN), ("cookie", cookie.as_str())];
    let mut client = ws_client(addr, "/ws", &headers).await;
    assert_eq!(client.login("ignored", None, None).await, NOT_AUTHORIZED);
}
