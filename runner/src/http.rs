//! HTTP plumbing shared by every service: the one error type, which logs the cause and
//! answers the client a clean JSON message.

use axum::http::{header, HeaderMap, StatusCode};
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

/// A JSON request body of type `T`: `415` without a JSON content type, `400` for malformed
/// JSON, `422` naming the field for the wrong shape.
pub fn json_body<T: serde::de::DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<T, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.starts_with("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the request body as JSON with `Content-Type: application/json`",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("invalid request: `{field}`: {inner}"))
                    .with_fields(vec![(field, inner.to_string())])
            }
            _ => ApiError::new(StatusCode::BAD_REQUEST, format!("malformed JSON: {inner}")),
        }
    })?;
    deserializer.end().map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")))?;
    Ok(value)
}
