//! The outbox relay (the Debezium role), in two modes: `wal` streams the outbox's inserts by
//! logical replication ([`wal`]); `polling` queries for unpublished rows ([`polling`]).
//! Both publish a row to the topic named by its type and count it published only after the
//! broker's acknowledgement. [`status`] is what the relay reports at `/api/relay/status`;
//! [`reconcile`] checks afterwards that every outbox row reached its topic.

mod config;
pub mod pgoutput;
mod polling;
pub mod reconcile;
pub mod slot;
pub mod status;
mod tracker;
mod wal;

pub use config::{AfterPublish, OnRetainedWalLimit, OnSlotLost, RelayConfig, RelayMode, WalConfig};
pub use status::RelayStatus;

use crate::services::ServiceContext;
use crate::store::{Dialect, StoreError};
use crate::transport::TransportError;

/// Where the relay's routes are mounted.
pub const PREFIX: &str = "/api/relay";

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("replication: {0}")]
    Replication(String),
    #[error("{0}")]
    Setup(String),
}

impl From<pgoutput::DecodeError> for RelayError {
    fn from(e: pgoutput::DecodeError) -> Self {
        RelayError::Replication(e.to_string())
    }
}

/// Delay before the next try after `failures` failures in a row: 200 ms doubling to 5 s.
fn backoff(failures: u32) -> std::time::Duration {
    std::time::Duration::from_millis(100u64.saturating_mul(1 << failures.min(6))).min(std::time::Duration::from_secs(5))
}

/// Sleeps for `delay`, or less when the service shuts down.
async fn pause(ctx: &ServiceContext, delay: std::time::Duration) {
    tokio::select! {
        _ = ctx.shutdown.cancelled() => {}
        _ = tokio::time::sleep(delay) => {}
    }
}

/// Which mode `auto` means on this database.
pub async fn resolve_mode(ctx: &ServiceContext, mode: RelayMode) -> RelayMode {
    match (mode, ctx.store.dialect()) {
        (RelayMode::Auto, Dialect::Sqlite) => RelayMode::Polling,
        (RelayMode::Auto, Dialect::Postgres) => match slot::wal_level(&ctx.store).await {
            Ok(level) if level == "logical" => RelayMode::Wal,
            Ok(level) => {
                tracing::info!(wal_level = level, "PostgreSQL has no logical decoding; relaying by polling");
                RelayMode::Polling
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read wal_level; relaying by polling");
                RelayMode::Polling
            }
        },
        (mode, _) => mode,
    }
}

/// Runs the relay in its configured mode until shutdown.
pub async fn run(ctx: ServiceContext, config: RelayConfig, status: RelayStatus) -> Result<(), RelayError> {
    let mode = resolve_mode(&ctx, config.mode).await;
    let name = if mode == RelayMode::Wal { "wal" } else { "polling" };
    status.update(|s| s.mode = name.to_string());
    match mode {
        RelayMode::Wal => wal::run(ctx, config, status).await,
        _ => polling::run(ctx, config, status).await,
    }
}
