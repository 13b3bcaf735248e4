//! Tables of legal and illegal topic names, filters and shared-subscription filters.

use super::*;
use TopicError::*;

const LIMITS: TopicLimits = TopicLimits {
    max_topic_length: 32,
    max_topic_levels: 4,
};

#[test]
fn default_limits() {
    let limits = TopicLimits::default();
    assert_eq!(limits.max_topic_length, 4096);
    assert_eq!(limits.max_topic_levels, 128);
}

#[test]
fn topic_names() {
    let table: &[(&str, Result<(), TopicError>)] = &[
        ("a", Ok(())),
        ("sport/tennis/player1", Ok(())),
        ("/", Ok(())),
        ("/finance", Ok(())),
        ("a//b", Ok(())),
        (" ", Ok(())),
        ("$SYS/broker/uptime", Ok(())),
        ("$share/g/x", Ok(())),
        ("ünïcödé/トピック", Ok(())),
        ("a/b/c/d", Ok(())),
        ("", Err(Empty)),
        ("a/+", Err(WildcardInTopicName)),
        ("+", Err(WildcardInTopicName)),
        ("#", Err(WildcardInTopicName)),
        ("sport/#", Err(WildcardInTopicName)),
        ("a+b", Err(WildcardInTopicName)),
        ("a#b", Err(WildcardInTopicName)),
        ("a\0b", Err(NullCharacter)),
        ("a/b/c/d/e", Err(TooManyLevels { levels: 5, max: 4 })),
        ("////", Err(TooManyLevels { levels: 5, max: 4 })),
        (
            "0123456789012345678901234567890123",
            Err(TooLong { len: 34, max: 32 }),
        ),
    ];
    for (topic, expected) in table {
        assert_eq!(
            &validate_topic_name(topic, &LIMITS),
            expected,
            "topic name {topic:?}"
        );
    }
}

#[test]
fn topic_filters() {
    let table: &[(&str, Result<(), TopicError>)] = &[
        ("a", Ok(())),
        ("#", Ok(())),
        ("+", Ok(())),
        ("sport/tennis/player1/#", Ok(())),
        ("sport/#", Ok(())),
        ("sport/+", Ok(())),
        ("+/tennis/#", Ok(())),
        ("sport/+/player1", Ok(())),
        ("+/+", Ok(())),
        ("/+", Ok(())),
        ("/#", Ok(())),
        ("+/", Ok(())),
        ("a//b", Ok(())),
        ("$SYS/#", Ok(())),
        ("$share/g/x", Ok(())),
        ("", Err(Empty)),
        ("a/b#", Err(InvalidWildcard)),
        ("sport/tennis#", Err(InvalidWildcard)),
        ("a+/b", Err(InvalidWildcard)),
        ("sport+", Err(InvalidWildcard)),
        ("#/a", Err(InvalidWildcard)),
        ("sport/tennis/#/ranking", Err(InvalidWildcard)),
        ("##", Err(InvalidWildcard)),
        ("++", Err(InvalidWildcard)),
        ("#/", Err(InvalidWildcard)),
        ("a/\0", Err(NullCharacter)),
        ("+/+/+/+/+", Err(TooManyLevels { levels: 5, max: 4 })),
        (
            "#0123456789012345678901234567890123",
            Err(TooLong { len: 35, max: 32 }),
        ),
    ];
    for (filter, expected) in table {
        assert_eq!(
            &validate_topic_filter(filter, &LIMITS),
            expected,
            "topic filter {filter:?}"
        );
    }
}

#[test]
fn subscription_filters() {
    use SubscriptionFilter::{Normal, Shared};
    let table: &[(&str, Result<SubscriptionFilter<'_>, TopicError>)] = &[
        ("a/b", Ok(Normal("a/b"))),
        ("#", Ok(Normal("#"))),
        ("$SYS/#", Ok(Normal("$SYS/#"))),
        ("$share", Ok(Normal("$share"))),
        ("$shared/g/x", Ok(Normal("$shared/g/x"))),
        ("$SHARE/g/x", Ok(Normal("$SHARE/g/x"))),
        (
            "$share/g/x",
            Ok(Shared {
                group: "g",
                filter: "x",
            }),
        ),
        (
            "$share/consumer1/sport/tennis/+",
            Ok(Shared {
                group: "consumer1",
                filter: "sport/tennis/+",
            }),
        ),
        (
            "$share/g/#",
            Ok(Shared {
                group: "g",
                filter: "#",
            }),
        ),
        (
            "$share/g//",
            Ok(Shared {
                group: "g",
                filter: "/",
            }),
        ),
        (
            "$share/$g/$SYS/+",
            Ok(Shared {
                group: "$g",
                filter: "$SYS/+",
            }),
        ),
        ("$share/", Err(InvalidSharedSubscription)),
        ("$share/grp", Err(InvalidSharedSubscription)),
        ("$share/grp/", Err(InvalidSharedSubscription)),
        ("$share//x", Err(InvalidSharedSubscription)),
        ("$share/g+/x", Err(InvalidSharedSubscription)),
        ("$share/+/x", Err(InvalidSharedSubscription)),
        ("$share/g#/x", Err(InvalidSharedSubscription)),
        ("$share/#/x", Err(InvalidSharedSubscription)),
        ("$share/g\0/x", Err(NullCharacter)),
        ("$share/g/a+", Err(InvalidWildcard)),
        ("$share/g/#/a", Err(InvalidWildcard)),
        ("$share/g/a\0", Err(NullCharacter)),
        (
            "$share/g/a/b/c/d/e",
            Err(TooManyLevels { levels: 5, max: 4 }),
        ),
        (
            "$share/g/0123456789012345678901234",
            Err(TooLong { len: 34, max: 32 }),
        ),
        ("", Err(Empty)),
        ("a+", Err(InvalidWildcard)),
    ];
    for (raw, expected) in table {
        assert_eq!(
            &parse_subscription_filter(raw, &LIMITS),
            expected,
            "subscription filter {raw:?}"
        );
    }
}

#[test]
fn topic_filter_of_subscription() {
    let limits = TopicLimits::default();
    let shared = parse_subscription_filter("$share/g/a/+", &limits);
    assert_eq!(shared.map(|f| f.topic_filter()), Ok("a/+"));
    let normal = parse_subscription_filter("a/#", &limits);
    assert_eq!(normal.map(|f| f.topic_filter()), Ok("a/#"));
}

#[test]
fn messages_name_the_rule() {
    assert!(Empty.to_string().contains("[MQTT-4.7.3-1]"));
    assert!(WildcardInTopicName.to_string().contains("[MQTT-3.3.2-2]"));
    assert!(InvalidWildcard.to_string().contains("[MQTT-4.7.1-2]"));
    assert!(NullCharacter.to_string().contains("[MQTT-4.7.3-2]"));
    let shared = InvalidSharedSubscription.to_string();
    assert!(shared.contains("[MQTT-4.8.2-1]"), "{shared}");
    assert!(shared.contains("$share/{ShareName}/{filter}"), "{shared}");
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Strings built from the characters the rules care about, so that the interesting
    /// cases are common.
    fn raw_strategy() -> impl Strategy<Value = String> {
        let piece = prop::sample::select(vec![
            "", "a", "/", "+", "#", "$", "\0", "$share/", "$SYS", "é", "g",
        ]);
        prop::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        /// Validation never panics, and what it accepts is consistent across the functions.
        #[test]
        fn validation_is_total_and_consistent(raw in raw_strategy()) {
            let limits = TopicLimits::default();
            let name = validate_topic_name(&raw, &limits);
            let filter = validate_topic_filter(&raw, &limits);
            // Every valid topic name is also a valid filter (one with no wildcards).
            if name.is_ok() {
                prop_assert_eq!(&filter, &Ok(()));
            }
            match parse_subscription_filter(&raw, &limits) {
                Ok(SubscriptionFilter::Normal(normal)) => {
                    prop_assert_eq!(normal, raw.as_str());
                    prop_assert!(!raw.starts_with("$share/"));
                    prop_assert_eq!(&filter, &Ok(()));
                }
                Ok(SubscriptionFilter::Shared { group, filter: inner }) => {
                    prop_assert_eq!(format!("$share/{group}/{inner}"), raw.clone());
                    prop_assert!(!group.is_empty() && !group.contains(['/', '+', '#']));
                    prop_assert_eq!(validate_topic_filter(inner, &limits), Ok(()));
                }
                Err(_) => {
                    if !raw.starts_with("$share/") {
                        prop_assert!(filter.is_err());
                    }
                }
            }
        }
    }
}
