//! The outbox table: events written in the same transaction as the change they announce,
//! published later by the relay.

use sqlx::Row;

use super::{Store, StoreError, Tx};
use crate::event::Event;

/// Adds an event to the outbox inside the caller's transaction (sent with its commit, in
/// the order the events were added).
pub fn insert(tx: &mut Tx, event: &Event) {
    tx.hold_outbox(event);
}

/// A row waiting to be published.
pub struct Pending {
    pub seq: i64,
    pub event: Event,
}

/// The oldest unpublished rows, in insertion order.
/// `up_to` bounds the rows to those with `seq` at most that (a one-off catch-up).
pub async fn unpublished(store: &Store, limit: u32, up_to: Option<i64>) -> Result<Vec<Pending>, StoreError> {
    let d = store.dialect();
    let sql = format!(
        "SELECT seq, {}, aggregateid, type, {}, traceparent, source, occurred_at, topic FROM outbox \
         WHERE published_at_ms IS NULL AND seq <= {} ORDER BY seq LIMIT {}",
        d.text("id"),
        d.text("payload"),
        up_to.unwrap_or(i64::MAX),
        limit
    );
    let rows = sqlx::query(&sql).fetch_all(store.pool()).await?;
    rows.into_iter()
        .map(|row| {
            let payload: String = row.try_get(4)?;
            Ok(Pending {
                seq: row.try_get(0)?,
                event: Event {
                    id: row.try_get(1)?,
                    key: row.try_get(2)?,
                    event_type: row.try_get(3)?,
                    payload: serde_json::from_str(&payload)
                        .map_err(|e| StoreError::Corrupt(format!("outbox payload: {e}")))?,
                    traceparent: row.try_get(5)?,
                    source: row.try_get(6)?,
                    time: row.try_get(7)?,
                    topic: row.try_get(8)?,
                },
            })
        })
        .collect()
}

/// Records that rows were acknowledged by the broker: marks them, or deletes them.
pub async fn acknowledge(store: &Store, seqs: &[i64], delete: bool, now_ms: i64) -> Result<(), StoreError> {
    if seqs.is_empty() {
        return Ok(());
    }
    let list = seqs.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let sql = if delete {
        format!("DELETE FROM outbox WHERE seq IN ({list})")
    } else {
        format!("UPDATE outbox SET published_at_ms = {now_ms} WHERE seq IN ({list})")
    };
    // Text written once: not kept among the connection's prepared statements, where it would
    // push out one that is used again.
    sqlx::query(&sql).persistent(false).execute(store.pool()).await?;
    Ok(())
}

/// The newest row's `seq` (0 when empty).
pub async fn last_seq(store: &Store) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT CAST(COALESCE(MAX(seq), 0) AS BIGINT) FROM outbox").fetch_one(store.pool()).await?;
    Ok(row.try_get(0)?)
}

/// Rows not yet published (for readiness and tests).
pub async fn backlog(store: &Store) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT COUNT(*) FROM outbox WHERE published_at_ms IS NULL").fetch_one(store.pool()).await?;
    Ok(row.try_get(0)?)
}

/// Marks (or deletes) rows by id, after the WAL relay saw them acknowledged.
pub async fn acknowledge_ids(store: &Store, ids: &[String], delete: bool, now_ms: i64) -> Result<(), StoreError> {
    // Ids come from the table itself; only well-formed uuids are put into the statement.
    let list: Vec<String> =
        ids.iter().filter(|id| uuid::Uuid::parse_str(id).is_ok()).map(|id| format!("'{id}'")).collect();
    if list.is_empty() {
        return Ok(());
    }
    let list = list.join(",");
    let sql = if delete {
        format!("DELETE FROM outbox WHERE id IN ({list})")
    } else {
        format!("UPDATE outbox SET published_at_ms = {now_ms} WHERE id IN ({list}) AND published_at_ms IS NULL")
    };
    sqlx::query(&sql).persistent(false).execute(store.pool()).await?;
    Ok(())
}
