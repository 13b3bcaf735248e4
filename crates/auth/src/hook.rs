//! The HTTP authentication hook's protocol, for operators with a user store of their own:
//! what FerryMQ asks ([`HookRequest`], a JSON document), which answers it accepts
//! ([`parse_response`] into a [`HookVerdict`]), and a bounded cache of answers
//! ([`HookCache`]).
//!
//! Pure, like the rest of this crate: no socket, no clock, no lock. The broker sends the
//! request, passes the clock in, keeps the cache behind a mutex and turns an allow into an
//! [`crate::Identity`] with [`crate::Authenticator::identity_from_hook`]. Which CONNECTs go to
//! the hook at all is [`crate::Authenticator::hook_subject`]'s decision.
//!
//! Rules:
//! - Only `200` with a JSON body `{"result": "allow" | "deny", ...}` is an answer. Any other
//!   status, a body that is not such a document, or a grant that does not validate (a bad
//!   filter, an empty vhost, an `expires_at` that is not Unix seconds) is a
//!   [`HookResponseError`]: the hook could not decide, and the broker's `on_error` policy
//!   applies. Unknown fields are ignored, so a hook may carry more than FerryMQ reads.
//! - **Least privilege**: an allow grants exactly the filters it lists, nothing in a
//!   direction it leaves out. A hook that means "everything" says `"publish": ["#"]`.
//! - An allow whose `expires_at` has passed is a deny.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

use crate::permissions::{Permissions, PermissionsError, TopicRules};

mod cache;

pub use cache::{HookCache, HookCacheKey};

/// The largest response body read from the hook: far above any real answer (a few hundred
/// filters), small enough that a misbehaving hook cannot make the broker buffer megabytes
/// per CONNECT.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The last second of year 9999. A larger `expires_at` is almost certainly milliseconds
/// (JavaScript's `Date.now()`), which would otherwise mean "never expires".
const MAX_EXPIRES_AT: u64 = 253_402_300_799;

/// Everything the hook is told about one CONNECT.
#[derive(Debug, Clone, Copy)]
pub struct HookRequest<'a> {
    /// The user name without its `vhost:` prefix.
    pub username: &'a str,
    /// CONNECT's password bytes, if it had a password.
    pub password: Option<&'a [u8]>,
    /// The client id as the client sent it (empty when the broker will assign one).
    pub client_id: &'a str,
    /// The vhost that vhost selection picked (`vhost:` prefix, else the listener's, else `/`).
    pub vhost: &'a str,
    /// The listener's default vhost, when it has one other than `/`.
    pub listener_vhost: Option<&'a str>,
    /// The client's real address: after trusted proxies and the PROXY protocol.
    pub peer: SocketAddr,
    /// The CONNECT protocol level: 3 (MQTT 3.1), 4 (3.1.1) or 5 (5.0).
    pub protocol_version: u8,
    /// How the client reached the broker: `tcp`, `tls`, `ws` or `wss`, when known.
    pub transport: Option<&'a str>,
}

impl HookRequest<'_> {
    /// The request body: a JSON object. The password is a string when it is valid UTF-8,
    /// else `password_base64` (standard alphabet, padded); neither when CONNECT had none.
    /// `peer_address` is the IP as text, an IPv4-mapped IPv6 address as plain IPv4.
    pub fn to_json(&self) -> Vec<u8> {
        let mut body = Map::new();
        body.insert("username".into(), json!(self.username));
        if let Some(password) = self.password {
            match std::str::from_utf8(password) {
                Ok(text) => body.insert("password".into(), json!(text)),
                Err(_) => body.insert("password_base64".into(), json!(BASE64.encode(password))),
            };
        }
        body.insert("client_id".into(), json!(self.client_id));
        body.insert("vhost".into(), json!(self.vhost));
        if let Some(listener_vhost) = self.listener_vhost {
            body.insert("listener_vhost".into(), json!(listener_vhost));
        }
        body.insert(
            "peer_address".into(),
            json!(self.peer.ip().to_canonical().to_string()),
        );
        body.insert("peer_port".into(), json!(self.peer.port()));
        body.insert("protocol_version".into(), json!(self.protocol_version));
        if let Some(transport) = self.transport {
            body.insert("transport".into(), json!(transport));
        }
        Value::Object(body).to_string().into_bytes()
    }
}

/// The hook's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookVerdict {
    /// Let the client in with these rights.
    Allow(HookGrant),
    /// Refuse it as bad credentials.
    Deny,
}

/// What an allow grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookGrant {
    /// The vhost the connection goes to instead of the one selection picked.
    pub vhost: Option<String>,
    /// Topic rights in that vhost (placeholders allowed, bound at connect).
    pub permissions: Permissions,
    /// When the connection must close (MQTT 5: DISCONNECT 0xA0).
    pub expires_at: Option<SystemTime>,
}

impl HookVerdict {
    /// How long this answer may be reused: `allow_ttl` for an allow (less when it expires
    /// sooner), `deny_ttl` for a deny.
    pub fn cache_for(&self, allow_ttl: Duration, deny_ttl: Duration, now: SystemTime) -> Duration {
        match self {
            HookVerdict::Deny => deny_ttl,
            HookVerdict::Allow(grant) => match grant.expires_at {
                Some(expiry) => allow_ttl.min(expiry.duration_since(now).unwrap_or_default()),
                None => allow_ttl,
            },
        }
    }
}

/// Why an answer is not one: the hook could not decide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookResponseError {
    /// The status was not 200.
    #[error("the hook answered HTTP {0}, expected 200")]
    Status(u16),
    /// The body is not a JSON object of the expected shape.
    #[error("the hook's answer is not valid: {0}")]
    Malformed(String),
    /// A permission filter does not validate.
    #[error("the hook granted an invalid permission: {0}")]
    InvalidPermission(PermissionsError),
}

/// Reads the hook's answer: `status` and `body` of its HTTP response, `now` to check
/// `expires_at` against.
///
/// The body: `{"result": "allow" | "deny", "vhost"?: string, "publish"?: rules,
/// "subscribe"?: rules, "read_sys"?: bool, "expires_at"?: Unix seconds}` where `rules` is a
/// list of allow filters or `{"allow": [...], "deny": [...]}`. Only `result` is read from a
/// deny.
pub fn parse_response(
    status: u16,
    body: &[u8],
    now: SystemTime,
) -> Result<HookVerdict, HookResponseError> {
    if status != 200 {
        return Err(HookResponseError::Status(status));
    }
    let malformed = |message: &str| HookResponseError::Malformed(message.to_owned());
    let document: Value = serde_json::from_slice(body)
        .map_err(|error| HookResponseError::Malformed(format!("not JSON ({error})")))?;
    let Value::Object(fields) = document else {
        return Err(malformed("not a JSON object"));
    };
    match fields.get("result") {
        Some(Value::String(result)) if result == "deny" => return Ok(HookVerdict::Deny),
        Some(Value::String(result)) if result == "allow" => {}
        Some(other) => {
            return Err(HookResponseError::Malformed(format!(
                "\"result\" must be \"allow\" or \"deny\", not {other}"
            )));
        }
        None => return Err(malformed("no \"result\"")),
    }
    let vhost = match fields.get("vhost") {
        None | Some(Value::Null) => None,
        Some(Value::String(vhost)) if !vhost.is_empty() => Some(vhost.clone()),
        Some(_) => return Err(malformed("\"vhost\" must be a non-empty string")),
    };
    let permissions = Permissions {
        publish: rules(&fields, "publish")?,
        subscribe: rules(&fields, "subscribe")?,
        read_sys: match fields.get("read_sys") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(read_sys)) => *read_sys,
            Some(_) => return Err(malformed("\"read_sys\" must be true or false")),
        },
    };
    permissions
        .validate()
        .map_err(HookResponseError::InvalidPermission)?;
    let expires_at = match fields.get("expires_at") {
        None | Some(Value::Null) => None,
        Some(value) => match value.as_u64() {
            Some(secs) if secs <= MAX_EXPIRES_AT => Some(UNIX_EPOCH + Duration::from_secs(secs)),
            _ => {
                return Err(HookResponseError::Malformed(format!(
                    "\"expires_at\" must be Unix time in seconds, not {value}"
                )));
            }
        },
    };
    if expires_at.is_some_and(|expiry| expiry <= now) {
        return Ok(HookVerdict::Deny);
    }
    Ok(HookVerdict::Allow(HookGrant {
        vhost,
        permissions,
        expires_at,
    }))
}

/// `publish` / `subscribe`: absent = nothing; a list = allow filters; an object = allow and
/// deny lists, as in the definitions format.
fn rules(fields: &Map<String, Value>, name: &str) -> Result<TopicRules, HookResponseError> {
    let malformed = || {
        HookResponseError::Malformed(format!(
            "\"{name}\" must be a list of topic filters or {{\"allow\": [...], \"deny\": [...]}}"
        ))
    };
    let strings = |value: &Value| -> Result<Vec<String>, HookResponseError> {
        let Value::Array(items) = value else {
            return Err(malformed());
        };
        items
            .iter()
            .map(|item| item.as_str().map(str::to_owned).ok_or_else(malformed))
            .collect()
    };
    match fields.get(name) {
        None | Some(Value::Null) => Ok(TopicRules::default()),
        Some(list @ Value::Array(_)) => Ok(TopicRules {
            allow: strings(list)?,
            deny: Vec::new(),
        }),
        Some(Value::Object(rules)) => {
            if rules.keys().any(|key| key != "allow" && key != "deny") {
                return Err(malformed());
            }
            let list = |key: &str| rules.get(key).map_or(Ok(Vec::new()), strings);
            Ok(TopicRules {
                allow: list("allow")?,
                deny: list("deny")?,
            })
        }
        Some(_) => Err(malformed()),
    }
}

#[cfg(test)]
mod tests;
