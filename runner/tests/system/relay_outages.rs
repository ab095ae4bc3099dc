//! The WAL relay through outages while rows are written: PostgreSQL restarted mid-load,
//! then the broker unreachable for 10 seconds. The relay backs off, reconnects and loses
//! nothing; each order's events still arrive in order.


use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use runner::config::model::StoreConfig;
use runner::config::{load_text, LoadOptions, Overrides};
use runner::event::Event;
use runner::store::{outbox, Store};
use runner::transport::EmbeddedBroker;
use serde_json::json;
use crate::support::{scalar, System, TempPg};

const TOPIC: &str = "order.created";

fn restart_postgres() {
    let version = std::fs::read_dir("/etc/postgresql")
        .expect("PostgreSQL's configuration in /etc/postgresql")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .max()
        .unwrap();
    let started = std::time::Instant::now();
    let status = std::process::Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", "restart"])
        .status()
        .expect("run pg_ctlcluster");
    assert!(status.success(), "restarting PostgreSQL failed");
    // The relay confirms the position the server asks for at shutdown: no minute-long wait.
    println!("PostgreSQL restarted in {:.1} s", started.elapsed().as_secs_f64());
}

/// Writes rows for 200 orders, in order per order, at about `rate` rows/s for `seconds`,
/// retrying through outages. Returns the ids written.
async fn write_for(store: Store, seconds: u64, rate: u64) -> usize {
    let mut interval = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut next_n: HashMap<usize, i64> = HashMap::new();
    let mut written = 0;
    while Instant::now() < until {
        interval.tick().await;
        let order = written % 200;
        let n = *next_n.get(&order).unwrap_or(&0);
        let event = Event::new(TOPIC, &format!("order-{order}"), "writer", json!({ "n": n }), None);
        loop {
            let attempt = async {
                let mut tx = store.begin().await?;
                outbox::insert(&mut tx, store.dialect(), &event).await?;
                tx.commit().await?;
                Ok::<_, runner::store::StoreError>(())
            };
            match attempt.await {
                Ok(()) => break,
                // The commit may have landed before the connection died: the id tells.
                Err(_) if row_exists(&store, &event.id).await => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        next_n.insert(order, n + 1);
        written += 1;
    }
    written
}

async fn row_exists(store: &Store, id: &str) -> bool {
    sqlx::query("SELECT 1 FROM outbox WHERE id = CAST($1 AS uuid)")
        .bind(id)
        .fetch_optional(store.pool())
        .await
        .is_ok_and(|row| row.is_some())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_survives_a_postgres_restart_and_a_broker_outage() {
    let db = TempPg::create("chaos_outage").await;
    let store = Store::connect(&StoreConfig { url: db.url.clone(), max_connections: 4 }).await.unwrap();
    let broker = EmbeddedBroker::start(1).unwrap();
    broker.create_topic(TOPIC, 4, 1).unwrap();
    let bootstrap = broker.bootstrap_servers().to_string();
    let text = "[service]\nname = \"outbox-relay\"\n[relay]\nmode = \"wal\"\nafter_publish = \"mark\"\nstatus_interval = \"200ms\"\n";
    let options = LoadOptions {
        overrides: Overrides { brokers: Some(bootstrap.clone()), database_url: Some(db.url.clone()), listen: None },
        ..LoadOptions::default()
    };
    let relay = load_text(Path::new("relay.toml"), text, &options).unwrap_or_else(|d| panic!("{d}")).pipeline;
    let system = System::start(vec![relay]).await;
    let status = |system: &System| {
        let client = system.client.clone();
        let url = format!("{}/api/relay/status", system.base);
        async move { client.get(url).send().await.unwrap().json::<serde_json::Value>().await.unwrap() }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while status(&system).await["startToStreamingMs"].is_null() {
        assert!(Instant::now() < deadline, "the relay never started streaming");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let writer = tokio::spawn(write_for(store.clone(), 24, 300));
    tokio::time::sleep(Duration::from_secs(4)).await;
    tokio::task::spawn_blocking(restart_postgres).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    broker.set_up(false).unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    broker.set_up(true).unwrap();
    let written = writer.await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let unpublished = scalar(&store, "SELECT COUNT(*) FROM outbox WHERE published_at_ms IS NULL").await;
        if unpublished == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{unpublished} rows not published after the outages");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let rows = scalar(&store, "SELECT COUNT(*) FROM outbox").await as usize;
    assert_eq!(rows, written);
    let relay_status = status(&system).await;
    eprintln!("relay status after the outages: {relay_status}");
    system.stop().await;

    let records = tokio::task::spawn_blocking(move || crate::support::read_numbered(&bootstrap, TOPIC)).await.unwrap();
    let mut seen = HashSet::new();
    let mut next_n: HashMap<&str, i64> = HashMap::new();
    for (key, id, n) in &records {
        if seen.insert(id.as_str()) {
            let due = next_n.entry(key.as_str()).or_insert(0);
            assert_eq!(*n, *due, "{key}: event {n} arrived first where {due} was due");
            *due += 1;
        }
    }
    assert_eq!(seen.len(), rows, "every row reached the topic");
    eprintln!("{rows} rows, {} records; relay status after the outages: {relay_status}", records.len());
    assert!(relay_status["reconnects"].as_u64().unwrap() >= 1, "the PostgreSQL restart forced a reconnect");
    store.close().await;
    db.drop_database().await;
}
