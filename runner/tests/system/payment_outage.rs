//! A payment handler failing for a while: its requests are retried, then dead-lettered; the
//! saga compensates and the orders end CANCELLED. Once the cause is gone, a bulk replay from
//! dlq-admin runs the replayed requests end to end with no second effect: the payments of
//! the cancelled orders stay voided, and money is conserved.


use std::time::{Duration, Instant};

use runner::config::{self, Defaults, LoadOptions, Overrides, Pipeline};
use runner::handlers::Handler;
use runner::transport::EmbeddedBroker;
use serde_json::{json, Value};
use crate::support::{scalar, System, TempPg};

const TOKEN: &str = "local-dev-token-change-me";
const ORDERS: usize = 30;

/// The shipped pipelines on `database_url` and an external broker, with short retries and,
/// when `outage` is set, a payment handler that fails every charge.
fn system(database_url: &str, brokers: &str, outage: Option<&str>) -> Vec<Pipeline> {
    let files = config::pipeline_files(&crate::support::pipelines_dir()).unwrap();
    let options = LoadOptions {
        defaults: Defaults::default(),
        overrides: Overrides { brokers: Some(brokers.into()), database_url: Some(database_url.into()), listen: None },
        use_environment: false,
    };
    let mut pipelines: Vec<Pipeline> = config::load_system(&files, &[], &options)
        .unwrap_or_else(|d| panic!("{d}"))
        .into_iter()
        .map(|l| l.pipeline)
        .collect();
    for pipeline in &mut pipelines {
        pipeline.broker.session_timeout = Duration::from_secs(6);
        for consumer in &mut pipeline.consumers {
            consumer.retry.attempts = 3;
            consumer.retry.backoff = Duration::from_millis(50);
            if let Handler::PaymentCharge(params) = &mut consumer.handler {
                params.outage = outage.map(str::to_string);
            }
        }
    }
    pipelines
}

async fn get(system: &System, path: &str) -> Value {
    system.client.get(format!("{}{path}", system.base)).send().await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_outage_dead_letters_then_a_bulk_replay_runs_without_a_double_effect() {
    let db = TempPg::create("chaos_outage_pay").await;
    // The broker outlives both runs of the system, as a real cluster would.
    let broker = EmbeddedBroker::start(1).unwrap();
    let bootstrap = broker.bootstrap_servers().to_string();

    let first = System::start(system(&db.url, &bootstrap, Some("maintenance window"))).await;
    for i in 0..ORDERS {
        first
            .post_order(&json!({ "customerId": format!("c-{i}"), "currency": "EUR",
                "items": [{ "sku": "SKU-3", "quantity": 1, "unitPrice": 1000 + i }], "shipTo": { "country": "DE" } }))
            .await;
    }
    let statuses = first.wait_all_terminal(ORDERS, Duration::from_secs(120)).await;
    assert!(statuses.iter().all(|(_, s)| s == "CANCELLED"), "{statuses:?}");
    let store = first.store();
    let reason: String = sqlx::query_scalar("SELECT reason FROM orders LIMIT 1").fetch_one(store.pool()).await.unwrap();
    assert!(
        reason.starts_with("payment request dead-lettered: card gateway unavailable: maintenance window"),
        "{reason}"
    );
    // No money moved; every payment is voided so a late charge cannot take money.
    assert_eq!(scalar(store, "SELECT COUNT(*) FROM payments WHERE charged_at_ms IS NOT NULL").await, 0);
    assert_eq!(scalar(store, "SELECT COUNT(*) FROM payments WHERE status = 'voided'").await, ORDERS as i64);

    // dlq-admin followed the dead letters: retried three times each, kind handler_failed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let entries = loop {
        let page = get(&first, "/api/dlq/entries?topic=payment.requested.dlq&limit=100").await;
        let entries = page["entries"].as_array().cloned().unwrap_or_default();
        if entries.len() == ORDERS {
            break entries;
        }
        assert!(Instant::now() < deadline, "dlq-admin has {} of {ORDERS} entries", entries.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(entries.iter().all(|e| e["errorKind"] == "handler_failed" && e["attempts"] == 3), "{entries:?}");
    let retries = first.client.get(format!("{}/metrics", first.base)).send().await.unwrap().text().await.unwrap();
    assert!(
        retries.contains("consumer_retries_total{consumer=\"payment-svc/charge\"}"),
        "retries are counted per consumer"
    );
    first.stop().await;

    // The cause is removed (the service restarts without the outage); replay everything.
    let second = System::start(system(&db.url, &bootstrap, None)).await;
    let dry = second
        .client
        .post(format!("{}/api/dlq/replay", second.base))
        .bearer_auth(TOKEN)
        .json(&json!({ "topic": "payment.requested.dlq", "dryRun": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(dry.status(), 200);
    let dry: Value = dry.json().await.unwrap();
    assert_eq!(dry["wouldSend"].as_array().unwrap().len(), ORDERS, "{dry}");
    let replay = second
        .client
        .post(format!("{}/api/dlq/replay", second.base))
        .bearer_auth(TOKEN)
        .json(&json!({ "topic": "payment.requested.dlq" }))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 200);
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["sent"].as_array().unwrap().len(), ORDERS, "{replay}");

    // End to end: payment-svc handles every replayed request (declining it: the payment was
    // voided by the compensation) and the orchestrator receives each answer.
    let store = second.store();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let handled = scalar(store, "SELECT COUNT(*) FROM inbox WHERE consumer = 'payment-svc/charge'").await;
        let answered = scalar(
            store,
            "SELECT COUNT(*) FROM outbox WHERE type = 'payment.declined' AND published_at_ms IS NOT NULL",
        )
        .await;
        if handled == ORDERS as i64 && answered == ORDERS as i64 {
            break;
        }
        assert!(Instant::now() < deadline, "{handled} replayed requests handled, {answered} answers published");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        scalar(store, "SELECT COUNT(*) FROM payments WHERE charged_at_ms IS NOT NULL").await,
        0,
        "no double effect"
    );
    assert_eq!(scalar(store, "SELECT COUNT(*) FROM orders WHERE status = 'CANCELLED'").await, ORDERS as i64);
    let charged = scalar(store, "SELECT SUM(amount) FROM payments WHERE charged_at_ms IS NOT NULL").await;
    let refunded = scalar(store, "SELECT SUM(amount) FROM payments WHERE refunded_at_ms IS NOT NULL").await;
    let completed = scalar(store, "SELECT SUM(total) FROM orders WHERE status = 'COMPLETED'").await;
    assert_eq!(charged - refunded, completed, "money is conserved");
    let replayed = get(&second, "/api/dlq/entries?topic=payment.requested.dlq&state=replayed&limit=100").await;
    assert_eq!(replayed["entries"].as_array().unwrap().len(), ORDERS);
    // No replayed request was dead-lettered again.
    assert_eq!(scalar(store, "SELECT COUNT(*) FROM dead_letters").await, ORDERS as i64);
    let audit = get(&second, "/api/dlq/audit").await;
    assert!(audit["audit"].as_array().unwrap().iter().any(|a| a["actor"] == "operator"), "{audit}");
    second.stop().await;
    db.drop_database().await;
}
