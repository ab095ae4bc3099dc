//! The transport's settings: which broker, topic defaults, consumer timing, and a consumer's
//! retry policy.

use std::time::Duration;

use super::dead_letter::ErrorKind;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Brokers {
    /// A Kafka-protocol broker hosted inside this process.
    Embedded,
    /// A bootstrap list, `host:port,host:port`.
    List(String),
}

/// The fetch wait on the embedded broker, which holds an empty fetch this long whatever
/// arrives meanwhile: one hop costs at most this.
pub const EMBEDDED_FETCH_WAIT: Duration = Duration::from_millis(2);

/// The fetch wait on other brokers.
pub const DEFAULT_FETCH_WAIT: Duration = Duration::from_millis(20);

/// `[broker]`, compiled.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub brokers: Brokers,
    pub partitions: i32,
    pub replication: i32,
    pub session_timeout: Duration,
    /// How long the broker may hold a fetch with no data; unset: [`EMBEDDED_FETCH_WAIT`] on
    /// the embedded broker (its idle consumers pause instead, see `transport::idle`),
    /// [`DEFAULT_FETCH_WAIT`] elsewhere.
    pub fetch_wait: Option<Duration>,
    pub redeliver_each_message: bool,
}

impl BrokerConfig {
    /// The embedded broker with one partition per topic (a record read means every earlier
    /// one of its topic was read) and the other settings' defaults: for a part run on its own.
    pub fn embedded_single_partition() -> BrokerConfig {
        BrokerConfig {
            brokers: Brokers::Embedded,
            partitions: 1,
            replication: 1,
            session_timeout: Duration::from_secs(6),
            fetch_wait: None,
            redeliver_each_message: false,
        }
    }
}

/// A consumer's retry policy before a message is dead-lettered (see [`super::DeliveryPolicy`]).
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
