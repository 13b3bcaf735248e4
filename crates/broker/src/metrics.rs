//! Broker counters. Plain relaxed atomics: they are statistics, not synchronisation, and
//! cost one uncontended add on the paths that bump them.

use std::sync::atomic::{AtomicU64, Ordering};

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

macro_rules! counters {
    ($($(#[doc = $doc:literal])* $kind:ident $name:ident,)*) => {
        /// Every counter the broker keeps. Names are the metric names without a prefix.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $($(#[doc = $doc])* pub $name: AtomicU64,)*
        }

        impl Metrics {
            /// (name, value) of every counter, for $SYS topics and the admin API.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Ordering::Relaxed)),)*]
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
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn dec(counter: &AtomicU64) {
        counter.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
