//! Metric names and the Prometheus exporter: every metric the runner emits is named here,
//! with bounded labels only (service, mode, topic — never an order id).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub const CONSUMER_RETRIES: &str = "consumer_retries_total";
pub const DEAD_LETTERS: &str = "dead_letters_total";
/// Messages an observer (streams-analytics) could not use and skipped, by topic and kind.
pub const MESSAGES_SKIPPED: &str = "consumer_messages_skipped_total";
/// Admin requests refused for a missing, malformed or unknown token (`reason`).
pub const ADMIN_REQUESTS_DENIED: &str = "admin_requests_denied_total";
/// dlq-admin: entries by dead-letter topic and state (`new`, `replayed`, `discarded`).
pub const DLQ_ENTRIES: &str = "dlq_entries";
pub const DLQ_ENTRIES_INGESTED: &str = "dlq_entries_ingested_total";
/// dlq-admin: messages replayed, by original topic.
pub const DLQ_REPLAYS: &str = "dlq_replays_total";
/// dlq-admin: single replays refused (discarded entry, replay limit, no original topic).
pub const DLQ_REPLAYS_REFUSED: &str = "dlq_replays_refused_total";
pub const DLQ_DISCARDS: &str = "dlq_discards_total";
pub const RELAY_EVENTS_PUBLISHED: &str = "relay_events_published_total";
pub const RELAY_PUBLISH_ERRORS: &str = "relay_publish_errors_total";
pub const RELAY_COMMIT_TO_ACK_SECONDS: &str = "relay_commit_to_ack_seconds";
pub const RELAY_LAG_SECONDS: &str = "relay_lag_seconds";
pub const RELAY_SLOT_LAG_BYTES: &str = "relay_slot_lag_bytes";
pub const RELAY_SLOT_RETAINED_WAL_BYTES: &str = "relay_slot_retained_wal_bytes";
pub const RELAY_SLOT_LOST: &str = "relay_slot_lost";
pub const RELAY_RECONNECTS: &str = "relay_reconnects_total";
pub const RELAY_OUTBOX_BACKLOG: &str = "relay_outbox_backlog";
/// Producers that failed fatally (e.g. an idempotent producer the broker forgot) and were replaced.
pub const PRODUCER_REBUILDS: &str = "transport_producer_rebuilds_total";
/// Times a consumer lost every broker connection and paused until the broker was back, by consumer.
pub const BROKER_LOSSES: &str = "transport_broker_losses_total";

/// Chaos: every injection, by service, rule and fault.
pub const CHAOS_INJECTIONS: &str = "chaos_injections_total";
/// Messages a `drop` fault acknowledged without handling, by consumer.
pub const CHAOS_DROPPED: &str = "chaos_messages_dropped_total";
/// Reloads of a pipeline file, by service and result (`applied`, `unchanged`, `rejected`, `restart_required`).
pub const CONFIG_RELOADS: &str = "runner_config_reloads_total";
/// Restarts of a supervised part, by `part` and `cause` (`panic`, `error`, `ended`).
pub const PART_RESTARTS: &str = "runner_part_restarts_total";
/// 1 while a supervised part runs, 0 while it waits to restart (`part`).
pub const PART_UP: &str = "runner_part_up";
/// The share of a saga step's requests sent to the canary, by step (0 to 100).
pub const CANARY_PERCENT: &str = "canary_percent";
/// Requests of a canary step by variant (`stable`, `canary`).
pub const CANARY_REQUESTS: &str = "canary_requests_total";
/// Outcomes of a canary step's requests by variant and result (`success`, `failure`).
pub const CANARY_OUTCOMES: &str = "canary_outcomes_total";
/// Decisions of the canary analysis (`promote`, `hold`, `rollback`, `complete`).
pub const CANARY_DECISIONS: &str = "canary_decisions_total";
/// Handled messages by service, handler, variant and outcome (`success`, `refused`, `error`).
pub const HANDLER_MESSAGES: &str = "handler_messages_total";
/// Time to handle one message, by service, handler and variant.
pub const HANDLER_DURATION_SECONDS: &str = "handler_duration_seconds";

/// Sagas that ended, by saga and status (`COMPLETED`, `CANCELLED`, `FAILED`).
pub const SAGAS_FINISHED: &str = "saga_finished_total";
/// Time from a saga's trigger to its end, by saga and status: the order's end-to-end latency.
pub const SAGA_DURATION_SECONDS: &str = "saga_duration_seconds";
/// Buckets of [`SAGA_DURATION_SECONDS`]; latency objectives must name one of them.
pub const SAGA_DURATION_BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0];
/// Time from a step's latest request to its answer, by saga, step and variant.
pub const SAGA_STEP_DURATION_SECONDS: &str = "saga_step_duration_seconds";
/// Step requests by saga, step, variant and result: `success`, `failure` (refused or
/// dead-lettered), `timeout` (no answer before the deadline; each timed-out attempt counts).
pub const SAGA_STEP_RESULTS: &str = "saga_step_results_total";
/// Compensations started, by saga and step.
pub const SAGA_COMPENSATIONS: &str = "saga_compensations_total";

/// Saga instances by state (`running`, `compensating`, `completed`, …), sampled periodically.
pub const SAGAS: &str = "sagas";
/// HTTP requests by service, route (the route pattern, never an id), method and status.
pub const HTTP_REQUESTS: &str = "http_requests_total";
/// HTTP request duration by service, route and method.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";

/// Time from a record's timestamp (taken when it was produced) to its consumer taking it,
/// by consumer: the broker hop, fetch wait included.
pub const CONSUMER_DELIVERY_SECONDS: &str = "consumer_delivery_seconds";
/// Time from a consumer taking a message to finishing it (handler, retries, dead letter),
/// by consumer.
pub const CONSUMER_HANDLE_SECONDS: &str = "consumer_handle_seconds";

/// Messages handled in one database transaction (a group commit), by consumer.
pub const TRANSACTION_MESSAGES: &str = "consumer_transaction_messages";
/// Groups rolled back because one message failed (each was then handled alone), by consumer.
pub const GROUP_COMMITS_SPLIT: &str = "consumer_group_commits_split_total";

/// Messages a consumer group has yet to handle, by group, topic and partition.
pub const CONSUMER_LAG: &str = "consumer_lag";

/// streams-analytics: request-to-reply latency of a saga step, by step and variant.
pub const ANALYTICS_STEP_LATENCY_SECONDS: &str = "analytics_step_latency_seconds";
/// streams-analytics: step requests by step, variant and outcome (`success`, `failure`, `no_reply`).
pub const ANALYTICS_STEP_RESULTS: &str = "analytics_step_results_total";
/// streams-analytics: orders finished in a window by the variant they met and outcome.
pub const ANALYTICS_WINDOW_ORDERS_BY_VARIANT: &str = "analytics_window_orders_by_variant";
/// streams-analytics: share of a step's requests in a window that failed or got no reply.
pub const ANALYTICS_WINDOW_STEP_FAILURE_RATIO: &str = "analytics_window_step_failure_ratio";
/// streams-analytics: a step's request-to-reply latency quantiles in a window.
pub const ANALYTICS_WINDOW_STEP_LATENCY_SECONDS: &str = "analytics_window_step_latency_seconds";
/// streams-analytics: orders seen starting (`order.created`).
pub const ANALYTICS_ORDERS_STARTED: &str = "analytics_orders_started_total";
/// streams-analytics: orders seen finishing, by outcome.
pub const ANALYTICS_ORDERS_FINISHED: &str = "analytics_orders_finished_total";
/// streams-analytics: end-to-end latency from `order.created` to the final event.
pub const ANALYTICS_ORDER_LATENCY_SECONDS: &str = "analytics_order_latency_seconds";
/// streams-analytics: orders in the last `window` (1m, 5m, 1h) by outcome (and `started`).
pub const ANALYTICS_WINDOW_ORDERS: &str = "analytics_window_orders";
/// streams-analytics: share of finished orders compensated, per window.
pub const ANALYTICS_WINDOW_COMPENSATION_RATIO: &str = "analytics_window_compensation_ratio";
/// streams-analytics: end-to-end latency quantiles (p50, p95, p99) per window.
pub const ANALYTICS_WINDOW_LATENCY_SECONDS: &str = "analytics_window_latency_seconds";

/// When this process started (first call; `main` calls it at once).
pub fn process_started() -> std::time::Instant {
    static STARTED: OnceLock<std::time::Instant> = OnceLock::new();
    *STARTED.get_or_init(std::time::Instant::now)
}

/// Default bucket boundaries (seconds) of every duration histogram: handler and step
/// durations, HTTP requests, analytics latencies.
pub const DURATION_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Bucket boundaries (seconds) of the per-hop histograms: a hop costs milliseconds.
pub const HOP_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// The process-wide Prometheus recorder, installed on first use.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        // Every histogram is exported with buckets (aggregatable across instances, and
        // `histogram_quantile` works in dashboards); some get boundaries of their own.
        let recorder = PrometheusBuilder::new()
            .set_buckets(DURATION_BUCKETS)
            .expect("valid buckets")
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(RELAY_COMMIT_TO_ACK_SECONDS.to_string()),
                &[0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
            )
            .expect("valid buckets")
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(CONSUMER_DELIVERY_SECONDS.to_string()),
                HOP_BUCKETS,
            )
            .expect("valid buckets")
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(CONSUMER_HANDLE_SECONDS.to_string()),
                HOP_BUCKETS,
            )
            .expect("valid buckets")
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(TRANSACTION_MESSAGES.to_string()),
                &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0],
            )
            .expect("valid buckets")
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(SAGA_DURATION_SECONDS.to_string()),
                SAGA_DURATION_BUCKETS,
            )
            .expect("valid buckets")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (tests start many systems in one process).
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// `/metrics` in the Prometheus text format.
pub async fn metrics_endpoint() -> String {
    prometheus().render()
}

/// Middleware counting every request of a service's routes by route pattern and status.
pub async fn http_metrics(
    axum::extract::State(service): axum::extract::State<String>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().as_str().to_string();
    let started = std::time::Instant::now();
    // A server span per request (scrapes and probes aside), child of the caller's traceparent.
    let span = if route == "/metrics" || route.starts_with("/health") || route.starts_with("/ready") {
        tracing::Span::none()
    } else {
        let span = tracing::info_span!(
            "request",
            otel.name = format!("{method} {route}"),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            http.request.method = method.as_str(),
            http.route = route.as_str(),
            url.path = request.uri().path(),
            http.response.status_code = tracing::field::Empty,
            service = service.as_str(),
        );
        let parent = request.headers().get("traceparent").and_then(|v| v.to_str().ok());
        crate::traces::set_parent(&span, parent);
        span
    };
    let response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    if response.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    let labels = [("service", service), ("route", route), ("method", method)];
    metrics::histogram!(HTTP_REQUEST_DURATION_SECONDS, &labels).record(started.elapsed().as_secs_f64());
    let mut with_status = labels.to_vec();
    with_status.push(("status", response.status().as_u16().to_string()));
    metrics::counter!(HTTP_REQUESTS, &with_status).increment(1);
    response
}
