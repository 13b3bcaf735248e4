//! Access control for FerryMQ: who may connect, and what they may do once connected.
//!
//! This crate owns the *decisions*: which users exist, whether a CONNECT's username and
//! password (or token) are good, whether anonymous clients are let in, which topics a
//! connection may publish and subscribe to, how RabbitMQ definitions translate, and when a
//! source address has failed too often. It does no I/O in its decisions, spawns nothing and
//! knows nothing of MQTT packets or sockets; the only files it reads are key files, once, in
//! [`JwtValidator::new`]. The broker hands it the username, the password bytes and the peer
//! address, and runs it on a blocking thread when [`Authenticator::is_cheap`] says argon2
//! will be needed.
//!
//! Passwords are stored as argon2id PHC strings ([`hash_password`] makes one). Because an
//! argon2 verification costs tens of milliseconds by design, successful verifications are
//! remembered as keyed SHA-256 digests so that a fleet of devices reconnecting with the same
//! credentials does not cost one argon2 run each. Hashes imported from RabbitMQ
//! ([`PasswordHash`]) verify as RabbitMQ computes them and report [`PasswordHash::needs_rehash`].
//!
//! Modules, by concern: `permissions` (allow/deny filters, placeholders, `$SYS`),
//! `definitions` (users, tags, vhosts, limits; our JSON export format), `rabbit` (RabbitMQ
//! definitions import), `jwt` (tokens for browsers), `hook` (the HTTP authentication hook's
//! request, answers and answer cache), `throttle` (failed logins per source).
//! See `docs/access-control.md` for the model as operators see it.

mod authenticator;
mod config;
pub mod definitions;
pub mod edit;
mod filters;
pub mod hook;
pub mod jwt;
mod password;
mod password_hash;
mod permissions;
pub mod rabbit;
mod throttle;

pub use authenticator::{
    AuthFailure, AuthRequest, Authenticator, DEFAULT_VHOST, HookSubject, Identity, IdentitySource,
    ManagementLogin, ReauthFailure, looks_like_jwt,
};
pub use config::{AuthConfig, AuthConfigError, UserConfig};

pub use definitions::{
    Definitions, DefinitionsError, PermissionRecord, Tag, UserRecord, VhostRecord,
};
pub use hook::{HookCache, HookGrant, HookRequest, HookResponseError, HookVerdict};
pub use jwt::{
    JwtAlgorithm, JwtConfig, JwtConfigError, JwtError, JwtKey, JwtValidator, TokenIdentity,
};
pub use password::hash_password;
pub use password_hash::PasswordHash;
pub use permissions::{BoundPermissions, Permissions, PermissionsError, TopicRules};
pub use throttle::{Blocked, LoginThrottle};
