//! Resolution of `[auth.http]`, the HTTP authentication hook, into an [`AuthHookConfig`].
//! The URL, the CA file and the policy are checked here with the broker's own check
//! ([`AuthHookConfig::check`]), so that `check-config` reports what `serve` would refuse, at
//! the offending key.
//!
//! The bearer token is only accepted from a file (`bearer_token_file`), like JWT secrets:
//! config files travel, secrets should not.

use std::path::PathBuf;
use std::time::Duration;

use ferrymq_broker::auth_hook::{
    AuthHookConfig, AuthHookError, BearerToken, DEFAULT_CACHE_MAX_ENTRIES, DEFAULT_CACHE_TTL,
    DEFAULT_DENY_CACHE_TTL, DEFAULT_MAX_CONCURRENT_REQUESTS, DEFAULT_TIMEOUT,
};
use ferrymq_broker::{HookOnError, HookOrder};
use toml::Spanned;

use super::super::file::{ConfigFile, HttpHookSection};
use super::Resolver;
use super::jwt::strip_newline;

/// Longest hook timeout accepted: beyond a minute, clients have given up on their CONNECT.
const MAX_TIMEOUT_MS: i64 = 60_000;
/// A day: longer cache lifetimes would keep revoked credentials working for too long.
const MAX_CACHE_TTL_SECS: i64 = 86_400;

impl Resolver<'_> {
    pub(super) fn auth_hook(&mut self, file: &ConfigFile) -> Option<AuthHookConfig> {
        let spanned = file.auth.http.as_ref()?;
        let section = spanned.get_ref();
        let problems_before = self.problems.len();
        let Some(url) = &section.url else {
            self.error(
                Some(spanned.span()),
                "auth.http: url is required (the hook's http:// or https:// address)".to_owned(),
            );
            return None;
        };
        let config = AuthHookConfig {
            url: url.get_ref().trim().to_owned(),
            ca_file: section.ca_file.as_ref().map(|f| PathBuf::from(f.get_ref())),
            bearer_token: self.bearer_token(section),
            timeout: Duration::from_millis(self.int(
                &section.timeout_ms,
                "auth.http.timeout_ms",
                (1, MAX_TIMEOUT_MS),
                DEFAULT_TIMEOUT.as_millis() as u64,
            )),
            cache_ttl: Duration::from_secs(self.int(
                &section.cache_ttl_secs,
                "auth.http.cache_ttl_secs",
                (0, MAX_CACHE_TTL_SECS),
                DEFAULT_CACHE_TTL.as_secs(),
            )),
            deny_cache_ttl: Duration::from_secs(self.int(
                &section.deny_cache_ttl_secs,
                "auth.http.deny_cache_ttl_secs",
                (0, MAX_CACHE_TTL_SECS),
                DEFAULT_DENY_CACHE_TTL.as_secs(),
            )),
            cache_max_entries: self.int(
                &section.cache_max_entries,
                "auth.http.cache_max_entries",
                (0, 10_000_000),
                DEFAULT_CACHE_MAX_ENTRIES,
            ),
            max_concurrent_requests: self.int(
                &section.max_concurrent_requests,
                "auth.http.max_concurrent_requests",
                (1, 10_000),
                DEFAULT_MAX_CONCURRENT_REQUESTS,
            ),
            order: self.choice(
                &section.order,
                "auth.http.order",
                &[
                    ("internal_first", HookOrder::InternalFirst),
                    ("hook_first", HookOrder::HookFirst),
                ],
            ),
            on_error: self.choice(
                &section.on_error,
                "auth.http.on_error",
                &[
                    ("deny", HookOnError::Deny),
                    ("internal", HookOnError::Internal),
                ],
            ),
        };
        if self.problems.len() == problems_before
            && let Err(problem) = config.check()
        {
            let key = match &problem {
                AuthHookError::InvalidUrl(_) => Some(url),
                AuthHookError::CaFile { .. } | AuthHookError::Tls(_) => section.ca_file.as_ref(),
                AuthHookError::InvalidToken => section.bearer_token_file.as_ref(),
                AuthHookError::FallbackNeedsHookFirst => section.on_error.as_ref(),
                AuthHookError::Random(_) => None,
            };
            let span = key.map_or_else(|| spanned.span(), Spanned::span);
            self.error(Some(span), format!("auth.http: {problem}"));
        }
        Some(config)
    }

    /// One of `choices` by name; the default (the first) when absent or unknown.
    fn choice<T: Copy>(
        &mut self,
        value: &Option<Spanned<String>>,
        key: &str,
        choices: &[(&str, T)],
    ) -> T {
        let default = choices[0].1;
        let Some(value) = value else { return default };
        if let Some((_, choice)) = choices.iter().find(|(name, _)| name == value.get_ref()) {
            return *choice;
        }
        let names: Vec<String> = choices
            .iter()
            .map(|(name, _)| format!("{name:?}"))
            .collect();
        self.error(
            Some(value.span()),
            format!(
                "{key} must be {}, not {:?}",
                names.join(" or "),
                value.get_ref()
            ),
        );
        default
    }

    fn bearer_token(&mut self, section: &HttpHookSection) -> Option<BearerToken> {
        let path = section.bearer_token_file.as_ref()?;
        let token = match std::fs::read(path.get_ref()) {
            Ok(bytes) => strip_newline(bytes),
            Err(error) => {
                self.error(
                    Some(path.span()),
                    format!(
                        "auth.http: cannot read bearer_token_file {:?}: {error}",
                        path.get_ref()
                    ),
                );
                return None;
            }
        };
        match String::from_utf8(token) {
            Ok(token) if !token.is_empty() => Some(BearerToken(token)),
            _ => {
                self.error(
                    Some(path.span()),
                    format!(
                        "auth.http: bearer_token_file {:?} must hold a non-empty text token",
                        path.get_ref()
                    ),
                );
                None
            }
        }
    }
}
