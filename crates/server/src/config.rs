//! The config file, its validation, and the resolved [`Settings`] the broker runs with.
//!
//! Precedence, highest first: command-line flag, `FERRYMQ_*` environment variable, config
//! file, built-in default. clap merges the first two into [`Overrides`]; this module reads the
//! file, checks every value, and applies the overrides on top.
//!
//! Errors are collected rather than stopping at the first, and each carries the file
//! position of the offending value, so that `ferrymq check-config` can list every problem as
//! `FILE:LINE:COLUMN: message`.

mod file;
mod resolve;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ferrymq_auth::{AuthConfig, JwtConfig};
use ferrymq_broker::AuthHookConfig;
use ferrymq_broker::config::BrokerConfig;
use ferrymq_transport::proxy::TrustedProxies;
use ferrymq_transport::tls::TlsSettings;
use ferrymq_transport::{ProxyOptions, WsConfig};

/// Everything the running server needs, validated and with defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Protocol behaviour and limits.
    pub broker: BrokerConfig,
    /// Users and the anonymous rule.
    pub auth: AuthConfig,
    /// `[auth.jwt]`: token verification; `None`: JWT authentication off. Key files were
    /// readable and valid when the settings were resolved.
    pub jwt: Option<JwtConfig>,
    /// `[auth.http]`: the HTTP authentication hook; `None`: off. Checked
    /// ([`AuthHookConfig::check`]) when the settings were resolved.
    pub auth_hook: Option<AuthHookConfig>,
    /// MQTT-over-TCP listen addresses.
    pub mqtt_listen: Vec<SocketAddr>,
    /// The MQTT/TCP listeners' default vhost (`mqtt.vhost`); `None`: `/`.
    pub mqtt_vhost: Option<Arc<str>>,
    /// MQTT/TCP connections quiet this long sleep without a task of their own
    /// (`mqtt.hibernate_after_secs`); `None`: never.
    pub mqtt_hibernate_after: Option<Duration>,
    /// Where the broker keeps its data.
    pub data_dir: PathBuf,
    /// A `tracing` filter (already checked to parse).
    pub log_level: String,
    /// How long connections get to flush their last writes on shutdown.
    pub shutdown_grace: Duration,
    /// PROXY protocol on the MQTT/TCP listeners.
    pub mqtt_proxy: ProxyOptions,
    /// MQTT-over-WebSocket listeners.
    pub websocket: Vec<WsListener>,
    /// MQTT-over-WebSocket-over-TLS listeners (started only when `tls` is set).
    pub websocket_tls: Vec<WsListener>,
    /// The `[websocket]` settings, for listeners given by `--ws-listen`.
    pub websocket_defaults: WsConfig,
    /// Certificate and client-certificate settings; `None`: no TLS listener starts.
    pub tls: Option<TlsSettings>,
    /// MQTT-over-TLS listen addresses (started only when `tls` is set).
    pub tls_listen: Vec<SocketAddr>,
    /// PROXY protocol on the MQTT/TLS listeners.
    pub tls_proxy: ProxyOptions,
    /// The MQTT/TLS listeners' default vhost (`tls.vhost`); `None`: `/`.
    pub tls_vhost: Option<Arc<str>>,
    /// Proxies whose PROXY headers and forwarding headers are believed.
    pub trusted_proxies: Arc<TrustedProxies>,
    /// The management HTTP API and `/metrics`.
    pub management: ManagementSettings,
}

/// `[management]`: the management HTTP API, `/metrics` included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagementSettings {
    /// Serve the API at all.
    pub enabled: bool,
    /// Where (RabbitMQ's port 15672 by default); empty: nowhere.
    pub listen: Vec<SocketAddr>,
    /// `/metrics` needs a user tagged administrator or monitoring.
    pub metrics_auth: bool,
}

impl Default for ManagementSettings {
    fn default() -> Self {
        ManagementSettings {
            enabled: true,
            // management.listen = ["0.0.0.0:15672"] (RabbitMQ's management port)
            listen: vec![SocketAddr::from(([0, 0, 0, 0], 15672))],
            metrics_auth: false,
        }
    }
}

/// One WebSocket (or WSS) listener.
#[derive(Debug, Clone, PartialEq)]
pub struct WsListener {
    pub address: SocketAddr,
    pub config: WsConfig,
}

/// Default `server.data_dir`.
pub const DEFAULT_DATA_DIR: &str = "./data";
/// Default `server.log_level`.
pub const DEFAULT_LOG_LEVEL: &str = "info";
/// Default `server.shutdown_grace_secs`.
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 5;
/// Default `mqtt.hibernate_after_secs`: long enough that a client talking every few
/// seconds never sleeps (waking costs a task and four `epoll_ctl` calls), short enough that
/// the idle majority of a device fleet sleeps within seconds of its last packet.
pub const DEFAULT_HIBERNATE_AFTER_SECS: u64 = 5;

/// The built-in defaults: the same values as a config file with no keys (a test checks that
/// `ferrymq.example.toml` resolves to them too).
impl Default for Settings {
    fn default() -> Self {
        Settings {
            broker: BrokerConfig::default(),
            auth: AuthConfig::default(),
            jwt: None,
            auth_hook: None,
            // mqtt.listen = ["0.0.0.0:1883"]
            mqtt_listen: vec![SocketAddr::from(([0, 0, 0, 0], 1883))],
            mqtt_vhost: None,
            // mqtt.hibernate_after_secs = 5
            mqtt_hibernate_after: Some(Duration::from_secs(DEFAULT_HIBERNATE_AFTER_SECS)),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            log_level: DEFAULT_LOG_LEVEL.to_owned(),
            shutdown_grace: Duration::from_secs(DEFAULT_SHUTDOWN_GRACE_SECS),
            mqtt_proxy: ProxyOptions::default(),
            // websocket.listen = ["0.0.0.0:15675"] (RabbitMQ Web-MQTT's port)
            websocket: vec![WsListener {
                address: SocketAddr::from(([0, 0, 0, 0], 15675)),
                config: WsConfig::default(),
            }],
            // websocket.tls_listen = ["0.0.0.0:15676"]
            websocket_tls: vec![WsListener {
                address: SocketAddr::from(([0, 0, 0, 0], 15676)),
                config: WsConfig::default(),
            }],
            websocket_defaults: WsConfig::default(),
            tls: None,
            // tls.listen = ["0.0.0.0:8883"]
            tls_listen: vec![SocketAddr::from(([0, 0, 0, 0], 8883))],
            tls_proxy: ProxyOptions::default(),
            tls_vhost: None,
            trusted_proxies: Arc::default(),
            management: ManagementSettings::default(),
        }
    }
}

/// Values from command-line flags or environment variables; `None` leaves the file's value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Replaces `mqtt.listen` entirely.
    pub mqtt_listen: Option<Vec<SocketAddr>>,
    /// Replaces the addresses of `websocket.listen`; the listeners get the `[websocket]`
    /// section's settings (paths and all).
    pub ws_listen: Option<Vec<SocketAddr>>,
    /// Replaces `server.data_dir`.
    pub data_dir: Option<PathBuf>,
    /// Replaces `auth.allow_anonymous`.
    pub allow_anonymous: Option<bool>,
    /// Replaces `server.log_level` (already validated by [`check_log_level`]).
    pub log_level: Option<String>,
    /// Replaces `auth.http.url`, or turns the hook on with the defaults when the file has no
    /// `[auth.http]` (already checked to be an http:// or https:// URL).
    pub auth_http_url: Option<String>,
    /// Replaces `management.listen`.
    pub management_listen: Option<Vec<SocketAddr>>,
    /// Replaces `management.enabled`.
    pub management_enabled: Option<bool>,
}

impl Settings {
    /// Reads and resolves the config file at `path` (the built-in defaults when `None`),
    /// then applies `overrides`.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Settings, ConfigError> {
        let mut settings = match path {
            Some(path) => load_file(path)?,
            None => Settings::default(),
        };
        settings.apply(overrides);
        Ok(settings)
    }

    /// Applies command-line / environment overrides on top of file values.
    pub fn apply(&mut self, overrides: &Overrides) {
        if let Some(listen) = &overrides.mqtt_listen {
            self.mqtt_listen.clone_from(listen);
        }
        if let Some(addresses) = &overrides.ws_listen {
            self.websocket = addresses
                .iter()
                .map(|&address| WsListener {
                    address,
                    config: self.websocket_defaults.clone(),
                })
                .collect();
        }
        if let Some(data_dir) = &overrides.data_dir {
            self.data_dir.clone_from(data_dir);
        }
        if let Some(allow_anonymous) = overrides.allow_anonymous {
            self.auth.allow_anonymous = allow_anonymous;
        }
        if let Some(log_level) = &overrides.log_level {
            self.log_level.clone_from(log_level);
        }
        if let Some(url) = &overrides.auth_http_url {
            match &mut self.auth_hook {
                Some(hook) => hook.url.clone_from(url),
                None => self.auth_hook = Some(AuthHookConfig::with_url(url.clone())),
            }
        }
        if let Some(listen) = &overrides.management_listen {
            self.management.listen.clone_from(listen);
        }
        if let Some(enabled) = overrides.management_enabled {
            self.management.enabled = enabled;
        }
    }
}

/// Reads, parses and validates one config file.
pub fn load_file(path: &Path) -> Result<Settings, ConfigError> {
    let name = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|err| ConfigError {
        file: name.clone(),
        problems: vec![Problem {
            location: None,
            message: format!("cannot read the file: {err}"),
        }],
    })?;
    parse(&name, &source)
}

/// Parses and validates config text; `name` is what error messages call the file.
pub fn parse(name: &str, source: &str) -> Result<Settings, ConfigError> {
    let fail = |problems| ConfigError {
        file: name.to_owned(),
        problems,
    };
    let file: file::ConfigFile = toml::from_str(source).map_err(|err| {
        let offset = err.span().map(|span| span.start);
        fail(vec![Problem {
            location: offset.map(|offset| Location::of(source, offset)),
            message: describe_toml_error(err.message(), source, offset),
        }])
    })?;
    resolve::resolve(&file, source).map_err(fail)
}

/// Makes serde's type errors speak TOML and name the key: `invalid type: string "x",
/// expected i64` becomes `mqtt.maximum_qos: invalid type: string "x", expected an integer`.
fn describe_toml_error(message: &str, source: &str, offset: Option<usize>) -> String {
    let message = message
        .trim_end()
        .replace("expected i64", "expected an integer")
        .replace("expected f64", "expected a number")
        .replace("expected a boolean", "expected true or false");
    match offset.and_then(|offset| key_at(source, offset)) {
        Some(key) if message.starts_with("invalid ") => format!("{key}: {message}"),
        _ => message,
    }
}

/// The dotted name of the key whose value starts at `offset`, found from the `key =` before
/// it on the same line and the nearest table header above. A best effort for messages only:
/// `None` when the line does not look like `key = value` (e.g. inside a multi-line array).
fn key_at(source: &str, offset: usize) -> Option<String> {
    let offset = (0..=offset.min(source.len()))
        .rev()
        .find(|&i| source.is_char_boundary(i))?;
    let line_start = source[..offset].rfind('\n').map_or(0, |i| i + 1);
    let (key, _) = source[line_start..offset].split_once('=')?;
    let key = key.trim();
    let bare = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if key.is_empty() || !key.chars().all(bare) {
        return None;
    }
    let table = source[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| line.starts_with('['))
        .and_then(|header| header.trim_start_matches('[').split(']').next())
        .map(str::trim)
        .filter(|table| !table.is_empty());
    Some(match table {
        Some(table) => format!("{table}.{key}"),
        None => key.to_owned(),
    })
}

/// Checks a `tracing` filter such as `info` or `info,ferrymq_broker=debug`.
///
/// Stricter than `EnvFilter` on purpose: a bare word must be a level, because `EnvFilter`
/// would read a misspelt level (`inof`) as "everything from the module `inof`" and log
/// nothing else.
pub fn check_log_level(filter: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    if filter.trim().is_empty() {
        return Err("the log level is empty; use error, warn, info, debug or trace".to_owned());
    }
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let bare = !directive.contains(['=', '[', ':']);
        if bare && !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(directive)) {
            return Err(format!(
                "unknown log level {directive:?}; use error, warn, info, debug or trace, or target=level"
            ));
        }
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(filter)
        .map(drop)
        .map_err(|err| format!("invalid log filter {filter:?}: {err}"))
}

/// A 1-based position in a config file. Columns count characters, not bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    /// Line number, from 1.
    pub line: usize,
    /// Column number, from 1.
    pub column: usize,
}

impl Location {
    /// The position of byte `offset` in `source` (clamped to the text).
    pub fn of(source: &str, offset: usize) -> Location {
        let mut offset = offset.min(source.len());
        while !source.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &source[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Location {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

/// One thing wrong with a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where, when it can be pinned to a place.
    pub location: Option<Location>,
    /// What is wrong, for a human.
    pub message: String,
}

/// Every problem found in one config file. `Display` prints one `FILE:LINE:COLUMN: message`
/// line per problem (`FILE: message` when there is no position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file's name as the user gave it.
    pub file: String,
    /// In file order; never empty.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match problem.location {
                Some(Location { line, column }) => {
                    write!(f, "{}:{line}:{column}: {}", self.file, problem.message)?
                }
                None => write!(f, "{}: {}", self.file, problem.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}
