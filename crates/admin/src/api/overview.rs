//! `GET /api/overview`, `/api/whoami` and the health check `/api/healthz`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State as Extract;
use ferrymq_auth::Tag;
use ferrymq_broker::Metrics;
use serde_json::{Value, json};

use super::caller::Caller;
use crate::State;

/// `GET /api/healthz`: 200 while the broker runs. No login: load balancers and orchestrators
/// probe it, and it says nothing but "ok".
pub(crate) async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /api/whoami`: the logged-in user and its tags.
pub(crate) async fn whoami(caller: Caller) -> Json<Value> {
    Json(json!({
        "name": &*caller.login.username,
        "tags": caller.login.tags.iter().map(Tag::as_str).collect::<Vec<_>>(),
    }))
}

/// `GET /api/overview`: version, uptime, connection counts and every broker counter.
pub(crate) async fn overview(_caller: Caller, Extract(state): Extract<State>) -> Json<Value> {
    let broker = &state.broker;
    let vhosts = broker.vhosts();
    let clients: usize = vhosts.iter().map(|vhost| vhost.connected_count()).sum();
    let counters: BTreeMap<&str, u64> = broker.metrics().snapshot().into_iter().collect();
    Json(json!({
        "product_name": "FerryMQ",
        "product_version": env!("CARGO_PKG_VERSION"),
        "uptime_ms": u64::try_from(state.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "object_totals": {
            "connections": clients,
            "network_connections": Metrics::get(&broker.metrics().connections_open),
            "sessions": Metrics::get(&broker.metrics().sessions),
            "vhosts": vhosts.len(),
        },
        "counters": counters,
    }))
}
