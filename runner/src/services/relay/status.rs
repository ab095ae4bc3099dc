//! What the relay reports about itself: `GET /api/relay/status` (slot, lag, published count,
//! last error, commit-to-ack latency percentiles) and the matching metrics.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::{Extension, Json};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};

use crate::admin::{Admin, AdminConfig, AdminTokens};
use crate::event::now_ms;
use crate::http::Routes;

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotState {
    pub name: String,
    pub publication: String,
    pub confirmed_lsn: Option<String>,
    pub lag_bytes: Option<i64>,
    pub retained_wal_bytes: Option<i64>,
    pub wal_status: Option<String>,
    pub active: Option<bool>,
    pub lost: bool,
    pub retained_wal_over_limit: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RelayState {
    pub mode: String,
    pub started_at_ms: i64,
    /// Milliseconds from start to the first replication stream (WAL mode).
    pub start_to_streaming_ms: Option<i64>,
    pub published_total: u64,
    pub lag_seconds: f64,
    pub in_flight_rows: usize,
    pub reconnects: u64,
    pub last_error: Option<String>,
    pub last_error_at_ms: Option<i64>,
    pub last_published_at_ms: Option<i64>,
    pub slot: Option<SlotState>,
    #[serde(skip)]
    latency_micros: Histogram<u64>,
}

/// Shared between the relay's tasks and its HTTP routes.
#[derive(Clone)]
pub struct RelayStatus(Arc<Mutex<RelayState>>);

impl RelayStatus {
    pub fn new(mode: &str) -> Self {
        RelayStatus(Arc::new(Mutex::new(RelayState {
            mode: mode.to_string(),
            started_at_ms: now_ms(),
            start_to_streaming_ms: None,
            published_total: 0,
            lag_seconds: 0.0,
            in_flight_rows: 0,
            reconnects: 0,
            last_error: None,
            last_error_at_ms: None,
            last_published_at_ms: None,
            slot: None,
            latency_micros: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"),
        })))
    }

    pub fn update<R>(&self, f: impl FnOnce(&mut RelayState) -> R) -> R {
        let mut state = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut state)
    }

    pub fn error(&self, message: impl Into<String>) {
        let message = message.into();
        tracing::warn!(error = message, "relay error");
        self.update(|s| {
            s.last_error = Some(message);
            s.last_error_at_ms = Some(now_ms());
        });
    }

    /// A row acknowledged by the broker, `latency_micros` after its commit.
    pub fn published(&self, latency_micros: Option<u64>) {
        let now = now_ms();
        self.update(|s| {
            s.published_total += 1;
            s.last_published_at_ms = Some(now);
            if let Some(micros) = latency_micros {
                let _ = s.latency_micros.record(micros.max(1));
            }
        });
        if let Some(micros) = latency_micros {
            metrics::histogram!(crate::telemetry::RELAY_COMMIT_TO_ACK_SECONDS).record(micros as f64 / 1e6);
        }
    }

    pub fn snapshot(&self) -> Value {
        self.update(|s| {
            let h = &s.latency_micros;
            let ms = |q: f64| if h.is_empty() { Value::Null } else { json!(h.value_at_quantile(q) as f64 / 1000.0) };
            let mut value = serde_json::to_value(&*s).unwrap_or_default();
            value["commitToAckMs"] = json!({
                "count": h.len(),
                "p50": ms(0.50),
                "p95": ms(0.95),
                "p99": ms(0.99),
                "max": if h.is_empty() { Value::Null } else { json!(h.max() as f64 / 1000.0) },
            });
            value
        })
    }
}

/// `GET /status` and `POST /status/reset-latency` (admin token), mounted under `/api/relay`.
pub fn router(status: RelayStatus, admin: &AdminConfig) -> Routes {
    Routes::new()
        .get("/status", |State(s): State<RelayStatus>| async move { Json(s.snapshot()) })
        .admin_post("/status/reset-latency", |_: Admin, State(s): State<RelayStatus>| async move {
            s.update(|state| state.latency_micros.reset());
            Json(json!({ "reset": true }))
        })
        .with_state(status)
        .map(|routes| routes.layer(Extension(AdminTokens::new(admin))))
}
