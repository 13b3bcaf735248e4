//! The `ferrymq` binary's library half: command line ([`cli`]), config file and settings
//! resolution ([`config`]), logging setup ([`logging`]) and the wiring that runs the broker
//! ([`app`]). The internal access-control database lives in `ferrymq_admin::definitions`,
//! shared with the management API. `main.rs` only strings these together; keeping them in a library lets tests
//! reach them without spawning a process.
//!
//! This is the only crate that reads files, environment variables and the command line to
//! decide how the broker runs; the crates below it receive plain resolved values.

pub mod app;
pub mod cli;
pub mod config;
pub mod logging;
