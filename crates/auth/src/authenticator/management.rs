//! Logins to the management HTTP API. The same users, passwords, verification cache and
//! loopback rule as MQTT logins (so `guest` still works from loopback only), but no `vhost:`
//! prefix, no anonymous access and no tokens; the result names the user's management tags,
//! from which the API decides what the user may see and change.

use std::net::IpAddr;
use std::sync::Arc;

use super::{AuthFailure, Authenticator, is_loopback};
use crate::definitions::Tag;
use crate::password::{self, DUMMY_HASH};

/// A user logged in to the management API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagementLogin {
    /// The user's name.
    pub username: Arc<str>,
    /// Its management tags (none for config-file users; `administrator` for the built-in
    /// guest).
    pub tags: Vec<Tag>,
}

impl Authenticator {
    /// Checks a management API login (HTTP Basic): `username` names a user of the config
    /// file or the internal database (or the built-in guest), `password` is its password,
    /// and a loopback-only user comes from a loopback address. Every failure is
    /// [`AuthFailure::BadCredentials`], and an unknown user costs the same argon2 run as a
    /// wrong password.
    ///
    /// CPU-heavy on a cache miss: call it from a blocking thread unless
    /// [`Authenticator::password_check_is_cheap`] says otherwise.
    pub fn authenticate_management(
        &self,
        username: &str,
        password: &[u8],
        peer: IpAddr,
    ) -> Result<ManagementLogin, AuthFailure> {
        let directory = self.directory();
        let Some(user) = self.find_user(&directory, username) else {
            let _ = password::verify(password, DUMMY_HASH);
            return Err(AuthFailure::BadCredentials);
        };
        if !self.verify(user, password) {
            return Err(AuthFailure::BadCredentials);
        }
        // After the password, as for MQTT: a remote client learns nothing about whether a
        // loopback-only user exists.
        if user.loopback_only && !is_loopback(peer) {
            return Err(AuthFailure::BadCredentials);
        }
        Ok(ManagementLogin {
            username: Arc::clone(&user.name),
            tags: user.tags.clone(),
        })
    }

    /// Whether `name` is a user of the config file (`[[auth.users]]`): those cannot be
    /// changed through the internal database, which they hide.
    pub fn is_config_user(&self, name: &str) -> bool {
        self.config_users.contains_key(name)
    }

    /// Whether `user` may connect to `vhost`: it has permissions there (config-file users
    /// and the guest: `/` only). The management API shows a `management` user these vhosts.
    pub fn may_access_vhost(&self, user: &str, vhost: &str) -> bool {
        let directory = self.directory();
        self.permissions_in(&directory, user, vhost).is_some()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::definitions::{Definitions, PermissionRecord, UserRecord, VhostRecord};
    use crate::password_hash::PasswordHash;
    use crate::permissions::Permissions;
    use crate::{AuthConfig, UserConfig};

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const REMOTE: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

    #[test]
    fn guest_is_an_administrator_from_loopback_only() {
        let auth = Authenticator::new(AuthConfig::default()).unwrap();
        let login = auth
            .authenticate_management("guest", b"guest", LOOPBACK)
            .unwrap();
        assert_eq!(login.tags, vec![Tag::Administrator]);
        assert_eq!(
            auth.authenticate_management("guest", b"guest", REMOTE),
            Err(AuthFailure::BadCredentials)
        );
        assert_eq!(
            auth.authenticate_management("guest", b"nope", LOOPBACK),
            Err(AuthFailure::BadCredentials)
        );
    }

    #[test]
    fn database_users_bring_their_tags_and_no_vhost_prefix_is_read() {
        let auth = Authenticator::new(AuthConfig::default()).unwrap();
        auth.replace_definitions(&Definitions {
            users: vec![UserRecord {
                name: "mon".into(),
                password_hash: PasswordHash::rabbit_sha256([1, 2, 3, 4], "mon-pw"),
                tags: vec![Tag::Monitoring],
                max_connections: None,
            }],
            vhosts: vec![VhostRecord {
                name: "a".into(),
                description: String::new(),
                max_connections: None,
            }],
            permissions: vec![PermissionRecord {
                user: "mon".into(),
                vhost: "a".into(),
                permissions: Permissions::full(),
            }],
        });
        let login = auth
            .authenticate_management("mon", b"mon-pw", REMOTE)
            .unwrap();
        assert_eq!(login.tags, vec![Tag::Monitoring]);
        assert_eq!(
            auth.authenticate_management("a:mon", b"mon-pw", REMOTE),
            Err(AuthFailure::BadCredentials)
        );
        assert_eq!(
            auth.authenticate_management("guest", b"guest", LOOPBACK),
            Err(AuthFailure::BadCredentials),
            "the guest is gone once the database has users"
        );
        assert!(auth.may_access_vhost("mon", "a"));
        assert!(!auth.may_access_vhost("mon", "/"));
    }

    #[test]
    fn config_file_users_have_no_tags() {
        let auth = Authenticator::new(AuthConfig {
            users: vec![UserConfig {
                name: "ops".into(),
                password_hash: crate::hash_password("ops-pw"),
                loopback_only: false,
            }],
            ..AuthConfig::default()
        })
        .unwrap();
        let login = auth
            .authenticate_management("ops", b"ops-pw", REMOTE)
            .unwrap();
        assert!(login.tags.is_empty());
        assert!(auth.may_access_vhost("ops", "/"));
        assert!(auth.password_check_is_cheap("ops", Some(b"ops-pw")));
        assert!(!auth.password_check_is_cheap("nobody", Some(b"x")));
    }
}
