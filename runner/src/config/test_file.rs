//! Test files (`pipelines/tests/*.toml`): cases that verify a pipeline before it runs — a
//! saga driven input by input (trigger, replies, dead letters, time passing) with the state,
//! sent events and history expected after each, and a consumer's handler given messages with
//! the outcome expected of each. Their shape is [`TestFileSpec`] (schema
//! `schemas/test.schema.json`); compiled into a [`TestFile`] with every problem reported as
//! `file:line:column`, as pipeline files are. `runner test` runs them (the `pipeline_tests` module).

use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::compile::Compiler;
use super::load::{parse_spec_as, read_pipeline_file, MAX_FILE_BYTES};
use super::{Diagnostic, Diagnostics, KeyPath, LoadOptions, Pipeline, Problem, SourceMap};
use crate::handlers::Handler;
use crate::saga::machine::SagaDefinition;

/// Where test files live, beside the pipeline files.
pub const TEST_DIR: &str = "tests";
/// The most cases in one file, steps in one saga case, messages in one handler case.
const MAX_CASES: usize = 200;
const MAX_STEPS: usize = 500;
/// The latest moment a step may be at: a saga case is minutes of saga time, not years.
const MAX_AT: Duration = Duration::from_secs(7 * 24 * 3600);

/// One test file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestFileSpec {
    /// The pipeline file under test, relative to this file, e.g. `"../orchestrator.toml"`.
    pub pipeline: String,
    /// A saga that replaces the pipeline's own for these cases (same shape as its `[saga]`):
    /// a variant tried before it is written into the pipeline file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saga: Option<super::spec::SagaSpec>,
    /// Cases that drive the pipeline's saga.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sagas: Vec<SagaCaseSpec>,
    /// Cases that give one of the pipeline's consumers messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub handlers: Vec<HandlerCaseSpec>,
}

/// One saga instance, input by input.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SagaCaseSpec {
    pub name: String,
    #[serde(default)]
    pub steps: Vec<SagaStepSpec>,
}

/// One input to the saga and what must follow it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SagaStepSpec {
    /// When, from the case's start: `"0s"`, `"10500ms"`. Never earlier than the step before.
    pub at: String,
    /// `start` (the trigger), `tick` (time passed: due timeouts and backoffs fire),
    /// `reply <event-type> [reason…]`, or `dead-letter <request-type> [reason…]`.
    pub input: String,
    /// The state after it: `running payment #1`, `compensating inventory>payment #1`,
    /// `completed`, `cancelled`, `failed`, or `ignored` (the input changed nothing). The
    /// wait (`(reply by 10s)`) and the reason (`: payment declined`) may be left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The events this input sends, in order: step requests, compensation requests and the
    /// saga's terminal event. `[]` means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sends: Option<Vec<String>>,
    /// The history lines it writes, in order: `payment: succeeded`, or with the detail,
    /// `payment: failed (card declined)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<String>>,
}

/// One consumer's handler, given messages one after the other on one fresh store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HandlerCaseSpec {
    pub name: String,
    /// The consumer (`[[consumers]] name`) whose handler and parameters are used.
    pub consumer: String,
    #[serde(default)]
    pub messages: Vec<HandlerMessageSpec>,
}

/// One message to the handler and its expected outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HandlerMessageSpec {
    /// The order the request carries: these fields over a default order (`order-1`,
    /// `customer-1`, EUR, one `SKU-1` at 1000, total 1000, shipped to `DE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<std::collections::BTreeMap<String, Value>>")]
    pub order: Option<toml::Table>,
    /// `success` (the reply goes to `on_success`), `failure` (refused, to `on_failure`),
    /// `invalid` (a request no retry can help) or `error` (worth retrying).
    pub outcome: String,
    /// Text the reply's `reason` (or the error) must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A compiled test file.
#[derive(Debug, Clone)]
pub struct TestFile {
    pub path: PathBuf,
    /// The file's text, so failures can be placed at their line.
    pub text: String,
    pub pipeline: Pipeline,
    pub sagas: Vec<SagaCase>,
    pub handlers: Vec<HandlerCase>,
}

#[derive(Debug, Clone)]
pub struct SagaCase {
    pub name: String,
    pub definition: SagaDefinition,
    pub steps: Vec<SagaStep>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepInput {
    Start,
    Tick,
    Reply { event_type: String, reason: Option<String> },
    DeadLetter { request: String, reason: Option<String> },
}

#[derive(Debug, Clone)]
pub struct SagaStep {
    pub at: Duration,
    pub input: StepInput,
    /// The input as written, for reports.
    pub input_text: String,
    pub state: Option<String>,
    pub sends: Option<Vec<String>>,
    pub history: Option<Vec<String>>,
    /// Where the step is in the file: `sagas[i].steps[j]`.
    pub path: KeyPath,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedOutcome {
    Success,
    Failure,
    Invalid,
    Error,
}

impl ExpectedOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ExpectedOutcome::Success => "success",
            ExpectedOutcome::Failure => "failure",
            ExpectedOutcome::Invalid => "invalid",
            ExpectedOutcome::Error => "error",
        }
    }
}

#[derive(Debug, Clone)]
pub struct HandlerCase {
    pub name: String,
    pub handler: Handler,
    pub messages: Vec<HandlerMessage>,
}

#[derive(Debug, Clone)]
pub struct HandlerMessage {
    pub request: Value,
    pub outcome: ExpectedOutcome,
    pub reason: Option<String>,
    pub path: KeyPath,
}

/// The JSON Schema of test files, as written to `schemas/test.schema.json`.
pub fn test_schema() -> String {
    let schema = schemars::schema_for!(TestFileSpec);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    text.push('\n');
    text
}

/// Whether a file is a test file rather than a pipeline: it sits in a `tests` folder.
pub fn is_test_file(path: &Path) -> bool {
    path.parent().and_then(Path::file_name).is_some_and(|d| d == TEST_DIR)
}

/// Reads and compiles one test file, loading the pipeline it names.
pub fn load_test_file(path: &Path) -> Result<TestFile, Diagnostics> {
    let at_start =
        |message: String| Diagnostics(vec![Diagnostic { file: path.to_path_buf(), line: 1, column: 1, message }]);
    let text = read_pipeline_file(path).map_err(at_start)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(at_start(format!("the file is {} bytes; test files are limited to {MAX_FILE_BYTES}", text.len())));
    }
    let source = SourceMap::new(path, &text);
    let shaped = parse_spec_as::<TestFileSpec>(&source, &text).map_err(Diagnostics)?;
    let Some(document) = &shaped.document else { return Err(Diagnostics(shaped.problems)) };
    let spec: TestFileSpec = match toml::Value::Table(document.clone()).try_into() {
        Ok(spec) => spec,
        Err(e) => return Err(Diagnostics(vec![source.at_offset(0, format!("invalid test file: {e}"))])),
    };
    // The pipeline under test: its own problems are reported against its own file.
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let pipeline_path = folder.join(&spec.pipeline);
    let mut problems = Vec::new();
    let pipeline = match super::load(&pipeline_path, &LoadOptions::default()) {
        Ok(loaded) => match &spec.saga {
            None => Some(loaded.pipeline),
            // The inline saga in place of the file's, compiled as the file's would be; its
            // problems are at the same keys (`saga.…`) in this file.
            Some(saga) => {
                let mut with_override = loaded.spec.clone();
                with_override.saga = Some(saga.clone());
                match super::compile::compile(&with_override, &loaded.pipeline.service) {
                    Ok(pipeline) => Some(pipeline),
                    Err(more) => {
                        let in_saga = |p: &Problem| p.path.0.first() == KeyPath::section("saga").0.first();
                        let first = more.first().map(|p| p.message.clone()).unwrap_or_default();
                        let mut about_saga: Vec<Problem> = more.into_iter().filter(in_saga).collect();
                        if about_saga.is_empty() {
                            about_saga.push(Problem::at_value(
                                KeyPath::section("saga"),
                                format!("the pipeline does not compile with this saga: {first}"),
                            ));
                        }
                        problems.extend(about_saga);
                        None
                    }
                }
            }
        },
        Err(diagnostics) if pipeline_path.is_file() => return Err(diagnostics),
        Err(_) => None,
    };
    if pipeline.is_none() && problems.is_empty() {
        let shown = crate::chaos::rule::shortened(&spec.pipeline);
        problems.push(Problem::at_value(
            KeyPath::section("pipeline"),
            format!(
                "no pipeline file `{shown}` beside this file; name one relative to it, e.g. \"../orchestrator.toml\""
            ),
        ));
    }
    let compiled = pipeline.as_ref().map(|p| compile_test_file(&spec, p));
    let (sagas, handlers) = match compiled {
        Some(Ok(cases)) if problems.is_empty() && shaped.problems.is_empty() => cases,
        Some(Ok(_)) | None => (Vec::new(), Vec::new()),
        Some(Err(more)) => {
            problems.extend(more);
            (Vec::new(), Vec::new())
        }
    };
    if !problems.is_empty() || !shaped.problems.is_empty() {
        return Err(shaped.with_compile_problems(&source, problems));
    }
    let pipeline = pipeline.expect("checked above");
    Ok(TestFile { path: path.to_path_buf(), text, pipeline, sagas, handlers })
}

/// Compiles the cases against the pipeline under test, or lists every problem by key path.
pub fn compile_test_file(
    spec: &TestFileSpec,
    pipeline: &Pipeline,
) -> Result<(Vec<SagaCase>, Vec<HandlerCase>), Vec<Problem>> {
    let mut c = Compiler::new();
    // Destructured without `..`: a new kind of case does not compile until it has a pass here.
    let TestFileSpec { pipeline: _, saga: _, sagas, handlers } = spec;
    if sagas.is_empty() && handlers.is_empty() {
        c.problem(KeyPath::section("pipeline"), "no cases; add [[sagas]] or [[handlers]]");
    }
    for (key, count) in [("sagas", sagas.len()), ("handlers", handlers.len())] {
        if count > MAX_CASES {
            c.problem(KeyPath::section(key), format!("{count} cases; a file holds at most {MAX_CASES}: split it"));
        }
    }
    let saga_cases = compile_saga_cases(&mut c, sagas, pipeline);
    let handler_cases = compile_handler_cases(&mut c, handlers, pipeline);
    let problems = c.into_problems();
    if problems.is_empty() {
        Ok((saga_cases, handler_cases))
    } else {
        Err(problems)
    }
}

fn compile_saga_cases(c: &mut Compiler, specs: &[SagaCaseSpec], pipeline: &Pipeline) -> Vec<SagaCase> {
    let Some(saga) = &pipeline.saga else {
        if !specs.is_empty() {
            c.problem(KeyPath::section("sagas"), format!("the pipeline `{}` has no [saga] to drive", pipeline.service));
        }
        return Vec::new();
    };
    let definition = &saga.definition;
    // What may arrive: every reply type the definition waits for, every request it sends.
    let mut replies: Vec<&str> = Vec::new();
    let mut requests: Vec<&str> = Vec::new();
    for step in &definition.steps {
        replies.push(&step.success);
        replies.extend(step.failure.as_deref());
        requests.push(&step.request);
        if let Some(compensation) = &step.compensation {
            replies.push(&compensation.success);
            replies.extend(compensation.failure.as_deref());
            requests.push(&compensation.request);
        }
    }
    let mut cases = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let at_case = KeyPath::section("sagas").index(i);
        name_of(c, at_case.key("name"), &spec.name);
        if spec.steps.is_empty() {
            c.problem(at_case.key("name"), "no steps; add [[sagas.steps]] with an `input`");
        }
        if spec.steps.len() > MAX_STEPS {
            c.problem(at_case.key("steps"), format!("{} steps; a case has at most {MAX_STEPS}", spec.steps.len()));
        }
        let mut previous = Duration::ZERO;
        let mut steps = Vec::new();
        for (j, step) in spec.steps.iter().enumerate() {
            let at_step = at_case.key("steps").index(j);
            let at = match humantime::parse_duration(step.at.trim()) {
                Ok(at) if at <= MAX_AT => at,
                Ok(_) => {
                    c.problem(at_step.key("at"), "a step is at most 7 days after the case's start");
                    previous
                }
                Err(e) => {
                    let shown = crate::chaos::rule::shortened(&step.at);
                    c.problem(
                        at_step.key("at"),
                        format!("`{shown}` is not a duration ({e}); write it like \"1500ms\" or \"10s\""),
                    );
                    previous
                }
            };
            if at < previous {
                c.problem(
                    at_step.key("at"),
                    format!("{at:?} is before the step before ({previous:?}); steps go forward in time"),
                );
            }
            previous = previous.max(at);
            let Some(input) = parse_input(c, at_step.key("input"), &step.input, &replies, &requests) else { continue };
            steps.push(SagaStep {
                at,
                input,
                input_text: step.input.trim().to_string(),
                state: step.state.clone(),
                sends: step.sends.clone(),
                history: step.history.clone(),
                path: at_step,
            });
        }
        cases.push(SagaCase { name: spec.name.clone(), definition: definition.clone(), steps });
    }
    cases
}

/// `start`, `tick`, `reply <type> [reason…]`, `dead-letter <type> [reason…]`.
fn parse_input(c: &mut Compiler, at: KeyPath, text: &str, replies: &[&str], requests: &[&str]) -> Option<StepInput> {
    let mut words = text.split_whitespace();
    let kind = words.next().unwrap_or_default();
    let event_type = words.next().map(str::to_string);
    let rest: Vec<&str> = words.collect();
    let reason = (!rest.is_empty()).then(|| rest.join(" "));
    let known = |c: &mut Compiler, event_type: Option<String>, list: &[&str], what: &str| -> Option<String> {
        match event_type {
            Some(t) if list.contains(&t.as_str()) => Some(t),
            other => {
                let shown = crate::chaos::rule::shortened(other.as_deref().unwrap_or(""));
                c.problem(at.clone(), format!("`{shown}` is no {what} of this saga; it knows {}", list.join(", ")));
                None
            }
        }
    };
    match kind {
        "start" | "tick" if event_type.is_none() => {
            Some(if kind == "start" { StepInput::Start } else { StepInput::Tick })
        }
        "reply" => known(c, event_type, replies, "reply").map(|event_type| StepInput::Reply { event_type, reason }),
        "dead-letter" => {
            known(c, event_type, requests, "request").map(|request| StepInput::DeadLetter { request, reason })
        }
        _ => {
            let shown = crate::chaos::rule::shortened(text);
            c.problem(
                at,
                format!("`{shown}` is no input; write `start`, `tick`, `reply <event-type> [reason]` or `dead-letter <request-type> [reason]`"),
            );
            None
        }
    }
}

fn name_of(c: &mut Compiler, at: KeyPath, name: &str) {
    if name.trim().is_empty() || name.len() > 200 || name.contains('\0') {
        c.problem(at, "give the case a name of 1 to 200 characters");
    }
}

/// The order a handler message carries when the case says nothing else.
fn default_order() -> Value {
    serde_json::json!({
        "orderId": "order-1",
        "customerId": "customer-1",
        "currency": "EUR",
        "total": 1000,
        "items": [{ "sku": "SKU-1", "quantity": 1, "unitPrice": 1000 }],
        "shipTo": { "country": "DE" },
    })
}

fn compile_handler_cases(c: &mut Compiler, specs: &[HandlerCaseSpec], pipeline: &Pipeline) -> Vec<HandlerCase> {
    let mut cases = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let at_case = KeyPath::section("handlers").index(i);
        name_of(c, at_case.key("name"), &spec.name);
        let Some(consumer) = pipeline.consumers.iter().find(|k| k.name == spec.consumer) else {
            let known: Vec<&str> = pipeline.consumers.iter().map(|k| k.name.as_str()).collect();
            let shown = crate::chaos::rule::shortened(&spec.consumer);
            c.problem(
                at_case.key("consumer"),
                format!("no consumer `{shown}` in `{}`; it has {}", pipeline.service, known.join(", ")),
            );
            continue;
        };
        if spec.messages.is_empty() || spec.messages.len() > MAX_STEPS {
            c.problem(at_case.key("name"), format!("give 1 to {MAX_STEPS} [[handlers.messages]]"));
        }
        let mut messages = Vec::new();
        for (j, message) in spec.messages.iter().enumerate() {
            let at_message = at_case.key("messages").index(j);
            let outcome = match message.outcome.as_str() {
                "success" => ExpectedOutcome::Success,
                "failure" => ExpectedOutcome::Failure,
                "invalid" => ExpectedOutcome::Invalid,
                "error" => ExpectedOutcome::Error,
                other => {
                    let shown = crate::chaos::rule::shortened(other);
                    c.problem(
                        at_message.key("outcome"),
                        format!("`{shown}` is no outcome; write success, failure, invalid or error"),
                    );
                    continue;
                }
            };
            let mut request = default_order();
            for (key, value) in message.order.iter().flatten() {
                match serde_json::to_value(value) {
                    Ok(value) => request[key.as_str()] = value,
                    Err(e) => c.problem(at_message.key("order").key(key), format!("cannot be sent as JSON: {e}")),
                }
            }
            messages.push(HandlerMessage { request, outcome, reason: message.reason.clone(), path: at_message });
        }
        cases.push(HandlerCase { name: spec.name.clone(), handler: consumer.handler.clone(), messages });
    }
    cases
}
