//! Broker counters and gauges. Relaxed atomics: they are statistics, not synchronisation.
//!
//! A counter bumped per message (`messages_received`, `messages_sent`) is striped: one cache
//! line per stripe, each thread adding to its own. A single atomic shared by tokio's worker
//! threads moves its cache line between the cores at every add; in a QoS 0 1:1 profile that
//! one `lock add` (and the clone of the broker's `Arc` next to it) took a fifth of the broker's
//! CPU (`docs/PERFORMANCE.md`, stop 11). Gauges go up and down once per connection or
//! session, not per message, and stay one atomic: a sum of stripes read while a connection
//! opens on one thread and closes on another could be seen below zero.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;

/// Whether a metric only grows (a counter) or goes up and down (a gauge), as Prometheus
/// distinguishes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only grows, from 0 at start.
    Counter,
    /// A current level.
    Gauge,
}

/// A metric's name, kind and description (its doc comment), for exporters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDescription {
    /// The name without a prefix, as in [`Metrics::snapshot`].
    pub name: &'static str,
    /// Counter or gauge.
    pub kind: MetricKind,
    /// One line of text saying what is counted.
    pub help: &'static str,
}

/// The type of a metric of each kind.
macro_rules! metric_type {
    (Counter) => {
        Counter
    };
    (Gauge) => {
        Gauge
    };
}

macro_rules! counters {
    ($($(#[doc = $doc:literal])* $kind:ident $name:ident,)*) => {
        /// Every counter the broker keeps. Names are the metric names without a prefix.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $($(#[doc = $doc])* pub $name: metric_type!($kind),)*
        }

        impl Metrics {
            /// (name, value) of every counter, for $SYS topics and the admin API.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.value()),)*]
            }

            /// Every metric's name, kind and description, in the order of
            /// [`Metrics::snapshot`]. The description is the field's doc comment.
            pub fn descriptions() -> &'static [MetricDescription] {
                &[$(MetricDescription {
                    name: stringify!($name),
                    kind: MetricKind::$kind,
                    help: concat!($($doc),*),
                },)*]
            }
        }
    };
}

counters! {
    /// Network connections currently open (authenticated or not).
    Gauge connections_open,
    /// Idle MQTT/TCP connections currently sleeping without a task of their own
    /// (`hibernate_after_secs`); they are also counted in `connections_open`.
    Gauge connections_hibernated,
    /// Times a hibernated connection was woken into a task again (by its client, its
    /// session, its deadline or shutdown).
    Counter hibernated_wakes,
    /// PINGREQs of hibernated connections answered without waking them.
    Counter hibernated_pings_answered,
    /// Network connections accepted since start.
    Counter connections_accepted,
    /// Connections refused because `max_connections` was reached.
    Counter connections_refused_limit,
    /// CONNECTs refused by a user's or vhost's `max_connections`.
    Counter connections_refused_user_or_vhost_limit,
    /// Sockets closed because CONNECT did not complete within the connect timeout.
    Counter connect_timeouts,
    /// Logins (MQTT CONNECT or management API) refused for bad credentials, anonymous access
    /// or no access to the vhost.
    Counter auth_failures,
    /// CONNECTs refused because their address failed to log in too often (`max_failed_logins`).
    Counter logins_throttled,
    /// Requests sent to the HTTP authentication hook.
    Counter auth_hook_requests,
    /// Hook requests that gave no answer: timeout, connection error, a status other than
    /// 200, an invalid body. `on_error` decided those logins.
    Counter auth_hook_errors,
    /// Logins the hook's cached answers decided without a request.
    Counter auth_hook_cache_hits,
    /// Clients disconnected for keep-alive expiry.
    Counter keep_alive_timeouts,
    /// Connections closed for a malformed packet or a protocol violation.
    Counter protocol_errors,
    /// Packets refused for exceeding `max_packet_size` (or `max_connect_packet_size`).
    Counter packets_too_large,
    /// Sessions taken over by a new connection with the same client id.
    Counter session_takeovers,
    /// Sessions currently known (connected or persistent).
    Gauge sessions,
    /// Sessions that ended by expiry while disconnected.
    Counter sessions_expired,
    /// PUBLISH packets received from clients.
    Counter messages_received,
    /// PUBLISH packets sent to clients.
    Counter messages_sent,
    /// Messages dropped because a session queue was full (`max_queued_messages`/`_bytes`).
    Counter messages_dropped_queue_full,
    /// QoS 1/2 PUBLISHes held back because a connected subscriber's queue was full: the
    /// publishing connection stopped reading until there was room (`queue_overflow`).
    Counter publishes_blocked,
    /// Publishing connections blocked that way right now.
    Gauge publishers_blocked,
    /// Milliseconds publishing connections have spent blocked, summed.
    Counter publishers_blocked_ms,
    /// Blocked deliveries given up because their subscriber sent nothing for
    /// `publish_backpressure_timeout` (then queued or dropped by the overflow policy).
    Counter publish_backpressure_timeouts,
    /// Messages dropped because their Message Expiry Interval passed while queued.
    Counter messages_dropped_expired,
    /// Messages not sent because they exceed the client's Maximum Packet Size.
    Counter messages_dropped_too_large,
    /// SUBSCRIBE filters refused because of `max_subscriptions_per_session`.
    Counter subscriptions_refused_limit,
    /// Topic names or filters refused by validation or topic limits.
    Counter topics_invalid,
    /// PUBLISHes refused by the user's permissions.
    Counter publishes_denied,
    /// SUBSCRIBE filters refused by the user's permissions (or revoked later).
    Counter subscriptions_denied,
    /// Will messages published.
    Counter wills_published,
    /// Retained messages currently stored.
    Gauge retained_messages,
}

impl Metrics {
    pub fn inc(metric: &impl Metric) {
        metric.add(1);
    }

    /// Adds `n`; adding 0 writes nothing (an atomic add of 0 still takes the cache line).
    pub fn add(metric: &impl Metric, n: u64) {
        if n > 0 {
            metric.add(n);
        }
    }

    pub fn dec(gauge: &Gauge) {
        gauge.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn get(metric: &impl Metric) -> u64 {
        metric.value()
    }
}

/// What both kinds of metric do.
pub trait Metric {
    fn add(&self, n: u64);
    fn value(&self) -> u64;
}

/// A level that goes up and down: one atomic.
pub type Gauge = AtomicU64;

impl Metric for Gauge {
    fn add(&self, n: u64) {
        self.fetch_add(n, Ordering::Relaxed);
    }

    fn value(&self) -> u64 {
        self.load(Ordering::Relaxed)
    }
}

/// How many stripes a [`Counter`] has. Threads take stripes in turn, so up to this many
/// threads (tokio's workers, one per core, come first) never share one.
const STRIPES: usize = 8;

/// A count that only grows, bumped from many threads: each thread adds to its own stripe,
/// a read sums them. Sums read one after another never go down, since every stripe only
/// grows.
#[derive(Debug, Default)]
pub struct Counter {
    stripes: [CachePadded<AtomicU64>; STRIPES],
}

impl Metric for Counter {
    fn add(&self, n: u64) {
        self.stripes[stripe()].fetch_add(n, Ordering::Relaxed);
    }

    fn value(&self) -> u64 {
        self.stripes.iter().fold(0u64, |sum, stripe| {
            sum.wrapping_add(stripe.load(Ordering::Relaxed))
        })
    }
}

/// This thread's stripe, handed out in turn at its first use.
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: Cell<Option<usize>> = const { Cell::new(None) };
    }
    STRIPE.with(|stripe| match stripe.get() {
        Some(index) => index,
        None => {
            let index = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
            stripe.set(Some(index));
            index
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_sums_what_every_thread_added() {
        let counter = Counter::default();
        std::thread::scope(|scope| {
            for _ in 0..STRIPES + 3 {
                scope.spawn(|| (0..1000).for_each(|_| Metrics::inc(&counter)));
            }
        });
        Metrics::add(&counter, 5);
        assert_eq!(Metrics::get(&counter), (STRIPES as u64 + 3) * 1000 + 5);
    }

    #[test]
    fn gauges_go_down() {
        let metrics = Metrics::default();
        Metrics::inc(&metrics.connections_open);
        Metrics::inc(&metrics.connections_open);
        Metrics::dec(&metrics.connections_open);
        assert_eq!(Metrics::get(&metrics.connections_open), 1);
    }
}
