//! Shared test support: start the shipped pipelines in-process on a real database and the
//! embedded broker, create throw-away PostgreSQL databases, post orders, wait for sagas.
#![allow(dead_code)]

pub mod process;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use runner::config::{self, Defaults, LoadOptions, Pipeline};
use runner::runtime::{self, Running};
use runner::store::Store;
use serde_json::Value;
use sqlx::Row;

/// Where the machine's PostgreSQL is; tests create and drop their own databases there.
pub fn pg_admin_url() -> String {
    std::env::var("CHAOS_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A fresh PostgreSQL database, dropped by [`TempPg::drop_database`], or when the value is
/// dropped (a failing test too), with its replication slots: a forgotten slot keeps WAL forever.
pub struct TempPg {
    pub url: String,
    name: String,
    dropped: bool,
}

impl Drop for TempPg {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(drop_database_named(&name));
        })
        .join();
    }
}

impl TempPg {
    pub async fn create(prefix: &str) -> TempPg {
        sqlx::any::install_default_drivers();
        let admin = pg_admin_url();
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::AnyConnection::connect_with_url(&admin).await;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create the test database (is PostgreSQL running on 127.0.0.1:5432?)");
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b).to_string();
        TempPg { url: format!("{base}/{name}"), name, dropped: false }
    }

    pub async fn drop_database(mut self) {
        self.dropped = true;
        drop_database_named(&self.name).await;
    }
}

async fn drop_database_named(name: &str) {
    {
        let mut conn = sqlx::AnyConnection::connect_with_url(&pg_admin_url()).await;
        // A database with a replication slot cannot be dropped; the slot would also keep WAL forever.
        let _ = sqlx::query(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL",
        )
        .bind(name)
        .execute(&mut conn)
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let _ = sqlx::query(
            "SELECT CAST(pg_drop_replication_slot(slot_name) AS text) FROM pg_replication_slots WHERE database = $1",
        )
        .bind(name)
        .execute(&mut conn)
        .await;
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", name)).execute(&mut conn).await;
    }
}

trait ConnectUrl: Sized {
    async fn connect_with_url(url: &str) -> Self;
}

impl ConnectUrl for sqlx::AnyConnection {
    async fn connect_with_url(url: &str) -> Self {
        use sqlx::Connection;
        sqlx::AnyConnection::connect(url).await.unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"))
    }
}

pub fn pipelines_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines")
}

/// The shipped pipelines, on `database_url` and the embedded broker.
pub fn shipped_pipelines(database_url: &str) -> Vec<Pipeline> {
    let files = config::pipeline_files(&pipelines_dir()).expect("pipelines directory");
    let options = LoadOptions {
        defaults: Defaults {
            brokers: Some("embedded".into()),
            database_url: Some(database_url.into()),
            chaos_enabled: None,
        },
        overrides: config::Overrides {
            database_url: Some(database_url.into()),
            brokers: Some("embedded".into()),
            listen: None,
        },
        use_environment: false,
    };
    let loaded = config::load_system(&files, &[], &options).unwrap_or_else(|d| panic!("shipped pipelines: {d}"));
    loaded
        .into_iter()
        .map(|l| {
            let mut p = l.pipeline;
            p.broker.session_timeout = Duration::from_secs(6);
            p
        })
        .collect()
}

pub struct System {
    pub running: Running,
    pub base: String,
    pub client: reqwest::Client,
}

impl System {
    pub async fn start(pipelines: Vec<Pipeline>) -> System {
        let running = runtime::start(pipelines, SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("start the system");
        let base = format!("http://{}", running.addr);
        System { running, base, client: reqwest::Client::new() }
    }

    pub fn store(&self) -> &Store {
        &self.running.store
    }

    /// Posts an order and returns its id; panics unless the answer is 202.
    pub async fn post_order(&self, body: &Value) -> String {
        let response =
            self.client.post(format!("{}/api/orders", self.base)).json(body).send().await.expect("POST /api/orders");
        assert_eq!(response.status(), 202, "posting {body}");
        let answer: Value = response.json().await.unwrap();
        answer["orderId"].as_str().unwrap().to_string()
    }

    /// Waits until no order is PENDING; returns the statuses by order id.
    pub async fn wait_all_terminal(&self, expected: usize, timeout: Duration) -> Vec<(String, String)> {
        let started = Instant::now();
        loop {
            let rows = sqlx::query("SELECT id, status FROM orders").fetch_all(self.store().pool()).await.unwrap();
            let statuses: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            let pending = statuses.iter().filter(|(_, s)| s == "PENDING").count();
            if statuses.len() >= expected && pending == 0 {
                return statuses;
            }
            assert!(
                started.elapsed() < timeout,
                "{pending} of {} orders still PENDING after {timeout:?}",
                statuses.len()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Creates a chaos rule through chaos-svc with the development token; panics unless `201`.
    pub async fn create_rule(&self, rule: &Value) {
        let response = self
            .client
            .post(format!("{}/api/chaos/rules", self.base))
            .bearer_auth("local-dev-token-change-me")
            .json(rule)
            .send()
            .await
            .expect("POST /api/chaos/rules");
        let status = response.status();
        assert_eq!(status, 201, "creating {rule}: {}", response.text().await.unwrap_or_default());
    }

    pub async fn stop(self) {
        self.running.stop().await;
    }
}

/// A temporary SQLite database URL (the directory lives as long as the returned guard).
pub fn temp_sqlite() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    (dir, url)
}

/// The single number a query returns (as BIGINT on both databases; SUM is NUMERIC on PostgreSQL).
pub async fn scalar(store: &Store, sql: &str) -> i64 {
    let row = sqlx::query(&format!("SELECT CAST(({sql}) AS BIGINT)"))
        .fetch_one(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    row.try_get::<Option<i64>, _>(0).unwrap().unwrap_or(0)
}

/// One record read back from a topic: key, payload and headers.
#[derive(Debug)]
pub struct TopicRecord {
    pub key: Option<String>,
    pub payload: Option<Vec<u8>>,
    pub headers: std::collections::HashMap<String, String>,
}

/// Reads a topic from the beginning up to its end as of now, with a throw-away client
/// (nothing for a topic that does not exist).
pub fn read_topic(bootstrap: &str, topic: &str) -> Vec<TopicRecord> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("test-reader-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
    let partitions = metadata.topics().first().map_or(0, |t| t.partitions().len()) as i32;
    if partitions == 0 {
        return Vec::new();
    }
    let mut assignment = rdkafka::TopicPartitionList::new();
    let mut total = 0;
    for p in 0..partitions {
        let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10)).unwrap();
        total += high;
        assignment.add_partition_offset(topic, p, rdkafka::Offset::Beginning).unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (records.len() as i64) < total {
        assert!(Instant::now() < deadline, "read {} of {total} records of {topic}", records.len());
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(500)) else { continue };
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        records.push(TopicRecord {
            key: message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            payload: message.payload().map(<[u8]>::to_vec),
            headers,
        });
    }
    records
}

/// A topic of test events whose payload is `{"n": …}`: key, ce_id and n of every record.
pub fn read_numbered(bootstrap: &str, topic: &str) -> Vec<(String, String, i64)> {
    read_topic(bootstrap, topic)
        .into_iter()
        .map(|r| {
            let payload: Value = serde_json::from_slice(r.payload.as_deref().unwrap_or_default()).unwrap();
            (r.key.unwrap_or_default(), r.headers["ce_id"].clone(), payload["n"].as_i64().unwrap())
        })
        .collect()
}

/// The system's guarantees after a run: charges minus refunds equal
/// the totals of completed orders; per SKU, reserved minus released equals what completed
/// orders hold and what left the stock; one live shipment per completed order.
pub async fn assert_guarantees(store: &Store) {
    let charged = scalar(store, "SELECT COALESCE(SUM(amount), 0) FROM payments WHERE charged_at_ms IS NOT NULL").await;
    let refunded =
        scalar(store, "SELECT COALESCE(SUM(amount), 0) FROM payments WHERE refunded_at_ms IS NOT NULL").await;
    let completed_total = scalar(store, "SELECT COALESCE(SUM(total), 0) FROM orders WHERE status = 'COMPLETED'").await;
    assert_eq!(charged - refunded, completed_total, "money: charged {charged}, refunded {refunded}");
    let completed_items =
        sqlx::query("SELECT items FROM orders WHERE status = 'COMPLETED'").fetch_all(store.pool()).await.unwrap();
    let mut shipped: std::collections::BTreeMap<String, i64> = Default::default();
    for row in completed_items {
        let items: Vec<Value> = serde_json::from_str(&row.get::<String, _>(0)).unwrap();
        for item in items {
            *shipped.entry(item["sku"].as_str().unwrap().to_string()).or_default() +=
                item["quantity"].as_i64().unwrap();
        }
    }
    for sku in ["SKU-1", "SKU-2", "SKU-3", "SKU-4", "SKU-5"] {
        let reserved = scalar(store, &format!("SELECT COALESCE(SUM(l.quantity), 0) FROM reservation_lines l JOIN reservations r ON r.order_id = l.order_id WHERE l.sku = '{sku}' AND r.reserved_at_ms IS NOT NULL")).await;
        let released = scalar(store, &format!("SELECT COALESCE(SUM(l.quantity), 0) FROM reservation_lines l JOIN reservations r ON r.order_id = l.order_id WHERE l.sku = '{sku}' AND r.released_at_ms IS NOT NULL")).await;
        let available = scalar(store, &format!("SELECT available FROM stock WHERE sku = '{sku}'")).await;
        let want = shipped.get(sku).copied().unwrap_or(0);
        assert_eq!(reserved - released, want, "{sku}: reserved {reserved}, released {released}");
        assert_eq!(1_000_000 - available, want, "{sku}: stock left {available}");
    }
    let completed = scalar(store, "SELECT COUNT(*) FROM orders WHERE status = 'COMPLETED'").await;
    assert_eq!(scalar(store, "SELECT COUNT(*) FROM shipments WHERE status = 'scheduled'").await, completed);
    assert_eq!(scalar(store, "SELECT COUNT(*) FROM orders WHERE status = 'FAILED'").await, 0, "FAILED orders");
}

/// A plain order that completes unless a fault stops it.
pub fn simple_order(i: usize) -> Value {
    serde_json::json!({
        "customerId": format!("customer-{i}"),
        "currency": "EUR",
        "items": [{ "sku": format!("SKU-{}", 1 + i % 5), "quantity": 1 + i % 2, "unitPrice": 1000 + i as i64 }],
        "shipTo": { "country": "DE" }
    })
}

/// Copies a directory tree (pipelines and schemas into a temporary folder to edit them).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}
