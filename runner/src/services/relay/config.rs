//! The relay's settings: mode, batching, what happens to published rows, and the WAL mode's
//! slot, publication and limits. The closed sets of words are enums the file names directly.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How the relay reads the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RelayMode {
    /// Reads unpublished rows with queries (PostgreSQL and SQLite).
    Polling,
    /// Streams the outbox's inserts from PostgreSQL's WAL by logical replication.
    Wal,
    /// `wal` on PostgreSQL with `wal_level=logical`, otherwise `polling`.
    Auto,
}

/// What happens to an outbox row once the broker acknowledged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AfterPublish {
    /// Keep the row with its publish time.
    Mark,
    /// Remove the row.
    Delete,
    /// Leave the row untouched (WAL mode only: polling finds unpublished rows by their mark).
    Keep,
}

/// What the WAL relay does when its slot holds back more WAL than `max_retained_wal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnRetainedWalLimit {
    /// Log and report it, keep the slot.
    Warn,
    /// Drop the slot before it fills the disk (events not yet published are then lost to it).
    DropSlot,
}

/// What the WAL relay does when its slot is gone or invalidated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnSlotLost {
    /// Report it and keep retrying.
    Fail,
    /// Create a new slot (after a catch-up by polling).
    Recreate,
}

/// `[relay]`, compiled.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub mode: RelayMode,
    pub poll_interval: Duration,
    pub batch_size: u32,
    pub after_publish: AfterPublish,
    pub wal: WalConfig,
}

/// The WAL mode's part of `[relay]`.
#[derive(Debug, Clone)]
pub struct WalConfig {
    /// `None`: derived from the database name.
    pub slot: Option<String>,
    pub publication: String,
    pub tables: Vec<String>,
    pub heartbeat_interval: Duration,
    pub status_interval: Duration,
    pub monitor_interval: Duration,
    pub max_retained_wal: Option<u64>,
    pub on_retained_wal_limit: OnRetainedWalLimit,
    pub on_slot_lost: OnSlotLost,
}
