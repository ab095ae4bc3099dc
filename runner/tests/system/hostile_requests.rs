//! A corpus of hostile requests sent to every route the runner serves (read from its own
//! route table, so a new route is covered the day it is added): NUL bytes and absurd
//! lengths in paths, queries and bodies, malformed and wrong-shaped JSON, wrong media types,
//! wrong methods, hostile order fields. Any 5xx fails the test; the counts are printed.
//! Runs on PostgreSQL (where a NUL byte in a text value is an error) and on SQLite.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::database::TempPg;
use crate::support::system::System;
use crate::support::{shipped_pipelines, temp_sqlite, ADMIN_TOKEN};

/// Values a path segment takes (already percent-encoded where a URL needs it).
fn hostile_segments() -> Vec<String> {
    vec![
        "x".into(),
        "%00".into(),
        "a%00b".into(),
        "%FF%FE".into(),
        "..%2F..%2Fetc%2Fpasswd".into(),
        "%E2%80%8B".into(),    // zero-width space
        "%F0%9F%98%80".into(), // an emoji
        "'%20OR%201=1%20--".into(),
        "-1".into(),
        "99999999999999999999999999".into(),
        "a".repeat(8_000),
        "0b7e3c52-6f0e-4c0a-9d61-3b1f6f0f3f11".into(), // a well-formed id nobody has
    ]
}

/// Query strings for every route (lists read `limit`, `cursor` and filters).
fn hostile_queries() -> Vec<String> {
    vec![
        "limit=-1".into(),
        "limit=0".into(),
        "limit=99999999999999999999999".into(),
        "limit=1e3".into(),
        "cursor=%00".into(),
        "cursor=not-a-cursor".into(),
        format!("cursor={}", "9".repeat(5_000)),
        "status=%00".into(),
        "status=PENDING%00".into(),
        "customer=%00".into(),
        format!("customer={}", "c".repeat(10_000)),
        "topic=%00&kind=%00&state=%00&q=%00".into(),
        "since=-99999999999999999999&until=abc".into(),
        "window=%00".into(),
        "rule=%00".into(),
        "unknown=1".into(),
        "limit=1&limit=2".into(),
        "%00=%00".into(),
    ]
}

/// (content type, body) pairs for every route that takes one.
fn hostile_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let everything_nul = json!({
        "id": "\u{0}", "part": "\u{0}", "step": "\u{0}", "percent": "\u{0}", "reason": "\u{0}",
        "payload": "\u{0}", "topic": "\u{0}", "kind": "\u{0}", "state": "\u{0}", "dryRun": "\u{0}",
        "ids": ["\u{0}"], "filter": { "topic": "\u{0}" }, "target": { "kind": "\u{0}" }, "fault": { "kind": "\u{0}" },
        "customerId": "\u{0}", "items": "\u{0}", "currency": "\u{0}", "shipTo": "\u{0}",
    });
    let absurd_numbers = json!({
        "percent": 1e308, "limit": -1, "ttl": "99999999999years", "probability": -0.0,
        "maxReplays": 18446744073709551615u64, "items": [{ "sku": "A", "quantity": 1e300, "unitPrice": -5 }],
    });
    vec![
        ("application/json", Vec::new()),
        ("application/json", b"{".to_vec()),
        ("application/json", b"null".to_vec()),
        ("application/json", b"[]".to_vec()),
        ("application/json", b"\"text\"".to_vec()),
        ("application/json", b"1e99999".to_vec()),
        ("application/json", b"{\"a\":1,\"a\":2}".to_vec()),
        ("application/json", nested.into_bytes()),
        ("application/json", b"\xff\xfe{}".to_vec()),
        ("application/json", b"{\"id\":\"\\ud800\"}".to_vec()),
        ("application/json", everything_nul.to_string().into_bytes()),
        ("application/json", absurd_numbers.to_string().into_bytes()),
        ("application/json", format!("{{\"id\":\"{}\"}}", "x".repeat(1_500_000)).into_bytes()),
        ("text/plain", b"{}".to_vec()),
        ("application/x-www-form-urlencoded", b"a=b".to_vec()),
        ("application/json; charset=latin1", b"{}".to_vec()),
        ("", b"{}".to_vec()),
    ]
}

/// Order bodies whose fields are hostile one at a time (the business write open to anyone).
fn hostile_orders() -> Vec<Value> {
    let valid = json!({
        "customerId": "customer-1", "currency": "EUR", "shipTo": { "country": "DE" },
        "items": [{ "sku": "SKU-1", "quantity": 1, "unitPrice": 100 }]
    });
    let strings = ["\u{0}", "a\u{0}b", "\u{200b}", "\u{202e}evil", "", " ", &"x".repeat(100_000), "😀", "\u{feff}"];
    let mut orders = Vec::new();
    for s in strings {
        for pointer in ["/customerId", "/currency", "/shipTo/country", "/items/0/sku"] {
            let mut order = valid.clone();
            *order.pointer_mut(pointer).unwrap() = json!(s);
            orders.push(order);
        }
    }
    for n in [json!(-1), json!(0), json!(1e300), json!(18446744073709551615u64), json!(1.5), json!("1")] {
        for pointer in ["/items/0/quantity", "/items/0/unitPrice"] {
            let mut order = valid.clone();
            *order.pointer_mut(pointer).unwrap() = n.clone();
            orders.push(order);
        }
    }
    let mut many = valid.clone();
    many["items"] = json!(vec![valid["items"][0].clone(); 10_000]);
    orders.push(many);
    orders.push(json!({ "customerId": ["customer-1"] }));
    orders
}

/// Sends the corpus to every route; returns requests sent per route and every 5xx seen.
async fn send_corpus(system: &System) -> (BTreeMap<String, usize>, Vec<String>) {
    // A fresh connection per request: a server may close a connection whose request body it
    // refused unread, and a pooled connection's next request must not be blamed for that.
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).pool_max_idle_per_host(0).build().unwrap();
    let table = system.get("/api/runtime/routes").await;
    let routes = table["routes"].as_array().expect("the route table").clone();
    let mut sent: BTreeMap<String, usize> = BTreeMap::new();
    let mut errors = Vec::new();
    // A request that got no answer at all counts as a failure too (the status says which).
    let mut check = |route: &str, what: String, status: Result<StatusCode, String>| {
        *sent.entry(route.to_string()).or_default() += 1;
        match status {
            Ok(status) if status.is_server_error() => errors.push(format!("{route}: {what} -> {status}")),
            Ok(_) => {}
            // The server answered before reading a body it will not take (too large, or a
            // route that reads none) and closed: the client's write fails. That is a refusal.
            Err(e) if e.contains("BodyWrite") => {}
            Err(e) => errors.push(format!("{route}: {what} -> no answer: {e}")),
        }
    };
    for route in &routes {
        let method = Method::from_bytes(route["method"].as_str().unwrap().as_bytes()).unwrap();
        let template = route["path"].as_str().unwrap();
        let name = format!("{method} {template}");
        // `/api/runtime/parts/panic` is walked too: no hostile body names a real part.
        let paths: Vec<String> = if template.contains("{id}") {
            hostile_segments().iter().map(|s| template.replace("{id}", s)).collect()
        } else {
            vec![template.to_string()]
        };
        for path in &paths {
            for token in [None, Some(ADMIN_TOKEN)] {
                for query in std::iter::once(String::new()).chain(hostile_queries()) {
                    let url = if query.is_empty() {
                        format!("{}{path}", system.base)
                    } else {
                        format!("{}{path}?{query}", system.base)
                    };
                    let mut request = client.request(method.clone(), &url);
                    if let Some(token) = token {
                        request = request.bearer_auth(token);
                    }
                    let status = request.send().await.map(|r| r.status()).map_err(|e| format!("{e:?}"));
                    check(&name, format!("{url:.200} token={}", token.is_some()), status);
                }
            }
            if method != Method::GET {
                for (content_type, body) in hostile_bodies() {
                    let mut request = client
                        .request(method.clone(), format!("{}{path}", system.base))
                        .bearer_auth(ADMIN_TOKEN)
                        .body(body.clone());
                    if !content_type.is_empty() {
                        request = request.header(CONTENT_TYPE, content_type);
                    }
                    let status = request.send().await.map(|r| r.status()).map_err(|e| format!("{e:?}"));
                    let shown = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
                    check(&name, format!("{path:.100} {content_type} {shown}"), status);
                }
            }
        }
        // A method the route does not take.
        let wrong = if method == Method::GET { Method::PATCH } else { Method::TRACE };
        let status = client
            .request(wrong.clone(), format!("{}{}", system.base, template.replace("{id}", "x")))
            .send()
            .await
            .map(|r| r.status())
            .map_err(|e| format!("{e:?}"));
        check(&name, format!("{wrong} instead of {method}"), status);
    }
    for order in hostile_orders() {
        let status = client
            .post(format!("{}/api/orders", system.base))
            .json(&order)
            .send()
            .await
            .map(|r| r.status())
            .map_err(|e| format!("{e:?}"));
        check("POST /api/orders", format!("{:.200}", order.to_string()), status);
    }
    (sent, errors)
}

async fn corpus_gets_no_5xx(system: System, store: &str) {
    let (sent, errors) = send_corpus(&system).await;
    let total: usize = sent.values().sum();
    for (route, count) in &sent {
        println!("{store}: {count:>5} hostile requests to {route}");
    }
    println!("{store}: {total} hostile requests to {} routes, {} answered 5xx", sent.len(), errors.len());
    assert!(sent.len() >= 25, "every route was reached: {sent:?}");
    assert!(errors.is_empty(), "{} requests answered 5xx:\n{}", errors.len(), errors.join("\n"));
    // And the system still works.
    let (status, ready) = system.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_requests_to_every_route_get_no_5xx_on_postgres() {
    let pg = TempPg::create("hostile").await;
    let system = System::start(shipped_pipelines(&pg.url)).await;
    corpus_gets_no_5xx(system, "postgres").await;
    pg.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_requests_to_every_route_get_no_5xx_on_sqlite() {
    let (_dir, url) = temp_sqlite();
    let system = System::start(shipped_pipelines(&url)).await;
    corpus_gets_no_5xx(system, "sqlite").await;
}
