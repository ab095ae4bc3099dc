//! Turns a parsed [`PipelineSpec`] into a typed [`Pipeline`], reporting every problem at once.
//!
//! Pure: no file, network or database access. One pass per section (a file of this folder
//! each), all writing into one [`Compiler`], which collects problems by key path; the loader
//! turns paths into `file:line:column` with the file's [`SourceMap`](crate::diagnostic::SourceMap).
//! [`check_system`] adds the checks that need every pipeline of the system together.

mod analytics;
mod apis;
mod chaos;
mod consumers;
mod relay;
mod saga;
mod service;
mod system;

use std::time::Duration;

pub use crate::diagnostic::Problem;
pub use relay::parse_bytes;
pub use system::check_system;

use super::model::Pipeline;
use super::spec::PipelineSpec;
use crate::diagnostic::KeyPath;

/// Collects the problems of one file while the passes compile its sections.
pub(crate) struct Compiler {
    problems: Vec<Problem>,
}

/// The range a duration setting may take: every duration is bounded, so arithmetic on it
/// (deadlines, backoffs) cannot overflow and no setting busy-loops or waits for years.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    pub min: Duration,
    pub max: Duration,
    /// Why the minimum: said when a value is below it.
    pub why_min: &'static str,
}

const DAY: Duration = Duration::from_secs(24 * 3600);
/// Messages a consumer handles at once when its file does not say.
pub(crate) const DEFAULT_IN_FLIGHT: usize = 128;
/// The most a consumer may handle at once: each holds a message and a database connection.
pub(crate) const MAX_IN_FLIGHT: usize = 1024;

/// The most groups one consumer commits side by side (each holds a database connection).
pub(crate) const MAX_GROUPS_IN_FLIGHT: usize = 8;

impl Bounds {
    /// Backoffs, grace periods, windows.
    pub const ANY: Bounds = Bounds { min: Duration::ZERO, max: Duration::from_secs(10 * 31_557_600), why_min: "" };
    /// Ticks and polling intervals: a zero one would spin a core.
    pub const INTERVAL: Bounds =
        Bounds { min: Duration::from_millis(1), max: DAY, why_min: "an interval this short would busy-loop" };
    /// How long to wait for something: a zero wait gives up before anything can answer.
    pub const WAIT: Bounds = Bounds {
        min: Duration::from_millis(1),
        max: Duration::from_secs(7 * 24 * 3600),
        why_min: "nothing can answer in no time",
    };
}

/// Attempts and exponential backoff: what both retry policies (saga steps, consumers) share.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Backoff {
    pub attempts: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Compiler {
    pub(crate) fn new() -> Self {
        Compiler { problems: Vec::new() }
    }

    /// Every problem found, in the order found.
    pub(crate) fn into_problems(self) -> Vec<Problem> {
        self.problems
    }

    pub(crate) fn problem(&mut self, at: KeyPath, message: impl Into<String>) {
        self.problems.push(Problem::at_value(at, message));
    }

    /// Problems found by another component (handler parameters), relative to `at`.
    pub(crate) fn problems_under(&mut self, at: &KeyPath, problems: Vec<Problem>) {
        self.problems.extend(problems.into_iter().map(|p| p.under(at)));
    }

    /// A duration within [`Bounds::ANY`].
    pub(crate) fn duration(&mut self, at: KeyPath, text: Option<&str>, default: Duration) -> Duration {
        self.duration_in(at, text, default, Bounds::ANY)
    }

    /// A duration within `bounds`; outside them, a problem naming the bound.
    pub(crate) fn duration_in(
        &mut self,
        at: KeyPath,
        text: Option<&str>,
        default: Duration,
        bounds: Bounds,
    ) -> Duration {
        let Some(text) = text else { return default };
        let parsed = match humantime::parse_duration(text) {
            Ok(d) => d,
            Err(e) => {
                self.problem(
                    at,
                    format!("invalid duration `{text}` ({e}); write it like \"500ms\", \"10s\" or \"2m\""),
                );
                return default;
            }
        };
        let shown = |d: Duration| humantime::format_duration(d).to_string();
        if parsed < bounds.min {
            self.problem(at, format!("`{text}` is too short: {} (use at least {})", bounds.why_min, shown(bounds.min)));
            bounds.min
        } else if parsed > bounds.max {
            self.problem(at, format!("`{text}` is too long; use at most {}", shown(bounds.max)));
            bounds.max
        } else {
            parsed
        }
    }

    /// An event type (it is also a topic name).
    pub(crate) fn event_type(&mut self, at: KeyPath, name: &str) {
        let valid = !name.is_empty()
            && name.len() <= 249
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !valid {
            self.problem(at, format!("`{name}` is not a valid event type; use letters, digits, `.`, `_` and `-` (it is also the topic name)"));
        }
    }

    /// A label value or name: letters, digits, `_` and `-`.
    pub(crate) fn label(&mut self, at: KeyPath, name: &str) {
        if name.is_empty() || !name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-') {
            self.problem(at, "use letters, digits, `_` and `-` (it is a label value)");
        }
    }

    /// A consumer's `max_in_flight`: 1 to [`MAX_IN_FLIGHT`], default [`DEFAULT_IN_FLIGHT`].
    pub(crate) fn max_in_flight(&mut self, at: KeyPath, value: Option<u32>) -> usize {
        match value {
            None => DEFAULT_IN_FLIGHT,
            Some(n) if (1..=MAX_IN_FLIGHT as u32).contains(&n) => n as usize,
            Some(n) => {
                self.problem(
                    at,
                    format!("max_in_flight = {n} is out of range: 1 (one message after the other) to {MAX_IN_FLIGHT}"),
                );
                DEFAULT_IN_FLIGHT
            }
        }
    }

    /// A consumer's `max_group`: 1 to its `max_in_flight` (a group is made of messages in
    /// flight), default `max_in_flight`.
    pub(crate) fn max_group(&mut self, at: KeyPath, value: Option<u32>, max_in_flight: usize) -> usize {
        match value {
            None => max_in_flight,
            Some(n) if n >= 1 && n as usize <= max_in_flight => n as usize,
            Some(n) => {
                self.problem(
                    at,
                    format!(
                        "max_group = {n} is out of range: 1 (a transaction per message) to max_in_flight ({max_in_flight})"
                    ),
                );
                max_in_flight
            }
        }
    }

    /// A consumer's `groups_in_flight`: 1 to [`MAX_GROUPS_IN_FLIGHT`], and above 1 only
    /// with groups of several messages (with `max_group = 1` each message commits alone,
    /// beside the others in flight, and there is no group to run side by side).
    pub(crate) fn groups_in_flight(&mut self, at: KeyPath, value: Option<u32>, max_group: usize) -> usize {
        match value {
            None => 1,
            Some(n) if n >= 1 && n as usize <= MAX_GROUPS_IN_FLIGHT && (n == 1 || max_group > 1) => n as usize,
            Some(n) if n >= 1 && n as usize <= MAX_GROUPS_IN_FLIGHT => {
                self.problem(
                    at,
                    format!(
                        "groups_in_flight = {n} needs max_group above 1: with max_group = 1 every message \
                         commits alone, beside the others in flight; remove groups_in_flight or raise max_group"
                    ),
                );
                1
            }
            Some(n) => {
                self.problem(
                    at,
                    format!(
                        "groups_in_flight = {n} is out of range: 1 (one group after the other) to {MAX_GROUPS_IN_FLIGHT}"
                    ),
                );
                1
            }
        }
    }

    /// The one reader of `attempts`, `backoff` and `max_backoff` under `at`.
    pub(crate) fn backoff(
        &mut self,
        at: &KeyPath,
        attempts: Option<u32>,
        backoff: Option<&str>,
        max_backoff: Option<&str>,
        default: Backoff,
    ) -> Backoff {
        let attempts = attempts.unwrap_or(default.attempts);
        if attempts == 0 {
            self.problem(at.key("attempts"), "attempts must be at least 1 (the first attempt counts)");
        }
        let backoff = self.duration(at.key("backoff"), backoff, default.backoff);
        let max_backoff = self.duration(at.key("max_backoff"), max_backoff, default.max_backoff);
        if max_backoff < backoff {
            self.problem(at.key("max_backoff"), "max_backoff is shorter than backoff; raise it or lower backoff");
        }
        Backoff { attempts: attempts.max(1), backoff, max_backoff }
    }
}

/// Compiles one pipeline. `default_name` (the file stem) names a service without `service.name`.
pub fn compile(spec: &PipelineSpec, default_name: &str) -> Result<Pipeline, Vec<Problem>> {
    let mut c = Compiler { problems: Vec::new() };
    // Destructured without `..`: a new section does not compile until it has a pass here.
    let PipelineSpec {
        service,
        broker,
        store,
        order_api,
        relay,
        consumers,
        saga,
        dlq_admin,
        schemas: _, // read by the loader, which resolves the folder against the file
        admin,
        chaos,
        chaos_api,
        gameday,
        analytics,
        slo,
        telemetry,
    } = spec;
    let identity = service::compile_service(&mut c, service, default_name);
    let name = identity.name.as_str();
    let broker = service::compile_broker(&mut c, broker);
    let store = service::compile_store(&mut c, store);
    let admin = service::compile_admin(&mut c, admin.as_ref());
    let telemetry = telemetry.as_ref().map(|t| service::compile_telemetry(&mut c, t)).unwrap_or_default();
    let order_api = order_api.as_ref().map(|api| apis::compile_order_api(&mut c, api));
    let relay = relay.as_ref().map(|r| relay::compile_relay(&mut c, r, &store));
    let consumers = consumers::compile_consumers(&mut c, consumers, name);
    let saga = saga.as_ref().map(|s| saga::compile_saga(&mut c, s, name));
    let dlq_admin = dlq_admin.as_ref().map(|d| apis::compile_dlq_admin(&mut c, d, name, &admin));
    let chaos_api = chaos_api.as_ref().map(|api| apis::compile_chaos_api(&mut c, api, &admin));
    let gameday = gameday.as_ref().map(|g| apis::compile_gameday(&mut c, g, &admin));
    let chaos = chaos::compile_chaos(&mut c, chaos.as_ref());
    let slo = slo.as_ref().map(|s| analytics::compile_slo(&mut c, s)).unwrap_or_default();
    let analytics = analytics.as_ref().map(|a| analytics::compile_analytics(&mut c, a, name));

    let runs_something = order_api.is_some()
        || relay.is_some()
        || !spec.consumers.is_empty()
        || saga.is_some()
        || dlq_admin.is_some()
        || chaos_api.is_some()
        || gameday.is_some()
        || analytics.is_some();
    if !runs_something {
        c.problem(
            KeyPath::root(),
            "this pipeline runs nothing; add an [order_api], [relay], [[consumers]], [saga], [dlq_admin], [chaos_api], [gameday] or [analytics] section",
        );
    }
    if !c.problems.is_empty() {
        return Err(c.problems);
    }
    Ok(Pipeline {
        service: identity.name,
        listen: identity.listen,
        shutdown_grace: identity.shutdown_grace,
        variant: identity.variant,
        broker,
        store,
        order_api,
        relay,
        consumers,
        saga,
        dlq_admin,
        schemas_dir: None,
        schemas: std::sync::Arc::new(crate::schemas::SchemaRegistry::empty()),
        admin,
        chaos,
        chaos_api,
        gameday,
        slo,
        analytics,
        telemetry,
    })
}
