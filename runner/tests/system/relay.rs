//! The polling relay alone: outbox rows reach the topic named by their type, keyed by the
//! order id, with CloudEvents headers and the trace context, in per-order order, and a row
//! counts as published only once the broker acknowledged it (nothing moves while it is down).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientConfig;
use runner::event::Event;
use runner::store::outbox;
use serde_json::json;

use crate::support::outbox::{relay_pipeline, write_events};
use crate::support::{eventually, scalar, temp_sqlite, System, TempPg};

/// A relay that polls every 10 ms (in polling mode) and reports its status every 200 ms.
fn relay(database_url: &str, mode: &str, after_publish: &str) -> runner::config::Pipeline {
    let settings = format!(
        "mode = \"{mode}\"\npoll_interval = \"10ms\"\nbatch_size = 50\nafter_publish = \"{after_publish}\"\n\
         status_interval = \"200ms\""
    );
    relay_pipeline(&settings, database_url, "embedded")
}

async fn write_rows(system: &System, orders: usize, per_order: usize, offset: usize) -> Vec<Event> {
    let store = system.store();
    let mut written = Vec::new();
    // Interleave orders, one row per transaction, as concurrent sagas would.
    for n in 0..per_order {
        for o in 0..orders {
            let event = Event::new(
                "order.created",
                &format!("order-{o}"),
                "test",
                json!({ "n": offset + n, "pad": "x".repeat(200) }),
                Some(runner::event::new_traceparent()),
            );
            write_events(store, std::slice::from_ref(&event)).await.unwrap();
            written.push(event);
        }
    }
    written
}

/// The first `expected` records of `order.created` for a new consumer group: key, `n` and headers.
async fn consume(bootstrap: &str, expected: usize) -> Vec<(String, i64, HashMap<String, String>)> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("relay-test-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "20")
        .create()
        .unwrap();
    consumer.subscribe(&["order.created"]).unwrap();
    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while received.len() < expected {
        assert!(Instant::now() < deadline, "received {} of {expected}", received.len());
        let Ok(Ok(message)) = tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await else { continue };
        let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
        let payload: serde_json::Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
        let headers = message.headers().unwrap();
        let headers: HashMap<String, String> = headers
            .iter()
            .map(|h| (h.key.to_string(), String::from_utf8(h.value.unwrap().to_vec()).unwrap()))
            .collect();
        received.push((key, payload["n"].as_i64().unwrap(), headers));
    }
    received
}

async fn relay_publishes_in_order_with_headers(database_url: &str, mode: &str, after_publish: &str) {
    let system = System::start(vec![relay(database_url, mode, after_publish)]).await;
    system.wait_relay_ready(mode).await;
    let broker = system.running.embedded_broker.clone().unwrap();
    let written = write_rows(&system, 20, 10, 0).await;
    let received = consume(broker.bootstrap_servers(), written.len()).await;

    let by_id: HashMap<&str, &Event> = written.iter().map(|e| (e.id.as_str(), e)).collect();
    let mut last_n: HashMap<String, i64> = HashMap::new();
    for (key, n, headers) in &received {
        let event = by_id[headers["ce_id"].as_str()];
        assert_eq!(key, &event.key, "key is the aggregate id");
        assert_eq!(headers["ce_type"], "order.created");
        assert_eq!(headers["ce_source"], "test");
        assert_eq!(headers["ce_specversion"], "1.0");
        assert_eq!(headers["ce_time"], event.time);
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(Some(&headers["traceparent"]), event.traceparent.as_ref());
        let previous = last_n.insert(key.clone(), *n);
        assert!(previous.is_none_or(|p| p < *n), "{key}: {n} after {previous:?}");
    }
    assert_eq!(last_n.len(), 20);
    assert!(last_n.values().all(|n| *n == 9));
    // Published rows are marked (or deleted), none is left behind. A consumer can read a
    // record before the relay has handled the broker's acknowledgement of it, so this is
    // waited for (the rows are marked only after that acknowledgement).
    let store = system.store();
    let expected_kept = if after_publish == "delete" { 0 } else { 200 };
    eventually(Duration::from_secs(10), Duration::from_millis(50), async || {
        let unmarked = scalar(store, "SELECT COUNT(*) FROM outbox WHERE published_at_ms IS NULL").await;
        let kept = scalar(store, "SELECT COUNT(*) FROM outbox").await;
        if unmarked == 0 && kept == expected_kept {
            Ok(())
        } else {
            Err(format!("{unmarked} rows unmarked and {kept} kept, expected 0 and {expected_kept}"))
        }
    })
    .await;

    // Broker down: rows stay unpublished; back up: they go out.
    broker.set_up(false).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let more = write_rows(&system, 5, 2, 10).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        scalar(store, "SELECT COUNT(*) FROM outbox WHERE published_at_ms IS NULL").await,
        more.len() as i64,
        "nothing is marked while the broker is down"
    );
    broker.set_up(true).unwrap();
    eventually(Duration::from_secs(60), Duration::from_millis(200), async || {
        match scalar(store, "SELECT COUNT(*) FROM outbox WHERE published_at_ms IS NULL").await {
            0 => Ok(()),
            _ => Err("rows not published after the broker came back".to_string()),
        }
    })
    .await;
    let all = consume(broker.bootstrap_servers(), written.len() + more.len()).await;
    for event in &more {
        assert!(all.iter().any(|(_, _, h)| h["ce_id"] == event.id), "row {} never reached the topic", event.id);
    }
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_relay_on_postgres() {
    let db = TempPg::create("chaos_relay").await;
    relay_publishes_in_order_with_headers(&db.url, "wal", "mark").await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_relay_deleting_published_rows_and_ignoring_deletes() {
    let db = TempPg::create("chaos_relay").await;
    relay_publishes_in_order_with_headers(&db.url, "wal", "delete").await;
    // An application may insert and delete an outbox row in one transaction (as with
    // Debezium's outbox router): the insert is still published, the delete is ignored.
    let system = System::start(vec![relay(&db.url, "wal", "delete")]).await;
    system.wait_relay_ready("wal").await;
    let store = system.store();
    let event = Event::new("order.created", "order-deleted", "test", json!({ "n": 0 }), None);
    let mut tx = store.begin().await.unwrap();
    outbox::insert(&mut tx, &event);
    tx.flush().await.unwrap();
    sqlx::query("DELETE FROM outbox WHERE id = CAST($1 AS uuid)").bind(&event.id).execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    let received = consume(&system.bootstrap(), 1).await;
    assert_eq!(received[0].2["ce_id"], event.id);
    let status = system.get("/api/relay/status").await;
    assert_eq!(status["publishedTotal"], 1, "{status}");
    assert_eq!(status["lastError"], serde_json::Value::Null, "{status}");
    system.stop().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_relay_on_postgres() {
    let db = TempPg::create("chaos_relay").await;
    relay_publishes_in_order_with_headers(&db.url, "polling", "mark").await;
    // The outbox id column is a real uuid, as Debezium's outbox router expects.
    let store = runner::store::Store::connect(&runner::store::StoreConfig::for_url(&db.url, 1).unwrap()).await.unwrap();
    let kind = sqlx::query_scalar::<_, String>(
        "SELECT data_type FROM information_schema.columns WHERE table_name = 'outbox' AND column_name = 'id'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(kind, "uuid");
    store.close().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_on_sqlite_deleting_published_rows() {
    let (_dir, url) = temp_sqlite();
    relay_publishes_in_order_with_headers(&url, "polling", "delete").await;
}
