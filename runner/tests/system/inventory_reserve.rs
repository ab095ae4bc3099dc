//! inventory.reserve takes each SKU's stock at once, in SKU order; an order it cannot meet
//! (too little of a later SKU, or a SKU nobody stocks) is refused with the reason and gives
//! back what it had taken, in the same transaction. On PostgreSQL and SQLite.

use std::collections::BTreeMap;

use runner::handlers::{self, Outcome};
use runner::store::{Store, StoreConfig};
use serde_json::{json, Value};
use sqlx::Row;

use crate::support::{temp_sqlite, TempPg};

fn order(id: &str, items: &[(&str, i64)]) -> Value {
    let items: Vec<Value> =
        items.iter().map(|(sku, q)| json!({ "sku": sku, "quantity": q, "unitPrice": 100 })).collect();
    json!({
        "orderId": id, "customerId": "c-1", "currency": "EUR", "total": 100,
        "items": items, "shipTo": { "country": "DE" },
    })
}

async fn stock(store: &Store) -> BTreeMap<String, i64> {
    let rows = sqlx::query("SELECT sku, available FROM stock ORDER BY sku").fetch_all(store.pool()).await.unwrap();
    rows.iter().map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1))).collect()
}

async fn reserve(store: &Store, handler: &handlers::Handler, request: Value) -> Outcome {
    let mut tx = store.begin().await.unwrap();
    let outcome = handler.handle(&mut tx, &request, 1).await.unwrap();
    tx.commit().await.unwrap();
    outcome
}

fn reason(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Failure(payload) => payload["reason"].as_str().unwrap_or_default().to_string(),
        Outcome::Success(payload) => panic!("expected a refusal, got success {payload}"),
    }
}

async fn refusals_give_back_what_they_took(store: &Store) {
    let params = BTreeMap::from([("seed".to_string(), json!({ "SKU-A": 5, "SKU-B": 1 }))]);
    let handler = handlers::build("inventory.reserve", &params).unwrap();
    handler.prepare(store).await.unwrap();
    let full = BTreeMap::from([("SKU-A".to_string(), 5), ("SKU-B".to_string(), 1)]);

    // SKU-A is taken first, then SKU-B is short: A comes back.
    let short = reserve(store, &handler, order("o-short", &[("SKU-B", 3), ("SKU-A", 2)])).await;
    assert_eq!(reason(&short), "insufficient stock for SKU-B");
    assert_eq!(stock(store).await, full, "SKU-A given back");
    // SKU-A is taken, then SKU-Z is not stocked at all: A comes back.
    let unknown = reserve(store, &handler, order("o-unknown", &[("SKU-A", 2), ("SKU-Z", 1)])).await;
    assert_eq!(reason(&unknown), "unknown SKU SKU-Z");
    assert_eq!(stock(store).await, full, "SKU-A given back");
    // The same SKU twice counts as one line of the sum: 3 + 3 > 5.
    let summed = reserve(store, &handler, order("o-summed", &[("SKU-A", 3), ("SKU-A", 3)])).await;
    assert_eq!(reason(&summed), "insufficient stock for SKU-A");
    // A refusal is final for its order: asked again, it answers the same with no effect.
    let again = reserve(store, &handler, order("o-short", &[("SKU-A", 1)])).await;
    assert_eq!(reason(&again), "insufficient stock for SKU-B");
    assert_eq!(stock(store).await, full);

    // What fits is taken, once, with a line per SKU.
    let fits = reserve(store, &handler, order("o-fits", &[("SKU-B", 1), ("SKU-A", 2), ("SKU-A", 1)])).await;
    assert!(matches!(fits, Outcome::Success(_)));
    let again = reserve(store, &handler, order("o-fits", &[("SKU-B", 1), ("SKU-A", 3)])).await;
    assert!(matches!(again, Outcome::Success(_)), "a repeated reservation answers as the first");
    assert_eq!(stock(store).await, BTreeMap::from([("SKU-A".to_string(), 2), ("SKU-B".to_string(), 0)]));
    let lines: i64 = sqlx::query("SELECT COUNT(*) FROM reservation_lines WHERE order_id = 'o-fits'")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(lines, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_reservation_gives_back_its_stock_on_postgres() {
    let db = TempPg::create("inventory_reserve").await;
    let store = Store::connect(&StoreConfig::for_url(&db.url, 2).unwrap()).await.unwrap();
    refusals_give_back_what_they_took(&store).await;
    store.close().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_reservation_gives_back_its_stock_on_sqlite() {
    let (_dir, url) = temp_sqlite();
    let store = Store::connect(&StoreConfig::for_url(&url, 1).unwrap()).await.unwrap();
    refusals_give_back_what_they_took(&store).await;
    store.close().await;
}
