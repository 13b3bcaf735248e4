//! [`JsonBody`]: a request body that must be JSON (415 otherwise), parsed with errors in the
//! API's shape: 400 when it is not JSON at all, 422 when it is JSON of the wrong shape.

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON request body of type `T`.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = json_bytes(request, state).await?;
        parse(&bytes).map(JsonBody)
    }
}

/// A JSON body that may also be left out entirely (no body, no Content-Type): `T::default()`.
pub(crate) async fn optional_json<T: DeserializeOwned + Default>(
    request: Request,
) -> Result<T, ApiError> {
    if request.headers().contains_key(header::CONTENT_TYPE) {
        return JsonBody::from_request(request, &())
            .await
            .map(|JsonBody(body)| body);
    }
    let bytes = Bytes::from_request(request, &())
        .await
        .map_err(|rejection| {
            ApiError::new(rejection.status(), "bad_request", rejection.body_text())
        })?;
    if bytes.is_empty() {
        return Ok(T::default());
    }
    Err(unsupported_media_type())
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|error| match error.classify() {
        serde_json::error::Category::Data => ApiError::unprocessable(error.to_string()),
        _ => ApiError::bad_request(format!("the body is not valid JSON: {error}")),
    })
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "send the body as JSON with Content-Type: application/json",
    )
}

/// The body of a request that says it is JSON: 415 when it does not, 413 beyond the body
/// limit.
pub(crate) async fn json_bytes<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<Bytes, ApiError> {
    if !is_json(request.headers()) {
        return Err(unsupported_media_type());
    }
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            let status = rejection.status();
            let code = match status {
                StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
                _ => "bad_request",
            };
            ApiError::new(status, code, rejection.body_text())
        })
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim();
            mime.eq_ignore_ascii_case("application/json")
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
}
