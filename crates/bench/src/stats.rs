//! Counting: the live counters shared by a process's client tasks ([`Shared`]), the raw
//! mergeable result of one generator process ([`Report`]) and the aggregation of several
//! reports (children of one run) into one.
//!
//! Client tasks add to the counters once per read or write batch, not per message, and hand
//! latencies over in batches, so that counting does not become the generator's bottleneck.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latencies are recorded in nanoseconds, 3 significant digits, up to 10 minutes.
const HIST_MAX_NS: u64 = 600_000_000_000;

pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_NS, 3).expect("constant, valid histogram bounds")
}

/// Counters shared by all client tasks of one process.
#[derive(Debug)]
pub(crate) struct Shared {
    pub connected: AtomicU64,
    pub connect_failed: AtomicU64,
    /// Clients that finished connecting (and subscribing), successfully or not.
    pub settled: AtomicU64,
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub received: AtomicU64,
    pub received_in_window: AtomicU64,
    pub duplicates: AtomicU64,
    pub gaps: AtomicU64,
    /// Messages sent per publisher, indexed by global publisher index - 1.
    pub per_publisher: Vec<AtomicU64>,
    pub latency: Mutex<Latencies>,
    pub connect_latency: Mutex<Histogram<u64>>,
    pub errors: Mutex<BTreeMap<String, u64>>,
}

/// The whole-run latency histogram and the one of the current progress interval.
#[derive(Debug)]
pub(crate) struct Latencies {
    pub total: Histogram<u64>,
    pub interval: Histogram<u64>,
}

impl Shared {
    pub(crate) fn new(publishers: u64) -> Shared {
        Shared {
            connected: AtomicU64::new(0),
            connect_failed: AtomicU64::new(0),
            settled: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            received: AtomicU64::new(0),
            received_in_window: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            per_publisher: (0..publishers).map(|_| AtomicU64::new(0)).collect(),
            latency: Mutex::new(Latencies {
                total: new_histogram(),
                interval: new_histogram(),
            }),
            connect_latency: Mutex::new(new_histogram()),
            errors: Mutex::new(BTreeMap::new()),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Counts one error of `kind` (a short, stable description without addresses or ids).
    pub(crate) fn error(&self, kind: impl Into<String>) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        *errors.entry(kind.into()).or_insert(0) += 1;
    }

    /// Records a batch of latencies (nanoseconds) and empties it.
    pub(crate) fn record_latencies(&self, batch: &mut Vec<u64>) {
        if batch.is_empty() {
            return;
        }
        let mut latency = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        for &ns in batch.iter() {
            let ns = ns.max(1);
            latency.total.saturating_record(ns);
            latency.interval.saturating_record(ns);
        }
        batch.clear();
    }

    pub(crate) fn record_connect_latency(&self, ns: u64) {
        let mut hist = self
            .connect_latency
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        hist.saturating_record(ns.max(1));
    }

    /// p50 and p99 of the interval since the last call, in nanoseconds, and resets it.
    pub(crate) fn take_interval(&self) -> (u64, u64) {
        let mut latency = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let out = if latency.interval.is_empty() {
            (0, 0)
        } else {
            (
                latency.interval.value_at_quantile(0.5),
                latency.interval.value_at_quantile(0.99),
            )
        };
        latency.interval.reset();
        out
    }

    /// The cumulative counters for a progress line.
    pub(crate) fn progress(&self) -> Progress {
        Progress {
            connected: Shared::get(&self.connected),
            failed: Shared::get(&self.connect_failed),
            sent: Shared::get(&self.sent),
            received: Shared::get(&self.received),
            errors: self
                .errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .sum(),
            p50_ns: 0,
            p99_ns: 0,
        }
    }
}

/// One progress sample: cumulative counters plus the interval's latency percentiles.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Progress {
    pub connected: u64,
    pub failed: u64,
    pub sent: u64,
    pub received: u64,
    pub errors: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
}

/// A histogram in transferable form: (value, count) pairs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HistData(pub Vec<(u64, u64)>);

impl HistData {
    pub(crate) fn from_histogram(hist: &Histogram<u64>) -> HistData {
        HistData(
            hist.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
        )
    }

    pub(crate) fn to_histogram(&self) -> Histogram<u64> {
        let mut hist = new_histogram();
        for &(value, count) in &self.0 {
            let _ = hist.record_n(value.clamp(1, HIST_MAX_NS), count);
        }
        hist
    }
}

/// The raw result of one generator process; reports of several processes merge.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    pub connected: u64,
    pub connect_failed: u64,
    /// Seconds from the first connection attempt to the last client settled.
    pub connect_seconds: f64,
    pub connect_latency: HistData,
    /// Seconds of the publish (or hold) phase.
    pub window_seconds: f64,
    pub sent: u64,
    pub acked: u64,
    pub received: u64,
    pub received_in_window: u64,
    pub duplicates: u64,
    pub gaps: u64,
    /// Messages sent per publisher (global index - 1); summed across processes.
    pub per_publisher: Vec<u64>,
    pub latency: HistData,
    pub errors: BTreeMap<String, u64>,
    /// CPU seconds (user + system) used by the process.
    pub cpu_seconds: f64,
    /// Wall seconds of the whole run.
    pub wall_seconds: f64,
}

impl Report {
    /// Merges the reports of the processes of one run: counters add up, histograms merge,
    /// phase lengths take the longest.
    pub fn merge(reports: &[Report]) -> Report {
        let mut out = Report::default();
        let mut connect = new_histogram();
        let mut latency = new_histogram();
        for r in reports {
            out.connected += r.connected;
            out.connect_failed += r.connect_failed;
            out.connect_seconds = out.connect_seconds.max(r.connect_seconds);
            out.window_seconds = out.window_seconds.max(r.window_seconds);
            out.sent += r.sent;
            out.acked += r.acked;
            out.received += r.received;
            out.received_in_window += r.received_in_window;
            out.duplicates += r.duplicates;
            out.gaps += r.gaps;
            if out.per_publisher.len() < r.per_publisher.len() {
                out.per_publisher.resize(r.per_publisher.len(), 0);
            }
            for (total, &n) in out.per_publisher.iter_mut().zip(&r.per_publisher) {
                *total += n;
            }
            let _ = connect.add(r.connect_latency.to_histogram());
            let _ = latency.add(r.latency.to_histogram());
            for (kind, n) in &r.errors {
                *out.errors.entry(kind.clone()).or_insert(0) += n;
            }
            out.cpu_seconds += r.cpu_seconds;
            out.wall_seconds = out.wall_seconds.max(r.wall_seconds);
        }
        out.connect_latency = HistData::from_histogram(&connect);
        out.latency = HistData::from_histogram(&latency);
        out
    }
}

/// Whether topic name `topic` matches filter `filter` (`+` and `#` wildcards; a filter
/// starting with a wildcard does not match a `$` topic).
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for level in filter.split('/') {
        if level == "#" {
            return true;
        }
        match topic_levels.next() {
            Some(t) if level == "+" || level == t => {}
            _ => return false,
        }
    }
    topic_levels.next().is_none()
}

/// Deliveries the subscribers should have received: for each subscriber (shared
/// subscriptions: each group once) the messages sent to every topic its filter matches.
/// `topics[p]` is publisher p's topic, `sent[p]` what it sent.
pub fn expected_deliveries(topics: &[String], sent: &[u64], filters: &[String]) -> u64 {
    let mut per_topic: BTreeMap<&str, u64> = BTreeMap::new();
    for (topic, &n) in topics.iter().zip(sent) {
        *per_topic.entry(topic.as_str()).or_insert(0) += n;
    }
    let mut per_filter: BTreeMap<&str, u64> = BTreeMap::new();
    let mut groups: std::collections::BTreeSet<(&str, &str)> = Default::default();
    for filter in filters {
        if let Some(rest) = filter.strip_prefix("$share/")
            && let Some((group, real)) = rest.split_once('/')
        {
            if groups.insert((group, real)) {
                *per_filter.entry(real).or_insert(0) += 1;
            }
            continue;
        }
        *per_filter.entry(filter.as_str()).or_insert(0) += 1;
    }
    let mut expected = 0u64;
    for (filter, subscribers) in per_filter {
        let matched = if filter.contains(['+', '#']) {
            per_topic
                .iter()
                .filter(|(topic, _)| topic_matches(filter, topic))
                .map(|(_, n)| n)
                .sum()
        } else {
            per_topic.get(filter).copied().unwrap_or(0)
        };
        expected = expected.saturating_add(matched.saturating_mul(subscribers));
    }
    expected
}

/// Per-subscriber sequence tracking: counts duplicates and gaps per publisher.
#[derive(Debug, Default)]
pub(crate) struct SeqTracker {
    next: std::collections::HashMap<u32, u64>,
}

/// What one received sequence number was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeqEvent {
    InOrder,
    /// Arrived after `missing` skipped numbers (lost, or reordered).
    Gap(u64),
    /// At or below a number already seen.
    Duplicate,
}

impl SeqTracker {
    pub(crate) fn observe(&mut self, publisher: u32, seq: u64) -> SeqEvent {
        let next = self.next.entry(publisher).or_insert(0);
        if seq < *next {
            SeqEvent::Duplicate
        } else {
            let missing = seq - *next;
            *next = seq + 1;
            if missing == 0 {
                SeqEvent::InOrder
            } else {
                SeqEvent::Gap(missing)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: &[u64]) -> HistData {
        let mut h = new_histogram();
        for &v in values {
            h.record(v).unwrap();
        }
        HistData::from_histogram(&h)
    }

    #[test]
    fn merge_adds_counters_and_histograms() {
        let a = Report {
            connected: 2,
            sent: 100,
            received: 90,
            per_publisher: vec![50, 0],
            latency: hist(&[1_000, 2_000]),
            errors: BTreeMap::from([("io: reset".to_owned(), 1)]),
            window_seconds: 2.0,
            cpu_seconds: 0.5,
            ..Report::default()
        };
        let b = Report {
            connected: 3,
            sent: 10,
            received: 20,
            per_publisher: vec![0, 50, 7],
            latency: hist(&[3_000]),
            errors: BTreeMap::from([("io: reset".to_owned(), 2), ("connack: 0x87".to_owned(), 1)]),
            window_seconds: 2.1,
            cpu_seconds: 0.25,
            ..Report::default()
        };
        let m = Report::merge(&[a, b]);
        assert_eq!(m.connected, 5);
        assert_eq!(m.sent, 110);
        assert_eq!(m.received, 110);
        assert_eq!(m.per_publisher, vec![50, 50, 7]);
        assert_eq!(m.errors["io: reset"], 3);
        assert_eq!(m.errors["connack: 0x87"], 1);
        assert_eq!(m.window_seconds, 2.1);
        assert_eq!(m.cpu_seconds, 0.75);
        let h = m.latency.to_histogram();
        assert_eq!(h.len(), 3);
        assert!(h.equivalent(h.max(), 3_000));
        assert!(h.equivalent(h.min(), 1_000));
    }

    #[test]
    fn matching() {
        assert!(topic_matches("a/+/c", "a/b/c"));
        assert!(topic_matches("a/#", "a"));
        assert!(topic_matches("a/#", "a/b/c"));
        assert!(topic_matches("#", "a/b"));
        assert!(!topic_matches("#", "$SYS/x"));
        assert!(!topic_matches("a/+", "a/b/c"));
        assert!(!topic_matches("a/b", "a/b/c"));
        assert!(topic_matches("a/b", "a/b"));
    }

    #[test]
    fn expected_for_the_usual_layouts() {
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // 1:1 pairs.
        assert_eq!(
            expected_deliveries(&t(&["b/1", "b/2"]), &[10, 20], &t(&["b/1", "b/2"])),
            30
        );
        // fan-in 3:1.
        assert_eq!(
            expected_deliveries(&t(&["in/1", "in/2", "in/3"]), &[1, 2, 3], &t(&["in/+"])),
            6
        );
        // fan-out 1:3.
        assert_eq!(
            expected_deliveries(&t(&["out"]), &[5], &t(&["out", "out", "out"])),
            15
        );
        // a shared group of two counts once.
        assert_eq!(
            expected_deliveries(&t(&["s"]), &[5], &t(&["$share/g/s", "$share/g/s", "s"])),
            10
        );
        assert_eq!(expected_deliveries(&t(&["x"]), &[5], &t(&["y"])), 0);
    }

    #[test]
    fn sequences() {
        let mut s = SeqTracker::default();
        assert_eq!(s.observe(1, 0), SeqEvent::InOrder);
        assert_eq!(s.observe(1, 1), SeqEvent::InOrder);
        assert_eq!(s.observe(2, 0), SeqEvent::InOrder);
        assert_eq!(s.observe(1, 4), SeqEvent::Gap(2));
        assert_eq!(s.observe(1, 3), SeqEvent::Duplicate);
        assert_eq!(s.observe(1, 5), SeqEvent::InOrder);
    }
}
