//! A transaction's held rows (outbox, inbox, saga history) reach the database at commit, in
//! the order they were held, across multi-row statements of 64, 32, … rows; an inbox lookup in
//! the same transaction sees a held entry; a rollback leaves nothing; 20 transactions at once
//! each keep their rows; a row PostgreSQL refuses (a NUL byte) fails the commit whole. On
//! PostgreSQL and SQLite.

use runner::event::Event;
use runner::store::sagas::HistoryEntry;
use runner::store::{inbox, outbox, sagas, Store, StoreConfig};
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

#[tokio::test]
async fn held_rows_on_postgres() {
    let db = TempPg::create("chaos_held").await;
    let store = Store::connect(&StoreConfig::for_url(&db.url, 4).unwrap()).await.unwrap();
    held_rows_arrive_in_order_at_commit(&store).await;
    twenty_at_once(&store).await;
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
}
