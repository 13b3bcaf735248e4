//! Session hot-path micro-benchmarks, sans-IO with a fake clock.
//!
//! - `deliver`: one delivery offered to the queue (`enqueue`), moved onto the wire
//!   (`poll_transmit`: packet id, `build_publish`) and encoded into the connection's output
//!   buffer, as the broker's connection task does per message. QoS 0 and QoS 1, v3.1.1 and
//!   v5 (forwarded properties and a subscription identifier).
//! - `deliver_batch`: 64 queued deliveries leaving in one `poll_transmit` turn.
//! - `puback`: the client's PUBACK releasing an in-flight QoS 1 message, in order and
//!   newest-first, with the window (128) full.
//! - `enqueue_full`: the overflow path of a full queue: dropping the oldest QoS 0 message,
//!   refusing a QoS 1 message, and dropping a QoS 0 message that sits behind QoS 1 ones.
//!
//! QoS 1 deliveries fill the in-flight window, so `deliver/qos1` and `puback` time chunks
//! of 128 messages with `iter_custom`: the deliveries are timed and the acknowledgements
//! that make room are not, or the other way round.
//!
//! Run: `cargo bench -p ferrymq-session` (about 40 s).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ferrymq_codec::{ForwardedProperties, Packet, ProtocolVersion, QoS, encode};
use ferrymq_session::{
    ConnectionState, Delivery, Enqueue, Message, QueueLimits, SessionState, Transmitted,
};

/// The broker's defaults (`limits.max_inflight`, the connection's transmit budget, the
/// session queue bounds).
const MAX_INFLIGHT: u16 = 128;
const TRANSMIT_BUDGET: usize = 64 * 1024;
const LIMITS: QueueLimits = QueueLimits {
    max_messages: 1_000,
    max_bytes: 16 * 1024 * 1024,
};
const PAYLOAD: usize = 64;
const BATCH: usize = 64;

/// Time as the session sees it: an `Instant` that the benchmark moves forward, one
/// microsecond per step, instead of reading the system clock.
struct FakeClock(Instant);

impl FakeClock {
    fn new() -> FakeClock {
        FakeClock(Instant::now())
    }

    fn tick(&mut self) -> Instant {
        self.0 += Duration::from_micros(1);
        self.0
    }
}

fn version_name(protocol: ProtocolVersion) -> &'static str {
    match protocol {
        ProtocolVersion::V5 => "v5",
        _ => "v3.1.1",
    }
}

/// A routed message; for v5 with the properties a v5 publisher typically sets.
fn message(protocol: ProtocolVersion, qos: QoS, now: Instant) -> Arc<Message> {
    let v5 = protocol.is_v5();
    let forwarded = v5.then(|| {
        Arc::new(ForwardedProperties {
            payload_format_indicator: Some(1),
            content_type: Some("application/json".to_owned()),
            user_properties: vec![("trace-id".to_owned(), "4bf92f3577b34da6".to_owned())],
            ..ForwardedProperties::default()
        })
    });
    Arc::new(Message {
        topic: Arc::from("devices/sensor-000042/temperature/telemetry"),
        payload: Bytes::from(vec![b'x'; PAYLOAD]),
        qos,
        retain: false,
        forwarded,
        expires_at: v5.then(|| now + Duration::from_secs(3_600)),
        publisher: Some(Arc::from("sensor-000042")),
        expires_on_arrival: false,
    })
}

fn delivery(message: &Arc<Message>, subscription_ids: Vec<u32>) -> Delivery {
    Delivery {
        message: Arc::clone(message),
        qos: message.qos,
        retain: false,
        subscription_ids,
        shared_group: None,
    }
}

/// A subscriber's session and connection after CONNECT, and its output buffer.
struct Subscriber {
    state: SessionState,
    conn: ConnectionState,
    packets: Vec<Packet>,
    output: BytesMut,
    protocol: ProtocolVersion,
}

impl Subscriber {
    fn new(protocol: ProtocolVersion, now: Instant) -> Subscriber {
        Subscriber {
            state: SessionState::new(),
            conn: ConnectionState::new(protocol, now),
            packets: Vec::new(),
            output: BytesMut::with_capacity(TRANSMIT_BUDGET * 2),
            protocol,
        }
    }

    /// One turn of the connection task: poll the session, encode what it gives, "write" it.
    fn transmit(&mut self, now: Instant) -> Transmitted {
        let transmitted = self.state.poll_transmit(
            &mut self.conn,
            now,
            MAX_INFLIGHT,
            TRANSMIT_BUDGET,
            &mut self.packets,
        );
        for packet in self.packets.drain(..) {
            encode(&packet, self.protocol, &mut self.output).expect("valid");
        }
        black_box(&self.output);
        self.output.clear();
        transmitted
    }

    /// Delivers `n` (at most the window) QoS 1 messages and returns their packet ids.
    fn deliver_qos1(&mut self, n: usize, delivery: &Delivery, clock: &mut FakeClock) -> Vec<u16> {
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            self.state.enqueue(delivery.clone(), LIMITS);
            let now = clock.tick();
            self.state.poll_transmit(
                &mut self.conn,
                now,
                MAX_INFLIGHT,
                TRANSMIT_BUDGET,
                &mut self.packets,
            );
            for packet in self.packets.drain(..) {
                if let Packet::Publish(publish) = &packet {
                    ids.extend(publish.packet_id);
                }
                encode(&packet, self.protocol, &mut self.output).expect("valid");
            }
            self.output.clear();
        }
        assert_eq!(ids.len(), n, "every delivery went out");
        ids
    }
}

fn deliver_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("deliver");
    group.throughput(Throughput::Elements(1));
    for protocol in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let mut clock = FakeClock::new();
        let ids = if protocol.is_v5() {
            vec![12]
        } else {
            Vec::new()
        };

        let qos0 = delivery(&message(protocol, QoS::AtMostOnce, clock.0), ids.clone());
        let mut sub = Subscriber::new(protocol, clock.0);
        let id = BenchmarkId::new("qos0", version_name(protocol));
        group.bench_function(id, |b| {
            b.iter(|| {
                sub.state.enqueue(qos0.clone(), LIMITS);
                sub.transmit(clock.tick())
            });
        });

        // The packet-id allocation scans the in-flight window, so the chunk fills it from
        // empty to full: the figure is the average over 0..128 messages in flight.
        let qos1 = delivery(&message(protocol, QoS::AtLeastOnce, clock.0), ids);
        let mut sub = Subscriber::new(protocol, clock.0);
        let id = BenchmarkId::new("qos1", version_name(protocol));
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let mut took = Duration::ZERO;
                let mut left = iters as usize;
                while left > 0 {
                    let n = left.min(usize::from(MAX_INFLIGHT));
                    let start = Instant::now();
                    let ids = sub.deliver_qos1(n, &qos1, &mut clock);
                    took += start.elapsed();
                    for id in ids {
                        sub.state.on_puback(id);
                    }
                    left -= n;
                }
                took
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("deliver_batch");
    group.throughput(Throughput::Elements(BATCH as u64));
    for protocol in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let mut clock = FakeClock::new();
        let qos0 = delivery(&message(protocol, QoS::AtMostOnce, clock.0), Vec::new());
        let mut sub = Subscriber::new(protocol, clock.0);
        let id = BenchmarkId::new(format!("qos0/{}", version_name(protocol)), BATCH);
        group.bench_function(id, |b| {
            b.iter(|| {
                for _ in 0..BATCH {
                    sub.state.enqueue(qos0.clone(), LIMITS);
                }
                let transmitted = sub.transmit(clock.tick());
                debug_assert!(!transmitted.budget_exhausted);
                transmitted
            });
        });
    }
    group.finish();
}

fn puback_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("puback");
    group.throughput(Throughput::Elements(1));
    let protocol = ProtocolVersion::V3_1_1;
    for newest_first in [false, true] {
        let mut clock = FakeClock::new();
        let qos1 = delivery(&message(protocol, QoS::AtLeastOnce, clock.0), Vec::new());
        let mut sub = Subscriber::new(protocol, clock.0);
        let name = if newest_first {
            "newest_first"
        } else {
            "in_order"
        };
        group.bench_function(BenchmarkId::new(name, "window_128"), |b| {
            b.iter_custom(|iters| {
                let mut took = Duration::ZERO;
                let mut left = iters as usize;
                while left > 0 {
                    // Always a full window, whatever the chunk: the ack cost depends on it.
                    let window = usize::from(MAX_INFLIGHT);
                    let mut ids = sub.deliver_qos1(window, &qos1, &mut clock);
                    if newest_first {
                        ids.reverse();
                    }
                    let n = left.min(window);
                    let start = Instant::now();
                    for &id in &ids[..n] {
                        black_box(sub.state.on_puback(id));
                    }
                    took += start.elapsed();
                    for &id in &ids[n..] {
                        sub.state.on_puback(id);
                    }
                    left -= n;
                }
                assert_eq!(sub.state.inflight_len(), 0);
                took
            });
        });
    }
    group.finish();
}

/// A full queue (`LIMITS.max_messages` deliveries) and the next delivery offered to it.
fn enqueue_full_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("enqueue_full");
    group.throughput(Throughput::Elements(1));
    let protocol = ProtocolVersion::V3_1_1;
    let now = Instant::now();
    let qos0 = delivery(&message(protocol, QoS::AtMostOnce, now), Vec::new());
    let qos1 = delivery(&message(protocol, QoS::AtLeastOnce, now), Vec::new());

    // Full of QoS 0: the oldest is dropped, the new one queued.
    let mut state = SessionState::new();
    for _ in 0..LIMITS.max_messages {
        state.enqueue(qos0.clone(), LIMITS);
    }
    group.bench_function("qos0_drops_oldest", |b| {
        b.iter(|| {
            let outcome = state.enqueue(qos0.clone(), LIMITS);
            debug_assert_eq!(outcome, Enqueue::QueuedAfterDropping(1));
            outcome
        });
    });

    // Full of QoS 1: nothing may be dropped, the new one is refused.
    let mut state = SessionState::new();
    for _ in 0..LIMITS.max_messages {
        state.enqueue(qos1.clone(), LIMITS);
    }
    group.bench_function("qos1_refused", |b| {
        b.iter(|| {
            let outcome = state.enqueue(qos1.clone(), LIMITS);
            debug_assert_eq!(outcome, Enqueue::Refused);
            outcome
        });
    });

    // Full of QoS 1 but for one QoS 0 at the back (a subscriber with subscriptions at both
    // QoS): each new QoS 0 drops the previous one. Two sizes, to show the cost does not
    // depend on the length of the queue (it did while the QoS 0 one was found by a scan).
    for max_messages in [1_000, 100_000] {
        let limits = QueueLimits {
            max_messages,
            max_bytes: usize::MAX,
        };
        let mut state = SessionState::new();
        for _ in 1..max_messages {
            state.enqueue(qos1.clone(), limits);
        }
        state.enqueue(qos0.clone(), limits);
        let id = BenchmarkId::new("qos0_behind_qos1", max_messages);
        group.bench_function(id, |b| {
            b.iter(|| {
                let outcome = state.enqueue(qos0.clone(), limits);
                debug_assert_eq!(outcome, Enqueue::QueuedAfterDropping(1));
                outcome
            });
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = deliver_benches, puback_benches, enqueue_full_benches
}
criterion_main!(benches);
