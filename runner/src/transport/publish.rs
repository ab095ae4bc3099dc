//! Publishing: one shared producer per process and broker (two, when some records must fail
//! after a bound), polled by its own thread, replaced when it fails fatally; [`Publisher`]
//! is a cheap handle on it that waits for the broker's acknowledgement of each record.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders, ToBytes};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use tokio::sync::oneshot;

use super::TransportError;
use crate::event::Event;

/// How long a bounded publisher's record may wait for its acknowledgement before it fails
/// (an operator's request, a control record: they must get a definite answer).
pub const BOUNDED_PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the polling thread waits for delivery reports in one call. librdkafka wakes it
/// as soon as a report is there, so this only bounds how late it notices it should stop; a
/// long wait matters because each call spins through its last millisecond (the timeout is
/// given to librdkafka in whole milliseconds).
const POLL_WAIT: Duration = Duration::from_secs(5);

/// What a `corrupt` fault puts on the topic instead of the payload.
pub(super) const CORRUPTED_PAYLOAD: &[u8] = b"\x00\xffchaos: corrupted payload\xfe";

/// Publishes events and waits for the broker's acknowledgement of each.
#[derive(Clone)]
pub struct Publisher {
    shared: Arc<SharedProducer>,
    /// Produce-side chaos: the engine and the service publishing (the relay).
    chaos: Option<(crate::chaos::Chaos, String)>,
}

/// Shared producers by (bootstrap servers, record timeout).
type ProducerRegistry = HashMap<(String, Option<Duration>), Weak<SharedProducer>>;

/// The producers of this process, by bootstrap servers and record timeout: every part that
/// publishes to the same brokers with the same patience shares one (one connection, one
/// batching queue, one polling thread), for as long as any of them holds it.
fn registry() -> &'static Mutex<ProducerRegistry> {
    static REGISTRY: OnceLock<Mutex<ProducerRegistry>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

/// The publisher of this process for `bootstrap` and `timeout`, made on first use.
pub(super) fn shared_publisher(
    bootstrap: &str,
    timeout: Option<Duration>,
    base: ClientConfig,
) -> Result<Publisher, TransportError> {
    let mut producers = registry().lock().unwrap_or_else(|p| p.into_inner());
    let key = (bootstrap.to_string(), timeout);
    if let Some(shared) = producers.get(&key).and_then(Weak::upgrade) {
        return Ok(Publisher { shared, chaos: None });
    }
    producers.retain(|_, producer| producer.strong_count() > 0);
    let shared = SharedProducer::start(producer_config(base, timeout))?;
    producers.insert(key, Arc::downgrade(&shared));
    Ok(Publisher { shared, chaos: None })
}

/// An idempotent producer that waits for every replica (`acks=all`) and keeps per-partition
/// order; its records fail after `timeout`, or never (`None`).
fn producer_config(mut config: ClientConfig, timeout: Option<Duration>) -> ClientConfig {
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
    config
}

/// A producer and the flag that stops its polling thread.
struct Polled {
    producer: BaseProducer<Watch>,
    stop: AtomicBool,
}

type Producer = Arc<Polled>;

impl Polled {
    /// Creates the producer and its polling thread, which serves delivery reports and errors
    /// until `stop` is set.
    fn start(config: &ClientConfig, watch: Watch) -> Result<Producer, TransportError> {
        let polled = Arc::new(Polled { producer: config.create_with_context(watch)?, stop: AtomicBool::new(false) });
        let thread = polled.clone();
        std::thread::Builder::new()
            .name("producer-poll".into())
            .spawn(move || {
                while !thread.stop.load(Ordering::Acquire) {
                    thread.producer.poll(POLL_WAIT);
                }
            })
            .map_err(|e| TransportError::Broker(format!("cannot start the producer's polling thread: {e}")))?;
        Ok(polled)
    }
}

/// The producer behind every clone of a [`Publisher`], replaced when it fails fatally or
/// loses every broker connection.
struct SharedProducer {
    config: ClientConfig,
    /// The producer in use and its generation (how many it replaced).
    current: RwLock<(u64, Producer)>,
    /// Itself, for the context of each new producer.
    me: OnceLock<Weak<SharedProducer>>,
}

impl Drop for SharedProducer {
    fn drop(&mut self) {
        let current = self.current.get_mut().unwrap_or_else(|e| e.into_inner());
        current.1.stop.store(true, Ordering::Release);
    }
}

/// A producer's context: hands each delivery report to the record's sender, and notices
/// when every broker connection is down. An idempotent
/// producer keeps its producer id across the outage, and a broker that came back without
/// its state answers every send with `UNKNOWN_PRODUCER_ID`, which librdkafka retries for
/// ever (records never time out here). So once the broker answers again, a producer that
/// still holds unacknowledged records [`STUCK_AFTER`] later is replaced: the new one gets an
/// id from the broker as it is now, and the records of the old one fail to their senders,
/// which send them again. A broker that came back with its state (the usual outage)
/// acknowledges the records in that time, and the producer is kept: replacing one purges
/// records in flight, which the broker may have stored already.
#[derive(Clone, Default)]
struct Watch {
    shared: Arc<OnceLock<Weak<SharedProducer>>>,
    generation: Arc<AtomicU64>,
    /// Set at the first loss: one watcher waits for the broker.
    lost: Arc<AtomicBool>,
}

/// How long after the broker's return a producer may still hold unacknowledged records
/// before it counts as stuck and is replaced.
const STUCK_AFTER: Duration = Duration::from_secs(10);

/// What the sender of a record learns: acknowledged, or why not.
type Delivery = Result<(), KafkaError>;

impl ProducerContext for Watch {
    type DeliveryOpaque = Box<oneshot::Sender<Delivery>>;

    fn delivery(&self, result: &DeliveryResult<'_>, sender: Self::DeliveryOpaque) {
        if let Ok(record) = result {
            super::idle::rung(rdkafka::Message::topic(record));
        }
        // A sender that stopped waiting (its request was cancelled) is no error.
        let _ = sender.send(result.as_ref().map(|_| ()).map_err(|(e, _)| e.clone()));
    }
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
        if self.lost.swap(true, Ordering::SeqCst) {
            return;
        }
        let (shared, generation) = (self.shared.clone(), self.generation.load(Ordering::SeqCst));
        let lost = self.lost.clone();
        // Not on librdkafka's thread: replacing purges, and purging calls back here.
        std::thread::spawn(move || {
            let mut back_since: Option<std::time::Instant> = None;
            loop {
                std::thread::sleep(Duration::from_millis(200));
                let Some(shared) = shared.get().and_then(Weak::upgrade) else { return };
                let (current, producer) = shared.current();
                if current != generation {
                    return;
                }
                let since = match back_since {
                    Some(since) => since,
                    None if producer.producer.client().fetch_metadata(None, Duration::from_secs(1)).is_ok() => {
                        *back_since.insert(std::time::Instant::now())
                    }
                    None => continue,
                };
                if producer.producer.in_flight_count() == 0 {
                    // Everything was acknowledged: the broker kept its state. Watch again.
                    lost.store(false, Ordering::SeqCst);
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
    fn start(config: ClientConfig) -> Result<Arc<Self>, TransportError> {
        let watch = Watch::default();
        let producer = Polled::start(&config, watch.clone())?;
        let shared = Arc::new(SharedProducer { config, current: RwLock::new((0, producer)), me: OnceLock::new() });
        let _ = shared.me.set(Arc::downgrade(&shared));
        let _ = watch.shared.set(Arc::downgrade(&shared));
        Ok(shared)
    }

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
        match Polled::start(&self.config, watch.clone()) {
            Ok(fresh) => {
                watch.generation.store(generation + 1, Ordering::SeqCst);
                if let Some(me) = self.me.get() {
                    let _ = watch.shared.set(me.clone());
                }
                let (_, old) = std::mem::replace(&mut *current, (generation + 1, fresh));
                drop(current);
                metrics::counter!(crate::telemetry::PRODUCER_REBUILDS).increment(1);
                tracing::warn!(%reason, "producer replaced; records not acknowledged are sent again");
                old.producer.purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
                // Its polling thread hands the purged records' failures to their senders,
                // then stops and drops it (dropping waits for librdkafka's threads).
                old.stop.store(true, Ordering::Release);
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
            producer.producer.client().fatal_error().or(fatal.then(|| (RDKafkaErrorCode::Fatal, error.to_string())))
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
            // Its acknowledgement is not awaited: the original's, sent after it, implies it.
            drop(self.send_queued(topic, Some(record.key), Some(payload), headers.clone()).await?);
        }
        let acknowledged = self.send_queued(topic, Some(record.key), Some(payload), headers).await?;
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

    /// Hands a record to the producer, waiting while its queue is full, and returns the wait
    /// for its acknowledgement.
    async fn send_queued<K: ToBytes + ?Sized + Sync, P: ToBytes + ?Sized + Sync>(
        &self,
        topic: &str,
        key: Option<&K>,
        payload: Option<&P>,
        headers: OwnedHeaders,
    ) -> Result<impl std::future::Future<Output = Result<(), TransportError>> + Send + 'static, TransportError> {
        let (sender, acknowledged) = oneshot::channel::<Delivery>();
        let mut pending: BaseRecord<'_, K, P, Box<oneshot::Sender<Delivery>>> =
            BaseRecord::with_opaque_to(topic, Box::new(sender)).headers(headers);
        if let Some(key) = key {
            pending = pending.key(key);
        }
        if let Some(payload) = payload {
            pending = pending.payload(payload);
        }
        loop {
            let (generation, producer) = self.shared.current();
            match producer.producer.send(pending) {
                Ok(()) => {
                    let shared = self.shared.clone();
                    return Ok(async move {
                        match acknowledged.await {
                            Ok(Ok(())) => Ok(()),
                            Ok(Err(e)) => {
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
        self.send_queued(topic, key, payload, owned).await?.await
    }

    /// The same producer with produce-side chaos for `service` (the relay).
    pub fn with_chaos(mut self, chaos: crate::chaos::Chaos, service: &str) -> Self {
        self.chaos = Some((chaos, service.to_string()));
        self
    }

    /// Whether the broker answers this producer's metadata request within `timeout` (blocks).
    pub(super) fn broker_answers(&self, timeout: Duration) -> bool {
        self.shared.current().1.producer.client().fetch_metadata(None, timeout).is_ok()
    }

    /// Waits until everything sent so far is acknowledged (used on shutdown).
    pub fn flush(&self, timeout: Duration) {
        let _ = self.shared.current().1.producer.flush(timeout);
    }
}
