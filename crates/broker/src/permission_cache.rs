//! A connection's topic rights with a small per-topic decision cache: devices publish to the
//! same few topics over and over, and a decision walks every allow and deny filter.

use std::collections::HashMap;

use ferrymq_auth::{BoundPermissions, Permissions, TopicRules};

use crate::sys::SYS_PREFIX;

/// Decisions kept per connection before the cache starts over (bounded memory per
/// connection whatever topics a client invents).
const MAX_CACHED: usize = 64;

/// Most connections have full rights (`#` to publish and subscribe, nothing denied), and every
/// idle connection's task holds this inline: those get a variant with nothing bound and
/// nothing to cache, the others a box.
#[derive(Debug)]
pub(crate) enum PermissionCache {
    /// Every topic outside `$SYS/` is allowed, `$`-topics such as `$app/...` included.
    /// (As ACL patterns, `#` would not cover `$` topics [MQTT-4.7.2-1].)
    Unrestricted {
        read_sys: bool,
    },
    Restricted(Box<Restricted>),
}

#[derive(Debug)]
pub(crate) struct Restricted {
    bound: BoundPermissions,
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
        if everything(&permissions.publish) && everything(&permissions.subscribe) {
            return PermissionCache::Unrestricted {
                read_sys: permissions.read_sys,
            };
        }
        PermissionCache::Restricted(Box::new(Restricted {
            bound: permissions.bind(username, client_id, vhost),
            publish: HashMap::new(),
        }))
    }

    /// `$SYS/` is never publishable by clients, whatever the rules say.
    pub(crate) fn may_publish(&mut self, topic: &str) -> bool {
        let restricted = match self {
            PermissionCache::Unrestricted { .. } => return !topic.starts_with(SYS_PREFIX),
            PermissionCache::Restricted(restricted) => restricted,
        };
        if let Some(&decision) = restricted.publish.get(topic) {
            return decision;
        }
        let decision = restricted.bound.may_publish(topic);
        if restricted.publish.len() >= MAX_CACHED {
            restricted.publish.clear();
        }
        restricted.publish.insert(Box::from(topic), decision);
        decision
    }

    /// Subscriptions are rare next to publishes: not cached.
    pub(crate) fn may_subscribe(&self, filter: &str) -> bool {
        match self {
            PermissionCache::Unrestricted { read_sys } => !filter.starts_with("$SYS") || *read_sys,
            PermissionCache::Restricted(restricted) => restricted.bound.may_subscribe(filter),
        }
    }
}
