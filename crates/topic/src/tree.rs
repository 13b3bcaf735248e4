//! `TopicTree`: exact topic names -> values, searched by topic filter. It backs the retained
//! messages: PUBLISH with RETAIN stores under a topic name, SUBSCRIBE asks which stored topics
//! its filter matches.
//!
//! The lookup direction is the reverse of `SubscriptionTrie`: here the stored keys are
//! literal and the query has wildcards. This module must not know what a retained message
//! is (expiry, QoS, payload): it stores any `V`.

use crate::matcher::{is_multi_level, split_level};
use crate::small_map::{self, SmallMap};

mod level;
mod slots;

use level::Level;
use slots::{NONE, SlotId, Slots, Unlinked};

/// Retained-message index: exact topic names -> `V`, searchable by topic filter.
///
/// The root stands for no topic; the topic `a/b` lives at root -> `a` -> `b`, and the
/// empty topic level is an ordinary child (`/a` is root -> `` -> `a`).
///
/// # Layout
///
/// The nodes hold no values: the values live in one dense array (`slots`), linked in an
/// order that keeps every subtree's values together, and each node records the first and
/// last slot of its subtree's (its *run*). A filter ending in `#` finds the node of its
/// literal prefix and reads that run: contiguous memory, instead of a chain of dependent
/// cache misses per node below it (a child map, its control bytes, a boxed level string, the
/// next child list). Insert and remove adjust the runs of the nodes on their path,
/// O(levels). When three quarters of the slots are free, the array is rebuilt in tree order:
/// memory follows the number of stored topics, as the nodes' does.
///
/// # Memory
///
/// `size_of` on x86-64 (checked by the `node_sizes` test): a child entry is 64 bytes (a
/// 24-byte [`Level`] key, short levels inline, and the 40-byte node), a slot 16 bytes for an
/// 8-byte `V` such as an `Arc`. Measured with 100,000 topics `devices/d{i}/sensor-{s}/state`
/// (`benches/trie.rs`): 225 bytes of RSS per stored topic, values excluded; the tree before
/// the slots, with `Box<str>` keys and values in the nodes, took 229.
#[derive(Debug, Clone)]
pub struct TopicTree<V> {
    root: TopicNode,
    slots: Slots<V>,
    len: usize,
}

#[derive(Debug, Clone)]
struct TopicNode {
    /// The slot of the value stored under this node's topic, or `NONE`.
    value: SlotId,
    /// The run of this node's subtree (its own value and every value below it): `first` to
    /// `last` along the slots' list, both `NONE` when the subtree holds no value.
    first: SlotId,
    last: SlotId,
    /// Keyed by level; short levels are stored inline ([`Level`]).
    children: SmallMap<Level, TopicNode>,
}

impl Default for TopicNode {
    fn default() -> Self {
        Self {
            value: NONE,
            first: NONE,
            last: NONE,
            children: SmallMap::default(),
        }
    }
}

/// What [`TopicNode::insert`] did.
enum Stored<V> {
    /// The topic had a value: this one, replaced in its slot. No run changes.
    Replaced(V),
    /// A new slot, linked right after `anchor` (`NONE`: the list was empty).
    New { slot: SlotId, anchor: SlotId },
}

/// Below this many slots the array is never compacted.
const COMPACT_ABOVE: usize = 64;

impl TopicNode {
    fn is_empty(&self) -> bool {
        self.value == NONE && self.children.is_empty()
    }

    /// Stores `value` at `rest` below this node (`None`: here). `anchor` is the last slot of
    /// the run of the deepest node above with a non-empty run. A new value is linked right
    /// after the run of the deepest non-empty node on its path, which keeps every run
    /// contiguous: runs nest as nodes do, so the only runs that reach that point of the list
    /// are those of that node's ancestors, all on the path. Recursion depth is the topic's
    /// level count.
    fn insert<V>(
        &mut self,
        rest: Option<&str>,
        value: V,
        anchor: SlotId,
        slots: &mut Slots<V>,
    ) -> Stored<V> {
        let anchor = if self.first == NONE {
            anchor
        } else {
            self.last
        };
        let stored = match rest {
            Some(levels) => {
                let (level, next) = split_level(levels);
                let child = self.children.get_or_insert_with(
                    level.as_bytes(),
                    || Level::new(level),
                    TopicNode::default,
                );
                child.insert(next, value, anchor, slots)
            }
            None => {
                if let Some(old) = slots.get_mut(self.value) {
                    return Stored::Replaced(std::mem::replace(old, value));
                }
                let slot = slots.insert_after(anchor, value);
                self.value = slot;
                Stored::New { slot, anchor }
            }
        };
        if let Stored::New { slot, anchor } = stored {
            if self.first == NONE {
                // The run was empty: the new value is all of it.
                self.first = slot;
                self.last = slot;
            } else if self.last == anchor {
                // Linked right after this run's end: the run grows by it.
                self.last = slot;
            }
            // Otherwise it went inside this run, which stays as it is.
        }
        stored
    }

    /// Removes the value at `rest` below this node (`None`: here), pruning emptied children
    /// on the way back up and shrinking the runs that started or ended at its slot.
    /// Recursion depth is the topic's level count.
    fn remove<V>(&mut self, rest: Option<&str>, slots: &mut Slots<V>) -> Option<Unlinked<V>> {
        let unlinked = match rest {
            None => {
                let unlinked = slots.remove(self.value)?;
                self.value = NONE;
                unlinked
            }
            Some(levels) => {
                let (level, next) = split_level(levels);
                let child = self.children.get_mut(level.as_bytes())?;
                let unlinked = child.remove(next, slots)?;
                if child.is_empty() {
                    self.children.remove(level.as_bytes());
                }
                unlinked
            }
        };
        if self.first == unlinked.slot && self.last == unlinked.slot {
            self.first = NONE;
            self.last = NONE;
        } else if self.first == unlinked.slot {
            self.first = unlinked.next;
        } else if self.last == unlinked.slot {
            self.last = unlinked.prev;
        }
        Some(unlinked)
    }

    /// Moves this subtree's values to the end of `slots` in depth-first order and sets the
    /// runs accordingly (see [`TopicTree::compact`]).
    fn renumber<V>(&mut self, old: &mut [Option<V>], slots: &mut Slots<V>) {
        let start = slots.capacity();
        if self.value != NONE {
            self.value = slots.push_from(old, self.value);
        }
        self.children
            .for_each_mut(|_, child| child.renumber(old, slots));
        let end = slots.capacity();
        (self.first, self.last) = if end > start {
            (start as SlotId, (end - 1) as SlotId)
        } else {
            (NONE, NONE)
        };
    }

    #[cfg(test)]
    fn node_count(&self) -> usize {
        let mut count = 1;
        self.children
            .for_each(|_, child| count += child.node_count());
        count
    }
}

impl<V> TopicTree<V> {
    /// An empty tree.
    pub fn new() -> Self {
        Self {
            root: TopicNode::default(),
            slots: Slots::default(),
            len: 0,
        }
    }

    /// Stores `value` under `topic`, returning the value it replaces.
    pub fn insert(&mut self, topic: &str, value: V) -> Option<V> {
        match self.root.insert(Some(topic), value, NONE, &mut self.slots) {
            Stored::Replaced(old) => Some(old),
            Stored::New { .. } => {
                self.len += 1;
                None
            }
        }
    }

    /// Removes the value stored under `topic`. Nodes left empty are freed.
    pub fn remove(&mut self, topic: &str) -> Option<V> {
        let unlinked = self.root.remove(Some(topic), &mut self.slots)?;
        self.len -= 1;
        let capacity = self.slots.capacity();
        if self.len == 0 || (capacity > COMPACT_ABOVE && self.len * 4 <= capacity) {
            self.compact();
        }
        Some(unlinked.value)
    }

    /// Rebuilds the slot array with exactly the stored values, in depth-first order of the
    /// tree: frees the memory of removed topics and makes every run ascending, sequential
    /// memory. O(stored topics); run when three quarters of the slots are free, so amortised
    /// O(1) per remove.
    fn compact(&mut self) {
        let mut old = self.slots.take_for_compaction(self.len);
        self.root.renumber(&mut old, &mut self.slots);
    }

    /// The value stored under exactly `topic`.
    pub fn get(&self, topic: &str) -> Option<&V> {
        let mut node = &self.root;
        let mut rest = Some(topic);
        while let Some(levels) = rest {
            let (level, next) = split_level(levels);
            node = node.children.get(level.as_bytes())?;
            rest = next;
        }
        self.slots.get(node.value)
    }

    /// Calls `f` on the value of every stored topic matched by `filter`, with the same
    /// semantics as [`crate::matches`] including the `$`-rule: `#` does not return `$SYS/x`.
    ///
    /// The topic names are not reported: a `#` reads its subtree's values from the slot
    /// array without visiting the nodes that spell them. A caller that needs the topic
    /// stores it in `V` (a retained message carries its own). Allocates nothing; the
    /// subtrees of literal filter levels that do not match are never visited.
    pub fn for_each_matching<'a>(&'a self, filter: &str, mut f: impl FnMut(&'a V)) {
        self.matching_below(&self.root, Some(filter), true, &mut f);
    }

    /// Reports every value below `node` matched by the filter levels `rest` (`None`: the
    /// filter ended at `node`). Recursion depth is the filter's level count.
    fn matching_below<'a, F: FnMut(&'a V)>(
        &'a self,
        node: &'a TopicNode,
        rest: Option<&str>,
        at_root: bool,
        f: &mut F,
    ) {
        let Some(rest) = rest else {
            if let Some(value) = self.slots.get(node.value) {
                f(value);
            }
            return;
        };
        let (level, next) = split_level(rest);
        if is_multi_level(level, next) {
            if at_root {
                // The root holds no value, and its run holds the `$` topics that a leading
                // wildcard must not match [MQTT-4.7.2-1]: read its other children's runs.
                for_each_child(node, at_root, |child| {
                    self.slots.for_each_in_run(child.first, child.last, f);
                });
            } else {
                // `sport/#` matches `sport` itself [MQTT-4.7.1-2]: its value opens the run.
                self.slots.for_each_in_run(node.first, node.last, f);
            }
        } else if level == "+" {
            for_each_child(node, at_root, |child| {
                self.matching_below(child, next, false, f);
            });
        } else if let Some(child) = node.children.get(level.as_bytes()) {
            self.matching_below(child, next, false, f);
        }
    }

    /// Number of stored topics.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// All `(topic, value)` entries in no particular order, for persistence and snapshots.
    /// Lazy: memory is one topic buffer plus one iterator per level of the current path.
    pub fn iter(&self) -> impl Iterator<Item = (String, &V)> {
        Iter {
            stack: vec![(0, self.root.children.iter())],
            path: String::new(),
            slots: &self.slots,
        }
    }

    /// Number of nodes including the root; 1 means no garbage is left.
    #[cfg(test)]
    fn node_count(&self) -> usize {
        self.root.node_count()
    }
}

/// Calls `visit` on each child of `node`, skipping `$` levels at the root: a filter starting
/// with a wildcard does not match a topic starting with `$` [MQTT-4.7.2-1].
fn for_each_child<'a>(node: &'a TopicNode, at_root: bool, mut visit: impl FnMut(&'a TopicNode)) {
    node.children.for_each(|level, child| {
        if !(at_root && level.as_bytes().first() == Some(&b'$')) {
            visit(child);
        }
    });
}

/// Appends `level` to the topic `path` of a node at `depth`.
fn push_level(path: &mut String, depth: usize, level: &str) {
    if depth > 0 {
        path.push('/');
    }
    path.push_str(level);
}

impl<V> Default for TopicTree<V> {
    fn default() -> Self {
        Self::new()
    }
}

/// Depth-first walk behind [`TopicTree::iter`].
struct Iter<'a, V> {
    /// One frame per node on the current path, the first one the root's.
    stack: Vec<Frame<'a>>,
    /// The topic of the node most recently entered.
    path: String,
    slots: &'a Slots<V>,
}

/// The length of a node's topic in `Iter::path`, and the iterator over its remaining
/// children.
type Frame<'a> = (usize, small_map::Iter<'a, Level, TopicNode>);

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (String, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let depth = self.stack.len().checked_sub(1)?;
            let (base, children) = self.stack.last_mut()?;
            let Some((level, child)) = children.next() else {
                self.stack.pop();
                continue;
            };
            self.path.truncate(*base);
            // The root frame's children are one-level topics: no separator before them.
            push_level(&mut self.path, depth, level.as_str());
            if !child.children.is_empty() {
                self.stack.push((self.path.len(), child.children.iter()));
            }
            if let Some(value) = self.slots.get(child.value) {
                return Some((self.path.clone(), value));
            }
        }
    }
}

#[cfg(test)]
mod tests;
