//! dlq-admin: follows every dead-letter topic into the `dead_letters` table (each record
//! once, with a state — new, replayed, discarded — and a history) and serves `/api/dlq`:
//! browse and filter entries, replay one or many to their original topic (optionally with
//! an edited, schema-checked payload, rate-limited, with a dry run), discard, and the audit
//! trail. Every endpoint that changes something needs an admin token ([`crate::admin`]).
//!
//! A replayed record carries `dlq_replay_count`, which consumers keep when they dead-letter
//! it again; an entry at `max_replays` is refused, so a message cannot loop forever.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::Row;

use super::ServiceContext;
use crate::admin::{self, Admin, AdminTokens, AuditRecord};
use crate::config::model::{AdminConfig, DlqAdminConfig};
use crate::event::now_ms;
use crate::http::ApiError;
use crate::schemas::SchemaRegistry;
use crate::store::{Store, StoreError, Tx};
use crate::telemetry;
use crate::transport::dead_letter::{self, ErrorKind};
use crate::transport::{consume_raw, DeliveryPolicy, HandleError, Publisher, RawMessage, TransportError};

/// Where the routes of dlq-admin are mounted.
pub const PREFIX: &str = "/api/dlq";

/// The states of an entry.
const STATES: [&str; 3] = ["new", "replayed", "discarded"];
/// The error kind of a dead letter without a (known) `dlq_error_kind` header.
const UNKNOWN_KIND: &str = "unknown";
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;
/// How long a replay waits for the broker's acknowledgement before answering 503.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the entries gauge is refreshed.
const GAUGE_INTERVAL: Duration = Duration::from_secs(5);
/// Characters of the payload shown in lists.
const PREVIEW_CHARS: usize = 200;

// ---------------------------------------------------------------------------------------------
// Ingest
// ---------------------------------------------------------------------------------------------

/// Follows the dead-letter topics (`config.topics`, a regular expression) until shutdown,
/// recording each record once. A failure to record is a database outage: it is retried until
/// it passes and never dead-lettered itself (that would loop into `<topic>.dlq.dlq`).
pub async fn run(ctx: ServiceContext, config: DlqAdminConfig) -> Result<(), TransportError> {
    let consumer = ctx.broker.consumer(&config.group, std::slice::from_ref(&config.topics))?;
    let name = format!("{}/dlq-admin", ctx.service);
    let policy = DeliveryPolicy {
        group: config.group.clone(),
        attempts: 1,
        backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(5),
        jitter: 0.2,
        retryable: vec![ErrorKind::Unavailable],
        dead_letter_topic: None,
        redeliver: ctx.broker.config().redeliver_each_message,
        chaos: None,
        skip_unusable: false,
    };
    // Never used: every failure below is `unavailable`, which is retried, not dead-lettered.
    let dead_letters = ctx.broker.publisher()?;
    tracing::info!(consumer = name, topics = config.topics, group = config.group, "dead-letter ingest started");
    let ingest = consume_raw(consumer, &name, ctx.shutdown.clone(), policy, dead_letters, |raw| ingest(&ctx, raw));
    tokio::join!(ingest, refresh_gauge(&ctx));
    tracing::info!(consumer = name, "dead-letter ingest stopped");
    Ok(())
}

async fn ingest(ctx: &ServiceContext, raw: Arc<RawMessage>) -> Result<(), HandleError> {
    let entry = Entry::from_raw(&raw, now_ms());
    match insert(&ctx.store, &entry, &ctx.service).await {
        Ok(true) => {
            metrics::counter!(telemetry::DLQ_ENTRIES_INGESTED, "topic" => entry.dlq_topic.clone()).increment(1);
            tracing::debug!(topic = raw.topic, offset = raw.offset, "dead letter recorded");
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(e) => Err(HandleError::new(ErrorKind::Unavailable, format!("cannot record the dead letter: {e}"))),
    }
}

/// Sets the entries gauge (by dead-letter topic and state) every few seconds until shutdown.
async fn refresh_gauge(ctx: &ServiceContext) {
    loop {
        match counts_by_topic_and_state(&ctx.store).await {
            Ok(counts) => {
                for (topic, by_state) in counts {
                    for state in STATES {
                        let n = by_state.get(state).copied().unwrap_or(0);
                        metrics::gauge!(telemetry::DLQ_ENTRIES, "topic" => topic.clone(), "state" => state)
                            .set(n as f64);
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot count dead-letter entries"),
        }
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            _ = tokio::time::sleep(GAUGE_INTERVAL) => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Entries in the database
// ---------------------------------------------------------------------------------------------

/// One dead letter as stored.
#[derive(Debug, Clone, Default)]
struct Entry {
    id: i64,
    dlq_topic: String,
    dlq_partition: i64,
    dlq_offset: i64,
    dead_lettered_at_ms: i64,
    original_topic: Option<String>,
    original_partition: Option<i64>,
    original_offset: Option<i64>,
    original_timestamp_ms: Option<i64>,
    consumer_group: Option<String>,
    error_kind: String,
    error_message: Option<String>,
    attempts: Option<i64>,
    first_failure_at: Option<String>,
    last_failure_at: Option<String>,
    ce_id: Option<String>,
    ce_type: Option<String>,
    ce_source: Option<String>,
    ce_time: Option<String>,
    traceparent: Option<String>,
    content_type: Option<String>,
    key: Option<String>,
    key_hex: Option<String>,
    payload: Option<String>,
    payload_hex: Option<String>,
    /// JSON array of `{name, value}`, in record order.
    headers: String,
    state: String,
    replay_count: i64,
    received_at_ms: i64,
    updated_at_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct HeaderPair {
    name: String,
    value: String,
}

const COLUMNS: &str = "id, dlq_topic, dlq_partition, dlq_offset, dead_lettered_at_ms, original_topic, \
    original_partition, original_offset, original_timestamp_ms, consumer_group, error_kind, error_message, \
    attempts, first_failure_at, last_failure_at, ce_id, ce_type, ce_source, ce_time, traceparent, content_type, \
    message_key, key_hex, payload, payload_hex, headers, state, replay_count, received_at_ms, updated_at_ms";

impl Entry {
    fn from_raw(raw: &RawMessage, now: i64) -> Entry {
        let header = |name: &str| raw.header(name).map(clean);
        let number = |name: &str| header(name).and_then(|v| v.trim().parse::<i64>().ok());
        let (key, key_hex) = text_and_hex(raw.key.as_deref());
        let (payload, payload_hex) = text_and_hex(raw.payload.as_deref());
        let headers: Vec<HeaderPair> = raw
            .headers
            .iter()
            .map(|(name, value)| HeaderPair { name: clean(name.clone()), value: clean_bytes(value) })
            .collect();
        let error_kind = header(dead_letter::ERROR_KIND)
            .and_then(|k| ErrorKind::parse(k.trim()))
            .map_or(UNKNOWN_KIND, ErrorKind::as_str)
            .to_string();
        Entry {
            id: 0,
            dlq_topic: raw.topic.clone(),
            dlq_partition: i64::from(raw.partition),
            dlq_offset: raw.offset,
            dead_lettered_at_ms: raw.timestamp_ms.filter(|t| *t > 0).unwrap_or(now),
            original_topic: header(dead_letter::ORIGINAL_TOPIC).filter(|t| !t.is_empty()),
            original_partition: number(dead_letter::ORIGINAL_PARTITION),
            original_offset: number(dead_letter::ORIGINAL_OFFSET),
            original_timestamp_ms: number(dead_letter::ORIGINAL_TIMESTAMP),
            consumer_group: header(dead_letter::CONSUMER_GROUP),
            error_kind,
            error_message: header(dead_letter::ERROR_MESSAGE),
            attempts: number(dead_letter::ATTEMPTS),
            first_failure_at: header(dead_letter::FIRST_FAILURE_AT),
            last_failure_at: header(dead_letter::LAST_FAILURE_AT),
            ce_id: header("ce_id"),
            ce_type: header("ce_type"),
            ce_source: header("ce_source"),
            ce_time: header("ce_time"),
            traceparent: header("traceparent"),
            content_type: header("content-type"),
            key,
            key_hex,
            payload,
            payload_hex,
            headers: serde_json::to_string(&headers).unwrap_or_else(|_| "[]".into()),
            state: "new".into(),
            replay_count: number(dead_letter::REPLAY_COUNT).unwrap_or(0).max(0),
            received_at_ms: now,
            updated_at_ms: now,
        }
    }

    fn from_row(row: &sqlx::any::AnyRow) -> Result<Entry, StoreError> {
        Ok(Entry {
            id: row.try_get(0)?,
            dlq_topic: row.try_get(1)?,
            dlq_partition: row.try_get(2)?,
            dlq_offset: row.try_get(3)?,
            dead_lettered_at_ms: row.try_get(4)?,
            original_topic: row.try_get(5)?,
            original_partition: row.try_get(6)?,
            original_offset: row.try_get(7)?,
            original_timestamp_ms: row.try_get(8)?,
            consumer_group: row.try_get(9)?,
            error_kind: row.try_get(10)?,
            error_message: row.try_get(11)?,
            attempts: row.try_get(12)?,
            first_failure_at: row.try_get(13)?,
            last_failure_at: row.try_get(14)?,
            ce_id: row.try_get(15)?,
            ce_type: row.try_get(16)?,
            ce_source: row.try_get(17)?,
            ce_time: row.try_get(18)?,
            traceparent: row.try_get(19)?,
            content_type: row.try_get(20)?,
            key: row.try_get(21)?,
            key_hex: row.try_get(22)?,
            payload: row.try_get(23)?,
            payload_hex: row.try_get(24)?,
            headers: row.try_get(25)?,
            state: row.try_get(26)?,
            replay_count: row.try_get(27)?,
            received_at_ms: row.try_get(28)?,
            updated_at_ms: row.try_get(29)?,
        })
    }

    /// The event type the payload is checked against: `ce_type`, else the original topic.
    fn event_type(&self) -> Option<&str> {
        self.ce_type.as_deref().or(self.original_topic.as_deref())
    }

    fn key_bytes(&self) -> Option<Vec<u8>> {
        match (&self.key_hex, &self.key) {
            (Some(hex), _) => from_hex(hex),
            (None, Some(text)) => Some(text.clone().into_bytes()),
            (None, None) => None,
        }
    }

    fn payload_bytes(&self) -> Option<Vec<u8>> {
        match (&self.payload_hex, &self.payload) {
            (Some(hex), _) => from_hex(hex),
            (None, Some(text)) => Some(text.clone().into_bytes()),
            (None, None) => None,
        }
    }

    fn header_pairs(&self) -> Vec<HeaderPair> {
        serde_json::from_str(&self.headers).unwrap_or_default()
    }

    /// Why this entry may not be replayed, if it may not.
    fn refusal(&self, max_replays: u32) -> Option<String> {
        let id = self.id;
        if self.state == "discarded" {
            return Some(format!("entry {id} was discarded; discarded entries are not replayed"));
        }
        if self.replay_count >= i64::from(max_replays) {
            return Some(format!(
                "entry {id} was already replayed {} time(s), the limit (max_replays = {max_replays}); fix the cause and send a new message, or discard it",
                self.replay_count
            ));
        }
        if self.original_topic.is_none() {
            return Some(format!(
                "entry {id} does not name its original topic (no {} header); it cannot be replayed",
                dead_letter::ORIGINAL_TOPIC
            ));
        }
        None
    }

    /// The entry as lists show it.
    fn summary(&self) -> Value {
        let preview = self.payload.as_deref().map(|p| {
            if p.chars().count() > PREVIEW_CHARS {
                format!("{}…", p.chars().take(PREVIEW_CHARS).collect::<String>())
            } else {
                p.to_string()
            }
        });
        json!({
            "id": self.id,
            "topic": self.dlq_topic,
            "partition": self.dlq_partition,
            "offset": self.dlq_offset,
            "originalTopic": self.original_topic,
            "eventType": self.event_type(),
            "key": self.key,
            "errorKind": self.error_kind,
            "errorMessage": self.error_message,
            "attempts": self.attempts,
            "state": self.state,
            "replayCount": self.replay_count,
            "deadLetteredAtMs": self.dead_lettered_at_ms,
            "deadLetteredAt": rfc3339(self.dead_lettered_at_ms),
            "payloadPreview": preview,
        })
    }

    /// Everything known about the entry.
    fn detail(&self, history: Vec<Value>, max_replays: u32) -> Value {
        let (payload, encoding) = match (&self.payload, &self.payload_hex) {
            (None, _) => (Value::Null, "none"),
            (Some(text), Some(_)) => (Value::String(text.clone()), "binary"),
            (Some(text), None) => match serde_json::from_str::<Value>(text) {
                Ok(value) => (value, "json"),
                Err(_) => (Value::String(text.clone()), "text"),
            },
        };
        let refusal = self.refusal(max_replays);
        let mut detail = self.summary();
        let extra = json!({
            "payload": payload,
            "payloadEncoding": encoding,
            "payloadHex": self.payload_hex,
            "keyHex": self.key_hex,
            "original": {
                "topic": self.original_topic,
                "partition": self.original_partition,
                "offset": self.original_offset,
                "timestampMs": self.original_timestamp_ms,
                "timestamp": self.original_timestamp_ms.map(rfc3339),
            },
            "consumerGroup": self.consumer_group,
            "firstFailureAt": self.first_failure_at,
            "lastFailureAt": self.last_failure_at,
            "cloudEvent": {
                "id": self.ce_id,
                "type": self.ce_type,
                "source": self.ce_source,
                "time": self.ce_time,
                "contentType": self.content_type,
            },
            "traceparent": self.traceparent,
            "headers": self.header_pairs(),
            "receivedAtMs": self.received_at_ms,
            "updatedAtMs": self.updated_at_ms,
            "replay": {
                "allowed": refusal.is_none(),
                "refusal": refusal,
                "maxReplays": max_replays,
                "replaysLeft": (i64::from(max_replays) - self.replay_count).max(0),
            },
            "history": history,
        });
        if let (Some(detail), Value::Object(extra)) = (detail.as_object_mut(), extra) {
            detail.remove("payloadPreview");
            detail.extend(extra);
        }
        detail
    }

    /// What a bulk replay sends (or would send) for this entry.
    fn planned(&self) -> Value {
        json!({
            "id": self.id,
            "topic": self.dlq_topic,
            "originalTopic": self.original_topic,
            "key": self.key,
            "eventType": self.event_type(),
            "replayCount": self.replay_count + 1,
        })
    }
}

/// Records a dead letter and its `received` history line; false when it was recorded before.
async fn insert(store: &Store, e: &Entry, actor: &str) -> Result<bool, StoreError> {
    let mut tx = store.begin().await?;
    let sql = format!(
        "INSERT INTO dead_letters ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
         $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29) \
         ON CONFLICT (dlq_topic, dlq_partition, dlq_offset) DO NOTHING RETURNING id",
        COLUMNS.trim_start_matches("id, ")
    );
    let id: Option<i64> = sqlx::query(&sql)
        .bind(&e.dlq_topic)
        .bind(e.dlq_partition)
        .bind(e.dlq_offset)
        .bind(e.dead_lettered_at_ms)
        .bind(&e.original_topic)
        .bind(e.original_partition)
        .bind(e.original_offset)
        .bind(e.original_timestamp_ms)
        .bind(&e.consumer_group)
        .bind(&e.error_kind)
        .bind(&e.error_message)
        .bind(e.attempts)
        .bind(&e.first_failure_at)
        .bind(&e.last_failure_at)
        .bind(&e.ce_id)
        .bind(&e.ce_type)
        .bind(&e.ce_source)
        .bind(&e.ce_time)
        .bind(&e.traceparent)
        .bind(&e.content_type)
        .bind(&e.key)
        .bind(&e.key_hex)
        .bind(&e.payload)
        .bind(&e.payload_hex)
        .bind(&e.headers)
        .bind(&e.state)
        .bind(e.replay_count)
        .bind(e.received_at_ms)
        .bind(e.updated_at_ms)
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
    let Some(id) = id else {
        tx.rollback().await?;
        return Ok(false);
    };
    let detail = format!(
        "{} after {} attempt(s){}{}",
        e.error_kind,
        e.attempts.map_or_else(|| "?".to_string(), |a| a.to_string()),
        e.consumer_group.as_deref().map(|g| format!(" in group {g}")).unwrap_or_default(),
        e.error_message.as_deref().map(|m| format!(": {m}")).unwrap_or_default(),
    );
    history(&mut tx, id, "received", actor, Some(&detail), e.received_at_ms).await?;
    tx.commit().await?;
    Ok(true)
}

async fn history(
    tx: &mut Tx,
    entry_id: i64,
    action: &str,
    actor: &str,
    detail: Option<&str>,
    at_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO dead_letter_history (entry_id, action, actor, detail, at_ms) VALUES ($1, $2, $3, $4, $5)")
        .bind(entry_id)
        .bind(action)
        .bind(actor)
        .bind(detail)
        .bind(at_ms)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn load(store: &Store, id: i64) -> Result<Option<Entry>, StoreError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM dead_letters WHERE id = $1"))
        .bind(id)
        .fetch_optional(store.pool())
        .await?;
    row.as_ref().map(Entry::from_row).transpose()
}

async fn load_history(store: &Store, id: i64) -> Result<Vec<Value>, StoreError> {
    let rows =
        sqlx::query("SELECT action, actor, detail, at_ms FROM dead_letter_history WHERE entry_id = $1 ORDER BY seq")
            .bind(id)
            .fetch_all(store.pool())
            .await?;
    rows.iter()
        .map(|r| {
            let at_ms: i64 = r.try_get(3)?;
            Ok(json!({
                "action": r.try_get::<String, _>(0)?,
                "actor": r.try_get::<String, _>(1)?,
                "detail": r.try_get::<Option<String>, _>(2)?,
                "atMs": at_ms,
                "at": rfc3339(at_ms),
            }))
        })
        .collect()
}

async fn counts_by_topic_and_state(store: &Store) -> Result<BTreeMap<String, BTreeMap<String, i64>>, StoreError> {
    let rows = sqlx::query("SELECT dlq_topic, state, COUNT(*) FROM dead_letters GROUP BY dlq_topic, state")
        .fetch_all(store.pool())
        .await?;
    let mut counts: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for row in rows {
        counts.entry(row.try_get(0)?).or_default().insert(row.try_get(1)?, row.try_get(2)?);
    }
    Ok(counts)
}

/// A parameter of a query built at run time.
#[derive(Debug, Clone)]
enum Bind {
    Text(String),
    Int(i64),
}

/// Conditions and their parameters, numbered `$1`, `$2`, … in order.
#[derive(Debug, Default)]
struct Conditions {
    sql: Vec<String>,
    binds: Vec<Bind>,
}

impl Conditions {
    fn param(&mut self, bind: Bind) -> String {
        self.binds.push(bind);
        format!("${}", self.binds.len())
    }

    fn clause(&self) -> String {
        if self.sql.is_empty() {
            "1 = 1".to_string()
        } else {
            self.sql.join(" AND ")
        }
    }

    fn query<'q>(&self, sql: &'q str) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        let mut query = sqlx::query(sql);
        for bind in &self.binds {
            query = match bind {
                Bind::Text(text) => query.bind(text.clone()),
                Bind::Int(n) => query.bind(*n),
            };
        }
        query
    }
}

/// Which entries: the fields of `GET /entries` and of the bulk endpoints.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(skip_serializing_if = "Option::is_none")]
    topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    q: Option<String>,
}

impl Filter {
    /// Checks each field; `from` and `to` are Unix milliseconds or RFC 3339 UTC times.
    fn parse(
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
            Some(q) if q.chars().count() > 200 => {
                return Err(bad("`q` is longer than 200 characters; search for a shorter text".to_string()))
            }
            Some("") | None => None,
            Some(q) => Some(q.to_string()),
        };
        Ok(Filter { topic, kind, state, from, to, q })
    }

    fn is_empty(&self) -> bool {
        self.topic.is_none()
            && self.kind.is_none()
            && self.state.is_none()
            && self.from.is_none()
            && self.to.is_none()
            && self.q.is_none()
    }

    fn conditions(&self) -> Conditions {
        let mut c = Conditions::default();
        if let Some(topic) = &self.topic {
            let p = c.param(Bind::Text(topic.clone()));
            c.sql.push(format!("dlq_topic = {p}"));
        }
        if let Some(kind) = &self.kind {
            let p = c.param(Bind::Text(kind.clone()));
            c.sql.push(format!("error_kind = {p}"));
        }
        if let Some(state) = &self.state {
            let p = c.param(Bind::Text(state.clone()));
            c.sql.push(format!("state = {p}"));
        }
        if let Some(from) = self.from {
            let p = c.param(Bind::Int(from));
            c.sql.push(format!("dead_lettered_at_ms >= {p}"));
        }
        if let Some(to) = self.to {
            let p = c.param(Bind::Int(to));
            c.sql.push(format!("dead_lettered_at_ms <= {p}"));
        }
        if let Some(q) = &self.q {
            let pattern = format!("%{}%", escape_like(&q.to_lowercase()));
            let p = c.param(Bind::Text(pattern));
            c.sql.push(format!(
                "(LOWER(COALESCE(message_key, '')) LIKE {p} ESCAPE '\\' OR LOWER(COALESCE(payload, '')) LIKE {p} ESCAPE '\\')"
            ));
        }
        c
    }
}

/// Entries matching `filter`, newest first, with ids below `before`.
async fn page(store: &Store, filter: &Filter, before: Option<i64>, limit: u32) -> Result<Vec<Entry>, StoreError> {
    let mut c = filter.conditions();
    if let Some(before) = before {
        let p = c.param(Bind::Int(before));
        c.sql.push(format!("id < {p}"));
    }
    let sql = format!("SELECT {COLUMNS} FROM dead_letters WHERE {} ORDER BY id DESC LIMIT {limit}", c.clause());
    let rows = c.query(&sql).fetch_all(store.pool()).await?;
    rows.iter().map(Entry::from_row).collect()
}

/// How many entries match, and the first `limit` of them, oldest first (the order to replay in).
async fn select(store: &Store, filter: &Filter, limit: u32) -> Result<(i64, Vec<Entry>), StoreError> {
    let c = filter.conditions();
    let count_sql = format!("SELECT COUNT(*) FROM dead_letters WHERE {}", c.clause());
    let matched: i64 = c.query(&count_sql).fetch_one(store.pool()).await?.try_get(0)?;
    let sql = format!("SELECT {COLUMNS} FROM dead_letters WHERE {} ORDER BY id LIMIT {limit}", c.clause());
    let rows = c.query(&sql).fetch_all(store.pool()).await?;
    Ok((matched, rows.iter().map(Entry::from_row).collect::<Result<_, _>>()?))
}

async fn load_many(store: &Store, ids: &[i64]) -> Result<Vec<Entry>, StoreError> {
    let mut entries = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let params: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!("SELECT {COLUMNS} FROM dead_letters WHERE id IN ({}) ORDER BY id", params.join(", "));
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(store.pool()).await? {
            entries.push(Entry::from_row(&row)?);
        }
    }
    entries.sort_by_key(|e| e.id);
    Ok(entries)
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct AppState {
    ctx: ServiceContext,
    config: DlqAdminConfig,
    schemas: Arc<SchemaRegistry>,
    publisher: Publisher,
}

/// The router, with paths relative to [`PREFIX`]. Reads are open; every change needs a
/// token from `admin` (see [`crate::admin`]).
pub fn router(
    ctx: ServiceContext,
    config: DlqAdminConfig,
    admin: &AdminConfig,
    schemas: Arc<SchemaRegistry>,
) -> Result<Router, TransportError> {
    // A replay fails definitely after 10 s rather than lingering in the producer queue and
    // arriving after the operator was told it failed.
    let publisher = ctx.broker.publisher_with_timeout(Some(PUBLISH_TIMEOUT))?;
    Ok(Router::new()
        .route("/topics", get(topics))
        .route("/entries", get(list))
        .route("/entries/{id}", get(show))
        .route("/entries/{id}/replay", post(replay_one))
        .route("/entries/{id}/discard", post(discard_one))
        .route("/replay", post(replay_bulk))
        .route("/discard", post(discard_bulk))
        .route("/audit", get(audit_list))
        .layer(Extension(AdminTokens::new(admin)))
        .with_state(AppState { ctx, config, schemas, publisher }))
}

async fn topics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let rows = sqlx::query(
        "SELECT dlq_topic, original_topic, state, error_kind, COUNT(*), MIN(dead_lettered_at_ms), \
         MAX(dead_lettered_at_ms) FROM dead_letters GROUP BY dlq_topic, original_topic, state, error_kind",
    )
    .fetch_all(state.ctx.store.pool())
    .await
    .map_err(ApiError::internal)?;
    #[derive(Default)]
    struct Topic {
        originals: std::collections::BTreeSet<String>,
        by_state: BTreeMap<String, i64>,
        by_kind: BTreeMap<String, i64>,
        total: i64,
        oldest: Option<i64>,
        newest: Option<i64>,
    }
    let mut topics: BTreeMap<String, Topic> = BTreeMap::new();
    for row in rows {
        let read = || -> Result<_, sqlx::Error> {
            Ok((
                row.try_get::<String, _>(0)?,
                row.try_get::<Option<String>, _>(1)?,
                row.try_get::<String, _>(2)?,
                row.try_get::<String, _>(3)?,
                row.try_get::<i64, _>(4)?,
                row.try_get::<i64, _>(5)?,
                row.try_get::<i64, _>(6)?,
            ))
        };
        let (topic, original, entry_state, kind, count, oldest, newest) = read().map_err(ApiError::internal)?;
        let t = topics.entry(topic).or_default();
        t.originals.extend(original);
        *t.by_kind.entry(kind).or_default() += count;
        *t.by_state.entry(entry_state).or_default() += count;
        t.total += count;
        t.oldest = Some(t.oldest.map_or(oldest, |o| o.min(oldest)));
        t.newest = Some(t.newest.map_or(newest, |n| n.max(newest)));
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

async fn list(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let bad = |message: String| ApiError::new(StatusCode::BAD_REQUEST, message);
    const KNOWN: [&str; 8] = ["topic", "kind", "state", "from", "to", "q", "limit", "cursor"];
    let mut unknown: Vec<&String> = query.keys().filter(|k| !KNOWN.contains(&k.as_str())).collect();
    unknown.sort();
    if let Some(key) = unknown.first() {
        return Err(bad(format!("unknown query parameter `{key}`; use {}", KNOWN.join(", "))));
    }
    let get = |name: &str| query.get(name).map(String::as_str);
    let filter = Filter::parse(get("topic"), get("kind"), get("state"), get("from"), get("to"), get("q"))?;
    let limit = match get("limit") {
        Some(l) => match l.parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => return Err(bad(format!("limit must be a number from 1 to {MAX_PAGE}"))),
        },
        None => DEFAULT_PAGE,
    };
    let cursor = match get("cursor") {
        Some(c) => {
            Some(c.parse::<i64>().map_err(|_| bad("cursor must be the nextCursor of a previous page".to_string()))?)
        }
        None => None,
    };
    let entries = page(&state.ctx.store, &filter, cursor, limit).await.map_err(ApiError::internal)?;
    let next = if entries.len() == limit as usize { entries.last().map(|e| e.id.to_string()) } else { None };
    let entries: Vec<Value> = entries.iter().map(Entry::summary).collect();
    Ok(Json(json!({ "entries": entries, "nextCursor": next })).into_response())
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("`{id}` is not an entry id; entry ids are numbers, see GET {PREFIX}/entries"),
        )
    })
}

async fn find(store: &Store, id: &str) -> Result<Entry, ApiError> {
    let id = parse_id(id)?;
    load(store, id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no dead-letter entry with id {id}")))
}

async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let entry = find(&state.ctx.store, &id).await?;
    let history = load_history(&state.ctx.store, entry.id).await.map_err(ApiError::internal)?;
    Ok(Json(entry.detail(history, state.config.max_replays)).into_response())
}

/// An optional JSON body: empty is the default; anything else must be JSON of the right shape.
fn json_body<T: DeserializeOwned + Default>(headers: &HeaderMap, body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    crate::http::json_body(headers, body)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    /// The payload to send instead of the stored one; checked against the event type's schema.
    payload: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiscardBody {
    /// Why, for the history and the audit trail.
    reason: Option<String>,
}

/// Writes an audit line on its own; a failure is logged (the request already failed or was refused).
async fn audit_refusal(store: &Store, actor: &str, action: &str, target: &str, details: Option<&Value>, why: &str) {
    let record = AuditRecord { actor, action, target, details, outcome: &format!("refused: {why}") };
    if let Err(e) = admin::audit_now(store, &record).await {
        tracing::error!(error = %e, action, target, "cannot write the audit trail");
    }
}

async fn replay_one(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: ReplayBody = json_body(&headers, &body)?;
    let entry = find(&state.ctx.store, &id).await?;
    let target = format!("dead-letter {}", entry.id);
    let details = request.payload.as_ref().map(|p| json!({ "editedPayload": p }));
    if let Some(refusal) = entry.refusal(state.config.max_replays) {
        metrics::counter!(telemetry::DLQ_REPLAYS_REFUSED).increment(1);
        audit_refusal(&state.ctx.store, &admin.actor, "dlq.replay", &target, details.as_ref(), &refusal).await;
        return Err(ApiError::new(StatusCode::CONFLICT, refusal));
    }
    let payload = match &request.payload {
        Some(payload) => {
            let event_type = entry.event_type().unwrap_or_default();
            if let Err(problem) = state.schemas.validate(event_type, payload) {
                audit_refusal(&state.ctx.store, &admin.actor, "dlq.replay", &target, details.as_ref(), &problem).await;
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("the edited payload is refused: {problem}; fix it and replay again"),
                )
                .with_fields(vec![("payload".to_string(), problem)]));
            }
            Some(serde_json::to_vec(payload).unwrap_or_default())
        }
        None => None,
    };
    let count = replay(&state, &entry, payload, &admin.actor, details.as_ref(), false).await?;
    Ok(Json(json!({
        "id": entry.id,
        "state": "replayed",
        "replayCount": count,
        "sentTo": entry.original_topic,
        "edited": request.payload.is_some(),
    }))
    .into_response())
}

/// Sends the entry to its original topic, then marks it replayed with a history line and an
/// audit line in one transaction. Returns the new replay count.
async fn replay(
    state: &AppState,
    entry: &Entry,
    edited_payload: Option<Vec<u8>>,
    actor: &str,
    details: Option<&Value>,
    bulk: bool,
) -> Result<i64, ApiError> {
    let topic = entry.original_topic.clone().unwrap_or_default();
    let count = entry.replay_count + 1;
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
        Ok(Err(e)) => Some(format!("the broker refused the replay: {e}")),
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
    let now = now_ms();
    let detail = format!(
        "sent to {topic} as replay {count}{}{}",
        if edited { " with an edited payload" } else { "" },
        if bulk { " (bulk)" } else { "" }
    );
    let mark = async {
        let mut tx = state.ctx.store.begin().await?;
        sqlx::query("UPDATE dead_letters SET state = 'replayed', replay_count = $1, updated_at_ms = $2 WHERE id = $3")
            .bind(count)
            .bind(now)
            .bind(entry.id)
            .execute(&mut *tx)
            .await?;
        history(&mut tx, entry.id, "replayed", actor, Some(&detail), now).await?;
        admin::audit(&mut tx, &AuditRecord { actor, action, target: &target, details, outcome: "ok" }).await?;
        tx.commit().await?;
        Ok::<_, StoreError>(())
    };
    mark.await.map_err(|e| {
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
    Ok(count)
}

/// Marks one entry discarded (with history and audit) unless it already is; false if it was.
async fn discard(
    store: &Store,
    entry: &Entry,
    actor: &str,
    reason: Option<&str>,
    bulk: bool,
) -> Result<bool, StoreError> {
    let now = now_ms();
    let mut tx = store.begin().await?;
    let changed = sqlx::query(
        "UPDATE dead_letters SET state = 'discarded', updated_at_ms = $1 WHERE id = $2 AND state <> 'discarded'",
    )
    .bind(now)
    .bind(entry.id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        > 0;
    if !changed {
        tx.rollback().await?;
        return Ok(false);
    }
    let detail = match (reason, bulk) {
        (Some(reason), true) => Some(format!("{reason} (bulk)")),
        (Some(reason), false) => Some(reason.to_string()),
        (None, true) => Some("bulk".to_string()),
        (None, false) => None,
    };
    history(&mut tx, entry.id, "discarded", actor, detail.as_deref(), now).await?;
    let details = reason.map(|r| json!({ "reason": r }));
    let target = format!("dead-letter {}", entry.id);
    admin::audit(
        &mut tx,
        &AuditRecord { actor, action: "dlq.discard", target: &target, details: details.as_ref(), outcome: "ok" },
    )
    .await?;
    tx.commit().await?;
    metrics::counter!(telemetry::DLQ_DISCARDS, "topic" => entry.dlq_topic.clone()).increment(1);
    Ok(true)
}

async fn discard_one(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: DiscardBody = json_body(&headers, &body)?;
    let entry = find(&state.ctx.store, &id).await?;
    let changed = discard(&state.ctx.store, &entry, &admin.actor, request.reason.as_deref(), false)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "id": entry.id, "state": "discarded", "changed": changed })).into_response())
}

/// The body of `POST /replay` and `POST /discard`: `ids`, or filter fields.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BulkRequest {
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
        let entries = load_many(store, &wanted).await.map_err(ApiError::internal)?;
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
    let (matched, entries) = select(store, &filter, max).await.map_err(ApiError::internal)?;
    Ok(Selection {
        target: "filter".into(),
        details: json!({ "filter": filter }),
        matched,
        entries,
        skipped: Vec::new(),
    })
}

async fn replay_bulk(
    admin: Admin,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: BulkRequest = json_body(&headers, &body)?;
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
        let record = AuditRecord {
            actor: &admin.actor,
            action: "dlq.bulk_replay",
            target: &selection.target,
            details: Some(&details),
            outcome: &outcome,
        };
        admin::audit_now(&state.ctx.store, &record).await.map_err(ApiError::internal)?;
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
        let entry = match load(&state.ctx.store, selected.id).await {
            Ok(Some(entry)) => entry,
            Ok(None) => selected.clone(),
            Err(e) => {
                tracing::error!(error = %e, "bulk replay stopped");
                failure = Some(json!({ "id": selected.id, "error": "the database did not answer" }));
                break;
            }
        };
        if let Some(reason) = entry.refusal(state.config.max_replays) {
            selection.skipped.push(json!({ "id": entry.id, "reason": reason }));
        } else if let Err(e) = replay(&state, &entry, None, &admin.actor, Some(&json!({ "bulk": true })), true).await {
            failure = Some(json!({ "id": entry.id, "error": e.message }));
            break;
        } else {
            sent.push(entry.planned());
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
    let record = AuditRecord {
        actor: &admin.actor,
        action: "dlq.bulk_replay",
        target: &selection.target,
        details: Some(&details),
        outcome: &outcome,
    };
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

async fn discard_bulk(
    admin: Admin,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: BulkRequest = json_body(&headers, &body)?;
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
        let record = AuditRecord {
            actor: &admin.actor,
            action: "dlq.bulk_discard",
            target: &selection.target,
            details: Some(&details),
            outcome: &outcome,
        };
        admin::audit_now(&state.ctx.store, &record).await.map_err(ApiError::internal)?;
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
        match discard(&state.ctx.store, entry, &admin.actor, request.reason.as_deref(), true).await {
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
    let record = AuditRecord {
        actor: &admin.actor,
        action: "dlq.bulk_discard",
        target: &selection.target,
        details: Some(&details),
        outcome: &outcome,
    };
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

async fn audit_list(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let bad = |message: String| ApiError::new(StatusCode::BAD_REQUEST, message);
    if let Some(key) = query.keys().find(|k| !["limit", "cursor"].contains(&k.as_str())) {
        return Err(bad(format!("unknown query parameter `{key}`; use limit and cursor")));
    }
    let limit = match query.get("limit") {
        Some(l) => match l.parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => return Err(bad(format!("limit must be a number from 1 to {MAX_PAGE}"))),
        },
        None => DEFAULT_PAGE,
    };
    let cursor = match query.get("cursor") {
        Some(c) => {
            Some(c.parse::<i64>().map_err(|_| bad("cursor must be the nextCursor of a previous page".to_string()))?)
        }
        None => None,
    };
    let lines = admin::audit_page(&state.ctx.store, "dlq.", cursor, limit).await.map_err(ApiError::internal)?;
    let next = if lines.len() == limit as usize { lines.last().map(|l| l.seq.to_string()) } else { None };
    Ok(Json(json!({ "audit": lines, "nextCursor": next })).into_response())
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

/// Text as PostgreSQL can store it (no NUL characters).
fn clean(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    }
}

fn clean_bytes(bytes: &[u8]) -> String {
    clean(String::from_utf8_lossy(bytes).into_owned())
}

/// Bytes as text, plus their hex form when the text is not exact (not UTF-8, or holds NUL).
fn text_and_hex(bytes: Option<&[u8]>) -> (Option<String>, Option<String>) {
    match bytes {
        None => (None, None),
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) if !text.contains('\0') => (Some(text.to_string()), None),
            _ => (Some(clean_bytes(bytes)), Some(to_hex(bytes))),
        },
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// `%` and `_` (and the escape character) taken literally in a LIKE pattern.
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
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

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let bytes = [0u8, 1, 0x7f, 0xff, b'a'];
        assert_eq!(to_hex(&bytes), "00017fff61");
        assert_eq!(from_hex("00017fff61").unwrap(), bytes);
        assert_eq!(from_hex("0"), None);
        assert_eq!(from_hex("zz"), None);
    }

    #[test]
    fn text_keeps_exact_bytes_only_when_not_text() {
        assert_eq!(text_and_hex(Some(b"{\"a\":1}")), (Some("{\"a\":1}".into()), None));
        assert_eq!(text_and_hex(Some(b"a\0b")), (Some("a\u{FFFD}b".into()), Some("610062".into())));
        let (text, hex) = text_and_hex(Some(&[0xff, b'x']));
        assert_eq!((text.unwrap(), hex.unwrap()), ("\u{FFFD}x".to_string(), "ff78".to_string()));
        assert_eq!(text_and_hex(None), (None, None));
    }

    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(escape_like("50%_off\\"), "50\\%\\_off\\\\");
    }

    #[test]
    fn times_are_milliseconds_or_rfc3339() {
        assert_eq!(parse_time("1700000000000"), Some(1_700_000_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Some(1_700_000_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20.5Z"), Some(1_700_000_000_500));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(rfc3339(1_700_000_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn refusals_say_why() {
        let entry = Entry { id: 7, original_topic: Some("t".into()), state: "new".into(), ..Entry::default() };
        assert_eq!(entry.refusal(3), None);
        let limit = Entry { replay_count: 3, ..entry.clone() };
        assert!(limit.refusal(3).unwrap().contains("already replayed 3 time(s)"));
        let discarded = Entry { state: "discarded".into(), ..entry.clone() };
        assert!(discarded.refusal(3).unwrap().contains("discarded"));
        let nowhere = Entry { original_topic: None, ..entry };
        assert!(nowhere.refusal(3).unwrap().contains("original topic"));
    }
}
