//! Routing: the subscription index (one trie of filters), shared-subscription groups,
//! retained messages, and `publish`, which turns one message into deliveries.
//!
//! Overlapping subscriptions of one client produce ONE delivery per message, at the highest
//! granted QoS among them, carrying every matching Subscription Identifier [MQTT-3.3.4-4]
//! (the choice the spec leaves open; HiveMQ and Mosquitto make the same one). A shared
//! subscription is separate: its group gets its own copy, delivered to one member.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ferrymq_codec::{QoS, RetainHandling, SubscriptionOptions};
use ferrymq_session::{Delivery, Message, Subscription};
use ferrymq_topic::{SubscriptionFilter, SubscriptionTrie};

use crate::Broker;
use crate::backpressure::Publisher;
use crate::config::QueueOverflow;
use crate::metrics::Metrics;
use crate::registry::{Delivered, SessionHandle};
use crate::vhost::Vhost;

pub(crate) use cache::invalidate as invalidate_route_caches;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum RouteKey {
    Client(Arc<str>),
    /// A shared-subscription group name; the trie node holds the filter.
    Shared(Arc<str>),
}

#[derive(Debug, Clone)]
pub(crate) enum Route {
    Client(ClientRoute),
    Shared(Arc<SharedGroup>),
}

#[derive(Debug, Clone)]
pub(crate) struct ClientRoute {
    pub(crate) session: Arc<SessionHandle>,
    pub(crate) options: SubscriptionOptions,
    pub(crate) identifier: Option<u32>,
}

/// Members of one `$share/{group}/{filter}`. Round robin over members, preferring those
/// online so that a disconnected persistent member does not hold messages back.
#[derive(Debug)]
pub(crate) struct SharedGroup {
    /// `group/filter`, recorded on deliveries so unacknowledged ones can be re-routed.
    pub(crate) key: Arc<str>,
    pub(crate) members: Mutex<Vec<ClientRoute>>,
    next: AtomicUsize,
}

impl SharedGroup {
    fn pick(&self) -> Option<ClientRoute> {
        let members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        if members.is_empty() {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let len = members.len();
        (0..len)
            .map(|i| &members[(start + i) % len])
            .find(|m| m.session.is_online())
            .or_else(|| members.get(start % len))
            .cloned()
    }
}

/// The routing tables of the broker.
#[derive(Debug, Default)]
pub(crate) struct Router {
    pub(crate) trie: SubscriptionTrie<RouteKey, Route>,
}

/// What `publish` did, for the v5 PUBACK/PUBREC reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PublishOutcome {
    pub matched: usize,
    pub refused: usize,
}

/// What routing a client's PUBLISH did: the outcome so far, and the connected sessions whose
/// full queues hold a delivery of it back (each once), for the publisher to wait for.
#[derive(Debug, Default)]
pub(crate) struct Routed {
    pub(crate) outcome: PublishOutcome,
    pub(crate) parked: Vec<Arc<SessionHandle>>,
}

/// One session's copy of a message, before merging overlapping subscriptions.
struct Target {
    session: Arc<SessionHandle>,
    qos: QoS,
    retain: bool,
    identifier: Option<u32>,
    shared_group: Option<Arc<str>>,
}

impl Broker {
    /// Routes one message: stores or clears it as retained when its RETAIN flag is set
    /// [MQTT-3.3.1-5], then queues it to every matching session. Full queues refuse it
    /// (nothing here can wait for room).
    pub fn publish(&self, vhost: &Vhost, message: Message) -> PublishOutcome {
        self.route(vhost, message, None).outcome
    }

    /// [`Broker::publish`] for the client connection `publisher`, which can wait, of a message
    /// that arrived at `now`: with the back-pressure policy, deliveries that do not fit a
    /// connected session's queue are parked there for it instead of refused (see
    /// `backpressure.rs` for when QoS 0 waits).
    pub(crate) fn publish_from(
        &self,
        vhost: &Vhost,
        message: Message,
        publisher: u64,
        now: Instant,
    ) -> Routed {
        let limits = &self.config.limits;
        let publisher =
            (limits.queue_overflow == QueueOverflow::Backpressure).then_some(Publisher {
                connection: publisher,
                now,
                timeout: limits.publish_backpressure_timeout,
            });
        self.route(vhost, message, publisher)
    }

    fn route(&self, vhost: &Vhost, message: Message, publisher: Option<Publisher>) -> Routed {
        let message = Arc::new(message);
        // A message that expires on arrival can still clear a retained message, but is not kept.
        let storable = !message.expires_on_arrival || message.payload.is_empty();
        if message.retain && self.config.mqtt.retain_available && storable {
            self.store_retained(vhost, &message);
        }
        let mut targets = TargetBuffer::take();
        cache::for_each_route(vhost, &message.topic, |route| match route {
            Route::Client(sub) => {
                if sub.options.no_local
                    && message.publisher.as_deref() == Some(&*sub.session.client_id)
                {
                    return;
                }
                targets.push(Target {
                    session: sub.session.clone(),
                    qos: sub.options.qos.min(message.qos),
                    retain: message.retain && sub.options.retain_as_published,
                    identifier: sub.identifier,
                    shared_group: None,
                });
            }
            Route::Shared(group) => {
                if let Some(member) = group.pick() {
                    targets.push(Target {
                        session: member.session,
                        qos: member.options.qos.min(message.qos),
                        retain: message.retain && member.options.retain_as_published,
                        identifier: member.identifier,
                        shared_group: Some(group.key.clone()),
                    });
                }
            }
        });
        let mut routed = Routed::default();
        merge_overlapping(&message, &mut targets, |session, delivery| {
            routed.outcome.matched += 1;
            match session.deliver(delivery, self.queue_limits(), &self.metrics, publisher) {
                Delivered::Refused => routed.outcome.refused += 1,
                Delivered::Parked if !routed.parked.iter().any(|s| Arc::ptr_eq(s, &session)) => {
                    routed.parked.push(session)
                }
                _ => {}
            }
        });
        TargetBuffer::put_back(targets);
        routed
    }

    fn store_retained(&self, vhost: &Vhost, message: &Arc<Message>) {
        let mut retained = vhost.retained_mut();
        if message.payload.is_empty() {
            // An empty retained message deletes the stored one [MQTT-3.3.1-6].
            if retained.remove(&message.topic).is_some() {
                Metrics::dec(&self.metrics.retained_messages);
            }
        } else if retained.insert(&message.topic, message.clone()).is_none() {
            Metrics::inc(&self.metrics.retained_messages);
        }
    }

    /// Retained messages matching `filter`, as deliveries for a new subscription
    /// [MQTT-3.3.1-9]. Expired ones are skipped (and removed).
    ///
    /// The vhost's retained-store read lock is held only to clone the matching `Arc`s, so a
    /// subscription to `devices/#` over many retained topics delays retained PUBLISHes to the
    /// vhost (writers) as little as possible; expiry checks and deliveries are built after.
    fn retained_for(
        &self,
        vhost: &Vhost,
        filter: &str,
        granted: QoS,
        identifier: Option<u32>,
        now: Instant,
    ) -> Vec<Delivery> {
        let matched = {
            let retained = vhost.retained();
            let mut cloner = BatchClone::default();
            retained.for_each_matching(filter, |message| cloner.push(message));
            cloner.finish()
        };
        let mut expired = Vec::new();
        let deliveries = matched
            .into_iter()
            .flatten()
            .filter_map(|message| {
                if message.is_expired(now) {
                    expired.push(message);
                    return None;
                }
                Some(Delivery {
                    qos: granted.min(message.qos),
                    message,
                    retain: true,
                    subscription_ids: identifier.into_iter().collect(),
                    shared_group: None,
                })
            })
            .collect();
        if !expired.is_empty() {
            let mut retained = vhost.retained_mut();
            for message in expired {
                // Unless a newer message replaced it meanwhile.
                if retained
                    .get(&message.topic)
                    .is_some_and(|stored| stored.is_expired(now))
                {
                    retained.remove(&message.topic);
                    Metrics::dec(&self.metrics.retained_messages);
                }
            }
        }
        deliveries
    }

    /// Adds (or replaces) one subscription of `session` and returns the retained messages it
    /// must receive. `existed` tells whether it replaced an identical filter (Retain Handling 1).
    pub(crate) fn add_subscription(
        &self,
        session: &Arc<SessionHandle>,
        raw: &str,
        parsed: SubscriptionFilter<'_>,
        subscription: Subscription,
        existed: bool,
        now: Instant,
    ) -> Vec<Delivery> {
        let route = ClientRoute {
            session: session.clone(),
            options: subscription.options,
            identifier: subscription.identifier,
        };
        let mut router = session.vhost.router_mut();
        match parsed {
            SubscriptionFilter::Normal(filter) => {
                router.trie.insert(
                    filter,
                    RouteKey::Client(session.client_id.clone()),
                    Route::Client(route),
                );
                drop(router);
                let send = match subscription.options.retain_handling {
                    RetainHandling::SendAtSubscribe => true,
                    RetainHandling::SendIfNewSubscription => !existed,
                    RetainHandling::DoNotSend => false,
                };
                match send && self.config.mqtt.retain_available {
                    true => self.retained_for(
                        &session.vhost,
                        filter,
                        subscription.options.qos,
                        subscription.identifier,
                        now,
                    ),
                    false => Vec::new(),
                }
            }
            SubscriptionFilter::Shared { group, filter } => {
                // Retained messages are not sent for shared subscriptions [MQTT-4.8.2-?]:
                // the group, not the member, is the subscriber.
                let key = RouteKey::Shared(Arc::from(group));
                if let Some(Route::Shared(existing)) = router.trie.get(filter, &key) {
                    let mut members = existing.members.lock().unwrap_or_else(|p| p.into_inner());
                    members.retain(|m| !Arc::ptr_eq(&m.session, session));
                    members.push(route);
                } else {
                    let group = SharedGroup {
                        key: Arc::from(raw.strip_prefix("$share/").unwrap_or(raw)),
                        members: Mutex::new(vec![route]),
                        next: AtomicUsize::new(0),
                    };
                    router
                        .trie
                        .insert(filter, key, Route::Shared(Arc::new(group)));
                }
                Vec::new()
            }
        }
    }

    /// Removes one subscription of `session` from the index (only if it is this session's).
    pub(crate) fn remove_subscription(
        &self,
        session: &Arc<SessionHandle>,
        parsed: SubscriptionFilter<'_>,
    ) {
        let mut router = session.vhost.router_mut();
        match parsed {
            SubscriptionFilter::Normal(filter) => {
                let key = RouteKey::Client(session.client_id.clone());
                let ours = matches!(router.trie.get(filter, &key), Some(Route::Client(r)) if Arc::ptr_eq(&r.session, session));
                if ours {
                    router.trie.remove(filter, &key);
                }
            }
            SubscriptionFilter::Shared { group, filter } => {
                let key = RouteKey::Shared(Arc::from(group));
                let now_empty = match router.trie.get(filter, &key) {
                    Some(Route::Shared(existing)) => {
                        let mut members =
                            existing.members.lock().unwrap_or_else(|p| p.into_inner());
                        members.retain(|m| !Arc::ptr_eq(&m.session, session));
                        members.is_empty()
                    }
                    _ => false,
                };
                if now_empty {
                    router.trie.remove(filter, &key);
                }
            }
        }
    }

    /// Removes every subscription of a session that is ending.
    pub(crate) fn forget_subscriptions(&self, session: &Arc<SessionHandle>) {
        let filters: Vec<String> = {
            let mut inner = session.lock();
            inner
                .state
                .subscriptions
                .drain()
                .map(|(filter, _)| filter)
                .collect()
        };
        for raw in filters {
            if let Ok(parsed) = ferrymq_topic::parse_subscription_filter(&raw, &self.topic_limits) {
                self.remove_subscription(session, parsed);
            }
        }
    }

    /// Hands the shared-subscription deliveries a departing session had not completed to
    /// other members of their groups.
    pub(crate) fn redistribute_shared(&self, session: &Arc<SessionHandle>) {
        let pending = session.lock().state.take_shared_undelivered();
        if pending.is_empty() {
            return;
        }
        let router = session.vhost.router();
        let mut moves = Vec::new();
        for delivery in pending {
            let Some(group_key) = delivery.shared_group.clone() else {
                continue;
            };
            let Some((group, filter)) = group_key.split_once('/') else {
                continue;
            };
            let key = RouteKey::Shared(Arc::from(group));
            if let Some(Route::Shared(shared)) = router.trie.get(filter, &key) {
                let members = shared.members.lock().unwrap_or_else(|p| p.into_inner());
                let target = members
                    .iter()
                    .find(|m| !Arc::ptr_eq(&m.session, session) && m.session.is_online())
                    .or_else(|| members.iter().find(|m| !Arc::ptr_eq(&m.session, session)))
                    .cloned();
                if let Some(member) = target {
                    let mut delivery = delivery;
                    delivery.qos = member.options.qos.min(delivery.message.qos);
                    delivery.subscription_ids = member.identifier.into_iter().collect();
                    moves.push((member.session, delivery));
                }
            }
        }
        drop(router);
        for (target, delivery) in moves {
            target.deliver(delivery, self.queue_limits(), &self.metrics, None);
        }
    }
}

/// Clones the `Arc`s it is given, a batch at a time: first a plain load of each one's
/// reference count, then the clones. Cloning an `Arc` is a locked increment, which waits for
/// its cache line (and, for messages spread over memory, a page walk) before the next one
/// starts; the plain loads have no such order, so the CPU can fetch the lines of a batch at
/// once. The clones go into chunks of a fixed size rather than one growing `Vec`: no copy
/// when it grows, and chunks small enough for the allocator to reuse freed memory instead of
/// mapping (and faulting in) fresh pages. This runs under the retained store's lock: for
/// `devices/#` over 100,000 retained messages both were measured to shorten the longest hold
/// (`docs/PERFORMANCE.md`, micro-benchmark finding 5).
#[derive(Default)]
struct BatchClone<'a> {
    batch: Vec<&'a Arc<Message>>,
    cloned: Vec<Vec<Arc<Message>>>,
}

impl<'a> BatchClone<'a> {
    const BATCH: usize = 32;
    /// 32 KiB of `Arc`s: below glibc's threshold for serving an allocation with `mmap`.
    const CHUNK: usize = 4096;

    fn push(&mut self, message: &'a Arc<Message>) {
        self.batch.push(message);
        if self.batch.len() >= Self::BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let counts = self
            .batch
            .iter()
            .fold(0usize, |sum, m| sum.wrapping_add(Arc::strong_count(m)));
        std::hint::black_box(counts);
        let chunk = match self.cloned.last_mut() {
            Some(chunk) if chunk.len() + self.batch.len() <= Self::CHUNK => chunk,
            _ => {
                self.cloned.push(Vec::with_capacity(Self::CHUNK));
                self.cloned.last_mut().expect("just pushed")
            }
        };
        chunk.extend(self.batch.drain(..).map(Arc::clone));
    }

    fn finish(mut self) -> Vec<Vec<Arc<Message>>> {
        self.flush();
        self.cloned
    }
}

/// The `Vec` routing collects a message's targets in, kept per thread between messages:
/// most messages have one or a few targets, and allocating (and freeing) a fresh `Vec` for
/// them was measurable in a QoS 0 1:1 profile. Taken out of its cell, not borrowed, so a
/// routing nested in another (there is none today) would just use a fresh one.
struct TargetBuffer;

thread_local! {
    static TARGET_BUFFER: Cell<Vec<Target>> = const { Cell::new(Vec::new()) };
}

impl TargetBuffer {
    /// Beyond this many targets the buffer is not kept: one large fan-out should not pin
    /// its memory to the thread.
    const KEEP: usize = 256;

    fn take() -> Vec<Target> {
        TARGET_BUFFER.take()
    }

    fn put_back(mut targets: Vec<Target>) {
        if targets.capacity() <= Self::KEEP {
            targets.clear();
            TARGET_BUFFER.set(targets);
        }
    }
}

/// Merges the targets of one message, draining them: one delivery per session for its
/// normal subscriptions (max QoS, OR of retain, all identifiers), plus one per shared group,
/// each handed to `deliver`.
fn merge_overlapping(
    message: &Arc<Message>,
    targets: &mut Vec<Target>,
    mut deliver: impl FnMut(Arc<SessionHandle>, Delivery),
) {
    if targets.len() > 1 {
        targets.sort_by_key(|t| (t.shared_group.is_some(), Arc::as_ptr(&t.session) as usize));
    }
    let mut pending: Option<(Arc<SessionHandle>, Delivery)> = None;
    for target in targets.drain(..) {
        if target.shared_group.is_none()
            && let Some((last_session, last)) = &mut pending
            && last.shared_group.is_none()
            && Arc::ptr_eq(last_session, &target.session)
        {
            last.qos = last.qos.max(target.qos);
            last.retain |= target.retain;
            last.subscription_ids.extend(target.identifier);
            continue;
        }
        let delivery = Delivery {
            message: message.clone(),
            qos: target.qos,
            retain: target.retain,
            subscription_ids: target.identifier.into_iter().collect(),
            shared_group: target.shared_group,
        };
        if let Some((session, delivery)) = pending.replace((target.session, delivery)) {
            deliver(session, delivery);
        }
    }
    if let Some((session, delivery)) = pending {
        deliver(session, delivery);
    }
}

mod cache;
#[cfg(test)]
mod tests;
