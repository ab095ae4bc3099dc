//! `runner relay reconcile`: after the WAL relay published every row it finds nothing missing;
//! rows marked published but never sent, a row sent twice, a record from elsewhere and two rows
//! of one order sent in reverse are each reported, and refused setups fail with exit code 2.

use std::collections::{BTreeSet, HashSet};
use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use runner::event::{now_ms, Event};
use runner::store::StoreConfig;
use runner::store::{outbox, Store};
use runner::transport::{Broker, EmbeddedBroker};
use serde_json::{json, Value};

use crate::support::outbox::{relay_pipeline, relay_toml};
use crate::support::process::{run, Outcome};
use crate::support::{eventually, scalar, System, TempPg};

/// The `[relay]` section of the relay reconciled here.
const RELAY: &str = "mode = \"wal\"\nafter_publish = \"mark\"\nstatus_interval = \"200ms\"";
const TYPES: [&str; 3] = ["order.created", "payment.requested", "payment.succeeded"];
const ORDERS: usize = 8;

/// Runs `runner relay reconcile --pipeline FILE ARGS…` without the caller's RUNNER_* settings.
async fn reconcile(file: &Path, args: &[&str]) -> Outcome {
    let mut all: Vec<OsString> = ["relay", "reconcile", "--pipeline"].map(OsString::from).into();
    all.push(file.into());
    all.extend(args.iter().map(OsString::from));
    tokio::task::spawn_blocking(move || run(&all)).await.unwrap()
}

/// Writes `events` in one transaction, optionally marked published as if the relay had sent them.
async fn insert(store: &Store, events: &[Event], marked: bool) {
    let mut tx = store.begin().await.unwrap();
    for event in events {
        outbox::insert(&mut tx, event);
    }
    if marked {
        // The rows are held until commit: written now, so the update sees them.
        tx.flush().await.unwrap();
        let ids: Vec<String> = events.iter().map(|e| format!("'{}'", e.id)).collect();
        sqlx::query(&format!("UPDATE outbox SET published_at_ms = {} WHERE id IN ({})", now_ms(), ids.join(",")))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

fn event(event_type: &str, order: &str) -> Event {
    Event::new(event_type, order, "test", json!({ "orderId": order }), Some(runner::event::new_traceparent()))
}

fn ids(list: &Value) -> BTreeSet<String> {
    list.as_array().unwrap().iter().map(|item| item["id"].as_str().unwrap().to_string()).collect()
}

async fn reconcile_on(url: &str, embedded: &EmbeddedBroker) {
    let bootstrap = embedded.bootstrap_servers().to_string();
    for topic in TYPES {
        embedded.create_topic(topic, 3, 1).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("relay.toml");
    std::fs::write(&file, relay_toml(RELAY)).unwrap();
    let flags = ["--brokers", bootstrap.as_str(), "--database-url", url];
    let pipeline = relay_pipeline(RELAY, url, &bootstrap);
    let broker = Broker::connect(&pipeline.broker).unwrap();

    // The relay publishes every row: nothing missing, nothing twice.
    let system = System::start(vec![pipeline]).await;
    system.wait_relay_ready("wal").await;
    let mut written = Vec::new();
    for n in 0..ORDERS {
        let order = format!("order-{n}");
        let created = vec![event(TYPES[0], &order)];
        insert(system.store(), &created, false).await;
        let payment = vec![event(TYPES[1], &order), event(TYPES[2], &order)];
        insert(system.store(), &payment, false).await;
        written.extend(created.into_iter().chain(payment));
    }
    eventually(Duration::from_secs(60), Duration::from_millis(100), async || {
        match outbox::backlog(system.store()).await.unwrap() {
            0 => Ok(()),
            _ => Err("rows not published within a minute".to_string()),
        }
    })
    .await;
    system.stop().await;

    let clean = reconcile(&file, &[&flags[..], &["--json"]].concat()).await;
    assert_eq!(clean.code(), 0, "{}\n{}", clean.stdout, clean.stderr);
    let report = clean.json();
    assert_eq!(report["outboxRows"], written.len());
    assert_eq!(report["recordsRead"], written.len());
    assert_eq!(report["missing"]["count"], 0, "{report:#}");
    assert_eq!(report["duplicates"]["ids"], 0, "{report:#}");
    assert_eq!(report["unknown"]["count"], 0, "{report:#}");
    assert_eq!(report["orderViolations"]["count"], 0, "{report:#}");
    assert_eq!(report["afterPublish"], "mark");
    let topics: Vec<(&str, u64, u64)> = report["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["partitions"].as_u64().unwrap(), t["records"].as_u64().unwrap()))
        .collect();
    assert_eq!(topics, vec![(TYPES[0], 3, 8), (TYPES[1], 3, 8), (TYPES[2], 3, 8)]);

    // Loss: rows marked published that never left (one of a type that has no topic at all);
    // a duplicate; a record no row explains; two rows of one order on the topic in reverse.
    let store = Store::connect(&StoreConfig::for_url(url, 2).unwrap()).await.unwrap();
    let lost = vec![event(TYPES[0], "order-lost"), event(TYPES[2], "order-3"), event("shipping.requested", "order-4")];
    insert(&store, &lost, true).await;
    let (early, late) = (event(TYPES[0], "order-late"), event(TYPES[0], "order-late"));
    insert(&store, &[early.clone(), late.clone()], true).await;
    let publisher = broker.publisher().unwrap();
    let duplicated = &written[4];
    assert_eq!(duplicated.event_type, TYPES[1]);
    publisher.publish(duplicated).await.unwrap();
    let stranger = event(TYPES[0], "order-elsewhere");
    publisher.publish(&stranger).await.unwrap();
    publisher.publish(&late).await.unwrap();
    publisher.publish(&early).await.unwrap();

    let broken = reconcile(&file, &[&flags[..], &["--json"]].concat()).await;
    assert_eq!(broken.code(), 1, "{}\n{}", broken.stdout, broken.stderr);
    let report = broken.json();
    assert_eq!(report["outboxRows"], written.len() + 5);
    assert_eq!(report["missing"]["count"], 3, "{report:#}");
    assert_eq!(report["missing"]["notMarked"], 0);
    assert_eq!(ids(&report["missing"]["first"]), lost.iter().map(|e| e.id.clone()).collect());
    assert!(report["missing"]["first"].as_array().unwrap().iter().all(|row| row["markedPublished"] == true));
    assert_eq!(report["duplicates"]["ids"], 1, "{report:#}");
    assert_eq!(report["duplicates"]["extraCopies"], 1);
    let duplicate = &report["duplicates"]["first"][0];
    assert_eq!(duplicate["id"], duplicated.id.as_str());
    assert_eq!(duplicate["type"], TYPES[1]);
    assert_eq!(duplicate["copies"], 2);
    assert_eq!(report["unknown"]["count"], 1, "{report:#}");
    assert_eq!(report["unknown"]["first"][0]["id"], stranger.id.as_str());
    assert_eq!(report["unknown"]["first"][0]["key"], "order-elsewhere");
    assert_eq!(report["orderViolations"]["count"], 1, "{report:#}");
    let violation = &report["orderViolations"]["first"][0];
    assert_eq!((violation["key"].as_str(), violation["id"].as_str()), (Some("order-late"), Some(early.id.as_str())));
    assert_eq!(violation["afterId"], late.id.as_str());
    let shipping = report["topics"].as_array().unwrap().iter().find(|t| t["name"] == "shipping.requested").unwrap();
    assert_eq!(shipping["exists"], false, "{report:#}");

    // The same as text, for people.
    let text = reconcile(&file, &flags).await;
    assert_eq!(text.code(), 1, "{}", text.stderr);
    eprintln!("{}", text.stdout);
    for row in &lost {
        assert!(text.stdout.contains(&row.id), "{} not listed:\n{}", row.id, text.stdout);
    }
    assert!(text.stdout.contains("missing:           3 (3 marked published, 0 not marked yet)"), "{}", text.stdout);
    assert!(text.stdout.contains("duplicates:        1 id(s), 1 extra copy"), "{}", text.stdout);
    assert!(text.stdout.contains(&format!("{} (seq ", early.id)), "{}", text.stdout);

    // Only the newest rows: the older rows' records are neither checked nor unknown.
    let since = scalar(&store, &format!("SELECT seq FROM outbox WHERE id = '{}'", lost[0].id)).await;
    let since = since.to_string();
    let recent = reconcile(&file, &[&flags[..], &["--since-seq", since.as_str(), "--json"]].concat()).await;
    assert_eq!(recent.code(), 1, "{}\n{}", recent.stdout, recent.stderr);
    let report = recent.json();
    assert_eq!(report["outboxRows"], 5);
    assert_eq!(report["missing"]["count"], 3);
    assert_eq!(report["duplicates"]["ids"], 0, "{report:#}");
    assert_eq!(report["unknown"]["count"], 1, "{report:#}");
    assert_eq!(report["orderViolations"]["count"], 1, "{report:#}");
    let older: HashSet<&str> = [TYPES[0], TYPES[2]].into();
    let older_records = written.iter().filter(|e| older.contains(e.event_type.as_str())).count();
    assert_eq!(report["recordsOutOfRange"], older_records, "{report:#}");

    // A relay that deletes published rows leaves nothing to compare with.
    let deleting = dir.path().join("deleting.toml");
    std::fs::write(&deleting, relay_toml(&RELAY.replace("\"mark\"", "\"delete\""))).unwrap();
    let refused = reconcile(&deleting, &flags).await;
    assert_eq!(refused.code(), 2, "{}\n{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("after_publish = \"delete\""), "{}", refused.stderr);

    // A broker that does not answer is an error after a bounded wait, not a hang.
    let started = Instant::now();
    let silent = reconcile(&file, &["--brokers", "127.0.0.1:9", "--database-url", url]).await;
    assert_eq!(silent.code(), 2, "{}\n{}", silent.stdout, silent.stderr);
    assert!(silent.stderr.contains("did not answer"), "{}", silent.stderr);
    assert!(started.elapsed() < Duration::from_secs(30));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_reports_missing_and_duplicated_rows() {
    let db = TempPg::create("chaos_reconcile").await;
    let embedded = EmbeddedBroker::start(1).unwrap();
    reconcile_on(&db.url, &embedded).await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_refuses_an_embedded_broker() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("relay.toml");
    std::fs::write(&file, relay_toml(RELAY)).unwrap();
    // Refused before the database is opened: this one does not exist.
    let database = ["--database-url", "postgres://postgres@127.0.0.1:1/none"];
    for args in [&database[..], &[&database[..], &["--brokers", "embedded"]].concat()] {
        let outcome = reconcile(&file, args).await;
        assert_eq!(outcome.code(), 2, "{}\n{}", outcome.stdout, outcome.stderr);
        assert!(outcome.stderr.contains("embedded broker lives inside a running runner"), "{}", outcome.stderr);
        assert!(outcome.stderr.contains("--brokers host:port"), "{}", outcome.stderr);
        assert!(outcome.stdout.is_empty());
    }
}
