//! Users and password verification for FerryMQ.
//!
//! This crate owns the *decisions*: which users exist, whether a CONNECT's username and
//! password are good, and whether anonymous clients are let in. It does no I/O, spawns
//! nothing and knows nothing of MQTT packets or sockets; the broker hands it the username,
//! the password bytes and the peer address, and runs it on a blocking thread when
//! [`Authenticator::is_cheap`] says argon2 will be needed.
//!
//! Passwords are stored as argon2id PHC strings ([`hash_password`] makes one). Because an
//! argon2 verification costs tens of milliseconds by design, successful verifications are
//! remembered as keyed SHA-256 digests so that a fleet of devices reconnecting with the same
//! credentials does not cost one argon2 run each.

mod authenticator;
mod config;
mod password;

pub use authenticator::{AuthFailure, Authenticator, Identity};
pub use config::{AuthConfig, AuthConfigError, UserConfig};
pub use password::hash_password;
