//! One order is one trace. The services run as separate processes on PostgreSQL and a
//! Kafka-protocol broker, each exporting spans over OTLP/HTTP to a receiver inside this test;
//! the spans of an order form one connected tree across order-api, the outbox relay, the
//! orchestrator and every step's service, named by OpenTelemetry's messaging conventions.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;
use serde_json::{json, Value};

use crate::support::process::Service;
use crate::support::{eventually, TempPg};

/// A span as the receiver got it, ids in hex.
#[derive(Clone, Debug)]
struct ReceivedSpan {
    service: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    kind: i32,
    attributes: HashMap<String, String>,
}

const SERVER: i32 = 2;
const PRODUCER: i32 = 4;
const CONSUMER: i32 = 5;

type Spans = Arc<Mutex<Vec<ReceivedSpan>>>;

fn text(attributes: &[KeyValue]) -> HashMap<String, String> {
    attributes
        .iter()
        .filter_map(|kv| {
            let value = match kv.value.as_ref()?.value.as_ref()? {
                AnyValue::StringValue(s) => s.clone(),
                AnyValue::IntValue(i) => i.to_string(),
                AnyValue::BoolValue(b) => b.to_string(),
                AnyValue::DoubleValue(d) => d.to_string(),
                _ => return None,
            };
            Some((kv.key.clone(), value))
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// POST /v1/traces with a protobuf `ExportTraceServiceRequest`, as an OpenTelemetry Collector takes it.
async fn receive(State(spans): State<Spans>, body: Bytes) -> ([(&'static str, &'static str); 1], Vec<u8>) {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export request");
    let mut received = spans.lock().unwrap();
    for resource_spans in request.resource_spans {
        let resource = text(&resource_spans.resource.map(|r| r.attributes).unwrap_or_default());
        let service = resource.get("service.name").cloned().unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                received.push(ReceivedSpan {
                    service: service.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name,
                    kind: span.kind,
                    attributes: text(&span.attributes),
                });
            }
        }
    }
    ([("content-type", "application/x-protobuf")], Vec::new())
}

async fn start_receiver() -> (SocketAddr, Spans) {
    let spans: Spans = Arc::default();
    let app = Router::new().route("/v1/traces", post(receive)).with_state(spans.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, spans)
}

fn of_trace(spans: &Spans, trace_id: &str) -> Vec<ReceivedSpan> {
    spans.lock().unwrap().iter().filter(|s| s.trace_id == trace_id).cloned().collect()
}

/// Every span's parent is in the trace, but for the root, whose parent is `root_parent`
/// (the caller's span, outside the system) or none.
fn assert_connected(trace: &[ReceivedSpan], root_parent: &str) {
    let ids: HashSet<&str> = trace.iter().map(|s| s.span_id.as_str()).collect();
    let roots: Vec<&ReceivedSpan> = trace.iter().filter(|s| !ids.contains(s.parent_span_id.as_str())).collect();
    assert_eq!(roots.len(), 1, "one root expected; roots: {roots:#?}");
    assert_eq!(roots[0].parent_span_id, root_parent, "the root continues the caller's span");
    assert_eq!(roots[0].kind, SERVER, "the root is order-api's server span: {:?}", roots[0]);
}

async fn post_order(client: &reqwest::Client, api: &str, traceparent: Option<&str>) -> String {
    let body = json!({"customerId": "c-trace", "currency": "EUR",
        "items": [{"sku": "SKU-1", "quantity": 1, "unitPrice": 700}], "shipTo": {"country": "DE"}});
    let mut request = client.post(format!("{api}/api/orders")).json(&body);
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 202);
    response.json::<Value>().await.unwrap()["orderId"].as_str().unwrap().to_string()
}

async fn wait_completed(client: &reqwest::Client, api: &str, order_id: &str) {
    eventually(Duration::from_secs(60), Duration::from_millis(200), async || {
        let order: Value =
            client.get(format!("{api}/api/orders/{order_id}")).send().await.unwrap().json().await.unwrap();
        if order["status"] == "COMPLETED" {
            Ok(())
        } else {
            Err(format!("order {order_id} not completed: {order}"))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_order_is_one_connected_trace_across_every_service() {
    let db = TempPg::create("chaos_traces").await;
    let (receiver, spans) = start_receiver().await;
    let endpoint = format!("http://{receiver}");
    // The standard variable; the batch exporter sends every 200 ms instead of every 5 s.
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()), ("OTEL_BSP_SCHEDULE_DELAY", "200")];
    let mut relay = Service::start_with_env("outbox-relay.toml", &db.url, Some("embedded"), &env);
    let brokers = relay.wait_for("embedded broker:");
    relay.wait_for("listening on");
    let mut services: Vec<Service> =
        ["order-api.toml", "orchestrator.toml", "payment.toml", "inventory.toml", "shipping.toml"]
            .into_iter()
            .map(|file| Service::start_with_env(file, &db.url, Some(&brokers), &env))
            .collect();
    let api = services[0].wait_for("listening on");
    for service in &mut services[1..] {
        service.wait_for("listening on");
    }

    // The caller's own trace: the order continues it.
    let client_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let client = reqwest::Client::new();
    let traced = post_order(&client, &api, Some(&format!("00-{client_trace}-{client_span}-01"))).await;
    let untraced = post_order(&client, &api, None).await;
    wait_completed(&client, &api, &traced).await;
    wait_completed(&client, &api, &untraced).await;

    // Spans arrive in batches: wait until every service of the saga has sent its part.
    let expected: BTreeSet<&str> =
        ["order-api", "outbox-relay", "orchestrator", "payment-svc", "inventory-svc", "shipping-svc"].into();
    let deadline = Instant::now() + Duration::from_secs(30);
    let trace = loop {
        let trace = of_trace(&spans, client_trace);
        let consumed: BTreeSet<&str> = trace.iter().filter(|s| s.kind == CONSUMER).map(|s| s.name.as_str()).collect();
        let services: BTreeSet<&str> = trace.iter().map(|s| s.service.as_str()).collect();
        // Every parent arrived too: each process exports in its own batches, so a consumer's
        // span can come before the relay's producer span it continues.
        let ids: HashSet<&str> = trace.iter().map(|s| s.span_id.as_str()).collect();
        let parents_in =
            trace.iter().all(|s| s.parent_span_id == client_span || ids.contains(s.parent_span_id.as_str()));
        if services.is_superset(&expected) && consumed.contains("shipping.scheduled process") && parents_in
            || Instant::now() > deadline
        {
            break trace;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let services_seen: BTreeSet<&str> = trace.iter().map(|s| s.service.as_str()).collect();
    assert!(services_seen.is_superset(&expected), "services in the trace: {services_seen:?}; spans: {trace:#?}");
    assert_connected(&trace, client_span);

    let named = |service: &str, name: &str, kind: i32| {
        trace
            .iter()
            .find(|s| s.service == service && s.name == name && s.kind == kind)
            .unwrap_or_else(|| panic!("no `{name}` span of {service} (kind {kind}) in {trace:#?}"))
    };
    let server = named("order-api", "POST /api/orders", SERVER);
    assert_eq!(server.attributes["http.request.method"], "POST");
    assert_eq!(server.attributes["http.route"], "/api/orders");
    assert_eq!(server.attributes["http.response.status_code"], "202");
    // Each hop: the relay publishes (producer), the next service processes (consumer).
    for (topic, consumer) in [
        ("order.created", "orchestrator"),
        ("payment.requested", "payment-svc"),
        ("payment.charged", "orchestrator"),
        ("inventory.reserve.requested", "inventory-svc"),
        ("inventory.reserved", "orchestrator"),
        ("shipping.schedule.requested", "shipping-svc"),
        ("shipping.scheduled", "orchestrator"),
    ] {
        let publish = named("outbox-relay", &format!("{topic} publish"), PRODUCER);
        let process = named(consumer, &format!("{topic} process"), CONSUMER);
        assert_eq!(process.parent_span_id, publish.span_id, "{topic}: the consumer continues the producer's span");
        for span in [publish, process] {
            assert_eq!(span.attributes["messaging.system"], "kafka");
            assert_eq!(span.attributes["messaging.destination.name"], topic);
        }
        assert_eq!(publish.attributes["messaging.operation.type"], "send");
        assert_eq!(process.attributes["messaging.operation.type"], "process");
        assert!(process.attributes.contains_key("messaging.consumer.group.name"));
        assert!(process.attributes.contains_key("messaging.kafka.offset"));
    }
    // The first publish hangs off the HTTP request that wrote the outbox row.
    assert_eq!(named("outbox-relay", "order.created publish", PRODUCER).parent_span_id, server.span_id);

    // The other order is a trace of its own, started at order-api.
    let other_trace = {
        let all = spans.lock().unwrap();
        all.iter()
            .find(|s| s.kind == SERVER && s.trace_id != client_trace && s.name == "POST /api/orders")
            .map(|s| s.trace_id.clone())
            .expect("the second order's server span")
    };
    // Its spans too come in batches: wait until every parent of it arrived.
    let deadline = Instant::now() + Duration::from_secs(30);
    let other = loop {
        let other = of_trace(&spans, &other_trace);
        let ids: HashSet<&str> = other.iter().map(|s| s.span_id.as_str()).collect();
        let roots = other.iter().filter(|s| !ids.contains(s.parent_span_id.as_str())).count();
        let reached_shipping = other.iter().any(|s| s.service == "shipping-svc" && s.kind == CONSUMER);
        if roots == 1 && reached_shipping || Instant::now() > deadline {
            break other;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_connected(&other, "");
    assert!(other.iter().any(|s| s.service == "shipping-svc"), "the second trace reaches shipping too");
    assert!(other.iter().all(|s| s.span_id != server.span_id));
    println!(
        "order {traced}: {} spans in one trace over {} services; order {untraced}: {} spans",
        trace.len(),
        services_seen.len(),
        other.len()
    );

    for service in services.iter_mut().chain(std::iter::once(&mut relay)) {
        assert!(service.terminate().success(), "{} did not stop cleanly", service.name);
    }
    db.drop_database().await;
}
