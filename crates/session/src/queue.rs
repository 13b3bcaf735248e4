//! The queue of deliveries waiting for a session's client, with its byte and QoS 0 counts
//! kept up to date on every change, so that the overflow policy costs O(1) whatever the mix
//! of QoS: the QoS 0 deliveries (the ones it may drop) wait in a lane of their own, and a
//! sequence number on every delivery keeps the FIFO order across the two lanes.
//!
//! A single `VecDeque` had to scan for the oldest QoS 0 delivery and shift the rest to remove
//! it: O(queue length) per enqueue, under the session lock, for a subscriber with QoS 0 and
//! QoS 1 subscriptions that fell behind (one QoS 0 message behind 100,000 QoS 1 ones cost
//! ~150 µs per enqueue). The price of the lanes: 8 bytes per queued delivery for its sequence
//! number, and 32 bytes per session for the second `VecDeque`.

use std::collections::VecDeque;

use ferrymq_codec::QoS;

use crate::message::Delivery;

/// The sequence number of the first delivery pushed to an empty queue. Deliveries pushed to
/// the front count down from it and those pushed to the back count up, so starting in the
/// middle leaves 2^63 pushes each way: centuries at any rate a session can see.
const FIRST_SEQ: u64 = 1 << 63;

/// A queued delivery and its place in the queue's order: lower is older.
#[derive(Debug)]
struct Slot {
    seq: u64,
    delivery: Delivery,
}

#[derive(Debug)]
pub(crate) struct DeliveryQueue {
    /// QoS 0 deliveries, oldest first: the overflow policy drops from the front.
    qos0: VecDeque<Slot>,
    /// QoS 1 and 2 deliveries, oldest first.
    acked: VecDeque<Slot>,
    /// The sequence number of the next `push_back`.
    next_seq: u64,
    /// Sum of `message.weight()` of the items.
    bytes: usize,
    /// Sum of `message.weight()` of the QoS 0 items: with `qos0.len()`, tells in O(1)
    /// whether dropping every QoS 0 item would make room for a new one.
    qos0_bytes: usize,
}

impl Default for DeliveryQueue {
    fn default() -> DeliveryQueue {
        DeliveryQueue {
            qos0: VecDeque::new(),
            acked: VecDeque::new(),
            next_seq: FIRST_SEQ,
            bytes: 0,
            qos0_bytes: 0,
        }
    }
}

impl DeliveryQueue {
    pub(crate) fn len(&self) -> usize {
        self.qos0.len() + self.acked.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.qos0.is_empty() && self.acked.is_empty()
    }

    pub(crate) fn has_qos0(&self) -> bool {
        !self.qos0.is_empty()
    }

    /// Items and bytes that would remain if every QoS 0 item were dropped.
    pub(crate) fn without_qos0(&self) -> (usize, usize) {
        (self.acked.len(), self.bytes - self.qos0_bytes)
    }

    pub(crate) fn front(&self) -> Option<&Delivery> {
        let lane = match self.front_is_qos0() {
            true => &self.qos0,
            false => &self.acked,
        };
        lane.front().map(|slot| &slot.delivery)
    }

    pub(crate) fn push_back(&mut self, delivery: Delivery) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.push(Slot { seq, delivery }, VecDeque::push_back);
    }

    /// Puts a delivery back before every other one (a delivery that could not be sent yet).
    pub(crate) fn push_front(&mut self, delivery: Delivery) {
        let oldest = match (self.qos0.front(), self.acked.front()) {
            (Some(a), Some(b)) => Some(a.seq.min(b.seq)),
            (a, b) => a.or(b).map(|slot| slot.seq),
        };
        let Some(oldest) = oldest else {
            // Empty: the front is the back.
            self.push_back(delivery);
            return;
        };
        self.push(
            Slot {
                seq: oldest - 1,
                delivery,
            },
            VecDeque::push_front,
        );
    }

    pub(crate) fn pop_front(&mut self) -> Option<Delivery> {
        let lane = match self.front_is_qos0() {
            true => &mut self.qos0,
            false => &mut self.acked,
        };
        let slot = lane.pop_front()?;
        self.count_out(&slot.delivery);
        Some(slot.delivery)
    }

    /// Removes the oldest QoS 0 delivery, in O(1); false when there is none.
    pub(crate) fn drop_oldest_qos0(&mut self) -> bool {
        let Some(slot) = self.qos0.pop_front() else {
            return false;
        };
        self.count_out(&slot.delivery);
        true
    }

    /// Removes the deliveries for which `take` is true and returns them in queue order; the
    /// others stay, in their order.
    pub(crate) fn split_off_where(
        &mut self,
        mut take: impl FnMut(&Delivery) -> bool,
    ) -> Vec<Delivery> {
        let mut taken = Vec::new();
        for lane in [&mut self.qos0, &mut self.acked] {
            for slot in std::mem::take(lane) {
                if take(&slot.delivery) {
                    taken.push(slot);
                } else {
                    lane.push_back(slot);
                }
            }
        }
        for slot in &taken {
            self.count_out(&slot.delivery);
        }
        // Two sorted runs, one per lane: the stable sort merges them in linear time.
        taken.sort_by_key(|slot| slot.seq);
        taken.into_iter().map(|slot| slot.delivery).collect()
    }

    /// Whether the oldest delivery is in the QoS 0 lane (false when the queue is empty).
    fn front_is_qos0(&self) -> bool {
        match (self.qos0.front(), self.acked.front()) {
            (Some(a), Some(b)) => a.seq < b.seq,
            (a, _) => a.is_some(),
        }
    }

    fn push(&mut self, slot: Slot, push: fn(&mut VecDeque<Slot>, Slot)) {
        let weight = slot.delivery.message.weight();
        self.bytes += weight;
        if slot.delivery.qos == QoS::AtMostOnce {
            self.qos0_bytes += weight;
            push(&mut self.qos0, slot);
        } else {
            push(&mut self.acked, slot);
        }
    }

    fn count_out(&mut self, delivery: &Delivery) {
        let weight = delivery.message.weight();
        self.bytes -= weight;
        if delivery.qos == QoS::AtMostOnce {
            self.qos0_bytes -= weight;
        }
    }
}

#[cfg(test)]
mod tests;
