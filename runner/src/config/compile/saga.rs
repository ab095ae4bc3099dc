//! The `[saga]` pass: steps, compensations, timeouts and retries, each reply meaning one
//! thing, and the canary of one step.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{Backoff, Bounds, Compiler};
use crate::config::spec::{
    CanaryAnalysisSpec, CanarySpec, CompensationSpec, RetrySpec, SagaSpec, StepMappingSpec, StepSpec,
};
use crate::diagnostic::KeyPath;
use crate::saga::machine::{CompensationDefinition, RetryPolicy, SagaDefinition, StepDefinition};
use crate::saga::{CanaryAnalysis, CanaryConfig, SagaConfig};

/// Each reply type must identify exactly one step's outcome: who claimed which.
#[derive(Default)]
struct Replies(BTreeMap<String, String>);

impl Replies {
    fn claim(&mut self, c: &mut Compiler, at: KeyPath, reply: &str, what: String) {
        c.event_type(at.clone(), reply);
        if let Some(owner) = self.0.insert(reply.to_string(), what) {
            c.problem(at, format!("reply `{reply}` is already the {owner}; each reply type must mean one thing"));
        }
    }
}

pub(super) fn compile_saga(c: &mut Compiler, spec: &SagaSpec, service: &str) -> SagaConfig {
    let at = KeyPath::section("saga");
    c.event_type(at.key("trigger"), &spec.trigger);
    c.event_type(at.key("on_completed"), &spec.on_completed);
    c.event_type(at.key("on_cancelled"), &spec.on_cancelled);
    c.event_type(at.key("on_failed"), &spec.on_failed);
    if spec.steps.is_empty() {
        c.problem(at.clone(), "a saga needs at least one [[saga.steps]]");
    }
    // What the saga sends must not start it again: every end (or step) would be a new saga.
    let trigger = &spec.trigger;
    let ends =
        [("on_completed", &spec.on_completed), ("on_cancelled", &spec.on_cancelled), ("on_failed", &spec.on_failed)];
    for (key, event) in ends {
        if event == trigger {
            c.problem(
                at.key(key),
                format!("`{event}` is also the trigger: each end would start the saga again; use another event type"),
            );
        }
    }
    for (i, step) in spec.steps.iter().enumerate() {
        let step_at = at.key("steps").index(i);
        let requests = std::iter::once((step_at.key("request"), &step.request))
            .chain(step.compensation.iter().map(|comp| (step_at.key("compensation").key("request"), &comp.request)));
        for (request_at, request) in requests {
            if request == trigger {
                c.problem(
                    request_at,
                    format!(
                        "`{request}` is also the trigger: sending it would start another saga; use another event type"
                    ),
                );
            }
        }
    }
    let mut seen_names = BTreeSet::new();
    let mut replies = Replies::default();
    let mut steps = Vec::new();
    for (i, step) in spec.steps.iter().enumerate() {
        let at = at.key("steps").index(i);
        if !seen_names.insert(step.name.clone()) {
            c.problem(at.key("name"), format!("step name `{}` is used twice; step names must be unique", step.name));
        }
        steps.push(compile_step(c, step, &at, &mut replies));
    }
    let canary = spec.canary.as_ref().and_then(|canary| compile_canary(c, canary, &steps));
    let step_mapping = compile_step_mapping(c, &spec.step_mapping, &steps, &at);
    let max_in_flight = c.max_in_flight(at.key("max_in_flight"), spec.max_in_flight);
    let max_group = c.max_group(at.key("max_group"), spec.max_group, max_in_flight);
    SagaConfig {
        canary,
        step_mapping,
        group: spec.group.clone().unwrap_or_else(|| service.to_string()),
        max_in_flight,
        max_group,
        groups_in_flight: c.groups_in_flight(at.key("groups_in_flight"), spec.groups_in_flight, max_group),
        tick: c.duration_in(at.key("tick"), spec.tick.as_deref(), Duration::from_millis(200), Bounds::INTERVAL),
        definition: SagaDefinition {
            name: spec.name.clone().unwrap_or_else(|| "saga".to_string()),
            trigger: spec.trigger.clone(),
            on_completed: spec.on_completed.clone(),
            on_cancelled: spec.on_cancelled.clone(),
            on_failed: spec.on_failed.clone(),
            steps,
        },
    }
}

/// Mappings at most in one `[saga]`.
const MAX_STEP_MAPPINGS: usize = 100;

/// `[[saga.step_mapping]]`: each `from` a step this definition no longer has (once), each
/// `to` one of its steps.
fn compile_step_mapping(
    c: &mut Compiler,
    mappings: &[StepMappingSpec],
    steps: &[StepDefinition],
    at: &KeyPath,
) -> BTreeMap<String, String> {
    let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
    if mappings.len() > MAX_STEP_MAPPINGS {
        c.problem(at.key("step_mapping"), format!("{} step mappings; at most {MAX_STEP_MAPPINGS}", mappings.len()));
        return BTreeMap::new();
    }
    let mut compiled = BTreeMap::new();
    for (i, mapping) in mappings.iter().enumerate() {
        let at = at.key("step_mapping").index(i);
        if names.contains(&mapping.from.as_str()) {
            c.problem(
                at.key("from"),
                format!(
                    "`{}` is a step of this saga: a mapping moves instances off a step the definition no longer has",
                    shown(&mapping.from)
                ),
            );
        } else if compiled.contains_key(&mapping.from) {
            c.problem(at.key("from"), format!("step `{}` is mapped twice; map each step once", shown(&mapping.from)));
        }
        if !names.contains(&mapping.to.as_str()) {
            c.problem(
                at.key("to"),
                format!("`{}` is not a step of this saga; its steps are {}", shown(&mapping.to), names.join(", ")),
            );
        }
        compiled.insert(mapping.from.clone(), mapping.to.clone());
    }
    compiled
}

/// A name from the file as a message shows it: at most 60 characters, no control characters.
fn shown(name: &str) -> String {
    let clean: String = name.chars().map(|c| if c.is_control() { '?' } else { c }).collect();
    if clean.chars().count() > 60 {
        format!("{}…", clean.chars().take(60).collect::<String>())
    } else {
        clean
    }
}

fn compile_step(c: &mut Compiler, step: &StepSpec, at: &KeyPath, replies: &mut Replies) -> StepDefinition {
    let name = &step.name;
    c.event_type(at.key("request"), &step.request);
    replies.claim(c, at.key("success"), &step.success, format!("success of step `{name}`"));
    if let Some(failure) = &step.failure {
        replies.claim(c, at.key("failure"), failure, format!("failure of step `{name}`"));
    }
    let timeout = required_timeout(c, at, step.timeout.as_deref(), &format!("step `{name}`"));
    let retry = retry_policy(c, &at.key("retry"), step.retry.as_ref());
    let side_effect = step.side_effect.unwrap_or(true);
    let irreversible = step.irreversible.unwrap_or(false);
    if side_effect && !irreversible && step.compensation.is_none() {
        c.problem(
            at.clone(),
            format!("step `{name}` has a side effect but no compensation; add [saga.steps.compensation] or set `irreversible = true`"),
        );
    }
    let compensation =
        step.compensation.as_ref().map(|comp| compile_compensation(c, comp, &at.key("compensation"), name, replies));
    StepDefinition {
        name: name.clone(),
        request: step.request.clone(),
        success: step.success.clone(),
        failure: step.failure.clone(),
        timeout,
        retry,
        side_effect,
        irreversible,
        compensation,
    }
}

fn compile_compensation(
    c: &mut Compiler,
    comp: &CompensationSpec,
    at: &KeyPath,
    step: &str,
    replies: &mut Replies,
) -> CompensationDefinition {
    c.event_type(at.key("request"), &comp.request);
    replies.claim(c, at.key("success"), &comp.success, format!("compensation success of step `{step}`"));
    if let Some(failure) = &comp.failure {
        replies.claim(c, at.key("failure"), failure, format!("compensation failure of step `{step}`"));
    }
    CompensationDefinition {
        request: comp.request.clone(),
        success: comp.success.clone(),
        failure: comp.failure.clone(),
        timeout: required_timeout(c, at, comp.timeout.as_deref(), &format!("compensation of step `{step}`")),
        retry: retry_policy(c, &at.key("retry"), comp.retry.as_ref()),
    }
}

/// Every request the saga sends waits for its reply a bounded time: the timeout is required.
fn required_timeout(c: &mut Compiler, at: &KeyPath, text: Option<&str>, what: &str) -> Duration {
    let default = Duration::from_secs(30);
    if text.is_none() {
        c.problem(at.clone(), format!("{what} has no timeout; add e.g. `timeout = \"10s\"`"));
    }
    c.duration_in(at.key("timeout"), text, default, Bounds::WAIT)
}

fn retry_policy(c: &mut Compiler, at: &KeyPath, spec: Option<&RetrySpec>) -> RetryPolicy {
    let default = Backoff { attempts: 3, backoff: Duration::from_millis(500), max_backoff: Duration::from_secs(30) };
    let Backoff { attempts, backoff, max_backoff } = match spec {
        Some(spec) => c.backoff(at, spec.attempts, spec.backoff.as_deref(), spec.max_backoff.as_deref(), default),
        None => default,
    };
    RetryPolicy { attempts, backoff, max_backoff }
}

fn compile_canary(c: &mut Compiler, spec: &CanarySpec, steps: &[StepDefinition]) -> Option<CanaryConfig> {
    let at = KeyPath::section("saga").key("canary");
    let percent = spec.percent.unwrap_or(0.0);
    if !(0.0..=100.0).contains(&percent) {
        c.problem(at.key("percent"), format!("{percent} is not a percentage; use 0 to 100"));
    }
    let analysis = spec.analysis.as_ref().map(|a| compile_analysis(c, a, &at.key("analysis")));
    let Some(step) = steps.iter().find(|s| s.name == spec.step) else {
        let known: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        c.problem(at.key("step"), format!("no step named `{}`; steps: {}", spec.step, known.join(", ")));
        return None;
    };
    let topic = spec.topic.clone().unwrap_or_else(|| format!("{}.canary", step.request));
    c.event_type(at.key("topic"), &topic);
    if topic == step.request {
        c.problem(at.key("topic"), "the canary topic must differ from the step's request topic");
    }
    Some(CanaryConfig { step: step.name.clone(), request: step.request.clone(), topic, percent, analysis })
}

fn compile_analysis(c: &mut Compiler, a: &CanaryAnalysisSpec, at: &KeyPath) -> CanaryAnalysis {
    let steps = a.steps.clone().unwrap_or_else(|| vec![10.0, 25.0, 50.0, 100.0]);
    if steps.is_empty() || steps.windows(2).any(|w| w[1] <= w[0]) || steps.iter().any(|s| !(0.0..=100.0).contains(s)) {
        c.problem(at.key("steps"), "steps must be ascending percentages between 0 and 100, e.g. [10, 25, 50, 100]");
    }
    let max_failure_rate_increase = a.max_failure_rate_increase.unwrap_or(0.05);
    if !(0.0..=1.0).contains(&max_failure_rate_increase) {
        c.problem(at.key("max_failure_rate_increase"), "use a share between 0 and 1, e.g. 0.05");
    }
    let max_latency_ratio = a.max_latency_ratio.unwrap_or(1.5);
    if max_latency_ratio < 1.0 {
        c.problem(at.key("max_latency_ratio"), "a ratio below 1 would fail a canary as fast as stable; use e.g. 1.5");
    }
    let interval = c.duration_in(at.key("interval"), a.interval.as_deref(), Duration::from_secs(30), Bounds::INTERVAL);
    let window = c.duration(at.key("window"), a.window.as_deref(), Duration::from_secs(120));
    CanaryAnalysis {
        interval: interval.max(Duration::from_millis(100)),
        window,
        min_requests: a.min_requests.unwrap_or(20),
        max_failure_rate_increase,
        max_latency_ratio,
        steps,
    }
}
