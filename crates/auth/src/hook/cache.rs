//! The hook's answers, remembered for a while so that a fleet reconnecting at once (after a
//! broker restart, a network blip) costs the hook one request per device, not a storm.
//!
//! - **Keyed on the whole request** except the client's port (it changes at every
//!   connection): user name, password, client id, vhost, listener vhost, IP, protocol level
//!   and transport. An answer is reused only for the question it answered, so a hook that
//!   decides on the client id or the address is never second-guessed.
//! - **Keys are keyed digests** (SHA-256 under a random per-process key): the cache never
//!   holds a password, and a memory dump does not give one away.
//! - **Bounded**: at most `capacity` answers; a new one evicts the oldest. Allow answers live
//!   `allow_ttl` (less when they expire sooner), deny answers `deny_ttl`.
//!
//! Pure: the caller passes the clock and wraps the cache in a lock.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use super::{HookRequest, HookVerdict};
use crate::config::AuthConfigError;
use crate::password::DigestKey;

/// A request's identity in the cache: a keyed digest, never the request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HookCacheKey([u8; 32]);

struct Entry {
    verdict: Arc<HookVerdict>,
    expires: Instant,
    generation: u64,
}

/// Remembered answers of the hook, bounded in count and age.
pub struct HookCache {
    allow_ttl: Duration,
    deny_ttl: Duration,
    capacity: usize,
    digest_key: DigestKey,
    entries: HashMap<HookCacheKey, Entry>,
    /// Keys in insertion order with the generation they had then; an item whose generation
    /// no longer matches its entry is stale and skipped.
    order: VecDeque<(HookCacheKey, u64)>,
    next_generation: u64,
}

impl std::fmt::Debug for HookCache {
    // Hand-written: the digest key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookCache")
            .field("allow_ttl", &self.allow_ttl)
            .field("deny_ttl", &self.deny_ttl)
            .field("capacity", &self.capacity)
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl HookCache {
    /// A cache keeping allow answers `allow_ttl`, deny answers `deny_ttl`, at most
    /// `capacity` of them. A zero TTL or capacity turns that caching off. Fails only when
    /// the operating system's random source does.
    pub fn new(
        allow_ttl: Duration,
        deny_ttl: Duration,
        capacity: usize,
    ) -> Result<HookCache, AuthConfigError> {
        Ok(HookCache {
            allow_ttl,
            deny_ttl,
            capacity,
            digest_key: DigestKey::random().map_err(AuthConfigError::RandomSource)?,
            entries: HashMap::new(),
            order: VecDeque::new(),
            next_generation: 0,
        })
    }

    /// The key of `request`'s answer.
    pub fn key(&self, request: &HookRequest<'_>) -> HookCacheKey {
        let mut hasher = Sha256::new();
        hasher.update(self.digest_key.bytes());
        // Length-prefixed fields, so that no two requests share an encoding.
        let mut field = |bytes: &[u8]| {
            hasher.update((bytes.len() as u64).to_be_bytes());
            hasher.update(bytes);
        };
        field(request.username.as_bytes());
        match request.password {
            Some(password) => {
                field(b"password");
                field(password);
            }
            None => field(b"no password"),
        }
        field(request.client_id.as_bytes());
        field(request.vhost.as_bytes());
        field(request.listener_vhost.unwrap_or("").as_bytes());
        field(request.peer.ip().to_canonical().to_string().as_bytes());
        field(&[request.protocol_version]);
        field(request.transport.unwrap_or("").as_bytes());
        HookCacheKey(hasher.finalize().into())
    }

    /// The remembered answer for `key`, unless it is older than its TTL at `now`.
    pub fn get(&mut self, key: &HookCacheKey, now: Instant) -> Option<Arc<HookVerdict>> {
        let entry = self.entries.get(key)?;
        if entry.expires > now {
            return Some(Arc::clone(&entry.verdict));
        }
        // Its queue item becomes stale and is skipped when reached.
        self.entries.remove(key);
        None
    }

    /// Remembers `verdict` for `key`, received at `now` (`wall`: the same moment on the
    /// wall clock, for an allow's `expires_at`). Not remembered when its TTL is zero.
    pub fn insert(
        &mut self,
        key: HookCacheKey,
        verdict: Arc<HookVerdict>,
        now: Instant,
        wall: SystemTime,
    ) {
        let ttl = verdict.cache_for(self.allow_ttl, self.deny_ttl, wall);
        if ttl.is_zero() || self.capacity == 0 {
            return;
        }
        let Some(expires) = now.checked_add(ttl) else {
            return;
        };
        if !self.entries.contains_key(&key) {
            self.make_room(now);
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        self.entries.insert(
            key,
            Entry {
                verdict,
                expires,
                generation,
            },
        );
        self.order.push_back((key, generation));
        // Re-inserted keys leave stale items behind; compact when they outnumber live
        // entries, so the queue stays within twice the capacity.
        if self.order.len() > 2 * self.capacity {
            let entries = &self.entries;
            self.order.retain(|(key, generation)| {
                entries
                    .get(key)
                    .is_some_and(|e| e.generation == *generation)
            });
        }
    }

    /// How many answers are remembered (some may have expired and not been noticed yet).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no answer is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Items in the eviction queue, stale ones included (its bound is tested).
    #[cfg(test)]
    pub(super) fn queued(&self) -> usize {
        self.order.len()
    }

    /// Frees a slot for a new entry: drops expired entries at the front, then the oldest
    /// while at capacity.
    fn make_room(&mut self, now: Instant) {
        while let Some(&(key, generation)) = self.order.front() {
            let live = self
                .entries
                .get(&key)
                .filter(|e| e.generation == generation);
            match live {
                Some(entry) if entry.expires > now && self.entries.len() < self.capacity => break,
                Some(_) => {
                    self.entries.remove(&key);
                }
                None => {}
            }
            self.order.pop_front();
        }
    }
}
