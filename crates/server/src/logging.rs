//! Logging setup: `tracing` events to standard error, compact human format with timestamps.
//!
//! Standard error rather than stdout so that a supervisor (systemd, Docker) collects logs
//! while stdout stays free for command output.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber with `filter` (a `tracing` filter such as `info` or
/// `info,ferrymq_broker=debug`, already validated by [`crate::config::check_log_level`]).
pub fn init(filter: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::builder()
        .parse(filter)
        .map_err(|err| anyhow::anyhow!("invalid log filter {filter:?}: {err}"))?;
    tracing_subscriber::fmt()
        .compact()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal; log files and pipes get plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .map_err(|err| anyhow::anyhow!("cannot install the logger: {err}"))
}
