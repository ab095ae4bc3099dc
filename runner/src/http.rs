//! HTTP plumbing shared by every service: the one error type, which logs the cause and
//! answers the client a clean JSON message.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An error answered to an HTTP client: status, message, and the offending fields if any.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub fields: Vec<(String, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into(), fields: Vec::new() }
    }

    pub fn with_fields(mut self, fields: Vec<(String, String)>) -> Self {
        self.fields = fields;
        self
    }

    /// A server-side failure: the cause is logged, the client gets a generic message.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the service cannot answer right now; retry shortly")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if !self.fields.is_empty() {
            body["fields"] =
                self.fields.iter().map(|(field, message)| json!({ "field": field, "message": message })).collect();
        }
        (self.status, Json(body)).into_response()
    }
}
