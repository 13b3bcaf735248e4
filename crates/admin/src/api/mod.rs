//! The management API's routes. Paths and field names follow RabbitMQ's management API
//! where the concept is the same (`/api/overview`, `/api/vhosts/{vhost}`, a vhost name
//! percent-encoded: `/` is `%2F`), so its users find their way.

mod body;
mod caller;
mod connections;
mod definitions;
mod error;
mod metrics;
mod overview;
mod permissions;
mod users;
mod vhosts;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;

use crate::State;
use error::ApiError;

/// Largest definitions document `POST /api/definitions` takes: a RabbitMQ export with many
/// queues and bindings is large even though little of it carries over.
const DEFINITIONS_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Largest body of the other requests (one user, vhost or permission record).
const BODY_LIMIT: usize = 64 * 1024;

pub(crate) fn routes(state: State) -> Router {
    let definitions = Router::new()
        .route(
            "/api/definitions",
            get(definitions::export_definitions).post(definitions::import),
        )
        .layer(DefaultBodyLimit::max(DEFINITIONS_BODY_LIMIT));
    Router::new()
        .route("/api/healthz", get(overview::health))
        .route("/api/overview", get(overview::overview))
        .route("/api/whoami", get(overview::whoami))
        .route("/api/connections", get(connections::list))
        .route(
            "/api/connections/{vhost}/{client_id}",
            get(connections::show).delete(connections::close),
        )
        .route("/api/vhosts", get(vhosts::list))
        .route(
            "/api/vhosts/{vhost}",
            get(vhosts::show).put(vhosts::put).delete(vhosts::delete),
        )
        .route(
            "/api/vhosts/{vhost}/connections",
            get(connections::list_vhost),
        )
        .route(
            "/api/vhosts/{vhost}/permissions",
            get(permissions::list_vhost),
        )
        .route("/api/users", get(users::list))
        .route(
            "/api/users/{user}",
            get(users::show).put(users::put).delete(users::delete),
        )
        .route("/api/users/{user}/permissions", get(permissions::list_user))
        .route("/api/permissions", get(permissions::list))
        .route(
            "/api/permissions/{vhost}/{user}",
            get(permissions::show)
                .put(permissions::put)
                .delete(permissions::delete),
        )
        .route("/metrics", get(metrics::metrics))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .merge(definitions)
        .fallback(not_found)
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint (see docs/management.md)")
}

/// Runs blocking database work off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await?
}

/// The answer to a PUT that saved a record: 201 when it created it, 204 when it replaced
/// one (RabbitMQ's management API answers the same).
fn saved(created: bool) -> axum::http::StatusCode {
    match created {
        true => axum::http::StatusCode::CREATED,
        false => axum::http::StatusCode::NO_CONTENT,
    }
}
