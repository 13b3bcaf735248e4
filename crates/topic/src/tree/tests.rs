//! `TopicTree` against a plain map filtered with the reference matcher.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::matches;

fn matching<V: Clone + Ord>(tree: &TopicTree<V>, filter: &str) -> Vec<V> {
    let mut out = Vec::new();
    tree.for_each_matching(filter, |value| out.push(value.clone()));
    out.sort();
    out
}

/// Checks the slot list and the runs: the list holds exactly the stored values, and each
/// node's run is a contiguous stretch of it holding exactly its subtree's values.
fn check_runs<V>(tree: &TopicTree<V>) {
    let order = tree.slots.list_from(tree.root.first);
    assert_eq!(order.len(), tree.len(), "the list holds every value once");
    let position: std::collections::HashMap<SlotId, usize> = order
        .iter()
        .enumerate()
        .map(|(i, &slot)| (slot, i))
        .collect();
    fn subtree(
        node: &TopicNode,
        position: &std::collections::HashMap<SlotId, usize>,
    ) -> Vec<usize> {
        let mut held = Vec::new();
        if node.value != NONE {
            held.push(position[&node.value]);
        }
        node.children
            .for_each(|_, child| held.extend(subtree(child, position)));
        held.sort_unstable();
        if held.is_empty() {
            assert_eq!((node.first, node.last), (NONE, NONE), "an empty run");
        } else {
            let (first, last) = (position[&node.first], position[&node.last]);
            let run: Vec<usize> = (first..=last).collect();
            assert_eq!(held, run, "the run holds exactly the subtree's values");
        }
        held
    }
    subtree(&tree.root, &position);
    if let Some(&last) = order.last() {
        assert_eq!(tree.root.last, last);
    }
}

#[test]
fn insert_get_remove() {
    let mut tree = TopicTree::new();
    assert!(tree.is_empty());
    assert_eq!(tree.insert("a/b", 1), None);
    assert_eq!(tree.insert("a", 2), None);
    assert_eq!(tree.insert("a/b", 3), Some(1));
    assert_eq!(tree.len(), 2);
    assert_eq!(tree.get("a/b"), Some(&3));
    assert_eq!(tree.get("a"), Some(&2));
    assert_eq!(tree.get("a/b/c"), None);
    assert_eq!(tree.get("b"), None);
    assert_eq!(tree.remove("a/b/c"), None);
    assert_eq!(tree.remove("a"), Some(2));
    assert_eq!(tree.remove("a"), None);
    assert_eq!(tree.get("a/b"), Some(&3));
    assert_eq!(tree.remove("a/b"), Some(3));
    assert!(tree.is_empty());
    assert_eq!(tree.node_count(), 1);
}

#[test]
fn spec_filters_over_stored_topics() {
    let mut tree: TopicTree<String> = TopicTree::default();
    let stored = [
        "sport",
        "sport/",
        "sport/tennis/player1",
        "sport/tennis/player1/ranking",
        "sport/tennis/player2",
        "/finance",
        "$SYS",
        "$SYS/x",
        "$SYS/monitor/Clients",
        "a/$x",
    ];
    for topic in stored {
        tree.insert(topic, topic.to_owned());
    }
    check_runs(&tree);
    let table: &[(&str, &[&str])] = &[
        (
            "sport/tennis/player1/#",
            &["sport/tennis/player1", "sport/tennis/player1/ranking"],
        ),
        (
            "sport/#",
            &[
                "sport",
                "sport/",
                "sport/tennis/player1",
                "sport/tennis/player1/ranking",
                "sport/tennis/player2",
            ],
        ),
        ("sport/+", &["sport/"]),
        (
            "sport/tennis/+",
            &["sport/tennis/player1", "sport/tennis/player2"],
        ),
        ("+", &["sport"]),
        ("+/+", &["/finance", "a/$x", "sport/"]),
        ("/+", &["/finance"]),
        (
            "#",
            &[
                "/finance",
                "a/$x",
                "sport",
                "sport/",
                "sport/tennis/player1",
                "sport/tennis/player1/ranking",
                "sport/tennis/player2",
            ],
        ),
        ("+/monitor/Clients", &[]),
        ("$SYS/#", &["$SYS", "$SYS/monitor/Clients", "$SYS/x"]),
        ("$SYS/+", &["$SYS/x"]),
        ("$SYS", &["$SYS"]),
        ("nothing/#", &[]),
    ];
    for (filter, expected) in table {
        assert_eq!(matching(&tree, filter), *expected, "filter {filter:?}");
    }
}

#[test]
fn iter_returns_every_entry() {
    let mut tree = TopicTree::new();
    for (value, topic) in (0u32..).zip(["a", "a/b", "/", "//", "", "$SYS/x", "b/c/d"]) {
        tree.insert(topic, value);
    }
    let mut all: Vec<(String, u32)> = tree.iter().map(|(t, v)| (t, *v)).collect();
    all.sort();
    let expected: Vec<(String, u32)> = vec![
        ("".into(), 4),
        ("$SYS/x".into(), 5),
        ("/".into(), 2),
        ("//".into(), 3),
        ("a".into(), 0),
        ("a/b".into(), 1),
        ("b/c/d".into(), 6),
    ];
    assert_eq!(all, expected);
    assert_eq!(TopicTree::<u32>::new().iter().count(), 0);
}

#[test]
fn wide_levels_promote_and_demote() {
    let mut tree = TopicTree::new();
    for id in 0..50u32 {
        tree.insert(&format!("devices/{id}/state"), id);
    }
    check_runs(&tree);
    assert_eq!(matching(&tree, "devices/+/state").len(), 50);
    assert_eq!(matching(&tree, "devices/7/#"), vec![7]);
    assert_eq!(matching(&tree, "devices/#").len(), 50);
    for id in 0..50u32 {
        assert_eq!(tree.remove(&format!("devices/{id}/state")), Some(id));
    }
    assert!(tree.is_empty());
    assert_eq!(tree.node_count(), 1);
}

/// Topics of 1 to 4 levels over `alphabet` (which should include `$` levels and the empty one).
fn topic_strategy(alphabet: &'static [&'static str]) -> impl Strategy<Value = String> {
    let level = prop::sample::select(alphabet);
    prop::collection::vec(level, 1..5).prop_map(|levels| levels.join("/"))
}

fn filter_strategy(alphabet: &'static [&'static str]) -> impl Strategy<Value = String> {
    let level = prop::sample::select(alphabet);
    (prop::collection::vec(level, 0..4), any::<bool>()).prop_map(|(mut levels, hash)| {
        if hash || levels.is_empty() {
            levels.push("#");
        }
        levels.join("/")
    })
}

const FEW: &[&str] = &["", "a", "b", "$SYS", "$x"];
const FEW_FILTER: &[&str] = &["", "a", "b", "$SYS", "+"];
/// More than `small_map`'s promotion threshold of children per node.
const MANY: &[&str] = &[
    "", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "$SYS", "$x",
];
const MANY_FILTER: &[&str] = &["", "a", "b", "c", "k", "$SYS", "+"];

/// Applies `ops` to a tree and to a map, checking they agree along the way, then checks
/// every filter against the map filtered by `matches`, and empties both.
fn agrees_with_reference(ops: &[(String, bool)], filters: &[String]) -> Result<(), TestCaseError> {
    let mut tree: TopicTree<(String, u32)> = TopicTree::new();
    let mut model: BTreeMap<String, u32> = BTreeMap::new();
    for (value, (topic, insert)) in (0u32..).zip(ops) {
        if *insert {
            let old = tree.insert(topic, (topic.clone(), value)).map(|(_, v)| v);
            prop_assert_eq!(old, model.insert(topic.clone(), value));
            prop_assert_eq!(tree.get(topic), Some(&(topic.clone(), value)));
        } else {
            let old = tree.remove(topic).map(|(_, v)| v);
            prop_assert_eq!(old, model.remove(topic));
            prop_assert_eq!(tree.get(topic), None);
        }
        prop_assert_eq!(tree.len(), model.len());
        check_runs(&tree);
    }
    for filter in filters {
        let expected: Vec<(String, u32)> = model
            .iter()
            .filter(|(topic, _)| matches(filter, topic))
            .map(|(topic, value)| (topic.clone(), *value))
            .collect();
        prop_assert_eq!(matching(&tree, filter), expected, "filter {:?}", filter);
    }
    let mut all: Vec<(String, u32)> = tree.iter().map(|(t, (_, v))| (t, *v)).collect();
    all.sort();
    let expected: Vec<(String, u32)> = model.iter().map(|(t, v)| (t.clone(), *v)).collect();
    prop_assert_eq!(all, expected);
    for (topic, value) in &model {
        prop_assert_eq!(tree.remove(topic).map(|(_, v)| v), Some(*value));
        check_runs(&tree);
    }
    prop_assert!(tree.is_empty());
    prop_assert_eq!(tree.node_count(), 1);
    prop_assert_eq!(tree.slots.capacity(), 0, "an empty tree keeps no slots");
    Ok(())
}

proptest! {
    /// The tree agrees with a map filtered by `matches`, through inserts and removes, and
    /// removing everything leaves only the root.
    #[test]
    fn tree_agrees_with_reference(
        ops in prop::collection::vec((topic_strategy(FEW), any::<bool>()), 1..60),
        filters in prop::collection::vec(filter_strategy(FEW_FILTER), 1..20),
    ) {
        agrees_with_reference(&ops, &filters)?;
    }

    /// The same with wide levels (hash-map children) and enough churn to compact the slots.
    #[test]
    fn wide_tree_with_churn_agrees_with_reference(
        ops in prop::collection::vec((topic_strategy(MANY), prop::bool::weighted(0.6)), 50..400),
        filters in prop::collection::vec(filter_strategy(MANY_FILTER), 1..20),
    ) {
        agrees_with_reference(&ops, &filters)?;
    }
}

#[test]
fn removing_most_topics_compacts_the_slots_in_tree_order() {
    let mut tree = TopicTree::new();
    // Interleaved so that the runs of `a` and `b` are not in slot order to begin with.
    for i in 0..200u32 {
        let parent = if i % 2 == 0 { "a" } else { "b" };
        tree.insert(&format!("{parent}/{i}"), i);
    }
    check_runs(&tree);
    assert_eq!(tree.slots.capacity(), 200);
    for i in 0..160u32 {
        let parent = if i % 2 == 0 { "a" } else { "b" };
        assert_eq!(tree.remove(&format!("{parent}/{i}")), Some(i));
        check_runs(&tree);
    }
    assert_eq!(tree.len(), 40);
    assert!(
        tree.slots.capacity() < 100,
        "compacted: {}",
        tree.slots.capacity()
    );
    // After compaction the list is in slot order (removals since keep it so).
    let order = tree.slots.list_from(tree.root.first);
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    let evens: Vec<u32> = (160..200).filter(|i| i % 2 == 0).collect();
    assert_eq!(matching(&tree, "a/#"), evens);
    assert_eq!(matching(&tree, "+/+").len(), 40);
    assert_eq!(tree.insert("a/1000", 1000), None);
    check_runs(&tree);
    assert_eq!(matching(&tree, "a/#").len(), 21);
}

#[test]
fn multi_level_wildcard_includes_the_parent_and_skips_dollar_topics_at_the_root() {
    let mut tree = TopicTree::new();
    for (value, topic) in (0u32..).zip(["sport", "sport/tennis", "$SYS/x", "$SYS", "x", "/y"]) {
        tree.insert(topic, value);
    }
    assert_eq!(matching(&tree, "sport/#"), vec![0, 1]);
    assert_eq!(matching(&tree, "#"), vec![0, 1, 4, 5]);
    assert_eq!(matching(&tree, "$SYS/#"), vec![2, 3]);
    assert_eq!(matching(&tree, "+/#"), vec![0, 1, 4, 5]);
    assert_eq!(matching(&tree, "sport/tennis/#"), vec![1]);
    assert_eq!(matching(&tree, "nothing/#"), Vec::<u32>::new());
}

#[test]
fn node_sizes() {
    // x86-64: a child entry is one cache line (an inline level and the node), a slot 16
    // bytes for an `Arc` value.
    assert_eq!(std::mem::size_of::<TopicNode>(), 40);
    assert_eq!(std::mem::size_of::<(Level, TopicNode)>(), 64);
}
