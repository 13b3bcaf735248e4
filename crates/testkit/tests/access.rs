//! Virtual hosts and permissions: isolation between vhosts, what a limited user may publish
//! and subscribe to (v3 and v5 reason codes), and rights revoked while clients are connected.

use bytes::Bytes;
use ferrymq_auth::definitions::{Definitions, PermissionRecord, UserRecord, VhostRecord};
use ferrymq_auth::{PasswordHash, Permissions, TopicRules};
use ferrymq_testkit::codec::{ProtocolVersion, QoS, ReasonCode};
use ferrymq_testkit::{QUIET, RawClient, TestBroker, WAIT, connect, publish, subscribe};

use ProtocolVersion::{V3_1_1, V5};

/// argon2id of "pw" with cheap parameters (m=8 KiB, t=1): the production code path, fast tests.
fn cheap_hash() -> PasswordHash {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(8, 1, 1, None).expect("params");
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::from_b64("c2FsdHNhbHRzYWx0").expect("salt");
    PasswordHash::Argon2id(argon.hash_password(b"pw", &salt).expect("hash").to_string())
}

fn rules(allow: &[&str], deny: &[&str]) -> TopicRules {
    TopicRules {
        allow: allow.iter().map(|s| s.to_string()).collect(),
        deny: deny.iter().map(|s| s.to_string()).collect(),
    }
}

fn user(name: &str) -> UserRecord {
    UserRecord {
        name: name.into(),
        password_hash: cheap_hash(),
        tags: vec![],
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

fn grant(user: &str, vhost: &str, permissions: Permissions) -> PermissionRecord {
    PermissionRecord {
        user: user.into(),
        vhost: vhost.into(),
        permissions,
    }
}

/// admin: everything in "/" and "tenant"; device: publish only under devices/{client_id}/,
/// subscribe to devices/# except devices/secret/#, in "tenant".
fn definitions() -> Definitions {
    let limited = Permissions {
        publish: rules(&["devices/{client_id}/#"], &[]),
        subscribe: rules(&["devices/#"], &["devices/secret/#"]),
        read_sys: false,
    };
    Definitions {
        users: vec![user("admin"), user("device")],
        vhosts: vec![vhost("/"), vhost("tenant")],
        permissions: vec![
            grant("admin", "/", Permissions::full()),
            grant("admin", "tenant", Permissions::full()),
            grant("device", "tenant", limited),
        ],
    }
}

async fn broker() -> TestBroker {
    let broker = TestBroker::start().await;
    broker.broker().auth().replace_definitions(&definitions());
    broker
}

#[tokio::test]
async fn vhosts_do_not_see_each_other() {
    let broker = broker().await;
    let as_in =
        |vhost: &str, id: &str| connect(V5, id).credentials(&format!("{vhost}:admin"), "pw");
    let (mut root_sub, _) = RawClient::connect_ok(broker.addr(), as_in("/", "same-id")).await;
    // The same client id in another vhost is another session: no takeover.
    let (mut tenant_sub, _) =
        RawClient::connect_ok(broker.addr(), as_in("tenant", "same-id")).await;
    root_sub
        .subscribe(subscribe(1, "news/#", QoS::AtLeastOnce))
        .await;
    tenant_sub
        .subscribe(subscribe(1, "news/#", QoS::AtLeastOnce))
        .await;

    let (mut tenant_pub, _) = RawClient::connect_ok(broker.addr(), as_in("tenant", "p")).await;
    tenant_pub
        .publish_acked(publish("news/today", "tenant-only").qos1(1).retain())
        .await;
    let got = tenant_sub.expect_publish(WAIT).await;
    assert_eq!(got.payload, Bytes::from_static(b"tenant-only"));
    tenant_sub.ack(&got).await;
    root_sub.expect_nothing(QUIET).await;

    // Retained messages are per vhost too.
    let (mut root_late, _) = RawClient::connect_ok(broker.addr(), as_in("/", "late")).await;
    root_late
        .subscribe(subscribe(1, "news/#", QoS::AtLeastOnce))
        .await;
    root_late.expect_nothing(QUIET).await;
    let (mut tenant_late, _) = RawClient::connect_ok(broker.addr(), as_in("tenant", "late")).await;
    tenant_late
        .subscribe(subscribe(1, "news/#", QoS::AtLeastOnce))
        .await;
    assert!(tenant_late.expect_publish(WAIT).await.retain);
}

#[tokio::test]
async fn no_access_to_a_vhost_is_not_authorized() {
    let broker = broker().await;
    // device has no permissions in "/", and "ghost" does not exist.
    for (username, v5_code, v3_code) in [
        ("device", 0x87, 5),
        ("ghost:admin", 0x87, 5),
        ("tenant:device-x", 0x86, 4),
    ] {
        let mut c =
            RawClient::connect(broker.addr(), connect(V5, "c").credentials(username, "pw")).await;
        assert_eq!(
            c.expect_connack(WAIT).await.reason_code.as_u8(),
            v5_code,
            "{username} v5"
        );
        let mut c = RawClient::connect(
            broker.addr(),
            connect(V3_1_1, "c").credentials(username, "pw"),
        )
        .await;
        let connack = c.expect_connack(WAIT).await;
        assert_eq!(
            connack.reason_code.to_v3_connack(),
            v3_code,
            "{username} v3"
        );
    }
}

#[tokio::test]
async fn limited_user_publishes_and_subscribes_only_where_allowed() {
    let broker = broker().await;
    let device = |version, id: &str| connect(version, id).credentials("tenant:device", "pw");
    let (mut dev, _) = RawClient::connect_ok(broker.addr(), device(V5, "dev1")).await;

    let suback = dev
        .subscribe(
            subscribe(1, "devices/dev1/#", QoS::AtLeastOnce)
                .filter(
                    "devices/secret/#",
                    ferrymq_testkit::options(QoS::AtLeastOnce),
                )
                .filter("devices/#", ferrymq_testkit::options(QoS::AtLeastOnce))
                .filter("other/#", ferrymq_testkit::options(QoS::AtLeastOnce)),
        )
        .await;
    assert_eq!(
        suback.reason_codes,
        vec![
            ReasonCode::GrantedQoS1,
            ReasonCode::NotAuthorized,
            ReasonCode::NotAuthorized,
            ReasonCode::NotAuthorized
        ],
        "devices/# overlaps the denied devices/secret/#"
    );
    assert_eq!(
        dev.publish_acked(publish("devices/dev1/temp", "21").qos1(2))
            .await,
        ReasonCode::Success
    );
    assert_eq!(
        dev.publish_acked(publish("devices/dev2/temp", "x").qos1(3))
            .await,
        ReasonCode::NotAuthorized
    );
    assert_eq!(
        dev.publish_acked(publish("$SYS/broker/x", "x").qos1(4))
            .await,
        ReasonCode::NotAuthorized
    );
    let own = dev.expect_publish(WAIT).await;
    assert_eq!(
        own.topic, "devices/dev1/temp",
        "only the allowed publish was routed"
    );
    dev.ack(&own).await;
    dev.expect_nothing(QUIET).await;

    // MQTT 3.1.1: SUBACK failure 0x80; a denied PUBLISH is dropped and the connection stays.
    let (mut v3, _) = RawClient::connect_ok(broker.addr(), device(V3_1_1, "dev3")).await;
    let suback = v3.subscribe(subscribe(1, "other/#", QoS::AtMostOnce)).await;
    assert_eq!(suback.reason_codes[0].to_v3_suback(), 0x80);
    v3.publish_acked(publish("devices/dev1/x", "not yours").qos1(5))
        .await;
    v3.ping().await;
    assert_eq!(broker.metric("publishes_denied"), 3);
}

#[tokio::test]
async fn revoked_subscription_stops_delivering_and_revoked_user_is_disconnected() {
    let broker = broker().await;
    let (mut dev, _) = RawClient::connect_ok(
        broker.addr(),
        connect(V5, "dev1").credentials("tenant:device", "pw"),
    )
    .await;
    let suback = dev
        .subscribe(subscribe(1, "devices/a/temp", QoS::AtMostOnce))
        .await;
    assert_eq!(suback.reason_codes, vec![ReasonCode::Success]);
    let (mut admin, _) = RawClient::connect_ok(
        broker.addr(),
        connect(V5, "adm").credentials("tenant:admin", "pw"),
    )
    .await;
    admin.send(publish("devices/a/temp", "before")).await;
    assert_eq!(
        dev.expect_publish(WAIT).await.payload,
        Bytes::from_static(b"before")
    );

    // Narrow device's subscribe rights: devices/a/temp is no longer inside them.
    let mut defs = definitions();
    for p in &mut defs.permissions {
        if p.user == "device" {
            p.permissions.subscribe = rules(&["devices/dev1/#"], &[]);
        }
    }
    broker.broker().auth().replace_definitions(&defs);
    broker.broker().definitions_changed();
    assert!(
        broker
            .wait_for(WAIT, |m| ferrymq_testkit::Metrics::get(
                &m.subscriptions_denied
            ) == 1)
            .await
    );
    admin.send(publish("devices/a/temp", "after")).await;
    admin.ping().await;
    dev.expect_nothing(QUIET).await;

    // Remove device's access to the vhost altogether: its connection is closed with 0x87.
    defs.permissions.retain(|p| p.user != "device");
    broker.broker().auth().replace_definitions(&defs);
    broker.broker().definitions_changed();
    dev.expect_disconnect_and_close(ReasonCode::NotAuthorized)
        .await;
}

#[tokio::test]
async fn repeated_bad_passwords_throttle_the_address() {
    let broker = TestBroker::builder()
        .limits(|l| l.max_failed_logins = 3)
        .start()
        .await;
    broker.broker().auth().replace_definitions(&definitions());
    for _ in 0..3 {
        let mut c = RawClient::connect(
            broker.addr(),
            connect(V5, "c").credentials("admin", "wrong"),
        )
        .await;
        assert_eq!(
            c.expect_connack(WAIT).await.reason_code,
            ReasonCode::BadUserNameOrPassword
        );
    }
    // Blocked now, even with the right password; v3 hears "server unavailable".
    let mut c =
        RawClient::connect(broker.addr(), connect(V5, "c").credentials("admin", "pw")).await;
    assert_eq!(
        c.expect_connack(WAIT).await.reason_code,
        ReasonCode::ConnectionRateExceeded
    );
    let mut c = RawClient::connect(
        broker.addr(),
        connect(V3_1_1, "c").credentials("admin", "pw"),
    )
    .await;
    assert_eq!(c.expect_connack(WAIT).await.reason_code.to_v3_connack(), 3);
    assert_eq!(broker.metric("logins_throttled"), 2);
}

#[tokio::test]
async fn user_and_vhost_connection_limits_are_enforced() {
    let broker = TestBroker::start().await;
    let mut defs = definitions();
    for u in &mut defs.users {
        if u.name == "device" {
            u.max_connections = Some(1);
        }
    }
    for v in &mut defs.vhosts {
        if v.name == "tenant" {
            v.max_connections = Some(2);
        }
    }
    broker.broker().auth().replace_definitions(&defs);
    let login = |id: &str, user: &str| connect(V5, id).credentials(user, "pw");

    let (first, _) = RawClient::connect_ok(broker.addr(), login("d1", "tenant:device")).await;
    let mut second = RawClient::connect(broker.addr(), login("d2", "tenant:device")).await;
    assert_eq!(
        second.expect_connack(WAIT).await.reason_code,
        ReasonCode::QuotaExceeded,
        "user limit 1"
    );

    let (_admin, _) = RawClient::connect_ok(broker.addr(), login("a1", "tenant:admin")).await;
    let mut third = RawClient::connect(broker.addr(), login("a2", "tenant:admin")).await;
    assert_eq!(
        third.expect_connack(WAIT).await.reason_code,
        ReasonCode::QuotaExceeded,
        "vhost limit 2"
    );
    // Other vhosts are not affected.
    RawClient::connect_ok(broker.addr(), login("r1", "admin")).await;

    // A closed connection gives its slot back.
    first.disconnect().await;
    assert!(
        broker
            .wait_for(WAIT, |m| ferrymq_testkit::Metrics::get(&m.sessions) <= 3)
            .await
    );
    let mut retry = RawClient::connect(broker.addr(), login("d3", "tenant:device")).await;
    let mut code = retry.expect_connack(WAIT).await.reason_code;
    for _ in 0..20 {
        if code == ReasonCode::Success {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        retry = RawClient::connect(broker.addr(), login("d3", "tenant:device")).await;
        code = retry.expect_connack(WAIT).await.reason_code;
    }
    assert_eq!(code, ReasonCode::Success);
    assert_eq!(broker.metric("connections_refused_user_or_vhost_limit"), 2);
}
