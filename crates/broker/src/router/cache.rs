//! A per-thread cache of routing: for a topic, the routes the subscription trie matched,
//! kept until any routing table changes.
//!
//! Most traffic repeats a bounded set of topics (a device publishes to its own few, again
//! and again), and walking the trie for each message costs a hash lookup per level and per
//! wildcard: 13.5 % of the broker in a QoS 0 1:1 profile (`docs/PERFORMANCE.md`, stop 11).
//! A hit is one lookup of the whole topic, without the routing table's lock. NATS keeps a
//! cache like it in front of its sublist.
//!
//! Validity is one process-wide generation, bumped whenever a routing table is taken for
//! writing (`Vhost::router_mut`), before anything in it changes: a thread that sees the
//! generation unchanged may use what it cached; one that sees it changed drops its whole
//! cache first. Per thread, so the hot path shares nothing but that counter, which is only
//! read between changes. What a shared-subscription group's members are is read from the
//! group at each message, as without the cache.
//!
//! Bounds: at most [`MAX_TOPICS`] topics per thread (then the cache starts over), and topics
//! with more than [`MAX_ROUTES`] routes are not cached (a large fan-out spends its time
//! delivering, not matching). A cached route holds its session's handle, so a session that
//! ended stays allocated until each thread that cached it next routes a message (the end of
//! a session removes its subscriptions, which voids every cache).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Route;
use crate::vhost::Vhost;

/// Topics one thread keeps routes for.
const MAX_TOPICS: usize = 4096;
/// Routes beyond which a topic is not cached.
const MAX_ROUTES: usize = 64;

/// Bumped whenever a routing table may change; every entry cached before is void.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Voids every thread's cache. Called with a routing table's write lock held, before the
/// change: a thread that reads the new generation and misses must then wait for that lock
/// to walk the trie, so it cannot cache the table as it was.
pub(crate) fn invalidate() {
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

#[derive(Default)]
struct RouteCache {
    generation: u64,
    topics: usize,
    /// Vhost id → topic → routes.
    vhosts: HashMap<u64, HashMap<Box<str>, Box<[Route]>>>,
}

thread_local! {
    static CACHE: RefCell<RouteCache> = RefCell::new(RouteCache::default());
}

/// Calls `f` with every route whose filter matches `topic` in `vhost`, once per matching
/// filter, as `SubscriptionTrie::for_each_match` does.
pub(crate) fn for_each_route(vhost: &Vhost, topic: &str, mut f: impl FnMut(&Route)) {
    let generation = GENERATION.load(Ordering::Acquire);
    CACHE.with(|cache| {
        let Ok(mut cache) = cache.try_borrow_mut() else {
            // A routing inside a routing (there is none today): not cached.
            return vhost
                .router()
                .trie
                .for_each_match(topic, |_, route| f(route));
        };
        if cache.generation != generation {
            cache.vhosts.clear();
            cache.topics = 0;
            cache.generation = generation;
        }
        if let Some(routes) = cache.vhosts.get(&vhost.id).and_then(|t| t.get(topic)) {
            routes.iter().for_each(f);
            return;
        }
        let mut routes = Vec::new();
        vhost.router().trie.for_each_match(topic, |_, route| {
            f(route);
            if routes.len() <= MAX_ROUTES {
                routes.push(route.clone());
            }
        });
        if routes.len() > MAX_ROUTES {
            return;
        }
        if cache.topics >= MAX_TOPICS {
            cache.vhosts.clear();
            cache.topics = 0;
        }
        cache
            .vhosts
            .entry(vhost.id)
            .or_default()
            .insert(topic.into(), routes.into_boxed_slice());
        cache.topics += 1;
    });
}
