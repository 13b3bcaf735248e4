//! The reference meaning of "filter matches topic" (section 4.7), and level splitting.
//!
//! [`matches`] is deliberately the simplest correct implementation: the indexes in `trie`
//! and `tree` are tested against it. It must stay free of indexing tricks and allocation.

/// Does topic filter `filter` match topic name `topic`?
///
/// - `#` matches any number of levels, including none: `sport/#` matches `sport`
///   [MQTT-4.7.1-2].
/// - `+` matches exactly one level, which may be empty: `+/+` matches `/finance`,
///   `sport/+` matches `sport/` but not `sport` [MQTT-4.7.1-3].
/// - A filter starting with `+` or `#` does not match a topic starting with `$`
///   [MQTT-4.7.2-1]: `#` does not match `$SYS/x`, but `$SYS/#` does.
/// - Levels compare byte for byte, without normalisation [MQTT-4.7.3-4].
///
/// Both arguments are expected to be valid (see `validate_topic_name` and
/// `validate_topic_filter`). For invalid input the answer is unspecified but consistent with
/// the indexes: a `#` that is not the last level, and wildcards sharing a level with other
/// characters, compare as literal text.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut filter_levels = filter.split('/').peekable();
    let mut topic_levels = topic.split('/');
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            // Matches the parent level and everything below it.
            (Some("#"), _) if filter_levels.peek().is_none() => return true,
            (Some("+"), Some(_)) => {}
            (Some(f), Some(t)) if f == t => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Splits off the first topic level: `("a", Some("b/c"))` for `"a/b/c"`, `("c", None)` for
/// `"c"`. An empty string is one empty level, matching `split('/')`.
pub(crate) fn split_level(levels: &str) -> (&str, Option<&str>) {
    match levels.split_once('/') {
        Some((level, rest)) => (level, Some(rest)),
        None => (levels, None),
    }
}

/// Is this the multi-level wildcard in the only position where it is one: the last level?
pub(crate) fn is_multi_level(level: &str, rest: Option<&str>) -> bool {
    level == "#" && rest.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples() {
        let table: &[(&str, &str, bool)] = &[
            // 4.7.1.2 multi-level wildcard
            ("sport/tennis/player1/#", "sport/tennis/player1", true),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/ranking",
                true,
            ),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/score/wimbledon",
                true,
            ),
            ("sport/tennis/player1/#", "sport/tennis/player2", false),
            ("sport/tennis/player1/#", "sport/tennis", false),
            ("sport/#", "sport", true),
            ("sport/#", "sport/", true),
            ("sport/#", "sports", false),
            ("#", "sport", true),
            ("#", "/", true),
            ("#", "sport/tennis/player1", true),
            // 4.7.1.3 single-level wildcard
            ("sport/tennis/+", "sport/tennis/player1", true),
            ("sport/tennis/+", "sport/tennis/player2", true),
            ("sport/tennis/+", "sport/tennis/player1/ranking", false),
            ("sport/+", "sport", false),
            ("sport/+", "sport/", true),
            ("+", "sport", true),
            ("+", "/finance", false),
            ("+/+", "/finance", true),
            ("/+", "/finance", true),
            ("+/tennis/#", "sport/tennis", true),
            ("+/tennis/#", "sport/tennis/player1", true),
            ("+/tennis/#", "sport/golf", false),
            ("sport/+/player1", "sport/tennis/player1", true),
            ("sport/+/player1", "sport//player1", true),
            ("sport/+/player1", "sport/player1", false),
            ("+/+/+", "a//c", true),
            ("+", "", true),
            // 4.7.2 topics beginning with $
            ("#", "$SYS/x", false),
            ("#", "$SYS", false),
            ("+", "$SYS", false),
            ("+/monitor/Clients", "$SYS/monitor/Clients", false),
            ("+/+", "$SYS/x", false),
            ("$SYS/#", "$SYS/x", true),
            ("$SYS/#", "$SYS", true),
            ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
            ("$SYS/+", "$SYS/x/y", false),
            ("$SYS/x", "$SYS/x", true),
            ("a/+", "a/$x", true),
            ("a/#", "a/$x/y", true),
            ("+/$x", "a/$x", true),
            // 4.7.3 no normalisation
            ("a/b", "a/b/", false),
            ("a/b", "/a/b", false),
            ("a//b", "a/b", false),
            ("Sport", "sport", false),
            ("ACCOUNTS", "Accounts", false),
            // literal comparison
            ("sport/tennis", "sport/tennis", true),
            ("sport/tennis", "sport/tennis/player1", false),
            ("sport/tennis/player1", "sport/tennis", false),
            ("/", "/", true),
            ("//", "/", false),
        ];
        for &(filter, topic, expected) in table {
            assert_eq!(
                matches(filter, topic),
                expected,
                "matches({filter:?}, {topic:?})"
            );
        }
    }

    #[test]
    fn invalid_wildcards_compare_literally() {
        assert!(!matches("#/a", "x/a"));
        assert!(matches("#/a", "#/a"));
        assert!(!matches("a+", "ab"));
        assert!(matches("a+", "a+"));
    }

    #[test]
    fn split_levels() {
        assert_eq!(split_level("a/b/c"), ("a", Some("b/c")));
        assert_eq!(split_level("c"), ("c", None));
        assert_eq!(split_level(""), ("", None));
        assert_eq!(split_level("/"), ("", Some("")));
        assert!(is_multi_level("#", None));
        assert!(!is_multi_level("#", Some("a")));
    }
}
