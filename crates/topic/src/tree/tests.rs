//! `TopicTree` against a plain map filtered with the reference matcher.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::matches;

fn matching<V: Clone + Ord>(tree: &TopicTree<V>, filter: &str) -> Vec<(String, V)> {
    let mut out = Vec::new();
    tree.for_each_matching(filter, |topic, value| {
        out.push((topic.to_owned(), value.clone()))
    });
    out.sort();
    out
}

fn topics(tree: &TopicTree<u32>, filter: &str) -> Vec<String> {
    matching(tree, filter)
        .into_iter()
        .map(|(topic, _)| topic)
        .collect()
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
    let mut tree = TopicTree::default();
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
    for (value, topic) in (0u32..).zip(stored) {
        tree.insert(topic, value);
    }
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
        assert_eq!(topics(&tree, filter), *expected, "filter {filter:?}");
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
    assert_eq!(matching(&tree, "devices/+/state").len(), 50);
    assert_eq!(
        matching(&tree, "devices/7/#"),
        vec![("devices/7/state".to_owned(), 7)]
    );
    for id in 0..50u32 {
        assert_eq!(tree.remove(&format!("devices/{id}/state")), Some(id));
    }
    assert!(tree.is_empty());
    assert_eq!(tree.node_count(), 1);
}

fn topic_strategy() -> impl Strategy<Value = String> {
    let level = prop::sample::select(vec!["", "a", "b", "$SYS", "$x"]);
    prop::collection::vec(level, 1..5).prop_map(|levels| levels.join("/"))
}

fn filter_strategy() -> impl Strategy<Value = String> {
    let level = prop::sample::select(vec!["", "a", "b", "$SYS", "+"]);
    (prop::collection::vec(level, 0..4), any::<bool>()).prop_map(|(mut levels, hash)| {
        if hash || levels.is_empty() {
            levels.push("#");
        }
        levels.join("/")
    })
}

proptest! {
    /// The tree agrees with a map filtered by `matches`, through inserts and removes, and
    /// removing everything leaves only the root.
    #[test]
    fn tree_agrees_with_reference(
        ops in prop::collection::vec((topic_strategy(), any::<bool>()), 1..60),
        filters in prop::collection::vec(filter_strategy(), 1..20),
    ) {
        let mut tree = TopicTree::new();
        let mut model: BTreeMap<String, u32> = BTreeMap::new();
        for (value, (topic, insert)) in (0u32..).zip(&ops) {
            if *insert {
                prop_assert_eq!(tree.insert(topic, value), model.insert(topic.clone(), value));
                prop_assert_eq!(tree.get(topic), Some(&value));
            } else {
                prop_assert_eq!(tree.remove(topic), model.remove(topic));
                prop_assert_eq!(tree.get(topic), None);
            }
            prop_assert_eq!(tree.len(), model.len());
        }
        for filter in &filters {
            let expected: Vec<(String, u32)> = model
                .iter()
                .filter(|(topic, _)| matches(filter, topic))
                .map(|(topic, value)| (topic.clone(), *value))
                .collect();
            prop_assert_eq!(matching(&tree, filter), expected, "filter {:?}", filter);
        }
        let mut all: Vec<(String, u32)> = tree.iter().map(|(t, v)| (t, *v)).collect();
        all.sort();
        let expected: Vec<(String, u32)> = model.iter().map(|(t, v)| (t.clone(), *v)).collect();
        prop_assert_eq!(all, expected);
        for (topic, value) in &model {
            prop_assert_eq!(tree.remove(topic), Some(*value));
        }
        prop_assert!(tree.is_empty());
        prop_assert_eq!(tree.node_count(), 1);
    }
}
