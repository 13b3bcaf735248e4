//! What a connection may publish and subscribe to: allow and deny topic-filter patterns with
//! `{username}`, `{client_id}` and `{vhost}` placeholders, bound once per connection.
//!
//! Rules:
//! - **Deny wins.** A topic is published only when an allow filter matches it and no deny
//!   filter does; a subscription is granted only when every topic it can match is allowed,
//!   i.e. it is contained in one allow filter and intersects no deny filter.
//! - **Deny when in doubt.** A placeholder whose value would change the filter's structure
//!   (contains `/`, `+`, `#` or NUL, or is empty) makes the pattern unusable: an unusable
//!   allow pattern allows nothing, an unusable deny pattern denies everything.
//! - **`$SYS`** is read-only and needs [`Permissions::read_sys`]: publishing to it is never
//!   allowed, subscribing to a filter whose first level is `$SYS` needs `read_sys`. `#` and
//!   `+/...` never match `$` topics [MQTT-4.7.2-1], so they need nothing.
//!
//! This module only decides; it does not cache (the broker caches per connection) and knows
//! nothing of packets or reason codes.

use ferrymq_topic::{TopicError, TopicLimits, matches, validate_topic_filter};

use crate::filters::{contains, intersects};

/// Allow and deny topic-filter patterns; patterns may contain `{username}`, `{client_id}`,
/// `{vhost}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct TopicRules {
    /// Filters that grant access.
    pub allow: Vec<String>,
    /// Filters that take access away again; they win over `allow`.
    pub deny: Vec<String>,
}

/// One user's rights in one virtual host.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Permissions {
    /// Topics the user may publish to.
    pub publish: TopicRules,
    /// Filters the user may subscribe to.
    pub subscribe: TopicRules,
    /// May subscribe to `$SYS/#` filters.
    pub read_sys: bool,
}

/// A pattern refused by [`Permissions::validate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PermissionsError {
    /// The pattern is not a valid topic filter once its placeholders are replaced by `x`.
    #[error("{section} pattern {pattern:?} is not a valid topic filter: {reason}")]
    InvalidPattern {
        /// Where the pattern is: `publish.allow`, `publish.deny`, `subscribe.allow`,
        /// `subscribe.deny`.
        section: &'static str,
        /// The pattern as written.
        pattern: String,
        /// Why the topic crate refused it.
        reason: TopicError,
    },
    /// The pattern contains `{name}` for a name that is not a placeholder (a typo such as
    /// `{clientid}` would otherwise silently match a literal topic level).
    #[error(
        "{section} pattern {pattern:?} uses unknown placeholder {{{placeholder}}}; the known ones are {{username}}, {{client_id}}, {{vhost}}"
    )]
    UnknownPlaceholder {
        /// Where the pattern is.
        section: &'static str,
        /// The pattern as written.
        pattern: String,
        /// The unknown name, without braces.
        placeholder: String,
    },
}

impl Permissions {
    /// Publish and subscribe allow `["#"]`, `read_sys` false (what anonymous, guest and
    /// users with full rights get).
    pub fn full() -> Permissions {
        let everything = TopicRules {
            allow: vec!["#".to_owned()],
            deny: Vec::new(),
        };
        Permissions {
            publish: everything.clone(),
            subscribe: everything,
            read_sys: false,
        }
    }

    /// Substitutes the placeholders, once per connection.
    ///
    /// A substituted value that is empty or contains `/`, `+`, `#` or NUL makes that
    /// pattern unusable, and so does a pattern that is not a valid topic filter after
    /// substitution: an unusable allow pattern then allows nothing, an unusable deny pattern
    /// denies everything (deny must win when in doubt). Note that the default virtual host
    /// is `/`, so `{vhost}` makes a pattern unusable there.
    pub fn bind(&self, username: &str, client_id: &str, vhost: &str) -> BoundPermissions {
        let values = Values {
            username,
            client_id,
            vhost,
        };
        BoundPermissions {
            publish: BoundRules::bind(&self.publish, &values),
            subscribe: BoundRules::bind(&self.subscribe, &values),
            read_sys: self.read_sys,
        }
    }

    /// Syntax check for config and import: every pattern is a valid topic filter once its
    /// placeholders are replaced by `x`, and uses only known placeholders. Returns the first
    /// problem.
    pub fn validate(&self) -> Result<(), PermissionsError> {
        let sections = [
            ("publish.allow", &self.publish.allow),
            ("publish.deny", &self.publish.deny),
            ("subscribe.allow", &self.subscribe.allow),
            ("subscribe.deny", &self.subscribe.deny),
        ];
        for (section, patterns) in sections {
            for pattern in patterns {
                check_pattern(section, pattern)?;
            }
        }
        Ok(())
    }
}

/// Permissions with their placeholders substituted: what one connection may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundPermissions {
    publish: BoundRules,
    subscribe: BoundRules,
    read_sys: bool,
}

impl BoundPermissions {
    /// [`Permissions::full`], bound.
    pub fn allow_all() -> BoundPermissions {
        Permissions::full().bind("", "", "")
    }

    /// A topic may be published when an allow filter matches it and no deny filter does.
    /// `$SYS` topics never; a string that is not a valid topic name never.
    pub fn may_publish(&self, topic: &str) -> bool {
        if is_sys(topic) || !is_topic_name(topic) {
            return false;
        }
        let rules = &self.publish;
        !rules.deny_all
            && rules.allow.iter().any(|allow| matches(allow, topic))
            && !rules.deny.iter().any(|deny| matches(deny, topic))
    }

    /// A subscription filter is allowed when every topic it can match is allowed: it is
    /// contained in some allow filter and intersects no deny filter. A filter whose first
    /// level is `$SYS` is allowed with `read_sys` unless a deny filter intersects it. For a
    /// shared subscription pass the inner filter (without `$share/{group}/`).
    pub fn may_subscribe(&self, filter: &str) -> bool {
        if validate_topic_filter(filter, &SPEC_LIMITS).is_err() {
            return false;
        }
        let rules = &self.subscribe;
        if rules.deny_all || rules.deny.iter().any(|deny| intersects(deny, filter)) {
            return false;
        }
        if is_sys(filter) {
            return self.read_sys;
        }
        rules.allow.iter().any(|allow| contains(allow, filter))
    }

    /// True when `read_sys` was granted.
    pub fn read_sys(&self) -> bool {
        self.read_sys
    }
}

/// One direction's rules after substitution.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BoundRules {
    /// Usable allow filters (unusable ones were dropped: they allow nothing).
    allow: Vec<Box<str>>,
    /// Usable deny filters.
    deny: Vec<Box<str>>,
    /// An unusable deny pattern was present: deny everything.
    deny_all: bool,
}

impl BoundRules {
    fn bind(rules: &TopicRules, values: &Values<'_>) -> BoundRules {
        let allow = rules
            .allow
            .iter()
            .filter_map(|pattern| substitute(pattern, values))
            .collect();
        let mut deny = Vec::with_capacity(rules.deny.len());
        let mut deny_all = false;
        for pattern in &rules.deny {
            match substitute(pattern, values) {
                Some(filter) => deny.push(filter),
                None => deny_all = true,
            }
        }
        BoundRules {
            allow,
            deny,
            deny_all,
        }
    }
}

/// The spec's own bounds (65,535 bytes), not the broker's configured ones: permissions must
/// not refuse a filter the broker accepted for syntax reasons of its own.
const SPEC_LIMITS: TopicLimits = TopicLimits {
    max_topic_length: 65_535,
    max_topic_levels: 65_535,
};

/// The placeholders' values for one connection.
struct Values<'a> {
    username: &'a str,
    client_id: &'a str,
    vhost: &'a str,
}

impl Values<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        match name {
            "username" => Some(self.username),
            "client_id" => Some(self.client_id),
            "vhost" => Some(self.vhost),
            _ => None,
        }
    }
}

/// Replaces the known placeholders, validates the result. `None` means unusable.
fn substitute(pattern: &str, values: &Values<'_>) -> Option<Box<str>> {
    let filter = expand(pattern, values)?;
    validate_topic_filter(&filter, &SPEC_LIMITS).ok()?;
    Some(filter.into_boxed_str())
}

/// Replaces the known placeholders in one pass (a value is never itself scanned for
/// placeholders). `None` when a value is empty or contains `/`, `+`, `#` or NUL.
fn expand(pattern: &str, values: &Values<'_>) -> Option<String> {
    let mut out = String::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        match placeholder_at(after).and_then(|name| Some((name, values.get(name)?))) {
            Some((name, value)) => {
                if value.is_empty() || value.contains(['/', '+', '#', '\0']) {
                    return None;
                }
                out.push_str(value);
                rest = &after[name.len() + 2..];
            }
            None => {
                out.push('{');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    Some(out)
}

/// If `text` starts with `{name}` where `name` is `[a-z_]+`, returns `name`.
fn placeholder_at(text: &str) -> Option<&str> {
    let inner = text.strip_prefix('{')?;
    let end = inner.find('}')?;
    let name = &inner[..end];
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')).then_some(name)
}

fn check_pattern(section: &'static str, pattern: &str) -> Result<(), PermissionsError> {
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        let after = &rest[open..];
        match placeholder_at(after) {
            Some(name @ ("username" | "client_id" | "vhost")) => rest = &after[name.len() + 2..],
            Some(unknown) => {
                return Err(PermissionsError::UnknownPlaceholder {
                    section,
                    pattern: pattern.to_owned(),
                    placeholder: unknown.to_owned(),
                });
            }
            None => rest = &after[1..],
        }
    }
    let probe = Values {
        username: "x",
        client_id: "x",
        vhost: "x",
    };
    // "x" is always a usable value, so expansion cannot fail here.
    let expanded = expand(pattern, &probe).unwrap_or_default();
    validate_topic_filter(&expanded, &SPEC_LIMITS).map_err(|reason| {
        PermissionsError::InvalidPattern {
            section,
            pattern: pattern.to_owned(),
            reason,
        }
    })
}

/// First level is `$SYS` (`$SYS`, `$SYS/...`).
fn is_sys(topic_or_filter: &str) -> bool {
    topic_or_filter.split('/').next() == Some("$SYS")
}

/// Non-empty, no wildcard, no NUL: the spec's rules for a topic name, without length limits.
fn is_topic_name(topic: &str) -> bool {
    !topic.is_empty() && !topic.contains(['+', '#', '\0'])
}

#[cfg(test)]
mod tests;
