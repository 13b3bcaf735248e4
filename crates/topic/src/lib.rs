//! Topic names and topic filters (MQTT 3.1.1 / 5.0 section 4.7), shared subscriptions
//! (5.0 section 4.8.2), and the two indexes the broker routes with.
//!
//! This crate owns the *meaning* of a topic string: which strings are legal where, what a
//! filter matches (including the `$`-rule of [MQTT-4.7.2-1]), and the data structures that
//! answer "who is subscribed to this topic?" ([`SubscriptionTrie`]) and "which retained
//! messages does this filter select?" ([`TopicTree`]).
//!
//! It must not know about packets, sessions, permissions or I/O: it is a pure leaf crate
//! (std and `thiserror` only), so the codec, the session state machine and the broker can all
//! use it without pulling each other in.
//!
//! Vocabulary, as in the spec: a *topic name* is what a PUBLISH carries (no wildcards); a
//! *topic filter* is what a SUBSCRIBE carries (may contain `+` and `#`); a *topic level* is
//! the text between two `/` separators. Empty levels are real levels: `a//b` has three levels
//! and `/a` has two, because the spec forbids normalising topics [MQTT-4.7.3-4].
//!
//! # Depth
//!
//! The trie and the tree recurse once per topic level while matching. Callers must
//! validate names and filters with [`TopicLimits`] (default 128 levels) before they reach
//! an index, which bounds that recursion.

mod matcher;
mod small_map;
mod tree;
mod trie;
mod validate;

pub use matcher::matches;
pub use tree::TopicTree;
pub use trie::SubscriptionTrie;
pub use validate::{
    SubscriptionFilter, TopicError, TopicLimits, parse_subscription_filter, validate_topic_filter,
    validate_topic_name,
};
