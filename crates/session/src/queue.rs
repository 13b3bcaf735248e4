//! The queue of deliveries waiting for a session's client, with its byte and QoS 0 counts
//! kept up to date on every change, so the overflow policy costs O(1) when nothing can be
//! dropped (a queue full of QoS 1 messages is the common overflow under load).

use std::collections::VecDeque;

use ferrymq_codec::QoS;

use crate::message::Delivery;

#[derive(Debug, Default)]
pub(crate) struct DeliveryQueue {
    items: VecDeque<Delivery>,
    /// Sum of `message.weight()` of the items.
    bytes: usize,
    /// How many items are QoS 0 (the ones the overflow policy may drop).
    qos0: usize,
    /// Sum of `message.weight()` of the QoS 0 items: with `qos0`, tells in O(1) whether
    /// dropping every QoS 0 item would make room for a new one.
    qos0_bytes: usize,
}

impl DeliveryQueue {
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(crate) fn has_qos0(&self) -> bool {
        self.qos0 > 0
    }

    /// Items and bytes that would remain if every QoS 0 item were dropped.
    pub(crate) fn without_qos0(&self) -> (usize, usize) {
        (self.items.len() - self.qos0, self.bytes - self.qos0_bytes)
    }

    pub(crate) fn front(&self) -> Option<&Delivery> {
        self.items.front()
    }

    pub(crate) fn push_back(&mut self, delivery: Delivery) {
        self.count_in(&delivery);
        self.items.push_back(delivery);
    }

    pub(crate) fn push_front(&mut self, delivery: Delivery) {
        self.count_in(&delivery);
        self.items.push_front(delivery);
    }

    pub(crate) fn pop_front(&mut self) -> Option<Delivery> {
        let delivery = self.items.pop_front()?;
        self.count_out(&delivery);
        Some(delivery)
    }

    /// Removes the oldest QoS 0 delivery; false when there is none (checked in O(1)).
    pub(crate) fn drop_oldest_qos0(&mut self) -> bool {
        if self.qos0 == 0 {
            return false;
        }
        let Some(index) = self.items.iter().position(|d| d.qos == QoS::AtMostOnce) else {
            return false;
        };
        match self.items.remove(index) {
            Some(removed) => {
                self.count_out(&removed);
                true
            }
            None => false,
        }
    }

    /// Keeps the deliveries for which `keep` is true; returns the others in order.
    pub(crate) fn split_off_where(
        &mut self,
        mut take: impl FnMut(&Delivery) -> bool,
    ) -> Vec<Delivery> {
        let mut taken = Vec::new();
        let items = std::mem::take(&mut self.items);
        self.bytes = 0;
        self.qos0 = 0;
        self.qos0_bytes = 0;
        for delivery in items {
            if take(&delivery) {
                taken.push(delivery);
            } else {
                self.push_back(delivery);
            }
        }
        taken
    }

    fn count_in(&mut self, delivery: &Delivery) {
        let weight = delivery.message.weight();
        self.bytes += weight;
        if delivery.qos == QoS::AtMostOnce {
            self.qos0 += 1;
            self.qos0_bytes += weight;
        }
    }

    fn count_out(&mut self, delivery: &Delivery) {
        let weight = delivery.message.weight();
        self.bytes -= weight;
        if delivery.qos == QoS::AtMostOnce {
            self.qos0 -= 1;
            self.qos0_bytes -= weight;
        }
    }
}
