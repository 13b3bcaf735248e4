//! The broker's settings, already validated and resolved (the server crate turns the config
//! file, flags and environment into this). Defaults here are the documented defaults of
//! `ferrymq.example.toml`.

use std::time::Duration;

use ferrymq_codec::QoS;

/// Bounds that protect the broker from one client. Each has a metric when it bites.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_packet_size: u32,
    pub max_connect_packet_size: u32,
    pub max_inflight: u16,
    pub max_queued_messages: usize,
    pub max_queued_bytes: usize,
    /// What a message for a connected subscriber whose queue is full does.
    pub queue_overflow: QueueOverflow,
    /// How long a connected subscriber that sends nothing from its full queue may hold
    /// publishers back (with [`QueueOverflow::Backpressure`]); counted from its last
    /// progress, not from each publish.
    pub publish_backpressure_timeout: Duration,
    pub max_topic_length: usize,
    pub max_topic_levels: usize,
    pub max_client_id_length: usize,
    pub max_subscriptions_per_session: usize,
    pub max_connections: usize,
    pub topic_alias_maximum: u16,
    /// Failed logins from one address (IPv6: one /64) within `failed_login_window` before the
    /// address is refused for `failed_login_block`; 0 disables throttling.
    pub max_failed_logins: u32,
    pub failed_login_window: Duration,
    pub failed_login_block: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_packet_size: 1024 * 1024,
            max_connect_packet_size: 64 * 1024,
            max_inflight: 128,
            max_queued_messages: 1000,
            max_queued_bytes: 16 * 1024 * 1024,
            queue_overflow: QueueOverflow::Backpressure,
            // Long enough to ride out a burst or a garbage-collection pause of a subscriber
            // (one that drains even 1,000 msg/s empties a default queue in a second), short
            // enough that a dead subscriber not yet caught by its keep-alive stalls publishers
            // well within the 10 s or more that client libraries wait for a PUBACK.
            publish_backpressure_timeout: Duration::from_secs(5),
            max_topic_length: 4096,
            max_topic_levels: 128,
            max_client_id_length: 256,
            max_subscriptions_per_session: 1000,
            max_connections: 100_000,
            topic_alias_maximum: 64,
            max_failed_logins: 10,
            failed_login_window: Duration::from_secs(60),
            failed_login_block: Duration::from_secs(60),
        }
    }
}

/// The overflow policy of a session queue for messages to a connected subscriber. (Offline
/// sessions never hold publishers back: QoS 0 is not kept for them, and a full queue refuses
/// QoS 1/2.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueOverflow {
    /// The publishing connection stops reading and holds back its PUBACK/PUBREC until the
    /// subscriber's queue has room, at most `publish_backpressure_timeout` without progress.
    /// A QoS 0 message waits only while the broker is behind with the subscriber, not while
    /// the subscriber's client is the limit (its write is blocked or its in-flight window is
    /// full): then the oldest QoS 0 message is dropped, as the protocol allows.
    #[default]
    Backpressure,
    /// The message is refused for that subscriber (v5 publishers see 0x97 Quota Exceeded
    /// when no subscriber took it), as for offline sessions.
    Drop,
}

/// Protocol behaviour that operators may tune.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttSettings {
    pub connect_timeout: Duration,
    pub keep_alive_grace: f32,
    /// v5 Server Keep Alive; `None` keeps the client's value.
    pub server_keep_alive: Option<u16>,
    pub max_session_expiry: u32,
    pub retain_available: bool,
    pub shared_subscriptions_available: bool,
    pub maximum_qos: QoS,
    /// MQTT 3.x has no reason code for a refused PUBLISH: drop it (and log), or close the
    /// connection as RabbitMQ does. v5 clients always get 0x87 Not authorized.
    pub disconnect_v3_on_denied_publish: bool,
}

impl Default for MqttSettings {
    fn default() -> Self {
        MqttSettings {
            connect_timeout: Duration::from_secs(10),
            keep_alive_grace: 1.5,
            server_keep_alive: None,
            max_session_expiry: 7 * 24 * 3600,
            retain_available: true,
            shared_subscriptions_available: true,
            maximum_qos: QoS::ExactlyOnce,
            disconnect_v3_on_denied_publish: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct BrokerConfig {
    pub limits: Limits,
    pub mqtt: MqttSettings,
}
