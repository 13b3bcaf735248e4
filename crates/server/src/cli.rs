//! The command line: `serve` (the default), `check-config`, `hash-password`, `bench`
//! (the load generator, which lives in the `ferrymq-bench` crate), and the commands that
//! manage the internal access-control database (`users`, `vhosts`, `permissions`,
//! `import-definitions`, `export-definitions`; see [`definitions`]).
//!
//! Flags and their `FERRYMQ_*` environment variables are merged by clap (a flag beats its
//! variable); the result becomes [`Overrides`] on top of the config file. Values are checked
//! here, so a bad `--mqtt-listen` or `FERRYMQ_LOG_LEVEL` is a usage error before anything
//! starts.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand};

use crate::config::{self, ConfigError, Overrides, Settings};

pub mod definitions;
mod remote;

pub use definitions::{ExportArgs, ImportArgs, Io, PermissionsArgs, UsersArgs, VhostsArgs};

/// FerryMQ: an MQTT broker for the web (MQTT 3.1, 3.1.1 and 5.0 over TCP, TLS and WebSocket).
///
/// With no subcommand, `ferrymq` runs `ferrymq serve` with the built-in defaults (plus any
/// FERRYMQ_* environment variables): MQTT on 0.0.0.0:1883, MQTT over WebSocket on
/// 0.0.0.0:15675 (paths /ws and /mqtt), the management HTTP API and /metrics on
/// 0.0.0.0:15672, data in ./data, and the user guest/guest (an administrator) usable from
/// loopback only.
#[derive(Debug, Parser)]
#[command(name = "ferrymq", version, propagate_version = true)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the broker (the default when no subcommand is given).
    ///
    /// Settings come from, highest priority first: these flags, FERRYMQ_* environment
    /// variables, the config file, the built-in defaults. See docs/configuration.md.
    Serve(ServeArgs),
    /// Check a config file without starting the broker.
    ///
    /// Prints `FILE: ok` and exits 0, or prints every problem as `FILE:LINE:COLUMN: message`
    /// and exits 1.
    CheckConfig(CheckConfigArgs),
    /// Print an argon2id hash of a password, for `password_hash` in [[auth.users]].
    ///
    /// Without an argument the password is read from the first line of standard input,
    /// which keeps it out of shell history: `ferrymq hash-password < secret.txt`.
    HashPassword(HashPasswordArgs),
    /// Load generator: open connections, publish and subscribe against an MQTT broker
    /// (FerryMQ or any other) and report throughput, latency percentiles, loss and errors.
    ///
    /// See docs/bench.md; exits 1 on loss (unless --allow-loss) or errors.
    Bench(ferrymq_bench::BenchArgs),
    /// Manage the users of the internal database (<data_dir>/definitions.json).
    ///
    /// Safe while the broker runs: it applies changes within 2 seconds.
    /// See docs/access-control.md.
    Users(UsersArgs),
    /// Manage the virtual hosts of the internal database.
    Vhosts(VhostsArgs),
    /// Manage what users may publish and subscribe to, per virtual host.
    Permissions(PermissionsArgs),
    /// Merge a definitions file (FerryMQ's export, or RabbitMQ's) into the internal
    /// database: users, vhosts and permissions with the same name are replaced.
    ///
    /// Every part of a RabbitMQ export that does not carry over exactly is printed as a
    /// warning; RabbitMQ password hashes keep working and become argon2id at first login.
    /// With --url the running broker's management API does the import (it applies at
    /// once), otherwise the data directory's definitions.json is changed.
    ImportDefinitions(ImportArgs),
    /// Print the internal database in FerryMQ's definitions format (password hashes
    /// included, never passwords), to standard output or FILE; with --url, as a running
    /// broker's management API exports it.
    ExportDefinitions(ExportArgs),
}

/// `ferrymq serve`
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Config file (TOML); without one, the built-in defaults apply.
    #[arg(long, value_name = "FILE", env = "FERRYMQ_CONFIG")]
    pub config: Option<PathBuf>,

    /// MQTT-over-TCP listen address; repeat for several. Replaces the file's mqtt.listen.
    /// The environment variable takes a comma-separated list.
    #[arg(
        long,
        value_name = "ADDR:PORT",
        env = "FERRYMQ_MQTT_LISTEN",
        value_delimiter = ',',
        value_parser = parse_listen_addr
    )]
    pub mqtt_listen: Vec<SocketAddr>,

    /// MQTT-over-WebSocket listen address; repeat for several. Replaces the addresses of
    /// the file's websocket.listen (the listeners keep the [websocket] settings, such as
    /// the paths /ws and /mqtt). The environment variable takes a comma-separated list.
    #[arg(
        long,
        value_name = "ADDR:PORT",
        env = "FERRYMQ_WS_LISTEN",
        value_delimiter = ',',
        value_parser = parse_listen_addr
    )]
    pub ws_listen: Vec<SocketAddr>,

    /// Data directory (server.data_dir).
    #[arg(long, value_name = "DIR", env = "FERRYMQ_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Accept clients that send no username (auth.allow_anonymous). `--allow-anonymous=false`
    /// turns it off; the environment variable takes true/false/1/0.
    #[arg(
        long,
        value_name = "BOOL",
        env = "FERRYMQ_ALLOW_ANONYMOUS",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = BoolishValueParser::new()
    )]
    pub allow_anonymous: Option<bool>,

    /// Log filter: error, warn, info, debug, trace, or e.g. "info,ferrymq_broker=debug"
    /// (server.log_level).
    #[arg(long, value_name = "LEVEL", env = "FERRYMQ_LOG_LEVEL", value_parser = parse_log_level)]
    pub log_level: Option<String>,

    /// HTTP authentication hook URL (auth.http.url): replaces the file's, or turns the hook
    /// on with the default settings. See docs/access-control.md.
    #[arg(long, value_name = "URL", env = "FERRYMQ_AUTH_HTTP_URL", value_parser = parse_hook_url)]
    pub auth_http_url: Option<String>,

    /// Management HTTP API (and /metrics) listen address; repeat for several. Replaces the
    /// file's management.listen. The environment variable takes a comma-separated list.
    #[arg(
        long,
        value_name = "ADDR:PORT",
        env = "FERRYMQ_MANAGEMENT_LISTEN",
        value_delimiter = ',',
        value_parser = parse_listen_addr
    )]
    pub management_listen: Vec<SocketAddr>,

    /// Serve the management HTTP API (management.enabled); `--management=false` turns it
    /// off. The environment variable takes true/false/1/0.
    #[arg(
        long = "management",
        value_name = "BOOL",
        env = "FERRYMQ_MANAGEMENT",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = BoolishValueParser::new()
    )]
    pub management_enabled: Option<bool>,
}

/// `ferrymq check-config`
#[derive(Debug, Clone, Args)]
pub struct CheckConfigArgs {
    /// The config file to check.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// `ferrymq hash-password`
#[derive(Debug, Clone, Args)]
pub struct HashPasswordArgs {
    /// The password; read from standard input when absent.
    #[arg(value_name = "PASSWORD")]
    pub password: Option<String>,
}

impl Cli {
    /// Parses the process's arguments (exiting with a usage message on error) and returns
    /// the command to run, `serve` when none was named.
    pub fn command_from_args() -> Command {
        match Cli::parse().command {
            Some(command) => command,
            // Parsed rather than `ServeArgs::default()` so that FERRYMQ_* variables apply.
            None => Cli::parse_from(["ferrymq", "serve"])
                .command
                .unwrap_or(Command::Serve(ServeArgs::default())),
        }
    }
}

impl ServeArgs {
    /// The flag / environment values as config overrides.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            mqtt_listen: (!self.mqtt_listen.is_empty()).then(|| self.mqtt_listen.clone()),
            ws_listen: (!self.ws_listen.is_empty()).then(|| self.ws_listen.clone()),
            data_dir: self.data_dir.clone(),
            allow_anonymous: self.allow_anonymous,
            log_level: self.log_level.clone(),
            auth_http_url: self.auth_http_url.clone(),
            management_listen: (!self.management_listen.is_empty())
                .then(|| self.management_listen.clone()),
            management_enabled: self.management_enabled,
        }
    }

    /// Reads the config file (if any) and applies the overrides.
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        Settings::load(self.config.as_deref(), &self.overrides())
    }
}

impl CheckConfigArgs {
    /// Runs `check-config`: `FILE: ok` on `out`, or the problems on `err`.
    pub fn run(&self, out: &mut dyn Write, err: &mut dyn Write) -> ExitCode {
        // A failed write to stdout/stderr leaves nobody to tell; the exit code still says it.
        match config::load_file(&self.file) {
            Ok(_) => {
                let _ = writeln!(out, "{}: ok", self.file.display());
                ExitCode::SUCCESS
            }
            Err(problems) => {
                let _ = writeln!(err, "{problems}");
                ExitCode::FAILURE
            }
        }
    }
}

impl HashPasswordArgs {
    /// Runs `hash-password`, reading the password from `input` when it was not given.
    pub fn run(
        self,
        input: &mut dyn BufRead,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> ExitCode {
        let password = match self.password {
            Some(password) if password.is_empty() => Err("the password is empty".to_owned()),
            Some(password) => Ok(password),
            None => definitions::read_password_line(input, err),
        };
        let password = match password {
            Ok(password) => password,
            Err(message) => {
                let _ = writeln!(err, "ferrymq: error: {message}");
                return ExitCode::FAILURE;
            }
        };
        let _ = writeln!(out, "{}", ferrymq_auth::hash_password(&password));
        ExitCode::SUCCESS
    }
}

fn parse_listen_addr(value: &str) -> Result<SocketAddr, String> {
    value.trim().parse().map_err(|_| {
        format!("{value:?} is not an IP:PORT address such as 0.0.0.0:1883 or [::]:1883")
    })
}

fn parse_hook_url(value: &str) -> Result<String, String> {
    let url = value.trim();
    ferrymq_broker::AuthHookConfig::with_url(url)
        .check()
        .map(|()| url.to_owned())
        .map_err(|error| error.to_string())
}

fn parse_log_level(value: &str) -> Result<String, String> {
    config::check_log_level(value).map(|()| value.to_owned())
}

#[cfg(test)]
mod tests;
