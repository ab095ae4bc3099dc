//! The HTTP handlers of dlq-admin for topics, single entries and the audit trail: `GET
//! /topics`, `GET /entries`, `GET /entries/{id}`, `POST /entries/{id}/replay`, `POST
//! /entries/{id}/discard` and `GET /audit`. The bulk endpoints are in `bulk.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::actions::{self, audit_refusal, refuse_replay, Replayed};
use super::entry::{rfc3339, Entry};
use super::filter::Filter;
use super::{queries, AppState, MAX_PAGE, PREFIX, STATES};
use crate::admin::{self, Admin};
use crate::http::{known_params, ApiError, OptionalJsonBody, Page};
use crate::store::Store;

/// `GET /topics`: per dead-letter topic, its original topics, entries by state and error
/// kind, and when the oldest and newest were dead-lettered.
pub async fn topics(State(state): State<AppState>) -> Result<Response, ApiError> {
    #[derive(Default)]
    struct Topic {
        originals: BTreeSet<String>,
        by_state: BTreeMap<String, i64>,
        by_kind: BTreeMap<String, i64>,
        total: i64,
        oldest: Option<i64>,
        newest: Option<i64>,
    }
    let mut topics: BTreeMap<String, Topic> = BTreeMap::new();
    for count in queries::topic_counts(&state.ctx.store).await? {
        let t = topics.entry(count.dlq_topic).or_default();
        t.originals.extend(count.original_topic);
        *t.by_kind.entry(count.error_kind).or_default() += count.entries;
        *t.by_state.entry(count.state).or_default() += count.entries;
        t.total += count.entries;
        t.oldest = Some(t.oldest.map_or(count.oldest_ms, |o| o.min(count.oldest_ms)));
        t.newest = Some(t.newest.map_or(count.newest_ms, |n| n.max(count.newest_ms)));
    }
    let list: Vec<Value> = topics
        .into_iter()
        .map(|(topic, t)| {
            let by_state: BTreeMap<&str, i64> =
                STATES.iter().map(|s| (*s, t.by_state.get(*s).copied().unwrap_or(0))).collect();
            json!({
                "topic": topic,
                "originalTopics": t.originals,
                "total": t.total,
                "byState": by_state,
                "byKind": t.by_kind,
                "oldestMs": t.oldest,
                "oldest": t.oldest.map(rfc3339),
                "newestMs": t.newest,
                "newest": t.newest.map(rfc3339),
            })
        })
        .collect();
    Ok(Json(json!({ "topics": list })).into_response())
}

/// `GET /entries`: entries matching the filter, newest first, a page at a time.
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    known_params(&query, &["topic", "kind", "state", "from", "to", "q", "limit", "cursor"])?;
    let get = |name: &str| query.get(name).map(String::as_str);
    let filter = Filter::parse(get("topic"), get("kind"), get("state"), get("from"), get("to"), get("q"))?;
    let page = Page::from_query(&query, MAX_PAGE)?;
    let entries = queries::page(&state.ctx.store, &filter, page.cursor, page.limit).await?;
    let next = page.next_cursor(&entries, |e| e.id);
    let entries: Vec<Value> = entries.iter().map(Entry::summary).collect();
    Ok(Json(json!({ "entries": entries, "nextCursor": next })).into_response())
}

/// `GET /entries/{id}`: everything about one entry, with its history.
pub async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let entry = find(&state.ctx.store, &id).await?;
    let history = queries::load_history(&state.ctx.store, entry.id).await?;
    Ok(Json(entry.detail(&history, state.config.max_replays)).into_response())
}

/// The largest edited payload a replay sends, in bytes (as compact JSON): well below the
/// broker's message size (about 1 MB), with room for the key and headers.
pub const MAX_EDITED_PAYLOAD_BYTES: usize = 512 * 1024;

/// The body of `POST /entries/{id}/replay`, optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    /// The payload to send instead of the stored one; checked against the event type's schema.
    payload: Option<Value>,
}

/// `POST /entries/{id}/replay`: sends the entry (or an edited payload) to its original topic.
pub async fn replay_one(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalJsonBody(request): OptionalJsonBody<ReplayBody>,
) -> Result<Response, ApiError> {
    let entry = find(&state.ctx.store, &id).await?;
    let target = format!("dead-letter {}", entry.id);
    let edited = request.payload.as_ref().map(|p| serde_json::to_vec(p).unwrap_or_default());
    if let Some(size) = edited.as_ref().map(Vec::len).filter(|&size| size > MAX_EDITED_PAYLOAD_BYTES) {
        // Checked first, so the audit line records the size instead of the payload.
        let problem = format!("{size} bytes is over the {MAX_EDITED_PAYLOAD_BYTES}-byte limit; send a smaller payload");
        let details = json!({ "editedPayloadBytes": size });
        audit_refusal(&state.ctx.store, &admin.actor, "dlq.replay", &target, Some(&details), &problem).await;
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("the edited payload is refused: {problem}"))
            .with_fields(vec![("payload".to_string(), problem)]));
    }
    let details = request.payload.as_ref().map(|p| json!({ "editedPayload": p }));
    if let Some(refusal) = entry.refusal(state.config.max_replays) {
        return Err(refuse_replay(&state, &admin.actor, &entry, details.as_ref(), refusal).await);
    }
    let payload = match &request.payload {
        Some(payload) => {
            let event_type = entry.event_type().unwrap_or_default();
            // Each problem at its field (`payload/items/0/sku`), for the console's editor.
            let (problem, fields) = match state.schemas.problems(event_type, payload) {
                Ok(problems) if problems.is_empty() => (None, Vec::new()),
                Ok(problems) => {
                    let fields =
                        problems.iter().map(|p| (format!("payload{}", p.pointer), p.message.clone())).collect();
                    (Some(crate::schemas::summary(event_type, &problems)), fields)
                }
                Err(no_schema) => (Some(no_schema.clone()), vec![("payload".to_string(), no_schema)]),
            };
            if let Some(problem) = problem {
                audit_refusal(&state.ctx.store, &admin.actor, "dlq.replay", &target, details.as_ref(), &problem).await;
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("the edited payload is refused: {problem}; fix it and replay again"),
                )
                .with_fields(fields));
            }
            edited
        }
        None => None,
    };
    let count = match actions::replay(&state, &entry, payload, &admin.actor, details.as_ref(), false).await? {
        Replayed::Sent(count) => count,
        Replayed::Refused(why) => return Err(refuse_replay(&state, &admin.actor, &entry, details.as_ref(), why).await),
    };
    Ok(Json(json!({
        "id": entry.id,
        "state": "replayed",
        "replayCount": count,
        "sentTo": entry.original_topic,
        "edited": request.payload.is_some(),
    }))
    .into_response())
}

/// The body of `POST /entries/{id}/discard`, optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscardBody {
    /// Why, for the history and the audit trail.
    reason: Option<String>,
}

/// `POST /entries/{id}/discard`: marks the entry discarded; `changed` is false if it was.
pub async fn discard_one(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalJsonBody(request): OptionalJsonBody<DiscardBody>,
) -> Result<Response, ApiError> {
    let entry = find(&state.ctx.store, &id).await?;
    let changed = actions::discard(&state.ctx.store, &entry, &admin.actor, request.reason.as_deref(), false).await?;
    Ok(Json(json!({ "id": entry.id, "state": "discarded", "changed": changed })).into_response())
}

/// `GET /audit`: dlq-admin's lines of the audit trail, newest first, a page at a time.
pub async fn audit_list(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    known_params(&query, &["limit", "cursor"])?;
    let page = Page::from_query(&query, MAX_PAGE)?;
    let lines = admin::audit_page(&state.ctx.store, "dlq.", page.cursor, page.limit).await?;
    let next = page.next_cursor(&lines, |l| l.seq);
    Ok(Json(json!({ "audit": lines, "nextCursor": next })).into_response())
}

/// The entry of a path's `{id}`: `400` when it is not a number, `404` when there is none.
async fn find(store: &Store, id: &str) -> Result<Entry, ApiError> {
    let id = id.parse::<i64>().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("`{id}` is not an entry id; entry ids are numbers, see GET {PREFIX}/entries"),
        )
    })?;
    queries::load(store, id)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no dead-letter entry with id {id}")))
}
