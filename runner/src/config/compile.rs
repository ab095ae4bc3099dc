//! Turns a parsed [`PipelineSpec`] into a typed [`Pipeline`], reporting every problem at once.
//!
//! Pure: no file, network or database access. Problems are named by key path; the loader
//! turns paths into `file:line:column` with the file's [`SourceMap`](super::SourceMap).
//! [`check_system`] adds the checks that need every pipeline of the system together.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use super::diagnostic::{Anchor, KeyPath};
use super::model::*;
use super::spec::*;
use crate::handlers::{self, BuildError};
use crate::saga::machine::{CompensationDefinition, RetryPolicy, SagaDefinition, StepDefinition};
use crate::transport::dead_letter::ErrorKind;

/// A problem at a key path of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: KeyPath,
    /// Whether the diagnostic points at the key or at its value.
    pub anchor: Anchor,
    pub message: String,
}

impl Problem {
    /// A problem with the value at `path`.
    pub fn at_value(path: KeyPath, message: impl Into<String>) -> Self {
        Problem { path, anchor: Anchor::Value, message: message.into() }
    }

    /// A problem with the key at `path` itself (unknown, or to be removed).
    pub fn at_key(path: KeyPath, message: impl Into<String>) -> Self {
        Problem { path, anchor: Anchor::Key, message: message.into() }
    }
}

struct Compiler {
    problems: Vec<Problem>,
}

impl Compiler {
    fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem::at_value(KeyPath::parse(path), message));
    }

    fn duration(&mut self, path: &str, text: Option<&str>, default: Duration) -> Duration {
        let Some(text) = text else { return default };
        match humantime::parse_duration(text) {
            Ok(d) => d,
            Err(e) => {
                self.problem(
                    path,
                    format!("invalid duration `{text}` ({e}); write it like \"500ms\", \"10s\" or \"2m\""),
                );
                default
            }
        }
    }

    fn event_type(&mut self, path: &str, name: &str) {
        let valid = !name.is_empty()
            && name.len() <= 249
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !valid {
            self.problem(path, format!("`{name}` is not a valid event type; use letters, digits, `.`, `_` and `-` (it is also the topic name)"));
        }
    }

    fn retry(&mut self, path: &str, spec: Option<&RetrySpec>) -> RetryPolicy {
        let default =
            RetryPolicy { attempts: 3, backoff: Duration::from_millis(500), max_backoff: Duration::from_secs(30) };
        let Some(spec) = spec else { return default };
        let attempts = spec.attempts.unwrap_or(default.attempts);
        if attempts == 0 {
            self.problem(&format!("{path}.attempts"), "attempts must be at least 1 (the first attempt counts)");
        }
        let backoff = self.duration(&format!("{path}.backoff"), spec.backoff.as_deref(), default.backoff);
        let max_backoff =
            self.duration(&format!("{path}.max_backoff"), spec.max_backoff.as_deref(), default.max_backoff);
        if max_backoff < backoff {
            self.problem(
                &format!("{path}.max_backoff"),
                "max_backoff is shorter than backoff; raise it or lower backoff",
            );
        }
        RetryPolicy { attempts: attempts.max(1), backoff, max_backoff }
    }
}

/// Compiles one pipeline. `default_name` (the file stem) names a service without `service.name`.
pub fn compile(spec: &PipelineSpec, default_name: &str) -> Result<Pipeline, Vec<Problem>> {
    let mut c = Compiler { problems: Vec::new() };
    let service = spec.service.name.clone().unwrap_or_else(|| default_name.to_string());
    if service.is_empty() {
        c.problem("service.name", "service name is empty");
    }
    let listen_text = spec.service.listen.as_deref().unwrap_or("127.0.0.1:8080");
    let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
        c.problem("service.listen", format!("`{listen_text}` is not a socket address; write it like \"0.0.0.0:8080\""));
        SocketAddr::from(([127, 0, 0, 1], 8080))
    });
    let shutdown_grace =
        c.duration("service.shutdown_grace", spec.service.shutdown_grace.as_deref(), Duration::from_secs(10));

    let broker = compile_broker(&mut c, &spec.broker);
    let store = compile_store(&mut c, &spec.store);

    let order_api = spec.order_api.as_ref().map(|api| {
        let created_event = api.created_event.clone().unwrap_or_else(|| "order.created".to_string());
        c.event_type("order_api.created_event", &created_event);
        let max_body_bytes = api.max_body_bytes.unwrap_or(64 * 1024);
        if max_body_bytes < 256 {
            c.problem("order_api.max_body_bytes", "max_body_bytes below 256 would refuse every order; raise it");
        }
        let max_page_size = api.max_page_size.unwrap_or(500);
        if max_page_size == 0 {
            c.problem("order_api.max_page_size", "max_page_size must be at least 1");
        }
        OrderApiConfig { max_body_bytes, created_event, max_page_size }
    });

    let relay = spec.relay.as_ref().map(|relay| {
        let mode = match relay.mode.as_deref().unwrap_or("auto") {
            "polling" => RelayMode::Polling,
            "wal" => RelayMode::Wal,
            "auto" => RelayMode::Auto,
            other => {
                c.problem(
                    "relay.mode",
                    format!("unknown relay mode `{other}`; expected \"auto\", \"wal\" or \"polling\""),
                );
                RelayMode::Auto
            }
        };
        let after_publish = match relay.after_publish.as_deref().unwrap_or("mark") {
            "mark" => AfterPublish::Mark,
            "delete" => AfterPublish::Delete,
            "keep" if mode == RelayMode::Wal => AfterPublish::Keep,
            "keep" => {
                c.problem(
                    "relay.after_publish",
                    "`keep` needs relay mode \"wal\": polling finds unpublished rows by their mark",
                );
                AfterPublish::Mark
            }
            other => {
                c.problem(
                    "relay.after_publish",
                    format!("unknown value `{other}`; expected \"mark\", \"delete\" or \"keep\""),
                );
                AfterPublish::Mark
            }
        };
        let wal = compile_wal(&mut c, relay);
        let batch_size = relay.batch_size.unwrap_or(500);
        if batch_size == 0 {
            c.problem("relay.batch_size", "batch_size must be at least 1");
        }
        RelayConfig {
            poll_interval: c.duration("relay.poll_interval", relay.poll_interval.as_deref(), Duration::from_millis(20)),
            batch_size: batch_size.max(1),
            after_publish,
            mode,
            wal,
        }
    });

    let mut consumers = Vec::new();
    let mut names = BTreeSet::new();
    for (i, consumer) in spec.consumers.iter().enumerate() {
        let at = format!("consumers[{i}]");
        c.event_type(&format!("{at}.topic"), &consumer.topic);
        if let Some(event_type) = &consumer.event_type {
            c.event_type(&format!("{at}.event_type"), event_type);
        }
        c.event_type(&format!("{at}.on_success"), &consumer.on_success);
        if let Some(failure) = &consumer.on_failure {
            c.event_type(&format!("{at}.on_failure"), failure);
        }
        let name = consumer.name.clone().unwrap_or_else(|| consumer.handler.clone());
        if !names.insert(name.clone()) {
            c.problem(
                &format!("{at}.name"),
                format!("a consumer named `{name}` already exists in this file; give each a distinct `name`"),
            );
        }
        match handlers::build(&consumer.handler, &consumer.params) {
            Ok(handler) => consumers.push(ConsumerConfig {
                retry: compile_delivery_retry(&mut c, &format!("{at}.retry"), consumer.retry.as_ref()),
                dead_letter_topic: match &consumer.dead_letter_topic {
                    Some(topic) => {
                        c.event_type(&format!("{at}.dead_letter_topic"), topic);
                        topic.clone()
                    }
                    None => crate::transport::dead_letter::topic_for(&consumer.topic),
                },
                group: consumer.group.clone().unwrap_or_else(|| format!("{service}.{name}")),
                name,
                topic: consumer.topic.clone(),
                event_type: consumer.event_type.clone().unwrap_or_else(|| consumer.topic.clone()),
                handler,
                on_success: consumer.on_success.clone(),
                on_failure: consumer.on_failure.clone(),
            }),
            Err(BuildError::UnknownHandler { known }) => c.problem(
                &format!("{at}.handler"),
                format!("unknown handler `{}`; known handlers: {}", consumer.handler, known.join(", ")),
            ),
            Err(BuildError::Params(problems)) => {
                // Paths are relative to `params`; joined as segments, since a parameter key
                // (a SKU, say) may itself contain `.` or `[`.
                let params = KeyPath::parse(&at).key("params");
                for problem in problems {
                    let mut path = params.clone();
                    path.0.extend(problem.path.0);
                    c.problems.push(Problem { path, ..problem });
                }
            }
        }
    }

    if relay.as_ref().is_some_and(|r| r.mode == RelayMode::Wal) && store.url.starts_with("sqlite:") {
        c.problem(
            "relay.mode",
            "relay mode \"wal\" reads PostgreSQL's WAL, but the database is SQLite; use \"polling\" or \"auto\"",
        );
    }
    let saga = spec.saga.as_ref().map(|saga| compile_saga(&mut c, saga, &service));

    let dlq_admin = spec.dlq_admin.as_ref().map(|d| {
        let topics = d.topics.clone().unwrap_or_else(|| "^.*\\.dlq$".to_string());
        if !topics.starts_with('^') {
            c.problem(
                "dlq_admin.topics",
                "the topic pattern must start with `^` (Kafka reads only such patterns as regular expressions)",
            );
        }
        let max_replays = d.max_replays.unwrap_or(3);
        let replay_rate = d.replay_rate.unwrap_or(50);
        if replay_rate == 0 {
            c.problem("dlq_admin.replay_rate", "replay_rate must be at least 1 message per second");
        }
        DlqAdminConfig {
            topics,
            group: d.group.clone().unwrap_or_else(|| service.clone()),
            max_replays,
            replay_rate: replay_rate.max(1),
            max_bulk: d.max_bulk.unwrap_or(10_000).max(1),
        }
    });
    let admin = AdminConfig {
        tokens: spec
            .admin
            .iter()
            .flat_map(|a| a.tokens.iter().map(|(who, token)| (who.clone(), token.clone())))
            .collect(),
    };
    for (who, token) in &admin.tokens {
        if token.len() < 16 {
            c.problem(
                &format!("admin.tokens.{who}"),
                format!("the token of `{who}` is shorter than 16 characters; use a long random one"),
            );
        }
    }
    if dlq_admin.is_some() && admin.tokens.is_empty() {
        c.problem("dlq_admin", "the dead-letter console changes things and needs [admin] tokens; add one, e.g. with RUNNER_ADMIN__TOKENS__OPERATOR");
    }
    let chaos = compile_chaos(&mut c, spec.chaos.as_ref());
    let slo = spec.slo.as_ref().map(|slo| compile_slo(&mut c, slo)).unwrap_or_default();
    let analytics = spec.analytics.as_ref().map(|a| {
        let trigger = a.trigger.clone().unwrap_or_else(|| "order.created".into());
        c.event_type("analytics.trigger", &trigger);
        let final_events = a
            .final_events
            .clone()
            .unwrap_or_else(|| vec!["order.completed".into(), "order.cancelled".into(), "order.failed".into()]);
        for (i, event) in final_events.iter().enumerate() {
            c.event_type(&format!("analytics.final_events[{i}]"), event);
        }
        if let Some(url) = &a.prometheus_url {
            if !url.starts_with("http://") || url::Url::parse(url).is_err() {
                c.problem(
                    "analytics.prometheus_url",
                    format!("`{url}` is not an http:// URL; write it like \"http://prometheus:9090\""),
                );
            }
        }
        let mut steps = Vec::new();
        for (i, step) in a.steps.iter().enumerate() {
            let path = format!("analytics.steps[{i}]");
            if step.name.is_empty() || !step.name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
            {
                c.problem(&format!("{path}.name"), "use letters, digits, `_` and `-` (it is a label value)");
            }
            if a.steps[..i].iter().any(|earlier| earlier.name == step.name) {
                c.problem(&format!("{path}.name"), format!("step `{}` is listed twice", step.name));
            }
            c.event_type(&format!("{path}.request"), &step.request);
            c.event_type(&format!("{path}.success"), &step.success);
            if let Some(failure) = &step.failure {
                c.event_type(&format!("{path}.failure"), failure);
            }
            if let Some(topic) = &step.canary_topic {
                c.event_type(&format!("{path}.canary_topic"), topic);
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
            group: a.group.clone().unwrap_or_else(|| service.clone()),
            trigger,
            final_events,
            prometheus_url: a.prometheus_url.clone(),
            steps,
        }
    });
    let telemetry = spec.telemetry.as_ref().map(|t| compile_telemetry(&mut c, t)).unwrap_or_default();
    let chaos_api = spec.chaos_api.as_ref().map(|api| compile_chaos_api(&mut c, api));
    if chaos_api.is_some() && admin.tokens.is_empty() {
        c.problem(
            "chaos_api",
            "chaos-svc changes things and needs [admin] tokens; add one, e.g. with RUNNER_ADMIN__TOKENS__OPERATOR",
        );
    }
    let variant = spec.service.variant.clone().unwrap_or_else(|| "stable".to_string());
    if variant != "stable" && variant != "canary" {
        c.problem("service.variant", format!("unknown variant `{variant}`; use \"stable\" or \"canary\""));
    }
    if spec.order_api.is_none()
        && spec.relay.is_none()
        && spec.consumers.is_empty()
        && spec.saga.is_none()
        && spec.dlq_admin.is_none()
        && spec.chaos_api.is_none()
        && spec.analytics.is_none()
    {
        c.problem(
            "",
            "this pipeline runs nothing; add an [order_api], [relay], [[consumers]], [saga], [dlq_admin], [chaos_api] or [analytics] section",
        );
    }

    if c.problems.is_empty() {
        Ok(Pipeline {
            service,
            listen,
            shutdown_grace,
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
            variant,
            chaos,
            chaos_api,
            slo,
            analytics,
            telemetry,
        })
    } else {
        Err(c.problems)
    }
}

fn compile_telemetry(c: &mut Compiler, spec: &TelemetrySpec) -> TelemetryConfig {
    if let Some(endpoint) = &spec.otlp_endpoint {
        let scheme_ok = endpoint.starts_with("http://") || endpoint.starts_with("https://");
        if !scheme_ok || url::Url::parse(endpoint).is_err() {
            c.problem(
                "telemetry.otlp_endpoint",
                format!("`{endpoint}` is not an http(s):// URL; write the collector's OTLP/HTTP address like \"http://127.0.0.1:4318\""),
            );
        }
    }
    let sample_ratio = spec.sample_ratio.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&sample_ratio) {
        c.problem("telemetry.sample_ratio", format!("{sample_ratio} is not a share; write a number from 0 to 1"));
    }
    TelemetryConfig { otlp_endpoint: spec.otlp_endpoint.clone(), sample_ratio }
}

fn compile_delivery_retry(c: &mut Compiler, path: &str, spec: Option<&DeliveryRetrySpec>) -> DeliveryRetry {
    let default = DeliveryRetry::default();
    let Some(spec) = spec else { return default };
    let attempts = spec.attempts.unwrap_or(default.attempts);
    if attempts == 0 {
        c.problem(&format!("{path}.attempts"), "attempts must be at least 1 (the first attempt counts)");
    }
    let backoff = c.duration(&format!("{path}.backoff"), spec.backoff.as_deref(), default.backoff);
    let max_backoff = c.duration(&format!("{path}.max_backoff"), spec.max_backoff.as_deref(), default.max_backoff);
    if max_backoff < backoff {
        c.problem(&format!("{path}.max_backoff"), "max_backoff is shorter than backoff; raise it or lower backoff");
    }
    let jitter = spec.jitter.unwrap_or(default.jitter);
    if !(0.0..=1.0).contains(&jitter) {
        c.problem(&format!("{path}.jitter"), "jitter is a share of the delay: write a number from 0 to 1");
    }
    let mut retryable = Vec::new();
    for (i, name) in spec.retryable.clone().unwrap_or_else(|| vec!["handler_failed".into()]).iter().enumerate() {
        match ErrorKind::parse(name) {
            Some(kind @ (ErrorKind::HandlerFailed | ErrorKind::Unavailable)) => retryable.push(kind),
            Some(kind) => c.problem(
                &format!("{path}.retryable[{i}]"),
                format!("`{kind}` failures fail the same way every time and are never retried; remove it"),
            ),
            None => c.problem(
                &format!("{path}.retryable[{i}]"),
                format!("unknown failure kind `{name}`; retryable kinds are \"handler_failed\" and \"unavailable\""),
            ),
        }
    }
    DeliveryRetry { attempts: attempts.max(1), backoff, max_backoff, jitter, retryable }
}

/// A PostgreSQL name the relay puts into SQL: lower-case letters, digits and `_`.
fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
        && !name.starts_with(|ch: char| ch.is_ascii_digit())
}

fn compile_wal(c: &mut Compiler, relay: &RelaySpec) -> WalConfig {
    if let Some(slot) = &relay.slot {
        if !is_identifier(slot) {
            c.problem(
                "relay.slot",
                format!("`{slot}` is not a valid slot name; use up to 63 lower-case letters, digits and `_`"),
            );
        }
    }
    let publication = relay.publication.clone().unwrap_or_else(|| "chaos_outbox".to_string());
    if !is_identifier(&publication) {
        c.problem(
            "relay.publication",
            format!("`{publication}` is not a valid publication name; use up to 63 lower-case letters, digits and `_`"),
        );
    }
    let tables = relay.tables.clone().unwrap_or_else(|| vec!["outbox".to_string()]);
    if tables.is_empty() {
        c.problem("relay.tables", "list at least one outbox table");
    }
    for (i, table) in tables.iter().enumerate() {
        if !table.split('.').all(is_identifier) || table.split('.').count() > 2 {
            c.problem(
                &format!("relay.tables[{i}]"),
                format!("`{table}` is not a table name; write `outbox` or `schema.outbox`"),
            );
        }
    }
    let max_retained_wal = relay.max_retained_wal.as_deref().and_then(|text| match parse_bytes(text) {
        Some(bytes) => Some(bytes),
        None => {
            c.problem(
                "relay.max_retained_wal",
                format!("`{text}` is not a size; write it like \"512MiB\" or \"2GiB\""),
            );
            None
        }
    });
    let drop_slot_over_limit = match relay.on_retained_wal_limit.as_deref().unwrap_or("warn") {
        "warn" => false,
        "drop_slot" => true,
        other => {
            c.problem(
                "relay.on_retained_wal_limit",
                format!("unknown value `{other}`; expected \"warn\" or \"drop_slot\""),
            );
            false
        }
    };
    if drop_slot_over_limit && max_retained_wal.is_none() && relay.max_retained_wal.is_none() {
        c.problem("relay.on_retained_wal_limit", "`drop_slot` needs `max_retained_wal` to say when");
    }
    let recreate_lost_slot = match relay.on_slot_lost.as_deref().unwrap_or("fail") {
        "fail" => false,
        "recreate" => true,
        other => {
            c.problem("relay.on_slot_lost", format!("unknown value `{other}`; expected \"fail\" or \"recreate\""));
            false
        }
    };
    WalConfig {
        slot: relay.slot.clone(),
        publication,
        tables,
        heartbeat_interval: c.duration(
            "relay.heartbeat_interval",
            relay.heartbeat_interval.as_deref(),
            Duration::from_secs(10),
        ),
        status_interval: c.duration("relay.status_interval", relay.status_interval.as_deref(), Duration::from_secs(1)),
        monitor_interval: c.duration(
            "relay.monitor_interval",
            relay.monitor_interval.as_deref(),
            Duration::from_secs(5),
        ),
        max_retained_wal,
        drop_slot_over_limit,
        recreate_lost_slot,
    }
}

/// `512MiB`, `2GiB`, `100kB`, `1GB` or a plain number of bytes.
pub fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|ch: char| !ch.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" => 1_000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        "TB" => 1_000_000_000_000,
        "TiB" => 1 << 40,
        _ => return None,
    };
    number.checked_mul(factor)
}

fn compile_broker(c: &mut Compiler, spec: &BrokerSpec) -> BrokerConfig {
    let text = spec.brokers.clone().unwrap_or_else(|| "embedded".to_string());
    let brokers = if text == "embedded" {
        Brokers::Embedded
    } else {
        for part in text.split(',') {
            let part = part.trim();
            let ok = part.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !ok {
                c.problem(
                    "broker.brokers",
                    format!(
                        "`{part}` is not `host:port`; write \"embedded\" or a list like \"kafka-0:9092,kafka-1:9092\""
                    ),
                );
            }
        }
        Brokers::List(text)
    };
    let partitions = spec.partitions.unwrap_or(4);
    if partitions < 1 {
        c.problem("broker.partitions", "partitions must be at least 1");
    }
    let replication = spec.replication.unwrap_or(1);
    if replication < 1 {
        c.problem("broker.replication", "replication must be at least 1");
    }
    BrokerConfig {
        brokers,
        partitions,
        replication,
        session_timeout: c.duration("broker.session_timeout", spec.session_timeout.as_deref(), Duration::from_secs(10)),
        fetch_wait: c.duration("broker.fetch_wait", spec.fetch_wait.as_deref(), Duration::from_millis(20)),
        redeliver_each_message: spec.redeliver_each_message.unwrap_or(false),
    }
}

fn compile_store(c: &mut Compiler, spec: &StoreSpec) -> StoreConfig {
    let url = spec.url.clone().unwrap_or_else(|| "sqlite://chaos-symphony.db".to_string());
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://") || url.starts_with("sqlite:")) {
        c.problem(
            "store.url",
            format!("unsupported database URL `{url}`; use postgres://… or sqlite://path/to/file.db"),
        );
    }
    StoreConfig { url, max_connections: spec.max_connections.unwrap_or(10) }
}

fn compile_saga(c: &mut Compiler, spec: &SagaSpec, service: &str) -> SagaConfig {
    c.event_type("saga.trigger", &spec.trigger);
    c.event_type("saga.on_completed", &spec.on_completed);
    c.event_type("saga.on_cancelled", &spec.on_cancelled);
    c.event_type("saga.on_failed", &spec.on_failed);
    if spec.steps.is_empty() {
        c.problem("saga", "a saga needs at least one [[saga.steps]]");
    }
    let mut seen_names = BTreeSet::new();
    // Each reply type must identify exactly one step's outcome.
    let mut reply_owner: BTreeMap<String, String> = BTreeMap::new();
    let mut steps = Vec::new();
    for (i, step) in spec.steps.iter().enumerate() {
        let at = format!("saga.steps[{i}]");
        if !seen_names.insert(step.name.clone()) {
            c.problem(
                &format!("{at}.name"),
                format!("step name `{}` is used twice; step names must be unique", step.name),
            );
        }
        c.event_type(&format!("{at}.request"), &step.request);
        let mut claim = |c: &mut Compiler, path: String, reply: &str, what: String| {
            c.event_type(&path, reply);
            if let Some(owner) = reply_owner.insert(reply.to_string(), what.clone()) {
                c.problem(
                    &path,
                    format!("reply `{reply}` is already the {owner}; each reply type must mean one thing"),
                );
            }
        };
        claim(c, format!("{at}.success"), &step.success, format!("success of step `{}`", step.name));
        if let Some(failure) = &step.failure {
            claim(c, format!("{at}.failure"), failure, format!("failure of step `{}`", step.name));
        }
        let timeout = match &step.timeout {
            Some(_) => c.duration(&format!("{at}.timeout"), step.timeout.as_deref(), Duration::from_secs(30)),
            None => {
                c.problem(&at, format!("step `{}` has no timeout; add e.g. `timeout = \"10s\"`", step.name));
                Duration::from_secs(30)
            }
        };
        let retry = c.retry(&format!("{at}.retry"), step.retry.as_ref());
        let side_effect = step.side_effect.unwrap_or(true);
        let irreversible = step.irreversible.unwrap_or(false);
        if side_effect && !irreversible && step.compensation.is_none() {
            c.problem(
                &at,
                format!("step `{}` has a side effect but no compensation; add [saga.steps.compensation] or set `irreversible = true`", step.name),
            );
        }
        let compensation = step.compensation.as_ref().map(|comp| {
            let cat = format!("{at}.compensation");
            c.event_type(&format!("{cat}.request"), &comp.request);
            claim(c, format!("{cat}.success"), &comp.success, format!("compensation success of step `{}`", step.name));
            if let Some(failure) = &comp.failure {
                claim(c, format!("{cat}.failure"), failure, format!("compensation failure of step `{}`", step.name));
            }
            let timeout = match &comp.timeout {
                Some(_) => c.duration(&format!("{cat}.timeout"), comp.timeout.as_deref(), Duration::from_secs(30)),
                None => {
                    c.problem(
                        &cat,
                        format!("compensation of step `{}` has no timeout; add e.g. `timeout = \"10s\"`", step.name),
                    );
                    Duration::from_secs(30)
                }
            };
            let retry = c.retry(&format!("{cat}.retry"), comp.retry.as_ref());
            CompensationDefinition {
                request: comp.request.clone(),
                success: comp.success.clone(),
                failure: comp.failure.clone(),
                timeout,
                retry,
            }
        });
        steps.push(StepDefinition {
            name: step.name.clone(),
            request: step.request.clone(),
            success: step.success.clone(),
            failure: step.failure.clone(),
            timeout,
            retry,
            side_effect,
            irreversible,
            compensation,
        });
    }
    let canary = spec.canary.as_ref().and_then(|canary| compile_canary(c, canary, &steps));
    SagaConfig {
        canary,
        group: spec.group.clone().unwrap_or_else(|| service.to_string()),
        tick: c.duration("saga.tick", spec.tick.as_deref(), Duration::from_millis(200)),
        definition: SagaDefinition {
            name: spec.name.clone().unwrap_or_else(|| "saga".to_string()),
            trigger: spec.trigger.clone(),
            on_completed: spec.on_completed.clone(),
            on_cancelled: spec.on_cancelled.clone(),
            on_failed: spec.on_failed.clone(),
            steps,
        },
    }
}

fn compile_canary(c: &mut Compiler, spec: &CanarySpec, steps: &[StepDefinition]) -> Option<CanaryConfig> {
    let percent = spec.percent.unwrap_or(0.0);
    if !(0.0..=100.0).contains(&percent) {
        c.problem("saga.canary.percent", format!("{percent} is not a percentage; use 0 to 100"));
    }
    let analysis = spec.analysis.as_ref().map(|a| {
        let at = "saga.canary.analysis";
        let steps = a.steps.clone().unwrap_or_else(|| vec![10.0, 25.0, 50.0, 100.0]);
        if steps.is_empty()
            || steps.windows(2).any(|w| w[1] <= w[0])
            || steps.iter().any(|s| !(0.0..=100.0).contains(s))
        {
            c.problem(
                &format!("{at}.steps"),
                "steps must be ascending percentages between 0 and 100, e.g. [10, 25, 50, 100]",
            );
        }
        let max_failure_rate_increase = a.max_failure_rate_increase.unwrap_or(0.05);
        if !(0.0..=1.0).contains(&max_failure_rate_increase) {
            c.problem(&format!("{at}.max_failure_rate_increase"), "use a share between 0 and 1, e.g. 0.05");
        }
        let max_latency_ratio = a.max_latency_ratio.unwrap_or(1.5);
        if max_latency_ratio < 1.0 {
            c.problem(
                &format!("{at}.max_latency_ratio"),
                "a ratio below 1 would fail a canary as fast as stable; use e.g. 1.5",
            );
        }
        let interval = c.duration(&format!("{at}.interval"), a.interval.as_deref(), Duration::from_secs(30));
        let window = c.duration(&format!("{at}.window"), a.window.as_deref(), Duration::from_secs(120));
        if interval.is_zero() {
            c.problem(&format!("{at}.interval"), "the interval must be above zero");
        }
        CanaryAnalysis {
            interval: interval.max(Duration::from_millis(100)),
            window,
            min_requests: a.min_requests.unwrap_or(20),
            max_failure_rate_increase,
            max_latency_ratio,
            steps,
        }
    });
    let Some(step) = steps.iter().find(|s| s.name == spec.step) else {
        let known: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        c.problem("saga.canary.step", format!("no step named `{}`; steps: {}", spec.step, known.join(", ")));
        return None;
    };
    let topic = spec.topic.clone().unwrap_or_else(|| format!("{}.canary", step.request));
    c.event_type("saga.canary.topic", &topic);
    if topic == step.request {
        c.problem("saga.canary.topic", "the canary topic must differ from the step's request topic");
    }
    Some(CanaryConfig { step: step.name.clone(), request: step.request.clone(), topic, percent, analysis })
}

fn compile_chaos(c: &mut Compiler, spec: Option<&ChaosSpec>) -> crate::chaos::ChaosSettings {
    let Some(spec) = spec else { return crate::chaos::ChaosSettings::default() };
    let mut rules = Vec::new();
    let mut ids = BTreeSet::new();
    for (i, rule) in spec.rules.iter().enumerate() {
        let at = format!("chaos.rules[{i}]");
        if !ids.insert(rule.id.clone()) {
            c.problem(&format!("{at}.id"), format!("rule id `{}` is used twice in this file", rule.id));
        }
        match crate::chaos::compile_rule(rule) {
            Ok(rule) => rules.push(rule),
            Err(problems) => {
                for p in problems {
                    c.problem(&format!("{at}.{}", p.field), p.message);
                }
            }
        }
    }
    crate::chaos::ChaosSettings {
        enabled: spec.enabled.unwrap_or(false),
        allow_crash: spec.allow_crash.unwrap_or(false),
        rules,
    }
}

fn compile_slo(c: &mut Compiler, spec: &SloSpec) -> Vec<crate::slo::Objective> {
    use crate::slo::{Objective, ObjectiveKind};
    let mut objectives = Vec::new();
    let mut names = BTreeSet::new();
    for (i, o) in spec.objectives.iter().enumerate() {
        let at = format!("slo.objectives[{i}]");
        if o.name.is_empty() || !o.name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-') {
            c.problem(&format!("{at}.name"), "use letters, digits, `_` and `-` (it is a label value)");
        }
        if !names.insert(o.name.clone()) {
            c.problem(&format!("{at}.name"), format!("objective `{}` is declared twice", o.name));
        }
        if !(o.objective > 0.0 && o.objective < 1.0) {
            c.problem(
                &format!("{at}.objective"),
                format!("{} is not a target share; use e.g. 0.99 (above 0, below 1)", o.objective),
            );
        }
        let window = c.duration(&format!("{at}.window"), o.window.as_deref(), Duration::from_secs(30 * 86_400));
        let kind = match o.kind.as_str() {
            "success_ratio" => {
                let bad = o.bad_statuses.clone().unwrap_or_else(|| vec!["FAILED".into(), "CANCELLED".into()]);
                if let Some(wrong) = bad.iter().find(|s| !matches!(s.as_str(), "COMPLETED" | "CANCELLED" | "FAILED")) {
                    c.problem(
                        &format!("{at}.bad_statuses"),
                        format!("`{wrong}` is not a final status; use COMPLETED, CANCELLED or FAILED"),
                    );
                }
                ObjectiveKind::SuccessRatio { bad_statuses: bad }
            }
            "latency" => {
                let threshold = c.duration(&format!("{at}.threshold"), o.threshold.as_deref(), Duration::ZERO);
                let seconds = threshold.as_secs_f64();
                let buckets = crate::telemetry::SAGA_DURATION_BUCKETS;
                if !buckets.iter().any(|b| (b - seconds).abs() < 1e-9) {
                    let list: Vec<String> = buckets.iter().map(|b| format!("{b}s")).collect();
                    c.problem(
                        &format!("{at}.threshold"),
                        format!("a latency threshold must be a histogram bucket: one of {}", list.join(", ")),
                    );
                }
                ObjectiveKind::Latency { threshold_seconds: seconds }
            }
            other => {
                c.problem(
                    &format!("{at}.kind"),
                    format!("unknown kind `{other}`; use \"success_ratio\" or \"latency\""),
                );
                continue;
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

fn compile_chaos_api(c: &mut Compiler, spec: &ChaosApiSpec) -> ChaosApiConfig {
    let default_ttl = c.duration("chaos_api.default_ttl", spec.default_ttl.as_deref(), Duration::from_secs(15 * 60));
    let max_ttl = c.duration("chaos_api.max_ttl", spec.max_ttl.as_deref(), Duration::from_secs(24 * 3600));
    if default_ttl > max_ttl {
        c.problem("chaos_api.default_ttl", "default_ttl is longer than max_ttl; lower it or raise max_ttl");
    }
    ChaosApiConfig { default_ttl, max_ttl }
}

/// The first key of a pipeline that names an event type (the root when only a default names it).
fn where_named(pipeline: &Pipeline, event_type: &str) -> KeyPath {
    let mut candidates: Vec<(String, &str)> = Vec::new();
    if let Some(api) = &pipeline.order_api {
        candidates.push(("order_api.created_event".into(), &api.created_event));
    }
    for (i, c) in pipeline.consumers.iter().enumerate() {
        candidates.push((format!("consumers[{i}].topic"), &c.topic));
        candidates.push((format!("consumers[{i}].on_success"), &c.on_success));
        if let Some(failure) = &c.on_failure {
            candidates.push((format!("consumers[{i}].on_failure"), failure));
        }
    }
    if let Some(saga) = &pipeline.saga {
        let d = &saga.definition;
        candidates.push(("saga.trigger".into(), &d.trigger));
        candidates.push(("saga.on_completed".into(), &d.on_completed));
        candidates.push(("saga.on_cancelled".into(), &d.on_cancelled));
        candidates.push(("saga.on_failed".into(), &d.on_failed));
        for (i, step) in d.steps.iter().enumerate() {
            candidates.push((format!("saga.steps[{i}].request"), &step.request));
            candidates.push((format!("saga.steps[{i}].success"), &step.success));
            if let Some(failure) = &step.failure {
                candidates.push((format!("saga.steps[{i}].failure"), failure));
            }
            if let Some(c) = &step.compensation {
                candidates.push((format!("saga.steps[{i}].compensation.request"), &c.request));
                candidates.push((format!("saga.steps[{i}].compensation.success"), &c.success));
                if let Some(failure) = &c.failure {
                    candidates.push((format!("saga.steps[{i}].compensation.failure"), failure));
                }
            }
        }
    }
    candidates.into_iter().find(|(_, t)| *t == event_type).map_or_else(KeyPath::root, |(path, _)| KeyPath::parse(&path))
}

/// Checks that need the whole system: every topic a saga waits on (or sends to) has a
/// service at the other end. Returns problems per pipeline index.
pub fn check_system(pipelines: &[&Pipeline]) -> Vec<(usize, Problem)> {
    let produced: BTreeSet<String> = pipelines.iter().flat_map(|p| p.produced_topics()).collect();
    // Observers (streams-analytics) read topics but answer nothing: they do not count here.
    let consumed: BTreeSet<String> = pipelines.iter().flat_map(|p| p.handled_topics()).collect();
    let mut problems = Vec::new();
    // Every event type a pipeline produces or consumes needs a schema (dead letters keep theirs).
    for (index, pipeline) in pipelines.iter().enumerate() {
        if !pipeline.schemas.enabled() {
            continue;
        }
        for event_type in &pipeline.event_types() {
            if !pipeline.schemas.has(event_type) {
                let dir = pipeline.schemas.dir().map(|d| d.display().to_string()).unwrap_or_default();
                problems.push((
                    index,
                    Problem::at_value(
                        where_named(pipeline, event_type),
                        format!(
                            "event type `{event_type}` has no schema; add {dir}/{}",
                            crate::schemas::file_name(event_type)
                        ),
                    ),
                ));
            }
        }
    }
    for (index, pipeline) in pipelines.iter().enumerate() {
        let Some(saga) = &pipeline.saga else { continue };
        let def = &saga.definition;
        let mut need_producer = |path: String, topic: &str, what: &str| {
            if !produced.contains(topic) {
                problems.push((index, Problem::at_value(
                    KeyPath::parse(&path),
                    format!("{what} `{topic}` is produced by no service; add a consumer with `on_success`/`on_failure = \"{topic}\"` or fix the name"),
                )));
            }
        };
        need_producer("saga.trigger".into(), &def.trigger, "trigger");
        for (i, step) in def.steps.iter().enumerate() {
            need_producer(format!("saga.steps[{i}].success"), &step.success, "reply");
            if let Some(f) = &step.failure {
                need_producer(format!("saga.steps[{i}].failure"), f, "reply");
            }
            if let Some(comp) = &step.compensation {
                need_producer(format!("saga.steps[{i}].compensation.success"), &comp.success, "reply");
                if let Some(f) = &comp.failure {
                    need_producer(format!("saga.steps[{i}].compensation.failure"), f, "reply");
                }
            }
        }
        // The service that consumes a step's request must answer with the step's reply types.
        for (i, step) in def.steps.iter().enumerate() {
            let requests = [(format!("saga.steps[{i}]"), &step.request, &step.success, &step.failure)];
            let compensation = step
                .compensation
                .as_ref()
                .map(|c| (format!("saga.steps[{i}].compensation"), &c.request, &c.success, &c.failure));
            for (at, request, success, failure) in requests.into_iter().chain(compensation) {
                for consumer in pipelines.iter().flat_map(|p| &p.consumers).filter(|c| &c.topic == request) {
                    if &consumer.on_success != success {
                        problems.push((index, Problem::at_value(
                            KeyPath::parse(&format!("{at}.success")),
                            format!("`{request}` is answered with `{}` by its consumer `{}`, but the saga waits for `{success}`", consumer.on_success, consumer.name),
                        )));
                    }
                    if consumer.on_failure.is_some() && consumer.on_failure.as_ref() != failure.as_ref() {
                        problems.push((index, Problem::at_value(
                            KeyPath::parse(&at),
                            format!(
                                "`{request}` is refused with `{}` by its consumer `{}`, but the saga's failure reply is {}",
                                consumer.on_failure.as_deref().unwrap_or_default(),
                                consumer.name,
                                failure.as_deref().map_or("not declared".to_string(), |f| format!("`{f}`"))
                            ),
                        )));
                    }
                }
            }
        }
        for (i, step) in def.steps.iter().enumerate() {
            let mut need_consumer = |path: String, topic: &str| {
                if !consumed.contains(topic) {
                    problems.push((
                        index,
                        Problem::at_value(
                            KeyPath::parse(&path),
                            format!("request `{topic}` is consumed by no service, so the step would always time out"),
                        ),
                    ));
                }
            };
            need_consumer(format!("saga.steps[{i}].request"), &step.request);
            if let Some(comp) = &step.compensation {
                need_consumer(format!("saga.steps[{i}].compensation.request"), &comp.request);
            }
        }
    }
    problems.extend(check_analytics_steps(pipelines));
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
            let at = |key: &str| KeyPath::parse(&format!("analytics.steps[{i}].{key}"));
            let found = sagas.iter().find_map(|saga| {
                let def = saga.definition.steps.iter().find(|s| s.name == step.name)?;
                Some((def, saga.canary.as_ref().filter(|c| c.step == step.name)))
            });
            let Some((def, canary)) = found else {
                let names: Vec<&str> =
                    sagas.iter().flat_map(|s| s.definition.steps.iter().map(|s| s.name.as_str())).collect();
                let message = format!("no saga step named `{}`; steps: {}", step.name, names.join(", "));
                problems.push((index, Problem::at_value(at("name"), message)));
                continue;
            };
            let mut differs = |key: &str, message: String| problems.push((index, Problem::at_value(at(key), message)));
            if step.request != def.request {
                let message = format!(
                    "the saga's step `{}` sends `{}`; write request = \"{}\"",
                    def.name, def.request, def.request
                );
                differs("request", message);
            }
            if step.success != def.success {
                let message = format!(
                    "the saga's step `{}` succeeds with `{}`; write success = \"{}\"",
                    def.name, def.success, def.success
                );
                differs("success", message);
            }
            match (&step.failure, &def.failure) {
                (Some(ours), Some(theirs)) if ours != theirs => differs(
                    "failure",
                    format!("the saga's step `{}` is refused with `{theirs}`; write failure = \"{theirs}\"", def.name),
                ),
                (Some(_), None) => {
                    differs("failure", format!("the saga's step `{}` has no failure reply; remove failure", def.name))
                }
                _ => {}
            }
            match (&step.canary_topic, canary) {
                (Some(_), None) => differs(
                    "canary_topic",
                    format!("the saga sends no canary requests for step `{}`; remove canary_topic", def.name),
                ),
                (Some(ours), Some(c)) if *ours != c.topic => differs(
                    "canary_topic",
                    format!(
                        "the saga sends step `{}`'s canary requests to `{}`; write canary_topic = \"{}\"",
                        def.name, c.topic, c.topic
                    ),
                ),
                (None, Some(c)) => differs(
                    "name",
                    format!(
                        "the saga sends step `{}`'s canary requests to `{}`; add canary_topic = \"{}\" to count them",
                        def.name, c.topic, c.topic
                    ),
                ),
                _ => {}
            }
        }
    }
    problems
}
