//! How a pipeline uses a topic: the one record every topic list is derived from (topics to
//! create, to subscribe to, to find a producer or consumer for, event types needing a schema,
//! consumer groups whose lag is measured, and the key that names each of them).

use crate::diagnostic::KeyPath;

/// What a pipeline does with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicRole {
    /// Writes to it (through the outbox or directly, as dead letters).
    Produces,
    /// Consumes it and acts on it: a request or reply someone waits for.
    Handles,
    /// Consumes it only to measure it (streams-analytics): answers nothing.
    Observes,
}

/// One topic a pipeline names, with the part of the file that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicUse {
    pub topic: String,
    pub role: TopicRole,
    /// The event type the topic carries (it needs a schema); `None` for dead-letter topics,
    /// which carry other topics' events.
    pub event_type: Option<String>,
    /// The consumer group reading it (consuming roles only).
    pub group: Option<String>,
    /// The key of the pipeline file that names it (the section when only a default does).
    pub at: KeyPath,
}

impl TopicUse {
    /// A topic named after the event type it carries.
    pub fn typed(role: TopicRole, topic: &str, at: KeyPath) -> Self {
        TopicUse { topic: topic.to_string(), role, event_type: Some(topic.to_string()), group: None, at }
    }

    /// A dead-letter topic: it carries other topics' events, whatever their type.
    pub fn dead_letters(role: TopicRole, topic: &str, at: KeyPath) -> Self {
        TopicUse { topic: topic.to_string(), role, event_type: None, group: None, at }
    }

    /// The same use, read by `group`.
    pub fn by(self, group: &str) -> Self {
        TopicUse { group: Some(group.to_string()), ..self }
    }

    pub fn consumes(&self) -> bool {
        matches!(self.role, TopicRole::Handles | TopicRole::Observes)
    }
}

/// The distinct topics of `uses` that match `keep`, in first-use order.
pub fn topics_where(uses: &[TopicUse], keep: impl Fn(&TopicUse) -> bool) -> Vec<String> {
    let mut topics: Vec<String> = Vec::new();
    for u in uses.iter().filter(|u| keep(u)) {
        if !topics.contains(&u.topic) {
            topics.push(u.topic.clone());
        }
    }
    topics
}
