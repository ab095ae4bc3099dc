//! streams-analytics' settings: what starts and ends an order, the saga steps it measures,
//! where Prometheus is; and the topics all of that names.

use crate::diagnostic::KeyPath;
use crate::transport::{topics_where, TopicRole, TopicUse};

/// `[analytics]` with its `[[analytics.steps]]`, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyticsConfig {
    pub group: String,
    pub trigger: String,
    pub final_events: Vec<String>,
    pub prometheus_url: Option<String>,
    pub steps: Vec<AnalyticsStep>,
}

/// A saga step streams-analytics measures (see `AnalyticsStepSpec`).
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyticsStep {
    pub name: String,
    pub request: String,
    pub canary_topic: Option<String>,
    pub success: String,
    pub failure: Option<String>,
}

impl AnalyticsConfig {
    /// The topics followed: the trigger, the final events, and each step's requests and replies.
    pub fn topic_uses(&self) -> Vec<TopicUse> {
        let section = KeyPath::section("analytics");
        let observe = |topic: &str, at: KeyPath| TopicUse::typed(TopicRole::Observes, topic, at).by(&self.group);
        let mut uses = vec![observe(&self.trigger, section.key("trigger"))];
        for (i, event) in self.final_events.iter().enumerate() {
            uses.push(observe(event, section.key("final_events").index(i)));
        }
        for (i, step) in self.steps.iter().enumerate() {
            let at = section.key("steps").index(i);
            uses.push(observe(&step.request, at.key("request")));
            uses.push(observe(&step.success, at.key("success")));
            uses.extend(step.failure.iter().map(|f| observe(f, at.key("failure"))));
            uses.extend(step.canary_topic.iter().map(|topic| TopicUse {
                event_type: Some(step.request.clone()),
                ..observe(topic, at.key("canary_topic"))
            }));
        }
        uses
    }

    /// The topics the analytics consumer subscribes to.
    pub fn topics(&self) -> Vec<String> {
        topics_where(&self.topic_uses(), |_| true)
    }
}
