//! Persistence for FerryMQ. A leaf crate: it stores serde values and knows nothing of MQTT,
//! users or sessions.
//!
//! Today it holds [`JsonDocument`]: one small document (the access-control definitions) kept
//! as a JSON file, changed by read-modify-write under an exclusive file lock and replaced
//! atomically (write a temporary file, fsync, rename, fsync the directory), so a crash or
//! `kill -9` at any point leaves either the old or the new document, never a torn one, and
//! the CLI and a running broker can both change it safely. Message and session storage, with
//! their much higher write rates, will get their own engine behind their own types.

mod document;

pub use document::{JsonDocument, Stamp, StoreError};
