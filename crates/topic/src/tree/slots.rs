//! `Slots`: the values of a [`super::TopicTree`] in one dense `Vec`, threaded by a doubly
//! linked list whose order keeps every subtree's values together.
//!
//! The tree's nodes hold slot ids, not values. Each node also holds the first and last slot of
//! its subtree's *run*: the stretch of the list holding exactly the values stored at or below
//! it. Runs nest like the nodes do, so `a/#` reads the run of `a` by following `next` through
//! 16-byte slots of one array (for `Arc` values), without touching a node or a level string
//! below `a`. A tree built in order, or compacted, has its runs in ascending slot order: the
//! walk is then sequential memory.
//!
//! This module keeps the list and the free slots; the tree keeps the runs (it knows the paths).

/// Index into [`Slots`]; [`NONE`] for none.
pub(super) type SlotId = u32;

/// No slot: an absent value, an empty run, an end of the list.
pub(super) const NONE: SlotId = SlotId::MAX;

#[derive(Debug, Clone)]
struct Slot<V> {
    /// `None` while the slot is free; `next` then links the free list.
    value: Option<V>,
    prev: SlotId,
    next: SlotId,
}

/// A value just taken out of the list, and where it was, for the runs to be adjusted.
#[derive(Debug)]
pub(super) struct Unlinked<V> {
    pub(super) value: V,
    pub(super) slot: SlotId,
    pub(super) prev: SlotId,
    pub(super) next: SlotId,
}

#[derive(Debug, Clone)]
pub(super) struct Slots<V> {
    slots: Vec<Slot<V>>,
    /// Head of the free list.
    free: SlotId,
}

impl<V> Default for Slots<V> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            free: NONE,
        }
    }
}

impl<V> Slots<V> {
    /// Number of slots, used and free.
    pub(super) fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub(super) fn get(&self, slot: SlotId) -> Option<&V> {
        self.slots.get(slot as usize)?.value.as_ref()
    }

    pub(super) fn get_mut(&mut self, slot: SlotId) -> Option<&mut V> {
        self.slots.get_mut(slot as usize)?.value.as_mut()
    }

    /// Stores `value` in a free slot linked right after `anchor` (`NONE`: as the only
    /// element of an empty list).
    pub(super) fn insert_after(&mut self, anchor: SlotId, value: V) -> SlotId {
        let next = match self.slots.get(anchor as usize) {
            Some(entry) => entry.next,
            None => NONE,
        };
        let slot = match self.slots.get_mut(self.free as usize) {
            Some(entry) => {
                let slot = self.free;
                self.free = entry.next;
                *entry = Slot {
                    value: Some(value),
                    prev: anchor,
                    next,
                };
                slot
            }
            None => {
                let slot = SlotId::try_from(self.slots.len())
                    .ok()
                    .filter(|&slot| slot != NONE)
                    .expect("fewer than 2^32 - 1 values in a TopicTree");
                self.slots.push(Slot {
                    value: Some(value),
                    prev: anchor,
                    next,
                });
                slot
            }
        };
        if let Some(entry) = self.slots.get_mut(anchor as usize) {
            entry.next = slot;
        }
        if let Some(entry) = self.slots.get_mut(next as usize) {
            entry.prev = slot;
        }
        slot
    }

    /// Takes the value out of `slot`, unlinks it and frees the slot.
    pub(super) fn remove(&mut self, slot: SlotId) -> Option<Unlinked<V>> {
        let free = self.free;
        let entry = self.slots.get_mut(slot as usize)?;
        let value = entry.value.take()?;
        let (prev, next) = (entry.prev, entry.next);
        entry.prev = NONE;
        entry.next = free;
        self.free = slot;
        if let Some(entry) = self.slots.get_mut(prev as usize) {
            entry.next = next;
        }
        if let Some(entry) = self.slots.get_mut(next as usize) {
            entry.prev = prev;
        }
        Some(Unlinked {
            value,
            slot,
            prev,
            next,
        })
    }

    /// Calls `f` on each value of the run `first..=last`, in list order.
    pub(super) fn for_each_in_run<'a>(
        &'a self,
        first: SlotId,
        last: SlotId,
        f: &mut impl FnMut(&'a V),
    ) {
        let mut slot = first;
        while let Some(entry) = self.slots.get(slot as usize) {
            if let Some(value) = &entry.value {
                f(value);
            }
            if slot == last {
                break;
            }
            slot = entry.next;
        }
    }

    /// Starts a compaction: empties this store and returns the old slots, whose values
    /// [`Slots::push_from`] moves back in the order of a depth-first walk.
    pub(super) fn take_for_compaction(&mut self, used: usize) -> Vec<Option<V>> {
        let old = std::mem::replace(&mut self.slots, Vec::with_capacity(used));
        self.free = NONE;
        old.into_iter().map(|entry| entry.value).collect()
    }

    /// Moves the value of old slot `old_slot` to the end of the list; returns its new slot.
    /// The list stays in ascending slot order, `prev`/`next` being the neighbouring slots.
    pub(super) fn push_from(&mut self, old: &mut [Option<V>], old_slot: SlotId) -> SlotId {
        let Some(value) = old.get_mut(old_slot as usize).and_then(Option::take) else {
            return NONE;
        };
        let slot = self.slots.len() as SlotId;
        if let Some(previous) = self.slots.last_mut() {
            previous.next = slot;
        }
        self.slots.push(Slot {
            value: Some(value),
            prev: slot.checked_sub(1).unwrap_or(NONE),
            next: NONE,
        });
        slot
    }

    /// The slot ids of the list in order, and `prev` checked against it (tests only).
    #[cfg(test)]
    pub(super) fn list_from(&self, first: SlotId) -> Vec<SlotId> {
        let mut order = Vec::new();
        let mut prev = NONE;
        let mut slot = first;
        while let Some(entry) = self.slots.get(slot as usize) {
            assert!(entry.value.is_some(), "free slot {slot} in the list");
            assert_eq!(entry.prev, prev, "prev of slot {slot}");
            assert!(order.len() < self.slots.len(), "the list has a cycle");
            order.push(slot);
            prev = slot;
            slot = entry.next;
        }
        order
    }
}
