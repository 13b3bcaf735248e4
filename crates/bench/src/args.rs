//! The options of `ferrymq bench`, as clap arguments. Also (de)serialisable: the parent
//! process hands them to its child generator processes as JSON.
//!
//! This module owns option parsing and validation only; nothing here touches the network.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::template::Template;

/// Load generator for MQTT brokers: FerryMQ, Mosquitto, NATS, anything that speaks MQTT.
///
/// Opens the clients of a scenario (subscribers first, then publishers), waits until all are
/// connected, runs the publish phase for --duration, drains, and prints a summary: throughput,
/// HDR latency percentiles (from a timestamp in each payload), loss, duplicates, errors by
/// kind and the generator's own CPU time. Exits 1 on loss (unless --allow-loss) or on errors.
///
/// Topic, filter and client id templates take `%i` (the client's index, from 1) and `%r`
/// (its role: pub, sub or conn); `%%` is a literal `%`.
///
/// Examples:
///   ferrymq bench conn -c 10000 --ramp 2000 -d 30s
///   ferrymq bench pubsub --pubs 100 --subs 100 -t 'bench/%i' -q 1 -d 10s
///   ferrymq bench pubsub --pubs 100 --subs 1 -t 'in/%i' -f 'in/+'
///   ferrymq bench pubsub --transport ws --port 15675 --ws-path /ws --pubs 1 --subs 100 -t out
#[derive(Debug, Clone, Parser, Serialize, Deserialize)]
#[command(verbatim_doc_comment)]
pub struct BenchArgs {
    /// What to run: conn (open and hold connections), pub (publishers only), sub
    /// (subscribers only), pubsub (publishers and subscribers, with loss accounting).
    #[arg(value_enum)]
    pub scenario: Scenario,

    /// Broker host name or IP address.
    #[arg(long, short = 'H', default_value = "127.0.0.1")]
    pub host: String,

    /// Broker port [default: 1883 tcp, 8883 tls, 15675 ws, 15676 wss].
    #[arg(long, short = 'p')]
    pub port: Option<u16>,

    /// Transport: tcp, tls, ws (WebSocket) or wss (WebSocket over TLS).
    #[arg(long, value_enum, default_value_t = Transport::Tcp)]
    pub transport: Transport,

    /// HTTP path of the WebSocket endpoint (FerryMQ serves /ws and /mqtt; Mosquitto any;
    /// NATS /mqtt).
    #[arg(long, default_value = "/mqtt", value_name = "PATH")]
    pub ws_path: String,

    /// TLS: accept any server certificate (self-signed test certificates).
    #[arg(long)]
    pub insecure: bool,

    /// TLS: PEM file with the CA certificates to trust (without --insecure).
    #[arg(long, value_name = "FILE")]
    pub cafile: Option<PathBuf>,

    /// MQTT protocol version: 3.1.1 (also "4") or 5.
    #[arg(long = "mqtt-version", value_enum, default_value_t = MqttVersion::V311, value_name = "VERSION")]
    pub mqtt_version: MqttVersion,

    /// Username sent in CONNECT.
    #[arg(long, short = 'u')]
    pub username: Option<String>,

    /// Password sent in CONNECT.
    #[arg(long, short = 'P')]
    pub password: Option<String>,

    /// Number of clients for conn, pub and sub.
    #[arg(long, short = 'c', default_value_t = 1)]
    pub count: u64,

    /// Number of publishers (pubsub).
    #[arg(long, default_value_t = 1)]
    pub pubs: u64,

    /// Number of subscribers (pubsub).
    #[arg(long, default_value_t = 1)]
    pub subs: u64,

    /// Topic template of the publishers, e.g. `bench/%i` (1:1 with the same filter), `in/%i`
    /// (fan-in with filter `in/+`), `out` (fan-out).
    #[arg(long, short = 't', default_value = "bench/%i")]
    pub topic: String,

    /// Filter template of the subscribers [default: the topic template].
    #[arg(long, short = 'f')]
    pub filter: Option<String>,

    /// Client id template.
    #[arg(long, default_value = "bench-%r-%i")]
    pub client_id: String,

    /// QoS of publishes and subscriptions: 0, 1 or 2.
    #[arg(long, short = 'q', default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,

    /// Payload size in bytes (at least 20: timestamp, publisher id and sequence number).
    #[arg(long, short = 's', default_value_t = 64)]
    pub size: usize,

    /// Messages per second per publisher; 0 publishes as fast as the broker takes them.
    #[arg(long, short = 'r', default_value_t = 0.0)]
    pub rate: f64,

    /// Length of the publish phase (conn: how long to hold the connections), e.g. 10s,
    /// 500ms, 2m; a plain number is seconds.
    #[arg(long, short = 'd', default_value = "10s", value_parser = parse_duration)]
    pub duration: f64,

    /// New connections per second (the whole run, all processes); 0: as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    pub ramp: f64,

    /// Connection attempts in flight at once (the whole run, all processes).
    #[arg(long, default_value_t = 100)]
    pub connect_concurrency: u64,

    /// Give up on a connection (TCP, TLS, WebSocket and CONNACK) after this long.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub connect_timeout: f64,

    /// Unacknowledged QoS 1/2 publishes per publisher (capped by the broker's v5 Receive
    /// Maximum).
    #[arg(long, default_value_t = 64)]
    pub inflight: u16,

    /// Keep-alive in seconds sent in CONNECT; a PINGREQ goes out when nothing else did.
    #[arg(long, default_value_t = 60)]
    pub keepalive: u16,

    /// After the publish phase: subscribers stop once nothing arrived for this long.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub drain_quiet: f64,

    /// After the publish phase: stop waiting for acknowledgements and messages after this long.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub drain_timeout: f64,

    /// Generator processes; each opens a slice of the clients (a process may open only so
    /// many files). The parent aggregates their results.
    #[arg(long, default_value_t = 1)]
    pub processes: u32,

    /// Worker threads of the generator (default: one per core). `--threads 1` suits
    /// latency runs at low rates: the generator then takes fewer of the cores the broker
    /// runs on, and its workers do not wake each other for every message.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,

    /// Bind client sockets to this many source addresses 127.0.0.2, 127.0.0.3, … (loopback
    /// targets only; passes the ~28k ephemeral ports per address). Default: 64 for a
    /// loopback target, none otherwise; 0 disables.
    #[arg(long, value_name = "N")]
    pub source_ips: Option<u32>,

    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,

    /// Exit 0 even if messages were lost (meaningful for QoS 0 only).
    #[arg(long)]
    pub allow_loss: bool,

    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,

    /// Write this file (containing the number of connected clients) once every client is
    /// connected and subscribed, e.g. for a script that then measures the broker's memory.
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,

    /// Internal: this process is generator K of N, driven by a parent over stdin/stdout.
    #[arg(long, hide = true, value_name = "K/N")]
    pub child: Option<String>,
}

/// The scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Open --count connections (at --ramp per second) and hold them for --duration.
    Conn,
    /// --count publishers.
    Pub,
    /// --count subscribers.
    Sub,
    /// --pubs publishers and --subs subscribers.
    Pubsub,
}

/// The transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Tls,
    Ws,
    Wss,
}

/// The MQTT versions a generator client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum MqttVersion {
    #[value(name = "3.1.1", alias = "4", alias = "311")]
    V311,
    #[value(name = "5", alias = "5.0")]
    V5,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Conn => "conn",
            Scenario::Pub => "pub",
            Scenario::Sub => "sub",
            Scenario::Pubsub => "pubsub",
        }
    }
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Transport::Tcp => 1883,
            Transport::Tls => 8883,
            Transport::Ws => 15675,
            Transport::Wss => 15676,
        }
    }

    pub fn is_tls(self) -> bool {
        matches!(self, Transport::Tls | Transport::Wss)
    }

    pub fn is_ws(self) -> bool {
        matches!(self, Transport::Ws | Transport::Wss)
    }
}

impl MqttVersion {
    pub fn protocol(self) -> ferrymq_codec::ProtocolVersion {
        match self {
            MqttVersion::V311 => ferrymq_codec::ProtocolVersion::V3_1_1,
            MqttVersion::V5 => ferrymq_codec::ProtocolVersion::V5,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            MqttVersion::V311 => "3.1.1",
            MqttVersion::V5 => "5",
        }
    }
}

/// How many clients of each role the scenario runs, in total over all processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub pubs: u64,
    pub subs: u64,
    pub conns: u64,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.pubs + self.subs + self.conns
    }
}

impl BenchArgs {
    /// Publishers, subscribers and plain connections of the scenario.
    pub fn counts(&self) -> Counts {
        let (pubs, subs, conns) = match self.scenario {
            Scenario::Conn => (0, 0, self.count),
            Scenario::Pub => (self.count, 0, 0),
            Scenario::Sub => (0, self.count, 0),
            Scenario::Pubsub => (self.pubs, self.subs, 0),
        };
        Counts { pubs, subs, conns }
    }

    /// The port, defaulted per transport.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(self.transport.default_port())
    }

    /// The subscribers' filter template.
    pub fn filter_template(&self) -> &str {
        self.filter.as_deref().unwrap_or(&self.topic)
    }

    /// Checks the combination of options; the message says what to change.
    pub fn validate(&self) -> Result<(), String> {
        Template::parse(&self.topic).map_err(|e| format!("--topic: {e}"))?;
        Template::parse(self.filter_template()).map_err(|e| format!("--filter: {e}"))?;
        Template::parse(&self.client_id).map_err(|e| format!("--client-id: {e}"))?;
        if self.size < crate::payload::HEADER_LEN {
            return Err(format!(
                "--size {} is too small: a payload carries a {}-byte header (timestamp, publisher, sequence)",
                self.size,
                crate::payload::HEADER_LEN
            ));
        }
        if !(self.rate >= 0.0 && self.rate.is_finite()) {
            return Err("--rate must be a number >= 0".into());
        }
        if !(self.ramp >= 0.0 && self.ramp.is_finite()) {
            return Err("--ramp must be a number >= 0".into());
        }
        if self.processes == 0 {
            return Err("--processes must be at least 1".into());
        }
        if self.connect_concurrency == 0 {
            return Err("--connect-concurrency must be at least 1".into());
        }
        if self.inflight == 0 {
            return Err("--inflight must be at least 1".into());
        }
        if self.transport.is_tls() && !self.insecure && self.cafile.is_none() {
            return Err(format!(
                "--transport {} needs --cafile FILE or --insecure",
                self.transport.name()
            ));
        }
        if self.counts().total() == 0 {
            return Err("the scenario has no clients".into());
        }
        if self.counts().pubs > u64::from(u32::MAX) {
            return Err("at most 4294967295 publishers".into());
        }
        Ok(())
    }
}

/// Parses `10s`, `500ms`, `2m`, `1.5` (seconds) into seconds.
pub fn parse_duration(value: &str) -> Result<f64, String> {
    let value = value.trim();
    let (number, scale) = if let Some(n) = value.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = value.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = value.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (value, 1.0)
    };
    match number.trim().parse::<f64>() {
        Ok(n) if n >= 0.0 && n.is_finite() => Ok(n * scale),
        _ => Err(format!(
            "{value:?} is not a duration such as 10s, 500ms or 2m"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(10.0));
        assert_eq!(parse_duration("500ms"), Ok(0.5));
        assert_eq!(parse_duration("2m"), Ok(120.0));
        assert_eq!(parse_duration("1.5"), Ok(1.5));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn parses_a_pubsub_command_line() {
        let args = BenchArgs::try_parse_from([
            "bench",
            "pubsub",
            "--pubs",
            "3",
            "--subs",
            "2",
            "-t",
            "in/%i",
            "-f",
            "in/+",
            "-q",
            "1",
            "--mqtt-version",
            "5",
            "-d",
            "2s",
        ])
        .unwrap();
        assert_eq!(args.scenario, Scenario::Pubsub);
        assert_eq!(
            args.counts(),
            Counts {
                pubs: 3,
                subs: 2,
                conns: 0
            }
        );
        assert_eq!(args.filter_template(), "in/+");
        assert_eq!(args.mqtt_version, MqttVersion::V5);
        assert_eq!(args.duration, 2.0);
        assert!(args.validate().is_ok());
    }

    #[test]
    fn tls_needs_a_ca_or_insecure() {
        let args = BenchArgs::try_parse_from(["bench", "conn", "--transport", "wss"]).unwrap();
        assert!(args.validate().unwrap_err().contains("--insecure"));
        assert_eq!(args.port(), 15676);
    }

    #[test]
    fn serialises_for_the_children() {
        let args = BenchArgs::try_parse_from(["bench", "conn", "-c", "19000"]).unwrap();
        let json = serde_json::to_string(&args).unwrap();
        let back: BenchArgs = serde_json::from_str(&json).unwrap();
        assert_eq!(back.count, 19000);
        assert_eq!(back.scenario, Scenario::Conn);
    }
}
