//! Which entries a request means: the filter fields of `GET /entries` and of the bulk
//! endpoints (topic, error kind, state, time range, text), each checked with a `400` that
//! says what to send instead. `queries.rs` turns a filter into SQL conditions.

use axum::http::StatusCode;
use serde::Serialize;

use super::entry::UNKNOWN_KIND;
use super::STATES;
use crate::http::ApiError;
use crate::transport::dead_letter::ErrorKind;

/// The longest text search, in characters.
const MAX_SEARCH_CHARS: usize = 200;

/// Which entries: every field given must match. Serialized as the audit trail records it.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    /// The dead-letter topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// The error kind, or `unknown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `new`, `replayed` or `discarded`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Dead-lettered at or after, Unix milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<i64>,
    /// Dead-lettered at or before, Unix milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<i64>,
    /// Text in the key or the payload, case-insensitive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
}

impl Filter {
    /// Checks each field; `from` and `to` are Unix milliseconds or RFC 3339 UTC times.
    pub fn parse(
        topic: Option<&str>,
        kind: Option<&str>,
        state: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
        q: Option<&str>,
    ) -> Result<Filter, ApiError> {
        let bad = |message: String| ApiError::new(StatusCode::BAD_REQUEST, message);
        let kinds: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).chain([UNKNOWN_KIND]).collect();
        let kind = match kind {
            Some(k) if kinds.contains(&k) => Some(k.to_string()),
            Some(k) => return Err(bad(format!("unknown error kind `{k}`; use one of {}", kinds.join(", ")))),
            None => None,
        };
        let state = match state {
            Some(s) if STATES.contains(&s) => Some(s.to_string()),
            Some(s) => return Err(bad(format!("unknown state `{s}`; use one of {}", STATES.join(", ")))),
            None => None,
        };
        let time = |name: &str, value: Option<&str>| -> Result<Option<i64>, ApiError> {
            value
                .map(|v| {
                    parse_time(v).ok_or_else(|| {
                        bad(format!(
                            "`{name}` must be Unix milliseconds or an RFC 3339 UTC time like 2025-01-31T12:00:00Z, not `{v}`"
                        ))
                    })
                })
                .transpose()
        };
        let (from, to) = (time("from", from)?, time("to", to)?);
        if let (Some(from), Some(to)) = (from, to) {
            if from > to {
                return Err(bad("`from` is after `to`; swap them".to_string()));
            }
        }
        let topic = match topic {
            Some("") => {
                return Err(bad("`topic` is empty; name a dead-letter topic, e.g. payment.requested.dlq".into()))
            }
            other => other.map(str::to_string),
        };
        let q = match q {
            Some(q) if q.chars().count() > MAX_SEARCH_CHARS => {
                return Err(bad(format!("`q` is longer than {MAX_SEARCH_CHARS} characters; search for a shorter text")))
            }
            Some("") | None => None,
            Some(q) => Some(q.to_string()),
        };
        Ok(Filter { topic, kind, state, from, to, q })
    }

    /// Whether no field is given (the filter matches every entry).
    pub fn is_empty(&self) -> bool {
        let Filter { topic, kind, state, from, to, q } = self;
        topic.is_none() && kind.is_none() && state.is_none() && from.is_none() && to.is_none() && q.is_none()
    }
}

/// Unix milliseconds, or an RFC 3339 UTC time.
fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    let time = humantime::parse_rfc3339_weak(text).ok()?;
    let since = time.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(since.as_millis()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_milliseconds_or_rfc3339() {
        assert_eq!(parse_time("1700000000000"), Some(1_700_000_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Some(1_700_000_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20.5Z"), Some(1_700_000_000_500));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn each_field_is_checked() {
        let long = "x".repeat(201);
        let cases: [([Option<&str>; 6], &str); 6] = [
            ([None, Some("moon"), None, None, None, None], "unknown error kind `moon`"),
            ([None, None, Some("lost"), None, None, None], "unknown state `lost`; use one of new, replayed, discarded"),
            ([None, None, None, Some("yesterday"), None, None], "`from` must be Unix milliseconds"),
            ([None, None, None, Some("2000"), Some("1000"), None], "`from` is after `to`"),
            ([Some(""), None, None, None, None, None], "`topic` is empty"),
            ([None, None, None, None, None, Some(long.as_str())], "`q` is longer than 200 characters"),
        ];
        for ([topic, kind, state, from, to, q], expected) in cases {
            let error = Filter::parse(topic, kind, state, from, to, q).unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST);
            assert!(error.message.contains(expected), "`{}` should mention `{expected}`", error.message);
        }
        let filter = Filter::parse(None, Some("unknown"), Some("new"), Some("1000"), None, Some("")).unwrap();
        assert_eq!((filter.kind.as_deref(), filter.from, filter.q), (Some("unknown"), Some(1000), None));
        assert!(Filter::parse(None, None, None, None, None, Some("")).unwrap().is_empty());
    }
}
