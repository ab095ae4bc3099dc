//! The WAL relay through outages while rows are written: PostgreSQL restarted mid-load,
//! then the broker unreachable for 10 seconds. The relay backs off, reconnects and loses
//! nothing; each order's events still arrive in order.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use runner::event::Event;
use runner::store::Store;
use runner::store::StoreConfig;
use runner::transport::EmbeddedBroker;
use serde_json::json;

use crate::support::outbox::{relay_pipeline, write_event_retrying};
use crate::support::topics::assert_first_copies_in_order;
use crate::support::{eventually, read_numbered, scalar, System, TempPg};

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
        write_event_retrying(&store, &event).await;
        next_n.insert(order, n + 1);
        written += 1;
    }
    written
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_survives_a_postgres_restart_and_a_broker_outage() {
    let db = TempPg::create("chaos_outage").await;
    let store = Store::connect(&StoreConfig::for_url(&db.url, 4).unwrap()).await.unwrap();
    let broker = EmbeddedBroker::start(1).unwrap();
    broker.create_topic(TOPIC, 4, 1).unwrap();
    let bootstrap = broker.bootstrap_servers().to_string();
    let settings = "mode = \"wal\"\nafter_publish = \"mark\"\nstatus_interval = \"200ms\"";
    let system = System::start(vec![relay_pipeline(settings, &db.url, &bootstrap)]).await;
    system.wait_relay_ready("wal").await;

    let writer = tokio::spawn(write_for(store.clone(), 24, 300));
    tokio::time::sleep(Duration::from_secs(4)).await;
    tokio::task::spawn_blocking(restart_postgres).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    broker.set_up(false).unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    broker.set_up(true).unwrap();
    let written = writer.await.unwrap();

    eventually(Duration::from_secs(90), Duration::from_millis(250), async || {
        match scalar(&store, "SELECT COUNT(*) FROM outbox WHERE published_at_ms IS NULL").await {
            0 => Ok(()),
            unpublished => Err(format!("{unpublished} rows not published after the outages")),
        }
    })
    .await;
    let rows = scalar(&store, "SELECT COUNT(*) FROM outbox").await as usize;
    assert_eq!(rows, written);
    let relay_status = system.get("/api/relay/status").await;
    eprintln!("relay status after the outages: {relay_status}");
    system.stop().await;

    let records = read_numbered(&bootstrap, TOPIC).await;
    assert_eq!(assert_first_copies_in_order(&records), rows, "every row reached the topic");
    eprintln!("{rows} rows, {} records; relay status after the outages: {relay_status}", records.len());
    assert!(relay_status["reconnects"].as_u64().unwrap() >= 1, "the PostgreSQL restart forced a reconnect");
    store.close().await;
    db.drop_database().await;
}
