//! The final summary of a run: computed from the merged [`Report`] and the options, printed
//! for people or as JSON (`--json`), and the exit status (loss, errors).

use std::collections::BTreeMap;
use std::fmt::Write;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::args::{BenchArgs, Scenario};
use crate::stats::{Report, expected_deliveries};
use crate::template::Template;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    fn of(hist: &Histogram<u64>) -> Percentiles {
        if hist.is_empty() {
            return Percentiles::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Percentiles {
            count: hist.len(),
            p50: us(hist.value_at_quantile(0.5)),
            p90: us(hist.value_at_quantile(0.9)),
            p99: us(hist.value_at_quantile(0.99)),
            p999: us(hist.value_at_quantile(0.999)),
            max: us(hist.max()),
            mean: hist.mean() / 1000.0,
        }
    }
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub scenario: String,
    pub transport: String,
    pub mqtt_version: String,
    pub qos: u8,
    pub payload_bytes: usize,
    pub publishers: u64,
    pub subscribers: u64,
    pub connections: u64,
    pub processes: u32,
    /// Messages per second per publisher; 0: unthrottled.
    pub rate_per_publisher: f64,
    pub duration_seconds: f64,

    pub connected: u64,
    pub connect_failed: u64,
    pub connect_seconds: f64,
    /// Connections per second over the connect phase.
    pub connect_rate: f64,
    pub connect_latency_us: Percentiles,

    pub sent: u64,
    /// QoS 1/2 publishes completed (PUBACK / PUBCOMP).
    pub acked: u64,
    pub received: u64,
    /// Deliveries the subscribers should have seen (pubsub only).
    pub expected: Option<u64>,
    /// pubsub: expected minus unique deliveries; sub: sequence gaps.
    pub lost: u64,
    pub duplicates: u64,
    pub gaps: u64,
    /// Publishes per second during the publish phase.
    pub send_rate: f64,
    /// Deliveries per second received during the publish phase.
    pub receive_rate: f64,
    pub latency_us: Percentiles,
    pub errors: BTreeMap<String, u64>,

    pub generator_cpu_seconds: f64,
    pub wall_seconds: f64,
}

impl Summary {
    /// Computes the summary of a run from its (merged) report.
    pub fn new(args: &BenchArgs, report: &Report) -> Summary {
        let counts = args.counts();
        let window = report.window_seconds.max(1e-9);
        let expected = (args.scenario == Scenario::Pubsub).then(|| expected_for(args, report));
        let unique = report.received.saturating_sub(report.duplicates);
        let lost = match expected {
            Some(expected) => expected.saturating_sub(unique),
            None => report.gaps,
        };
        Summary {
            scenario: args.scenario.name().to_owned(),
            transport: args.transport.name().to_owned(),
            mqtt_version: args.mqtt_version.name().to_owned(),
            qos: args.qos,
            payload_bytes: args.size,
            publishers: counts.pubs,
            subscribers: counts.subs,
            connections: counts.total(),
            processes: args.processes,
            rate_per_publisher: args.rate,
            duration_seconds: report.window_seconds,
            connected: report.connected,
            connect_failed: report.connect_failed,
            connect_seconds: report.connect_seconds,
            connect_rate: report.connected as f64 / report.connect_seconds.max(1e-9),
            connect_latency_us: Percentiles::of(&report.connect_latency.to_histogram()),
            sent: report.sent,
            acked: report.acked,
            received: report.received,
            expected,
            lost,
            duplicates: report.duplicates,
            gaps: report.gaps,
            send_rate: report.sent as f64 / window,
            receive_rate: report.received_in_window as f64 / window,
            latency_us: Percentiles::of(&report.latency.to_histogram()),
            errors: report.errors.clone(),
            generator_cpu_seconds: report.cpu_seconds,
            wall_seconds: report.wall_seconds,
        }
    }

    /// Whether the run failed: loss (unless allowed) or any error.
    pub fn failed(&self, allow_loss: bool) -> bool {
        (self.lost > 0 && !allow_loss) || !self.errors.is_empty()
    }

    /// The human-readable summary.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "ferrymq bench {}: {} publishers, {} subscribers, {} connections; {}, MQTT {}, QoS {}, {} B payload{}, {:.1} s, {} process{}",
            self.scenario,
            self.publishers,
            self.subscribers,
            self.connections,
            self.transport,
            self.mqtt_version,
            self.qos,
            self.payload_bytes,
            if self.rate_per_publisher > 0.0 {
                format!(", {} msg/s per publisher", self.rate_per_publisher)
            } else {
                String::new()
            },
            self.duration_seconds,
            self.processes,
            if self.processes == 1 { "" } else { "es" },
        );
        let c = &self.connect_latency_us;
        let _ = writeln!(
            out,
            "connections  {} connected, {} failed in {:.2} s ({:.0}/s); CONNACK after p50 {}  p99 {}  max {}",
            self.connected,
            self.connect_failed,
            self.connect_seconds,
            self.connect_rate,
            fmt_us(c.p50),
            fmt_us(c.p99),
            fmt_us(c.max),
        );
        if self.publishers + self.subscribers > 0 {
            let _ = writeln!(
                out,
                "messages     sent {} ({:.0}/s), acknowledged {}, received {} ({:.0}/s in the window)",
                self.sent, self.send_rate, self.acked, self.received, self.receive_rate,
            );
            let expected = self.expected.map_or_else(
                || "(sequence gaps)".to_owned(),
                |e| format!("of {e} expected"),
            );
            let _ = writeln!(
                out,
                "loss         {} lost {expected}, {} duplicates, {} gaps",
                self.lost, self.duplicates, self.gaps
            );
            let l = &self.latency_us;
            let _ = writeln!(
                out,
                "latency      p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  ({} samples)",
                fmt_us(l.p50),
                fmt_us(l.p90),
                fmt_us(l.p99),
                fmt_us(l.p999),
                fmt_us(l.max),
                l.count
            );
        }
        if self.errors.is_empty() {
            let _ = writeln!(out, "errors       none");
        } else {
            for (i, (kind, n)) in self.errors.iter().enumerate() {
                let label = if i == 0 { "errors" } else { "" };
                let _ = writeln!(out, "{label:<12} {n} x {kind}");
            }
        }
        let _ = writeln!(
            out,
            "generator    {:.2} CPU s over {:.1} s wall ({:.0}% of one core)",
            self.generator_cpu_seconds,
            self.wall_seconds,
            100.0 * self.generator_cpu_seconds / self.wall_seconds.max(1e-9),
        );
        out
    }
}

fn expected_for(args: &BenchArgs, report: &Report) -> u64 {
    let counts = args.counts();
    let (Ok(topic), Ok(filter)) = (
        Template::parse(&args.topic),
        Template::parse(args.filter_template()),
    ) else {
        return 0;
    };
    let topics: Vec<String> = (1..=counts.pubs).map(|i| topic.expand(i, "pub")).collect();
    let filters: Vec<String> = (1..=counts.subs).map(|i| filter.expand(i, "sub")).collect();
    let mut sent = report.per_publisher.clone();
    sent.resize(topics.len(), 0);
    expected_deliveries(&topics, &sent, &filters)
}

/// `850µs`, `1.25ms`, `2.0s`.
pub(crate) fn fmt_us(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0}µs")
    } else if us < 1_000_000.0 {
        format!("{:.2}ms", us / 1000.0)
    } else {
        format!("{:.2}s", us / 1_000_000.0)
    }
}

pub(crate) fn fmt_ns(ns: u64) -> String {
    fmt_us(ns as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn loss_is_expected_minus_unique() {
        let args = BenchArgs::try_parse_from([
            "bench", "pubsub", "--pubs", "2", "--subs", "1", "-t", "in/%i", "-f", "in/+",
        ])
        .unwrap();
        let report = Report {
            window_seconds: 2.0,
            sent: 30,
            received: 29,
            received_in_window: 20,
            duplicates: 1,
            per_publisher: vec![10, 20],
            ..Report::default()
        };
        let s = Summary::new(&args, &report);
        assert_eq!(s.expected, Some(30));
        assert_eq!(s.lost, 2);
        assert_eq!(s.receive_rate, 10.0);
        assert!(s.failed(false));
        assert!(!s.failed(true));
        assert!(s.text().contains("2 lost of 30 expected"));
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"lost\":2"));
    }

    #[test]
    fn formats_durations() {
        assert_eq!(fmt_us(850.0), "850µs");
        assert_eq!(fmt_us(1250.0), "1.25ms");
        assert_eq!(fmt_ns(2_000_000_000), "2.00s");
    }
}
