//! `GET /api/definitions` (export, FerryMQ's format, as `ferrymq export-definitions`) and
//! `POST /api/definitions` (import FerryMQ's or RabbitMQ's format, as `ferrymq
//! import-definitions`: the same reader, the same merge, the same warnings). Both are for
//! administrators: an export carries password hashes.

use axum::Json;
use axum::extract::{Query, Request, State as Extract};
use axum::http::header;
use axum::response::IntoResponse;
use ferrymq_auth::definitions::export;
use ferrymq_auth::edit::{self, SourceFormat};
use serde::Deserialize;
use serde_json::{Value, json};

use super::blocking;
use super::body::json_bytes;
use super::caller::Caller;
use super::error::ApiError;
use crate::State;

/// `GET /api/definitions`.
pub(crate) async fn export_definitions(
    caller: Caller,
    Extract(state): Extract<State>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_administrator()?;
    let definitions = blocking(move || Ok(state.live.current())).await?;
    let mut text = export(&definitions);
    text.push('\n');
    Ok(([(header::CONTENT_TYPE, "application/json")], text))
}

/// The query of `POST /api/definitions`.
#[derive(Debug, Deserialize)]
pub(crate) struct ImportQuery {
    /// `ferrymq` or `rabbitmq`; absent: detected from the document.
    format: Option<String>,
}

/// `POST /api/definitions`: merges the document into the database (same-named users,
/// vhosts and permission records are replaced) and answers the counts and every warning.
pub(crate) async fn import(
    caller: Caller,
    Extract(state): Extract<State>,
    Query(query): Query<ImportQuery>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    caller.require_administrator()?;
    let format = match query.format.as_deref() {
        None | Some("auto") => None,
        Some("ferrymq") => Some(SourceFormat::Ferrymq),
        Some("rabbitmq") => Some(SourceFormat::Rabbitmq),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format must be ferrymq or rabbitmq, not {other:?}"
            )));
        }
    };
    let bytes = json_bytes(request, &()).await?;
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|_| ApiError::bad_request("the body is not UTF-8"))?;
    let imported = edit::read_import(&text, format).map_err(ApiError::bad_request)?;
    let incoming = imported.definitions;
    let totals = (
        incoming.users.len(),
        incoming.vhosts.len(),
        incoming.permissions.len(),
    );
    let counts = blocking(move || {
        let counts = state
            .live
            .change(|definitions| Ok(Some(edit::merge(definitions, incoming))))?;
        Ok(counts.unwrap_or_default())
    })
    .await?;
    tracing::info!(by = %caller.login.username, format = %imported.format, warnings = imported.warnings.len(), "management API: definitions imported");
    Ok(Json(json!({
        "format": imported.format.to_string(),
        "users": { "total": totals.0, "added": counts.users_added, "replaced": counts.users_replaced },
        "vhosts": { "total": totals.1, "added": counts.vhosts_added, "replaced": counts.vhosts_replaced },
        "permissions": {
            "total": totals.2,
            "added": counts.permissions_added,
            "replaced": counts.permissions_replaced,
        },
        "warnings": imported.warnings,
    })))
}
