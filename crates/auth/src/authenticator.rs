//! The authentication decision for one CONNECT.
//!
//! Rules, in order:
//! 1. No username (or an empty one) is an anonymous client: let in as `anonymous` when
//!    `allow_anonymous`, refused otherwise. A password without a username is ignored.
//! 2. A username must name a configured user, come with the right password, and, for a
//!    loopback-only user, come from a loopback address. The client cannot tell which of these
//!    failed: all three are [`AuthFailure::BadCredentials`], and an unknown user costs the
//!    same argon2 run as a wrong password.
//! 3. With no configured user, the built-in `guest`/`guest` exists, loopback only.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::config::{AuthConfig, AuthConfigError};
use crate::password::{self, DUMMY_HASH, DigestKey, GUEST_HASH, VerifiedCache};

/// Who a connection is, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user name (`anonymous` for anonymous clients).
    pub username: Arc<str>,
    /// True for a client let in without credentials.
    pub anonymous: bool,
}

/// Why a CONNECT was refused. Deliberately coarse: telling a client *which* check failed
/// would help it guess user names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// No username was sent and anonymous access is off.
    #[error("anonymous access is not allowed")]
    AnonymousNotAllowed,
    /// Unknown user, wrong or missing password, or a loopback-only user connecting from
    /// elsewhere.
    #[error("bad user name or password")]
    BadCredentials,
}

/// A configured user, ready for verification.
struct User {
    name: Arc<str>,
    password_hash: String,
    loopback_only: bool,
    verified: VerifiedCache,
}

/// Decides whether a CONNECT's credentials are good. `Send + Sync`: share one behind an
/// `Arc` between all connections.
pub struct Authenticator {
    allow_anonymous: bool,
    users: HashMap<Box<str>, User>,
    digest_key: DigestKey,
    anonymous: Arc<str>,
}

impl std::fmt::Debug for Authenticator {
    // Hand-written so that neither hashes nor the digest key end up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("allow_anonymous", &self.allow_anonymous)
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Builds the authenticator, validating every user (see [`AuthConfig::validate`]); the
    /// first problem is returned.
    ///
    /// When `config.users` is empty, the built-in user `guest` / password `guest`,
    /// loopback only, exists (RabbitMQ's rule: works out of the box on a laptop, useless to
    /// an attacker).
    pub fn new(config: AuthConfig) -> Result<Authenticator, AuthConfigError> {
        if let Some(problem) = config.validate().into_iter().next() {
            return Err(problem);
        }
        let mut users = HashMap::with_capacity(config.users.len().max(1));
        if config.users.is_empty() {
            users.insert(
                "guest".into(),
                User {
                    name: Arc::from("guest"),
                    password_hash: GUEST_HASH.to_owned(),
                    loopback_only: true,
                    verified: VerifiedCache::default(),
                },
            );
        }
        for user in config.users {
            users.insert(
                user.name.as_str().into(),
                User {
                    name: Arc::from(user.name),
                    password_hash: user.password_hash,
                    loopback_only: user.loopback_only,
                    verified: VerifiedCache::default(),
                },
            );
        }
        Ok(Authenticator {
            allow_anonymous: config.allow_anonymous,
            users,
            digest_key: DigestKey::random().map_err(AuthConfigError::RandomSource)?,
            anonymous: Arc::from("anonymous"),
        })
    }

    /// Authenticates one CONNECT. `username` `None` or `Some("")` means anonymous;
    /// `password` is the raw CONNECT password, if any; `peer` is the client's address (after
    /// PROXY protocol, if trusted).
    ///
    /// CPU-heavy on a cache miss (one argon2 run, tens of milliseconds): call it from a
    /// blocking thread unless [`Authenticator::is_cheap`] says otherwise.
    pub fn authenticate(
        &self,
        username: Option<&str>,
        password: Option<&[u8]>,
        peer: IpAddr,
    ) -> Result<Identity, AuthFailure> {
        let Some(name) = username.filter(|name| !name.is_empty()) else {
            return if self.allow_anonymous {
                Ok(Identity {
                    username: Arc::clone(&self.anonymous),
                    anonymous: true,
                })
            } else {
                Err(AuthFailure::AnonymousNotAllowed)
            };
        };
        let Some(user) = self.users.get(name) else {
            // Spend the time a real verification would, so that response time does not
            // reveal which user names exist.
            if let Some(password) = password {
                let _ = password::verify(password, DUMMY_HASH);
            }
            return Err(AuthFailure::BadCredentials);
        };
        let Some(password) = password else {
            return Err(AuthFailure::BadCredentials);
        };
        if !self.verify(user, password) {
            return Err(AuthFailure::BadCredentials);
        }
        // Checked after the password so that a remote client learns nothing about whether a
        // loopback-only user exists or whether its guess was right.
        if user.loopback_only && !is_loopback(peer) {
            return Err(AuthFailure::BadCredentials);
        }
        Ok(Identity {
            username: Arc::clone(&user.name),
            anonymous: false,
        })
    }

    /// Authenticates a client by the identity its TLS client certificate maps to (the
    /// listener verified the certificate against its CA): the user must exist and obey its
    /// loopback rule; no password is involved.
    pub fn authenticate_certificate(
        &self,
        username: &str,
        peer: IpAddr,
    ) -> Result<Identity, AuthFailure> {
        let user = self
            .users
            .get(username)
            .ok_or(AuthFailure::BadCredentials)?;
        if user.loopback_only && !is_loopback(peer) {
            return Err(AuthFailure::BadCredentials);
        }
        Ok(Identity {
            username: Arc::clone(&user.name),
            anonymous: false,
        })
    }

    /// True when [`Authenticator::authenticate`] would not run argon2 for these credentials
    /// (anonymous, a missing password, or a password that already verified), so the broker
    /// can skip the trip to a blocking thread.
    pub fn is_cheap(&self, username: Option<&str>, password: Option<&[u8]>) -> bool {
        let Some(name) = username.filter(|name| !name.is_empty()) else {
            return true;
        };
        match (self.users.get(name), password) {
            (Some(_), None) => true,
            (Some(user), Some(password)) => {
                user.verified.contains(&self.digest_key.digest(password))
            }
            // Unknown users cost a dummy argon2 run, see `authenticate`.
            (None, _) => password.is_none(),
        }
    }

    /// Cache first, argon2 on a miss; a success is remembered.
    fn verify(&self, user: &User, password: &[u8]) -> bool {
        let digest = self.digest_key.digest(password);
        if user.verified.contains(&digest) {
            return true;
        }
        let ok = password::verify(password, &user.password_hash);
        if ok {
            user.verified.insert(digest);
        }
        ok
    }
}

/// 127.0.0.0/8, `::1`, and IPv4-mapped `::ffff:127.x.y.z` (what a dual-stack socket reports
/// for an IPv4 loopback client).
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests;
