//! Checks every value of a parsed [`ConfigFile`] and turns it into [`Settings`].
//!
//! Bounds come from the MQTT specification where it has one (u16 fields, Receive Maximum
//! of at least 1, client ids of at least 23 characters) and otherwise only reject values
//! that would make the broker useless (a zero-length queue, a zero connect timeout).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use ferrymq_auth::{AuthConfig, AuthConfigError, UserConfig};
use ferrymq_broker::config::{BrokerConfig, Limits, MqttSettings, QueueOverflow};
use ferrymq_codec::QoS;
use toml::Spanned;

use super::file::{ConfigFile, ListenAddrs, UserEntry};
use super::{Location, Problem, Settings, check_log_level};

mod auth_hook;
mod jwt;
mod network;

/// The largest packet MQTT can express: 1 type byte, 4 length bytes, 268,435,455 body bytes.
const MQTT_MAX_PACKET_SIZE: i64 = 268_435_460;

/// Collects problems while reading values; each read returns the default on error so that
/// resolution goes on and finds every problem in one pass.
struct Resolver<'a> {
    source: &'a str,
    problems: Vec<(Option<Location>, String)>,
}

impl Resolver<'_> {
    fn error(&mut self, span: Option<Range<usize>>, message: String) {
        let location = span.map(|span| Location::of(self.source, span.start));
        self.problems.push((location, message));
    }

    /// An integer key within `min..=max` (`max` = `i64::MAX` means "no upper bound").
    fn int<T: TryFrom<i64>>(
        &mut self,
        value: &Option<Spanned<i64>>,
        key: &str,
        (min, max): (i64, i64),
        default: T,
    ) -> T {
        let Some(value) = value else { return default };
        let n = *value.get_ref();
        if (min..=max).contains(&n)
            && let Ok(converted) = T::try_from(n)
        {
            return converted;
        }
        let expected = if max == i64::MAX {
            format!("at least {min}")
        } else {
            format!("between {min} and {max}")
        };
        self.error(
            Some(value.span()),
            format!("{key} must be {expected}, not {n}"),
        );
        default
    }

    fn bool(value: &Option<Spanned<bool>>, default: bool) -> bool {
        value.as_ref().map_or(default, |v| *v.get_ref())
    }

    fn server(&mut self, file: &ConfigFile, settings: &mut Settings) {
        let server = &file.server;
        if let Some(dir) = &server.data_dir {
            if dir.get_ref().trim().is_empty() {
                self.error(
                    Some(dir.span()),
                    "server.data_dir must not be empty".to_owned(),
                );
            } else {
                settings.data_dir = PathBuf::from(dir.get_ref());
            }
        }
        if let Some(level) = &server.log_level {
            match check_log_level(level.get_ref()) {
                Ok(()) => settings.log_level.clone_from(level.get_ref()),
                Err(message) => {
                    self.error(Some(level.span()), format!("server.log_level: {message}"))
                }
            }
        }
        let grace = self.int(
            &server.shutdown_grace_secs,
            "server.shutdown_grace_secs",
            (0, i64::MAX),
            settings.shutdown_grace.as_secs(),
        );
        settings.shutdown_grace = Duration::from_secs(grace);
    }

    fn listen(&mut self, listen: &Spanned<ListenAddrs>) -> Vec<SocketAddr> {
        self.listen_addrs(listen, "mqtt.listen")
    }

    /// A list of `IP:PORT` addresses (or one) under `key`.
    fn listen_addrs(&mut self, listen: &Spanned<ListenAddrs>, key: &str) -> Vec<SocketAddr> {
        let entries: Vec<(&str, Range<usize>)> = match listen.get_ref() {
            ListenAddrs::One(addr) => vec![(addr.as_str(), listen.span())],
            ListenAddrs::Many(addrs) => addrs
                .iter()
                .map(|addr| (addr.get_ref().as_str(), addr.span()))
                .collect(),
        };
        let mut seen = HashSet::new();
        let mut addrs = Vec::with_capacity(entries.len());
        for (text, span) in entries {
            match text.trim().parse::<SocketAddr>() {
                Ok(addr) if !seen.insert(addr) => {
                    self.error(Some(span), format!("{key}: {addr} is listed twice"))
                }
                Ok(addr) => addrs.push(addr),
                Err(_) => self.error(
                    Some(span),
                    format!(
                        "{key}: {text:?} is not an IP:PORT address (such as \"0.0.0.0:1883\" or \"[::]:1883\")"
                    ),
                ),
            }
        }
        addrs
    }

    fn management(&mut self, file: &ConfigFile, settings: &mut Settings) {
        let section = &file.management;
        let management = &mut settings.management;
        management.enabled = Self::bool(&section.enabled, management.enabled);
        management.metrics_auth = Self::bool(&section.metrics_auth, management.metrics_auth);
        if let Some(listen) = &section.listen {
            management.listen = self.listen_addrs(listen, "management.listen");
        }
    }

    fn mqtt(&mut self, file: &ConfigFile, default: &MqttSettings) -> MqttSettings {
        let mqtt = &file.mqtt;
        let connect_timeout = self.int(
            &mqtt.connect_timeout_secs,
            "mqtt.connect_timeout_secs",
            (1, i64::MAX),
            default.connect_timeout.as_secs(),
        );
        let mut keep_alive_grace = default.keep_alive_grace;
        if let Some(grace) = &mqtt.keep_alive_grace {
            let value = *grace.get_ref();
            // f32 holds any sane factor; the upper bound only keeps the conversion exact
            // enough and rejects obvious typos.
            if value.is_finite() && (1.0..=1000.0).contains(&value) {
                keep_alive_grace = value as f32;
            } else {
                self.error(
                    Some(grace.span()),
                    format!(
                        "mqtt.keep_alive_grace must be a number from 1.0 to 1000.0, not {value} (MQTT requires at least 1.0 x the keep-alive)"
                    ),
                );
            }
        }
        let server_keep_alive = self.int(
            &mqtt.server_keep_alive_secs,
            "mqtt.server_keep_alive_secs",
            (0, i64::from(u16::MAX)),
            default.server_keep_alive.unwrap_or(0),
        );
        let maximum_qos = self.int(
            &mqtt.maximum_qos,
            "mqtt.maximum_qos",
            (0, 2),
            default.maximum_qos.as_u8(),
        );
        MqttSettings {
            connect_timeout: Duration::from_secs(connect_timeout),
            keep_alive_grace,
            // 0 = "keep the client's value", which the broker spells `None`.
            server_keep_alive: (server_keep_alive != 0).then_some(server_keep_alive),
            max_session_expiry: self.int(
                &mqtt.max_session_expiry_secs,
                "mqtt.max_session_expiry_secs",
                (0, i64::from(u32::MAX)),
                default.max_session_expiry,
            ),
            retain_available: Self::bool(&mqtt.retain_available, default.retain_available),
            shared_subscriptions_available: Self::bool(
                &mqtt.shared_subscriptions_available,
                default.shared_subscriptions_available,
            ),
            maximum_qos: QoS::from_u8(maximum_qos).unwrap_or(default.maximum_qos),
            disconnect_v3_on_denied_publish: Self::bool(
                &file.auth.disconnect_v3_on_denied_publish,
                default.disconnect_v3_on_denied_publish,
            ),
        }
    }

    fn limits(&mut self, file: &ConfigFile, default: &Limits) -> Limits {
        let l = &file.limits;
        const U16: (i64, i64) = (1, u16::MAX as i64);
        const POSITIVE: (i64, i64) = (1, i64::MAX);
        let mut limits = Limits {
            max_packet_size: self.int(
                &l.max_packet_size,
                "limits.max_packet_size",
                (1, MQTT_MAX_PACKET_SIZE),
                default.max_packet_size,
            ),
            max_connect_packet_size: self.int(
                &l.max_connect_packet_size,
                "limits.max_connect_packet_size",
                (1, MQTT_MAX_PACKET_SIZE),
                default.max_connect_packet_size,
            ),
            // Receive Maximum: 0 is a protocol error [MQTT-3.2.2.3.3], 65,535 the field's max.
            max_inflight: self.int(
                &l.max_inflight,
                "limits.max_inflight",
                U16,
                default.max_inflight,
            ),
            max_queued_messages: self.int(
                &l.max_queued_messages,
                "limits.max_queued_messages",
                POSITIVE,
                default.max_queued_messages,
            ),
            max_queued_bytes: self.int(
                &l.max_queued_bytes,
                "limits.max_queued_bytes",
                POSITIVE,
                default.max_queued_bytes,
            ),
            queue_overflow: self.queue_overflow(&l.queue_overflow, default.queue_overflow),
            publish_backpressure_timeout: Duration::from_secs(self.int(
                &l.publish_backpressure_timeout_secs,
                "limits.publish_backpressure_timeout_secs",
                (1, 3600),
                default.publish_backpressure_timeout.as_secs(),
            )),
            // MQTT strings are at most 65,535 bytes.
            max_topic_length: self.int(
                &l.max_topic_length,
                "limits.max_topic_length",
                U16,
                default.max_topic_length,
            ),
            max_topic_levels: self.int(
                &l.max_topic_levels,
                "limits.max_topic_levels",
                POSITIVE,
                default.max_topic_levels,
            ),
            // A server must accept client ids of 1 to 23 characters [MQTT-3.1.3-5].
            max_client_id_length: self.int(
                &l.max_client_id_length,
                "limits.max_client_id_length",
                (23, i64::from(u16::MAX)),
                default.max_client_id_length,
            ),
            max_subscriptions_per_session: self.int(
                &l.max_subscriptions_per_session,
                "limits.max_subscriptions_per_session",
                POSITIVE,
                default.max_subscriptions_per_session,
            ),
            max_connections: self.int(
                &l.max_connections,
                "limits.max_connections",
                POSITIVE,
                default.max_connections,
            ),
            topic_alias_maximum: self.int(
                &l.topic_alias_maximum,
                "limits.topic_alias_maximum",
                (0, i64::from(u16::MAX)),
                default.topic_alias_maximum,
            ),
            max_failed_logins: self.int(
                &l.max_failed_logins,
                "limits.max_failed_logins",
                (0, i64::from(u32::MAX)),
                default.max_failed_logins,
            ),
            failed_login_window: Duration::from_secs(self.int(
                &l.failed_login_window_secs,
                "limits.failed_login_window_secs",
                (1, 86_400),
                default.failed_login_window.as_secs(),
            )),
            failed_login_block: Duration::from_secs(self.int(
                &l.failed_login_block_secs,
                "limits.failed_login_block_secs",
                (1, 86_400),
                default.failed_login_block.as_secs(),
            )),
        };
        if limits.max_connect_packet_size > limits.max_packet_size {
            match l.max_connect_packet_size.as_ref() {
                // Set explicitly above the packet limit: the file contradicts itself.
                Some(set) => self.error(
                    Some(set.span()),
                    format!(
                        "limits.max_connect_packet_size ({}) must not exceed limits.max_packet_size ({})",
                        limits.max_connect_packet_size, limits.max_packet_size
                    ),
                ),
                // Only max_packet_size was lowered: the CONNECT bound follows it.
                None => limits.max_connect_packet_size = limits.max_packet_size,
            }
        }
        limits
    }

    fn queue_overflow(
        &mut self,
        value: &Option<Spanned<String>>,
        default: QueueOverflow,
    ) -> QueueOverflow {
        let Some(value) = value else { return default };
        match value.get_ref().as_str() {
            "backpressure" => QueueOverflow::Backpressure,
            "drop" => QueueOverflow::Drop,
            other => {
                self.error(
                    Some(value.span()),
                    format!(
                        "limits.queue_overflow must be \"backpressure\" or \"drop\", not {other:?}"
                    ),
                );
                default
            }
        }
    }

    fn auth(&mut self, file: &ConfigFile) -> AuthConfig {
        let users = &file.auth.users;
        let config = AuthConfig {
            allow_anonymous: Self::bool(&file.auth.allow_anonymous, false),
            vhost_in_username: Self::bool(&file.auth.vhost_in_username, true),
            users: users
                .iter()
                .map(|user| {
                    let user = user.get_ref();
                    UserConfig {
                        name: user.name.get_ref().clone(),
                        password_hash: user.password_hash.get_ref().clone(),
                        loopback_only: Self::bool(&user.loopback_only, false),
                    }
                })
                .collect(),
        };
        // The auth crate owns the rules (so the broker enforces the same ones); here they
        // only get a position.
        for problem in config.validate() {
            let entry: Option<&UserEntry> = problem
                .user_index()
                .and_then(|i| users.get(i))
                .map(Spanned::get_ref);
            let span = entry.map(|entry| match problem {
                AuthConfigError::InvalidPasswordHash { .. } => entry.password_hash.span(),
                _ => entry.name.span(),
            });
            self.error(span, format!("auth.users: {problem}"));
        }
        config
    }
}

/// Checks every value; returns the settings, or every problem in file order.
pub(super) fn resolve(file: &ConfigFile, source: &str) -> Result<Settings, Vec<Problem>> {
    let mut resolver = Resolver {
        source,
        problems: Vec::new(),
    };
    let mut settings = Settings::default();
    resolver.server(file, &mut settings);
    if let Some(listen) = &file.mqtt.listen {
        settings.mqtt_listen = resolver.listen(listen);
    }
    let default = BrokerConfig::default();
    settings.broker = BrokerConfig {
        mqtt: resolver.mqtt(file, &default.mqtt),
        limits: resolver.limits(file, &default.limits),
    };
    settings.auth = resolver.auth(file);
    settings.jwt = resolver.jwt(file);
    settings.auth_hook = resolver.auth_hook(file);
    resolver.network(file, &mut settings);
    resolver.jwt_cookie(file, &mut settings);
    resolver.management(file, &mut settings);

    if resolver.problems.is_empty() {
        return Ok(settings);
    }
    // Stable sort: file order, positionless problems last.
    resolver
        .problems
        .sort_by_key(|(location, _)| location.map_or((usize::MAX, 0), |l| (l.line, l.column)));
    Err(resolver
        .problems
        .into_iter()
        .map(|(location, message)| Problem { location, message })
        .collect())
}
