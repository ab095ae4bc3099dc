//! Saga instances and their history. Updates are optimistic: a write names the version it
//! read, and a concurrent writer (another replica, the timer) turns it into a conflict.

use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::Row;

use super::held::{ReadBy, Table};
use super::{Store, StoreError, Tx};

/// What the store needs of a saga's state besides its JSON: the columns it is queried by.
pub trait SagaRecord: Serialize + DeserializeOwned {
    /// `PENDING` while it runs, else its final status.
    fn status_name(&self) -> &'static str;
    /// When the saga's timer should next look at it, if it waits.
    fn wake_at_ms(&self) -> Option<i64>;
}

/// One line of the saga's visible history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub step: String,
    pub action: String,
    pub detail: Option<String>,
}

/// A step's route: the variant its first request went to (retries go there too) and when
/// its latest request went (for the step's answer time).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    pub variant: String,
    pub sent_at_ms: i64,
}

/// A saga's routes by step name, kept in its row (column `routes`, JSON).
pub type Routes = std::collections::BTreeMap<String, Route>;

pub struct StoredSaga<S> {
    pub state: S,
    /// The routes of the steps it has sent requests to.
    pub routes: Routes,
    pub version: i64,
    /// The trigger event's payload, sent along with every step request.
    pub data: serde_json::Value,
    pub traceparent: Option<String>,
    pub created_at_ms: i64,
    /// The hash of the definition it started on (none: from before versions were kept).
    pub definition: Option<String>,
}

/// The columns of a saga row, in [`SagaRow::read`]'s order.
pub(super) const COLUMNS: &str = "state, version, data, traceparent, created_at_ms, definition, routes";

/// A saga row as read, its JSON not parsed yet (kept so by a read-ahead).
pub(super) struct SagaRow {
    state: String,
    version: i64,
    data: String,
    traceparent: Option<String>,
    created_at_ms: i64,
    definition: Option<String>,
    routes: String,
}

impl SagaRow {
    /// Reads [`COLUMNS`] from `row`, the first at index `first`.
    pub(super) fn read(row: &sqlx::any::AnyRow, first: usize) -> Result<Self, sqlx::Error> {
        Ok(SagaRow {
            state: row.try_get(first)?,
            version: row.try_get(first + 1)?,
            data: row.try_get(first + 2)?,
            traceparent: row.try_get(first + 3)?,
            created_at_ms: row.try_get(first + 4)?,
            definition: row.try_get(first + 5)?,
            routes: row.try_get(first + 6)?,
        })
    }

    fn parse<S: SagaRecord>(self, id: &str) -> Result<StoredSaga<S>, StoreError> {
        let corrupt = |what: &str, e: serde_json::Error| StoreError::Corrupt(format!("saga {id} {what}: {e}"));
        Ok(StoredSaga {
            state: serde_json::from_str(&self.state).map_err(|e| corrupt("state", e))?,
            routes: serde_json::from_str(&self.routes).map_err(|e| corrupt("routes", e))?,
            version: self.version,
            data: serde_json::from_str(&self.data).map_err(|e| corrupt("data", e))?,
            traceparent: self.traceparent,
            created_at_ms: self.created_at_ms,
            definition: self.definition,
        })
    }
}

/// The saga `id`, from what the transaction read ahead or else from the table.
pub async fn load<S: SagaRecord>(tx: &mut Tx, id: &str) -> Result<Option<StoredSaga<S>>, StoreError> {
    tx.settle(ReadBy::Saga, id).await?;
    let row = match tx.known_mut().take_saga(id) {
        Some(known) => known,
        None => {
            static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
            let sql = SQL.get_or_init(|| format!("SELECT {COLUMNS} FROM sagas WHERE id = $1"));
            let row = sqlx::query(sql).bind(id).fetch_optional(&mut **tx).await?;
            row.map(|row| SagaRow::read(&row, 0)).transpose()?
        }
    };
    row.map(|row| row.parse(id)).transpose()
}

/// Creates a saga on the definition of hash `definition`, written with the commit; when
/// another writer created it first, the unique key fails the commit and the caller retries
/// the whole message (then finding the saga).
#[allow(clippy::too_many_arguments)]
pub async fn insert(
    tx: &mut Tx,
    id: &str,
    saga: &str,
    definition: &str,
    state: &impl SagaRecord,
    routes: &Routes,
    data: &serde_json::Value,
    traceparent: Option<&str>,
    now_ms: i64,
) -> Result<(), StoreError> {
    tx.settle(ReadBy::Saga, id).await?;
    let row = vec![
        id.into(),
        saga.into(),
        serde_json::to_string(state).unwrap_or_default().into(),
        state.status_name().into(),
        1.into(),
        state.wake_at_ms().into(),
        data.to_string().into(),
        traceparent.into(),
        now_ms.into(),
        now_ms.into(),
        definition.into(),
        routes_json(routes).into(),
    ];
    tx.hold(Table::Sagas, row);
    Ok(())
}

fn routes_json(routes: &Routes) -> String {
    serde_json::to_string(routes).unwrap_or_else(|_| "{}".to_string())
}

/// Moves a saga still at `version` to the definition of hash `definition`, in `state`
/// (a step mapping of a new definition).
pub async fn migrate(
    tx: &mut Tx,
    id: &str,
    version: i64,
    definition: &str,
    state: &impl SagaRecord,
    now_ms: i64,
) -> Result<(), StoreError> {
    tx.settle(ReadBy::Saga, id).await?;
    let result = sqlx::query(
        "UPDATE sagas SET state = $1, status = $2, wake_at_ms = $3, definition = $4, version = version + 1, \
         updated_at_ms = $5 WHERE id = $6 AND version = $7",
    )
    .bind(serde_json::to_string(state).unwrap_or_default())
    .bind(state.status_name())
    .bind(state.wake_at_ms())
    .bind(definition)
    .bind(now_ms)
    .bind(id)
    .bind(version)
    .execute(&mut **tx)
    .await?;
    if result.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!("saga {id}")))
    }
}

/// Keeps a definition (as JSON) under its hash; one already kept stays as it is.
pub async fn save_definition(tx: &mut Tx, saga: &str, hash: &str, json: &str, now_ms: i64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO saga_definitions (hash, saga, definition, created_at_ms) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (hash) DO NOTHING",
    )
    .bind(hash)
    .bind(saga)
    .bind(json)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Gives instances of `saga` from before versions were kept the definition `hash`.
pub async fn adopt_unversioned(tx: &mut Tx, saga: &str, hash: &str) -> Result<u64, StoreError> {
    tx.flush().await?;
    let result = sqlx::query("UPDATE sagas SET definition = $1 WHERE definition IS NULL AND saga = $2")
        .bind(hash)
        .bind(saga)
        .execute(&mut **tx)
        .await?;
    Ok(result.rows_affected())
}

/// The definition (JSON) kept under `hash`.
pub async fn definition(tx: &mut Tx, hash: &str) -> Result<Option<String>, StoreError> {
    let row = sqlx::query("SELECT definition FROM saga_definitions WHERE hash = $1")
        .bind(hash)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// Every definition kept for `saga` that instances in flight still run on, as (hash, JSON).
pub async fn definitions_in_flight(store: &Store, saga: &str) -> Result<Vec<(String, String)>, StoreError> {
    let rows = sqlx::query(
        "SELECT d.hash, d.definition FROM saga_definitions d WHERE d.saga = $1 AND EXISTS \
         (SELECT 1 FROM sagas s WHERE s.definition = d.hash AND s.status = 'PENDING') ORDER BY d.created_at_ms, d.hash",
    )
    .bind(saga)
    .fetch_all(store.pool())
    .await?;
    rows.into_iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).collect()
}

/// Writes the new state and routes with the commit, if the saga is then still at `version`
/// (else the commit fails with a conflict).
pub async fn update(
    tx: &mut Tx,
    id: &str,
    version: i64,
    state: &impl SagaRecord,
    routes: &Routes,
    now_ms: i64,
) -> Result<(), StoreError> {
    // One held write per saga: a second write of the same saga goes after the first.
    tx.settle(ReadBy::Saga, id).await?;
    let row = vec![
        id.into(),
        serde_json::to_string(state).unwrap_or_default().into(),
        state.status_name().into(),
        state.wake_at_ms().into(),
        routes_json(routes).into(),
        now_ms.into(),
        version.into(),
    ];
    tx.hold(Table::SagaUpdates, row);
    Ok(())
}

/// Adds history lines, sent with the transaction's commit.
pub fn add_history(tx: &mut Tx, id: &str, entries: &[HistoryEntry], now_ms: i64) {
    for entry in entries {
        tx.hold_history(id, &entry.step, &entry.action, entry.detail.as_deref(), now_ms);
    }
}

/// Sagas whose timeout or backoff is due.
pub async fn due(store: &Store, saga: &str, now_ms: i64, limit: u32) -> Result<Vec<String>, StoreError> {
    let sql = format!(
        "SELECT id FROM sagas WHERE wake_at_ms IS NOT NULL AND wake_at_ms <= $1 AND saga = $2 ORDER BY wake_at_ms LIMIT {limit}"
    );
    let rows = sqlx::query(&sql).bind(now_ms).bind(saga).fetch_all(store.pool()).await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// When the next saga of `saga` is due (none: no saga waits for a timer).
pub async fn next_wake(store: &Store, saga: &str) -> Result<Option<i64>, StoreError> {
    let row = sqlx::query("SELECT MIN(wake_at_ms) FROM sagas WHERE wake_at_ms IS NOT NULL AND saga = $1")
        .bind(saga)
        .fetch_one(store.pool())
        .await?;
    Ok(row.try_get(0)?)
}

/// Saga instances by status.
pub async fn count_by_status(store: &Store, saga: &str) -> Result<Vec<(String, i64)>, StoreError> {
    let rows = sqlx::query("SELECT status, COUNT(*) FROM sagas WHERE saga = $1 GROUP BY status")
        .bind(saga)
        .fetch_all(store.pool())
        .await?;
    rows.into_iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).collect()
}

/// An instance in flight: its id, version, definition hash (none: from before versions)
/// and state (as stored, JSON).
pub struct Pending {
    pub id: String,
    pub version: i64,
    pub definition: Option<String>,
    pub state: String,
}

/// The instances of `saga` still in flight, at most `limit`.
pub async fn pending(store: &Store, saga: &str, limit: u32) -> Result<Vec<Pending>, StoreError> {
    let rows =
        sqlx::query("SELECT id, version, definition, state FROM sagas WHERE saga = $1 AND status = 'PENDING' LIMIT $2")
            .bind(saga)
            .bind(i64::from(limit))
            .fetch_all(store.pool())
            .await?;
    rows.into_iter()
        .map(|row| {
            Ok(Pending {
                id: row.try_get(0)?,
                version: row.try_get(1)?,
                definition: row.try_get(2)?,
                state: row.try_get(3)?,
            })
        })
        .collect()
}
