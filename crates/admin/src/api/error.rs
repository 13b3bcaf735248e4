//! [`ApiError`]: every refusal of the API as a status and a JSON body
//! `{"error": "<code>", "reason": "<text for people>"}`, RabbitMQ's shape.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferrymq_auth::edit::EditError;

use crate::definitions::ChangeError;

/// The realm of the `WWW-Authenticate` challenge.
pub(crate) const REALM: &str = "Basic realm=\"FerryMQ\"";

/// An error response.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    error: &'static str,
    reason: String,
    retry_after: Option<Duration>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, error: &'static str, reason: impl Into<String>) -> Self {
        ApiError {
            status,
            error,
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// 400: the request is malformed (not JSON, a bad query).
    pub(crate) fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", reason)
    }

    /// 401, with the Basic challenge: credentials missing or wrong.
    pub(crate) fn unauthorized(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "not_authorized", reason)
    }

    /// 403: logged in, but the user's tags do not allow this.
    pub(crate) fn forbidden(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", reason)
    }

    /// 404.
    pub(crate) fn not_found(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", reason)
    }

    /// 409: the request contradicts the state (a config-file user, an existing name).
    pub(crate) fn conflict(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", reason)
    }

    /// 422: well-formed JSON whose content is refused.
    pub(crate) fn unprocessable(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", reason)
    }

    /// 429: this address failed to log in too often; refused without checking.
    pub(crate) fn throttled(retry_after: Duration) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "too many failed logins from this address",
            )
        }
    }

    /// 500: the database file could not be read or written.
    pub(crate) fn internal(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", reason)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.error, "reason": self.reason }));
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
        }
        if let Some(retry_after) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string())
        {
            headers.insert(header::RETRY_AFTER, value);
        }
        response
    }
}

impl From<EditError> for ApiError {
    fn from(error: EditError) -> Self {
        match &error {
            EditError::UserExists(_) | EditError::VhostExists(_) => {
                ApiError::conflict(error.to_string())
            }
            EditError::NoSuchUser(name) => ApiError::not_found(format!("no user {name:?}")),
            EditError::NoSuchVhost(name) => ApiError::not_found(format!("no vhost {name:?}")),
            EditError::NoPassword(_) | EditError::Invalid(_) => {
                ApiError::unprocessable(error.to_string())
            }
        }
    }
}

impl From<ChangeError> for ApiError {
    fn from(error: ChangeError) -> Self {
        match error {
            ChangeError::Edit(error) => error.into(),
            ChangeError::Store(error) => {
                tracing::error!(%error, "management API: cannot change the definitions file");
                ApiError::internal(error.to_string())
            }
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(error: tokio::task::JoinError) -> Self {
        tracing::error!(%error, "management API: a blocking task failed");
        ApiError::internal("the request failed inside the broker")
    }
}
