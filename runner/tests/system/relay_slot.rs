//! Replication-slot operations of the WAL relay: retained WAL over the limit is reported
//! (or, when configured, the slot is dropped), and a lost slot is reported loudly and not
//! silently replaced unless the pipeline asks for it.

use std::time::Duration;

use serde_json::Value;

use crate::support::outbox::relay_pipeline;
use crate::support::{scalar, System, TempPg};

/// A WAL relay that checks its slot every 200 ms, with `extra` settings.
fn relay(database_url: &str, extra: &str) -> runner::config::Pipeline {
    let settings = format!("mode = \"wal\"\nstatus_interval = \"200ms\"\nmonitor_interval = \"200ms\"\n{extra}");
    relay_pipeline(&settings, database_url, "embedded")
}

fn error_of(s: &Value) -> &str {
    s["lastError"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_wal_over_the_limit_warns_then_drops_when_configured() {
    let db = TempPg::create("chaos_slot").await;
    let system = System::start(vec![relay(&db.url, "max_retained_wal = \"1B\"")]).await;
    let s = system.wait_relay("the limit is reported", |s| s["slot"]["retainedWalOverLimit"] == true).await;
    assert!(error_of(&s).contains("over the 1-byte limit"), "{s}");
    assert_eq!(s["slot"]["lost"], false, "warn only: the slot stays");
    assert!(s["slot"]["retainedWalBytes"].as_i64().unwrap() > 1);
    let metrics = system.metrics().await;
    assert!(metrics.contains("relay_slot_retained_wal_bytes"), "{metrics}");
    system.stop().await;

    let system =
        System::start(vec![relay(&db.url, "max_retained_wal = \"1B\"\non_retained_wal_limit = \"drop_slot\"")]).await;
    let s = system.wait_relay("the slot is dropped and reported lost", |s| s["slot"]["lost"] == true).await;
    assert!(error_of(&s).contains("was lost"), "{s}");
    assert_eq!(
        scalar(system.store(), "SELECT COUNT(*) FROM pg_replication_slots WHERE database = current_database()").await,
        0
    );
    system.stop().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_slot_is_reported_and_recreated_only_on_request() {
    let db = TempPg::create("chaos_slot").await;
    let system = System::start(vec![relay(&db.url, "")]).await;
    let s = system.wait_relay("streaming", |s| !s["startToStreamingMs"].is_null()).await;
    let slot = s["slot"]["name"].as_str().unwrap().to_string();
    // Someone drops the slot under the running relay.
    runner::services::relay::slot::drop(system.store(), &slot).await.unwrap();
    let s = system.wait_relay("the loss is reported", |s| s["slot"]["lost"] == true).await;
    assert!(
        error_of(&s).contains(&format!("replication slot {slot} was lost (it was dropped); not recreating it")),
        "{s}"
    );
    let count = "SELECT COUNT(*) FROM pg_replication_slots WHERE database = current_database()";
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(scalar(system.store(), count).await, 0, "not silently recreated");
    system.stop().await;

    let system = System::start(vec![relay(&db.url, "on_slot_lost = \"recreate\"")]).await;
    // On start the relay creates the missing slot; drop it again to see the recreation path.
    system.wait_relay("streaming", |s| !s["startToStreamingMs"].is_null()).await;
    runner::services::relay::slot::drop(system.store(), &slot).await.unwrap();
    let s = system.wait_relay("the recreation is reported", |s| error_of(s).contains("recreating it")).await;
    assert!(error_of(&s).contains("runner relay reconcile"), "{s}");
    system.wait_relay("streaming again", |s| s["slot"]["lost"] == false && s["slot"]["active"] == true).await;
    assert_eq!(scalar(system.store(), count).await, 1);
    system.stop().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publication_that_lost_the_outbox_table_gets_it_back() {
    let db = TempPg::create("chaos_publication").await;
    let system = System::start(vec![relay(&db.url, "")]).await;
    system.wait_relay("streaming", |s| !s["startToStreamingMs"].is_null()).await;
    system.stop().await;
    // What a table made again leaves behind: a publication that covers nothing, under which
    // the relay would stream nothing and report nothing.
    let covered = "SELECT COUNT(*) FROM pg_publication_tables WHERE pubname = 'chaos_outbox' AND tablename = 'outbox'";
    let store = runner::store::Store::connect(&runner::store::StoreConfig::for_url(&db.url, 2).unwrap()).await.unwrap();
    sqlx::query("ALTER PUBLICATION chaos_outbox DROP TABLE outbox").execute(store.pool()).await.unwrap();
    assert_eq!(scalar(&store, covered).await, 0);

    let system = System::start(vec![relay(&db.url, "")]).await;
    system.wait_relay("streaming", |s| !s["startToStreamingMs"].is_null()).await;
    assert_eq!(scalar(&store, covered).await, 1, "the relay added the outbox table back");
    let event = runner::event::Event::new("order.created", "order-1", "test", serde_json::json!({ "n": 1 }), None);
    crate::support::outbox::write_events(system.store(), &[event]).await.unwrap();
    system.wait_relay("the row written afterwards is published", |s| s["publishedTotal"].as_u64() >= Some(1)).await;
    system.stop().await;
    db.drop_database().await;
}
