//! No part dies silently and no write goes unguarded: every supervised part of the shipped
//! system is made to panic and must come back (counted, named, shown by `/readyz`) while
//! orders keep flowing; and the route table is walked so that every route that changes
//! something refuses a caller without the admin token.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::database::TempPg;
use crate::support::system::System;
use crate::support::{eventually, shipped_pipelines, simple_order, temp_sqlite, ADMIN_TOKEN};

/// Supervised parts by name: (up, restarts).
async fn parts(system: &System) -> BTreeMap<String, (bool, u64)> {
    let answer = system.get("/api/runtime/parts").await;
    answer["parts"]
        .as_object()
        .expect("a parts object")
        .iter()
        .map(|(name, p)| (name.clone(), (p["up"].as_bool().unwrap(), p["restarts"].as_u64().unwrap())))
        .collect()
}

async fn request_panic(system: &System, part: &str) {
    let (status, answer) =
        system.call(Method::POST, "/api/runtime/parts/panic", Some(ADMIN_TOKEN), Some(json!({ "part": part }))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "panic of {part}: {answer}");
}

/// Waits until `part` runs again after at least `restarts` restarts.
async fn wait_back(system: &System, part: &str, restarts: u64) {
    eventually(Duration::from_secs(20), Duration::from_millis(20), async || match parts(system).await.get(part) {
        Some(&(true, n)) if n >= restarts => Ok(()),
        other => Err(format!("{part} not back after {restarts} restart(s): {other:?}")),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_part_panics_and_comes_back_while_orders_flow() {
    let pg = TempPg::create("supervision").await;
    let system = System::start(shipped_pipelines(&pg.url)).await;
    system.wait_relay_ready("wal").await;

    let before = parts(&system).await;
    // What the shipped system runs: each kind of part the issue names.
    for wanted in [
        "payment-svc/consumer charge",
        "inventory-svc/consumer reserve",
        "shipping-svc/consumer schedule",
        "orchestrator/saga",
        "orchestrator/saga timer",
        "outbox-relay/relay",
        "outbox-relay/slot monitor",
        "dlq-admin/dead-letter ingest",
        "streams-analytics/analytics",
        "streams-analytics/analytics export",
        "streams-analytics/analytics history",
        "chaos-svc/injections",
        "chaos control",
        "injection reporter",
        "broker faults",
    ] {
        assert!(before.contains_key(wanted), "no part {wanted} among {:?}", before.keys());
    }
    assert!(before.values().all(|&(up, restarts)| up && restarts == 0), "{before:?}");

    // Parts an attempt of another part starts (the saga timer, the slot monitor, the
    // analytics export and history) are started anew with their parent: panic them before
    // their parent.
    let children = ["saga timer", "slot monitor", "analytics export", "analytics history", "canary analysis"];
    let mut names: Vec<&String> = before.keys().collect();
    names.sort_by_key(|name| !children.iter().any(|c| name.ends_with(c)));
    let mut panicked = 0;
    for name in names {
        request_panic(&system, name).await;
        wait_back(&system, name, 1).await;
        panicked += 1;
    }
    println!("parts panicked and restarted: {panicked}");

    let metrics = system.metrics().await;
    let counted = metrics
        .lines()
        .filter(|l| l.starts_with("runner_part_restarts_total{") && l.contains("cause=\"panic\""))
        .count();
    assert!(counted >= panicked - children.len(), "restart counters:\n{metrics}");

    // A part that keeps failing waits longer each time, and `/readyz` says so meanwhile.
    let part = "payment-svc/consumer charge";
    let restarts = parts(&system).await[part].1;
    for n in 1..=4 {
        request_panic(&system, part).await;
        wait_back(&system, part, restarts + n).await;
    }
    request_panic(&system, part).await; // the fifth in a row waits 3.2 s
    let (status, ready) = eventually(Duration::from_secs(5), Duration::from_millis(20), async || {
        let (status, ready) = system.call(Method::GET, "/readyz", None, None).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            Ok((status, ready))
        } else {
            Err(format!("still ready: {ready}"))
        }
    })
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready["partsDown"], json!([part]), "{ready}");
    assert!(ready["parts"][part]["lastFailure"].as_str().unwrap().contains("panic requested"), "{ready}");
    eventually(Duration::from_secs(10), Duration::from_millis(50), async || {
        let (status, ready) = system.call(Method::GET, "/readyz", None, None).await;
        if status == StatusCode::OK {
            Ok(())
        } else {
            Err(format!("not ready again: {ready}"))
        }
    })
    .await;

    // Every restarted part does its work: orders still end.
    system.post_orders((0..20).map(simple_order), 10).await;
    let statuses = system.wait_all_terminal(20, Duration::from_secs(60)).await;
    assert!(statuses.iter().all(|(_, s)| s == "COMPLETED"), "{statuses:?}");
    system.stop().await;
    pg.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_state_changing_route_needs_the_admin_token() {
    let (_dir, url) = temp_sqlite();
    let system = System::start(shipped_pipelines(&url)).await;
    let table = system.get("/api/runtime/routes").await;
    let routes = table["routes"].as_array().expect("a route list").clone();
    assert!(routes.len() >= 25, "{table}");

    let mut walked = 0;
    let mut public = Vec::new();
    for route in &routes {
        let method = Method::from_bytes(route["method"].as_str().unwrap().as_bytes()).unwrap();
        let path = route["path"].as_str().unwrap().replace("{id}", "0b7e3c52-6f0e-4c0a-9d61-3b1f6f0f3f11");
        let access = route["access"].as_str().unwrap();
        match (method == Method::GET, access) {
            (true, "read") => {
                let (status, answer) = system.call(method, &path, None, None).await;
                assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN && !status.is_server_error(),
                    "GET {path} without a token: {status} {answer}"
                );
            }
            (false, "admin") => {
                let (status, answer) = system.call(method.clone(), &path, None, Some(json!({}))).await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} without a token: {answer}");
                let (status, answer) = system.call(method.clone(), &path, Some("wrong"), Some(json!({}))).await;
                assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path} with a wrong token: {answer}");
            }
            (false, "public") => public.push(format!("{method} {path}")),
            other => panic!("{method} {path}: a {other:?} route; reads are GET, writes are admin or public"),
        }
        walked += 1;
    }
    // The one write open to anyone: placing an order. Another needs a decision here.
    assert_eq!(public, ["POST /api/orders"]);
    let admin_routes: Vec<&str> =
        routes.iter().filter(|r| r["access"] == "admin").map(|r| r["path"].as_str().unwrap()).collect();
    assert!(admin_routes.contains(&"/api/relay/status/reset-latency"), "{admin_routes:?}");
    assert!(admin_routes.contains(&"/api/runtime/parts/panic"), "{admin_routes:?}");
    println!("routes walked: {walked}, admin: {}, public: {}", admin_routes.len(), public.len());

    // With the token the relay's reset is taken.
    let (status, answer) = system.call(Method::POST, "/api/relay/status/reset-latency", Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!({ "reset": true }));
    system.stop().await;
}
