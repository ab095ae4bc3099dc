//! A game-day scenario, compiled: the load (rate profile, order mix, seed), the phases, the
//! hypothesis, the fault timeline, the stop conditions and the rollback. Read from
//! `pipelines/gamedays/*.toml` by `config::scenario`, which reports every problem with its
//! file, line and column.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::chaos::RuleSpec;
use crate::slo::{Objective, ObjectiveKind};

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: Option<String>,
    /// The steady state claimed, in words.
    pub hypothesis_text: Option<String>,
    pub load: LoadPlan,
    /// Consecutive phases covering the load; one `run` phase when the file declares none.
    pub phases: Vec<Phase>,
    pub hypothesis: Vec<Threshold>,
    pub faults: Vec<Fault>,
    pub stop_conditions: Vec<StopCondition>,
    pub rollback: Rollback,
    pub audit: AuditSettings,
    /// The scenario file's text, kept with the run.
    pub source: String,
}

#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub profile: RateProfile,
    pub duration: Duration,
    /// Keep-alive connections posting.
    pub clients: usize,
    pub seed: u64,
    /// Kinds of orders and their weights.
    pub mix: Vec<(OrderKind, u32)>,
    /// How long the audit waits for accepted orders to reach a final status.
    pub settle_within: Duration,
}

/// Orders per second over the load's duration.
#[derive(Debug, Clone, PartialEq)]
pub enum RateProfile {
    Constant(f64),
    /// From the first rate to the second, linearly, over the whole duration.
    Ramp(f64, f64),
    /// Each rate for its time, one after the other.
    Steps(Vec<(f64, Duration)>),
}

impl RateProfile {
    /// The rate at `t` since the start of a load lasting `duration`.
    pub fn rate_at(&self, t: Duration, duration: Duration) -> f64 {
        match self {
            RateProfile::Constant(rate) => *rate,
            RateProfile::Ramp(from, to) => {
                let share = if duration.is_zero() { 1.0 } else { (t.as_secs_f64() / duration.as_secs_f64()).min(1.0) };
                from + (to - from) * share
            }
            RateProfile::Steps(steps) => {
                let mut end = Duration::ZERO;
                for (rate, length) in steps {
                    end += *length;
                    if t < end {
                        return *rate;
                    }
                }
                steps.last().map_or(0.0, |(rate, _)| *rate)
            }
        }
    }
}

/// What an order of the load is meant to test; each kind has the final status it should reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OrderKind {
    Valid,
    /// A total above payment-svc's `decline_above`.
    OverLimit,
    /// A customer payment-svc blocks (`blocked-…`).
    BlockedCustomer,
    /// A SKU inventory-svc does not stock.
    UnknownSku,
    /// A country shipping-svc refuses (`ZZ`).
    UnshippableCountry,
}

impl OrderKind {
    pub const ALL: [OrderKind; 5] = [
        OrderKind::Valid,
        OrderKind::OverLimit,
        OrderKind::BlockedCustomer,
        OrderKind::UnknownSku,
        OrderKind::UnshippableCountry,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OrderKind::Valid => "valid",
            OrderKind::OverLimit => "over_limit",
            OrderKind::BlockedCustomer => "blocked_customer",
            OrderKind::UnknownSku => "unknown_sku",
            OrderKind::UnshippableCountry => "unshippable_country",
        }
    }

    /// The final status an order of this kind reaches when the system works.
    pub fn expected_status(self) -> &'static str {
        match self {
            OrderKind::Valid => "COMPLETED",
            _ => "CANCELLED",
        }
    }

    /// The body of order `i` of run `run`. The SKUs and limits are those of the shipped
    /// pipelines (inventory seeds `SKU-1`…`SKU-5`, payment declines above 500,000 and
    /// customers `blocked-…`, shipping refuses `ZZ`).
    pub fn order(self, run: &str, i: u64, rng: &mut impl Rng) -> Value {
        let customer = match self {
            OrderKind::BlockedCustomer => format!("blocked-gameday-{run}-{i}"),
            _ => format!("gameday-{run}-{i}"),
        };
        let sku = match self {
            OrderKind::UnknownSku => "SKU-GAMEDAY-UNSTOCKED".to_string(),
            _ => format!("SKU-{}", rng.gen_range(1..=5)),
        };
        let unit_price: i64 = match self {
            OrderKind::OverLimit => 600_000,
            _ => rng.gen_range(500..5_000),
        };
        let country = if self == OrderKind::UnshippableCountry { "ZZ" } else { "DE" };
        json!({
            "customerId": customer,
            "currency": "EUR",
            "items": [{ "sku": sku, "quantity": rng.gen_range(1..=2), "unitPrice": unit_price }],
            "shipTo": { "country": country }
        })
    }
}

/// Draws the kinds of a run's orders from the mix, the same sequence for the same seed.
pub struct MixDraw {
    rng: rand::rngs::StdRng,
    mix: Vec<(OrderKind, u32)>,
    total: u64,
}

impl MixDraw {
    pub fn new(mix: &[(OrderKind, u32)], seed: u64) -> Self {
        let mix: Vec<_> = mix.iter().copied().filter(|(_, w)| *w > 0).collect();
        let total = mix.iter().map(|(_, w)| u64::from(*w)).sum();
        MixDraw { rng: rand::rngs::StdRng::seed_from_u64(seed), mix, total }
    }

    /// The next order's kind and body.
    pub fn next(&mut self, run: &str, i: u64) -> (OrderKind, Value) {
        let mut pick = if self.total == 0 { 0 } else { self.rng.gen_range(0..self.total) };
        let mut kind = OrderKind::Valid;
        for (k, weight) in &self.mix {
            if pick < u64::from(*weight) {
                kind = *k;
                break;
            }
            pick -= u64::from(*weight);
        }
        let body = kind.order(run, i, &mut self.rng);
        (kind, body)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    pub name: String,
    pub from: Duration,
    pub to: Duration,
}

/// One claim of the hypothesis, over one phase or all of them.
#[derive(Debug, Clone)]
pub struct Threshold {
    /// `None`: checked in every phase.
    pub phase: Option<String>,
    pub kind: ThresholdKind,
}

#[derive(Debug, Clone)]
pub enum ThresholdKind {
    /// A named objective of `[[slo.objectives]]`, measured over the phase's orders, at
    /// least `min` (default: the objective's own target).
    Objective { objective: Objective, min: f64 },
    /// The share of orders that end as their kind expects.
    SuccessRatio(f64),
    /// The latency percentile of the phase's orders at most `max`.
    Latency { percentile: f64, max: Duration },
}

impl Threshold {
    pub fn name(&self) -> String {
        match &self.kind {
            ThresholdKind::Objective { objective, min } => format!("{} ≥ {}", objective.name, percent(*min)),
            ThresholdKind::SuccessRatio(min) => format!("orders ending as expected ≥ {}", percent(*min)),
            ThresholdKind::Latency { percentile, max } => {
                format!("p{percentile} latency ≤ {}", humantime::format_duration(*max))
            }
        }
    }
}

pub fn percent(ratio: f64) -> String {
    format!("{:.2}%", ratio * 100.0)
}

/// Whether an order is good for an objective: not in its bad statuses, or within its threshold.
pub fn good_for(objective: &Objective, status: &str, latency_ms: i64) -> bool {
    match &objective.kind {
        ObjectiveKind::SuccessRatio { bad_statuses } => !bad_statuses.iter().any(|s| s == status),
        ObjectiveKind::Latency { threshold_seconds } => (latency_ms as f64) <= threshold_seconds * 1000.0,
    }
}

#[derive(Debug, Clone)]
pub struct Fault {
    pub name: String,
    pub at: Duration,
    pub length: Duration,
    pub action: FaultAction,
}

#[derive(Debug, Clone)]
pub enum FaultAction {
    /// A chaos rule, created through chaos-svc with a lease; its id is set per run.
    Rule(Box<RuleSpec>),
    /// A canary percentage for a saga step, set through chaos-svc with a lease.
    Canary { step: String, percent: f64 },
    /// Not a fault: the dead letters of `topic` written since the run started are replayed
    /// through dlq-admin (a bulk replay), once, at the entry's time.
    Replay { topic: String },
}

impl Fault {
    /// One line saying what the fault does.
    pub fn summary(&self) -> String {
        match &self.action {
            FaultAction::Rule(rule) => {
                let target = serde_json::to_value(&rule.target).unwrap_or_default();
                let fault = serde_json::to_value(&rule.fault).unwrap_or_default();
                let mut text = format!("{} on {}", compact(&fault), compact(&target));
                if let Some(share) = rule.key_sample {
                    text.push_str(&format!(", {} of orders", percent(share)));
                }
                if let Some(p) = rule.probability {
                    text.push_str(&format!(", probability {p}"));
                }
                text
            }
            FaultAction::Canary { step, percent } => format!("canary of {step} at {percent}%"),
            FaultAction::Replay { topic } => format!("bulk replay of the run's dead letters of {topic}"),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self.action {
            FaultAction::Rule(_) => "rule",
            FaultAction::Canary { .. } => "canary",
            FaultAction::Replay { .. } => "replay",
        }
    }
}

/// `{"kind":"latency","fixed":"1s"}` as `latency fixed=1s`.
fn compact(value: &Value) -> String {
    let Some(map) = value.as_object() else { return value.to_string() };
    let mut parts = vec![map.get("kind").and_then(Value::as_str).unwrap_or("?").to_string()];
    for (key, v) in map {
        if key != "kind" {
            parts.push(format!("{key}={}", v.as_str().map_or_else(|| v.to_string(), str::to_string)));
        }
    }
    parts.join(" ")
}

#[derive(Debug, Clone)]
pub enum StopCondition {
    /// The objective's burn rate over the last `window` above `above`, once `min_orders`
    /// orders counted in the window.
    BurnRate { objective: Objective, window: Duration, above: f64, min_orders: u64 },
    /// The share of orders ending otherwise than expected over the last `window` above `above`.
    ErrorRatio { window: Duration, above: f64, min_orders: u64 },
    /// Any invariant of the live audit broken (money, double effects, a FAILED order).
    InvariantBreach,
}

impl StopCondition {
    pub fn describe(&self) -> String {
        match self {
            StopCondition::BurnRate { objective, window, above, .. } => {
                format!("burn rate of {} above {above} over {}", objective.name, humantime::format_duration(*window))
            }
            StopCondition::ErrorRatio { window, above, .. } => {
                format!("error ratio above {} over {}", percent(*above), humantime::format_duration(*window))
            }
            StopCondition::InvariantBreach => "an invariant breached".to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Rollback {
    /// Added to each fault's remaining time to make its lease.
    pub lease_margin: Duration,
}

#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// FAILED orders the scenario expects at most (default 0).
    pub max_failed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_profiles_give_the_rate_at_each_moment() {
        let minute = Duration::from_secs(60);
        assert_eq!(RateProfile::Constant(20.0).rate_at(Duration::from_secs(59), minute), 20.0);
        let ramp = RateProfile::Ramp(10.0, 70.0);
        assert_eq!(ramp.rate_at(Duration::ZERO, minute), 10.0);
        assert_eq!(ramp.rate_at(Duration::from_secs(30), minute), 40.0);
        assert_eq!(ramp.rate_at(Duration::from_secs(90), minute), 70.0);
        let steps = RateProfile::Steps(vec![(5.0, Duration::from_secs(10)), (50.0, Duration::from_secs(20))]);
        assert_eq!(steps.rate_at(Duration::from_secs(9), minute), 5.0);
        assert_eq!(steps.rate_at(Duration::from_secs(10), minute), 50.0);
        assert_eq!(steps.rate_at(Duration::from_secs(31), minute), 50.0);
    }

    #[test]
    fn the_same_seed_draws_the_same_orders() {
        let mix = [(OrderKind::Valid, 80), (OrderKind::UnshippableCountry, 20)];
        let draw = |seed| {
            let mut d = MixDraw::new(&mix, seed);
            (0..200).map(|i| d.next("r", i)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let zz = draw(7).iter().filter(|(k, _)| *k == OrderKind::UnshippableCountry).count();
        assert!((20..=60).contains(&zz), "about a fifth of 200 ship to ZZ, got {zz}");
    }
}
