//! Password logins with the broker's protections, shared by MQTT CONNECT and the management
//! HTTP API so that neither can be used to get around the other's: failed logins are
//! throttled per source address, and password verification (argon2, slow by design) runs on
//! the blocking pool, at most one per core at a time, so a flood of bad passwords cannot take
//! every async worker.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrymq_auth::{AuthFailure, Authenticator};

use crate::Broker;
use crate::metrics::Metrics;

/// Why a login did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginError {
    /// The source address failed too often lately: refused without looking at the
    /// credentials.
    Throttled {
        /// How long the block lasts.
        retry_after: Duration,
    },
    /// The credentials (or the access they ask for) were refused.
    Refused(AuthFailure),
}

impl Broker {
    /// Runs one login decision for a client at `ip`: refused at once when the address is
    /// blocked; else `decide` runs on the authenticator (on the blocking pool unless `cheap`,
    /// see [`Authenticator::is_cheap`]), and its outcome is counted against the address.
    /// Only [`AuthFailure::BadCredentials`] counts as a failed login.
    pub async fn login<T: Send + 'static>(
        self: &Arc<Self>,
        ip: IpAddr,
        cheap: bool,
        decide: impl FnOnce(&Authenticator) -> Result<T, AuthFailure> + Send + 'static,
    ) -> Result<T, LoginError> {
        self.check_login_throttle(ip)?;
        let verdict = self.decide_login(cheap, decide).await;
        self.record_login(ip, verdict.as_ref().err().copied());
        verdict.map_err(LoginError::Refused)
    }

    /// The first step of a login: refused when `ip` failed too often lately.
    pub(crate) fn check_login_throttle(&self, ip: IpAddr) -> Result<(), LoginError> {
        match self.throttle().check(ip, Instant::now()) {
            Ok(()) => Ok(()),
            Err(blocked) => {
                Metrics::inc(&self.metrics.logins_throttled);
                Err(LoginError::Throttled {
                    retry_after: blocked.retry_after,
                })
            }
        }
    }

    /// Runs `decide` on the authenticator: inline when `cheap`, else on the blocking pool,
    /// at most one per core at a time.
    pub(crate) async fn decide_login<T: Send + 'static>(
        self: &Arc<Self>,
        cheap: bool,
        decide: impl FnOnce(&Authenticator) -> Result<T, AuthFailure> + Send + 'static,
    ) -> Result<T, AuthFailure> {
        if cheap {
            return decide(&self.auth);
        }
        match self.password_checks.acquire().await {
            Ok(_slot) => {
                let broker = Arc::clone(self);
                let verdict = tokio::task::spawn_blocking(move || decide(&broker.auth));
                verdict.await.unwrap_or(Err(AuthFailure::BadCredentials))
            }
            // Closed only if the broker is being torn down.
            Err(_) => Err(AuthFailure::BadCredentials),
        }
    }

    /// The last step of a login: counts its outcome (`None`: success) against `ip`. Bad
    /// credentials count towards a block; an unavailable authentication hook is nobody's
    /// failed login and counts for nothing.
    pub(crate) fn record_login(&self, ip: IpAddr, failure: Option<AuthFailure>) {
        match failure {
            None => self.throttle().record_success(ip, Instant::now()),
            Some(AuthFailure::Unavailable) => {}
            Some(failure) => {
                Metrics::inc(&self.metrics.auth_failures);
                if failure == AuthFailure::BadCredentials
                    && self.throttle().record_failure(ip, Instant::now())
                {
                    tracing::warn!(peer = %ip, "too many failed logins: blocking this address for a while");
                }
            }
        }
    }
}
