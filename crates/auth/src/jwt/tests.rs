use std::sync::OnceLock;

use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::json;

use super::*;

const SECRET: &[u8] = b"a-test-secret-of-reasonable-length";
/// 2023-11-14T22:13:20Z: a fixed "now" for every test.
const NOW_SECS: u64 = 1_700_000_000;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

fn hs256_config() -> JwtConfig {
    JwtConfig {
        algorithms: vec![JwtAlgorithm::HS256],
        keys: vec![JwtKey::Secret {
            secret: SECRET.to_vec(),
            kid: None,
        }],
        audience: Some("ferrymq".into()),
        issuer: Some("https://idp.example".into()),
        ..JwtConfig::default()
    }
}

fn claims() -> Value {
    json!({
        "sub": "browser-app",
        "aud": "ferrymq",
        "iss": "https://idp.example",
        "exp": NOW_SECS + 600,
        "nbf": NOW_SECS - 10,
        "vhost": "public",
        "scope": "openid ferrymq.publish:public/chat/{client_id}/# ferrymq.subscribe:public/chat/# \
                  ferrymq.read_sys:public ferrymq.publish:other/x ferrymq.subscribe:%2F/y"
    })
}

fn hs256(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET).unwrap(),
    )
    .unwrap()
}

fn validator(config: JwtConfig) -> JwtValidator {
    JwtValidator::new(config).expect("valid config")
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

#[test]
fn a_good_token_gives_identity_and_permissions() {
    let identity = validator(hs256_config())
        .validate(&hs256(&claims()), now())
        .expect("valid");
    assert_eq!(identity.username, "browser-app");
    assert_eq!(identity.vhost.as_deref(), Some("public"));
    assert_eq!(
        identity.expires_at,
        Some(UNIX_EPOCH + Duration::from_secs(NOW_SECS + 600))
    );
    assert_eq!(
        identity.permissions,
        Permissions {
            publish: TopicRules {
                allow: vec!["chat/{client_id}/#".into()],
                deny: vec![]
            },
            subscribe: TopicRules {
                allow: vec!["chat/#".into()],
                deny: vec![]
            },
            read_sys: true,
        }
    );
    // Scopes for other vhosts are kept for `permissions_for`, not granted here.
    assert_eq!(identity.permissions_for("/").subscribe.allow, vec!["y"]);
    assert_eq!(identity.permissions_for("other").publish.allow, vec!["x"]);
    assert_eq!(identity.permissions_for("nowhere"), Permissions::default());
    let bound = identity.permissions.bind("browser-app", "tab1", "public");
    assert!(bound.may_publish("chat/tab1/msg"));
    assert!(!bound.may_publish("chat/tab2/msg"));
}

#[test]
fn scopes_as_an_array_and_the_default_vhost() {
    let token = hs256(&with(
        without(claims(), "vhost"),
        "scope",
        json!([
            "ferrymq.publish:%2F/a/#",
            "ferrymq.subscribe:%2F/b",
            "other"
        ]),
    ));
    let identity = validator(hs256_config()).validate(&token, now()).unwrap();
    assert_eq!(identity.vhost, None);
    assert_eq!(identity.permissions.publish.allow, vec!["a/#"]);
    assert_eq!(identity.permissions.subscribe.allow, vec!["b"]);
    assert!(!identity.permissions.read_sys);
    // No scope claim: no rights, but a valid identity.
    let token = hs256(&without(claims(), "scope"));
    let identity = validator(hs256_config()).validate(&token, now()).unwrap();
    assert_eq!(identity.permissions, Permissions::default());
}

#[test]
fn scope_parsing_edge_cases() {
    let identity = TokenIdentity {
        username: "u".into(),
        vhost: None,
        permissions: Permissions::default(),
        expires_at: None,
        scopes: [
            "publish:v%2Fx/a",  // vhost "v/x"
            "publish:v/x/b",    // vhost "v", filter "x/b"
            "publish:%zz/c",    // bad escape: ignored
            "publish:%2/d",     // truncated escape: ignored
            "publish:v%2Fx/",   // empty filter: ignored
            "publish:v%2Fx/a",  // duplicate
            "delete:v%2Fx/e",   // unknown action
            "read_sys:v%2Fx/f", // read_sys takes no filter
            "nocolon",
        ]
        .map(str::to_owned)
        .to_vec(),
    };
    let perms = identity.permissions_for("v/x");
    assert_eq!(perms.publish.allow, vec!["a"]);
    assert!(!perms.read_sys);
    assert_eq!(identity.permissions_for("v").publish.allow, vec!["x/b"]);
    assert_eq!(percent_decode("%E2%9C%93"), Some("✓".to_owned()));
    assert_eq!(percent_decode("%FF"), None);
    assert_eq!(percent_decode("%+F"), None);
    assert_eq!(percent_decode("a%2f"), Some("a/".to_owned()));
}

#[test]
fn time_claims_use_the_callers_clock() {
    let v = validator(hs256_config());
    let token = hs256(&claims());
    // exp = now + 600, leeway 30 s.
    let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
    assert!(v.validate(&token, at(NOW_SECS + 630)).is_ok());
    assert_eq!(
        v.validate(&token, at(NOW_SECS + 631)),
        Err(JwtError::Expired)
    );
    // nbf = now - 10: valid from now - 40 with the leeway.
    assert!(v.validate(&token, at(NOW_SECS - 40)).is_ok());
    assert_eq!(
        v.validate(&token, at(NOW_SECS - 41)),
        Err(JwtError::NotYetValid)
    );
    // Wrong types are refused, not skipped (jsonwebtoken < 10.3 skipped them).
    for claim in ["exp", "nbf"] {
        let token = hs256(&with(claims(), claim, json!("99999999999")));
        assert_eq!(
            v.validate(&token, now()),
            Err(JwtError::InvalidClaim(claim.into()))
        );
    }
    let token = hs256(&with(claims(), "exp", json!(-5)));
    assert_eq!(
        v.validate(&token, now()),
        Err(JwtError::InvalidClaim("exp".into()))
    );
    // Fractional dates are fine; absurdly late ones never expire.
    let token = hs256(&with(claims(), "exp", json!(NOW_SECS as f64 + 0.5)));
    assert!(v.validate(&token, now()).is_ok());
    let token = hs256(&with(claims(), "exp", json!(1e300)));
    assert_eq!(v.validate(&token, now()).unwrap().expires_at, None);
    // exp is required unless configured otherwise.
    let token = hs256(&without(claims(), "exp"));
    assert_eq!(v.validate(&token, now()), Err(JwtError::MissingExpiry));
    let lenient = validator(JwtConfig {
        require_exp: false,
        ..hs256_config()
    });
    assert_eq!(lenient.validate(&token, now()).unwrap().expires_at, None);
}

#[test]
fn audience_and_issuer() {
    let v = validator(hs256_config());
    let cases = [
        (
            with(claims(), "aud", json!("other")),
            JwtError::WrongAudience,
        ),
        (
            with(claims(), "aud", json!(["a", "b"])),
            JwtError::WrongAudience,
        ),
        (with(claims(), "aud", json!(7)), JwtError::WrongAudience),
        (without(claims(), "aud"), JwtError::WrongAudience),
        (
            with(claims(), "iss", json!("https://evil.example")),
            JwtError::WrongIssuer,
        ),
        (without(claims(), "iss"), JwtError::WrongIssuer),
    ];
    for (claims, expected) in cases {
        assert_eq!(
            v.validate(&hs256(&claims), now()),
            Err(expected),
            "{claims}"
        );
    }
    let token = hs256(&with(claims(), "aud", json!(["other", "ferrymq"])));
    assert!(v.validate(&token, now()).is_ok());
    // Without a configured audience, a token addressed to someone refuses; one without
    // `aud` is fine.
    let open = validator(JwtConfig {
        audience: None,
        issuer: None,
        ..hs256_config()
    });
    assert_eq!(
        open.validate(&hs256(&claims()), now()),
        Err(JwtError::WrongAudience)
    );
    assert!(
        open.validate(&hs256(&without(claims(), "aud")), now())
            .is_ok()
    );
}

#[test]
fn identity_claims() {
    let v = validator(hs256_config());
    let cases = [
        (without(claims(), "sub"), JwtError::MissingUsername),
        (with(claims(), "sub", json!("")), JwtError::MissingUsername),
        (
            with(claims(), "sub", json!(42)),
            JwtError::InvalidClaim("sub".into()),
        ),
        (
            with(claims(), "vhost", json!(["a"])),
            JwtError::InvalidClaim("vhost".into()),
        ),
        (
            with(claims(), "scope", json!({"a": 1})),
            JwtError::InvalidClaim("scope".into()),
        ),
        (
            with(claims(), "scope", json!(["ok", 1])),
            JwtError::InvalidClaim("scope".into()),
        ),
    ];
    for (claims, expected) in cases {
        assert_eq!(
            v.validate(&hs256(&claims), now()),
            Err(expected),
            "{claims}"
        );
    }
    // Claim names are configurable.
    let custom = validator(JwtConfig {
        username_claim: "preferred_username".into(),
        vhost_claim: "tenant".into(),
        scope_claim: "scp".into(),
        scope_prefix: "mq.".into(),
        ..hs256_config()
    });
    let token = hs256(&json!({
        "preferred_username": "carol", "tenant": "t1", "scp": ["mq.subscribe:t1/#"],
        "aud": "ferrymq", "iss": "https://idp.example", "exp": NOW_SECS + 60
    }));
    let identity = custom.validate(&token, now()).unwrap();
    assert_eq!(identity.username, "carol");
    assert_eq!(identity.vhost.as_deref(), Some("t1"));
    assert_eq!(identity.permissions.subscribe.allow, vec!["#"]);
}

#[test]
fn signatures_and_algorithms() {
    let v = validator(hs256_config());
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(b"another-secret").unwrap(),
    )
    .unwrap();
    assert_eq!(v.validate(&forged, now()), Err(JwtError::BadSignature));
    // A tampered payload fails the signature even if it is well-formed.
    let good = hs256(&claims());
    let mut parts: Vec<&str> = good.split('.').collect();
    let evil_payload = hs256(&with(claims(), "sub", json!("admin")));
    parts[1] = evil_payload.split('.').nth(1).unwrap();
    assert_eq!(
        v.validate(&parts.join("."), now()),
        Err(JwtError::BadSignature)
    );
    // HS384 and "none" are not accepted.
    let hs384 = encode(
        &Header::new(Algorithm::HS384),
        &claims(),
        &EncodingKey::from_secret(SECRET).unwrap(),
    )
    .unwrap();
    assert_eq!(
        v.validate(&hs384, now()),
        Err(JwtError::AlgorithmNotAllowed("HS384".into()))
    );
    let unsigned = format!(
        "{}.{}.",
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0",
        good.split('.').nth(1).unwrap()
    );
    assert!(matches!(
        v.validate(&unsigned, now()),
        Err(JwtError::Malformed(_))
    ));
    for garbage in ["", "a.b", "a.b.c", "....", "eyJ.eyJ.x", "\u{0}"] {
        assert!(
            matches!(v.validate(garbage, now()), Err(JwtError::Malformed(_))),
            "{garbage:?}"
        );
    }
    let huge = "a".repeat(MAX_TOKEN_LEN + 1);
    assert!(matches!(
        v.validate(&huge, now()),
        Err(JwtError::Malformed(_))
    ));
}

#[test]
fn kids_select_keys() {
    let config = JwtConfig {
        keys: vec![
            JwtKey::Secret {
                secret: b"first-secret".to_vec(),
                kid: Some("one".into()),
            },
            JwtKey::Secret {
                secret: SECRET.to_vec(),
                kid: Some("two".into()),
            },
        ],
        ..hs256_config()
    };
    let v = validator(config);
    let sign = |kid: Option<&str>, secret: &[u8]| {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = kid.map(str::to_owned);
        encode(
            &header,
            &claims(),
            &EncodingKey::from_secret(secret).unwrap(),
        )
        .unwrap()
    };
    assert!(v.validate(&sign(Some("two"), SECRET), now()).is_ok());
    assert!(
        v.validate(&sign(Some("one"), b"first-secret"), now())
            .is_ok()
    );
    // The kid selects: the right secret under the wrong kid does not verify.
    assert_eq!(
        v.validate(&sign(Some("one"), SECRET), now()),
        Err(JwtError::BadSignature)
    );
    assert_eq!(
        v.validate(&sign(Some("three"), SECRET), now()),
        Err(JwtError::UnknownKid("three".into()))
    );
    // Without a kid every key of the family is tried.
    assert!(v.validate(&sign(None, SECRET), now()).is_ok());
}

// ---- RS256 / ES256 with keys generated per test run ----

struct TestKeys {
    rsa_private_pem: String,
    rsa_public_pem: String,
    rsa_n: String,
    rsa_e: String,
    ec_private_pem: String,
    ec_public_pem: String,
}

fn test_keys() -> &'static TestKeys {
    static KEYS: OnceLock<TestKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use getrandom::SysRng;
        use p256::elliptic_curve::Generate as _;
        use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
        use rsa::traits::PublicKeyParts as _;

        let rsa = rsa::PrivateKey::new(&mut SysRng, 2048).expect("RSA key");
        let rsa_public = rsa.to_public_key();
        let ec = p256::SecretKey::try_generate_from_rng(&mut SysRng).expect("EC key");
        TestKeys {
            rsa_private_pem: rsa.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
            rsa_public_pem: rsa_public.to_public_key_pem(LineEnding::LF).unwrap(),
            rsa_n: URL_SAFE_NO_PAD.encode(rsa_public.n().to_be_bytes()),
            rsa_e: URL_SAFE_NO_PAD.encode(rsa_public.e().to_be_bytes()),
            ec_private_pem: ec.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
            ec_public_pem: ec.public_key().to_public_key_pem(LineEnding::LF).unwrap(),
        }
    })
}

fn sign(alg: Algorithm, kid: Option<&str>, private_pem: &str, claims: &Value) -> String {
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(private_pem.as_bytes()),
        _ => EncodingKey::from_ec_pem(private_pem.as_bytes()),
    }
    .unwrap();
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, &key).unwrap()
}

fn asymmetric_config(keys: Vec<JwtKey>) -> JwtConfig {
    JwtConfig {
        algorithms: vec![JwtAlgorithm::RS256, JwtAlgorithm::ES256],
        keys,
        ..hs256_config()
    }
}

#[test]
fn rs256_and_es256_with_pem_keys() {
    let keys = test_keys();
    let v = validator(asymmetric_config(vec![
        JwtKey::Pem {
            pem: keys.rsa_public_pem.clone(),
            kid: None,
        },
        JwtKey::Pem {
            pem: keys.ec_public_pem.clone(),
            kid: None,
        },
    ]));
    let rs = sign(Algorithm::RS256, None, &keys.rsa_private_pem, &claims());
    let es = sign(Algorithm::ES256, None, &keys.ec_private_pem, &claims());
    assert_eq!(v.validate(&rs, now()).unwrap().username, "browser-app");
    assert_eq!(v.validate(&es, now()).unwrap().username, "browser-app");
    // Each error still applies with asymmetric keys.
    let expired = sign(
        Algorithm::ES256,
        None,
        &keys.ec_private_pem,
        &with(claims(), "exp", json!(NOW_SECS - 3600)),
    );
    assert_eq!(v.validate(&expired, now()), Err(JwtError::Expired));
    let wrong_aud = sign(
        Algorithm::RS256,
        None,
        &keys.rsa_private_pem,
        &with(claims(), "aud", json!("x")),
    );
    assert_eq!(v.validate(&wrong_aud, now()), Err(JwtError::WrongAudience));
    // An HS256 token is refused: not configured here (no algorithm confusion with the
    // public key as an HMAC secret).
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(keys.rsa_public_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(
        v.validate(&confused, now()),
        Err(JwtError::AlgorithmNotAllowed("HS256".into()))
    );
    // A token signed by another EC key fails the signature.
    let other_pem = {
        use p256::elliptic_curve::Generate as _;
        use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
        let other = p256::SecretKey::try_generate_from_rng(&mut getrandom::SysRng).unwrap();
        other.to_pkcs8_pem(LineEnding::LF).unwrap().to_string()
    };
    let forged = sign(Algorithm::ES256, None, &other_pem, &claims());
    assert_eq!(v.validate(&forged, now()), Err(JwtError::BadSignature));
}

#[test]
fn keys_from_files_and_jwks() {
    let keys = test_keys();
    let dir = std::env::temp_dir().join(format!("ferrymq-auth-jwt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ec_path = dir.join("ec.pem");
    std::fs::write(&ec_path, &keys.ec_public_pem).unwrap();
    let jwks_path = dir.join("jwks.json");
    let jwks = json!({"keys": [
        {"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256", "n": keys.rsa_n, "e": keys.rsa_e},
        {"kty": "RSA", "kid": "enc-1", "use": "enc", "n": keys.rsa_n, "e": keys.rsa_e}
    ]});
    std::fs::write(&jwks_path, jwks.to_string()).unwrap();

    let v = validator(asymmetric_config(vec![
        JwtKey::PemFile {
            path: ec_path.clone(),
            kid: Some("ec-1".into()),
        },
        JwtKey::JwksFile {
            path: jwks_path.clone(),
        },
    ]));
    let rs = sign(
        Algorithm::RS256,
        Some("rsa-1"),
        &keys.rsa_private_pem,
        &claims(),
    );
    assert!(v.validate(&rs, now()).is_ok());
    let es = sign(
        Algorithm::ES256,
        Some("ec-1"),
        &keys.ec_private_pem,
        &claims(),
    );
    assert!(v.validate(&es, now()).is_ok());
    // Encryption keys of the JWKS are not used for signatures.
    let enc = sign(
        Algorithm::RS256,
        Some("enc-1"),
        &keys.rsa_private_pem,
        &claims(),
    );
    assert_eq!(
        v.validate(&enc, now()),
        Err(JwtError::UnknownKid("enc-1".into()))
    );
    // A kid of the wrong family finds no key.
    let mismatched = sign(
        Algorithm::ES256,
        Some("rsa-1"),
        &keys.ec_private_pem,
        &claims(),
    );
    assert_eq!(v.validate(&mismatched, now()), Err(JwtError::NoKey));

    let missing = JwtValidator::new(asymmetric_config(vec![JwtKey::PemFile {
        path: dir.join("absent.pem"),
        kid: None,
    }]));
    assert!(matches!(missing, Err(JwtConfigError::ReadKey { .. })));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn config_errors() {
    assert_eq!(
        JwtValidator::new(JwtConfig::default()).unwrap_err(),
        JwtConfigError::NoAlgorithms
    );
    assert_eq!(
        JwtValidator::new(asymmetric_config(vec![JwtKey::Secret {
            secret: SECRET.to_vec(),
            kid: None
        }]))
        .unwrap_err(),
        JwtConfigError::NoKeyFor(JwtAlgorithm::RS256)
    );
    for bad in [
        JwtKey::Pem {
            pem: "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n".into(),
            kid: None,
        },
        JwtKey::Jwks { json: "{".into() },
        JwtKey::Jwks {
            json: r#"{"keys": [{"kty": "RSA", "n": "!!", "e": "AQAB"}]}"#.into(),
        },
        JwtKey::Secret {
            secret: Vec::new(),
            kid: None,
        },
    ] {
        assert!(
            matches!(
                JwtValidator::new(JwtConfig {
                    keys: vec![bad.clone()],
                    ..hs256_config()
                }),
                Err(JwtConfigError::InvalidKey { .. })
            ),
            "{bad:?}"
        );
    }
    assert_eq!(
        JwtValidator::new(JwtConfig {
            username_claim: String::new(),
            ..hs256_config()
        })
        .unwrap_err(),
        JwtConfigError::EmptyClaimName("username")
    );
    // Neither the config nor the validator prints secrets.
    let text = format!("{:?} {:?}", hs256_config(), validator(hs256_config()));
    assert!(!text.contains("a-test-secret"), "{text}");
}

proptest::proptest! {
    /// Tokens are input: nothing a client sends makes validation panic.
    #[test]
    fn arbitrary_tokens_never_panic(token in ".{0,200}", parts in proptest::collection::vec("[A-Za-z0-9_-]{0,40}", 0..5)) {
        let v = validator(hs256_config());
        let _ = v.validate(&token, now());
        let _ = v.validate(&parts.join("."), now());
    }
}
