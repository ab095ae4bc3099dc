//! Passes for streams-analytics: `[analytics]` (with `[[analytics.steps]]`) and
//! `[[slo.objectives]]`.

use std::collections::BTreeSet;
use std::time::Duration;

use super::Compiler;
use crate::config::spec::{AnalyticsSpec, FinalStatus, ObjectiveKindSpec, SloSpec};
use crate::diagnostic::KeyPath;
use crate::services::analytics::{AnalyticsConfig, AnalyticsStep};
use crate::slo::{Objective, ObjectiveKind};

pub(super) fn compile_analytics(c: &mut Compiler, a: &AnalyticsSpec, service: &str) -> AnalyticsConfig {
    let at = KeyPath::section("analytics");
    let trigger = a.trigger.clone().unwrap_or_else(|| "order.created".into());
    c.event_type(at.key("trigger"), &trigger);
    let final_events = a
        .final_events
        .clone()
        .unwrap_or_else(|| vec!["order.completed".into(), "order.cancelled".into(), "order.failed".into()]);
    for (i, event) in final_events.iter().enumerate() {
        c.event_type(at.key("final_events").index(i), event);
    }
    if let Some(url) = &a.prometheus_url {
        if !url.starts_with("http://") || url::Url::parse(url).is_err() {
            c.problem(
                at.key("prometheus_url"),
                format!("`{url}` is not an http:// URL; write it like \"http://prometheus:9090\""),
            );
        }
    }
    let mut steps = Vec::new();
    for (i, step) in a.steps.iter().enumerate() {
        let at = at.key("steps").index(i);
        c.label(at.key("name"), &step.name);
        if a.steps[..i].iter().any(|earlier| earlier.name == step.name) {
            c.problem(at.key("name"), format!("step `{}` is listed twice", step.name));
        }
        c.event_type(at.key("request"), &step.request);
        c.event_type(at.key("success"), &step.success);
        if let Some(failure) = &step.failure {
            c.event_type(at.key("failure"), failure);
        }
        if let Some(topic) = &step.canary_topic {
            c.event_type(at.key("canary_topic"), topic);
        }
        steps.push(AnalyticsStep {
            name: step.name.clone(),
            request: step.request.clone(),
            canary_topic: step.canary_topic.clone(),
            success: step.success.clone(),
            failure: step.failure.clone(),
        });
    }
    AnalyticsConfig {
        group: a.group.clone().unwrap_or_else(|| service.to_string()),
        trigger,
        final_events,
        prometheus_url: a.prometheus_url.clone(),
        steps,
    }
}

pub(super) fn compile_slo(c: &mut Compiler, spec: &SloSpec) -> Vec<Objective> {
    let mut objectives = Vec::new();
    let mut names = BTreeSet::new();
    for (i, o) in spec.objectives.iter().enumerate() {
        let at = KeyPath::section("slo").key("objectives").index(i);
        c.label(at.key("name"), &o.name);
        if !names.insert(o.name.clone()) {
            c.problem(at.key("name"), format!("objective `{}` is declared twice", o.name));
        }
        if !(o.objective > 0.0 && o.objective < 1.0) {
            c.problem(
                at.key("objective"),
                format!("{} is not a target share; use e.g. 0.99 (above 0, below 1)", o.objective),
            );
        }
        let window = c.duration(at.key("window"), o.window.as_deref(), Duration::from_secs(30 * 86_400));
        let kind = match o.kind {
            ObjectiveKindSpec::SuccessRatio => {
                let bad = o.bad_statuses.clone().unwrap_or_else(|| vec![FinalStatus::Failed, FinalStatus::Cancelled]);
                ObjectiveKind::SuccessRatio { bad_statuses: bad.iter().map(|s| s.as_str().to_string()).collect() }
            }
            ObjectiveKindSpec::Latency => {
                let threshold = c.duration(at.key("threshold"), o.threshold.as_deref(), Duration::ZERO);
                let seconds = threshold.as_secs_f64();
                let buckets = crate::telemetry::SAGA_DURATION_BUCKETS;
                if !buckets.iter().any(|b| (b - seconds).abs() < 1e-9) {
                    let list: Vec<String> = buckets.iter().map(|b| format!("{b}s")).collect();
                    c.problem(
                        at.key("threshold"),
                        format!("a latency threshold must be a histogram bucket: one of {}", list.join(", ")),
                    );
                }
                ObjectiveKind::Latency { threshold_seconds: seconds }
            }
        };
        objectives.push(Objective {
            name: o.name.clone(),
            kind,
            objective: o.objective,
            window,
            min_events_per_hour: o.min_events_per_hour.unwrap_or(10),
            saga: o.saga.clone().unwrap_or_else(|| "order".into()),
            description: o.description.clone(),
        });
    }
    objectives
}
