//! Metric names and the Prometheus exporter: every metric the runner emits is named here,
//! with bounded labels only (service, mode, topic — never an order id).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub const CONSUMER_RETRIES: &str = "consumer_retries_total";
pub const DEAD_LETTERS: &str = "dead_letters_total";
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

/// When this process started (first call; `main` calls it at once).
pub fn process_started() -> std::time::Instant {
    static STARTED: OnceLock<std::time::Instant> = OnceLock::new();
    *STARTED.get_or_init(std::time::Instant::now)
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(RELAY_COMMIT_TO_ACK_SECONDS.to_string()),
                &[0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
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
