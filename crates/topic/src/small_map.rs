//! `SmallMap`: a map that is a plain `Vec` while small and a `HashMap` once large.
//!
//! Almost every trie node has one or two children and one or two subscribers, and a
//! million-subscription trie has about a million such nodes. An empty `HashMap` is 48 bytes
//! and its first allocation holds 4 buckets, so a map per node would multiply the memory per
//! subscription; a `Vec` with exact capacity costs one slot per entry and a linear scan over
//! a handful of entries is as fast as hashing. Popular nodes (a topic with thousands of
//! subscribers, a level with thousands of device ids) switch to a `HashMap` so that they stay
//! O(1). std's `RandomState` (SipHash, per-process keys) is kept on purpose: topic levels and
//! client ids come from clients, who must not be able to force collisions.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::collections::hash_map;
use std::hash::Hash;

/// Above this many entries the map becomes a `HashMap`.
const PROMOTE_ABOVE: usize = 8;
/// At or below this many entries a `HashMap` turns back into a `Vec`. Lower than
/// `PROMOTE_ABOVE` so that a node hovering around the threshold does not convert back and
/// forth on every subscribe/unsubscribe.
const DEMOTE_AT: usize = 4;

#[derive(Debug, Clone)]
pub(crate) enum SmallMap<K, V> {
    /// At most `PROMOTE_ABOVE` entries, unordered, keys unique.
    Few(Vec<(K, V)>),
    /// Boxed so that the common `Few` case keeps the enum at the size of a `Vec`.
    #[allow(
        clippy::box_collection,
        reason = "an unboxed HashMap would make every node's map 48 bytes instead of 24"
    )]
    Many(Box<HashMap<K, V>>),
}

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        SmallMap::Few(Vec::new())
    }
}

impl<K: Eq + Hash, V> SmallMap<K, V> {
    pub(crate) fn len(&self) -> usize {
        match self {
            SmallMap::Few(entries) => entries.len(),
            SmallMap::Many(map) => map.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self {
            SmallMap::Few(entries) => entries
                .iter()
                .find(|(k, _)| k.borrow() == key)
                .map(|(_, v)| v),
            SmallMap::Many(map) => map.get(key),
        }
    }

    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self {
            SmallMap::Few(entries) => entries
                .iter_mut()
                .find(|(k, _)| (*k).borrow() == key)
                .map(|(_, v)| v),
            SmallMap::Many(map) => map.get_mut(key),
        }
    }

    /// Inserts or replaces; returns the replaced value.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        if let Some(slot) = self.get_mut(&key) {
            return Some(std::mem::replace(slot, value));
        }
        self.promote_if_full();
        match self {
            SmallMap::Few(entries) => {
                Self::push_exact(entries, key, value);
            }
            SmallMap::Many(map) => {
                map.insert(key, value);
            }
        }
        None
    }

    /// Returns the value for `key`, inserting `(make_key(), make_value())` first if absent.
    /// In the `Vec` form the owned key is only built when needed, so looking up an existing
    /// child allocates nothing.
    pub(crate) fn get_or_insert_with<Q>(
        &mut self,
        key: &Q,
        make_key: impl FnOnce() -> K,
        make_value: impl FnOnce() -> V,
    ) -> &mut V
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.get(key).is_none() {
            self.promote_if_full();
        }
        match self {
            SmallMap::Few(entries) => {
                let index = match entries.iter().position(|(k, _)| k.borrow() == key) {
                    Some(index) => index,
                    None => {
                        Self::push_exact(entries, make_key(), make_value());
                        entries.len() - 1
                    }
                };
                &mut entries[index].1
            }
            // `entry` wants the owned key up front, and returning a `get_mut` borrow from
            // one branch only is rejected by today's borrow checker. The extra allocation
            // happens on SUBSCRIBE to a level with many siblings, never per message.
            SmallMap::Many(map) => map.entry(make_key()).or_insert_with(make_value),
        }
    }

    /// Turns a full `Vec` into a `HashMap`; called just before adding an absent key.
    fn promote_if_full(&mut self) {
        if let SmallMap::Few(entries) = self
            && entries.len() >= PROMOTE_ABOVE
        {
            let map: HashMap<K, V> = entries.drain(..).collect();
            *self = SmallMap::Many(Box::new(map));
        }
    }

    /// Grows by one slot at a time: most nodes hold one or two entries for their whole life,
    /// and `Vec`'s default first allocation of four would waste the rest.
    fn push_exact(entries: &mut Vec<(K, V)>, key: K, value: V) {
        entries.reserve_exact(1);
        entries.push((key, value));
    }

    /// Removes `key`; returns its value. Gives memory back as the map shrinks.
    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self {
            SmallMap::Few(entries) => {
                let position = entries.iter().position(|(k, _)| k.borrow() == key)?;
                let (_, value) = entries.swap_remove(position);
                if entries.len() * 2 <= entries.capacity() {
                    entries.shrink_to_fit();
                }
                Some(value)
            }
            SmallMap::Many(map) => {
                let value = map.remove(key)?;
                if map.len() <= DEMOTE_AT {
                    let mut entries = Vec::with_capacity(map.len());
                    entries.extend(map.drain());
                    *self = SmallMap::Few(entries);
                } else if map.len() * 4 < map.capacity() {
                    map.shrink_to_fit();
                }
                Some(value)
            }
        }
    }

    /// Calls `f` on every entry. Cheaper than `iter` in hot loops: no iterator enum to
    /// dispatch on per element.
    pub(crate) fn for_each<'a>(&'a self, mut f: impl FnMut(&'a K, &'a V)) {
        match self {
            SmallMap::Few(entries) => entries.iter().for_each(|(k, v)| f(k, v)),
            SmallMap::Many(map) => map.iter().for_each(|(k, v)| f(k, v)),
        }
    }

    /// Calls `f` on every entry, with the value mutable.
    pub(crate) fn for_each_mut(&mut self, mut f: impl FnMut(&K, &mut V)) {
        match self {
            SmallMap::Few(entries) => entries.iter_mut().for_each(|(k, v)| f(k, v)),
            SmallMap::Many(map) => map.iter_mut().for_each(|(k, v)| f(k, v)),
        }
    }

    pub(crate) fn iter(&self) -> Iter<'_, K, V> {
        match self {
            SmallMap::Few(entries) => Iter::Few(entries.iter()),
            SmallMap::Many(map) => Iter::Many(map.iter()),
        }
    }
}

/// Iterator over the entries of a [`SmallMap`], in no particular order.
#[derive(Debug, Clone)]
pub(crate) enum Iter<'a, K, V> {
    Few(std::slice::Iter<'a, (K, V)>),
    Many(hash_map::Iter<'a, K, V>),
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Few(entries) => entries.next().map(|(k, v)| (k, v)),
            Iter::Many(map) => map.next(),
        }
    }
}
