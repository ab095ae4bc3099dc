//! Hot reload while orders flow: a chaos rule and a canary percentage changed in the files
//! take effect with no restart; an invalid edit and a change that needs a restart are refused
//! and the running config stays; no message is lost or handled twice.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::support::{
    append, assert_guarantees, edit, eventually, scalar, shipped_copy, simple_order, System, TempPg, PAYMENT_ROUTES,
};

async fn status(system: &System, service: &str) -> Value {
    let body = system.get("/api/runtime/config").await;
    body["services"].as_array().unwrap().iter().find(|s| s["service"] == service).cloned().unwrap()
}

/// Waits until the service's last reload result is `result`; returns its status.
async fn reloaded(system: &System, service: &str, result: &str, count: u64) -> Value {
    eventually(Duration::from_secs(10), Duration::from_millis(50), async || {
        let status = status(system, service).await;
        if status["lastResult"] == result && status["reloads"][result].as_u64().unwrap_or(0) >= count {
            Ok(status)
        } else {
            Err(format!("{service} never reported {result}: {status}"))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reload_applies_chaos_and_canary_changes_while_orders_flow() {
    let db = TempPg::create("hot_reload").await;
    let (_root, dir) = shipped_copy();
    let system = Arc::new(System::start_watched(&dir, &db.url).await);

    // Orders flow the whole time: 300 orders at about 50 per second.
    let poster = {
        let system = system.clone();
        tokio::spawn(async move {
            for i in 0..300 {
                system.post_order(&simple_order(i)).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;

    // A chaos rule appears in payment.toml: every charge is delayed a little.
    let payment = dir.join("payment.toml");
    append(
        &payment,
        "\n[[chaos.rules]]\nid = \"reloaded-latency\"\ntarget = { kind = \"handler\", handler = \"payment.charge\" }\n\
         fault = { kind = \"latency\", fixed = \"5ms\" }\n",
    );
    let applied = reloaded(&system, "payment-svc", "applied", 1).await;
    assert_eq!(applied["lastChanges"], "chaos");
    // The canary percentage changes in orchestrator.toml.
    edit(&dir.join("orchestrator.toml"), "percent = 0", "percent = 50");
    let applied = reloaded(&system, "orchestrator", "applied", 1).await;
    assert_eq!(applied["lastChanges"], "canary");
    let first_hash = applied["hash"].clone();

    // An invalid edit is refused with file:line:column; the running config stays.
    edit(&dir.join("orchestrator.toml"), "percent = 50", "percent = \"half\"");
    let rejected = reloaded(&system, "orchestrator", "rejected", 1).await;
    let error = rejected["lastError"].as_str().unwrap();
    assert!(error.contains("orchestrator.toml:") && error.contains("percent"), "{error}");
    assert_eq!(rejected["hash"], first_hash, "the running config's hash is kept");
    // A change that cannot be applied live is refused, saying a restart is needed.
    edit(&dir.join("inventory.toml"), "[[consumers]]", "[broker]\npartitions = 7\n\n[[consumers]]");
    let refused = reloaded(&system, "inventory-svc", "restart_required", 1).await;
    assert!(refused["lastError"].as_str().unwrap().contains("[broker]"), "{refused}");
    // A handler parameter change rebuilds that consumer alone.
    edit(&payment, "decline_above = 500000", "decline_above = 400000");
    let applied = reloaded(&system, "payment-svc", "applied", 2).await;
    assert_eq!(applied["lastChanges"], "consumer charge rebuilt");

    poster.await.unwrap();
    system.wait_all_terminal(300, Duration::from_secs(120)).await;
    let store = system.store();
    assert_guarantees(store).await;
    // Both changes took effect: delays on charges, and canary traffic after the edit.
    let chaos = system.get("/api/runtime/chaos").await;
    let delays = chaos["injections"].as_array().unwrap().iter().filter(|i| i["rule"] == "reloaded-latency").count();
    assert!(delays > 0);
    let canary = scalar(store, &format!("SELECT COUNT(*) FROM {PAYMENT_ROUTES} WHERE variant = 'canary'")).await;
    assert!(canary > 0, "no canary traffic after the percentage changed");
    // The rejected edit did not stop the canary: it kept its 50 %.
    let view = system.get("/api/runtime/canary").await;
    assert_eq!(view["canaries"][0]["percent"], 50.0);
    // Nothing lost, nothing handled twice: one payment answer per order, from one service.
    let answers =
        scalar(store, "SELECT COUNT(*) FROM outbox WHERE type IN ('payment.charged', 'payment.declined')").await;
    assert_eq!(answers, 300, "payment answers for 300 orders");
    Arc::try_unwrap(system).ok().unwrap().stop().await;
    db.drop_database().await;
}

/// The 1h success count of one step and variant in streams-analytics' windows.
async fn step_successes(system: &System, step: &str) -> u64 {
    let windows = system.get("/api/analytics/windows").await;
    windows["1h"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["step"] == step)
        .map(|s| s["outcomes"]["success"].as_u64().unwrap())
        .sum()
}

/// The objective named `name` in the SLO view.
async fn objective(system: &System, name: &str) -> Value {
    let slo = system.get("/api/slo").await;
    slo["objectives"].as_array().unwrap().iter().find(|o| o["name"] == name).cloned().unwrap()
}

/// Edits of `[[slo.objectives]]`, `[analytics]` and `[[analytics.steps]]` reach the running
/// streams-analytics (its SLO view and its windows), a change of its consumer group is refused
/// as needing a restart, and no edit of a file's text is ever reported as "unchanged".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reload_applies_analytics_and_slo_edits() {
    let db = TempPg::create("hot_reload_analytics").await;
    let (_root, dir) = shipped_copy();
    let system = System::start_watched(&dir, &db.url).await;
    let file = dir.join("streams-analytics.toml");
    let service = "streams-analytics";

    system.post_orders((0..10).map(simple_order), 5).await;
    system.wait_all_terminal(10, Duration::from_secs(60)).await;
    let before = objective(&system, "order-success").await;
    assert_eq!(before["objective"], 0.95, "{before}");
    assert_eq!(system.get("/api/slo").await["source"], "own windows");

    // [[slo.objectives]]: the SLO view answers the new target.
    edit(&file, "objective = 0.95", "objective = 0.97");
    let applied = reloaded(&system, service, "applied", 1).await;
    assert_eq!(applied["lastChanges"], "slo objectives");
    assert_eq!(objective(&system, "order-success").await["objective"], 0.97);

    // [analytics]: with a Prometheus named, the SLO view asks it (here one that is not there).
    edit(&file, "# prometheus_url = \"http://prometheus:9090\"", "prometheus_url = \"http://127.0.0.1:9\"");
    let applied = reloaded(&system, service, "applied", 2).await;
    assert_eq!(applied["lastChanges"], "analytics");
    assert_eq!(system.get("/api/slo").await["source"], "prometheus");
    edit(&file, "prometheus_url = \"http://127.0.0.1:9\"", "# prometheus_url = \"http://prometheus:9090\"");
    reloaded(&system, service, "applied", 3).await;
    assert_eq!(system.get("/api/slo").await["source"], "own windows");

    // [[analytics.steps]]: without the shipping step, shipping replies are no longer counted,
    // while payment (followed by the rebuilt consumer) goes on counting.
    let shipping_step = "[[analytics.steps]]\nname = \"shipping\"\nrequest = \"shipping.schedule.requested\"\n\
                         success = \"shipping.scheduled\"\nfailure = \"shipping.rejected\"\n";
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(shipping_step), "the shipped file lists the shipping step");
    std::fs::write(&file, text.replace(shipping_step, "")).unwrap();
    let applied = reloaded(&system, service, "applied", 4).await;
    assert_eq!(applied["lastChanges"], "analytics");
    let (payments, shipments) = (step_successes(&system, "payment").await, step_successes(&system, "shipping").await);
    assert_eq!((payments, shipments), (10, 10), "every step of the first 10 orders counted");
    system.post_orders((10..20).map(simple_order), 5).await;
    system.wait_all_terminal(20, Duration::from_secs(60)).await;
    eventually(Duration::from_secs(20), Duration::from_millis(100), async || {
        let payments = step_successes(&system, "payment").await;
        if payments == 20 {
            Ok(())
        } else {
            Err(format!("payment successes {payments}, expected 20"))
        }
    })
    .await;
    assert_eq!(step_successes(&system, "shipping").await, 10, "shipping is no longer measured");

    // A comment-only edit changes no setting: applied, and said so — never "unchanged".
    append(&file, "\n# measured steps end here\n");
    let applied = reloaded(&system, service, "applied", 5).await;
    assert_eq!(applied["lastChanges"], "no setting changed (comments or layout only)");

    // The consumer group is where the figures resume from: a change needs a restart.
    edit(&file, "[analytics]\n", "[analytics]\ngroup = \"analytics-2\"\n");
    let refused = reloaded(&system, service, "restart_required", 1).await;
    let error = refused["lastError"].as_str().unwrap();
    assert!(error.contains("the consumer group of [analytics]"), "{error}");
    assert_eq!(objective(&system, "order-success").await["objective"], 0.97, "the running config stays");
    assert!(refused["reloads"].get("unchanged").is_none(), "a changed file reported unchanged: {refused}");

    system.stop().await;
    db.drop_database().await;
}
