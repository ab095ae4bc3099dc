//! What an operator does to one entry, alone or as part of a bulk request: replay it (send it
//! back to its original topic, then record that) or discard it. Both write the entry's
//! history and the audit trail.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::entry::Entry;
use super::{queries, AppState, PUBLISH_TIMEOUT};
use crate::admin::{self, AuditRecord};
use crate::event::now_ms;
use crate::http::ApiError;
use crate::store::{Store, StoreError};
use crate::telemetry;
use crate::transport::dead_letter;

/// What became of a replay that did not fail.
#[derive(Debug)]
pub enum Replayed {
    /// Sent and recorded: the entry's replay count now.
    Sent(i64),
    /// Not sent: another request took the last allowed replay (or discarded the entry) first.
    Refused(String),
}

/// Claims the entry's next replay (atomically: `max_replays` holds however many requests
/// race), sends it to its original topic with its key and headers (minus `dlq_*`, plus
/// `dlq_replay_count`), then marks it replayed with a history line and an audit line in one
/// transaction. The caller checked [`Entry::refusal`] on what it read; a request that loses
/// the race since is [`Replayed::Refused`] with the reason, for the caller to answer as it
/// answers its own refusals.
pub async fn replay(
    state: &AppState,
    entry: &Entry,
    edited_payload: Option<Vec<u8>>,
    actor: &str,
    details: Option<&Value>,
    bulk: bool,
) -> Result<Replayed, ApiError> {
    let topic = entry.original_topic.clone().unwrap_or_default();
    let max = state.config.max_replays;
    let Some(count) = queries::claim_replay(&state.ctx.store, entry.id, max, now_ms()).await? else {
        let current = queries::load(&state.ctx.store, entry.id).await?;
        let why = current
            .and_then(|e| e.refusal(max))
            .unwrap_or_else(|| format!("entry {} cannot be replayed now; read it again", entry.id));
        return Ok(Replayed::Refused(why));
    };
    let mut headers: Vec<(String, Vec<u8>)> = entry
        .header_pairs()
        .into_iter()
        .filter(|h| !h.name.starts_with("dlq_"))
        .map(|h| (h.name, h.value.into_bytes()))
        .collect();
    headers.push((dead_letter::REPLAY_COUNT.to_string(), count.to_string().into_bytes()));
    let edited = edited_payload.is_some();
    let payload = edited_payload.or_else(|| entry.payload_bytes());
    let key = entry.key_bytes();
    let target = format!("dead-letter {}", entry.id);
    let action = "dlq.replay";
    // The producer itself fails the record after PUBLISH_TIMEOUT; this is only a backstop.
    let sent = tokio::time::timeout(
        PUBLISH_TIMEOUT + Duration::from_secs(2),
        state.publisher.publish_raw(&topic, key.as_deref(), payload.as_deref(), &headers),
    )
    .await;
    let failure = match sent {
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            // Nothing was sent: the claim is given back. (After a timeout it is kept: the
            // record may still arrive, and counting it is the safe side of the limit.)
            if let Err(release) = queries::release_replay(&state.ctx.store, entry.id, now_ms()).await {
                tracing::error!(entry = entry.id, error = %release, "cannot give back the replay claim");
            }
            Some(format!("the broker refused the replay: {e}"))
        }
        Err(_) => Some(format!(
            "the broker did not acknowledge the replay within {}s; it may still arrive on `{topic}`: check that topic before replaying again",
            PUBLISH_TIMEOUT.as_secs()
        )),
    };
    if let Some(failure) = failure {
        tracing::error!(entry = entry.id, topic, error = failure, "replay failed");
        let record = AuditRecord { actor, action, target: &target, details, outcome: &format!("failed: {failure}") };
        if let Err(e) = admin::audit_now(&state.ctx.store, &record).await {
            tracing::error!(error = %e, "cannot write the audit trail");
        }
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, failure));
    }
    let detail = format!(
        "sent to {topic} as replay {count}{}{}",
        if edited { " with an edited payload" } else { "" },
        if bulk { " (bulk)" } else { "" }
    );
    let audit = AuditRecord { actor, action, target: &target, details, outcome: "ok" };
    queries::mark_replayed(&state.ctx.store, entry.id, &detail, &audit, now_ms()).await.map_err(|e| {
        tracing::error!(entry = entry.id, error = %e, "replayed, but cannot record it");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "entry {} was sent to `{topic}` but the database did not record it; it still shows as {}: do not replay it again",
                entry.id, entry.state
            ),
        )
    })?;
    metrics::counter!(telemetry::DLQ_REPLAYS, "topic" => topic).increment(1);
    Ok(Replayed::Sent(count))
}

/// Marks one entry discarded (with history and audit) unless it already is; false if it was.
pub async fn discard(
    store: &Store,
    entry: &Entry,
    actor: &str,
    reason: Option<&str>,
    bulk: bool,
) -> Result<bool, StoreError> {
    let detail = match (reason, bulk) {
        (Some(reason), true) => Some(format!("{reason} (bulk)")),
        (Some(reason), false) => Some(reason.to_string()),
        (None, true) => Some("bulk".to_string()),
        (None, false) => None,
    };
    let details = reason.map(|r| json!({ "reason": r }));
    let target = format!("dead-letter {}", entry.id);
    let audit = AuditRecord { actor, action: "dlq.discard", target: &target, details: details.as_ref(), outcome: "ok" };
    let changed = queries::mark_discarded(store, entry.id, detail.as_deref(), &audit, now_ms()).await?;
    if changed {
        metrics::counter!(telemetry::DLQ_DISCARDS, "topic" => entry.dlq_topic.clone()).increment(1);
    }
    Ok(changed)
}

/// Writes an audit line of a refused request on its own; a failure is logged (the request
/// is answered with the refusal anyway).
pub async fn audit_refusal(store: &Store, actor: &str, action: &str, target: &str, details: Option<&Value>, why: &str) {
    let record = AuditRecord { actor, action, target, details, outcome: &format!("refused: {why}") };
    if let Err(e) = admin::audit_now(store, &record).await {
        tracing::error!(error = %e, action, target, "cannot write the audit trail");
    }
}

/// A replay of one entry refused (`409`): counted and audited the same way, whether found
/// refusable before sending or lost to a racing request.
pub async fn refuse_replay(
    state: &AppState,
    actor: &str,
    entry: &Entry,
    details: Option<&Value>,
    why: String,
) -> ApiError {
    metrics::counter!(telemetry::DLQ_REPLAYS_REFUSED).increment(1);
    let target = format!("dead-letter {}", entry.id);
    audit_refusal(&state.ctx.store, actor, "dlq.replay", &target, details, &why).await;
    ApiError::new(StatusCode::CONFLICT, why)
}
