//! Packet identifiers of outbound QoS 1/2 messages: allocation on the ring 1..=65535 without
//! reusing one in flight, and acknowledgements in any order, against a model that scans.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

/// Sends every queued message and returns the identifiers handed out.
fn transmit(state: &mut SessionState, conn: &mut ConnectionState, now: Instant) -> Vec<PacketId> {
    let mut out = Vec::new();
    state.poll_transmit(conn, now, u16::MAX, usize::MAX, &mut out);
    publishes(&out)
        .iter()
        .map(|p| p.packet_id.expect("QoS 1/2 has an id"))
        .collect()
}

fn send(state: &mut SessionState, conn: &mut ConnectionState, now: Instant, qos: QoS) -> PacketId {
    state.enqueue(delivery(message("t", "x", qos)), LIMITS);
    let ids = transmit(state, conn, now);
    assert_eq!(ids.len(), 1);
    ids[0]
}

#[test]
fn the_counter_skips_the_oldest_in_flight_after_going_round_the_ring() {
    let now = Instant::now();
    let mut state = session();
    let mut conn = v5_connection(now);
    let stuck = send(&mut state, &mut conn, now, QoS::AtLeastOnce);
    assert_eq!(stuck, 1);
    // Every other identifier is used and acknowledged once; 1 stays in flight throughout.
    for expected in 2..=u16::MAX {
        let id = send(&mut state, &mut conn, now, QoS::AtLeastOnce);
        assert_eq!(id, expected);
        assert!(state.on_puback(id));
    }
    // The counter is back at 1, still in flight: the next free one is taken.
    let id = send(&mut state, &mut conn, now, QoS::AtLeastOnce);
    assert_eq!(id, 2);
    let id = send(&mut state, &mut conn, now, QoS::ExactlyOnce);
    assert_eq!(id, 3);
    assert!(state.on_puback(stuck));
    assert!(!state.on_puback(stuck), "acknowledged once only");
    assert_eq!(state.inflight_len(), 2);
}

#[test]
fn no_identifier_is_handed_out_while_all_65535_are_in_flight() {
    let now = Instant::now();
    let mut state = session();
    let mut conn = v5_connection(now);
    state.next_packet_id = 40_000;
    let limits = QueueLimits {
        max_messages: 70_000,
        max_bytes: usize::MAX,
    };
    for _ in 0..u16::MAX {
        state.enqueue(delivery(message("t", "x", QoS::AtLeastOnce)), limits);
    }
    let ids = transmit(&mut state, &mut conn, now);
    assert_eq!(ids.len(), usize::from(u16::MAX));
    assert_eq!((ids[0], ids[25_535], ids[25_536]), (40_000, u16::MAX, 1));
    state.enqueue(delivery(message("t", "x", QoS::AtLeastOnce)), limits);
    assert!(transmit(&mut state, &mut conn, now).is_empty(), "must wait");
    assert_eq!(state.allocate_packet_id(), None);
    assert_eq!(state.queued_len(), 1, "kept for later");
    // A release in the middle leaves a gap that is not used: identifiers go out in sequence,
    // so the next one is the oldest's, once it is released. (Only a window of the whole ring,
    // 65535, can reach this.)
    assert!(state.on_puback(7));
    assert!(transmit(&mut state, &mut conn, now).is_empty());
    assert!(state.on_puback(40_000));
    assert_eq!(transmit(&mut state, &mut conn, now), vec![40_000]);
    assert_eq!(state.queued_len(), 0);
}

#[derive(Debug, Clone)]
enum Op {
    /// Send this many messages, QoS 2 when the flag says so.
    Send(u8, bool),
    /// Acknowledge the in-flight entry at this position (modulo the window), or an unknown id.
    Ack(usize),
    /// Reconnect: resend the window.
    Reconnect,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (1u8..20, any::<bool>()).prop_map(|(n, qos2)| Op::Send(n, qos2)),
        3 => any::<usize>().prop_map(Op::Ack),
        1 => Just(Op::Reconnect),
    ]
}

proptest! {
    /// Against a model of the in-flight set: a handed-out identifier is never one in flight,
    /// and every acknowledgement finds exactly the entries (and stages) the model has.
    #[test]
    fn identifiers_and_acks_agree_with_a_model(
        start in 1..=u16::MAX,
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let now = Instant::now();
        let mut state = session();
        let mut conn = v5_connection(now);
        state.next_packet_id = start;
        // id -> awaiting: 1 PUBACK, 2 PUBREC, 3 PUBCOMP.
        let mut model: BTreeMap<PacketId, u8> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Send(n, qos2) => {
                    let qos = if qos2 { QoS::ExactlyOnce } else { QoS::AtLeastOnce };
                    for _ in 0..n {
                        state.enqueue(delivery(message("t", "x", qos)), LIMITS);
                    }
                    for id in transmit(&mut state, &mut conn, now) {
                        prop_assert!(id != 0);
                        prop_assert!(model.insert(id, if qos2 { 2 } else { 1 }).is_none(),
                            "id {} reused while in flight", id);
                    }
                }
                Op::Ack(pick) => {
                    let id = match model.len() {
                        0 => start.wrapping_add(pick as u16).max(1),
                        len => *model.keys().nth(pick % len).expect("in range"),
                    };
                    match model.get(&id).copied() {
                        Some(1) => {
                            prop_assert!(!state.on_pubcomp(id));
                            prop_assert!(state.on_puback(id));
                            model.remove(&id);
                        }
                        Some(2) => {
                            prop_assert!(!state.on_puback(id));
                            let rel = state.on_pubrec(id, ReasonCode::Success);
                            prop_assert_eq!(rel.map(|r| r.reason_code), Some(ReasonCode::Success));
                            model.insert(id, 3);
                        }
                        Some(_) => {
                            let again = state.on_pubrec(id, ReasonCode::Success);
                            prop_assert_eq!(again.map(|r| r.reason_code), Some(ReasonCode::Success));
                            prop_assert!(state.on_pubcomp(id));
                            model.remove(&id);
                        }
                        None => {
                            prop_assert!(!state.on_puback(id));
                            prop_assert!(!state.on_pubcomp(id));
                            let rel = state.on_pubrec(id, ReasonCode::Success);
                            prop_assert_eq!(
                                rel.map(|r| r.reason_code),
                                Some(ReasonCode::PacketIdentifierNotFound)
                            );
                        }
                    }
                }
                Op::Reconnect => {
                    let mut fresh = v5_connection(now);
                    let mut out = Vec::new();
                    state.resend_inflight(&mut fresh, now, &mut out);
                    prop_assert_eq!(out.len(), model.len());
                    conn = fresh;
                }
            }
            prop_assert_eq!(state.inflight_len(), model.len());
        }
    }
}
