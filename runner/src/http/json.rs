//! JSON request bodies, read one way by every API: `413` over the router's size limit, `415`
//! without a JSON content type, `400` for malformed JSON, `422` naming the field for the
//! wrong shape.
//!
//! A router states its [`BodyRules`] with [`BodyRules::apply`]; handlers take a
//! [`JsonBody`] (a body is required) or an [`OptionalJsonBody`] (an empty body means the
//! type's default) as their last argument.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use axum::{Extension, Router};
use serde::de::DeserializeOwned;

use super::ApiError;

/// How one API reads request bodies: the size limit, and what its messages call the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyRules {
    /// The largest body accepted, in bytes; a larger one is `413`.
    pub limit: usize,
    /// What to send as JSON, in the `415` message: `the order`, `the request body`.
    pub noun: &'static str,
    /// How a `422` message starts: `invalid order`, `invalid request`.
    pub invalid: &'static str,
}

impl BodyRules {
    /// Bodies of up to 2 MiB, called "the request body".
    pub const DEFAULT: BodyRules =
        BodyRules { limit: 2 * 1024 * 1024, noun: "the request body", invalid: "invalid request" };

    /// The router with its body size limit and these rules in force for its extractors.
    pub fn apply<S: Clone + Send + Sync + 'static>(self, router: Router<S>) -> Router<S> {
        router.layer(DefaultBodyLimit::max(self.limit)).layer(Extension(self))
    }
}

/// A required JSON body of type `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

/// An optional JSON body: empty (or only white space) is `T::default()`; anything else must
/// be JSON of the right shape.
#[derive(Debug)]
pub struct OptionalJsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let (rules, headers, body) = read(request, state).await?;
        parse(&rules, &headers, &body).map(JsonBody)
    }
}

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let (rules, headers, body) = read(request, state).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(T::default()));
        }
        parse(&rules, &headers, &body).map(OptionalJsonBody)
    }
}

/// The router's rules, the headers, and the whole body (`413` when over the limit).
async fn read<S: Send + Sync>(request: Request, state: &S) -> Result<(BodyRules, HeaderMap, Bytes), ApiError> {
    let rules = request.extensions().get::<BodyRules>().copied().unwrap_or(BodyRules::DEFAULT);
    let headers = request.headers().clone();
    let body = Bytes::from_request(request, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is larger than the {}-byte limit", rules.limit),
            )
        } else {
            ApiError::new(rejection.status(), format!("cannot read the request body: {}", rejection.body_text()))
        }
    })?;
    Ok((rules, headers, body))
}

/// The body as a `T`: `415` without a JSON content type, `400` for malformed JSON, `422`
/// naming the field for the wrong shape.
fn parse<T: DeserializeOwned>(rules: &BodyRules, headers: &HeaderMap, body: &[u8]) -> Result<T, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.starts_with("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("send {} as JSON with `Content-Type: application/json`", rules.noun),
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                // A missing or unknown field of the top level has the path `.`: name the field.
                let field = if field == "." { named_field(&inner.to_string()).unwrap_or_default() } else { field };
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("{}: `{field}`: {inner}", rules.invalid))
                    .with_fields(vec![(field, inner.to_string())])
            }
            serde_json::error::Category::Syntax
            | serde_json::error::Category::Eof
            | serde_json::error::Category::Io => {
                ApiError::new(StatusCode::BAD_REQUEST, format!("malformed JSON: {inner}"))
            }
        }
    })?;
    deserializer.end().map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// The field a serde "missing field" or "unknown field" message names.
fn named_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `").or_else(|| message.strip_prefix("unknown field `"))?;
    rest.split_once('`').map(|(f, _)| f.to_string())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        count: u32,
    }

    const ORDER: BodyRules = BodyRules { limit: 1024, noun: "the order", invalid: "invalid order" };

    /// Parses `body` sent with `content_type`: the status, the message and the fields named.
    fn check(content_type: Option<&str>, body: &str) -> (u16, String, Vec<String>) {
        let mut headers = HeaderMap::new();
        if let Some(content_type) = content_type {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        }
        match parse::<Body>(&ORDER, &headers, body.as_bytes()) {
            Ok(_) => (200, String::new(), Vec::new()),
            Err(e) => (e.status.as_u16(), e.message, e.fields.into_iter().map(|(f, _)| f).collect()),
        }
    }

    #[test]
    fn answers_each_kind_of_bad_body() {
        let json = Some("application/json");
        let cases: [(Option<&str>, &str, u16, &str, &[&str]); 8] = [
            (json, r#"{"name": "a"}"#, 200, "", &[]),
            (Some("application/json; charset=utf-8"), r#"{"name": "a"}"#, 200, "", &[]),
            (Some("text/plain"), r#"{"name": "a"}"#, 415, "send the order as JSON", &[]),
            (None, r#"{"name": "a"}"#, 415, "`Content-Type: application/json`", &[]),
            (json, r#"{"name": "#, 400, "malformed JSON", &[]),
            (json, r#"{"name": "a"} x"#, 400, "malformed JSON", &[]),
            (
                json,
                r#"{"inner": {"count": "two"}, "name": "a"}"#,
                422,
                "invalid order: `inner.count`",
                &["inner.count"],
            ),
            (json, r#"{"nme": "a"}"#, 422, "invalid order: `nme`: unknown field `nme`", &["nme"]),
        ];
        for (content_type, body, status, message, fields) in cases {
            let (got, got_message, got_fields) = check(content_type, body);
            assert_eq!(got, status, "{body}: {got_message}");
            assert!(got_message.contains(message), "{body}: `{got_message}` should mention `{message}`");
            assert_eq!(got_fields, fields, "{body}");
        }
        assert_eq!(check(json, "{}").2, ["name"], "a missing field of the top level is named");
    }
}
