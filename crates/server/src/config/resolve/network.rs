//! Resolution of the listener sections beyond MQTT/TCP: `[websocket]`, `[tls]`, `[proxy]`,
//! `mqtt.proxy_protocol` and every listener's default vhost (`mqtt.vhost`, `tls.vhost`,
//! `websocket.vhost` and per-listener `vhost`). Certificate files are loaded here too, so that
//! `check-config` reports an unreadable or mismatched certificate before `serve` would.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ferrymq_transport::proxy::{IpNet, TrustedProxies};
use ferrymq_transport::tls::{CertUsername, ClientAuth, TlsSettings, check_tls_settings};
use ferrymq_transport::ws::{OriginPattern, handshake::HEALTH_PATH};
use ferrymq_transport::{ProxyOptions, WsConfig};
use toml::Spanned;

use super::super::file::{ConfigFile, ProxySection, TlsSection, WebSocketSection, WsListenEntry};
use super::super::{Settings, WsListener};
use super::Resolver;

/// Default `tls.reload_interval_secs`.
pub(crate) const DEFAULT_TLS_RELOAD_SECS: u64 = 5;

impl Resolver<'_> {
    pub(super) fn network(&mut self, file: &ConfigFile, settings: &mut Settings) {
        let trusted = Arc::new(self.trusted(&file.proxy));
        let mqtt_proxy =
            self.proxy_flag(&file.mqtt.proxy_protocol, "mqtt.proxy_protocol", &trusted);
        settings.mqtt_proxy = ProxyOptions {
            proxy_protocol: mqtt_proxy,
            trusted: Arc::clone(&trusted),
        };
        settings.mqtt_vhost = self.vhost(&file.mqtt.vhost, "mqtt.vhost");
        let default_after = settings
            .mqtt_hibernate_after
            .map_or(0, |after| after.as_secs());
        let after = self.int(
            &file.mqtt.hibernate_after_secs,
            "mqtt.hibernate_after_secs",
            (0, 86_400),
            default_after,
        );
        settings.mqtt_hibernate_after = (after != 0).then(|| Duration::from_secs(after));
        let ws = &file.websocket;
        let defaults = self.ws_defaults(ws, &trusted);
        if let Some(listen) = &ws.listen {
            settings.websocket = self.ws_listeners(listen, "websocket.listen", &defaults);
        } else {
            settings.websocket = relisten(&settings.websocket, &defaults);
        }
        if let Some(listen) = &ws.tls_listen {
            settings.websocket_tls = self.ws_listeners(listen, "websocket.tls_listen", &defaults);
        } else {
            settings.websocket_tls = relisten(&settings.websocket_tls, &defaults);
        }
        settings.websocket_defaults = defaults;
        self.tls(&file.tls, settings, &trusted);
        settings.trusted_proxies = trusted;
    }

    fn trusted(&mut self, proxy: &ProxySection) -> TrustedProxies {
        let Some(list) = &proxy.trusted else {
            return TrustedProxies::default();
        };
        let mut nets = Vec::new();
        for entry in list.get_ref() {
            match entry.get_ref().parse::<IpNet>() {
                Ok(net) => nets.push(net),
                Err(message) => self.error(Some(entry.span()), format!("proxy.trusted: {message}")),
            }
        }
        TrustedProxies::new(nets)
    }

    /// A `proxy_protocol` switch: turning it on with nobody trusted would refuse everyone.
    fn proxy_flag(
        &mut self,
        value: &Option<Spanned<bool>>,
        key: &str,
        trusted: &TrustedProxies,
    ) -> bool {
        let on = Self::bool(value, false);
        if on && trusted.is_empty() {
            self.error(
                value.as_ref().map(Spanned::span),
                format!("{key} is true but proxy.trusted is empty: list the proxies' addresses, or every connection would be refused"),
            );
        }
        on
    }

    /// A listener's default vhost. `/` (the default) resolves to `None`, so that a file
    /// spelling out the default resolves to the same settings as one that does not.
    fn vhost(&mut self, value: &Option<Spanned<String>>, key: &str) -> Option<Arc<str>> {
        let value = value.as_ref()?;
        let name = value.get_ref();
        if name.is_empty() {
            self.error(
                Some(value.span()),
                format!("{key} must not be empty; the default vhost is \"/\""),
            );
            return None;
        }
        (name != ferrymq_auth::DEFAULT_VHOST).then(|| Arc::from(name.as_str()))
    }

    fn grace(&mut self, value: &Option<Spanned<f64>>, key: &str) -> Option<f32> {
        let grace = value.as_ref()?;
        let n = *grace.get_ref();
        if n.is_finite() && (1.0..=1000.0).contains(&n) {
            return Some(n as f32);
        }
        self.error(
            Some(grace.span()),
            format!("{key} must be a number from 1.0 to 1000.0, not {n}"),
        );
        None
    }

    fn paths(&mut self, value: &Spanned<Vec<Spanned<String>>>, key: &str) -> Vec<String> {
        let mut seen = HashSet::new();
        let mut paths = Vec::new();
        for path in value.get_ref() {
            let text = path.get_ref();
            let problem = if !text.starts_with('/') {
                Some(format!("{key}: {text:?} must start with '/'"))
            } else if text.contains(['?', '#', ' ']) {
                Some(format!(
                    "{key}: {text:?} must be a plain path (no query, fragment or space)"
                ))
            } else if text == HEALTH_PATH {
                Some(format!(
                    "{key}: {HEALTH_PATH} is the health check and cannot serve MQTT"
                ))
            } else if !seen.insert(text.clone()) {
                Some(format!("{key}: {text:?} is listed twice"))
            } else {
                None
            };
            match problem {
                Some(message) => self.error(Some(path.span()), message),
                None => paths.push(text.clone()),
            }
        }
        if paths.is_empty() && value.get_ref().is_empty() {
            self.error(
                Some(value.span()),
                format!("{key} must list at least one path, such as \"/mqtt\""),
            );
        }
        paths
    }

    fn ws_defaults(&mut self, ws: &WebSocketSection, trusted: &Arc<TrustedProxies>) -> WsConfig {
        let default = WsConfig::default();
        let paths = match &ws.paths {
            Some(paths) => self.paths(paths, "websocket.paths"),
            None => default.paths,
        };
        let mut allowed_origins = Vec::new();
        if let Some(origins) = &ws.allowed_origins {
            for origin in origins.get_ref() {
                match origin.get_ref().parse::<OriginPattern>() {
                    Ok(pattern) => allowed_origins.push(pattern),
                    Err(message) => self.error(
                        Some(origin.span()),
                        format!("websocket.allowed_origins: {message}"),
                    ),
                }
            }
        }
        let max_header_bytes = self.int(
            &ws.max_header_bytes,
            "websocket.max_header_bytes",
            (1024, 1024 * 1024),
            default.max_header_bytes,
        );
        let handshake = self.int(
            &ws.handshake_timeout_secs,
            "websocket.handshake_timeout_secs",
            (1, 3600),
            default.handshake_timeout.as_secs(),
        );
        let ping = self.int(
            &ws.ping_interval_secs,
            "websocket.ping_interval_secs",
            (0, 86_400),
            default.ping_interval.map_or(0, |d| d.as_secs()),
        );
        let hibernate = self.int(
            &ws.hibernate_after_secs,
            "websocket.hibernate_after_secs",
            (0, 86_400),
            default.hibernate_after.map_or(0, |d| d.as_secs()),
        );
        WsConfig {
            paths,
            require_subprotocol: Self::bool(&ws.require_subprotocol, default.require_subprotocol),
            allowed_origins,
            allow_missing_origin: Self::bool(
                &ws.allow_missing_origin,
                default.allow_missing_origin,
            ),
            max_header_bytes,
            handshake_timeout: Duration::from_secs(handshake),
            ping_interval: (ping > 0).then(|| Duration::from_secs(ping)),
            hibernate_after: (hibernate > 0).then(|| Duration::from_secs(hibernate)),
            keep_alive_grace: self.grace(&ws.keep_alive_grace, "websocket.keep_alive_grace"),
            proxy: ProxyOptions {
                proxy_protocol: self.proxy_flag(
                    &ws.proxy_protocol,
                    "websocket.proxy_protocol",
                    trusted,
                ),
                trusted: Arc::clone(trusted),
            },
            http2: Self::bool(&ws.http2, default.http2),
            permessage_deflate: Self::bool(&ws.permessage_deflate, default.permessage_deflate),
            vhost: self.vhost(&ws.vhost, "websocket.vhost"),
            // From `[auth.jwt] cookie`, set once JWT is resolved (`Resolver::jwt_cookie`).
            token_cookie: None,
        }
    }

    fn ws_listeners(
        &mut self,
        listen: &Spanned<Vec<Spanned<WsListenEntry>>>,
        key: &str,
        defaults: &WsConfig,
    ) -> Vec<WsListener> {
        let mut seen = HashSet::new();
        let mut listeners = Vec::new();
        for entry in listen.get_ref() {
            let (text, span, table) = match entry.get_ref() {
                WsListenEntry::Address(addr) => (addr.as_str(), entry.span(), None),
                WsListenEntry::Table(table) => (
                    table.address.get_ref().as_str(),
                    table.address.span(),
                    Some(table),
                ),
            };
            let Some(address) = self.address(text, span, key, &mut seen) else {
                continue;
            };
            let mut config = defaults.clone();
            if let Some(table) = table {
                if let Some(paths) = &table.paths {
                    config.paths = self.paths(paths, &format!("{key}.paths"));
                }
                if table.proxy_protocol.is_some() {
                    let trusted = Arc::clone(&defaults.proxy.trusted);
                    config.proxy.proxy_protocol = self.proxy_flag(
                        &table.proxy_protocol,
                        &format!("{key}.proxy_protocol"),
                        &trusted,
                    );
                }
                if let Some(grace) =
                    self.grace(&table.keep_alive_grace, &format!("{key}.keep_alive_grace"))
                {
                    config.keep_alive_grace = Some(grace);
                }
                if table.vhost.is_some() {
                    config.vhost = self.vhost(&table.vhost, &format!("{key}.vhost"));
                }
            }
            listeners.push(WsListener { address, config });
        }
        listeners
    }

    fn address(
        &mut self,
        text: &str,
        span: Range<usize>,
        key: &str,
        seen: &mut HashSet<SocketAddr>,
    ) -> Option<SocketAddr> {
        match text.trim().parse::<SocketAddr>() {
            Ok(addr) if !seen.insert(addr) => {
                self.error(Some(span), format!("{key}: {addr} is listed twice"));
                None
            }
            Ok(addr) => Some(addr),
            Err(_) => {
                self.error(
                    Some(span),
                    format!("{key}: {text:?} is not an IP:PORT address (such as \"0.0.0.0:15675\" or \"[::]:15675\")"),
                );
                None
            }
        }
    }

    fn tls(&mut self, tls: &TlsSection, settings: &mut Settings, trusted: &Arc<TrustedProxies>) {
        if let Some(listen) = &tls.listen {
            settings.tls_listen = self.listen_addrs(listen, "tls.listen");
        }
        settings.tls_proxy = ProxyOptions {
            proxy_protocol: self.proxy_flag(&tls.proxy_protocol, "tls.proxy_protocol", trusted),
            trusted: Arc::clone(trusted),
        };
        settings.tls_vhost = self.vhost(&tls.vhost, "tls.vhost");
        let client_auth = tls.client_auth.as_ref().and_then(|value| {
            match value.get_ref().as_str() {
                "none" => Some(ClientAuth::None),
                "optional" => Some(ClientAuth::Optional),
                "required" => Some(ClientAuth::Required),
                other => {
                    self.error(Some(value.span()), format!("tls.client_auth must be \"none\", \"optional\" or \"required\", not {other:?}"));
                    None
                }
            }
        });
        let username_from = tls.username_from.as_ref().map_or(CertUsername::None, |value| {
            match value.get_ref().as_str() {
                "none" => CertUsername::None,
                "cn" => CertUsername::CommonName,
                "san_dns" => CertUsername::SanDns,
                "san_email" => CertUsername::SanEmail,
                "san_uri" => CertUsername::SanUri,
                other => {
                    self.error(Some(value.span()), format!("tls.username_from must be \"none\", \"cn\", \"san_dns\", \"san_email\" or \"san_uri\", not {other:?}"));
                    CertUsername::None
                }
            }
        });
        let reload = self.int(
            &tls.reload_interval_secs,
            "tls.reload_interval_secs",
            (0, 86_400),
            DEFAULT_TLS_RELOAD_SECS,
        );
        let path = |value: &Option<Spanned<String>>| {
            value
                .as_ref()
                .filter(|v| !v.get_ref().trim().is_empty())
                .map(|v| (PathBuf::from(v.get_ref()), v.span()))
        };
        let client_ca = path(&tls.client_ca_file);
        // A CA file means "verify client certificates": optional unless said otherwise.
        let client_auth = match (client_auth, &client_ca) {
            (Some(auth), Some(_)) => auth,
            (None, Some(_)) => ClientAuth::Optional,
            (Some(ClientAuth::None) | None, None) => ClientAuth::None,
            (Some(_), None) => {
                self.error(
                    tls.client_auth.as_ref().map(Spanned::span),
                    "tls.client_auth needs tls.client_ca_file, the CA that client certificates must chain to".to_owned(),
                );
                ClientAuth::None
            }
        };
        if username_from != CertUsername::None && client_auth == ClientAuth::None {
            self.error(
                tls.username_from.as_ref().map(Spanned::span),
                "tls.username_from needs client certificates: set tls.client_ca_file".to_owned(),
            );
        }
        let (cert, key) = match (path(&tls.cert_file), path(&tls.key_file)) {
            (Some(cert), Some(key)) => (cert, key),
            (None, None) => {
                if let Some((_, span)) = client_ca {
                    self.error(Some(span), "tls.client_ca_file is set but TLS is off: set tls.cert_file and tls.key_file".to_owned());
                }
                return;
            }
            (Some((_, span)), None) | (None, Some((_, span))) => {
                self.error(
                    Some(span),
                    "tls.cert_file and tls.key_file must be set together".to_owned(),
                );
                return;
            }
        };
        let tls_settings = TlsSettings {
            cert_file: cert.0,
            key_file: key.0,
            client_ca_file: client_ca.map(|(p, _)| p),
            client_auth,
            username_from,
            reload_interval: (reload > 0).then(|| Duration::from_secs(reload)),
        };
        if let Err(error) = check_tls_settings(&tls_settings) {
            self.error(Some(cert.1), format!("tls: {error}"));
        }
        settings.tls = Some(tls_settings);
    }
}

/// The default listeners again, with the section's settings.
fn relisten(listeners: &[WsListener], defaults: &WsConfig) -> Vec<WsListener> {
    listeners
        .iter()
        .map(|l| WsListener {
            address: l.address,
            config: defaults.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests;
