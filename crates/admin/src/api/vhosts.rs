//! `GET /api/vhosts`, `GET|PUT|DELETE /api/vhosts/{vhost}` (the name percent-encoded: `/` is
//! `%2F`). `/` is always listed: the broker serves it even when the database does not
//! define it.

use axum::Json;
use axum::extract::{Path, Request, State as Extract};
use axum::http::StatusCode;
use ferrymq_auth::edit;
use ferrymq_auth::{DEFAULT_VHOST, VhostRecord};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::blocking;
use super::body::optional_json;
use super::caller::Caller;
use super::error::ApiError;
use crate::State;

/// `GET /api/vhosts`: the vhosts the caller may see, with their live counts.
pub(crate) async fn list(
    caller: Caller,
    Extract(state): Extract<State>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let live = state.clone();
    let definitions = blocking(move || Ok(live.live.current())).await?;
    let mut vhosts = definitions.vhosts;
    if !vhosts.iter().any(|v| v.name == DEFAULT_VHOST) {
        vhosts.insert(0, default_vhost());
    }
    Ok(Json(
        vhosts
            .iter()
            .filter(|v| caller.may_read_vhost(&v.name))
            .map(|v| to_json(&state, v))
            .collect(),
    ))
}

/// `GET /api/vhosts/{vhost}`.
pub(crate) async fn show(
    caller: Caller,
    Extract(state): Extract<State>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_vhost(&name)?;
    let live = state.clone();
    let definitions = blocking(move || Ok(live.live.current())).await?;
    let vhost = match definitions.vhost(&name) {
        Some(vhost) => vhost.clone(),
        None if name == DEFAULT_VHOST => default_vhost(),
        None => return Err(ApiError::not_found(format!("no vhost {name:?}"))),
    };
    Ok(Json(to_json(&state, &vhost)))
}

fn default_vhost() -> VhostRecord {
    VhostRecord {
        name: DEFAULT_VHOST.to_owned(),
        description: String::new(),
        max_connections: None,
    }
}

fn to_json(state: &State, vhost: &VhostRecord) -> Value {
    let running = state.broker.vhost(&vhost.name);
    json!({
        "name": vhost.name,
        "description": vhost.description,
        "max_connections": vhost.max_connections,
        "connections": running.as_ref().map_or(0, |v| v.connected_count()),
        "sessions": running.as_ref().map_or(0, |v| v.session_count()),
    })
}

/// The body of `PUT /api/vhosts/{vhost}`; absent fields keep their value.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VhostBody {
    description: Option<String>,
    /// `null`: no limit.
    #[serde(default, deserialize_with = "present")]
    max_connections: Option<Option<u32>>,
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(deserializer).map(Some)
}

/// `PUT /api/vhosts/{vhost}` (administrators): creates (201) or changes (204) a vhost. The
/// body may be empty.
pub(crate) async fn put(
    caller: Caller,
    Extract(state): Extract<State>,
    Path(name): Path<String>,
    request: Request,
) -> Result<StatusCode, ApiError> {
    caller.require_administrator()?;
    let body: VhostBody = optional_json(request).await?;
    let vhost = name.clone();
    let created = blocking(move || {
        let created = state.live.change(|definitions| {
            if definitions.vhost(&vhost).is_none() {
                let record = VhostRecord {
                    name: vhost.clone(),
                    description: body.description.unwrap_or_default(),
                    max_connections: body.max_connections.flatten(),
                };
                edit::add_vhost(definitions, record)?;
                return Ok(Some(true));
            }
            edit::update_vhost(definitions, &vhost, body.description, body.max_connections)?;
            Ok(Some(false))
        })?;
        Ok(created.unwrap_or(false))
    })
    .await?;
    tracing::info!(by = %caller.login.username, vhost = %name, created, "management API: vhost saved");
    Ok(super::saved(created))
}

/// `DELETE /api/vhosts/{vhost}` (administrators): the vhost and every permission in it;
/// clients connected to it lose their access and are closed.
pub(crate) async fn delete(
    caller: Caller,
    Extract(state): Extract<State>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_administrator()?;
    let vhost = name.clone();
    blocking(move || {
        state
            .live
            .change(|definitions| edit::delete_vhost(definitions, &vhost).map(Some))?;
        Ok(())
    })
    .await?;
    tracing::info!(by = %caller.login.username, vhost = %name, "management API: vhost deleted");
    Ok(StatusCode::NO_CONTENT)
}
