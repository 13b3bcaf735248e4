use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferrymq_auth::UserConfig;
use ferrymq_broker::auth_hook::BearerToken;
use ferrymq_broker::{AuthHookConfig, HookOnError, HookOrder, QueueOverflow};
use ferrymq_codec::QoS;

use super::*;

const EXAMPLE: &str = include_str!("../../../../ferrymq.example.toml");
// argon2id of "alice-secret" with cheap parameters (m=8 KiB, t=1).
const ALICE_HASH: &str = "$argon2id$v=19$m=8,t=1,p=1$YWxpY2Utc2VjcmV0LXRlc3Qtc2FsdA$IIIuuumCOhX8LRy0FCvFR5bVXgARKxXPg0rDnQyqDYI";

fn problems(source: &str) -> Vec<String> {
    match parse("f.toml", source) {
        Ok(settings) => panic!("expected errors, got {settings:?}"),
        Err(err) => err.to_string().lines().map(str::to_owned).collect(),
    }
}

fn one_problem(source: &str) -> String {
    let problems = problems(source);
    assert_eq!(problems.len(), 1, "{problems:?}");
    problems.into_iter().next().unwrap_or_default()
}

#[test]
fn empty_file_and_example_file_resolve_to_the_defaults() {
    let empty = parse("empty.toml", "").unwrap();
    assert_eq!(empty, Settings::default());
    assert_eq!(parse("example.toml", EXAMPLE).unwrap(), empty);
    assert_eq!(
        Settings::load(None, &Overrides::default()).unwrap(),
        Settings::default()
    );
}

#[test]
fn defaults_are_the_documented_ones() {
    let settings = Settings::default();
    assert_eq!(
        settings.mqtt_listen,
        vec!["0.0.0.0:1883".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(settings.data_dir, PathBuf::from("./data"));
    assert_eq!(settings.log_level, "info");
    assert_eq!(settings.shutdown_grace, Duration::from_secs(5));
    assert!(!settings.auth.allow_anonymous);
    assert!(settings.auth.users.is_empty());
    assert_eq!(settings.broker.mqtt.server_keep_alive, None);
    assert_eq!(settings.broker.mqtt.maximum_qos, QoS::ExactlyOnce);
    assert_eq!(settings.mqtt_hibernate_after, Some(Duration::from_secs(5)));
}

#[test]
fn every_key_of_the_example_is_accepted_including_the_commented_user() {
    // Uncomment the [[auth.users]], [auth.jwt] and [auth.http] blocks (the only
    // commented-out keys), give the user a hash that verifies, and the JWT key and the hook's
    // bearer token files that exist.
    let dir = tempfile::tempdir().unwrap();
    let secret_path = dir.path().join("jwt-secret");
    std::fs::write(&secret_path, "s3cret\n").unwrap();
    let token_path = dir.path().join("hook-token");
    std::fs::write(&token_path, "t0ken\n").unwrap();
    let mut uncommented = String::new();
    for line in EXAMPLE.lines() {
        let line = match line.strip_prefix("# ") {
            Some(rest) if rest.starts_with('[') || is_assignment(rest) => rest,
            _ => line,
        };
        let line = if line.starts_with("password_hash") {
            format!("password_hash = \"{ALICE_HASH}\"")
        } else if line.starts_with("secret_file") {
            format!("secret_file = {:?}", secret_path.display().to_string())
        } else if line.starts_with("allowed_origins") {
            // The token cookie needs an Origin allow-list.
            "allowed_origins = [\"https://app.example.com\"]".to_owned()
        } else if line.starts_with("bearer_token_file") {
            format!("bearer_token_file = {:?}", token_path.display().to_string())
        } else {
            line.to_owned()
        };
        uncommented.push_str(&line);
        uncommented.push('\n');
    }
    assert!(uncommented.contains("\n[[auth.users]]\nname = \"alice\"\n"));
    let settings = parse("example.toml", &uncommented).unwrap();
    assert_eq!(
        settings.auth.users,
        vec![UserConfig {
            name: "alice".into(),
            password_hash: ALICE_HASH.into(),
            loopback_only: false,
        }]
    );
    let mut hook = AuthHookConfig::with_url("http://127.0.0.1:8080/mqtt/auth");
    hook.ca_file = Some(PathBuf::from("/etc/ferrymq/hook-ca.pem"));
    hook.bearer_token = Some(BearerToken("t0ken".into()));
    assert_eq!(
        settings.auth_hook,
        Some(hook),
        "the example shows the defaults"
    );
    let jwt = settings.jwt.expect("[auth.jwt] is on");
    assert_eq!(jwt.algorithms, vec![ferrymq_auth::JwtAlgorithm::HS256]);
    assert_eq!(jwt.audience.as_deref(), Some("ferrymq"));
    assert_eq!(
        jwt.keys,
        vec![ferrymq_auth::JwtKey::Secret {
            secret: b"s3cret".to_vec(),
            kid: Some("2026-11".into()),
        }]
    );
    assert!(
        (settings.websocket.iter().chain(&settings.websocket_tls)).all(|l| l
            .config
            .token_cookie
            .as_deref()
            == Some("mqtt_token"))
    );
}

#[test]
fn the_token_cookie_needs_an_origin_allow_list_and_a_cookie_name() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s").unwrap();
    let jwt = format!(
        "[auth.jwt]\nalgorithms = [\"HS256\"]\ncookie = \"mqtt_token\"\n\
         [[auth.jwt.keys]]\nsecret_file = {:?}\n",
        secret.display().to_string()
    );
    let problem = one_problem(&jwt);
    assert!(
        problem.starts_with("f.toml:3:10: auth.jwt.cookie needs websocket.allowed_origins"),
        "{problem}"
    );
    let allowed = format!("[websocket]\nallowed_origins = [\"https://app.example.com\"]\n{jwt}");
    let settings = parse("f.toml", &allowed).unwrap();
    assert_eq!(
        settings.websocket_defaults.token_cookie.as_deref(),
        Some("mqtt_token")
    );
    let bad = allowed.replace("\"mqtt_token\"", "\"a token\"");
    let problem = one_problem(&bad);
    assert!(
        problem.contains("auth.jwt.cookie: \"a token\" is not a cookie name"),
        "{problem}"
    );
}

#[test]
fn jwt_problems_are_pointed_at() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s").unwrap();
    let secret = secret.display().to_string();
    let missing = dir.path().join("missing.pem").display().to_string();
    let source = format!(
        "[auth.jwt]\nalgorithms = [\"HS256\", \"none\"]\n\
         [[auth.jwt.keys]]\nsecret = \"inline\"\n\
         [[auth.jwt.keys]]\nsecret_file = {missing:?}\n\
         [[auth.jwt.keys]]\nsecret_file = {secret:?}\npem_file = {secret:?}\n"
    );
    let problems = problems(&source);
    assert_eq!(problems.len(), 4, "{problems:?}");
    assert!(
        problems[0].starts_with("f.toml:2:24: auth.jwt.algorithms: unknown algorithm \"none\""),
        "{}",
        problems[0]
    );
    assert!(
        problems[1].starts_with("f.toml:4:10: auth.jwt.keys: inline secrets are not accepted"),
        "{}",
        problems[1]
    );
    assert!(
        problems[2].starts_with("f.toml:6:15: auth.jwt.keys: cannot read secret_file"),
        "{}",
        problems[2]
    );
    assert!(
        problems[3].contains("exactly one of secret_file, pem_file, jwks_file"),
        "{}",
        problems[3]
    );

    // Problems found by loading the keys point at the key file, or at the algorithms.
    let source = format!(
        "[auth.jwt]\nalgorithms = [\"RS256\"]\n[[auth.jwt.keys]]\npem_file = {missing:?}\n"
    );
    let problem = one_problem(&source);
    assert!(
        problem.starts_with("f.toml:4:12: auth.jwt: cannot read key file"),
        "{problem}"
    );
    let source = format!(
        "[auth.jwt]\nalgorithms = [\"RS256\"]\n[[auth.jwt.keys]]\nsecret_file = {secret:?}\n"
    );
    let problem = one_problem(&source);
    assert!(
        problem.starts_with("f.toml:2:14: auth.jwt: RS256 is configured but no key"),
        "{problem}"
    );
    let problem = one_problem("[auth.jwt]\n");
    assert!(
        problem.contains("auth.jwt: no JWT algorithm is configured"),
        "{problem}"
    );
}

/// `key = value` with a bare lowercase key (not prose that happens to contain " = ").
fn is_assignment(line: &str) -> bool {
    line.split_once(" = ").is_some_and(|(key, _)| {
        !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
    })
}

#[test]
fn every_key_is_wired_to_its_setting() {
    let source = format!(
        r#"
[server]
data_dir = "/var/lib/ferrymq"
log_level = "debug,ferrymq_broker=trace"
shutdown_grace_secs = 30

[mqtt]
listen = ["127.0.0.1:1884", "[::1]:1885"]
connect_timeout_secs = 3
keep_alive_grace = 2
server_keep_alive_secs = 60
max_session_expiry_secs = 3600
retain_available = false
shared_subscriptions_available = false
maximum_qos = 1
hibernate_after_secs = 30

[auth]
allow_anonymous = true

[[auth.users]]
name = "alice"
password_hash = "{ALICE_HASH}"
loopback_only = true

[[auth.users]]
name = "bob"
password_hash = "{ALICE_HASH}"

[limits]
max_packet_size = 2000000
max_connect_packet_size = 1000
max_inflight = 10
max_queued_messages = 11
max_queued_bytes = 12
queue_overflow = "drop"
publish_backpressure_timeout_secs = 9
max_topic_length = 13
max_topic_levels = 14
max_client_id_length = 23
max_subscriptions_per_session = 16
max_connections = 17
topic_alias_maximum = 0
"#
    );
    let s = parse("full.toml", &source).unwrap();
    assert_eq!(s.data_dir, PathBuf::from("/var/lib/ferrymq"));
    assert_eq!(s.log_level, "debug,ferrymq_broker=trace");
    assert_eq!(s.shutdown_grace, Duration::from_secs(30));
    assert_eq!(
        s.mqtt_listen,
        vec![
            "127.0.0.1:1884".parse::<SocketAddr>().unwrap(),
            "[::1]:1885".parse().unwrap()
        ]
    );
    let m = &s.broker.mqtt;
    assert_eq!(m.connect_timeout, Duration::from_secs(3));
    assert_eq!(m.keep_alive_grace, 2.0);
    assert_eq!(m.server_keep_alive, Some(60));
    assert_eq!(m.max_session_expiry, 3600);
    assert!(!m.retain_available);
    assert!(!m.shared_subscriptions_available);
    assert_eq!(m.maximum_qos, QoS::AtLeastOnce);
    assert_eq!(s.mqtt_hibernate_after, Some(Duration::from_secs(30)));
    assert!(s.auth.allow_anonymous);
    assert_eq!(s.auth.users.len(), 2);
    assert!(s.auth.users[0].loopback_only);
    assert_eq!(s.auth.users[1].name, "bob");
    assert!(
        !s.auth.users[1].loopback_only,
        "loopback_only defaults to false"
    );
    let l = &s.broker.limits;
    assert_eq!(
        (l.max_packet_size, l.max_connect_packet_size, l.max_inflight),
        (2_000_000, 1000, 10)
    );
    assert_eq!((l.max_queued_messages, l.max_queued_bytes), (11, 12));
    assert_eq!(l.queue_overflow, QueueOverflow::Drop);
    assert_eq!(l.publish_backpressure_timeout, Duration::from_secs(9));
    assert_eq!((l.max_topic_length, l.max_topic_levels), (13, 14));
    assert_eq!(l.max_client_id_length, 23);
    assert_eq!(l.max_subscriptions_per_session, 16);
    assert_eq!(l.max_connections, 17);
    assert_eq!(l.topic_alias_maximum, 0);
}

#[test]
fn management_section_is_wired_and_checked() {
    let defaults = Settings::default().management;
    assert!(defaults.enabled && !defaults.metrics_auth);
    assert_eq!(
        defaults.listen,
        vec!["0.0.0.0:15672".parse::<SocketAddr>().unwrap()]
    );
    let s = parse(
        "f.toml",
        "[management]\nenabled = false\nlisten = [\"127.0.0.1:1\", \"[::1]:2\"]\nmetrics_auth = true\n",
    )
    .unwrap();
    assert!(!s.management.enabled && s.management.metrics_auth);
    assert_eq!(
        s.management.listen,
        vec!["127.0.0.1:1".parse().unwrap(), "[::1]:2".parse().unwrap()]
    );
    let one = parse("f.toml", "[management]\nlisten = \"127.0.0.1:3\"\n").unwrap();
    assert_eq!(one.management.listen, vec!["127.0.0.1:3".parse().unwrap()]);
    assert_eq!(
        one_problem("[management]\nlisten = [\"localhost:15672\"]\n"),
        "f.toml:2:11: management.listen: \"localhost:15672\" is not an IP:PORT address (such as \"0.0.0.0:1883\" or \"[::]:1883\")"
    );
    assert!(
        one_problem("[management]\nport = 1\n").starts_with("f.toml:2:1: unknown field `port`")
    );
}

#[test]
fn listen_takes_one_address_or_a_list() {
    let one = parse("f.toml", "[mqtt]\nlisten = \"127.0.0.1:1\"\n").unwrap();
    assert_eq!(one.mqtt_listen, vec!["127.0.0.1:1".parse().unwrap()]);
    let none = parse("f.toml", "[mqtt]\nlisten = []\n").unwrap();
    assert!(none.mqtt_listen.is_empty());
    assert_eq!(
        one_problem("[mqtt]\nlisten = 1883\n"),
        "f.toml:2:10: mqtt.listen: invalid type: integer `1883`, expected an address such as \"0.0.0.0:1883\", or a list of them"
    );
}

#[test]
fn bad_listen_addresses_are_pointed_at() {
    assert_eq!(
        problems(
            "[mqtt]\nlisten = [\n  \"0.0.0.0:1883\",\n  \"localhost:1883\",\n  \"0.0.0.0:1883\",\n]\n"
        ),
        vec![
            "f.toml:4:3: mqtt.listen: \"localhost:1883\" is not an IP:PORT address (such as \"0.0.0.0:1883\" or \"[::]:1883\")",
            "f.toml:5:3: mqtt.listen: 0.0.0.0:1883 is listed twice",
        ]
    );
    assert!(one_problem("[mqtt]\nlisten = \"0.0.0.0\"\n").starts_with("f.toml:2:10: mqtt.listen:"));
}

#[test]
fn hibernate_after_zero_turns_hibernation_off() {
    let s = parse("f.toml", "[mqtt]\nhibernate_after_secs = 0\n").unwrap();
    assert_eq!(s.mqtt_hibernate_after, None);
    assert_eq!(
        one_problem("[mqtt]\nhibernate_after_secs = -1"),
        "f.toml:2:24: mqtt.hibernate_after_secs must be between 0 and 86400, not -1"
    );
    let s = parse("f.toml", "[websocket]\nhibernate_after_secs = 0\n").unwrap();
    assert!(
        s.websocket
            .iter()
            .all(|l| l.config.hibernate_after.is_none())
    );
    let s = parse("f.toml", "[websocket]\nhibernate_after_secs = 60\n").unwrap();
    assert!(
        (s.websocket.iter().chain(&s.websocket_tls))
            .all(|l| l.config.hibernate_after == Some(Duration::from_secs(60)))
    );
    assert_eq!(
        one_problem("[websocket]\nhibernate_after_secs = 100000"),
        "f.toml:2:24: websocket.hibernate_after_secs must be between 0 and 86400, not 100000"
    );
}

#[test]
fn server_keep_alive_zero_means_none() {
    let s = parse("f.toml", "[mqtt]\nserver_keep_alive_secs = 0\n").unwrap();
    assert_eq!(s.broker.mqtt.server_keep_alive, None);
    let s = parse("f.toml", "[mqtt]\nserver_keep_alive_secs = 65535\n").unwrap();
    assert_eq!(s.broker.mqtt.server_keep_alive, Some(65535));
}

#[test]
fn unknown_keys_are_errors_with_their_location() {
    assert_eq!(
        one_problem("[server]\nlog_levle = \"info\"\n"),
        "f.toml:2:1: unknown field `log_levle`, expected one of `data_dir`, `log_level`, `shutdown_grace_secs`"
    );
    assert!(one_problem("[limit]\n").starts_with("f.toml:1:2: unknown field `limit`"));
    assert!(
        one_problem("\n\n[mqtt]\nport = 1883\n").starts_with("f.toml:4:1: unknown field `port`")
    );
    let user =
        format!("[[auth.users]]\nname = \"a\"\npassword_hash = \"{ALICE_HASH}\"\nadmin = true\n");
    assert!(one_problem(&user).starts_with("f.toml:4:1: unknown field `admin`"));
}

#[test]
fn syntax_and_type_errors_have_a_location() {
    assert!(one_problem("[mqtt\n").starts_with("f.toml:1:6: "));
    assert!(one_problem("[mqtt]\nmaximum_qos = \n").starts_with("f.toml:2:"));
    assert_eq!(
        one_problem("[mqtt]\nmaximum_qos = \"2\"\n"),
        "f.toml:2:15: mqtt.maximum_qos: invalid type: string \"2\", expected an integer"
    );
    assert_eq!(
        one_problem("[auth]\nallow_anonymous = \"yes\"\n"),
        "f.toml:2:19: auth.allow_anonymous: invalid type: string \"yes\", expected true or false"
    );
    assert!(
        one_problem("[[auth.users]]\nname = \"alice\"\n").contains("missing field `password_hash`")
    );
}

#[test]
fn out_of_range_values_are_errors_with_their_location() {
    for (source, expected) in [
        (
            "[limits]\nmax_inflight = 0",
            "2:16: limits.max_inflight must be between 1 and 65535, not 0",
        ),
        (
            "[limits]\nmax_inflight = 65536",
            "2:16: limits.max_inflight must be between 1 and 65535, not 65536",
        ),
        (
            "[mqtt]\nmaximum_qos = 3",
            "2:15: mqtt.maximum_qos must be between 0 and 2, not 3",
        ),
        (
            "[mqtt]\nconnect_timeout_secs = 0",
            "2:24: mqtt.connect_timeout_secs must be at least 1, not 0",
        ),
        (
            "[mqtt]\nserver_keep_alive_secs = 65536",
            "2:26: mqtt.server_keep_alive_secs must be between 0 and 65535, not 65536",
        ),
        (
            "[mqtt]\nmax_session_expiry_secs = -1",
            "2:27: mqtt.max_session_expiry_secs must be between 0 and 4294967295, not -1",
        ),
        (
            "[server]\nshutdown_grace_secs = -5",
            "2:23: server.shutdown_grace_secs must be at least 0, not -5",
        ),
        (
            "[limits]\nmax_client_id_length = 22",
            "2:24: limits.max_client_id_length must be between 23 and 65535, not 22",
        ),
        (
            "[limits]\nmax_packet_size = 268435461",
            "2:19: limits.max_packet_size must be between 1 and 268435460, not 268435461",
        ),
        (
            "[limits]\nmax_queued_messages = 0",
            "2:23: limits.max_queued_messages must be at least 1, not 0",
        ),
        (
            "[limits]\npublish_backpressure_timeout_secs = 0",
            "2:37: limits.publish_backpressure_timeout_secs must be between 1 and 3600, not 0",
        ),
        (
            "[limits]\nqueue_overflow = \"block\"",
            "2:18: limits.queue_overflow must be \"backpressure\" or \"drop\", not \"block\"",
        ),
        (
            "[limits]\ntopic_alias_maximum = 70000",
            "2:23: limits.topic_alias_maximum must be between 0 and 65535, not 70000",
        ),
        (
            "[server]\ndata_dir = \"\"",
            "2:12: server.data_dir must not be empty",
        ),
    ] {
        assert_eq!(
            one_problem(source),
            format!("f.toml:{expected}"),
            "{source}"
        );
    }
}

#[test]
fn keep_alive_grace_must_be_at_least_one() {
    for bad in ["0.5", "0.999", "-1.0", "nan", "inf"] {
        let problem = one_problem(&format!("[mqtt]\nkeep_alive_grace = {bad}\n"));
        assert!(
            problem.starts_with("f.toml:2:20: mqtt.keep_alive_grace must be"),
            "{problem}"
        );
    }
    let s = parse("f.toml", "[mqtt]\nkeep_alive_grace = 1.0\n").unwrap();
    assert_eq!(s.broker.mqtt.keep_alive_grace, 1.0);
}

#[test]
fn connect_packet_limit_must_fit_the_packet_limit() {
    assert_eq!(
        one_problem("[limits]\nmax_packet_size = 1000\nmax_connect_packet_size = 2000\n"),
        "f.toml:3:27: limits.max_connect_packet_size (2000) must not exceed limits.max_packet_size (1000)"
    );
    // Lowering only max_packet_size below the default connect limit lowers that too.
    let s = parse("f.toml", "[limits]\nmax_packet_size = 1000\n").unwrap();
    assert_eq!(s.broker.limits.max_connect_packet_size, 1000);
}

#[test]
fn bad_log_levels_are_rejected() {
    assert!(
        one_problem("[server]\nlog_level = \"inof\"\n")
            .starts_with("f.toml:2:13: server.log_level: unknown log level \"inof\"")
    );
    assert!(
        one_problem("[server]\nlog_level = \"\"\n").starts_with("f.toml:2:13: server.log_level:")
    );
    for good in [
        "error",
        "WARN",
        "info,ferrymq_broker=debug",
        "ferrymq_broker::router=trace",
        "off",
        "debug,",
    ] {
        assert_eq!(check_log_level(good), Ok(()), "{good}");
    }
    for bad in ["inof", "ferrymq_broker", "info,=", "info,x=verbose"] {
        assert!(check_log_level(bad).is_err(), "{bad}");
    }
}

#[test]
fn bad_users_are_pointed_at() {
    let source = format!(
        "[[auth.users]]\nname = \"alice\"\npassword_hash = \"plain\"\n\n\
         [[auth.users]]\nname = \"vhost:bob\"\npassword_hash = \"{ALICE_HASH}\"\n\n\
         [[auth.users]]\nname = \"alice\"\npassword_hash = \"{ALICE_HASH}\"\n"
    );
    let problems = problems(&source);
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].starts_with("f.toml:3:17: auth.users: user \"alice\": password_hash is not a valid argon2 PHC string"), "{}", problems[0]);
    assert!(
        problems[1]
            .starts_with("f.toml:6:8: auth.users: user \"vhost:bob\": a name must not contain ':'"),
        "{}",
        problems[1]
    );
    assert!(
        problems[2]
            .starts_with("f.toml:10:8: auth.users: user \"alice\" is defined more than once"),
        "{}",
        problems[2]
    );
}

#[test]
fn every_semantic_problem_is_reported_in_file_order() {
    let problems =
        problems("[limits]\nmax_inflight = 0\n\n[mqtt]\nmaximum_qos = 3\nlisten = \"x\"\n");
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].starts_with("f.toml:2:"));
    assert!(problems[1].starts_with("f.toml:5:"));
    assert!(problems[2].starts_with("f.toml:6:"));
}

#[test]
fn overrides_beat_the_file() {
    let mut settings = parse(
        "f.toml",
        "[server]\ndata_dir = \"/a\"\nlog_level = \"warn\"\n[mqtt]\nlisten = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n[auth]\nallow_anonymous = true\n",
    )
    .unwrap();
    let from_file = settings.clone();
    settings.apply(&Overrides::default());
    assert_eq!(settings, from_file, "no override changes nothing");

    settings.apply(&Overrides {
        mqtt_listen: Some(vec!["127.0.0.1:3".parse().unwrap()]),
        data_dir: Some(PathBuf::from("/b")),
        allow_anonymous: Some(false),
        log_level: Some("debug".into()),
        ws_listen: None,
        auth_http_url: None,
        management_listen: Some(vec!["127.0.0.1:4".parse().unwrap()]),
        management_enabled: Some(false),
    });
    assert_eq!(
        settings.management.listen,
        vec!["127.0.0.1:4".parse::<SocketAddr>().unwrap()]
    );
    assert!(!settings.management.enabled);
    assert_eq!(settings.mqtt_listen, vec!["127.0.0.1:3".parse().unwrap()]);
    assert_eq!(settings.data_dir, PathBuf::from("/b"));
    assert!(!settings.auth.allow_anonymous);
    assert_eq!(settings.log_level, "debug");
}

#[test]
fn the_hook_url_override_replaces_the_files_or_turns_the_hook_on() {
    let url = |url: &str| Overrides {
        auth_http_url: Some(url.into()),
        ..Overrides::default()
    };
    let mut settings = Settings::default();
    settings.apply(&url("http://127.0.0.1:9/a"));
    assert_eq!(
        settings.auth_hook,
        Some(AuthHookConfig::with_url("http://127.0.0.1:9/a"))
    );

    let mut settings = parse(
        "f.toml",
        "[auth.http]
url = \"http://file/\"
timeout_ms = 500
",
    )
    .unwrap();
    settings.apply(&url("http://flag/"));
    let hook = settings.auth_hook.expect("on");
    assert_eq!(hook.url, "http://flag/");
    assert_eq!(hook.timeout, Duration::from_millis(500), "the rest stays");
}

#[test]
fn unreadable_files_are_reported_without_a_position() {
    let err = load_file(Path::new("/nonexistent/ferrymq.toml")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/nonexistent/ferrymq.toml: cannot read the file: "),
        "{err}"
    );
}

#[test]
fn locations_count_lines_and_characters() {
    let source = "a\nbé = 1\n";
    assert_eq!(Location::of(source, 0), Location { line: 1, column: 1 });
    assert_eq!(Location::of(source, 2), Location { line: 2, column: 1 });
    // 'é' is two bytes but one column; offset 6 is the '='... after "bé ".
    assert_eq!(Location::of(source, 6), Location { line: 2, column: 4 });
    // Inside a multi-byte character, and past the end: clamped, no panic.
    assert_eq!(Location::of(source, 4), Location { line: 2, column: 2 });
    assert_eq!(Location::of(source, 100), Location { line: 3, column: 1 });
}

#[test]
fn every_hook_key_is_wired_to_its_setting() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "abc.def\n").unwrap();
    let source = format!(
        "[auth.http]\nurl = \"https://auth.example.com/mqtt\"\nbearer_token_file = {:?}\n\
         timeout_ms = 750\ncache_ttl_secs = 0\ndeny_cache_ttl_secs = 3\ncache_max_entries = 5\n\
         max_concurrent_requests = 2\norder = \"hook_first\"\non_error = \"internal\"\n",
        token.display().to_string()
    );
    let hook = parse("f.toml", &source).unwrap().auth_hook.expect("on");
    assert_eq!(
        hook,
        AuthHookConfig {
            url: "https://auth.example.com/mqtt".into(),
            ca_file: None,
            bearer_token: Some(BearerToken("abc.def".into())),
            timeout: Duration::from_millis(750),
            cache_ttl: Duration::ZERO,
            deny_cache_ttl: Duration::from_secs(3),
            cache_max_entries: 5,
            max_concurrent_requests: 2,
            order: HookOrder::HookFirst,
            on_error: HookOnError::Internal,
        }
    );
    let defaults = parse("f.toml", "[auth.http]\nurl = \"http://hook/\"\n").unwrap();
    assert_eq!(
        defaults.auth_hook,
        Some(AuthHookConfig::with_url("http://hook/"))
    );
    assert_eq!(
        parse("f.toml", "").unwrap().auth_hook,
        None,
        "off by default"
    );
}

#[test]
fn hook_problems_are_pointed_at() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing").display().to_string();
    let problems = problems(&format!(
        "[auth.http]\nurl = \"ftp://hook/\"\ntimeout_ms = 0\ncache_ttl_secs = -1\n\
         order = \"first\"\non_error = \"retry\"\nbearer_token_file = {missing:?}\n\
         cache_max_entries = 20000000\nmax_concurrent_requests = 0\n"
    ));
    assert_eq!(problems.len(), 7, "{problems:#?}");
    for (problem, starts) in problems.iter().zip([
        "f.toml:3:14: auth.http.timeout_ms must be between 1 and 60000, not 0",
        "f.toml:4:18: auth.http.cache_ttl_secs must be between 0 and 86400, not -1",
        "f.toml:5:9: auth.http.order must be \"internal_first\" or \"hook_first\", not \"first\"",
        "f.toml:6:12: auth.http.on_error must be \"deny\" or \"internal\", not \"retry\"",
        "f.toml:7:21: auth.http: cannot read bearer_token_file",
        "f.toml:8:21: auth.http.cache_max_entries must be between 0 and 10000000",
        "f.toml:9:27: auth.http.max_concurrent_requests must be between 1 and 10000, not 0",
    ]) {
        assert!(
            problem.starts_with(starts),
            "{problem}\n  expected {starts}"
        );
    }

    // The URL is checked once the rest is right, at the URL.
    let problem = one_problem("[auth.http]\nurl = \"ftp://hook/\"\n");
    assert!(
        problem.starts_with(
            "f.toml:2:7: auth.http: invalid URL: it must start with http:// or https://"
        ),
        "{problem}"
    );
    let problem = one_problem("[auth.http]\nurl = \"http://u:pw@hook/\"\n");
    assert!(problem.contains("use bearer_token_file"), "{problem}");
    let problem = one_problem(&format!(
        "[auth.http]\nurl = \"https://hook/\"\nca_file = {missing:?}\n"
    ));
    assert!(
        problem.starts_with("f.toml:3:11: auth.http: cannot use ca_file"),
        "{problem}"
    );
    let problem = one_problem("[auth.http]\nurl = \"http://hook/\"\non_error = \"internal\"\n");
    assert!(
        problem.starts_with(
            "f.toml:3:12: auth.http: on_error = \"internal\" needs order = \"hook_first\""
        ),
        "{problem}"
    );
    let problem = one_problem("[auth.http]\ntimeout_ms = 100\n");
    assert!(
        problem.starts_with("f.toml:1:1: auth.http: url is required"),
        "{problem}"
    );
    let problem = one_problem("[auth.http]\nurl = \"http://hook/\"\ntimeout = 2\n");
    assert!(
        problem.starts_with("f.toml:3:1: unknown field `timeout`"),
        "{problem}"
    );
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let problem = one_problem(&format!(
        "[auth.http]\nurl = \"http://hook/\"\nbearer_token_file = {:?}\n",
        empty.display().to_string()
    ));
    assert!(
        problem.contains("must hold a non-empty text token"),
        "{problem}"
    );
}
