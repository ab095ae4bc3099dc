//! Shared test support: where the repository's files are, the shipped pipelines loaded for a
//! test, polling until something holds, orders to post and the guarantees every run must keep.

pub mod broker;
pub mod cases;
pub mod database;
pub mod outbox;
pub mod process;
pub mod system;
pub mod topics;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use runner::config::{self, Defaults, LoadOptions, LoadedPipeline, Overrides, Pipeline};
use runner::store::Store;
use serde_json::Value;
use sqlx::Row;

pub use database::{scalar, temp_sqlite, TempPg, PAYMENT_ROUTES};
pub use system::System;
pub use topics::{read_numbered, read_topic, TopicRecord};

/// The development token of the shipped pipelines' `[admin] tokens`; its holder is `operator`.
pub const ADMIN_TOKEN: &str = "local-dev-token-change-me";

/// The workspace root: `pipelines/`, `schemas/` and `dashboards/` are below it.
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn pipelines_dir() -> PathBuf {
    repository().join("pipelines")
}

/// The shipped pipelines loaded as `runner check` loads them (no database, no environment).
pub fn shipped_system() -> Vec<LoadedPipeline> {
    let files = config::pipeline_files(&pipelines_dir()).expect("the pipelines directory is readable");
    config::load_system(&files, &[], &LoadOptions::default())
        .unwrap_or_else(|diagnostics| panic!("the shipped pipelines have problems:\n{diagnostics}"))
}

/// The shipped pipelines, on `database_url` and the embedded broker.
pub fn shipped_pipelines(database_url: &str) -> Vec<Pipeline> {
    shipped_pipelines_on(database_url, "embedded")
}

/// The shipped pipelines on `database_url` and `brokers` (a broker list, or `embedded`), with
/// a short consumer-group session timeout.
pub fn shipped_pipelines_on(database_url: &str, brokers: &str) -> Vec<Pipeline> {
    let files = config::pipeline_files(&pipelines_dir()).expect("pipelines directory");
    let options = LoadOptions {
        defaults: Defaults::default(),
        overrides: Overrides { database_url: Some(database_url.into()), brokers: Some(brokers.into()), listen: None },
        use_environment: false,
    };
    let loaded = config::load_system(&files, &[], &options).unwrap_or_else(|d| panic!("shipped pipelines: {d}"));
    loaded
        .into_iter()
        .map(|l| {
            let mut p = l.pipeline;
            p.broker.session_timeout = Duration::from_secs(6);
            p
        })
        .collect()
}

/// A copy of `pipelines/` and `schemas/` in a temporary folder, to edit; returns the folder's
/// guard and the copy of `pipelines/`.
pub fn shipped_copy() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    copy_dir(&pipelines_dir(), &root.path().join("pipelines"));
    copy_dir(&repository().join("schemas"), &root.path().join("schemas"));
    let dir = root.path().join("pipelines");
    (root, dir)
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// Replaces the first `from` in a file by `to`; the file must contain `from`.
pub fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from} in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// Appends `text` to a file.
pub fn append(path: &Path, text: &str) {
    let mut content = std::fs::read_to_string(path).unwrap();
    content.push_str(text);
    std::fs::write(path, content).unwrap();
}

/// Asks `probe` every `every` until it answers `Ok`, and returns that answer. Past `limit` the
/// test fails with the probe's last `Err`, which says what is still missing.
pub async fn eventually<T>(limit: Duration, every: Duration, mut probe: impl AsyncFnMut() -> Result<T, String>) -> T {
    let started = Instant::now();
    loop {
        match probe().await {
            Ok(answer) => return answer,
            Err(missing) => assert!(started.elapsed() < limit, "{missing}"),
        }
        tokio::time::sleep(every).await;
    }
}

/// The saga history of an order that completes: each step requested and answered, in order.
pub const COMPLETED_HISTORY: [&str; 7] = [
    "payment requested",
    "payment succeeded",
    "inventory requested",
    "inventory succeeded",
    "shipping requested",
    "shipping succeeded",
    "order completed",
];

/// A plain order that completes unless a fault stops it.
pub fn simple_order(i: usize) -> Value {
    serde_json::json!({
        "customerId": format!("customer-{i}"),
        "currency": "EUR",
        "items": [{ "sku": format!("SKU-{}", 1 + i % 5), "quantity": 1 + i % 2, "unitPrice": 1000 + i as i64 }],
        "shipTo": { "country": "DE" }
    })
}

/// The system's guarantees after a run: charges minus refunds equal
/// the totals of completed orders; per SKU, reserved minus released equals what completed
/// orders hold and what left the stock; one live shipment per completed order.
pub async fn assert_guarantees(store: &Store) {
    let charged = scalar(store, "SELECT COALESCE(SUM(amount), 0) FROM payments WHERE charged_at_ms IS NOT NULL").await;
    let refunded =
        scalar(store, "SELECT COALESCE(SUM(amount), 0) FROM payments WHERE refunded_at_ms IS NOT NULL").await;
    let completed_total = scalar(store, "SELECT COALESCE(SUM(total), 0) FROM orders WHERE status = 'COMPLETED'").await;
    assert_eq!(charged - refunded, completed_total, "money: charged {charged}, refunded {refunded}");
    let completed_items =
        sqlx::query("SELECT items FROM orders WHERE status = 'COMPLETED'").fetch_all(store.pool()).await.unwrap();
    let mut shipped: std::collections::BTreeMap<String, i64> = Default::default();
    for row in completed_items {
        let items: Vec<Value> = serde_json::from_str(&row.get::<String, _>(0)).unwrap();
        for item in items {
            *shipped.entry(item["sku"].as_str().unwrap().to_string()).or_default() +=
                item["quantity"].as_i64().unwrap();
        }
    }
    for sku in ["SKU-1", "SKU-2", "SKU-3", "SKU-4", "SKU-5"] {
        let reserved = scalar(store, &format!("SELECT COALESCE(SUM(l.quantity), 0) FROM reservation_lines l JOIN reservations r ON r.order_id = l.order_id WHERE l.sku = '{sku}' AND r.reserved_at_ms IS NOT NULL")).await;
        let released = scalar(store, &format!("SELECT COALESCE(SUM(l.quantity), 0) FROM reservation_lines l JOIN reservations r ON r.order_id = l.order_id WHERE l.sku = '{sku}' AND r.released_at_ms IS NOT NULL")).await;
        let available = scalar(store, &format!("SELECT available FROM stock WHERE sku = '{sku}'")).await;
        let want = shipped.get(sku).copied().unwrap_or(0);
        assert_eq!(reserved - released, want, "{sku}: reserved {reserved}, released {released}");
        assert_eq!(1_000_000 - available, want, "{sku}: stock left {available}");
    }
    let completed = scalar(store, "SELECT COUNT(*) FROM orders WHERE status = 'COMPLETED'").await;
    assert_eq!(scalar(store, "SELECT COUNT(*) FROM shipments WHERE status = 'scheduled'").await, completed);
    assert_eq!(scalar(store, "SELECT COUNT(*) FROM orders WHERE status = 'FAILED'").await, 0, "FAILED orders");
}

/// Waits until no order of `store` is PENDING, for at most `timeout`: the end of a run whose
/// services are separate processes (no `System` to ask).
pub async fn wait_none_pending(store: &Store, timeout: Duration) {
    eventually(timeout, Duration::from_millis(500), async || {
        match scalar(store, "SELECT COUNT(*) FROM orders WHERE status = 'PENDING'").await {
            0 => Ok(()),
            pending => Err(format!("{pending} orders still PENDING")),
        }
    })
    .await;
}
