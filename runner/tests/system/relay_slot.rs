//! Replication-slot operations of the WAL relay: retained WAL over the limit is reported
//! (or, when configured, the slot is dropped), and a lost slot is reported loudly and not
//! silently replaced unless the pipeline asks for it.


use std::path::Path;
use std::time::{Duration, Instant};

use runner::config::{load_text, LoadOptions, Overrides};
use serde_json::Value;
use crate::support::{scalar, System, TempPg};

fn relay(database_url: &str, extra: &str) -> runner::config::Pipeline {
    let text = format!(
        "[service]\nname = \"outbox-relay\"\n[relay]\nmode = \"wal\"\nstatus_interval = \"200ms\"\nmonitor_interval = \"200ms\"\n{extra}\n"
    );
    let options = LoadOptions {
        overrides: Overrides {
            brokers: Some("embedded".into()),
            database_url: Some(database_url.into()),
            listen: None,
        },
        ..LoadOptions::default()
    };
    load_text(Path::new("relay.toml"), &text, &options).unwrap_or_else(|d| panic!("{d}")).pipeline
}

async fn status(system: &System) -> Value {
    system.client.get(format!("{}/api/relay/status", system.base)).send().await.unwrap().json().await.unwrap()
}

/// Polls the relay status until `check` holds.
async fn wait_for(system: &System, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = status(system).await;
        if check(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}; status: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn error_of(s: &Value) -> &str {
    s["lastError"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_wal_over_the_limit_warns_then_drops_when_configured() {
    let db = TempPg::create("chaos_slot").await;
    let system = System::start(vec![relay(&db.url, "max_retained_wal = \"1B\"")]).await;
    let s = wait_for(&system, "the limit is reported", |s| s["slot"]["retainedWalOverLimit"] == true).await;
    assert!(error_of(&s).contains("over the 1-byte limit"), "{s}");
    assert_eq!(s["slot"]["lost"], false, "warn only: the slot stays");
    assert!(s["slot"]["retainedWalBytes"].as_i64().unwrap() > 1);
    let metrics = system.client.get(format!("{}/metrics", system.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("relay_slot_retained_wal_bytes"), "{metrics}");
    system.stop().await;

    let system =
        System::start(vec![relay(&db.url, "max_retained_wal = \"1B\"\non_retained_wal_limit = \"drop_slot\"")]).await;
    let s = wait_for(&system, "the slot is dropped and reported lost", |s| s["slot"]["lost"] == true).await;
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
    let s = wait_for(&system, "streaming", |s| !s["startToStreamingMs"].is_null()).await;
    let slot = s["slot"]["name"].as_str().unwrap().to_string();
    // Someone drops the slot under the running relay.
    runner::services::relay::slot::drop(system.store(), &slot).await.unwrap();
    let s = wait_for(&system, "the loss is reported", |s| s["slot"]["lost"] == true).await;
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
    wait_for(&system, "streaming", |s| !s["startToStreamingMs"].is_null()).await;
    runner::services::relay::slot::drop(system.store(), &slot).await.unwrap();
    let s = wait_for(&system, "the recreation is reported", |s| error_of(s).contains("recreating it")).await;
    assert!(error_of(&s).contains("runner relay reconcile"), "{s}");
    wait_for(&system, "streaming again", |s| s["slot"]["lost"] == false && s["slot"]["active"] == true).await;
    assert_eq!(scalar(system.store(), count).await, 1);
    system.stop().await;
    db.drop_database().await;
}
