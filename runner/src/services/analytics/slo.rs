//! `GET /api/slo`: every objective in one answer — its value over the last hour, burn rates
//! over the SRE workbook's window pairs, remaining error budget and whether it is breaching —
//! from Prometheus's recording rules when `prometheus_url` is set, else from the windows.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::windows::Windows;
use super::{AnalyticsState, Settings};
use crate::slo::{Objective, ObjectiveKind, BURN_ALERTS};

/// How long one Prometheus query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// The answer of `GET /api/slo`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SloView {
    pub source: Source,
    pub objectives: Vec<ObjectiveView>,
}

/// Where the figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Source {
    #[serde(rename = "prometheus")]
    Prometheus,
    #[serde(rename = "own windows")]
    OwnWindows,
}

/// One objective, as the SLO view shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectiveView {
    pub name: String,
    pub kind: &'static str,
    pub objective: f64,
    /// The budget period, as Prometheus writes durations (`30d`).
    pub window: String,
    /// The share of good orders over the last hour.
    pub current: Option<f64>,
    #[serde(rename = "errorRatio1h")]
    pub error_ratio_1h: Option<f64>,
    pub burn_rates: Vec<BurnRate>,
    pub error_budget_remaining: Option<f64>,
    pub orders_last_hour: Option<f64>,
    /// At least `min_events_per_hour` orders in the last hour: alerts may fire.
    pub enough_traffic: bool,
    pub breaching: bool,
}

/// One multi-window burn-rate alert of an objective.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BurnRate {
    pub alert: &'static str,
    pub severity: &'static str,
    pub long: &'static str,
    pub short: &'static str,
    pub threshold: f64,
    pub long_burn_rate: Option<f64>,
    pub short_burn_rate: Option<f64>,
    pub firing: bool,
}

/// What an objective's view is computed from: its error ratio over each window it needs (none
/// without data), and the orders of the last hour.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measured {
    pub error_ratios: BTreeMap<String, Option<f64>>,
    pub orders_last_hour: Option<f64>,
}

impl Measured {
    fn ratio(&self, window: &str) -> Option<f64> {
        self.error_ratios.get(window).copied().flatten()
    }
}

/// The windows (as Prometheus writes them) an objective's view needs an error ratio over.
fn windows_needed(objective: &Objective) -> Vec<String> {
    let mut windows = vec![objective.window_text(), "1h".to_string()];
    for (_, long, short, _, _) in BURN_ALERTS {
        windows.extend([long.to_string(), short.to_string()]);
    }
    windows.sort();
    windows.dedup();
    windows
}

/// An objective's view from its measured figures.
pub fn objective_view(objective: &Objective, measured: &Measured) -> ObjectiveView {
    let budget = 1.0 - objective.objective;
    let guard = measured.orders_last_hour.unwrap_or(0.0) >= f64::from(objective.min_events_per_hour);
    let mut breaching = false;
    let burn_rates = BURN_ALERTS
        .iter()
        .map(|&(alert, long, short, factor, severity)| {
            let (long_ratio, short_ratio) = (measured.ratio(long), measured.ratio(short));
            let firing = guard
                && long_ratio.is_some_and(|r| r > factor * budget)
                && short_ratio.is_some_and(|r| r > factor * budget);
            breaching |= firing;
            BurnRate {
                alert,
                severity,
                long,
                short,
                threshold: factor,
                long_burn_rate: long_ratio.map(|r| r / budget),
                short_burn_rate: short_ratio.map(|r| r / budget),
                firing,
            }
        })
        .collect();
    let one_hour = measured.ratio("1h");
    // Burning faster than the budget allows over the last hour counts as breaching too.
    breaching |= guard && one_hour.is_some_and(|r| r > budget);
    ObjectiveView {
        name: objective.name.clone(),
        kind: match objective.kind {
            ObjectiveKind::SuccessRatio { .. } => "success_ratio",
            ObjectiveKind::Latency { .. } => "latency",
        },
        objective: objective.objective,
        window: objective.window_text(),
        current: one_hour.map(|r| 1.0 - r),
        error_ratio_1h: one_hour,
        burn_rates,
        error_budget_remaining: measured.ratio(&objective.window_text()).map(|r| 1.0 - r / budget),
        orders_last_hour: measured.orders_last_hour,
        enough_traffic: guard,
        breaching,
    }
}

/// A window written as Prometheus writes it, in minutes (an hour if unreadable).
fn minutes(window: &str) -> i64 {
    humantime::parse_duration(window).map_or(60, |d| (d.as_secs() / 60).max(1) as i64)
}

/// An objective's figures from the windows' minute buckets.
pub fn measure_windows(windows: &Windows, objective: &Objective, now_ms: i64) -> Measured {
    let error_ratios = windows_needed(objective)
        .into_iter()
        .map(|window| {
            let ratio = windows.objective_counts(objective, minutes(&window), now_ms).ratio();
            (window, ratio)
        })
        .collect();
    let orders_last_hour = Some(windows.objective_counts(objective, 60, now_ms).total as f64);
    Measured { error_ratios, orders_last_hour }
}

/// Every objective of `settings`, from Prometheus or from the windows.
pub async fn view(settings: &Settings, state: &AnalyticsState, client: &reqwest::Client, now_ms: i64) -> SloView {
    match &settings.config.prometheus_url {
        Some(url) => {
            let measured = futures::future::join_all(
                settings.objectives.iter().map(|objective| measure_prometheus(client, url, objective)),
            )
            .await;
            let objectives = settings.objectives.iter().zip(&measured).map(|(o, m)| objective_view(o, m)).collect();
            SloView { source: Source::Prometheus, objectives }
        }
        None => {
            let windows = state.windows();
            let objectives = settings
                .objectives
                .iter()
                .map(|objective| objective_view(objective, &measure_windows(&windows, objective, now_ms)))
                .collect();
            SloView { source: Source::OwnWindows, objectives }
        }
    }
}

/// An objective's figures from the recording rules `runner slo rules` writes.
async fn measure_prometheus(client: &reqwest::Client, base: &str, objective: &Objective) -> Measured {
    let name = &objective.name;
    let windows = windows_needed(objective);
    let ratios =
        windows.iter().map(|window| query(client, base, format!("slo:sli_error:ratio_rate{window}{{slo=\"{name}\"}}")));
    let events = query(client, base, format!("slo:sli_events:rate1h{{slo=\"{name}\"}} * 3600"));
    let (ratios, events) = futures::join!(futures::future::join_all(ratios), events);
    Measured { error_ratios: windows.into_iter().zip(ratios).collect(), orders_last_hour: events }
}

/// The answer of Prometheus's `/api/v1/query`, as far as the view reads it.
#[derive(Deserialize)]
struct QueryAnswer {
    data: QueryData,
}

#[derive(Deserialize)]
struct QueryData {
    result: Vec<Sample>,
}

/// One series of an instant vector: `[time, "value"]`.
#[derive(Deserialize)]
struct Sample {
    value: (f64, String),
}

/// One instant value; none when Prometheus has no data or cannot be asked (logged).
async fn query(client: &reqwest::Client, base: &str, expr: String) -> Option<f64> {
    let url = format!("{}/api/v1/query", base.trim_end_matches('/'));
    let answer = async {
        let response = client.get(&url).query(&[("query", expr.as_str())]).timeout(QUERY_TIMEOUT).send().await?;
        response.error_for_status()?.json::<QueryAnswer>().await
    }
    .await;
    match answer {
        Ok(answer) => answer.data.result.first()?.value.1.parse().ok().filter(|v: &f64| v.is_finite()),
        Err(e) => {
            tracing::warn!(url, query = expr, error = %e, "cannot ask Prometheus for an SLO figure; check prometheus_url");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn objective() -> Objective {
        Objective {
            name: "order-success".into(),
            kind: ObjectiveKind::SuccessRatio { bad_statuses: vec!["FAILED".into(), "CANCELLED".into()] },
            objective: 0.99,
            window: Duration::from_secs(30 * 86_400),
            min_events_per_hour: 10,
            saga: "order".into(),
            description: None,
        }
    }

    fn measured(ratios: &[(&str, f64)], orders: f64) -> Measured {
        Measured {
            error_ratios: ratios.iter().map(|(w, r)| (w.to_string(), Some(*r))).collect(),
            orders_last_hour: Some(orders),
        }
    }

    /// `(ratios by window, orders in the last hour) => firing alerts, breaching`.
    #[test]
    fn burn_rates_fire_on_both_windows_with_enough_traffic() {
        let all = |r: f64| vec![("5m", r), ("30m", r), ("1h", r), ("6h", r), ("3d", r), ("30d", r)];
        #[allow(clippy::type_complexity)] // a table of cases reads best inline
        let cases: Vec<(Vec<(&str, f64)>, f64, &str)> = vec![
            (all(0.0), 100.0, "firing none, breaching false"),
            (
                all(0.5),
                100.0,
                "firing SLOErrorBudgetBurnFast SLOErrorBudgetBurnMedium SLOErrorBudgetBurnSlow, breaching true",
            ),
            (all(0.5), 9.0, "firing none, breaching false"),
            // Only the long window burns fast: no page, but the hour is over budget.
            (vec![("1h", 0.2), ("5m", 0.0)], 100.0, "firing none, breaching true"),
            (vec![("6h", 0.07), ("30m", 0.07)], 100.0, "firing SLOErrorBudgetBurnMedium, breaching true"),
        ];
        for (ratios, orders, expected) in cases {
            let view = objective_view(&objective(), &measured(&ratios, orders));
            let firing: Vec<&str> = view.burn_rates.iter().filter(|b| b.firing).map(|b| b.alert).collect();
            let firing = if firing.is_empty() { "none".to_string() } else { firing.join(" ") };
            assert_eq!(format!("firing {firing}, breaching {}", view.breaching), expected, "{ratios:?} {orders}");
        }
    }

    #[test]
    fn the_view_keeps_its_json_field_names() {
        let view = objective_view(&objective(), &measured(&[("1h", 0.02), ("5m", 0.5), ("30d", 0.005)], 50.0));
        let json = serde_json::to_value(SloView { source: Source::OwnWindows, objectives: vec![view] }).unwrap();
        assert_eq!(json["source"], "own windows");
        let o = &json["objectives"][0];
        let mut keys: Vec<&str> = o.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "breaching",
                "burnRates",
                "current",
                "enoughTraffic",
                "errorBudgetRemaining",
                "errorRatio1h",
                "kind",
                "name",
                "objective",
                "ordersLastHour",
                "window"
            ]
        );
        assert_eq!(o["kind"], "success_ratio");
        assert_eq!(o["window"], "30d");
        assert!((o["current"].as_f64().unwrap() - 0.98).abs() < 1e-9);
        assert_eq!(o["burnRates"][0]["alert"], "SLOErrorBudgetBurnFast");
        assert_eq!(o["burnRates"][0]["long"], "1h");
        assert_eq!(o["burnRates"][0]["threshold"], 14.4);
        assert!(o["burnRates"][0]["longBurnRate"].as_f64().unwrap() > 1.99);
        assert_eq!(o["burnRates"][2]["shortBurnRate"], serde_json::Value::Null, "no 6h figure");
    }
}
