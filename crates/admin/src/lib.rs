//! FerryMQ management: the internal database of users, vhosts and permissions
//! ([`definitions`]), the management HTTP API on port 15672 (RabbitMQ's), Prometheus
//! `/metrics`, and the small HTTP client the CLI uses to talk to that API ([`client`]).
//!
//! The API authenticates with HTTP Basic against the broker's own users, through the same
//! authenticator, verification cache and failed-login throttle as MQTT logins
//! ([`ferrymq_broker::Broker::login`]). Management tags decide what a user may do, as in
//! RabbitMQ: `administrator` everything, `monitoring` read everything, `management` (or
//! `policymaker`) read the vhosts it has permissions in; a user without one of those gets
//! 403. Every change goes through [`definitions::Live::change`], the same locked, validated
//! read-modify-write of `definitions.json` the CLI makes, and applies to the running broker
//! at once. Errors are JSON: `{"error": "not_found", "reason": "…"}`.
//!
//! What this crate must not do: keep state of its own about users or connections (the
//! broker and the database are the truth), or log a password or a hash.

mod api;
pub mod client;
pub mod definitions;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use ferrymq_broker::Broker;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::definitions::Live;

/// The management API's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManagementConfig {
    /// `/metrics` needs a user tagged `administrator` or `monitoring`; off by default, as
    /// most Prometheus exporters are (the counters reveal no names).
    pub metrics_auth: bool,
}

/// What every request handler reaches.
#[derive(Debug)]
pub(crate) struct Shared {
    broker: Arc<Broker>,
    live: Arc<Live>,
    config: ManagementConfig,
    started: Instant,
}

/// The handlers' state: cheap to clone.
pub(crate) type State = Arc<Shared>;

/// The management API's routes for the broker that `live` keeps in step with the database.
pub fn router(live: Arc<Live>, config: ManagementConfig) -> Router {
    let shared = Arc::new(Shared {
        broker: Arc::clone(live.broker()),
        live,
        config,
        started: Instant::now(),
    });
    api::routes(shared)
}

/// Serves `router` on `listener` until `shutdown` is cancelled; requests in progress then
/// finish, idle connections close.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
