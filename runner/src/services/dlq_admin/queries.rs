//! Every SQL statement of dlq-admin, on `dead_letters` and `dead_letter_history`: record a
//! dead letter, read entries (one, some, a page, a filtered selection), count them, and mark
//! them replayed or discarded together with their history and audit lines. Rows are read by
//! column name.

use std::collections::BTreeMap;

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, FromRow, Row};

use super::entry::{Entry, HistoryLine};
use super::filter::Filter;
use crate::admin::{self, AuditRecord};
use crate::store::{Store, StoreError, Tx};

/// Every column of `dead_letters`, as [`Entry`] reads them.
const COLUMNS: &str = "id, dlq_topic, dlq_partition, dlq_offset, dead_lettered_at_ms, original_topic, \
    original_partition, original_offset, original_timestamp_ms, consumer_group, error_kind, error_message, \
    attempts, first_failure_at, last_failure_at, ce_id, ce_type, ce_source, ce_time, traceparent, content_type, \
    message_key, key_hex, payload, payload_hex, headers, state, replay_count, received_at_ms, updated_at_ms";

/// How many ids one `IN (…)` list holds.
const IDS_PER_QUERY: usize = 500;

/// Records a dead letter and its `received` history line; false when it was recorded before.
pub async fn insert(store: &Store, e: &Entry, actor: &str) -> Result<bool, StoreError> {
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
        .map(|row| row.try_get("id"))
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

/// Appends a line to an entry's history inside the caller's transaction.
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

/// Claims the entry's next replay: one more on its count if that stays within `max` and the
/// entry is not discarded, in one statement, so parallel requests cannot pass the limit
/// together. The new count, or `None` when the claim is refused.
pub async fn claim_replay(store: &Store, entry_id: i64, max: u32, now: i64) -> Result<Option<i64>, StoreError> {
    let row = sqlx::query(
        "UPDATE dead_letters SET replay_count = replay_count + 1, updated_at_ms = $1 \
         WHERE id = $2 AND replay_count < $3 AND state <> 'discarded' RETURNING replay_count",
    )
    .bind(now)
    .bind(entry_id)
    .bind(i64::from(max))
    .fetch_optional(store.pool())
    .await?;
    Ok(row.map(|row| row.try_get::<i64, _>("replay_count")).transpose()?)
}

/// Gives back a claim whose replay the broker refused (nothing was sent).
pub async fn release_replay(store: &Store, entry_id: i64, now: i64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE dead_letters SET replay_count = replay_count - 1, updated_at_ms = $1 WHERE id = $2 AND replay_count > 0",
    )
    .bind(now)
    .bind(entry_id)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Marks an entry replayed (its replay already claimed), with its history line
/// (`detail`) and the audit line, in one transaction.
pub async fn mark_replayed(
    store: &Store,
    entry_id: i64,
    detail: &str,
    audit: &AuditRecord<'_>,
    now: i64,
) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    // The count was raised by the claim (`claim_replay`); setting it here would undo the
    // claims of replays that raced this one.
    sqlx::query("UPDATE dead_letters SET state = 'replayed', updated_at_ms = $1 WHERE id = $2")
        .bind(now)
        .bind(entry_id)
        .execute(&mut *tx)
        .await?;
    history(&mut tx, entry_id, "replayed", audit.actor, Some(detail), now).await?;
    admin::audit(&mut tx, audit).await?;
    tx.commit().await?;
    Ok(())
}

/// Marks an entry discarded, with its history line (`detail`) and the audit line, in one
/// transaction, unless it already is; false if it was.
pub async fn mark_discarded(
    store: &Store,
    entry_id: i64,
    detail: Option<&str>,
    audit: &AuditRecord<'_>,
    now: i64,
) -> Result<bool, StoreError> {
    let mut tx = store.begin().await?;
    let changed = sqlx::query(
        "UPDATE dead_letters SET state = 'discarded', updated_at_ms = $1 WHERE id = $2 AND state <> 'discarded'",
    )
    .bind(now)
    .bind(entry_id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        > 0;
    if !changed {
        tx.rollback().await?;
        return Ok(false);
    }
    history(&mut tx, entry_id, "discarded", audit.actor, detail, now).await?;
    admin::audit(&mut tx, audit).await?;
    tx.commit().await?;
    Ok(true)
}

/// One entry by id.
pub async fn load(store: &Store, id: i64) -> Result<Option<Entry>, StoreError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM dead_letters WHERE id = $1"))
        .bind(id)
        .fetch_optional(store.pool())
        .await?;
    Ok(row.as_ref().map(Entry::from_row).transpose()?)
}

/// The entries of `ids` that exist, by id.
pub async fn load_many(store: &Store, ids: &[i64]) -> Result<Vec<Entry>, StoreError> {
    let mut entries = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IDS_PER_QUERY) {
        let params: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!("SELECT {COLUMNS} FROM dead_letters WHERE id IN ({}) ORDER BY id", params.join(", "));
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        entries.extend(rows_to_entries(&query.fetch_all(store.pool()).await?)?);
    }
    entries.sort_by_key(|e| e.id);
    Ok(entries)
}

/// An entry's history, oldest first.
pub async fn load_history(store: &Store, id: i64) -> Result<Vec<HistoryLine>, StoreError> {
    let lines = sqlx::query_as::<_, HistoryLine>(
        "SELECT action, actor, detail, at_ms FROM dead_letter_history WHERE entry_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(store.pool())
    .await?;
    Ok(lines)
}

/// Entries matching `filter`, newest first, with ids below `before`.
pub async fn page(store: &Store, filter: &Filter, before: Option<i64>, limit: u32) -> Result<Vec<Entry>, StoreError> {
    let mut c = Conditions::of(filter);
    if let Some(before) = before {
        let p = c.param(Bind::Int(before));
        c.sql.push(format!("id < {p}"));
    }
    let sql = format!("SELECT {COLUMNS} FROM dead_letters WHERE {} ORDER BY id DESC LIMIT {limit}", c.clause());
    rows_to_entries(&c.query(&sql).fetch_all(store.pool()).await?)
}

/// How many entries match, and the first `limit` of them, oldest first (the order to replay in).
pub async fn select(store: &Store, filter: &Filter, limit: u32) -> Result<(i64, Vec<Entry>), StoreError> {
    let c = Conditions::of(filter);
    let count_sql = format!("SELECT COUNT(*) AS matched FROM dead_letters WHERE {}", c.clause());
    let matched: i64 = c.query(&count_sql).fetch_one(store.pool()).await?.try_get("matched")?;
    let sql = format!("SELECT {COLUMNS} FROM dead_letters WHERE {} ORDER BY id LIMIT {limit}", c.clause());
    Ok((matched, rows_to_entries(&c.query(&sql).fetch_all(store.pool()).await?)?))
}

fn rows_to_entries(rows: &[AnyRow]) -> Result<Vec<Entry>, StoreError> {
    Ok(rows.iter().map(Entry::from_row).collect::<Result<_, _>>()?)
}

/// Entries by dead-letter topic and state, for the gauge.
pub async fn counts_by_topic_and_state(store: &Store) -> Result<BTreeMap<String, BTreeMap<String, i64>>, StoreError> {
    let rows = sqlx::query("SELECT dlq_topic, state, COUNT(*) AS entries FROM dead_letters GROUP BY dlq_topic, state")
        .fetch_all(store.pool())
        .await?;
    let mut counts: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for row in rows {
        counts.entry(row.try_get("dlq_topic")?).or_default().insert(row.try_get("state")?, row.try_get("entries")?);
    }
    Ok(counts)
}

/// How many entries share a dead-letter topic, original topic, state and error kind, and
/// when the oldest and newest of them were dead-lettered.
#[derive(Debug, Clone, FromRow)]
pub struct TopicCount {
    pub dlq_topic: String,
    pub original_topic: Option<String>,
    pub state: String,
    pub error_kind: String,
    pub entries: i64,
    pub oldest_ms: i64,
    pub newest_ms: i64,
}

/// Every [`TopicCount`].
pub async fn topic_counts(store: &Store) -> Result<Vec<TopicCount>, StoreError> {
    let counts = sqlx::query_as::<_, TopicCount>(
        "SELECT dlq_topic, original_topic, state, error_kind, COUNT(*) AS entries, \
         MIN(dead_lettered_at_ms) AS oldest_ms, MAX(dead_lettered_at_ms) AS newest_ms \
         FROM dead_letters GROUP BY dlq_topic, original_topic, state, error_kind",
    )
    .fetch_all(store.pool())
    .await?;
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
    /// The conditions an entry must meet to match `filter`.
    fn of(filter: &Filter) -> Conditions {
        let Filter { topic, kind, state, from, to, q } = filter;
        let mut c = Conditions::default();
        if let Some(topic) = topic {
            let p = c.param(Bind::Text(topic.clone()));
            c.sql.push(format!("dlq_topic = {p}"));
        }
        if let Some(kind) = kind {
            let p = c.param(Bind::Text(kind.clone()));
            c.sql.push(format!("error_kind = {p}"));
        }
        if let Some(state) = state {
            let p = c.param(Bind::Text(state.clone()));
            c.sql.push(format!("state = {p}"));
        }
        if let Some(from) = from {
            let p = c.param(Bind::Int(*from));
            c.sql.push(format!("dead_lettered_at_ms >= {p}"));
        }
        if let Some(to) = to {
            let p = c.param(Bind::Int(*to));
            c.sql.push(format!("dead_lettered_at_ms <= {p}"));
        }
        if let Some(q) = q {
            let pattern = format!("%{}%", escape_like(&q.to_lowercase()));
            let p = c.param(Bind::Text(pattern));
            c.sql.push(format!(
                "(LOWER(COALESCE(message_key, '')) LIKE {p} ESCAPE '\\' OR LOWER(COALESCE(payload, '')) LIKE {p} ESCAPE '\\')"
            ));
        }
        c
    }

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

    fn query<'q>(&self, sql: &'q str) -> sqlx::query::Query<'q, Any, AnyArguments<'q>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(escape_like("50%_off\\"), "50\\%\\_off\\\\");
    }

    #[test]
    fn filters_become_numbered_conditions() {
        let filter = Filter {
            topic: Some("a.dlq".into()),
            state: Some("new".into()),
            from: Some(5),
            q: Some("X_1".into()),
            ..Filter::default()
        };
        let c = Conditions::of(&filter);
        assert_eq!(
            c.clause(),
            "dlq_topic = $1 AND state = $2 AND dead_lettered_at_ms >= $3 AND \
             (LOWER(COALESCE(message_key, '')) LIKE $4 ESCAPE '\\' OR LOWER(COALESCE(payload, '')) LIKE $4 ESCAPE '\\')"
        );
        assert!(matches!(&c.binds[3], Bind::Text(p) if p == "%x\\_1%"));
        assert_eq!(Conditions::of(&Filter::default()).clause(), "1 = 1");
    }
}
