//! Short constructors for the packets tests send. Each builder produces the codec's own
//! packet struct, so a test can still set any field the builder has no method for; nothing
//! here validates, so invalid-but-encodable packets are easy to make on purpose.
//!
//! Defaults: CONNECT carries `guest`/`guest`, Clean Start, keep-alive 60 s; PUBLISH is QoS 0.

use bytes::Bytes;
use ferrymq_codec::{
    Connect, ConnectProperties, Disconnect, ForwardedProperties, LastWill, Packet, PacketId,
    ProtocolVersion, PubAck, PubComp, PubRec, PubRel, Publish, PublishProperties, QoS, ReasonCode,
    RetainHandling, Subscribe, SubscribeProperties, SubscriptionOptions, Unsubscribe,
    WillProperties,
};

/// Builds a CONNECT; see [`connect`].
#[derive(Debug, Clone)]
pub struct ConnectBuilder {
    connect: Connect,
}

/// A CONNECT for `protocol` with `client_id`, user `guest` / password `guest`, Clean Start
/// (Clean Session in 3.1/3.1.1) and a keep-alive of 60 s.
pub fn connect(protocol: ProtocolVersion, client_id: &str) -> ConnectBuilder {
    ConnectBuilder {
        connect: Connect {
            protocol,
            clean_start: true,
            keep_alive: 60,
            client_id: client_id.to_owned(),
            will: None,
            username: Some("guest".to_owned()),
            password: Some(Bytes::from_static(b"guest")),
            properties: ConnectProperties::default(),
        },
    }
}

impl ConnectBuilder {
    pub fn clean_start(mut self, clean: bool) -> Self {
        self.connect.clean_start = clean;
        self
    }

    /// Keep-alive in seconds; 0 disables it.
    pub fn keep_alive(mut self, secs: u16) -> Self {
        self.connect.keep_alive = secs;
        self
    }

    pub fn credentials(mut self, username: &str, password: &str) -> Self {
        self.connect.username = Some(username.to_owned());
        self.connect.password = Some(Bytes::copy_from_slice(password.as_bytes()));
        self
    }

    /// No user name and no password: an anonymous client.
    pub fn anonymous(mut self) -> Self {
        self.connect.username = None;
        self.connect.password = None;
        self
    }

    /// v5 Session Expiry Interval, seconds.
    pub fn session_expiry(mut self, secs: u32) -> Self {
        self.connect.properties.session_expiry_interval = Some(secs);
        self
    }

    /// v5 Receive Maximum: QoS 1/2 PUBLISHes the client accepts unacknowledged.
    pub fn receive_maximum(mut self, max: u16) -> Self {
        self.connect.properties.receive_maximum = Some(max);
        self
    }

    /// v5 Maximum Packet Size the client accepts. The client's decoder enforces it too.
    pub fn maximum_packet_size(mut self, max: u32) -> Self {
        self.connect.properties.maximum_packet_size = Some(max);
        self
    }

    /// v5 Topic Alias Maximum: aliases the client accepts from the server.
    pub fn topic_alias_maximum(mut self, max: u16) -> Self {
        self.connect.properties.topic_alias_maximum = Some(max);
        self
    }

    /// v5 Authentication Method (enhanced authentication).
    pub fn authentication_method(mut self, method: &str) -> Self {
        self.connect.properties.authentication_method = Some(method.to_owned());
        self
    }

    /// A will message; refine it with the `will_*` methods.
    pub fn will(mut self, topic: &str, payload: &[u8], qos: QoS) -> Self {
        self.connect.will = Some(LastWill {
            topic: topic.to_owned(),
            payload: Bytes::copy_from_slice(payload),
            qos,
            retain: false,
            properties: WillProperties::default(),
        });
        self
    }

    /// Sets Will Retain (requires [`ConnectBuilder::will`] first).
    pub fn will_retain(mut self) -> Self {
        if let Some(will) = &mut self.connect.will {
            will.retain = true;
        }
        self
    }

    /// v5 Will Delay Interval, seconds (requires [`ConnectBuilder::will`] first).
    pub fn will_delay(mut self, secs: u32) -> Self {
        if let Some(will) = &mut self.connect.will {
            will.properties.will_delay_interval = Some(secs);
        }
        self
    }

    /// Direct access to fields without a method.
    pub fn with(mut self, f: impl FnOnce(&mut Connect)) -> Self {
        f(&mut self.connect);
        self
    }

    pub fn build(self) -> Connect {
        self.connect
    }
}

impl From<ConnectBuilder> for Connect {
    fn from(builder: ConnectBuilder) -> Connect {
        builder.connect
    }
}

impl From<ConnectBuilder> for Packet {
    fn from(builder: ConnectBuilder) -> Packet {
        Packet::Connect(Box::new(builder.connect))
    }
}

/// Builds a PUBLISH; see [`publish`].
#[derive(Debug, Clone)]
pub struct PublishBuilder {
    publish: Publish,
}

/// A QoS 0 PUBLISH of `payload` to `topic`, without RETAIN or properties.
pub fn publish(topic: &str, payload: impl AsRef<[u8]>) -> PublishBuilder {
    PublishBuilder {
        publish: Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: topic.to_owned(),
            packet_id: None,
            properties: None,
            payload: Bytes::copy_from_slice(payload.as_ref()),
        },
    }
}

impl PublishBuilder {
    /// QoS 1 with packet identifier `id`.
    pub fn qos1(self, id: PacketId) -> Self {
        self.qos(QoS::AtLeastOnce, Some(id))
    }

    /// QoS 2 with packet identifier `id`.
    pub fn qos2(self, id: PacketId) -> Self {
        self.qos(QoS::ExactlyOnce, Some(id))
    }

    /// Any QoS and packet identifier, consistent or not.
    pub fn qos(mut self, qos: QoS, id: Option<PacketId>) -> Self {
        self.publish.qos = qos;
        self.publish.packet_id = id;
        self
    }

    pub fn retain(mut self) -> Self {
        self.publish.retain = true;
        self
    }

    pub fn dup(mut self) -> Self {
        self.publish.dup = true;
        self
    }

    /// v5 Message Expiry Interval, seconds.
    pub fn expiry(mut self, secs: u32) -> Self {
        self.publish
            .properties
            .get_or_insert_default()
            .message_expiry_interval = Some(secs);
        self
    }

    /// v5 Topic Alias. Combine with an empty topic (`publish("", …)`) to use an alias.
    pub fn alias(mut self, alias: u16) -> Self {
        self.publish.properties.get_or_insert_default().topic_alias = Some(alias);
        self
    }

    /// Direct access to the properties (created empty if there are none yet).
    pub fn properties(mut self, f: impl FnOnce(&mut PublishProperties)) -> Self {
        f(self.publish.properties.get_or_insert_default());
        self
    }

    /// Direct access to the properties the broker forwards unaltered (User Properties,
    /// Response Topic, Correlation Data, Content Type, Payload Format Indicator).
    pub fn forwarded(mut self, f: impl FnOnce(&mut ForwardedProperties)) -> Self {
        f(self
            .publish
            .properties
            .get_or_insert_default()
            .forwarded_mut());
        self
    }

    pub fn build(self) -> Publish {
        self.publish
    }
}

/// A copy of the properties of a received PUBLISH; empty ones when it carries none.
pub fn properties_of(publish: &Publish) -> PublishProperties {
    publish.properties.as_deref().cloned().unwrap_or_default()
}

/// A copy of the forwarded properties of a received PUBLISH; empty ones when it carries none.
pub fn forwarded_of(publish: &Publish) -> ForwardedProperties {
    let forwarded = publish
        .properties
        .as_ref()
        .and_then(|p| p.forwarded.as_deref());
    forwarded.cloned().unwrap_or_default()
}

impl From<PublishBuilder> for Publish {
    fn from(builder: PublishBuilder) -> Publish {
        builder.publish
    }
}

impl From<PublishBuilder> for Packet {
    fn from(builder: PublishBuilder) -> Packet {
        Packet::Publish(builder.publish)
    }
}

/// Builds a SUBSCRIBE; see [`subscribe`].
#[derive(Debug, Clone)]
pub struct SubscribeBuilder {
    subscribe: Subscribe,
}

/// A SUBSCRIBE with packet identifier `id` and one filter at `qos`; add more with
/// [`SubscribeBuilder::filter`].
pub fn subscribe(id: PacketId, filter: &str, qos: QoS) -> SubscribeBuilder {
    SubscribeBuilder {
        subscribe: Subscribe {
            packet_id: id,
            filters: Vec::new(),
            properties: SubscribeProperties::default(),
        },
    }
    .filter(filter, options(qos))
}

/// Subscription options with `qos` and every v5 option at its default (Retain Handling 0).
pub fn options(qos: QoS) -> SubscriptionOptions {
    SubscriptionOptions {
        qos,
        ..SubscriptionOptions::default()
    }
}

impl SubscribeBuilder {
    /// Adds a filter with its options.
    pub fn filter(mut self, filter: &str, options: SubscriptionOptions) -> Self {
        self.subscribe.filters.push((filter.to_owned(), options));
        self
    }

    /// Sets the options of every filter added so far.
    pub fn all_options(mut self, f: impl Fn(&mut SubscriptionOptions)) -> Self {
        for (_, options) in &mut self.subscribe.filters {
            f(options);
        }
        self
    }

    pub fn no_local(self) -> Self {
        self.all_options(|o| o.no_local = true)
    }

    pub fn retain_as_published(self) -> Self {
        self.all_options(|o| o.retain_as_published = true)
    }

    pub fn retain_handling(self, handling: RetainHandling) -> Self {
        self.all_options(|o| o.retain_handling = handling)
    }

    /// v5 Subscription Identifier.
    pub fn identifier(mut self, id: u32) -> Self {
        self.subscribe.properties.subscription_identifier = Some(id);
        self
    }

    pub fn build(self) -> Subscribe {
        self.subscribe
    }
}

impl From<SubscribeBuilder> for Subscribe {
    fn from(builder: SubscribeBuilder) -> Subscribe {
        builder.subscribe
    }
}

impl From<SubscribeBuilder> for Packet {
    fn from(builder: SubscribeBuilder) -> Packet {
        Packet::Subscribe(builder.subscribe)
    }
}

/// An UNSUBSCRIBE of `filters`.
pub fn unsubscribe(id: PacketId, filters: &[&str]) -> Packet {
    Packet::Unsubscribe(Unsubscribe {
        packet_id: id,
        filters: filters.iter().map(|f| (*f).to_owned()).collect(),
        user_properties: Vec::new(),
    })
}

/// PUBACK (Success) for `id`.
pub fn puback(id: PacketId) -> Packet {
    Packet::PubAck(PubAck::new(id, ReasonCode::Success))
}

/// PUBREC (Success) for `id`.
pub fn pubrec(id: PacketId) -> Packet {
    Packet::PubRec(PubRec::new(id, ReasonCode::Success))
}

/// PUBREL (Success) for `id`.
pub fn pubrel(id: PacketId) -> Packet {
    Packet::PubRel(PubRel::new(id, ReasonCode::Success))
}

/// PUBCOMP (Success) for `id`.
pub fn pubcomp(id: PacketId) -> Packet {
    Packet::PubComp(PubComp::new(id, ReasonCode::Success))
}

/// DISCONNECT with `reason` (only v5 encodes the reason).
pub fn disconnect(reason: ReasonCode) -> Packet {
    Packet::Disconnect(Box::new(Disconnect::new(reason)))
}
