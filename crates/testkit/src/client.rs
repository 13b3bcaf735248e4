//! [`RawClient`]: an MQTT client over TCP that does only what the test says. It encodes with
//! `ferrymq_codec::encode`, decodes with `ferrymq_codec::Decoder`, and never answers anything
//! by itself: no automatic PUBACK, PUBREC, PUBREL, PUBCOMP or PINGREQ. Every byte it writes is
//! one the test asked for, so tests can also write malformed bytes or trickle them.
//!
//! Receiving is explicit and bounded by a timeout: [`RawClient::next_event`] tells a packet
//! from a timeout, a closed socket and undecodable bytes; the `expect_*` methods are
//! assertions built on it (they panic with what arrived instead).

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ferrymq_codec::{
    ConnAck, Connect, DecodeError, Decoder, Disconnect, Packet, ProtocolVersion, PubAck, PubComp,
    PubRec, PubRel, Publish, QoS, ReasonCode, SubAck, Subscribe, UnsubAck, encode,
    peek_fixed_header,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::builders::{puback, pubcomp, pubrec, pubrel};
use crate::{QUIET, WAIT};

/// The largest packet MQTT can express: a 5-byte fixed header plus 268,435,455 bytes.
const MAX_MQTT_PACKET: u32 = 268_435_460;

/// What [`RawClient::next_event`] observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete, valid packet.
    Packet(Packet),
    /// The peer closed the connection (end of stream or reset) and no complete packet is left.
    Closed,
    /// Nothing complete arrived within the timeout.
    Timeout,
    /// The bytes received are not a valid packet for the protocol in force; the stream cannot
    /// be read further.
    Invalid(DecodeError),
    /// Reading failed for another reason.
    Io(io::ErrorKind),
}

/// A raw MQTT client; see the module documentation.
#[derive(Debug)]
pub struct RawClient {
    stream: TcpStream,
    decoder: Decoder,
    protocol: ProtocolVersion,
    input: BytesMut,
    last_raw: Bytes,
    eof: bool,
    /// Packets read ahead by [`RawClient::expect_matching`], returned first, in order.
    pending: VecDeque<(Bytes, Packet)>,
    /// For panic messages: the client id of the CONNECT sent, or the peer address.
    label: String,
}

macro_rules! expect_variant {
    (@impl $(#[$doc:meta])* $name:ident, $variant:ident, $ty:ty, |$packet:ident| $unwrap:expr) => {
        $(#[$doc])*
        pub async fn $name(&mut self, timeout: Duration) -> $ty {
            match self.expect_packet(timeout).await {
                Packet::$variant($packet) => $unwrap,
                other => panic!(
                    "[{}] expected {}, got {other:?}",
                    self.label,
                    stringify!($variant)
                ),
            }
        }
    };
    // The variants `Packet` keeps boxed are handed out unboxed.
    ($(#[$doc:meta])* $name:ident, boxed $variant:ident, $ty:ty) => {
        expect_variant!(@impl $(#[$doc])* $name, $variant, $ty, |packet| *packet);
    };
    ($(#[$doc:meta])* $name:ident, $variant:ident, $ty:ty) => {
        expect_variant!(@impl $(#[$doc])* $name, $variant, $ty, |packet| packet);
    };
}

impl RawClient {
    /// Opens a TCP connection and sends nothing. Received packets are decoded as MQTT 5.0
    /// until [`RawClient::set_protocol`] or [`RawClient::send`] of a CONNECT says otherwise.
    pub async fn open(addr: SocketAddr) -> io::Result<RawClient> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let mut decoder = Decoder::new(MAX_MQTT_PACKET);
        decoder.set_protocol(ProtocolVersion::V5);
        Ok(RawClient {
            label: stream
                .local_addr()
                .map_or_else(|_| "client".to_owned(), |a| a.to_string()),
            stream,
            decoder,
            protocol: ProtocolVersion::V5,
            input: BytesMut::with_capacity(4096),
            last_raw: Bytes::new(),
            eof: false,
            pending: VecDeque::new(),
        })
    }

    /// Opens a connection and sends `connect`; does not wait for the CONNACK. Assertion:
    /// panics if the TCP connection or the write fails.
    pub async fn connect(addr: SocketAddr, connect: impl Into<Connect>) -> RawClient {
        let connect = connect.into();
        let mut client = match RawClient::open(addr).await {
            Ok(client) => client,
            Err(error) => panic!("cannot connect to {addr}: {error}"),
        };
        client.label = connect.client_id.clone();
        client.send(Packet::Connect(Box::new(connect))).await;
        client
    }

    /// [`RawClient::connect`], then expects a CONNACK with reason Success. Assertion.
    pub async fn connect_ok(addr: SocketAddr, connect: impl Into<Connect>) -> (RawClient, ConnAck) {
        let mut client = RawClient::connect(addr, connect).await;
        let connack = client.expect_connack(WAIT).await;
        assert_eq!(
            connack.reason_code,
            ReasonCode::Success,
            "[{}] CONNECT refused: {connack:?}",
            client.label
        );
        (client, connack)
    }

    /// The protocol packets are encoded and decoded in.
    pub fn protocol(&self) -> ProtocolVersion {
        self.protocol
    }

    /// Encodes and decodes in `protocol` from now on (for CONNECTs sent as raw bytes).
    pub fn set_protocol(&mut self, protocol: ProtocolVersion) {
        self.protocol = protocol;
        self.decoder.set_protocol(protocol);
    }

    /// The bytes of the last packet returned by [`RawClient::next_event`], fixed header
    /// included: for byte-exact assertions.
    pub fn last_raw(&self) -> &[u8] {
        &self.last_raw
    }

    /// Encodes and writes one packet. Sending a CONNECT switches the protocol to its version
    /// and the receive limit to its Maximum Packet Size, if any.
    pub async fn try_send(&mut self, packet: impl Into<Packet>) -> io::Result<()> {
        let packet = packet.into();
        if let Packet::Connect(connect) = &packet {
            self.set_protocol(connect.protocol);
            if let Some(max) = connect.properties.maximum_packet_size {
                self.decoder.set_max_packet_size(max);
            }
        }
        let mut buf = BytesMut::new();
        encode(&packet, self.protocol, &mut buf)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
        self.try_send_bytes(&buf).await
    }

    /// [`RawClient::try_send`] as an assertion: panics if the packet cannot be written.
    pub async fn send(&mut self, packet: impl Into<Packet>) {
        let packet = packet.into();
        let name = packet.name();
        if let Err(error) = self.try_send(packet).await {
            panic!("[{}] cannot send {name}: {error}", self.label);
        }
    }

    /// Writes raw bytes.
    pub async fn try_send_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// [`RawClient::try_send_bytes`] as an assertion.
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        if let Err(error) = self.try_send_bytes(bytes).await {
            panic!(
                "[{}] cannot send {} bytes: {error}",
                self.label,
                bytes.len()
            );
        }
    }

    /// Waits at most `timeout` for the next packet, the end of the connection, or bad bytes.
    /// Packets read ahead by [`RawClient::expect_matching`] come first.
    pub async fn next_event(&mut self, timeout: Duration) -> Event {
        if let Some((raw, packet)) = self.pending.pop_front() {
            self.last_raw = raw;
            return Event::Packet(packet);
        }
        self.read_event(timeout).await
    }

    /// Asserts that a packet satisfying `wanted` arrives within `timeout` and returns it.
    /// Packets read before it are kept and returned by the next calls, in order, so a test
    /// can complete one exchange while other deliveries are arriving.
    pub async fn expect_matching(
        &mut self,
        timeout: Duration,
        wanted: impl Fn(&Packet) -> bool,
    ) -> Packet {
        if let Some(index) = self.pending.iter().position(|(_, p)| wanted(p))
            && let Some((raw, packet)) = self.pending.remove(index)
        {
            self.last_raw = raw;
            return packet;
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self
                .read_event(deadline.saturating_duration_since(Instant::now()))
                .await
            {
                Event::Packet(packet) if wanted(&packet) => return packet,
                Event::Packet(packet) => {
                    let raw = std::mem::take(&mut self.last_raw);
                    self.pending.push_back((raw, packet));
                }
                other => panic!(
                    "[{}] expected a matching packet within {timeout:?}, got {other:?} (read ahead: {:?})",
                    self.label,
                    self.pending.iter().map(|(_, p)| p).collect::<Vec<_>>()
                ),
            }
        }
    }

    /// Reads the socket for the next event, ignoring the read-ahead queue.
    async fn read_event(&mut self, timeout: Duration) -> Event {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(event) = self.decode_buffered() {
                return event;
            }
            if self.eof {
                return Event::Closed;
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.input)).await {
                Err(_) => return Event::Timeout,
                Ok(Ok(0)) => self.eof = true,
                Ok(Ok(_)) => {}
                Ok(Err(error)) => match error.kind() {
                    io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe => self.eof = true,
                    kind => return Event::Io(kind),
                },
            }
        }
    }

    /// One complete packet from the buffer, remembering its bytes.
    fn decode_buffered(&mut self) -> Option<Event> {
        let raw = match peek_fixed_header(&self.input) {
            Ok(Some(header)) if self.input.len() >= header.packet_len() => {
                Bytes::copy_from_slice(&self.input[..header.packet_len()])
            }
            Ok(_) => Bytes::new(),
            Err(error) => return Some(Event::Invalid(error)),
        };
        match self.decoder.decode(&mut self.input) {
            Ok(Some(packet)) => {
                self.last_raw = raw;
                Some(Event::Packet(packet))
            }
            Ok(None) => None,
            Err(error) => Some(Event::Invalid(error)),
        }
    }

    /// The next packet, or `None` on timeout *or* when the connection is closed or broken.
    /// Use [`RawClient::next_event`] to tell these apart.
    pub async fn recv(&mut self, timeout: Duration) -> Option<Packet> {
        match self.next_event(timeout).await {
            Event::Packet(packet) => Some(packet),
            _ => None,
        }
    }

    /// Asserts that a packet arrives within `timeout` and returns it.
    pub async fn expect_packet(&mut self, timeout: Duration) -> Packet {
        match self.next_event(timeout).await {
            Event::Packet(packet) => packet,
            other => panic!(
                "[{}] expected a packet within {timeout:?}, got {other:?}",
                self.label
            ),
        }
    }

    /// Asserts that a packet arrives and returns its exact bytes (fixed header included).
    pub async fn expect_raw(&mut self, timeout: Duration) -> Bytes {
        self.expect_packet(timeout).await;
        self.last_raw.clone()
    }

    expect_variant!(
        /// Asserts that the next packet is a CONNACK.
        expect_connack, boxed ConnAck, ConnAck
    );
    expect_variant!(
        /// Asserts that the next packet is a PUBLISH.
        expect_publish, Publish, Publish
    );
    expect_variant!(
        /// Asserts that the next packet is a PUBACK.
        expect_puback, PubAck, PubAck
    );
    expect_variant!(
        /// Asserts that the next packet is a PUBREC.
        expect_pubrec, PubRec, PubRec
    );
    expect_variant!(
        /// Asserts that the next packet is a PUBREL.
        expect_pubrel, PubRel, PubRel
    );
    expect_variant!(
        /// Asserts that the next packet is a PUBCOMP.
        expect_pubcomp, PubComp, PubComp
    );
    expect_variant!(
        /// Asserts that the next packet is a SUBACK.
        expect_suback, boxed SubAck, SubAck
    );
    expect_variant!(
        /// Asserts that the next packet is an UNSUBACK.
        expect_unsuback, boxed UnsubAck, UnsubAck
    );
    expect_variant!(
        /// Asserts that the next packet is a DISCONNECT.
        expect_disconnect, boxed Disconnect, Disconnect
    );

    /// Asserts that the next packet is a PINGRESP.
    pub async fn expect_pingresp(&mut self, timeout: Duration) {
        match self.expect_packet(timeout).await {
            Packet::PingResp => {}
            other => panic!("[{}] expected PINGRESP, got {other:?}", self.label),
        }
    }

    /// Asserts that the peer closes the connection within `timeout` without sending
    /// anything more.
    pub async fn expect_closed(&mut self, timeout: Duration) {
        match self.next_event(timeout).await {
            Event::Closed => {}
            other => panic!(
                "[{}] expected the connection to close within {timeout:?}, got {other:?}",
                self.label
            ),
        }
    }

    /// Asserts a v5 DISCONNECT with exactly `reason` (encoded as `E0 01 <reason>`), then
    /// that the connection closes.
    pub async fn expect_disconnect_and_close(&mut self, reason: ReasonCode) {
        let raw = self.expect_raw(WAIT).await;
        assert_eq!(
            raw.as_ref(),
            [0xE0, 0x01, reason.as_u8()],
            "[{}] expected DISCONNECT {reason}",
            self.label
        );
        self.expect_closed(WAIT).await;
    }

    /// Asserts that nothing arrives (and the connection stays open) for `duration`.
    pub async fn expect_nothing(&mut self, duration: Duration) {
        match self.next_event(duration).await {
            Event::Timeout => {}
            other => panic!(
                "[{}] expected nothing for {duration:?}, got {other:?}",
                self.label
            ),
        }
    }

    /// Collects packets until one satisfies `last` (included), each within `timeout`: the
    /// sentinel pattern, which proves what did *not* arrive before the sentinel.
    pub async fn collect_until(
        &mut self,
        timeout: Duration,
        last: impl Fn(&Packet) -> bool,
    ) -> Vec<Packet> {
        let mut packets = Vec::new();
        loop {
            let packet = self.expect_packet(timeout).await;
            let done = last(&packet);
            packets.push(packet);
            if done {
                return packets;
            }
        }
    }

    /// Collects PUBLISHes until one on `topic` arrives, and returns those before it. Other
    /// packets are an assertion failure.
    pub async fn publishes_until(&mut self, topic: &str) -> Vec<Publish> {
        let mut before = Vec::new();
        loop {
            let publish = self.expect_publish(WAIT).await;
            if publish.topic == topic {
                return before;
            }
            before.push(publish);
        }
    }

    /// Sends a SUBSCRIBE and expects its SUBACK (same packet identifier); returns the SUBACK.
    /// Deliveries arriving first (retained messages of an earlier SUBSCRIBE) are kept for the
    /// next reads.
    pub async fn subscribe(&mut self, subscribe: impl Into<Subscribe>) -> SubAck {
        let subscribe = subscribe.into();
        let id = subscribe.packet_id;
        self.send(Packet::Subscribe(subscribe)).await;
        match self
            .expect_matching(
                WAIT,
                |p| matches!(p, Packet::SubAck(s) if s.packet_id == id),
            )
            .await
        {
            Packet::SubAck(suback) => *suback,
            other => unreachable!("matched {other:?}"),
        }
    }

    /// Publishes and completes the sender's side of the exchange: nothing for QoS 0, PUBACK
    /// for QoS 1, PUBREC-PUBREL-PUBCOMP for QoS 2. Returns the PUBACK/PUBREC reason code
    /// (Success for QoS 0). Other packets arriving meanwhile (deliveries to this client) are
    /// kept for the next reads. Assertion.
    pub async fn publish_acked(&mut self, publish: impl Into<Publish>) -> ReasonCode {
        let publish = publish.into();
        let (qos, id) = (publish.qos, publish.packet_id.unwrap_or(0));
        self.send(Packet::Publish(publish)).await;
        match qos {
            QoS::AtMostOnce => ReasonCode::Success,
            QoS::AtLeastOnce => {
                match self
                    .expect_matching(
                        WAIT,
                        |p| matches!(p, Packet::PubAck(a) if a.packet_id == id),
                    )
                    .await
                {
                    Packet::PubAck(ack) => ack.reason_code,
                    other => unreachable!("matched {other:?}"),
                }
            }
            QoS::ExactlyOnce => {
                let reason = match self
                    .expect_matching(
                        WAIT,
                        |p| matches!(p, Packet::PubRec(r) if r.packet_id == id),
                    )
                    .await
                {
                    Packet::PubRec(rec) => rec.reason_code,
                    other => unreachable!("matched {other:?}"),
                };
                if reason.is_error() {
                    return reason;
                }
                self.send(pubrel(id)).await;
                let comp = self
                    .expect_matching(
                        WAIT,
                        |p| matches!(p, Packet::PubComp(c) if c.packet_id == id),
                    )
                    .await;
                assert_eq!(
                    comp,
                    Packet::PubComp(PubComp::new(id, ReasonCode::Success)),
                    "[{}] PUBCOMP",
                    self.label
                );
                reason
            }
        }
    }

    /// Completes the receiver's side of a delivered PUBLISH: PUBACK for QoS 1,
    /// PUBREC-(expect PUBREL)-PUBCOMP for QoS 2. Called explicitly: nothing is acknowledged
    /// automatically. Packets arriving before the PUBREL are kept for the next reads (see
    /// [`RawClient::expect_matching`]). Assertion.
    pub async fn ack(&mut self, publish: &Publish) {
        let Some(id) = publish.packet_id else {
            return;
        };
        match publish.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.send(puback(id)).await,
            QoS::ExactlyOnce => {
                self.send(pubrec(id)).await;
                self.expect_matching(
                    WAIT,
                    |p| matches!(p, Packet::PubRel(rel) if rel.packet_id == id),
                )
                .await;
                self.send(pubcomp(id)).await;
            }
        }
    }

    /// Sends a normal DISCONNECT and waits for the broker to close the connection.
    pub async fn disconnect(mut self) {
        self.send(Packet::Disconnect(Box::new(Disconnect::new(
            ReasonCode::Success,
        ))))
        .await;
        self.expect_closed(WAIT).await;
    }

    /// Fault injection: closes the socket with a TCP reset (SO_LINGER 0), no DISCONNECT.
    pub fn reset(self) {
        let _ = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
        drop(self);
    }

    /// Fault injection: closes the socket with a FIN, no DISCONNECT.
    pub fn drop_connection(self) {
        drop(self);
    }

    /// Fault injection: writes `bytes` one at a time, `interval` apart, and stops early when
    /// the peer closes or sends anything. Returns how many bytes were written and the event
    /// that stopped it (`Event::Timeout` if all bytes went out).
    pub async fn trickle(&mut self, bytes: &[u8], interval: Duration) -> (usize, Event) {
        for (sent, byte) in bytes.iter().enumerate() {
            if self
                .try_send_bytes(std::slice::from_ref(byte))
                .await
                .is_err()
            {
                return (sent, Event::Closed);
            }
            match self.next_event(interval).await {
                Event::Timeout => {}
                other => return (sent + 1, other),
            }
        }
        (bytes.len(), Event::Timeout)
    }

    /// Asserts that a PINGREQ is answered: proof the connection is alive and responsive.
    pub async fn ping(&mut self) {
        self.send(Packet::PingReq).await;
        self.expect_pingresp(WAIT).await;
    }

    /// Asserts nothing arrives for [`QUIET`].
    pub async fn expect_quiet(&mut self) {
        self.expect_nothing(QUIET).await;
    }
}
