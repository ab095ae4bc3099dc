//! The bulk endpoints of dlq-admin: `POST /replay` and `POST /discard` act on entries named
//! by `ids` or by filter fields (at most `max_bulk`), with a dry run that only reports what
//! would be done. A bulk replay is paced at `ratePerSecond` (at most `replay_rate`) and stops
//! at the first failure, saying how far it got.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::actions::{self, Replayed};
use super::entry::Entry;
use super::filter::Filter;
use super::{queries, AppState};
use crate::admin::{self, Admin, AuditRecord};
use crate::http::{ApiError, OptionalJsonBody};

/// The body of `POST /replay` and `POST /discard`: `ids`, or filter fields.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BulkRequest {
    ids: Option<Vec<i64>>,
    topic: Option<String>,
    kind: Option<String>,
    state: Option<String>,
    /// Unix milliseconds or an RFC 3339 UTC time.
    from: Option<Value>,
    to: Option<Value>,
    q: Option<String>,
    #[serde(default)]
    dry_run: bool,
    /// Replay only: messages per second, at most `replay_rate` (the default).
    rate_per_second: Option<u32>,
    /// Discard only: why, for the history and the audit trail.
    reason: Option<String>,
}

/// What a bulk request selected: entries to act on, and those it skipped with the reason.
struct Selection {
    target: String,
    details: Value,
    matched: i64,
    entries: Vec<Entry>,
    skipped: Vec<Value>,
}

impl Selection {
    /// The audit line of a bulk request over this selection.
    fn audit<'a>(&'a self, admin: &'a Admin, action: &'a str, details: &'a Value, outcome: &'a str) -> AuditRecord<'a> {
        AuditRecord { actor: &admin.actor, action, target: &self.target, details: Some(details), outcome }
    }
}

/// The entries a bulk request names: by `ids` (unknown ones skipped), or by filter (entries
/// not yet handled unless `state` says otherwise), at most `max_bulk`, oldest first.
async fn select_bulk(state: &AppState, request: &BulkRequest, verb: &str) -> Result<Selection, ApiError> {
    let bad = |message: String| ApiError::new(StatusCode::BAD_REQUEST, message);
    let time = |v: &Option<Value>| match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    let (from, to) = (time(&request.from), time(&request.to));
    let mut filter = Filter::parse(
        request.topic.as_deref(),
        request.kind.as_deref(),
        request.state.as_deref(),
        from.as_deref(),
        to.as_deref(),
        request.q.as_deref(),
    )?;
    let max = state.config.max_bulk;
    let store = &state.ctx.store;
    if let Some(ids) = &request.ids {
        if !filter.is_empty() {
            return Err(bad("give either `ids` or filter fields (topic, kind, state, from, to, q), not both".into()));
        }
        if ids.is_empty() {
            return Err(bad(format!("`ids` is empty; name the entries to {verb}")));
        }
        if ids.len() > max as usize {
            return Err(bad(format!(
                "{} ids are more than the limit of {max} (max_bulk); send them in parts",
                ids.len()
            )));
        }
        let mut wanted = ids.clone();
        wanted.sort_unstable();
        wanted.dedup();
        let entries = queries::load_many(store, &wanted).await?;
        let skipped = wanted
            .iter()
            .filter(|id| !entries.iter().any(|e| e.id == **id))
            .map(|id| json!({ "id": id, "reason": format!("no dead-letter entry with id {id}") }))
            .collect();
        return Ok(Selection {
            target: "ids".into(),
            details: json!({ "ids": wanted }),
            matched: entries.len() as i64,
            entries,
            skipped,
        });
    }
    if filter.is_empty() {
        return Err(bad(format!(
            "choose what to {verb}: give `ids`, or at least one of topic, kind, state, from, to, q"
        )));
    }
    if filter.state.as_deref() == Some("discarded") {
        return Err(bad(format!("discarded entries cannot be {verb}ed again; choose state new or replayed")));
    }
    // Entries already handled stay out unless asked for by state.
    filter.state.get_or_insert_with(|| "new".to_string());
    let (matched, entries) = queries::select(store, &filter, max).await?;
    Ok(Selection {
        target: "filter".into(),
        details: json!({ "filter": filter }),
        matched,
        entries,
        skipped: Vec::new(),
    })
}

/// `POST /replay`: replays the selected entries, paced, oldest first.
pub async fn replay_bulk(
    admin: Admin,
    State(state): State<AppState>,
    OptionalJsonBody(request): OptionalJsonBody<BulkRequest>,
) -> Result<Response, ApiError> {
    if request.reason.is_some() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "`reason` belongs to discard; remove it"));
    }
    let limit = state.config.replay_rate;
    let rate = match request.rate_per_second {
        Some(0) => {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("ratePerSecond must be from 1 to {limit}")))
        }
        Some(rate) => rate.min(limit),
        None => limit,
    };
    let mut selection = select_bulk(&state, &request, "replay").await?;
    let mut plan = Vec::new();
    for entry in std::mem::take(&mut selection.entries) {
        match entry.refusal(state.config.max_replays) {
            Some(reason) => selection.skipped.push(json!({ "id": entry.id, "reason": reason })),
            None => plan.push(entry),
        }
    }
    let remaining = (selection.matched - (plan.len() + selection.skipped.len()) as i64).max(0);
    let mut details = selection.details.clone();
    details["dryRun"] = json!(request.dry_run);
    details["ratePerSecond"] = json!(rate);
    if request.dry_run {
        let outcome = format!("dry run: would send {}", plan.len());
        let record = selection.audit(&admin, "dlq.bulk_replay", &details, &outcome);
        admin::audit_now(&state.ctx.store, &record).await?;
        return Ok(Json(json!({
            "dryRun": true,
            "matched": selection.matched,
            "remaining": remaining,
            "ratePerSecond": rate,
            "wouldSend": plan.iter().map(Entry::planned).collect::<Vec<_>>(),
            "skipped": selection.skipped,
            "estimatedSeconds": plan.len().saturating_sub(1) as f64 / f64::from(rate),
        }))
        .into_response());
    }
    let started = tokio::time::Instant::now();
    let interval = Duration::from_secs(1) / rate;
    let mut sent = Vec::new();
    let mut failure = None;
    let mut processed = 0;
    for (i, selected) in plan.iter().enumerate() {
        let due = started + interval * i as u32;
        tokio::select! {
            _ = state.ctx.shutdown.cancelled() => {
                failure = Some(json!({ "id": selected.id, "error": "the service is shutting down; replay the rest later" }));
                break;
            }
            _ = tokio::time::sleep_until(due) => {}
        }
        // Read again: another operator may have replayed or discarded it since it was selected.
        let entry = match queries::load(&state.ctx.store, selected.id).await {
            Ok(Some(entry)) => entry,
            Ok(None) => selected.clone(),
            Err(e) => {
                tracing::error!(error = %e, "bulk replay stopped");
                failure = Some(json!({ "id": selected.id, "error": "the database did not answer" }));
                break;
            }
        };
        let outcome = match entry.refusal(state.config.max_replays) {
            Some(reason) => Ok(Replayed::Refused(reason)),
            None => actions::replay(&state, &entry, None, &admin.actor, Some(&json!({ "bulk": true })), true).await,
        };
        match outcome {
            Ok(Replayed::Sent(_)) => sent.push(entry.planned()),
            // Refused before sending, or lost to a racing request: skipped, the bulk goes on.
            Ok(Replayed::Refused(reason)) => selection.skipped.push(json!({ "id": entry.id, "reason": reason })),
            Err(e) => {
                failure = Some(json!({ "id": entry.id, "error": e.message }));
                break;
            }
        }
        processed += 1;
    }
    let took = started.elapsed();
    let not_sent = plan.len() - processed;
    details["sent"] = json!(sent.iter().map(|s| s["id"].clone()).collect::<Vec<_>>());
    let outcome = match &failure {
        None => format!("ok: sent {}", sent.len()),
        Some(f) => format!("failed after sending {}: {}", sent.len(), f["error"].as_str().unwrap_or_default()),
    };
    let record = selection.audit(&admin, "dlq.bulk_replay", &details, &outcome);
    if let Err(e) = admin::audit_now(&state.ctx.store, &record).await {
        tracing::error!(error = %e, "cannot write the audit trail");
    }
    let mut answer = json!({
        "dryRun": false,
        "matched": selection.matched,
        "remaining": remaining + not_sent as i64,
        "ratePerSecond": rate,
        "sent": sent,
        "skipped": selection.skipped,
        "tookMs": took.as_millis() as u64,
    });
    let status = match failure {
        None => StatusCode::OK,
        Some(failure) => {
            answer["error"] = json!(format!(
                "stopped after sending {} of {}: {}; send the same request again to go on",
                sent.len(),
                plan.len(),
                failure["error"].as_str().unwrap_or_default()
            ));
            answer["failed"] = failure;
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    Ok((status, Json(answer)).into_response())
}

/// `POST /discard`: discards the selected entries.
pub async fn discard_bulk(
    admin: Admin,
    State(state): State<AppState>,
    OptionalJsonBody(request): OptionalJsonBody<BulkRequest>,
) -> Result<Response, ApiError> {
    if request.rate_per_second.is_some() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "`ratePerSecond` belongs to replay; remove it"));
    }
    let mut selection = select_bulk(&state, &request, "discard").await?;
    let mut plan = Vec::new();
    for entry in std::mem::take(&mut selection.entries) {
        if entry.state == "discarded" {
            selection
                .skipped
                .push(json!({ "id": entry.id, "reason": format!("entry {} is already discarded", entry.id) }));
        } else {
            plan.push(entry);
        }
    }
    let remaining = (selection.matched - (plan.len() + selection.skipped.len()) as i64).max(0);
    let mut details = selection.details.clone();
    details["dryRun"] = json!(request.dry_run);
    if let Some(reason) = &request.reason {
        details["reason"] = json!(reason);
    }
    let ids = |entries: &[Entry]| entries.iter().map(|e| e.id).collect::<Vec<_>>();
    if request.dry_run {
        let outcome = format!("dry run: would discard {}", plan.len());
        let record = selection.audit(&admin, "dlq.bulk_discard", &details, &outcome);
        admin::audit_now(&state.ctx.store, &record).await?;
        return Ok(Json(json!({
            "dryRun": true,
            "matched": selection.matched,
            "remaining": remaining,
            "wouldDiscard": ids(&plan),
            "skipped": selection.skipped,
        }))
        .into_response());
    }
    let mut discarded = Vec::new();
    let mut stopped = false;
    for entry in &plan {
        match actions::discard(&state.ctx.store, entry, &admin.actor, request.reason.as_deref(), true).await {
            Ok(true) => discarded.push(entry.id),
            Ok(false) => selection
                .skipped
                .push(json!({ "id": entry.id, "reason": format!("entry {} is already discarded", entry.id) })),
            Err(e) => {
                tracing::error!(error = %e, discarded = discarded.len(), "bulk discard stopped");
                stopped = true;
                break;
            }
        }
    }
    details["discarded"] = json!(discarded);
    let outcome = if stopped {
        format!("failed after discarding {}: the database did not answer", discarded.len())
    } else {
        format!("ok: discarded {}", discarded.len())
    };
    let record = selection.audit(&admin, "dlq.bulk_discard", &details, &outcome);
    if let Err(e) = admin::audit_now(&state.ctx.store, &record).await {
        tracing::error!(error = %e, "cannot write the audit trail");
    }
    if stopped {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "stopped after discarding {} of {}; the database did not answer: send the same request again",
                discarded.len(),
                plan.len()
            ),
        ));
    }
    Ok(Json(json!({
        "dryRun": false,
        "matched": selection.matched,
        "remaining": remaining,
        "discarded": discarded,
        "skipped": selection.skipped,
    }))
    .into_response())
}
