//! streams-analytics as the runtime drives it: a consumer stopped and started again on the same
//! state (new topics, a group with nothing committed) keeps the figures and counts every event
//! once; the routes answer by the settings in force at each request.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::windows::WindowFigures;
use super::AnalyticsStep;
use super::*;
use crate::event::Event;
use crate::slo::ObjectiveKind;
use crate::store::Store;
use crate::store::StoreConfig;
use crate::transport::Broker;
use crate::transport::BrokerConfig;

fn config(group: &str, steps: &[(&str, &str)]) -> AnalyticsConfig {
    AnalyticsConfig {
        group: group.into(),
        trigger: "order.created".into(),
        final_events: vec!["order.completed".into(), "order.cancelled".into()],
        prometheus_url: None,
        steps: steps
            .iter()
            .map(|(name, success)| AnalyticsStep {
                name: name.to_string(),
                request: format!("{name}.requested"),
                canary_topic: None,
                success: success.to_string(),
                failure: Some(format!("{name}.failed")),
            })
            .collect(),
    }
}

/// Every event of one order through payment and shipping, in the order the saga sends them.
fn order_events(order: &str) -> Vec<Event> {
    let event = |event_type: &str, payload: Value| Event::new(event_type, order, "test", payload, None);
    vec![
        event("order.created", json!({})),
        event("payment.requested", json!({})),
        event("payment.succeeded", json!({})),
        event("shipping.requested", json!({})),
        event("shipping.scheduled", json!({})),
        event("order.completed", json!({ "status": "COMPLETED" })),
    ]
}

fn results(figures: &WindowFigures, step: &str) -> u64 {
    figures
        .steps
        .iter()
        .filter(|s| s.step == step)
        .map(|s| s.outcomes.success + s.outcomes.failure + s.outcomes.no_reply)
        .sum()
}

/// The last hour's figures once `done` holds.
async fn until(state: &AnalyticsState, what: &str, done: impl Fn(&WindowFigures) -> bool) -> WindowFigures {
    let started = Instant::now();
    loop {
        let hour = state.settled_view(now_ms()).one_hour;
        if done(&hour) {
            return hour;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{what}: {hour:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_started_again_on_the_same_state_counts_each_event_once() {
    let broker = Broker::connect(&BrokerConfig {
        fetch_wait: Some(Duration::from_millis(50)),
        ..BrokerConfig::embedded_single_partition()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("analytics.db").display());
    let store = Store::connect(&StoreConfig::for_url(&url, 1).unwrap()).await.unwrap();
    let first = config("analytics-1", &[("payment", "payment.succeeded")]);
    // The same with a step more (new topics) and another group: nothing committed, so the
    // next consumer reads every topic from its start again.
    let second = config("analytics-2", &[("payment", "payment.succeeded"), ("shipping", "shipping.scheduled")]);
    broker.ensure_topics(&second.topics()).await.unwrap();
    let publisher = broker.publisher().unwrap();
    let ctx = ServiceContext::standalone("streams-analytics", store, broker.clone());
    let start = |settings: &AnalyticsSettings, state: &AnalyticsState| {
        let stop = CancellationToken::new();
        let ctx = ServiceContext { shutdown: stop.clone(), ..ctx.clone() };
        (stop, tokio::spawn(run(ctx, settings.clone(), state.clone())))
    };

    for order in ["o1", "o2"] {
        for event in order_events(order) {
            publisher.publish(&event).await.unwrap();
        }
    }
    let state = AnalyticsState::default();
    let settings = AnalyticsSettings::new(first, Vec::new());
    let (stop, task) = start(&settings, &state);
    let seen = until(&state, "two orders", |h| h.finished.completed == 2 && results(h, "payment") == 2).await;
    stop.cancel();
    task.await.unwrap().unwrap();
    let kept = state.settled_view(now_ms()).one_hour;
    assert_eq!(kept, seen, "stopping the consumer keeps the figures");
    assert_eq!((kept.started, results(&kept, "shipping")), (2, 0), "shipping is not followed yet: {kept:?}");

    settings.replace(second, Vec::new());
    for event in order_events("o3") {
        publisher.publish(&event).await.unwrap();
    }
    let (stop, task) = start(&settings, &state);
    let hour = until(&state, "the third order on every topic", |h| {
        h.started >= 3 && h.finished.completed >= 3 && results(h, "payment") >= 3 && results(h, "shipping") >= 3
    })
    .await;
    stop.cancel();
    task.await.unwrap().unwrap();
    // o1 and o2 were read twice: counted once; their shipping steps, followed now, once too.
    assert_eq!(hour.started, 3, "{hour:?}");
    assert_eq!(hour.finished.completed, 3, "{hour:?}");
    assert_eq!(hour.latency_ms.count, 3, "{hour:?}");
    assert_eq!((results(&hour, "payment"), results(&hour, "shipping")), (3, 3), "{hour:?}");
}

async fn get(base: &str, path: &str) -> Value {
    reqwest::get(format!("{base}{path}")).await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn the_routes_answer_by_the_settings_in_force() {
    let settings = AnalyticsSettings::new(config("analytics", &[]), Vec::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (app, _) = router(AnalyticsState::default(), settings.clone()).into_parts();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    assert_eq!(get(&base, "/api/slo").await, json!({ "source": "own windows", "objectives": [] }));
    let windows = get(&base, "/api/analytics/windows").await;
    let mut keys: Vec<&String> = windows.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["1h", "1m", "5m"]);
    assert_eq!(
        windows["1h"],
        json!({
            "started": 0, "finished": { "completed": 0, "cancelled": 0, "failed": 0 }, "compensationRate": null,
            "latencyMs": { "p50": null, "p95": null, "p99": null, "count": 0 },
            "byVariant": { "stable": { "completed": 0, "cancelled": 0, "failed": 0 },
                           "canary": { "completed": 0, "cancelled": 0, "failed": 0 } },
            "steps": [],
        })
    );

    // A new objective shows at once.
    let objective = Objective {
        name: "order-success".into(),
        kind: ObjectiveKind::SuccessRatio { bad_statuses: vec!["FAILED".into()] },
        objective: 0.99,
        window: Duration::from_secs(30 * 86_400),
        min_events_per_hour: 1,
        saga: "order".into(),
        description: None,
    };
    settings.replace(config("analytics", &[]), vec![objective.clone()]);
    let slo = get(&base, "/api/slo").await;
    assert_eq!(slo["objectives"][0]["name"], "order-success", "{slo}");
    assert_eq!(slo["objectives"][0]["ordersLastHour"], 0.0, "{slo}");

    // So does a Prometheus URL; one that does not answer leaves the figures empty.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut with_prometheus = config("analytics", &[]);
    with_prometheus.prometheus_url = Some(silent);
    settings.replace(with_prometheus, vec![objective]);
    let started = Instant::now();
    let slo = get(&base, "/api/slo").await;
    assert!(started.elapsed() < Duration::from_secs(3), "each query gives up within 2 s");
    assert_eq!(slo["source"], "prometheus", "{slo}");
    assert_eq!(slo["objectives"][0]["errorRatio1h"], Value::Null, "{slo}");
    assert_eq!(slo["objectives"][0]["breaching"], false, "{slo}");
    server.abort();
}
