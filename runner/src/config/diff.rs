//! What changed between two versions of a pipeline file, and whether it can be applied to
//! the running service. Pure: compares the layered specs section by section.
//!
//! Hot: chaos settings and rules, the canary percentage and analysis, consumers added,
//! removed or changed (handler parameters, replies, retries) — each rebuilt alone — and
//! streams-analytics' `[analytics]` and `[[slo.objectives]]`. Everything else (broker,
//! database, listen address, consumer groups and topics, the saga, the APIs) needs a restart,
//! and the reload is refused with the keys that changed. [`diff`] destructures the spec, so a
//! new section does not compile until it is decided here.

use super::spec::{ConsumerSpec, PipelineSpec, SagaSpec};

/// The parts of a running pipeline a change touches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub chaos: bool,
    pub canary: bool,
    /// The saga's definition (`[[saga.steps]]`, `[[saga.step_mapping]]`) changed: the
    /// orchestrator is rebuilt on it; instances in flight keep the definition they started on.
    pub saga: bool,
    /// `[analytics]` (steps, final events, Prometheus) changed.
    pub analytics: bool,
    /// `[[slo.objectives]]` changed.
    pub slo: bool,
    /// Consumers to stop (removed or changed), by name.
    pub consumers_stopped: Vec<String>,
    /// Consumers to start (added or changed), by name.
    pub consumers_started: Vec<String>,
}

impl Changes {
    /// Start-up: everything is new (start-up is a reload from nothing).
    pub fn initial(consumers: Vec<String>) -> Self {
        Changes {
            chaos: true,
            canary: true,
            saga: false,
            analytics: true,
            slo: true,
            consumers_stopped: Vec::new(),
            consumers_started: consumers,
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }

    /// One line for logs and the config endpoint.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if self.chaos {
            parts.push("chaos".to_string());
        }
        if self.canary {
            parts.push("canary".to_string());
        }
        if self.saga {
            parts.push("saga definition replaced (instances in flight keep theirs)".to_string());
        }
        if self.analytics {
            parts.push("analytics".to_string());
        }
        if self.slo {
            parts.push("slo objectives".to_string());
        }
        let restarted: Vec<&String> =
            self.consumers_started.iter().filter(|c| self.consumers_stopped.contains(c)).collect();
        for name in &self.consumers_started {
            if !restarted.contains(&name) {
                parts.push(format!("consumer {name} added"));
            }
        }
        for name in &self.consumers_stopped {
            if !restarted.contains(&name) {
                parts.push(format!("consumer {name} removed"));
            }
        }
        for name in restarted {
            parts.push(format!("consumer {name} rebuilt"));
        }
        if parts.is_empty() {
            "nothing".to_string()
        } else {
            parts.join(", ")
        }
    }
}

/// The name a consumer runs under.
pub fn consumer_name(spec: &ConsumerSpec) -> String {
    spec.name.clone().unwrap_or_else(|| spec.handler.clone())
}

/// The changes from `old` to `new`, or the keys whose change needs a restart.
pub fn diff(old: &PipelineSpec, new: &PipelineSpec) -> Result<Changes, Vec<String>> {
    // Both destructured without `..`: a new section does not compile until it is decided
    // here, live or restart.
    let PipelineSpec {
        service,
        broker,
        store,
        order_api,
        relay,
        consumers,
        saga,
        dlq_admin,
        schemas,
        admin,
        chaos,
        chaos_api,
        gameday,
        analytics,
        slo,
        telemetry,
    } = new;
    let PipelineSpec {
        service: old_service,
        broker: old_broker,
        store: old_store,
        order_api: old_order_api,
        relay: old_relay,
        consumers: old_consumers,
        saga: old_saga,
        dlq_admin: old_dlq_admin,
        schemas: old_schemas,
        admin: old_admin,
        chaos: old_chaos,
        chaos_api: old_chaos_api,
        gameday: old_gameday,
        analytics: old_analytics,
        slo: old_slo,
        telemetry: old_telemetry,
    } = old;
    let mut restart = Vec::new();
    let mut fixed = |name: &str, same: bool| {
        if !same {
            restart.push(name.to_string());
        }
    };
    fixed("[service]", old_service == service);
    fixed("[broker]", old_broker == broker);
    fixed("[store]", old_store == store);
    fixed("[order_api]", old_order_api == order_api);
    fixed("[relay]", old_relay == relay);
    fixed("[dlq_admin]", old_dlq_admin == dlq_admin);
    fixed("[chaos_api]", old_chaos_api == chaos_api);
    fixed("[gameday]", old_gameday == gameday);
    fixed("[schemas]", old_schemas == schemas);
    fixed("[admin]", old_admin == admin);
    fixed("[telemetry]", old_telemetry == telemetry);
    fixed("[saga]", without_live_parts(old_saga) == without_live_parts(saga));
    match (old_analytics, analytics) {
        // The analytics consumer is rebuilt live; its group is where it resumes from.
        (Some(old), Some(new)) => fixed("the consumer group of [analytics]", old.group == new.group),
        // Starting or stopping streams-analytics adds or removes routes.
        (Some(_), None) | (None, Some(_)) => fixed("[analytics] (added or removed)", false),
        (None, None) => {}
    }

    let mut changes = Changes {
        chaos: old_chaos != chaos,
        canary: old_saga.as_ref().and_then(|s| s.canary.as_ref()) != saga.as_ref().and_then(|s| s.canary.as_ref()),
        saga: old_saga.as_ref().map(|s| (&s.steps, &s.step_mapping))
            != saga.as_ref().map(|s| (&s.steps, &s.step_mapping)),
        analytics: old_analytics != analytics,
        slo: old_slo != slo,
        ..Changes::default()
    };
    for old_consumer in old_consumers {
        let name = consumer_name(old_consumer);
        match consumers.iter().find(|c| consumer_name(c) == name) {
            None => changes.consumers_stopped.push(name),
            Some(new_consumer) if new_consumer != old_consumer => {
                if new_consumer.group != old_consumer.group {
                    restart.push(format!("the consumer group of consumer `{name}`"));
                } else if new_consumer.topic != old_consumer.topic {
                    restart.push(format!("the topic of consumer `{name}`"));
                } else {
                    changes.consumers_stopped.push(name.clone());
                    changes.consumers_started.push(name);
                }
            }
            Some(_) => {}
        }
    }
    for new_consumer in consumers {
        let name = consumer_name(new_consumer);
        if !old_consumers.iter().any(|c| consumer_name(c) == name) {
            changes.consumers_started.push(name);
        }
    }
    if restart.is_empty() {
        Ok(changes)
    } else {
        Err(restart)
    }
}

/// The saga without what changes at runtime: its canary's percentage and analysis, and its
/// definition (steps and step mappings: the orchestrator is rebuilt on a new one).
fn without_live_parts(saga: &Option<SagaSpec>) -> Option<SagaSpec> {
    saga.clone().map(|mut saga| {
        if let Some(canary) = saga.canary.as_mut() {
            canary.percent = None;
            canary.analysis = None;
        }
        saga.steps.clear();
        saga.step_mapping.clear();
        saga
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> PipelineSpec {
        toml::from_str(text).expect("spec")
    }

    const BASE: &str = r#"
[broker]
brokers = "embedded"
[[consumers]]
name = "charge"
topic = "payment.requested"
handler = "payment.charge"
on_success = "payment.charged"
params = { decline_above = 500000 }
[saga]
trigger = "order.created"
on_completed = "order.completed"
on_cancelled = "order.cancelled"
on_failed = "order.failed"
[saga.canary]
step = "payment"
percent = 10
[analytics]
final_events = ["order.completed"]
[[analytics.steps]]
name = "payment"
request = "payment.requested"
success = "payment.charged"
[[slo.objectives]]
name = "order-success"
kind = "success_ratio"
objective = 0.95
"#;

    /// A text replaced in the base file, and the summary of changes or the restart keys.
    type Case<'a> = (&'a str, &'a str, Result<&'a str, &'a [&'a str]>);

    #[test]
    fn hot_changes_and_restarts() {
        let base = spec(BASE);
        assert_eq!(diff(&base, &base), Ok(Changes::default()));
        let cases: &[Case] = &[
            ("percent = 10", "percent = 50", Ok("canary")),
            ("decline_above = 500000", "decline_above = 100", Ok("consumer charge rebuilt")),
            ("[broker]\nbrokers = \"embedded\"", "[broker]\nbrokers = \"k:9092\"", Err(&["[broker]"])),
            (
                "name = \"charge\"",
                "name = \"charge\"\ngroup = \"other\"",
                Err(&["the consumer group of consumer `charge`"]),
            ),
            ("step = \"payment\"", "step = \"shipping\"", Err(&["[saga]"])),
            ("trigger = \"order.created\"", "trigger = \"order.placed\"", Err(&["[saga]"])),
            (
                "on_failed = \"order.failed\"\n",
                "on_failed = \"order.failed\"\n[[saga.steps]]\nname = \"x\"\nrequest = \"a\"\nsuccess = \"b\"\n",
                Ok("saga definition replaced (instances in flight keep theirs)"),
            ),
            (
                "on_failed = \"order.failed\"\n",
                "on_failed = \"order.failed\"\n[[saga.step_mapping]]\nfrom = \"x\"\nto = \"y\"\n",
                Ok("saga definition replaced (instances in flight keep theirs)"),
            ),
            ("[saga]", "[chaos]\nenabled = true\n[saga]", Ok("chaos")),
            ("objective = 0.95", "objective = 0.97", Ok("slo objectives")),
            ("[\"order.completed\"]", "[\"order.completed\", \"order.failed\"]", Ok("analytics")),
            ("success = \"payment.charged\"\n[[slo", "success = \"payment.charged\"\nfailure = \"payment.declined\"\n[[slo", Ok("analytics")),
            ("[analytics]", "[analytics]\ngroup = \"other\"", Err(&["the consumer group of [analytics]"])),
            (
                "[analytics]\nfinal_events = [\"order.completed\"]\n[[analytics.steps]]\nname = \"payment\"\nrequest = \"payment.requested\"\nsuccess = \"payment.charged\"\n",
                "",
                Err(&["[analytics] (added or removed)"]),
            ),
        ];
        for (from, to, expected) in cases {
            let changed = spec(&BASE.replace(from, to));
            let got = diff(&base, &changed).map(|c| c.summary());
            let expected = expected.map(str::to_string).map_err(|keys| keys.iter().map(|k| k.to_string()).collect());
            assert_eq!(got, expected, "{from} -> {to}");
        }
    }
}
