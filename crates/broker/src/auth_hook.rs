//! The HTTP authentication hook's client: one pooled hyper client for every connection,
//! a bound on concurrent requests, a timeout on each, and the answer cache.
//!
//! What is asked and what an answer means belong to `ferrymq_auth::hook`; this module only
//! moves bytes, keeps time and counts. The connection's CONNECT path decides when to ask
//! (`connection/authenticate.rs`). No lock is held across an `.await`: the cache's mutex is
//! taken twice per request, briefly, before and after the exchange.

mod connector;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use ferrymq_auth::hook::{HookCache, HookRequest, HookVerdict, MAX_RESPONSE_BYTES, parse_response};
use ferrymq_auth::{AuthConfigError, HookResponseError};
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, USER_AGENT};
use hyper::{Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::Semaphore;

use crate::metrics::Metrics;
use connector::HookConnector;

/// Default `auth.http.timeout_ms`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(2000);
/// Default `auth.http.cache_ttl_secs`.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);
/// Default `auth.http.deny_cache_ttl_secs`.
pub const DEFAULT_DENY_CACHE_TTL: Duration = Duration::from_secs(10);
/// Default `auth.http.cache_max_entries`.
pub const DEFAULT_CACHE_MAX_ENTRIES: usize = 10_000;
/// Default `auth.http.max_concurrent_requests`.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 64;

/// Idle connections to the hook are closed after this; hooks behind load balancers often
/// drop idle connections after 60 s, and reusing one they already closed costs an error.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Which of the internal database and the hook decides first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HookOrder {
    /// Users the internal database knows (config users, database users, the built-in
    /// guest) are decided by it alone; the hook is asked about the others. Internal users
    /// keep working while the hook is down.
    #[default]
    InternalFirst,
    /// The hook is asked about every user name and password login; the internal database
    /// only decides when the hook cannot (with [`HookOnError::Internal`]).
    HookFirst,
}

/// What happens when the hook cannot answer (timeout, connection refused, a status other
/// than 200, an invalid answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HookOnError {
    /// Refuse the client with Server unavailable (v5 0x88, v3 3), so it retries later.
    #[default]
    Deny,
    /// Let the internal database decide (with [`HookOrder::HookFirst`]).
    Internal,
}

/// A bearer token sent to the hook; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(pub String);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(..)")
    }
}

/// `[auth.http]`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthHookConfig {
    /// Where to POST: `http://` or `https://`, no credentials in it.
    pub url: String,
    /// PEM CA certificates that verify an `https://` hook instead of the webpki roots.
    pub ca_file: Option<PathBuf>,
    /// Sent as `Authorization: Bearer …` so the hook can tell the broker from others.
    pub bearer_token: Option<BearerToken>,
    /// For the whole exchange: waiting for a request slot, connecting, TLS, the answer.
    pub timeout: Duration,
    /// How long an allow is reused (less when it expires sooner); zero: not cached.
    pub cache_ttl: Duration,
    /// How long a deny is reused; zero: not cached.
    pub deny_cache_ttl: Duration,
    /// Most answers remembered; the oldest goes first. Zero: no cache.
    pub cache_max_entries: usize,
    /// Most requests in flight at once; more CONNECTs wait (within their timeout).
    pub max_concurrent_requests: usize,
    /// Who decides first.
    pub order: HookOrder,
    /// What a hook failure means.
    pub on_error: HookOnError,
}

impl AuthHookConfig {
    /// The defaults, with `url`.
    pub fn with_url(url: impl Into<String>) -> AuthHookConfig {
        AuthHookConfig {
            url: url.into(),
            ca_file: None,
            bearer_token: None,
            timeout: DEFAULT_TIMEOUT,
            cache_ttl: DEFAULT_CACHE_TTL,
            deny_cache_ttl: DEFAULT_DENY_CACHE_TTL,
            cache_max_entries: DEFAULT_CACHE_MAX_ENTRIES,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            order: HookOrder::default(),
            on_error: HookOnError::default(),
        }
    }

    /// Checks what [`AuthHook::new`] would refuse, without building a client: the URL, the
    /// CA file, the policy.
    pub fn check(&self) -> Result<(), AuthHookError> {
        self.prepare().map(drop)
    }

    /// The parsed URL, the connector and the `Authorization` header.
    fn prepare(&self) -> Result<(Uri, HookConnector, Option<HeaderValue>), AuthHookError> {
        let uri = parse_url(&self.url)?;
        let connector = HookConnector::new(&uri, self.ca_file.as_deref(), self.timeout)?;
        let authorization = match &self.bearer_token {
            Some(token) => Some(
                HeaderValue::from_str(&format!("Bearer {}", token.0))
                    .map_err(|_| AuthHookError::InvalidToken)?,
            ),
            None => None,
        };
        if self.on_error == HookOnError::Internal && self.order == HookOrder::InternalFirst {
            return Err(AuthHookError::FallbackNeedsHookFirst);
        }
        Ok((uri, connector, authorization))
    }

    /// The URL without its query, for logs (a query may carry a secret).
    pub fn display_url(&self) -> &str {
        self.url.split(['?', '#']).next().unwrap_or_default()
    }
}

/// A hook configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthHookError {
    /// The URL is not an `http://` or `https://` URL with a host, or carries credentials.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// The CA file cannot be read or holds no certificate.
    #[error("cannot use ca_file {path:?}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS: {0}")]
    Tls(String),
    /// The bearer token cannot be a header value.
    #[error("the bearer token must be printable ASCII")]
    InvalidToken,
    /// `on_error = "internal"` with `order = "internal_first"`: the hook is only asked about
    /// users the internal database does not know, so it could only refuse them.
    #[error(
        "on_error = \"internal\" needs order = \"hook_first\": with internal_first the hook is only asked about users the internal database does not know"
    )]
    FallbackNeedsHookFirst,
    /// The cache's random key could not be made.
    #[error("{0}")]
    Random(AuthConfigError),
}

/// Why the hook could not decide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookFailure {
    /// No answer within the timeout (including the wait for a free request slot).
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Connecting, TLS, sending or receiving failed.
    #[error("request failed: {0}")]
    Exchange(String),
    /// An answer that is not one (status, body).
    #[error("{0}")]
    Answer(HookResponseError),
}

/// The HTTP authentication hook: share one per broker; `Send + Sync`.
pub struct AuthHook {
    config: AuthHookConfig,
    uri: Uri,
    authorization: Option<HeaderValue>,
    client: Client<HookConnector, Full<Bytes>>,
    cache: Mutex<HookCache>,
    slots: Semaphore,
}

impl std::fmt::Debug for AuthHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthHook")
            .field("url", &self.config.display_url())
            .finish_non_exhaustive()
    }
}

impl AuthHook {
    /// Builds the client (no connection is opened yet). Fails as [`AuthHookConfig::check`].
    pub fn new(config: AuthHookConfig) -> Result<AuthHook, AuthHookError> {
        let (uri, connector, authorization) = config.prepare()?;
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(config.max_concurrent_requests)
            .pool_timer(TokioTimer::new());
        let cache = HookCache::new(
            config.cache_ttl,
            config.deny_cache_ttl,
            config.cache_max_entries,
        )
        .map_err(AuthHookError::Random)?;
        Ok(AuthHook {
            client: builder.build(connector),
            uri,
            authorization,
            cache: Mutex::new(cache),
            slots: Semaphore::new(config.max_concurrent_requests.max(1)),
            config,
        })
    }

    /// The settings it was built from.
    pub fn config(&self) -> &AuthHookConfig {
        &self.config
    }

    /// The hook's answer to `request`: from the cache, or by a POST. Counts requests,
    /// cache hits and failures in `metrics`; the caller logs failures with its context.
    pub(crate) async fn ask(
        &self,
        request: &HookRequest<'_>,
        metrics: &Metrics,
    ) -> Result<Arc<HookVerdict>, HookFailure> {
        let key = {
            let mut cache = self.cache();
            let key = cache.key(request);
            if let Some(verdict) = cache.get(&key, Instant::now()) {
                Metrics::inc(&metrics.auth_hook_cache_hits);
                return Ok(verdict);
            }
            key
        };
        Metrics::inc(&metrics.auth_hook_requests);
        let timeout = self.config.timeout;
        let answer = match tokio::time::timeout(timeout, self.exchange(request.to_json())).await {
            Ok(answer) => answer,
            Err(_) => Err(HookFailure::Timeout(timeout)),
        };
        let verdict = answer.and_then(|(status, body)| {
            parse_response(status, &body, SystemTime::now()).map_err(HookFailure::Answer)
        });
        let verdict = match verdict {
            Ok(verdict) => Arc::new(verdict),
            Err(failure) => {
                Metrics::inc(&metrics.auth_hook_errors);
                return Err(failure);
            }
        };
        self.cache()
            .insert(key, Arc::clone(&verdict), Instant::now(), SystemTime::now());
        Ok(verdict)
    }

    /// One POST: the status and the (bounded) body.
    async fn exchange(&self, body: Vec<u8>) -> Result<(u16, Bytes), HookFailure> {
        // The semaphore is never closed, so this only waits.
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|e| HookFailure::Exchange(e.to_string()))?;
        let mut request = Request::post(self.uri.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, concat!("FerryMQ/", env!("CARGO_PKG_VERSION")));
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| HookFailure::Exchange(describe(&e)))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| HookFailure::Exchange(describe(&e)))?;
        let status = response.status().as_u16();
        // Read even after a bad status, so that the connection can be reused.
        let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| HookFailure::Exchange(format!("reading the answer: {e}")))?
            .to_bytes();
        Ok((status, body))
    }

    fn cache(&self) -> MutexGuard<'_, HookCache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `http://` or `https://`, a host, no user info.
fn parse_url(url: &str) -> Result<Uri, AuthHookError> {
    let invalid = |reason: &str| AuthHookError::InvalidUrl(reason.to_owned());
    let uri: Uri = url.trim().parse().map_err(|e| {
        AuthHookError::InvalidUrl(format!("{url:?} is not an http:// or https:// URL ({e})"))
    })?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(invalid("it must start with http:// or https://"));
    }
    let Some(authority) = uri.authority() else {
        return Err(invalid("it has no host"));
    };
    if authority.as_str().contains('@') {
        // They would be logged and, over http://, sent in clear text.
        return Err(invalid(
            "credentials do not go in the URL; use bearer_token_file",
        ));
    }
    if authority.host().is_empty() {
        return Err(invalid("it has no host"));
    }
    Ok(uri)
}

/// An error with its sources: hyper's own messages ("client error (Connect)") say little.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests;
