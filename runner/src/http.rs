//! HTTP plumbing shared by every API: the one error type, which logs the cause and answers
//! the client a clean JSON message (a database or broker failure becomes it through `?`),
//! JSON request bodies ([`JsonBody`]), paging ([`Page`]), the route table ([`Routes`]), the
//! server loop ([`serve`]) and the web console for every other path ([`console`]).

pub mod console;
mod json;
mod paging;
mod routes;
mod server;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

pub use json::{BodyRules, JsonBody, OptionalJsonBody};
pub use paging::{known_params, Page};
pub use routes::{Access, RouteEntry, Routes};
pub use server::{serve, BodyTimeout, ServerLimits};

use crate::store::StoreError;
use crate::transport::{HandleError, TransportError};

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

/// The database failed: `503`, the cause logged.
impl From<StoreError> for ApiError {
    fn from(cause: StoreError) -> Self {
        ApiError::internal(cause)
    }
}

/// The broker failed: `503`, the cause logged.
impl From<TransportError> for ApiError {
    fn from(cause: TransportError) -> Self {
        ApiError::internal(cause)
    }
}

/// An event the request could not write (it failed its schema, or the database failed):
/// `503`, the cause logged.
impl From<HandleError> for ApiError {
    fn from(cause: HandleError) -> Self {
        ApiError::internal(cause)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if !self.fields.is_empty() {
            body["fields"] =
                self.fields.iter().map(|(field, message)| json!({ "field": field, "message": message })).collect();
        }
        let mut response = (self.status, Json(body)).into_response();
        // A body refused unread (too large, or too slow) leaves the rest of it on the
        // connection: the client is told it closes, so it does not send its next request on a
        // connection the server is closing (a pooled client saw that as an incomplete answer).
        if matches!(self.status, StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT) {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}
