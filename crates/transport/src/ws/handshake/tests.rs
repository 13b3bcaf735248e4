//! Handshake decisions, request by request.

use hyper::Request;

use super::*;

fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap()
}

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn upgrade(extra: &[(&str, &str)]) -> Request<()> {
    let mut headers = vec![
        ("host", "broker"),
        ("upgrade", "websocket"),
        ("connection", "keep-alive, Upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", KEY),
    ];
    headers.extend_from_slice(extra);
    request("GET", "/mqtt", &headers)
}

fn status(result: Result<Upgrade, Reply>) -> u16 {
    match result {
        Ok(_) => 101,
        Err(reply) => reply.status.as_u16(),
    }
}

#[test]
fn the_rfc_example_key() {
    assert_eq!(accept_key(KEY.as_bytes()), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

#[test]
fn plain_http_requests() {
    let config = WsConfig::default();
    let check = |r: Request<()>| status(check(&r, &config));
    assert_eq!(check(request("GET", "/healthz", &[])), 200);
    assert_eq!(check(request("HEAD", "/healthz", &[])), 200);
    assert_eq!(check(request("POST", "/healthz", &[])), 405);
    assert_eq!(check(request("GET", "/", &[])), 404);
    assert_eq!(check(request("GET", "/mqtt/x", &[])), 404);
    assert_eq!(check(request("GET", "/ws", &[])), 426);
    assert_eq!(check(request("POST", "/mqtt", &[])), 405);
    assert_eq!(check(upgrade(&[])), 101);
    let only_ws = WsConfig {
        paths: vec!["/custom".into()],
        ..WsConfig::default()
    };
    assert_eq!(status(super::check(&upgrade(&[]), &only_ws)), 404);
}

#[test]
fn malformed_handshakes_get_400() {
    let config = WsConfig::default();
    for (name, value) in [
        ("sec-websocket-key", "short"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ"),
        ("sec-websocket-version", "8"),
        ("connection", "close"),
    ] {
        let mut r = upgrade(&[]);
        r.headers_mut().insert(name, value.parse().unwrap());
        assert_eq!(status(check(&r, &config)), 400, "{name}: {value}");
    }
    let mut r = upgrade(&[]);
    r.headers_mut().remove("sec-websocket-key");
    assert_eq!(status(check(&r, &config)), 400);
    let r = upgrade(&[("sec-websocket-key", KEY)]);
    assert_eq!(status(check(&r, &config)), 400, "two keys");
}

#[test]
fn oversize_headers_get_431() {
    let config = WsConfig {
        max_header_bytes: 1024,
        ..WsConfig::default()
    };
    let long = "x".repeat(1100);
    assert_eq!(status(check(&upgrade(&[("cookie", &long)]), &config)), 431);
}

#[test]
fn subprotocol_negotiation() {
    let config = WsConfig::default();
    let chosen = |offers: &[&str]| {
        let headers: Vec<(&str, &str)> = offers
            .iter()
            .map(|o| ("sec-websocket-protocol", *o))
            .collect();
        check(&upgrade(&headers), &config).map(|u| u.protocol)
    };
    assert_eq!(chosen(&[]), Ok(None));
    assert_eq!(chosen(&["mqtt"]), Ok(Some("mqtt".into())));
    assert_eq!(chosen(&["mqttv3.1"]), Ok(Some("mqttv3.1".into())));
    assert_eq!(chosen(&["mqtt-v5"]), Ok(Some("mqtt-v5".into())));
    assert_eq!(chosen(&["mqtt-v3.1.1"]), Ok(Some("mqtt-v3.1.1".into())));
    // The client's order decides; unknown ones are skipped; repeated headers count.
    assert_eq!(chosen(&["wamp, mqtt-v5, mqtt"]), Ok(Some("mqtt-v5".into())));
    assert_eq!(chosen(&["wamp", "mqtt"]), Ok(Some("mqtt".into())));
    assert_eq!(
        status(chosen(&["wamp, graphql-ws"]).map(|_| unreachable_upgrade())),
        400
    );
    let strict = WsConfig {
        require_subprotocol: true,
        ..WsConfig::default()
    };
    assert_eq!(status(check(&upgrade(&[]), &strict)), 400);
}

fn unreachable_upgrade() -> Upgrade {
    Upgrade {
        accept: String::new(),
        protocol: None,
        deflate: None,
    }
}

#[test]
fn origins() {
    let mut config = WsConfig::default();
    let origin = |config: &WsConfig, o: &str| status(check(&upgrade(&[("origin", o)]), config));
    assert_eq!(
        origin(&config, "https://evil.example"),
        101,
        "empty list = any"
    );
    config.allowed_origins = vec![
        "https://app.example.com".parse().unwrap(),
        "https://*.example.org".parse().unwrap(),
        "http://localhost:8080/".parse().unwrap(),
    ];
    assert_eq!(origin(&config, "https://app.example.com"), 101);
    assert_eq!(origin(&config, "HTTPS://APP.EXAMPLE.COM"), 101);
    assert_eq!(origin(&config, "http://app.example.com"), 403);
    assert_eq!(origin(&config, "https://app.example.com:8443"), 403);
    assert_eq!(origin(&config, "https://a.example.org"), 101);
    assert_eq!(origin(&config, "https://a.b.example.org"), 101);
    assert_eq!(origin(&config, "https://example.org"), 403);
    assert_eq!(origin(&config, "https://evilexample.org"), 403);
    assert_eq!(origin(&config, "https://x.example.org.evil.com"), 403);
    assert_eq!(origin(&config, "http://localhost:8080"), 101);
    assert_eq!(origin(&config, "null"), 403);
    assert_eq!(
        status(check(&upgrade(&[]), &config)),
        101,
        "no Origin: allowed by default"
    );
    config.allow_missing_origin = false;
    assert_eq!(status(check(&upgrade(&[]), &config)), 403);
    for bad in [
        "example.com",
        "ftp://x",
        "https://x/path",
        "https://a*.x.com",
        "https://*.",
    ] {
        assert!(bad.parse::<OriginPattern>().is_err(), "{bad}");
    }
}

#[test]
fn the_token_cookie_is_found_among_others() {
    let config = WsConfig {
        token_cookie: Some("mqtt_token".to_owned()),
        ..WsConfig::default()
    };
    let token = |cookies: &[&str]| {
        let headers: Vec<_> = cookies.iter().map(|c| ("cookie", *c)).collect();
        cookie_token(upgrade(&headers).headers(), &config)
    };
    assert_eq!(token(&["mqtt_token=a.b.c"]).as_deref(), Some("a.b.c"));
    assert_eq!(
        token(&["theme=dark; mqtt_token = a.b.c ;lang=en"]).as_deref(),
        Some("a.b.c")
    );
    assert_eq!(token(&["mqtt_token=\"a.b.c\""]).as_deref(), Some("a.b.c"));
    // Several Cookie headers (HTTP/2 sends one per cookie); the first match wins.
    assert_eq!(
        token(&["theme=dark", "mqtt_token=first", "mqtt_token=second"]).as_deref(),
        Some("first")
    );
    // Names compare exactly; empty values and malformed pairs are no token.
    assert_eq!(token(&["MQTT_TOKEN=a.b.c; xmqtt_token=d"]), None);
    assert_eq!(token(&["mqtt_token="]), None);
    assert_eq!(token(&["mqtt_token"]), None);
    assert_eq!(token(&[]), None);
    // A listener without `token_cookie` takes none.
    let headers = upgrade(&[("cookie", "mqtt_token=a.b.c")]);
    assert_eq!(cookie_token(headers.headers(), &WsConfig::default()), None);
}

#[test]
fn permessage_deflate_is_answered_only_when_enabled_and_offered() {
    let offer = [(
        "sec-websocket-extensions",
        "x-unknown, permessage-deflate; client_max_window_bits",
    )];
    let enabled = WsConfig {
        permessage_deflate: true,
        ..WsConfig::default()
    };
    let answer = Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover");
    assert_eq!(check(&upgrade(&offer), &enabled).unwrap().deflate, answer);
    assert_eq!(check(&upgrade(&[]), &enabled).unwrap().deflate, None);
    let unknown = [("sec-websocket-extensions", "x-webkit-deflate-frame")];
    assert_eq!(check(&upgrade(&unknown), &enabled).unwrap().deflate, None);
    let default = WsConfig::default();
    assert_eq!(check(&upgrade(&offer), &default).unwrap().deflate, None);
    // A window we cannot promise declines the extension, never the handshake.
    let narrow = [(
        "sec-websocket-extensions",
        "permessage-deflate; server_max_window_bits=9",
    )];
    assert_eq!(check(&upgrade(&narrow), &enabled).unwrap().deflate, None);
}
