use super::*;
use crate::definitions;

/// A hand-written RabbitMQ 3.13 export. Its password hashes were made with RabbitMQ's
/// algorithm (`base64(salt ++ H(salt ++ password))`, see `password_hash`) and fixed salts;
/// [`fixture_hashes_are_what_rabbitmq_computes`] recomputes each one, so the passwords
/// below are the documentation of the file.
const FIXTURE: &str = include_str!("../../tests/fixtures/rabbit-definitions.json");

fn fixture() -> (Definitions, Vec<ImportWarning>) {
    import(FIXTURE).expect("the fixture imports")
}

fn allow(filters: &[&str]) -> TopicRules {
    rules(filters.iter().map(|f| (*f).to_owned()).collect())
}

#[test]
fn fixture_hashes_are_what_rabbitmq_computes() {
    let (defs, _) = fixture();
    let hash = |name: &str| defs.user(name).map(|u| u.password_hash.clone());
    assert_eq!(
        hash("alice"),
        Some(PasswordHash::rabbit_sha256([0xA1; 4], "alice-pw"))
    );
    assert_eq!(
        hash("bob"),
        Some(PasswordHash::rabbit_sha512([0xB0; 4], "bob-pw"))
    );
    assert_eq!(
        hash("carol"),
        Some(PasswordHash::rabbit_md5(
            [0xCA, 0x01, 0xCA, 0x01],
            "carol-pw"
        ))
    );
    assert_eq!(
        hash("eve"),
        Some(PasswordHash::rabbit_sha256([0xEE; 4], "eve-pw"))
    );
}

#[test]
fn imported_users_log_in_with_their_rabbitmq_passwords() {
    let (defs, _) = fixture();
    for (name, password) in [
        ("alice", "alice-pw"),
        ("bob", "bob-pw"),
        ("carol", "carol-pw"),
        ("eve", "eve-pw"),
    ] {
        let user = defs.user(name).expect(name);
        assert!(user.password_hash.verify(password.as_bytes()), "{name}");
        assert!(!user.password_hash.verify(b"wrong"), "{name}");
        assert!(user.password_hash.needs_rehash(), "{name}");
    }
    // An empty hash is a user without a password; an unknown algorithm becomes one.
    assert_eq!(
        defs.user("dave").map(|u| &u.password_hash),
        Some(&PasswordHash::None)
    );
    assert_eq!(
        defs.user("frank").map(|u| &u.password_hash),
        Some(&PasswordHash::None)
    );
    assert!(defs.user("tenant:mallory").is_none());
}

#[test]
fn tags_and_limits() {
    let (defs, _) = fixture();
    let user = |name: &str| defs.user(name).expect(name);
    assert_eq!(user("alice").tags, vec![Tag::Administrator]);
    assert_eq!(user("bob").tags, vec![Tag::Management, Tag::Monitoring]);
    assert_eq!(user("eve").tags, vec![]);
    assert_eq!(
        user("frank").tags,
        vec![Tag::Policymaker, Tag::Custom("custom-tag".into())]
    );
    assert_eq!(user("bob").max_connections, Some(5));
    assert_eq!(
        user("carol").max_connections,
        None,
        "negative means no limit"
    );
    assert_eq!(user("alice").max_connections, None);

    let names: Vec<&str> = defs.vhosts.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, vec!["/", "iot"]);
    assert_eq!(defs.vhosts[0].description, "Default virtual host");
    assert_eq!(defs.vhosts[1].description, "Devices and dashboards");
    assert_eq!(defs.vhosts[1].max_connections, Some(100));
    assert_eq!(defs.vhosts[0].max_connections, None);
}

#[test]
fn permissions_translate() {
    let (defs, _) = fixture();
    let perms = |user: &str, vhost: &str| defs.permissions(user, vhost).cloned();
    assert_eq!(perms("alice", "/"), Some(Permissions::full()));
    assert_eq!(
        perms("bob", "iot"),
        Some(Permissions {
            publish: allow(&["devices/{client_id}/#"]),
            subscribe: allow(&["devices/#", "alerts/#"]),
            read_sys: false,
        })
    );
    // write "^$": no publishing whatever the topic permission says.
    assert_eq!(
        perms("carol", "iot"),
        Some(Permissions {
            publish: allow(&[]),
            subscribe: allow(&["alerts/+"]),
            read_sys: false,
        })
    );
    // An untranslatable resource regex grants nothing in that direction.
    assert_eq!(
        perms("dave", "iot"),
        Some(Permissions {
            publish: allow(&[]),
            subscribe: allow(&["#"]),
            read_sys: false,
        })
    );
    // An untranslatable topic regex too; the other direction is unaffected.
    assert_eq!(
        perms("eve", "iot"),
        Some(Permissions {
            publish: allow(&[]),
            subscribe: allow(&["#"]),
            read_sys: false,
        })
    );
    assert_eq!(perms("frank", "ghost"), None);
    assert_eq!(perms("frank", "/"), None);
    assert_eq!(defs.permissions.len(), 5);

    // The result is consistent and survives our own export format.
    assert_eq!(defs.validate(), vec![]);
    assert_eq!(definitions::import(&definitions::export(&defs)), Ok(defs));
}

#[test]
fn bound_imported_permissions_behave_like_rabbitmq() {
    let (defs, _) = fixture();
    let bob = defs
        .permissions("bob", "iot")
        .expect("bob")
        .bind("bob", "sensor7", "iot");
    assert!(bob.may_publish("devices/sensor7/temp"));
    assert!(!bob.may_publish("devices/sensor8/temp"));
    assert!(bob.may_subscribe("alerts/#"));
    assert!(bob.may_subscribe("devices/+/temp"));
    assert!(!bob.may_subscribe("#"));
}

#[test]
fn every_problem_is_reported() {
    let (_, warnings) = fixture();
    let text: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    let expected = vec![
        ImportWarning::AssumedHashingAlgorithm {
            user: "eve".into(),
            algorithm: "rabbit_password_hashing_sha256",
        },
        ImportWarning::UnusablePasswordHash {
            user: "frank".into(),
            reason: "unknown hashing_algorithm \"rabbit_password_hashing_bcrypt\"".into(),
        },
        ImportWarning::InvalidUserName("tenant:mallory".into()),
        ImportWarning::UntranslatableRegex {
            user: "eve".into(),
            vhost: "iot".into(),
            field: "topic write",
            regex: r"^devices\.[a-z]+$".into(),
            reason: "'[' at position 10 is not translatable".into(),
        },
        ImportWarning::IgnoredExchange {
            user: "eve".into(),
            vhost: "iot".into(),
            exchange: "logs".into(),
        },
        ImportWarning::UntranslatableRegex {
            user: "dave".into(),
            vhost: "iot".into(),
            field: "write",
            regex: r"^amq\.topic$".into(),
            reason: "only '.*' (everything) and '^$' (nothing) carry over for resource permissions"
                .into(),
        },
        ImportWarning::UnknownReference {
            user: "frank".into(),
            vhost: "ghost".into(),
        },
        ImportWarning::TopicPermissionsWithoutAccess {
            user: "frank".into(),
            vhost: "/".into(),
        },
        ImportWarning::IgnoredSections(vec![
            ("global_parameters".into(), 1),
            ("policies".into(), 1),
            ("queues".into(), 1),
        ]),
    ];
    assert_eq!(warnings, expected, "{text:#?}");
    assert!(text[3].contains("eve") && text[3].contains("iot") && text[3].contains("[a-z]"));
    assert_eq!(
        text[8],
        "ignored (no MQTT meaning): 1 global_parameters, 1 policies, 1 queues"
    );
}

#[test]
fn legacy_exports_assume_md5() {
    let json = r#"{
        "rabbit_version": "3.5.7",
        "users": [{"name": "old", "password_hash": "ytUIm8s3AnKsXQjptplKFytfVxI=", "tags": "administrator"}],
        "vhosts": [{"name": "/"}],
        "permissions": [{"user": "old", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}]
    }"#;
    let (defs, warnings) = import(json).unwrap();
    let old = defs.user("old").unwrap();
    assert!(old.password_hash.verify(b"simon"));
    assert_eq!(old.tags, vec![Tag::Administrator]);
    assert_eq!(
        warnings,
        vec![ImportWarning::AssumedHashingAlgorithm {
            user: "old".into(),
            algorithm: "rabbit_password_hashing_md5"
        }]
    );
}

#[test]
fn bad_documents() {
    assert!(matches!(import("not json"), Err(ImportError::Json(_))));
    assert_eq!(import("[]").unwrap_err(), ImportError::NotAnObject);
    assert_eq!(
        import(r#"{"users": {}}"#).unwrap_err(),
        ImportError::NotAnArray("users")
    );
    let (defs, warnings) = import("{}").unwrap();
    assert_eq!(defs, Definitions::default());
    assert!(warnings.is_empty());
    // Broken entries are skipped with a warning, never a panic.
    let (defs, warnings) = import(
        r#"{"users": [1, {"name": 2}, {"name": "ok", "password_hash": "%%%",
              "hashing_algorithm": "rabbit_password_hashing_sha256", "limits": {"max-connections": "x"}}],
            "vhosts": [{"name": "/"}, {"name": "/"}],
            "permissions": [{"user": "ok"}, {"user": "ok", "vhost": "/", "write": 3}],
            "parameters": [{"component": "vhost-limits", "vhost": "nope", "value": {}}]}"#,
    )
    .unwrap();
    assert_eq!(defs.users.len(), 1);
    assert_eq!(defs.users[0].password_hash, PasswordHash::None);
    assert_eq!(defs.users[0].max_connections, None);
    assert_eq!(defs.vhosts.len(), 1);
    assert_eq!(
        defs.permissions("ok", "/").map(|p| p.publish.allow.len()),
        Some(0)
    );
    assert_eq!(warnings.len(), 6, "{warnings:#?}");
}

fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        prop::sample::select(vec![
            "",
            ".*",
            "^$",
            "^a\\..*",
            "/",
            "alice",
            "iot",
            "amq.topic",
            "x:y",
            "rabbit_password_hashing_sha256",
            "rabbit_password_hashing_md5",
            "kI3GCqW5",
            "administrator,none",
            "vhost-limits",
            "max-connections",
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        let keys = prop::sample::select(vec![
            "name",
            "user",
            "vhost",
            "password_hash",
            "hashing_algorithm",
            "tags",
            "limits",
            "write",
            "read",
            "configure",
            "exchange",
            "component",
            "value",
            "max-connections",
            "metadata",
            "description",
            "administrator",
        ]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys, inner, 0..6).prop_map(|m| Value::Object(
                m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

proptest::proptest! {
    /// Definitions files are input: arbitrary documents never make the import panic, and
    /// whatever it produces is internally consistent.
    #[test]
    fn arbitrary_documents_never_panic(
        users in proptest::collection::vec(json_value(), 0..4),
        vhosts in proptest::collection::vec(json_value(), 0..3),
        permissions in proptest::collection::vec(json_value(), 0..4),
        topic in proptest::collection::vec(json_value(), 0..3),
        parameters in proptest::collection::vec(json_value(), 0..2),
    ) {
        let document = serde_json::json!({
            "users": users, "vhosts": vhosts, "permissions": permissions,
            "topic_permissions": topic, "parameters": parameters,
        });
        let (defs, _) = import(&document.to_string()).expect("an object with arrays imports");
        let problems = defs.validate();
        proptest::prop_assert!(problems.is_empty(), "{:?}", problems);
    }
}

#[test]
fn a_password_hash_that_is_not_a_string_is_reported() {
    let export = r#"{"rabbit_version": "3.13.0", "users": [
        {"name": "odd", "password_hash": 12345, "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []},
        {"name": "none", "password_hash": "", "tags": []}
    ]}"#;
    let (defs, warnings) = import(export).expect("imports");
    assert_eq!(
        defs.user("odd").map(|u| &u.password_hash),
        Some(&PasswordHash::None)
    );
    assert_eq!(
        warnings,
        vec![ImportWarning::UnusablePasswordHash {
            user: "odd".into(),
            reason: "password_hash is not a string".into(),
        }],
        "an empty hash is a user without password, as in RabbitMQ: no warning"
    );
}
