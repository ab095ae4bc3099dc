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
mod in_flight;
mod read;
mod topics;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};

pub use consume::{consume, consume_raw, ConsumeChaos, DeliveryPolicy, HandleError, Incoming, RawMessage};
pub use embedded::EmbeddedBroker;
pub use guard::{instance_name, Consumer};
pub use read::{TopicContents, TopicRecord};
pub use topics::{topics_where, TopicRole, TopicUse};

use crate::event::Event;
pub use config::{BrokerConfig, Brokers, DeliveryRetry};

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
                metadata_client: Arc::default(),
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
            metadata_client: Arc::default(),
            watch: None,
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

    /// A producer that waits for every record's acknowledgement and keeps per-partition order.
    pub fn publisher(&self) -> Result<Publisher, TransportError> {
        // Never give up on a record locally: a record that timed out while a later one of the
        // same partition got through would break per-order order. Outages show as lag.
        self.publisher_with_timeout(None)
    }

    /// A producer whose records fail after `timeout` instead of waiting for the broker
    /// forever: for an operator's request (a replay) that must get a definite answer.
    pub fn publisher_with_timeout(&self, timeout: Option<Duration>) -> Result<Publisher, TransportError> {
        let mut config = self.client_config();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // Send at once: under load records batch anyway while requests are in flight, and
            // at low rates a linger is pure latency (see docs/benchmarks.md).
            .set("linger.ms", "0")
            .set("message.timeout.ms", timeout.map_or(0, |t| t.as_millis().max(1)).to_string())
            .set("reconnect.backoff.max.ms", "1000")
            // Notice a dead connection in seconds, not the default half minute, and resend.
            .set("request.timeout.ms", "5000")
            .set("socket.timeout.ms", "10000");
        let watch = Watch::default();
        let producer: Producer = config.create_with_context(watch.clone())?;
        let shared = Arc::new(SharedProducer {
            config,
            current: std::sync::RwLock::new((0, producer)),
            me: std::sync::OnceLock::new(),
        });
        let _ = shared.me.set(Arc::downgrade(&shared));
        let _ = watch.shared.set(Arc::downgrade(&shared));
        Ok(Publisher { shared, chaos: None })
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
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "200")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", session.to_string())
            .set("heartbeat.interval.ms", (session / 4).max(100).to_string())
            .set("topic.metadata.refresh.interval.ms", "5000")
            // Back within a second of the broker's return, not after ten.
            .set("reconnect.backoff.max.ms", "1000")
            .set("fetch.wait.max.ms", self.config.fetch_wait.as_millis().max(1).to_string())
            .create_with_context(guard::Guard::default())?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names)?;
        Ok(Consumer::new(self.watched(consumer), self.clone(), group, topics.to_vec(), slot))
    }

    /// `consumer`, paused by the broker watch when the broker goes away.
    fn watched(&self, consumer: StreamConsumer<guard::Guard>) -> Arc<StreamConsumer<guard::Guard>> {
        let consumer = Arc::new(consumer);
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
        let consumer: StreamConsumer<guard::Guard> = self
            .client_config()
            .set("group.id", format!("chaos-symphony-follow-{}", uuid::Uuid::new_v4().simple()))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("fetch.wait.max.ms", "50")
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
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = consumer.trouble() => {
                    // Read again from the first record: a broker that lost the topic starts it anew.
                    if !consumer.recover(topic, shutdown).await {
                        return Ok(());
                    }
                    continue;
                }
                next = consumer.recv() => next,
            };
            match next {
                Ok(message) => apply(message.key(), message.payload()),
                Err(_) if consumer.is_lost() => {}
                Err(e) => {
                    tracing::debug!(topic, error = %e, "read error while following; continuing");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// How far a consumer group is behind: per partition of `topics`, the high watermark minus
    /// the group's committed offset (the whole partition when nothing is committed). Asks as
    /// an outside observer would: the group is not joined.
    pub async fn consumer_lag(
        &self,
        group: &str,
        topics: &[String],
    ) -> Result<Vec<(String, i32, i64)>, TransportError> {
        let mut config = self.client_config();
        config.set("group.id", group).set("enable.auto.commit", "false");
        let topics = topics.to_vec();
        tokio::task::spawn_blocking(move || -> Result<Vec<(String, i32, i64)>, TransportError> {
            let timeout = Duration::from_secs(5);
            let consumer: rdkafka::consumer::BaseConsumer = config.create()?;
            let mut assignment = rdkafka::TopicPartitionList::new();
            for topic in &topics {
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
        })
        .await
        .map_err(|e| TransportError::Broker(format!("lag task failed: {e}")))?
    }

    /// Whether the broker answers a metadata request within `timeout`.
    pub async fn ping(&self, timeout: Duration) -> bool {
        let mut config = self.client_config();
        // Reconnect within a second of the broker's return: readiness must not lag it by the
        // default backoff (up to 10 s).
        config.set("reconnect.backoff.max.ms", "1000");
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

/// What a `corrupt` fault puts on the topic instead of the payload.
const CORRUPTED_PAYLOAD: &[u8] = b"\x00\xffchaos: corrupted payload\xfe";

/// Publishes events and waits for the broker's acknowledgement of each.
#[derive(Clone)]
pub struct Publisher {
    shared: Arc<SharedProducer>,
    /// Produce-side chaos: the engine and the service publishing (the relay).
    chaos: Option<(crate::chaos::Chaos, String)>,
}

type Producer = FutureProducer<Watch>;

/// The producer behind every clone of a [`Publisher`], replaced when it fails fatally or
/// loses every broker connection.
struct SharedProducer {
    config: ClientConfig,
    /// The producer in use and its generation (how many it replaced).
    current: std::sync::RwLock<(u64, Producer)>,
    /// Itself, for the context of each new producer.
    me: std::sync::OnceLock<std::sync::Weak<SharedProducer>>,
}

/// A producer's context: notices when every broker connection is down. An idempotent
/// producer keeps its producer id across the outage, and a broker that came back without
/// its state answers every send with `UNKNOWN_PRODUCER_ID`, which librdkafka retries for
/// ever (records never time out here). So once the broker answers again, a producer that
/// still holds unacknowledged records [`STUCK_AFTER`] later is replaced: the new one gets an
/// id from the broker as it is now, and the records of the old one fail to their senders,
/// which send them again. A broker that came back with its state (the usual outage)
/// acknowledges the records in that time, and the producer is kept: replacing one purges
/// records in flight, which the broker may have stored already.
/// How long after the broker's return a producer may still hold unacknowledged records
/// before it counts as stuck and is replaced.
const STUCK_AFTER: Duration = Duration::from_secs(10);

#[derive(Clone, Default)]
struct Watch {
    shared: Arc<std::sync::OnceLock<std::sync::Weak<SharedProducer>>>,
    generation: Arc<std::sync::atomic::AtomicU64>,
    /// Set at the first loss: one watcher waits for the broker.
    lost: Arc<std::sync::atomic::AtomicBool>,
}

impl rdkafka::ClientContext for Watch {
    fn error(&self, error: KafkaError, reason: &str) {
        // librdkafka also says "0/1 brokers are down" as a connection comes back: not a loss.
        let all_down =
            error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) && !reason.starts_with("0/");
        if !all_down {
            tracing::debug!(error = %error, %reason, "producer error");
            return;
        }
        if self.lost.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let (shared, generation) = (self.shared.clone(), self.generation.load(std::sync::atomic::Ordering::SeqCst));
        let lost = self.lost.clone();
        // Not on librdkafka's thread: replacing purges, and purging calls back here.
        std::thread::spawn(move || {
            let mut back_since: Option<std::time::Instant> = None;
            loop {
                std::thread::sleep(Duration::from_millis(200));
                let Some(shared) = shared.get().and_then(std::sync::Weak::upgrade) else { return };
                let (current, producer) = shared.current();
                if current != generation {
                    return;
                }
                let since = match back_since {
                    Some(since) => since,
                    None if producer.client().fetch_metadata(None, Duration::from_secs(1)).is_ok() => {
                        *back_since.insert(std::time::Instant::now())
                    }
                    None => continue,
                };
                if producer.in_flight_count() == 0 {
                    // Everything was acknowledged: the broker kept its state. Watch again.
                    lost.store(false, std::sync::atomic::Ordering::SeqCst);
                    return;
                }
                if since.elapsed() >= STUCK_AFTER {
                    shared.replace(generation, "records stayed unacknowledged after every broker connection was down");
                    return;
                }
            }
        });
    }
}

impl SharedProducer {
    fn current(&self) -> (u64, Producer) {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        (current.0, current.1.clone())
    }

    /// Replaces the producer of `generation` (unless another call did already) and fails
    /// every record it still holds.
    fn replace(&self, generation: u64, reason: &str) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if current.0 != generation {
            return;
        }
        let watch = Watch::default();
        match self.config.create_with_context::<_, Producer>(watch.clone()) {
            Ok(fresh) => {
                watch.generation.store(generation + 1, std::sync::atomic::Ordering::SeqCst);
                if let Some(me) = self.me.get() {
                    let _ = watch.shared.set(me.clone());
                }
                let (_, old) = std::mem::replace(&mut *current, (generation + 1, fresh));
                drop(current);
                metrics::counter!(crate::telemetry::PRODUCER_REBUILDS).increment(1);
                tracing::warn!(%reason, "producer replaced; records not acknowledged are sent again");
                old.purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
                // Dropping a producer waits for its threads: not on an async worker.
                std::thread::spawn(move || drop(old));
            }
            Err(e) => tracing::error!(error = %e, %reason, "the producer cannot be replaced yet; will try again"),
        }
    }

    /// After `error` from the producer of `generation`: when that producer is in a fatal
    /// state (an idempotent producer the broker no longer knows, say after it lost its
    /// state), a new one takes its place. Records it had not sent were failed to their
    /// senders, which send them again (the relay leaves unacknowledged rows unpublished).
    fn after_error(&self, generation: u64, error: &KafkaError, producer: &Producer) {
        let fatal = error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal);
        let Some((code, reason)) =
            producer.client().fatal_error().or(fatal.then(|| (RDKafkaErrorCode::Fatal, error.to_string())))
        else {
            return;
        };
        self.replace(generation, &format!("fatal producer error {code:?}: {reason}"));
    }
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
    /// The topic, when not the one named by the event type.
    pub topic: Option<&'a str>,
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
            topic: event.topic.as_deref(),
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
        let topic = record.topic.unwrap_or(record.event_type);
        // A producer span, child of the row's trace, lasts until the broker acknowledges; the
        // record carries the span's own context so consumers continue from it.
        let span = tracing::info_span!(
            "publish",
            otel.name = format!("{topic} publish"),
            otel.kind = "producer",
            otel.status_code = tracing::field::Empty,
            messaging.system = "kafka",
            messaging.operation.type = "send",
            messaging.destination.name = topic,
            messaging.message.id = record.id,
            messaging.kafka.message.key = record.key,
        );
        crate::traces::set_parent(&span, record.traceparent);
        let traceparent = crate::traces::traceparent_of(&span).or_else(|| record.traceparent.map(str::to_string));
        if let Some(traceparent) = &traceparent {
            headers = headers.insert(Header { key: "traceparent", value: Some(traceparent.as_str()) });
        }
        let mut payload = record.payload;
        let mut copies = 1;
        if let Some((chaos, service)) = &self.chaos {
            let actions = chaos.decide(crate::chaos::Point::Produce { service, topic }, Some(record.key));
            crate::chaos::delay_for(chaos, &actions).await;
            for action in actions {
                match action {
                    crate::chaos::Action::Fail(message) => {
                        return Err(TransportError::Broker(format!("chaos: publish to `{topic}` failed: {message}")));
                    }
                    crate::chaos::Action::Duplicate => copies += 1,
                    crate::chaos::Action::Corrupt => payload = CORRUPTED_PAYLOAD,
                    _ => {}
                }
            }
        }
        // A duplicate is the same record sent again before it: both are acknowledged in order.
        for _ in 1..copies {
            let copy = FutureRecord::to(topic).key(record.key).payload(payload).headers(headers.clone());
            // Its acknowledgement is not awaited: the original's, sent after it, implies it.
            drop(self.send_queued(copy).await?);
        }
        let pending = FutureRecord::to(topic).key(record.key).payload(payload).headers(headers);
        let acknowledged = self.send_queued(pending).await?;
        Ok(tracing::Instrument::instrument(
            async move {
                let result = acknowledged.await;
                if result.is_err() {
                    tracing::Span::current().record("otel.status_code", "ERROR");
                }
                result
            },
            span,
        ))
    }

    /// Hands a record to the producer, waiting while its queue is full.
    async fn send_queued(
        &self,
        mut pending: FutureRecord<'_, str, [u8]>,
    ) -> Result<impl std::future::Future<Output = Result<(), TransportError>> + Send + 'static, TransportError> {
        loop {
            let (generation, producer) = self.shared.current();
            match producer.send_result(pending) {
                Ok(delivery) => {
                    let shared = self.shared.clone();
                    return Ok(async move {
                        match delivery.await {
                            Ok(Ok(_)) => Ok(()),
                            Ok(Err((e, _))) => {
                                shared.after_error(generation, &e, &producer);
                                Err(TransportError::Kafka(e))
                            }
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
                Err((e, _)) => {
                    self.shared.after_error(generation, &e, &producer);
                    return Err(TransportError::Kafka(e));
                }
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
        let (generation, producer) = self.shared.current();
        match producer.send(record, Duration::from_secs(30)).await {
            Ok(_) => Ok(()),
            Err((e, _)) => {
                self.shared.after_error(generation, &e, &producer);
                Err(TransportError::Kafka(e))
            }
        }
    }

    /// The same producer with produce-side chaos for `service` (the relay).
    pub fn with_chaos(mut self, chaos: crate::chaos::Chaos, service: &str) -> Self {
        self.chaos = Some((chaos, service.to_string()));
        self
    }

    /// Waits until everything sent so far is acknowledged (used on shutdown).
    pub fn flush(&self, timeout: Duration) {
        let _ = self.shared.current().1.flush(timeout);
    }

    /// How many producers failed fatally and were replaced behind this publisher.
    pub fn replacements(&self) -> u64 {
        self.shared.current().0
    }
}
