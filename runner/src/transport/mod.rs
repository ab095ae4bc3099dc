//! The Kafka-protocol transport: the only module that talks to rdkafka.
//!
//! [`Broker`] is the connection settings plus, for `brokers = "embedded"`, the broker hosted
//! in this process. Producers wait for the broker's acknowledgement; consumers store an
//! offset only after its message was fully handled (at-least-once), see [`consume`].

mod consume;
pub mod dead_letter;
pub mod embedded;
mod read;

use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

pub use consume::{consume, consume_raw, DeliveryPolicy, HandleError, Incoming, RawMessage};
pub use embedded::EmbeddedBroker;
pub use read::{TopicContents, TopicRecord};

use crate::config::model::{BrokerConfig, Brokers};
use crate::event::Event;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{0}")]
    Broker(String),
    #[error("broker error: {0}")]
    Kafka(#[from] KafkaError),
}

/// Where and how to reach the broker.
#[derive(Clone)]
pub struct Broker {
    bootstrap: String,
    embedded: Option<Arc<EmbeddedBroker>>,
    config: BrokerConfig,
    /// A client kept for metadata requests (readiness probes), made on first use.
    metadata_client: Arc<std::sync::OnceLock<rdkafka::producer::BaseProducer>>,
}

impl Broker {
    /// Connects to the configured brokers, starting the embedded one when asked for.
    pub fn connect(config: &BrokerConfig) -> Result<Self, TransportError> {
        match &config.brokers {
            Brokers::Embedded => Ok(Self::on_embedded(Arc::new(EmbeddedBroker::start(1)?), config)),
            Brokers::List(list) => Ok(Broker {
                bootstrap: list.clone(),
                embedded: None,
                config: config.clone(),
                metadata_client: Arc::default(),
            }),
        }
    }

    /// Uses an embedded broker that is shared with other services of this process.
    pub fn on_embedded(embedded: Arc<EmbeddedBroker>, config: &BrokerConfig) -> Self {
        Broker {
            bootstrap: embedded.bootstrap_servers().to_string(),
            embedded: Some(embedded),
            config: config.clone(),
            metadata_client: Arc::default(),
        }
    }

    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        config.set("client.id", "chaos-symphony-runner");
        config
    }

    /// Creates the topics that do not exist yet.
    pub async fn ensure_topics(&self, topics: &[String]) -> Result<(), TransportError> {
        let (partitions, replication) = (self.config.partitions, self.config.replication);
        if let Some(embedded) = &self.embedded {
            for topic in topics {
                embedded.create_topic(topic, partitions, replication)?;
            }
            return Ok(());
        }
        let existing = self.topic_names().await?;
        let missing: Vec<&String> = topics.iter().filter(|t| !existing.contains(*t)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let admin: AdminClient<DefaultClientContext> = self.client_config().create()?;
        let new_topics: Vec<NewTopic<'_>> =
            missing.iter().map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(replication))).collect();
        let options = AdminOptions::new()
            .operation_timeout(Some(Duration::from_secs(10)))
            .request_timeout(Some(Duration::from_secs(5)));
        match admin.create_topics(new_topics.iter(), &options).await {
            Ok(results) => {
                for result in results {
                    match result {
                        Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                        Err((topic, code)) => {
                            return Err(TransportError::Broker(format!("cannot create topic `{topic}`: {code}")));
                        }
                    }
                }
                Ok(())
            }
            Err(e) => {
                // Some Kafka-protocol brokers (the embedded one among them) do not implement
                // CreateTopics but create a topic when a client asks for its metadata.
                tracing::info!(error = %e, "broker did not create topics; asking for auto-creation");
                self.request_auto_creation(missing.iter().map(|t| t.to_string()).collect()).await
            }
        }
    }

    async fn topic_names(&self) -> Result<std::collections::HashSet<String>, TransportError> {
        let config = self.client_config();
        tokio::task::spawn_blocking(move || {
            let producer: rdkafka::producer::BaseProducer = config.create()?;
            let metadata = producer.client().fetch_metadata(None, Duration::from_secs(10))?;
            Ok(metadata.topics().iter().map(|t| t.name().to_string()).collect())
        })
        .await
        .map_err(|e| TransportError::Broker(format!("metadata task failed: {e}")))?
    }

    async fn request_auto_creation(&self, topics: Vec<String>) -> Result<(), TransportError> {
        let config = self.client_config();
        tokio::task::spawn_blocking(move || {
            let producer: rdkafka::producer::BaseProducer = config.create()?;
            for topic in &topics {
                let metadata = producer.client().fetch_metadata(Some(topic), Duration::from_secs(10))?;
                let created = metadata.topics().iter().any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
                if !created {
                    return Err(TransportError::Broker(format!(
                        "topic `{topic}` does not exist and the broker did not create it; create it, or enable topic auto-creation"
                    )));
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| TransportError::Broker(format!("metadata task failed: {e}")))?
    }

    /// A producer that waits for every record's acknowledgement and keeps per-partition order.
    pub fn publisher(&self) -> Result<Publisher, TransportError> {
        // Never give up on a record locally: a record that timed out while a later one of the
        // same partition got through would break per-order order. Outages show as lag.
        self.publisher_with_timeout(None)
    }

    /// A producer whose records fail after `timeout` instead of waiting for the broker
    /// forever: for an operator's request (a replay) that must get a definite answer.
    pub fn publisher_with_timeout(&self, timeout: Option<Duration>) -> Result<Publisher, TransportError> {
        let producer: FutureProducer = self
            .client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // Send at once: under load records batch anyway while requests are in flight, and
            // at low rates a linger is pure latency (see docs/benchmarks.md).
            .set("linger.ms", "0")
            .set("message.timeout.ms", timeout.map_or(0, |t| t.as_millis().max(1)).to_string())
            .set("reconnect.backoff.max.ms", "1000")
            // Notice a dead connection in seconds, not the default half minute, and resend.
            .set("request.timeout.ms", "5000")
            .set("socket.timeout.ms", "10000")
            .create()?;
        Ok(Publisher { producer })
    }

    /// A consumer in `group`, subscribed to `topics`, committing only offsets stored after handling.
    pub fn consumer(&self, group: &str, topics: &[String]) -> Result<StreamConsumer, TransportError> {
        let session = self.config.session_timeout.as_millis().max(1000);
        let consumer: StreamConsumer = self
            .client_config()
            .set("group.id", group)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "200")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", session.to_string())
            .set("heartbeat.interval.ms", (session / 4).max(100).to_string())
            .set("topic.metadata.refresh.interval.ms", "5000")
            .set("fetch.wait.max.ms", self.config.fetch_wait.as_millis().max(1).to_string())
            .create()?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names)?;
        Ok(consumer)
    }

    /// Whether the broker answers a metadata request within `timeout`.
    pub async fn ping(&self, timeout: Duration) -> bool {
        let config = self.client_config();
        let cell = self.metadata_client.clone();
        tokio::task::spawn_blocking(move || {
            if cell.get().is_none() {
                let Ok(producer) = config.create::<rdkafka::producer::BaseProducer>() else { return false };
                let _ = cell.set(producer);
            }
            cell.get().is_some_and(|producer| producer.client().fetch_metadata(None, timeout).is_ok())
        })
        .await
        .unwrap_or(false)
    }
}

/// Publishes events and waits for the broker's acknowledgement of each.
#[derive(Clone)]
pub struct Publisher {
    producer: FutureProducer,
}

/// One record to publish, borrowed from wherever it was read (an [`Event`] or an outbox row).
pub struct Record<'a> {
    pub id: &'a str,
    pub event_type: &'a str,
    pub key: &'a str,
    pub source: &'a str,
    pub time: &'a str,
    pub traceparent: Option<&'a str>,
    /// The JSON payload as bytes.
    pub payload: &'a [u8],
}

impl Publisher {
    /// Publishes to the topic named by the event type, keyed by the order id, with
    /// CloudEvents binary-mode headers and the trace context; waits for the acknowledgement.
    pub async fn publish(&self, event: &Event) -> Result<(), TransportError> {
        let payload = serde_json::to_vec(&event.payload).unwrap_or_default();
        let record = Record {
            id: &event.id,
            event_type: &event.event_type,
            key: &event.key,
            source: &event.source,
            time: &event.time,
            traceparent: event.traceparent.as_deref(),
            payload: &payload,
        };
        self.enqueue(&record).await?.await
    }

    /// Hands a record to the producer at once (so records keep the order of the calls) and
    /// returns the wait for its acknowledgement. Waits while the producer's queue is full.
    pub async fn enqueue(
        &self,
        record: &Record<'_>,
    ) -> Result<impl std::future::Future<Output = Result<(), TransportError>> + Send + 'static, TransportError> {
        let mut headers = OwnedHeaders::new_with_capacity(7)
            .insert(Header { key: "ce_specversion", value: Some("1.0") })
            .insert(Header { key: "ce_id", value: Some(record.id) })
            .insert(Header { key: "ce_type", value: Some(record.event_type) })
            .insert(Header { key: "ce_source", value: Some(record.source) })
            .insert(Header { key: "ce_time", value: Some(record.time) })
            .insert(Header { key: "content-type", value: Some("application/json") });
        if let Some(traceparent) = record.traceparent {
            headers = headers.insert(Header { key: "traceparent", value: Some(traceparent) });
        }
        let mut pending = FutureRecord::to(record.event_type).key(record.key).payload(record.payload).headers(headers);
        loop {
            match self.producer.send_result(pending) {
                Ok(delivery) => {
                    return Ok(async move {
                        match delivery.await {
                            Ok(Ok(_)) => Ok(()),
                            Ok(Err((e, _))) => Err(TransportError::Kafka(e)),
                            Err(_) => {
                                Err(TransportError::Broker("the producer was closed before acknowledging".into()))
                            }
                        }
                    });
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), record)) => {
                    pending = record;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(TransportError::Kafka(e)),
            }
        }
    }

    /// Publishes a record as bytes with the given headers (dead letters, replays) and waits
    /// for the acknowledgement.
    pub async fn publish_raw(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: &[(String, Vec<u8>)],
    ) -> Result<(), TransportError> {
        let mut owned = OwnedHeaders::new_with_capacity(headers.len());
        for (name, value) in headers {
            owned = owned.insert(Header { key: name.as_str(), value: Some(value.as_slice()) });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(owned);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        self.producer.send(record, Duration::from_secs(30)).await.map(|_| ()).map_err(|(e, _)| TransportError::Kafka(e))
    }

    /// Waits until everything sent so far is acknowledged (used on shutdown).
    pub fn flush(&self, timeout: Duration) {
        let _ = self.producer.flush(timeout);
    }
}
