//! The config file's schema, exactly as `ferrymq.example.toml` documents it.
//!
//! Every key is optional and every value keeps its source span (`Spanned`) so that a
//! semantic error can point at the offending line. Integers are read as `i64` (TOML's own
//! integer type) and range-checked in `resolve`, which gives better messages than serde's
//! "invalid value: integer `70000`, expected u16". Unknown keys are errors everywhere: a
//! misspelt key silently falling back to its default is the worst kind of config bug.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use toml::Spanned;

/// A config file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ConfigFile {
    pub(crate) server: ServerSection,
    pub(crate) mqtt: MqttSection,
    pub(crate) auth: AuthSection,
    pub(crate) limits: LimitsSection,
    pub(crate) websocket: WebSocketSection,
    pub(crate) tls: TlsSection,
    pub(crate) proxy: ProxySection,
    pub(crate) management: ManagementSection,
}

/// `[management]`
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ManagementSection {
    pub(crate) enabled: Option<Spanned<bool>>,
    pub(crate) listen: Option<Spanned<ListenAddrs>>,
    pub(crate) metrics_auth: Option<Spanned<bool>>,
}

/// `[server]`
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ServerSection {
    pub(crate) data_dir: Option<Spanned<String>>,
    pub(crate) log_level: Option<Spanned<String>>,
    pub(crate) shutdown_grace_secs: Option<Spanned<i64>>,
}

/// `[mqtt]`
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct MqttSection {
    pub(crate) listen: Option<Spanned<ListenAddrs>>,
    pub(crate) connect_timeout_secs: Option<Spanned<i64>>,
    pub(crate) keep_alive_grace: Option<Spanned<f64>>,
    pub(crate) server_keep_alive_secs: Option<Spanned<i64>>,
    pub(crate) max_session_expiry_secs: Option<Spanned<i64>>,
    pub(crate) retain_available: Option<Spanned<bool>>,
    pub(crate) shared_subscriptions_available: Option<Spanned<bool>>,
    pub(crate) maximum_qos: Option<Spanned<i64>>,
    pub(crate) proxy_protocol: Option<Spanned<bool>>,
    pub(crate) vhost: Option<Spanned<String>>,
    pub(crate) hibernate_after_secs: Option<Spanned<i64>>,
}

/// `[auth]`
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct AuthSection {
    pub(crate) allow_anonymous: Option<Spanned<bool>>,
    pub(crate) vhost_in_username: Option<Spanned<bool>>,
    pub(crate) disconnect_v3_on_denied_publish: Option<Spanned<bool>>,
    pub(crate) users: Vec<Spanned<UserEntry>>,
    pub(crate) jwt: Option<Spanned<JwtSection>>,
    pub(crate) http: Option<Spanned<HttpHookSection>>,
}

/// `[auth.http]`: present = the HTTP authentication hook is on.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct HttpHookSection {
    pub(crate) url: Option<Spanned<String>>,
    pub(crate) ca_file: Option<Spanned<String>>,
    pub(crate) bearer_token_file: Option<Spanned<String>>,
    pub(crate) timeout_ms: Option<Spanned<i64>>,
    pub(crate) cache_ttl_secs: Option<Spanned<i64>>,
    pub(crate) deny_cache_ttl_secs: Option<Spanned<i64>>,
    pub(crate) cache_max_entries: Option<Spanned<i64>>,
    pub(crate) max_concurrent_requests: Option<Spanned<i64>>,
    pub(crate) order: Option<Spanned<String>>,
    pub(crate) on_error: Option<Spanned<String>>,
}

/// `[auth.jwt]`: present = JWT authentication on.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct JwtSection {
    pub(crate) algorithms: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) keys: Vec<Spanned<JwtKeyEntry>>,
    pub(crate) audience: Option<Spanned<String>>,
    pub(crate) issuer: Option<Spanned<String>>,
    pub(crate) leeway_secs: Option<Spanned<i64>>,
    pub(crate) username_claim: Option<Spanned<String>>,
    pub(crate) vhost_claim: Option<Spanned<String>>,
    pub(crate) scope_claim: Option<Spanned<String>>,
    pub(crate) scope_prefix: Option<Spanned<String>>,
    pub(crate) require_exp: Option<Spanned<bool>>,
    pub(crate) cookie: Option<Spanned<String>>,
}

/// One `[[auth.jwt.keys]]` entry: exactly one of `secret_file`, `pem_file`, `jwks_file`.
/// `secret` is read only to refuse it with a helpful message: secrets do not go in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct JwtKeyEntry {
    pub(crate) secret_file: Option<Spanned<String>>,
    pub(crate) pem_file: Option<Spanned<String>>,
    pub(crate) jwks_file: Option<Spanned<String>>,
    pub(crate) kid: Option<Spanned<String>>,
    pub(crate) secret: Option<Spanned<String>>,
}

/// One `[[auth.users]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserEntry {
    pub(crate) name: Spanned<String>,
    pub(crate) password_hash: Spanned<String>,
    #[serde(default)]
    pub(crate) loopback_only: Option<Spanned<bool>>,
}

/// `[limits]`
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct LimitsSection {
    pub(crate) max_packet_size: Option<Spanned<i64>>,
    pub(crate) max_connect_packet_size: Option<Spanned<i64>>,
    pub(crate) max_inflight: Option<Spanned<i64>>,
    pub(crate) max_queued_messages: Option<Spanned<i64>>,
    pub(crate) max_queued_bytes: Option<Spanned<i64>>,
    pub(crate) queue_overflow: Option<Spanned<String>>,
    pub(crate) publish_backpressure_timeout_secs: Option<Spanned<i64>>,
    pub(crate) max_topic_length: Option<Spanned<i64>>,
    pub(crate) max_topic_levels: Option<Spanned<i64>>,
    pub(crate) max_client_id_length: Option<Spanned<i64>>,
    pub(crate) max_subscriptions_per_session: Option<Spanned<i64>>,
    pub(crate) max_connections: Option<Spanned<i64>>,
    pub(crate) topic_alias_maximum: Option<Spanned<i64>>,
    pub(crate) max_failed_logins: Option<Spanned<i64>>,
    pub(crate) failed_login_window_secs: Option<Spanned<i64>>,
    pub(crate) failed_login_block_secs: Option<Spanned<i64>>,
}

/// `[websocket]`: the defaults for every WebSocket listener, and the listeners.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct WebSocketSection {
    pub(crate) listen: Option<Spanned<Vec<Spanned<WsListenEntry>>>>,
    pub(crate) tls_listen: Option<Spanned<Vec<Spanned<WsListenEntry>>>>,
    pub(crate) paths: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) require_subprotocol: Option<Spanned<bool>>,
    pub(crate) allowed_origins: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) allow_missing_origin: Option<Spanned<bool>>,
    pub(crate) max_header_bytes: Option<Spanned<i64>>,
    pub(crate) handshake_timeout_secs: Option<Spanned<i64>>,
    pub(crate) ping_interval_secs: Option<Spanned<i64>>,
    pub(crate) hibernate_after_secs: Option<Spanned<i64>>,
    pub(crate) keep_alive_grace: Option<Spanned<f64>>,
    pub(crate) proxy_protocol: Option<Spanned<bool>>,
    pub(crate) http2: Option<Spanned<bool>>,
    pub(crate) permessage_deflate: Option<Spanned<bool>>,
    pub(crate) vhost: Option<Spanned<String>>,
}

/// One entry of `websocket.listen` / `websocket.tls_listen`: an address, or a table that
/// also overrides some of the section's settings for that listener.
#[derive(Debug)]
pub(crate) enum WsListenEntry {
    Address(String),
    Table(WsListenTable),
}

/// `{ address = "…", paths = […], proxy_protocol = …, keep_alive_grace = …, vhost = "…" }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WsListenTable {
    pub(crate) address: Spanned<String>,
    #[serde(default)]
    pub(crate) paths: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub(crate) proxy_protocol: Option<Spanned<bool>>,
    #[serde(default)]
    pub(crate) keep_alive_grace: Option<Spanned<f64>>,
    #[serde(default)]
    pub(crate) vhost: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for WsListenEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;

        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = WsListenEntry;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"an address such as "0.0.0.0:15675", or a table { address = "…", paths = […] }"#)
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<WsListenEntry, E> {
                Ok(WsListenEntry::Address(value.to_owned()))
            }

            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<WsListenEntry, A::Error> {
                WsListenTable::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(WsListenEntry::Table)
            }
        }

        deserializer.deserialize_any(EntryVisitor)
    }
}

/// `[tls]`
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct TlsSection {
    pub(crate) cert_file: Option<Spanned<String>>,
    pub(crate) key_file: Option<Spanned<String>>,
    pub(crate) client_ca_file: Option<Spanned<String>>,
    pub(crate) client_auth: Option<Spanned<String>>,
    pub(crate) username_from: Option<Spanned<String>>,
    pub(crate) listen: Option<Spanned<ListenAddrs>>,
    pub(crate) proxy_protocol: Option<Spanned<bool>>,
    pub(crate) reload_interval_secs: Option<Spanned<i64>>,
    pub(crate) vhost: Option<Spanned<String>>,
}

/// `[proxy]`
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ProxySection {
    pub(crate) trusted: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `mqtt.listen`: "one address or a list". A single string is spanned by the enclosing
/// `Spanned`; list elements carry their own spans so that the bad one can be pointed at.
#[derive(Debug)]
pub(crate) enum ListenAddrs {
    One(String),
    Many(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for ListenAddrs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Hand-written rather than `#[serde(untagged)]`, whose error ("data did not match
        // any variant") would not say what is expected.
        struct ListenVisitor;

        impl<'de> Visitor<'de> for ListenVisitor {
            type Value = ListenAddrs;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"an address such as "0.0.0.0:1883", or a list of them"#)
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<ListenAddrs, E> {
                Ok(ListenAddrs::One(value.to_owned()))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ListenAddrs, A::Error> {
                let mut addrs = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(64));
                while let Some(addr) = seq.next_element()? {
                    addrs.push(addr);
                }
                Ok(ListenAddrs::Many(addrs))
            }
        }

        deserializer.deserialize_any(ListenVisitor)
    }
}
