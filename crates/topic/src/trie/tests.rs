//! `SubscriptionTrie` against the reference matcher: examples, then proptest.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::matches;

/// The entries matched by `topic`, sorted so that two answers compare as multisets.
fn matched<K: Eq + Hash + Clone + Ord, V: Clone + Ord>(
    trie: &SubscriptionTrie<K, V>,
    topic: &str,
) -> Vec<(K, V)> {
    let mut out = Vec::new();
    trie.for_each_match(topic, |k, v| out.push((k.clone(), v.clone())));
    out.sort();
    out
}

#[test]
fn insert_get_replace_remove() {
    let mut trie = SubscriptionTrie::new();
    assert!(trie.is_empty());
    assert_eq!(trie.insert("a/b", "c1", 1), None);
    assert_eq!(trie.insert("a/b", "c2", 2), None);
    assert_eq!(trie.insert("a/b", "c1", 3), Some(1));
    assert_eq!(trie.insert("a/#", "c1", 4), None);
    assert_eq!(trie.insert("a/+", "c1", 5), None);
    assert_eq!(trie.len(), 4);
    assert_eq!(trie.get("a/b", &"c1"), Some(&3));
    assert_eq!(trie.get("a/#", &"c1"), Some(&4));
    assert_eq!(trie.get("a/+", &"c1"), Some(&5));
    assert_eq!(trie.get("a", &"c1"), None);
    assert_eq!(trie.get("a/b/c", &"c1"), None);
    assert_eq!(trie.get("a/b", &"c3"), None);
    assert_eq!(
        matched(&trie, "a/b"),
        vec![("c1", 3), ("c1", 4), ("c1", 5), ("c2", 2)]
    );
    assert_eq!(matched(&trie, "a"), vec![("c1", 4)]);
    assert_eq!(matched(&trie, "a/c"), vec![("c1", 4), ("c1", 5)]);
    assert_eq!(matched(&trie, "b"), vec![]);

    assert_eq!(trie.remove("a/b", &"c3"), None);
    assert_eq!(trie.remove("a/x", &"c1"), None);
    assert_eq!(trie.remove("a/b", &"c1"), Some(3));
    assert_eq!(trie.remove("a/b", &"c1"), None);
    assert_eq!(trie.remove("a/#", &"c1"), Some(4));
    assert_eq!(trie.remove("a/+", &"c1"), Some(5));
    assert_eq!(trie.len(), 1);
    assert_eq!(trie.remove("a/b", &"c2"), Some(2));
    assert!(trie.is_empty());
    assert_eq!(trie.node_count(), 1);
}

#[test]
fn dollar_topics() {
    let mut trie = SubscriptionTrie::default();
    for (i, filter) in [
        "#",
        "+",
        "+/monitor/Clients",
        "+/#",
        "$SYS/#",
        "$SYS/+/Clients",
        "$SYS",
    ]
    .into_iter()
    .enumerate()
    {
        trie.insert(filter, i, filter);
    }
    assert_eq!(
        matched(&trie, "$SYS/monitor/Clients"),
        vec![(4, "$SYS/#"), (5, "$SYS/+/Clients")]
    );
    assert_eq!(matched(&trie, "$SYS"), vec![(4, "$SYS/#"), (6, "$SYS")]);
    assert_eq!(
        matched(&trie, "sys/monitor/Clients"),
        vec![(0, "#"), (2, "+/monitor/Clients"), (3, "+/#")]
    );
    assert_eq!(matched(&trie, "x"), vec![(0, "#"), (1, "+"), (3, "+/#")]);
}

#[test]
fn empty_levels() {
    let mut trie = SubscriptionTrie::new();
    trie.insert("+/+", 1, ());
    trie.insert("/+", 2, ());
    trie.insert("+", 3, ());
    trie.insert("/", 4, ());
    trie.insert("#", 5, ());
    let keys = |topic| {
        matched(&trie, topic)
            .into_iter()
            .map(|(k, ())| k)
            .collect::<Vec<_>>()
    };
    assert_eq!(keys("/finance"), vec![1, 2, 5]);
    assert_eq!(keys("/"), vec![1, 2, 4, 5]);
    assert_eq!(keys("finance"), vec![3, 5]);
}

#[test]
fn many_keys_and_many_children() {
    let mut trie = SubscriptionTrie::new();
    // Enough to promote both the entry list and the child list to hash maps, then remove
    // enough to demote them again, checking the answers all along.
    for id in 0..100u32 {
        assert_eq!(trie.insert("broadcast/all", id, id), None);
        assert_eq!(trie.insert(&format!("devices/{id}/cmd"), id, id), None);
        assert_eq!(trie.insert("devices/+/cmd", id, id + 1000), None);
    }
    assert_eq!(trie.len(), 300);
    assert_eq!(trie.insert("broadcast/all", 7, 70), Some(7));
    assert_eq!(matched(&trie, "broadcast/all").len(), 100);
    assert_eq!(matched(&trie, "devices/42/cmd"), {
        let mut expected: Vec<(u32, u32)> = (0..100).map(|id| (id, id + 1000)).collect();
        expected.push((42, 42));
        expected.sort();
        expected
    });
    for id in 0..98u32 {
        assert!(trie.remove("broadcast/all", &id).is_some());
        assert_eq!(trie.remove(&format!("devices/{id}/cmd"), &id), Some(id));
        assert_eq!(trie.remove("devices/+/cmd", &id), Some(id + 1000));
    }
    assert_eq!(matched(&trie, "broadcast/all"), vec![(98, 98), (99, 99)]);
    assert_eq!(
        matched(&trie, "devices/99/cmd"),
        vec![(98, 1098), (99, 99), (99, 1099)]
    );
    for id in 98..100u32 {
        trie.remove("broadcast/all", &id);
        trie.remove(&format!("devices/{id}/cmd"), &id);
        trie.remove("devices/+/cmd", &id);
    }
    assert!(trie.is_empty());
    assert_eq!(trie.node_count(), 1);
}

#[test]
fn node_sizes() {
    // The numbers quoted in the module documentation; bounds rather than equalities so that
    // a better std layout does not fail the test.
    let node = std::mem::size_of::<Node<u64, u8>>();
    let map = std::mem::size_of::<SmallMap<Box<str>, Node<u64, u8>>>();
    let slot = std::mem::size_of::<(Box<str>, Node<u64, u8>)>();
    println!("node {node} B, child map {map} B, child slot {slot} B");
    assert!(map <= 24, "SmallMap is {map} bytes");
    assert!(node <= 64, "Node is {node} bytes");
    assert!(slot <= 80, "child slot is {slot} bytes");
}

/// Filter levels, including the empty level and a `$` level in any position.
fn filter_strategy() -> impl Strategy<Value = String> {
    let level = prop::sample::select(vec!["", "a", "b", "$SYS", "+"]);
    (prop::collection::vec(level, 0..4), any::<bool>()).prop_map(|(levels, hash)| {
        let mut levels: Vec<&str> = levels;
        if hash || levels.is_empty() {
            levels.push("#");
        }
        levels.join("/")
    })
}

fn topic_strategy() -> impl Strategy<Value = String> {
    let level = prop::sample::select(vec!["", "a", "b", "$SYS", "$x"]);
    prop::collection::vec(level, 1..6).prop_map(|levels| levels.join("/"))
}

#[derive(Debug, Clone)]
enum Op {
    Insert(String, u8),
    Remove(String, u8),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (filter_strategy(), 0..4u8).prop_map(|(f, k)| Op::Insert(f, k)),
        1 => (filter_strategy(), 0..4u8).prop_map(|(f, k)| Op::Remove(f, k)),
    ]
}

proptest! {
    /// The trie agrees with a hash map of entries filtered by `matches`, through any
    /// sequence of inserts and removes, and removing everything leaves only the root.
    #[test]
    fn trie_agrees_with_reference(
        ops in prop::collection::vec(op_strategy(), 1..60),
        topics in prop::collection::vec(topic_strategy(), 1..20),
    ) {
        let mut trie = SubscriptionTrie::new();
        let mut model: HashMap<(String, u8), u32> = HashMap::new();
        for (value, op) in (0u32..).zip(&ops) {
            match op {
                Op::Insert(filter, key) => {
                    let expected = model.insert((filter.clone(), *key), value);
                    prop_assert_eq!(trie.insert(filter, *key, value), expected);
                    prop_assert_eq!(trie.get(filter, key), Some(&value));
                }
                Op::Remove(filter, key) => {
                    let expected = model.remove(&(filter.clone(), *key));
                    prop_assert_eq!(trie.remove(filter, key), expected);
                    prop_assert_eq!(trie.get(filter, key), None);
                }
            }
            prop_assert_eq!(trie.len(), model.len());
        }
        for topic in &topics {
            let mut expected: Vec<(u8, u32)> = model
                .iter()
                .filter(|((filter, _), _)| matches(filter, topic))
                .map(|((_, key), value)| (*key, *value))
                .collect();
            expected.sort();
            prop_assert_eq!(matched(&trie, topic), expected, "topic {:?}", topic);
        }
        for ((filter, key), value) in &model {
            prop_assert_eq!(trie.remove(filter, key), Some(*value));
        }
        prop_assert!(trie.is_empty());
        prop_assert_eq!(trie.node_count(), 1);
    }
}
