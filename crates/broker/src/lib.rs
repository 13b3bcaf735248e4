//! The running core of FerryMQ: the session registry and takeover, routing through the
//! subscription trie into bounded per-session queues, retained messages, wills, limits and
//! metrics. It knows nothing of transports: a transport hands each connection's decoded
//! bytes to a [`Connection`] and writes back what it produces. It also owns the one outbound
//! client the broker has, the optional HTTP authentication hook ([`AuthHook`]).

pub mod auth_hook;
mod backpressure;
mod clients;
pub mod config;
mod connection;
mod connection_limits;
mod login;
mod metrics;
mod peer_addr;
mod permission_cache;
mod registry;
mod router;
mod shared_identity;
mod sys;
mod vhost;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use ferrymq_auth::{Authenticator, LoginThrottle};
use ferrymq_session::QueueLimits;
use ferrymq_topic::TopicLimits;
use tokio_util::sync::CancellationToken;

pub use auth_hook::{AuthHook, AuthHookConfig, AuthHookError, HookOnError, HookOrder};
pub use clients::{ConnectionInfo, Transport};
pub use config::{BrokerConfig, Limits, MqttSettings, QueueOverflow};
pub use connection::{Closed, Connection};
pub use login::LoginError;
pub use metrics::{Counter, Gauge, Metric, MetricDescription, MetricKind, Metrics};
pub use registry::{CloseKind, SessionHandle};
pub use router::PublishOutcome;
pub use vhost::{DEFAULT_VHOST, Vhost};

/// The broker. Shared as `Arc<Broker>` by every connection task.
pub struct Broker {
    config: BrokerConfig,
    auth: Authenticator,
    topic_limits: TopicLimits,
    /// Every virtual host by name; `default_vhost` is also in it.
    vhosts: RwLock<HashMap<Arc<str>, Arc<Vhost>>>,
    default_vhost: Arc<Vhost>,
    metrics: Metrics,
    next_connection_id: AtomicU64,
    shutdown: CancellationToken,
    /// Concurrent password verifications (argon2): one per core.
    password_checks: tokio::sync::Semaphore,
    /// Open connections per user and per vhost, for their `max_connections`.
    connection_counts: Arc<connection_limits::ConnectionCounts>,
    /// The identities connections of the same internal user share.
    identities: shared_identity::SharedIdentities,
    /// Failed logins per source address (the real one, behind trusted proxies).
    login_throttle: std::sync::Mutex<LoginThrottle>,
    /// The HTTP authentication hook, when configured.
    auth_hook: Option<AuthHook>,
}

/// Counts one open network connection; dropping it releases the slot.
#[derive(Debug)]
pub struct ConnectionPermit {
    /// `None` once handed to a [`Connection`], which releases the slot itself: it holds the
    /// broker anyway, and a second `Arc<Broker>` would cost every connection 8 bytes.
    broker: Option<Arc<Broker>>,
}

impl ConnectionPermit {
    /// Hands the slot over to a connection of `broker`, whose drop releases it.
    fn hand_over(mut self, broker: &Arc<Broker>) {
        debug_assert!(
            self.broker
                .as_ref()
                .is_some_and(|own| Arc::ptr_eq(own, broker))
        );
        self.broker = None;
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        if let Some(broker) = &self.broker {
            Metrics::dec(&broker.metrics.connections_open);
        }
    }
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Broker {
    pub fn new(config: BrokerConfig, auth: Authenticator) -> Arc<Broker> {
        Broker::build(config, auth, None)
    }

    /// A broker that asks `hook` about logins (see `docs/access-control.md`).
    pub fn with_auth_hook(
        config: BrokerConfig,
        auth: Authenticator,
        hook: AuthHook,
    ) -> Arc<Broker> {
        Broker::build(config, auth, Some(hook))
    }

    fn build(
        config: BrokerConfig,
        auth: Authenticator,
        auth_hook: Option<AuthHook>,
    ) -> Arc<Broker> {
        let topic_limits = TopicLimits {
            max_topic_length: config.limits.max_topic_length,
            max_topic_levels: config.limits.max_topic_levels,
        };
        let default_vhost = Arc::new(Vhost::new(Arc::from(DEFAULT_VHOST)));
        let login_throttle = LoginThrottle::new(
            config.limits.max_failed_logins,
            config.limits.failed_login_window,
            config.limits.failed_login_block,
        );
        Arc::new(Broker {
            config,
            auth,
            topic_limits,
            vhosts: RwLock::new(HashMap::from([(
                default_vhost.name.clone(),
                default_vhost.clone(),
            )])),
            default_vhost,
            metrics: Metrics::default(),
            next_connection_id: AtomicU64::new(1),
            shutdown: CancellationToken::new(),
            login_throttle: std::sync::Mutex::new(login_throttle),
            connection_counts: Arc::default(),
            identities: shared_identity::SharedIdentities::default(),
            password_checks: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
            auth_hook,
        })
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Cancelled when the broker shuts down; connection tasks select on it.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Starts a graceful shutdown: every connection task sends v5 clients DISCONNECT 0x8B,
    /// flushes and closes.
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Reserves a slot for a new network connection, or `None` at `max_connections`.
    pub fn try_open_connection(self: &Arc<Self>) -> Option<ConnectionPermit> {
        let open = self
            .metrics
            .connections_open
            .fetch_add(1, Ordering::Relaxed);
        Metrics::inc(&self.metrics.connections_accepted);
        if open >= self.config.limits.max_connections as u64 {
            Metrics::dec(&self.metrics.connections_open);
            Metrics::inc(&self.metrics.connections_refused_limit);
            return None;
        }
        Some(ConnectionPermit {
            broker: Some(Arc::clone(self)),
        })
    }

    fn queue_limits(&self) -> QueueLimits {
        QueueLimits {
            max_messages: self.config.limits.max_queued_messages,
            max_bytes: self.config.limits.max_queued_bytes,
        }
    }

    /// The vhost `/`, which always exists.
    pub fn default_vhost(&self) -> &Arc<Vhost> {
        &self.default_vhost
    }

    /// The vhost called `name`, if it exists.
    pub fn vhost(&self, name: &str) -> Option<Arc<Vhost>> {
        self.vhosts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// The vhost called `name`, created empty if it did not exist.
    pub fn ensure_vhost(&self, name: &str) -> Arc<Vhost> {
        if let Some(vhost) = self.vhost(name) {
            return vhost;
        }
        let mut vhosts = self.vhosts.write().unwrap_or_else(|p| p.into_inner());
        vhosts
            .entry(Arc::from(name))
            .or_insert_with_key(|name| Arc::new(Vhost::new(name.clone())))
            .clone()
    }

    /// The access-control definitions changed (the authenticator has the new ones): wake
    /// every connected session so its connection re-checks its rights now, not at its next
    /// packet. Revoked subscriptions stop delivering; revoked users are disconnected.
    pub fn definitions_changed(&self) {
        for vhost in self.vhosts() {
            let sessions: Vec<Arc<SessionHandle>> =
                vhost.lock_sessions().values().cloned().collect();
            for session in sessions {
                if session.is_online() {
                    session.notify();
                }
            }
        }
    }

    /// The HTTP authentication hook, when configured.
    pub fn auth_hook(&self) -> Option<&AuthHook> {
        self.auth_hook.as_ref()
    }

    /// The authenticator, for callers that replace its definitions.
    pub fn auth(&self) -> &Authenticator {
        &self.auth
    }

    /// Every vhost, in no particular order.
    pub fn vhosts(&self) -> Vec<Arc<Vhost>> {
        self.vhosts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn throttle(&self) -> std::sync::MutexGuard<'_, LoginThrottle> {
        self.login_throttle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// What every idle connection and session keeps, whatever it does. If one of these fails
/// after a field was added, share or box something rarely used instead, or accept the next
/// size class and update the numbers here and in docs/memory.md.
#[cfg(test)]
mod size_tests {
    use std::mem::size_of;

    use super::*;

    /// Measured with this mimalloc (2.x, as shipped): in bulk, a request takes the smallest
    /// size class *more than 7 bytes* larger than it, so a class's own size is served from
    /// the next one up (5,000 requests of 320 bytes: 3 blocks of 320, 4,997 of 384; of 313
    /// bytes: all 320). Powers of two are exact. So the limits below are a class minus 8.
    const fn fits_class(size: usize, class: usize) -> bool {
        size <= class - 8 || size.is_power_of_two() && size <= class
    }

    /// A `Connection` is paid per connection for its whole life: inline in its task, or
    /// boxed whole while an idle connection hibernates, where mimalloc rounds it up to its
    /// size classes (…, 192, 224, 256, 320, …). It was 464 bytes (a 512-byte box) before the
    /// identity was shared, the limit slot, keep-alive and peer address shrank, and the
    /// CONNECT deadline moved into the box that only lives until CONNECT.
    #[test]
    fn a_connection_fits_mimallocs_224_byte_class() {
        let size = size_of::<Connection>();
        assert!(fits_class(size, 224), "{size}");
    }

    /// Every session is an `Arc<SessionHandle>`: the handle plus the two 8-byte reference
    /// counts, in mimalloc's 320-byte class (it was 384 with the attached connection's
    /// record beside its id and the disconnection time, and again at 320 bytes exactly,
    /// until two flags shared a byte: see `registry::Held`).
    #[test]
    fn a_session_fits_mimallocs_320_byte_class() {
        let allocation = size_of::<SessionHandle>() + 16;
        assert!(fits_class(allocation, 320), "{allocation}");
    }
}
