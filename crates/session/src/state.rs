//! What a session remembers across connections [MQTT-4.1]: subscriptions, the queue of
//! messages waiting for the client, QoS 1/2 messages in flight towards it, the packet
//! identifiers of QoS 2 messages received but not yet released, and when it expires.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use ferrymq_codec::{LastWill, Packet, PacketId, PubRel, QoS, ReasonCode, SubscriptionOptions};

use crate::connection::ConnectionState;
use crate::hasher::ProcessRandomState;
use crate::message::Delivery;
use crate::queue::DeliveryQueue;

/// One subscription as the session remembers it (the broker's index holds the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    pub options: SubscriptionOptions,
    pub identifier: Option<u32>,
}

/// Bounds of one session's queue. Overflow drops the oldest QoS 0 message first; when even
/// dropping all of them would not make room, the new message is refused and nothing dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    pub max_messages: usize,
    pub max_bytes: usize,
}

/// What [`SessionState::poll_transmit`] (or `resend_inflight`) did besides sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Transmitted {
    /// Dropped: their Message Expiry Interval passed while they waited [MQTT-3.3.2-5].
    pub expired: usize,
    /// Dropped: larger than the client's Maximum Packet Size [MQTT-3.1.2-25].
    pub too_large: usize,
    /// Stopped at the byte budget with more to send: call again after writing.
    pub budget_exhausted: bool,
    /// Stopped with more to send that only the client's acknowledgements can let out: the
    /// in-flight window is full (or every packet identifier is in use).
    pub window_full: bool,
}

/// A PUBLISH [`SessionState::take_for_transmit`] let out, in queue order.
#[derive(Debug)]
pub enum Outgoing {
    /// A QoS 1/2 message, built already: it is in flight under this packet identifier, so
    /// whether it fits the client's Maximum Packet Size had to be known at once.
    Built(Packet),
    /// A QoS 0 message: the session keeps nothing of it, so it is built later.
    AtMostOnce(Delivery),
}

impl Outgoing {
    /// The packet to send; `None` when a QoS 0 message is larger than the client's Maximum
    /// Packet Size and is dropped [MQTT-3.1.2-25].
    pub fn into_packet(self, conn: &mut ConnectionState, now: Instant) -> Option<Packet> {
        match self {
            Outgoing::Built(packet) => Some(packet),
            Outgoing::AtMostOnce(delivery) => conn.build_publish(&delivery, None, false, now),
        }
    }

    /// Builds `outgoing` in order and hands each packet to `send`; returns how many QoS 0
    /// messages were dropped as too large.
    pub fn build_all(
        outgoing: Vec<Outgoing>,
        conn: &mut ConnectionState,
        now: Instant,
        mut send: impl FnMut(Packet),
    ) -> usize {
        let mut too_large = 0;
        for item in outgoing {
            match item.into_packet(conn, now) {
                Some(packet) => send(packet),
                None => too_large += 1,
            }
        }
        too_large
    }
}

/// What happened to a delivery offered to [`SessionState::enqueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueue {
    Queued,
    /// Queued after dropping this many older QoS 0 messages to make room.
    QueuedAfterDropping(usize),
    /// The queue is full of QoS 1/2 messages: this delivery was not taken.
    Refused,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(
    clippy::enum_variant_names,
    reason = "the variants are the packet names of the spec"
)]
enum AwaitedAck {
    /// QoS 1 PUBLISH sent, waiting for PUBACK.
    PubAck,
    /// QoS 2 PUBLISH sent, waiting for PUBREC.
    PubRec,
    /// PUBREL sent, waiting for PUBCOMP.
    PubComp,
}

#[derive(Debug, Clone)]
struct Inflight {
    packet_id: PacketId,
    delivery: Delivery,
    stage: AwaitedAck,
}

/// The persistent part of a session. The broker keeps it behind a mutex; every method is a
/// short, non-blocking state transition.
#[derive(Debug)]
pub struct SessionState {
    /// Raw filter as subscribed (including any `$share/group/` prefix) -> subscription.
    pub subscriptions: HashMap<String, Subscription, ProcessRandomState>,
    /// Session Expiry Interval in seconds; `u32::MAX` never expires [MQTT-3.1.2-11].
    pub expiry_interval: u32,
    /// The will of the current (or last) connection; taken when published or discarded.
    /// Boxed: a `LastWill` is ~190 bytes and most sessions have none, while every idle
    /// session pays for what is inline here.
    pub will: Option<Box<LastWill>>,
    queue: DeliveryQueue,
    /// QoS 1/2 messages sent and not yet acknowledged, oldest first. Invariant: their packet
    /// identifiers increase strictly along the ring 1..=65535 starting from the front's, which
    /// is what [`SessionState::allocate_packet_id`] and [`SessionState::inflight_index`] rely
    /// on. It holds because identifiers are pushed at the back in the order they are handed
    /// out, each one past the newest still in flight, and entries only ever leave (which keeps
    /// the rest in order).
    inflight: VecDeque<Inflight>,
    /// The identifier to try next: one past the most recently handed out.
    next_packet_id: PacketId,
    /// Created by the first QoS 2 PUBLISH received: most sessions never get one, and an
    /// empty set inline costs 48 bytes per session.
    #[allow(
        clippy::box_collection,
        reason = "8 bytes per session instead of 48 for the many that never receive QoS 2"
    )]
    inbound_qos2: Option<Box<HashSet<PacketId>>>,
}

impl Default for SessionState {
    fn default() -> SessionState {
        SessionState::new()
    }
}

impl SessionState {
    pub fn new() -> SessionState {
        SessionState {
            subscriptions: HashMap::default(),
            expiry_interval: 0,
            will: None,
            queue: DeliveryQueue::default(),
            inflight: VecDeque::new(),
            next_packet_id: 1,
            inbound_qos2: None,
        }
    }

    pub fn queued_len(&self) -> usize {
        self.queue.len()
    }

    pub fn queued_bytes(&self) -> usize {
        self.queue.bytes()
    }

    pub fn inflight_len(&self) -> usize {
        self.inflight.len()
    }

    /// Whether the session has work for its connection: queued messages to send.
    pub fn has_pending(&self) -> bool {
        !self.queue.is_empty()
    }

    /// The instant the session expires, once disconnected [MQTT-4.1.0-2]. `None` while
    /// connected or when it never expires. `disconnected_at` is when the last connection
    /// ended, `None` while one is connected: the broker keeps it with its record of the
    /// connection, as only one of the two exists at a time.
    pub fn expires_at(&self, disconnected_at: Option<Instant>) -> Option<Instant> {
        let since = disconnected_at?;
        if self.expiry_interval == u32::MAX {
            return None;
        }
        Some(since + Duration::from_secs(u64::from(self.expiry_interval)))
    }

    /// When the will of a disconnected session is due: after its Will Delay Interval, or when
    /// the session ends, whichever is first [MQTT-3.1.3-9]. `disconnected_at` as for
    /// [`SessionState::expires_at`].
    pub fn will_due_at(&self, disconnected_at: Option<Instant>) -> Option<Instant> {
        let since = disconnected_at?;
        let will = self.will.as_ref()?;
        let delay =
            Duration::from_secs(u64::from(will.properties.will_delay_interval.unwrap_or(0)));
        let due = since + delay;
        Some(match self.expires_at(disconnected_at) {
            Some(expiry) if expiry < due => expiry,
            _ => due,
        })
    }

    /// Offers a delivery to the queue, applying the overflow policy.
    pub fn enqueue(&mut self, delivery: Delivery, limits: QueueLimits) -> Enqueue {
        match self.offer(delivery, limits) {
            Ok(0) => Enqueue::Queued,
            Ok(dropped) => Enqueue::QueuedAfterDropping(dropped),
            Err(_) => Enqueue::Refused,
        }
    }

    /// Queues a delivery if it fits, dropping the oldest QoS 0 messages as far as needed;
    /// returns how many were dropped. When it cannot fit even with every QoS 0 message gone,
    /// nothing is dropped and the delivery is handed back, so that the caller can keep it
    /// (a publisher waiting for room) instead of losing it.
    pub fn offer(&mut self, delivery: Delivery, limits: QueueLimits) -> Result<usize, Delivery> {
        let weight = delivery.message.weight();
        let (kept_len, kept_bytes) = self.queue.without_qos0();
        if kept_len >= limits.max_messages || kept_bytes.saturating_add(weight) > limits.max_bytes {
            return Err(delivery);
        }
        let mut dropped = 0;
        while !self.has_room_for(weight, limits) {
            if !self.queue.drop_oldest_qos0() {
                // Unreachable after the check above; refusing is the safe answer anyway.
                return Err(delivery);
            }
            dropped += 1;
        }
        self.queue.push_back(delivery);
        Ok(dropped)
    }

    /// Whether one more delivery of `weight` bytes fits the queue as it is.
    fn has_room_for(&self, weight: usize, limits: QueueLimits) -> bool {
        self.queue.len() < limits.max_messages
            && self.queue.bytes().saturating_add(weight) <= limits.max_bytes
    }

    /// [`SessionState::offer`] for a publisher that can wait for room (back-pressure): a
    /// QoS 0 delivery displaces nothing either, and is handed back when the queue is full.
    /// (Making room for it would only drop an older QoS 0 message for a newer one, when the
    /// point of waiting is that neither is lost.)
    pub fn offer_to_wait(
        &mut self,
        delivery: Delivery,
        limits: QueueLimits,
    ) -> Result<usize, Delivery> {
        if delivery.qos != QoS::AtMostOnce {
            return self.offer(delivery, limits);
        }
        if !self.has_room_for(delivery.message.weight(), limits) {
            return Err(delivery);
        }
        self.queue.push_back(delivery);
        Ok(0)
    }

    /// Whether the queue is at or below half its limits, in messages and in bytes: the
    /// low-water mark at which publishers held back by a full queue are let in again (half,
    /// so that they are woken in batches rather than once per message sent).
    pub fn below_low_water(&self, limits: QueueLimits) -> bool {
        self.queue.len() <= limits.max_messages / 2 && self.queue.bytes() <= limits.max_bytes / 2
    }

    /// Drops QoS 0 messages from the queue: they are not kept for a disconnected client.
    pub fn discard_queued_qos0(&mut self) {
        if self.queue.has_qos0() {
            self.queue.split_off_where(|d| d.qos == QoS::AtMostOnce);
        }
    }

    /// Moves queued messages onto the wire as far as the client's Receive Maximum and our
    /// in-flight cap allow [MQTT-4.9.0-2]. Expired messages are dropped [MQTT-3.3.2-5];
    /// messages larger than the client's Maximum Packet Size are dropped [MQTT-3.1.2-25].
    /// Stops once `budget` payload bytes are out, so one turn never builds an unbounded
    /// batch (and buffer) from a long backlog. Returns what was dropped and whether it stopped
    /// at the budget.
    ///
    /// [`SessionState::take_for_transmit`] and [`Outgoing::into_packet`] in one call.
    pub fn poll_transmit(
        &mut self,
        conn: &mut ConnectionState,
        now: Instant,
        max_inflight: u16,
        budget: usize,
        out: &mut Vec<Packet>,
    ) -> Transmitted {
        let mut outgoing = Vec::new();
        let mut transmitted =
            self.take_for_transmit(conn, now, max_inflight, budget, &mut outgoing);
        transmitted.too_large +=
            Outgoing::build_all(outgoing, conn, now, |packet| out.push(packet));
        transmitted
    }

    /// The part of [`SessionState::poll_transmit`] that needs the session: takes what may go
    /// now off the queue, in order, gives QoS 1/2 messages their packet identifiers and puts
    /// them in flight, and leaves QoS 0 messages for [`Outgoing::into_packet`] to build. A
    /// broker holds the session's lock for this part only: building QoS 0 packets (the bulk
    /// of a QoS 0 backlog) then happens after it is released, so publishers delivering to
    /// the session do not wait for it. (`too_large` counts only QoS 1/2 messages here.)
    pub fn take_for_transmit(
        &mut self,
        conn: &mut ConnectionState,
        now: Instant,
        max_inflight: u16,
        budget: usize,
        out: &mut Vec<Outgoing>,
    ) -> Transmitted {
        let window = usize::from(conn.client_receive_maximum.min(max_inflight).max(1));
        let mut dropped = Transmitted::default();
        let mut spent = 0usize;
        while let Some(front) = self.queue.front() {
            if front.qos != QoS::AtMostOnce && self.inflight.len() >= window {
                dropped.window_full = true;
                break;
            }
            if spent >= budget {
                dropped.budget_exhausted = true;
                break;
            }
            spent += front.message.weight();
            let Some(delivery) = self.queue.pop_front() else {
                break;
            };
            if delivery.message.is_expired(now) {
                dropped.expired += 1;
                continue;
            }
            if delivery.qos == QoS::AtMostOnce {
                out.push(Outgoing::AtMostOnce(delivery));
                continue;
            }
            let Some(packet_id) = self.allocate_packet_id() else {
                // Every identifier is in use: wait for acknowledgements.
                self.queue.push_front(delivery);
                dropped.window_full = true;
                break;
            };
            let Some(publish) = conn.build_publish(&delivery, Some(packet_id), false, now) else {
                dropped.too_large += 1;
                continue;
            };
            out.push(Outgoing::Built(publish));
            let stage = match delivery.qos {
                QoS::ExactlyOnce => AwaitedAck::PubRec,
                _ => AwaitedAck::PubAck,
            };
            self.inflight.push_back(Inflight {
                packet_id,
                delivery,
                stage,
            });
        }
        dropped
    }

    /// On a new connection to an existing session: resends every unacknowledged PUBLISH with
    /// DUP set and every unacknowledged PUBREL, in their original order [MQTT-4.4.0-1].
    pub fn resend_inflight(
        &mut self,
        conn: &mut ConnectionState,
        now: Instant,
        out: &mut Vec<Packet>,
    ) -> Transmitted {
        let mut dropped = Transmitted::default();
        let inflight = std::mem::take(&mut self.inflight);
        for entry in inflight {
            match entry.stage {
                AwaitedAck::PubComp => {
                    out.push(Packet::PubRel(PubRel::new(
                        entry.packet_id,
                        ReasonCode::Success,
                    )));
                }
                AwaitedAck::PubAck | AwaitedAck::PubRec => {
                    match conn.build_publish(&entry.delivery, Some(entry.packet_id), true, now) {
                        Some(publish) => out.push(publish),
                        None => {
                            // The new connection's Maximum Packet Size is smaller than this
                            // message: discard it as if it had been acknowledged
                            // [MQTT-3.1.2-25], so it does not hold the window forever.
                            dropped.too_large += 1;
                            continue;
                        }
                    }
                }
            }
            self.inflight.push_back(entry);
        }
        dropped
    }

    /// The next free packet identifier, O(1): identifiers are handed out in sequence, and by
    /// the order invariant of `inflight` every identifier in flight lies on the ring between
    /// the oldest's (front) and the newest's (back). A candidate past the newest is free; one
    /// that the counter reached by wrapping into that range is not, and the identifier just
    /// past the newest (free, and released earlier) is taken instead. `None` when that one
    /// is the oldest's: the in-flight identifiers span the whole ring, which takes a window
    /// of 65535, and a gap left by an acknowledgement in the middle is not used (that would
    /// break the order), so the caller waits for the oldest to be acknowledged.
    fn allocate_packet_id(&mut self) -> Option<PacketId> {
        let mut candidate = self.next_packet_id;
        if let (Some(oldest), Some(newest)) = (self.inflight.front(), self.inflight.back()) {
            let (oldest, newest) = (oldest.packet_id, newest.packet_id);
            if ring_distance(oldest, candidate) <= ring_distance(oldest, newest) {
                candidate = next_on_ring(newest);
                if candidate == oldest {
                    return None;
                }
            }
        }
        self.next_packet_id = next_on_ring(candidate);
        Some(candidate)
    }

    /// Position of the in-flight entry with `packet_id`. Acknowledgements mostly come in
    /// order (the front) or for the latest message (the back); otherwise a binary search,
    /// since identifiers increase along the ring from the front's (the order invariant of
    /// `inflight`).
    fn inflight_index(&self, packet_id: PacketId) -> Option<usize> {
        let oldest = self.inflight.front()?.packet_id;
        if oldest == packet_id {
            return Some(0);
        }
        let last = self.inflight.len() - 1;
        if self.inflight.back()?.packet_id == packet_id {
            return Some(last);
        }
        let target = ring_distance(oldest, packet_id);
        let index = self
            .inflight
            .partition_point(|e| ring_distance(oldest, e.packet_id) < target);
        match self.inflight.get(index) {
            Some(entry) if entry.packet_id == packet_id => Some(index),
            _ => None,
        }
    }

    fn take_inflight(&mut self, packet_id: PacketId, stage: AwaitedAck) -> Option<Inflight> {
        let index = self.inflight_index(packet_id)?;
        if self.inflight.get(index)?.stage != stage {
            return None;
        }
        self.inflight.remove(index)
    }

    /// PUBACK from the client: the QoS 1 delivery is complete. Returns false for an unknown
    /// identifier (ignored, as the spec gives no error for it).
    pub fn on_puback(&mut self, packet_id: PacketId) -> bool {
        self.take_inflight(packet_id, AwaitedAck::PubAck).is_some()
    }

    /// PUBREC from the client: answer PUBREL [MQTT-4.3.3-4] (or 0x92 when unknown). A PUBREC
    /// carrying an error reason ends the exchange without PUBREL [MQTT-4.3.3-5].
    pub fn on_pubrec(&mut self, packet_id: PacketId, reason: ReasonCode) -> Option<PubRel> {
        let found = self
            .inflight_index(packet_id)
            .and_then(|index| Some((index, self.inflight.get(index)?.stage)));
        let index = match found {
            Some((index, AwaitedAck::PubRec)) => index,
            // A duplicate PUBREC: the client did not see our PUBREL yet.
            Some((_, AwaitedAck::PubComp)) => {
                return Some(PubRel::new(packet_id, ReasonCode::Success));
            }
            _ => return Some(PubRel::new(packet_id, ReasonCode::PacketIdentifierNotFound)),
        };
        if reason.is_error() {
            self.inflight.remove(index);
            return None;
        }
        if let Some(entry) = self.inflight.get_mut(index) {
            entry.stage = AwaitedAck::PubComp;
        }
        Some(PubRel::new(packet_id, ReasonCode::Success))
    }

    /// PUBCOMP from the client: the QoS 2 delivery is complete.
    pub fn on_pubcomp(&mut self, packet_id: PacketId) -> bool {
        self.take_inflight(packet_id, AwaitedAck::PubComp).is_some()
    }

    /// A QoS 2 PUBLISH arrived: returns true when it is new and must be routed, false when it
    /// is a re-delivery of one already received and not yet released (send PUBREC only).
    pub fn receive_qos2(&mut self, packet_id: PacketId) -> bool {
        self.inbound_qos2.get_or_insert_default().insert(packet_id)
    }

    /// Whether a QoS 2 message with this identifier was received and not yet released.
    pub fn has_inbound_qos2(&self, packet_id: PacketId) -> bool {
        self.inbound_qos2
            .as_ref()
            .is_some_and(|set| set.contains(&packet_id))
    }

    /// Number of QoS 2 messages received and not yet released: counts against our Receive
    /// Maximum [MQTT-3.3.4-9].
    pub fn inbound_qos2_len(&self) -> usize {
        self.inbound_qos2.as_ref().map_or(0, |set| set.len())
    }

    /// PUBREL from the client: the identifier may be reused. Returns false when unknown.
    pub fn release_qos2(&mut self, packet_id: PacketId) -> bool {
        self.inbound_qos2
            .as_mut()
            .is_some_and(|set| set.remove(&packet_id))
    }

    /// Deliveries that came through a shared subscription and are not yet complete, to hand
    /// to another member of their group when this one leaves: queued ones and unacknowledged
    /// QoS 1/2 PUBLISHes. A QoS 2 message already PUBREC'd was delivered and stays.
    pub fn take_shared_undelivered(&mut self) -> Vec<Delivery> {
        let mut taken = Vec::new();
        let inflight = std::mem::take(&mut self.inflight);
        for entry in inflight {
            if entry.delivery.shared_group.is_some() && entry.stage != AwaitedAck::PubComp {
                taken.push(entry.delivery);
            } else {
                self.inflight.push_back(entry);
            }
        }
        taken.extend(self.queue.split_off_where(|d| d.shared_group.is_some()));
        taken
    }
}

/// How many steps forward on the ring of packet identifiers 1..=65535 lead from `from` to
/// `to` (0 when equal).
fn ring_distance(from: PacketId, to: PacketId) -> u16 {
    if to >= from {
        to - from
    } else {
        u16::MAX - (from - to)
    }
}

/// The identifier after `id` on the ring: 65535 is followed by 1, never 0 [MQTT-2.2.1-3].
fn next_on_ring(id: PacketId) -> PacketId {
    match id {
        u16::MAX => 1,
        n => n + 1,
    }
}

#[cfg(test)]
mod tests;
