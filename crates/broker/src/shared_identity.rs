//! One `Arc<Identity>` for all the connections of an internal user in a vhost, instead of a
//! copy (with its permission patterns) per connection: an idle connection keeps its
//! identity for life, and a fleet of devices usually logs in as a handful of users.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use ferrymq_auth::{Identity, IdentitySource};

/// Dead entries are swept when the pool reaches this size, or twice the live count of the
/// last sweep, whichever is larger: amortised O(1) per CONNECT, bounded memory.
const MIN_SWEEP_AT: usize = 64;

#[derive(Debug)]
pub(crate) struct SharedIdentities {
    pool: Mutex<Pool>,
}

#[derive(Debug)]
struct Pool {
    /// (user, vhost) -> the identity its connections share. Weak: the last connection of a
    /// user frees it.
    by_user: HashMap<(Arc<str>, Arc<str>), Weak<Identity>>,
    sweep_at: usize,
}

impl Default for SharedIdentities {
    fn default() -> SharedIdentities {
        SharedIdentities {
            pool: Mutex::new(Pool {
                by_user: HashMap::new(),
                sweep_at: MIN_SWEEP_AT,
            }),
        }
    }
}

impl SharedIdentities {
    /// The shared copy of `identity` when an equal one is in use, else `identity` itself
    /// in a new `Arc`. Equality covers the rights too, so connections bound before and
    /// after a definitions change never share. Token and hook identities carry their own
    /// rights and expiry, differ per connection, and are not pooled.
    pub(crate) fn share(&self, identity: Identity) -> Arc<Identity> {
        if identity.source != IdentitySource::Internal {
            return Arc::new(identity);
        }
        let key = (Arc::clone(&identity.username), Arc::clone(&identity.vhost));
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(shared) = pool.by_user.get(&key).and_then(Weak::upgrade)
            && *shared == identity
        {
            return shared;
        }
        let shared = Arc::new(identity);
        if pool.by_user.len() >= pool.sweep_at {
            pool.by_user
                .retain(|_, identity| identity.strong_count() > 0);
            pool.sweep_at = MIN_SWEEP_AT.max(2 * pool.by_user.len());
        }
        pool.by_user.insert(key, Arc::downgrade(&shared));
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrymq_auth::Permissions;

    fn internal(user: &str, vhost: &str) -> Identity {
        Identity {
            username: Arc::from(user),
            anonymous: false,
            vhost: Arc::from(vhost),
            permissions: Permissions::full(),
            expires_at: None,
            source: IdentitySource::Internal,
        }
    }

    #[test]
    fn connections_of_one_user_share_one_identity() {
        let pool = SharedIdentities::default();
        let first = pool.share(internal("alice", "/"));
        let second = pool.share(internal("alice", "/"));
        assert!(Arc::ptr_eq(&first, &second));
        let other_vhost = pool.share(internal("alice", "site"));
        assert!(!Arc::ptr_eq(&first, &other_vhost));
    }

    #[test]
    fn changed_rights_are_not_shared() {
        let pool = SharedIdentities::default();
        let before = pool.share(internal("alice", "/"));
        let mut changed = internal("alice", "/");
        changed.permissions.read_sys = !changed.permissions.read_sys;
        let after = pool.share(changed);
        assert_ne!(before.permissions, after.permissions);
        // Newer connections share the newer rights.
        let next = pool.share((*after).clone());
        assert!(Arc::ptr_eq(&after, &next));
    }

    #[test]
    fn tokens_are_not_pooled() {
        let pool = SharedIdentities::default();
        let token = Identity {
            source: IdentitySource::Token,
            ..internal("alice", "/")
        };
        let first = pool.share(token.clone());
        let second = pool.share(token);
        assert!(!Arc::ptr_eq(&first, &second));
    }

    #[test]
    fn dead_entries_are_swept() {
        let pool = SharedIdentities::default();
        for n in 0..10 * MIN_SWEEP_AT {
            drop(pool.share(internal(&format!("user{n}"), "/")));
        }
        let pool = pool.pool.lock().unwrap();
        assert!(pool.by_user.len() <= MIN_SWEEP_AT);
    }
}
