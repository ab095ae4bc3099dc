//! Structured logs: `runner up` with `RUNNER_LOG_FORMAT=json` writes one JSON object per line,
//! and every service's lines about one order carry that order's trace id — from order-api
//! through the orchestrator and each step's consumer, in spans named by OpenTelemetry's
//! messaging conventions.


use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use crate::support::pipelines_dir;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_order_is_one_trace_id_in_every_services_json_logs() {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_runner"))
        .arg("up")
        .arg(pipelines_dir())
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("RUNNER_LOG_FORMAT", "json")
        .env("RUST_LOG", "info,runner::transport=debug,rdkafka=warn,sqlx=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start runner up");
    // Stopped however the test ends: a failing assertion must not leave `runner up` running.
    let guard = KillOnDrop(child.id());
    let stderr = child.stderr.take().unwrap();
    let (send, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let address = loop {
        let line = lines.recv_timeout(Duration::from_secs(60)).expect("runner up printed nothing");
        if let Some(address) = line.strip_prefix("listening on ") {
            break address.trim().to_string();
        }
        log.push(line);
        assert!(Instant::now() < deadline, "runner up did not start");
    };

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
            log.join("\n")
        );
        let Ok(line) = lines.recv_timeout(Duration::from_millis(500)) else { continue };
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
        log.push(line);
    }
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = child.wait().unwrap();
    std::mem::forget(guard);
    assert!(status.success(), "{status:?}");
}

/// Kills the process with this id when dropped (a panicking test unwinds through it).
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-KILL", &self.0.to_string()]).status();
    }
}
