//! A transaction's held rows (outbox, inbox, saga history) reach the database at commit, in
//! the order they were held, across multi-row statements of 64, 32, … rows; an inbox lookup in
//! the same transaction sees a held entry; a rollback leaves nothing; 20 transactions at once
//! each keep their rows; a row PostgreSQL refuses (a NUL byte) fails the commit whole. New
//! and updated sagas, orders and their final status, and the workers' effect rows are held
//! too: a lookup of a held one in the same transaction sees it, a saga written over a version
//! that moved fails the commit as a conflict naming it and leaves nothing, and of 20
//! transactions at once writing one saga over the same version one commits. An inbox entry
//! held for a message handled before (a group takes its messages as new) fails the commit as
//! `AlreadyHandled` and leaves nothing; so does the loser of 20 transactions at once taking
//! the same message as new. An order is read with its history in one statement. On PostgreSQL
//! and SQLite.

use runner::event::Event;
use runner::order::{Item, OrderPayload, ShipTo};
use runner::store::effects::{self, EffectTable, NewRow};
use runner::store::sagas::{HistoryEntry, Routes, SagaRecord};
use runner::store::{inbox, orders, outbox, sagas, Store, StoreConfig, StoreError};
use serde_json::json;
use sqlx::Row;

use crate::support::{scalar, TempPg};

/// 100 outbox rows (statements of 64, 32 and 4 rows), 70 history lines (64, 4, 2), 2 inbox entries.
async fn held_rows_arrive_in_order_at_commit(store: &Store) {
    let events: Vec<Event> = (0..100)
        .map(|i| {
            let key = format!("held-{i:03}");
            Event::new(
                "order.created",
                &key,
                "test",
                json!({ "orderId": key, "n": i, "text": "naïve \"quoted\"" }),
                None,
            )
        })
        .collect();
    let history: Vec<HistoryEntry> = (0..70)
        .map(|i| HistoryEntry {
            step: format!("step-{i:02}"),
            action: "requested".into(),
            detail: (i % 2 == 0).then(|| format!("detail {i}")),
        })
        .collect();

    let mut tx = store.begin().await.unwrap();
    for event in &events {
        outbox::insert(&mut tx, event);
    }
    inbox::record(&mut tx, "held/test", "message-1", Some(("payment.charged", r#"{"n":1}"#)), 1);
    inbox::record(&mut tx, "held/test", "message-2", None, 2);
    sagas::add_history(&mut tx, "saga-held", &history, 3);
    let found = inbox::find(&mut tx, "held/test", "message-1").await.unwrap().expect("a held entry is found");
    assert_eq!(found.reply_type.as_deref(), Some("payment.charged"));
    assert_eq!(found.reply_payload.as_deref(), Some(r#"{"n":1}"#));
    let found = inbox::find(&mut tx, "held/test", "message-2").await.unwrap().expect("a held entry is found");
    assert_eq!((found.reply_type, found.reply_payload), (None, None));
    assert!(inbox::find(&mut tx, "held/test", "message-3").await.unwrap().is_none());
    let written: i64 = sqlx::query("SELECT COUNT(*) FROM outbox").fetch_one(&mut *tx).await.unwrap().get(0);
    assert_eq!(written, 0, "held rows are not written before the commit");
    tx.commit().await.unwrap();

    let published = outbox::unpublished(store, 500, None).await.unwrap();
    let keys: Vec<&str> = published.iter().map(|p| p.event.key.as_str()).collect();
    let expected: Vec<&str> = events.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, expected, "outbox rows keep the order they were held in");
    for (row, event) in published.iter().zip(&events) {
        assert_eq!((&row.event.id, &row.event.payload, &row.event.topic), (&event.id, &event.payload, &event.topic));
    }
    let steps: Vec<(String, Option<String>)> =
        sqlx::query("SELECT step, detail FROM saga_history WHERE saga_id = 'saga-held' ORDER BY seq")
            .fetch_all(store.pool())
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
    let expected: Vec<(String, Option<String>)> = history.iter().map(|h| (h.step.clone(), h.detail.clone())).collect();
    assert_eq!(steps, expected, "history lines keep their order and details");
    let mut tx = store.begin().await.unwrap();
    let found = inbox::find(&mut tx, "held/test", "message-1").await.unwrap().expect("the entry was written");
    assert_eq!(found.reply_type.as_deref(), Some("payment.charged"));
    assert!(inbox::find(&mut tx, "held/test", "message-2").await.unwrap().is_some());

    // Rolled back (here by dropping the transaction): nothing it held is written.
    outbox::insert(&mut tx, &Event::new("order.created", "held-dropped", "test", json!({}), None));
    inbox::record(&mut tx, "held/test", "message-3", None, 4);
    drop(tx);
    assert_eq!(scalar(store, "SELECT COUNT(*) FROM outbox").await, 100);
    assert_eq!(scalar(store, "SELECT COUNT(*) FROM inbox WHERE consumer = 'held/test'").await, 2);
}

/// 20 transactions at once, each holding 10 outbox rows: all 200 written, each transaction's
/// rows in its own order.
async fn twenty_at_once(store: &Store) {
    let before = scalar(store, "SELECT COUNT(*) FROM outbox").await;
    let writers = (0..20).map(|t| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tx = store.begin().await.unwrap();
            for i in 0..10 {
                outbox::insert(
                    &mut tx,
                    &Event::new("order.created", &format!("at-once-{t:02}"), "test", json!({ "i": i }), None),
                );
            }
            tx.commit().await.unwrap();
        })
    });
    for writer in futures::future::join_all(writers).await {
        writer.unwrap();
    }
    assert_eq!(scalar(store, "SELECT COUNT(*) FROM outbox").await, before + 200);
    let published = outbox::unpublished(store, 1000, None).await.unwrap();
    for t in 0..20 {
        let key = format!("at-once-{t:02}");
        let order: Vec<i64> =
            published.iter().filter(|p| p.event.key == key).map(|p| p.event.payload["i"].as_i64().unwrap()).collect();
        assert_eq!(order, (0..10).collect::<Vec<_>>(), "{key}");
    }
}

/// A group takes its messages as new and holds their inbox entries: one handled before makes
/// the commit fail as `AlreadyHandled` (a transient error) and nothing of the transaction stays;
/// of 20 transactions at once taking the same message as new, one commits.
async fn entry_of_a_message_handled_before(store: &Store) {
    let mut tx = store.begin().await.unwrap();
    inbox::record(&mut tx, "held/dup", "m-07", Some(("payment.charged", "{}")), 1);
    tx.commit().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    outbox::insert(&mut tx, &Event::new("payment.charged", "dup-order", "test", json!({}), None));
    for i in 0..20 {
        inbox::record(&mut tx, "held/dup", &format!("m-{i:02}"), None, 2);
    }
    let error = tx.commit().await.expect_err("m-07 has an entry");
    assert!(matches!(error, StoreError::AlreadyHandled(_)), "{error:?}");
    assert!(runner::store::is_transient(&error), "retried, not dead-lettered: {error}");
    assert_eq!(error.to_string(), "one of 16 messages of held/dup was handled before; read the inbox and retry");
    assert_eq!(scalar(store, "SELECT COUNT(*) FROM inbox WHERE consumer = 'held/dup'").await, 1);
    assert_eq!(scalar(store, "SELECT COUNT(*) FROM outbox WHERE aggregateid = 'dup-order'").await, 0);
    // The entry recorded first is untouched.
    let mut tx = store.begin().await.unwrap();
    let recorded = inbox::find(&mut tx, "held/dup", "m-07").await.unwrap().expect("recorded");
    assert_eq!(recorded.reply_type.as_deref(), Some("payment.charged"));
    tx.rollback().await.unwrap();

    let writers = (0..20).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tx = store.begin().await.unwrap();
            inbox::record(&mut tx, "held/dup", "m-race", None, 3);
            tx.commit().await
        })
    });
    let mut committed = 0;
    for writer in futures::future::join_all(writers).await {
        match writer.unwrap() {
            Ok(()) => committed += 1,
            Err(StoreError::AlreadyHandled(_)) => {}
            Err(e) => panic!("a loser fails as AlreadyHandled, not {e:?}"),
        }
    }
    assert_eq!(committed, 1);
    assert_eq!(scalar(store, "SELECT COUNT(*) FROM inbox WHERE message_id = 'm-race'").await, 1);
}

/// A saga state for the test: a counter, done at 3.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Counter {
    n: i64,
}

impl SagaRecord for Counter {
    fn status_name(&self) -> &'static str {
        if self.n >= 3 {
            "COMPLETED"
        } else {
            "PENDING"
        }
    }
    fn wake_at_ms(&self) -> Option<i64> {
        (self.n < 3).then_some(1_000 + self.n)
    }
}

fn order(i: usize) -> OrderPayload {
    OrderPayload {
        order_id: format!("order-{i:03}"),
        customer_id: format!("customer-{i}"),
        currency: "EUR".into(),
        total: 100 + i as i64,
        items: vec![Item { sku: "SKU-A".into(), quantity: 1, unit_price: 100 + i as i64 }],
        ship_to: ShipTo { country: "NL".into(), city: None, postal_code: None, street: None },
    }
}

/// `orders::get` reads an order, its saga's trace and its history lines in one statement: an
/// order without lines has an empty history; lines come oldest first, the order's fields once.
async fn an_order_is_read_with_its_history(store: &Store) {
    let mut tx = store.begin().await.unwrap();
    orders::insert(&mut tx, &order(900), 10);
    tx.commit().await.unwrap();
    let view = orders::get(store, "order-900").await.unwrap().expect("the order");
    assert_eq!((view.total, view.history.as_ref().map(Vec::len)), (1000, Some(0)));
    assert_eq!(view.trace_id, None);

    let mut tx = store.begin().await.unwrap();
    let lines: Vec<HistoryEntry> = ["payment", "inventory", "shipping"]
        .iter()
        .map(|step| HistoryEntry {
            step: step.to_string(),
            action: "requested".into(),
            detail: Some(format!("{step}!")),
        })
        .collect();
    sagas::add_history(&mut tx, "order-900", &lines, 20);
    sagas::add_history(&mut tx, "order-901", &lines[..1], 20);
    tx.commit().await.unwrap();
    let view = orders::get(store, "order-900").await.unwrap().expect("the order");
    let history: Vec<(String, Option<String>)> =
        view.history.unwrap().into_iter().map(|h| (h.step, h.detail)).collect();
    assert_eq!(
        history,
        [("payment", "payment!"), ("inventory", "inventory!"), ("shipping", "shipping!")]
            .map(|(s, d)| (s.to_string(), Some(d.to_string())))
    );
    assert_eq!(view.customer_id, "customer-900");
    assert!(orders::get(store, "order-901").await.unwrap().is_none(), "lines without an order are no order");
}

/// 70 sagas, orders and payments held and written at commit (statements of 64, 4 and 2 rows);
/// 70 saga updates in one transaction, once with one version that moved (a conflict naming
/// that saga, nothing written) and once right; a saga written twice in a transaction; an
/// order's status set twice (the last wins).
async fn held_sagas_orders_and_effects(store: &Store) {
    let ids: Vec<String> = (0..70).map(|i| format!("order-{i:03}")).collect();
    let routes = Routes::new();
    let mut tx = store.begin().await.unwrap();
    for (i, id) in ids.iter().enumerate() {
        let data = json!({ "orderId": id });
        sagas::insert(&mut tx, id, "order", "hash-1", &Counter { n: 0 }, &routes, &data, None, 10).await.unwrap();
        orders::insert(&mut tx, &order(i), 10);
        let payment = NewRow::Payment {
            order_id: id,
            customer_id: "customer",
            amount: i as i64,
            currency: "EUR",
            status: "charged",
            reason: None,
            charged_at_ms: Some(10),
        };
        effects::insert(&mut tx, payment);
    }
    let written: i64 = sqlx::query("SELECT COUNT(*) FROM sagas").fetch_one(&mut *tx).await.unwrap().get(0);
    assert_eq!(written, 0, "held sagas are not written before they are looked up or committed");
    // Looking one up sends what is held first: the lookup sees it.
    let status = effects::status(&mut tx, EffectTable::Payments, "order-005").await.unwrap();
    assert_eq!(status, Some(("charged".to_string(), None)));
    let saga = sagas::load::<Counter>(&mut tx, "order-069").await.unwrap().expect("a held saga is found");
    assert_eq!((saga.state, saga.version), (Counter { n: 0 }, 1));
    tx.commit().await.unwrap();
    assert_eq!(scalar(store, "SELECT COUNT(*) FROM sagas").await, 70);
    assert_eq!(scalar(store, "SELECT COUNT(*) FROM orders WHERE status = 'PENDING'").await, 70);
    assert_eq!(scalar(store, "SELECT SUM(amount) FROM payments").await, (0..70).sum::<i64>());

    // Every saga written over its version, but one over a version it is no longer at.
    let mut tx = store.begin().await.unwrap();
    for id in &ids {
        let version = if id == "order-066" { 7 } else { 1 };
        sagas::update(&mut tx, id, version, &Counter { n: 1 }, &routes, 20).await.unwrap();
    }
    match tx.commit().await {
        Err(StoreError::Conflict(what)) => assert_eq!(what, "saga order-066"),
        other => panic!("expected a conflict on order-066, got {other:?}"),
    }
    assert_eq!(scalar(store, "SELECT COUNT(*) FROM sagas WHERE version = 1").await, 70, "nothing was written");

    let mut tx = store.begin().await.unwrap();
    for id in &ids {
        sagas::update(&mut tx, id, 1, &Counter { n: 1 }, &routes, 20).await.unwrap();
    }
    // Written twice in one transaction: the second write goes over the first.
    let saga = sagas::load::<Counter>(&mut tx, "order-000").await.unwrap().unwrap();
    assert_eq!((saga.state, saga.version), (Counter { n: 1 }, 2));
    sagas::update(&mut tx, "order-000", 2, &Counter { n: 3 }, &routes, 30).await.unwrap();
    orders::set_status(&mut tx, "order-000", "CANCELLED", Some("first"), 30);
    orders::set_status(&mut tx, "order-001", "COMPLETED", None, 30);
    orders::set_status(&mut tx, "order-000", "COMPLETED", None, 31);
    tx.commit().await.unwrap();
    assert_eq!(scalar(store, "SELECT COUNT(*) FROM sagas WHERE version = 2 AND status = 'PENDING'").await, 69);
    assert_eq!(scalar(store, "SELECT SUM(wake_at_ms) FROM sagas WHERE version = 2").await, 69 * 1_001);
    let row = sqlx::query("SELECT version, status, wake_at_ms, updated_at_ms FROM sagas WHERE id = 'order-000'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let (version, status, wake): (i64, String, Option<i64>) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((version, status.as_str(), wake, row.get::<i64, _>(3)), (3, "COMPLETED", None, 30));
    let row = sqlx::query("SELECT status, reason, updated_at_ms FROM orders WHERE id = 'order-000'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let (status, reason): (String, Option<String>) = (row.get(0), row.get(1));
    assert_eq!((status.as_str(), reason, row.get::<i64, _>(2)), ("COMPLETED", None, 31), "the last status wins");
    assert_eq!(scalar(store, "SELECT COUNT(*) FROM orders WHERE status = 'COMPLETED'").await, 2);

    // 20 transactions at once each write saga order-010 over version 2: one commits, the
    // other 19 fail as conflicts naming it, and the saga moved once.
    let writers = (0..20).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tx = store.begin().await.unwrap();
            sagas::update(&mut tx, "order-010", 2, &Counter { n: 2 }, &Routes::new(), 40 + n).await.unwrap();
            tx.commit().await
        })
    });
    let mut committed = 0;
    for writer in futures::future::join_all(writers).await {
        match writer.unwrap() {
            Ok(()) => committed += 1,
            Err(StoreError::Conflict(what)) => assert_eq!(what, "saga order-010"),
            Err(other) => panic!("expected a conflict, got {other}"),
        }
    }
    assert_eq!(committed, 1, "exactly one of 20 writers over the same version commits");
    assert_eq!(scalar(store, "SELECT version FROM sagas WHERE id = 'order-010'").await, 3);
}

#[tokio::test]
async fn held_rows_on_postgres() {
    let db = TempPg::create("chaos_held").await;
    let store = Store::connect(&StoreConfig::for_url(&db.url, 4).unwrap()).await.unwrap();
    held_rows_arrive_in_order_at_commit(&store).await;
    twenty_at_once(&store).await;
    held_sagas_orders_and_effects(&store).await;
    entry_of_a_message_handled_before(&store).await;
    an_order_is_read_with_its_history(&store).await;
    // A NUL byte PostgreSQL's text refuses: the commit fails with the database's reason,
    // and nothing the transaction held or wrote is left.
    let mut tx = store.begin().await.unwrap();
    outbox::insert(&mut tx, &Event::new("order.created", "held-nul-ok", "test", json!({}), None));
    sagas::add_history(
        &mut tx,
        "saga-nul",
        &[HistoryEntry { step: "a\0b".to_string(), action: "requested".into(), detail: None }],
        5,
    );
    let error = tx.commit().await.expect_err("a NUL byte is refused").to_string();
    assert!(error.contains("0x00"), "{error}");
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM outbox WHERE aggregateid = 'held-nul-ok'").await, 0);
    store.close().await;
    db.drop_database().await;
}

#[tokio::test]
async fn held_rows_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("held.db").display());
    let store = Store::connect(&StoreConfig::for_url(&url, 1).unwrap()).await.unwrap();
    held_rows_arrive_in_order_at_commit(&store).await;
    twenty_at_once(&store).await;
    held_sagas_orders_and_effects(&store).await;
    entry_of_a_message_handled_before(&store).await;
    an_order_is_read_with_its_history(&store).await;
}
