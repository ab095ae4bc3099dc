//! The compiled, typed pipeline: every name resolved, every duration parsed, every handler built.

use std::net::SocketAddr;
use std::time::Duration;

use crate::handlers::Handler;
use crate::saga::machine::SagaDefinition;

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
    pub group: String,
    pub handler: Handler,
    pub on_success: String,
    pub on_failure: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SagaConfig {
    pub group: String,
    pub tick: Duration,
    pub definition: SagaDefinition,
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
        }
        if let Some(saga) = &self.saga {
            topics.extend(saga.definition.produced_topics());
        }
        topics
    }

    /// Every topic this pipeline consumes.
    pub fn consumed_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self.consumers.iter().map(|c| c.topic.clone()).collect();
        if let Some(saga) = &self.saga {
            topics.extend(saga.definition.consumed_topics());
        }
        topics
    }
}
