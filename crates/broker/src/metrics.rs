//! Broker counters. Plain relaxed atomics: they are statistics, not synchronisation, and
//! cost one uncontended add on the paths that bump them.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// Every counter the broker keeps. Names are the metric names without a prefix.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        impl Metrics {
            /// (name, value) of every counter, for $SYS topics and the admin API.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

counters! {
    /// Network connections currently open (authenticated or not).
    connections_open,
    /// Network connections accepted since start.
    connections_accepted,
    /// Connections refused because `max_connections` was reached.
    connections_refused_limit,
    /// CONNECTs refused by a user's or vhost's `max_connections`.
    connections_refused_user_or_vhost_limit,
    /// Sockets closed because CONNECT did not complete within the connect timeout.
    connect_timeouts,
    /// CONNECTs refused for bad credentials or anonymous access.
    auth_failures,
    /// CONNECTs refused because their address failed to log in too often (`max_failed_logins`).
    logins_throttled,
    /// Clients disconnected for keep-alive expiry.
    keep_alive_timeouts,
    /// Connections closed for a malformed packet or a protocol violation.
    protocol_errors,
    /// Packets refused for exceeding `max_packet_size` (or `max_connect_packet_size`).
    packets_too_large,
    /// Sessions taken over by a new connection with the same client id.
    session_takeovers,
    /// Sessions currently known (connected or persistent).
    sessions,
    /// Sessions that ended by expiry while disconnected.
    sessions_expired,
    /// PUBLISH packets received from clients.
    messages_received,
    /// PUBLISH packets sent to clients.
    messages_sent,
    /// Messages dropped because a session queue was full (`max_queued_messages`/`_bytes`).
    messages_dropped_queue_full,
    /// QoS 1/2 PUBLISHes held back because a connected subscriber's queue was full: the
    /// publishing connection stopped reading until there was room (`queue_overflow`).
    publishes_blocked,
    /// Publishing connections blocked that way right now.
    publishers_blocked,
    /// Milliseconds publishing connections have spent blocked, summed.
    publishers_blocked_ms,
    /// Blocked deliveries given up because their subscriber sent nothing for
    /// `publish_backpressure_timeout` (then queued or dropped by the overflow policy).
    publish_backpressure_timeouts,
    /// Messages dropped because their Message Expiry Interval passed while queued.
    messages_dropped_expired,
    /// Messages not sent because they exceed the client's Maximum Packet Size.
    messages_dropped_too_large,
    /// SUBSCRIBE filters refused because of `max_subscriptions_per_session`.
    subscriptions_refused_limit,
    /// Topic names or filters refused by validation or topic limits.
    topics_invalid,
    /// PUBLISHes refused by the user's permissions.
    publishes_denied,
    /// SUBSCRIBE filters refused by the user's permissions (or revoked later).
    subscriptions_denied,
    /// Will messages published.
    wills_published,
    /// Retained messages currently stored.
    retained_messages,
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
