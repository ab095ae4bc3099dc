//! streams-analytics in Prometheus: counters and histograms as the windows count events, and
//! the 1m/5m/1h window gauges, refreshed every few seconds from the typed figures.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::windows::{Counted, OrderStatus, StepResult, WindowsView};
use super::AnalyticsState;
use crate::event::now_ms;
use crate::saga::canary::Variant;
use crate::telemetry;

/// How often the window gauges are refreshed.
const REFRESH: Duration = Duration::from_secs(5);

/// Counts what the windows counted.
pub fn count(counted: &[Counted]) {
    for item in counted {
        match item {
            Counted::OrderStarted => metrics::counter!(telemetry::ANALYTICS_ORDERS_STARTED).increment(1),
            Counted::OrderFinished(status) => {
                metrics::counter!(telemetry::ANALYTICS_ORDERS_FINISHED, "outcome" => status.as_str()).increment(1);
            }
            Counted::OrderLatency { ms } => {
                metrics::histogram!(telemetry::ANALYTICS_ORDER_LATENCY_SECONDS).record(*ms as f64 / 1000.0);
            }
            Counted::Step(StepResult { at: _, step, variant, outcome, latency_ms }) => {
                let labels = [("step", step.clone()), ("variant", variant.as_str().to_string())];
                if let Some(ms) = latency_ms {
                    metrics::histogram!(telemetry::ANALYTICS_STEP_LATENCY_SECONDS, &labels).record(*ms as f64 / 1000.0);
                }
                let mut with_outcome = labels.to_vec();
                with_outcome.push(("outcome", outcome.as_str().to_string()));
                metrics::counter!(telemetry::ANALYTICS_STEP_RESULTS, &with_outcome).increment(1);
            }
        }
    }
}

/// Sets the window gauges from the figures. A figure a window has none of (no quantile
/// without a latency, no rate without a finished order) leaves its gauge as it was.
pub fn set_gauges(view: &WindowsView) {
    for (window, figures) in view.by_window() {
        let window = window.label();
        for status in OrderStatus::ALL {
            metrics::gauge!(telemetry::ANALYTICS_WINDOW_ORDERS, "window" => window, "outcome" => status.outcome())
                .set(figures.finished.get(status) as f64);
        }
        metrics::gauge!(telemetry::ANALYTICS_WINDOW_ORDERS, "window" => window, "outcome" => "started")
            .set(figures.started as f64);
        if let Some(rate) = figures.compensation_rate {
            metrics::gauge!(telemetry::ANALYTICS_WINDOW_COMPENSATION_RATIO, "window" => window).set(rate);
        }
        for (quantile, ms) in figures.latency_ms.labelled() {
            if let Some(ms) = ms {
                metrics::gauge!(telemetry::ANALYTICS_WINDOW_LATENCY_SECONDS, "window" => window, "quantile" => quantile)
                    .set(ms as f64 / 1000.0);
            }
        }
        for variant in [Variant::Stable, Variant::Canary] {
            let finished = figures.by_variant.get(variant);
            for status in OrderStatus::ALL {
                metrics::gauge!(
                    telemetry::ANALYTICS_WINDOW_ORDERS_BY_VARIANT,
                    "window" => window, "variant" => variant.as_str(), "outcome" => status.outcome()
                )
                .set(finished.get(status) as f64);
            }
        }
        for step in &figures.steps {
            let labels = [
                ("window", window.to_string()),
                ("step", step.step.clone()),
                ("variant", step.variant.as_str().to_string()),
            ];
            metrics::gauge!(telemetry::ANALYTICS_WINDOW_STEP_FAILURE_RATIO, &labels).set(step.failure_ratio);
            for (quantile, ms) in step.latency_ms.labelled() {
                if let Some(ms) = ms {
                    let mut with_quantile = labels.to_vec();
                    with_quantile.push(("quantile", quantile.to_string()));
                    metrics::gauge!(telemetry::ANALYTICS_WINDOW_STEP_LATENCY_SECONDS, &with_quantile)
                        .set(ms as f64 / 1000.0);
                }
            }
        }
    }
}

/// Settles unanswered steps and refreshes the window gauges every few seconds, until `shutdown`.
pub async fn refresh(state: AnalyticsState, shutdown: CancellationToken) {
    loop {
        set_gauges(&state.settled_view(now_ms()));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(REFRESH) => {}
        }
    }
}
