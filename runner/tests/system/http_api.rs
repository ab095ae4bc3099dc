//! order-api over HTTP: bad bodies, oversized bodies, unknown ids and paging — status codes
//! and the messages clients see.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{scalar, shipped_pipelines, temp_sqlite, System};

fn good_order() -> Value {
    json!({"customerId":"c-42","currency":"EUR","items":[{"sku":"SKU-1","quantity":2,"unitPrice":1999}],"shipTo":{"country":"DE"}})
}

async fn post_raw(system: &System, content_type: Option<&str>, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
    let mut request = system.client.post(format!("{}/api/orders", system.base)).body(body);
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Each case: a body, the status it must get, and a piece of the error message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_get_clear_errors() {
    let (_dir, url) = temp_sqlite();
    let system = System::start(shipped_pipelines(&url)).await;
    let with = |pointer: &str, value: Value| {
        let mut body = good_order();
        *body.pointer_mut(pointer).unwrap() = value;
        body.to_string()
    };
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("not JSON", "{\"customerId\": ".into(), 400, "malformed JSON"),
        ("trailing garbage", format!("{} x", good_order()), 400, "malformed JSON"),
        ("wrong type", with("/items/0/quantity", json!("two")), 422, "items[0].quantity"),
        (
            "missing field",
            json!({"currency":"EUR","items":[],"shipTo":{"country":"DE"}}).to_string(),
            422,
            "customerId",
        ),
        ("unknown field", with("/shipTo", json!({"country":"DE","planet":"Mars"})), 422, "planet"),
        ("bad currency", with("/currency", json!("euro")), 422, "`currency` must be an ISO 4217 code"),
        ("no items", with("/items", json!([])), 422, "`items` must hold at least one item"),
        (
            "zero quantity",
            with("/items/0/quantity", json!(0)),
            422,
            "`items[0].quantity` must be between 1 and 1000000",
        ),
        ("negative price", with("/items/0/unitPrice", json!(-1)), 422, "`items[0].unitPrice`"),
        ("bad country", with("/shipTo/country", json!("Germany")), 422, "`shipTo.country`"),
        ("empty customer", with("/customerId", json!("  ")), 422, "`customerId` must be 1 to 128 characters"),
    ];
    for (name, body, status, message) in cases {
        let (got, answer) = post_raw(&system, Some("application/json"), body).await;
        assert_eq!(got.as_u16(), status, "{name}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(message), "{name}: `{error}` should mention `{message}`");
    }
    // Every invalid field is named at once.
    let mut body = good_order();
    body["currency"] = json!("eu");
    body["shipTo"]["country"] = json!("zz");
    let (status, answer) = post_raw(&system, Some("application/json"), body.to_string()).await;
    assert_eq!(status, 422);
    let fields: Vec<&str> = answer["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["currency", "shipTo.country"]);

    let (status, answer) = post_raw(&system, Some("text/plain"), good_order().to_string()).await;
    assert_eq!(status, 415, "{answer}");
    let (status, answer) = post_raw(&system, None, good_order().to_string()).await;
    assert_eq!(status, 415, "{answer}");

    // Nothing invalid was stored.
    assert_eq!(scalar(system.store(), "SELECT COUNT(*) FROM orders").await, 0);
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_413() {
    let (_dir, url) = temp_sqlite();
    let mut pipelines = shipped_pipelines(&url);
    for p in &mut pipelines {
        if let Some(api) = &mut p.order_api {
            api.max_body_bytes = 1024;
        }
    }
    let system = System::start(pipelines).await;
    let mut body = good_order();
    body["customerId"] = json!("c".repeat(2000));
    let (status, answer) = post_raw(&system, Some("application/json"), body.to_string()).await;
    assert_eq!(status, 413, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("1024-byte limit"), "{answer}");
    // Just under the limit is fine.
    let (status, _) = post_raw(&system, Some("application/json"), good_order().to_string()).await;
    assert_eq!(status, 202);
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_orders_unknown_ids_and_paging() {
    let (_dir, url) = temp_sqlite();
    let system = System::start(shipped_pipelines(&url)).await;
    let get = async |path: String| system.call(Method::GET, &path, None, None).await;

    let response = system.client.post(format!("{}/api/orders", system.base)).json(&good_order()).send().await.unwrap();
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let first: Value = response.json().await.unwrap();
    assert_eq!(location, format!("/api/orders/{}", first["orderId"].as_str().unwrap()));
    let (status, order) = get(location.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(order["total"], 3998);
    assert!(["PENDING", "COMPLETED"].contains(&order["status"].as_str().unwrap()));
    assert!(order["history"].is_array());

    let (status, answer) = get("/api/orders/no-such-order".into()).await;
    assert_eq!(status, 404);
    assert_eq!(answer["error"], "no order with id `no-such-order`");

    let mut ids = vec![first["orderId"].as_str().unwrap().to_string()];
    for _ in 0..4 {
        ids.push(system.post_order(&good_order()).await);
    }
    system.wait_all_terminal(5, std::time::Duration::from_secs(60)).await;
    // Newest first, two per page, following nextCursor.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/orders?status=COMPLETED&limit=2&cursor={c}"),
            None => "/api/orders?status=COMPLETED&limit=2".to_string(),
        };
        let (status, page) = get(path).await;
        assert_eq!(status, 200, "{page}");
        let orders = page["orders"].as_array().unwrap();
        assert!(orders.len() <= 2);
        seen.extend(orders.iter().map(|o| o["orderId"].as_str().unwrap().to_string()));
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids);
    let (_, empty) = get("/api/orders?status=CANCELLED".into()).await;
    assert_eq!(empty["orders"], json!([]));

    for (query, message) in [
        ("status=DONE", "unknown status `DONE`"),
        ("limit=0", "limit must be a number from 1 to 500"),
        ("limit=ten", "limit must be a number"),
        ("cursor=abc", "cursor must be the nextCursor"),
        ("colour=red", "unknown query parameter `colour`"),
    ] {
        let (status, answer) = get(format!("/api/orders?{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert!(answer["error"].as_str().unwrap().contains(message), "{query}: {answer}");
    }

    let (status, health) = get("/healthz".into()).await;
    assert_eq!((status.as_u16(), health["status"].as_str()), (200, Some("ok")));
    let (status, ready) = get("/readyz".into()).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["database"], true);
    assert_eq!(ready["broker"], true);
    system.stop().await;
}

/// Hostile strings on PostgreSQL (which refuses NUL bytes in text): every one is the client's
/// mistake, answered 4xx naming the field — never a 5xx — and nothing is written. Lengths are
/// counted in characters, as documented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_strings_get_4xx_on_postgres() {
    let db = crate::support::TempPg::create("http_hostile").await;
    let system = System::start(shipped_pipelines(&db.url)).await;
    let with = |pointer: &str, value: Value| {
        let mut body = good_order();
        *body.pointer_mut(pointer).unwrap() = value;
        body.to_string()
    };
    let bodies: Vec<(&str, String, &str)> = vec![
        ("NUL in customerId", with("/customerId", json!("c-\u{0}-42")), "customerId"),
        ("NUL in a sku", with("/items/0/sku", json!("SKU-\u{0}")), "items[0].sku"),
        ("129 characters", with("/customerId", json!("é".repeat(129))), "customerId"),
    ];
    for (name, body, field) in &bodies {
        let (status, answer) = post_raw(&system, Some("application/json"), body.clone()).await;
        assert!(status.is_client_error(), "{name}: {status} {answer}");
        assert!(answer["error"].as_str().unwrap_or_default().contains(field), "{name}: {answer}");
    }
    let paths = [
        "/api/orders/%00",
        "/api/orders/x%00y",
        "/api/orders?status=%00",
        "/api/orders?%00=1",
        "/api/orders?cursor=%00",
    ];
    for path in paths {
        let (status, answer) = system.call(Method::GET, path, None, None).await;
        assert!(status.is_client_error(), "{path}: {status} {answer}");
    }
    assert_eq!(scalar(system.store(), "SELECT COUNT(*) FROM orders").await, 0, "nothing refused was written");
    // 128 two-byte characters are 128 characters: accepted.
    let (status, answer) =
        post_raw(&system, Some("application/json"), with("/customerId", json!("é".repeat(128)))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    system.stop().await;
    db.drop_database().await;
}

/// The console: a folder without a build answers every page with how to build it (not a
/// 404), a built one answers its files and its `index.html` for the app's own paths, and an
/// unknown path under `/api/` stays a JSON 404. The customer filter of the list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_or_says_how_to_build_it_and_orders_filter_by_customer() {
    let console = tempfile::tempdir().unwrap();
    // One process per test (nextest): this variable is this test's alone.
    std::env::set_var("RUNNER_CONSOLE_DIR", console.path());
    // A link that could run script is refused before anything starts, naming the variable.
    std::env::set_var("RUNNER_CONSOLE_TRACE_URL", "javascript:alert(1)//{traceId}");
    let (_dir, url) = temp_sqlite();
    let refused = runner::runtime::start(shipped_pipelines(&url), "127.0.0.1:0".parse().unwrap()).await;
    let error = refused.err().expect("a bad trace link is refused").to_string();
    assert!(error.contains("RUNNER_CONSOLE_TRACE_URL is `javascript:alert(1)//{traceId}`"), "{error}");
    std::env::set_var("RUNNER_CONSOLE_TRACE_URL", "http://jaeger:16686/trace/{traceId}");
    std::env::set_var("RUNNER_CONSOLE_GRAFANA_URL", "http://grafana:3000/");
    let system = System::start(shipped_pipelines(&url)).await;
    let get = |path: &str| system.client.get(format!("{}{path}", system.base)).send();
    let links = system.get("/api/console/settings").await;
    assert_eq!(
        links,
        json!({ "traceUrl": "http://jaeger:16686/trace/{traceId}", "grafanaUrl": "http://grafana:3000" })
    );

    let page = get("/orders/42").await.unwrap();
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    let text = page.text().await.unwrap();
    assert!(text.contains("npm --prefix ui ci &amp;&amp; npm --prefix ui run build"), "{text}");

    std::fs::write(console.path().join("index.html"), "<!doctype html><title>app</title>").unwrap();
    std::fs::create_dir(console.path().join("assets")).unwrap();
    std::fs::write(console.path().join("assets/main-abc.js"), "console.log(1)").unwrap();
    let script = get("/assets/main-abc.js").await.unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert_eq!(script.headers()["content-type"], "text/javascript; charset=utf-8");
    for app_path in ["/", "/orders", "/orders/42", "/assets/../../../etc/passwd", "/%00"] {
        let page = get(app_path).await.unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{app_path}");
        assert_eq!(page.text().await.unwrap(), "<!doctype html><title>app</title>", "{app_path}");
    }
    let api = get("/api/no-such-route").await.unwrap();
    assert_eq!(api.status(), StatusCode::NOT_FOUND);
    assert!(api.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("no route GET /api/no-such-route"));
    let (status, _) = system.call(Method::POST, "/orders", None, None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    for customer in ["alice-1", "alice-2", "bob-1"] {
        let mut order = good_order();
        order["customerId"] = json!(customer);
        system.post_order(&order).await;
    }
    let alices = system.get("/api/orders?customer=alice-").await;
    assert_eq!(alices["orders"].as_array().unwrap().len(), 2, "{alices}");
    let percent = system.get("/api/orders?customer=%25").await;
    assert_eq!(percent["orders"].as_array().unwrap().len(), 0, "no wildcard: {percent}");
    let (status, _) = system.call(Method::GET, "/api/orders?customer=%00", None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    system.running.stop().await;
}
