//! The saga's settings as the orchestrator runs them: the definition, its consumer group and
//! timer tick, the canary of one step; and every topic the saga names.

use std::time::Duration;

use super::machine::SagaDefinition;
use crate::diagnostic::KeyPath;
use crate::transport::dead_letter;
use crate::transport::{TopicRole, TopicUse};

/// `[saga]`, compiled.
#[derive(Debug, Clone)]
pub struct SagaConfig {
    pub group: String,
    /// Messages handled at once, one per saga at a time.
    pub max_in_flight: usize,
    /// Ready messages committed in one database transaction at most.
    pub max_group: usize,
    /// Groups committing side by side.
    pub groups_in_flight: usize,
    pub tick: Duration,
    pub definition: SagaDefinition,
    pub canary: Option<CanaryConfig>,
    /// `[[saga.step_mapping]]`: a step an earlier definition had → where its instances
    /// continue in this one.
    pub step_mapping: std::collections::BTreeMap<String, String>,
}

/// A saga step whose requests are split between the stable service and its canary.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryConfig {
    pub step: String,
    /// The step's own request type (what the canary topic carries).
    pub request: String,
    pub topic: String,
    pub percent: f64,
    pub analysis: Option<CanaryAnalysis>,
}

/// `[saga.canary.analysis]`, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryAnalysis {
    pub interval: Duration,
    pub window: Duration,
    pub min_requests: u32,
    pub max_failure_rate_increase: f64,
    pub max_latency_ratio: f64,
    pub steps: Vec<f64>,
}

impl SagaConfig {
    /// Every topic the saga sends to or reads, with the key of `[saga]` naming it.
    pub fn topic_uses(&self) -> Vec<TopicUse> {
        use TopicRole::{Handles, Produces};
        let saga = KeyPath::section("saga");
        let d = &self.definition;
        let mut uses = vec![
            TopicUse::typed(Handles, &d.trigger, saga.key("trigger")),
            TopicUse::typed(Produces, &d.on_completed, saga.key("on_completed")),
            TopicUse::typed(Produces, &d.on_cancelled, saga.key("on_cancelled")),
            TopicUse::typed(Produces, &d.on_failed, saga.key("on_failed")),
        ];
        for (i, step) in d.steps.iter().enumerate() {
            let at = saga.key("steps").index(i);
            let mut exchange = |at: KeyPath, request: &str, success: &str, failure: Option<&String>| {
                uses.push(TopicUse::typed(Produces, request, at.key("request")));
                uses.push(TopicUse::typed(Handles, success, at.key("success")));
                uses.extend(failure.map(|f| TopicUse::typed(Handles, f, at.key("failure"))));
                // A request that was dead-lettered failed: the saga reads those too.
                uses.push(TopicUse::dead_letters(Handles, &dead_letter::topic_for(request), at.key("request")));
                // Replies the orchestrator cannot read go to their own dead-letter topics.
                uses.push(TopicUse::dead_letters(Produces, &dead_letter::topic_for(success), at.key("success")));
                uses.extend(
                    failure.map(|f| TopicUse::dead_letters(Produces, &dead_letter::topic_for(f), at.key("failure"))),
                );
            };
            exchange(at.clone(), &step.request, &step.success, step.failure.as_ref());
            if let Some(c) = &step.compensation {
                exchange(at.key("compensation"), &c.request, &c.success, c.failure.as_ref());
            }
        }
        if let Some(canary) = &self.canary {
            let at = saga.key("canary");
            // The canary topic carries the step's request type.
            uses.push(TopicUse {
                topic: canary.topic.clone(),
                role: Produces,
                event_type: Some(canary.request.clone()),
                group: None,
                at: at.key("topic"),
            });
            // A canary's dead letters fail the step as the stable service's do.
            uses.push(TopicUse::dead_letters(Handles, &dead_letter::topic_for(&canary.topic), at.key("topic")));
        }
        uses.into_iter().map(|u| if u.consumes() { u.by(&self.group) } else { u }).collect()
    }

    /// The topics the orchestrator subscribes to.
    pub fn subscriptions(&self) -> Vec<String> {
        let mut topics = crate::transport::topics_where(&self.topic_uses(), TopicUse::consumes);
        topics.sort();
        topics
    }
}
