//! Keyed concurrency under kills: every service a separate process on PostgreSQL, topics of
//! two partitions so that 2,000 orders' keys collide on few partitions, each worker handling
//! up to 128 messages at once (the default `max_in_flight`) and the orchestrator 256 in two
//! groups committing side by side (as shipped). The orchestrator and payment-svc
//! are killed with -9 in the middle of the load and started again. Every order ends, each
//! order's history is its steps in order, nobody is charged twice, money and stock are
//! conserved.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::Row;

use crate::support::process::Service;
use crate::support::{assert_guarantees, scalar, wait_none_pending, TempPg, COMPLETED_HISTORY};

const ORDERS: usize = 2_000;
const CLIENTS: usize = 16;

/// An order of customer `i`: every tenth ships to ZZ, which shipping refuses (cancelled).
fn order(i: usize) -> serde_json::Value {
    let country = if i % 10 == 9 { "ZZ" } else { "DE" };
    json!({"customerId": format!("c-{i}"), "currency": "EUR",
        "items": [{"sku": "SKU-3", "quantity": 1, "unitPrice": 100 + (i % 50)}], "shipTo": {"country": country}})
}

async fn post(client: &reqwest::Client, api: &str, range: std::ops::Range<usize>) -> Vec<String> {
    let mut ids = Vec::new();
    let chunks: Vec<Vec<usize>> = range.collect::<Vec<_>>().chunks(CLIENTS).map(<[usize]>::to_vec).collect();
    for chunk in chunks {
        let posts = chunk.into_iter().map(|i| {
            let (client, api) = (client.clone(), api.to_string());
            async move {
                let response = client.post(format!("{api}/api/orders")).json(&order(i)).send().await.unwrap();
                assert_eq!(response.status(), 202);
                response.json::<serde_json::Value>().await.unwrap()["orderId"].as_str().unwrap().to_string()
            }
        });
        ids.extend(futures::future::join_all(posts).await);
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_concurrency_keeps_each_order_in_order_through_kills() {
    let db = TempPg::create("keyed").await;
    let env = [("RUNNER_BROKER__PARTITIONS", "2")];
    let mut relay = Service::start_with_env("outbox-relay.toml", &db.url, Some("embedded"), &env);
    let brokers = relay.wait_for("embedded broker:");
    relay.wait_for("listening on");
    let start = |file: &str| Service::start_with_env(file, &db.url, Some(&brokers), &env);
    let mut api = start("order-api.toml");
    let mut orchestrator = start("orchestrator.toml");
    let mut payment = start("payment.toml");
    let mut others = vec![start("inventory.toml"), start("shipping.toml")];
    let address = api.wait_for("listening on");
    orchestrator.wait_for("listening on");
    payment.wait_for("listening on");
    for service in &mut others {
        service.wait_for("listening on");
    }

    let client = reqwest::Client::new();
    let began = Instant::now();
    let mut ids = post(&client, &address, 0..600).await;
    orchestrator.kill();
    orchestrator = start("orchestrator.toml");
    ids.extend(post(&client, &address, 600..1_300).await);
    payment.kill();
    payment = start("payment.toml");
    ids.extend(post(&client, &address, 1_300..ORDERS).await);
    orchestrator.wait_for("listening on");
    payment.wait_for("listening on");

    let store = runner::store::Store::connect(&runner::store::StoreConfig::for_url(&db.url, 2).unwrap()).await.unwrap();
    wait_none_pending(&store, Duration::from_secs(300)).await;
    println!("{ORDERS} orders ended {:.1} s after the first POST", began.elapsed().as_secs_f64());
    assert_eq!(ids.len(), ORDERS);
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM orders").await, ORDERS as i64);
    let cancelled = (0..ORDERS).filter(|i| i % 10 == 9).count() as i64;
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM orders WHERE status = 'CANCELLED'").await, cancelled);
    assert_eq!(
        scalar(&store, "SELECT COUNT(*) FROM orders WHERE status = 'COMPLETED'").await,
        ORDERS as i64 - cancelled
    );
    // One charge per order, never two.
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM payments WHERE charged_at_ms IS NOT NULL").await, ORDERS as i64);
    assert_guarantees(&store).await;

    // Each order's history is its steps in order, once each, whatever ran beside it.
    let rows = sqlx::query(
        "SELECT h.saga_id, h.step, h.action, o.status FROM saga_history h JOIN orders o ON CAST(o.id AS text) = h.saga_id ORDER BY h.saga_id, h.seq",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    let mut histories: HashMap<String, (String, Vec<String>)> = HashMap::new();
    for row in rows {
        let (saga, step, action, status): (String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        histories.entry(saga).or_insert_with(|| (status, Vec::new())).1.push(format!("{step} {action}"));
    }
    assert_eq!(histories.len(), ORDERS);
    let cancelled_history = [
        "payment requested",
        "payment succeeded",
        "inventory requested",
        "inventory succeeded",
        "shipping requested",
        "shipping failed",
        "inventory compensating",
        "inventory compensated",
        "payment compensating",
        "payment compensated",
        "order cancelled",
    ];
    let mut retried = 0;
    for (saga, (status, history)) in &histories {
        // A request that timed out while its service was being killed is sent again: the
        // retry lines are the only difference allowed.
        let history = without_retries(history);
        retried += usize::from(history.len() != histories[saga].1.len());
        match status.as_str() {
            "COMPLETED" => assert_eq!(history, &COMPLETED_HISTORY, "order {saga}"),
            _ => assert_eq!(history, &cancelled_history, "order {saga}"),
        }
    }
    println!("orders with a step retried after a kill: {retried}");
    for service in [&mut api, &mut orchestrator, &mut payment, &mut relay].into_iter().chain(others.iter_mut()) {
        service.kill();
    }
    db.drop_database().await;
}

/// `history` without the lines of a step retried after a timeout (`timed out`, and the same
/// `requested` again).
fn without_retries(history: &[String]) -> Vec<String> {
    let mut kept: Vec<String> = Vec::new();
    for line in history.iter().filter(|l| !l.ends_with(" timed out")) {
        if kept.last() != Some(line) {
            kept.push(line.clone());
        }
    }
    kept
}
