//! Topic index micro-benchmarks: `SubscriptionTrie` with 1,000,000 subscriptions and
//! `TopicTree` with 100,000 retained topics.
//!
//! The subscription layout imitates an IoT deployment (keys and values shaped like the
//! broker's `RouteKey` / `Route`: a client id or share group behind an `Arc<str>`, and a
//! 24-byte route):
//!
//! | filters | subscriptions | who |
//! |---|---|---|
//! | `devices/{id}/cmd` | 400,000 | each device, its command topic |
//! | `devices/{id}/+/telemetry` | 400,000 | one application client per 20 devices |
//! | `site/{n}/#` | 100,000 | 1,000 sites x 100 operators each (100 keys per filter) |
//! | `tenants/t{t}/events/e{e}` | 89,990 | 8,999 tenant services x 10 event types |
//! | `broadcast/firmware` | 10,000 | 10,000 devices on one filter |
//! | `$share/ingest-{g}/devices/+/+/telemetry` | 10 | 10 ingestion groups (key = group) |
//!
//! The trie is built once, outside the timed loops, by the first `trie_1m` benchmark that
//! runs (about 2 s); its build time and the process's RSS growth are printed to stderr
//! (`trie memory: ...`). The insert / remove benchmarks put the trie back as they found it.
//!
//! The retained tree is built before its benchmarks, and its memory printed
//! (`retained tree memory: ...`): run `-- retained_100k` alone for that figure, since the
//! 1M trie's freed memory would be reused.
//!
//! Run: `cargo bench -p ferrymq-topic` (about a minute); a subset:
//! `cargo bench -p ferrymq-topic -- trie_1m/match`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ferrymq_topic::{SubscriptionTrie, TopicTree};

/// Shaped like the broker's `RouteKey`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Client(Arc<str>),
    Shared(Arc<str>),
}

/// Shaped like the broker's `Route` (a session handle, options, subscription identifier):
/// 24 bytes.
#[derive(Debug, Clone, Copy)]
struct Route {
    session: u64,
    qos: u8,
    identifier: Option<u32>,
}

const DEVICES: usize = 400_000;
const DEVICES_PER_APP: usize = 20;
const SITES: usize = 1_000;
const OPERATORS_PER_SITE: usize = 100;
const TENANTS: usize = 8_999;
const EVENTS_PER_TENANT: usize = 10;
const BROADCAST_SUBSCRIBERS: usize = 10_000;
const SHARE_GROUPS: usize = 10;

/// Every `(filter, key)` of the layout in the module comment. Client ids are created once
/// per client and cloned into each of its subscriptions, as the broker shares the session's.
fn layout() -> Vec<(String, Key)> {
    let client = |id: String| Key::Client(Arc::from(id));
    let devices: Vec<Key> = (0..DEVICES).map(|i| client(format!("d{i:06}"))).collect();
    let apps: Vec<Key> = (0..DEVICES / DEVICES_PER_APP)
        .map(|i| client(format!("app-{i}")))
        .collect();
    let mut subs = Vec::with_capacity(1_000_000);
    for (i, device) in devices.iter().enumerate() {
        subs.push((format!("devices/d{i:06}/cmd"), device.clone()));
        let app = &apps[i / DEVICES_PER_APP];
        subs.push((format!("devices/d{i:06}/+/telemetry"), app.clone()));
    }
    for site in 0..SITES {
        for operator in 0..OPERATORS_PER_SITE {
            subs.push((
                format!("site/{site}/#"),
                client(format!("op-{site}-{operator}")),
            ));
        }
    }
    for tenant in 0..TENANTS {
        let service = client(format!("tenant-svc-{tenant}"));
        for event in 0..EVENTS_PER_TENANT {
            subs.push((
                format!("tenants/t{tenant}/events/e{event}"),
                service.clone(),
            ));
        }
    }
    for device in devices.iter().take(BROADCAST_SUBSCRIBERS) {
        subs.push(("broadcast/firmware".to_owned(), device.clone()));
    }
    for group in 0..SHARE_GROUPS {
        // The broker strips `$share/{group}/` and keys the entry by the group.
        subs.push((
            "devices/+/+/telemetry".to_owned(),
            Key::Shared(Arc::from(format!("ingest-{group}"))),
        ));
    }
    assert_eq!(subs.len(), 1_000_000);
    subs
}

fn route(n: usize) -> Route {
    Route {
        session: n as u64,
        qos: (n % 2) as u8,
        identifier: None,
    }
}

/// Resident set size of this process in bytes (Linux), `None` elsewhere.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn build_trie() -> SubscriptionTrie<Key, Route> {
    let subs = layout();
    let before = rss_bytes();
    let start = Instant::now();
    let mut trie = SubscriptionTrie::new();
    for (n, (filter, key)) in subs.iter().enumerate() {
        trie.insert(filter, key.clone(), route(n));
    }
    let took = start.elapsed();
    let after = rss_bytes();
    assert_eq!(trie.len(), 1_000_000);
    match (before, after) {
        (Some(before), Some(after)) => {
            let grown = after.saturating_sub(before);
            eprintln!(
                "trie memory: {} subscriptions built in {:.2} s; RSS +{:.1} MiB = {} bytes per \
                 subscription (client ids and filter strings excluded)",
                trie.len(),
                took.as_secs_f64(),
                grown as f64 / (1024.0 * 1024.0),
                grown / trie.len() as u64,
            );
        }
        _ => eprintln!(
            "trie: {} subscriptions built in {:.2} s (no /proc: RSS not measured)",
            trie.len(),
            took.as_secs_f64()
        ),
    }
    trie
}

fn count_matches(trie: &SubscriptionTrie<Key, Route>, topic: &str) -> usize {
    let mut matched = 0usize;
    trie.for_each_match(topic, |key, route| {
        // What the broker's callback reads: who, and with which options.
        black_box((key, route.session, route.qos, route.identifier));
        matched += 1;
    });
    matched
}

fn trie_benches(c: &mut Criterion) {
    // Built by the first benchmark that runs, so that `cargo bench -- retained` does not
    // pay for it.
    let mut trie: Option<SubscriptionTrie<Key, Route>> = None;

    let topics: [(&str, &str, usize); 5] = [
        ("device_cmd", "devices/d123456/cmd", 1),
        (
            "telemetry",
            "devices/d123456/temperature/telemetry",
            1 + SHARE_GROUPS,
        ),
        (
            "site",
            "site/420/building-7/floor-3/temp",
            OPERATORS_PER_SITE,
        ),
        ("broadcast", "broadcast/firmware", BROADCAST_SUBSCRIBERS),
        ("no_match", "nothing/here/at/all", 0),
    ];
    let mut group = c.benchmark_group("trie_1m/match");
    for (name, topic, expected) in topics {
        let id = BenchmarkId::new(name, format!("{expected}_matches"));
        group.bench_function(id, |b| {
            let trie = trie.get_or_insert_with(build_trie);
            assert_eq!(count_matches(trie, topic), expected, "{topic}");
            b.iter(|| count_matches(trie, black_box(topic)));
        });
    }
    group.finish();

    let mut group = c.benchmark_group("trie_1m");
    // A new device subscribes: two new nodes under the 400,000-wide `devices` level.
    let new_device = |i: u64| {
        (
            format!("devices/new{i}/cmd"),
            Key::Client(Arc::from(format!("new{i}"))),
        )
    };
    // An operator joins a site: one more key on a filter that already has 100.
    let new_operator = |i: u64| {
        (
            "site/420/#".to_owned(),
            Key::Client(Arc::from(format!("op-new-{i}"))),
        )
    };
    type Make = dyn Fn(u64) -> (String, Key);
    let cases: [(&str, &Make); 2] = [
        ("new_filter", &new_device),
        ("existing_filter", &new_operator),
    ];
    for (name, make) in cases {
        group.bench_function(BenchmarkId::new("insert", name), |b| {
            let trie = trie.get_or_insert_with(build_trie);
            b.iter_custom(|iters| {
                let subs: Vec<_> = (0..iters).map(make).collect();
                let start = Instant::now();
                for (filter, key) in &subs {
                    trie.insert(filter, key.clone(), route(0));
                }
                let took = start.elapsed();
                for (filter, key) in &subs {
                    trie.remove(filter, key);
                }
                took
            });
        });
        group.bench_function(BenchmarkId::new("remove", name), |b| {
            let trie = trie.get_or_insert_with(build_trie);
            b.iter_custom(|iters| {
                let subs: Vec<_> = (0..iters).map(make).collect();
                for (filter, key) in &subs {
                    trie.insert(filter, key.clone(), route(0));
                }
                let start = Instant::now();
                for (filter, key) in &subs {
                    black_box(trie.remove(filter, key));
                }
                start.elapsed()
            });
        });
    }
    group.finish();
    if let Some(trie) = &trie {
        assert_eq!(trie.len(), 1_000_000, "insert/remove left the trie changed");
    }
}

const RETAINED_DEVICES: usize = 10_000;
const SENSORS: usize = 10;

/// Shaped like the broker's retained `Message` behind its `Arc`: 256 bytes, one allocation
/// per retained topic, so that cloning the `Arc`s (what the broker does under the retained
/// store's lock) touches memory as the broker's does.
#[derive(Debug)]
struct Retained {
    id: u64,
    _rest: [u64; 31],
}

fn retained_topic(device: usize, sensor: usize) -> String {
    format!("devices/d{device:05}/sensor-{sensor}/state")
}

/// 100,000 retained topics `devices/d{i}/sensor-{s}/state`; prints the tree's memory (RSS
/// growth while inserting, the messages excluded: they are allocated first).
fn build_retained() -> TopicTree<Arc<Retained>> {
    let messages: Vec<(String, Arc<Retained>)> = (0..RETAINED_DEVICES)
        .flat_map(|device| (0..SENSORS).map(move |sensor| (device, sensor)))
        .map(|(device, sensor)| {
            let id = (device * SENSORS + sensor) as u64;
            let message = Arc::new(Retained {
                id,
                _rest: [id; 31],
            });
            (retained_topic(device, sensor), message)
        })
        .collect();
    let before = rss_bytes();
    let start = Instant::now();
    let mut tree = TopicTree::new();
    for (topic, message) in &messages {
        tree.insert(topic, message.clone());
    }
    let took = start.elapsed();
    let after = rss_bytes();
    assert_eq!(tree.len(), RETAINED_DEVICES * SENSORS);
    if let (Some(before), Some(after)) = (before, after) {
        let grown = after.saturating_sub(before);
        eprintln!(
            "retained tree memory: {} topics inserted in {:.1} ms; RSS +{:.1} MiB = {} bytes \
             per retained topic (messages and topic strings excluded)",
            tree.len(),
            took.as_secs_f64() * 1e3,
            grown as f64 / (1024.0 * 1024.0),
            grown / tree.len() as u64,
        );
    }
    tree
}

/// Counts the values `filter` selects, reading each as a subscriber's callback would.
fn lookup(tree: &TopicTree<Arc<Retained>>, filter: &str) -> usize {
    let mut found = 0usize;
    tree.for_each_matching(filter, |value| {
        black_box(value);
        found += 1;
    });
    found
}

/// What the broker does under the retained store's read lock: clone the matching `Arc`s.
fn collect(tree: &TopicTree<Arc<Retained>>, filter: &str, out: &mut Vec<Arc<Retained>>) {
    tree.for_each_matching(filter, |value| out.push(value.clone()));
}

fn retained_benches(c: &mut Criterion) {
    let mut tree = build_retained();

    let filters: [(&str, &str, usize); 4] = [
        ("exact", "devices/d04242/sensor-3/state", 1),
        ("one_device", "devices/d04242/+/state", SENSORS),
        (
            "one_sensor_all_devices",
            "devices/+/sensor-3/state",
            RETAINED_DEVICES,
        ),
        ("everything", "devices/#", RETAINED_DEVICES * SENSORS),
    ];
    let mut group = c.benchmark_group("retained_100k/lookup");
    // The whole-tree lookups took 10-30 ms each: criterion's minimum sample count.
    group.sample_size(10);
    for (name, filter, expected) in filters {
        assert_eq!(lookup(&tree, filter), expected, "{filter}");
        group.throughput(Throughput::Elements(expected as u64));
        let id = BenchmarkId::new(name, format!("{expected}_topics"));
        group.bench_function(id, |b| b.iter(|| lookup(&tree, black_box(filter))));
    }
    group.finish();

    let mut group = c.benchmark_group("retained_100k/collect");
    group.sample_size(10);
    for (name, filter, expected) in &filters[2..] {
        group.throughput(Throughput::Elements(*expected as u64));
        let id = BenchmarkId::new(*name, format!("{expected}_topics"));
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let mut took = Duration::ZERO;
                for _ in 0..iters {
                    let mut out = Vec::new();
                    let start = Instant::now();
                    collect(&tree, black_box(filter), &mut out);
                    took += start.elapsed();
                    assert_eq!(out.len(), *expected);
                    black_box(out.first().map(|m| m.id));
                }
                took
            });
        });
    }
    group.finish();

    // A new device's first retained topic (three new nodes), a replaced retained message,
    // and removals; the tree is put back as it was found.
    let mut group = c.benchmark_group("retained_100k");
    let message = Arc::new(Retained {
        id: 0,
        _rest: [0; 31],
    });
    let new_topics = |iters: u64| -> Vec<String> {
        (0..iters)
            .map(|i| format!("devices/new{i}/sensor-0/state"))
            .collect()
    };
    group.bench_function(BenchmarkId::new("insert", "new_topic"), |b| {
        b.iter_custom(|iters| {
            let topics = new_topics(iters);
            let start = Instant::now();
            for topic in &topics {
                tree.insert(topic, message.clone());
            }
            let took = start.elapsed();
            for topic in &topics {
                tree.remove(topic);
            }
            took
        });
    });
    group.bench_function(BenchmarkId::new("remove", "new_topic"), |b| {
        b.iter_custom(|iters| {
            let topics = new_topics(iters);
            for topic in &topics {
                tree.insert(topic, message.clone());
            }
            let start = Instant::now();
            for topic in &topics {
                black_box(tree.remove(topic));
            }
            start.elapsed()
        });
    });
    group.bench_function(BenchmarkId::new("insert", "replace"), |b| {
        let topics: Vec<String> = (0..1000)
            .map(|i| retained_topic(i * 7 % RETAINED_DEVICES, i % SENSORS))
            .collect();
        let mut next = 0usize;
        b.iter(|| {
            next = (next + 1) % topics.len();
            black_box(tree.insert(&topics[next], message.clone()));
        });
    });
    group.finish();
    assert_eq!(tree.len(), RETAINED_DEVICES * SENSORS);
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = trie_benches, retained_benches
}
criterion_main!(benches);
