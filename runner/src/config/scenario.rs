//! Game-day scenario files (`pipelines/gamedays/*.toml`): their shape, compiled into a
//! [`Scenario`] with every problem reported as `file:line:column`, as pipeline files are.
//! `schemas/gameday.schema.json` is generated from [`ScenarioSpec`].
//!
//! A scenario names the system's SLO objectives; they are read from the pipeline files of
//! the folder the scenario folder sits in (`pipelines/` for `pipelines/gamedays/`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::compile::{Bounds, Compiler};
use super::load::{parse_spec_as, read_pipeline_file, MAX_FILE_BYTES};
use super::{Diagnostic, Diagnostics, KeyPath, LoadOptions, Problem, SourceMap};
use crate::chaos::{compile_rule, RuleSpec};
use crate::services::gameday::scenario::{
    AuditSettings, Fault, FaultAction, LoadPlan, OrderKind, Phase, RateProfile, Rollback, Scenario, StopCondition,
    Threshold, ThresholdKind,
};
use crate::slo::Objective;

/// Where scenario files live, beside the pipeline files.
pub const SCENARIO_DIR: &str = "gamedays";
/// The highest rate a load may ask for, orders per second.
pub const MAX_RATE: f64 = 5_000.0;
/// The most orders one run may send.
pub const MAX_ORDERS: f64 = 1_000_000.0;
/// The longest load.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// The most phases, faults, stop conditions or hypothesis claims a scenario may have.
const MAX_ENTRIES: usize = 50;
/// The most keep-alive clients of a load.
const MAX_CLIENTS: u32 = 256;

/// One scenario file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSpec {
    /// Who this experiment is.
    #[serde(default)]
    pub scenario: ScenarioHeaderSpec,
    /// The steady state that must hold.
    #[serde(default)]
    pub hypothesis: HypothesisSpec,
    /// The orders sent to order-api.
    pub load: LoadSpec,
    /// Consecutive named stretches of the load, each judged on its own (default: one, `run`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<PhaseSpec>,
    /// The timeline: at `at`, for `for`, a chaos rule or a canary percentage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultSpec>,
    /// What ends the run early (and rolls back every fault).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_conditions: Vec<StopConditionSpec>,
    /// How faults are undone: always at the end or on abort; leases cover a game day that dies.
    #[serde(default)]
    pub rollback: RollbackSpec,
    /// What the audit after the load tolerates.
    #[serde(default)]
    pub audit: AuditSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScenarioHeaderSpec {
    /// Name of the scenario (letters, digits, `_`, `-`; default the file name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the experiment is about, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HypothesisSpec {
    /// The steady state in words, e.g. "orders keep completing within 5 s".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<String>,
    /// Named objectives of `[[slo.objectives]]`, measured over the game day's own orders.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objectives: Vec<ObjectiveClaimSpec>,
    /// Thresholds on the game day's orders.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<ThresholdSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjectiveClaimSpec {
    /// The objective's `name` in `[[slo.objectives]]`.
    pub name: String,
    /// The least share of good orders (default: the objective's own target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The phase it is judged over (default: every phase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdSpec {
    /// The least share of orders ending as their kind expects (valid ones COMPLETED, the others
    /// CANCELLED), 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_ratio: Option<f64>,
    /// A latency percentile (POST to final status), e.g. `{ percentile = 99, max = "2s" }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyThresholdSpec>,
    /// The phase it is judged over (default: every phase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LatencyThresholdSpec {
    /// Percentile, above 0 and at most 100.
    pub percentile: f64,
    /// Longest latency at that percentile, e.g. `"2s"`.
    pub max: String,
}

/// How the rate moves over the load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProfileSpec {
    /// `rate` all along.
    #[default]
    Constant,
    /// From `from_rate` to `to_rate`, linearly.
    Ramp,
    /// `steps`, one after the other.
    Steps,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    /// `"constant"` (default), `"ramp"` or `"steps"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<ProfileSpec>,
    /// Orders per second of a constant load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Ramp: the rate at the start and at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_rate: Option<f64>,
    /// Steps: each rate for its time; the load lasts their sum.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<RateStepSpec>,
    /// How long orders are sent (constant and ramp), e.g. `"60s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Keep-alive connections posting (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<u32>,
    /// Seed of the order mix and the orders' contents: the same seed sends the same orders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Shares of the kinds of orders, as weights (default: all valid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mix: Option<MixSpec>,
    /// How long the audit waits for accepted orders to reach a final status (default `"60s"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle_within: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateStepSpec {
    /// Orders per second (0 pauses the load).
    pub rate: f64,
    /// For how long, e.g. `"20s"`.
    #[serde(rename = "for")]
    pub length: String,
}

/// Weights of the kinds of orders; each is sent with probability weight ÷ sum.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MixSpec {
    /// Orders that complete when the system works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid: Option<u32>,
    /// Totals above payment's limit: declined, cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub over_limit: Option<u32>,
    /// A blocked customer: declined, cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_customer: Option<u32>,
    /// A SKU nobody stocks: rejected by inventory, refunded, cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_sku: Option<u32>,
    /// Shipping to `ZZ`: refused by shipping, compensated, cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unshippable_country: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PhaseSpec {
    /// The phase's name (letters, digits, `_`, `-`).
    pub name: String,
    /// When it ends, from the start of the load, e.g. `"20s"`; the last phase ends with the load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// The fault's name (letters, digits, `_`, `-`); its chaos rule is `gameday-<run>-<name>`.
    pub name: String,
    /// When it starts, from the start of the load, e.g. `"10s"`.
    pub at: String,
    /// How long it lasts, e.g. `"30s"`; it must end by the end of the load (not for `replay`).
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub length: Option<String>,
    /// A chaos rule as `POST /api/chaos/rules` takes it, without `id` and lease (`ttl`,
    /// `expires_at`, `start`, `end`): the game day names it and leases it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub rule: Option<serde_json::Value>,
    /// A canary percentage instead of a rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryFaultSpec>,
    /// Instead of a fault: replay the run's dead letters of a topic through dlq-admin, once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplaySpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaySpec {
    /// The dead-letter topic, e.g. `"inventory.reserve.requested.dlq"`.
    pub topic: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CanaryFaultSpec {
    /// The saga step split (default `payment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Share of orders sent to the canary, 0 to 100.
    pub percent: f64,
}

/// A condition that ends the run early.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StopConditionSpec {
    /// An objective's error budget burning faster than `above` times its allowed rate over `window`.
    BurnRate {
        objective: String,
        /// e.g. `"30s"` (default `"30s"`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window: Option<String>,
        above: f64,
        /// Fewer orders in the window than this decide nothing (default 10).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_orders: Option<u64>,
    },
    /// The share of orders ending otherwise than expected over `window` above `above` (0 to 1).
    ErrorRatio {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window: Option<String>,
        above: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_orders: Option<u64>,
    },
    /// Any invariant broken while the load runs (money not conserved, an effect twice, an order FAILED).
    InvariantBreach,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackSpec {
    /// Added to each fault's remaining time to make its lease (default `"5s"`): a game day
    /// that dies leaves its faults in force at most this long past their planned end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_margin: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditSpec {
    /// FAILED orders the scenario expects at most (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failed: Option<u64>,
}

/// The JSON Schema of scenario files, as written to `schemas/gameday.schema.json`.
pub fn scenario_schema() -> String {
    let schema = schemars::schema_for!(ScenarioSpec);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    text.push('\n');
    text
}

/// Lists the scenario files (`*.toml`) of a folder, sorted by name.
pub fn scenario_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    super::pipeline_files(dir)
}

/// Whether a file is a scenario rather than a pipeline: it sits in a `gamedays` folder.
pub fn is_scenario_file(path: &Path) -> bool {
    path.parent().and_then(Path::file_name).is_some_and(|d| d == SCENARIO_DIR)
}

/// The objectives of `[[slo.objectives]]` in the pipeline files of `dir` (files that do not
/// load give none; `runner check` reports them on their own).
pub fn objectives_in(dir: &Path) -> Vec<Objective> {
    let files = super::pipeline_files(dir).unwrap_or_default();
    files
        .iter()
        .filter_map(|file| super::load(file, &LoadOptions::default()).ok())
        .flat_map(|loaded| loaded.pipeline.slo)
        .collect()
}

/// The objectives of a folder's pipelines, read again only when one of its files changed
/// (loading every pipeline is far dearer than compiling a scenario).
pub struct ObjectivesOf {
    dir: PathBuf,
    cached: std::sync::Mutex<Option<(Vec<FileStamp>, Vec<Objective>)>>,
}

/// A pipeline file as last read: its path, modification time and length.
type FileStamp = (PathBuf, std::time::SystemTime, u64);

impl ObjectivesOf {
    pub fn new(dir: &Path) -> Self {
        ObjectivesOf { dir: dir.to_path_buf(), cached: std::sync::Mutex::new(None) }
    }

    pub fn get(&self) -> Vec<Objective> {
        let fingerprint: Vec<(PathBuf, std::time::SystemTime, u64)> = super::pipeline_files(&self.dir)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|file| {
                let meta = std::fs::metadata(&file).ok()?;
                Some((file, meta.modified().ok()?, meta.len()))
            })
            .collect();
        let mut cached = self.cached.lock().expect("objectives lock");
        match cached.as_ref() {
            Some((seen, objectives)) if *seen == fingerprint => objectives.clone(),
            _ => {
                let objectives = objectives_in(&self.dir);
                *cached = Some((fingerprint, objectives.clone()));
                objectives
            }
        }
    }
}

/// The folder whose pipelines a scenario file's objectives come from: the parent of its folder.
pub fn system_dir_of(scenario: &Path) -> PathBuf {
    let folder = scenario.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    folder.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf()
}

/// Reads and compiles one scenario file, naming the objectives of the pipelines beside its folder.
pub fn load_scenario(path: &Path) -> Result<Scenario, Diagnostics> {
    let text = read_pipeline_file(path)
        .map_err(|message| Diagnostics(vec![Diagnostic { file: path.to_path_buf(), line: 1, column: 1, message }]))?;
    load_scenario_text(path, &text, &objectives_in(&system_dir_of(path)))
}

/// As [`load_scenario`], from text, with the system's objectives given.
pub fn load_scenario_text(path: &Path, text: &str, objectives: &[Objective]) -> Result<Scenario, Diagnostics> {
    if text.len() as u64 > MAX_FILE_BYTES {
        let message =
            format!("the file is {} bytes; scenario files are limited to {MAX_FILE_BYTES} bytes (1 MiB)", text.len());
        return Err(Diagnostics(vec![Diagnostic { file: path.to_path_buf(), line: 1, column: 1, message }]));
    }
    let source = SourceMap::new(path, text);
    let shaped = parse_spec_as::<ScenarioSpec>(&source, text).map_err(Diagnostics)?;
    let Some(document) = &shaped.document else { return Err(Diagnostics(shaped.problems)) };
    let spec: ScenarioSpec = match toml::Value::Table(document.clone()).try_into() {
        Ok(spec) => spec,
        Err(e) => return Err(Diagnostics(vec![source.at_offset(0, format!("invalid scenario: {e}"))])),
    };
    let default_name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("scenario");
    let problems = match compile_scenario(&spec, default_name, objectives, text) {
        Ok(scenario) if shaped.problems.is_empty() => return Ok(scenario),
        Ok(_) => Vec::new(),
        Err(problems) => problems,
    };
    Err(shaped.with_compile_problems(&source, problems))
}

/// Compiles a scenario, or lists every problem by key path.
pub fn compile_scenario(
    spec: &ScenarioSpec,
    default_name: &str,
    objectives: &[Objective],
    source: &str,
) -> Result<Scenario, Vec<Problem>> {
    let mut c = Compiler::new();
    // Destructured without `..`: a new section does not compile until it has a pass here.
    let ScenarioSpec { scenario, hypothesis, load, phases, faults, stop_conditions, rollback, audit } = spec;
    let name = scenario.name.clone().unwrap_or_else(|| default_name.to_string());
    c.label(KeyPath::section("scenario").key("name"), &name);
    if name.len() > 100 {
        c.problem(KeyPath::section("scenario").key("name"), "use at most 100 characters");
    }
    // Each entry costs the run work every second: a scenario is a page, not a database.
    for (key, count) in [
        ("phases", phases.len()),
        ("faults", faults.len()),
        ("stop_conditions", stop_conditions.len()),
        ("hypothesis", hypothesis.objectives.len() + hypothesis.thresholds.len()),
    ] {
        if count > MAX_ENTRIES {
            c.problem(KeyPath::section(key), format!("{count} entries; a scenario has at most {MAX_ENTRIES} of these"));
        }
    }
    let load = compile_load(&mut c, load);
    let phases = compile_phases(&mut c, phases, load.duration);
    let phase_names: BTreeSet<String> = phases.iter().map(|p| p.name.clone()).collect();
    let hypothesis_claims = compile_hypothesis(&mut c, hypothesis, objectives, &phase_names);
    let faults = compile_faults(&mut c, faults, load.duration);
    let stop_conditions = compile_stops(&mut c, stop_conditions, objectives);
    let lease_margin = c.duration_in(
        KeyPath::section("rollback").key("lease_margin"),
        rollback.lease_margin.as_deref(),
        Duration::from_secs(5),
        Bounds {
            min: Duration::from_secs(1),
            max: Duration::from_secs(300),
            why_min: "a lease must outlast the call that removes it",
        },
    );
    let problems = c.into_problems();
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Scenario {
        name,
        description: scenario.description.clone(),
        hypothesis_text: hypothesis.statement.clone(),
        load,
        phases,
        hypothesis: hypothesis_claims,
        faults,
        stop_conditions,
        rollback: Rollback { lease_margin },
        audit: AuditSettings { max_failed: audit.max_failed.unwrap_or(0) },
        source: source.to_string(),
    })
}

/// A rate of orders per second: finite, 0 (`zero_ok`) or above, at most [`MAX_RATE`].
fn rate(c: &mut Compiler, at: KeyPath, value: Option<f64>, zero_ok: bool) -> f64 {
    let Some(rate) = value else {
        c.problem(at, "a rate (orders per second) is needed here");
        return 0.0;
    };
    let low_ok = if zero_ok { rate >= 0.0 } else { rate > 0.0 };
    if !rate.is_finite() || !low_ok || rate > MAX_RATE {
        let low = if zero_ok { "0" } else { "above 0" };
        c.problem(at, format!("{rate} is not a usable rate; use {low} to {MAX_RATE} orders per second"));
        return 0.0;
    }
    rate
}

fn compile_load(c: &mut Compiler, spec: &LoadSpec) -> LoadPlan {
    let at = KeyPath::section("load");
    let load_bounds = Bounds {
        min: Duration::from_secs(1),
        max: MAX_DURATION,
        why_min: "a load shorter than a second measures nothing",
    };
    let (profile, duration) = match spec.profile.unwrap_or_default() {
        ProfileSpec::Constant => {
            let r = rate(c, at.key("rate"), spec.rate, false);
            (RateProfile::Constant(r), duration_required(c, at.key("duration"), spec.duration.as_deref(), load_bounds))
        }
        ProfileSpec::Ramp => {
            let from = rate(c, at.key("from_rate"), spec.from_rate, true);
            let to = rate(c, at.key("to_rate"), spec.to_rate, true);
            (
                RateProfile::Ramp(from, to),
                duration_required(c, at.key("duration"), spec.duration.as_deref(), load_bounds),
            )
        }
        ProfileSpec::Steps => {
            if spec.steps.is_empty() {
                c.problem(at.key("profile"), "a `steps` profile needs [[load.steps]] (each a `rate` and a `for`)");
            }
            if spec.duration.is_some() {
                c.problem(at.key("duration"), "a `steps` load lasts the sum of its steps; remove `duration`");
            }
            let mut total = Duration::ZERO;
            let steps = spec
                .steps
                .iter()
                .enumerate()
                .map(|(i, step)| {
                    let r = rate(c, at.key("steps").index(i).key("rate"), Some(step.rate), true);
                    let length = c.duration_in(
                        at.key("steps").index(i).key("for"),
                        Some(&step.length),
                        Duration::from_secs(1),
                        load_bounds,
                    );
                    total = total.saturating_add(length);
                    (r, length)
                })
                .collect();
            if total > MAX_DURATION {
                c.problem(at.key("steps"), "the steps last more than 24 hours; shorten them");
            }
            (RateProfile::Steps(steps), total.min(MAX_DURATION))
        }
    };
    for (key, given) in
        [("rate", spec.rate.is_some()), ("from_rate", spec.from_rate.is_some()), ("to_rate", spec.to_rate.is_some())]
    {
        let used = match profile {
            RateProfile::Constant(_) => key == "rate",
            RateProfile::Ramp(..) => key != "rate",
            RateProfile::Steps(_) => false,
        };
        if given && !used {
            c.problem(at.key(key), format!("`{key}` does not belong to this profile; remove it or change `profile`"));
        }
    }
    if !spec.steps.is_empty() && !matches!(profile, RateProfile::Steps(_)) {
        c.problem(at.key("steps"), "steps belong to `profile = \"steps\"`; set it or remove them");
    }
    // The mean rate times the duration: what one run may send at most.
    let mean_rate = match &profile {
        RateProfile::Constant(r) => *r,
        RateProfile::Ramp(a, b) => (a + b) / 2.0,
        RateProfile::Steps(steps) => {
            let secs = duration.as_secs_f64().max(1e-9);
            steps.iter().map(|(r, d)| r * d.as_secs_f64()).sum::<f64>() / secs
        }
    };
    if mean_rate * duration.as_secs_f64() > MAX_ORDERS {
        c.problem(at.clone(), format!("this load sends more than {MAX_ORDERS} orders; lower the rate or the duration"));
    }
    let clients = spec.clients.unwrap_or(8);
    if clients == 0 || clients > MAX_CLIENTS {
        c.problem(at.key("clients"), format!("clients = {clients} is out of range: 1 to {MAX_CLIENTS}"));
    }
    let mix = compile_mix(c, spec.mix.as_ref());
    let settle_within = c.duration_in(
        at.key("settle_within"),
        spec.settle_within.as_deref(),
        Duration::from_secs(60),
        Bounds { min: Duration::from_secs(1), max: Duration::from_secs(3600), why_min: "orders need time to settle" },
    );
    LoadPlan {
        profile,
        duration,
        clients: clients.clamp(1, MAX_CLIENTS) as usize,
        seed: spec.seed.unwrap_or(1),
        mix,
        settle_within,
    }
}

fn duration_required(c: &mut Compiler, at: KeyPath, text: Option<&str>, bounds: Bounds) -> Duration {
    if text.is_none() {
        c.problem(at.clone(), "how long the load lasts is needed, e.g. duration = \"60s\"");
        return bounds.min;
    }
    c.duration_in(at, text, bounds.min, bounds)
}

fn compile_mix(c: &mut Compiler, spec: Option<&MixSpec>) -> Vec<(OrderKind, u32)> {
    let Some(spec) = spec else { return vec![(OrderKind::Valid, 1)] };
    let MixSpec { valid, over_limit, blocked_customer, unknown_sku, unshippable_country } = spec;
    let mix: Vec<(OrderKind, u32)> = [
        (OrderKind::Valid, valid),
        (OrderKind::OverLimit, over_limit),
        (OrderKind::BlockedCustomer, blocked_customer),
        (OrderKind::UnknownSku, unknown_sku),
        (OrderKind::UnshippableCountry, unshippable_country),
    ]
    .into_iter()
    .map(|(kind, weight)| (kind, weight.unwrap_or(0)))
    .collect();
    let at = KeyPath::section("load").key("mix");
    let total: u64 = mix.iter().map(|(_, w)| u64::from(*w)).sum();
    if total == 0 {
        c.problem(at, "every weight is 0: give at least one kind of order a weight, e.g. valid = 1");
    } else if total > 1_000_000 {
        c.problem(at, "the weights add up to more than 1,000,000; use smaller numbers (they are shares)");
    }
    mix
}

fn compile_phases(c: &mut Compiler, specs: &[PhaseSpec], duration: Duration) -> Vec<Phase> {
    if specs.is_empty() {
        return vec![Phase { name: "run".into(), from: Duration::ZERO, to: duration }];
    }
    let mut phases = Vec::new();
    let mut from = Duration::ZERO;
    let mut names = BTreeSet::new();
    for (i, spec) in specs.iter().enumerate() {
        let at = KeyPath::section("phases").index(i);
        c.label(at.key("name"), &spec.name);
        if !names.insert(spec.name.clone()) {
            c.problem(at.key("name"), format!("phase `{}` is declared twice", spec.name));
        }
        let last = i + 1 == specs.len();
        let to = match (&spec.until, last) {
            (None, true) => duration,
            (None, false) => {
                c.problem(at.clone(), "every phase but the last needs `until` (when it ends, e.g. \"20s\")");
                from
            }
            (Some(text), _) => {
                let until = c.duration(at.key("until"), Some(text), duration);
                if until <= from || until > duration {
                    c.problem(
                        at.key("until"),
                        format!(
                            "phases follow each other within the load: this one must end after {} and by {}",
                            humantime::format_duration(from),
                            humantime::format_duration(duration)
                        ),
                    );
                }
                until
            }
        };
        phases.push(Phase { name: spec.name.clone(), from, to });
        from = to;
    }
    phases
}

fn find_objective(c: &mut Compiler, at: KeyPath, name: &str, objectives: &[Objective]) -> Option<Objective> {
    let found = objectives.iter().find(|o| o.name == name).cloned();
    if found.is_none() {
        let known: Vec<&str> = objectives.iter().map(|o| o.name.as_str()).collect();
        let known = if known.is_empty() {
            "none are declared beside the scenario folder".to_string()
        } else {
            known.join(", ")
        };
        c.problem(at, format!("no objective `{name}` in the system's [[slo.objectives]] ({known})"));
    }
    found
}

fn check_phase(c: &mut Compiler, at: KeyPath, phase: &Option<String>, phases: &BTreeSet<String>) {
    if let Some(name) = phase {
        if !phases.contains(name) {
            let known: Vec<&str> = phases.iter().map(String::as_str).collect();
            c.problem(at, format!("no phase `{name}`; the phases are {}", known.join(", ")));
        }
    }
}

fn share(c: &mut Compiler, at: KeyPath, value: f64) -> f64 {
    if !(value.is_finite() && (0.0..=1.0).contains(&value)) {
        c.problem(at, format!("{value} is not a share; use 0 to 1 (0.99 is 99%)"));
        return 1.0;
    }
    value
}

fn compile_hypothesis(
    c: &mut Compiler,
    spec: &HypothesisSpec,
    objectives: &[Objective],
    phases: &BTreeSet<String>,
) -> Vec<Threshold> {
    let mut claims = Vec::new();
    let at = KeyPath::section("hypothesis");
    for (i, claim) in spec.objectives.iter().enumerate() {
        let at = at.key("objectives").index(i);
        check_phase(c, at.key("phase"), &claim.phase, phases);
        let objective = find_objective(c, at.key("name"), &claim.name, objectives);
        let min = claim.min.map(|m| share(c, at.key("min"), m));
        if let Some(objective) = objective {
            let min = min.unwrap_or(objective.objective);
            claims.push(Threshold { phase: claim.phase.clone(), kind: ThresholdKind::Objective { objective, min } });
        }
    }
    for (i, threshold) in spec.thresholds.iter().enumerate() {
        let at = at.key("thresholds").index(i);
        check_phase(c, at.key("phase"), &threshold.phase, phases);
        match (threshold.success_ratio, &threshold.latency) {
            (Some(min), None) => {
                let min = share(c, at.key("success_ratio"), min);
                claims.push(Threshold { phase: threshold.phase.clone(), kind: ThresholdKind::SuccessRatio(min) });
            }
            (None, Some(latency)) => {
                let p = latency.percentile;
                if !(p.is_finite() && p > 0.0 && p <= 100.0) {
                    c.problem(
                        at.key("latency").key("percentile"),
                        format!("{p} is not a percentile; use above 0 to 100, e.g. 99"),
                    );
                }
                let max = c.duration_in(
                    at.key("latency").key("max"),
                    Some(&latency.max),
                    Duration::from_secs(1),
                    Bounds::WAIT,
                );
                claims.push(Threshold {
                    phase: threshold.phase.clone(),
                    kind: ThresholdKind::Latency { percentile: p, max },
                });
            }
            _ => c.problem(
                at,
                "a threshold is either `success_ratio = 0.99` or `latency = { percentile = 99, max = \"2s\" }`",
            ),
        }
    }
    claims
}

fn compile_faults(c: &mut Compiler, specs: &[FaultSpec], duration: Duration) -> Vec<Fault> {
    let mut faults = Vec::new();
    let mut names = BTreeSet::new();
    for (i, spec) in specs.iter().enumerate() {
        let at = KeyPath::section("faults").index(i);
        c.label(at.key("name"), &spec.name);
        if spec.name.len() > 60 {
            c.problem(at.key("name"), "use at most 60 characters (it becomes part of a rule id)");
        }
        if !names.insert(spec.name.clone()) {
            c.problem(at.key("name"), format!("fault `{}` is declared twice", spec.name));
        }
        let start = c.duration(at.key("at"), Some(&spec.at), Duration::ZERO);
        let is_replay = spec.replay.is_some();
        let length = match (&spec.length, is_replay) {
            (Some(_), true) => {
                c.problem(at.key("for"), "a replay happens once; remove `for`");
                Duration::ZERO
            }
            (None, true) => Duration::ZERO,
            (None, false) => {
                c.problem(at.clone(), "how long the fault lasts is needed, e.g. for = \"30s\"");
                Duration::from_secs(1)
            }
            (Some(text), false) => c.duration_in(
                at.key("for"),
                Some(text),
                Duration::from_secs(1),
                Bounds {
                    min: Duration::from_secs(1),
                    max: MAX_DURATION,
                    why_min: "a fault shorter than a second cannot be applied and removed",
                },
            ),
        };
        if start.saturating_add(length) > duration || (is_replay && start >= duration) {
            c.problem(
                at.key(if is_replay { "at" } else { "for" }),
                format!(
                    "the entry ends at {}, after the load ({}); every entry of the timeline ends by the end of the load",
                    humantime::format_duration(start.saturating_add(length)),
                    humantime::format_duration(duration)
                ),
            );
        }
        let action = match (&spec.rule, &spec.canary, &spec.replay) {
            (None, None, Some(replay)) => {
                c.event_type(at.key("replay").key("topic"), &replay.topic);
                Some(FaultAction::Replay { topic: replay.topic.clone() })
            }
            (Some(rule), None, None) => compile_fault_rule(c, at.key("rule"), &spec.name, rule, length),
            (None, Some(canary), None) => {
                let percent = canary.percent;
                if !(percent.is_finite() && (0.0..=100.0).contains(&percent)) {
                    c.problem(at.key("canary").key("percent"), format!("{percent} is not a percentage; use 0 to 100"));
                }
                let step = canary.step.clone().unwrap_or_else(|| "payment".into());
                c.label(at.key("canary").key("step"), &step);
                Some(FaultAction::Canary { step, percent })
            }
            _ => {
                c.problem(
                    at.clone(),
                    "an entry of the timeline is one of a chaos `rule = { … }`, a `canary = { percent = … }` or a `replay = { topic = … }`",
                );
                None
            }
        };
        if let Some(action) = action {
            faults.push(Fault { name: spec.name.clone(), at: start, length, action });
        }
    }
    faults
}

/// A fault's chaos rule: chaos-svc's own shape and checks, with the id and lease left to the run.
fn compile_fault_rule(
    c: &mut Compiler,
    at: KeyPath,
    name: &str,
    rule: &serde_json::Value,
    length: Duration,
) -> Option<FaultAction> {
    let Some(table) = rule.as_object() else {
        c.problem(at, "a rule is a table, e.g. rule = { target = { kind = \"service\", service = \"payment-svc\" }, fault = { kind = \"error\" } }");
        return None;
    };
    for key in ["id", "ttl", "expires_at", "start", "end"] {
        if table.contains_key(key) {
            c.problem(
                at.key(key),
                format!(
                    "`{key}` is set by the game day (it names each rule and leases it for the fault's time); remove it"
                ),
            );
        }
    }
    let mut table = table.clone();
    for key in ["id", "ttl", "expires_at", "start", "end"] {
        table.remove(key);
    }
    table.insert("id".into(), serde_json::Value::String(format!("gameday-{name}")));
    // Checked with a lease as long as the fault (the run's lease adds its margin).
    table.insert("ttl".into(), serde_json::Value::String(format!("{}ms", length.as_millis().max(1))));
    let spec: RuleSpec = match serde_path_to_error::deserialize(serde_json::Value::Object(table)) {
        Ok(spec) => spec,
        Err(e) => {
            let path = e.path().to_string();
            let place = if path == "." { at } else { at.join(&KeyPath::parse(&path)) };
            c.problem(place, format!("invalid rule: {}", e.inner()));
            return None;
        }
    };
    if let Err(problems) = compile_rule(&spec) {
        for problem in problems {
            c.problem(at.join(&KeyPath::parse(&problem.field)), format!("invalid rule: {}", problem.message));
        }
        return None;
    }
    Some(FaultAction::Rule(Box::new(spec)))
}

fn compile_stops(c: &mut Compiler, specs: &[StopConditionSpec], objectives: &[Objective]) -> Vec<StopCondition> {
    let window_bounds = Bounds {
        min: Duration::from_secs(1),
        max: Duration::from_secs(3600),
        why_min: "a window shorter than a second holds no orders",
    };
    let mut stops = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let at = KeyPath::section("stop_conditions").index(i);
        match spec {
            StopConditionSpec::BurnRate { objective, window, above, min_orders } => {
                let window = c.duration_in(at.key("window"), window.as_deref(), Duration::from_secs(30), window_bounds);
                if !(above.is_finite() && *above > 0.0) {
                    c.problem(
                        at.key("above"),
                        format!("{above} is not a burn rate; use above 0 (1 spends the budget exactly in its window)"),
                    );
                }
                if let Some(objective) = find_objective(c, at.key("objective"), objective, objectives) {
                    stops.push(StopCondition::BurnRate {
                        objective,
                        window,
                        above: *above,
                        min_orders: min_orders.unwrap_or(10),
                    });
                }
            }
            StopConditionSpec::ErrorRatio { window, above, min_orders } => {
                let window = c.duration_in(at.key("window"), window.as_deref(), Duration::from_secs(30), window_bounds);
                let above = share(c, at.key("above"), *above);
                stops.push(StopCondition::ErrorRatio { window, above, min_orders: min_orders.unwrap_or(10) });
            }
            StopConditionSpec::InvariantBreach => stops.push(StopCondition::InvariantBreach),
        }
    }
    stops
}
