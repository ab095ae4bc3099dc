//! JSON request bodies, read one way by every API: `413` over the router's size limit (at
//! once when `Content-Length` says so), `408` when the body trickles past the server's body
//! read timeout, `415` without a JSON media type, `400` for malformed JSON, `422` naming the
//! field for the wrong shape.
//!
//! A router states its [`BodyRules`] with [`BodyRules::apply`]; handlers take a
//! [`JsonBody`] (a body is required) or an [`OptionalJsonBody`] (an empty body means the
//! type's default) as their last argument.

use std::error::Error as StdError;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use axum::{Extension, Router};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;

use super::server::BodyTimeout;
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

    fn too_large(&self) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than the {}-byte limit; send a smaller one", self.limit),
        )
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

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        let (rules, headers, body) = read(request).await?;
        parse(&rules, &headers, &body).map(JsonBody)
    }
}

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        let (rules, headers, body) = read(request).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(T::default()));
        }
        parse(&rules, &headers, &body).map(OptionalJsonBody)
    }
}

/// The router's rules, the headers, and the whole body: `413` when over the limit — before
/// reading anything when `Content-Length` says so —, `408` when it arrives too slowly.
async fn read(request: Request) -> Result<(BodyRules, HeaderMap, Bytes), ApiError> {
    let rules = request.extensions().get::<BodyRules>().copied().unwrap_or(BodyRules::DEFAULT);
    let (parts, body) = request.into_parts();
    let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > rules.limit as u64) {
        return Err(rules.too_large());
    }
    let body = Limited::new(body, rules.limit).collect().await.map_err(|error| {
        let error: &(dyn StdError + 'static) = &*error;
        if find::<LengthLimitError>(error).is_some() {
            rules.too_large()
        } else if let Some(timeout) = find::<BodyTimeout>(error) {
            ApiError::new(StatusCode::REQUEST_TIMEOUT, timeout.to_string())
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, format!("cannot read the request body ({error}); send it again"))
        }
    })?;
    Ok((rules, parts.headers, body.to_bytes()))
}

/// The first error of type `T` in the chain of `error` and its sources.
fn find<'a, T: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    std::iter::successors(Some(error), |&e| e.source()).find_map(|e| e.downcast_ref::<T>())
}

/// Whether a `Content-Type` names JSON: `application/json` or `application/<x>+json`, type
/// and subtype in any case, with parameters; a `charset` must be UTF-8 (RFC 8259).
fn is_json(content_type: &str) -> bool {
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else { return false };
    let subtype = subtype.to_ascii_lowercase();
    let json_subtype = subtype == "json" || subtype.strip_suffix("+json").is_some_and(is_token);
    let charset_ok = parts.all(|parameter| match parameter.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        }
        _ => true,
    });
    kind.eq_ignore_ascii_case("application") && json_subtype && charset_ok
}

/// An RFC 9110 token: one or more visible characters other than separators.
fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The body as a `T`: `415` without a JSON content type, `400` for malformed JSON, `422`
/// naming the field for the wrong shape.
fn parse<T: DeserializeOwned>(rules: &BodyRules, headers: &HeaderMap, body: &[u8]) -> Result<T, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !is_json(content_type) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("send {} as UTF-8 JSON with `Content-Type: application/json`", rules.noun),
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
        #[allow(clippy::type_complexity)] // a table of cases reads best inline
        let cases: [(Option<&str>, &str, u16, &str, &[&str]); 8] = [
            (json, r#"{"name": "a"}"#, 200, "", &[]),
            (Some("application/json; charset=utf-8"), r#"{"name": "a"}"#, 200, "", &[]),
            (Some("text/plain"), r#"{"name": "a"}"#, 415, "send the order as UTF-8 JSON", &[]),
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

    /// Content types are media types: type and subtype in any case, parameters allowed,
    /// `application/json` or a `+json` suffix; a charset other than UTF-8 is not JSON.
    #[test]
    fn json_media_types() {
        let accepted = [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
            " application/json ; foo=bar",
            "application/merge-patch+json",
            "application/vnd.api+json; charset=utf-8",
            "APPLICATION/PROBLEM+JSON",
        ];
        let refused = [
            "",
            "text/plain",
            "application/jsonx",
            "application/json-seq",
            "application/+json",
            "text/json",
            "application/x-www-form-urlencoded",
            "application/json; charset=latin1",
            "json",
            "application/",
        ];
        for content_type in accepted {
            assert!(is_json(content_type), "`{content_type}` should be accepted as JSON");
        }
        for content_type in refused {
            assert!(!is_json(content_type), "`{content_type}` should be refused");
        }
    }

    /// A request to a router with the `ORDER` rules.
    fn request(content_length: Option<&str>, body: axum::body::Body) -> Request {
        let mut request = Request::new(body);
        request.extensions_mut().insert(ORDER);
        if let Some(length) = content_length {
            request.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from_str(length).unwrap());
        }
        request
    }

    /// The status `read` answers, within a second (a body it should not wait for never comes).
    async fn read_status(request: Request) -> u16 {
        let read = tokio::time::timeout(std::time::Duration::from_secs(1), read(request)).await;
        match read.expect("read answers at once") {
            Ok(_) => 200,
            Err(e) => e.status.as_u16(),
        }
    }

    #[tokio::test]
    async fn bodies_over_the_limit_or_too_slow() {
        type Chunk = Result<Bytes, std::io::Error>;
        let never = || axum::body::Body::from_stream(futures::stream::pending::<Chunk>());
        // A Content-Length over the limit is refused before a byte of the body is read.
        assert_eq!(read_status(request(Some("10000000000"), never())).await, 413);
        assert_eq!(read_status(request(Some("1025"), never())).await, 413);
        // Without one (chunked), the body is cut off at the limit.
        let chunks = futures::stream::iter((0..20).map(|_| Chunk::Ok(Bytes::from(vec![b' '; 100]))));
        assert_eq!(read_status(request(None, axum::body::Body::from_stream(chunks))).await, 413);
        let chunks = futures::stream::iter((0..10).map(|_| Chunk::Ok(Bytes::from(vec![b' '; 100]))));
        assert_eq!(read_status(request(None, axum::body::Body::from_stream(chunks))).await, 200);
        // The server's body deadline passed: 408, saying what to do.
        let late = futures::stream::iter([Err::<Bytes, _>(BodyTimeout(std::time::Duration::from_secs(30)))]);
        let error = read(request(Some("10"), axum::body::Body::from_stream(late))).await.unwrap_err();
        assert_eq!(error.status, StatusCode::REQUEST_TIMEOUT);
        assert!(error.message.contains("within 30s"), "{}", error.message);
    }
}
