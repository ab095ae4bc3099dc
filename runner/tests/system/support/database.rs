//! Throw-away databases: a fresh PostgreSQL database per test (dropped with its replication
//! slots), a SQLite file in a temporary folder, and single numbers read back from either.

use sqlx::Row;

use runner::store::Store;

/// Where the machine's PostgreSQL is; tests create and drop their own databases there.
pub fn pg_admin_url() -> String {
    std::env::var("CHAOS_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A fresh PostgreSQL database, dropped by [`TempPg::drop_database`], or when the value is
/// dropped (a failing test too), with its replication slots: a forgotten slot keeps WAL forever.
pub struct TempPg {
    pub url: String,
    name: String,
    dropped: bool,
}

impl Drop for TempPg {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(drop_database_named(&name));
        })
        .join();
    }
}

impl TempPg {
    pub async fn create(prefix: &str) -> TempPg {
        sqlx::any::install_default_drivers();
        let admin = pg_admin_url();
        // `chaos_…`: scripts/prepare-postgres drops what a crashed run left behind by that name
        // (a leaked replication slot would otherwise count against max_replication_slots).
        let name = format!("chaos_{prefix}_{}", uuid::Uuid::new_v4().simple());
        let mut conn = connect(&admin).await;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create the test database (is PostgreSQL running on 127.0.0.1:5432?)");
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b).to_string();
        TempPg { url: format!("{base}/{name}"), name, dropped: false }
    }

    pub async fn drop_database(mut self) {
        self.dropped = true;
        drop_database_named(&self.name).await;
    }
}

async fn drop_database_named(name: &str) {
    let mut conn = connect(&pg_admin_url()).await;
    // A database with a replication slot cannot be dropped; the slot would also keep WAL forever.
    let _ = sqlx::query(
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL",
    )
    .bind(name)
    .execute(&mut conn)
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let _ = sqlx::query(
        "SELECT CAST(pg_drop_replication_slot(slot_name) AS text) FROM pg_replication_slots WHERE database = $1",
    )
    .bind(name)
    .execute(&mut conn)
    .await;
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", name)).execute(&mut conn).await;
}

async fn connect(url: &str) -> sqlx::AnyConnection {
    use sqlx::Connection;
    sqlx::AnyConnection::connect(url).await.unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"))
}

/// A temporary SQLite database URL (the directory lives as long as the returned guard).
pub fn temp_sqlite() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    (dir, url)
}

/// Each saga's payment route on PostgreSQL, as a table `r`: the variant its payment request
/// went to (NULL before it was sent), from the saga row's routes.
pub const PAYMENT_ROUTES: &str =
    "(SELECT id AS saga_id, CAST(routes AS jsonb) -> 'payment' ->> 'variant' AS variant FROM sagas) r";

/// The single number a query returns (as BIGINT on both databases; SUM is NUMERIC on PostgreSQL).
pub async fn scalar(store: &Store, sql: &str) -> i64 {
    let row = sqlx::query(&format!("SELECT CAST(({sql}) AS BIGINT)"))
        .fetch_one(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    row.try_get::<Option<i64>, _>(0).unwrap().unwrap_or(0)
}
