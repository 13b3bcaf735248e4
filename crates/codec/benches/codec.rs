//! Codec micro-benchmarks: decode and encode of the packets on the hot path.
//!
//! PUBLISH at QoS 0 and 1, 64 B and 4 KiB payloads, v3.1.1 and v5 (with the few properties a
//! real v5 client sends); CONNECT, SUBSCRIBE and PUBACK; and a read buffer holding 1,000 small
//! PUBLISHes (one socket read during a burst). Throughput is in bytes of wire data, or in
//! packets for the burst.
//!
//! Decoding consumes its input (`Decoder::decode` splits the packet off the buffer), so the
//! single-packet decode benchmarks fill a read buffer of up to 64 KiB with copies of the
//! packet (not timed) and time decoding them one by one, dropping each decoded packet (its
//! topic `String` and property allocations are part of the cost). Encoding appends to one
//! reused `BytesMut`, cleared between iterations, as the connection's output buffer is.
//!
//! Run: `cargo bench -p ferrymq-codec` (about 1.5 minutes); a subset:
//! `cargo bench -p ferrymq-codec -- publish/decode`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ferrymq_codec::{
    Connect, ConnectProperties, Decoder, ForwardedProperties, Packet, ProtocolVersion, PubAck,
    Publish, PublishProperties, QoS, ReasonCode, Subscribe, SubscribeProperties,
    SubscriptionOptions, encode,
};

const MAX_PACKET_SIZE: u32 = 1 << 20;
const TOPIC: &str = "devices/sensor-000042/temperature/telemetry";
const BURST_PACKETS: usize = 1_000;
/// Bytes one socket read hands the decoder, at most.
const READ_BUFFER: usize = 64 * 1024;

fn version_name(protocol: ProtocolVersion) -> &'static str {
    match protocol {
        ProtocolVersion::V3_1 => "v3.1",
        ProtocolVersion::V3_1_1 => "v3.1.1",
        ProtocolVersion::V5 => "v5",
    }
}

/// A client's PUBLISH. v5 adds what a typical v5 client sets: payload format, message expiry,
/// content type and one user property (a trace id).
fn publish(protocol: ProtocolVersion, qos: QoS, payload_len: usize) -> Packet {
    let properties = match protocol {
        ProtocolVersion::V5 => Some(Box::new(PublishProperties {
            message_expiry_interval: Some(3_600),
            forwarded: Some(Arc::new(ForwardedProperties {
                payload_format_indicator: Some(1),
                content_type: Some("application/json".to_owned()),
                user_properties: vec![("trace-id".to_owned(), "4bf92f3577b34da6".to_owned())],
                ..ForwardedProperties::default()
            })),
            ..PublishProperties::default()
        })),
        _ => None,
    };
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: TOPIC.to_owned(),
        packet_id: (qos != QoS::AtMostOnce).then_some(4_242),
        properties,
        payload: Bytes::from(vec![b'x'; payload_len]),
    })
}

fn connect(protocol: ProtocolVersion) -> Packet {
    let properties = match protocol {
        ProtocolVersion::V5 => ConnectProperties {
            session_expiry_interval: Some(86_400),
            receive_maximum: Some(64),
            maximum_packet_size: Some(MAX_PACKET_SIZE),
            topic_alias_maximum: Some(16),
            ..ConnectProperties::default()
        },
        _ => ConnectProperties::default(),
    };
    Packet::Connect(Box::new(Connect {
        protocol,
        clean_start: false,
        keep_alive: 60,
        client_id: "sensor-000042".to_owned(),
        will: None,
        username: Some("tenant-a:sensor-000042".to_owned()),
        password: Some(Bytes::from_static(b"eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl")),
        properties,
    }))
}

/// SUBSCRIBE to three filters, one of them shared; v5 adds a Subscription Identifier.
fn subscribe(protocol: ProtocolVersion) -> Packet {
    let v5 = protocol.is_v5();
    let options = |qos| SubscriptionOptions {
        qos,
        no_local: v5,
        ..SubscriptionOptions::default()
    };
    Packet::Subscribe(Subscribe {
        packet_id: 7,
        filters: vec![
            (
                "devices/sensor-000042/cmd/#".to_owned(),
                options(QoS::AtLeastOnce),
            ),
            ("site/17/+/alarms".to_owned(), options(QoS::AtMostOnce)),
            (
                "$share/ingest/devices/+/+/telemetry".to_owned(),
                options(QoS::AtLeastOnce),
            ),
        ],
        properties: SubscribeProperties {
            subscription_identifier: v5.then_some(12),
            user_properties: Vec::new(),
        },
    })
}

fn wire(packet: &Packet, protocol: ProtocolVersion) -> Bytes {
    let mut buf = BytesMut::new();
    encode(packet, protocol, &mut buf).expect("benchmark packets are valid");
    buf.freeze()
}

/// A decoder in the state it is in after CONNECT (`None`: before CONNECT).
fn decoder(protocol: Option<ProtocolVersion>) -> Decoder {
    let mut decoder = Decoder::new(MAX_PACKET_SIZE);
    if let Some(protocol) = protocol {
        decoder.set_protocol(protocol);
    }
    decoder
}

/// Benchmarks decode and encode of one packet in `group_name`, throughput in wire bytes.
/// `established`: decode after CONNECT (everything but CONNECT itself).
fn bench_packet(
    c: &mut Criterion,
    group_name: &str,
    id: &str,
    packet: &Packet,
    protocol: ProtocolVersion,
    established: bool,
) {
    let bytes = wire(packet, protocol);
    let decoder_protocol = established.then_some(protocol);
    let mut group = c.benchmark_group(format!("{group_name}/decode"));
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    // Packets per read buffer: as many as fit in 64 KiB, at least one.
    let per_buffer = (READ_BUFFER / bytes.len()).max(1);
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let mut took = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(per_buffer as u64);
                let mut buf = BytesMut::with_capacity(bytes.len() * n as usize);
                for _ in 0..n {
                    buf.extend_from_slice(&bytes);
                }
                // CONNECT is decoded once per connection: a fresh decoder per packet.
                let mut decoders = vec![decoder(decoder_protocol); n as usize];
                let start = Instant::now();
                for decoder in &mut decoders {
                    let packet = decoder.decode(&mut buf).expect("valid").expect("complete");
                    black_box(packet);
                }
                took += start.elapsed();
                left -= n;
            }
            took
        });
    });
    group.finish();

    let mut group = c.benchmark_group(format!("{group_name}/encode"));
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    let mut out = BytesMut::with_capacity(bytes.len() * 2);
    group.bench_function(id, |b| {
        b.iter(|| {
            out.clear();
            encode(black_box(packet), protocol, &mut out).expect("valid");
            black_box(out.len());
        });
    });
    group.finish();
}

fn publish_benches(c: &mut Criterion) {
    for protocol in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
            for payload_len in [64, 4_096] {
                let id = format!(
                    "{}/qos{}/{}B",
                    version_name(protocol),
                    qos.as_u8(),
                    payload_len
                );
                let packet = publish(protocol, qos, payload_len);
                bench_packet(c, "publish", &id, &packet, protocol, true);
            }
        }
    }
}

fn control_benches(c: &mut Criterion) {
    for protocol in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let name = version_name(protocol);
        bench_packet(c, "connect", name, &connect(protocol), protocol, false);
        bench_packet(c, "subscribe", name, &subscribe(protocol), protocol, true);
        let puback = Packet::PubAck(PubAck::new(4_242, ReasonCode::Success));
        bench_packet(c, "puback", name, &puback, protocol, true);
    }
}

/// One read buffer holding many small PUBLISHes, decoded until the decoder asks for more:
/// what the connection task does after a read during a burst.
fn burst_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish_burst/decode");
    group.throughput(Throughput::Elements(BURST_PACKETS as u64));
    for protocol in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let one = wire(&publish(protocol, QoS::AtMostOnce, 64), protocol);
        let mut burst = BytesMut::with_capacity(one.len() * BURST_PACKETS);
        for _ in 0..BURST_PACKETS {
            burst.extend_from_slice(&one);
        }
        let id = BenchmarkId::new(
            format!("{}/qos0/64B", version_name(protocol)),
            format!("{BURST_PACKETS}x{}B", one.len()),
        );
        group.bench_function(id, |b| {
            b.iter_batched(
                || (decoder(Some(protocol)), burst.clone()),
                |(mut decoder, mut buf)| {
                    let mut decoded = 0usize;
                    while let Some(packet) = decoder.decode(&mut buf).expect("valid") {
                        black_box(&packet);
                        decoded += 1;
                    }
                    assert_eq!(decoded, BURST_PACKETS);
                    buf
                },
                BatchSize::SmallInput,
            );
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
    targets = publish_benches, control_benches, burst_benches
}
criterion_main!(benches);
