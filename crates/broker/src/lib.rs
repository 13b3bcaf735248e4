//! The running core of FerryMQ: the session registry and takeover, routing through the
//! subscription trie into bounded per-session queues, retained messages, wills, limits and
//! metrics. It knows nothing of transports: a transport hands each connection's decoded
//! bytes to a [`Connection`] and writes back what it produces.

pub mod config;
mod connection;
mod metrics;
mod registry;
mod router;
mod sys;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use ferrymq_auth::Authenticator;
use ferrymq_session::{Message, QueueLimits};
use ferrymq_topic::{TopicLimits, TopicTree};
use tokio_util::sync::CancellationToken;

pub use config::{BrokerConfig, Limits, MqttSettings};
pub use connection::{Closed, Connection};
pub use metrics::Metrics;
pub use registry::{CloseKind, SessionHandle};
pub use router::PublishOutcome;

use router::Router;

/// The broker. Shared as `Arc<Broker>` by every connection task.
pub struct Broker {
    config: BrokerConfig,
    auth: Authenticator,
    topic_limits: TopicLimits,
    sessions: Mutex<HashMap<Arc<str>, Arc<SessionHandle>>>,
    router: RwLock<Router>,
    retained: RwLock<TopicTree<Arc<Message>>>,
    metrics: Metrics,
    next_connection_id: AtomicU64,
    shutdown: CancellationToken,
    /// Concurrent password verifications (argon2): one per core.
    password_checks: tokio::sync::Semaphore,
}

/// Counts one open network connection; dropping it releases the slot.
#[derive(Debug)]
pub struct ConnectionPermit {
    broker: Arc<Broker>,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        Metrics::dec(&self.broker.metrics.connections_open);
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
        let topic_limits = TopicLimits {
            max_topic_length: config.limits.max_topic_length,
            max_topic_levels: config.limits.max_topic_levels,
        };
        Arc::new(Broker {
            config,
            auth,
            topic_limits,
            sessions: Mutex::new(HashMap::new()),
            router: RwLock::new(Router::default()),
            retained: RwLock::new(TopicTree::new()),
            metrics: Metrics::default(),
            next_connection_id: AtomicU64::new(1),
            shutdown: CancellationToken::new(),
            password_checks: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
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
            broker: Arc::clone(self),
        })
    }

    fn queue_limits(&self) -> QueueLimits {
        QueueLimits {
            max_messages: self.config.limits.max_queued_messages,
            max_bytes: self.config.limits.max_queued_bytes,
        }
    }

    fn lock_sessions(&self) -> MutexGuard<'_, HashMap<Arc<str>, Arc<SessionHandle>>> {
        self.sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }
}
