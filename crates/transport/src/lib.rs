//! Listeners. Each turns accepted sockets into a byte stream and runs the per-connection
//! task ([`driver::run_connection`]) that moves bytes between the socket and the broker's
//! [`ferrymq_broker::Connection`]: MQTT over TCP and TLS ([`tcp`]), over WebSocket and WSS
//! ([`ws`]), with the PROXY protocol and forwarding headers ([`proxy`]) and reloadable
//! certificates ([`tls`]). Quiet MQTT/TCP and WebSocket connections sleep without a task
//! ([`hibernate`]).
//! No MQTT knowledge lives here.

pub mod driver;
pub mod hibernate;
pub mod proxy;
pub mod tcp;
pub mod tls;
pub mod ws;

pub use tcp::{MqttListenerOptions, ProxyOptions, bind_tcp, serve_mqtt, serve_tcp};
pub use ws::{WsConfig, serve_ws};
