//! `TopicTree`: exact topic names -> values, searched by topic filter. It backs the retained
//! messages: PUBLISH with RETAIN stores under a topic name, SUBSCRIBE asks which stored topics
//! its filter matches.
//!
//! The lookup direction is the reverse of `SubscriptionTrie`: here the stored keys are
//! literal and the query has wildcards. This module must not know what a retained message
//! is (expiry, QoS, payload): it stores any `V`.

use crate::matcher::{is_multi_level, split_level};
use crate::small_map::{self, SmallMap};

/// Retained-message index: exact topic names -> `V`, searchable by topic filter.
///
/// The root stands for no topic; the topic `a/b` lives at root -> `a` -> `b`, and the
/// empty topic level is an ordinary child (`/a` is root -> `` -> `a`).
#[derive(Debug, Clone)]
pub struct TopicTree<V> {
    root: TopicNode<V>,
    len: usize,
}

#[derive(Debug, Clone)]
struct TopicNode<V> {
    value: Option<V>,
    children: SmallMap<Box<str>, TopicNode<V>>,
}

impl<V> Default for TopicNode<V> {
    fn default() -> Self {
        Self {
            value: None,
            children: SmallMap::default(),
        }
    }
}

impl<V> TopicNode<V> {
    fn is_empty(&self) -> bool {
        self.value.is_none() && self.children.is_empty()
    }

    /// Removes the value at `rest` below this node, pruning emptied children on the way
    /// back up. Recursion depth is the topic's level count.
    fn remove(&mut self, rest: &str) -> Option<V> {
        let (level, next) = split_level(rest);
        let child = self.children.get_mut(level)?;
        let old = match next {
            Some(next) => child.remove(next),
            None => child.value.take(),
        };
        if child.is_empty() {
            self.children.remove(level);
        }
        old
    }

    /// Reports every stored topic below this node matched by the filter levels `rest`
    /// (`None`: the filter ended here). `path` holds this node's topic and is restored
    /// before returning; `depth` is its level count (0 for the root).
    fn for_each_matching<F: FnMut(&str, &V)>(
        &self,
        rest: Option<&str>,
        path: &mut String,
        depth: usize,
        f: &mut F,
    ) {
        let Some(rest) = rest else {
            if let Some(value) = &self.value {
                f(path, value);
            }
            return;
        };
        let (level, next) = split_level(rest);
        if is_multi_level(level, next) {
            // `sport/#` matches `sport` itself [MQTT-4.7.1-2]; the root holds no value.
            if let Some(value) = &self.value {
                f(path, value);
            }
            self.for_each_child(path, depth, |child, path| {
                child.for_each_below(path, depth + 1, f);
            });
        } else if level == "+" {
            self.for_each_child(path, depth, |child, path| {
                child.for_each_matching(next, path, depth + 1, f);
            });
        } else if let Some(child) = self.children.get(level) {
            let base = push_level(path, depth, level);
            child.for_each_matching(next, path, depth + 1, f);
            path.truncate(base);
        }
    }

    /// Reports this node's value and every value below it.
    fn for_each_below<F: FnMut(&str, &V)>(&self, path: &mut String, depth: usize, f: &mut F) {
        if let Some(value) = &self.value {
            f(path, value);
        }
        self.for_each_child(path, depth, |child, path| {
            child.for_each_below(path, depth + 1, f);
        });
    }

    /// Calls `visit` on each child with `path` extended by the child's level, skipping
    /// `$` levels at the root: a filter starting with a wildcard does not match a topic
    /// starting with `$` [MQTT-4.7.2-1].
    fn for_each_child(
        &self,
        path: &mut String,
        depth: usize,
        mut visit: impl FnMut(&TopicNode<V>, &mut String),
    ) {
        self.children.for_each(|level, child| {
            if depth == 0 && level.starts_with('$') {
                return;
            }
            let base = push_level(path, depth, level);
            visit(child, path);
            path.truncate(base);
        });
    }

    #[cfg(test)]
    fn node_count(&self) -> usize {
        let mut count = 1;
        self.children
            .for_each(|_, child| count += child.node_count());
        count
    }
}

/// Appends `level` to the topic `path` of a node at `depth`; returns the length to truncate
/// back to.
fn push_level(path: &mut String, depth: usize, level: &str) -> usize {
    let base = path.len();
    if depth > 0 {
        path.push('/');
    }
    path.push_str(level);
    base
}

impl<V> TopicTree<V> {
    /// An empty tree.
    pub fn new() -> Self {
        Self {
            root: TopicNode::default(),
            len: 0,
        }
    }

    /// Stores `value` under `topic`, returning the value it replaces.
    pub fn insert(&mut self, topic: &str, value: V) -> Option<V> {
        let mut node = &mut self.root;
        let mut rest = Some(topic);
        while let Some(levels) = rest {
            let (level, next) = split_level(levels);
            node = node
                .children
                .get_or_insert_with(level, || level.into(), TopicNode::default);
            rest = next;
        }
        let old = node.value.replace(value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes the value stored under `topic`. Nodes left empty are freed.
    pub fn remove(&mut self, topic: &str) -> Option<V> {
        let old = self.root.remove(topic);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// The value stored under exactly `topic`.
    pub fn get(&self, topic: &str) -> Option<&V> {
        let mut node = &self.root;
        let mut rest = Some(topic);
        while let Some(levels) = rest {
            let (level, next) = split_level(levels);
            node = node.children.get(level)?;
            rest = next;
        }
        node.value.as_ref()
    }

    /// Calls `f(topic, value)` for every stored topic matched by `filter`, with the same
    /// semantics as [`crate::matches`] including the `$`-rule: `#` does not return `$SYS/x`.
    ///
    /// Allocates one buffer for the topic names it reports; the subtrees of literal filter
    /// levels that do not match are never visited.
    pub fn for_each_matching(&self, filter: &str, mut f: impl FnMut(&str, &V)) {
        let mut path = String::new();
        self.root
            .for_each_matching(Some(filter), &mut path, 0, &mut f);
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
        }
    }

    /// Number of nodes including the root; 1 means no garbage is left.
    #[cfg(test)]
    fn node_count(&self) -> usize {
        self.root.node_count()
    }
}

impl<V> Default for TopicTree<V> {
    fn default() -> Self {
        Self::new()
    }
}

/// Depth-first walk behind [`TopicTree::iter`].
struct Iter<'a, V> {
    /// One frame per node on the current path, the first one the root's.
    stack: Vec<Frame<'a, V>>,
    /// The topic of the node most recently entered.
    path: String,
}

/// The length of a node's topic in `Iter::path`, and the iterator over its remaining
/// children.
type Frame<'a, V> = (usize, small_map::Iter<'a, Box<str>, TopicNode<V>>);

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
            push_level(&mut self.path, depth, level);
            if !child.children.is_empty() {
                self.stack.push((self.path.len(), child.children.iter()));
            }
            if let Some(value) = &child.value {
                return Some((self.path.clone(), value));
            }
        }
    }
}

#[cfg(test)]
mod tests;
