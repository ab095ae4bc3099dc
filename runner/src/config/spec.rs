//! The raw shape of a pipeline file: serde types that reject unknown keys, nothing resolved yet.
//!
//! Values that need interpretation (durations, handler parameters) stay as written here;
//! `compile` turns them into typed values and reports every problem with its location.
//! `schemas/pipeline.schema.json` is generated from these types.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::services::relay::{AfterPublish, OnRetainedWalLimit, OnSlotLost, RelayMode};
use crate::transport::dead_letter::ErrorKind;

/// A service's release variant: the `variant` label of its metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VariantSpec {
    Stable,
    Canary,
}

/// What an objective measures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ObjectiveKindSpec {
    /// Orders ending well (in none of `bad_statuses`).
    #[default]
    SuccessRatio,
    /// Orders ending within `threshold`.
    Latency,
}

/// A saga's final status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FinalStatus {
    Completed,
    Cancelled,
    Failed,
}

impl FinalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FinalStatus::Completed => "COMPLETED",
            FinalStatus::Cancelled => "CANCELLED",
            FinalStatus::Failed => "FAILED",
        }
    }
}

/// One pipeline file. Every section is optional; the sections present decide what the service runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// Who this service is.
    #[serde(default)]
    pub service: ServiceSpec,
    /// The Kafka-protocol broker every consumer and producer of this service uses.
    #[serde(default)]
    pub broker: BrokerSpec,
    /// The database holding the outbox, the inbox and the service's own tables.
    #[serde(default)]
    pub store: StoreSpec,
    /// Serve the order API (`POST /api/orders`, `GET /api/orders/{id}`, `GET /api/orders`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_api: Option<OrderApiSpec>,
    /// Publish outbox rows to the broker (the Debezium role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<RelaySpec>,
    /// Consume a topic and run a compiled handler on each message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumers: Vec<ConsumerSpec>,
    /// Orchestrate a saga: a sequence of steps with compensations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saga: Option<SagaSpec>,
    /// Serve the dead-letter console (`/api/dlq`): follow every dead-letter topic, browse, replay, discard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dlq_admin: Option<DlqAdminSpec>,
    /// Where the event schemas are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schemas: Option<SchemasSpec>,
    /// Who may call the admin APIs (every endpoint that changes something).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminSpec>,
    /// Fault injection: whether it is on in this environment, and rules declared in this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chaos: Option<ChaosSpec>,
    /// Serve chaos-svc (`/api/chaos`): manage rules and the canary percentage at runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chaos_api: Option<ChaosApiSpec>,
    /// Run gameday-svc (`/api/gamedays`): scripted experiments with load, timed faults,
    /// stop conditions, an audit and a report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gameday: Option<GamedaySpec>,
    /// Run streams-analytics: windowed figures of the saga's events, and `GET /api/slo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analytics: Option<AnalyticsSpec>,
    /// Service-level objectives of the saga: `runner slo rules` turns them into Prometheus
    /// recording and multi-window multi-burn-rate alert rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<SloSpec>,
    /// Where this service's spans go (OpenTelemetry, OTLP over HTTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<TelemetrySpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySpec {
    /// OTLP/HTTP endpoint spans are exported to, like `http://127.0.0.1:4318` (an OpenTelemetry
    /// Collector). Default: the standard `OTEL_EXPORTER_OTLP_ENDPOINT` environment variable;
    /// no export when neither is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
    /// Share of new traces recorded, 0 to 1 (default 1). A trace started upstream keeps the
    /// caller's decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_ratio: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsSpec {
    /// Consumer group (default `<service>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Event that starts an order (default `order.created`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// Events that end one (default `order.completed`, `order.cancelled`, `order.failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_events: Option<Vec<String>>,
    /// Prometheus to read the SLO figures from (its recording rules), e.g. `http://prometheus:9090`;
    /// without it `/api/slo` uses this service's own windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_url: Option<String>,
    /// Saga steps to measure: each request matched with its reply, by variant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<AnalyticsStepSpec>,
}

/// A saga step as streams-analytics sees it: the request, where canary requests go, the replies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsStepSpec {
    /// The step's name (a label value), like `payment`.
    pub name: String,
    /// Request event type (and topic), like `payment.requested`.
    pub request: String,
    /// Topic of the requests sent to the canary (the orchestrator's `[saga.canary] topic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_topic: Option<String>,
    /// Reply when the step succeeded, like `payment.charged`.
    pub success: String,
    /// Reply when the step refused, like `payment.declined`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SloSpec {
    #[serde(default)]
    pub objectives: Vec<ObjectiveSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjectiveSpec {
    /// Name of the objective (letters, digits, `_`, `-`): the `slo` label of its rules.
    pub name: String,
    /// `"success_ratio"` (orders ending well) or `"latency"` (orders ending within `threshold`).
    pub kind: ObjectiveKindSpec,
    /// Target share of good orders, e.g. 0.99.
    pub objective: f64,
    /// Period the error budget covers (default `"30d"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// Latency objectives: the longest good end-to-end time, one of the histogram's buckets, e.g. `"5s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<String>,
    /// Success objectives: the final statuses that count as bad (default `["FAILED", "CANCELLED"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bad_statuses: Option<Vec<FinalStatus>>,
    /// Alerts stay quiet while fewer orders than this ended in the last hour (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_events_per_hour: Option<u32>,
    /// The saga measured (default `"order"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saga: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChaosSpec {
    /// Whether faults are injected into this service at all (default false: an environment
    /// turns chaos on, e.g. `RUNNER_CHAOS__ENABLED=true`; `runner up` turns it on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Whether `crash` faults may abort this process (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_crash: Option<bool>,
    /// Rules declared in this file; hot-reloaded when the file changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<crate::chaos::RuleSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChaosApiSpec {
    /// Lease given to a rule created without `ttl` or `expires_at` (default `"15m"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_ttl: Option<String>,
    /// Longest lease a rule may ask for (default `"24h"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ttl: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GamedaySpec {
    /// Folder of scenario files, relative to this pipeline file (default `gamedays`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenarios: Option<String>,
    /// Where the system's APIs answer (order-api, chaos-svc, the runtime routes), e.g.
    /// `http://127.0.0.1:8080`. Default: this process's own address, as under `runner up`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_url: Option<String>,
    /// Where order-api answers, when not at `system_url` (services deployed apart, e.g.
    /// `http://order-api:8080`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orders_url: Option<String>,
    /// Where chaos-svc answers, when not at `system_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chaos_url: Option<String>,
    /// Where dlq-admin answers, when not at `system_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dlq_url: Option<String>,
    /// Where the orchestrator's runtime routes answer (the canary in force), when not at
    /// `system_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_url: Option<String>,
    /// What the relay does with published rows (`[relay] after_publish`, default `"mark"`):
    /// the audit reconciles the outbox with the topics unless rows are deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_after_publish: Option<AfterPublish>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CanarySpec {
    /// The saga step whose requests are split (e.g. `"payment"`).
    pub step: String,
    /// Topic of the canary's requests (default `<the step's request>.canary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Share of orders, 0 to 100, whose requests go to the canary (chosen by a stable hash of
    /// the order id, so an order always meets the same version). Hot-reloaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    /// Automated analysis: step the percentage up while the canary is healthy, roll back when not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<CanaryAnalysisSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CanaryAnalysisSpec {
    /// How often the canary is judged, e.g. `"10s"` (default `"30s"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// The span of outcomes compared, e.g. `"1m"` (default `"2m"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// Fewer canary outcomes than this in the window: hold, do not decide (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_requests: Option<u32>,
    /// Roll back when the canary's failure rate exceeds stable's by more than this, 0 to 1 (default 0.05).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failure_rate_increase: Option<f64>,
    /// Roll back when the canary's p95 latency exceeds stable's times this (default 1.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency_ratio: Option<f64>,
    /// Percentages to step through while healthy, ascending (default `[10, 25, 50, 100]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<f64>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SchemasSpec {
    /// Folder of `<event type>.schema.json` files, relative to this pipeline file
    /// (default `../schemas/events`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminSpec {
    /// Bearer tokens by the name of who holds them, e.g. `{ operator = "…" }`; the name is
    /// recorded in audit trails. Set them from the environment, e.g. `RUNNER_ADMIN__TOKENS__OPERATOR`.
    #[serde(default)]
    pub tokens: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DlqAdminSpec {
    /// Dead-letter topics to follow, as a regular expression (default `^.*\\.dlq$`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<String>,
    /// Consumer group (default `<service>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// How many times one message may be replayed before replay is refused (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replays: Option<u32>,
    /// Largest rate of a bulk replay, messages per second (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_rate: Option<u32>,
    /// Largest number of messages one bulk replay or discard may touch (default 10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bulk: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Service name: used as consumer-group default, CloudEvents `ce_source` and in logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Address the service's HTTP server listens on when run alone (`runner --pipeline`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// How long in-flight work may take to finish after SIGTERM, e.g. `"10s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_grace: Option<String>,
    /// Release variant of this service, `"stable"` (default) or `"canary"`: a label on its metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<VariantSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BrokerSpec {
    /// `"embedded"` for the broker hosted inside the runner, or a `host:port,host:port` list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brokers: Option<String>,
    /// Partitions of each topic created on start-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,
    /// Replication factor of each topic created on start-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<i32>,
    /// Consumer-group session timeout, e.g. `"10s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_timeout: Option<String>,
    /// Longest time the broker may hold a fetch with no data, e.g. `"20ms"` (lower means lower
    /// latency, more fetches). Default: 2ms on the embedded broker (idle consumers pause
    /// there), 20ms elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_wait: Option<String>,
    /// Test aid: hand every consumed message to its handler twice, as a redelivery would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redeliver_each_message: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreSpec {
    /// `postgres://…` or `sqlite://path/to/file.db`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Largest number of pooled connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderApiSpec {
    /// Largest accepted request body in bytes; larger bodies get `413`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<usize>,
    /// Event type (and so topic) written to the outbox for a new order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_event: Option<String>,
    /// Largest page size of `GET /api/orders`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_page_size: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RelaySpec {
    /// `"wal"` streams the outbox's inserts from PostgreSQL by logical replication;
    /// `"polling"` reads unpublished rows with queries (PostgreSQL and SQLite);
    /// `"auto"` (the default) picks `wal` on PostgreSQL with `wal_level=logical`, else `polling`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<RelayMode>,
    /// Pause between polls when the outbox is empty, e.g. `"20ms"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval: Option<String>,
    /// Rows read and published per round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    /// `"mark"` keeps published rows with their publish time, `"delete"` removes them,
    /// `"keep"` leaves them untouched (WAL mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_publish: Option<AfterPublish>,
    /// WAL mode: replication slot name (default `relay_<database>`, past 63 bytes cut and ended
    /// by a hash of the database name; slot names are cluster-wide).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// WAL mode: publication name, created on the outbox table(s) for inserts only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publication: Option<String>,
    /// WAL mode: the outbox table(s) to follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables: Option<Vec<String>>,
    /// WAL mode: how often an idle relay writes a heartbeat into the WAL, e.g. `"10s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval: Option<String>,
    /// WAL mode: how often the confirmed position is reported to PostgreSQL, e.g. `"1s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_interval: Option<String>,
    /// WAL mode: how often slot lag and retained WAL are measured, e.g. `"5s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor_interval: Option<String>,
    /// WAL mode: warn when the slot holds back more WAL than this, e.g. `"1GiB"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retained_wal: Option<String>,
    /// WAL mode: `"warn"` (default) or `"drop_slot"` when `max_retained_wal` is passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_retained_wal_limit: Option<OnRetainedWalLimit>,
    /// WAL mode: `"fail"` (default: report and keep retrying) or `"recreate"` when the slot is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_slot_lost: Option<OnSlotLost>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSpec {
    /// Name of this consumer within the service (defaults to the handler name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Topic consumed.
    pub topic: String,
    /// Event type the topic carries, when the topic is not named after it (a canary topic,
    /// `payment.requested.canary`, carries `payment.requested`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// Consumer group (defaults to `<service>.<consumer name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Compiled handler run on each message, e.g. `"payment.charge"` (`runner handlers` lists them).
    pub handler: String,
    /// Event type (and topic) of the reply when the handler succeeds.
    pub on_success: String,
    /// Event type (and topic) of the reply when the handler refuses the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<String>,
    /// The handler's parameters, checked against the handler's own types.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, serde_json::Value>,
    /// How failures are retried before the message goes to the dead-letter topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<DeliveryRetrySpec>,
    /// Where messages go after the last attempt (default `<topic>.dlq`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_topic: Option<String>,
    /// Messages handled at once, one per key (order id) at a time, 1 to 1024 (default 128).
    /// At the limit nothing more is fetched until one finishes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    /// Ready messages committed together in one database transaction at most (group
    /// commit), 1 to `max_in_flight` (default `max_in_flight`); 1 gives every message a
    /// transaction of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_group: Option<u32>,
    /// Groups committing side by side, 1 to 8 (default 1), each taking what queued while
    /// the others ran; needs `max_group` above 1, and each group a database connection (on
    /// SQLite, which has one, groups go one after the other). More than one pays where
    /// messages wait on their group's transaction; keep 1 where messages of different keys
    /// write the same rows (inventory's `stock`): groups side by side deadlock on them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_in_flight: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryRetrySpec {
    /// Tries of a retryable failure, the first included (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Delay after the first failure, doubled each time (default `"200ms"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<String>,
    /// Longest delay between tries (default `"5s"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backoff: Option<String>,
    /// Share of each delay drawn at random, 0 to 1 (default 0.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<f64>,
    /// Failure kinds worth another try (default `["handler_failed"]`); `undecodable`,
    /// `schema_invalid` and `rejected` never are, `unavailable` always is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<Vec<ErrorKind>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SagaSpec {
    /// Name of the saga, e.g. `"order"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Event type that starts one saga instance (its key is the saga id).
    pub trigger: String,
    /// Event emitted when every step succeeded.
    pub on_completed: String,
    /// Event emitted when the saga was compensated.
    pub on_cancelled: String,
    /// Event emitted when a compensation could not finish.
    pub on_failed: String,
    /// Consumer group of the orchestrator (defaults to the service name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Messages the orchestrator handles at once, one per saga at a time, 1 to 1024
    /// (default 128). At the limit nothing more is fetched until one finishes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    /// Ready messages committed together in one database transaction at most (group
    /// commit), 1 to `max_in_flight` (default `max_in_flight`); 1 gives every message a
    /// transaction of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_group: Option<u32>,
    /// Groups committing side by side, 1 to 8 (default 1), each taking what queued while
    /// the others ran; needs `max_group` above 1, and each group a database connection (on
    /// SQLite, which has one, groups go one after the other). More than one pays where
    /// messages wait on their group's transaction; keep 1 where messages of different keys
    /// write the same rows (inventory's `stock`): groups side by side deadlock on them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_in_flight: Option<u32>,
    /// How often due timeouts and retries are looked for, e.g. `"200ms"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tick: Option<String>,
    /// The steps, run in order.
    #[serde(default)]
    pub steps: Vec<StepSpec>,
    /// Send a share of one step's requests to a canary version of its service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanarySpec>,
    /// Where instances in flight continue when this definition no longer has the step they
    /// wait on. Instances keep the definition they started with; a change that removes a
    /// step some wait on is refused (with their count) unless a mapping names it here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_mapping: Vec<StepMappingSpec>,
}

/// One `[[saga.step_mapping]]`: instances waiting on step `from` (which an earlier
/// definition had) move to this definition at step `to`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepMappingSpec {
    /// A step of an earlier definition that this one does not have.
    pub from: String,
    /// The step of this definition where those instances continue.
    pub to: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    pub name: String,
    /// Event type sent to run the step.
    pub request: String,
    /// Reply type meaning the step succeeded.
    pub success: String,
    /// Reply type meaning the step was refused (no effect happened).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// How long to wait for a reply to one attempt, e.g. `"10s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Attempts and backoff when no reply arrives in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,
    /// Whether the step changes anything outside the saga (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side_effect: Option<bool>,
    /// Set when the step's effect cannot be undone; then no compensation is needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub irreversible: Option<bool>,
    /// How to undo the step when a later step fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compensation: Option<CompensationSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Total attempts, the first one included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Delay before the second attempt; doubled for each further attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<String>,
    /// Upper bound of the delay between attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backoff: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompensationSpec {
    /// Event type sent to undo the step.
    pub request: String,
    /// Reply type meaning the step was undone.
    pub success: String,
    /// Reply type meaning the step could not be undone (the saga then ends FAILED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// How long to wait for a reply to one attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Attempts before the compensation is given up and the saga ends FAILED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,
}
