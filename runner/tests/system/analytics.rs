//! streams-analytics on its own windows: `GET /api/slo` answers every objective in one call,
//! and moves when a chaos rule makes payments fail; the windowed figures follow the orders,
//! by canary variant and per saga step.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{eventually, shipped_pipelines, simple_order, System, TempPg};

fn objective<'a>(slo: &'a Value, name: &str) -> &'a Value {
    slo["objectives"].as_array().unwrap().iter().find(|o| o["name"] == name).unwrap()
}

/// Waits until the analytics have seen `count` orders finish in the last hour.
async fn seen(system: &System, count: u64) -> Value {
    eventually(Duration::from_secs(30), Duration::from_millis(200), async || {
        let slo = system.get("/api/slo").await;
        if objective(&slo, "order-success")["ordersLastHour"].as_f64().unwrap_or(0.0) >= count as f64 {
            Ok(slo)
        } else {
            Err(format!("analytics saw fewer than {count} orders: {slo}"))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_slo_view_moves_when_payments_fail() {
    let db = TempPg::create("analytics").await;
    let mut pipelines = shipped_pipelines(&db.url);
    for pipeline in &mut pipelines {
        // Half the payments go to payment-svc-canary, with no analysis moving the split.
        if let Some(canary) = pipeline.saga.as_mut().and_then(|s| s.canary.as_mut()) {
            canary.percent = 50.0;
            canary.analysis = None;
        }
        pipeline.chaos.enabled = true;
        for consumer in &mut pipeline.consumers {
            consumer.retry.attempts = 2;
            consumer.retry.backoff = Duration::from_millis(50);
        }
    }
    let system = System::start(pipelines).await;

    // 40 healthy orders: the objectives are met.
    for i in 0..40 {
        system.post_order(&simple_order(i)).await;
    }
    system.wait_all_terminal(40, Duration::from_secs(60)).await;
    let healthy = seen(&system, 40).await;
    assert_eq!(healthy["source"], "own windows");
    let success = objective(&healthy, "order-success");
    assert_eq!(success["current"], 1.0, "{success}");
    assert_eq!(success["breaching"], false, "{success}");
    assert_eq!(success["burnRates"].as_array().unwrap().len(), 3);
    assert!(success["errorBudgetRemaining"].as_f64().unwrap() > 0.99, "{success}");
    let latency = objective(&healthy, "order-latency");
    assert_eq!(latency["current"], 1.0, "every order within 5 s: {latency}");

    // Every payment fails now: the same call shows the objective burning.
    let rule = json!({ "id": "cards-down", "ttl": "10m",
        "target": { "kind": "handler", "handler": "payment.charge" }, "fault": { "kind": "error" } });
    system.create_rule(&rule).await;
    for i in 40..80 {
        system.post_order(&simple_order(i)).await;
    }
    system.wait_all_terminal(80, Duration::from_secs(90)).await;
    let burning = seen(&system, 80).await;
    let success = objective(&burning, "order-success");
    let current = success["current"].as_f64().unwrap();
    assert!((0.45..=0.55).contains(&current), "half the orders completed: {success}");
    assert_eq!(success["breaching"], true, "{success}");
    let fast = &success["burnRates"][0];
    assert_eq!(fast["long"], "1h");
    assert!(fast["longBurnRate"].as_f64().unwrap() > 9.0, "{fast}");
    assert!(success["errorBudgetRemaining"].as_f64().unwrap() < 0.0, "{success}");

    // The windowed figures: started, finished by outcome, compensation rate, latency. Step
    // requests left unanswered count as `no_reply` once their order has been over a few
    // seconds (replies travel on other topics): wait until every payment request is settled.
    let windows = eventually(Duration::from_secs(60), Duration::from_millis(500), async || {
        let windows = system.get("/api/analytics/windows").await;
        let payments: u64 = windows["1h"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["step"] == "payment")
            .flat_map(|s| s["outcomes"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()))
            .sum();
        if payments >= 80 && windows["1h"]["latencyMs"]["count"] == 80 {
            Ok(windows)
        } else {
            Err(format!("payment requests not settled: {windows}"))
        }
    })
    .await;
    let hour = &windows["1h"];
    assert_eq!(hour["started"], 80, "{hour}");
    assert_eq!(hour["finished"]["completed"], 40, "{hour}");
    assert_eq!(hour["finished"]["cancelled"], 40, "{hour}");
    assert_eq!(hour["compensationRate"], 0.5, "{hour}");
    assert_eq!(hour["latencyMs"]["count"], 80, "{hour}");
    assert!(hour["latencyMs"]["p99"].as_i64().unwrap() >= hour["latencyMs"]["p50"].as_i64().unwrap());
    // By variant: the orders that met the canary at payment, and those that did not.
    let by_variant = &hour["byVariant"];
    let finished = |variant: &str, outcome: &str| by_variant[variant][outcome].as_u64().unwrap();
    assert_eq!(finished("stable", "completed") + finished("canary", "completed"), 40, "{by_variant}");
    assert_eq!(finished("stable", "cancelled") + finished("canary", "cancelled"), 40, "{by_variant}");
    assert!(finished("canary", "completed") > 0 && finished("stable", "completed") > 0, "{by_variant}");
    // Per step and variant: payment answered 40 times (the healthy half) and went unanswered
    // 40 times (failing handler: dead letters, then timeouts); the later steps only ran for
    // the orders paid.
    let steps = hour["steps"].as_array().unwrap();
    let step = |name: &str, variant: &str| steps.iter().find(|s| s["step"] == name && s["variant"] == variant);
    let outcome = |name: &str, variant: &str, outcome: &str| {
        step(name, variant).map_or(0, |s| s["outcomes"][outcome].as_u64().unwrap())
    };
    let paid = outcome("payment", "stable", "success") + outcome("payment", "canary", "success");
    let unanswered = outcome("payment", "stable", "no_reply") + outcome("payment", "canary", "no_reply");
    assert_eq!((paid, unanswered), (40, 40), "{steps:#?}");
    assert_eq!(outcome("payment", "canary", "success"), finished("canary", "completed"), "{steps:#?}");
    assert_eq!(outcome("inventory", "stable", "success"), 40, "{steps:#?}");
    assert_eq!(outcome("shipping", "stable", "success"), 40, "{steps:#?}");
    assert!(step("inventory", "canary").is_none(), "only payment has a canary");
    let canary_payment = step("payment", "canary").unwrap();
    assert!(canary_payment["failureRatio"].as_f64().unwrap() > 0.0, "{canary_payment}");
    assert!(canary_payment["latencyMs"]["p50"].as_i64().unwrap() >= 0, "{canary_payment}");
    let shipping = step("shipping", "stable").unwrap();
    assert_eq!(shipping["failureRatio"], 0.0, "{shipping}");
    assert_eq!(shipping["latencyMs"]["count"], 40, "{shipping}");

    // The SLO view over time: a reading every 10 s, the burning one among them.
    let history = eventually(Duration::from_secs(30), Duration::from_millis(500), async || {
        let history = system.get("/api/slo/history?minutes=15").await;
        let samples = history["objectives"].as_array().unwrap().iter().find(|o| o["name"] == "order-success").unwrap()
            ["samples"]
            .clone();
        match samples.as_array().unwrap().last() {
            Some(last) if last["current"].as_f64().is_some_and(|c| c < 0.6) => Ok(history),
            _ => Err(format!("no burning reading yet: {history}")),
        }
    })
    .await;
    assert_eq!(history["intervalSeconds"], 10);
    assert_eq!(history["burnWindows"], json!(["1h", "6h", "3d"]));
    let success = history["objectives"].as_array().unwrap().iter().find(|o| o["name"] == "order-success").unwrap();
    let last = success["samples"].as_array().unwrap().last().unwrap();
    assert!(last["burnRates"][0].as_f64().unwrap() > 9.0, "{last}");
    assert!(last["atMs"].as_i64().unwrap() > 0, "{last}");
    for bad in ["0", "1441", "x", "%00"] {
        let (status, answer) =
            system.call(reqwest::Method::GET, &format!("/api/slo/history?minutes={bad}"), None, None).await;
        assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "{bad}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains("whole minutes from 1 to 1440"), "{answer}");
    }

    let metrics = system.metrics().await;
    assert!(
        metrics.contains(r#"analytics_step_results_total{step="shipping",variant="stable",outcome="success"} 40"#),
        "step results counter"
    );
    assert!(metrics.contains("analytics_step_latency_seconds_bucket{"), "step latency histogram with buckets");
    assert!(metrics.contains(r#"analytics_orders_finished_total{outcome="CANCELLED"} 40"#), "finished counter");
    system.stop().await;
    db.drop_database().await;
}
