use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::config::UserConfig;

// Cheap argon2 parameters (m=8 KiB, t=1) keep these tests fast; verification reads the
// parameters from the string, so the code path is the production one.
const ALICE_HASH: &str = "$argon2id$v=19$m=8,t=1,p=1$YWxpY2Utc2VjcmV0LXRlc3Qtc2FsdA$IIIuuumCOhX8LRy0FCvFR5bVXgARKxXPg0rDnQyqDYI";
const BOB_HASH: &str = "$argon2id$v=19$m=8,t=1,p=1$Ym9iLXNlY3JldC10ZXN0LXNhbHQ$KEUqNLrKKZJ9Le5kuvlIE1ATQFKMZj57xJ5UrjsIy7k";

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const REMOTE: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

fn alice_and_local_bob(allow_anonymous: bool) -> Authenticator {
    Authenticator::new(AuthConfig {
        vhost_in_username: true,
        allow_anonymous,
        users: vec![
            UserConfig {
                name: "alice".into(),
                password_hash: ALICE_HASH.into(),
                loopback_only: false,
            },
            UserConfig {
                name: "bob".into(),
                password_hash: BOB_HASH.into(),
                loopback_only: true,
            },
        ],
    })
    .unwrap()
}

fn identity(name: &str) -> Identity {
    Identity {
        username: Arc::from(name),
        anonymous: false,
        vhost: Arc::from("/"),
        permissions: Permissions {
            read_sys: true,
            ..Permissions::full()
        },
        expires_at: None,
        source: IdentitySource::Internal,
    }
}

#[test]
fn authenticator_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Authenticator>();
}

#[test]
fn anonymous_is_let_in_only_when_allowed() {
    let open = alice_and_local_bob(true);
    let anonymous = Identity {
        username: Arc::from("anonymous"),
        anonymous: true,
        vhost: Arc::from("/"),
        permissions: Permissions {
            read_sys: true,
            ..Permissions::full()
        },
        expires_at: None,
        source: IdentitySource::Internal,
    };
    assert_eq!(open.authenticate(None, None, REMOTE), Ok(anonymous.clone()));
    assert_eq!(
        open.authenticate(Some(""), None, REMOTE),
        Ok(anonymous.clone())
    );
    // A password without a user name (legal in v5) does not change anything.
    assert_eq!(
        open.authenticate(None, Some(b"whatever"), REMOTE),
        Ok(anonymous)
    );

    let closed = alice_and_local_bob(false);
    assert_eq!(
        closed.authenticate(None, None, LOCAL),
        Err(AuthFailure::AnonymousNotAllowed)
    );
    assert_eq!(
        closed.authenticate(Some(""), Some(b"x"), LOCAL),
        Err(AuthFailure::AnonymousNotAllowed)
    );
}

#[test]
fn a_named_client_needs_the_right_password() {
    for allow_anonymous in [false, true] {
        let auth = alice_and_local_bob(allow_anonymous);
        assert_eq!(
            auth.authenticate(Some("alice"), Some(b"alice-secret"), REMOTE),
            Ok(identity("alice"))
        );
        // Anonymous access being on does not make a wrong password acceptable.
        for password in [
            Some(&b"alice-secreT"[..]),
            Some(b""),
            Some(b"\xff\xfe"),
            None,
        ] {
            assert_eq!(
                auth.authenticate(Some("alice"), password, REMOTE),
                Err(AuthFailure::BadCredentials),
                "{password:?}"
            );
        }
    }
}

#[test]
fn unknown_users_are_bad_credentials() {
    let auth = alice_and_local_bob(true);
    assert_eq!(
        auth.authenticate(Some("mallory"), Some(b"alice-secret"), LOCAL),
        Err(AuthFailure::BadCredentials)
    );
    assert_eq!(
        auth.authenticate(Some("mallory"), None, LOCAL),
        Err(AuthFailure::BadCredentials)
    );
    // Names are case-sensitive, as in MQTT.
    assert_eq!(
        auth.authenticate(Some("Alice"), Some(b"alice-secret"), LOCAL),
        Err(AuthFailure::BadCredentials)
    );
}

#[test]
fn loopback_only_users_connect_from_loopback_only() {
    let auth = alice_and_local_bob(false);
    let loopbacks = [
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
        IpAddr::V4(Ipv4Addr::new(127, 200, 3, 4)),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V6(Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped()),
    ];
    for peer in loopbacks {
        assert_eq!(
            auth.authenticate(Some("bob"), Some(b"bob-secret"), peer),
            Ok(identity("bob")),
            "{peer}"
        );
    }
    let remotes = [
        REMOTE,
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped()),
        IpAddr::V6("2001:db8::1".parse().unwrap()),
    ];
    for peer in remotes {
        // The right password from the wrong place looks exactly like a wrong password.
        assert_eq!(
            auth.authenticate(Some("bob"), Some(b"bob-secret"), peer),
            Err(AuthFailure::BadCredentials),
            "{peer}"
        );
    }
    // A user that is not loopback-only connects from anywhere.
    assert!(
        auth.authenticate(Some("alice"), Some(b"alice-secret"), REMOTE)
            .is_ok()
    );
}

#[test]
fn guest_exists_only_without_configured_users() {
    let default = Authenticator::new(AuthConfig::default()).unwrap();
    assert_eq!(
        default.authenticate(Some("guest"), Some(b"guest"), LOCAL),
        Ok(identity("guest"))
    );
    // From here on the verification is cached: these do not cost argon2 runs.
    assert_eq!(
        default.authenticate(
            Some("guest"),
            Some(b"guest"),
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        ),
        Ok(identity("guest"))
    );
    assert_eq!(
        default.authenticate(Some("guest"), Some(b"guest"), REMOTE),
        Err(AuthFailure::BadCredentials)
    );
    assert_eq!(
        default.authenticate(None, None, LOCAL),
        Err(AuthFailure::AnonymousNotAllowed)
    );

    let configured = alice_and_local_bob(false);
    assert!(configured.is_cheap(Some("guest"), None));
    assert_eq!(
        configured.authenticate(Some("guest"), None, LOCAL),
        Err(AuthFailure::BadCredentials)
    );
}

#[test]
fn successful_verifications_are_cached() {
    let auth = alice_and_local_bob(false);
    assert!(!auth.is_cheap(Some("alice"), Some(b"alice-secret")));
    assert!(
        auth.authenticate(Some("alice"), Some(b"wrong"), REMOTE)
            .is_err()
    );
    // Failures are not cached.
    assert!(!auth.is_cheap(Some("alice"), Some(b"wrong")));
    assert!(
        auth.authenticate(Some("alice"), Some(b"alice-secret"), REMOTE)
            .is_ok()
    );
    assert!(auth.is_cheap(Some("alice"), Some(b"alice-secret")));
    // The cache is per user and per password.
    assert!(!auth.is_cheap(Some("alice"), Some(b"alice-secreT")));
    assert!(!auth.is_cheap(Some("bob"), Some(b"alice-secret")));
    assert_eq!(
        auth.authenticate(Some("alice"), Some(b"alice-secreT"), REMOTE),
        Err(AuthFailure::BadCredentials)
    );
    assert_eq!(
        auth.authenticate(Some("bob"), Some(b"alice-secret"), LOCAL),
        Err(AuthFailure::BadCredentials)
    );
    // A cached success still obeys the loopback rule.
    assert!(
        auth.authenticate(Some("bob"), Some(b"bob-secret"), LOCAL)
            .is_ok()
    );
    assert!(auth.is_cheap(Some("bob"), Some(b"bob-secret")));
    assert_eq!(
        auth.authenticate(Some("bob"), Some(b"bob-secret"), REMOTE),
        Err(AuthFailure::BadCredentials)
    );
}

#[test]
fn is_cheap_knows_which_paths_skip_argon2() {
    let auth = alice_and_local_bob(false);
    assert!(auth.is_cheap(None, None));
    assert!(auth.is_cheap(Some(""), Some(b"pw")));
    assert!(auth.is_cheap(Some("alice"), None));
    assert!(auth.is_cheap(Some("mallory"), None));
    // Unknown users pay a dummy argon2 run so that they look like wrong passwords.
    assert!(!auth.is_cheap(Some("mallory"), Some(b"pw")));
    assert!(!auth.is_cheap(Some("alice"), Some(b"pw")));
}

#[test]
fn invalid_configs_are_refused() {
    let err = Authenticator::new(AuthConfig {
        vhost_in_username: true,
        allow_anonymous: false,
        users: vec![UserConfig {
            name: "alice".into(),
            password_hash: "alice-secret".into(),
            loopback_only: false,
        }],
    })
    .unwrap_err();
    assert!(matches!(
        err,
        AuthConfigError::InvalidPasswordHash { index: 0, .. }
    ));
    assert!(err.to_string().contains("hash-password"), "{err}");
}

#[test]
fn debug_output_reveals_no_secrets() {
    let text = format!("{:?}", alice_and_local_bob(false));
    assert!(!text.contains("argon2"), "{text}");
    assert!(text.contains("users: 2"), "{text}");
}

#[test]
fn certificate_identity_needs_a_known_user_and_obeys_loopback() {
    let auth = Authenticator::new(AuthConfig::default()).expect("default config");
    let local: IpAddr = "127.0.0.1".parse().expect("ip");
    let remote: IpAddr = "192.0.2.7".parse().expect("ip");
    assert_eq!(
        auth.authenticate_certificate("guest", local)
            .map(|i| i.username.to_string()),
        Ok("guest".to_string())
    );
    assert_eq!(
        auth.authenticate_certificate("guest", remote),
        Err(AuthFailure::BadCredentials)
    );
    assert_eq!(
        auth.authenticate_certificate("nobody", local),
        Err(AuthFailure::BadCredentials)
    );
}

mod definitions {
    use super::*;
    use crate::definitions::{Definitions, PermissionRecord, UserRecord, VhostRecord};
    use crate::permissions::TopicRules;

    fn limited() -> Permissions {
        Permissions {
            publish: TopicRules {
                allow: vec!["devices/{client_id}/#".into()],
                deny: vec![],
            },
            subscribe: TopicRules {
                allow: vec!["devices/#".into()],
                deny: vec!["devices/secret/#".into()],
            },
            read_sys: false,
        }
    }

    fn database() -> Definitions {
        Definitions {
            users: vec![
                UserRecord {
                    name: "carol".into(),
                    password_hash: PasswordHash::Argon2id(ALICE_HASH.into()),
                    tags: vec![],
                    max_connections: None,
                },
                UserRecord {
                    name: "rabbit".into(),
                    password_hash: PasswordHash::rabbit_sha256([1, 2, 3, 4], "hop"),
                    tags: vec![],
                    max_connections: None,
                },
            ],
            vhosts: vec![
                VhostRecord {
                    name: "/".into(),
                    description: String::new(),
                    max_connections: None,
                },
                VhostRecord {
                    name: "tenant-a".into(),
                    description: String::new(),
                    max_connections: None,
                },
            ],
            permissions: vec![
                PermissionRecord {
                    user: "carol".into(),
                    vhost: "tenant-a".into(),
                    permissions: limited(),
                },
                PermissionRecord {
                    user: "rabbit".into(),
                    vhost: "/".into(),
                    permissions: Permissions::full(),
                },
            ],
        }
    }

    fn authenticator() -> Authenticator {
        let auth = Authenticator::new(AuthConfig::default()).unwrap();
        auth.replace_definitions(&database());
        auth
    }

    fn request<'a>(user: &'a str, password: &'a [u8]) -> AuthRequest<'a> {
        AuthRequest {
            username: Some(user),
            password: Some(password),
            peer: REMOTE,
            listener_vhost: None,
            certificate_user: None,
            now: std::time::SystemTime::now(),
        }
    }

    #[test]
    fn vhost_prefix_selects_the_vhost_and_its_permissions() {
        let auth = authenticator();
        let id = auth
            .authenticate_request(&request("tenant-a:carol", b"alice-secret"))
            .unwrap();
        assert_eq!(&*id.vhost, "tenant-a");
        assert_eq!(&*id.username, "carol");
        assert_eq!(id.permissions, limited());
        // carol has no permissions in "/", which is where a plain user name lands.
        assert_eq!(
            auth.authenticate_request(&request("carol", b"alice-secret")),
            Err(AuthFailure::VhostNotAllowed)
        );
        assert_eq!(
            auth.authenticate_request(&request("nowhere:carol", b"alice-secret")),
            Err(AuthFailure::VhostNotAllowed)
        );
        assert_eq!(
            auth.authenticate_request(&request("tenant-a:carol", b"wrong")),
            Err(AuthFailure::BadCredentials)
        );
    }

    #[test]
    fn listener_vhost_applies_without_a_prefix_and_the_prefix_wins() {
        let auth = authenticator();
        let mut req = request("carol", b"alice-secret");
        req.listener_vhost = Some("tenant-a");
        assert_eq!(&*auth.authenticate_request(&req).unwrap().vhost, "tenant-a");
        let mut req = request("/:rabbit", b"hop");
        req.listener_vhost = Some("tenant-a");
        assert_eq!(&*auth.authenticate_request(&req).unwrap().vhost, "/");
    }

    #[test]
    fn guest_disappears_once_the_database_has_users() {
        let auth = authenticator();
        assert_eq!(
            auth.authenticate(Some("guest"), Some(b"guest"), LOCAL),
            Err(AuthFailure::BadCredentials)
        );
    }

    #[test]
    fn rabbit_hash_logs_in_and_is_upgraded_once() {
        let auth = authenticator();
        assert!(
            !auth.is_cheap(Some("rabbit"), Some(b"hop")),
            "the upgrade costs an argon2 run"
        );
        let id = auth
            .authenticate(Some("rabbit"), Some(b"hop"), REMOTE)
            .unwrap();
        assert_eq!(
            id.permissions,
            Permissions::full(),
            "database users get what their record says"
        );
        let upgraded = auth.take_rehashed();
        assert_eq!(upgraded.len(), 1);
        assert_eq!(upgraded[0].0, "rabbit");
        assert!(upgraded[0].1.verify(b"hop"));
        assert!(!upgraded[0].1.needs_rehash());
        assert!(
            auth.is_cheap(Some("rabbit"), Some(b"hop")),
            "cached after the first success"
        );
        auth.authenticate(Some("rabbit"), Some(b"hop"), REMOTE)
            .unwrap();
        assert!(auth.take_rehashed().is_empty(), "not upgraded twice");
    }

    #[test]
    fn replacing_definitions_bumps_the_generation_and_revokes() {
        let auth = authenticator();
        let id = auth
            .authenticate_request(&request("tenant-a:carol", b"alice-secret"))
            .unwrap();
        let before = auth.generation();
        let mut defs = database();
        defs.permissions.retain(|p| p.user != "carol");
        auth.replace_definitions(&defs);
        assert_ne!(auth.generation(), before);
        assert_eq!(auth.current_permissions(&id), None);
    }

    #[test]
    fn certificate_user_needs_no_password_but_needs_permissions() {
        let auth = authenticator();
        let mut req = request("ignored", b"");
        req.certificate_user = Some("carol");
        req.listener_vhost = Some("tenant-a");
        assert_eq!(&*auth.authenticate_request(&req).unwrap().username, "carol");
        req.listener_vhost = None;
        assert_eq!(
            auth.authenticate_request(&req),
            Err(AuthFailure::VhostNotAllowed)
        );
    }
}

mod jwt {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    use serde_json::{Value, json};

    use super::*;
    use crate::definitions::{Definitions, VhostRecord};
    use crate::jwt::{JwtAlgorithm, JwtConfig, JwtKey};

    const SECRET: &[u8] = b"authenticator-test-secret";
    const NOW_SECS: u64 = 1_700_000_000;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW_SECS)
    }

    fn auth() -> Authenticator {
        let validator = JwtValidator::new(JwtConfig {
            algorithms: vec![JwtAlgorithm::HS256],
            keys: vec![JwtKey::Secret {
                secret: SECRET.to_vec(),
                kid: None,
            }],
            audience: Some("ferrymq".into()),
            leeway_secs: 5,
            ..JwtConfig::default()
        })
        .unwrap();
        let auth = Authenticator::new(AuthConfig::default())
            .unwrap()
            .with_jwt(validator);
        auth.replace_definitions(&Definitions {
            vhosts: vec![VhostRecord {
                name: "public".into(),
                description: String::new(),
                max_connections: None,
            }],
            ..Definitions::default()
        });
        auth
    }

    fn token(claims: Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET).unwrap(),
        )
        .unwrap()
    }

    fn claims(vhost: Option<&str>) -> Value {
        let mut claims = json!({
            "sub": "web",
            "aud": "ferrymq",
            "exp": NOW_SECS + 60,
            "scope": "ferrymq.publish:public/chat/# ferrymq.subscribe:%2F/news/#",
        });
        if let Some(vhost) = vhost {
            claims["vhost"] = json!(vhost);
        }
        claims
    }

    fn request<'a>(username: Option<&'a str>, password: &'a [u8]) -> AuthRequest<'a> {
        AuthRequest {
            username,
            password: Some(password),
            peer: REMOTE,
            listener_vhost: None,
            certificate_user: None,
            now: now(),
        }
    }

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt(b"eyJh.eyJz.c2ln"));
        assert!(looks_like_jwt(b"a-_.b.c"));
        for not in [
            &b"a.b"[..],
            b"a.b.c.d",
            b"a..c",
            b".b.c",
            b"a.b.c=",
            b"a b.c.d",
            b"",
        ] {
            assert!(!looks_like_jwt(not), "{not:?}");
        }
    }

    #[test]
    fn token_in_the_password_selects_user_vhost_permissions_and_expiry() {
        let auth = auth();
        let jwt = token(claims(Some("public")));
        let id = auth
            .authenticate_request(&request(None, jwt.as_bytes()))
            .unwrap();
        assert_eq!(&*id.username, "web");
        assert_eq!(&*id.vhost, "public");
        assert!(id.source == IdentitySource::Token && !id.anonymous);
        assert_eq!(id.permissions.publish.allow, vec!["chat/#".to_owned()]);
        assert!(id.permissions.subscribe.allow.is_empty());
        // exp plus the 5 s leeway.
        assert_eq!(id.expires_at, Some(now() + Duration::from_secs(65)));
        // Cheap: no argon2 run for a token.
        assert!(auth.is_cheap(None, Some(jwt.as_bytes())));
    }

    #[test]
    fn username_must_be_empty_or_the_tokens() {
        let auth = auth();
        let jwt = token(claims(None));
        assert!(
            auth.authenticate_request(&request(Some("web"), jwt.as_bytes()))
                .is_ok()
        );
        assert_eq!(
            auth.authenticate_request(&request(Some("admin"), jwt.as_bytes())),
            Err(AuthFailure::BadCredentials)
        );
    }

    #[test]
    fn vhost_precedence_token_then_username_then_listener() {
        let auth = auth();
        let with_claim = token(claims(Some("public")));
        let without = token(claims(None));
        let mut req = request(Some("/:web"), with_claim.as_bytes());
        req.listener_vhost = Some("/");
        assert_eq!(&*auth.authenticate_request(&req).unwrap().vhost, "public");
        let req = request(Some("public:web"), without.as_bytes());
        let id = auth.authenticate_request(&req).unwrap();
        assert_eq!(&*id.vhost, "public");
        let mut req = request(None, without.as_bytes());
        req.listener_vhost = Some("public");
        assert_eq!(&*auth.authenticate_request(&req).unwrap().vhost, "public");
        let id = auth
            .authenticate_request(&request(None, without.as_bytes()))
            .unwrap();
        assert_eq!(&*id.vhost, "/");
        assert_eq!(id.permissions.subscribe.allow, vec!["news/#".to_owned()]);
    }

    #[test]
    fn bad_tokens_and_unknown_vhosts_are_refused() {
        let auth = auth();
        let expired = token(json!({"sub": "web", "aud": "ferrymq", "exp": NOW_SECS - 60}));
        let wrong_aud = token(json!({"sub": "web", "aud": "other", "exp": NOW_SECS + 60}));
        let mut forged = token(claims(None));
        forged.push('x');
        for bad in [expired, wrong_aud, forged] {
            assert_eq!(
                auth.authenticate_request(&request(None, bad.as_bytes())),
                Err(AuthFailure::BadCredentials)
            );
        }
        let nowhere = token(claims(Some("nowhere")));
        assert_eq!(
            auth.authenticate_request(&request(None, nowhere.as_bytes())),
            Err(AuthFailure::VhostNotAllowed)
        );
    }

    #[test]
    fn jwt_shaped_passwords_are_passwords_when_jwt_is_off() {
        let auth = Authenticator::new(AuthConfig::default()).unwrap();
        let jwt = token(claims(None));
        assert_eq!(
            auth.authenticate_request(&request(Some("web"), jwt.as_bytes())),
            Err(AuthFailure::BadCredentials)
        );
        assert_eq!(
            auth.authenticate_token(&request(None, jwt.as_bytes()), jwt.as_bytes()),
            Err(AuthFailure::BadCredentials)
        );
    }

    #[test]
    fn token_rights_survive_definition_changes_until_the_vhost_goes() {
        let auth = auth();
        let jwt = token(claims(Some("public")));
        let id = auth
            .authenticate_request(&request(None, jwt.as_bytes()))
            .unwrap();
        assert_eq!(auth.current_permissions(&id), Some(id.permissions.clone()));
        auth.replace_definitions(&Definitions::default());
        assert_eq!(auth.current_permissions(&id), None);
    }

    #[test]
    fn reauthentication_keeps_user_and_vhost() {
        let auth = auth();
        let first = token(claims(Some("public")));
        let id = auth
            .authenticate_request(&request(None, first.as_bytes()))
            .unwrap();
        let mut later = claims(None);
        later["exp"] = json!(NOW_SECS + 600);
        later["scope"] = json!("ferrymq.subscribe:public/chat/#");
        let renewed = auth
            .reauthenticate_token(&id, token(later).as_bytes(), now())
            .unwrap();
        assert_eq!(renewed.expires_at, Some(now() + Duration::from_secs(605)));
        assert_eq!(
            renewed.permissions.subscribe.allow,
            vec!["chat/#".to_owned()]
        );
        assert!(renewed.permissions.publish.allow.is_empty());
        assert_eq!(
            (renewed.username.clone(), renewed.vhost.clone()),
            (id.username.clone(), id.vhost.clone())
        );

        let mut other_user = claims(None);
        other_user["sub"] = json!("admin");
        let mut other_vhost = claims(None);
        other_vhost["vhost"] = json!("/");
        for claims in [other_user, other_vhost] {
            assert_eq!(
                auth.reauthenticate_token(&id, token(claims).as_bytes(), now()),
                Err(ReauthFailure::IdentityChanged)
            );
        }
        assert_eq!(
            auth.reauthenticate_token(&id, b"not.a.token", now()),
            Err(ReauthFailure::InvalidToken)
        );
        let password_user = Identity {
            source: IdentitySource::Internal,
            ..id
        };
        assert_eq!(
            auth.reauthenticate_token(&password_user, first.as_bytes(), now()),
            Err(ReauthFailure::NotAvailable)
        );
    }
}
