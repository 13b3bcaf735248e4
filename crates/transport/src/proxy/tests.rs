use std::net::{IpAddr, SocketAddr};

use hyper::HeaderMap;

use super::*;

fn trusted(nets: &[&str]) -> TrustedProxies {
    TrustedProxies::new(nets.iter().map(|n| n.parse().unwrap()).collect())
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn cidr_blocks() {
    let list = trusted(&["10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "::1"]);
    assert!(list.contains(ip("10.255.0.1")));
    assert!(list.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped IPv6");
    assert!(list.contains(ip("192.168.1.7")));
    assert!(!list.contains(ip("192.168.1.8")));
    assert!(list.contains(ip("2001:db8:1::5")));
    assert!(list.contains(ip("::1")));
    assert!(!list.contains(ip("127.0.0.1")));
    assert!(trusted(&["0.0.0.0/0"]).contains(ip("8.8.8.8")));
    assert!(!TrustedProxies::default().contains(ip("127.0.0.1")));
    for bad in [
        "10.0.0.0/33",
        "10.1.2.3/8",
        "hello",
        "10.0.0.0/x",
        "::1/129",
    ] {
        assert!(bad.parse::<IpNet>().is_err(), "{bad}");
    }
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            hyper::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    map
}

#[test]
fn forwarding_headers_count_only_from_trusted_peers() {
    let list = trusted(&["127.0.0.0/8", "10.0.0.0/8"]);
    let proxy: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let stranger: SocketAddr = "198.51.100.9:5000".parse().unwrap();
    let client =
        |peer, pairs: &[(&str, &str)]| list.client_address(peer, &headers(pairs)).to_string();
    let xff = [("x-forwarded-for", "203.0.113.5")];
    assert_eq!(client(proxy, &xff), "203.0.113.5:0");
    assert_eq!(client(stranger, &xff), "198.51.100.9:5000");
    // Right-most untrusted hop: the spoofed left entry is ignored.
    assert_eq!(
        client(
            proxy,
            &[("x-forwarded-for", "1.2.3.4, 203.0.113.5, 10.0.0.2")]
        ),
        "203.0.113.5:0"
    );
    assert_eq!(
        client(
            proxy,
            &[
                ("x-forwarded-for", "1.2.3.4"),
                ("x-forwarded-for", "203.0.113.5")
            ]
        ),
        "203.0.113.5:0"
    );
    // Every hop trusted: the left-most.
    assert_eq!(
        client(proxy, &[("x-forwarded-for", "10.0.0.3, 10.0.0.2")]),
        "10.0.0.3:0"
    );
    assert_eq!(
        client(
            proxy,
            &[("forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43")]
        ),
        "192.0.2.60:0"
    );
    assert_eq!(
        client(
            proxy,
            &[(
                "forwarded",
                r#"for="[2001:db8:cafe::17]:4711", for=10.0.0.9"#
            )]
        ),
        "[2001:db8:cafe::17]:4711"
    );
    // Forwarded wins over X-Forwarded-For; X-Real-IP is the last resort.
    assert_eq!(
        client(
            proxy,
            &[("x-forwarded-for", "1.1.1.1"), ("forwarded", "for=2.2.2.2")]
        ),
        "2.2.2.2:0"
    );
    assert_eq!(
        client(proxy, &[("x-real-ip", "203.0.113.7")]),
        "203.0.113.7:0"
    );
    assert_eq!(
        client(proxy, &[("x-forwarded-for", "garbage")]),
        "127.0.0.1:5000"
    );
    assert_eq!(
        client(proxy, &[("forwarded", "for=unknown")]),
        "127.0.0.1:5000"
    );
}

async fn parse(input: &[u8]) -> std::io::Result<(Option<SocketAddr>, Vec<u8>)> {
    let mut stream = input;
    read_proxy_header(&mut stream, Duration::from_secs(1))
        .await
        .map(|(addr, rest)| (addr, rest.to_vec()))
}

#[tokio::test]
async fn proxy_protocol_headers() {
    let (addr, rest) = parse(b"PROXY TCP4 203.0.113.5 10.0.0.1 51000 1883\r\n\x10\x0c")
        .await
        .unwrap();
    assert_eq!(addr, Some("203.0.113.5:51000".parse().unwrap()));
    assert_eq!(rest, b"\x10\x0c");
    let (addr, _) = parse(b"PROXY TCP6 2001:db8::1 ::1 4000 1883\r\n")
        .await
        .unwrap();
    assert_eq!(addr, Some("[2001:db8::1]:4000".parse().unwrap()));
    let (addr, rest) = parse(b"PROXY UNKNOWN\r\nGET").await.unwrap();
    assert_eq!((addr, rest), (None, b"GET".to_vec()));

    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    v2.extend_from_slice(&[
        0x21, 0x11, 0, 12, 203, 0, 113, 5, 10, 0, 0, 1, 0xC7, 0x38, 0x07, 0x5B,
    ]);
    v2.extend_from_slice(b"rest");
    let (addr, rest) = parse(&v2).await.unwrap();
    assert_eq!(addr, Some("203.0.113.5:51000".parse().unwrap()));
    assert_eq!(rest, b"rest");
    // LOCAL command (health checks from the proxy itself): keep the TCP peer.
    let mut local = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    local.extend_from_slice(&[0x20, 0x00, 0, 0]);
    assert_eq!(parse(&local).await.unwrap().0, None);

    for bad in [
        &b"GET / HTTP/1.1\r\n"[..],
        b"PROXY TCP4 nonsense\r\n",
        b"PROXY TCP4 1.2.3.4",
    ] {
        assert!(
            parse(bad).await.is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}
