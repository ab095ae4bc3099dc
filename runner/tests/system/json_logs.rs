//! Structured logs: `runner up` with `RUNNER_LOG_FORMAT=json` writes one JSON object per line,
//! and every service's lines about one order carry that order's trace id — from order-api
//! through the orchestrator and each step's consumer, in spans named by OpenTelemetry's
//! messaging conventions.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::pipelines_dir;
use crate::support::process::Service;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_order_is_one_trace_id_in_every_services_json_logs() {
    let data = tempfile::tempdir().unwrap();
    let pipelines = pipelines_dir();
    let args: [&OsStr; 6] = [
        "up".as_ref(),
        pipelines.as_ref(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--data-dir".as_ref(),
        data.path().as_ref(),
    ];
    let env = [("RUNNER_LOG_FORMAT", "json"), ("RUST_LOG", "info,runner::transport=debug,rdkafka=warn,sqlx=warn")];
    // Stopped however the test ends: a failing assertion must not leave `runner up` running.
    let mut up = Service::runner("runner up", &args, &env);
    let address = up.wait_for("listening on ");

    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = reqwest::Client::new()
        .post(format!("{address}/api/orders"))
        .header("traceparent", traceparent)
        .json(&json!({ "customerId": "c-log", "currency": "EUR",
            "items": [{ "sku": "SKU-1", "quantity": 1, "unitPrice": 1000 }], "shipTo": { "country": "DE" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);

    // Every line is JSON; collect the consumers whose spans carry the trace id.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let want: BTreeSet<&str> =
        ["orchestrator/saga-order", "payment-svc/charge", "inventory-svc/reserve", "shipping-svc/schedule"]
            .into_iter()
            .collect();
    let mut accepted = false;
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(accepted && want.iter().all(|c| seen.contains(*c))) {
        assert!(
            Instant::now() < deadline,
            "trace id missing; accepted {accepted}, consumers {seen:?}; log:\n{}",
            up.log.join("\n")
        );
        let Some(line) = up.next_line(Duration::from_millis(500)) else { continue };
        if line.starts_with('{') {
            let entry: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            let message = entry["fields"]["message"].as_str().unwrap_or_default();
            if message == "order accepted" && entry["fields"]["trace_id"] == trace_id {
                accepted = true;
            }
            if message == "message handled" && entry["span"]["trace_id"] == trace_id {
                assert_eq!(entry["span"]["messaging.system"], "kafka", "{line}");
                assert_eq!(entry["span"]["messaging.operation.type"], "process", "{line}");
                let topic = entry["span"]["messaging.destination.name"].as_str().unwrap_or_default().to_string();
                assert_eq!(entry["span"]["otel.name"], format!("{topic} process"), "{line}");
                if let Some(consumer) = entry["fields"]["consumer"].as_str() {
                    seen.insert(consumer.to_string());
                }
            }
        }
    }
    let status = up.terminate();
    assert!(status.success(), "{status:?}");
}
