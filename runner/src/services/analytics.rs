//! streams-analytics (ADR-0004): follows the saga's trigger, final and step events and keeps
//! windowed figures (1 minute, 5 minutes, 1 hour) — orders started and finished by outcome and
//! by canary variant, compensation rate, end-to-end latency, and per step and variant the
//! replies and request-to-reply latency — exported to Prometheus, and serves the SLO view in
//! one call (`GET /api/slo`): each objective's value, burn rates over the SRE workbook's window
//! pairs, remaining error budget and whether it is breaching. The figures come from
//! Prometheus's HTTP API when `prometheus_url` is set, from this service's own minute buckets
//! otherwise.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{delivery_policy, ServiceContext};
use crate::config::model::AnalyticsConfig;
use crate::event::now_ms;
use crate::saga::canary::Variant;
use crate::slo::{Objective, ObjectiveKind, BURN_ALERTS};
use crate::telemetry;
use crate::transport::{consume, DeliveryPolicy, HandleError, Incoming, TransportError};

/// The windows of the figures, in minutes.
const WINDOWS: &[(&str, i64)] = &[("1m", 1), ("5m", 5), ("1h", 60)];
/// How many minute buckets are kept: enough for the 3-day burn-rate window.
const MINUTES_KEPT: usize = 3 * 24 * 60 + 1;
/// End-to-end latencies kept for quantiles (the last hour, at most this many).
const LATENCIES_KEPT: usize = 100_000;

/// One minute of finished orders.
#[derive(Debug, Clone, Default)]
struct Minute {
    minute: i64,
    started: u64,
    completed: u64,
    cancelled: u64,
    failed: u64,
    /// Finished orders by end-to-end latency bucket (`telemetry::SAGA_DURATION_BUCKETS`, then +Inf).
    latency: Vec<u64>,
}

#[derive(Default)]
struct Windows {
    minutes: VecDeque<Minute>,
    /// Start times of orders not yet finished, by order id.
    started_at: HashMap<String, i64>,
    /// (finished at, latency) of the last hour, for quantiles.
    latencies: VecDeque<(i64, i64)>,
    /// Event ids seen lately: delivery is at-least-once, figures count each event once.
    seen: std::collections::HashSet<String>,
    seen_order: VecDeque<String>,
    /// Step requests waiting for their reply, by order then step: first sent at, and to which
    /// variant (by order, so an order's end finds its unanswered steps at once).
    step_pending: HashMap<String, HashMap<String, (i64, Variant)>>,
    /// Step outcomes of the last hour.
    step_results: VecDeque<StepSample>,
    /// Final events read before their order's start: finished at, by order.
    early_finishes: HashMap<String, i64>,
    /// Orders finished but not yet settled (see `settle`): finished at, by order.
    finished_at: HashMap<String, i64>,
    /// Replies read before their request (topics are read side by side, not in one order).
    early_replies: HashMap<(String, String), (i64, StepOutcome)>,
    /// The variant each order met at its canary step (orders without one count as stable).
    order_variant: HashMap<String, Variant>,
    /// (finished at, variant, status) of the last hour, for the per-variant outcomes.
    finished_by_variant: VecDeque<(i64, Variant, &'static str)>,
}

/// How a step's request ended: its success reply, its failure reply, or no reply by shortly
/// after the order finished (a timeout, a dead letter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum StepOutcome {
    Success,
    Failure,
    NoReply,
}

impl StepOutcome {
    const ALL: [StepOutcome; 3] = [StepOutcome::Success, StepOutcome::Failure, StepOutcome::NoReply];

    fn as_str(self) -> &'static str {
        match self {
            StepOutcome::Success => "success",
            StepOutcome::Failure => "failure",
            StepOutcome::NoReply => "no_reply",
        }
    }
}

/// One step request's end, as a figure of the windows.
#[derive(Debug, Clone)]
struct StepSample {
    at: i64,
    step: String,
    variant: Variant,
    outcome: StepOutcome,
    /// From the first request to the reply; none without a reply.
    latency_ms: Option<i64>,
}

/// Figures older than this are dropped from the per-event queues (the longest window).
const HOUR_MS: i64 = 3_600_000;
/// How long after an order's end its unanswered step requests count as `no_reply`: events of
/// one order arrive on several topics, read side by side, so a reply may come after the end.
const SETTLE_MS: i64 = 10_000;

/// How many recent event ids are remembered for deduplication.
const SEEN_KEPT: usize = 200_000;

impl Windows {
    /// Whether this event id is new (and remembers it).
    fn first_time(&mut self, id: &str) -> bool {
        if !self.seen.insert(id.to_string()) {
            return false;
        }
        self.seen_order.push_back(id.to_string());
        if self.seen_order.len() > SEEN_KEPT {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }

    fn minute(&mut self, at_ms: i64) -> &mut Minute {
        let minute = at_ms / 60_000;
        if self.minutes.back().is_none_or(|m| m.minute < minute) {
            let buckets = telemetry::SAGA_DURATION_BUCKETS.len() + 1;
            self.minutes.push_back(Minute { minute, latency: vec![0; buckets], ..Minute::default() });
            while self.minutes.len() > MINUTES_KEPT {
                self.minutes.pop_front();
            }
        }
        // Late events land in the newest minute: figures are about when they were seen.
        self.minutes.back_mut().expect("a minute")
    }

    fn started(&mut self, order: &str, at_ms: i64) {
        self.minute(at_ms).started += 1;
        // Topics are read side by side: the order's end may have been read first.
        if let Some(finished_at) = self.early_finishes.remove(order) {
            self.record_latency(finished_at, (finished_at - at_ms).max(0));
            return;
        }
        self.started_at.insert(order.to_string(), at_ms);
        // Orders that never finish must not grow the map forever.
        if self.started_at.len() > 200_000 {
            let cutoff = at_ms - HOUR_MS;
            self.started_at.retain(|_, started| *started >= cutoff);
        }
    }

    fn finished(&mut self, order: &str, status: &str, at_ms: i64) {
        let variant = self.order_variant.remove(order).unwrap_or(Variant::Stable);
        let status_label = match status {
            "COMPLETED" => "completed",
            "CANCELLED" => "cancelled",
            _ => "failed",
        };
        self.finished_by_variant.push_back((at_ms, variant, status_label));
        while self.finished_by_variant.len() > LATENCIES_KEPT
            || self.finished_by_variant.front().is_some_and(|(t, _, _)| *t < at_ms - HOUR_MS)
        {
            self.finished_by_variant.pop_front();
        }
        // Requests still unanswered are settled as `no_reply` a little later (`settle`): their
        // replies, on other topics, may still be on their way to this reader.
        self.finished_at.insert(order.to_string(), at_ms);
        let minute = self.minute(at_ms);
        match status {
            "COMPLETED" => minute.completed += 1,
            "CANCELLED" => minute.cancelled += 1,
            _ => minute.failed += 1,
        }
        match self.started_at.remove(order) {
            Some(started) => self.record_latency(at_ms, (at_ms - started).max(0)),
            None => {
                self.early_finishes.insert(order.to_string(), at_ms);
                if self.early_finishes.len() > 200_000 {
                    self.early_finishes.retain(|_, finished| *finished >= at_ms - HOUR_MS);
                }
            }
        }
    }

    /// An order's end-to-end latency, counted in the minute it finished.
    fn record_latency(&mut self, finished_at: i64, latency: i64) {
        metrics::histogram!(telemetry::ANALYTICS_ORDER_LATENCY_SECONDS).record(latency as f64 / 1000.0);
        let seconds = latency as f64 / 1000.0;
        let bucket = telemetry::SAGA_DURATION_BUCKETS.iter().position(|b| seconds <= *b);
        let index = bucket.unwrap_or(telemetry::SAGA_DURATION_BUCKETS.len());
        self.minute(finished_at).latency[index] += 1;
        self.latencies.push_back((finished_at, latency));
        while self.latencies.len() > LATENCIES_KEPT
            || self.latencies.front().is_some_and(|(t, _)| *t < finished_at - HOUR_MS)
        {
            self.latencies.pop_front();
        }
    }

    /// Orders finished more than `SETTLE_MS` ago: their still unanswered step requests got no reply.
    fn settle(&mut self, now: i64) {
        let due: Vec<(String, i64)> =
            self.finished_at.iter().filter(|(_, at)| **at <= now - SETTLE_MS).map(|(o, at)| (o.clone(), *at)).collect();
        for (order, at) in due {
            self.finished_at.remove(&order);
            for (step, (_, variant)) in self.step_pending.remove(&order).unwrap_or_default() {
                self.step_result(StepSample { at, step, variant, outcome: StepOutcome::NoReply, latency_ms: None });
            }
        }
    }

    /// A step request: the first one of an order counts (retries go to the same variant).
    fn step_requested(&mut self, step: &str, order: &str, variant: Variant, canary_step: bool, at_ms: i64) {
        let key = (step.to_string(), order.to_string());
        if let Some((replied, outcome)) = self.early_replies.remove(&key) {
            let latency_ms = Some((replied - at_ms).max(0));
            self.step_result(StepSample { at: replied, step: key.0, variant, outcome, latency_ms });
        } else {
            self.step_pending.entry(key.1).or_default().entry(key.0).or_insert((at_ms, variant));
        }
        if canary_step {
            self.order_variant.insert(order.to_string(), variant);
        }
        // Orders that never finish must not grow the maps forever.
        if self.step_pending.len() > 200_000 {
            self.step_pending.retain(|_, steps| steps.values().any(|(sent, _)| *sent >= at_ms - HOUR_MS));
        }
        if self.order_variant.len() > 200_000 {
            let open: std::collections::HashSet<&String> = self.started_at.keys().collect();
            self.order_variant.retain(|order, _| open.contains(order));
        }
    }

    /// A step reply: ends the wait of its request, if that request was seen.
    fn step_replied(&mut self, step: &str, order: &str, outcome: StepOutcome, at_ms: i64) {
        let waiting = self.step_pending.get_mut(order).and_then(|steps| steps.remove(step));
        if self.step_pending.get(order).is_some_and(HashMap::is_empty) {
            self.step_pending.remove(order);
        }
        let Some((sent, variant)) = waiting else {
            self.early_replies.insert((step.to_string(), order.to_string()), (at_ms, outcome));
            if self.early_replies.len() > 200_000 {
                self.early_replies.retain(|_, (replied, _)| *replied >= at_ms - HOUR_MS);
            }
            return;
        };
        let latency_ms = Some((at_ms - sent).max(0));
        self.step_result(StepSample { at: at_ms, step: step.to_string(), variant, outcome, latency_ms });
    }

    /// Keeps a step's end for the windows and counts it (every path: reply, early reply, no reply).
    fn step_result(&mut self, result: StepSample) {
        let labels = [("step", result.step.clone()), ("variant", result.variant.as_str().to_string())];
        if let Some(ms) = result.latency_ms {
            metrics::histogram!(telemetry::ANALYTICS_STEP_LATENCY_SECONDS, &labels).record(ms as f64 / 1000.0);
        }
        let mut with_outcome = labels.to_vec();
        with_outcome.push(("outcome", result.outcome.as_str().to_string()));
        metrics::counter!(telemetry::ANALYTICS_STEP_RESULTS, &with_outcome).increment(1);
        let at = result.at;
        self.step_results.push_back(result);
        while self.step_results.len() > LATENCIES_KEPT || self.step_results.front().is_some_and(|r| r.at < at - HOUR_MS)
        {
            self.step_results.pop_front();
        }
    }

    /// Per step and variant over the last `minutes`: replies by outcome, failure ratio (failures
    /// and missing replies over all), latency quantiles of the replies.
    fn step_summary(&self, minutes: i64, now: i64) -> Vec<Value> {
        let from = now - minutes * 60_000;
        let mut groups: std::collections::BTreeMap<(&str, Variant), Vec<&StepSample>> = Default::default();
        for result in self.step_results.iter().filter(|r| r.at > from) {
            groups.entry((result.step.as_str(), result.variant)).or_default().push(result);
        }
        groups
            .into_iter()
            .map(|((step, variant), results)| {
                let count = |outcome: StepOutcome| results.iter().filter(|r| r.outcome == outcome).count();
                let latencies: Vec<i64> = results.iter().filter_map(|r| r.latency_ms).collect();
                let outcomes: serde_json::Map<String, Value> =
                    StepOutcome::ALL.iter().map(|o| (o.as_str().to_string(), json!(count(*o)))).collect();
                let bad = count(StepOutcome::Failure) + count(StepOutcome::NoReply);
                json!({
                    "step": step,
                    "variant": variant.as_str(),
                    "outcomes": outcomes,
                    "failureRatio": bad as f64 / results.len() as f64,
                    "latencyMs": quantiles(latencies),
                })
            })
            .collect()
    }

    /// Orders finished over the last `minutes` by the variant they met and outcome.
    fn variant_summary(&self, minutes: i64, now: i64) -> Value {
        let from = now - minutes * 60_000;
        let mut view = json!({});
        for variant in [Variant::Stable, Variant::Canary] {
            let mut counts = json!({ "completed": 0, "cancelled": 0, "failed": 0 });
            for (_, _, status) in self.finished_by_variant.iter().filter(|(t, v, _)| *t > from && *v == variant) {
                counts[*status] = json!(counts[*status].as_u64().unwrap_or(0) + 1);
            }
            view[variant.as_str()] = counts;
        }
        view
    }

    /// The minute buckets of the last `minutes` minutes, the current one included.
    fn last(&self, minutes: i64, now: i64) -> impl Iterator<Item = &Minute> {
        let from = now / 60_000 - minutes + 1;
        self.minutes.iter().filter(move |m| m.minute >= from)
    }

    fn summary(&self, minutes: i64, now: i64) -> Value {
        let (mut started, mut completed, mut cancelled, mut failed) = (0, 0, 0, 0);
        for m in self.last(minutes, now) {
            started += m.started;
            completed += m.completed;
            cancelled += m.cancelled;
            failed += m.failed;
        }
        let finished = completed + cancelled + failed;
        let latencies: Vec<i64> =
            self.latencies.iter().filter(|(t, _)| *t > now - minutes * 60_000).map(|(_, l)| *l).collect();
        json!({
            "started": started,
            "finished": { "completed": completed, "cancelled": cancelled, "failed": failed },
            "compensationRate": if finished == 0 { Value::Null } else { json!((cancelled + failed) as f64 / finished as f64) },
            "latencyMs": quantiles(latencies),
            "byVariant": self.variant_summary(minutes, now),
            "steps": self.step_summary(minutes, now),
        })
    }

    /// (bad, total) orders of an objective over the last `minutes`.
    fn counts(&self, objective: &Objective, minutes: i64, now: i64) -> (u64, u64) {
        let mut bad = 0;
        let mut total = 0;
        for m in self.last(minutes, now) {
            match &objective.kind {
                ObjectiveKind::SuccessRatio { bad_statuses } => {
                    total += m.completed + m.cancelled + m.failed;
                    for status in bad_statuses {
                        bad += match status.as_str() {
                            "COMPLETED" => m.completed,
                            "CANCELLED" => m.cancelled,
                            _ => m.failed,
                        };
                    }
                }
                ObjectiveKind::Latency { threshold_seconds } => {
                    for (i, count) in m.latency.iter().enumerate() {
                        total += count;
                        let upper = telemetry::SAGA_DURATION_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY);
                        if upper > *threshold_seconds + 1e-9 {
                            bad += count;
                        }
                    }
                }
            }
        }
        (bad, total)
    }
}

/// p50, p95, p99 (nearest rank) and the count of latencies in milliseconds.
fn quantiles(mut latencies: Vec<i64>) -> Value {
    latencies.sort_unstable();
    let quantile = |q: f64| -> Option<i64> {
        (!latencies.is_empty())
            .then(|| latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1])
    };
    json!({ "p50": quantile(0.5), "p95": quantile(0.95), "p99": quantile(0.99), "count": latencies.len() })
}

#[derive(Clone)]
struct AppState {
    windows: Arc<Mutex<Windows>>,
    objectives: Arc<Vec<Objective>>,
    config: AnalyticsConfig,
}

/// Follows the trigger and final events until shutdown.
pub async fn run(ctx: ServiceContext, config: AnalyticsConfig, state: AnalyticsState) -> Result<(), TransportError> {
    let consumer = ctx.broker.consumer(&config.group, &config.topics())?;
    let name = format!("{}/analytics", ctx.service);
    // It observes topics other services own: what it cannot read is theirs to dead-letter.
    let policy = DeliveryPolicy {
        skip_unusable: true,
        ..delivery_policy(&config.group, &Default::default(), None, &ctx.broker)
    };
    let dead_letters = ctx.broker.publisher()?;
    tracing::info!(consumer = name, group = config.group, "streams-analytics started");
    let windows = state.0.clone();
    let exporter = tokio::spawn(export(windows.clone(), ctx.shutdown.clone()));
    consume(consumer, &name, ctx.shutdown.clone(), policy, dead_letters, |incoming| {
        let result = observe(&windows, &config, &incoming);
        async move { result }
    })
    .await;
    let _ = exporter.await;
    tracing::info!(consumer = name, "streams-analytics stopped");
    Ok(())
}

/// The figures shared by the consumer and the API.
#[derive(Clone, Default)]
pub struct AnalyticsState(Arc<Mutex<Windows>>);

fn observe(windows: &Mutex<Windows>, config: &AnalyticsConfig, incoming: &Incoming) -> Result<(), HandleError> {
    let event = &incoming.event;
    let at = humantime::parse_rfc3339_weak(&event.time)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or_else(now_ms, |d| d.as_millis() as i64);
    let mut windows = windows.lock().expect("windows lock");
    if !windows.first_time(&event.id) {
        return Ok(());
    }
    if event.event_type == config.trigger {
        windows.started(&event.key, at);
        metrics::counter!(telemetry::ANALYTICS_ORDERS_STARTED).increment(1);
        return Ok(());
    }
    for step in &config.steps {
        // Canary requests keep the request's type on their own topic: the topic tells.
        let canary = step.canary_topic.as_deref() == Some(incoming.topic.as_str());
        if canary || incoming.topic == step.request {
            let variant = if canary { Variant::Canary } else { Variant::Stable };
            windows.step_requested(&step.name, &event.key, variant, step.canary_topic.is_some(), at);
            return Ok(());
        }
        let outcome = if event.event_type == step.success {
            StepOutcome::Success
        } else if step.failure.as_ref() == Some(&event.event_type) {
            StepOutcome::Failure
        } else {
            continue;
        };
        windows.step_replied(&step.name, &event.key, outcome, at);
        return Ok(());
    }
    if config.final_events.contains(&event.event_type) {
        let status = event.payload.get("status").and_then(Value::as_str).unwrap_or("FAILED").to_string();
        windows.finished(&event.key, &status, at);
        metrics::counter!(telemetry::ANALYTICS_ORDERS_FINISHED, "outcome" => status).increment(1);
    }
    Ok(())
}

/// Refreshes the windowed gauges every few seconds.
async fn export(windows: Arc<Mutex<Windows>>, shutdown: tokio_util::sync::CancellationToken) {
    loop {
        {
            let mut windows = windows.lock().expect("windows lock");
            let now = now_ms();
            windows.settle(now);
            for (window, minutes) in WINDOWS {
                let summary = windows.summary(*minutes, now);
                for outcome in ["completed", "cancelled", "failed"] {
                    let count = summary["finished"][outcome].as_f64().unwrap_or(0.0);
                    metrics::gauge!(telemetry::ANALYTICS_WINDOW_ORDERS, "window" => *window, "outcome" => outcome)
                        .set(count);
                }
                let started = summary["started"].as_f64().unwrap_or(0.0);
                metrics::gauge!(telemetry::ANALYTICS_WINDOW_ORDERS, "window" => *window, "outcome" => "started")
                    .set(started);
                if let Some(rate) = summary["compensationRate"].as_f64() {
                    metrics::gauge!(telemetry::ANALYTICS_WINDOW_COMPENSATION_RATIO, "window" => *window).set(rate);
                }
                for q in ["p50", "p95", "p99"] {
                    if let Some(ms) = summary["latencyMs"][q].as_f64() {
                        metrics::gauge!(telemetry::ANALYTICS_WINDOW_LATENCY_SECONDS, "window" => *window, "quantile" => q)
                            .set(ms / 1000.0);
                    }
                }
                for (variant, counts) in summary["byVariant"].as_object().into_iter().flatten() {
                    for (outcome, count) in counts.as_object().into_iter().flatten() {
                        let labels = [
                            ("window", window.to_string()),
                            ("variant", variant.clone()),
                            ("outcome", outcome.clone()),
                        ];
                        metrics::gauge!(telemetry::ANALYTICS_WINDOW_ORDERS_BY_VARIANT, &labels)
                            .set(count.as_f64().unwrap_or(0.0));
                    }
                }
                for step in summary["steps"].as_array().into_iter().flatten() {
                    let label = |key: &str| step[key].as_str().unwrap_or_default().to_string();
                    let labels =
                        [("window", window.to_string()), ("step", label("step")), ("variant", label("variant"))];
                    metrics::gauge!(telemetry::ANALYTICS_WINDOW_STEP_FAILURE_RATIO, &labels)
                        .set(step["failureRatio"].as_f64().unwrap_or(0.0));
                    for q in ["p50", "p95", "p99"] {
                        if let Some(ms) = step["latencyMs"][q].as_f64() {
                            let mut with_quantile = labels.to_vec();
                            with_quantile.push(("quantile", q.to_string()));
                            metrics::gauge!(telemetry::ANALYTICS_WINDOW_STEP_LATENCY_SECONDS, &with_quantile)
                                .set(ms / 1000.0);
                        }
                    }
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// `/api/slo` and `/api/analytics/windows`.
pub fn router(state: AnalyticsState, config: AnalyticsConfig, objectives: Vec<Objective>) -> Router {
    Router::new().route("/api/slo", get(slo)).route("/api/analytics/windows", get(windows_view)).with_state(AppState {
        windows: state.0,
        objectives: Arc::new(objectives),
        config,
    })
}

async fn windows_view(State(state): State<AppState>) -> Json<Value> {
    let mut windows = state.windows.lock().expect("windows lock");
    let now = now_ms();
    windows.settle(now);
    let view: serde_json::Map<String, Value> =
        WINDOWS.iter().map(|(name, minutes)| (name.to_string(), windows.summary(*minutes, now))).collect();
    Json(Value::Object(view))
}

/// A window written as Prometheus writes it, in minutes.
fn minutes(window: &str) -> i64 {
    humantime::parse_duration(window).map_or(60, |d| (d.as_secs() / 60).max(1) as i64)
}

/// `GET /api/slo`: every objective, in one answer.
async fn slo(State(state): State<AppState>) -> Json<Value> {
    // Prometheus is asked with blocking calls: off the async workers.
    let answer = tokio::task::spawn_blocking(move || slo_view(&state)).await;
    Json(answer.unwrap_or_else(|e| json!({ "error": format!("cannot compute the SLO view: {e}") })))
}

fn slo_view(state: &AppState) -> Value {
    let mut objectives = Vec::new();
    let source = if state.config.prometheus_url.is_some() { "prometheus" } else { "own windows" };
    for objective in state.objectives.iter() {
        let budget = 1.0 - objective.objective;
        // The error ratio over a window, from Prometheus's recording rules or from the buckets.
        let ratio = |window: &str| -> Option<f64> {
            match &state.config.prometheus_url {
                Some(url) => {
                    prometheus_value(url, &format!("slo:sli_error:ratio_rate{window}{{slo=\"{}\"}}", objective.name))
                }
                None => {
                    let windows = state.windows.lock().expect("windows lock");
                    let (bad, total) = windows.counts(objective, minutes(window), now_ms());
                    (total > 0).then(|| bad as f64 / total as f64)
                }
            }
        };
        let budget_window = objective.window_text();
        let long_term = ratio(&budget_window);
        let events_1h = match &state.config.prometheus_url {
            Some(url) => prometheus_value(url, &format!("slo:sli_events:rate1h{{slo=\"{}\"}} * 3600", objective.name)),
            None => {
                let windows = state.windows.lock().expect("windows lock");
                Some(windows.counts(objective, 60, now_ms()).1 as f64)
            }
        };
        let guard = events_1h.unwrap_or(0.0) >= f64::from(objective.min_events_per_hour);
        let mut burn_rates = Vec::new();
        let mut breaching = false;
        for (alert, long, short, factor, severity) in BURN_ALERTS {
            let (long_ratio, short_ratio) = (ratio(long), ratio(short));
            let burn = |r: Option<f64>| r.map(|r| r / budget);
            let firing = guard
                && long_ratio.is_some_and(|r| r > factor * budget)
                && short_ratio.is_some_and(|r| r > factor * budget);
            breaching |= firing;
            burn_rates.push(json!({
                "alert": alert, "severity": severity, "long": long, "short": short, "threshold": factor,
                "longBurnRate": burn(long_ratio), "shortBurnRate": burn(short_ratio), "firing": firing,
            }));
        }
        let one_hour = ratio("1h");
        // Burning faster than the budget allows over the last hour counts as breaching too.
        breaching |= guard && one_hour.is_some_and(|r| r > budget);
        objectives.push(json!({
            "name": objective.name,
            "kind": match objective.kind { ObjectiveKind::SuccessRatio { .. } => "success_ratio", ObjectiveKind::Latency { .. } => "latency" },
            "objective": objective.objective,
            "window": budget_window,
            "current": one_hour.map(|r| 1.0 - r),
            "errorRatio1h": one_hour,
            "burnRates": burn_rates,
            "errorBudgetRemaining": long_term.map(|r| 1.0 - r / budget),
            "ordersLastHour": events_1h,
            "enoughTraffic": guard,
            "breaching": breaching,
        }));
    }
    json!({ "source": source, "objectives": objectives })
}

/// One instant value from Prometheus's HTTP API (`/api/v1/query`), or none.
fn prometheus_value(base: &str, query: &str) -> Option<f64> {
    let url = url::Url::parse_with_params(&format!("{}/api/v1/query", base.trim_end_matches('/')), [("query", query)])
        .ok()?;
    let body = crate::http::get_blocking(&url, Duration::from_secs(2)).ok()?;
    let answer: Value = serde_json::from_str(&body).ok()?;
    answer["data"]["result"][0]["value"][1].as_str()?.parse().ok().filter(|v: &f64| v.is_finite())
}
