use super::*;

const RABBIT: &str = include_str!("../../tests/fixtures/rabbit-definitions.json");

fn user(name: &str) -> UserRecord {
    UserRecord {
        name: name.into(),
        password_hash: PasswordHash::None,
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

#[test]
fn the_first_user_brings_the_default_vhost() {
    let mut defs = Definitions::default();
    assert_eq!(add_user(&mut defs, user("alice")), Ok(true));
    assert_eq!(
        defs.vhost("/").map(|v| v.description.as_str()),
        Some(DEFAULT_VHOST_DESCRIPTION)
    );
    assert_eq!(add_user(&mut defs, user("bob")), Ok(false));
    assert_eq!(
        add_user(&mut defs, user("bob")),
        Err(EditError::UserExists("bob".into()))
    );
    assert_eq!(defs.users.len(), 2);
    assert_eq!(defs.vhosts.len(), 1);
    // set_permissions works right away in "/".
    assert_eq!(
        set_permissions(&mut defs, "alice", "/", Permissions::full()),
        Ok(false)
    );
    assert_eq!(validate(&defs), Ok(()));

    // A database that has vhosts but not "/" is left alone.
    let mut defs = Definitions {
        vhosts: vec![vhost("tenant")],
        ..Definitions::default()
    };
    assert_eq!(add_user(&mut defs, user("alice")), Ok(false));
    assert!(defs.vhost("/").is_none());
}

#[test]
fn deleting_takes_the_permissions_along() {
    let mut defs = Definitions::default();
    add_user(&mut defs, user("alice")).unwrap();
    add_user(&mut defs, user("bob")).unwrap();
    add_vhost(&mut defs, vhost("tenant")).unwrap();
    assert_eq!(
        add_vhost(&mut defs, vhost("tenant")),
        Err(EditError::VhostExists("tenant".into()))
    );
    for (u, v) in [("alice", "/"), ("alice", "tenant"), ("bob", "tenant")] {
        set_permissions(&mut defs, u, v, Permissions::full()).unwrap();
    }
    assert_eq!(delete_vhost(&mut defs, "tenant"), Ok(2));
    assert_eq!(defs.permissions.len(), 1);
    assert_eq!(delete_user(&mut defs, "alice"), Ok(1));
    assert!(defs.permissions.is_empty());
    assert_eq!(
        delete_user(&mut defs, "alice"),
        Err(EditError::NoSuchUser("alice".into()))
    );
    assert_eq!(
        delete_vhost(&mut defs, "tenant"),
        Err(EditError::NoSuchVhost("tenant".into()))
    );
    assert_eq!(validate(&defs), Ok(()));
}

#[test]
fn permissions_name_existing_users_and_vhosts() {
    let mut defs = Definitions::default();
    add_user(&mut defs, user("alice")).unwrap();
    assert_eq!(
        set_permissions(&mut defs, "ghost", "/", Permissions::full()),
        Err(EditError::NoSuchUser("ghost".into()))
    );
    assert_eq!(
        set_permissions(&mut defs, "alice", "tenant", Permissions::full()),
        Err(EditError::NoSuchVhost("tenant".into()))
    );
    let mut limited = Permissions::default();
    limited.publish.allow.push("devices/{client_id}/#".into());
    assert_eq!(
        set_permissions(&mut defs, "alice", "/", limited.clone()),
        Ok(false)
    );
    assert_eq!(
        set_permissions(&mut defs, "alice", "/", Permissions::full()),
        Ok(true)
    );
    assert_eq!(defs.permissions("alice", "/"), Some(&Permissions::full()));
    assert_eq!(clear_permissions(&mut defs, "alice", "/"), Ok(true));
    assert_eq!(clear_permissions(&mut defs, "alice", "/"), Ok(false));

    // A bad filter is caught by validation, with the user and vhost named.
    let mut bad = Permissions::default();
    bad.subscribe.allow.push("a/#/b".into());
    set_permissions(&mut defs, "alice", "/", bad).unwrap();
    let error = validate(&defs).unwrap_err().to_string();
    assert!(error.contains("user \"alice\" in vhost \"/\""), "{error}");
}

#[test]
fn passwords_and_tags_change_in_place() {
    let mut defs = Definitions::default();
    add_user(&mut defs, user("alice")).unwrap();
    let hash = PasswordHash::rabbit_sha256([1, 2, 3, 4], "pw");
    set_password(&mut defs, "alice", hash.clone()).unwrap();
    assert_eq!(defs.user("alice").map(|u| &u.password_hash), Some(&hash));
    set_tags(
        &mut defs,
        "alice",
        Tag::parse_list("administrator,monitoring,administrator"),
    )
    .unwrap();
    assert_eq!(
        defs.user("alice").map(|u| u.tags.clone()),
        Some(vec![Tag::Administrator, Tag::Monitoring])
    );
    assert_eq!(
        set_tags(&mut defs, "nobody", vec![]),
        Err(EditError::NoSuchUser("nobody".into()))
    );
    assert_eq!(
        set_password(&mut defs, "nobody", PasswordHash::None),
        Err(EditError::NoSuchUser("nobody".into()))
    );
}

#[test]
fn formats_are_told_apart() {
    let ours = auth_definitions::export(&Definitions::default());
    assert_eq!(detect(&ours), Ok(SourceFormat::Ferrymq));
    assert_eq!(detect(RABBIT), Ok(SourceFormat::Rabbitmq));
    // Without the marker fields: by the shape of password_hash.
    assert_eq!(
        detect(r#"{"users": [{"name": "a", "password_hash": "abcd"}]}"#),
        Ok(SourceFormat::Rabbitmq)
    );
    assert_eq!(
        detect(r#"{"users": [{"name": "a", "password_hash": {"algorithm": "none"}}]}"#),
        Ok(SourceFormat::Ferrymq)
    );
    assert!(detect("{}").unwrap_err().contains("--format"));
    assert!(detect("[]").is_err());
    assert!(detect("{").unwrap_err().contains("JSON"));
}

#[test]
fn a_rabbit_import_merges_with_warnings() {
    let imported = read_import(RABBIT, None).expect("imports");
    assert_eq!(imported.format, SourceFormat::Rabbitmq);
    assert!(!imported.warnings.is_empty());
    assert!(
        imported
            .warnings
            .iter()
            .any(|w| w.contains("tenant:mallory")),
        "{:?}",
        imported.warnings
    );

    // The database already has alice (other hash) and a vhost of its own.
    let mut defs = Definitions::default();
    add_user(&mut defs, user("alice")).unwrap();
    add_user(&mut defs, user("zoe")).unwrap();
    add_vhost(&mut defs, vhost("mine")).unwrap();
    set_permissions(&mut defs, "zoe", "mine", Permissions::full()).unwrap();
    let incoming = imported.definitions;
    let users = incoming.users.len();
    let counts = merge(&mut defs, incoming);
    assert_eq!(counts.users_replaced, 1, "alice");
    assert_eq!(counts.users_added, users - 1);
    assert_eq!(counts.vhosts_replaced, 1, "/");
    assert_eq!(counts.vhosts_added, 1, "iot");
    assert_eq!(validate(&defs), Ok(()));
    assert!(matches!(
        defs.user("alice").map(|u| &u.password_hash),
        Some(PasswordHash::RabbitSha256(_))
    ));
    // What the import did not mention is kept.
    assert!(defs.user("zoe").is_some());
    assert!(defs.permissions("zoe", "mine").is_some());

    // Importing the same file again replaces everything it names.
    let again = merge(&mut defs, read_import(RABBIT, None).unwrap().definitions);
    assert_eq!(
        (
            again.users_added,
            again.vhosts_added,
            again.permissions_added
        ),
        (0, 0, 0)
    );
}

#[test]
fn our_export_round_trips_through_import() {
    let mut defs = Definitions::default();
    add_user(&mut defs, user("alice")).unwrap();
    set_permissions(&mut defs, "alice", "/", Permissions::full()).unwrap();
    let text = auth_definitions::export(&defs);
    let imported = read_import(&text, None).unwrap();
    assert_eq!(imported.format, SourceFormat::Ferrymq);
    assert!(imported.warnings.is_empty());
    assert_eq!(imported.definitions, defs);
    // Forcing the wrong format grants no password.
    let forced = read_import(&text, Some(SourceFormat::Rabbitmq)).unwrap();
    assert!(
        forced
            .definitions
            .users
            .iter()
            .all(|u| u.password_hash == PasswordHash::None)
    );
    assert!(read_import(RABBIT, Some(SourceFormat::Ferrymq)).is_err());
}
