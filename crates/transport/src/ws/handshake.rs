//! The HTTP side of the WebSocket listener, as pure decisions: which requests upgrade (and
//! with which subprotocol), and what every other request gets (`/healthz`, 404, 405, 426,
//! 400, 403, 431). No I/O here; `ws::serve` does the sockets.

use base64::Engine;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode, Version};
use sha1::{Digest, Sha1};

use super::WsConfig;
use super::deflate::negotiate;

/// The MQTT subprotocol names accepted, in no particular order: `mqtt` (MQTT 3.1.1 and 5.0,
/// [MQTT-6.0.0-3]), `mqttv3.1` (MQTT 3.1), and EMQX's `mqtt-v5` / `mqtt-v3.1.1`.
pub const SUBPROTOCOLS: [&str; 4] = ["mqtt", "mqttv3.1", "mqtt-v5", "mqtt-v3.1.1"];

/// The health-check path, answered on every WebSocket listener.
pub const HEALTH_PATH: &str = "/healthz";

/// A request that may upgrade.
#[derive(Debug, PartialEq, Eq)]
pub struct Upgrade {
    /// The `Sec-WebSocket-Accept` value.
    pub accept: String,
    /// The subprotocol to answer, exactly as the client spelled it; `None` when it offered none.
    pub protocol: Option<String>,
    /// The `Sec-WebSocket-Extensions` answer when permessage-deflate was negotiated.
    pub deflate: Option<&'static str>,
}

/// A request that gets a plain HTTP answer.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: StatusCode,
    /// One line of explanation (the response body).
    pub reason: &'static str,
    /// An extra response header (`Allow`, `Upgrade`, `Sec-WebSocket-Version`).
    pub header: Option<(header::HeaderName, &'static str)>,
}

impl Reply {
    fn new(status: StatusCode, reason: &'static str) -> Reply {
        Reply {
            status,
            reason,
            header: None,
        }
    }

    fn with(mut self, name: header::HeaderName, value: &'static str) -> Reply {
        self.header = Some((name, value));
        self
    }
}

/// What every request goes through first, on HTTP/1.1 and HTTP/2 alike: the header size
/// limit, the health check, and the path.
fn check_common<B>(request: &Request<B>, config: &WsConfig) -> Result<(), Reply> {
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > config.max_header_bytes {
        return Err(Reply::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request headers too large",
        ));
    }
    let path = request.uri().path();
    if path == HEALTH_PATH {
        return Err(match *request.method() {
            Method::GET | Method::HEAD => Reply::new(StatusCode::OK, "ok"),
            _ => Reply::new(StatusCode::METHOD_NOT_ALLOWED, "use GET")
                .with(header::ALLOW, "GET, HEAD"),
        });
    }
    if !config.paths.iter().any(|p| p == path) {
        return Err(Reply::new(StatusCode::NOT_FOUND, "not found"));
    }
    Ok(())
}

const UPGRADE_REQUIRED: &str = "this is an MQTT-over-WebSocket endpoint: connect with a WebSocket client (subprotocol \"mqtt\")";

/// Decides what to do with one HTTP/1.1 request on a WebSocket listener.
pub fn check<B>(request: &Request<B>, config: &WsConfig) -> Result<Upgrade, Reply> {
    check_common(request, config)?;
    let headers = request.headers();
    if request.method() != Method::GET {
        return Err(Reply::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "a WebSocket handshake uses GET",
        )
        .with(header::ALLOW, "GET"));
    }
    if !has_token(headers, header::UPGRADE, "websocket") {
        return Err(Reply::new(StatusCode::UPGRADE_REQUIRED, UPGRADE_REQUIRED)
            .with(header::UPGRADE, "websocket"));
    }
    if request.version() != Version::HTTP_11 || !has_token(headers, header::CONNECTION, "upgrade") {
        return Err(Reply::new(
            StatusCode::BAD_REQUEST,
            "a WebSocket handshake needs HTTP/1.1 with \"Connection: Upgrade\"",
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(Reply::new(
            StatusCode::BAD_REQUEST,
            "unsupported Sec-WebSocket-Version (13 is supported)",
        )
        .with(header::SEC_WEBSOCKET_VERSION, "13"));
    }
    let key = match headers
        .get_all(header::SEC_WEBSOCKET_KEY)
        .iter()
        .collect::<Vec<_>>()[..]
    {
        [key] if is_valid_key(key.as_bytes()) => key,
        _ => {
            return Err(Reply::new(
                StatusCode::BAD_REQUEST,
                "Sec-WebSocket-Key must be the base64 of 16 bytes",
            ));
        }
    };
    if !config.origin_allowed(headers.get(header::ORIGIN)) {
        return Err(Reply::new(StatusCode::FORBIDDEN, "origin not allowed"));
    }
    let protocol = choose_subprotocol(headers, config.require_subprotocol)?;
    Ok(Upgrade {
        accept: accept_key(key.as_bytes()),
        protocol,
        deflate: negotiate(headers, config.permessage_deflate),
    })
}

/// Decides what to do with one HTTP/2 request: a WebSocket is opened by an extended CONNECT
/// with `:protocol websocket` [RFC 8441 §4], without `Sec-WebSocket-Key` (the stream is
/// already the peer's). Returns the subprotocol to answer and the `Sec-WebSocket-Extensions`
/// answer (permessage-deflate is negotiated in the same headers as on HTTP/1.1, RFC 8441 §5).
pub fn check_h2<B>(
    request: &Request<B>,
    config: &WsConfig,
) -> Result<(Option<String>, Option<&'static str>), Reply> {
    check_common(request, config)?;
    let headers = request.headers();
    let websocket = request
        .extensions()
        .get::<hyper::ext::Protocol>()
        .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"));
    if request.method() != Method::CONNECT || !websocket {
        return Err(match *request.method() {
            Method::GET => Reply::new(StatusCode::UPGRADE_REQUIRED, UPGRADE_REQUIRED),
            _ => Reply::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "a WebSocket over HTTP/2 is opened with an extended CONNECT",
            ),
        });
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(Reply::new(
            StatusCode::BAD_REQUEST,
            "unsupported Sec-WebSocket-Version (13 is supported)",
        )
        .with(header::SEC_WEBSOCKET_VERSION, "13"));
    }
    if !config.origin_allowed(headers.get(header::ORIGIN)) {
        return Err(Reply::new(StatusCode::FORBIDDEN, "origin not allowed"));
    }
    let protocol = choose_subprotocol(headers, config.require_subprotocol)?;
    Ok((protocol, negotiate(headers, config.permessage_deflate)))
}

/// Longest cookie value taken as a token; a real JWT is far smaller, and the header size
/// limit already bounds it.
const MAX_COOKIE_TOKEN: usize = 8192;

/// The token cookie of a request that passed [`check`] or [`check_h2`], when the listener
/// takes one (`token_cookie`). Only listeners with an Origin allow-list do (the config
/// insists), so a page of another site cannot borrow the cookie its browser attaches.
/// Cookie headers are `name=value` pairs separated by `;` [RFC 6265 §4.2.1]; a value may be
/// quoted; the first pair with the name wins.
pub fn cookie_token(headers: &HeaderMap, config: &WsConfig) -> Option<String> {
    let name = config.token_cookie.as_deref()?;
    let value = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| n.trim() == name)
        .map(|(_, v)| v.trim())?;
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    (!value.is_empty() && value.len() <= MAX_COOKIE_TOKEN).then(|| value.to_owned())
}

/// Whether a comma-separated header (possibly repeated) holds `token`, case-insensitively.
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn is_valid_key(key: &[u8]) -> bool {
    base64::engine::general_purpose::STANDARD
        .decode(key)
        .is_ok_and(|raw| raw.len() == 16)
}

/// `Sec-WebSocket-Accept` [RFC 6455 §4.2.2]: base64(SHA-1(key + the protocol's GUID)).
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// The first subprotocol in the client's order that we speak. Offering none is accepted
/// unless `required`; offering only unknown ones is refused, because answering none would
/// make a conforming client fail the connection anyway, and answering one it did not offer
/// is forbidden [RFC 6455 §4.1].
fn choose_subprotocol(headers: &HeaderMap, required: bool) -> Result<Option<String>, Reply> {
    let mut offered = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .map(|v| v.to_str().unwrap_or(""))
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .peekable();
    if offered.peek().is_none() {
        if required {
            return Err(Reply::new(
                StatusCode::BAD_REQUEST,
                "offer the WebSocket subprotocol \"mqtt\"",
            ));
        }
        return Ok(None);
    }
    offered
        .find(|t| SUBPROTOCOLS.iter().any(|s| s.eq_ignore_ascii_case(t)))
        .map(|t| Some(t.to_owned()))
        .ok_or_else(|| {
            Reply::new(
                StatusCode::BAD_REQUEST,
                "no supported subprotocol offered (mqtt, mqttv3.1, mqtt-v5, mqtt-v3.1.1)",
            )
        })
}

/// One `allowed_origins` entry: an exact origin (`https://app.example.com`,
/// `http://localhost:8080`) or a wildcard-subdomain one (`https://*.example.com`, which
/// matches `https://a.example.com` and `https://a.b.example.com` but not
/// `https://example.com`). Scheme and host compare case-insensitively; the port must match
/// as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPattern {
    /// `scheme://` for a wildcard, or the whole origin for an exact entry (lowercase).
    prefix: String,
    /// `.example.com[:port]` for a wildcard; `None` for an exact entry.
    suffix: Option<String>,
}

impl std::str::FromStr for OriginPattern {
    type Err = String;

    fn from_str(text: &str) -> Result<OriginPattern, String> {
        let lower = text.trim().trim_end_matches('/').to_ascii_lowercase();
        if lower == "null" {
            return Ok(OriginPattern {
                prefix: lower,
                suffix: None,
            });
        }
        let Some((scheme, rest)) = lower.split_once("://") else {
            return Err(format!(
                "{text:?} is not an origin: write scheme://host[:port], e.g. \"https://app.example.com\""
            ));
        };
        if !matches!(scheme, "http" | "https")
            || rest.is_empty()
            || rest.contains(['/', '?', '#', '@'])
        {
            return Err(format!(
                "{text:?} is not an origin: write http(s)://host[:port] with no path"
            ));
        }
        if let Some(domain) = rest.strip_prefix("*.") {
            if domain.is_empty() || domain.contains('*') {
                return Err(format!(
                    "{text:?}: a wildcard is written \"https://*.example.com\""
                ));
            }
            return Ok(OriginPattern {
                prefix: format!("{scheme}://"),
                suffix: Some(format!(".{domain}")),
            });
        }
        if rest.contains('*') {
            return Err(format!(
                "{text:?}: only a leading \"*.\" wildcard is supported (\"https://*.example.com\")"
            ));
        }
        Ok(OriginPattern {
            prefix: lower,
            suffix: None,
        })
    }
}

impl OriginPattern {
    /// Whether the browser-sent `origin` matches.
    pub fn matches(&self, origin: &str) -> bool {
        let origin = origin.trim().to_ascii_lowercase();
        match &self.suffix {
            None => origin == self.prefix,
            Some(suffix) => origin
                .strip_prefix(&self.prefix)
                .and_then(|rest| rest.strip_suffix(suffix.as_str()))
                .is_some_and(|sub| {
                    !sub.is_empty()
                        && sub
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                }),
        }
    }
}

#[cfg(test)]
mod tests;
