//! Canary releases of payment-svc: the split follows the percentage set through chaos-svc
//! (10 %, 50 %, 90 % over 2,000 orders each, within 3 points), no order meets both versions,
//! and the automated analysis promotes a healthy canary and rolls back a failing one — one
//! that declines payments, and one that never answers (its timeouts count as failures).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::Method;
use runner::config::Pipeline;
use runner::saga::CanaryAnalysis;
use serde_json::{json, Value};
use sqlx::Row;

use crate::support::{
    assert_guarantees, eventually, scalar, shipped_pipelines, simple_order, System, TempPg, ADMIN_TOKEN, PAYMENT_ROUTES,
};

fn system_with(
    url: &str,
    canary_params: Option<Value>,
    analysis: Option<CanaryAnalysis>,
    percent: f64,
) -> Vec<Pipeline> {
    let mut pipelines = shipped_pipelines(url);
    for pipeline in &mut pipelines {
        if let Some(canary) = pipeline.saga.as_mut().and_then(|s| s.canary.as_mut()) {
            canary.percent = percent;
            canary.analysis = analysis.clone();
        }
        if let (Some(params), "payment-svc-canary") = (&canary_params, pipeline.service.as_str()) {
            let params = params.as_object().unwrap().clone().into_iter().collect();
            pipeline.consumers[0].handler = runner::handlers::build("payment.charge", &params).unwrap();
        }
    }
    pipelines
}

async fn post_many(system: &System, from: usize, count: usize) -> Vec<String> {
    system.post_orders((from..from + count).map(simple_order), 50).await
}

async fn canary_view(system: &System) -> Value {
    system.get("/api/runtime/canary").await["canaries"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn split_follows_the_percentage_and_no_order_meets_both_versions() {
    let db = TempPg::create("canary_split").await;
    let system = System::start(system_with(&db.url, None, None, 0.0)).await;
    let mut total = 0;
    for percent in [10.0, 50.0, 90.0] {
        let change = json!({ "step": "payment", "percent": percent });
        let (status, _) = system.call(Method::PUT, "/api/chaos/canary", Some(ADMIN_TOKEN), Some(change)).await;
        assert_eq!(status, 200);
        assert_eq!(canary_view(&system).await["percent"], percent);
        let ids = post_many(&system, total, 2000).await;
        total += ids.len();
        system.wait_all_terminal(total, Duration::from_secs(300)).await;
        let mut variants: BTreeMap<String, i64> = BTreeMap::new();
        for chunk in ids.chunks(500) {
            let list = chunk.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(",");
            let rows = sqlx::query(&format!(
                "SELECT variant, COUNT(*) FROM {PAYMENT_ROUTES} WHERE variant IS NOT NULL AND saga_id IN ({list}) GROUP BY variant"
            ))
            .fetch_all(system.store().pool())
            .await
            .unwrap();
            for row in rows {
                *variants.entry(row.get(0)).or_default() += row.get::<i64, _>(1);
            }
        }
        let canary = variants.get("canary").copied().unwrap_or(0) as f64;
        let share = canary * 100.0 / ids.len() as f64;
        println!("percent {percent}: canary {share:.1}% of {} orders", ids.len());
        assert!((share - percent).abs() <= 3.0, "{share:.1}% at {percent}%");
    }
    let store = system.store();
    // Each order's payment was answered by one service only, the one its route names.
    let both = scalar(
        store,
        "SELECT COUNT(*) FROM (SELECT aggregateid FROM outbox WHERE type IN ('payment.charged', 'payment.declined') \
         GROUP BY aggregateid HAVING COUNT(DISTINCT source) > 1) d",
    )
    .await;
    assert_eq!(both, 0, "orders answered by both versions");
    let mismatched = scalar(
        store,
        &format!(
            "SELECT COUNT(*) FROM outbox o JOIN {PAYMENT_ROUTES} ON r.saga_id = o.aggregateid \
             WHERE o.type = 'payment.charged' AND ((r.variant = 'canary') <> (o.source = 'payment-svc-canary'))"
        ),
    )
    .await;
    assert_eq!(mismatched, 0, "replies from the version the route does not name");
    assert_guarantees(store).await;
    let metrics = system.metrics().await;
    assert!(metrics.contains(r#"handler_messages_total{service="payment-svc-canary",handler="payment.charge",variant="canary",outcome="success"}"#));
    assert!(metrics.contains(r#"variant="stable""#));
    system.stop().await;
    db.drop_database().await;
}

fn fast_analysis() -> CanaryAnalysis {
    CanaryAnalysis {
        interval: Duration::from_millis(500),
        window: Duration::from_secs(60),
        min_requests: 10,
        max_failure_rate_increase: 0.1,
        max_latency_ratio: 3.0,
        steps: vec![25.0, 50.0, 100.0],
    }
}

/// Posts orders until the canary reaches `phase` (or the time is up).
async fn drive_until(system: &System, phase: &str, limit: Duration) -> (Value, usize) {
    let started = Instant::now();
    let mut posted = 0;
    loop {
        let view = canary_view(system).await;
        if view["phase"] == phase {
            return (view, posted);
        }
        assert!(started.elapsed() < limit, "canary never reached {phase}: {view}");
        posted += post_many(system, posted, 20).await.len();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_canary_is_rolled_back_automatically() {
    let db = TempPg::create("canary_rollback").await;
    // The canary declines every payment: its failure rate is far above stable's.
    let params = json!({ "decline_above": 0 });
    let system = System::start(system_with(&db.url, Some(params), Some(fast_analysis()), 25.0)).await;
    let (view, posted) = drive_until(&system, "rolled_back", Duration::from_secs(60)).await;
    assert_eq!(view["percent"], 0.0);
    let rollback = view["events"].as_array().unwrap().iter().find(|e| e["kind"] == "rollback").cloned().unwrap();
    assert!(rollback["reason"].as_str().unwrap().contains("failure rate"), "{rollback}");
    assert_eq!(rollback["from"], 25.0);
    // chaos-svc sees the decision through the control topic.
    let control = eventually(Duration::from_secs(2), Duration::from_millis(20), async || {
        let control = system.get("/api/chaos/canary").await;
        if control["canary"]["payment"]["percent"] == 0.0 {
            Ok(control)
        } else {
            Err(format!("chaos-svc never saw the rollback: {control}"))
        }
    })
    .await;
    assert_eq!(control["canary"]["payment"]["by"], "analysis");
    // After the rollback new orders all go to stable. Orders posted before it may still be
    // routed in a transaction that decided before the rollback: they end first.
    system.wait_all_terminal(posted, Duration::from_secs(60)).await;
    let canary_routed = format!("SELECT COUNT(*) FROM {PAYMENT_ROUTES} WHERE variant = 'canary'");
    let before = scalar(system.store(), &canary_routed).await;
    let more = post_many(&system, posted, 40).await.len();
    system.wait_all_terminal(posted + more, Duration::from_secs(60)).await;
    assert_eq!(scalar(system.store(), &canary_routed).await, before);
    assert_guarantees(system.store()).await;
    system.stop().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_canary_that_never_answers_is_rolled_back_on_its_timeouts() {
    let db = TempPg::create("canary_silent").await;
    // No payment-svc-canary runs: requests sent to the canary topic are never answered. A
    // short deadline and one attempt make each such request a timeout within a second.
    let mut pipelines: Vec<Pipeline> = system_with(&db.url, None, Some(fast_analysis()), 0.0)
        .into_iter()
        .filter(|p| p.service != "payment-svc-canary")
        .collect();
    for pipeline in &mut pipelines {
        if let Some(saga) = pipeline.saga.as_mut() {
            let payment = saga.definition.steps.iter_mut().find(|s| s.name == "payment").unwrap();
            payment.timeout = Duration::from_millis(500);
            payment.retry.attempts = 1;
        }
    }
    let system = System::start(pipelines).await;
    // Stable answers first: with a deadline this short, a stable service still joining its
    // consumer group would time out too, and a canary no worse than stable is not rolled back.
    system.post_orders((0..5).map(simple_order), 5).await;
    system.wait_all_terminal(5, Duration::from_secs(60)).await;
    let change = json!({ "step": "payment", "percent": 25.0 });
    let (status, _) = system.call(Method::PUT, "/api/chaos/canary", Some(ADMIN_TOKEN), Some(change)).await;
    assert_eq!(status, 200);
    let (view, posted) = drive_until(&system, "rolled_back", Duration::from_secs(60)).await;
    assert_eq!(view["percent"], 0.0);
    let rollback = view["events"].as_array().unwrap().iter().find(|e| e["kind"] == "rollback").cloned().unwrap();
    assert!(rollback["reason"].as_str().unwrap().contains("failure rate"), "{rollback}");
    let posted = posted + 5;
    let metrics = system.metrics().await;
    assert!(
        metrics.contains(r#"saga_step_results_total{saga="order",step="payment",variant="canary",result="timeout"}"#),
        "timeouts are counted by variant"
    );
    // Every order still ends: the canary's orders are cancelled after their timeout, nothing is charged twice.
    system.wait_all_terminal(posted, Duration::from_secs(60)).await;
    let timed_out = scalar(
        system.store(),
        &format!(
            "SELECT COUNT(*) FROM orders o JOIN {PAYMENT_ROUTES} ON r.saga_id = o.id \
             WHERE r.variant = 'canary' AND o.status = 'CANCELLED'"
        ),
    )
    .await;
    let routed =
        scalar(system.store(), &format!("SELECT COUNT(*) FROM {PAYMENT_ROUTES} WHERE variant = 'canary'")).await;
    assert_eq!(timed_out, routed, "every order sent to the silent canary is cancelled");
    println!("rolled back after {posted} orders; {routed} met the silent canary: {}", rollback["reason"]);
    assert_guarantees(system.store()).await;
    system.stop().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_healthy_canary_is_promoted_step_by_step() {
    let db = TempPg::create("canary_promote").await;
    let system = System::start(system_with(&db.url, None, Some(fast_analysis()), 25.0)).await;
    let (view, posted) = drive_until(&system, "promoted", Duration::from_secs(90)).await;
    assert_eq!(view["percent"], 100.0);
    let steps: Vec<f64> = view["events"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .filter(|e| e["kind"] == "promote")
        .map(|e| e["to"].as_f64().unwrap())
        .collect();
    assert_eq!(steps, vec![50.0, 100.0]);
    system.wait_all_terminal(posted, Duration::from_secs(60)).await;
    assert_guarantees(system.store()).await;
    system.stop().await;
    db.drop_database().await;
}

/// A leased canary percentage (what a game day sets): bad leases are refused by field, and a
/// good one goes back to its `then_percent` by itself when it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leased_canary_percentage_goes_back_by_itself_and_bad_leases_are_refused() {
    let (_dir, url) = crate::support::temp_sqlite();
    let system = System::start(system_with(&url, None, None, 0.0)).await;
    system.wait_announced("orchestrator").await;
    for (body, field) in [
        (json!({ "percent": 50, "ttl": "2s" }), "then_percent"),
        (json!({ "percent": 50, "then_percent": 0 }), "then_percent"),
        (json!({ "percent": 50, "ttl": "0s", "then_percent": 0 }), "ttl"),
        (json!({ "percent": 50, "ttl": "9999d", "then_percent": 0 }), "ttl"),
        (json!({ "percent": 50, "ttl": "soon\u{0}", "then_percent": 0 }), "ttl"),
        (json!({ "percent": 50, "ttl": "2s", "then_percent": 150 }), "then_percent"),
        (json!({ "percent": 50, "ttl": "2s", "then_percent": -1 }), "then_percent"),
    ] {
        let (status, answer) =
            system.call(Method::PUT, "/api/chaos/canary", Some(ADMIN_TOKEN), Some(body.clone())).await;
        assert_eq!(status, 422, "{body} → {answer}");
        assert_eq!(answer["fields"][0]["field"], field, "{body} → {answer}");
    }
    // Twenty at once: each is answered, none with a 5xx.
    let calls = (0..20).map(|_| {
        let body = json!({ "percent": 20, "ttl": "1m", "then_percent": 0, "reason": "many" });
        system.call(Method::PUT, "/api/chaos/canary", Some(ADMIN_TOKEN), Some(body))
    });
    for (status, answer) in futures::future::join_all(calls).await {
        assert!(status.is_success(), "{status}: {answer}");
    }
    // The newest setting wins: 40% for three seconds, then 0% again.
    let body = json!({ "percent": 40, "ttl": "3s", "then_percent": 0, "reason": "leased" });
    let (status, answer) = system.call(Method::PUT, "/api/chaos/canary", Some(ADMIN_TOKEN), Some(body)).await;
    assert!(status.is_success(), "{status}: {answer}");
    assert_eq!(canary_view(&system).await["percent"], 40.0);
    // Nobody puts it back: the lease does.
    let back = eventually(Duration::from_secs(6), Duration::from_millis(100), async || {
        let view = canary_view(&system).await;
        match view["percent"].as_f64() {
            Some(0.0) => Ok(view),
            other => Err(format!("still {other:?} after the lease")),
        }
    })
    .await;
    let last = &back["events"][0];
    assert!(last["reason"].as_str().unwrap().contains("lease"), "{back}");
    system.stop().await;
}
