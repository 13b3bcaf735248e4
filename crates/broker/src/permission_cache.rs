//! A connection's topic rights with a small per-topic decision cache: devices publish to the
//! same few topics over and over, and a decision walks every allow and deny filter.

use std::collections::HashMap;

use ferrymq_auth::{BoundPermissions, Permissions, TopicRules};

use crate::sys::SYS_PREFIX;

/// Decisions kept per connection before the cache starts over (bounded memory per
/// connection whatever topics a client invents).
const MAX_CACHED: usize = 64;

#[derive(Debug)]
pub(crate) struct PermissionCache {
    bound: BoundPermissions,
    /// Full rights (`#` to publish and subscribe, nothing denied): every topic outside
    /// `$SYS/` is allowed, `$`-topics such as `$app/...` included, with nothing to cache.
    /// (As ACL patterns, `#` would not cover `$` topics [MQTT-4.7.2-1].)
    unrestricted: bool,
    read_sys: bool,
    publish: HashMap<Box<str>, bool>,
}

impl PermissionCache {
    /// Binds `permissions` to this connection's user, client id and vhost.
    pub(crate) fn new(
        permissions: &Permissions,
        username: &str,
        client_id: &str,
        vhost: &str,
    ) -> PermissionCache {
        let everything =
            |rules: &TopicRules| rules.deny.is_empty() && rules.allow.iter().any(|a| a == "#");
        PermissionCache {
            bound: permissions.bind(username, client_id, vhost),
            unrestricted: everything(&permissions.publish) && everything(&permissions.subscribe),
            read_sys: permissions.read_sys,
            publish: HashMap::new(),
        }
    }

    /// `$SYS/` is never publishable by clients, whatever the rules say.
    pub(crate) fn may_publish(&mut self, topic: &str) -> bool {
        if self.unrestricted {
            return !topic.starts_with(SYS_PREFIX);
        }
        if let Some(&decision) = self.publish.get(topic) {
            return decision;
        }
        let decision = self.bound.may_publish(topic);
        if self.publish.len() >= MAX_CACHED {
            self.publish.clear();
        }
        self.publish.insert(Box::from(topic), decision);
        decision
    }

    /// Subscriptions are rare next to publishes: not cached.
    pub(crate) fn may_subscribe(&self, filter: &str) -> bool {
        if self.unrestricted {
            return !filter.starts_with("$SYS") || self.read_sys;
        }
        self.bound.may_subscribe(filter)
    }
}
