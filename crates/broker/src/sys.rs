//! `$SYS` topics: the broker publishes its counters as retained messages under
//! `$SYS/broker/`, as Mosquitto does, so any MQTT client can watch them (`$SYS/#`).
//! Wildcards at the first level never match `$` topics [MQTT-4.7.2-1], so ordinary `#`
//! subscribers do not receive them. Clients may not publish there.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferrymq_codec::QoS;
use ferrymq_session::Message;

use crate::Broker;

/// Prefix reserved for the broker's own topics.
pub(crate) const SYS_PREFIX: &str = "$SYS/";

/// How often the counters are republished.
pub(crate) const SYS_INTERVAL: Duration = Duration::from_secs(10);

impl Broker {
    /// Publishes `$SYS/broker/...` now and then every [`SYS_INTERVAL`] until shutdown.
    pub fn spawn_sys_publisher(self: &Arc<Self>) {
        let broker = Arc::clone(self);
        let started = Instant::now();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(SYS_INTERVAL);
            let shutdown = broker.shutdown.clone();
            loop {
                tokio::select! {
                    _ = ticker.tick() => broker.publish_sys(started),
                    () = shutdown.cancelled() => return,
                }
            }
        });
    }

    fn publish_sys(&self, started: Instant) {
        let mut values: Vec<(String, String)> = self
            .metrics
            .snapshot()
            .into_iter()
            .map(|(name, value)| (format!("{SYS_PREFIX}broker/{name}"), value.to_string()))
            .collect();
        values.push((
            format!("{SYS_PREFIX}broker/version"),
            env!("CARGO_PKG_VERSION").to_owned(),
        ));
        values.push((
            format!("{SYS_PREFIX}broker/uptime_secs"),
            started.elapsed().as_secs().to_string(),
        ));
        // $SYS is the broker's, so every vhost sees it.
        for vhost in self.vhosts() {
            for (topic, value) in &values {
                self.publish(
                    &vhost,
                    Message {
                        topic: Arc::from(topic.as_str()),
                        payload: Bytes::from(value.clone()),
                        qos: QoS::AtMostOnce,
                        retain: true,
                        forwarded: None,
                        expires_at: None,
                        publisher: None,
                        expires_on_arrival: false,
                    },
                );
            }
        }
    }
}
