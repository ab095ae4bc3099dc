//! `runner test`: runs the cases of test files (`config::test_file`) with no broker and no
//! database server — a saga case drives the saga's pure state machine input by input on a
//! virtual clock; a handler case runs the consumer's handler on a fresh in-memory SQLite
//! store — and reports each case as passed, or failed with its first difference at the
//! file:line of the expectation that did not hold.

use std::time::Instant;

use crate::config::test_file::{ExpectedOutcome, HandlerCase, SagaCase, SagaStep, StepInput, TestFile};
use crate::config::{Anchor, KeyPath, SourceMap};
use crate::handlers::{HandlerError, Outcome};
use crate::saga::machine::{advance, Command, Input, SagaDefinition, SagaState, Transition, Waiting};
use crate::store::{Store, StoreConfig};

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    pub name: String,
    /// `saga` or `handler`.
    pub kind: &'static str,
    /// Inputs or messages run.
    pub steps: usize,
    /// The first difference, as `file:line:column: …`; none when the case passed.
    pub failure: Option<String>,
}

/// Runs every case of `file`.
pub async fn run_file(file: &TestFile) -> Vec<CaseResult> {
    let source = SourceMap::new(&file.path, &file.text);
    let mut results: Vec<CaseResult> = file.sagas.iter().map(|case| run_saga_case(case, &source)).collect();
    for case in &file.handlers {
        results.push(run_handler_case(case, &source).await);
    }
    results
}

/// Milliseconds as a case shows them: `10s`, `10.5s`, `250ms`.
fn shown_ms(ms: i64) -> String {
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else if ms > 1000 {
        format!("{}s", ms as f64 / 1000.0)
    } else {
        format!("{ms}ms")
    }
}

/// The state as a case writes it: `running payment #1 (reply by 10s)`, `compensating
/// inventory>payment #2 (backoff until 11s)`, `completed`, `cancelled: payment failed: …`.
pub fn describe(definition: &SagaDefinition, state: &SagaState) -> String {
    let wait = |w: &Waiting| match w {
        Waiting::Reply { deadline_ms } => format!("(reply by {})", shown_ms(*deadline_ms)),
        Waiting::Backoff { until_ms } => format!("(backoff until {})", shown_ms(*until_ms)),
    };
    let step_name = |i: &usize| definition.steps.get(*i).map_or("?", |s| s.name.as_str());
    match state {
        SagaState::Running { step, attempt, waiting } => {
            format!("running {} #{attempt} {}", step_name(step), wait(waiting))
        }
        SagaState::Compensating { pending, attempt, waiting, .. } => {
            let names: Vec<&str> = pending.iter().map(step_name).collect();
            format!("compensating {} #{attempt} {}", names.join(">"), wait(waiting))
        }
        SagaState::Completed => "completed".into(),
        SagaState::Cancelled { reason } => format!("cancelled: {reason}"),
        SagaState::Failed { reason } => format!("failed: {reason}"),
    }
}

/// Whether `actual` is what `expected` says: the same, or the same with its wait
/// (` (…)`) or its reason (`: …`) left out.
fn matches(expected: &str, actual: &str) -> bool {
    let expected = expected.trim();
    actual == expected
        || actual.strip_prefix(expected).is_some_and(|rest| rest.starts_with(" (") || rest.starts_with(": "))
}

fn sent(transition: &Transition) -> Vec<String> {
    transition
        .commands
        .iter()
        .map(|command| match command {
            Command::Send { event_type, .. } | Command::Finish { event_type, .. } => event_type.clone(),
        })
        .collect()
}

fn history_lines(transition: &Transition) -> Vec<String> {
    transition
        .history
        .iter()
        .map(|h| match &h.detail {
            Some(detail) => format!("{}: {} ({detail})", h.step, h.action),
            None => format!("{}: {}", h.step, h.action),
        })
        .collect()
}

/// The first difference between what a list should be and what it is, if any.
fn list_difference(expected: &[String], actual: &[String]) -> Option<String> {
    let differs = expected.len() != actual.len() || expected.iter().zip(actual).any(|(e, a)| !matches(e, a));
    differs.then(|| format!("expected {expected:?}, got {actual:?}"))
}

fn run_saga_case(case: &SagaCase, source: &SourceMap) -> CaseResult {
    let mut state: Option<SagaState> = None;
    let failure = case.steps.iter().enumerate().find_map(|(n, step)| {
        let now_ms = i64::try_from(step.at.as_millis()).unwrap_or(i64::MAX);
        let input = match &step.input {
            StepInput::Start => Input::Start,
            StepInput::Tick => Input::Tick,
            StepInput::Reply { event_type, reason } => Input::Reply { event_type, detail: reason.as_deref() },
            StepInput::DeadLetter { request, reason } => Input::DeadLettered { request, detail: reason.as_deref() },
        };
        let transition = advance(&case.definition, state.as_ref(), input, now_ms);
        let actual_state =
            transition.state.as_ref().map_or_else(|| "ignored".to_string(), |s| describe(&case.definition, s));
        let difference = check_step(step, &actual_state, &transition);
        if transition.state.is_some() {
            state = transition.state.clone();
        }
        difference.map(|(key, what)| {
            let at = source.at(&step.path.key(key), Anchor::Value, "");
            format!(
                "{}:{}:{}: step {} (at {}, {}): {key}: {what}",
                at.file.display(),
                at.line,
                at.column,
                n + 1,
                shown_ms(now_ms),
                step.input_text
            )
        })
    });
    CaseResult { name: case.name.clone(), kind: "saga", steps: case.steps.len(), failure }
}

/// The first expectation of `step` that does not hold: its key and the difference.
fn check_step(step: &SagaStep, actual_state: &str, transition: &Transition) -> Option<(&'static str, String)> {
    if let Some(expected) = &step.state {
        if !matches(expected, actual_state) {
            return Some(("state", format!("expected `{}`, got `{actual_state}`", expected.trim())));
        }
    }
    if let Some(expected) = &step.sends {
        if let Some(difference) = list_difference(expected, &sent(transition)) {
            return Some(("sends", difference));
        }
    }
    if let Some(expected) = &step.history {
        if let Some(difference) = list_difference(expected, &history_lines(transition)) {
            return Some(("history", difference));
        }
    }
    None
}

async fn run_handler_case(case: &HandlerCase, source: &SourceMap) -> CaseResult {
    let result = |failure: Option<String>| CaseResult {
        name: case.name.clone(),
        kind: "handler",
        steps: case.messages.len(),
        failure,
    };
    let at = |path: &KeyPath, what: String| {
        let place = source.at(path, Anchor::Value, "");
        format!("{}:{}:{}: {what}", place.file.display(), place.line, place.column)
    };
    // One fresh in-memory database per case: the handler's tables, its seeded stock, nothing else.
    let config = StoreConfig::for_url("sqlite::memory:", 1).expect("an SQLite URL");
    let store = match Store::connect(&config).await {
        Ok(store) => store,
        Err(e) => return result(Some(format!("cannot open an in-memory SQLite store: {e}"))),
    };
    if let Err(e) = case.handler.prepare(&store).await {
        return result(Some(format!("the handler's set-up failed: {e}")));
    }
    for (n, message) in case.messages.iter().enumerate() {
        let answered = async {
            let mut tx = store.begin().await?;
            let outcome = case.handler.handle(&mut tx, &message.request, 1_000 * (n as i64 + 1)).await;
            match outcome {
                Ok(outcome) => {
                    tx.commit().await?;
                    Ok(Ok(outcome))
                }
                Err(e) => Ok(Err(e)),
            }
        };
        let answer: Result<Result<Outcome, HandlerError>, crate::store::StoreError> = answered.await;
        let (outcome, text) = match answer {
            Ok(Ok(Outcome::Success(reply))) => (ExpectedOutcome::Success, reply.to_string()),
            Ok(Ok(Outcome::Failure(reply))) => (ExpectedOutcome::Failure, reply.to_string()),
            Ok(Err(HandlerError::Invalid(why))) => (ExpectedOutcome::Invalid, why),
            Ok(Err(e)) => (ExpectedOutcome::Error, e.to_string()),
            Err(e) => (ExpectedOutcome::Error, e.to_string()),
        };
        if outcome != message.outcome {
            let what = format!(
                "message {}: outcome: expected `{}`, got `{}` ({text})",
                n + 1,
                message.outcome.as_str(),
                outcome.as_str()
            );
            return result(Some(at(&message.path.key("outcome"), what)));
        }
        if let Some(reason) = message.reason.as_deref().filter(|r| !text.contains(r)) {
            let what = format!("message {}: reason: expected it to contain `{reason}`, got {text}", n + 1);
            return result(Some(at(&message.path.key("reason"), what)));
        }
    }
    result(None)
}

/// Runs every file and prints each case; `true` when all passed.
pub async fn run_and_report(files: &[TestFile]) -> bool {
    let started = Instant::now();
    let (mut passed, mut failed) = (0, 0);
    for file in files {
        println!("{}", file.path.display());
        for case in run_file(file).await {
            match &case.failure {
                None => {
                    passed += 1;
                    let unit = if case.kind == "saga" { "inputs" } else { "messages" };
                    println!("  ok    {} {} ({} {unit})", case.kind, case.name, case.steps);
                }
                Some(why) => {
                    failed += 1;
                    println!("  FAIL  {} {}\n        {why}", case.kind, case.name);
                }
            }
        }
    }
    println!("{} cases: {passed} passed, {failed} failed ({} ms)", passed + failed, started.elapsed().as_millis());
    failed == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_matches_with_or_without_its_wait_and_reason() {
        assert!(matches("running payment #1", "running payment #1 (reply by 10s)"));
        assert!(matches("running payment #1 (reply by 10s)", "running payment #1 (reply by 10s)"));
        assert!(!matches("running payment #1 (reply by 9s)", "running payment #1 (reply by 10s)"));
        assert!(matches("cancelled", "cancelled: payment failed: declined"));
        assert!(!matches("running payment", "running payment #1 (reply by 10s)"));
        assert!(!matches("completed", "cancelled: x"));
    }

    #[test]
    fn times_are_shown_as_a_case_writes_them() {
        assert_eq!(shown_ms(10_000), "10s");
        assert_eq!(shown_ms(10_500), "10.5s");
        assert_eq!(shown_ms(250), "250ms");
    }
}
