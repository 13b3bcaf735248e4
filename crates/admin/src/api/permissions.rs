//! `GET /api/permissions`, `GET /api/vhosts/{vhost}/permissions`,
//! `GET /api/users/{user}/permissions`, `GET|PUT|DELETE /api/permissions/{vhost}/{user}`:
//! what users may publish and subscribe to, per vhost — the model of
//! `ferrymq permissions set` (docs/access-control.md), in its JSON form.

use axum::Json;
use axum::extract::{Path, State as Extract};
use axum::http::StatusCode;
use ferrymq_auth::edit;
use ferrymq_auth::{Definitions, PermissionRecord, Permissions, TopicRules};
use serde::Deserialize;
use serde_json::{Value, json};

use super::blocking;
use super::body::JsonBody;
use super::caller::Caller;
use super::error::ApiError;
use crate::State;

async fn current(state: &State) -> Result<Definitions, ApiError> {
    let state = state.clone();
    blocking(move || Ok(state.live.current())).await
}

fn listed(
    caller: &Caller,
    definitions: &Definitions,
    keep: impl Fn(&PermissionRecord) -> bool,
) -> Json<Vec<Value>> {
    Json(
        definitions
            .permissions
            .iter()
            .filter(|record| caller.may_read_vhost(&record.vhost) && keep(record))
            .map(to_json)
            .collect(),
    )
}

/// `GET /api/permissions`: every record the caller may see.
pub(crate) async fn list(
    caller: Caller,
    Extract(state): Extract<State>,
) -> Result<Json<Vec<Value>>, ApiError> {
    Ok(listed(&caller, &current(&state).await?, |_| true))
}

/// `GET /api/vhosts/{vhost}/permissions`.
pub(crate) async fn list_vhost(
    caller: Caller,
    Extract(state): Extract<State>,
    Path(vhost): Path<String>,
) -> Result<Json<Vec<Value>>, ApiError> {
    caller.require_vhost(&vhost)?;
    let definitions = current(&state).await?;
    if definitions.vhost(&vhost).is_none() {
        return Err(ApiError::not_found(format!("no vhost {vhost:?}")));
    }
    Ok(listed(&caller, &definitions, |r| r.vhost == vhost))
}

/// `GET /api/users/{user}/permissions` (administrators and monitoring users).
pub(crate) async fn list_user(
    caller: Caller,
    Extract(state): Extract<State>,
    Path(user): Path<String>,
) -> Result<Json<Vec<Value>>, ApiError> {
    caller.require_reads_everything()?;
    let definitions = current(&state).await?;
    if definitions.user(&user).is_none() {
        return Err(ApiError::not_found(format!("no user {user:?}")));
    }
    Ok(listed(&caller, &definitions, |r| r.user == user))
}

/// `GET /api/permissions/{vhost}/{user}`.
pub(crate) async fn show(
    caller: Caller,
    Extract(state): Extract<State>,
    Path((vhost, user)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require_vhost(&vhost)?;
    let definitions = current(&state).await?;
    definitions
        .permissions
        .iter()
        .find(|r| r.vhost == vhost && r.user == user)
        .map(|r| Json(to_json(r)))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no permissions of user {user:?} in vhost {vhost:?}"
            ))
        })
}

fn to_json(record: &PermissionRecord) -> Value {
    let p = &record.permissions;
    json!({
        "user": record.user,
        "vhost": record.vhost,
        "publish": { "allow": p.publish.allow, "deny": p.publish.deny },
        "subscribe": { "allow": p.subscribe.allow, "deny": p.subscribe.deny },
        "read_sys": p.read_sys,
    })
}

/// The body of `PUT /api/permissions/{vhost}/{user}`: the whole record (absent lists are
/// empty, `read_sys` false). Unknown fields are refused, so that a typo cannot silently
/// grant nothing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PermissionsBody {
    #[serde(default)]
    publish: RulesBody,
    #[serde(default)]
    subscribe: RulesBody,
    #[serde(default)]
    read_sys: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesBody {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
}

impl From<RulesBody> for TopicRules {
    fn from(rules: RulesBody) -> TopicRules {
        TopicRules {
            allow: rules.allow,
            deny: rules.deny,
        }
    }
}

/// `PUT /api/permissions/{vhost}/{user}` (administrators): sets (201) or replaces (204)
/// the record; connected clients of the user get the new rights at once.
pub(crate) async fn put(
    caller: Caller,
    Extract(state): Extract<State>,
    Path((vhost, user)): Path<(String, String)>,
    JsonBody(body): JsonBody<PermissionsBody>,
) -> Result<StatusCode, ApiError> {
    caller.require_administrator()?;
    if state.broker.auth().is_config_user(&user) {
        return Err(ApiError::conflict(format!(
            "user {user:?} is defined in the config file: it has full rights in \"/\" and no others"
        )));
    }
    let permissions = Permissions {
        publish: body.publish.into(),
        subscribe: body.subscribe.into(),
        read_sys: body.read_sys,
    };
    let (v, u) = (vhost.clone(), user.clone());
    let replaced = blocking(move || {
        let replaced = state.live.change(|definitions| {
            edit::set_permissions(definitions, &u, &v, permissions).map(Some)
        })?;
        Ok(replaced.unwrap_or(false))
    })
    .await?;
    tracing::info!(by = %caller.login.username, user, vhost, "management API: permissions set");
    Ok(super::saved(!replaced))
}

/// `DELETE /api/permissions/{vhost}/{user}` (administrators): the user may no longer use
/// the vhost; its clients there are closed (v5: DISCONNECT 0x87).
pub(crate) async fn delete(
    caller: Caller,
    Extract(state): Extract<State>,
    Path((vhost, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require_administrator()?;
    let (v, u) = (vhost.clone(), user.clone());
    let cleared = blocking(move || {
        let cleared = state.live.change(|definitions| {
            Ok(edit::clear_permissions(definitions, &u, &v)?.then_some(()))
        })?;
        Ok(cleared.is_some())
    })
    .await?;
    if !cleared {
        return Err(ApiError::not_found(format!(
            "no permissions of user {user:?} in vhost {vhost:?}"
        )));
    }
    tracing::info!(by = %caller.login.username, user, vhost, "management API: permissions cleared");
    Ok(StatusCode::NO_CONTENT)
}
