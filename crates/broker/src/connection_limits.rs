//! Per-user and per-vhost connection counts, checked against the limits of the internal
//! database (`max_connections` of a user, across all vhosts, and of a vhost). A slot is held
//! by a [`LimitSlot`] for the life of the connection.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

use ferrymq_auth::Identity;

/// Live connection counts. One short critical section per CONNECT and per disconnect.
#[derive(Debug, Default)]
pub(crate) struct ConnectionCounts {
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    users: HashMap<Arc<str>, u32>,
    vhosts: HashMap<Arc<str>, u32>,
}

/// Which limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitReached {
    User,
    Vhost,
}

impl ConnectionCounts {
    /// Takes a slot for the user of `identity` in its vhost unless that would exceed a limit.
    pub(crate) fn acquire(
        self: &Arc<Self>,
        identity: &Arc<Identity>,
        user_limit: Option<u32>,
        vhost_limit: Option<u32>,
    ) -> Result<LimitSlot, LimitReached> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let current = |map: &HashMap<Arc<str>, u32>, key: &str| map.get(key).copied().unwrap_or(0);
        if user_limit.is_some_and(|limit| current(&counts.users, &identity.username) >= limit) {
            return Err(LimitReached::User);
        }
        if vhost_limit.is_some_and(|limit| current(&counts.vhosts, &identity.vhost) >= limit) {
            return Err(LimitReached::Vhost);
        }
        *counts
            .users
            .entry(Arc::clone(&identity.username))
            .or_insert(0) += 1;
        *counts
            .vhosts
            .entry(Arc::clone(&identity.vhost))
            .or_insert(0) += 1;
        Ok(LimitSlot {
            counts: Arc::clone(self),
            identity: Arc::clone(identity),
        })
    }
}

/// One connection's place in the counts, released on drop, and the connection's (usually
/// shared) identity, which names the user and vhost it is counted under: 16 bytes in every
/// established connection for both, where the two names alone would take 48.
#[derive(Debug)]
pub(crate) struct LimitSlot {
    counts: Arc<ConnectionCounts>,
    identity: Arc<Identity>,
}

impl LimitSlot {
    /// The identity re-authentication gave the connection. It keeps user and vhost (the
    /// authenticator builds it from the old one), so the slot stays counted right.
    pub(crate) fn replace_identity(&mut self, identity: Arc<Identity>) {
        debug_assert!(
            identity.username == self.identity.username && identity.vhost == self.identity.vhost
        );
        self.identity = identity;
    }
}

impl Deref for LimitSlot {
    type Target = Identity;

    fn deref(&self) -> &Identity {
        &self.identity
    }
}

impl Drop for LimitSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.counts.lock().unwrap_or_else(|p| p.into_inner());
        let Counts { users, vhosts } = &mut *counts;
        for (map, key) in [
            (users, &self.identity.username),
            (vhosts, &self.identity.vhost),
        ] {
            if let Some(count) = map.get_mut(&**key) {
                *count -= 1;
                if *count == 0 {
                    // Keep the maps as small as the set of connected users and vhosts.
                    map.remove(&**key);
                }
            }
        }
    }
}
