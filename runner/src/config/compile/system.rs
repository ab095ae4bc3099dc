//! Checks across the pipelines of one system: every event type has a schema, every topic a
//! saga waits on is produced and every request it sends is consumed, consumers answer with
//! the replies the saga expects, and streams-analytics names the saga's steps as they are.

use std::collections::BTreeSet;

use crate::chaos::Catalog;
use crate::config::model::Pipeline;
use crate::diagnostic::{KeyPath, Problem};
use crate::saga::SagaConfig;
use crate::transport::{TopicRole, TopicUse};

/// Problems per pipeline index.
pub fn check_system(pipelines: &[&Pipeline]) -> Vec<(usize, Problem)> {
    let uses: Vec<Vec<TopicUse>> = pipelines.iter().map(|p| p.topic_uses()).collect();
    let produced: BTreeSet<&str> =
        uses.iter().flatten().filter(|u| u.role == TopicRole::Produces).map(|u| u.topic.as_str()).collect();
    // Observers (streams-analytics) read topics but answer nothing: they do not count here.
    let handled: BTreeSet<&str> =
        uses.iter().flatten().filter(|u| u.role == TopicRole::Handles).map(|u| u.topic.as_str()).collect();
    let mut problems = Vec::new();
    for (index, pipeline) in pipelines.iter().enumerate() {
        problems.extend(missing_schemas(pipeline).into_iter().map(|p| (index, p)));
        let Some(saga) = &pipeline.saga else { continue };
        for u in &uses[index] {
            // The saga's own typed topics: replies and the trigger need a producer, requests a consumer.
            let Some(event_type) = &u.event_type else { continue };
            if event_type != &u.topic {
                continue; // a canary topic: the canary pipeline may not run
            }
            let path = u.at.clone();
            match u.role {
                TopicRole::Handles if !produced.contains(u.topic.as_str()) => {
                    let what = if u.topic == saga.definition.trigger { "trigger" } else { "reply" };
                    let topic = &u.topic;
                    problems.push((index, Problem::at_value(path, format!("{what} `{topic}` is produced by no service; add a consumer with `on_success`/`on_failure = \"{topic}\"` or fix the name"))));
                }
                TopicRole::Produces if is_request(saga, &u.topic) && !handled.contains(u.topic.as_str()) => {
                    problems.push((
                        index,
                        Problem::at_value(
                            path,
                            format!(
                                "request `{}` is consumed by no service, so the step would always time out",
                                u.topic
                            ),
                        ),
                    ));
                }
                _ => {}
            }
        }
        problems.extend(reply_mismatches(saga, pipelines).into_iter().map(|p| (index, p)));
    }
    problems.extend(check_analytics_steps(pipelines));
    problems.extend(check_chaos_targets(pipelines));
    problems
}

/// Every rule of a `[chaos]` section names a service, handler or topic of the system (a rule
/// striking nothing is a typo that would pass unnoticed).
fn check_chaos_targets(pipelines: &[&Pipeline]) -> Vec<(usize, Problem)> {
    let catalog = Catalog { services: pipelines.iter().map(|p| (p.service.clone(), p.catalog())).collect() };
    let mut problems = Vec::new();
    for (index, pipeline) in pipelines.iter().enumerate() {
        for (i, rule) in pipeline.chaos.rules.iter().enumerate() {
            if let Err(problem) = catalog.check_target(&rule.target) {
                let at = KeyPath::section("chaos").key("rules").index(i).join(&KeyPath::parse(&problem.field));
                problems.push((index, Problem::at_value(at, problem.message)));
            }
        }
    }
    problems
}

/// Whether `topic` is a request the saga sends (a step's or a compensation's).
fn is_request(saga: &SagaConfig, topic: &str) -> bool {
    saga.definition
        .steps
        .iter()
        .any(|s| s.request == topic || s.compensation.as_ref().is_some_and(|c| c.request == topic))
}

/// Every event type a pipeline produces or consumes needs a schema (dead letters keep theirs).
fn missing_schemas(pipeline: &Pipeline) -> Vec<Problem> {
    if !pipeline.schemas.enabled() {
        return Vec::new();
    }
    let dir = pipeline.schemas.dir().map(|d| d.display().to_string()).unwrap_or_default();
    pipeline
        .event_types()
        .into_iter()
        .filter(|event_type| !pipeline.schemas.has(event_type))
        .map(|event_type| {
            let file = crate::schemas::file_name(&event_type);
            Problem::at_value(
                pipeline.where_named(&event_type),
                format!("event type `{event_type}` has no schema; add {dir}/{file}"),
            )
        })
        .collect()
}

/// The service that consumes a step's request must answer with the step's reply types.
fn reply_mismatches(saga: &SagaConfig, pipelines: &[&Pipeline]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (i, step) in saga.definition.steps.iter().enumerate() {
        let at = KeyPath::section("saga").key("steps").index(i);
        let requests = [(at.clone(), &step.request, &step.success, &step.failure)];
        let compensation =
            step.compensation.as_ref().map(|c| (at.key("compensation"), &c.request, &c.success, &c.failure));
        for (at, request, success, failure) in requests.into_iter().chain(compensation) {
            for consumer in pipelines.iter().flat_map(|p| &p.consumers).filter(|c| &c.topic == request) {
                if &consumer.on_success != success {
                    problems.push(Problem::at_value(
                        at.key("success"),
                        format!("`{request}` is answered with `{}` by its consumer `{}`, but the saga waits for `{success}`", consumer.on_success, consumer.name),
                    ));
                }
                if consumer.on_failure.is_some() && consumer.on_failure.as_ref() != failure.as_ref() {
                    problems.push(Problem::at_value(
                        at.clone(),
                        format!(
                            "`{request}` is refused with `{}` by its consumer `{}`, but the saga's failure reply is {}",
                            consumer.on_failure.as_deref().unwrap_or_default(),
                            consumer.name,
                            failure.as_deref().map_or("not declared".to_string(), |f| format!("`{f}`"))
                        ),
                    ));
                }
            }
        }
    }
    problems
}

/// streams-analytics' `[[analytics.steps]]` must name the saga's steps as the orchestrator
/// runs them, or its per-step figures would silently stay empty.
fn check_analytics_steps(pipelines: &[&Pipeline]) -> Vec<(usize, Problem)> {
    let sagas: Vec<&SagaConfig> = pipelines.iter().filter_map(|p| p.saga.as_ref()).collect();
    if sagas.is_empty() {
        return Vec::new();
    }
    let mut problems = Vec::new();
    for (index, pipeline) in pipelines.iter().enumerate() {
        let Some(analytics) = &pipeline.analytics else { continue };
        for (i, step) in analytics.steps.iter().enumerate() {
            let at = KeyPath::section("analytics").key("steps").index(i);
            let found = sagas.iter().find_map(|saga| {
                let def = saga.definition.steps.iter().find(|s| s.name == step.name)?;
                Some((def, saga.canary.as_ref().filter(|c| c.step == step.name)))
            });
            let Some((def, canary)) = found else {
                let names: Vec<&str> =
                    sagas.iter().flat_map(|s| s.definition.steps.iter().map(|s| s.name.as_str())).collect();
                let message = format!("no saga step named `{}`; steps: {}", step.name, names.join(", "));
                problems.push((index, Problem::at_value(at.key("name"), message)));
                continue;
            };
            let mut differs =
                |key: &str, message: String| problems.push((index, Problem::at_value(at.key(key), message)));
            let name = &def.name;
            if step.request != def.request {
                let request = &def.request;
                differs(
                    "request",
                    format!("the saga's step `{name}` sends `{request}`; write request = \"{request}\""),
                );
            }
            if step.success != def.success {
                let success = &def.success;
                differs(
                    "success",
                    format!("the saga's step `{name}` succeeds with `{success}`; write success = \"{success}\""),
                );
            }
            match (&step.failure, &def.failure) {
                (Some(ours), Some(theirs)) if ours != theirs => differs(
                    "failure",
                    format!("the saga's step `{name}` is refused with `{theirs}`; write failure = \"{theirs}\""),
                ),
                (Some(_), None) => {
                    differs("failure", format!("the saga's step `{name}` has no failure reply; remove failure"))
                }
                _ => {}
            }
            match (&step.canary_topic, canary) {
                (Some(_), None) => differs(
                    "canary_topic",
                    format!("the saga sends no canary requests for step `{name}`; remove canary_topic"),
                ),
                (Some(ours), Some(c)) if *ours != c.topic => differs(
                    "canary_topic",
                    format!("the saga sends step `{name}`'s canary requests to `{}`; write canary_topic = \"{}\"", c.topic, c.topic),
                ),
                (None, Some(c)) => differs(
                    "name",
                    format!("the saga sends step `{name}`'s canary requests to `{}`; add canary_topic = \"{}\" to count them", c.topic, c.topic),
                ),
                _ => {}
            }
        }
    }
    problems
}
