//! chaos-svc's REST API: tokens on every change (401/403), invalid rules refused naming the
//! field, create/update/enable/disable/delete, changes reaching another runner through the
//! control topic within a second, injections listed, leases ending a rule by themselves.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use runner::transport::Brokers;
use serde_json::{json, Value};

use crate::support::{eventually, scalar, shipped_pipelines, simple_order, System, TempPg, ADMIN_TOKEN as TOKEN};

fn rule(id: &str) -> Value {
    json!({
        "id": id,
        "target": { "kind": "handler", "handler": "payment.charge" },
        "fault": { "kind": "latency", "fixed": "1ms" },
        "ttl": "10m"
    })
}

async fn runtime_rules(system: &System) -> Vec<Value> {
    let (_, body) = system.call(Method::GET, "/api/runtime/chaos", None, None).await;
    body["rules"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_svc_manages_rules_and_reaches_other_runners() {
    let db = TempPg::create("chaos_api").await;
    let mut pipelines = shipped_pipelines(&db.url);
    for p in &mut pipelines {
        p.chaos.enabled = true;
    }
    let system = System::start(pipelines).await;
    // A second runner on the first one's broker, as another process would be (a second
    // chaos-svc: it joins no consumer group, so it does not disturb the first runner's).
    let bootstrap = system.bootstrap();
    let mut second: Vec<_> = shipped_pipelines(&db.url).into_iter().filter(|p| p.service == "chaos-svc").collect();
    second[0].broker.brokers = Brokers::List(bootstrap);
    let other = System::start(second).await;
    // Measure in steady state: the first order goes through once every consumer group settled.
    system.post_order(&simple_order(100)).await;
    system.wait_all_terminal(1, Duration::from_secs(60)).await;

    // Every changing endpoint refuses a missing token (401) and a wrong one (403).
    let changes = [
        (Method::POST, "/api/chaos/rules", Some(rule("r"))),
        (Method::PUT, "/api/chaos/rules/r", Some(rule("r"))),
        (Method::DELETE, "/api/chaos/rules/r", None),
        (Method::POST, "/api/chaos/rules/r/enable", None),
        (Method::POST, "/api/chaos/rules/r/disable", None),
        (Method::PUT, "/api/chaos/canary", Some(json!({ "percent": 10 }))),
    ];
    for (method, path, body) in &changes {
        let (status, _) = system.call(method.clone(), path, None, body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} without a token");
        let (status, _) = system.call(method.clone(), path, Some("not-the-right-token-at-all"), body.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path} with a wrong token");
    }

    // Invalid rules: 400 for malformed JSON, 422 naming each field.
    let response = system
        .client
        .post(format!("{}/api/chaos/rules", system.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let bad = json!({
        "id": "bad",
        "target": { "kind": "topic", "topic": "payment.requested" },
        "fault": { "kind": "drop" },
        "probability": 2.0,
        "ttl": "1000h"
    });
    let (status, body) = system.call(Method::POST, "/api/chaos/rules", Some(TOKEN), Some(bad)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = body["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["allow_drop", "probability"], "{body}");
    let long = json!({ "id": "long", "target": { "kind": "broker" }, "fault": { "kind": "down" }, "ttl": "1000h" });
    let (status, body) = system.call(Method::POST, "/api/chaos/rules", Some(TOKEN), Some(long)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["fields"][0]["field"], "ttl", "{body}");
    let unknown = json!({ "id": "x", "target": { "kind": "moon" }, "fault": { "kind": "error" } });
    let (status, body) = system.call(Method::POST, "/api/chaos/rules", Some(TOKEN), Some(unknown)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["fields"][0]["field"], "target.kind", "{body}");

    // Create: the other runner has the rule within a second.
    let started = Instant::now();
    let (status, created) = system.call(Method::POST, "/api/chaos/rules", Some(TOKEN), Some(rule("slow-charge"))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    println!("create answered in {:?}", started.elapsed());
    assert_eq!(created["source"], json!({ "kind": "api", "by": "operator" }));
    assert!(created["expiresAtMs"].as_i64().unwrap() > created["activatedAtMs"].as_i64().unwrap());
    eventually(Duration::from_secs(1), Duration::from_millis(10), async || {
        if runtime_rules(&other).await.iter().any(|r| r["id"] == "slow-charge") {
            Ok(())
        } else {
            Err("the other runner did not get the rule within 1 s".to_string())
        }
    })
    .await;
    println!("rule reached the other runner in {:?}", started.elapsed());
    let (status, _) = system.call(Method::POST, "/api/chaos/rules", Some(TOKEN), Some(rule("slow-charge"))).await;
    assert_eq!(status, StatusCode::CONFLICT, "a second create of the same id");

    // Injections are listed by chaos-svc, from both runners.
    for i in 0..10 {
        system.post_order(&simple_order(i)).await;
    }
    system.wait_all_terminal(11, Duration::from_secs(60)).await;
    let (_, listed) = system.call(Method::GET, "/api/chaos/injections?rule=slow-charge", None, None).await;
    let injections = listed["injections"].as_array().unwrap();
    assert!(injections.len() >= 10, "{} injections listed", injections.len());
    assert!(injections.iter().all(|i| i["fault"] == "latency" && i["key"].is_string()));

    // Disable, enable, update, delete: each reaches the other runner.
    let (status, disabled) = system.call(Method::POST, "/api/chaos/rules/slow-charge/disable", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(disabled["state"], "disabled");
    wait_for(&other, |rules| rules.iter().any(|r| r["id"] == "slow-charge" && r["state"] == "disabled")).await;
    system.call(Method::POST, "/api/chaos/rules/slow-charge/enable", Some(TOKEN), None).await;
    let mut updated = rule("slow-charge");
    updated["fault"] = json!({ "kind": "latency", "fixed": "2ms" });
    let (status, body) = system.call(Method::PUT, "/api/chaos/rules/slow-charge", Some(TOKEN), Some(updated)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "active");
    wait_for(&other, |rules| rules.iter().any(|r| r["id"] == "slow-charge" && r["rule"]["fault"]["fixed"] == "2ms"))
        .await;
    let (status, _) = system.call(Method::DELETE, "/api/chaos/rules/slow-charge", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    wait_for(&other, |rules| rules.iter().all(|r| r["id"] != "slow-charge")).await;
    let (status, _) = system.call(Method::DELETE, "/api/chaos/rules/slow-charge", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A lease ends a rule by itself.
    let mut short = rule("short-lease");
    short["ttl"] = json!("1s");
    let posted = Instant::now();
    let (status, _) = system.call(Method::POST, "/api/chaos/rules", Some(TOKEN), Some(short)).await;
    assert_eq!(status, StatusCode::CREATED);
    println!("second create answered in {:?}", posted.elapsed());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    wait_for(&other, |rules| rules.iter().any(|r| r["id"] == "short-lease" && r["state"] == "expired")).await;

    // The canary percentage is set through the API.
    let (status, body) =
        system.call(Method::PUT, "/api/chaos/canary", Some(TOKEN), Some(json!({ "percent": 150 }))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["fields"][0]["field"], "percent");
    let (status, _) = system.call(Method::PUT, "/api/chaos/canary", Some(TOKEN), Some(json!({ "percent": 20 }))).await;
    assert_eq!(status, StatusCode::OK);
    let (_, canary) = system.call(Method::GET, "/api/runtime/canary", None, None).await;
    assert_eq!(canary["canaries"][0]["percent"], 20.0);

    // Every change is in the audit trail.
    let audited = scalar(system.store(), "SELECT COUNT(*) FROM admin_audit WHERE action LIKE 'chaos.%'").await;
    assert!(audited >= 7, "{audited} audit lines");
    other.stop().await;
    system.stop().await;
    db.drop_database().await;
}

async fn wait_for(system: &System, done: impl Fn(&[Value]) -> bool) {
    eventually(Duration::from_secs(2), Duration::from_millis(20), async || {
        let rules = runtime_rules(system).await;
        if done(&rules) {
            Ok(())
        } else {
            Err(format!("not reached within 2 s: {rules:?}"))
        }
    })
    .await
}
