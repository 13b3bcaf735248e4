//! Running a scenario in one process: build the client list of this process's slice, open
//! the clients (ramp rate, connect concurrency), wait until all settled, publish for the
//! duration, drain, and turn the counters into a [`Report`]. Also the progress output,
//! which is a line on stderr for a standalone run and a JSON line on stdout for a child of
//! `--processes` (see `multi.rs`).

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use ferrymq_codec::QoS;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncBufReadExt;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::args::BenchArgs;
use crate::client::{ClientSpec, Ctx, Phase, Role, run_client};
use crate::net::Dialer;
use crate::stats::{HistData, Progress, Report, Shared};
use crate::sys::cpu_seconds;
use crate::template::Template;

/// Process `index` of `count` takes the clients whose ordinal is `index` modulo `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slice {
    pub index: u64,
    pub count: u64,
}

impl Slice {
    pub(crate) const WHOLE: Slice = Slice { index: 0, count: 1 };

    /// Parses the `--child K/N` value.
    pub(crate) fn parse(value: &str) -> Option<Slice> {
        let (k, n) = value.split_once('/')?;
        let slice = Slice {
            index: k.parse().ok()?,
            count: n.parse().ok()?,
        };
        (slice.count > 0 && slice.index < slice.count).then_some(slice)
    }

    fn owns(&self, ordinal: u64) -> bool {
        ordinal % self.count == self.index
    }
}

/// How the process reports: standalone (stderr progress) or as a child (JSON on stdout,
/// "go" from stdin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Standalone,
    Child,
}

/// What a child writes on stdout, one JSON object per line.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ChildMessage {
    Progress(Progress),
    /// All clients settled; this many connected.
    Ready(u64),
    Report(Box<Report>),
    Failed(String),
}

impl ChildMessage {
    pub(crate) fn emit(&self) {
        if let Ok(line) = serde_json::to_string(self) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

/// The clients of the whole run, in connection order (subscribers first, so that no
/// message is published before its subscribers exist), keeping this slice's.
pub(crate) fn plan_clients(args: &BenchArgs, slice: Slice) -> Result<Vec<ClientSpec>, String> {
    let counts = args.counts();
    let topic = Template::parse(&args.topic)?;
    let filter = Template::parse(args.filter_template())?;
    let client_id = Template::parse(&args.client_id)?;
    let mut clients = Vec::new();
    let mut ordinal = 0u64;
    let mut add = |role_name: &str, count: u64, make: &dyn Fn(u64) -> Role| {
        for index in 1..=count {
            if slice.owns(ordinal) {
                clients.push(ClientSpec {
                    index,
                    ordinal,
                    client_id: client_id.expand(index, role_name),
                    role: make(index),
                });
            }
            ordinal += 1;
        }
    };
    add("sub", counts.subs, &|i| Role::Subscriber {
        filter: filter.expand(i, "sub"),
    });
    add("pub", counts.pubs, &|i| Role::Publisher {
        topic: topic.expand(i, "pub"),
    });
    add("conn", counts.conns, &|_| Role::Idle);
    Ok(clients)
}

/// Runs this process's slice of the scenario.
pub(crate) async fn run_process(
    args: &BenchArgs,
    slice: Slice,
    mode: Mode,
) -> Result<Report, String> {
    let wall_start = Instant::now();
    let cpu_start = cpu_seconds();
    let dialer = Dialer::new(args).await?;
    let counts = args.counts();
    let shared = Arc::new(Shared::new(counts.pubs));
    let (phase_tx, phase_rx) = watch::channel(Phase::Connecting);
    let ctx = Arc::new(Ctx {
        dialer,
        shared: Arc::clone(&shared),
        phase: phase_rx,
        protocol: args.mqtt_version.protocol(),
        qos: QoS::from_u8(args.qos).unwrap_or_default(),
        size: args.size,
        rate: args.rate,
        inflight: args.inflight,
        keepalive: args.keepalive,
        username: args.username.clone(),
        password: args.password.clone(),
        connect_timeout: Duration::from_secs_f64(args.connect_timeout),
        drain_quiet: Duration::from_secs_f64(args.drain_quiet),
        drain_timeout: Duration::from_secs_f64(args.drain_timeout),
    });
    let clients = plan_clients(args, slice)?;
    let local = clients.len() as u64;
    let progress = tokio::spawn(progress_loop(
        Arc::clone(&shared),
        mode,
        counts.total(),
        args.quiet,
    ));

    // Connect phase.
    let concurrency = args.connect_concurrency.div_ceil(slice.count).max(1);
    let slots = Arc::new(Semaphore::new(
        usize::try_from(concurrency).unwrap_or(usize::MAX),
    ));
    let ramp = args.ramp / slice.count as f64;
    // Publishers get a runtime (one thread) of their own when there are subscribers too:
    // tokio schedules tasks round-robin, so a hundred unthrottled publisher tasks would
    // otherwise leave a subscriber task a hundredth of the generator, and the subscriber,
    // not the broker, would set the delivery rate. Threads are shared fairly by the OS.
    let publisher_runtime = if counts.pubs > 0 && counts.subs > 0 {
        Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("bench-publishers")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the publishers' runtime: {e}"))?,
        )
    } else {
        None
    };
    let connect_start = Instant::now();
    let mut tasks = JoinSet::new();
    for (n, spec) in clients.into_iter().enumerate() {
        if ramp > 0.0 {
            tokio::time::sleep_until(connect_start + Duration::from_secs_f64(n as f64 / ramp))
                .await;
        }
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let publisher = matches!(spec.role, Role::Publisher { .. });
        let client = run_client(Arc::clone(&ctx), spec, permit);
        match &publisher_runtime {
            Some(runtime) if publisher => {
                tasks.spawn_on(client, runtime.handle());
            }
            _ => {
                tasks.spawn(client);
            }
        }
    }
    // Checked every millisecond (tokio's timer resolution): 5,000 connects take 0.2 s at
    // 25k/s, so a coarser check would be a visible part of the measured time.
    while Shared::get(&shared.settled) < local {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let connect_seconds = connect_start.elapsed().as_secs_f64();

    // Ready: a child waits for the parent's "go" so that all processes publish together.
    let connected = Shared::get(&shared.connected);
    let go = match mode {
        Mode::Standalone => {
            write_ready_file(args, connected);
            true
        }
        Mode::Child => {
            ChildMessage::Ready(connected).emit();
            wait_for_go().await
        }
    };
    let duration = Duration::from_secs_f64(args.duration);
    let start = Instant::now();
    let _ = phase_tx.send(if go {
        Phase::Running {
            start,
            deadline: start + duration,
        }
    } else {
        Phase::Aborted
    });
    while tasks.join_next().await.is_some() {}
    progress.abort();
    if let Some(runtime) = publisher_runtime {
        // Every task on it has finished; dropping a runtime inside async code would panic.
        runtime.shutdown_background();
    }

    let latency = HistData::from_histogram(
        &shared
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .total,
    );
    let connect_latency = HistData::from_histogram(
        &shared
            .connect_latency
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
    );
    let errors = shared
        .errors
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Ok(Report {
        connected: Shared::get(&shared.connected),
        connect_failed: Shared::get(&shared.connect_failed),
        connect_seconds,
        connect_latency,
        window_seconds: duration.as_secs_f64(),
        sent: Shared::get(&shared.sent),
        acked: Shared::get(&shared.acked),
        received: Shared::get(&shared.received),
        received_in_window: Shared::get(&shared.received_in_window),
        duplicates: Shared::get(&shared.duplicates),
        gaps: Shared::get(&shared.gaps),
        per_publisher: shared.per_publisher.iter().map(Shared::get).collect(),
        latency,
        errors,
        cpu_seconds: cpu_seconds() - cpu_start,
        wall_seconds: wall_start.elapsed().as_secs_f64(),
    })
}

pub(crate) fn write_ready_file(args: &BenchArgs, connected: u64) {
    if let Some(path) = &args.ready_file
        && let Err(e) = std::fs::write(path, format!("{connected}\n"))
    {
        eprintln!("ferrymq bench: cannot write {}: {e}", path.display());
    }
}

/// Waits for the parent's `go` line; false if stdin closed first.
async fn wait_for_go() -> bool {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim() == "go" {
            return true;
        }
    }
    false
}

async fn progress_loop(shared: Arc<Shared>, mode: Mode, total: u64, quiet: bool) {
    let started = Instant::now();
    let mut tick =
        tokio::time::interval_at(started + Duration::from_secs(1), Duration::from_secs(1));
    let mut last = Progress::default();
    let mut last_at = started;
    loop {
        tick.tick().await;
        let mut now = shared.progress();
        (now.p50_ns, now.p99_ns) = shared.take_interval();
        match mode {
            Mode::Child => ChildMessage::Progress(now).emit(),
            Mode::Standalone if !quiet => {
                let secs = last_at.elapsed().as_secs_f64();
                eprintln!(
                    "{}",
                    progress_line(started.elapsed(), total, &last, &now, secs)
                );
            }
            Mode::Standalone => {}
        }
        last = now;
        last_at = Instant::now();
    }
}

/// `[  3s] conn 200/200  out 123456/s  in 123400/s  p50 120µs  p99 800µs  errors 0`
pub(crate) fn progress_line(
    elapsed: Duration,
    total: u64,
    before: &Progress,
    now: &Progress,
    secs: f64,
) -> String {
    let rate = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / secs.max(1e-3);
    format!(
        "[{:>4}s] conn {}/{}  out {:.0}/s  in {:.0}/s  p50 {}  p99 {}  errors {}",
        elapsed.as_secs(),
        now.connected,
        total,
        rate(before.sent, now.sent),
        rate(before.received, now.received),
        crate::summary::fmt_ns(now.p50_ns),
        crate::summary::fmt_ns(now.p99_ns),
        now.errors,
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn slices_partition_the_clients() {
        let args =
            BenchArgs::try_parse_from(["bench", "pubsub", "--pubs", "5", "--subs", "4"]).unwrap();
        let all = plan_clients(&args, Slice::WHOLE).unwrap();
        assert_eq!(all.len(), 9);
        assert!(matches!(all[0].role, Role::Subscriber { .. }));
        assert_eq!(all[0].client_id, "bench-sub-1");
        match &all[4].role {
            Role::Publisher { topic } => assert_eq!(topic, "bench/1"),
            other => panic!("{other:?}"),
        }
        let mut ordinals: Vec<u64> = (0..3)
            .flat_map(|k| plan_clients(&args, Slice { index: k, count: 3 }).unwrap())
            .map(|c| c.ordinal)
            .collect();
        ordinals.sort_unstable();
        assert_eq!(ordinals, (0..9).collect::<Vec<_>>());
        assert_eq!(Slice::parse("2/3"), Some(Slice { index: 2, count: 3 }));
        assert_eq!(Slice::parse("3/3"), None);
    }
}
