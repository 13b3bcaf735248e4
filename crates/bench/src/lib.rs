//! `ferrymq bench`: FerryMQ's MQTT load generator, in the spirit of emqtt-bench.
//!
//! Scenarios `conn`, `pub`, `sub` and `pubsub` over TCP, TLS, WebSocket and WSS, MQTT 3.1.1
//! and 5, QoS 0/1/2. Each generator connection is one tokio task speaking MQTT through
//! `ferrymq-codec` (a PUBLISH is encoded once per publisher and patched per message); every
//! payload starts with a send timestamp, the publisher id and a sequence number, from which
//! subscribers measure latency (HDR histogram), loss and duplicates. `--processes N` splits
//! the clients over N child processes (the open-files limit is per process) and merges
//! their results.
//!
//! Module map: `args` (options), `template` (`%i`), `payload` (the stamp), `wire` (hot-path
//! encoding and decoding), `net` (dialing all transports), `client` (one connection's
//! task), `stats` (counters, reports, loss accounting), `run` (one process), `multi` (the
//! parent of several), `summary` (output), `sys` (rlimit, CPU time).
//!
//! This crate drives brokers from the outside; it depends on no broker crate.

mod args;
mod client;
mod multi;
mod net;
mod payload;
mod run;
mod stats;
mod summary;
mod sys;
mod template;
mod wire;

use std::process::ExitCode;

pub use args::{BenchArgs, MqttVersion, Scenario, Transport, parse_duration};
pub use stats::{HistData, Progress, Report, expected_deliveries, topic_matches};
pub use summary::{Percentiles, Summary};

use run::{ChildMessage, Mode, Slice};

/// `ferrymq bench` as a command: starts the generator's runtime (`--threads` workers; a
/// child process takes its options, threads included, from its parent) and runs [`run`].
pub fn main(args: BenchArgs) -> ExitCode {
    let args = match args.child.clone() {
        Some(slice) => match child_args(slice) {
            Ok(args) => args,
            Err(e) => {
                ChildMessage::Failed(e).emit();
                return ExitCode::FAILURE;
            }
        },
        None => args,
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        runtime.worker_threads(usize::from(threads));
    }
    match runtime.enable_all().build() {
        Ok(runtime) => runtime.block_on(run(args)),
        Err(e) => {
            eprintln!("ferrymq bench: error: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A child's options: the parent's, passed as JSON in the environment, with `child` set.
fn child_args(slice: String) -> Result<BenchArgs, String> {
    let json =
        std::env::var(multi::ARGS_ENV).map_err(|_| format!("{} is not set", multi::ARGS_ENV))?;
    let mut args: BenchArgs = serde_json::from_str(&json).map_err(|e| e.to_string())?;
    args.child = Some(slice);
    Ok(args)
}

/// Runs `ferrymq bench` with parsed options: the whole command, output and exit status
/// included (1: loss without --allow-loss, errors, or bad options). A child (`--child`)
/// expects the options [`main`] read from its parent.
pub async fn run(args: BenchArgs) -> ExitCode {
    if args.child.is_some() {
        return run_child(args).await;
    }
    match run_summary(&args).await {
        Ok(summary) => {
            if args.json {
                match serde_json::to_string_pretty(&summary) {
                    Ok(json) => println!("{json}"),
                    Err(e) => eprintln!("ferrymq bench: {e}"),
                }
            } else {
                print!("{}", summary.text());
            }
            if summary.failed(args.allow_loss) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("ferrymq bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the scenario (in this process, or in `--processes` children) and summarises it,
/// without printing the summary. Progress goes to stderr unless `--quiet`.
pub async fn run_summary(args: &BenchArgs) -> Result<Summary, String> {
    args.validate()?;
    sys::raise_nofile_limit();
    let report = if args.processes > 1 {
        multi::run_parent(args).await?
    } else {
        run_on_worker(args, Slice::WHOLE, Mode::Standalone).await?
    };
    Ok(Summary::new(args, &report))
}

/// Runs this process's slice in a task of the runtime rather than in the thread that called
/// `block_on`: a task spawned from a runtime worker goes to that worker's own queue, one
/// spawned from outside goes through the shared injection queue and wakes a parked worker,
/// and every client's connect slot given back would wake the outside thread again.
async fn run_on_worker(
    args: &BenchArgs,
    slice: Slice,
    mode: Mode,
) -> Result<stats::Report, String> {
    let args = args.clone();
    tokio::spawn(async move { run::run_process(&args, slice, mode).await })
        .await
        .map_err(|e| format!("the generator task failed: {e}"))?
}

/// A child generator (`args.child` is its slice): results as JSON lines on stdout.
async fn run_child(args: BenchArgs) -> ExitCode {
    let result = async {
        let child = args.child.as_deref().unwrap_or_default();
        let slice = Slice::parse(child).ok_or_else(|| format!("bad --child {child:?}"))?;
        sys::raise_nofile_limit();
        run_on_worker(&args, slice, Mode::Child).await
    }
    .await;
    match result {
        Ok(report) => {
            ChildMessage::Report(Box::new(report)).emit();
            ExitCode::SUCCESS
        }
        Err(e) => {
            ChildMessage::Failed(e).emit();
            ExitCode::FAILURE
        }
    }
}
