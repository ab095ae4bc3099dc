//! Replication slot and publication management, in plain SQL on the relay's PostgreSQL pool:
//! create when missing, measure lag and retained WAL, write heartbeats, drop on request.

use sqlx::Row;

use crate::store::{Store, StoreError};

/// Where the slot stands, as `pg_replication_slots` reports it.
#[derive(Debug, Clone)]
pub struct SlotStats {
    /// The database the slot decodes (a logical slot belongs to one).
    pub database: Option<String>,
    pub active: bool,
    pub active_pid: Option<i32>,
    /// `reserved`, `extended`, `unreserved` or `lost`.
    pub wal_status: Option<String>,
    pub confirmed_lsn: Option<String>,
    /// WAL written since the confirmed position.
    pub lag_bytes: Option<i64>,
    /// WAL the server keeps for this slot.
    pub retained_bytes: Option<i64>,
}

pub async fn wal_level(store: &Store) -> Result<String, StoreError> {
    Ok(sqlx::query("SELECT CAST(setting AS text) FROM pg_settings WHERE name = 'wal_level'")
        .fetch_one(store.pool())
        .await?
        .try_get(0)?)
}

pub async fn database_name(store: &Store) -> Result<String, StoreError> {
    Ok(sqlx::query("SELECT CAST(current_database() AS text)").fetch_one(store.pool()).await?.try_get(0)?)
}

/// The slot name used when the pipeline names none: one per database, as slots are cluster-wide.
/// A name past PostgreSQL's 63 bytes is cut and ends with a hash of the whole database name, so
/// databases that differ only at the end (`…_run_1`, `…_run_16`) never share a slot.
pub fn default_slot_name(database: &str) -> String {
    const MAX: usize = 63;
    let clean: String =
        database.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    let name = format!("relay_{clean}");
    if name.len() <= MAX {
        return name;
    }
    // FNV-1a: stable across builds and platforms, unlike the standard library's hasher.
    let hash = database.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    let suffix = format!("_{hash:08x}");
    // `clean` is ASCII, so any byte index is a character boundary.
    format!("{}{suffix}", &name[..MAX - suffix.len()])
}

/// Creates the publication on the outbox table(s), inserts only, when it does not exist; true
/// when it was created.
///
/// An existing publication that no longer covers a table (the table was dropped and made
/// again, or someone altered the publication) would stream nothing for it, with no error:
/// the missing tables are added back, and returned in the second field so the caller can
/// say that rows written meanwhile were not streamed.
pub async fn ensure_publication(
    store: &Store,
    publication: &str,
    tables: &[String],
) -> Result<(bool, Vec<String>), StoreError> {
    let exists = sqlx::query("SELECT 1 FROM pg_publication WHERE pubname = $1")
        .bind(publication)
        .fetch_optional(store.pool())
        .await?
        .is_some();
    if exists {
        let covered = sqlx::query(
            "SELECT CAST(schemaname AS text) || '.' || CAST(tablename AS text) FROM pg_publication_tables WHERE pubname = $1",
        )
        .bind(publication)
        .fetch_all(store.pool())
        .await?
        .iter()
        .map(|row| row.try_get::<String, _>(0))
        .collect::<Result<Vec<String>, _>>()?;
        let schema: String =
            sqlx::query("SELECT CAST(current_schema() AS text)").fetch_one(store.pool()).await?.try_get(0)?;
        let mut added = Vec::new();
        for table in tables {
            let qualified = if table.contains('.') { table.clone() } else { format!("{schema}.{table}") };
            if !covered.contains(&qualified) {
                // Names were checked at compile time to be plain identifiers.
                sqlx::query(&format!("ALTER PUBLICATION {publication} ADD TABLE {table}"))
                    .execute(store.pool())
                    .await?;
                added.push(table.clone());
            }
        }
        return Ok((false, added));
    }
    // Names were checked at compile time to be plain identifiers.
    let sql = format!("CREATE PUBLICATION {publication} FOR TABLE {} WITH (publish = 'insert')", tables.join(", "));
    match sqlx::query(&sql).execute(store.pool()).await {
        Ok(_) => Ok((true, Vec::new())),
        // Another relay created it at the same moment.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42710") => Ok((false, Vec::new())),
        Err(e) => Err(e.into()),
    }
}

pub async fn stats(store: &Store, slot: &str) -> Result<Option<SlotStats>, StoreError> {
    let row = sqlx::query(
        "SELECT CAST(database AS text), active, active_pid, CAST(wal_status AS text), CAST(confirmed_flush_lsn AS text), \
         CAST(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn) AS bigint), \
         CAST(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) AS bigint) \
         FROM pg_replication_slots WHERE slot_name = $1",
    )
    .bind(slot)
    .fetch_optional(store.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(SlotStats {
        database: row.try_get(0)?,
        active: row.try_get(1)?,
        active_pid: row.try_get(2)?,
        wal_status: row.try_get(3)?,
        confirmed_lsn: row.try_get(4)?,
        lag_bytes: row.try_get(5)?,
        retained_bytes: row.try_get(6)?,
    }))
}

/// Creates the logical slot with the pgoutput plugin.
pub async fn create(store: &Store, slot: &str) -> Result<(), StoreError> {
    match sqlx::query("SELECT CAST(lsn AS text) FROM pg_create_logical_replication_slot($1, 'pgoutput')")
        .bind(slot)
        .fetch_one(store.pool())
        .await
    {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42710") => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Drops the slot, ending the connection that holds it first.
pub async fn drop(store: &Store, slot: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL")
        .bind(slot)
        .execute(store.pool())
        .await?;
    for _ in 0..50 {
        match sqlx::query("SELECT CAST(pg_drop_replication_slot($1) AS text)").bind(slot).execute(store.pool()).await {
            Ok(_) => return Ok(()),
            // Still active for a moment after the terminate.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55006") => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict(format!("replication slot {slot} stayed active")))
}

pub const HEARTBEAT_PREFIX: &str = "chaos-symphony.relay-heartbeat";

/// Writes a heartbeat into the WAL: it comes back through the stream and lets an idle slot
/// confirm a newer position, so WAL written by other databases is not held back.
pub async fn heartbeat(store: &Store) -> Result<(), StoreError> {
    sqlx::query("SELECT CAST(pg_logical_emit_message(false, $1, '') AS text)")
        .bind(HEARTBEAT_PREFIX)
        .execute(store.pool())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::default_slot_name;

    #[test]
    fn default_slot_names_fit_and_stay_apart() {
        assert_eq!(default_slot_name("Orders-DB"), "relay_orders_db");
        let base = format!("chaos_bench_{}", "0123456789abcdef".repeat(2));
        let (a, b) =
            (default_slot_name(&format!("{base}_postgres_16_1")), default_slot_name(&format!("{base}_postgres_16_16")));
        assert!(a.len() <= 63 && b.len() <= 63, "{a} {b}");
        assert_ne!(a, b);
        assert_eq!(a, default_slot_name(&format!("{base}_postgres_16_1")), "the same database, the same slot");
        let long = "é".repeat(40);
        assert!(default_slot_name(&long).len() <= 63);
    }
}
