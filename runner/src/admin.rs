//! What every admin API shares: the bearer-token check on each endpoint that changes
//! something (the [`Admin`] extractor), and one audit trail of who did what and when.
//!
//! Tokens come from `[admin] tokens` (`holder = "token"`); the holder's name is the actor
//! recorded in the audit. A router adds [`AdminTokens`] as an extension and every changing
//! handler takes an [`Admin`] argument: no `Authorization` header (or a malformed one) is
//! `401` with `WWW-Authenticate: Bearer`, an unknown token is `403`.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

use crate::event::{now_ms, now_rfc3339};
use crate::http::ApiError;
use crate::store::{Store, StoreError, Tx};
use crate::telemetry;

/// Bearer tokens of the admin APIs, by holder name.
#[derive(Debug, Clone, Default)]
pub struct AdminConfig {
    pub tokens: Vec<(String, String)>,
}

/// The admin tokens a router accepts, by holder. Add it with `.layer(Extension(tokens))`.
#[derive(Clone)]
pub struct AdminTokens {
    holders: Arc<Vec<(String, Vec<u8>)>>,
}

impl AdminTokens {
    pub fn new(config: &AdminConfig) -> Self {
        let holders = config.tokens.iter().map(|(who, token)| (who.clone(), token.as_bytes().to_vec())).collect();
        AdminTokens { holders: Arc::new(holders) }
    }

    /// Who holds `token`. Every configured token is compared, each in constant time, so the
    /// answer's timing says nothing about how much of a token was right.
    pub fn holder(&self, token: &str) -> Option<&str> {
        let mut found = None;
        for (who, known) in self.holders.iter() {
            if constant_time_eq(known, token.as_bytes()) && found.is_none() {
                found = Some(who.as_str());
            }
        }
        found
    }
}

/// Equality whose time depends only on the lengths, never on where the bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    std::hint::black_box(diff) == 0
}

/// A caller that presented a valid admin token; `actor` is the token's holder.
#[derive(Debug, Clone)]
pub struct Admin {
    pub actor: String,
}

const CHALLENGE: &str = "Bearer realm=\"chaos-symphony\"";

fn denied(reason: &'static str) {
    metrics::counter!(telemetry::ADMIN_REQUESTS_DENIED, "reason" => reason).increment(1);
}

fn unauthorized(challenge: &'static str, message: &str) -> Response {
    ([(header::WWW_AUTHENTICATE, challenge)], ApiError::new(StatusCode::UNAUTHORIZED, message)).into_response()
}

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(tokens) = parts.extensions.get::<AdminTokens>().cloned() else {
            return Err(ApiError::internal("admin route without AdminTokens extension").into_response());
        };
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            denied("missing");
            return Err(unauthorized(
                CHALLENGE,
                "this endpoint changes things and needs an admin token: send `Authorization: Bearer <token>` with a token from [admin] tokens",
            ));
        };
        let token = value.to_str().ok().and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            let token = token.trim();
            (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
        });
        let Some(token) = token else {
            denied("malformed");
            return Err(unauthorized(
                "Bearer realm=\"chaos-symphony\", error=\"invalid_request\"",
                "the Authorization header must be `Bearer <token>`",
            ));
        };
        match tokens.holder(token) {
            Some(actor) => Ok(Admin { actor: actor.to_string() }),
            None if tokens.holders.is_empty() => {
                denied("no_tokens");
                Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "this service has no admin tokens, so nobody may change this; add [admin] tokens to its pipeline file",
                )
                .into_response())
            }
            None => {
                denied("unknown_token");
                tracing::warn!(path = %parts.uri.path(), "admin request with an unknown token refused");
                Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "the admin token is not valid here; use a token from [admin] tokens",
                )
                .into_response())
            }
        }
    }
}

/// One line of the audit trail, as written.
pub struct AuditRecord<'a> {
    pub actor: &'a str,
    /// `<api>.<verb>`, e.g. `dlq.replay`.
    pub action: &'a str,
    /// What was acted on, e.g. `dead-letter 42` or `filter`.
    pub target: &'a str,
    /// The request's particulars (filter, edited payload, counts), as JSON.
    pub details: Option<&'a Value>,
    /// `ok`, or `refused: …` / `failed: …` with the reason.
    pub outcome: &'a str,
}

/// Appends to the audit trail inside the caller's transaction.
pub async fn audit(tx: &mut Tx, record: &AuditRecord<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO admin_audit (actor, action, target, details, outcome, at_ms, at_rfc3339) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(record.actor)
    .bind(record.action)
    .bind(record.target)
    .bind(record.details.map(Value::to_string))
    .bind(record.outcome)
    .bind(now_ms())
    .bind(now_rfc3339())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Appends to the audit trail in a transaction of its own.
pub async fn audit_now(store: &Store, record: &AuditRecord<'_>) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    audit(&mut tx, record).await?;
    tx.commit().await?;
    Ok(())
}

/// One line of the audit trail, as the admin APIs show it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditView {
    pub seq: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    pub outcome: String,
    pub at_ms: i64,
    pub at: String,
}

/// Audit lines whose action starts with `action_prefix`, newest first, before `before` (a seq).
pub async fn audit_page(
    store: &Store,
    action_prefix: &str,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<AuditView>, StoreError> {
    let sql = format!(
        "SELECT seq, actor, action, target, details, outcome, at_ms, at_rfc3339 FROM admin_audit \
         WHERE action LIKE $1 AND seq < $2 ORDER BY seq DESC LIMIT {limit}"
    );
    let rows = sqlx::query(&sql)
        .bind(format!("{action_prefix}%"))
        .bind(before.unwrap_or(i64::MAX))
        .fetch_all(store.pool())
        .await?;
    rows.iter()
        .map(|r| {
            let details: Option<String> = r.try_get("details")?;
            Ok(AuditView {
                seq: r.try_get("seq")?,
                actor: r.try_get("actor")?,
                action: r.try_get("action")?,
                target: r.try_get("target")?,
                details: details.map(|d| serde_json::from_str(&d).unwrap_or(Value::String(d))),
                outcome: r.try_get("outcome")?,
                at_ms: r.try_get("at_ms")?,
                at: r.try_get("at_rfc3339")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> AdminTokens {
        AdminTokens::new(&AdminConfig {
            tokens: vec![
                ("alice".into(), "alice-token-0123456789".into()),
                ("bob".into(), "bob-token-0123456789".into()),
            ],
        })
    }

    #[test]
    fn finds_the_holder_of_a_token() {
        let tokens = tokens();
        assert_eq!(tokens.holder("alice-token-0123456789"), Some("alice"));
        assert_eq!(tokens.holder("bob-token-0123456789"), Some("bob"));
        assert_eq!(tokens.holder("bob-token-012345678"), None);
        assert_eq!(tokens.holder("bob-token-01234567890"), None);
        assert_eq!(tokens.holder(""), None);
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abc\0"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
