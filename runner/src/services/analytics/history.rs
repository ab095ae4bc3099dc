//! The SLO view over time: every objective's value, remaining error budget and long-window
//! burn rates, sampled every [`INTERVAL`] and kept in memory for [`KEPT`], for the console's
//! charts (`GET /api/slo/history`). Prometheus is the long-term store; this history starts
//! empty when the process does.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::slo::{self, SloView};
use super::{AnalyticsSettings, AnalyticsState};
use crate::event::now_ms;
use crate::http::ApiError;
use crate::slo::BURN_ALERTS;

/// How often the view is sampled.
pub const INTERVAL: Duration = Duration::from_secs(10);
/// How long samples are kept: one day.
const KEPT: Duration = Duration::from_secs(24 * 3600);
/// Samples kept per objective.
const CAPACITY: usize = (KEPT.as_secs() / INTERVAL.as_secs()) as usize;
/// The most samples one answer holds per objective; longer ranges are thinned to this.
const MAX_POINTS: usize = 360;
/// The range asked for when none is given, and the longest one, in minutes.
const DEFAULT_MINUTES: u32 = 60;
const MAX_MINUTES: u32 = 24 * 60;

/// One reading of one objective.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    pub at_ms: i64,
    pub current: Option<f64>,
    pub error_budget_remaining: Option<f64>,
    /// The long-window burn rate of each alert of [`BURN_ALERTS`], in its order.
    pub burn_rates: Vec<Option<f64>>,
}

/// The readings of every objective, oldest first, each bounded to one day.
#[derive(Debug, Default)]
pub struct SloHistory {
    by_objective: BTreeMap<String, VecDeque<Point>>,
}

impl SloHistory {
    /// Takes in one reading of the view. Objectives no longer configured are forgotten.
    pub fn record(&mut self, view: &SloView, at_ms: i64) {
        self.by_objective.retain(|name, _| view.objectives.iter().any(|o| &o.name == name));
        for objective in &view.objectives {
            let points = self.by_objective.entry(objective.name.clone()).or_default();
            if points.len() == CAPACITY {
                points.pop_front();
            }
            points.push_back(Point {
                at_ms,
                current: objective.current,
                error_budget_remaining: objective.error_budget_remaining,
                burn_rates: objective.burn_rates.iter().map(|b| b.long_burn_rate).collect(),
            });
        }
    }

    /// Every objective's readings since `since_ms`, thinned to at most `MAX_POINTS` each
    /// (every k-th reading, the newest always kept).
    pub fn since(&self, since_ms: i64) -> Vec<ObjectiveHistory> {
        self.by_objective
            .iter()
            .map(|(name, points)| {
                let recent: Vec<&Point> = points.iter().filter(|p| p.at_ms >= since_ms).collect();
                let stride = recent.len().div_ceil(MAX_POINTS).max(1);
                // Counted from the newest, so the latest reading is always in the answer.
                let mut samples: Vec<Point> =
                    recent.iter().rev().step_by(stride).map(|p| (*p).clone()).collect::<Vec<_>>();
                samples.reverse();
                ObjectiveHistory { name: name.clone(), samples }
            })
            .collect()
    }
}

/// One objective in the answer of `GET /api/slo/history`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectiveHistory {
    pub name: String,
    pub samples: Vec<Point>,
}

/// The history, shared by the sampler and the route.
#[derive(Debug, Clone, Default)]
pub struct SharedHistory(Arc<Mutex<SloHistory>>);

impl SharedHistory {
    fn lock(&self) -> std::sync::MutexGuard<'_, SloHistory> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Samples the SLO view every [`INTERVAL`] until `shutdown` (from Prometheus when
/// `prometheus_url` is set, as `GET /api/slo` does).
pub async fn sample(
    settings: AnalyticsSettings,
    state: AnalyticsState,
    client: reqwest::Client,
    shutdown: CancellationToken,
) {
    loop {
        let view = slo::view(&settings.snapshot(), &state, &client, now_ms()).await;
        state.history.lock().record(&view, now_ms());
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(INTERVAL) => {}
        }
    }
}

/// The answer of `GET /api/slo/history`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryView {
    interval_seconds: u64,
    /// The long window of each burn rate, in the order of every point's `burnRates`.
    burn_windows: Vec<&'static str>,
    objectives: Vec<ObjectiveHistory>,
}

/// `GET /api/slo/history?minutes=M`: the last M minutes (1 to 1440, default 60).
pub async fn history_view(
    State(state): State<AnalyticsState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<HistoryView>, ApiError> {
    let minutes = parse_minutes(&query)?;
    let since_ms = now_ms() - i64::from(minutes) * 60_000;
    Ok(Json(HistoryView {
        interval_seconds: INTERVAL.as_secs(),
        burn_windows: BURN_ALERTS.iter().map(|&(_, long, _, _, _)| long).collect(),
        objectives: state.history.lock().since(since_ms),
    }))
}

fn parse_minutes(query: &HashMap<String, String>) -> Result<u32, ApiError> {
    if let Some(unknown) = query.keys().find(|k| k.as_str() != "minutes") {
        let shown = crate::chaos::rule::shortened(unknown);
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("unknown parameter `{shown}`; only `minutes` is read"),
        ));
    }
    let Some(text) = query.get("minutes") else { return Ok(DEFAULT_MINUTES) };
    match text.parse::<u32>() {
        Ok(minutes) if (1..=MAX_MINUTES).contains(&minutes) => Ok(minutes),
        _ => {
            let shown = crate::chaos::rule::shortened(text);
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("`minutes` is `{shown}`; give whole minutes from 1 to {MAX_MINUTES} (one day)"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::analytics::slo::{ObjectiveView, Source};

    fn view(names: &[&str], current: f64) -> SloView {
        let objectives = names
            .iter()
            .map(|name| ObjectiveView {
                name: (*name).to_string(),
                kind: "success_ratio",
                objective: 0.99,
                window: "30d".into(),
                current: Some(current),
                error_ratio_1h: Some(1.0 - current),
                burn_rates: Vec::new(),
                error_budget_remaining: Some(0.5),
                orders_last_hour: Some(10.0),
                enough_traffic: true,
                breaching: false,
            })
            .collect();
        SloView { source: Source::OwnWindows, objectives }
    }

    #[test]
    fn keeps_one_day_and_thins_long_ranges_keeping_the_newest() {
        let mut history = SloHistory::default();
        for i in 0..(CAPACITY + 100) {
            history.record(&view(&["a"], i as f64), i as i64 * 10_000);
        }
        let all = history.since(0);
        assert_eq!(all.len(), 1);
        assert!(all[0].samples.len() <= MAX_POINTS, "{}", all[0].samples.len());
        let newest = (CAPACITY + 99) as f64;
        assert_eq!(all[0].samples.last().unwrap().current, Some(newest));
        assert!(all[0].samples.windows(2).all(|w| w[0].at_ms < w[1].at_ms), "oldest first");
        // Ten minutes at one reading per 10 s: 60 readings, none thinned.
        let recent = history.since((CAPACITY as i64 + 99 - 59) * 10_000);
        assert_eq!(recent[0].samples.len(), 60);
    }

    #[test]
    fn an_objective_removed_from_the_settings_is_forgotten() {
        let mut history = SloHistory::default();
        history.record(&view(&["a", "b"], 1.0), 0);
        history.record(&view(&["b"], 1.0), 10_000);
        let names: Vec<String> = history.since(0).into_iter().map(|o| o.name).collect();
        assert_eq!(names, ["b"]);
    }

    #[test]
    fn minutes_are_bounded_and_unknown_parameters_refused() {
        let of = |pairs: &[(&str, &str)]| {
            parse_minutes(&pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
        };
        assert_eq!(of(&[]).unwrap(), 60);
        assert_eq!(of(&[("minutes", "1440")]).unwrap(), 1440);
        for bad in ["0", "1441", "-5", "1e3", "99999999999999999999", "\u{0}"] {
            assert!(of(&[("minutes", bad)]).is_err(), "{bad}");
        }
        assert!(of(&[("hours", "1")]).is_err());
    }
}
