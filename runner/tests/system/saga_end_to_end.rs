//! The order saga end to end: order-api, relay, orchestrator and the three services from the
//! shipped pipeline files, on the embedded broker and a real database (PostgreSQL and SQLite).
//! 500 orders mix every path; each must reach its expected state, and money and stock must
//! be conserved — also when every consumer gets every message twice.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::Row;

use crate::support::{
    assert_guarantees, read_topic, scalar, shipped_pipelines, temp_sqlite, System, TempPg, COMPLETED_HISTORY,
};

/// What one order should end as.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Path {
    Success,
    DeclinedBlocked,
    DeclinedAmount,
    UnknownSku,
    NoShipping,
}

impl Path {
    fn expected(self) -> (&'static str, &'static str) {
        match self {
            Path::Success => ("COMPLETED", ""),
            Path::DeclinedBlocked => ("CANCELLED", "payment failed: customer blocked-"),
            Path::DeclinedAmount => ("CANCELLED", "payment failed: amount"),
            Path::UnknownSku => ("CANCELLED", "inventory failed: unknown SKU"),
            Path::NoShipping => ("CANCELLED", "shipping failed: no shipping to ZZ"),
        }
    }
}

fn order_for(i: usize) -> (Path, Value) {
    let path = match i % 10 {
        0..=4 => Path::Success,
        5 => Path::DeclinedBlocked,
        6 => Path::DeclinedAmount,
        7 | 8 => Path::UnknownSku,
        _ => Path::NoShipping,
    };
    let sku = |n: usize| format!("SKU-{}", n % 5 + 1);
    let customer = if path == Path::DeclinedBlocked { format!("blocked-{i}") } else { format!("c-{i}") };
    let mut items = vec![json!({ "sku": sku(i), "quantity": 1 + i % 3, "unitPrice": 1000 + i as i64 })];
    if i.is_multiple_of(2) {
        items.push(json!({ "sku": sku(i + 1), "quantity": 2, "unitPrice": 250 }));
    }
    match path {
        Path::DeclinedAmount => items.push(json!({ "sku": "SKU-1", "quantity": 1, "unitPrice": 600000 })),
        Path::UnknownSku => items.push(json!({ "sku": "SKU-404", "quantity": 1, "unitPrice": 100 })),
        _ => {}
    }
    let country = if path == Path::NoShipping { "ZZ" } else { "DE" };
    (path, json!({ "customerId": customer, "currency": "EUR", "items": items, "shipTo": { "country": country } }))
}

pub(crate) async fn run_500_orders(system: &System) {
    // Post in waves of 25 concurrent requests.
    let (paths, bodies): (Vec<Path>, Vec<Value>) = (0..500).map(order_for).unzip();
    let ids = system.post_orders(bodies, 25).await;
    let expected: BTreeMap<String, Path> = ids.into_iter().zip(paths).collect();
    assert_eq!(expected.len(), 500);
    // Concurrent POSTs commit together: 500 orders in fewer transactions, each order once.
    let metrics = system.metrics().await;
    let series = |name: &str| {
        let prefix = format!("consumer_transaction_messages_{name}{{consumer=\"order-api/orders\"}} ");
        metrics.lines().find_map(|l| l.strip_prefix(&prefix)?.parse::<f64>().ok()).unwrap_or_default()
    };
    let (orders, transactions) = (series("sum"), series("count"));
    assert_eq!(orders, 500.0, "every order written once");
    assert!(transactions < 500.0, "{transactions} transactions for 500 orders");
    println!("order-api: 500 orders in {transactions} transactions");
    let statuses = system.wait_all_terminal(500, Duration::from_secs(240)).await;
    let store = system.store();
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for (id, status) in &statuses {
        *by_status.entry(status.clone()).or_default() += 1;
        let path = expected[id];
        let (want_status, want_reason) = path.expected();
        let reason: Option<String> = sqlx::query("SELECT reason FROM orders WHERE id = $1")
            .bind(id)
            .fetch_one(store.pool())
            .await
            .unwrap()
            .get(0);
        assert_eq!(status, want_status, "order {id} on path {path:?} (reason {reason:?})");
        assert!(reason.unwrap_or_default().starts_with(want_reason), "order {id} on path {path:?}");
    }
    assert_eq!(by_status.get("COMPLETED"), Some(&250), "{by_status:?}");
    assert_eq!(by_status.get("CANCELLED"), Some(&250), "{by_status:?}");

    // Money and stock are conserved (charges minus refunds, reserved minus released per SKU).
    assert_guarantees(store).await;
    assert!(scalar(store, "SELECT SUM(total) FROM orders WHERE status = 'COMPLETED'").await > 0);
    // Refunds happened for every order that was charged and then cancelled (unknown SKU, ZZ).
    assert_eq!(scalar(store, "SELECT COUNT(*) FROM payments WHERE status = 'refunded'").await, 150);
    // Shipping: one live shipment per completed order, none for the others.
    assert_eq!(scalar(store, "SELECT COUNT(*) FROM shipments WHERE status = 'scheduled'").await, 250);
    // Every completed order's history ends with the saga's completion, after three steps.
    let sample = statuses.iter().find(|(_, s)| s == "COMPLETED").unwrap().0.clone();
    let order = system.get(&format!("/api/orders/{sample}")).await;
    let actions: Vec<String> = order["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| format!("{} {}", h["step"].as_str().unwrap(), h["action"].as_str().unwrap()))
        .collect();
    assert_eq!(actions, COMPLETED_HISTORY);
    // Everything written to the outbox reached the broker (the last rows are marked moments later).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let unpublished = scalar(store, "SELECT COUNT(*) FROM outbox WHERE published_at_ms IS NULL").await;
        if unpublished == 0 {
            break;
        }
        if Instant::now() >= deadline {
            let rows = sqlx::query("SELECT CAST(id AS text), type, seq FROM outbox WHERE published_at_ms IS NULL")
                .fetch_all(store.pool())
                .await
                .unwrap();
            let rows: Vec<(String, String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
            let relay = system.get("/api/relay/status").await;
            // A row left unmarked must still have reached its topic: the mark is bookkeeping,
            // the record on the topic is what counts. Anything missing there is a loss.
            let mut missing: Vec<(String, String, i64)> = Vec::new();
            for (id, event_type, seq) in rows {
                let records = read_topic(&system.bootstrap(), &event_type).await;
                if !records.iter().any(|r| r.headers.get("ce_id") == Some(&id)) {
                    missing.push((id, event_type, seq));
                }
            }
            assert!(missing.is_empty(), "outbox rows never published: {missing:?}; relay: {relay}");
            eprintln!("{unpublished} published row(s) left unmarked; relay: {relay}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The relay mode the system runs: `wal` on PostgreSQL here, `polling` on SQLite.
pub(crate) async fn relay_mode(system: &System) -> String {
    let status = system.get("/api/relay/status").await;
    status["mode"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_orders_on_postgres() {
    let db = TempPg::create("chaos_e2e").await;
    let system = System::start(shipped_pipelines(&db.url)).await;
    run_500_orders(&system).await;
    assert_eq!(relay_mode(&system).await, "wal", "the saga suite runs with the relay reading the WAL");
    system.stop().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_orders_on_sqlite() {
    let (_dir, url) = temp_sqlite();
    let system = System::start(shipped_pipelines(&url)).await;
    run_500_orders(&system).await;
    assert_eq!(relay_mode(&system).await, "polling");
    system.stop().await;
}

pub(crate) fn redelivering(mut pipelines: Vec<runner::config::Pipeline>) -> Vec<runner::config::Pipeline> {
    for p in &mut pipelines {
        p.broker.redeliver_each_message = true;
    }
    pipelines
}

/// Each service really handled each request twice: it answered twice, but took effect once.
pub(crate) async fn assert_duplicates_were_absorbed(system: &System) {
    let store = system.store();
    for (reply, effects) in [
        ("payment.charged", "SELECT COUNT(*) FROM payments WHERE charged_at_ms IS NOT NULL"),
        ("inventory.reserved", "SELECT COUNT(*) FROM reservations WHERE reserved_at_ms IS NOT NULL"),
        ("shipping.scheduled", "SELECT COUNT(*) FROM shipments WHERE scheduled_at_ms IS NOT NULL"),
    ] {
        let replies = scalar(store, &format!("SELECT COUNT(*) FROM outbox WHERE type = '{reply}'")).await;
        let effects = scalar(store, effects).await;
        assert!(effects > 0 && replies >= 2 * effects, "{reply}: {replies} replies for {effects} effects");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_delivered_twice_on_postgres() {
    let db = TempPg::create("chaos_redeliver").await;
    let system = System::start(redelivering(shipped_pipelines(&db.url))).await;
    run_500_orders(&system).await;
    assert_eq!(relay_mode(&system).await, "wal");
    assert_duplicates_were_absorbed(&system).await;
    system.stop().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_delivered_twice_on_sqlite() {
    let (_dir, url) = temp_sqlite();
    let system = System::start(redelivering(shipped_pipelines(&url))).await;
    run_500_orders(&system).await;
    assert_duplicates_were_absorbed(&system).await;
    system.stop().await;
}
