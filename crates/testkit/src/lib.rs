//! Test-only helpers for FerryMQ: an in-process broker spawner ([`TestBroker`]), a raw MQTT
//! client that speaks through `ferrymq-codec` and never acknowledges anything on its own
//! ([`RawClient`]), packet builders ([`connect`], [`publish`], [`subscribe`], …) and fault
//! injection (raw bytes, trickled bytes, abrupt resets).
//!
//! Everything runs on the caller's tokio runtime: a `#[tokio::test]` starts a broker on
//! `127.0.0.1:0`, connects clients to [`TestBroker::addr`], and drops it all at the end.
//!
//! # Assertions
//!
//! The `expect_*` methods of [`RawClient`] and the convenience constructors that say so are
//! *assertions*: when the peer does something else than expected they panic with what was
//! received instead, which is how a test fails. Everything else reports errors as values;
//! nothing here unwraps data that came from the network.
//!
//! This crate must not be a dependency of anything but tests.

mod broker;
mod builders;
mod checks;
mod client;

use std::time::Duration;

pub use broker::{TestBroker, TestBrokerBuilder};
pub use builders::{
    ConnectBuilder, PublishBuilder, SubscribeBuilder, connect, disconnect, forwarded_of, options,
    properties_of, puback, pubcomp, publish, pubrec, pubrel, subscribe, unsubscribe,
};
pub use checks::assert_pubsub_works;
pub use client::{Event, RawClient};

/// Re-exported so that tests need only this crate for packets and broker settings.
pub use ferrymq_auth::{AuthConfig, UserConfig};
pub use ferrymq_broker::{
    AuthHookConfig, BrokerConfig, HookOnError, HookOrder, Limits, Metrics, MqttSettings,
    QueueOverflow,
};
pub use ferrymq_codec as codec;

/// How long an `expect_*` call waits for something that must happen.
pub const WAIT: Duration = Duration::from_secs(3);

/// How long to listen when asserting that nothing arrives. Prefer a sentinel message (see
/// [`RawClient::collect_until`]) where the protocol allows one: it proves absence without
/// relying on time at all.
pub const QUIET: Duration = Duration::from_millis(300);
