use proptest::prelude::*;

use super::*;

fn rules(allow: &[&str], deny: &[&str]) -> TopicRules {
    TopicRules {
        allow: allow.iter().map(|s| (*s).to_owned()).collect(),
        deny: deny.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn both(allow: &[&str], deny: &[&str]) -> Permissions {
    Permissions {
        publish: rules(allow, deny),
        subscribe: rules(allow, deny),
        read_sys: false,
    }
}

#[test]
fn full_allows_everything_but_sys() {
    let all = BoundPermissions::allow_all();
    assert_eq!(all, Permissions::full().bind("u", "c", "v"));
    for topic in ["a", "a/b", "/", "a//b", "$other/x"] {
        // `#` does not match `$` topics, so `$other/x` is not covered by full().
        assert_eq!(all.may_publish(topic), !topic.starts_with('$'), "{topic}");
    }
    for filter in ["#", "+", "a/#", "+/+/x", "a/+"] {
        assert!(all.may_subscribe(filter), "{filter}");
    }
    for sys in ["$SYS/#", "$SYS/broker/uptime", "$SYS", "$SYS/+"] {
        assert!(!all.may_publish(sys), "{sys}");
        assert!(!all.may_subscribe(sys), "{sys}");
    }
    assert!(!all.read_sys());
}

#[test]
fn placeholders_are_substituted() {
    let perms = both(
        &["devices/{client_id}/#", "users/{username}/in", "v/{vhost}"],
        &[],
    );
    let bound = perms.bind("alice", "dev1", "tenant");
    assert!(bound.may_publish("devices/dev1/temp"));
    assert!(bound.may_publish("devices/dev1"));
    assert!(!bound.may_publish("devices/dev2/temp"));
    assert!(bound.may_publish("users/alice/in"));
    assert!(!bound.may_publish("users/bob/in"));
    assert!(bound.may_publish("v/tenant"));
    assert!(bound.may_subscribe("devices/dev1/#"));
    assert!(bound.may_subscribe("devices/dev1/+/x"));
    assert!(!bound.may_subscribe("devices/+/temp"));
    assert!(!bound.may_subscribe("devices/#"));
}

#[test]
fn unusable_values_make_allow_patterns_allow_nothing() {
    let perms = both(&["devices/{client_id}/#", "public/#"], &[]);
    for client_id in ["a/b", "a+", "#", "x\0y", ""] {
        let bound = perms.bind("alice", client_id, "v");
        assert!(!bound.may_publish("devices/a/b/c"), "{client_id:?}");
        assert!(!bound.may_publish("devices/a+/c"), "{client_id:?}");
        assert!(!bound.may_subscribe("devices/#"), "{client_id:?}");
        assert!(!bound.may_subscribe("devices/+/#"), "{client_id:?}");
        // The other patterns still work.
        assert!(bound.may_publish("public/x"), "{client_id:?}");
    }
    // The default vhost "/" cannot be substituted.
    let bound = both(&["{vhost}/#"], &[]).bind("u", "c", "/");
    assert!(!bound.may_publish("/x"));
    assert!(!bound.may_subscribe("#"));
}

#[test]
fn unusable_values_make_deny_patterns_deny_everything() {
    let perms = both(&["#"], &["secret/{username}/#"]);
    let fine = perms.bind("alice", "c", "v");
    assert!(fine.may_publish("other"));
    assert!(!fine.may_publish("secret/alice/x"));
    assert!(fine.may_publish("secret/bob/x"));
    for username in ["a/b", "a+", "#", ""] {
        let bound = perms.bind(username, "c", "v");
        assert!(!bound.may_publish("other"), "{username:?}");
        assert!(!bound.may_subscribe("other"), "{username:?}");
    }
    // A deny pattern that is not a valid filter after substitution also denies everything.
    let bound = both(&["#"], &["a/#/b"]).bind("u", "c", "v");
    assert!(!bound.may_publish("x"));
}

#[test]
fn values_are_not_rescanned_for_placeholders() {
    let perms = both(&["u/{username}/c/{client_id}"], &[]);
    let bound = perms.bind("{client_id}", "dev", "v");
    assert!(bound.may_publish("u/{client_id}/c/dev"));
    assert!(!bound.may_publish("u/dev/c/dev"));
    // Unknown placeholders are literal text when binding.
    let bound = both(&["x/{other}"], &[]).bind("u", "c", "v");
    assert!(bound.may_publish("x/{other}"));
}

#[test]
fn deny_wins() {
    let bound = both(&["a/#"], &["a/secret/#"]).bind("u", "c", "v");
    assert!(bound.may_publish("a/public"));
    assert!(bound.may_publish("a"));
    assert!(!bound.may_publish("a/secret"));
    assert!(!bound.may_publish("a/secret/x"));
    assert!(!bound.may_subscribe("a/#"));
    assert!(!bound.may_subscribe("a/+/x"));
    assert!(!bound.may_subscribe("a/secret"));
    assert!(bound.may_subscribe("a/public/#"));
    assert!(bound.may_subscribe("a/public/+"));
    assert!(bound.may_subscribe("a"));
}

#[test]
fn subscription_containment() {
    let cases: &[(&str, &str, bool)] = &[
        ("a/#", "a/+", true),
        ("a/+", "a/#", false),
        ("a/#", "#", false),
        ("a/+/#", "a/b/#", true),
        ("a/b", "+/b", false),
        ("a/b", "a/b", true),
        ("a/+", "a/b/c", false),
        ("+/b", "a/b", true),
        ("#", "#", true),
        ("+", "+", true),
        ("+", "#", false),
    ];
    for &(allow, filter, expected) in cases {
        let bound = both(&[allow], &[]).bind("u", "c", "v");
        assert_eq!(
            bound.may_subscribe(filter),
            expected,
            "{filter} under {allow}"
        );
    }
    // Several allow filters do not combine: the filter must fit inside one of them.
    let bound = both(&["a/b", "a/c"], &[]).bind("u", "c", "v");
    assert!(!bound.may_subscribe("a/+"));
}

#[test]
fn sys_needs_read_sys() {
    let mut perms = both(&["#"], &[]);
    perms.read_sys = true;
    let bound = perms.bind("u", "c", "v");
    assert!(bound.may_subscribe("$SYS/#"));
    assert!(bound.may_subscribe("$SYS/broker/+"));
    assert!(bound.may_subscribe("$SYS"));
    assert!(
        bound.may_subscribe("#"),
        "# never matches $SYS, so it needs nothing"
    );
    assert!(bound.may_subscribe("+/broker"));
    assert!(!bound.may_publish("$SYS/broker/x"));
    assert!(!bound.may_publish("$SYS"));

    // read_sys alone, with no topic rights: $SYS only.
    let sys_only = Permissions {
        read_sys: true,
        ..Permissions::default()
    }
    .bind("u", "c", "v");
    assert!(sys_only.may_subscribe("$SYS/#"));
    assert!(!sys_only.may_subscribe("a"));

    // A deny filter that reaches into $SYS still wins.
    let mut denied = both(&["#"], &["$SYS/secret/#"]);
    denied.read_sys = true;
    let bound = denied.bind("u", "c", "v");
    assert!(!bound.may_subscribe("$SYS/#"));
    assert!(bound.may_subscribe("$SYS/public/#"));
    // `#` as a deny filter does not reach $SYS.
    let mut hashed = both(&[], &["#"]);
    hashed.read_sys = true;
    assert!(hashed.bind("u", "c", "v").may_subscribe("$SYS/#"));

    // Other $ topics follow the ordinary rules: only an explicit allow filter covers them.
    let bound = both(&["$app/#"], &[]).bind("u", "c", "v");
    assert!(bound.may_publish("$app/x"));
    assert!(bound.may_subscribe("$app/+"));
}

#[test]
fn invalid_input_is_refused() {
    let all = BoundPermissions::allow_all();
    for topic in ["", "a/+", "a/#", "a\0b"] {
        assert!(!all.may_publish(topic), "{topic:?}");
    }
    for filter in ["", "a/#/b", "a+", "a\0", "#/a"] {
        assert!(!all.may_subscribe(filter), "{filter:?}");
    }
}

#[test]
fn publish_and_subscribe_are_separate() {
    let perms = Permissions {
        publish: rules(&["out/#"], &[]),
        subscribe: rules(&["in/#"], &[]),
        read_sys: false,
    };
    let bound = perms.bind("u", "c", "v");
    assert!(bound.may_publish("out/x"));
    assert!(!bound.may_publish("in/x"));
    assert!(bound.may_subscribe("in/x"));
    assert!(!bound.may_subscribe("out/x"));
}

#[test]
fn validate_checks_every_pattern() {
    assert_eq!(Permissions::full().validate(), Ok(()));
    assert_eq!(
        both(
            &["devices/{client_id}/#", "{username}", "a/{vhost}x/+"],
            &["x/{username}/#"]
        )
        .validate(),
        Ok(())
    );
    let err = both(&["a/#/b"], &[]).validate().unwrap_err();
    assert!(matches!(
        err,
        PermissionsError::InvalidPattern {
            section: "publish.allow",
            ..
        }
    ));
    let err = Permissions {
        subscribe: rules(&[], &["a+"]),
        ..Permissions::default()
    }
    .validate()
    .unwrap_err();
    assert!(matches!(
        err,
        PermissionsError::InvalidPattern {
            section: "subscribe.deny",
            ..
        }
    ));
    let err = both(&["devices/{clientid}/#"], &[]).validate().unwrap_err();
    assert_eq!(
        err,
        PermissionsError::UnknownPlaceholder {
            section: "publish.allow",
            pattern: "devices/{clientid}/#".to_owned(),
            placeholder: "clientid".to_owned(),
        }
    );
    assert!(err.to_string().contains("{client_id}"), "{err}");
    // Braces that are not placeholders are literal text.
    assert_eq!(both(&["a/{B}/{", "{}", "x{y"], &[]).validate(), Ok(()));
    assert!(both(&[""], &[]).validate().is_err());
}

#[test]
fn serde_uses_defaults_for_missing_fields() {
    let perms: Permissions =
        serde_json::from_str(r#"{"publish": {"allow": ["a/#"]}, "read_sys": true}"#).unwrap();
    assert_eq!(perms.publish.allow, vec!["a/#".to_owned()]);
    assert!(perms.publish.deny.is_empty());
    assert_eq!(perms.subscribe, TopicRules::default());
    assert!(perms.read_sys);
    let text = serde_json::to_string(&Permissions::full()).unwrap();
    assert_eq!(
        serde_json::from_str::<Permissions>(&text).unwrap(),
        Permissions::full()
    );
}

// ---- property tests against brute force ----

/// Filter levels: literals that also occur in topics, `$SYS`, the empty level, wildcards.
const FILTER_LEVELS: &[&str] = &["a", "b", "", "$SYS", "+", "#"];
/// Topic levels: the same literals plus `z`, which no filter contains, so that every
/// disagreement between a filter and a wildcard has a witness in the universe.
const TOPIC_LEVELS: &[&str] = &["a", "b", "", "$SYS", "z"];

fn filter_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FILTER_LEVELS), 1..=4)
        .prop_map(|levels| {
            // Only the last level may be `#`.
            let last = levels.len() - 1;
            levels
                .iter()
                .enumerate()
                .map(|(i, l)| if *l == "#" && i != last { "+" } else { l })
                .collect::<Vec<_>>()
                .join("/")
        })
        .prop_filter("a filter is never empty", |f| !f.is_empty())
}

/// Every topic of 1 to 5 levels over [`TOPIC_LEVELS`] (5 + 25 + ... + 3125 = 3905 strings),
/// one level more than the longest filter, so that `#` and length differences have
/// witnesses.
fn universe() -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    let mut current: Vec<String> = TOPIC_LEVELS.iter().map(|l| (*l).to_owned()).collect();
    for _ in 0..5 {
        // The empty string is not a topic name, but `filters` is exact over all strings
        // (which errs on the side of refusing for real topics), so it belongs here.
        all.extend(current.iter().cloned());
        current = current
            .iter()
            .flat_map(|prefix| TOPIC_LEVELS.iter().map(move |l| format!("{prefix}/{l}")))
            .collect();
    }
    all
}

fn topic_allowed(perms: &Permissions, topic: &str) -> bool {
    let rules = &perms.subscribe;
    let denied = rules.deny.iter().any(|d| matches(d, topic));
    let allowed = if topic.split('/').next() == Some("$SYS") {
        perms.read_sys
    } else {
        rules.allow.iter().any(|a| matches(a, topic))
    };
    allowed && !denied
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Soundness: a granted subscription never reaches a topic that is not allowed.
    #[test]
    fn may_subscribe_is_sound(
        filter in filter_strategy(),
        allow in prop::collection::vec(filter_strategy(), 0..3),
        deny in prop::collection::vec(filter_strategy(), 0..2),
        read_sys in any::<bool>(),
    ) {
        let perms = Permissions {
            publish: TopicRules::default(),
            subscribe: TopicRules { allow, deny },
            read_sys,
        };
        let bound = perms.bind("u", "c", "v");
        if bound.may_subscribe(&filter) {
            for topic in universe() {
                if matches(&filter, &topic) {
                    prop_assert!(
                        topic_allowed(&perms, &topic),
                        "{filter} granted but {topic} is not allowed under {perms:?}"
                    );
                }
            }
        }
    }

    /// Containment and intersection are exact: they agree with brute force both ways.
    #[test]
    fn filter_algebra_is_exact(a in filter_strategy(), b in filter_strategy()) {
        let topics = universe();
        let brute_contains = topics.iter().all(|t| !matches(&b, t) || matches(&a, t));
        let brute_intersects = topics.iter().any(|t| matches(&a, t) && matches(&b, t));
        prop_assert_eq!(contains(&a, &b), brute_contains, "{} ⊆ {}", b, a);
        prop_assert_eq!(intersects(&a, &b), brute_intersects, "{} ∩ {}", a, b);
    }

    /// may_publish is exactly "an allow filter matches and no deny filter does".
    #[test]
    fn may_publish_matches_its_definition(
        topic in prop::collection::vec(prop::sample::select(TOPIC_LEVELS), 1..=5)
            .prop_map(|l| l.join("/"))
            .prop_filter("a topic is never empty", |t| !t.is_empty()),
        allow in prop::collection::vec(filter_strategy(), 0..3),
        deny in prop::collection::vec(filter_strategy(), 0..2),
    ) {
        let perms = Permissions {
            publish: TopicRules { allow: allow.clone(), deny: deny.clone() },
            ..Permissions::default()
        };
        let expected = !topic.starts_with("$SYS")
            && allow.iter().any(|a| matches(a, &topic))
            && !deny.iter().any(|d| matches(d, &topic));
        prop_assert_eq!(perms.bind("u", "c", "v").may_publish(&topic), expected);
    }
}
