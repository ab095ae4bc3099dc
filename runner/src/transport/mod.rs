//! The Kafka-protocol transport: the only module that talks to rdkafka.
//!
//! [`Broker`] is the connection settings plus, for `brokers = "embedded"`, the broker hosted
//! in this process. Producers wait for the broker's acknowledgement; consumers store an
//! offset only after its message was fully handled (at-least-once), see [`consume`].

mod config;
mod consume;
pub mod dead_letter;
pub mod embedded;
mod guard;
mod idle;
mod in_flight;
mod publish;
mod read;
mod topics;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::Producer as _;

pub use consume::{consume, consume_raw, ConsumeChaos, DeliveryPolicy, HandleError, Incoming, RawMessage};
pub use embedded::EmbeddedBroker;
pub use guard::{instance_name, Consumer};
pub use publish::{Publisher, Record, BOUNDED_PUBLISH_TIMEOUT};
pub use read::{TopicContents, TopicRecord};
pub use topics::{topics_where, TopicRole, TopicUse};

pub use config::{BrokerConfig, Brokers, DeliveryRetry};

/// How many messages a consumer's librdkafka queue fetches ahead of its handlers (at least),
/// and at most how many KiB: about a thousand of the saga's events, beside the up to
/// `max_in_flight` the handlers already took. 4 MiB per consumer measured no faster and kept
/// 1–2 MB more at the burst's peak.
const PREFETCH_MESSAGES: u32 = 2_000;
const PREFETCH_KBYTES: u32 = 1_024;

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
    /// The consumers made through this handle, by group: `consumer_lag` asks a group's own
    /// consumer for its committed offsets, with no client of its own.
    live: Arc<std::sync::Mutex<HashMap<String, std::sync::Weak<guard::ConsumerClient>>>>,
    /// Clients that read committed offsets for `consumer_lag` while a group has no consumer
    /// here (stopped, or between restarts); dropped once it has one again.
    lag_clients: Arc<std::sync::Mutex<HashMap<String, Arc<rdkafka::consumer::BaseConsumer>>>>,
    /// Pauses the consumers the moment the broker refuses connections (none for the
    /// embedded broker, which keeps its state when it goes down).
    watch: Option<Arc<watch::BrokerWatch>>,
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
                live: Arc::default(),
                lag_clients: Arc::default(),
                watch: Some(watch::BrokerWatch::new(list)),
            }),
        }
    }

    /// Uses an embedded broker that is shared with other services of this process.
    pub fn on_embedded(embedded: Arc<EmbeddedBroker>, config: &BrokerConfig) -> Self {
        Broker {
            bootstrap: embedded.bootstrap_servers().to_string(),
            embedded: Some(embedded),
            config: config.clone(),
            live: Arc::default(),
            lag_clients: Arc::default(),
            watch: None,
        }
    }

    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// Whether this is the broker hosted in this process.
    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// The fetch wait of this broker's consumers (see [`BrokerConfig::fetch_wait`]).
    pub fn fetch_wait(&self) -> Duration {
        let default = if self.is_embedded() { config::EMBEDDED_FETCH_WAIT } else { config::DEFAULT_FETCH_WAIT };
        self.config.fetch_wait.unwrap_or(default)
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

    /// Creates a compacted, single-partition topic if it does not exist (the control topic:
    /// the latest record of each key is its state, and one partition keeps every change in order).
    pub async fn ensure_compacted_topic(&self, topic: &str) -> Result<(), TransportError> {
        self.create_missing(&[topic.to_string()], 1, true).await
    }

    /// Creates the topics that do not exist yet.
    pub async fn ensure_topics(&self, topics: &[String]) -> Result<(), TransportError> {
        self.create_missing(topics, self.config.partitions, false).await
    }

    /// Creates the missing ones of `topics` through the admin API (compacted if asked).
    async fn create_missing(&self, topics: &[String], partitions: i32, compacted: bool) -> Result<(), TransportError> {
        let replication = self.config.replication;
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
        let new_topics: Vec<NewTopic<'_>> = missing
            .iter()
            .map(|t| {
                let topic = NewTopic::new(t, partitions, TopicReplication::Fixed(replication));
                if compacted {
                    topic.set("cleanup.policy", "compact")
                } else {
                    topic
                }
            })
            .collect();
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
                // CreateTopics but create a topic, with their defaults (not compacted), when a
                // client asks for its metadata.
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

    /// This process's producer for these brokers that never gives up on a record locally:
    /// a record that timed out while a later one of the same partition got through would
    /// break per-order order. Outages show as lag.
    pub fn publisher(&self) -> Result<Publisher, TransportError> {
        publish::shared_publisher(&self.bootstrap, None, self.client_config())
    }

    /// This process's producer whose records fail after [`BOUNDED_PUBLISH_TIMEOUT`] instead
    /// of waiting for the broker forever: for an operator's request (a replay, a chaos rule)
    /// that must get a definite answer.
    pub fn bounded_publisher(&self) -> Result<Publisher, TransportError> {
        publish::shared_publisher(&self.bootstrap, Some(BOUNDED_PUBLISH_TIMEOUT), self.client_config())
    }

    /// A consumer in `group`, subscribed to `topics`, committing only offsets stored after
    /// handling. With `RUNNER_INSTANCE` set it is a static member of its group
    /// (`group.instance.id` = group `@` [`instance_name`]): restarted, it takes its partitions
    /// back at once on a broker that implements static membership.
    pub fn consumer(&self, group: &str, topics: &[String]) -> Result<Consumer, TransportError> {
        let session = self.config.session_timeout.as_millis().max(1000);
        let slot = guard::InstanceSlot::take(group);
        let mut config = self.client_config();
        if let Some(slot) = &slot {
            config.set("group.instance.id", &slot.id);
        }
        let consumer: StreamConsumer<guard::Guard> = config
            .set("group.id", group)
            // The consume loop commits what it finished, and not while the broker is away:
            // librdkafka's own timer would send offsets of before a loss to a broker that lost
            // its state, skipping what was published since.
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", session.to_string())
            .set("heartbeat.interval.ms", (session / 4).max(100).to_string())
            .set("topic.metadata.refresh.interval.ms", "5000")
            // Back within a second of the broker's return, not after ten.
            .set("reconnect.backoff.max.ms", "1000")
            .set("fetch.wait.max.ms", self.fetch_wait().as_millis().max(1).to_string())
            .set("fetch.error.backoff.ms", self.fetch_wait().as_millis().max(1).to_string())
            // What librdkafka fetches ahead of the handlers: its defaults (100,000 messages,
            // 64 MiB per consumer) are far above the `max_in_flight` a consumer takes at once,
            // and a burst filled them; a few thousand messages keep every handler fed.
            .set("queued.min.messages", PREFETCH_MESSAGES.to_string())
            .set("queued.max.messages.kbytes", PREFETCH_KBYTES.to_string())
            .create_with_context(guard::Guard::default())?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names)?;
        let client = self.watched(consumer);
        self.live.lock().unwrap_or_else(|p| p.into_inner()).insert(group.to_string(), Arc::downgrade(&client));
        Ok(Consumer::new(client, self.clone(), group, topics.to_vec(), slot))
    }

    /// `consumer`, paused by the broker watch when the broker goes away.
    fn watched(&self, consumer: StreamConsumer<guard::Guard>) -> Arc<guard::ConsumerClient> {
        let consumer = Arc::new(guard::ConsumerClient::new(consumer));
        if let Some(watch) = &self.watch {
            watch.register(&consumer);
        }
        consumer
    }

    /// The committed offsets of `group` for `partitions`, asked as an outside observer.
    pub(crate) async fn committed(
        &self,
        group: &str,
        partitions: &rdkafka::TopicPartitionList,
    ) -> Result<rdkafka::TopicPartitionList, TransportError> {
        let mut config = self.client_config();
        config.set("group.id", group).set("enable.auto.commit", "false");
        let partitions = partitions.clone();
        tokio::task::spawn_blocking(move || {
            let consumer: rdkafka::consumer::BaseConsumer = config.create()?;
            Ok(consumer.committed_offsets(partitions, Duration::from_secs(5))?)
        })
        .await
        .map_err(|e| TransportError::Broker(format!("committed offsets task failed: {e}")))?
    }

    /// Follows every partition of `topic` from its first record until `shutdown`, handing
    /// each record's key and value to `apply`. No group is joined and nothing is committed:
    /// every runner reads the whole (compacted) control topic on start.
    pub async fn follow(
        &self,
        topic: &str,
        shutdown: &tokio_util::sync::CancellationToken,
        mut apply: impl FnMut(Option<&[u8]>, Option<&[u8]>),
    ) -> Result<(), TransportError> {
        use rdkafka::Message;
        // On the embedded broker an idle follower pauses, and wakes when this process writes.
        let follow_wait = if self.is_embedded() { self.fetch_wait() } else { Duration::from_millis(50) };
        let consumer: StreamConsumer<guard::Guard> = self
            .client_config()
            .set("group.id", format!("chaos-symphony-follow-{}", uuid::Uuid::new_v4().simple()))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("fetch.wait.max.ms", follow_wait.as_millis().max(1).to_string())
            // Never skip to the end: a follower must see every record from the first.
            .set("auto.offset.reset", "earliest")
            // An idle topic must not push the next fetch half a second out.
            .set("fetch.error.backoff.ms", "20")
            .set("fetch.queue.backoff.ms", "10")
            .set("topic.metadata.refresh.interval.ms", "5000")
            .set("reconnect.backoff.max.ms", "1000")
            .create_with_context(guard::Guard::default())?;
        let partitions = {
            let (config, name) = (self.client_config(), topic.to_string());
            tokio::task::spawn_blocking(move || -> Result<usize, TransportError> {
                let client: rdkafka::producer::BaseProducer = config.create()?;
                let metadata = client.client().fetch_metadata(Some(&name), Duration::from_secs(10))?;
                Ok(metadata.topics().first().map_or(0, |t| t.partitions().len()))
            })
            .await
            .map_err(|e| TransportError::Broker(format!("metadata task failed: {e}")))??
        };
        let mut assignment = rdkafka::TopicPartitionList::new();
        for partition in 0..partitions.max(1) {
            assignment.add_partition_offset(topic, partition as i32, rdkafka::Offset::Beginning)?;
        }
        consumer.assign(&assignment)?;
        let consumer = Consumer::follower(self.watched(consumer), self.clone(), topic);
        let mut idle = consumer.idleness();
        loop {
            let next = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                _ = consumer.trouble() => {
                    // Read again from the first record: a broker that lost the topic starts it anew.
                    if !consumer.recover(topic, shutdown).await {
                        return Ok(());
                    }
                    idle.recovered(&consumer);
                    continue;
                }
                next = consumer.recv() => next,
                _ = tokio::time::sleep_until(idle.idle_at()), if idle.may_pause() => {
                    idle.pause(&consumer);
                    continue;
                }
                rang = idle.woken(), if idle.is_paused() => {
                    idle.resume(&consumer, rang);
                    continue;
                }
            };
            match next {
                Ok(message) => {
                    idle.active();
                    apply(message.key(), message.payload());
                }
                Err(_) if consumer.is_lost() => {}
                Err(e) => {
                    tracing::debug!(topic, error = %e, "read error while following; continuing");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// How far a consumer group is behind: per partition of `topics`, the high watermark minus
    /// the group's committed offset (the whole partition when nothing is committed). Asked
    /// through the group's own consumer when this handle made one that still runs (no client
    /// more per group: each idle client costs wake-ups), else through a client that does not
    /// join the group.
    pub async fn consumer_lag(
        &self,
        group: &str,
        topics: &[String],
    ) -> Result<Vec<(String, i32, i64)>, TransportError> {
        let topics = topics.to_vec();
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner()).get(group).and_then(std::sync::Weak::upgrade);
        let task = match live {
            Some(consumer) => {
                self.lag_clients.lock().unwrap_or_else(|p| p.into_inner()).remove(group);
                tokio::task::spawn_blocking(move || lag_of(&**consumer, &topics))
            }
            None => {
                let client = self.lag_client(group)?;
                tokio::task::spawn_blocking(move || lag_of(&*client, &topics))
            }
        };
        task.await.map_err(|e| TransportError::Broker(format!("lag task failed: {e}")))?
    }

    /// A client that reads `group`'s committed offsets while the group has no consumer here,
    /// made once: it never subscribes, so it does not join the group.
    fn lag_client(&self, group: &str) -> Result<Arc<rdkafka::consumer::BaseConsumer>, TransportError> {
        let mut clients = self.lag_clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = clients.get(group) {
            return Ok(client.clone());
        }
        let mut config = self.client_config();
        config.set("group.id", group).set("enable.auto.commit", "false").set("reconnect.backoff.max.ms", "1000");
        let client: Arc<rdkafka::consumer::BaseConsumer> = Arc::new(config.create()?);
        clients.insert(group.to_string(), client.clone());
        Ok(client)
    }

    /// Whether the broker answers a metadata request within `timeout`, asked through this
    /// process's shared producer (no client of its own).
    pub async fn ping(&self, timeout: Duration) -> bool {
        let Ok(publisher) = self.publisher() else { return false };
        tokio::task::spawn_blocking(move || publisher.broker_answers(timeout)).await.unwrap_or(false)
    }
}

/// Per partition of `topics`: how far the high watermark is ahead of the offset committed by
/// the group of `consumer` (blocking; run off the async runtime).
fn lag_of<X, C>(consumer: &C, topics: &[String]) -> Result<Vec<(String, i32, i64)>, TransportError>
where
    X: rdkafka::consumer::ConsumerContext,
    C: rdkafka::consumer::Consumer<X>,
{
    let timeout = Duration::from_secs(5);
    let mut assignment = rdkafka::TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            assignment.add_partition(topic, partition.id());
        }
    }
    let committed = consumer.committed_offsets(assignment, timeout)?;
    let mut lag = Vec::new();
    for element in committed.elements() {
        let (low, high) = consumer.fetch_watermarks(element.topic(), element.partition(), timeout)?;
        let position = match element.offset() {
            rdkafka::Offset::Offset(offset) => offset,
            _ => low,
        };
        lag.push((element.topic().to_string(), element.partition(), (high - position).max(0)));
    }
    Ok(lag)
}
