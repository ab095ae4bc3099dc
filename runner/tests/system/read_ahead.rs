//! A group's read-ahead (inbox entries, sagas and effect rows in one statement per table)
//! answers the lookups that follow exactly as the tables would, a saga or an effect row once
//! (a second lookup reads the table again); and migration 0006 moves every step route from `saga_routes` into its saga's
//! row. On PostgreSQL and SQLite.

use std::collections::BTreeMap;
use std::sync::Arc;

use runner::store::effects::{self, EffectTable};
use runner::store::sagas::{self, Route, Routes, SagaRecord};
use runner::store::{inbox, InboxCheck, ReadAhead, Store, StoreConfig};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::support::{temp_sqlite, TempPg};

/// A saga state of the test's own: the store asks a state for two columns only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Step(u32);

impl SagaRecord for Step {
    fn status_name(&self) -> &'static str {
        "PENDING"
    }
    fn wake_at_ms(&self) -> Option<i64> {
        None
    }
}

fn routes(variant: &str, sent_at_ms: i64) -> Routes {
    BTreeMap::from([("payment".to_string(), Route { variant: variant.to_string(), sent_at_ms })])
}

/// 40 sagas, 40 inbox entries and 40 payments exist (of the 100 ids read ahead: 64 + 36 keys,
/// two statements each); every lookup gives what the tables hold, absent ones included.
async fn lookups_read_ahead_answer_as_the_tables(store: &Store) {
    let consumer: Arc<str> = "orchestrator/saga-order".into();
    let mut tx = store.begin().await.unwrap();
    for i in 0..40 {
        let id = format!("order-{i:03}");
        let state = Step(i);
        let data = json!({ "orderId": id, "note": "naïve \"quoted\"" });
        sagas::insert(&mut tx, &id, "order", "hash", &state, &routes("canary", i64::from(i)), &data, None, 1)
            .await
            .unwrap();
        let reply = (i % 2 == 0).then_some(("payment.charged", r#"{"n":1}"#));
        inbox::record(&mut tx, &consumer, &format!("message-{i:03}"), reply, 1);
        let (status, reason) = if i % 2 == 0 { ("charged", None) } else { ("declined", Some("over the limit")) };
        sqlx::query(
            "INSERT INTO payments (order_id, customer_id, amount, currency, status, reason) VALUES ($1, 'c', 10, 'EUR', $2, $3)",
        )
        .bind(&id)
        .bind(status)
        .bind(reason)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();

    let reads: Vec<ReadAhead> = (0..100)
        .map(|i| ReadAhead {
            inbox: Some((consumer.clone(), format!("message-{i:03}"))),
            saga: Some(format!("order-{i:03}")),
            effect: Some((EffectTable::Payments, format!("order-{i:03}"))),
        })
        .collect();
    let mut tx = store.begin().await.unwrap();
    tx.read_ahead(&reads.iter().collect::<Vec<_>>(), InboxCheck::Read).await.unwrap();
    for i in 0..100u32 {
        let found = inbox::find(&mut tx, &consumer, &format!("message-{i:03}")).await.unwrap();
        match found {
            Some(recorded) if i < 40 => {
                let expected = (i % 2 == 0).then(|| "payment.charged".to_string());
                assert_eq!(recorded.reply_type, expected, "message {i}");
            }
            None if i >= 40 => {}
            other => panic!("message {i}: {:?}", other.map(|r| r.reply_type)),
        }
        let saga = sagas::load::<Step>(&mut tx, &format!("order-{i:03}")).await.unwrap();
        match saga {
            Some(saga) if i < 40 => {
                assert_eq!(saga.state, Step(i));
                assert_eq!(saga.routes, routes("canary", i64::from(i)));
                assert_eq!(saga.data["note"], "naïve \"quoted\"");
                assert_eq!(saga.version, 1);
            }
            None if i >= 40 => {}
            other => panic!("saga {i}: {:?}", other.map(|s| s.state)),
        }
        let payment = effects::status(&mut tx, EffectTable::Payments, &format!("order-{i:03}")).await.unwrap();
        let expected = (i < 40).then(|| match i % 2 {
            0 => ("charged".to_string(), None),
            _ => ("declined".to_string(), Some("over the limit".to_string())),
        });
        assert_eq!(payment, expected, "payment {i}");
    }
    // An effect row read ahead answers once: one the transaction then wrote is read next time.
    sqlx::query("UPDATE payments SET status = 'refunded' WHERE order_id = 'order-000'")
        .execute(&mut *tx)
        .await
        .unwrap();
    let refunded = effects::status(&mut tx, EffectTable::Payments, "order-000").await.unwrap();
    assert_eq!(refunded, Some(("refunded".to_string(), None)));
    // A saga read ahead answers one load: one the transaction then created is found next time.
    let state = Step(77);
    sagas::insert(&mut tx, "order-077", "order", "hash", &state, &Routes::new(), &json!({}), None, 1).await.unwrap();
    let created = sagas::load::<Step>(&mut tx, "order-077").await.unwrap().expect("created in this transaction");
    assert_eq!(created.state, Step(77));
    // … and one it updated is read with its new version.
    sagas::update(&mut tx, "order-001", 1, &Step(100), &routes("stable", 5), 2).await.unwrap();
    let updated = sagas::load::<Step>(&mut tx, "order-001").await.unwrap().unwrap();
    assert_eq!((updated.version, updated.state, updated.routes), (2, Step(100), routes("stable", 5)));
    tx.rollback().await.unwrap();
}

/// Routes that are not JSON make the saga unreadable with a reason naming them.
async fn corrupt_routes_are_reported(store: &Store) {
    let mut tx = store.begin().await.unwrap();
    sagas::insert(&mut tx, "order-bad", "order", "hash", &Step(1), &Routes::new(), &json!({}), None, 1).await.unwrap();
    tx.flush().await.unwrap(); // the insert is held; the raw statement below must find the row
    sqlx::query("UPDATE sagas SET routes = 'not json' WHERE id = 'order-bad'").execute(&mut *tx).await.unwrap();
    let error = sagas::load::<Step>(&mut tx, "order-bad").await.err().expect("corrupt routes fail the load");
    assert!(error.to_string().contains("order-bad routes"), "{error}");
    tx.rollback().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_ahead_on_postgres() {
    let db = TempPg::create("read_ahead").await;
    let store = Store::connect(&StoreConfig::for_url(&db.url, 4).unwrap()).await.unwrap();
    lookups_read_ahead_answer_as_the_tables(&store).await;
    corrupt_routes_are_reported(&store).await;
    // Answered from what was read: a saga deleted (and committed) by another connection after
    // the read-ahead is still given once, then read again and gone.
    let mut tx = store.begin().await.unwrap();
    sagas::insert(&mut tx, "order-gone", "order", "hash", &Step(3), &Routes::new(), &json!({}), None, 1).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let read = ReadAhead { inbox: None, saga: Some("order-gone".into()), effect: None };
    tx.read_ahead(&[&read], InboxCheck::Read).await.unwrap();
    sqlx::query("DELETE FROM sagas WHERE id = 'order-gone'").execute(store.pool()).await.unwrap();
    assert!(sagas::load::<Step>(&mut tx, "order-gone").await.unwrap().is_some(), "the row read ahead");
    assert!(sagas::load::<Step>(&mut tx, "order-gone").await.unwrap().is_none(), "the table, read again");
    tx.rollback().await.unwrap();
    store.close().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_ahead_on_sqlite() {
    let (_dir, url) = temp_sqlite();
    let store = Store::connect(&StoreConfig::for_url(&url, 1).unwrap()).await.unwrap();
    lookups_read_ahead_answer_as_the_tables(&store).await;
    corrupt_routes_are_reported(&store).await;
    store.close().await;
}

/// Applies migrations 0001–0005 of `dialect` from the source tree, as a database of the
/// previous release had them.
async fn migrate_to_0005(url: &str, dialect: &str) {
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(dialect);
    let earlier = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.as_str() < "0006" {
            std::fs::copy(&path, earlier.path().join(&name)).unwrap();
        }
    }
    let migrator = sqlx::migrate::Migrator::new(earlier.path()).await.unwrap();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    migrator.run(&pool).await.unwrap();
    for sql in [
        "INSERT INTO sagas (id, saga, state, status, version, data, created_at_ms, updated_at_ms) \
         VALUES ('o-1', 'order', '1', 'PENDING', 3, '{}', 1, 1), ('o-2', 'order', '2', 'PENDING', 1, '{}', 1, 1)",
        "INSERT INTO saga_routes (saga_id, step, variant, sent_at_ms) \
         VALUES ('o-1', 'payment', 'canary', 1700000000123), ('o-1', 'inventory', 'stable', 1700000000456)",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;
}

/// After 0006 each saga carries its routes (none: `{}`), and `saga_routes` is gone.
async fn routes_are_in_the_saga_rows(store: &Store) {
    let mut tx = store.begin().await.unwrap();
    let moved = sagas::load::<Step>(&mut tx, "o-1").await.unwrap().unwrap();
    let expected: Routes = BTreeMap::from([
        ("inventory".to_string(), Route { variant: "stable".into(), sent_at_ms: 1_700_000_000_456 }),
        ("payment".to_string(), Route { variant: "canary".into(), sent_at_ms: 1_700_000_000_123 }),
    ]);
    assert_eq!((moved.state, moved.version, moved.routes), (Step(1), 3, expected));
    let bare = sagas::load::<Step>(&mut tx, "o-2").await.unwrap().unwrap();
    assert_eq!(bare.routes, Routes::new());
    tx.rollback().await.unwrap();
    assert!(sqlx::query("SELECT 1 FROM saga_routes").execute(store.pool()).await.is_err(), "saga_routes is dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_0006_moves_routes_into_sagas_on_postgres() {
    sqlx::any::install_default_drivers();
    let db = TempPg::create("routes_migration").await;
    migrate_to_0005(&db.url, "postgres").await;
    let store = Store::connect(&StoreConfig::for_url(&db.url, 2).unwrap()).await.unwrap();
    routes_are_in_the_saga_rows(&store).await;
    store.close().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_0006_moves_routes_into_sagas_on_sqlite() {
    sqlx::any::install_default_drivers();
    let (_dir, url) = temp_sqlite();
    // The store creates a missing file; the earlier migrator is given one that exists.
    let url = format!("{url}?mode=rwc");
    migrate_to_0005(&url, "sqlite").await;
    let store = Store::connect(&StoreConfig::for_url(&url, 1).unwrap()).await.unwrap();
    routes_are_in_the_saga_rows(&store).await;
    store.close().await;
}
