//! One client connection's protocol handling, independent of the transport: decoded packets
//! in, encoded packets out. The transport's task feeds it bytes, wakes it when its session
//! has deliveries, tells it when its deadline passes, and writes [`Connection::output`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ferrymq_codec::{
    AckProperties, ConnAck, ConnAckProperties, DecodeError, Decoder, Disconnect, Packet,
    ProtocolVersion, ReasonCode, SubAck, Subscribe, UnsubAck, Unsubscribe, encode,
};
use ferrymq_session::{ConnectionState, Delivery, Outgoing, Subscription, Transmitted};
use ferrymq_topic::{SubscriptionFilter, parse_subscription_filter};

use crate::clients::Transport;
use crate::connection_limits::LimitSlot;
use crate::metrics::Metrics;
use crate::peer_addr::PeerAddr;
use crate::permission_cache::PermissionCache;
use crate::registry::{CloseKind, SessionHandle};
use crate::{Broker, ConnectionPermit};

mod authenticate;
mod backpressure;
mod connect;
mod publish;
mod reauth;

use backpressure::Backpressure;

/// Payload bytes one delivery turn moves from the session queue to the output buffer.
const TRANSMIT_BUDGET: usize = 64 * 1024;

/// The connection must close: everything it should say last is already in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// What a connection keeps only for a while, behind one pointer: until its CONNECT is done
/// the handshake, then the back-pressure state while a PUBLISH waits or input was read
/// ahead. They never overlap (a PUBLISH before CONNECT closes the connection), and a
/// pointer each would cost every connection's task 8 bytes more.
enum Aside {
    Handshake(Handshake),
    Backpressure(Backpressure),
}

/// What a connection needs only until its CONNECT is done; dropped once the connection is
/// established: idle connections keep none of it.
struct Handshake {
    /// CONNECT must complete by then [MQTT-3.1.4]; fixed at accept so trickled bytes cannot extend it.
    connect_deadline: Instant,
    credentials: HandshakeCredentials,
}

/// What the transport learnt about the client before CONNECT, needed only by CONNECT.
#[derive(Default)]
struct HandshakeCredentials {
    /// User name from a verified TLS client certificate, when the listener maps them.
    certificate_user: Option<String>,
    /// A token from the WebSocket handshake's cookie ([`Connection::with_cookie_token`]).
    cookie_token: Option<String>,
    /// The listener's default vhost (clients without a `vhost:` prefix land there).
    listener_vhost: Option<Arc<str>>,
}

struct Established {
    session: Arc<SessionHandle>,
    state: ConnectionState,
    /// Who the client is, holding its place in its user's and vhost's connection counts.
    /// Its rights are re-read when the definitions change. Shared by the connections of an
    /// internal user (see `shared_identity`).
    identity: LimitSlot,
    /// `identity.permissions` bound to this client id, with a per-topic decision cache.
    permissions: PermissionCache,
    /// The authenticator generation `permissions` was bound at.
    auth_generation: u64,
    /// Session Expiry Interval from CONNECT; DISCONNECT may not raise it from zero [MQTT-3.14.2-2].
    connect_expiry: u32,
    /// When the client's token expires: the connection closes then (v5: 0xA0) unless an
    /// AUTH re-authentication moved it.
    token_deadline: Option<Instant>,
    /// CONNECT used the `JWT` authentication method, so AUTH may re-authenticate.
    jwt_method: bool,
}

/// A client connection. Create one per accepted socket with [`Connection::new`].
pub struct Connection {
    broker: Arc<Broker>,
    peer: PeerAddr,
    id: u64,
    decoder: Decoder,
    output: BytesMut,
    protocol: Option<ProtocolVersion>,
    established: Option<Established>,
    close_kind: CloseKind,
    closed: bool,
    /// Multiple of the keep-alive after which a silent client is dropped.
    keep_alive_grace: f32,
    /// Before CONNECT, the CONNECT deadline and the credentials the transport learnt (client
    /// certificate, token cookie); after it, back-pressure: the PUBLISH whose acknowledgement
    /// waits for room in subscribers' queues, if any, and how far the input was read ahead
    /// meanwhile. Boxed: every idle connection's task pays for what is inline here.
    aside: Option<Box<Aside>>,
    /// How the client connected, for the management API (one byte, in padding).
    transport: Transport,
}

impl Connection {
    pub fn new(broker: Arc<Broker>, peer: SocketAddr, permit: ConnectionPermit) -> Connection {
        let limits = &broker.config.limits;
        let decoder = Decoder::new(limits.max_connect_packet_size.min(limits.max_packet_size));
        let connect_deadline = Instant::now() + broker.config.mqtt.connect_timeout;
        let keep_alive_grace = broker.config.mqtt.keep_alive_grace;
        // Released in `drop`.
        permit.hand_over(&broker);
        Connection {
            id: broker.next_connection_id(),
            broker,
            peer: PeerAddr::from(peer),
            decoder,
            output: BytesMut::new(),
            protocol: None,
            established: None,
            close_kind: CloseKind::Abnormal,
            closed: false,
            keep_alive_grace,
            aside: Some(Box::new(Aside::Handshake(Handshake {
                connect_deadline,
                credentials: HandshakeCredentials::default(),
            }))),
            transport: Transport::Tcp,
        }
    }

    /// Overrides the keep-alive grace factor for this connection: WebSocket listeners relax
    /// it because browsers throttle timers in background tabs to once a minute.
    pub fn with_keep_alive_grace(mut self, grace: f32) -> Connection {
        self.keep_alive_grace = grace;
        self
    }

    /// Authenticates this connection by its TLS client certificate: CONNECT's user name and
    /// password are then not checked (RabbitMQ's EXTERNAL mechanism).
    pub fn with_certificate_user(mut self, username: String) -> Connection {
        if let Some(handshake) = self.handshake_mut() {
            handshake.credentials.certificate_user = Some(username);
        }
        self
    }

    /// A JSON Web Token from a cookie of the WebSocket handshake: it authenticates a CONNECT
    /// that carries no password (a browser cannot put a cookie in CONNECT, and an `HttpOnly`
    /// cookie is out of the page's reach altogether). The transport passes it only from
    /// origins the listener allows, because a browser attaches cookies to WebSockets that
    /// any site opens.
    pub fn with_cookie_token(mut self, token: String) -> Connection {
        if let Some(handshake) = self.handshake_mut() {
            handshake.credentials.cookie_token = Some(token);
        }
        self
    }

    /// Clients of this connection's listener land in `vhost` unless their user name says
    /// otherwise (`vhost:user`).
    pub fn with_listener_vhost(mut self, vhost: Arc<str>) -> Connection {
        if let Some(handshake) = self.handshake_mut() {
            handshake.credentials.listener_vhost = Some(vhost);
        }
        self
    }

    /// The transport the client connected over (the default is MQTT over TCP).
    pub fn with_transport(mut self, transport: Transport) -> Connection {
        self.transport = transport;
        self
    }

    fn handshake(&self) -> Option<&Handshake> {
        match self.aside.as_deref() {
            Some(Aside::Handshake(handshake)) => Some(handshake),
            _ => None,
        }
    }

    fn handshake_mut(&mut self) -> Option<&mut Handshake> {
        match self.aside.as_deref_mut() {
            Some(Aside::Handshake(handshake)) => Some(handshake),
            _ => None,
        }
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    pub fn peer(&self) -> SocketAddr {
        SocketAddr::from(self.peer)
    }

    /// Bytes to write to the peer; the transport writes them and clears the buffer.
    pub fn output(&mut self) -> &mut BytesMut {
        &mut self.output
    }

    /// Ready when [`Connection::on_wake`] has something to do: the session has deliveries,
    /// this connection was taken over, or (parked) a delivery it waits for was settled.
    /// Never ready before CONNECT. Registers `cx`'s waker with the sessions concerned, so
    /// the transport needs no wait future of its own.
    pub fn poll_wake(&self, cx: &mut Context<'_>) -> Poll<()> {
        let news = self.poll_session(cx);
        let unparked = self.poll_unparked(cx);
        match news.is_ready() || unparked.is_ready() {
            true => Poll::Ready(()),
            false => Poll::Pending,
        }
    }

    /// Whether the transport may put this quiet connection to sleep without a task of its
    /// own: it is connected, not parked by back-pressure, and has nothing left to write.
    /// While it sleeps the transport must still wake it for its socket, for its session
    /// (through the waker it leaves with [`Connection::poll_wake`]) and at
    /// [`Connection::deadline`].
    pub fn can_hibernate(&self) -> bool {
        self.established.is_some() && !self.closed && !self.is_parked() && self.output.is_empty()
    }

    /// `input` arrived for this connection while it hibernates. If it is exactly one
    /// PINGREQ, it is answered here, without waking the connection: the keep-alive
    /// restarts from `now` and the PINGRESP is put in [`Connection::output`] for the caller
    /// to write, and `true` is returned. Anything else (`false`) must wake the connection,
    /// which reads `input` from its socket itself: the caller only peeked at it.
    pub fn answer_asleep(&mut self, input: &[u8], now: Instant) -> bool {
        let Some(e) = &mut self.established else {
            return false;
        };
        let mut packet = BytesMut::from(input);
        if !matches!(self.decoder.decode(&mut packet), Ok(Some(Packet::PingReq)))
            || !packet.is_empty()
        {
            return false;
        }
        e.state.on_packet_received(now);
        encode(&Packet::PingResp, e.state.protocol, &mut self.output).is_ok()
    }

    /// What a connection whose write is blocked waits for besides the socket: a takeover or
    /// a kick (checked with [`Connection::check_attached`]). New deliveries do not wake it
    /// (it could not send them); they are noted and handled once the write is done, as is a
    /// settled parked delivery.
    pub fn poll_news_while_writing(&self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(e) = &self.established else {
            return Poll::Pending;
        };
        let broker = &self.broker;
        e.session.poll_news_while_writing(
            self.id,
            cx,
            Instant::now(),
            broker.queue_limits(),
            &broker.metrics,
        )
    }

    fn poll_session(&self, cx: &mut Context<'_>) -> Poll<()> {
        match &self.established {
            Some(e) => e.session.poll_news(self.id, cx),
            None => Poll::Pending,
        }
    }

    /// Keep-alive x grace once connected with keep-alive on: how long the client may go
    /// without a packet. The transport also bounds a write the client does not accept by it.
    pub fn keep_alive_span(&self) -> Option<Duration> {
        let e = self.established.as_ref()?;
        let keep_alive = e.state.keep_alive();
        (!keep_alive.is_zero()).then(|| keep_alive.mul_f32(self.keep_alive_grace.max(1.0)))
    }

    /// Whether this connection still serves its session. The transport asks while it cannot
    /// deliver (a write is blocked), so that a takeover still ends the old connection at
    /// once; v5 clients are told why, as from [`Connection::on_wake`].
    pub fn check_attached(&mut self) -> Result<(), Closed> {
        let Some(e) = &self.established else {
            return Ok(());
        };
        let kicked = {
            let mut inner = e.session.lock();
            Kicked::check(&mut inner, self.id)
        };
        match kicked {
            Some(kicked) => Err(self.kicked(kicked)),
            None => Ok(()),
        }
    }

    /// When [`Connection::on_deadline`] must be called: the CONNECT deadline, then the
    /// earlier of the keep-alive deadline (the parked check instead while parked: the
    /// client is not heard then) and the token's expiry.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.established {
            None => self.handshake().map(|h| h.connect_deadline),
            Some(e) => {
                let keep_alive = match self.parked_deadline() {
                    Some(check) => Some(check),
                    None => e.state.keep_alive_deadline(self.keep_alive_grace),
                };
                match (keep_alive, e.token_deadline) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
        }
    }

    /// Decodes and handles every complete packet at the front of `input`; stops at a PUBLISH
    /// that parks the connection (see [`Connection::is_parked`]), leaving the rest in
    /// `input`. While parked, only reads ahead in `input` for acknowledgements.
    pub async fn on_input(&mut self, input: &mut BytesMut) -> Result<(), Closed> {
        // One clock read for the batch: the packets of one read arrived together.
        let now = Instant::now();
        let buffered = input.len();
        while !self.is_parked() {
            match self.decoder.decode(input) {
                Ok(Some(packet)) => {
                    if let Some(e) = &mut self.established {
                        e.state.on_packet_received(now);
                    }
                    self.handle(packet, now).await?;
                }
                Ok(None) => break,
                Err(error) => return Err(self.on_decode_error(error)),
            }
        }
        self.decoded(buffered - input.len(), input.is_empty());
        self.read_ahead(input)?;
        self.transmit()
    }

    /// The session was notified, or deliveries this connection waits for were settled:
    /// unpark if it can, send what the queue holds, or leave if it was taken over.
    pub fn on_wake(&mut self) -> Result<(), Closed> {
        self.resume_parked(Instant::now());
        self.transmit()
    }

    /// The deadline from [`Connection::deadline`] has passed (checked against `now`).
    pub fn on_deadline(&mut self, now: Instant) -> Result<(), Closed> {
        if self.parked_deadline().is_some_and(|check| check <= now) {
            // Gives up on the subscribers that stalled; may unpark.
            self.resume_parked(now);
        }
        match self.deadline() {
            Some(deadline) if deadline <= now => {}
            _ => return Ok(()),
        }
        if self.established.is_none() {
            Metrics::inc(&self.broker.metrics.connect_timeouts);
            tracing::info!(peer = %self.peer, "closing connection: no CONNECT within the connect timeout");
            return Err(Closed);
        }
        if self
            .established
            .as_ref()
            .and_then(|e| e.token_deadline)
            .is_some_and(|expiry| expiry <= now)
        {
            tracing::info!(peer = %self.peer, client_id = %self.client_id(), "closing connection: its credentials expired");
            return Err(self.disconnect(ReasonCode::MaximumConnectTime));
        }
        if self.is_parked() {
            // The parked check moved on; keep-alive does not run while the client is not read.
            return Ok(());
        }
        Metrics::inc(&self.broker.metrics.keep_alive_timeouts);
        tracing::info!(peer = %self.peer, client_id = %self.client_id(), "keep-alive timeout");
        Err(self.disconnect(ReasonCode::KeepAliveTimeout))
    }

    /// The broker is shutting down: tell v5 clients why [MQTT-4.13].
    pub fn on_shutdown(&mut self) {
        if self.established.is_some() {
            let _ = self.disconnect(ReasonCode::ServerShuttingDown);
        }
    }

    /// The socket is gone (or about to be closed): detach from the session, which decides
    /// about the will and session expiry.
    pub fn on_closed(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.withdraw_parked();
        if let Some(e) = &self.established {
            tracing::info!(peer = %self.peer, client_id = %e.session.client_id, kind = ?self.close_kind, "client disconnected");
            self.broker
                .detach(&e.session, self.id, self.close_kind, Instant::now());
        }
    }

    fn client_id(&self) -> &str {
        self.established
            .as_ref()
            .map_or("", |e| &e.session.client_id)
    }

    fn is_v5(&self) -> bool {
        self.protocol.is_some_and(ProtocolVersion::is_v5)
    }

    fn send(&mut self, packet: &Packet) {
        write_packet(&mut self.output, self.protocol, &self.peer, packet);
    }

    /// Ends the connection because of `reason`: v5 clients get DISCONNECT with it [MQTT-4.13.2-1];
    /// v3 has no way to say why, so the socket just closes.
    fn disconnect(&mut self, reason: ReasonCode) -> Closed {
        if self.is_v5() && self.established.is_some() {
            self.send(&Packet::Disconnect(Box::new(Disconnect::new(reason))));
        }
        self.close_kind = CloseKind::Abnormal;
        Closed
    }

    /// A protocol violation: logged with the peer address, counted, connection closed.
    fn violation(&mut self, reason: ReasonCode, what: &str) -> Closed {
        Metrics::inc(&self.broker.metrics.protocol_errors);
        tracing::warn!(peer = %self.peer, client_id = %self.client_id(), %reason, "closing connection: {what}");
        self.disconnect(reason)
    }

    fn on_decode_error(&mut self, error: DecodeError) -> Closed {
        match &error {
            DecodeError::UnsupportedProtocolVersion { level } => {
                tracing::warn!(peer = %self.peer, level, "refusing CONNECT: unsupported protocol level");
                // The client's version is unknown: answer in the 3.1.1 form, which every
                // version can read, with "unacceptable protocol version" [MQTT-3.1.2-2].
                self.protocol = Some(ProtocolVersion::V3_1_1);
                self.refuse(ReasonCode::UnsupportedProtocolVersion);
                return Closed;
            }
            DecodeError::PacketTooLarge { .. } => {
                Metrics::inc(&self.broker.metrics.packets_too_large);
            }
            _ => {}
        }
        let message = error.to_string();
        if self.established.is_none() && self.decoder.protocol() == Some(ProtocolVersion::V5) {
            // A v5 CONNECT that failed after its version was read: CONNACK can say why
            // [MQTT-3.2.2-6]; v3 has no code for it, so those sockets just close.
            self.protocol = Some(ProtocolVersion::V5);
            Metrics::inc(&self.broker.metrics.protocol_errors);
            tracing::warn!(peer = %self.peer, "refusing CONNECT: {message}");
            return self.refuse(error.reason_code());
        }
        self.violation(error.reason_code(), &message)
    }

    async fn handle(&mut self, packet: Packet, now: Instant) -> Result<(), Closed> {
        if self.established.is_none() {
            return match packet {
                // Boxed: CONNECT (authentication, session attach) is the largest future by
                // far and runs once; inline it would size every idle connection's task.
                Packet::Connect(connect) => Box::pin(self.on_connect(*connect)).await,
                other => Err(self.violation(
                    ReasonCode::ProtocolError,
                    &format!("{} before CONNECT", other.name()),
                )),
            };
        }
        let Some(packet) = self.on_session_packet(packet) else {
            return Ok(());
        };
        match packet {
            Packet::Publish(publish) => self.on_publish(publish, now),
            Packet::Subscribe(subscribe) => self.on_subscribe(subscribe),
            Packet::Unsubscribe(unsubscribe) => {
                self.on_unsubscribe(unsubscribe);
                Ok(())
            }
            Packet::Disconnect(disconnect) => Err(self.on_disconnect(*disconnect)),
            Packet::Connect(_) => {
                Err(self.violation(ReasonCode::ProtocolError, "second CONNECT [MQTT-3.1.0-2]"))
            }
            Packet::Auth(auth) => self.on_auth(*auth),
            other => Err(self.violation(
                ReasonCode::ProtocolError,
                &format!("{} is a server-to-client packet", other.name()),
            )),
        }
    }

    /// Runs `f` on the locked session state.
    fn with_session<T>(&self, f: impl FnOnce(&mut crate::registry::SessionInner) -> T) -> T {
        let established = self
            .established
            .as_ref()
            .expect("only called once connected");
        let mut inner = established.session.lock();
        f(&mut inner)
    }

    /// Answers a refused CONNECT with CONNACK carrying `reason` [MQTT-3.2.2-6]; the caller closes.
    fn refuse(&mut self, reason: ReasonCode) -> Closed {
        self.send(&Packet::ConnAck(Box::new(ConnAck {
            session_present: false,
            reason_code: reason,
            properties: ConnAckProperties::default(),
        })));
        Closed
    }

    fn on_subscribe(&mut self, subscribe: Subscribe) -> Result<(), Closed> {
        self.refresh_permissions()?;
        let broker = Arc::clone(&self.broker);
        let session = self
            .established
            .as_ref()
            .map(|e| e.session.clone())
            .ok_or(Closed)?;
        let identifier = subscribe.properties.subscription_identifier;
        let mut reason_codes = Vec::with_capacity(subscribe.filters.len());
        let mut retained: Vec<Delivery> = Vec::new();
        let now = Instant::now();
        for (raw, options) in &subscribe.filters {
            let parsed = match parse_subscription_filter(raw, &broker.topic_limits) {
                Ok(parsed) => parsed,
                Err(error) => {
                    Metrics::inc(&broker.metrics.topics_invalid);
                    tracing::debug!(peer = %self.peer, filter = %raw, %error, "refusing subscription");
                    reason_codes.push(ReasonCode::TopicFilterInvalid);
                    continue;
                }
            };
            let shared = matches!(parsed, SubscriptionFilter::Shared { .. });
            if shared && !broker.config.mqtt.shared_subscriptions_available {
                reason_codes.push(ReasonCode::SharedSubscriptionsNotSupported);
                continue;
            }
            if shared && options.no_local {
                return Err(self.violation(
                    ReasonCode::ProtocolError,
                    "No Local on a shared subscription [MQTT-3.8.3-4]",
                ));
            }
            let allowed = self
                .established
                .as_ref()
                .is_some_and(|e| e.permissions.may_subscribe(parsed.topic_filter()));
            if !allowed {
                Metrics::inc(&broker.metrics.subscriptions_denied);
                tracing::info!(peer = %self.peer, client_id = %self.client_id(), filter = %raw, "refusing subscription: not authorized");
                reason_codes.push(ReasonCode::NotAuthorized);
                continue;
            }
            let granted = options.qos.min(broker.config.mqtt.maximum_qos);
            let subscription = Subscription {
                options: ferrymq_codec::SubscriptionOptions {
                    qos: granted,
                    ..*options
                },
                identifier,
            };
            let existed = {
                let mut inner = session.lock();
                let existed = inner.state.subscriptions.contains_key(raw);
                if !existed
                    && inner.state.subscriptions.len()
                        >= broker.config.limits.max_subscriptions_per_session
                {
                    None
                } else {
                    inner.state.subscriptions.insert(raw.clone(), subscription);
                    Some(existed)
                }
            };
            let Some(existed) = existed else {
                Metrics::inc(&broker.metrics.subscriptions_refused_limit);
                reason_codes.push(ReasonCode::QuotaExceeded);
                continue;
            };
            retained.extend(broker.add_subscription(
                &session,
                raw,
                parsed,
                subscription,
                existed,
                now,
            ));
            reason_codes.push(ReasonCode::granted(granted));
        }
        self.send(&Packet::SubAck(Box::new(SubAck {
            packet_id: subscribe.packet_id,
            reason_codes,
            properties: AckProperties::default(),
        })));
        // Retained messages follow the SUBACK [MQTT-3.8.4-?]: they go through the session
        // queue like any delivery, so flow control and packet ids apply to them too.
        for delivery in retained {
            session.deliver(delivery, broker.queue_limits(), &broker.metrics, None);
        }
        Ok(())
    }

    fn on_unsubscribe(&mut self, unsubscribe: Unsubscribe) {
        let broker = Arc::clone(&self.broker);
        let Some(session) = self.established.as_ref().map(|e| e.session.clone()) else {
            return;
        };
        let mut reason_codes = Vec::with_capacity(unsubscribe.filters.len());
        for raw in &unsubscribe.filters {
            let Ok(parsed) = parse_subscription_filter(raw, &broker.topic_limits) else {
                reason_codes.push(ReasonCode::TopicFilterInvalid);
                continue;
            };
            let existed = session.lock().state.subscriptions.remove(raw).is_some();
            if existed {
                broker.remove_subscription(&session, parsed);
                reason_codes.push(ReasonCode::Success);
            } else {
                reason_codes.push(ReasonCode::NoSubscriptionExisted);
            }
        }
        if !self.is_v5() {
            reason_codes.clear();
        }
        self.send(&Packet::UnsubAck(Box::new(UnsubAck {
            packet_id: unsubscribe.packet_id,
            reason_codes,
            properties: AckProperties::default(),
        })));
    }

    fn on_disconnect(&mut self, disconnect: Disconnect) -> Closed {
        let Some(e) = self.established.as_ref() else {
            return Closed;
        };
        if let Some(expiry) = disconnect.properties.session_expiry_interval {
            if e.connect_expiry == 0 && expiry != 0 {
                return self.violation(
                    ReasonCode::ProtocolError,
                    "DISCONNECT raised a zero Session Expiry Interval [MQTT-3.14.2-2]",
                );
            }
            let capped = expiry.min(self.broker.config.mqtt.max_session_expiry);
            e.session.lock().state.expiry_interval = capped;
        }
        self.close_kind = match disconnect.reason_code {
            ReasonCode::DisconnectWithWillMessage => CloseKind::NormalWithWill,
            ReasonCode::Success => CloseKind::Normal,
            // Any other reason from the client is an error report: the will is published.
            _ => CloseKind::Abnormal,
        };
        Closed
    }

    /// Removes the session's subscriptions that `permissions` no longer allows, so a revoked
    /// right stops delivering. Messages already queued still go out.
    fn revoke_disallowed_subscriptions(
        &self,
        session: &Arc<SessionHandle>,
        permissions: &PermissionCache,
    ) {
        let filters: Vec<String> = session.lock().state.subscriptions.keys().cloned().collect();
        for raw in filters {
            let Ok(parsed) = parse_subscription_filter(&raw, &self.broker.topic_limits) else {
                continue;
            };
            if permissions.may_subscribe(parsed.topic_filter()) {
                continue;
            }
            session.lock().state.subscriptions.remove(&raw);
            self.broker.remove_subscription(session, parsed);
            Metrics::inc(&self.broker.metrics.subscriptions_denied);
            tracing::info!(peer = %self.peer, client_id = %session.client_id, filter = %raw, "subscription removed: no longer authorized");
        }
    }

    /// The definitions changed since this connection's rights were bound: re-read them, drop
    /// what is no longer allowed, or close the connection when its access is gone.
    fn refresh_permissions(&mut self) -> Result<(), Closed> {
        let generation = self.broker.auth.generation();
        let Some(e) = self.established.as_ref() else {
            return Ok(());
        };
        if e.auth_generation == generation {
            return Ok(());
        }
        let Some(current) = self.broker.auth.current_permissions(&e.identity) else {
            tracing::info!(peer = %self.peer, client_id = %e.session.client_id, user = %e.identity.username, "closing connection: access to the vhost was revoked");
            return Err(self.disconnect(ReasonCode::NotAuthorized));
        };
        let permissions = PermissionCache::new(
            &current,
            &e.identity.username,
            &e.session.client_id,
            &e.identity.vhost,
        );
        let session = e.session.clone();
        self.revoke_disallowed_subscriptions(&session, &permissions);
        if let Some(e) = self.established.as_mut() {
            e.permissions = permissions;
            e.auth_generation = generation;
        }
        Ok(())
    }

    /// Moves queued deliveries onto the wire, or notices a takeover.
    fn transmit(&mut self) -> Result<(), Closed> {
        self.refresh_permissions()?;
        // Borrowed beside `established`, not cloned: see `on_publish`.
        let broker = &*self.broker;
        let Some(e) = self.established.as_mut() else {
            return Ok(());
        };
        let mut outgoing = Vec::new();
        let mut admitted = Vec::new();
        let mut dropped = Transmitted::default();
        let now = Instant::now();
        let kicked = {
            let mut inner = e.session.lock();
            if let Some(kicked) = Kicked::check(&mut inner, self.id) {
                Some(kicked)
            } else {
                let (transmitted, wake) = inner.transmit(
                    &mut e.state,
                    now,
                    broker.config.limits.max_inflight,
                    TRANSMIT_BUDGET,
                    &mut outgoing,
                    broker.queue_limits(),
                    &broker.metrics,
                );
                admitted = wake;
                dropped = transmitted;
                if dropped.budget_exhausted {
                    // More is queued: come back after this batch is written, so a long
                    // backlog goes out in bounded turns instead of one huge buffer. (This
                    // task is running: the news is seen at its next wait, no wake needed.)
                    inner.news = true;
                }
                None
            }
        };
        admitted.into_iter().for_each(Waker::wake);
        if let Some(kicked) = kicked {
            return Err(self.kicked(kicked));
        }
        // Outside the session's lock: build and encode what was taken.
        let Some(e) = self.established.as_mut() else {
            return Ok(());
        };
        let mut sent = 0;
        dropped.too_large += Outgoing::build_all(outgoing, &mut e.state, now, |packet| {
            write_packet(&mut self.output, self.protocol, &self.peer, &packet);
            sent += 1;
        });
        let metrics = &self.broker.metrics;
        Metrics::add(&metrics.messages_sent, sent);
        Metrics::add(&metrics.messages_dropped_expired, dropped.expired as u64);
        Metrics::add(
            &metrics.messages_dropped_too_large,
            dropped.too_large as u64,
        );
        Ok(())
    }

    /// The session asked this connection to go.
    fn kicked(&mut self, kicked: Kicked) -> Closed {
        match kicked {
            Kicked::TakenOver(reason) => self.taken_over(reason),
            Kicked::Closed(reason) => {
                tracing::info!(peer = %self.peer, client_id = %self.client_id(), %reason, "closing connection on request (management API)");
                self.disconnect(reason)
            }
        }
    }

    /// Another connection took the session: v5 clients are told `reason`.
    fn taken_over(&mut self, reason: ReasonCode) -> Closed {
        tracing::info!(peer = %self.peer, client_id = %self.client_id(), %reason, "connection replaced by a newer one");
        self.close_kind = CloseKind::TakenOver;
        if self.is_v5() {
            self.send(&Packet::Disconnect(Box::new(Disconnect::new(reason))));
        }
        Closed
    }
}

/// Appends `packet` to a connection's output (`Connection::send`, where `self` is not free).
fn write_packet(
    output: &mut BytesMut,
    protocol: Option<ProtocolVersion>,
    peer: &PeerAddr,
    packet: &Packet,
) {
    let protocol = protocol.unwrap_or(ProtocolVersion::V3_1_1);
    if let Err(error) = encode(packet, protocol, output) {
        tracing::error!(peer = %peer, packet = packet.name(), %error, "cannot encode packet");
    }
}

/// Why the session wants its connection gone.
#[derive(Debug, Clone, Copy)]
enum Kicked {
    /// Another connection took the session over.
    TakenOver(ReasonCode),
    /// Closed on request ([`Broker::close_connection`]); the connection is still attached.
    Closed(ReasonCode),
}

impl Kicked {
    fn check(inner: &mut crate::registry::SessionInner, id: u64) -> Option<Kicked> {
        if inner.attached() != Some(id) {
            return Some(Kicked::TakenOver(
                inner.kick.unwrap_or(ReasonCode::SessionTakenOver),
            ));
        }
        inner.kick.take().map(Kicked::Closed)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.on_closed();
        // The slot of the `ConnectionPermit` this connection was made with.
        Metrics::dec(&self.broker.metrics.connections_open);
    }
}
