//! What a game-day run records: its state while it runs, the timeline sampled every second,
//! the faults it applied, the hypothesis per phase, the audit, the verdict. Stored as JSON in
//! `gameday_runs`, served by the API, rendered by [`super::report`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Load and faults are going on.
    Running,
    /// The load is over; orders are settling and the audit runs.
    Auditing,
    /// Ended: the hypothesis held and the audit is green.
    Passed,
    /// Ended: the hypothesis did not hold, or the audit found a breach.
    Failed,
    /// Ended early by a stop condition or by `POST …/abort`.
    Aborted,
    /// The service running it stopped in the middle (found `running` at the next start).
    Interrupted,
}

impl RunState {
    pub fn is_over(self) -> bool {
        !matches!(self, RunState::Running | RunState::Auditing)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Auditing => "auditing",
            RunState::Passed => "passed",
            RunState::Failed => "failed",
            RunState::Aborted => "aborted",
            RunState::Interrupted => "interrupted",
        }
    }
}

/// One game-day run, live or finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    pub id: String,
    pub scenario: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The steady state the scenario claims, in its author's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hypothesis_text: Option<String>,
    pub state: RunState,
    /// Who started it (the admin token's name).
    pub started_by: String,
    pub started_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at_ms: Option<i64>,
    /// How long the load is planned to last.
    pub planned_ms: u64,
    /// Time since the start.
    pub elapsed_ms: u64,
    /// The phase the load is in (live), or the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The rate the load is being sent at now (orders/s).
    pub rate: f64,
    pub orders: OrderCounts,
    /// The highest burn rate among the stop conditions' objectives, now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burn_rate: Option<f64>,
    pub faults: Vec<FaultRecord>,
    /// One sample per second of load, then of settling.
    pub samples: Vec<Sample>,
    pub phases: Vec<PhaseVerdict>,
    /// The stop condition that aborted the run, or the operator's abort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopRecord>,
    pub audit: Vec<AuditCheck>,
    /// Dead letters written during the run, by topic and kind.
    pub dead_letters: BTreeMap<String, i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// What went wrong running the game day itself (the system unreachable, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// Orders of the run, by where they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderCounts {
    /// POSTs sent.
    pub sent: u64,
    /// Answered 202.
    pub accepted: u64,
    /// Answered anything else, or not at all.
    pub refused: u64,
    /// Reached a final status.
    pub settled: u64,
    pub completed: u64,
    pub cancelled: u64,
    pub failed: u64,
    /// Accepted orders that ended otherwise than their kind expects (a valid order cancelled,
    /// a declined one completed).
    pub unexpected: u64,
}

/// A fault of the timeline and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRecord {
    pub name: String,
    /// `rule` (a chaos rule) or `canary` (a canary percentage).
    pub kind: String,
    /// One line saying what it does, e.g. "latency 800ms on handler payment.charge, 25% of orders".
    pub summary: String,
    /// Planned start and length, from the start of the run.
    pub at_ms: u64,
    pub for_ms: u64,
    /// The chaos rule's id while it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    /// When it was applied and removed, from the start of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_ms: Option<u64>,
    /// The lease it was given: it ends by itself this long after it was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ms: Option<u64>,
    /// Injections counted for its rule.
    pub injections: u64,
    /// `planned`, `active`, `removed`, `skipped` (the run ended first) or `failed`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One second of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    /// Seconds since the start (the sample covers `[t - 1, t)`).
    pub t: u64,
    /// Orders sent and accepted in this second.
    pub sent: u64,
    /// Orders that reached a final status in this second, and how many of them ended badly
    /// for the scenario (otherwise than their kind expects).
    pub settled: u64,
    pub bad: u64,
    /// Latency (POST → final status) of the orders settled in this second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    /// Share of bad orders over the stop conditions' window, ending now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_ratio: Option<f64>,
    /// The highest burn rate of the objectives watched, over its window, now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burn_rate: Option<f64>,
}

/// The hypothesis checked over one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseVerdict {
    pub name: String,
    pub from_ms: u64,
    pub to_ms: u64,
    /// Orders sent in the phase and settled.
    pub orders: u64,
    pub checks: Vec<HypothesisCheck>,
    pub held: bool,
}

/// One threshold of the hypothesis over one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HypothesisCheck {
    /// What is claimed, e.g. "order-latency ≥ 99%" or "p99 ≤ 2s".
    pub name: String,
    /// The threshold and the measured value, in the check's unit (a ratio, or ms).
    pub expected: String,
    pub measured: String,
    pub held: bool,
}

/// Why the run ended early.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopRecord {
    /// The stop condition (`burn_rate order-latency > 10 over 30s`), or `abort by <name>`.
    pub condition: String,
    pub at_ms: u64,
    pub detail: String,
}

/// One invariant of the audit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditCheck {
    /// A stable name, e.g. `every-order-final`, `money-conserved`.
    pub name: String,
    pub passed: bool,
    /// One sentence with the figures.
    pub detail: String,
    /// The figures by name.
    pub numbers: BTreeMap<String, f64>,
}

/// The end of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    /// The hypothesis held in every phase.
    pub hypothesis_held: bool,
    /// Every audit check passed.
    pub audit_passed: bool,
    /// `passed`, `failed` or `aborted`.
    pub outcome: RunState,
    pub summary: String,
}
