//! Per-user and per-vhost connection counts, checked against the limits of the internal
//! database (`max_connections` of a user, across all vhosts, and of a vhost). A slot is held
//! by a [`LimitSlot`] for the life of the connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(Arc<str>),
    Vhost(Arc<str>),
}

/// Live connection counts. One short critical section per CONNECT and per disconnect.
#[derive(Debug, Default)]
pub(crate) struct ConnectionCounts {
    counts: Mutex<HashMap<Key, u32>>,
}

/// Which limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitReached {
    User,
    Vhost,
}

impl ConnectionCounts {
    /// Takes a slot for `user` in `vhost` unless that would exceed a limit.
    pub(crate) fn acquire(
        self: &Arc<Self>,
        user: &Arc<str>,
        vhost: &Arc<str>,
        user_limit: Option<u32>,
        vhost_limit: Option<u32>,
    ) -> Result<LimitSlot, LimitReached> {
        let user_key = Key::User(user.clone());
        let vhost_key = Key::Vhost(vhost.clone());
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let current = |key: &Key| counts.get(key).copied().unwrap_or(0);
        if user_limit.is_some_and(|limit| current(&user_key) >= limit) {
            return Err(LimitReached::User);
        }
        if vhost_limit.is_some_and(|limit| current(&vhost_key) >= limit) {
            return Err(LimitReached::Vhost);
        }
        *counts.entry(user_key.clone()).or_insert(0) += 1;
        *counts.entry(vhost_key.clone()).or_insert(0) += 1;
        Ok(LimitSlot {
            counts: Arc::clone(self),
            keys: [user_key, vhost_key],
        })
    }
}

/// One connection's place in the counts; released on drop.
#[derive(Debug)]
pub(crate) struct LimitSlot {
    counts: Arc<ConnectionCounts>,
    keys: [Key; 2],
}

impl Drop for LimitSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.counts.lock().unwrap_or_else(|p| p.into_inner());
        for key in &self.keys {
            if let Some(count) = counts.get_mut(key) {
                *count -= 1;
                if *count == 0 {
                    // Keep the map as small as the set of connected users and vhosts.
                    counts.remove(key);
                }
            }
        }
    }
}
