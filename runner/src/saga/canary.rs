//! Canary routing and automated canary analysis for one saga step.
//!
//! A stable hash of the order id decides whether an order's request for the step goes to the
//! canary's topic; the first decision is kept per saga (in the saga row's `routes`) so retries meet the
//! same version. The percentage comes from the pipeline file (hot-reloaded), from chaos-svc
//! (control topic), or from the analysis; the most recent change wins. The analysis compares
//! the canary's failure rate and latency with stable's over a window, as Flagger and Argo
//! Rollouts do for HTTP: it steps the percentage up while healthy, rolls back to 0 when worse
//! beyond the thresholds, and holds while there is too little canary traffic to judge.

use std::collections::VecDeque;
use std::sync::{Mutex, RwLock};

use serde::Serialize;

use super::CanaryConfig;
use crate::chaos::{stable_share, CanarySetting, Chaos};
use crate::event::now_ms;
use crate::telemetry;

/// The hash salt of the canary split (distinct from the chaos blast radius).
const SPLIT_SALT: &str = "canary";
/// Outcomes kept for analysis, at most.
const MAX_OUTCOMES: usize = 50_000;
/// Events kept for listing.
const MAX_EVENTS: usize = 200;
/// A latency difference below this is noise, whatever the ratio.
const LATENCY_FLOOR_MS: f64 = 50.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    Stable,
    Canary,
}

impl Variant {
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Stable => "stable",
            Variant::Canary => "canary",
        }
    }

    pub fn parse(text: &str) -> Variant {
        if text == "canary" {
            Variant::Canary
        } else {
            Variant::Stable
        }
    }
}

/// Where the rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Percentage 0 with no rollout going on.
    Idle,
    /// The analysis is judging the canary at the current percentage.
    Progressing,
    /// The last step was reached.
    Promoted,
    /// Rolled back to 0 by the analysis; a new percentage (file or API) starts again.
    RolledBack,
}

/// A step's outcome, as the orchestrator saw it.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    at_ms: i64,
    variant: Variant,
    ok: bool,
    latency_ms: i64,
}

/// A canary failing more than this share of its requests is rolled back, whatever stable's
/// rate: compared with a failing stable, it would otherwise look healthy and be promoted.
pub const MAX_CANARY_FAILURE_RATE: f64 = 0.5;

/// Something that happened to the rollout, for listing.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryEvent {
    pub at_ms: i64,
    /// `set`, `promote`, `hold`, `rollback`, `promoted`.
    pub kind: &'static str,
    pub from: f64,
    pub to: f64,
    pub by: String,
    pub reason: String,
}

/// What the analysis decided at one interval.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Promote { to: f64, reason: String },
    Hold { reason: String },
    Rollback { reason: String },
    Promoted { reason: String },
}

struct State {
    percent: f64,
    set_at_ms: i64,
    set_by: String,
    phase: Phase,
    outcomes: VecDeque<Outcome>,
    events: VecDeque<CanaryEvent>,
}

/// The canary of one saga step in a running orchestrator.
pub struct Canary {
    config: RwLock<CanaryConfig>,
    chaos: Chaos,
    state: Mutex<State>,
}

impl Canary {
    /// `set_at_ms` is when the file's percentage was written (its modification time), so a
    /// later change through chaos-svc wins over it and a later edit of the file wins again.
    pub fn new(config: CanaryConfig, set_at_ms: i64, chaos: Chaos) -> Self {
        let percent = config.percent;
        let canary = Canary {
            config: RwLock::new(config),
            chaos,
            state: Mutex::new(State {
                percent,
                set_at_ms,
                set_by: "file".into(),
                phase: if percent > 0.0 { Phase::Progressing } else { Phase::Idle },
                outcomes: VecDeque::new(),
                events: VecDeque::new(),
            }),
        };
        canary.publish_gauge(percent);
        canary
    }

    pub fn config(&self) -> CanaryConfig {
        self.config.read().expect("canary config lock").clone()
    }

    /// A reloaded file: new thresholds apply at once; a changed percentage is a new setting.
    pub fn update_config(&self, config: CanaryConfig, set_at_ms: i64) {
        let changed_percent = self.config().percent != config.percent;
        let percent = config.percent;
        *self.config.write().expect("canary config lock") = config;
        if changed_percent {
            self.set(percent, set_at_ms, "file", "percent changed in the pipeline file");
        }
    }

    /// The percentage in force, taking a newer setting from the control topic if there is one.
    pub fn percent(&self) -> f64 {
        let step = self.config().step;
        if let Some(setting) = self.chaos.canary_setting(&step) {
            let set_at_ms = self.state.lock().expect("canary lock").set_at_ms;
            match (setting.expires_at_ms, setting.then_percent) {
                // A leased setting whose lease ended: its `then_percent` applies, once.
                (Some(expiry), Some(then)) if expiry <= crate::event::now_ms() && expiry > set_at_ms => {
                    self.set(then, expiry, &setting.by, "the lease of the canary percentage ended");
                }
                (Some(expiry), Some(_)) if expiry <= crate::event::now_ms() => {}
                _ if setting.at_ms > set_at_ms => {
                    let reason = setting.reason.clone().unwrap_or_else(|| "set through chaos-svc".into());
                    self.set(setting.percent, setting.at_ms, &setting.by, &reason);
                }
                _ => {}
            }
        }
        self.state.lock().expect("canary lock").percent
    }

    /// Sets the percentage (from the file, chaos-svc or the analysis).
    pub fn set(&self, percent: f64, at_ms: i64, by: &str, reason: &str) {
        let percent = percent.clamp(0.0, 100.0);
        let mut state = self.state.lock().expect("canary lock");
        let from = state.percent;
        state.percent = percent;
        state.set_at_ms = at_ms;
        state.set_by = by.to_string();
        state.phase = match (by, percent) {
            ("analysis", p) if p <= 0.0 => Phase::RolledBack,
            (_, p) if p <= 0.0 => Phase::Idle,
            _ => Phase::Progressing,
        };
        push_event(
            &mut state.events,
            CanaryEvent { at_ms, kind: "set", from, to: percent, by: by.into(), reason: reason.into() },
        );
        drop(state);
        tracing::info!(step = self.config().step, from, to = percent, by, reason, "canary percentage changed");
        self.publish_gauge(percent);
    }

    fn publish_gauge(&self, percent: f64) {
        metrics::gauge!(telemetry::CANARY_PERCENT, "step" => self.config().step).set(percent);
    }

    /// The variant an order meets at the current percentage.
    pub fn route(&self, order_id: &str) -> Variant {
        if stable_share(SPLIT_SALT, order_id) * 100.0 < self.percent() {
            Variant::Canary
        } else {
            Variant::Stable
        }
    }

    /// Records the outcome of one request of the step.
    pub fn record(&self, variant: Variant, ok: bool, latency_ms: i64) {
        let step = self.config().step;
        metrics::counter!(
            telemetry::CANARY_OUTCOMES,
            "step" => step,
            "variant" => variant.as_str(),
            "result" => if ok { "success" } else { "failure" }
        )
        .increment(1);
        let mut state = self.state.lock().expect("canary lock");
        if state.outcomes.len() == MAX_OUTCOMES {
            state.outcomes.pop_front();
        }
        state.outcomes.push_back(Outcome { at_ms: now_ms(), variant, ok, latency_ms });
    }

    /// Judges the canary over the window (only outcomes since the percentage last changed
    /// count, so each step is judged on its own traffic). `None`: nothing to judge.
    pub fn judge(&self, now: i64) -> Option<Decision> {
        let config = self.config();
        let analysis = config.analysis.as_ref()?;
        let state = self.state.lock().expect("canary lock");
        if state.phase != Phase::Progressing || state.percent <= 0.0 {
            return None;
        }
        let since = state.set_at_ms.max(now - analysis.window.as_millis() as i64);
        let recent: Vec<&Outcome> = state.outcomes.iter().filter(|o| o.at_ms >= since).collect();
        let stats = |variant: Variant| {
            let of: Vec<&&Outcome> = recent.iter().filter(|o| o.variant == variant).collect();
            let failures = of.iter().filter(|o| !o.ok).count();
            let mut latencies: Vec<i64> = of.iter().map(|o| o.latency_ms).collect();
            latencies.sort_unstable();
            let p95 = latencies.get((latencies.len() * 95 / 100).min(latencies.len().saturating_sub(1))).copied();
            (of.len(), failures, p95)
        };
        let (canary_n, canary_failures, canary_p95) = stats(Variant::Canary);
        let (stable_n, stable_failures, stable_p95) = stats(Variant::Stable);
        if canary_n < analysis.min_requests as usize {
            return Some(Decision::Hold {
                reason: format!(
                    "{canary_n} canary outcomes since the last change; {} needed to judge",
                    analysis.min_requests
                ),
            });
        }
        let canary_rate = canary_failures as f64 / canary_n as f64;
        let stable_rate = if stable_n == 0 { 0.0 } else { stable_failures as f64 / stable_n as f64 };
        // Compared with a failing stable, a failing canary looks "no worse": never let that
        // promote it. Above this rate it goes back, whatever stable does.
        if canary_rate > MAX_CANARY_FAILURE_RATE {
            return Some(Decision::Rollback {
                reason: format!(
                    "canary failure rate {:.1}% ({canary_failures}/{canary_n}) is above the {:.0}% no canary is kept at \
                     (stable {:.1}%)",
                    canary_rate * 100.0,
                    MAX_CANARY_FAILURE_RATE * 100.0,
                    stable_rate * 100.0
                ),
            });
        }
        if canary_rate - stable_rate > analysis.max_failure_rate_increase {
            return Some(Decision::Rollback {
                reason: format!(
                    "canary failure rate {:.1}% ({canary_failures}/{canary_n}) vs stable {:.1}% ({stable_failures}/{stable_n}); \
                     allowed +{:.1} points",
                    canary_rate * 100.0,
                    stable_rate * 100.0,
                    analysis.max_failure_rate_increase * 100.0
                ),
            });
        }
        if let (Some(c), Some(s)) = (canary_p95, stable_p95) {
            let (c, s) = (c as f64, s as f64);
            if stable_n >= analysis.min_requests as usize
                && c > s * analysis.max_latency_ratio
                && c - s > LATENCY_FLOOR_MS
            {
                return Some(Decision::Rollback {
                    reason: format!(
                        "canary p95 latency {c:.0} ms vs stable {s:.0} ms; allowed {:.2}x",
                        analysis.max_latency_ratio
                    ),
                });
            }
        }
        let healthy = format!(
            "healthy: failure rate {:.1}% vs stable {:.1}% over {canary_n} canary outcomes",
            canary_rate * 100.0,
            stable_rate * 100.0
        );
        match analysis.steps.iter().copied().find(|s| *s > state.percent) {
            Some(next) => Some(Decision::Promote { to: next, reason: healthy }),
            None => Some(Decision::Promoted { reason: healthy }),
        }
    }

    /// Applies a decision; returns the new setting to announce on the control topic, if any.
    pub fn apply(&self, decision: &Decision, now: i64) -> Option<CanarySetting> {
        let step = self.config().step;
        let (kind, reason) = match decision {
            Decision::Promote { reason, .. } => ("promote", reason),
            Decision::Hold { reason } => ("hold", reason),
            Decision::Rollback { reason } => ("rollback", reason),
            Decision::Promoted { reason } => ("promoted", reason),
        };
        metrics::counter!(telemetry::CANARY_DECISIONS, "step" => step.clone(), "decision" => kind).increment(1);
        let from = self.state.lock().expect("canary lock").percent;
        let to = match decision {
            Decision::Promote { to, .. } => *to,
            Decision::Rollback { .. } => 0.0,
            Decision::Hold { .. } | Decision::Promoted { .. } => from,
        };
        {
            let mut state = self.state.lock().expect("canary lock");
            // Holds repeat every interval: keep only the latest of a run of them.
            if kind == "hold" && state.events.back().is_some_and(|e| e.kind == "hold") {
                state.events.pop_back();
            }
            push_event(
                &mut state.events,
                CanaryEvent { at_ms: now, kind, from, to, by: "analysis".into(), reason: reason.clone() },
            );
            if kind == "promoted" {
                state.phase = Phase::Promoted;
            }
        }
        match decision {
            Decision::Rollback { reason } => tracing::warn!(step, from, reason, "canary rolled back"),
            Decision::Promote { to, reason } => tracing::info!(step, from, to, reason, "canary promoted a step"),
            Decision::Promoted { reason } => tracing::info!(step, percent = from, reason, "canary fully promoted"),
            Decision::Hold { reason } => tracing::debug!(step, reason, "canary analysis holds"),
        }
        if to == from {
            return None;
        }
        self.set(to, now, "analysis", reason);
        if to <= 0.0 {
            // `set` recorded it; the phase says the analysis did it, so it stays at 0.
            self.state.lock().expect("canary lock").phase = Phase::RolledBack;
        }
        Some(CanarySetting {
            percent: to,
            at_ms: now,
            by: "analysis".into(),
            reason: Some(reason.clone()),
            expires_at_ms: None,
            then_percent: None,
        })
    }

    /// The rollout as the admin endpoint shows it.
    pub fn snapshot(&self) -> serde_json::Value {
        let percent = self.percent();
        let config = self.config();
        let state = self.state.lock().expect("canary lock");
        let count = |variant: Variant, ok: Option<bool>| {
            state.outcomes.iter().filter(|o| o.variant == variant && ok.is_none_or(|ok| o.ok == ok)).count()
        };
        serde_json::json!({
            "step": config.step,
            "topic": config.topic,
            "percent": percent,
            "phase": state.phase,
            "setBy": state.set_by,
            "setAtMs": state.set_at_ms,
            "analysis": config.analysis.as_ref().map(|a| serde_json::json!({
                "intervalMs": a.interval.as_millis() as u64,
                "windowMs": a.window.as_millis() as u64,
                "minRequests": a.min_requests,
                "maxFailureRateIncrease": a.max_failure_rate_increase,
                "maxLatencyRatio": a.max_latency_ratio,
                "steps": a.steps,
            })),
            "outcomes": {
                "stable": { "success": count(Variant::Stable, Some(true)), "failure": count(Variant::Stable, Some(false)) },
                "canary": { "success": count(Variant::Canary, Some(true)), "failure": count(Variant::Canary, Some(false)) },
            },
            "events": state.events.iter().rev().collect::<Vec<_>>(),
        })
    }
}

fn push_event(events: &mut VecDeque<CanaryEvent>, event: CanaryEvent) {
    if events.len() == MAX_EVENTS {
        events.pop_front();
    }
    events.push_back(event);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::saga::CanaryAnalysis;

    fn canary(percent: f64) -> Canary {
        let config = CanaryConfig {
            step: "payment".into(),
            request: "payment.requested".into(),
            topic: "payment.requested.canary".into(),
            percent,
            analysis: Some(CanaryAnalysis {
                interval: Duration::from_secs(1),
                window: Duration::from_secs(60),
                min_requests: 10,
                max_failure_rate_increase: 0.05,
                max_latency_ratio: 1.5,
                steps: vec![10.0, 25.0, 50.0, 100.0],
            }),
        };
        Canary::new(config, now_ms() - 1, Chaos::new())
    }

    fn feed(canary: &Canary, variant: Variant, ok: usize, failed: usize, latency_ms: i64) {
        for i in 0..ok + failed {
            canary.record(variant, i < ok, latency_ms);
        }
    }

    #[test]
    fn split_follows_the_percentage_and_is_stable() {
        for percent in [10.0, 50.0, 90.0] {
            let c = canary(percent);
            let ids: Vec<String> = (0..2000).map(|_| uuid::Uuid::new_v4().to_string()).collect();
            let share = ids.iter().filter(|id| c.route(id) == Variant::Canary).count() as f64 / 20.0;
            assert!((share - percent).abs() <= 3.0, "{share}% at {percent}%");
            assert!(ids.iter().all(|id| c.route(id) == c.route(id)));
        }
    }

    #[test]
    fn analysis_holds_promotes_and_rolls_back() {
        let c = canary(10.0);
        feed(&c, Variant::Stable, 100, 2, 20);
        feed(&c, Variant::Canary, 5, 0, 20);
        assert!(matches!(c.judge(now_ms()), Some(Decision::Hold { .. })));
        feed(&c, Variant::Canary, 20, 0, 22);
        let decision = c.judge(now_ms()).expect("a decision");
        assert!(matches!(decision, Decision::Promote { to, .. } if to == 25.0), "{decision:?}");
        c.apply(&decision, now_ms() + 1);
        assert_eq!(c.percent(), 25.0);
        // Only outcomes after the change count: the canary must prove itself again.
        std::thread::sleep(Duration::from_millis(5));
        assert!(matches!(c.judge(now_ms()), Some(Decision::Hold { .. })));
        feed(&c, Variant::Stable, 50, 1, 20);
        feed(&c, Variant::Canary, 10, 10, 20);
        let decision = c.judge(now_ms()).expect("a decision");
        assert!(matches!(decision, Decision::Rollback { .. }), "{decision:?}");
        let announced = c.apply(&decision, now_ms() + 2).expect("a new setting");
        assert_eq!(announced.percent, 0.0);
        assert_eq!(c.percent(), 0.0);
        assert_eq!(c.judge(now_ms()), None, "a rolled-back canary is not judged again");
    }

    #[test]
    fn a_failing_canary_is_rolled_back_even_beside_a_failing_stable() {
        let c = canary(50.0);
        feed(&c, Variant::Stable, 0, 30, 20);
        feed(&c, Variant::Canary, 0, 30, 20);
        let decision = c.judge(now_ms()).expect("a decision");
        assert!(matches!(&decision, Decision::Rollback { reason } if reason.contains("above the 50%")), "{decision:?}");
    }

    #[test]
    fn slow_canary_is_rolled_back() {
        let c = canary(50.0);
        feed(&c, Variant::Stable, 30, 0, 20);
        feed(&c, Variant::Canary, 30, 0, 400);
        assert!(matches!(c.judge(now_ms()), Some(Decision::Rollback { reason }) if reason.contains("latency")));
    }
}
