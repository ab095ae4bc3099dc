//! A payment handler failing for a while: its requests are retried, then dead-lettered; the
//! saga compensates and the orders end CANCELLED. Once the cause is gone, a bulk replay from
//! dlq-admin runs the replayed requests end to end with no second effect: the payments of
//! the cancelled orders stay voided, and money is conserved.

use std::time::Duration;

use reqwest::Method;
use runner::config::Pipeline;
use runner::handlers::Handler;
use runner::transport::EmbeddedBroker;
use serde_json::json;

use crate::support::{eventually, scalar, shipped_pipelines_on, System, TempPg, ADMIN_TOKEN};

const ORDERS: usize = 30;

/// The shipped pipelines on `database_url` and an external broker, with short retries and,
/// when `outage` is set, a payment handler that fails every charge.
fn system(database_url: &str, brokers: &str, outage: Option<&str>) -> Vec<Pipeline> {
    let mut pipelines = shipped_pipelines_on(database_url, brokers);
    for pipeline in &mut pipelines {
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
    let entries = eventually(Duration::from_secs(30), Duration::from_millis(200), async || {
        let page = first.get("/api/dlq/entries?topic=payment.requested.dlq&limit=100").await;
        let entries = page["entries"].as_array().cloned().unwrap_or_default();
        if entries.len() == ORDERS {
            Ok(entries)
        } else {
            Err(format!("dlq-admin has {} of {ORDERS} entries", entries.len()))
        }
    })
    .await;
    assert!(entries.iter().all(|e| e["errorKind"] == "handler_failed" && e["attempts"] == 3), "{entries:?}");
    let retries = first.metrics().await;
    assert!(
        retries.contains("consumer_retries_total{consumer=\"payment-svc/charge\"}"),
        "retries are counted per consumer"
    );
    first.stop().await;

    // The cause is removed (the service restarts without the outage); replay everything.
    let second = System::start(system(&db.url, &bootstrap, None)).await;
    let replay = async |body| second.call(Method::POST, "/api/dlq/replay", Some(ADMIN_TOKEN), Some(body)).await;
    let (status, dry) = replay(json!({ "topic": "payment.requested.dlq", "dryRun": true })).await;
    assert_eq!(status, 200);
    assert_eq!(dry["wouldSend"].as_array().unwrap().len(), ORDERS, "{dry}");
    let (status, replayed) = replay(json!({ "topic": "payment.requested.dlq" })).await;
    assert_eq!(status, 200);
    assert_eq!(replayed["sent"].as_array().unwrap().len(), ORDERS, "{replayed}");

    // End to end: payment-svc handles every replayed request (declining it: the payment was
    // voided by the compensation) and the orchestrator receives each answer. A request
    // delivered again (a rebalance while several were in flight) is answered again from the
    // inbox with the recorded reply, never with a second effect: at least one answer each.
    let store = second.store();
    eventually(Duration::from_secs(60), Duration::from_millis(200), async || {
        let handled = scalar(store, "SELECT COUNT(*) FROM inbox WHERE consumer = 'payment-svc/charge'").await;
        let answered = scalar(
            store,
            "SELECT COUNT(*) FROM outbox WHERE type = 'payment.declined' AND published_at_ms IS NOT NULL",
        )
        .await;
        if handled == ORDERS as i64 && answered >= ORDERS as i64 {
            Ok(())
        } else {
            Err(format!("{handled} replayed requests handled, {answered} answers published"))
        }
    })
    .await;
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
    let replayed = second.get("/api/dlq/entries?topic=payment.requested.dlq&state=replayed&limit=100").await;
    assert_eq!(replayed["entries"].as_array().unwrap().len(), ORDERS);
    // No replayed request was dead-lettered again.
    assert_eq!(scalar(store, "SELECT COUNT(*) FROM dead_letters").await, ORDERS as i64);
    let audit = second.get("/api/dlq/audit").await;
    assert!(audit["audit"].as_array().unwrap().iter().any(|a| a["actor"] == "operator"), "{audit}");
    second.stop().await;
    db.drop_database().await;
}
