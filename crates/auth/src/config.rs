//! The users and rules an [`crate::Authenticator`] is built from, and their validation.
//!
//! Validation lives here so that `ferrymq check-config` and the running broker reject
//! exactly the same configurations.

use std::collections::HashSet;

use crate::password::check_phc;

/// One configured user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserConfig {
    /// The MQTT username. Must be non-empty and must not contain `:`.
    pub name: String,
    /// An argon2 PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).
    pub password_hash: String,
    /// When true the user may only connect from a loopback address.
    pub loopback_only: bool,
}

/// Everything the authenticator needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// Accept clients that send no username (or an empty one) as user `anonymous`.
    pub allow_anonymous: bool,
    /// Configured users. When empty, the built-in `guest`/`guest` user (loopback only) exists.
    pub users: Vec<UserConfig>,
    /// A user name `vhost:user` selects the vhost (split at the last colon), as RabbitMQ does.
    pub vhost_in_username: bool,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            allow_anonymous: false,
            users: Vec::new(),
            vhost_in_username: true,
        }
    }
}

/// A configuration the authenticator refuses. Each variant that concerns a user carries
/// `index`, the user's position in [`AuthConfig::users`], so that a config loader can point
/// at the offending entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthConfigError {
    /// A user has an empty name (an empty username means "anonymous" on the wire).
    #[error("user #{}: the name is empty", index + 1)]
    EmptyName {
        /// Position of the user in the list.
        index: usize,
    },
    /// A user name contains `:`, which is reserved to separate a virtual host from the user
    /// name (`vhost:user`).
    #[error(
        "user {name:?}: a name must not contain ':' (it separates a virtual host from the user name)"
    )]
    NameContainsColon {
        /// Position of the user in the list.
        index: usize,
        /// The offending name.
        name: String,
    },
    /// Two users share a name; `index` is the second occurrence.
    #[error("user {name:?} is defined more than once")]
    DuplicateUser {
        /// Position of the repeated definition.
        index: usize,
        /// The repeated name.
        name: String,
    },
    /// A password hash is not an argon2 PHC string that can be verified.
    #[error(
        "user {name:?}: password_hash is not a valid argon2 PHC string ({reason}); make one with `ferrymq hash-password`"
    )]
    InvalidPasswordHash {
        /// Position of the user in the list.
        index: usize,
        /// The user's name.
        name: String,
        /// What is wrong with the string.
        reason: String,
    },
    /// The operating system's random source failed while creating the cache key.
    #[error("the operating system's random number generator failed: {0}")]
    RandomSource(String),
}

impl AuthConfigError {
    /// The position in [`AuthConfig::users`] of the user this error is about, if any.
    pub fn user_index(&self) -> Option<usize> {
        match self {
            AuthConfigError::EmptyName { index }
            | AuthConfigError::NameContainsColon { index, .. }
            | AuthConfigError::DuplicateUser { index, .. }
            | AuthConfigError::InvalidPasswordHash { index, .. } => Some(*index),
            AuthConfigError::RandomSource(_) => None,
        }
    }
}

impl AuthConfig {
    /// Checks every user and returns every problem found, in list order (empty = valid).
    pub fn validate(&self) -> Vec<AuthConfigError> {
        let mut problems = Vec::new();
        let mut seen = HashSet::with_capacity(self.users.len());
        for (index, user) in self.users.iter().enumerate() {
            if user.name.is_empty() {
                problems.push(AuthConfigError::EmptyName { index });
            } else if user.name.contains(':') {
                problems.push(AuthConfigError::NameContainsColon {
                    index,
                    name: user.name.clone(),
                });
            } else if !seen.insert(user.name.as_str()) {
                problems.push(AuthConfigError::DuplicateUser {
                    index,
                    name: user.name.clone(),
                });
            }
            if let Err(reason) = check_phc(&user.password_hash) {
                problems.push(AuthConfigError::InvalidPasswordHash {
                    index,
                    name: user.name.clone(),
                    reason,
                });
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Cheap parameters (m=8 KiB, t=1) keep the tests fast; verification reads the
    // parameters from the string, so these are as valid as production hashes.
    const ALICE_HASH: &str = "$argon2id$v=19$m=8,t=1,p=1$YWxpY2Utc2VjcmV0LXRlc3Qtc2FsdA$IIIuuumCOhX8LRy0FCvFR5bVXgARKxXPg0rDnQyqDYI";

    fn user(name: &str, hash: &str) -> UserConfig {
        UserConfig {
            name: name.to_owned(),
            password_hash: hash.to_owned(),
            loopback_only: false,
        }
    }

    #[test]
    fn valid_config_has_no_problems() {
        let config = AuthConfig {
            vhost_in_username: true,
            allow_anonymous: false,
            users: vec![user("alice", ALICE_HASH), user("bob", ALICE_HASH)],
        };
        assert_eq!(config.validate(), vec![]);
    }

    #[test]
    fn every_problem_is_reported_with_its_index() {
        let config = AuthConfig {
            vhost_in_username: true,
            allow_anonymous: false,
            users: vec![
                user("", ALICE_HASH),
                user("vhost:alice", ALICE_HASH),
                user("bob", ALICE_HASH),
                user("bob", "plaintext"),
            ],
        };
        let problems = config.validate();
        let indexes: Vec<_> = problems.iter().map(|p| p.user_index()).collect();
        assert_eq!(indexes, vec![Some(0), Some(1), Some(3), Some(3)]);
        assert!(matches!(problems[0], AuthConfigError::EmptyName { .. }));
        assert!(matches!(
            problems[1],
            AuthConfigError::NameContainsColon { .. }
        ));
        assert!(matches!(problems[2], AuthConfigError::DuplicateUser { .. }));
        assert!(matches!(
            problems[3],
            AuthConfigError::InvalidPasswordHash { .. }
        ));
    }

    #[test]
    fn non_argon2_and_incomplete_hashes_are_rejected() {
        for bad in [
            "",
            "guest",
            // bcrypt is an MCF string, not PHC.
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
            // A PHC string of another algorithm.
            "$pbkdf2-sha256$i=1000$c29tZXNhbHQ$aGFzaGhhc2hoYXNo",
            // argon2 without the hash part cannot verify anything.
            "$argon2id$v=19$m=8,t=1,p=1$YWxpY2Utc2VjcmV0LXRlc3Qtc2FsdA",
            // Memory below argon2's minimum for p=1.
            "$argon2id$v=19$m=1,t=1,p=1$YWxpY2Utc2VjcmV0LXRlc3Qtc2FsdA$IIIuuumCOhX8LRy0FCvFR5bVXgARKxXPg0rDnQyqDYI",
        ] {
            let config = AuthConfig {
                vhost_in_username: true,
                allow_anonymous: false,
                users: vec![user("alice", bad)],
            };
            let problems = config.validate();
            assert!(
                matches!(
                    problems.as_slice(),
                    [AuthConfigError::InvalidPasswordHash { index: 0, .. }]
                ),
                "{bad:?} gave {problems:?}"
            );
        }
    }
}
