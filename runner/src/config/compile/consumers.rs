//! The `[[consumers]]` pass: each consumer's topics, handler and parameters, retry policy and
//! dead-letter topic.

use std::collections::BTreeSet;

use super::{Backoff, Compiler};
use crate::config::spec::{ConsumerSpec, DeliveryRetrySpec};
use crate::diagnostic::KeyPath;
use crate::handlers::{self, BuildError};
use crate::services::worker::ConsumerConfig;
use crate::transport::dead_letter::{self, ErrorKind};
use crate::transport::DeliveryRetry;

pub(super) fn compile_consumers(c: &mut Compiler, specs: &[ConsumerSpec], service: &str) -> Vec<ConsumerConfig> {
    let mut consumers = Vec::new();
    let mut names = BTreeSet::new();
    for (i, consumer) in specs.iter().enumerate() {
        let at = KeyPath::section("consumers").index(i);
        let name = consumer.name.clone().unwrap_or_else(|| consumer.handler.clone());
        if !names.insert(name.clone()) {
            c.problem(
                at.key("name"),
                format!("a consumer named `{name}` already exists in this file; give each a distinct `name`"),
            );
        }
        if let Some(config) = compile_consumer(c, consumer, &at, name, service) {
            consumers.push(config);
        }
    }
    consumers
}

fn compile_consumer(
    c: &mut Compiler,
    consumer: &ConsumerSpec,
    at: &KeyPath,
    name: String,
    service: &str,
) -> Option<ConsumerConfig> {
    c.event_type(at.key("topic"), &consumer.topic);
    if let Some(event_type) = &consumer.event_type {
        c.event_type(at.key("event_type"), event_type);
    }
    c.event_type(at.key("on_success"), &consumer.on_success);
    if let Some(failure) = &consumer.on_failure {
        c.event_type(at.key("on_failure"), failure);
    }
    if let Some(topic) = &consumer.dead_letter_topic {
        c.event_type(at.key("dead_letter_topic"), topic);
    }
    // A reply on the topic the consumer reads would be handled as a request, forever.
    let replies = std::iter::once(("on_success", &consumer.on_success))
        .chain(consumer.on_failure.iter().map(|failure| ("on_failure", failure)));
    for (key, reply) in replies {
        if reply == &consumer.topic || Some(reply) == consumer.event_type.as_ref() {
            c.problem(at.key(key), format!("`{reply}` is the consumer's own topic: it would handle its own replies forever; reply with another event type"));
        }
    }
    let retry = compile_delivery_retry(c, &at.key("retry"), consumer.retry.as_ref());
    let handler = match handlers::build(&consumer.handler, &consumer.params) {
        Ok(handler) => handler,
        Err(BuildError::UnknownHandler { known }) => {
            c.problem(
                at.key("handler"),
                format!("unknown handler `{}`; known handlers: {}", consumer.handler, known.join(", ")),
            );
            return None;
        }
        Err(BuildError::Params(problems)) => {
            c.problems_under(&at.key("params"), problems);
            return None;
        }
    };
    let max_in_flight = c.max_in_flight(at.key("max_in_flight"), consumer.max_in_flight);
    let max_group = c.max_group(at.key("max_group"), consumer.max_group, max_in_flight);
    let groups_in_flight = c.groups_in_flight(at.key("groups_in_flight"), consumer.groups_in_flight, max_group);
    Some(ConsumerConfig {
        retry,
        max_in_flight,
        max_group,
        groups_in_flight,
        dead_letter_topic: consumer
            .dead_letter_topic
            .clone()
            .unwrap_or_else(|| dead_letter::topic_for(&consumer.topic)),
        group: consumer.group.clone().unwrap_or_else(|| format!("{service}.{name}")),
        name,
        topic: consumer.topic.clone(),
        event_type: consumer.event_type.clone().unwrap_or_else(|| consumer.topic.clone()),
        handler,
        on_success: consumer.on_success.clone(),
        on_failure: consumer.on_failure.clone(),
    })
}

fn compile_delivery_retry(c: &mut Compiler, at: &KeyPath, spec: Option<&DeliveryRetrySpec>) -> DeliveryRetry {
    let default = DeliveryRetry::default();
    let Some(spec) = spec else { return default };
    let base = Backoff { attempts: default.attempts, backoff: default.backoff, max_backoff: default.max_backoff };
    let Backoff { attempts, backoff, max_backoff } =
        c.backoff(at, spec.attempts, spec.backoff.as_deref(), spec.max_backoff.as_deref(), base);
    let jitter = spec.jitter.unwrap_or(default.jitter);
    if !(0.0..=1.0).contains(&jitter) {
        c.problem(at.key("jitter"), "jitter is a share of the delay: write a number from 0 to 1");
    }
    let mut retryable = Vec::new();
    for (i, kind) in spec.retryable.clone().unwrap_or_else(|| default.retryable.clone()).into_iter().enumerate() {
        match kind {
            ErrorKind::HandlerFailed | ErrorKind::Unavailable => retryable.push(kind),
            ErrorKind::Undecodable | ErrorKind::SchemaInvalid | ErrorKind::Rejected => c.problem(
                at.key("retryable").index(i),
                format!("`{kind}` failures fail the same way every time and are never retried; remove it"),
            ),
        }
    }
    DeliveryRetry { attempts, backoff, max_backoff, jitter, retryable }
}
