//! Dead letters in the running system: a poison message among 1,000 orders lands in its
//! dead-letter topic with every header and the orders behind it complete; consumers' schema
//! checks dead-letter invalid events with the reason.

use std::collections::HashMap;
use std::time::Duration;

use runner::transport::BrokerConfig;
use runner::transport::{dead_letter, Broker};
use serde_json::json;
use sqlx::Row;

use crate::support::{read_topic, shipped_pipelines, temp_sqlite, System, TopicRecord, COMPLETED_HISTORY};

fn order(i: usize) -> serde_json::Value {
    json!({ "customerId": format!("c-{i}"), "currency": "EUR",
        "items": [{ "sku": format!("SKU-{}", i % 5 + 1), "quantity": 1, "unitPrice": 100 + i as i64 }],
        "shipTo": { "country": "DE" } })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_dead_lettered_and_the_orders_behind_them_complete() {
    let (_dir, url) = temp_sqlite();
    let pipelines = shipped_pipelines(&url);
    let broker_config: BrokerConfig = pipelines[0].broker.clone();
    let system = System::start(pipelines).await;
    let embedded = system.running.embedded_broker.clone().unwrap();
    let broker = Broker::on_embedded(embedded.clone(), &broker_config);
    let publisher = broker.publisher().unwrap();

    let mut posted = 0;
    for wave in 0..40 {
        posted += system.post_orders((0..25).map(|j| order(wave * 25 + j)), 25).await.len();
        if wave == 20 {
            // Two poison requests in the middle of the load: one not even JSON, one a
            // well-formed event whose payload breaks the schema.
            publisher.publish_raw("payment.requested", Some(b"poison-1"), Some(b"{not json"), &[]).await.unwrap();
            let headers: Vec<(String, Vec<u8>)> = [
                ("ce_id", "4f7c2a8e-0000-4000-8000-000000000001"),
                ("ce_type", "payment.requested"),
                ("ce_source", "test"),
                ("ce_time", "2026-11-24T00:00:00Z"),
                ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
            publisher
                .publish_raw("payment.requested", Some(b"poison-2"), Some(br#"{"orderId":"poison-2"}"#), &headers)
                .await
                .unwrap();
        }
    }
    assert_eq!(posted, 1000);
    let statuses = system.wait_all_terminal(1000, Duration::from_secs(240)).await;
    assert!(statuses.iter().all(|(_, s)| s == "COMPLETED"), "every order behind the poison completes");

    // Each order went through its steps in order.
    let rows = sqlx::query("SELECT saga_id, step, action FROM saga_history ORDER BY saga_id, seq")
        .fetch_all(system.store().pool())
        .await
        .unwrap();
    let mut histories: HashMap<String, Vec<String>> = HashMap::new();
    for row in rows {
        let (saga, step, action): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        histories.entry(saga).or_default().push(format!("{step} {action}"));
    }
    assert_eq!(histories.len(), 1000);
    assert!(histories.values().all(|h| h == &COMPLETED_HISTORY), "some order's steps ran out of order");

    // Both poison messages are on the dead-letter topic with every header.
    let records = read_topic(embedded.bootstrap_servers(), "payment.requested.dlq").await;
    assert_eq!(records.len(), 2, "exactly the two poison messages are dead letters");
    for record in &records {
        for header in [
            dead_letter::ORIGINAL_TOPIC,
            dead_letter::ORIGINAL_PARTITION,
            dead_letter::ORIGINAL_OFFSET,
            dead_letter::ORIGINAL_TIMESTAMP,
            dead_letter::CONSUMER_GROUP,
            dead_letter::ERROR_KIND,
            dead_letter::ERROR_MESSAGE,
            dead_letter::ATTEMPTS,
            dead_letter::FIRST_FAILURE_AT,
            dead_letter::LAST_FAILURE_AT,
        ] {
            assert!(
                record.headers.get(header).is_some_and(|v| !v.is_empty()),
                "{header} missing: {:?}",
                record.headers
            );
        }
        assert_eq!(record.headers[dead_letter::ORIGINAL_TOPIC], "payment.requested");
        assert_eq!(record.headers[dead_letter::CONSUMER_GROUP], "payment-svc.charge");
        assert_eq!(record.headers[dead_letter::ATTEMPTS], "1", "poison is not retried");
    }
    let by_key: HashMap<&str, &TopicRecord> =
        records.iter().map(|r| (r.key.as_deref().unwrap_or_default(), r)).collect();
    let undecodable = by_key["poison-1"];
    assert_eq!(undecodable.headers[dead_letter::ERROR_KIND], "undecodable");
    assert_eq!(undecodable.payload.as_deref(), Some(&b"{not json"[..]), "the original payload is kept");
    let invalid = by_key["poison-2"];
    assert_eq!(invalid.headers[dead_letter::ERROR_KIND], "schema_invalid");
    assert!(invalid.headers[dead_letter::ERROR_MESSAGE].contains("payment.requested"), "{:?}", invalid.headers);
    assert_eq!(invalid.headers["ce_id"], "4f7c2a8e-0000-4000-8000-000000000001", "original headers are kept");
    assert_eq!(invalid.headers["traceparent"], "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");

    let metrics = system.metrics().await;
    assert!(
        metrics.contains(r#"dead_letters_total{topic="payment.requested",kind="undecodable"} 1"#),
        "dead letters are counted by topic and kind:\n{metrics}"
    );
    system.stop().await;
}
