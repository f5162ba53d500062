//! The one error shape every simulator answers with, `{"error": "<code>", "message": "<text>"}`,
//! and the JSON body parsing that produces `400 invalid_request` instead of axum's plain-text
//! rejections — so an adapter can rely on a JSON error body from every endpoint.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// An error answer: status, machine-readable code, human-readable message.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// `400 invalid_request`.
    pub(crate) fn invalid_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// `404 not_found`.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// The JSON body.
    pub(crate) fn body(&self) -> Value {
        json!({"error": self.code, "message": self.message})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// Parses a JSON request body; anything malformed is `400 invalid_request` naming the problem.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::invalid_request(
            "the request body is empty; JSON expected",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_request(format!("malformed JSON body: {e}")))
}

/// The answer for a path no simulator serves.
pub(crate) async fn no_route() -> ApiError {
    ApiError::not_found("no such endpoint")
}

/// The answer for a known path with a method it does not take.
pub(crate) async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take this method",
    )
}

/// A timestamp as the simulators write it: RFC 3339, UTC, milliseconds, `Z`.
pub(crate) fn timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
