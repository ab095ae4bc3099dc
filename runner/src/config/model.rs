//! The compiled, typed pipeline: every name resolved, every duration parsed, every handler built.

use std::net::SocketAddr;
use std::time::Duration;

use crate::handlers::Handler;
use crate::saga::machine::SagaDefinition;
use crate::transport::dead_letter::{self, ErrorKind};

/// A service, ready to run.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub service: String,
    /// Where the service listens when run alone; `runner up` serves every service on one address.
    pub listen: SocketAddr,
    pub shutdown_grace: Duration,
    pub broker: BrokerConfig,
    pub store: StoreConfig,
    pub order_api: Option<OrderApiConfig>,
    pub relay: Option<RelayConfig>,
    pub consumers: Vec<ConsumerConfig>,
    pub saga: Option<SagaConfig>,
    pub dlq_admin: Option<DlqAdminConfig>,
    /// Where the event schemas are, resolved against the pipeline file; `None`: not validated.
    pub schemas_dir: Option<std::path::PathBuf>,
    /// The event schemas, read by the loader from `schemas_dir`.
    pub schemas: std::sync::Arc<crate::schemas::SchemaRegistry>,
    pub admin: AdminConfig,
    /// `stable` or `canary`: the `variant` label of this service's metrics.
    pub variant: String,
    /// Whether chaos is on for this service, and the rules of its file.
    pub chaos: crate::chaos::ChaosSettings,
    pub chaos_api: Option<ChaosApiConfig>,
    /// Service-level objectives declared in this file.
    pub slo: Vec<crate::slo::Objective>,
    pub analytics: Option<AnalyticsConfig>,
    pub telemetry: TelemetryConfig,
}

/// `[telemetry]`: the OTLP endpoint named in the file (the environment may name one too).
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    pub otlp_endpoint: Option<String>,
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig { otlp_endpoint: None, sample_ratio: 1.0 }
    }
}

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
    pub fn topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = std::iter::once(self.trigger.clone()).chain(self.final_events.clone()).collect();
        for step in &self.steps {
            topics.extend([step.request.clone(), step.success.clone()]);
            topics.extend(step.canary_topic.iter().chain(&step.failure).cloned());
        }
        topics
    }
}

#[derive(Debug, Clone)]
pub struct ChaosApiConfig {
    pub default_ttl: Duration,
    pub max_ttl: Duration,
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

#[derive(Debug, Clone, PartialEq)]
pub struct CanaryAnalysis {
    pub interval: Duration,
    pub window: Duration,
    pub min_requests: u32,
    pub max_failure_rate_increase: f64,
    pub max_latency_ratio: f64,
    pub steps: Vec<f64>,
}

/// Bearer tokens of the admin APIs, by holder name.
#[derive(Debug, Clone, Default)]
pub struct AdminConfig {
    pub tokens: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct DlqAdminConfig {
    pub topics: String,
    pub group: String,
    pub max_replays: u32,
    pub replay_rate: u32,
    pub max_bulk: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Brokers {
    /// A Kafka-protocol broker hosted inside this process.
    Embedded,
    /// A bootstrap list, `host:port,host:port`.
    List(String),
}

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub brokers: Brokers,
    pub partitions: i32,
    pub replication: i32,
    pub session_timeout: Duration,
    pub fetch_wait: Duration,
    pub redeliver_each_message: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub url: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone)]
pub struct OrderApiConfig {
    pub max_body_bytes: usize,
    pub created_event: String,
    pub max_page_size: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterPublish {
    Mark,
    Delete,
    Keep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayMode {
    Polling,
    Wal,
    /// `Wal` on PostgreSQL with `wal_level=logical`, otherwise `Polling`.
    Auto,
}

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub mode: RelayMode,
    pub poll_interval: Duration,
    pub batch_size: u32,
    pub after_publish: AfterPublish,
    pub wal: WalConfig,
}

#[derive(Debug, Clone)]
pub struct WalConfig {
    /// `None`: derived from the database name.
    pub slot: Option<String>,
    pub publication: String,
    pub tables: Vec<String>,
    pub heartbeat_interval: Duration,
    pub status_interval: Duration,
    pub monitor_interval: Duration,
    pub max_retained_wal: Option<u64>,
    pub drop_slot_over_limit: bool,
    pub recreate_lost_slot: bool,
}

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub name: String,
    pub topic: String,
    /// The event type on `topic` (the topic's own name unless a canary topic says otherwise).
    pub event_type: String,
    pub group: String,
    pub handler: Handler,
    pub on_success: String,
    pub on_failure: Option<String>,
    pub retry: DeliveryRetry,
    pub dead_letter_topic: String,
}

/// A consumer's retry policy (see `transport::DeliveryPolicy`).
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRetry {
    pub attempts: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
    pub jitter: f64,
    pub retryable: Vec<ErrorKind>,
}

impl Default for DeliveryRetry {
    fn default() -> Self {
        DeliveryRetry {
            attempts: 4,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            jitter: 0.2,
            retryable: vec![ErrorKind::HandlerFailed],
        }
    }
}

#[derive(Debug, Clone)]
pub struct SagaConfig {
    pub group: String,
    pub tick: Duration,
    pub definition: SagaDefinition,
    pub canary: Option<CanaryConfig>,
}

impl Pipeline {
    /// Every topic this pipeline produces to.
    pub fn produced_topics(&self) -> Vec<String> {
        let mut topics = Vec::new();
        if let Some(api) = &self.order_api {
            topics.push(api.created_event.clone());
        }
        for consumer in &self.consumers {
            topics.push(consumer.on_success.clone());
            topics.extend(consumer.on_failure.clone());
            topics.push(consumer.dead_letter_topic.clone());
        }
        if let Some(saga) = &self.saga {
            topics.extend(saga.definition.produced_topics());
            topics.extend(saga.canary.as_ref().map(|c| c.topic.clone()));
            // The orchestrator's own poison replies.
            topics.extend(saga.definition.replies().into_iter().map(|t| dead_letter::topic_for(&t)));
        }
        topics
    }

    /// Every topic this pipeline consumes.
    pub fn consumed_topics(&self) -> Vec<String> {
        let mut topics = self.handled_topics();
        topics.extend(self.analytics.iter().flat_map(AnalyticsConfig::topics));
        topics
    }

    /// The topics this pipeline consumes to act on (consumers, the saga), not only to observe.
    pub fn handled_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self.consumers.iter().map(|c| c.topic.clone()).collect();
        if let Some(saga) = &self.saga {
            topics.extend(saga.definition.consumed_topics());
            // A canary's dead letters fail the step as the stable service's do.
            topics.extend(saga.canary.as_ref().map(|c| dead_letter::topic_for(&c.topic)));
        }
        topics
    }

    /// Every event type this pipeline writes or reads (what needs a schema): topic names,
    /// except topics that carry another type (canary topics) and dead-letter topics.
    pub fn event_types(&self) -> std::collections::BTreeSet<String> {
        let carried_elsewhere: Vec<&str> = self
            .consumers
            .iter()
            .filter(|c| c.topic != c.event_type)
            .map(|c| c.topic.as_str())
            .chain(self.saga.iter().filter_map(|s| s.canary.as_ref()).map(|c| c.topic.as_str()))
            .chain(self.analytics.iter().flat_map(|a| a.steps.iter().filter_map(|s| s.canary_topic.as_deref())))
            .collect();
        self.produced_topics()
            .into_iter()
            .chain(self.consumed_topics())
            .filter(|t| !t.ends_with(".dlq") && !carried_elsewhere.contains(&t.as_str()))
            .chain(self.consumers.iter().map(|c| c.event_type.clone()))
            .collect()
    }
}
