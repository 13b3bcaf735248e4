//! Set algebra on MQTT topic filters: containment ("every topic `inner` matches, `outer`
//! matches too") and intersection ("some topic matches both").
//!
//! Both are exact with respect to [`ferrymq_topic::matches`], including the `$`-rule
//! [MQTT-4.7.2-1]: a filter whose first level is `+` or `#` matches no topic starting with `$`.
//! "Exact" is over all strings, including the empty one, which is not a topic name (`+` and
//! `/#` both match it): for real topics both answers err on the side of refusing (a
//! containment may be denied, an intersection with a deny filter may be assumed), never the
//! other way. The property tests in `permissions` check them against brute force over a
//! universe that contains a witness for every disagreement.
//!
//! Inputs are expected to be valid topic filters; both functions walk the levels once
//! (no recursion, no allocation), so their cost is bounded by the filters' level counts.

/// Does every topic that `inner` matches also match `outer`?
///
/// `#` in `outer` covers the rest, including the parent level (`a/#` contains `a`); `+` in
/// `outer` covers one level, including a `+` of `inner`; a `#` of `inner` needs a `#` of
/// `outer` at the same level.
pub(crate) fn contains(outer: &str, inner: &str) -> bool {
    let mut outer_levels = outer.split('/').peekable();
    let mut inner_levels = inner.split('/');
    let mut first = true;
    loop {
        match (outer_levels.next(), inner_levels.next()) {
            // `#` is always the last level of a valid filter.
            (Some("#"), Some(level)) => return !(first && is_dollar(level)),
            (Some("#"), None) => return true,
            // Every string has at least one level, so on the first level `+/#` matches
            // exactly what `#` does.
            (Some("+"), Some("#")) if first => {
                return outer_levels.next() == Some("#") && outer_levels.peek().is_none();
            }
            (None, None) => return true,
            (Some(_), None) | (None, Some(_)) => return false,
            (Some(o), Some(i)) => {
                let covered = match (o, i) {
                    (_, "#") => false,
                    ("+", "+") => true,
                    ("+", level) => !(first && is_dollar(level)),
                    (_, "+") => false,
                    (o, i) => o == i,
                };
                if !covered {
                    return false;
                }
            }
        }
        first = false;
    }
}

/// Is there a topic that both `a` and `b` match?
pub(crate) fn intersects(a: &str, b: &str) -> bool {
    let mut a_levels = a.split('/');
    let mut b_levels = b.split('/');
    let mut first = true;
    loop {
        match (a_levels.next(), b_levels.next()) {
            (None, None) => return true,
            // `#` matches any continuation of the other filter, including nothing, except
            // that on the first level it cannot produce a topic starting with `$`.
            (Some("#"), other) | (other, Some("#")) => {
                return !(first && other.is_some_and(is_dollar));
            }
            (Some(_), None) | (None, Some(_)) => return false,
            (Some(x), Some(y)) => {
                let meet = match (x, y) {
                    ("+", "+") => true,
                    ("+", level) | (level, "+") => !(first && is_dollar(level)),
                    (x, y) => x == y,
                };
                if !meet {
                    return false;
                }
            }
        }
        first = false;
    }
}

/// A literal first level starting with `$` (wildcards never match those topics).
fn is_dollar(level: &str) -> bool {
    level.starts_with('$')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containment_table() {
        let table: &[(&str, &str, bool)] = &[
            ("a/#", "a/+", true),
            ("a/+", "a/#", false),
            ("a/#", "#", false),
            ("#", "a/#", true),
            ("+/#", "#", true),
            ("+/+/#", "#", false),
            ("+/#/x", "#", false),
            ("a/+/#", "a/b/#", true),
            ("a/b", "+/b", false),
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("a/+", "a/+", true),
            ("a/+", "a/b", true),
            ("a/+", "a/b/c", false),
            ("a/+/#", "a/#", false),
            ("a/+/#", "a/+", true),
            ("a/+/#", "a", false),
            ("+", "+", true),
            ("+", "#", false),
            ("#", "#", true),
            ("a/b", "a/b", true),
            ("a/b", "a/c", false),
            ("a//b", "a/+/b", false),
            ("a/+/b", "a//b", true),
            // The $-rule: wildcards at the first level never cover $ topics.
            ("#", "$SYS/x", false),
            ("+/x", "$SYS/x", false),
            ("$SYS/#", "$SYS/x", true),
            ("$SYS/+", "$SYS/x", true),
            ("#", "+/x", true),
            ("a/#", "a/$x", true),
            ("a/+", "a/$x", true),
        ];
        for &(outer, inner, expected) in table {
            assert_eq!(contains(outer, inner), expected, "{inner} ⊆ {outer}");
        }
    }

    #[test]
    fn intersection_table() {
        let table: &[(&str, &str, bool)] = &[
            ("a/#", "a/secret/#", true),
            ("a/public/#", "a/secret/#", false),
            ("#", "a", true),
            ("a/+", "+/b", true),
            ("a/+", "a", false),
            ("a/#", "a", true),
            ("a/b", "a/b/c", false),
            ("+", "a/b", false),
            ("#", "$SYS/#", false),
            ("+/#", "$SYS/x", false),
            ("$SYS/#", "$SYS/+", true),
            ("a/+/c", "a/b/+", true),
            ("a/+/c", "a/b/d", false),
        ];
        for &(a, b, expected) in table {
            assert_eq!(intersects(a, b), expected, "{a} ∩ {b}");
            assert_eq!(intersects(b, a), expected, "{b} ∩ {a}");
        }
    }
}
