//! Resolution of `[auth.jwt]`: algorithms, key files and claim names into a [`JwtConfig`].
//! Key files are read and parsed here (through [`JwtValidator::new`], the check `serve`
//! runs), so that `check-config` reports an unreadable or invalid key at its entry.
//!
//! HMAC secrets are only accepted from files (`secret_file`): a config file gets copied,
//! committed and pasted into tickets, a secret should not travel with it.

use std::path::{Path, PathBuf};

use ferrymq_auth::{JwtAlgorithm, JwtConfig, JwtConfigError, JwtKey, JwtValidator};
use toml::Spanned;

use super::super::Settings;
use super::super::file::{ConfigFile, JwtKeyEntry, JwtSection};
use super::Resolver;

impl Resolver<'_> {
    pub(super) fn jwt(&mut self, file: &ConfigFile) -> Option<JwtConfig> {
        let spanned = file.auth.jwt.as_ref()?;
        let section = spanned.get_ref();
        let problems_before = self.problems.len();
        let defaults = JwtConfig::default();
        let text = |value: &Option<Spanned<String>>, default: &str| {
            value
                .as_ref()
                .map_or_else(|| default.to_owned(), |v| v.get_ref().clone())
        };
        let config = JwtConfig {
            algorithms: self.jwt_algorithms(section),
            keys: section
                .keys
                .iter()
                .filter_map(|entry| self.jwt_key(entry))
                .collect(),
            audience: section.audience.as_ref().map(|v| v.get_ref().clone()),
            issuer: section.issuer.as_ref().map(|v| v.get_ref().clone()),
            leeway_secs: self.int(
                &section.leeway_secs,
                "auth.jwt.leeway_secs",
                (0, 3600),
                defaults.leeway_secs,
            ),
            username_claim: text(&section.username_claim, &defaults.username_claim),
            vhost_claim: text(&section.vhost_claim, &defaults.vhost_claim),
            scope_claim: text(&section.scope_claim, &defaults.scope_claim),
            scope_prefix: text(&section.scope_prefix, &defaults.scope_prefix),
            require_exp: Self::bool(&section.require_exp, defaults.require_exp),
        };
        if self.problems.len() == problems_before
            && let Err(problem) = JwtValidator::new(config.clone())
        {
            let span = self.jwt_problem_span(spanned, &problem);
            self.error(Some(span), format!("auth.jwt: {problem}"));
        }
        Some(config)
    }

    /// `auth.jwt.cookie`: handed to every WebSocket listener, which takes the token from
    /// that cookie for a CONNECT without a password. Browsers attach cookies to WebSockets
    /// any page opens, so every WebSocket listener must have an Origin allow-list: without
    /// one, any site a user visits could connect as that user.
    pub(super) fn jwt_cookie(&mut self, file: &ConfigFile, settings: &mut Settings) {
        let Some(cookie) = file
            .auth
            .jwt
            .as_ref()
            .and_then(|jwt| jwt.get_ref().cookie.as_ref())
        else {
            return;
        };
        let name = cookie.get_ref();
        // A cookie name is an RFC 6265 token: visible ASCII without separators.
        let is_token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
        if !is_token {
            self.error(
                Some(cookie.span()),
                format!("auth.jwt.cookie: {name:?} is not a cookie name (visible ASCII, no separators such as ; = , or spaces)"),
            );
            return;
        }
        let listeners = settings
            .websocket
            .iter_mut()
            .chain(settings.websocket_tls.iter_mut())
            .map(|l| &mut l.config)
            .chain(std::iter::once(&mut settings.websocket_defaults));
        let mut open = false;
        for config in listeners {
            open |= config.allowed_origins.is_empty();
            config.token_cookie = Some(name.clone());
        }
        if open {
            self.error(
                Some(cookie.span()),
                "auth.jwt.cookie needs websocket.allowed_origins: a browser sends the cookie with WebSockets that any site opens, so only pages of allowed origins may use it".to_owned(),
            );
        }
    }

    fn jwt_algorithms(&mut self, section: &JwtSection) -> Vec<JwtAlgorithm> {
        let Some(list) = &section.algorithms else {
            return Vec::new();
        };
        let mut algorithms = Vec::new();
        for name in list.get_ref() {
            let algorithm = match name.get_ref().as_str() {
                "HS256" => JwtAlgorithm::HS256,
                "RS256" => JwtAlgorithm::RS256,
                "ES256" => JwtAlgorithm::ES256,
                other => {
                    self.error(
                        Some(name.span()),
                        format!(
                            "auth.jwt.algorithms: unknown algorithm {other:?} (expected HS256, RS256 or ES256)"
                        ),
                    );
                    continue;
                }
            };
            if !algorithms.contains(&algorithm) {
                algorithms.push(algorithm);
            }
        }
        algorithms
    }

    fn jwt_key(&mut self, spanned: &Spanned<JwtKeyEntry>) -> Option<JwtKey> {
        let entry = spanned.get_ref();
        if let Some(secret) = &entry.secret {
            self.error(
                Some(secret.span()),
                "auth.jwt.keys: inline secrets are not accepted; write the secret to a file readable only by FerryMQ and name it in secret_file".to_owned(),
            );
            return None;
        }
        let kid = entry.kid.as_ref().map(|k| k.get_ref().clone());
        let sources = [&entry.secret_file, &entry.pem_file, &entry.jwks_file];
        if sources.iter().filter(|s| s.is_some()).count() != 1 {
            self.error(
                Some(spanned.span()),
                "auth.jwt.keys: each key needs exactly one of secret_file, pem_file, jwks_file"
                    .to_owned(),
            );
            return None;
        }
        if let Some(path) = &entry.secret_file {
            let secret = match std::fs::read(path.get_ref()) {
                Ok(secret) => secret,
                Err(error) => {
                    self.error(
                        Some(path.span()),
                        format!(
                            "auth.jwt.keys: cannot read secret_file {:?}: {error}",
                            path.get_ref()
                        ),
                    );
                    return None;
                }
            };
            let secret = strip_newline(secret);
            if secret.is_empty() {
                self.error(
                    Some(path.span()),
                    format!("auth.jwt.keys: secret_file {:?} is empty", path.get_ref()),
                );
                return None;
            }
            return Some(JwtKey::Secret { secret, kid });
        }
        if let Some(path) = &entry.pem_file {
            return Some(JwtKey::PemFile {
                path: PathBuf::from(path.get_ref()),
                kid,
            });
        }
        if entry.kid.is_some() {
            self.error(
                entry.kid.as_ref().map(Spanned::span),
                "auth.jwt.keys: a JWKS file's keys carry their own kid".to_owned(),
            );
        }
        let path = entry.jwks_file.as_ref()?;
        Some(JwtKey::JwksFile {
            path: PathBuf::from(path.get_ref()),
        })
    }

    /// The key entry a key-file problem is about, else the algorithms, else the section.
    fn jwt_problem_span(
        &self,
        section: &Spanned<JwtSection>,
        problem: &JwtConfigError,
    ) -> std::ops::Range<usize> {
        let section_ref = section.get_ref();
        let files = || {
            section_ref
                .keys
                .iter()
                .flat_map(|k| [&k.get_ref().pem_file, &k.get_ref().jwks_file])
                .flatten()
        };
        let found = match problem {
            JwtConfigError::ReadKey { path, .. } => {
                files().find(|f| Path::new(f.get_ref()) == path)
            }
            JwtConfigError::InvalidKey { what, .. } => {
                files().find(|f| what.contains(f.get_ref().as_str()))
            }
            _ => None,
        };
        if let Some(file) = found {
            return file.span();
        }
        match (problem, &section_ref.algorithms) {
            (JwtConfigError::NoAlgorithms | JwtConfigError::NoKeyFor(_), Some(algorithms)) => {
                algorithms.span()
            }
            _ => section.span(),
        }
    }
}

/// A secret file's bytes without the trailing newline an editor or `echo` adds (JWT
/// secrets, the hook's bearer token).
pub(super) fn strip_newline(mut secret: Vec<u8>) -> Vec<u8> {
    if secret.last() == Some(&b'\n') {
        secret.pop();
        if secret.last() == Some(&b'\r') {
            secret.pop();
        }
    }
    secret
}
