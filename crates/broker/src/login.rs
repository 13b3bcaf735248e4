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
        if let Err(blocked) = self.throttle().check(ip, Instant::now()) {
            Metrics::inc(&self.metrics.logins_throttled);
            return Err(LoginError::Throttled {
                retry_after: blocked.retry_after,
            });
        }
        let verdict = if cheap {
            decide(&self.auth)
        } else {
            match self.password_checks.acquire().await {
                Ok(_slot) => {
                    let broker = Arc::clone(self);
                    let verdict = tokio::task::spawn_blocking(move || decide(&broker.auth));
                    verdict.await.unwrap_or(Err(AuthFailure::BadCredentials))
                }
                // Closed only if the broker is being torn down.
                Err(_) => Err(AuthFailure::BadCredentials),
            }
        };
        match verdict {
            Ok(value) => {
                self.throttle().record_success(ip, Instant::now());
                Ok(value)
            }
            Err(failure) => {
                Metrics::inc(&self.metrics.auth_failures);
                if failure == AuthFailure::BadCredentials
                    && self.throttle().record_failure(ip, Instant::now())
                {
                    tracing::warn!(peer = %ip, "too many failed logins: blocking this address for a while");
                }
                Err(LoginError::Refused(failure))
            }
        }
    }
}
