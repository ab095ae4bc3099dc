//! Each fault kind against the shipped system on PostgreSQL: its effect shows, and the
//! guarantees hold (every order terminal, money and stock conserved, nothing FAILED).

use std::time::{Duration, Instant};

use runner::chaos::{compile_rule, stable_share, ChaosSettings, RuleSpec};
use runner::config::Pipeline;
use serde_json::Value;

use crate::support::{assert_guarantees, read_topic, scalar, shipped_pipelines, simple_order, System, TempPg};

/// The shipped system with chaos on everywhere and `rules` in force (declared in the
/// order-api file: rules apply by target, wherever they are declared in the process).
fn with_rules(url: &str, rules: &[&str], allow_crash: bool) -> Vec<Pipeline> {
    let compiled: Vec<_> = rules
        .iter()
        .map(|text| {
            let spec: RuleSpec = toml::from_str(text).expect("rule shape");
            compile_rule(&spec).expect("valid rule")
        })
        .collect();
    let mut pipelines = shipped_pipelines(url);
    for pipeline in &mut pipelines {
        let rules = if pipeline.service == "order-api" { compiled.clone() } else { Vec::new() };
        pipeline.chaos = ChaosSettings { enabled: true, allow_crash, rules };
        // Fewer, faster retries and shorter step timeouts keep the runs short.
        for consumer in &mut pipeline.consumers {
            consumer.retry.attempts = 2;
            consumer.retry.backoff = Duration::from_millis(50);
            consumer.retry.max_backoff = Duration::from_millis(200);
        }
        if let Some(saga) = &mut pipeline.saga {
            for step in &mut saga.definition.steps {
                step.timeout = Duration::from_secs(6);
                step.retry.backoff = Duration::from_millis(200);
            }
        }
    }
    pipelines
}

async fn injections(system: &System, rule: &str) -> Vec<Value> {
    let body = system.get("/api/runtime/chaos").await;
    body["injections"].as_array().unwrap().iter().filter(|i| i["rule"] == rule).cloned().collect()
}

async fn status_of(system: &System, id: &str) -> (String, Option<String>) {
    let row = sqlx::query("SELECT status, reason FROM orders WHERE id = $1")
        .bind(id)
        .fetch_one(system.store().pool())
        .await
        .unwrap();
    use sqlx::Row;
    (row.get(0), row.get(1))
}

/// Runs `count` orders under `rules`, waits for every one to end, checks the guarantees.
async fn run(name: &str, rules: &[&str], count: usize) -> (TempPg, System, Vec<String>) {
    run_with(name, rules, count, |_| {}).await
}

/// As [`run`], with `adjust` applied to the pipelines first.
async fn run_with(
    name: &str,
    rules: &[&str],
    count: usize,
    adjust: impl FnOnce(&mut Vec<runner::config::Pipeline>),
) -> (TempPg, System, Vec<String>) {
    let db = TempPg::create(name).await;
    let mut pipelines = with_rules(&db.url, rules, false);
    adjust(&mut pipelines);
    let system = System::start(pipelines).await;
    let ids = system.post_orders((0..count).map(simple_order), 1).await;
    system.wait_all_terminal(count, Duration::from_secs(90)).await;
    assert_guarantees(system.store()).await;
    (db, system, ids)
}

async fn finish(db: TempPg, system: System) {
    system.stop().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn latency_on_a_handler_slows_it_and_every_order_completes() {
    let rule = r#"id = "slow-charge"
target = { kind = "handler", handler = "payment.charge" }
fault = { kind = "latency", fixed = "100ms", jitter = "20ms" }"#;
    let started = Instant::now();
    // The charge consumer takes one message at a time here, so the delays add up.
    let one_at_a_time = |pipelines: &mut Vec<runner::config::Pipeline>| {
        for consumer in pipelines.iter_mut().flat_map(|p| p.consumers.iter_mut()) {
            consumer.max_in_flight = 1;
        }
    };
    let (db, system, ids) = run_with("chaos_latency", &[rule], 20, one_at_a_time).await;
    let elapsed = started.elapsed();
    let hits = injections(&system, "slow-charge").await;
    assert_eq!(hits.len(), 20, "one delay per charge request");
    assert!(hits.iter().all(|h| h["detail"].as_str().unwrap().trim_end_matches(" ms").parse::<u64>().unwrap() >= 100));
    // One consumer handles charges one at a time: 20 delays of at least 100 ms.
    assert!(elapsed >= Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(
        scalar(system.store(), "SELECT COUNT(*) FROM orders WHERE status = 'COMPLETED'").await,
        ids.len() as i64
    );
    finish(db, system).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn errors_on_a_sample_of_orders_dead_letter_and_compensate_exactly_those() {
    let rule = r#"id = "failing-charge"
target = { kind = "handler", handler = "payment.charge" }
fault = { kind = "error", message = "card processor unreachable" }
key_sample = 0.3"#;
    let (db, system, ids) = run("chaos_error", &[rule], 40).await;
    let sampled: Vec<&String> = ids.iter().filter(|id| stable_share("chaos", id) < 0.3).collect();
    assert!(!sampled.is_empty() && sampled.len() < ids.len());
    for id in &ids {
        let (status, reason) = status_of(&system, id).await;
        if sampled.contains(&id) {
            assert_eq!(status, "CANCELLED", "{id}");
            assert!(reason.unwrap_or_default().contains("payment"), "{id}");
        } else {
            assert_eq!(status, "COMPLETED", "{id}: not in the blast radius");
        }
    }
    // Every attempt of a sampled order failed: 2 attempts each, then a dead letter.
    assert_eq!(injections(&system, "failing-charge").await.len(), sampled.len() * 2);
    let dead = scalar(system.store(), "SELECT COUNT(*) FROM orders WHERE status = 'CANCELLED'").await;
    assert_eq!(dead, sampled.len() as i64);
    finish(db, system).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicates_on_both_sides_are_absorbed() {
    let consume = r#"id = "dup-reserve"
target = { kind = "topic", topic = "inventory.reserve.requested" }
fault = { kind = "duplicate" }"#;
    let produce = r#"id = "dup-publish"
target = { kind = "topic", topic = "payment.requested", side = "produce" }
fault = { kind = "duplicate" }"#;
    let (db, system, ids) = run("chaos_duplicate", &[consume, produce], 30).await;
    assert_eq!(injections(&system, "dup-reserve").await.len(), 30);
    assert!(injections(&system, "dup-publish").await.len() >= 30);
    let store = system.store();
    assert_eq!(scalar(store, "SELECT COUNT(*) FROM orders WHERE status = 'COMPLETED'").await, ids.len() as i64);
    // Each reservation was made once although its request was handled twice.
    assert_eq!(scalar(store, "SELECT COUNT(*) FROM reservations WHERE reserved_at_ms IS NOT NULL").await, 30);
    // The second copy of each request was answered from the inbox with the recorded reply.
    assert!(scalar(store, "SELECT COUNT(*) FROM outbox WHERE type = 'inventory.reserved'").await >= 60);
    finish(db, system).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropped_messages_are_recovered_by_the_saga_timeout() {
    let rule = r#"id = "lose-shipping"
target = { kind = "topic", topic = "shipping.schedule.requested" }
fault = { kind = "drop" }
allow_drop = true
max_count = 5"#;
    let (db, system, ids) = run("chaos_drop", &[rule], 20).await;
    assert_eq!(injections(&system, "lose-shipping").await.len(), 5, "max_count bounds the drops");
    let store = system.store();
    assert_eq!(scalar(store, "SELECT COUNT(*) FROM orders WHERE status = 'COMPLETED'").await, ids.len() as i64);
    // The five sagas whose request was dropped asked again after the step timeout.
    let retried = scalar(store, "SELECT COUNT(*) FROM saga_history WHERE action = 'timed out'").await;
    assert!(retried >= 5, "{retried} timeouts");
    finish(db, system).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn corrupt_payloads_become_dead_letters_and_the_saga_compensates() {
    let rule = r#"id = "poison"
target = { kind = "topic", topic = "inventory.reserve.requested" }
fault = { kind = "corrupt" }
key_sample = 0.25"#;
    let (db, system, ids) = run("chaos_corrupt", &[rule], 40).await;
    let sampled: Vec<&String> = ids.iter().filter(|id| stable_share("chaos", id) < 0.25).collect();
    for id in &ids {
        let (status, _) = status_of(&system, id).await;
        let want = if sampled.contains(&id) { "CANCELLED" } else { "COMPLETED" };
        assert_eq!(status, want, "{id}");
    }
    // The poison requests are on the dead-letter topic, marked undecodable.
    let dead = read_topic(&system.bootstrap(), "inventory.reserve.requested.dlq").await;
    assert_eq!(dead.len(), sampled.len());
    finish(db, system).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_errors_and_latency_on_order_api() {
    let status = r#"id = "api-503"
target = { kind = "http", service = "order-api", route = "/api/orders" }
fault = { kind = "http_status", status = 503 }
probability = 0.5"#;
    let slow = r#"id = "api-slow"
target = { kind = "http", service = "order-api" }
fault = { kind = "latency", fixed = "150ms" }"#;
    let db = TempPg::create("chaos_http").await;
    let system = System::start(with_rules(&db.url, &[status, slow], false)).await;
    let (mut accepted, mut refused) = (0, 0);
    for i in 0..30 {
        let started = Instant::now();
        let response =
            system.client.post(format!("{}/api/orders", system.base)).json(&simple_order(i)).send().await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(150), "every request is delayed");
        match response.status().as_u16() {
            202 => accepted += 1,
            503 => {
                assert_eq!(response.headers()["x-chaos-injected"], "http_status");
                refused += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(accepted > 0 && refused > 0, "{accepted} accepted, {refused} refused");
    assert_eq!(injections(&system, "api-503").await.len(), refused);
    // A refused request wrote nothing; every accepted one completes.
    let statuses = system.wait_all_terminal(accepted, Duration::from_secs(60)).await;
    assert_eq!(statuses.len(), accepted);
    assert_guarantees(system.store()).await;
    finish(db, system).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_errors_and_latency_are_waited_out() {
    // Every payment transaction fails for the rule's first 3 s (a fault drawn per transaction
    // with a probability could miss the few grouped ones by chance): orders wait it out.
    let errors = r#"id = "db-flaky"
target = { kind = "store", service = "payment-svc" }
fault = { kind = "error" }
ttl = "3s""#;
    let slow = r#"id = "db-slow"
target = { kind = "store", service = "inventory-svc" }
fault = { kind = "latency", min = "20ms", max = "60ms" }"#;
    let (db, system, ids) = run("chaos_store", &[errors, slow], 30).await;
    assert!(!injections(&system, "db-flaky").await.is_empty());
    // The latency strikes every transaction of inventory-svc: at least one per group commit.
    let metrics = system.metrics().await;
    let transactions: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("consumer_transaction_messages_count{consumer=\"inventory-svc/"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    let slowed = injections(&system, "db-slow").await.len();
    assert!(transactions >= 1.0 && slowed as f64 >= transactions, "{slowed} delays, {transactions} transactions");
    // An unavailable database is retried until it answers: nothing is dead-lettered.
    assert_eq!(
        scalar(system.store(), "SELECT COUNT(*) FROM orders WHERE status = 'COMPLETED'").await,
        ids.len() as i64
    );
    finish(db, system).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_latency_and_a_broker_outage() {
    let slow = r#"id = "broker-slow"
target = { kind = "broker" }
fault = { kind = "latency", fixed = "50ms" }"#;
    let db = TempPg::create("chaos_broker").await;
    let system = System::start(with_rules(&db.url, &[slow], false)).await;
    // The outage window is set once the system runs (as a reload would), 1 s to 5 s from now.
    let down = format!(
        r#"id = "broker-down"
target = {{ kind = "broker" }}
fault = {{ kind = "down" }}
start = "{}"
end = "{}""#,
        time_in(Duration::from_secs(1)),
        time_in(Duration::from_secs(5))
    );
    let rules = [slow, down.as_str()]
        .iter()
        .map(|text| compile_rule(&toml::from_str::<RuleSpec>(text).unwrap()).unwrap())
        .collect();
    system.running.chaos.set_service("order-api", ChaosSettings { enabled: true, allow_crash: false, rules });
    // Orders keep coming through the outage: order-api only needs the database.
    let started = Instant::now();
    let mut ids = Vec::new();
    while started.elapsed() < Duration::from_secs(8) {
        ids.push(system.post_order(&simple_order(ids.len())).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    system.wait_all_terminal(ids.len(), Duration::from_secs(120)).await;
    assert_guarantees(system.store()).await;
    let down_hits = injections(&system, "broker-down").await;
    assert_eq!(down_hits.len(), 1, "the outage started once");
    assert_eq!(injections(&system, "broker-slow").await.len(), 1);
    // With 6 s step timeouts some sagas may give up during the outage and are compensated
    // (CANCELLED, never FAILED); the rest complete.
    let completed = scalar(system.store(), "SELECT COUNT(*) FROM orders WHERE status = 'COMPLETED'").await;
    let cancelled = scalar(system.store(), "SELECT COUNT(*) FROM orders WHERE status = 'CANCELLED'").await;
    assert_eq!(completed + cancelled, ids.len() as i64);
    assert!(completed > 0, "{completed} completed, {cancelled} cancelled");
    finish(db, system).await;
}

fn time_in(delay: Duration) -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now() + delay).to_string()
}

/// A rule that answers 503 on every route of chaos-svc (and another delaying them by an hour)
/// cannot lock chaos-svc out of its own API: its routes are exempt from HTTP faults, so the
/// rules are listed and deleted like any other. The same rule still strikes other services.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_rules_cannot_lock_chaos_svc_out_of_removing_them() {
    let (_dir, url) = crate::support::temp_sqlite();
    let system = System::start(with_rules(&url, &[], false)).await;
    for (id, service, fault) in [
        ("lockout", "chaos-svc", serde_json::json!({ "kind": "http_status", "status": 503 })),
        ("freeze", "chaos-svc", serde_json::json!({ "kind": "latency", "fixed": "1h" })),
        ("api-down", "order-api", serde_json::json!({ "kind": "http_status", "status": 503 })),
    ] {
        let rule = serde_json::json!({ "id": id, "ttl": "10m", "target": { "kind": "http", "service": service }, "fault": fault });
        system.create_rule(&rule).await;
    }
    // The fault is in force: order-api answers 503.
    let (status, _) = system.call(reqwest::Method::GET, "/api/orders", None, None).await;
    assert_eq!(status, 503, "the order-api rule strikes");
    let (status, list) = system.call(reqwest::Method::GET, "/api/chaos/rules", None, None).await;
    assert_eq!(status, 200, "{list}");
    for id in ["lockout", "freeze", "api-down"] {
        let path = format!("/api/chaos/rules/{id}");
        let (status, answer) =
            system.call(reqwest::Method::DELETE, &path, Some(crate::support::ADMIN_TOKEN), None).await;
        assert!(status.is_success(), "deleting {id}: {status} {answer}");
    }
    let (status, _) = system.call(reqwest::Method::GET, "/api/orders", None, None).await;
    assert_eq!(status, 200, "the fault ended with its rule");
    system.stop().await;
}

/// chaos-svc keeps at most 200 rules in force: the next create is a clear 409 saying what to
/// do, and deleting one makes room again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_number_of_rules_is_capped() {
    let (_dir, url) = crate::support::temp_sqlite();
    let system = System::start(with_rules(&url, &[], false)).await;
    let rule = |i: usize| {
        serde_json::json!({ "id": format!("r{i}"), "ttl": "10m", "enabled": false,
            "target": { "kind": "handler", "handler": "payment.charge" }, "fault": { "kind": "error" } })
    };
    let max = runner::chaos::MAX_CONTROL_RULES;
    for batch in (0..max).collect::<Vec<_>>().chunks(20) {
        let rules: Vec<serde_json::Value> = batch.iter().map(|i| rule(*i)).collect();
        futures::future::join_all(rules.iter().map(|r| system.create_rule(r))).await;
    }
    let (status, answer) = system
        .call(reqwest::Method::POST, "/api/chaos/rules", Some(crate::support::ADMIN_TOKEN), Some(rule(max)))
        .await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("the most chaos-svc keeps is 200"), "{answer}");
    let (status, _) =
        system.call(reqwest::Method::DELETE, "/api/chaos/rules/r0", Some(crate::support::ADMIN_TOKEN), None).await;
    assert!(status.is_success());
    system.create_rule(&rule(max)).await;
    system.stop().await;
}

/// A rule or canary change naming nothing that runs is refused, naming what does run; valid
/// names are taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_and_canary_changes_naming_nothing_are_refused_with_what_exists() {
    use reqwest::Method;
    use serde_json::json;
    let (_dir, url) = crate::support::temp_sqlite();
    let system = System::start(with_rules(&url, &[], false)).await;
    let token = Some(crate::support::ADMIN_TOKEN);
    let cases = [
        (json!({ "kind": "handler", "handler": "paymnet.charge" }), "target.handler", "payment.charge"),
        (json!({ "kind": "handler", "handler": "charge", "service": "inventory-svc" }), "target.handler", "reserve"),
        (json!({ "kind": "service", "service": "payment" }), "target.service", "payment-svc"),
        (json!({ "kind": "store", "service": "nobody" }), "target.service", "orchestrator"),
        (json!({ "kind": "topic", "topic": "payment.requestd" }), "target.topic", "payment.requested"),
    ];
    let mut refused = 0;
    for (target, field, listed) in cases {
        let rule = json!({ "id": "typo", "ttl": "10m", "target": target, "fault": { "kind": "error" } });
        let (status, answer) = system.call(Method::POST, "/api/chaos/rules", token, Some(rule)).await;
        assert_eq!(status, 422, "{target}: {answer}");
        assert_eq!(answer["fields"][0]["field"], field, "{answer}");
        assert!(answer["fields"][0]["message"].as_str().unwrap().contains(listed), "{answer}");
        refused += 1;
    }
    let (status, answer) =
        system.call(Method::PUT, "/api/chaos/canary", token, Some(json!({ "step": "nonsense", "percent": 10 }))).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["fields"][0]["field"], "step", "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("steps with a canary: payment"), "{answer}");
    refused += 1;
    println!("rules and canary changes refused: {refused}");
    // The names that exist are taken.
    for (id, target) in [
        ("h", json!({ "kind": "handler", "handler": "charge", "service": "payment-svc" })),
        ("t", json!({ "kind": "topic", "topic": "payment.requested" })),
        ("s", json!({ "kind": "store", "service": "orchestrator" })),
    ] {
        system
            .create_rule(
                &json!({ "id": id, "ttl": "10m", "enabled": false, "target": target, "fault": { "kind": "error" } }),
            )
            .await;
    }
    let (status, answer) =
        system.call(Method::PUT, "/api/chaos/canary", token, Some(json!({ "step": "payment", "percent": 10 }))).await;
    assert_eq!(status, 200, "{answer}");
    system.stop().await;
}

/// A broker outage must end by itself (a lease of at most ten minutes), and deleting it
/// while the broker is down works: this runner ends it before the tombstone travels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_is_a_lease_and_can_be_deleted_while_the_broker_is_down() {
    use reqwest::Method;
    use serde_json::json;
    let (_dir, url) = crate::support::temp_sqlite();
    let system = System::start(with_rules(&url, &[], false)).await;
    let token = Some(crate::support::ADMIN_TOKEN);
    let broker_down = |id: &str, ttl: &str| json!({ "id": id, "ttl": ttl, "target": { "kind": "broker" }, "fault": { "kind": "down" } });
    let (status, answer) = system.call(Method::POST, "/api/chaos/rules", token, Some(broker_down("long", "11m"))).await;
    assert_eq!(status, 422, "{answer}");
    assert!(answer["fields"][0]["message"].as_str().unwrap().contains("must end by itself"), "{answer}");

    let ready = async |want: bool| {
        crate::support::eventually(Duration::from_secs(30), Duration::from_millis(50), async || {
            let (_, ready) = system.call(Method::GET, "/readyz", None, None).await;
            if ready["broker"] == want {
                Ok(())
            } else {
                Err(format!("broker not {want}: {ready}"))
            }
        })
        .await
    };
    // Deleted while down.
    system.create_rule(&broker_down("outage", "5m")).await;
    ready(false).await;
    let started = Instant::now();
    let (status, answer) = system.call(Method::DELETE, "/api/chaos/rules/outage", token, None).await;
    assert_eq!(status, 204, "{answer}");
    ready(true).await;
    println!("broker outage deleted while down; broker back after {:?}", started.elapsed());
    // Right after an outage the control follower re-reads the control topic (chaos-svc
    // answers 202, written but not yet back, meanwhile): wait until a change comes back.
    let back = Instant::now();
    let probe = json!({ "id": "probe", "ttl": "10m", "enabled": false,
        "target": { "kind": "service", "service": "payment-svc" }, "fault": { "kind": "error" } });
    let (status, answer) = system.call(Method::POST, "/api/chaos/rules", token, Some(probe)).await;
    assert!(status == 201 || status == 202, "{status}: {answer}");
    crate::support::eventually(Duration::from_secs(60), Duration::from_millis(100), async || {
        let rules = system.get("/api/runtime/chaos").await;
        let seen = rules["rules"].as_array().unwrap().iter().any(|r| r["id"] == "probe");
        if seen {
            Ok(())
        } else {
            Err("the control follower never caught up after the outage".to_string())
        }
    })
    .await;
    println!("the control follower was following again {:?} after the broker came back", back.elapsed());
    // Left alone, the lease ends it.
    system.create_rule(&broker_down("short", "5s")).await;
    ready(false).await;
    let started = Instant::now();
    ready(true).await;
    println!("a 5 s broker outage ended by its lease after {:?} down", started.elapsed());
    system.stop().await;
}
