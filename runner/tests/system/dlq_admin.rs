//! dlq-admin over HTTP on the shipped system: dead letters put on `<topic>.dlq` are followed
//! into the database, browsed and filtered, replayed (one, edited, in bulk at a rate, dry run)
//! to their original topic — read back here with an rdkafka consumer — discarded, and audited;
//! every change needs the admin token.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use runner::config::Pipeline;
use runner::schemas::SchemaRegistry;
use runner::transport::{Broker, Publisher};
use serde_json::{json, Value};

use crate::support::{
    eventually, read_topic, scalar, shipped_pipelines, temp_sqlite, System, TempPg, ADMIN_TOKEN as TOKEN,
};

/// The holder of the development token.
const ACTOR: &str = "operator";

/// A schema for `payment.requested` used when the shipped schemas have none.
const PAYMENT_REQUESTED_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["orderId", "customerId", "currency", "total", "items", "shipTo"],
  "properties": {
    "orderId": { "type": "string" }, "customerId": { "type": "string" }, "currency": { "type": "string" },
    "total": { "type": "integer", "minimum": 0 }, "items": { "type": "array" }, "shipTo": { "type": "object" }
  }
}"#;

struct Dlq {
    system: System,
    broker: Broker,
    publisher: Publisher,
    _schemas: Option<tempfile::TempDir>,
}

/// Starts the shipped pipelines on `database_url`; `adjust` changes the dlq-admin pipeline.
async fn start(database_url: &str, adjust: impl FnOnce(&mut Pipeline)) -> Dlq {
    let mut pipelines = shipped_pipelines(database_url);
    let dlq = pipelines.iter_mut().find(|p| p.dlq_admin.is_some()).expect("pipelines/dlq-admin.toml is shipped");
    let mut schema_dir = None;
    if !dlq.schemas.has("payment.requested") {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("payment.requested.schema.json"), PAYMENT_REQUESTED_SCHEMA).unwrap();
        dlq.schemas = Arc::new(SchemaRegistry::load(dir.path()).unwrap());
        schema_dir = Some(dir);
    }
    adjust(dlq);
    let broker_config = dlq.broker.clone();
    let system = System::start(pipelines).await;
    let broker = Broker::on_embedded(system.running.embedded_broker.clone().unwrap(), &broker_config);
    Dlq { publisher: broker.publisher().unwrap(), broker, system, _schemas: schema_dir }
}

/// A dead letter as a consumer writes it.
struct Letter<'a> {
    dlq_topic: &'a str,
    original: &'a str,
    key: &'a [u8],
    payload: Vec<u8>,
    kind: &'a str,
    message: &'a str,
    replay_count: Option<u32>,
}

impl<'a> Letter<'a> {
    fn new(original: &'a str, dlq_topic: &'a str, key: &'a str, payload: Value) -> Self {
        Letter {
            dlq_topic,
            original,
            key: key.as_bytes(),
            payload: payload.to_string().into_bytes(),
            kind: "rejected",
            message: "payload is not an order",
            replay_count: None,
        }
    }

    fn kind(mut self, kind: &'a str, message: &'a str) -> Self {
        self.kind = kind;
        self.message = message;
        self
    }
}

impl Dlq {
    async fn put(&self, letter: Letter<'_>) {
        let mut headers: Vec<(String, String)> = vec![
            ("ce_specversion".into(), "1.0".into()),
            ("ce_id".into(), uuid::Uuid::new_v4().to_string()),
            ("ce_type".into(), letter.original.into()),
            ("ce_source".into(), "orchestrator".into()),
            ("ce_time".into(), "2025-01-31T12:00:00Z".into()),
            ("content-type".into(), "application/json".into()),
            ("traceparent".into(), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
            ("dlq_original_topic".into(), letter.original.into()),
            ("dlq_original_partition".into(), "0".into()),
            ("dlq_original_offset".into(), "17".into()),
            ("dlq_original_timestamp".into(), "1738324800000".into()),
            ("dlq_consumer_group".into(), "payment-svc.charge".into()),
            ("dlq_error_kind".into(), letter.kind.into()),
            ("dlq_error_message".into(), letter.message.into()),
            ("dlq_attempts".into(), "1".into()),
            ("dlq_first_failure_at".into(), "2025-01-31T12:00:01Z".into()),
            ("dlq_last_failure_at".into(), "2025-01-31T12:00:01Z".into()),
        ];
        if let Some(count) = letter.replay_count {
            headers.push(("dlq_replay_count".into(), count.to_string()));
        }
        let headers: Vec<(String, Vec<u8>)> = headers.into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
        self.publisher
            .publish_raw(letter.dlq_topic, Some(letter.key), Some(&letter.payload), &headers)
            .await
            .expect("publish a dead letter");
    }

    /// Puts a dead letter and waits until it is an entry, so entry ids follow the calls.
    async fn put_wait(&self, letter: Letter<'_>) {
        let count = "SELECT COUNT(*) FROM dead_letters";
        let before = scalar(self.system.store(), count).await;
        self.put(letter).await;
        eventually(Duration::from_secs(40), Duration::from_millis(50), async || {
            if scalar(self.system.store(), count).await > before {
                Ok(())
            } else {
                Err("the dead letter did not become an entry".to_string())
            }
        })
        .await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.system.call(Method::GET, &format!("/api/dlq{path}"), None, None).await
    }

    async fn post_as(&self, path: &str, authorization: Option<&str>, body: Option<&Value>) -> reqwest::Response {
        let mut request = self.system.client.post(format!("{}/api/dlq{path}", self.system.base));
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.unwrap()
    }

    async fn post(&self, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
        self.system.call(Method::POST, &format!("/api/dlq{path}"), Some(TOKEN), body.cloned()).await
    }

    /// Entries matching `query`, waiting until there are at least `n`.
    async fn wait_entries(&self, query: &str, n: usize) -> Vec<Value> {
        eventually(Duration::from_secs(40), Duration::from_millis(200), async || {
            let (status, page) = self.get(&format!("/entries?limit=500&{query}")).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let entries = page["entries"].as_array().unwrap().clone();
            if entries.len() >= n {
                Ok(entries)
            } else {
                Err(format!("only {} of {n} entries for `{query}`: {page}", entries.len()))
            }
        })
        .await
    }

    async fn ids(&self, query: &str) -> Vec<i64> {
        let (status, page) = self.get(&format!("/entries?limit=500&{query}")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page["entries"].as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()).collect()
    }

    /// Every record of `topic` written so far (nothing when the topic does not exist).
    async fn read(&self, topic: &str) -> Vec<Record> {
        let records = read_topic(self.broker.bootstrap_servers(), topic).await;
        records
            .into_iter()
            .map(|r| Record { key: r.key, payload: r.payload.unwrap_or_default(), headers: r.headers })
            .collect()
    }

    /// The records of `topic` with `key`, waiting until there are at least `n`.
    async fn wait_records(&self, topic: &str, key: &str, n: usize) -> Vec<Record> {
        eventually(Duration::from_secs(30), Duration::from_millis(200), async || {
            let records: Vec<Record> =
                self.read(topic).await.into_iter().filter(|r| r.key.as_deref() == Some(key)).collect();
            if records.len() >= n {
                Ok(records)
            } else {
                Err(format!("{} of {n} records with key {key} on {topic}", records.len()))
            }
        })
        .await
    }
}

#[derive(Debug, Clone)]
struct Record {
    key: Option<String>,
    payload: Vec<u8>,
    headers: HashMap<String, String>,
}

fn order(order_id: &str, total: Value) -> Value {
    json!({
        "orderId": order_id, "customerId": "c-dlq", "currency": "EUR", "total": total,
        "items": [{ "sku": "SKU-1", "quantity": 1, "unitPrice": 1000 }], "shipTo": { "country": "DE" }
    })
}

fn now_ms() -> i64 {
    runner::event::now_ms()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browse_filter_and_page_on_sqlite() {
    let (_dir, url) = temp_sqlite();
    // Every record handed to the ingest twice, as a redelivery would: still one entry each.
    let dlq = start(&url, |p| p.broker.redeliver_each_message = true).await;
    let (payment, shipping) = ("payment.requested.dlq", "shipping.schedule.requested.dlq");

    // Batch one: three payment dead letters (rejected, schema_invalid, handler_failed).
    dlq.put_wait(Letter::new("payment.requested", payment, "order-a1", order("order-a1", json!(100)))).await;
    dlq.put_wait(
        Letter::new("payment.requested", payment, "order-a2", json!({ "note": "Needle in 50%_OFF" }))
            .kind("schema_invalid", "`payment.requested` payload does not match its schema"),
    )
    .await;
    dlq.put_wait(
        Letter::new("payment.requested", payment, "order-a3", order("order-a3", json!(300)))
            .kind("handler_failed", "gateway timed out"),
    )
    .await;
    dlq.wait_entries(&format!("topic={payment}"), 3).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let middle = now_ms();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Batch two: two shipping dead letters, one with bytes that are not UTF-8 and a key to search.
    dlq.put_wait(Letter::new("shipping.schedule.requested", shipping, "ORDER-NEEDLE-b1", order("b1", json!(1)))).await;
    let mut binary =
        Letter::new("shipping.schedule.requested", shipping, "order-b2", json!(null)).kind("undecodable", "not JSON");
    binary.payload = vec![0xff, 0x00, b'{', 0xfe];
    dlq.put_wait(binary).await;
    let all = dlq.wait_entries("", 5).await;
    assert_eq!(all.len(), 5, "{all:?}");
    assert_eq!(scalar(dlq.system.store(), "SELECT COUNT(*) FROM dead_letters").await, 5, "redelivery added entries");

    // Newest first.
    let ids: Vec<i64> = all.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    assert_eq!(all[0]["key"], "order-b2");
    assert_eq!(all[4]["key"], "order-a1");
    assert_eq!(all[4]["state"], "new");
    assert_eq!(all[4]["originalTopic"], "payment.requested");
    assert_eq!(all[4]["eventType"], "payment.requested");
    assert_eq!(all[4]["errorKind"], "rejected");
    assert_eq!(all[4]["replayCount"], 0);

    // Filters.
    let keys = |entries: Vec<Value>| entries.iter().map(|e| e["key"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(keys(dlq.wait_entries(&format!("topic={shipping}"), 0).await), ["order-b2", "ORDER-NEEDLE-b1"]);
    assert_eq!(keys(dlq.wait_entries("kind=schema_invalid", 0).await), ["order-a2"]);
    assert_eq!(keys(dlq.wait_entries(&format!("topic={payment}&kind=handler_failed"), 0).await), ["order-a3"]);
    assert_eq!(dlq.wait_entries("state=new", 0).await.len(), 5);
    assert!(dlq.wait_entries("state=replayed", 0).await.is_empty());
    assert_eq!(keys(dlq.wait_entries(&format!("from={middle}"), 0).await), ["order-b2", "ORDER-NEEDLE-b1"]);
    assert_eq!(keys(dlq.wait_entries(&format!("to={middle}"), 0).await), ["order-a3", "order-a2", "order-a1"]);
    assert_eq!(dlq.wait_entries("from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z", 0).await.len(), 0);
    assert_eq!(dlq.wait_entries("from=2000-01-01T00:00:00Z", 0).await.len(), 5);
    // Free text: case-insensitive, over key and payload; `%` and `_` are literal.
    assert_eq!(keys(dlq.wait_entries("q=needle", 0).await), ["ORDER-NEEDLE-b1", "order-a2"]);
    assert_eq!(keys(dlq.wait_entries("q=50%25_off", 0).await), ["order-a2"]);
    assert!(dlq.wait_entries("q=50%25%25off", 0).await.is_empty());
    assert_eq!(keys(dlq.wait_entries("q=order-a&kind=rejected", 0).await), ["order-a1"]);

    // Paging with the cursor: every entry once, newest first.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("/entries?limit=2&cursor={c}"),
            None => "/entries?limit=2".to_string(),
        };
        let (status, page) = dlq.get(&query).await;
        assert_eq!(status, StatusCode::OK);
        seen.extend(page["entries"].as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()));
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ids);

    // Clear 400s for bad parameters.
    for (query, expected) in [
        ("kind=exploded", "unknown error kind `exploded`"),
        ("state=lost", "unknown state `lost`"),
        ("from=yesterday", "`from` must be Unix milliseconds or an RFC 3339"),
        ("from=2000&to=1000", "`from` is after `to`"),
        ("limit=0", "limit must be a number from 1 to 500"),
        ("limit=501", "limit must be a number from 1 to 500"),
        ("cursor=abc", "cursor must be the nextCursor"),
        ("colour=red", "unknown query parameter `colour`"),
    ] {
        let (status, body) = dlq.get(&format!("/entries?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(body["error"].as_str().unwrap().contains(expected), "{query}: {body}");
    }

    // One entry: everything known about it.
    let a2 = all.iter().find(|e| e["key"] == "order-a2").unwrap()["id"].as_i64().unwrap();
    let (status, entry) = dlq.get(&format!("/entries/{a2}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(entry["payload"], json!({ "note": "Needle in 50%_OFF" }));
    assert_eq!(entry["payloadEncoding"], "json");
    assert_eq!(entry["topic"], payment);
    assert_eq!(entry["original"]["topic"], "payment.requested");
    assert_eq!(entry["original"]["offset"], 17);
    assert_eq!(entry["original"]["timestampMs"], 1_738_324_800_000i64);
    assert_eq!(entry["consumerGroup"], "payment-svc.charge");
    assert_eq!(entry["errorKind"], "schema_invalid");
    assert_eq!(entry["errorMessage"], "`payment.requested` payload does not match its schema");
    assert_eq!(entry["attempts"], 1);
    assert_eq!(entry["firstFailureAt"], "2025-01-31T12:00:01Z");
    assert_eq!(entry["cloudEvent"]["type"], "payment.requested");
    assert_eq!(entry["cloudEvent"]["source"], "orchestrator");
    assert_eq!(entry["traceparent"], "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    assert!(entry["headers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["name"] == "dlq_error_kind" && h["value"] == "schema_invalid"));
    assert_eq!(entry["replay"]["allowed"], true);
    assert_eq!(entry["replay"]["replaysLeft"], 3);
    let history = entry["history"].as_array().unwrap();
    assert_eq!(history.len(), 1, "one `received` line despite the redelivery: {history:?}");
    assert_eq!(history[0]["action"], "received");
    assert_eq!(history[0]["actor"], "dlq-admin");

    let b2 = all[0]["id"].as_i64().unwrap();
    let (_, binary) = dlq.get(&format!("/entries/{b2}")).await;
    assert_eq!(binary["payloadEncoding"], "binary", "{binary}");
    assert_eq!(binary["payloadHex"], "ff007bfe");
    assert_eq!(binary["errorKind"], "undecodable");

    let (status, body) = dlq.get("/entries/999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "no dead-letter entry with id 999999");
    let (status, _) = dlq.get("/entries/abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Topics: counts by state and by error kind, oldest and newest.
    let (status, topics) = dlq.get("/topics").await;
    assert_eq!(status, StatusCode::OK);
    let topics = topics["topics"].as_array().unwrap();
    let p = topics.iter().find(|t| t["topic"] == payment).expect("payment topic listed");
    assert_eq!(p["total"], 3);
    assert_eq!(p["originalTopics"], json!(["payment.requested"]));
    assert_eq!(p["byState"], json!({ "new": 3, "replayed": 0, "discarded": 0 }));
    assert_eq!(p["byKind"], json!({ "handler_failed": 1, "rejected": 1, "schema_invalid": 1 }));
    assert!(p["oldestMs"].as_i64().unwrap() <= p["newestMs"].as_i64().unwrap());
    let s = topics.iter().find(|t| t["topic"] == shipping).expect("shipping topic listed");
    assert_eq!(s["byKind"], json!({ "rejected": 1, "undecodable": 1 }));
    assert!(s["oldestMs"].as_i64().unwrap() >= middle);

    dlq.system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_discard_auth_and_audit_on_postgres() {
    let db = TempPg::create("chaos_dlq").await;
    let dlq = start(&db.url, |_| {}).await;
    let topic = "payment.requested.dlq";
    let mut audit: Vec<(&str, String, String)> = Vec::new();

    // A valid order, a poison message, and two to discard.
    let good = uuid::Uuid::new_v4().to_string();
    let poison = unique("poison");
    let (d1, d2, d3) = (unique("discard"), unique("discard"), unique("discard"));
    dlq.put(Letter::new("payment.requested", topic, &good, order(&good, json!(1000)))).await;
    dlq.put(Letter::new("payment.requested", topic, &poison, json!({ "note": "not an order" }))).await;
    for key in [&d1, &d2, &d3] {
        dlq.put(Letter::new("payment.requested", topic, key, order(key, json!(5)))).await;
    }
    let id_of = |entries: Vec<Value>| entries[0]["id"].as_i64().unwrap();
    let good_id = id_of(dlq.wait_entries(&format!("q={good}"), 1).await);
    let poison_id = id_of(dlq.wait_entries(&format!("q={poison}"), 1).await);
    let d1_id = id_of(dlq.wait_entries(&format!("q={d1}"), 1).await);
    let d2_id = id_of(dlq.wait_entries(&format!("q={d2}"), 1).await);
    let d3_id = id_of(dlq.wait_entries(&format!("q={d3}"), 1).await);

    // Every changing endpoint: 401 without a token (or with another scheme), 403 with a wrong one.
    let changing = [
        format!("/entries/{good_id}/replay"),
        format!("/entries/{good_id}/discard"),
        "/replay".to_string(),
        "/discard".to_string(),
    ];
    let body = json!({ "ids": [good_id], "dryRun": true });
    for path in &changing {
        for authorization in [None, Some("Basic b3BlcmF0b3I6c2VjcmV0"), Some("Bearer"), Some(TOKEN)] {
            let response = dlq.post_as(path, authorization, Some(&body)).await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path} with {authorization:?}");
            let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_string();
            assert!(challenge.starts_with("Bearer"), "{challenge}");
            let answer: Value = response.json().await.unwrap();
            assert!(answer["error"].as_str().unwrap().contains("Bearer <token>"), "{answer}");
        }
        let response = dlq.post_as(path, Some("Bearer local-dev-token-change-mf"), Some(&body)).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        let answer: Value = response.json().await.unwrap();
        assert!(answer["error"].as_str().unwrap().contains("not valid"), "{answer}");
    }
    // Reads are open.
    assert_eq!(dlq.get("/topics").await.0, StatusCode::OK);
    assert_eq!(dlq.get(&format!("/entries/{good_id}")).await.0, StatusCode::OK);
    assert_eq!(dlq.get("/audit").await.0, StatusCode::OK);
    // The right token passes on every changing endpoint (dry runs change nothing).
    let (status, answer) = dlq.post("/replay", Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    audit.push(("dlq.bulk_replay", "ids".into(), "dry run: would send 1".into()));
    let (status, answer) = dlq.post("/discard", Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    audit.push(("dlq.bulk_discard", "ids".into(), "dry run: would discard 1".into()));

    // Replay one: it reappears on its original topic with the replay count and no dlq_* headers.
    let (status, answer) = dlq.post(&format!("/entries/{good_id}/replay"), None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["replayCount"], 1);
    assert_eq!(answer["sentTo"], "payment.requested");
    audit.push(("dlq.replay", format!("dead-letter {good_id}"), "ok".into()));
    let records = dlq.wait_records("payment.requested", &good, 1).await;
    let record = &records[0];
    assert_eq!(serde_json::from_slice::<Value>(&record.payload).unwrap(), order(&good, json!(1000)));
    assert_eq!(record.headers["dlq_replay_count"], "1");
    assert_eq!(record.headers["ce_type"], "payment.requested");
    assert_eq!(record.headers["traceparent"], "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    let leftovers: Vec<&String> =
        record.headers.keys().filter(|k| k.starts_with("dlq_") && *k != "dlq_replay_count").collect();
    assert!(leftovers.is_empty(), "dlq headers kept on the replay: {leftovers:?}");
    let (_, entry) = dlq.get(&format!("/entries/{good_id}")).await;
    assert_eq!(entry["state"], "replayed");
    assert_eq!(entry["replayCount"], 1);
    let history = entry["history"].as_array().unwrap();
    assert_eq!(history.last().unwrap()["action"], "replayed");
    assert_eq!(history.last().unwrap()["actor"], ACTOR);

    // An edited payload is checked against the event type's schema first.
    let invalid = order(&good, json!("lots"));
    let (status, answer) = dlq.post(&format!("/entries/{good_id}/replay"), Some(&json!({ "payload": invalid }))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains("/total"), "the message names the field: {error}");
    assert_eq!(answer["fields"][0]["field"], "payload/total", "each problem at its field: {answer}");
    assert!(answer["fields"][0]["message"].as_str().unwrap().contains("\"lots\""), "{answer}");
    audit.push(("dlq.replay", format!("dead-letter {good_id}"), "refused: ".into()));
    let (status, answer) = dlq.post(&format!("/entries/{good_id}/replay"), Some(&json!({ "paylod": {} }))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("unknown field `paylod`"), "{answer}");
    // A valid edit is sent as edited.
    let edited = order(&good, json!(990));
    let (status, answer) = dlq.post(&format!("/entries/{good_id}/replay"), Some(&json!({ "payload": edited }))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["replayCount"], 2);
    assert_eq!(answer["edited"], true);
    audit.push(("dlq.replay", format!("dead-letter {good_id}"), "ok".into()));
    let records = dlq.wait_records("payment.requested", &good, 2).await;
    let second = records.iter().find(|r| r.headers["dlq_replay_count"] == "2").expect("the edited replay");
    assert_eq!(serde_json::from_slice::<Value>(&second.payload).unwrap(), edited);

    // A poison message comes back to the dead-letter topic with its replay count each time,
    // until the limit (max_replays = 3) refuses another replay.
    let mut current = poison_id;
    for round in 1..=3 {
        let (status, answer) = dlq.post(&format!("/entries/{current}/replay"), None).await;
        assert_eq!(status, StatusCode::OK, "round {round}: {answer}");
        assert_eq!(answer["replayCount"], round);
        audit.push(("dlq.replay", format!("dead-letter {current}"), "ok".into()));
        let back = dlq.wait_entries(&format!("q={poison}&state=new"), 1).await;
        assert_eq!(back.len(), 1);
        assert_eq!(back[0]["replayCount"], round, "the consumer kept dlq_replay_count: {back:?}");
        assert_ne!(back[0]["id"].as_i64().unwrap(), current);
        current = back[0]["id"].as_i64().unwrap();
    }
    let (status, answer) = dlq.post(&format!("/entries/{current}/replay"), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("already replayed 3 time(s), the limit (max_replays = 3)"),
        "{answer}"
    );
    audit.push(("dlq.replay", format!("dead-letter {current}"), "refused: ".into()));
    let (_, entry) = dlq.get(&format!("/entries/{current}")).await;
    assert_eq!(entry["replay"]["allowed"], false);
    assert_eq!(entry["replay"]["replaysLeft"], 0);
    assert_eq!(entry["state"], "new");

    // Discard one (idempotent), then replay is refused; discard many by ids.
    let (status, answer) =
        dlq.post(&format!("/entries/{d1_id}/discard"), Some(&json!({ "reason": "test data" }))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["changed"], true);
    audit.push(("dlq.discard", format!("dead-letter {d1_id}"), "ok".into()));
    let (status, answer) = dlq.post(&format!("/entries/{d1_id}/discard"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["changed"], false);
    let (status, answer) = dlq.post(&format!("/entries/{d1_id}/replay"), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("was discarded"), "{answer}");
    audit.push(("dlq.replay", format!("dead-letter {d1_id}"), "refused: ".into()));
    let (_, entry) = dlq.get(&format!("/entries/{d1_id}")).await;
    assert_eq!(entry["state"], "discarded");
    let last = entry["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["action"].as_str(), last["actor"].as_str(), last["detail"].as_str()),
        (Some("discarded"), Some(ACTOR), Some("test data"))
    );

    let (status, answer) = dlq.post("/discard", Some(&json!({ "ids": [d1_id, d2_id, d3_id, 999999] }))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // Entries are worked through oldest first (by id), whatever order the request lists them in.
    let mut pair = [d2_id, d3_id];
    pair.sort();
    assert_eq!(answer["discarded"], json!(pair));
    let skipped: Vec<i64> = answer["skipped"].as_array().unwrap().iter().map(|s| s["id"].as_i64().unwrap()).collect();
    assert_eq!(skipped.len(), 2);
    assert!(skipped.contains(&d1_id) && skipped.contains(&999999), "{answer}");
    audit.push(("dlq.discard", format!("dead-letter {}", pair[0]), "ok".into()));
    audit.push(("dlq.discard", format!("dead-letter {}", pair[1]), "ok".into()));
    audit.push(("dlq.bulk_discard", "ids".into(), "ok: discarded 2".into()));
    for id in [d2_id, d3_id] {
        assert_eq!(dlq.get(&format!("/entries/{id}")).await.1["state"], "discarded");
    }

    // The audit trail: who did what to which entry, newest first, paged.
    let mut lines = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = dlq.get(&format!("/audit?limit=3{cursor}")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        lines.extend(page["audit"].as_array().unwrap().iter().cloned());
        match page["nextCursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    lines.reverse();
    assert_eq!(lines.len(), audit.len(), "{lines:#?}");
    for (line, (action, target, outcome)) in lines.iter().zip(&audit) {
        assert_eq!(line["actor"], ACTOR, "{line}");
        assert_eq!(line["action"], *action, "{line}");
        assert_eq!(line["target"], *target, "{line}");
        assert!(line["outcome"].as_str().unwrap().starts_with(outcome.as_str()), "{line} vs {outcome}");
    }
    assert_eq!(lines[3]["details"]["editedPayload"]["total"], "lots", "{}", lines[3]);

    dlq.system.stop().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_replay_dry_run_rate_and_limit_on_sqlite() {
    let (_dir, url) = temp_sqlite();
    let dlq = start(&url, |p| p.dlq_admin.as_mut().unwrap().max_bulk = 6).await;
    // An original topic nobody consumes, so replays stay where they are sent.
    let (original, topic) = ("dlq-test.events", "dlq-test.events.dlq");
    dlq.broker.ensure_topics(&[original.to_string(), topic.to_string()]).await.unwrap();
    let keys: Vec<String> = (0..8).map(|i| format!("bulk-{i}")).collect();
    for key in &keys {
        dlq.put_wait(
            Letter::new(original, topic, key, json!({ "key": key })).kind("handler_failed", "downstream down"),
        )
        .await;
    }
    let entries = dlq.wait_entries(&format!("topic={topic}"), 8).await;
    let mut ids: Vec<i64> = entries.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    ids.sort_unstable();

    // Bad requests.
    for (body, status, expected) in [
        (json!({}), StatusCode::BAD_REQUEST, "choose what to replay"),
        (json!({ "ids": [ids[0]], "topic": topic }), StatusCode::BAD_REQUEST, "either `ids` or filter fields"),
        (json!({ "topic": topic, "state": "discarded" }), StatusCode::BAD_REQUEST, "discarded entries cannot be"),
        (json!({ "topic": topic, "ratePerSecond": 0 }), StatusCode::BAD_REQUEST, "ratePerSecond must be from 1 to 50"),
        (json!({ "topic": topic, "kind": "weird" }), StatusCode::BAD_REQUEST, "unknown error kind `weird`"),
        (json!({ "topic": topic, "dryrun": true }), StatusCode::UNPROCESSABLE_ENTITY, "unknown field `dryrun`"),
    ] {
        let (got, answer) = dlq.post("/replay", Some(&body)).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(expected), "{body}: {answer}");
    }

    // Dry run: says what would be sent (the oldest max_bulk = 6 of 8), sends nothing.
    let filter = json!({ "topic": topic, "kind": "handler_failed", "dryRun": true, "ratePerSecond": 1000 });
    let (status, plan) = dlq.post("/replay", Some(&filter)).await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    assert_eq!(plan["dryRun"], true);
    assert_eq!(plan["matched"], 8);
    assert_eq!(plan["remaining"], 2);
    assert_eq!(plan["ratePerSecond"], 50, "capped by replay_rate");
    let would: Vec<i64> = plan["wouldSend"].as_array().unwrap().iter().map(|w| w["id"].as_i64().unwrap()).collect();
    assert_eq!(would, ids[..6]);
    assert_eq!(plan["wouldSend"][0]["originalTopic"], original);
    assert_eq!(plan["wouldSend"][0]["key"], "bulk-0");
    assert_eq!(plan["wouldSend"][0]["replayCount"], 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(dlq.read(original).await.is_empty(), "a dry run sent something");
    assert_eq!(dlq.ids(&format!("topic={topic}&state=new")).await.len(), 8);

    // For real, at 4 per second: 6 entries take at least 5/4 s.
    let started = Instant::now();
    let (status, done) = dlq.post("/replay", Some(&json!({ "topic": topic, "ratePerSecond": 4 }))).await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["ratePerSecond"], 4);
    let sent: Vec<i64> = done["sent"].as_array().unwrap().iter().map(|s| s["id"].as_i64().unwrap()).collect();
    assert_eq!(sent, ids[..6]);
    assert_eq!(done["remaining"], 2);
    assert!(took >= Duration::from_millis(1250), "6 replays at 4/s took only {took:?}");
    assert!(done["tookMs"].as_u64().unwrap() >= 1250, "{done}");
    let records = dlq.read(original).await;
    assert_eq!(records.len(), 6);
    let mut replayed_keys: Vec<String> = records.iter().map(|r| r.key.clone().unwrap()).collect();
    replayed_keys.sort();
    assert_eq!(replayed_keys, keys[..6]);
    assert!(records.iter().all(|r| r.headers["dlq_replay_count"] == "1"));
    assert!(records.iter().all(|r| !r.headers.contains_key("dlq_error_kind")));
    assert_eq!(dlq.ids(&format!("topic={topic}&state=replayed")).await.len(), 6);

    // The same filter again picks the remaining new ones only.
    let (status, rest) = dlq.post("/replay", Some(&json!({ "topic": topic }))).await;
    assert_eq!(status, StatusCode::OK, "{rest}");
    assert_eq!(rest["matched"], 2);
    assert_eq!(rest["sent"].as_array().unwrap().len(), 2);
    assert_eq!(dlq.read(original).await.len(), 8);

    // By ids: entries that may not be replayed are skipped with the reason.
    let (status, _) = dlq.post(&format!("/entries/{}/discard", ids[7]), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = dlq.post("/replay", Some(&json!({ "ids": [ids[0], ids[7], 424242], "dryRun": true }))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["wouldSend"].as_array().unwrap().len(), 1);
    let reasons: Vec<&str> =
        answer["skipped"].as_array().unwrap().iter().map(|s| s["reason"].as_str().unwrap()).collect();
    assert!(reasons.iter().any(|r| r.contains("was discarded")), "{answer}");
    assert!(reasons.iter().any(|r| r.contains("no dead-letter entry with id 424242")), "{answer}");
    let too_many: Vec<i64> = (1..=7).collect();
    let (status, answer) = dlq.post("/replay", Some(&json!({ "ids": too_many }))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("limit of 6 (max_bulk)"), "{answer}");

    // Bulk discard by filter: replayed entries only when asked for by state.
    let (status, answer) =
        dlq.post("/discard", Some(&json!({ "topic": topic, "state": "replayed", "dryRun": true }))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["wouldDiscard"].as_array().unwrap().len(), 6, "max_bulk");
    assert_eq!(answer["remaining"], 1);
    let (status, answer) =
        dlq.post("/discard", Some(&json!({ "topic": topic, "state": "replayed", "reason": "cleanup" }))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["discarded"].as_array().unwrap().len(), 6);
    assert_eq!(dlq.ids(&format!("topic={topic}&state=discarded")).await.len(), 7);

    let (_, topics) = dlq.get("/topics").await;
    let t = topics["topics"].as_array().unwrap().iter().find(|t| t["topic"] == topic).unwrap().clone();
    assert_eq!(t["byState"], json!({ "new": 0, "replayed": 1, "discarded": 7 }));

    let (_, audit) = dlq.get("/audit?limit=1").await;
    assert_eq!(audit["audit"][0]["action"], "dlq.bulk_discard");
    assert_eq!(audit["audit"][0]["target"], "filter");
    assert_eq!(audit["audit"][0]["details"]["filter"]["state"], "replayed");
    assert_eq!(audit["audit"][0]["outcome"], "ok: discarded 6");
    assert!(audit["nextCursor"].is_string());

    dlq.system.stop().await;
}

/// 20 replays of one dead letter at once: its replay is claimed atomically, so exactly
/// `max_replays` (3) are sent and answered 200, the other 17 are refused with 409, and the
/// original topic holds exactly 3 copies.
async fn parallel_replays_hold_the_limit(database_url: &str) {
    let dlq = start(database_url, |_| {}).await;
    let key = uuid::Uuid::new_v4().to_string();
    dlq.put(Letter::new("payment.requested", "payment.requested.dlq", &key, order(&key, json!(1000)))).await;
    let id = dlq.wait_entries(&format!("q={key}"), 1).await[0]["id"].as_i64().unwrap();
    let path = format!("/entries/{id}/replay");
    let answers = futures::future::join_all((0..20).map(|_| dlq.post(&path, None))).await;
    let ok = answers.iter().filter(|(status, _)| *status == StatusCode::OK).count();
    let refused: Vec<&Value> =
        answers.iter().filter(|(status, _)| *status == StatusCode::CONFLICT).map(|(_, answer)| answer).collect();
    assert_eq!((ok, refused.len()), (3, 17), "{answers:?}");
    assert!(
        refused.iter().all(|a| a["error"].as_str().unwrap().contains("the limit (max_replays = 3)")),
        "{refused:?}"
    );
    let copies =
        dlq.read("payment.requested").await.into_iter().filter(|r| r.key.as_deref() == Some(key.as_str())).count();
    assert_eq!(copies, 3, "copies of the dead letter sent back");
    let (_, entry) = dlq.get(&format!("/entries/{id}")).await;
    assert_eq!(entry["replayCount"], 3, "{entry}");
    dlq.system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_replays_hold_the_limit_on_postgres() {
    let db = TempPg::create("chaos_dlq_race").await;
    parallel_replays_hold_the_limit(&db.url).await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_replays_hold_the_limit_on_sqlite() {
    let (_dir, url) = temp_sqlite();
    parallel_replays_hold_the_limit(&url).await;
}
