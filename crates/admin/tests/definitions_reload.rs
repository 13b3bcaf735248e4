//! The [`Watcher`] in process: a running broker's authenticator follows `definitions.json`,
//! keeps its definitions when the file turns invalid, and stores argon2id hashes of users
//! who logged in with a RabbitMQ hash, unless an operator changed the password meanwhile.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use ferrymq_admin::definitions::{Database, Watcher};
use ferrymq_auth::{
    AuthConfig, AuthFailure, Authenticator, Definitions, PasswordHash, PermissionRecord,
    Permissions, UserRecord, VhostRecord,
};
use ferrymq_broker::{Broker, BrokerConfig};

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

fn user(name: &str, password: &str) -> UserRecord {
    UserRecord {
        name: name.into(),
        password_hash: PasswordHash::rabbit_sha256([7; 4], password),
        tags: vec![],
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

fn definitions() -> Definitions {
    Definitions {
        users: vec![user("alice", "alice-pw"), user("bob", "bob-pw")],
        vhosts: vec![VhostRecord {
            name: "/".into(),
            description: String::new(),
            max_connections: None,
        }],
        permissions: vec![grant("alice", "/"), grant("bob", "/")],
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    database: Arc<Database>,
    broker: Arc<Broker>,
    watcher: Watcher,
}

/// A broker started on `definitions()`, as `serve` starts one.
fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let database = Arc::new(Database::in_data_dir(dir.path()));
    database.document().save(&definitions()).unwrap();
    let (initial, stamp) = database.load_valid().unwrap();
    let auth = Authenticator::new(AuthConfig::default()).unwrap();
    let broker = Broker::new(BrokerConfig::default(), auth);
    broker.auth().replace_definitions(&initial);
    let watcher = Watcher::new(broker.clone(), database.clone(), initial, stamp);
    Setup {
        _dir: dir,
        database,
        broker,
        watcher,
    }
}

fn login(broker: &Broker, user: &str, password: &str) -> Result<(), AuthFailure> {
    broker
        .auth()
        .authenticate(Some(user), Some(password.as_bytes()), PEER)
        .map(drop)
}

fn change(database: &Database, edit: impl FnOnce(&mut Definitions)) {
    database
        .document()
        .update(|defs| {
            edit(defs);
            Ok::<_, ()>(Some(()))
        })
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn changes_apply_and_invalid_files_are_ignored() {
    let s = setup();
    let generation = s.broker.auth().generation();

    // Nothing changed: nothing replaced (connections keep their cached decisions).
    s.watcher.tick().await;
    assert_eq!(s.broker.auth().generation(), generation);
    assert_eq!(login(&s.broker, "alice", "alice-pw"), Ok(()));

    // Revoked.
    change(&s.database, |defs| {
        defs.permissions.retain(|p| p.user != "alice")
    });
    s.watcher.tick().await;
    assert_eq!(
        login(&s.broker, "alice", "alice-pw"),
        Err(AuthFailure::VhostNotAllowed)
    );
    assert!(s.broker.auth().generation() > generation);

    // An inconsistent file (and then a file that does not parse) keeps what is in force.
    let generation = s.broker.auth().generation();
    change(&s.database, |defs| {
        defs.permissions.push(grant("alice", "nowhere"));
        defs.permissions.push(grant("bob", "/"));
    });
    s.watcher.tick().await;
    std::fs::write(s.database.path(), "{ not json").unwrap();
    s.watcher.tick().await;
    s.watcher.tick().await;
    assert_eq!(s.broker.auth().generation(), generation);
    assert_eq!(login(&s.broker, "bob", "bob-pw"), Ok(()));

    // Fixed again: applied.
    let mut fixed = definitions();
    fixed.permissions.clear();
    s.database.document().save(&fixed).unwrap();
    s.watcher.tick().await;
    assert_eq!(
        login(&s.broker, "bob", "bob-pw"),
        Err(AuthFailure::VhostNotAllowed)
    );

    // Removed: the database is empty, so the built-in guest is back (loopback only).
    std::fs::remove_file(s.database.path()).unwrap();
    s.watcher.tick().await;
    assert_eq!(
        login(&s.broker, "bob", "bob-pw"),
        Err(AuthFailure::BadCredentials)
    );
}

#[tokio::test]
async fn rabbitmq_hashes_are_upgraded_unless_the_password_changed() {
    let s = setup();
    assert_eq!(login(&s.broker, "alice", "alice-pw"), Ok(()));
    assert_eq!(login(&s.broker, "bob", "bob-pw"), Ok(()));
    // Meanwhile an operator gives bob a new password: the upgrade must not undo it.
    let new_bob = PasswordHash::rabbit_sha512([1; 4], "new-bob-pw");
    let set = new_bob.clone();
    change(&s.database, move |defs| {
        if let Some(bob) = defs.users.iter_mut().find(|u| u.name == "bob") {
            bob.password_hash = set;
        }
    });
    s.watcher.tick().await;
    let (stored, _) = s.database.load().unwrap();
    let alice = &stored.user("alice").unwrap().password_hash;
    assert!(matches!(alice, PasswordHash::Argon2id(_)), "{alice:?}");
    assert!(alice.verify(b"alice-pw"));
    assert_eq!(stored.user("bob").unwrap().password_hash, new_bob);
    // The same tick reloaded the file: bob's new password works, alice's still does.
    assert_eq!(login(&s.broker, "bob", "new-bob-pw"), Ok(()));
    assert_eq!(login(&s.broker, "alice", "alice-pw"), Ok(()));
    // An argon2id hash with the recommended parameters is not upgraded again; bob's new
    // RabbitMQ hash is, at the next tick.
    let pending: Vec<String> = s
        .broker
        .auth()
        .take_rehashed()
        .into_iter()
        .map(|(user, _)| user)
        .collect();
    assert_eq!(pending, vec!["bob".to_owned()]);
}

#[tokio::test]
async fn the_spawned_watcher_polls_and_stops_at_shutdown() {
    let s = setup();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = s.watcher.spawn(Duration::from_millis(20), shutdown.clone());
    change(&s.database, |defs| defs.permissions.clear());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while login(&s.broker, "alice", "alice-pw").is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "never reloaded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops")
        .expect("no panic");
}
