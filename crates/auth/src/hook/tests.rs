use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Instant;

use super::*;
use crate::definitions::{Definitions, VhostRecord};
use crate::jwt::{JwtAlgorithm, JwtConfig, JwtKey, JwtValidator};
use crate::{
    AuthConfig, AuthFailure, AuthRequest, Authenticator, HookSubject, IdentitySource, UserConfig,
};

const SEC: Duration = Duration::from_secs(1);
// argon2id of "alice-secret" with cheap parameters (m=8 KiB, t=1).
const ALICE_HASH: &str = "$argon2id$v=19$m=8,t=1,p=1$YWxpY2Utc2VjcmV0LXRlc3Qtc2FsdA$IIIuuumCOhX8LRy0FCvFR5bVXgARKxXPg0rDnQyqDYI";

fn request() -> HookRequest<'static> {
    HookRequest {
        username: "alice",
        password: Some(b"s3cret"),
        client_id: "dev-1",
        vhost: "tenant",
        listener_vhost: None,
        peer: SocketAddr::from(([192, 0, 2, 7], 40001)),
        protocol_version: 5,
        transport: Some("tcp"),
    }
}

fn json_of(request: &HookRequest<'_>) -> Value {
    serde_json::from_slice(&request.to_json()).expect("the request is JSON")
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn parse(body: &str) -> Result<HookVerdict, HookResponseError> {
    parse_response(200, body.as_bytes(), now())
}

fn allow(body: &str) -> HookGrant {
    match parse(body) {
        Ok(HookVerdict::Allow(grant)) => grant,
        other => panic!("{body}: expected allow, got {other:?}"),
    }
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn the_request_carries_every_field() {
    let body = json_of(&HookRequest {
        listener_vhost: Some("web"),
        ..request()
    });
    assert_eq!(
        body,
        json!({
            "username": "alice",
            "password": "s3cret",
            "client_id": "dev-1",
            "vhost": "tenant",
            "listener_vhost": "web",
            "peer_address": "192.0.2.7",
            "peer_port": 40001,
            "protocol_version": 5,
            "transport": "tcp",
        })
    );
}

#[test]
fn binary_passwords_are_base64_and_absent_ones_absent() {
    let binary = json_of(&HookRequest {
        password: Some(&[0xff, 0x00, b'a']),
        ..request()
    });
    assert_eq!(binary["password_base64"], json!("/wBh"));
    assert!(binary.get("password").is_none());

    let none = json_of(&HookRequest {
        password: None,
        transport: None,
        ..request()
    });
    for absent in ["password", "password_base64", "transport", "listener_vhost"] {
        assert!(none.get(absent).is_none(), "{absent} in {none}");
    }
}

#[test]
fn ipv4_mapped_addresses_are_sent_as_ipv4() {
    let mapped = Ipv4Addr::new(198, 51, 100, 4).to_ipv6_mapped();
    let body = json_of(&HookRequest {
        peer: SocketAddr::new(IpAddr::V6(mapped), 1),
        ..request()
    });
    assert_eq!(body["peer_address"], json!("198.51.100.4"));
    let v6 = json_of(&HookRequest {
        peer: SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 1),
        ..request()
    });
    assert_eq!(v6["peer_address"], json!("::1"));
}

#[test]
fn an_allow_grants_what_it_lists_and_nothing_else() {
    let grant = allow(r#"{"result": "allow", "publish": ["devices/{client_id}/#"]}"#);
    assert_eq!(
        grant.permissions.publish.allow,
        strings(&["devices/{client_id}/#"])
    );
    assert_eq!(grant.permissions.subscribe, TopicRules::default());
    assert!(!grant.permissions.read_sys);
    assert_eq!((grant.vhost, grant.expires_at), (None, None));

    let bare = allow(r#"{"result": "allow"}"#);
    assert_eq!(
        bare.permissions,
        Permissions::default(),
        "absent means nothing"
    );
}

#[test]
fn an_allow_may_use_allow_and_deny_lists_a_vhost_sys_and_an_expiry() {
    let grant = allow(
        r##"{"result": "allow", "vhost": "tenant-b",
            "publish": {"allow": ["a/#"], "deny": ["a/secret/#"]},
            "subscribe": {"allow": ["#"]}, "read_sys": true,
            "expires_at": 1700000600, "tags": ["management"], "anything": {"else": 1}}"##,
    );
    assert_eq!(grant.vhost.as_deref(), Some("tenant-b"));
    assert_eq!(
        grant.permissions.publish,
        TopicRules {
            allow: strings(&["a/#"]),
            deny: strings(&["a/secret/#"]),
        }
    );
    assert_eq!(grant.permissions.subscribe.allow, strings(&["#"]));
    assert!(grant.permissions.read_sys);
    assert_eq!(
        grant.expires_at,
        Some(UNIX_EPOCH + Duration::from_secs(1_700_000_600))
    );
}

#[test]
fn a_deny_is_a_deny_whatever_else_it_says() {
    assert_eq!(parse(r#"{"result": "deny"}"#), Ok(HookVerdict::Deny));
    assert_eq!(
        parse(r#"{"result": "deny", "publish": "not even a list"}"#),
        Ok(HookVerdict::Deny)
    );
}

#[test]
fn an_allow_that_already_expired_is_a_deny() {
    assert_eq!(
        parse(r#"{"result": "allow", "expires_at": 1700000000}"#),
        Ok(HookVerdict::Deny)
    );
    assert_eq!(
        parse(r#"{"result": "allow", "expires_at": 1600000000}"#),
        Ok(HookVerdict::Deny)
    );
}

#[test]
fn other_statuses_are_errors_even_with_a_good_body() {
    for status in [201, 204, 301, 401, 403, 404, 500, 503] {
        assert_eq!(
            parse_response(status, br#"{"result": "allow"}"#, now()),
            Err(HookResponseError::Status(status))
        );
    }
}

#[test]
fn malformed_answers_are_errors_that_say_what_is_wrong() {
    for (body, says) in [
        ("", "not JSON"),
        ("allow", "not JSON"),
        ("[]", "not a JSON object"),
        ("{}", "no \"result\""),
        (r#"{"result": "ALLOW"}"#, "\"result\" must be"),
        (r#"{"result": true}"#, "\"result\" must be"),
        (r#"{"result": "ignore"}"#, "\"result\" must be"),
        (r#"{"result": "allow", "vhost": ""}"#, "\"vhost\""),
        (r#"{"result": "allow", "vhost": 7}"#, "\"vhost\""),
        (
            r#"{"result": "allow", "publish": "a/#"}"#,
            "\"publish\" must be",
        ),
        (
            r#"{"result": "allow", "subscribe": [1]}"#,
            "\"subscribe\" must be",
        ),
        (
            r#"{"result": "allow", "subscribe": {"allows": []}}"#,
            "\"subscribe\" must be",
        ),
        (r#"{"result": "allow", "read_sys": "yes"}"#, "\"read_sys\""),
        (r#"{"result": "allow", "expires_at": -5}"#, "\"expires_at\""),
        (
            r#"{"result": "allow", "expires_at": 1.5}"#,
            "\"expires_at\"",
        ),
        (
            r#"{"result": "allow", "expires_at": "soon"}"#,
            "\"expires_at\"",
        ),
        // Milliseconds, as JavaScript's Date.now() gives them.
        (
            r#"{"result": "allow", "expires_at": 1700000600000}"#,
            "Unix time in seconds",
        ),
    ] {
        match parse(body) {
            Err(HookResponseError::Malformed(message)) => {
                assert!(message.contains(says), "{body}: {message}")
            }
            other => panic!("{body}: expected a malformed answer, got {other:?}"),
        }
    }
}

#[test]
fn invalid_filters_are_errors() {
    for body in [
        r#"{"result": "allow", "publish": ["a/#/b"]}"#,
        r#"{"result": "allow", "subscribe": {"deny": ["a+"]}}"#,
        r#"{"result": "allow", "publish": ["devices/{clientid}/#"]}"#,
    ] {
        assert!(
            matches!(parse(body), Err(HookResponseError::InvalidPermission(_))),
            "{body}"
        );
    }
}

#[test]
fn cache_time_follows_the_answer() {
    let (allow_ttl, deny_ttl) = (60 * SEC, 10 * SEC);
    let open = HookVerdict::Allow(allow(r#"{"result": "allow"}"#));
    assert_eq!(open.cache_for(allow_ttl, deny_ttl, now()), allow_ttl);
    assert_eq!(
        HookVerdict::Deny.cache_for(allow_ttl, deny_ttl, now()),
        deny_ttl
    );
    let soon = HookVerdict::Allow(allow(r#"{"result": "allow", "expires_at": 1700000030}"#));
    assert_eq!(soon.cache_for(allow_ttl, deny_ttl, now()), 30 * SEC);
    let later = HookVerdict::Allow(allow(r#"{"result": "allow", "expires_at": 1700009999}"#));
    assert_eq!(later.cache_for(allow_ttl, deny_ttl, now()), allow_ttl);
}

fn cache(capacity: usize) -> HookCache {
    HookCache::new(60 * SEC, 10 * SEC, capacity).expect("random source")
}

fn allowed() -> Arc<HookVerdict> {
    Arc::new(HookVerdict::Allow(allow(r#"{"result": "allow"}"#)))
}

#[test]
fn cached_answers_live_their_ttl() {
    let t0 = Instant::now();
    let mut cache = cache(10);
    let yes = cache.key(&request());
    let no = cache.key(&HookRequest {
        password: Some(b"wrong"),
        ..request()
    });
    cache.insert(yes, allowed(), t0, now());
    cache.insert(no, Arc::new(HookVerdict::Deny), t0, now());
    assert_eq!(cache.get(&yes, t0 + 59 * SEC), Some(allowed()));
    assert_eq!(
        cache.get(&no, t0 + 9 * SEC).as_deref(),
        Some(&HookVerdict::Deny)
    );
    assert_eq!(
        cache.get(&no, t0 + 10 * SEC),
        None,
        "deny answers live 10 s"
    );
    assert_eq!(
        cache.get(&yes, t0 + 60 * SEC),
        None,
        "allow answers live 60 s"
    );
    assert!(cache.is_empty(), "expired answers are dropped when seen");
}

#[test]
fn the_key_covers_every_field_but_the_port() {
    let cache = cache(10);
    let base = cache.key(&request());
    assert_eq!(base, cache.key(&request()));
    assert_eq!(
        base,
        cache.key(&HookRequest {
            peer: SocketAddr::from(([192, 0, 2, 7], 50000)),
            ..request()
        }),
        "a new connection has a new port"
    );
    let variants = [
        HookRequest {
            username: "alicE",
            ..request()
        },
        HookRequest {
            password: Some(b"s3creT"),
            ..request()
        },
        HookRequest {
            password: None,
            ..request()
        },
        HookRequest {
            password: Some(b""),
            ..request()
        },
        HookRequest {
            client_id: "dev-2",
            ..request()
        },
        HookRequest {
            vhost: "/",
            ..request()
        },
        HookRequest {
            listener_vhost: Some("tenant"),
            ..request()
        },
        HookRequest {
            peer: SocketAddr::from(([192, 0, 2, 8], 40001)),
            ..request()
        },
        HookRequest {
            protocol_version: 4,
            ..request()
        },
        HookRequest {
            transport: Some("ws"),
            ..request()
        },
        // Field boundaries count: "ab" + "c" is not "a" + "bc".
        HookRequest {
            username: "alicedev-1",
            client_id: "",
            ..request()
        },
    ];
    for variant in variants {
        assert_ne!(base, cache.key(&variant), "{variant:?}");
    }
    let other = HookCache::new(60 * SEC, 10 * SEC, 10).expect("random source");
    assert_ne!(base, other.key(&request()), "keys are keyed per process");
}

#[test]
fn the_oldest_answer_is_evicted_at_capacity() {
    let t0 = Instant::now();
    let mut cache = cache(3);
    let keys: Vec<HookCacheKey> = ["a", "b", "c", "d"]
        .iter()
        .map(|client_id| {
            cache.key(&HookRequest {
                client_id,
                ..request()
            })
        })
        .collect();
    for (i, key) in keys.iter().enumerate() {
        cache.insert(*key, allowed(), t0 + i as u32 * SEC, now());
    }
    assert_eq!(cache.len(), 3);
    assert_eq!(cache.get(&keys[0], t0 + 5 * SEC), None, "the oldest went");
    for key in &keys[1..] {
        assert!(cache.get(key, t0 + 5 * SEC).is_some());
    }
    // Re-inserting the same key again and again keeps the queue bounded.
    for i in 0..100 {
        cache.insert(keys[3], allowed(), t0 + 6 * SEC + i * SEC / 100, now());
    }
    assert!(cache.queued() <= 2 * 3 + 1, "{}", cache.queued());
    assert_eq!(cache.len(), 3);
}

#[test]
fn expired_answers_make_room_before_live_ones_are_evicted() {
    let t0 = Instant::now();
    let mut cache = cache(2);
    let key = |cache: &HookCache, id| {
        cache.key(&HookRequest {
            client_id: id,
            ..request()
        })
    };
    let (denied, kept, new) = (key(&cache, "a"), key(&cache, "b"), key(&cache, "c"));
    cache.insert(denied, Arc::new(HookVerdict::Deny), t0, now());
    cache.insert(kept, allowed(), t0, now());
    cache.insert(new, allowed(), t0 + 11 * SEC, now());
    assert!(cache.get(&kept, t0 + 11 * SEC).is_some());
    assert!(cache.get(&new, t0 + 11 * SEC).is_some());
}

#[test]
fn zero_ttl_or_capacity_caches_nothing() {
    let t0 = Instant::now();
    let mut no_deny = HookCache::new(60 * SEC, Duration::ZERO, 10).expect("random source");
    let key = no_deny.key(&request());
    no_deny.insert(key, Arc::new(HookVerdict::Deny), t0, now());
    assert!(no_deny.is_empty());
    no_deny.insert(key, allowed(), t0, now());
    assert_eq!(no_deny.len(), 1);

    let mut off = cache(0);
    off.insert(key, allowed(), t0, now());
    assert!(off.is_empty());
}

fn authenticator(users: &[&str]) -> Authenticator {
    let auth = Authenticator::new(AuthConfig {
        users: users
            .iter()
            .map(|name| UserConfig {
                name: (*name).to_owned(),
                password_hash: ALICE_HASH.to_owned(),
                loopback_only: false,
            })
            .collect(),
        ..AuthConfig::default()
    })
    .expect("valid config");
    auth.replace_definitions(&Definitions {
        vhosts: vec![VhostRecord {
            name: "tenant".into(),
            description: String::new(),
            max_connections: None,
        }],
        ..Definitions::default()
    });
    auth
}

fn auth_request<'a>(username: Option<&'a str>, password: Option<&'a [u8]>) -> AuthRequest<'a> {
    AuthRequest {
        username,
        password,
        peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
        listener_vhost: None,
        certificate_user: None,
        now: now(),
    }
}

#[test]
fn the_hook_is_asked_about_the_user_and_vhost_selection_picked() {
    let auth = authenticator(&["admin"]);
    let subject = |username, listener_vhost| {
        auth.hook_subject(&AuthRequest {
            listener_vhost,
            ..auth_request(Some(username), Some(b"pw"))
        })
    };
    assert_eq!(
        subject("tenant:dave", None),
        Some(HookSubject {
            username: "dave",
            vhost: "tenant",
            known_internally: false,
        })
    );
    assert_eq!(
        subject("dave", Some("web")).map(|s| (s.username, s.vhost)),
        Some(("dave", "web"))
    );
    assert_eq!(
        subject("a:b:dave", Some("web")).map(|s| s.vhost),
        Some("a:b")
    );
    assert_eq!(subject("dave", None).map(|s| s.vhost), Some("/"));
    assert_eq!(
        subject("tenant:admin", None).map(|s| s.known_internally),
        Some(true)
    );
}

#[test]
fn the_hook_has_no_say_on_anonymous_certificate_and_token_logins() {
    let auth = authenticator(&[]);
    assert_eq!(auth.hook_subject(&auth_request(None, Some(b"pw"))), None);
    assert_eq!(auth.hook_subject(&auth_request(Some(""), None)), None);
    assert_eq!(
        auth.hook_subject(&auth_request(Some("tenant:"), None)),
        None
    );
    let certificate = AuthRequest {
        certificate_user: Some("device-7"),
        ..auth_request(Some("dave"), None)
    };
    assert_eq!(auth.hook_subject(&certificate), None);

    let token: &[u8] = b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ3ZWIifQ.c2ln";
    assert!(
        auth.hook_subject(&auth_request(Some("dave"), Some(token)))
            .is_some(),
        "without JWT a token-shaped password is a password"
    );
    let with_jwt = authenticator(&[]).with_jwt(
        JwtValidator::new(JwtConfig {
            algorithms: vec![JwtAlgorithm::HS256],
            keys: vec![JwtKey::Secret {
                secret: b"secret".to_vec(),
                kid: None,
            }],
            ..JwtConfig::default()
        })
        .expect("valid JWT config"),
    );
    assert_eq!(
        with_jwt.hook_subject(&auth_request(Some("dave"), Some(token))),
        None
    );
}

#[test]
fn the_built_in_guest_is_known_only_while_no_user_is() {
    let none = authenticator(&[]);
    let guest = auth_request(Some("guest"), Some(b"guest"));
    assert_eq!(
        none.hook_subject(&guest).map(|s| s.known_internally),
        Some(true)
    );
    let some = authenticator(&["admin"]);
    assert_eq!(
        some.hook_subject(&guest).map(|s| s.known_internally),
        Some(false)
    );
}

#[test]
fn a_hook_identity_lands_in_an_existing_vhost_with_the_hooks_rights() {
    let auth = authenticator(&[]);
    let subject = HookSubject {
        username: "dave",
        vhost: "tenant",
        known_internally: false,
    };
    let grant = allow(r#"{"result": "allow", "publish": ["a/#"], "expires_at": 1700000600}"#);
    let identity = auth.identity_from_hook(&subject, &grant).expect("allowed");
    assert_eq!(&*identity.username, "dave");
    assert_eq!(&*identity.vhost, "tenant");
    assert_eq!(identity.permissions, grant.permissions);
    assert_eq!(identity.expires_at, grant.expires_at);
    assert_eq!(identity.source, IdentitySource::Hook);
    assert!(!identity.anonymous);

    let moved = HookGrant {
        vhost: Some("/".into()),
        ..grant.clone()
    };
    let identity = auth.identity_from_hook(&subject, &moved).expect("allowed");
    assert_eq!(&*identity.vhost, "/");
    let nowhere = HookGrant {
        vhost: Some("ghost".into()),
        ..grant.clone()
    };
    assert_eq!(
        auth.identity_from_hook(&subject, &nowhere),
        Err(AuthFailure::VhostNotAllowed)
    );
}

#[test]
fn a_hook_identity_keeps_its_rights_until_its_vhost_goes() {
    let auth = authenticator(&[]);
    let subject = HookSubject {
        username: "dave",
        vhost: "tenant",
        known_internally: false,
    };
    let grant = allow(r#"{"result": "allow", "subscribe": ["x/#"]}"#);
    let identity = auth.identity_from_hook(&subject, &grant).expect("allowed");
    assert_eq!(
        auth.current_permissions(&identity),
        Some(grant.permissions.clone()),
        "a user the database does not know keeps the hook's rights"
    );
    auth.replace_definitions(&Definitions::default());
    assert_eq!(auth.current_permissions(&identity), None);
}
