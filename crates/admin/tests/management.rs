//! The management API in process, driven over HTTP by the crate's own client: logins and
//! tags (401, 403, 429, guest on loopback), each endpoint's happy and error paths, changes
//! applying to the running broker at once, connections listed and closed, /metrics.

use std::sync::Arc;
use std::time::Duration;

use ferrymq_admin::client::{ApiClient, ApiResponse, Method};
use ferrymq_admin::definitions::{Database, Live};
use ferrymq_admin::{ManagementConfig, router, serve};
use ferrymq_auth::{
    Definitions, PasswordHash, PermissionRecord, Permissions, Tag, UserRecord, VhostRecord,
};
use ferrymq_testkit::codec::{ProtocolVersion, QoS, ReasonCode};
use ferrymq_testkit::{RawClient, TestBroker, TestBrokerBuilder, connect, publish, subscribe};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const RABBIT: &str = include_str!("../../auth/tests/fixtures/rabbit-definitions.json");

fn user(name: &str, tags: Vec<Tag>) -> UserRecord {
    UserRecord {
        name: name.into(),
        // A RabbitMQ hash: fast to verify, so the tests do not wait for argon2.
        password_hash: PasswordHash::rabbit_sha256([1, 2, 3, 4], &format!("{name}-pw")),
        tags,
        max_connections: None,
    }
}

fn vhost(name: &str) -> VhostRecord {
    VhostRecord {
        name: name.into(),
        description: String::new(),
        max_connections: None,
    }
}

fn grant(user: &str, vhost: &str) -> PermissionRecord {
    PermissionRecord {
        user: user.into(),
        vhost: vhost.into(),
        permissions: Permissions::full(),
    }
}

/// admin (administrator), mon (monitoring), viewer (management, in vhost `a` only),
/// device (no tag), in vhosts `/` and `a`.
fn database() -> Definitions {
    Definitions {
        users: vec![
            user("admin", vec![Tag::Administrator]),
            user("mon", vec![Tag::Monitoring]),
            user("viewer", vec![Tag::Management]),
            user("device", vec![]),
        ],
        vhosts: vec![vhost("/"), vhost("a")],
        permissions: vec![
            grant("admin", "/"),
            grant("viewer", "a"),
            grant("device", "/"),
        ],
    }
}

struct Api {
    broker: TestBroker,
    url: String,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn start(definitions: Definitions) -> Api {
        Api::start_with(
            definitions,
            TestBroker::builder(),
            ManagementConfig::default(),
        )
        .await
    }

    async fn start_with(
        definitions: Definitions,
        builder: TestBrokerBuilder,
        config: ManagementConfig,
    ) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let database = Arc::new(Database::in_data_dir(dir.path()));
        database.document().save(&definitions).unwrap();
        let (initial, stamp) = database.load_valid().unwrap();
        let broker = builder.start().await;
        broker.broker().auth().replace_definitions(&initial);
        let live = Arc::new(Live::new(
            Arc::clone(broker.broker()),
            database,
            initial,
            stamp,
        ));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = broker.broker().shutdown_token().clone();
        tokio::spawn(serve(listener, router(live, config), shutdown));
        Api {
            broker,
            url,
            _dir: dir,
        }
    }

    fn client(&self, user: &str) -> ApiClient {
        let password = format!("{user}-pw");
        ApiClient::new(&self.url, Some((user, password.as_str()))).unwrap()
    }

    fn anonymous(&self) -> ApiClient {
        ApiClient::new(&self.url, None).unwrap()
    }

    /// An MQTT 5 client logged in as `user` (`vhost:name` allowed).
    async fn mqtt(&self, user: &str, client_id: &str) -> RawClient {
        let name = user.rsplit(':').next().unwrap_or(user);
        let password = format!("{name}-pw");
        let login = connect(ProtocolVersion::V5, client_id).credentials(user, &password);
        RawClient::connect_ok(self.broker.addr(), login).await.0
    }
}

/// Sends `request` as is and returns the whole answer (for requests the client will not
/// make).
async fn raw_request(url: &str, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

async fn get(client: &ApiClient, path: &str) -> ApiResponse {
    client.get(path).await.unwrap()
}

async fn send(client: &ApiClient, method: Method, path: &str, body: Value) -> ApiResponse {
    client
        .send_json(method, path, body.to_string())
        .await
        .unwrap()
}

async fn delete(client: &ApiClient, path: &str) -> ApiResponse {
    client.request(Method::DELETE, path, None).await.unwrap()
}

fn json_of(response: &ApiResponse) -> Value {
    serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", response.text()))
}

/// Asserts the status and, for errors, the JSON error shape.
fn status(response: &ApiResponse, expected: u16) {
    assert_eq!(response.status, expected, "{}", response.text());
    if expected >= 400 {
        let body = json_of(response);
        assert!(
            body["error"].is_string() && body["reason"].is_string(),
            "{body}"
        );
    }
}

#[tokio::test]
async fn logins_and_tags() {
    let api = Api::start(database()).await;
    let response = get(&api.anonymous(), "/api/overview").await;
    status(&response, 401);
    let wrong = ApiClient::new(&api.url, Some(("admin", "nope"))).unwrap();
    status(&get(&wrong, "/api/overview").await, 401);
    let unknown = ApiClient::new(&api.url, Some(("ghost", "x"))).unwrap();
    status(&get(&unknown, "/api/whoami").await, 401);
    status(&get(&api.client("device"), "/api/overview").await, 403);

    let me = json_of(&get(&api.client("admin"), "/api/whoami").await);
    assert_eq!(me, json!({"name": "admin", "tags": ["administrator"]}));
    let overview = json_of(&get(&api.client("viewer"), "/api/overview").await);
    assert_eq!(overview["product_name"], "FerryMQ");
    assert!(
        overview["counters"]["messages_received"].is_u64(),
        "{overview}"
    );

    // Monitoring reads everything and changes nothing.
    let mon = api.client("mon");
    status(&get(&mon, "/api/users").await, 200);
    status(&get(&mon, "/api/definitions").await, 403);
    status(
        &send(&mon, Method::PUT, "/api/vhosts/b", json!({})).await,
        403,
    );
    // Management sees its own vhosts only.
    let viewer = api.client("viewer");
    let names: Vec<Value> = json_of(&get(&viewer, "/api/vhosts").await)
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("a")]);
    status(&get(&viewer, "/api/vhosts/%2F").await, 403);
    status(&get(&viewer, "/api/users").await, 403);
    let permissions = json_of(&get(&viewer, "/api/permissions").await);
    assert_eq!(permissions.as_array().unwrap().len(), 1, "{permissions}");

    // The health check needs no login; unknown paths are JSON 404s.
    status(&get(&api.anonymous(), "/api/healthz").await, 200);
    status(&get(&api.client("admin"), "/api/nothing").await, 404);
}

#[tokio::test]
async fn guest_is_an_administrator_on_loopback_while_no_user_exists() {
    let api = Api::start(Definitions::default()).await;
    let guest = ApiClient::new(&api.url, Some(("guest", "guest"))).unwrap();
    let me = json_of(&get(&guest, "/api/whoami").await);
    assert_eq!(me["tags"], json!(["administrator"]));
    // The first user makes the guest go, as in RabbitMQ.
    let body = json!({"password": "root-pw", "tags": "administrator"});
    status(
        &send(&guest, Method::PUT, "/api/users/root", body).await,
        201,
    );
    status(&get(&guest, "/api/whoami").await, 401);
    let root = ApiClient::new(&api.url, Some(("root", "root-pw"))).unwrap();
    status(&get(&root, "/api/whoami").await, 200);
}

#[tokio::test]
async fn failed_logins_are_throttled_per_address() {
    let builder = TestBroker::builder().limits(|l| {
        l.max_failed_logins = 2;
        l.failed_login_block = Duration::from_secs(60);
    });
    let api = Api::start_with(database(), builder, ManagementConfig::default()).await;
    let wrong = ApiClient::new(&api.url, Some(("admin", "nope"))).unwrap();
    status(&get(&wrong, "/api/whoami").await, 401);
    status(&get(&wrong, "/api/whoami").await, 401);
    let blocked = get(&api.client("admin"), "/api/whoami").await;
    status(&blocked, 429);
    // MQTT logins from the address are blocked too: one throttle.
    let login = connect(ProtocolVersion::V5, "c").credentials("admin", "admin-pw");
    let mut mqtt = RawClient::connect(api.broker.addr(), login).await;
    let ack = mqtt.expect_connack(Duration::from_secs(5)).await;
    assert_eq!(ack.reason_code, ReasonCode::ConnectionRateExceeded);
}

#[tokio::test]
async fn users_are_created_changed_and_deleted() {
    let api = Api::start(database()).await;
    let admin = api.client("admin");
    let body = json!({"password": "new-pw", "tags": ["monitoring"], "max_connections": 3});
    status(
        &send(&admin, Method::PUT, "/api/users/new", body).await,
        201,
    );
    let shown = json_of(&get(&admin, "/api/users/new").await);
    assert_eq!(
        shown,
        json!({"name": "new", "tags": ["monitoring"], "max_connections": 3, "hashing_algorithm": "argon2id"})
    );
    assert!(!get(&admin, "/api/users").await.text().contains("hash\""));
    // A change keeps what it does not mention; null lifts the limit.
    let body = json!({"tags": "management", "max_connections": null});
    status(
        &send(&admin, Method::PUT, "/api/users/new", body).await,
        204,
    );
    let shown = json_of(&get(&admin, "/api/users/new").await);
    assert_eq!(shown["tags"], json!(["management"]));
    assert_eq!(shown["max_connections"], Value::Null);
    let new = ApiClient::new(&api.url, Some(("new", "new-pw"))).unwrap();
    status(&get(&new, "/api/whoami").await, 200);

    // Refusals.
    let put = |name: &str, body: Value| {
        let admin = admin.clone();
        let path = format!("/api/users/{name}");
        async move { send(&admin, Method::PUT, &path, body).await }
    };
    status(&put("nopw", json!({"tags": []})).await, 422);
    status(&put("a:b", json!({"password": "x"})).await, 422);
    status(&put("x", json!({"pasword": "x"})).await, 422);
    status(
        &put("x", json!({"password": "x", "password_hash": ""})).await,
        422,
    );
    let not_json = admin
        .send_json(Method::PUT, "/api/users/x", "{nope")
        .await
        .unwrap();
    status(&not_json, 400);
    let form = raw_request(
        &api.url,
        "PUT /api/users/x HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWRtaW46YWRtaW4tcHc=\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 10\r\n\
         Connection: close\r\n\r\npassword=x",
    )
    .await;
    assert!(form.starts_with("HTTP/1.1 415 "), "{form}");
    status(&get(&admin, "/api/users/ghost").await, 404);
    status(&delete(&admin, "/api/users/new").await, 204);
    status(&delete(&admin, "/api/users/new").await, 404);
    status(&get(&new, "/api/whoami").await, 401);
}

#[tokio::test]
async fn vhosts_and_permissions_apply_at_once() {
    let api = Api::start(database()).await;
    let admin = api.client("admin");
    let listed = json_of(&get(&admin, "/api/vhosts").await);
    assert_eq!(listed[0]["name"], "/");
    status(&get(&admin, "/api/vhosts/%2F").await, 200);
    let body = json!({"description": "tenant B", "max_connections": 5});
    status(&send(&admin, Method::PUT, "/api/vhosts/b", body).await, 201);
    status(
        &admin
            .request(Method::PUT, "/api/vhosts/b", None)
            .await
            .unwrap(),
        204,
    );
    let shown = json_of(&get(&admin, "/api/vhosts/b").await);
    assert_eq!(shown["description"], "tenant B");
    assert_eq!(shown["max_connections"], 5);
    status(&get(&admin, "/api/vhosts/nowhere").await, 404);

    // The device may not use b until permitted; then at once, without a reload.
    let login = connect(ProtocolVersion::V5, "d1").credentials("b:device", "device-pw");
    let mut refused = RawClient::connect(api.broker.addr(), login).await;
    let ack = refused.expect_connack(Duration::from_secs(5)).await;
    assert_eq!(ack.reason_code, ReasonCode::NotAuthorized);
    let rights =
        json!({"publish": {"allow": ["up/#"]}, "subscribe": {"allow": ["down/{client_id}"]}});
    let path = "/api/permissions/b/device";
    status(&send(&admin, Method::PUT, path, rights.clone()).await, 201);
    status(&send(&admin, Method::PUT, path, rights).await, 204);
    let shown = json_of(&get(&admin, path).await);
    assert_eq!(shown["publish"]["allow"], json!(["up/#"]));
    assert_eq!(shown["subscribe"]["allow"], json!(["down/{client_id}"]));
    let mut device = api.mqtt("b:device", "d1").await;
    let suback = device
        .subscribe(subscribe(1, "down/d1", QoS::AtMostOnce))
        .await;
    assert_eq!(suback.reason_codes, vec![ReasonCode::Success]);
    let suback = device
        .subscribe(subscribe(2, "down/other", QoS::AtMostOnce))
        .await;
    assert_eq!(suback.reason_codes, vec![ReasonCode::NotAuthorized]);

    // Refusals.
    let bad = json!({"publish": {"allow": ["a/#/b"]}});
    status(&send(&admin, Method::PUT, path, bad).await, 422);
    let typo = json!({"publsh": {"allow": ["#"]}});
    status(&send(&admin, Method::PUT, path, typo).await, 422);
    status(
        &send(&admin, Method::PUT, "/api/permissions/b/ghost", json!({})).await,
        404,
    );
    status(
        &send(&admin, Method::PUT, "/api/permissions/zz/device", json!({})).await,
        404,
    );
    let listed = json_of(&get(&admin, "/api/vhosts/b/permissions").await);
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // Revoked: the connected client is closed at once (v5: 0x87).
    status(&delete(&admin, path).await, 204);
    device
        .expect_disconnect_and_close(ReasonCode::NotAuthorized)
        .await;
    status(&delete(&admin, path).await, 404);
    status(&delete(&admin, "/api/vhosts/b").await, 204);
    status(&delete(&admin, "/api/vhosts/b").await, 404);
}

#[tokio::test]
async fn connections_are_listed_and_closed() {
    let api = Api::start(database()).await;
    let admin = api.client("admin");
    let mut client = api.mqtt("admin", "sensor-1").await;
    let listed = json_of(&get(&admin, "/api/connections").await);
    let c = &listed[0];
    assert_eq!(c["client_id"], "sensor-1");
    assert_eq!(c["user"], "admin");
    assert_eq!(c["vhost"], "/");
    assert_eq!(c["transport"], "tcp");
    assert_eq!(c["protocol"], "MQTT 5.0");
    assert_eq!(c["peer_host"], "127.0.0.1");
    assert!(c["connected_at"].as_u64().unwrap() > 1_600_000_000_000);
    let in_vhost = json_of(&get(&admin, "/api/vhosts/%2F/connections").await);
    assert_eq!(in_vhost.as_array().unwrap().len(), 1);
    status(&get(&admin, "/api/connections/%2F/sensor-1").await, 200);
    // The viewer has no access to "/": it sees nothing there.
    let viewer = api.client("viewer");
    assert_eq!(json_of(&get(&viewer, "/api/connections").await), json!([]));
    status(
        &delete(&api.client("mon"), "/api/connections/%2F/sensor-1").await,
        403,
    );

    status(&delete(&admin, "/api/connections/%2F/sensor-1").await, 204);
    client
        .expect_disconnect_and_close(ReasonCode::AdministrativeAction)
        .await;
    status(&delete(&admin, "/api/connections/%2F/sensor-1").await, 404);
    status(&delete(&admin, "/api/connections/nowhere/x").await, 404);
}

#[tokio::test]
async fn definitions_export_and_import_rabbitmq() {
    let api = Api::start(database()).await;
    let admin = api.client("admin");
    let exported = json_of(&get(&admin, "/api/definitions").await);
    assert_eq!(exported["ferrymq_definitions"], 1);
    assert_eq!(exported["users"].as_array().unwrap().len(), 4);

    let answer = admin
        .send_json(Method::POST, "/api/definitions", RABBIT)
        .await
        .unwrap();
    status(&answer, 200);
    let answer = json_of(&answer);
    assert_eq!(answer["format"], "RabbitMQ definitions");
    assert!(answer["users"]["added"].as_u64().unwrap() >= 1, "{answer}");
    assert!(
        !answer["warnings"].as_array().unwrap().is_empty(),
        "{answer}"
    );
    // Its users log in at once, with their RabbitMQ passwords.
    let login = connect(ProtocolVersion::V5, "al").credentials("alice", "alice-pw");
    RawClient::connect_ok(api.broker.addr(), login).await;

    let bad_format = admin
        .send_json(Method::POST, "/api/definitions?format=xml", RABBIT)
        .await
        .unwrap();
    status(&bad_format, 400);
    let not_json = admin
        .send_json(Method::POST, "/api/definitions", "nope")
        .await
        .unwrap();
    status(&not_json, 400);
    let invalid = json!({"ferrymq_definitions": 1, "permissions": [{"user": "ghost", "vhost": "/", "permissions": {}}]});
    let invalid = send(&admin, Method::POST, "/api/definitions", invalid).await;
    status(&invalid, 422);
}

#[tokio::test]
async fn metrics_count_and_may_need_a_login() {
    let api = Api::start(database()).await;
    let mut client = api.mqtt("admin", "pub").await;
    client.publish_acked(publish("t", "x").qos1(1)).await;
    let text = get(&api.anonymous(), "/metrics").await.text();
    assert!(
        text.contains(
            "# TYPE ferrymq_messages_received_total counter\nferrymq_messages_received_total 1\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("ferrymq_vhost_connections{vhost=\"/\"} 1\n"),
        "{text}"
    );

    let config = ManagementConfig { metrics_auth: true };
    let api = Api::start_with(database(), TestBroker::builder(), config).await;
    status(&get(&api.anonymous(), "/metrics").await, 401);
    status(&get(&api.client("viewer"), "/metrics").await, 403);
    let scraped = get(&api.client("mon"), "/metrics").await;
    assert_eq!(scraped.status, 200);
}
