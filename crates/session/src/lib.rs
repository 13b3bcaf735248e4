//! The sans-IO per-client state of MQTT: what a session remembers between connections
//! (subscriptions, queued and in-flight messages, packet identifiers, QoS 2 receipts) and what
//! one network connection adds (keep-alive, topic aliases, the client's flow-control limits).
//!
//! Nothing here owns a socket, a lock, a task or a clock: every call takes `now` and returns
//! packets to send or decisions for the broker. The broker wraps [`SessionState`] in a mutex
//! and drives it; tests drive it with a fake clock.

mod connection;
mod hasher;
mod message;
mod queue;
mod state;

pub use connection::{ConnectionState, InboundTopicError};
pub use hasher::ProcessRandomState;
pub use message::{Delivery, Message};
pub use state::{Enqueue, Outgoing, QueueLimits, SessionState, Subscription, Transmitted};
