//! Application messages as the broker routes them, and one message's delivery to one session.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferrymq_codec::{ForwardedProperties, LastWill, Publish, QoS};

/// An application message after it was received: shared by every subscriber it is routed to
/// (one allocation per publish, whatever the fan-out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: Arc<str>,
    pub payload: Bytes,
    /// QoS the publisher used; a delivery never exceeds it.
    pub qos: QoS,
    pub retain: bool,
    /// The v5 properties every subscriber gets unaltered; `None` when the publisher set none.
    /// Each delivery's PUBLISH shares them (no copy of their strings); what differs per
    /// delivery (Topic Alias, Subscription Identifiers, the Message Expiry Interval left,
    /// from `expires_at`) is added when the PUBLISH is built.
    pub forwarded: Option<Arc<ForwardedProperties>>,
    /// Absolute deadline from the Message Expiry Interval [MQTT-3.3.2-5].
    pub expires_at: Option<Instant>,
    /// Client id of the publisher, for No Local [MQTT-3.8.3-3].
    pub publisher: Option<Arc<str>>,
    /// Published with Message Expiry Interval 0: it expires on arrival, so it goes only to
    /// sessions connected right now and is neither queued for offline ones nor retained.
    pub expires_on_arrival: bool,
}

impl Message {
    /// Builds the routed message from a received PUBLISH whose topic alias was already resolved.
    /// Its Topic Alias and Subscription Identifiers were for this hop only and are dropped.
    pub fn from_publish(publish: Publish, now: Instant, publisher: Option<Arc<str>>) -> Message {
        let (interval, forwarded) = match publish.properties {
            Some(properties) => (properties.message_expiry_interval, properties.forwarded),
            None => (None, None),
        };
        let (expires_at, expires_on_arrival) = expiry(interval, now);
        Message {
            topic: Arc::from(publish.topic),
            payload: publish.payload,
            qos: publish.qos,
            retain: publish.retain,
            forwarded,
            expires_at,
            publisher,
            expires_on_arrival,
        }
    }

    /// The message a will turns into when it is published.
    pub fn from_will(will: LastWill, now: Instant, publisher: Option<Arc<str>>) -> Message {
        let props = will.properties;
        let forwarded = ForwardedProperties {
            payload_format_indicator: props.payload_format_indicator,
            content_type: props.content_type,
            response_topic: props.response_topic,
            correlation_data: props.correlation_data,
            user_properties: props.user_properties,
        };
        let (expires_at, expires_on_arrival) = expiry(props.message_expiry_interval, now);
        Message {
            topic: Arc::from(will.topic),
            payload: will.payload,
            qos: will.qos,
            retain: will.retain,
            forwarded: (forwarded != ForwardedProperties::default()).then(|| Arc::new(forwarded)),
            expires_at,
            publisher,
            expires_on_arrival,
        }
    }

    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|deadline| deadline <= now)
    }

    /// Message Expiry Interval to put on a forwarded copy: the received interval minus the
    /// time the message has waited in the server [MQTT-3.3.2-6], rounded up so that a message
    /// that is not yet expired never goes out with 0.
    pub fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        self.expires_at.map(|deadline| {
            let left = deadline.saturating_duration_since(now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            u32::try_from(secs).unwrap_or(u32::MAX)
        })
    }

    /// Bytes this message accounts for in a queue: payload, topic and variable properties.
    pub fn weight(&self) -> usize {
        self.payload.len()
            + self.topic.len()
            + self.forwarded.as_deref().map_or(0, forwarded_weight)
    }
}

/// Bytes of the variable-length forwarded properties.
fn forwarded_weight(props: &ForwardedProperties) -> usize {
    let user: usize = props
        .user_properties
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    user + props.response_topic.as_ref().map_or(0, String::len)
        + props.correlation_data.as_ref().map_or(0, Bytes::len)
        + props.content_type.as_ref().map_or(0, String::len)
}

/// The absolute expiry of a message with this Message Expiry Interval, and whether it expires
/// on arrival (interval 0: nothing remains of it to forward, so it has no deadline either).
fn expiry(interval: Option<u32>, now: Instant) -> (Option<Instant>, bool) {
    match interval {
        None => (None, false),
        Some(0) => (None, true),
        Some(secs) => (Some(now + Duration::from_secs(u64::from(secs))), false),
    }
}

/// One message on its way to one session, with what that session's subscriptions decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub message: Arc<Message>,
    /// min(publish QoS, highest granted QoS among the matching subscriptions).
    pub qos: QoS,
    /// The RETAIN flag to send: set for retained messages sent at subscribe time, and on
    /// live messages only when a matching subscription asked for Retain As Published.
    pub retain: bool,
    /// Subscription Identifiers of every matching subscription that has one [MQTT-3.3.4-4].
    pub subscription_ids: Vec<u32>,
    /// The shared-subscription group (`group/filter`) this delivery was chosen for, so that
    /// it can go to another member if this session leaves before acknowledging it.
    pub shared_group: Option<Arc<str>>,
}
