//! Sans-IO tests of session state with a fake clock: flow control, QoS 1/2 exchanges,
//! queue overflow, expiry, will delay, keep-alive and topic aliases.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferrymq_codec::{
    ForwardedProperties, LastWill, Packet, ProtocolVersion, Publish, PublishProperties, QoS,
    ReasonCode, WillProperties,
};

use super::*;
use crate::connection::{ConnectionState, InboundTopicError};
use crate::message::{Delivery, Message};

const LIMITS: QueueLimits = QueueLimits {
    max_messages: 100,
    max_bytes: 1 << 20,
};

fn message(topic: &str, payload: &'static str, qos: QoS) -> Arc<Message> {
    Arc::new(Message {
        topic: Arc::from(topic),
        payload: Bytes::from_static(payload.as_bytes()),
        qos,
        retain: false,
        forwarded: None,
        expires_at: None,
        publisher: None,
        expires_on_arrival: false,
    })
}

fn delivery(message: Arc<Message>) -> Delivery {
    let qos = message.qos;
    Delivery {
        message,
        qos,
        retain: false,
        subscription_ids: Vec::new(),
        shared_group: None,
    }
}

fn session() -> SessionState {
    SessionState::new()
}

fn v5_connection(now: Instant) -> ConnectionState {
    ConnectionState::new(ProtocolVersion::V5, now)
}

fn alias(publish: &Publish) -> Option<u16> {
    publish.properties.as_ref().and_then(|p| p.topic_alias)
}

fn publishes(packets: &[Packet]) -> Vec<&Publish> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(publish) => Some(publish),
            _ => None,
        })
        .collect()
}

#[test]
fn receive_maximum_limits_messages_in_flight() {
    let now = Instant::now();
    let mut state = session();
    let mut conn = v5_connection(now);
    conn.client_receive_maximum = 2;
    for i in 0..5 {
        let payload: &'static str = ["0", "1", "2", "3", "4"][i];
        state.enqueue(delivery(message("t", payload, QoS::AtLeastOnce)), LIMITS);
    }
    let mut out = Vec::new();
    state.poll_transmit(&mut conn, now, 128, usize::MAX, &mut out);
    let sent = publishes(&out);
    assert_eq!(
        sent.len(),
        2,
        "only Receive Maximum messages may be in flight"
    );
    assert_eq!(state.inflight_len(), 2);
    assert_eq!(state.queued_len(), 3);

    // One PUBACK opens the window by exactly one.
    let first = sent[0].packet_id.expect("QoS 1 has a packet id");
    assert!(state.on_puback(first));
    out.clear();
    state.poll_transmit(&mut conn, now, 128, usize::MAX, &mut out);
    assert_eq!(publishes(&out).len(), 1);
    assert_eq!(
        publishes(&out)[0].payload,
        Bytes::from_static(b"2"),
        "order is kept"
    );
}

#[test]
fn server_inflight_cap_applies_when_client_allows_more() {
    let now = Instant::now();
    let mut state = session();
    let mut conn = v5_connection(now);
    for _ in 0..10 {
        state.enqueue(delivery(message("t", "x", QoS::AtLeastOnce)), LIMITS);
    }
    let mut out = Vec::new();
    state.poll_transmit(&mut conn, now, 3, usize::MAX, &mut out);
    assert_eq!(publishes(&out).len(), 3);
}

#[test]
fn qos0_is_not_limited_by_the_window() {
    let now = Instant::now();
    let mut state = session();
    let mut conn = v5_connection(now);
    conn.client_receive_maximum = 1;
    for _ in 0..4 {
        state.enqueue(delivery(message("t", "x", QoS::AtMostOnce)), LIMITS);
    }
    let mut out = Vec::new();
    state.poll_transmit(&mut conn, now, 128, usize::MAX, &mut out);
    assert_eq!(publishes(&out).len(), 4);
    assert_eq!(state.inflight_len(), 0);
}

#[test]
fn qos2_outbound_exchange_completes_with_pubcomp() {
    let now = Instant::now();
    let mut state = session();
    let mut conn = v5_connection(now);
    state.enqueue(delivery(message("t", "x", QoS::ExactlyOnce)), LIMITS);
    let mut out = Vec::new();
    state.poll_transmit(&mut conn, now, 128, usize::MAX, &mut out);
    let id = publishes(&out)[0].packet_id.expect("packet id");
    let rel = state
        .on_pubrec(id, ReasonCode::Success)
        .expect("PUBREL follows PUBREC");
    assert_eq!(rel.packet_id, id);
    assert_eq!(rel.reason_code, ReasonCode::Success);
    assert_eq!(state.inflight_len(), 1, "still waiting for PUBCOMP");
    assert!(
        !state.on_puback(id),
        "a PUBACK does not complete a QoS 2 exchange"
    );
    assert!(state.on_pubcomp(id));
    assert_eq!(state.inflight_len(), 0);
}

#[test]
fn pubrec_with_error_ends_the_exchange() {
    let now = Instant::now();
    let mut state = session();
    let mut conn = v5_connection(now);
    state.enqueue(delivery(message("t", "x", QoS::ExactlyOnce)), LIMITS);
    let mut out = Vec::new();
    state.poll_transmit(&mut conn, now, 128, usize::MAX, &mut out);
    let id = publishes(&out)[0].packet_id.expect("packet id");
    assert!(state.on_pubrec(id, ReasonCode::QuotaExceeded).is_none());
    assert_eq!(state.inflight_len(), 0);
}

#[test]
fn unknown_pubrec_gets_packet_identifier_not_found() {
    let mut state = session();
    let rel = state.on_pubrec(42, ReasonCode::Success).expect("answered");
    assert_eq!(rel.reason_code, ReasonCode::PacketIdentifierNotFound);
}

#[test]
fn reconnect_resends_publish_with_dup_and_pubrel() {
    let now = Instant::now();
    let mut state = session();
    let mut conn = v5_connection(now);
    state.enqueue(delivery(message("a", "1", QoS::AtLeastOnce)), LIMITS);
    state.enqueue(delivery(message("b", "2", QoS::ExactlyOnce)), LIMITS);
    let mut out = Vec::new();
    state.poll_transmit(&mut conn, now, 128, usize::MAX, &mut out);
    let ids: Vec<_> = publishes(&out)
        .iter()
        .map(|p| p.packet_id.expect("id"))
        .collect();
    state.on_pubrec(ids[1], ReasonCode::Success);

    let mut fresh = v5_connection(now);
    let mut resent = Vec::new();
    state.resend_inflight(&mut fresh, now, &mut resent);
    assert_eq!(resent.len(), 2);
    match &resent[0] {
        Packet::Publish(p) => {
            assert!(p.dup, "re-sent PUBLISH has DUP set [MQTT-4.4.0-1]");
            assert_eq!(p.packet_id, Some(ids[0]));
            assert_eq!(p.topic, "a");
        }
        other => panic!("expected PUBLISH, got {other:?}"),
    }
    match &resent[1] {
        Packet::PubRel(rel) => assert_eq!(rel.packet_id, ids[1]),
        other => panic!("expected PUBREL, got {other:?}"),
    }
}

#[test]
fn packet_ids_are_unique_among_inflight_and_wrap() {
    let now = Instant::now();
    let mut state = session();
    let mut conn = v5_connection(now);
    state.next_packet_id = u16::MAX - 1;
    for _ in 0..4 {
        state.enqueue(delivery(message("t", "x", QoS::AtLeastOnce)), LIMITS);
    }
    let mut out = Vec::new();
    state.poll_transmit(&mut conn, now, 128, usize::MAX, &mut out);
    let ids: Vec<_> = publishes(&out)
        .iter()
        .map(|p| p.packet_id.expect("id"))
        .collect();
    assert_eq!(
        ids,
        vec![u16::MAX - 1, u16::MAX, 1, 2],
        "0 is never used [MQTT-2.2.1-3]"
    );
}

#[test]
fn overflow_drops_oldest_qos0_then_refuses() {
    let limits = QueueLimits {
        max_messages: 3,
        max_bytes: 1 << 20,
    };
    let mut state = session();
    assert_eq!(
        state.enqueue(delivery(message("t", "q0-old", QoS::AtMostOnce)), limits),
        Enqueue::Queued
    );
    assert_eq!(
        state.enqueue(delivery(message("t", "q1-a", QoS::AtLeastOnce)), limits),
        Enqueue::Queued
    );
    assert_eq!(
        state.enqueue(delivery(message("t", "q1-b", QoS::AtLeastOnce)), limits),
        Enqueue::Queued
    );
    assert_eq!(
        state.enqueue(delivery(message("t", "q1-c", QoS::AtLeastOnce)), limits),
        Enqueue::QueuedAfterDropping(1)
    );
    assert_eq!(
        state.enqueue(delivery(message("t", "q1-d", QoS::AtLeastOnce)), limits),
        Enqueue::Refused
    );
    assert_eq!(
        state.enqueue(delivery(message("t", "q0-new", QoS::AtMostOnce)), limits),
        Enqueue::Refused
    );
    assert_eq!(state.queued_len(), 3);
}

#[test]
fn overflow_drops_the_oldest_qos0_from_between_qos1_and_keeps_the_order() {
    let limits = QueueLimits {
        max_messages: 5,
        max_bytes: 1 << 20,
    };
    let now = Instant::now();
    let mut state = session();
    for (payload, qos) in [
        ("q1-a", QoS::AtLeastOnce),
        ("q0-a", QoS::AtMostOnce),
        ("q1-b", QoS::AtLeastOnce),
        ("q0-b", QoS::AtMostOnce),
        ("q1-c", QoS::AtLeastOnce),
    ] {
        state.enqueue(delivery(message("t", payload, qos)), limits);
    }
    assert_eq!(
        state.enqueue(delivery(message("t", "q0-c", QoS::AtMostOnce)), limits),
        Enqueue::QueuedAfterDropping(1)
    );
    assert_eq!(
        state.enqueue(delivery(message("t", "q1-d", QoS::AtLeastOnce)), limits),
        Enqueue::QueuedAfterDropping(1)
    );
    assert_eq!(state.queued_bytes(), 25, "five messages of 5 bytes");
    let mut conn = v5_connection(now);
    let mut out = Vec::new();
    state.poll_transmit(&mut conn, now, 128, usize::MAX, &mut out);
    let sent: Vec<&[u8]> = publishes(&out).iter().map(|p| p.payload.as_ref()).collect();
    assert_eq!(
        sent,
        [&b"q1-a"[..], b"q1-b", b"q1-c", b"q0-c", b"q1-d"],
        "q0-a then q0-b dropped, the rest in arrival order"
    );
}

#[test]
fn byte_limit_counts_payload_and_topic() {
    let limits = QueueLimits {
        max_messages: 100,
        max_bytes: 10,
    };
    let mut state = session();
    assert_eq!(
        state.enqueue(delivery(message("t", "12345678", QoS::AtLeastOnce)), limits),
        Enqueue::Queued
    );
    assert_eq!(state.queued_bytes(), 9);
    assert_eq!(
        state.enqueue(delivery(message("t", "12", QoS::AtLeastOnce)), limits),
        Enqueue::Refused
    );
}

#[test]
fn expired_messages_are_dropped_and_remaining_expiry_is_forwarded() {
    let start = Instant::now();
    let mut state = session();
    let mut conn = v5_connection(start);
    let mut short = (*message("t", "short", QoS::AtLeastOnce)).clone();
    short.expires_at = Some(start + Duration::from_secs(5));
    let mut long = (*message("t", "long", QoS::AtLeastOnce)).clone();
    long.expires_at = Some(start + Duration::from_secs(10));
    state.enqueue(delivery(Arc::new(short)), LIMITS);
    state.enqueue(delivery(Arc::new(long)), LIMITS);

    let later = start + Duration::from_secs(7);
    let mut out = Vec::new();
    let dropped = state.poll_transmit(&mut conn, later, 128, usize::MAX, &mut out);
    assert_eq!(dropped.expired, 1);
    let sent = publishes(&out);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].payload, Bytes::from_static(b"long"));
    assert_eq!(
        sent[0].properties.as_ref().unwrap().message_expiry_interval,
        Some(3),
        "decremented by the wait [MQTT-3.3.2-6]"
    );
}

#[test]
fn message_larger_than_client_maximum_is_not_sent() {
    let now = Instant::now();
    let mut state = session();
    let mut conn = v5_connection(now);
    conn.client_maximum_packet_size = 20;
    state.enqueue(
        delivery(message(
            "t",
            "this payload is far too long for 20 bytes",
            QoS::AtLeastOnce,
        )),
        LIMITS,
    );
    state.enqueue(delivery(message("t", "ok", QoS::AtLeastOnce)), LIMITS);
    let mut out = Vec::new();
    let dropped = state.poll_transmit(&mut conn, now, 128, usize::MAX, &mut out);
    assert_eq!(dropped.too_large, 1);
    let sent = publishes(&out);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].payload, Bytes::from_static(b"ok"));
    for packet in &out {
        let len = ferrymq_codec::encoded_len(packet, ProtocolVersion::V5).expect("encodable");
        assert!(
            len <= 20,
            "never more than the client's Maximum Packet Size [MQTT-3.1.2-25]"
        );
    }
}

#[test]
fn outbound_topic_aliases_are_assigned_then_reused() {
    let now = Instant::now();
    let mut state = session();
    let mut conn = v5_connection(now);
    conn.client_topic_alias_maximum = 1;
    for topic in ["a/b", "a/b", "c"] {
        state.enqueue(delivery(message(topic, "x", QoS::AtMostOnce)), LIMITS);
    }
    let mut out = Vec::new();
    state.poll_transmit(&mut conn, now, 128, usize::MAX, &mut out);
    let sent = publishes(&out);
    assert_eq!((sent[0].topic.as_str(), alias(sent[0])), ("a/b", Some(1)));
    assert_eq!((sent[1].topic.as_str(), alias(sent[1])), ("", Some(1)));
    assert_eq!(
        (sent[2].topic.as_str(), alias(sent[2])),
        ("c", None),
        "no alias left"
    );
}

#[test]
fn v3_connections_get_no_aliases_or_properties() {
    let now = Instant::now();
    let mut state = session();
    let mut conn = ConnectionState::new(ProtocolVersion::V3_1_1, now);
    conn.client_topic_alias_maximum = 10;
    let mut msg = (*message("t", "x", QoS::AtMostOnce)).clone();
    msg.forwarded = Some(Arc::new(ForwardedProperties {
        user_properties: vec![("k".into(), "v".into())],
        ..ForwardedProperties::default()
    }));
    state.enqueue(delivery(Arc::new(msg)), LIMITS);
    let mut out = Vec::new();
    state.poll_transmit(&mut conn, now, 128, usize::MAX, &mut out);
    let sent = publishes(&out);
    assert_eq!(sent[0].properties, None);
    assert_eq!(sent[0].topic, "t");
}

#[test]
fn v5_deliveries_share_the_forwarded_properties() {
    let now = Instant::now();
    let mut state = session();
    let mut conn = v5_connection(now);
    let mut msg = (*message("t", "x", QoS::AtMostOnce)).clone();
    let forwarded = Arc::new(ForwardedProperties {
        content_type: Some("text/plain".into()),
        user_properties: vec![("k".into(), "v".into())],
        ..ForwardedProperties::default()
    });
    msg.forwarded = Some(Arc::clone(&forwarded));
    let mut with_id = delivery(Arc::new(msg));
    with_id.subscription_ids = vec![7];
    state.enqueue(with_id, LIMITS);
    state.enqueue(delivery(message("t", "plain", QoS::AtMostOnce)), LIMITS);
    let mut out = Vec::new();
    state.poll_transmit(&mut conn, now, 128, usize::MAX, &mut out);
    let sent = publishes(&out);
    let properties = sent[0].properties.as_deref().expect("properties");
    assert_eq!(properties.subscription_identifiers, [7]);
    assert!(
        Arc::ptr_eq(properties.forwarded.as_ref().unwrap(), &forwarded),
        "the message's properties, not a copy"
    );
    assert_eq!(
        sent[1].properties, None,
        "a message without properties allocates none"
    );
}

#[test]
fn inbound_topic_aliases() {
    let now = Instant::now();
    let mut conn = v5_connection(now);
    conn.server_topic_alias_maximum = 2;
    let mut first = publish_with("x/y", Some(2));
    assert_eq!(conn.resolve_inbound_topic(&mut first), Ok(()));
    let mut second = publish_with("", Some(2));
    assert_eq!(conn.resolve_inbound_topic(&mut second), Ok(()));
    assert_eq!(second.topic, "x/y");
    assert_eq!(alias(&second), None);
    assert_eq!(
        conn.resolve_inbound_topic(&mut publish_with("", Some(1))),
        Err(InboundTopicError::UnknownAlias)
    );
    assert_eq!(
        conn.resolve_inbound_topic(&mut publish_with("a", Some(3))),
        Err(InboundTopicError::AliasOutOfRange)
    );
    assert_eq!(
        conn.resolve_inbound_topic(&mut publish_with("a", Some(0))),
        Err(InboundTopicError::AliasOutOfRange)
    );
    assert_eq!(
        conn.resolve_inbound_topic(&mut publish_with("", None)),
        Err(InboundTopicError::EmptyTopic)
    );
}

fn publish_with(topic: &str, alias: Option<u16>) -> Publish {
    Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: topic.into(),
        packet_id: None,
        properties: alias.map(|alias| {
            Box::new(PublishProperties {
                topic_alias: Some(alias),
                ..PublishProperties::default()
            })
        }),
        payload: Bytes::new(),
    }
}

#[test]
fn keep_alive_deadline_is_one_and_a_half_times_and_moves_with_packets() {
    let start = Instant::now();
    let mut conn = v5_connection(start);
    assert_eq!(
        conn.keep_alive_deadline(1.5),
        None,
        "keep-alive 0 disables it"
    );
    conn.set_keep_alive(10);
    assert_eq!(
        conn.keep_alive_deadline(1.5),
        Some(start + Duration::from_secs(15))
    );
    conn.on_packet_received(start + Duration::from_secs(4));
    assert_eq!(
        conn.keep_alive_deadline(1.5),
        Some(start + Duration::from_secs(19))
    );
}

fn will(delay: Option<u32>) -> LastWill {
    LastWill {
        topic: "will".into(),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: WillProperties {
            will_delay_interval: delay,
            ..WillProperties::default()
        },
    }
}

#[test]
fn will_and_expiry_deadlines() {
    let start = Instant::now();
    let mut state = session();
    state.will = Some(Box::new(will(Some(5))));
    state.expiry_interval = 60;
    assert_eq!(
        state.will_due_at(None),
        None,
        "nothing is due while connected"
    );
    assert_eq!(state.expires_at(None), None);

    let disconnected_at = Some(start);
    assert_eq!(
        state.will_due_at(disconnected_at),
        Some(start + Duration::from_secs(5))
    );
    assert_eq!(
        state.expires_at(disconnected_at),
        Some(start + Duration::from_secs(60))
    );

    // The session ending first brings the will forward [MQTT-3.1.3-9].
    state.expiry_interval = 2;
    assert_eq!(
        state.will_due_at(disconnected_at),
        Some(start + Duration::from_secs(2))
    );

    state.expiry_interval = u32::MAX;
    assert_eq!(
        state.expires_at(disconnected_at),
        None,
        "0xFFFFFFFF never expires"
    );
    state.will = None;
    assert_eq!(state.will_due_at(disconnected_at), None);
}

#[test]
fn inbound_qos2_ids_are_remembered_until_released() {
    let mut state = session();
    assert!(state.receive_qos2(7), "first receipt is new");
    assert!(
        !state.receive_qos2(7),
        "a re-sent PUBLISH is not routed again"
    );
    assert_eq!(state.inbound_qos2_len(), 1);
    assert!(state.release_qos2(7));
    assert!(!state.release_qos2(7));
    assert!(state.receive_qos2(7), "the id is free again after PUBREL");
}

#[test]
fn shared_deliveries_are_handed_back_but_pubrec_ones_stay() {
    let now = Instant::now();
    let mut state = session();
    let mut conn = v5_connection(now);
    let group: Arc<str> = Arc::from("g/t");
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce, QoS::AtLeastOnce] {
        let mut d = delivery(message("t", "x", qos));
        d.shared_group = Some(group.clone());
        state.enqueue(d, LIMITS);
    }
    state.enqueue(delivery(message("t", "mine", QoS::AtLeastOnce)), LIMITS);
    conn.client_receive_maximum = 2;
    let mut out = Vec::new();
    state.poll_transmit(&mut conn, now, 128, usize::MAX, &mut out);
    let ids: Vec<_> = publishes(&out)
        .iter()
        .map(|p| p.packet_id.expect("id"))
        .collect();
    state.on_pubrec(ids[1], ReasonCode::Success);

    let taken = state.take_shared_undelivered();
    assert_eq!(
        taken.len(),
        2,
        "the unacked QoS 1 and the queued shared one"
    );
    assert!(taken.iter().all(|d| d.shared_group.is_some()));
    assert_eq!(
        state.inflight_len(),
        1,
        "the PUBREC'd QoS 2 stays to complete"
    );
    assert_eq!(state.queued_len(), 1, "the non-shared delivery stays");
}

#[test]
fn queued_qos0_is_discarded_on_disconnect() {
    let mut state = session();
    state.enqueue(delivery(message("t", "0", QoS::AtMostOnce)), LIMITS);
    state.enqueue(delivery(message("t", "1", QoS::AtLeastOnce)), LIMITS);
    state.discard_queued_qos0();
    assert_eq!(state.queued_len(), 1);
    assert_eq!(state.queued_bytes(), 2);
}

#[test]
fn expiry_interval_zero_expires_on_arrival() {
    let now = Instant::now();
    let publish = Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "t".into(),
        packet_id: Some(1),
        properties: Some(Box::new(PublishProperties {
            message_expiry_interval: Some(0),
            ..PublishProperties::default()
        })),
        payload: Bytes::from_static(b"x"),
    };
    let message = Message::from_publish(publish, now, None);
    assert!(message.expires_on_arrival);
    assert_eq!(message.expires_at, None);

    // Queued for a connected client, it is still sent.
    let mut state = session();
    let mut conn = v5_connection(now);
    state.enqueue(delivery(Arc::new(message)), LIMITS);
    let mut out = Vec::new();
    state.poll_transmit(
        &mut conn,
        now + Duration::from_millis(5),
        128,
        usize::MAX,
        &mut out,
    );
    let sent = publishes(&out);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].properties, None, "no expiry remains to forward");
}

#[test]
fn poll_transmit_stops_at_the_budget_and_says_so() {
    let now = Instant::now();
    let mut state = session();
    let mut conn = v5_connection(now);
    for _ in 0..10 {
        state.enqueue(
            delivery(message("t", "0123456789", QoS::AtMostOnce)),
            LIMITS,
        );
    }
    let mut out = Vec::new();
    // Each message weighs 11 bytes (topic + payload): a 30-byte budget lets 3 out.
    let report = state.poll_transmit(&mut conn, now, 128, 30, &mut out);
    assert_eq!(publishes(&out).len(), 3);
    assert!(report.budget_exhausted);
    assert_eq!(state.queued_len(), 7);
    out.clear();
    let report = state.poll_transmit(&mut conn, now, 128, usize::MAX, &mut out);
    assert_eq!(publishes(&out).len(), 7);
    assert!(!report.budget_exhausted);
}

#[test]
fn a_queue_full_of_qos1_refuses_without_scanning() {
    let limits = QueueLimits {
        max_messages: 1000,
        max_bytes: 1 << 30,
    };
    let mut state = session();
    for _ in 0..1000 {
        assert_eq!(
            state.enqueue(delivery(message("t", "x", QoS::AtLeastOnce)), limits),
            Enqueue::Queued
        );
    }
    // 100k refusals stay fast because the QoS 0 count is known (this was O(queue) each).
    for _ in 0..100_000 {
        assert_eq!(
            state.enqueue(delivery(message("t", "x", QoS::AtLeastOnce)), limits),
            Enqueue::Refused
        );
    }
    assert_eq!(state.queued_len(), 1000);
    assert_eq!(state.queued_bytes(), 2000);
}

#[test]
fn offer_hands_back_what_does_not_fit_without_dropping_anything() {
    let limits = QueueLimits {
        max_messages: 3,
        max_bytes: 1 << 20,
    };
    let mut state = session();
    for payload in ["q0", "q1-a", "q1-b"] {
        let qos = match payload {
            "q0" => QoS::AtMostOnce,
            _ => QoS::AtLeastOnce,
        };
        assert_eq!(
            state.offer(delivery(message("t", payload, qos)), limits),
            Ok(0)
        );
    }
    // Room is made by dropping the QoS 0 message.
    assert_eq!(
        state.offer(delivery(message("t", "q1-c", QoS::AtLeastOnce)), limits),
        Ok(1)
    );
    // Full of QoS 1: handed back, nothing dropped.
    let back = state
        .offer(delivery(message("t", "q1-d", QoS::AtLeastOnce)), limits)
        .unwrap_err();
    assert_eq!(back.message.payload.as_ref(), b"q1-d");
    assert_eq!(state.queued_len(), 3);
}

#[test]
fn offer_refuses_when_dropping_every_qos0_message_would_not_make_room() {
    // 10 bytes: a QoS 0 message of 3 ("t" + "ab") and a QoS 1 of 6 ("t" + "12345").
    let limits = QueueLimits {
        max_messages: 100,
        max_bytes: 10,
    };
    let mut state = session();
    state.enqueue(delivery(message("t", "ab", QoS::AtMostOnce)), limits);
    state.enqueue(delivery(message("t", "12345", QoS::AtLeastOnce)), limits);
    assert_eq!(state.queued_bytes(), 9);
    // 6 more bytes: 6 + 6 > 10 even without the QoS 0 message, so it must stay.
    assert!(
        state
            .offer(delivery(message("t", "67890", QoS::AtLeastOnce)), limits)
            .is_err()
    );
    assert_eq!(state.queued_len(), 2);
    assert_eq!(state.queued_bytes(), 9);
    // 4 bytes fit once it is gone.
    assert_eq!(
        state.offer(delivery(message("t", "abc", QoS::AtLeastOnce)), limits),
        Ok(1)
    );
    assert_eq!(state.queued_bytes(), 10);
}

#[test]
fn the_low_water_mark_is_half_the_limits() {
    let limits = QueueLimits {
        max_messages: 4,
        max_bytes: 1 << 20,
    };
    let mut state = session();
    let mut conn = v5_connection(Instant::now());
    for _ in 0..4 {
        state.enqueue(delivery(message("t", "x", QoS::AtLeastOnce)), limits);
    }
    assert!(!state.below_low_water(limits));
    let mut out = Vec::new();
    state.poll_transmit(&mut conn, Instant::now(), 1, usize::MAX, &mut out);
    assert!(!state.below_low_water(limits), "3 of 4 queued");
    let bytes_limited = QueueLimits {
        max_messages: 100,
        max_bytes: 6,
    };
    assert!(!state.below_low_water(bytes_limited), "6 of 6 bytes queued");
    state.on_puback(1);
    out.clear();
    state.poll_transmit(&mut conn, Instant::now(), 1, usize::MAX, &mut out);
    assert!(state.below_low_water(limits), "2 of 4 queued");
    assert!(!state.below_low_water(bytes_limited), "4 of 6 bytes queued");
}

mod packet_ids;
