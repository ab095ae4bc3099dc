//! The `[relay]` pass: mode, batching, and the WAL mode's slot, publication and limits.

use std::time::Duration;

use super::{Bounds, Compiler};
use crate::config::spec::RelaySpec;
use crate::diagnostic::KeyPath;
use crate::services::relay::{AfterPublish, OnRetainedWalLimit, OnSlotLost, RelayConfig, RelayMode, WalConfig};
use crate::store::{Dialect, StoreConfig};

pub(super) fn compile_relay(c: &mut Compiler, relay: &RelaySpec, store: &StoreConfig) -> RelayConfig {
    let at = KeyPath::section("relay");
    let mode = relay.mode.unwrap_or(RelayMode::Auto);
    if mode == RelayMode::Wal && store.dialect == Dialect::Sqlite {
        c.problem(
            at.key("mode"),
            "relay mode \"wal\" reads PostgreSQL's WAL, but the database is SQLite; use \"polling\" or \"auto\"",
        );
    }
    let mut after_publish = relay.after_publish.unwrap_or(AfterPublish::Mark);
    if after_publish == AfterPublish::Keep && mode != RelayMode::Wal {
        c.problem(
            at.key("after_publish"),
            "`keep` needs relay mode \"wal\": polling finds unpublished rows by their mark",
        );
        after_publish = AfterPublish::Mark;
    }
    let batch_size = relay.batch_size.unwrap_or(500);
    if batch_size == 0 {
        c.problem(at.key("batch_size"), "batch_size must be at least 1");
    }
    RelayConfig {
        mode,
        poll_interval: c.duration_in(
            at.key("poll_interval"),
            relay.poll_interval.as_deref(),
            Duration::from_millis(20),
            Bounds::INTERVAL,
        ),
        batch_size: batch_size.max(1),
        after_publish,
        wal: compile_wal(c, relay, &at),
    }
}

/// A PostgreSQL name the relay puts into SQL: lower-case letters, digits and `_`.
fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
        && !name.starts_with(|ch: char| ch.is_ascii_digit())
}

fn compile_wal(c: &mut Compiler, relay: &RelaySpec, at: &KeyPath) -> WalConfig {
    if let Some(slot) = &relay.slot {
        if !is_identifier(slot) {
            c.problem(
                at.key("slot"),
                format!("`{slot}` is not a valid slot name; use up to 63 lower-case letters, digits and `_`"),
            );
        }
    }
    let publication = relay.publication.clone().unwrap_or_else(|| "chaos_outbox".to_string());
    if !is_identifier(&publication) {
        c.problem(
            at.key("publication"),
            format!("`{publication}` is not a valid publication name; use up to 63 lower-case letters, digits and `_`"),
        );
    }
    let tables = relay.tables.clone().unwrap_or_else(|| vec!["outbox".to_string()]);
    if tables.is_empty() {
        c.problem(at.key("tables"), "list at least one outbox table");
    }
    for (i, table) in tables.iter().enumerate() {
        if !table.split('.').all(is_identifier) || table.split('.').count() > 2 {
            c.problem(
                at.key("tables").index(i),
                format!("`{table}` is not a table name; write `outbox` or `schema.outbox`"),
            );
        }
    }
    let max_retained_wal = relay.max_retained_wal.as_deref().and_then(|text| {
        let bytes = parse_bytes(text);
        if bytes.is_none() {
            c.problem(
                at.key("max_retained_wal"),
                format!("`{text}` is not a size; write it like \"512MiB\" or \"2GiB\""),
            );
        }
        bytes
    });
    let on_retained_wal_limit = relay.on_retained_wal_limit.unwrap_or(OnRetainedWalLimit::Warn);
    if on_retained_wal_limit == OnRetainedWalLimit::DropSlot && relay.max_retained_wal.is_none() {
        c.problem(at.key("on_retained_wal_limit"), "`drop_slot` needs `max_retained_wal` to say when");
    }
    WalConfig {
        slot: relay.slot.clone(),
        publication,
        tables,
        heartbeat_interval: c.duration_in(
            at.key("heartbeat_interval"),
            relay.heartbeat_interval.as_deref(),
            Duration::from_secs(10),
            Bounds::INTERVAL,
        ),
        status_interval: c.duration_in(
            at.key("status_interval"),
            relay.status_interval.as_deref(),
            Duration::from_secs(1),
            Bounds::INTERVAL,
        ),
        monitor_interval: c.duration_in(
            at.key("monitor_interval"),
            relay.monitor_interval.as_deref(),
            Duration::from_secs(5),
            Bounds::INTERVAL,
        ),
        max_retained_wal,
        on_retained_wal_limit,
        on_slot_lost: relay.on_slot_lost.unwrap_or(OnSlotLost::Fail),
    }
}

/// `512MiB`, `2GiB`, `100kB`, `1GB` or a plain number of bytes.
pub fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|ch: char| !ch.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" => 1_000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        "TB" => 1_000_000_000_000,
        "TiB" => 1 << 40,
        _ => return None,
    };
    number.checked_mul(factor)
}
