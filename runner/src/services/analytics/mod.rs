//! streams-analytics (ADR-0004): follows the saga's trigger, final and step events and keeps
//! windowed figures (1 minute, 5 minutes, 1 hour) — orders started and finished by outcome and
//! by canary variant, compensation rate, end-to-end latency, and per step and variant the
//! replies and request-to-reply latency — exported to Prometheus, and serves the SLO view in
//! one call (`GET /api/slo`) and the figures (`GET /api/analytics/windows`).
//!
//! `windows` computes the figures (pure), `export` writes them to Prometheus, `slo` builds the
//! SLO view. This module is the service: the consumer task [`run`], the [`router`], the figures
//! they share ([`AnalyticsState`]) and the settings in force ([`AnalyticsSettings`]).

mod config;
mod export;
mod history;
mod slo;
mod windows;

#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use axum::extract::State;
use axum::Json;
use serde_json::Value;

use super::{delivery_policy, ServiceContext};
use crate::event::now_ms;
use crate::http::Routes;
use crate::saga::canary::Variant;
use crate::slo::Objective;
use crate::supervise;
use crate::transport::{consume, DeliveryPolicy, Incoming, TransportError};
pub use config::{AnalyticsConfig, AnalyticsStep};
use windows::{Observation, OrderStatus, StepOutcome, Windows, WindowsView};

/// The settings streams-analytics works by: `[analytics]` with its steps, and the objectives.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub config: AnalyticsConfig,
    pub objectives: Vec<Objective>,
}

/// The settings in force, shared by the consumer and the routes; a reload replaces them and
/// every reader sees the new ones on its next message or request. (The exporter needs none:
/// it writes out the figures the windows hold.)
#[derive(Debug, Clone)]
pub struct AnalyticsSettings(Arc<RwLock<Arc<Settings>>>);

impl AnalyticsSettings {
    pub fn new(config: AnalyticsConfig, objectives: Vec<Objective>) -> Self {
        AnalyticsSettings(Arc::new(RwLock::new(Arc::new(Settings { config, objectives }))))
    }

    /// Puts new settings in force.
    pub fn replace(&self, config: AnalyticsConfig, objectives: Vec<Objective>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(Settings { config, objectives });
    }

    /// The settings in force now.
    pub fn snapshot(&self) -> Arc<Settings> {
        self.0.read().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// The figures, shared by the consumer, the exporter and the routes, and the SLO view's
/// history. They outlive a consumer: a consumer started again on the same state goes on
/// counting, each event id once.
#[derive(Clone, Default)]
pub struct AnalyticsState {
    windows: Arc<Mutex<Windows>>,
    history: history::SharedHistory,
}

impl AnalyticsState {
    fn windows(&self) -> MutexGuard<'_, Windows> {
        self.windows.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Settles the steps left unanswered (counting them) and returns every window's figures.
    fn settled_view(&self, now_ms: i64) -> WindowsView {
        let (settled, view) = {
            let mut windows = self.windows();
            let settled = windows.settle(now_ms);
            (settled, windows.view(now_ms))
        };
        export::count(&settled);
        view
    }
}

/// Follows the trigger, final and step events until `ctx.shutdown`, and refreshes the window
/// gauges meanwhile. The group and topics are those in force at the start: when they change,
/// stop this task and start another on the same state. Events are told apart by the settings
/// in force when each is read.
pub async fn run(
    ctx: ServiceContext,
    settings: AnalyticsSettings,
    state: AnalyticsState,
) -> Result<(), TransportError> {
    let config = settings.snapshot().config.clone();
    let consumer = ctx.broker.consumer(&config.group, &config.topics())?;
    let name = format!("{}/analytics", ctx.service);
    // It observes topics other services own: what it cannot read is theirs to dead-letter.
    let policy = DeliveryPolicy {
        skip_unusable: true,
        ..delivery_policy(&config.group, &Default::default(), None, &ctx.broker)
    };
    let dead_letters = ctx.broker.publisher()?;
    tracing::info!(consumer = name, group = config.group, "streams-analytics started");
    let exporter = ctx.parts.spawn(format!("{}/analytics export", ctx.service), ctx.shutdown.clone(), {
        let state = state.clone();
        move |stop| supervise::infallible(export::refresh(state.clone(), stop))
    });
    let sampler = ctx.parts.spawn(format!("{}/analytics history", ctx.service), ctx.shutdown.clone(), {
        let (settings, state) = (settings.clone(), state.clone());
        let client = reqwest::Client::new();
        move |stop| supervise::infallible(history::sample(settings.clone(), state.clone(), client.clone(), stop))
    });
    consume(consumer, &name, ctx.shutdown.clone(), policy, dead_letters, |incoming| {
        observe(&state, &settings.snapshot().config, &incoming);
        async { Ok(()) }
    })
    .await;
    let _ = exporter.await;
    let _ = sampler.await;
    tracing::info!(consumer = name, "streams-analytics stopped");
    Ok(())
}

/// Counts one event in the windows, at its own time (`ce_time`; now if it has none).
fn observe(state: &AnalyticsState, config: &AnalyticsConfig, incoming: &Incoming) {
    let event = &incoming.event;
    let Some(observation) = classify(config, &incoming.topic, &event.event_type, &event.payload) else {
        return;
    };
    let at = humantime::parse_rfc3339_weak(&event.time)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or_else(now_ms, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let counted = state.windows().record(&event.id, &event.key, observation, at);
    export::count(&counted);
}

/// What an event read from `topic` tells the windows, by `config`; none for anything else.
fn classify<'a>(
    config: &'a AnalyticsConfig,
    topic: &str,
    event_type: &str,
    payload: &Value,
) -> Option<Observation<'a>> {
    if event_type == config.trigger {
        return Some(Observation::Started);
    }
    for step in &config.steps {
        // Canary requests keep the request's type on their own topic: the topic tells.
        let canary = step.canary_topic.as_deref() == Some(topic);
        if canary || topic == step.request {
            let variant = if canary { Variant::Canary } else { Variant::Stable };
            return Some(Observation::StepRequested { step: &step.name, variant, split: step.canary_topic.is_some() });
        }
        let outcome = if event_type == step.success {
            StepOutcome::Success
        } else if step.failure.as_deref() == Some(event_type) {
            StepOutcome::Failure
        } else {
            continue;
        };
        return Some(Observation::StepReplied { step: &step.name, outcome });
    }
    config
        .final_events
        .iter()
        .any(|t| t == event_type)
        .then(|| Observation::Finished { status: OrderStatus::parse(payload.get("status").and_then(Value::as_str)) })
}

#[derive(Clone)]
struct AppState {
    state: AnalyticsState,
    settings: AnalyticsSettings,
    /// Asks Prometheus for the SLO figures when `prometheus_url` is set.
    client: reqwest::Client,
}

/// `GET /api/slo`, `GET /api/slo/history` and `GET /api/analytics/windows`, by the settings
/// in force at each request.
pub fn router(state: AnalyticsState, settings: AnalyticsSettings) -> Routes {
    let history = Routes::new().get("/api/slo/history", history::history_view).with_state(state.clone());
    let app = AppState { state, settings, client: reqwest::Client::new() };
    Routes::new().get("/api/slo", slo_view).get("/api/analytics/windows", windows_view).with_state(app).merge(history)
}

async fn windows_view(State(app): State<AppState>) -> Json<WindowsView> {
    Json(app.state.settled_view(now_ms()))
}

async fn slo_view(State(app): State<AppState>) -> Json<slo::SloView> {
    Json(slo::view(&app.settings.snapshot(), &app.state, &app.client, now_ms()).await)
}
