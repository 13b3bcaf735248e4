//! The two-lane queue against a plain `Vec` in FIFO order, through random sequences of
//! every operation; and the memory of a QoS 0 stream behind a stuck QoS 1 backlog.

use std::sync::Arc;

use bytes::Bytes;
use ferrymq_codec::QoS;
use proptest::prelude::*;

use super::*;
use crate::message::Message;

/// A topic naming one delivery of a test, of the same length for every delivery.
fn name(id: usize) -> Arc<str> {
    Arc::from(format!("{id:07}"))
}

/// A delivery named by its topic, with `size` bytes of payload.
fn delivery(id: usize, qos: QoS, size: usize, shared: bool) -> Delivery {
    Delivery {
        message: Arc::new(Message {
            topic: name(id),
            payload: Bytes::from(vec![b'x'; size]),
            qos,
            retain: false,
            forwarded: None,
            expires_at: None,
            publisher: None,
            expires_on_arrival: false,
        }),
        qos,
        retain: false,
        subscription_ids: Vec::new(),
        shared_group: shared.then(|| Arc::from("group/t")),
    }
}

fn topics<'a>(deliveries: impl IntoIterator<Item = &'a Delivery>) -> Vec<Arc<str>> {
    deliveries
        .into_iter()
        .map(|d| Arc::clone(&d.message.topic))
        .collect()
}

fn drain(queue: &mut DeliveryQueue) -> Vec<Delivery> {
    std::iter::from_fn(|| queue.pop_front()).collect()
}

#[derive(Debug, Clone)]
enum Op {
    PushBack(QoS, usize, bool),
    PushFront(QoS, usize, bool),
    PopFront,
    DropOldestQos0,
    /// 0: shared deliveries (handing them to the group), 1: QoS 0 (disconnect), 2: an
    /// even payload length (a predicate that cuts across both lanes).
    SplitOffWhere(u8),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let qos = prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ];
    prop_oneof![
        4 => (qos.clone(), 0..16usize, any::<bool>()).prop_map(|(q, s, sh)| Op::PushBack(q, s, sh)),
        1 => (qos, 0..16usize, any::<bool>()).prop_map(|(q, s, sh)| Op::PushFront(q, s, sh)),
        2 => Just(Op::PopFront),
        2 => Just(Op::DropOldestQos0),
        1 => (0..3u8).prop_map(Op::SplitOffWhere),
    ]
}

fn predicate(kind: u8) -> impl Fn(&Delivery) -> bool {
    move |d: &Delivery| match kind {
        0 => d.shared_group.is_some(),
        1 => d.qos == QoS::AtMostOnce,
        _ => d.message.payload.len().is_multiple_of(2),
    }
}

fn assert_same(queue: &DeliveryQueue, model: &[Delivery]) {
    let weight =
        |ds: &mut dyn Iterator<Item = &Delivery>| -> usize { ds.map(|d| d.message.weight()).sum() };
    let acked: Vec<&Delivery> = model.iter().filter(|d| d.qos != QoS::AtMostOnce).collect();
    assert_eq!(queue.len(), model.len());
    assert_eq!(queue.is_empty(), model.is_empty());
    assert_eq!(queue.bytes(), weight(&mut model.iter()));
    assert_eq!(
        queue.has_qos0(),
        model.iter().any(|d| d.qos == QoS::AtMostOnce)
    );
    assert_eq!(
        queue.without_qos0(),
        (acked.len(), weight(&mut acked.into_iter()))
    );
    assert_eq!(topics(queue.front()), topics(model.first()));
}

proptest! {
    /// Order, length, bytes and the QoS 0 counts agree with a `Vec` where every operation
    /// is the obvious linear one, after each step and when drained at the end.
    #[test]
    fn queue_agrees_with_a_vec(ops in prop::collection::vec(op_strategy(), 1..200)) {
        let mut queue = DeliveryQueue::default();
        let mut model: Vec<Delivery> = Vec::new();
        for (id, op) in ops.into_iter().enumerate() {
            match op {
                Op::PushBack(qos, size, shared) => {
                    queue.push_back(delivery(id, qos, size, shared));
                    model.push(delivery(id, qos, size, shared));
                }
                Op::PushFront(qos, size, shared) => {
                    queue.push_front(delivery(id, qos, size, shared));
                    model.insert(0, delivery(id, qos, size, shared));
                }
                Op::PopFront => {
                    let expected = (!model.is_empty()).then(|| model.remove(0));
                    prop_assert_eq!(topics(&queue.pop_front()), topics(&expected));
                }
                Op::DropOldestQos0 => {
                    let index = model.iter().position(|d| d.qos == QoS::AtMostOnce);
                    if let Some(index) = index {
                        model.remove(index);
                    }
                    prop_assert_eq!(queue.drop_oldest_qos0(), index.is_some());
                }
                Op::SplitOffWhere(kind) => {
                    let take = predicate(kind);
                    let (expected, kept) = model.into_iter().partition::<Vec<_>, _>(&take);
                    model = kept;
                    prop_assert_eq!(topics(&queue.split_off_where(&take)), topics(&expected));
                }
            }
            assert_same(&queue, &model);
        }
        prop_assert_eq!(topics(&drain(&mut queue)), topics(&model));
        assert_same(&queue, &[]);
    }
}

/// A subscriber stuck behind QoS 1 messages keeps receiving QoS 0 ones, each dropping the
/// previous: the queue neither grows nor reorders, however long the stream.
#[test]
fn qos0_stream_behind_stuck_qos1_stays_bounded() {
    const BACKLOG: usize = 1_000;
    let mut queue = DeliveryQueue::default();
    for id in 0..BACKLOG {
        queue.push_back(delivery(id, QoS::AtLeastOnce, 8, false));
    }
    queue.push_back(delivery(BACKLOG, QoS::AtMostOnce, 8, false));
    let capacity = (queue.qos0.capacity(), queue.acked.capacity());
    let bytes = queue.bytes();
    let last = BACKLOG + 100_000;
    for id in BACKLOG + 1..=last {
        assert!(queue.drop_oldest_qos0());
        queue.push_back(delivery(id, QoS::AtMostOnce, 8, false));
    }
    assert_eq!(queue.len(), BACKLOG + 1);
    assert_eq!(queue.bytes(), bytes);
    assert_eq!((queue.qos0.capacity(), queue.acked.capacity()), capacity);
    let order: Vec<Arc<str>> = (0..BACKLOG).chain([last]).map(name).collect();
    assert_eq!(topics(&drain(&mut queue)), order);
}
