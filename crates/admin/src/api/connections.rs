//! `GET /api/connections`, `GET /api/vhosts/{vhost}/connections`,
//! `GET|DELETE /api/connections/{vhost}/{client_id}`: connected MQTT clients, and closing
//! one (MQTT 5 clients are told DISCONNECT 0x98 Administrative action).

use axum::Json;
use axum::extract::{Path, State as Extract};
use axum::http::StatusCode;
use ferrymq_broker::ConnectionInfo;
use ferrymq_codec::{ProtocolVersion, ReasonCode};
use serde_json::{Value, json};

use super::caller::Caller;
use super::error::ApiError;
use crate::State;

/// `GET /api/connections`: every client the caller may see.
pub(crate) async fn list(caller: Caller, Extract(state): Extract<State>) -> Json<Vec<Value>> {
    let mut connections: Vec<ConnectionInfo> = state
        .broker
        .connections()
        .into_iter()
        .filter(|c| caller.may_read_vhost(&c.vhost))
        .collect();
    sort(&mut connections);
    Json(connections.iter().map(to_json).collect())
}

/// `GET /api/vhosts/{vhost}/connections`.
pub(crate) async fn list_vhost(
    caller: Caller,
    Extract(state): Extract<State>,
    Path(vhost): Path<String>,
) -> Result<Json<Vec<Value>>, ApiError> {
    caller.require_vhost(&vhost)?;
    let mut connections = state.broker.vhost_connections(&vhost);
    if connections.is_empty() && !vhost_exists(&state, &vhost) {
        return Err(ApiError::not_found(format!("no vhost {vhost:?}")));
    }
    sort(&mut connections);
    Ok(Json(connections.iter().map(to_json).collect()))
}

/// `GET /api/connections/{vhost}/{client_id}`.
pub(crate) async fn show(
    caller: Caller,
    Extract(state): Extract<State>,
    Path((vhost, client_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require_vhost(&vhost)?;
    state
        .broker
        .vhost_connections(&vhost)
        .iter()
        .find(|c| *c.client_id == *client_id)
        .map(|c| Json(to_json(c)))
        .ok_or_else(|| not_connected(&vhost, &client_id))
}

/// `DELETE /api/connections/{vhost}/{client_id}`: closes the client's connection
/// (administrators only). Its session stays as its expiry says; its will is published.
pub(crate) async fn close(
    caller: Caller,
    Extract(state): Extract<State>,
    Path((vhost, client_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require_administrator()?;
    if !state
        .broker
        .close_connection(&vhost, &client_id, ReasonCode::AdministrativeAction)
    {
        return Err(not_connected(&vhost, &client_id));
    }
    tracing::info!(user = %caller.login.username, vhost, client_id, "management API: connection closed");
    Ok(StatusCode::NO_CONTENT)
}

fn not_connected(vhost: &str, client_id: &str) -> ApiError {
    ApiError::not_found(format!(
        "no client {client_id:?} connected in vhost {vhost:?}"
    ))
}

/// `/` always exists; others when the database defines them.
pub(crate) fn vhost_exists(state: &State, vhost: &str) -> bool {
    vhost == ferrymq_auth::DEFAULT_VHOST || state.live.current().vhost(vhost).is_some()
}

fn sort(connections: &mut [ConnectionInfo]) {
    connections.sort_by(|a, b| (&a.vhost, &a.client_id).cmp(&(&b.vhost, &b.client_id)));
}

fn to_json(c: &ConnectionInfo) -> Value {
    json!({
        "vhost": &*c.vhost,
        "client_id": &*c.client_id,
        "user": &*c.username,
        "peer_host": c.peer.ip().to_string(),
        "peer_port": c.peer.port(),
        "transport": c.transport.as_str(),
        "protocol": protocol_name(c.protocol),
        "protocol_version": c.protocol.level(),
        "connected_at": c.connected_at_ms,
        "keep_alive": c.keep_alive,
    })
}

fn protocol_name(protocol: ProtocolVersion) -> &'static str {
    match protocol {
        ProtocolVersion::V3_1 => "MQTT 3.1",
        ProtocolVersion::V3_1_1 => "MQTT 3.1.1",
        ProtocolVersion::V5 => "MQTT 5.0",
    }
}
