//! The database: PostgreSQL or SQLite, chosen by URL, through one sqlx `Any` pool.
//!
//! Migrations live in `runner/migrations/{postgres,sqlite}` and run on start-up. SQL that
//! differs between the two databases goes through [`Dialect`]; everything else is shared.

mod ahead;
mod config;
pub mod effects;
mod held;
pub mod inbox;
pub mod orders;
pub mod outbox;
pub mod sagas;
mod tx;

use std::str::FromStr;
use std::sync::Once;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Connection as _, Executor};

pub use config::StoreConfig;

pub use ahead::{InboxCheck, ReadAhead};
pub use tx::Tx;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("write conflict on {0}; retry")]
    Conflict(String),
    /// A message taken as new ([`InboxCheck::AssumeNew`]) has an inbox entry already: its
    /// transaction must roll back and run again with the entries read.
    #[error("{0} handled before; read the inbox and retry")]
    AlreadyHandled(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A chaos rule made the call fail; it passes like an outage of the database.
    #[error("database unavailable (chaos: {0})")]
    Injected(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    /// A parameter bound as text into a `uuid` column.
    pub fn uuid(self, param: &str) -> String {
        match self {
            Dialect::Postgres => format!("CAST({param} AS uuid)"),
            Dialect::Sqlite => param.to_string(),
        }
    }

    /// A parameter bound as text into a JSON column.
    pub fn json(self, param: &str) -> String {
        match self {
            Dialect::Postgres => format!("CAST({param} AS jsonb)"),
            Dialect::Sqlite => param.to_string(),
        }
    }

    /// A column read back as text.
    pub fn text(self, column: &str) -> String {
        match self {
            Dialect::Postgres => format!("CAST({column} AS text)"),
            Dialect::Sqlite => column.to_string(),
        }
    }
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    url: String,
}

/// A pooled connection idle this long is tested before it is handed out.
const TEST_IDLE_AFTER: Duration = Duration::from_secs(1);

static MIGRATIONS_POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
static MIGRATIONS_SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl Store {
    /// Connects and applies the migrations.
    pub async fn connect(config: &StoreConfig) -> Result<Self, StoreError> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let dialect = config.dialect;
        let url = match dialect {
            Dialect::Sqlite => sqlite_url(&config.url),
            Dialect::Postgres => config.url.clone(),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let mut pool = AnyPoolOptions::new()
            .acquire_timeout(Duration::from_secs(30))
            // The pool already tests a connection when it is returned (sqlx pings it then);
            // testing it again on every acquire cost each transaction one more round trip.
            // Only a connection that sat idle is tested: the database may have restarted.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= TEST_IDLE_AFTER {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            });
        pool = match dialect {
            // One connection: SQLite has one writer, and a single connection cannot deadlock
            // on lock upgrades; other processes on the same file wait via busy_timeout.
            Dialect::Sqlite => pool.max_connections(1).after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    Ok(())
                })
            }),
            Dialect::Postgres => pool.max_connections(config.max_connections.max(2)),
        };
        let pool = pool.connect_with(options).await?;
        let store = Store { pool, dialect, url: config.url.clone() };
        match dialect {
            Dialect::Postgres => MIGRATIONS_POSTGRES.run(&store.pool).await?,
            Dialect::Sqlite => MIGRATIONS_SQLITE.run(&store.pool).await?,
        }
        Ok(store)
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The most connections the pool opens (SQLite: one).
    pub fn max_connections(&self) -> usize {
        self.pool.options().get_max_connections() as usize
    }

    /// The URL the store was opened with (the WAL relay opens its replication connection from it).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(Tx::new(self.pool.begin().await?, self.dialect))
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        tokio::time::timeout(Duration::from_secs(2), sqlx::query("SELECT 1").execute(&self.pool))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Makes sure the SQLite file (and its folder) is created when missing.
fn sqlite_url(url: &str) -> String {
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let file = path.split('?').next().unwrap_or(path);
    if let Some(parent) = std::path::Path::new(file).parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    if url.contains("mode=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// Whether the database refused a row because its key is taken (PostgreSQL and SQLite alike).
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(|e| e.is_unique_violation())
}

/// Whether a database error is worth retrying (busy, locked, serialization, connection lost).
pub fn is_transient(error: &StoreError) -> bool {
    match error {
        StoreError::Conflict(_) | StoreError::AlreadyHandled(_) | StoreError::Injected(_) => true,
        StoreError::Database(e) => {
            !matches!(e, sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) | sqlx::Error::TypeNotFound { .. })
        }
        StoreError::Migration(_) | StoreError::Corrupt(_) => false,
    }
}
