//! `ferrymq bench pubsub` against an in-process FerryMQ broker (testkit): a tiny run must
//! deliver every message exactly once, at QoS 0 (throttled, so nothing may be dropped),
//! QoS 1 and QoS 2, over MQTT 3.1.1 and 5.

mod common;

use ferrymq_bench::Summary;
use ferrymq_testkit::TestBroker;

use common::run_bench;

async fn run(broker: &TestBroker, extra: &[&str]) -> Summary {
    let port = broker.addr().port().to_string();
    let mut argv = vec![
        "bench",
        "pubsub",
        "--port",
        &port,
        "-u",
        "guest",
        "-P",
        "guest",
        "--pubs",
        "2",
        "--subs",
        "2",
        "--duration",
        "1s",
        "--drain-quiet",
        "200ms",
        "--quiet",
    ];
    argv.extend_from_slice(extra);
    run_bench(&argv).await
}

fn assert_lossless(summary: &Summary) {
    assert!(summary.errors.is_empty(), "errors: {:?}", summary.errors);
    assert_eq!(summary.connected, 4);
    assert!(summary.sent > 0);
    assert_eq!(summary.lost, 0, "{}", summary.text());
    assert_eq!(summary.duplicates, 0);
    assert_eq!(summary.gaps, 0);
    assert!(!summary.failed(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_in_qos0_throttled_delivers_every_message_to_every_subscriber() {
    let broker = TestBroker::start().await;
    // Two publishers on in/1, in/2; two subscribers on in/+: each gets both streams.
    let summary = run(&broker, &["-t", "in/%i", "-f", "in/+", "--rate", "200"]).await;
    assert_lossless(&summary);
    assert_eq!(summary.expected, Some(2 * summary.sent));
    assert_eq!(summary.received, 2 * summary.sent);
    assert!(summary.latency_us.count == summary.received);
    // Throttled at 200/s for 1 s: about 200 each (timer granularity allows a little slack).
    assert!((300..=500).contains(&summary.sent), "sent {}", summary.sent);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_to_one_qos1_unthrottled_v5_is_lossless() {
    // Unthrottled publishers outrun the subscribers; with the default 1,000-message queues the
    // broker refuses QoS 1 messages (PUBACK 0x97, see docs/PERFORMANCE.md), which this
    // generator test is not about.
    let broker = TestBroker::builder()
        .limits(|l| {
            l.max_queued_messages = 1_000_000;
            l.max_queued_bytes = 1 << 30;
        })
        .start()
        .await;
    let summary = run(&broker, &["-q", "1", "--mqtt-version", "5"]).await;
    assert_lossless(&summary);
    assert_eq!(summary.expected, Some(summary.sent));
    assert_eq!(summary.acked, summary.sent);
    assert_eq!(summary.received, summary.sent);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_qos2_is_exactly_once() {
    let broker = TestBroker::start().await;
    let summary = run(&broker, &["-q", "2", "-t", "out", "--rate", "500"]).await;
    assert_lossless(&summary);
    assert_eq!(summary.acked, summary.sent);
    // Both publishers publish to "out"; both subscribers get everything.
    assert_eq!(summary.received, 2 * summary.sent);
    broker.shutdown().await;
}
