//! Listeners. Each turns accepted sockets into a byte stream and runs the per-connection
//! task ([`driver::run_connection`]) that moves bytes between the socket and the broker's
//! [`ferrymq_broker::Connection`]. No MQTT knowledge lives here.

pub mod driver;
pub mod tcp;

pub use tcp::{bind_tcp, serve_tcp};
