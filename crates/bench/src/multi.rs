//! `--processes N`: the parent spawns N child generators (this same executable, `ferrymq
//! bench <scenario> --child K/N`, the options as JSON in FERRYMQ_BENCH_ARGS), each taking
//! every N-th client. Children report progress and results as JSON lines on stdout; when
//! all are connected the parent writes `go` to their stdin so that every process publishes
//! in the same window, then merges their reports.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::args::BenchArgs;
use crate::run::{ChildMessage, progress_line, write_ready_file};
use crate::stats::{Progress, Report};

/// The environment variable that carries the options to a child.
pub(crate) const ARGS_ENV: &str = "FERRYMQ_BENCH_ARGS";

enum Event {
    Message(usize, ChildMessage),
    Closed,
}

/// Runs the scenario in `args.processes` child processes and merges their reports.
pub(crate) async fn run_parent(args: &BenchArgs) -> Result<Report, String> {
    let n = args.processes as usize;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let json = serde_json::to_string(args).map_err(|e| e.to_string())?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut children: Vec<Child> = Vec::with_capacity(n);
    let mut stdins: Vec<Option<ChildStdin>> = Vec::with_capacity(n);
    for k in 0..n {
        let mut child = Command::new(&exe)
            .arg("bench")
            .arg(args.scenario.name())
            .arg("--child")
            .arg(format!("{k}/{n}"))
            .env(ARGS_ENV, &json)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start generator process {k}: {e}"))?;
        stdins.push(child.stdin.take());
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| "a child has no stdout".to_owned())?;
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(message) = serde_json::from_str::<ChildMessage>(&line)
                    && tx.send(Event::Message(k, message)).is_err()
                {
                    return;
                }
            }
            let _ = tx.send(Event::Closed);
        });
        children.push(child);
    }
    drop(tx);

    let total = args.counts().total();
    let started = Instant::now();
    let mut latest = vec![Progress::default(); n];
    let mut shown = Progress::default();
    let mut shown_at = started;
    let mut ready = vec![None; n];
    let mut reports: Vec<Option<Report>> = vec![None; n];
    let mut closed = 0;
    let mut tick =
        tokio::time::interval_at(started + Duration::from_secs(1), Duration::from_secs(1));
    while closed < n {
        tokio::select! {
            event = rx.recv() => match event {
                None => break,
                Some(Event::Closed) => closed += 1,
                Some(Event::Message(k, ChildMessage::Progress(p))) => latest[k] = p,
                Some(Event::Message(k, ChildMessage::Ready(connected))) => {
                    ready[k] = Some(connected);
                    if ready.iter().all(Option::is_some) {
                        write_ready_file(args, ready.iter().flatten().sum());
                        for stdin in stdins.iter_mut().flatten() {
                            let _ = stdin.write_all(b"go\n").await;
                            let _ = stdin.flush().await;
                        }
                    }
                }
                Some(Event::Message(k, ChildMessage::Report(report))) => reports[k] = Some(*report),
                Some(Event::Message(k, ChildMessage::Failed(error))) => {
                    return Err(format!("generator process {k}: {error}"));
                }
            },
            _ = tick.tick() => {
                let now = sum_progress(&latest);
                if !args.quiet {
                    let secs = shown_at.elapsed().as_secs_f64();
                    eprintln!("{} ({n} processes)", progress_line(started.elapsed(), total, &shown, &now, secs));
                }
                shown = now;
                shown_at = Instant::now();
            }
        }
    }
    for child in &mut children {
        let _ = child.wait().await;
    }
    let missing: Vec<usize> = (0..n).filter(|&k| reports[k].is_none()).collect();
    if !missing.is_empty() {
        return Err(format!(
            "generator processes {missing:?} ended without a report"
        ));
    }
    let reports: Vec<Report> = reports.into_iter().flatten().collect();
    Ok(Report::merge(&reports))
}

/// Counters add up; for the latency of the interval the worst child's is shown.
fn sum_progress(all: &[Progress]) -> Progress {
    all.iter().fold(Progress::default(), |a, p| Progress {
        connected: a.connected + p.connected,
        failed: a.failed + p.failed,
        sent: a.sent + p.sent,
        received: a.received + p.received,
        errors: a.errors + p.errors,
        p50_ns: a.p50_ns.max(p.p50_ns),
        p99_ns: a.p99_ns.max(p.p99_ns),
    })
}
