//! The store's settings: which database, and how many connections.

use super::Dialect;

/// `[store]`, compiled: the database URL with its kind parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub url: String,
    /// PostgreSQL or SQLite, from the URL's scheme.
    pub dialect: Dialect,
    pub max_connections: u32,
}

impl Dialect {
    /// The database a URL names: `postgres://…`, `postgresql://…` or `sqlite:…`.
    pub fn of_url(url: &str) -> Option<Dialect> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Dialect::Postgres)
        } else if url.starts_with("sqlite:") {
            Some(Dialect::Sqlite)
        } else {
            None
        }
    }
}

impl StoreConfig {
    /// Settings for `url`, or `None` when it names no supported database.
    pub fn for_url(url: &str, max_connections: u32) -> Option<StoreConfig> {
        Some(StoreConfig { url: url.to_string(), dialect: Dialect::of_url(url)?, max_connections })
    }
}
