//! The `gameday_runs` table: claiming the one live run, saving a run as it goes, finishing
//! it, reading history. A run is stored whole as JSON ([`RunRecord`]).

use sqlx::Row;

use super::model::{RunRecord, RunState};
use crate::store::{is_unique_violation, Store, StoreError};

/// Why a run could not be claimed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("a game day is running already")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Stores a new run as the live one; [`ClaimError::Busy`] when another run is live.
pub async fn claim(store: &Store, run: &RunRecord) -> Result<(), ClaimError> {
    let record = serde_json::to_string(run).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let inserted = sqlx::query(
        "INSERT INTO gameday_runs (id, scenario, state, live, started_at_ms, record) VALUES ($1, $2, $3, 1, $4, $5)",
    )
    .bind(&run.id)
    .bind(&run.scenario)
    .bind(run.state.as_str())
    .bind(run.started_at_ms)
    .bind(record)
    .execute(store.pool())
    .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(ClaimError::Busy),
        Err(e) => Err(ClaimError::Store(e.into())),
    }
}

/// Saves the run as it is now; a run that is over stops being the live one.
pub async fn save(store: &Store, run: &RunRecord) -> Result<(), StoreError> {
    let record = serde_json::to_string(run).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let live: Option<i64> = (!run.state.is_over()).then_some(1);
    sqlx::query("UPDATE gameday_runs SET state = $1, live = $2, ended_at_ms = $3, record = $4 WHERE id = $5")
        .bind(run.state.as_str())
        .bind(live)
        .bind(run.ended_at_ms)
        .bind(record)
        .bind(&run.id)
        .execute(store.pool())
        .await?;
    Ok(())
}

fn decode(row: &sqlx::any::AnyRow) -> Result<RunRecord, StoreError> {
    let text: String = row.try_get("record")?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("game-day run: {e}")))
}

pub async fn get(store: &Store, id: &str) -> Result<Option<RunRecord>, StoreError> {
    let row =
        sqlx::query("SELECT record FROM gameday_runs WHERE id = $1").bind(id).fetch_optional(store.pool()).await?;
    row.as_ref().map(decode).transpose()
}

/// The newest runs first, at most `limit`, optionally of one scenario.
pub async fn list(store: &Store, scenario: Option<&str>, limit: u32) -> Result<Vec<RunRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT record FROM gameday_runs WHERE ($1 = '' OR scenario = $1) ORDER BY started_at_ms DESC LIMIT $2",
    )
    .bind(scenario.unwrap_or(""))
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(decode).collect()
}

/// The last finished run of `scenario` that started before `before_ms`: what a report compares with.
pub async fn previous(store: &Store, scenario: &str, before_ms: i64) -> Result<Option<RunRecord>, StoreError> {
    let row = sqlx::query(
        "SELECT record FROM gameday_runs WHERE scenario = $1 AND started_at_ms < $2 AND live IS NULL \
         ORDER BY started_at_ms DESC LIMIT 1",
    )
    .bind(scenario)
    .bind(before_ms)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(decode).transpose()
}

/// Marks every run still live as interrupted: called when gameday-svc starts, when no run
/// of this process can be going on (one gameday-svc per system). Their faults end by lease.
pub async fn interrupt_stale(store: &Store, now_ms: i64) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query("SELECT record FROM gameday_runs WHERE live = 1").fetch_all(store.pool()).await?;
    let mut ids = Vec::new();
    for row in &rows {
        let mut run = decode(row)?;
        run.state = RunState::Interrupted;
        run.ended_at_ms = Some(now_ms);
        run.errors
            .push("the service running this game day stopped in the middle; its faults ended by their leases".into());
        save(store, &run).await?;
        ids.push(run.id);
    }
    Ok(ids)
}
