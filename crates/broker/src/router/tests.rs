//! Retained messages for a new subscription, without sockets: messages published into a
//! broker's default vhost, then `retained_for` as a SUBSCRIBE calls it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferrymq_auth::{AuthConfig, Authenticator};
use ferrymq_codec::QoS;
use ferrymq_session::Message;

use crate::{Broker, BrokerConfig, Metrics};

fn broker() -> Arc<Broker> {
    Broker::new(
        BrokerConfig::default(),
        Authenticator::new(AuthConfig::default()).unwrap(),
    )
}

fn retained(topic: &str, qos: QoS, expires_at: Option<Instant>) -> Message {
    Message {
        topic: Arc::from(topic),
        payload: Bytes::from_static(b"state"),
        qos,
        retain: true,
        forwarded: None,
        expires_at,
        publisher: None,
        expires_on_arrival: false,
    }
}

#[test]
fn retained_for_builds_deliveries_and_removes_expired_messages() {
    let broker = broker();
    let vhost = broker.default_vhost().clone();
    let now = Instant::now();
    let later = now + Duration::from_secs(10);
    broker.publish(&vhost, retained("a/1", QoS::ExactlyOnce, None));
    broker.publish(&vhost, retained("a/2", QoS::AtMostOnce, None));
    broker.publish(&vhost, retained("a/3", QoS::AtLeastOnce, Some(later)));
    broker.publish(&vhost, retained("$SYS/a", QoS::AtLeastOnce, None));
    assert_eq!(vhost.retained().len(), 4);
    assert_eq!(Metrics::get(&broker.metrics.retained_messages), 4);

    let mut got = broker.retained_for(&vhost, "+/#", QoS::AtLeastOnce, Some(7), now);
    got.sort_by(|a, b| a.message.topic.cmp(&b.message.topic));
    let summary: Vec<(&str, QoS)> = got.iter().map(|d| (&*d.message.topic, d.qos)).collect();
    assert_eq!(
        summary,
        vec![
            ("a/1", QoS::AtLeastOnce),
            ("a/2", QoS::AtMostOnce),
            ("a/3", QoS::AtLeastOnce),
        ],
        "granted QoS caps the message's; `$SYS` is not matched by a leading wildcard"
    );
    assert!(got.iter().all(|d| d.retain && d.subscription_ids == [7]));

    // Past its expiry, `a/3` is neither delivered nor kept.
    let after = later + Duration::from_secs(1);
    let got = broker.retained_for(&vhost, "a/+", QoS::ExactlyOnce, None, after);
    let mut topics: Vec<&str> = got.iter().map(|d| &*d.message.topic).collect();
    topics.sort_unstable();
    assert_eq!(topics, ["a/1", "a/2"]);
    assert!(got.iter().all(|d| d.subscription_ids.is_empty()));
    assert!(vhost.retained().get("a/3").is_none());
    assert_eq!(vhost.retained().len(), 3);
    assert_eq!(Metrics::get(&broker.metrics.retained_messages), 3);
}

/// How long a SUBSCRIBE to `devices/#` over 100,000 retained topics keeps retained PUBLISHes
/// (writers of the retained store) waiting: a writer thread takes the write lock in a loop
/// and records its longest wait while the subscriber calls `retained_for`. A measurement, not
/// a test (no thresholds): run it in release,
/// `cargo test --release -p ferrymq-broker retained_lock_hold -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement: run with --release --ignored --nocapture"]
fn retained_lock_hold() {
    const DEVICES: usize = 10_000;
    const SENSORS: usize = 10;
    let broker = broker();
    let vhost = broker.default_vhost().clone();
    for device in 0..DEVICES {
        for sensor in 0..SENSORS {
            let topic = format!("devices/d{device:05}/sensor-{sensor}/state");
            broker.publish(&vhost, retained(&topic, QoS::AtLeastOnce, None));
        }
    }
    let now = Instant::now();
    for (filter, expected) in [
        ("devices/#", DEVICES * SENSORS),
        ("devices/+/sensor-3/state", DEVICES),
    ] {
        let stop = AtomicBool::new(false);
        let (mut waits, mut calls) = std::thread::scope(|scope| {
            let writer = scope.spawn(|| {
                let mut waits = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let start = Instant::now();
                    drop(vhost.retained_mut());
                    waits.push(start.elapsed());
                    std::thread::sleep(Duration::from_micros(200));
                }
                waits
            });
            let mut calls = Vec::new();
            for _ in 0..20 {
                let start = Instant::now();
                let got = broker.retained_for(&vhost, filter, QoS::AtLeastOnce, None, now);
                calls.push(start.elapsed());
                assert_eq!(got.len(), expected);
                drop(got);
                std::thread::sleep(Duration::from_millis(5));
            }
            stop.store(true, Ordering::Relaxed);
            (writer.join().unwrap(), calls)
        });
        waits.sort_unstable();
        calls.sort_unstable();
        let longest: Vec<Duration> = waits.iter().rev().take(5).copied().collect();
        eprintln!(
            "{filter} ({expected} topics): retained_for median {:?}, max {:?}; writer waits: \
             {} samples, median {:?}, 5 longest {:?}",
            calls[calls.len() / 2],
            calls[calls.len() - 1],
            waits.len(),
            waits[waits.len() / 2],
            longest,
        );
    }
}
