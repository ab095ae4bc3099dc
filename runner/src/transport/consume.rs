//! The consume loop shared by every consumer: decode, handle with the consumer's retry
//! policy, dead-letter what cannot be handled, and only then store the offset. One poison
//! message costs at most its retries; the partition then moves on.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt as _};
use rdkafka::consumer::{CommitMode, Consumer as _};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use tokio_util::sync::CancellationToken;

use super::dead_letter::{self, ErrorKind};
use super::in_flight::InFlight;
use super::{Consumer, Publisher};
use crate::chaos::{self, Action, Chaos, Point};
use crate::event::{now_rfc3339, Event};
use crate::telemetry;

/// How long a stopping consumer lets the messages it is running finish.
const DRAIN_FOR: Duration = Duration::from_secs(5);
/// How often the offsets finished since the last commit are committed.
const COMMIT_EVERY: Duration = Duration::from_millis(200);

/// A record as it came from the broker: key, payload and headers untouched.
#[derive(Debug, Clone)]
pub struct RawMessage {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Unix milliseconds, when the broker gave one.
    pub timestamp_ms: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl RawMessage {
    fn from_borrowed(message: &BorrowedMessage<'_>) -> Self {
        let headers = message
            .headers()
            .map(|h| h.iter().map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec).unwrap_or_default())).collect())
            .unwrap_or_default();
        RawMessage {
            topic: message.topic().to_string(),
            partition: message.partition(),
            offset: message.offset(),
            timestamp_ms: message.timestamp().to_millis(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers,
        }
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// The CloudEvents record as an [`Event`], or why it is not one.
    pub fn decode(&self) -> Result<Event, String> {
        let id = self.header("ce_id").ok_or("missing header ce_id")?;
        let event_type = self.header("ce_type").unwrap_or_else(|| self.topic.clone());
        let key = self.key.as_deref().map(|k| String::from_utf8_lossy(k).into_owned()).ok_or("missing key")?;
        // Both are looked up and stored as text: PostgreSQL refuses a NUL byte in text, and a
        // message it cannot look up would be retried as an outage forever.
        if id.contains('\0') || key.contains('\0') {
            return Err("ce_id and the key must not contain a NUL byte".to_string());
        }
        let payload = self.payload.as_deref().ok_or("empty payload")?;
        let payload = serde_json::from_slice(payload).map_err(|e| format!("payload is not JSON: {e}"))?;
        Ok(Event {
            id,
            event_type: event_type.clone(),
            key,
            source: self.header("ce_source").unwrap_or_default(),
            time: self.header("ce_time").unwrap_or_default(),
            traceparent: self.header("traceparent"),
            payload,
            topic: Some(self.topic.clone()).filter(|t| *t != event_type),
        })
    }
}

/// A record taken from a topic, decoded into an [`Event`].
#[derive(Debug, Clone)]
pub struct Incoming {
    pub event: Event,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub raw: Arc<RawMessage>,
}

/// Why handling a message did not succeed, and what kind of failure it was.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct HandleError {
    pub kind: ErrorKind,
    pub message: String,
}

impl HandleError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        HandleError { kind, message: message.into() }
    }
}

/// How a consumer retries and where its dead letters go.
#[derive(Debug, Clone)]
pub struct DeliveryPolicy {
    /// Consumer group, recorded on dead letters.
    pub group: String,
    /// Tries of a retryable failure, the first included.
    pub attempts: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Share of each delay drawn at random (0 to 1), so retries of many consumers spread out.
    pub jitter: f64,
    /// Failure kinds worth another try. `unavailable` is always retried until it passes.
    pub retryable: Vec<ErrorKind>,
    /// Where messages go after the last attempt; `None` for the default `<topic>.dlq`.
    pub dead_letter_topic: Option<String>,
    /// Test aid: hand every message to the handler twice, as a redelivery would.
    pub redeliver: bool,
    /// Where this consumer sits for the chaos engine (none: no faults).
    pub chaos: Option<ConsumeChaos>,
    /// An observer of topics other services own (streams-analytics) skips what it cannot use
    /// instead of dead-lettering it: the owning consumer dead-letters it, once.
    pub skip_unusable: bool,
    /// Messages handled at once, one per key at a time (1: one after the other).
    pub max_in_flight: usize,
}

/// A consumer as the chaos engine sees it.
#[derive(Debug, Clone)]
pub struct ConsumeChaos {
    pub chaos: Chaos,
    pub service: String,
    /// `service/consumer`, as in logs.
    pub consumer: String,
    pub handler: String,
}

impl ConsumeChaos {
    /// Faults for one message; after the first attempt only `error` faults are asked again,
    /// so a probability applies to each retry and a sampled order fails every one.
    fn decide(&self, raw: &RawMessage, attempt: u32) -> Vec<Action> {
        let key = raw.key.as_deref().map(String::from_utf8_lossy);
        let point = Point::Consume {
            service: &self.service,
            consumer: &self.consumer,
            handler: &self.handler,
            topic: &raw.topic,
            attempt,
        };
        self.chaos.decide(point, key.as_deref())
    }
}

impl DeliveryPolicy {
    fn delay(&self, attempt: u32) -> Duration {
        let base = self.backoff.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1))).min(self.max_backoff);
        let spread = base.as_secs_f64() * self.jitter.clamp(0.0, 1.0) * rand::random::<f64>();
        Duration::from_secs_f64((base.as_secs_f64() - spread).max(0.0))
    }
}

/// A failure that ends a message's handling, with its history.
struct Exhausted {
    error: HandleError,
    attempts: u32,
    first_failure_at: String,
}

/// Runs until `shutdown`: each message is decoded into an [`Event`] and handled (retrying as
/// the policy says), or sent to its dead-letter topic, before its offset counts as finished;
/// finished offsets are committed every [`COMMIT_EVERY`] (never while the broker is away)
/// and once more on exit.
pub async fn consume<F, Fut>(
    consumer: Consumer,
    name: &str,
    shutdown: CancellationToken,
    policy: DeliveryPolicy,
    dead_letters: Publisher,
    mut handle: F,
) where
    F: FnMut(Incoming) -> Fut,
    Fut: Future<Output = Result<(), HandleError>>,
{
    consume_raw(consumer, name, shutdown, policy, dead_letters, move |raw: Arc<RawMessage>| {
        let decoded = raw.decode().map(|event| Incoming {
            event,
            topic: raw.topic.clone(),
            partition: raw.partition,
            offset: raw.offset,
            raw: raw.clone(),
        });
        let handled = decoded.map(&mut handle);
        async move {
            match handled {
                Ok(future) => future.await,
                Err(reason) => Err(HandleError::new(ErrorKind::Undecodable, reason)),
            }
        }
    })
    .await
}

/// As [`consume`], handing the handler the record as it came (key, payload, headers).
///
/// Up to `policy.max_in_flight` messages are handled at once, one per key at a time (see
/// [`InFlight`]); at the limit nothing more is taken from the broker until one finishes. An
/// offset is stored only when every message of its partition up to it is finished.
pub async fn consume_raw<F, Fut>(
    consumer: Consumer,
    name: &str,
    shutdown: CancellationToken,
    policy: DeliveryPolicy,
    dead_letters: Publisher,
    handle: F,
) where
    F: FnMut(Arc<RawMessage>) -> Fut,
    Fut: Future<Output = Result<(), HandleError>>,
{
    // Each running message calls the handler for a moment (the lock is released before its
    // future is awaited), all within this one task: the lock is never contended.
    let handle = Mutex::new(handle);
    let mut in_flight = InFlight::new(policy.max_in_flight);
    let mut idle = consumer.idleness();
    let mut running: FuturesUnordered<_> = FuturesUnordered::new();
    let mut finished_offsets = FinishedOffsets::default();
    let mut commit_every = tokio::time::interval(COMMIT_EVERY);
    commit_every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let start = |raw: Arc<RawMessage>| process(raw, &handle, name, &policy, &dead_letters, &shutdown);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some((raw, finished)) = running.next(), if !running.is_empty() => {
                let (raw, finished): (Arc<RawMessage>, bool) = (raw, finished);
                // Shutting down mid-retry: its offset stays unstored so the message comes back.
                if !finished {
                    break;
                }
                // Idleness counts from here too: a handler slower than the idle wait must not
                // leave the next message, fetched meanwhile, one poll to arrive before a pause.
                idle.active();
                let (done, next) = in_flight.finish(&raw);
                if let Some(done) = done {
                    finished_offsets.add(&done.topic, done.partition, done.offset);
                }
                if let Some(next) = next {
                    running.push(start(next));
                }
            }
            // Every broker connection is down: nothing is fetched until it is back. What is
            // running finishes first (its offsets are stored), then the consumer rewinds.
            _ = consumer.trouble(), if in_flight.is_empty() => {
                if !consumer.recover(name, &shutdown).await {
                    break;
                }
                // Offsets of before the loss must not reach a broker that lost its state: they
                // could point past records published since, which would then be skipped.
                finished_offsets.clear();
                in_flight.forget_progress();
                idle.recovered(&consumer);
            }
            message = consumer.recv(), if !in_flight.is_full() => {
                match message {
                    Ok(message) => {
                        idle.active();
                        let raw = Arc::new(RawMessage::from_borrowed(&message));
                        if let Some(produced_ms) = raw.timestamp_ms {
                            let hop_ms = (crate::event::now_ms() - produced_ms).max(0);
                            metrics::histogram!(telemetry::CONSUMER_DELIVERY_SECONDS, "consumer" => name.to_string())
                                .record(hop_ms as f64 / 1000.0);
                        }
                        if let Some(ready) = in_flight.take(raw) {
                            running.push(start(ready));
                        }
                    }
                    Err(_) if consumer.is_lost() => {}
                    Err(e) => {
                        tracing::warn!(consumer = name, error = %e, "consume error; continuing");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
            // Nothing came for a while and nothing runs: stop fetching until woken (after `recv`:
            // a message ready at the same moment is taken, not dropped by the pause).
            _ = tokio::time::sleep_until(idle.idle_at()), if idle.may_pause() && in_flight.is_empty() => {
                idle.pause(&consumer);
            }
            rang = idle.woken(), if idle.is_paused() => idle.resume(&consumer, rang),
            // Committed by this loop only, never while the broker is away (see `recover`).
            _ = commit_every.tick(), if !finished_offsets.is_empty() && !consumer.needs_recovery() => {
                finished_offsets.commit(&consumer, name, CommitMode::Async);
            }
        }
    }
    // A message running when the stop came may already be past its database commit: it is
    // let finish (for a while) and its offset committed, so the consumer that follows (a
    // reload's rebuild, a restart) does not handle it again. What is still unfinished after
    // that is dropped (a transaction not committed rolls back) and comes again: its offset
    // was never committed.
    let _ = tokio::time::timeout(DRAIN_FOR, async {
        while let Some((raw, finished)) = running.next().await {
            if let (true, (Some(done), _)) = (finished, in_flight.finish(&raw)) {
                finished_offsets.add(&done.topic, done.partition, done.offset);
            }
        }
    })
    .await;
    drop(running);
    // Sent without waiting (closing the consumer flushes it): a synchronous commit has no
    // deadline and would hang a stop that races the group's join or the broker's own stop.
    if !consumer.needs_recovery() {
        finished_offsets.commit(&consumer, name, CommitMode::Async);
    }
}

/// The offsets finished since the last commit, per partition: the last finished offset
/// (every message up to it is done); the commit position is one past it.
#[derive(Default)]
struct FinishedOffsets(std::collections::HashMap<(String, i32), i64>);

impl FinishedOffsets {
    fn add(&mut self, topic: &str, partition: i32, offset: i64) {
        self.0.insert((topic.to_string(), partition), offset);
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn clear(&mut self) {
        self.0.clear();
    }

    /// Commits them. A failed commit is not repeated: the partition's next finished offset
    /// supersedes it, and what is never committed comes again after a restart (handlers
    /// are idempotent).
    fn commit(&mut self, consumer: &Consumer, name: &str, mode: CommitMode) {
        let mut list = rdkafka::TopicPartitionList::new();
        for ((topic, partition), offset) in self.0.drain() {
            if let Err(e) = list.add_partition_offset(&topic, partition, rdkafka::Offset::Offset(offset + 1)) {
                tracing::warn!(consumer = name, topic, error = %e, "cannot list an offset to commit");
            }
        }
        match consumer.inner.commit(&list, mode) {
            Ok(()) => {}
            Err(rdkafka::error::KafkaError::ConsumerCommit(rdkafka::error::RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => tracing::warn!(consumer = name, error = %e, "offset commit failed"),
        }
    }
}

/// One message through chaos, the handler (with retries) and, failing that, its dead-letter
/// topic. Returns the message and whether it finished (false: shutdown came first).
async fn process<F, Fut>(
    mut raw: Arc<RawMessage>,
    handle: &Mutex<F>,
    name: &str,
    policy: &DeliveryPolicy,
    dead_letters: &Publisher,
    shutdown: &CancellationToken,
) -> (Arc<RawMessage>, bool)
where
    F: FnMut(Arc<RawMessage>) -> Fut,
    Fut: Future<Output = Result<(), HandleError>>,
{
    let taken = raw.clone();
    let started = std::time::Instant::now();
    let mut deliveries = if policy.redeliver { 2 } else { 1 };
    let mut fail_first = None;
    if let Some(faults) = &policy.chaos {
        let actions = faults.decide(&raw, 1);
        chaos::delay_for(&faults.chaos, &actions).await;
        for action in actions {
            match action {
                Action::Crash => chaos::crash(&format!("consumer {name}")),
                Action::Duplicate => deliveries += 1,
                Action::Corrupt => raw = Arc::new(corrupted(&raw)),
                Action::Fail(message) => fail_first = Some(message),
                Action::Drop => deliveries = 0,
                Action::Delay { .. } | Action::Status(_) => {}
            }
        }
        if deliveries == 0 {
            metrics::counter!(telemetry::CHAOS_DROPPED, "consumer" => name.to_string()).increment(1);
            tracing::warn!(consumer = name, topic = raw.topic, offset = raw.offset, "chaos: message dropped unhandled");
        }
    }
    // One span per message, named and attributed by OpenTelemetry's messaging conventions;
    // every log line inside it carries the order's trace id.
    let span = tracing::info_span!(
        "process",
        otel.name = format!("{} process", raw.topic),
        otel.kind = "consumer",
        otel.status_code = tracing::field::Empty,
        messaging.system = "kafka",
        messaging.operation.type = "process",
        messaging.destination.name = raw.topic.as_str(),
        messaging.destination.partition.id = raw.partition,
        messaging.kafka.offset = raw.offset,
        messaging.consumer.group.name = policy.group.as_str(),
        messaging.message.id = raw.header("ce_id").unwrap_or_default(),
        trace_id = crate::event::trace_id(raw.header("traceparent").as_deref()).unwrap_or_default(),
    );
    crate::traces::set_parent(&span, raw.header("traceparent").as_deref());
    let mut outcome = Ok(());
    for _ in 0..deliveries {
        let handled = handle_with_retries(handle, &raw, name, policy, shutdown, fail_first.take());
        match tracing::Instrument::instrument(handled, span.clone()).await {
            Some(Ok(())) => {}
            Some(Err(exhausted)) => {
                outcome = Err(exhausted);
                break;
            }
            None => return (taken, false),
        }
    }
    if let Err(exhausted) = outcome {
        span.record("otel.status_code", "ERROR");
        if policy.skip_unusable {
            metrics::counter!(telemetry::MESSAGES_SKIPPED, "topic" => raw.topic.clone(), "kind" => exhausted.error.kind.as_str())
                .increment(1);
            tracing::warn!(consumer = name, topic = raw.topic, offset = raw.offset, error = %exhausted.error, "message skipped");
        } else if !dead_letter(dead_letters, &raw, policy, name, exhausted, shutdown).await {
            return (taken, false);
        }
    }
    metrics::histogram!(telemetry::CONSUMER_HANDLE_SECONDS, "consumer" => name.to_string())
        .record(started.elapsed().as_secs_f64());
    (taken, true)
}

/// `None` when shutdown interrupted the retries.
async fn handle_with_retries<F, Fut>(
    handle: &Mutex<F>,
    raw: &Arc<RawMessage>,
    name: &str,
    policy: &DeliveryPolicy,
    shutdown: &CancellationToken,
    mut injected: Option<String>,
) -> Option<Result<(), Exhausted>>
where
    F: FnMut(Arc<RawMessage>) -> Fut,
    Fut: Future<Output = Result<(), HandleError>>,
{
    let mut attempt = 0u32;
    let mut first_failure_at = None;
    loop {
        attempt += 1;
        if attempt > 1 {
            injected = policy.chaos.as_ref().and_then(|faults| {
                faults
                    .decide(raw, attempt)
                    .into_iter()
                    .find_map(|a| if let Action::Fail(m) = a { Some(m) } else { None })
            });
        }
        let result = match injected.take() {
            // An injected error stands in for the handler failing: nothing of it runs.
            Some(message) => Err(HandleError::new(ErrorKind::HandlerFailed, format!("chaos: {message}"))),
            None => {
                let handled = (handle.lock().unwrap_or_else(|e| e.into_inner()))(raw.clone());
                handled.await
            }
        };
        let error = match result {
            Ok(()) => {
                tracing::debug!(consumer = name, topic = raw.topic, offset = raw.offset, attempt, "message handled");
                return Some(Ok(()));
            }
            Err(error) => error,
        };
        let first = first_failure_at.get_or_insert_with(now_rfc3339).clone();
        let retry = error.kind == ErrorKind::Unavailable
            || (policy.retryable.contains(&error.kind) && attempt < policy.attempts.max(1));
        if !retry {
            return Some(Err(Exhausted { error, attempts: attempt, first_failure_at: first }));
        }
        // An unavailable database is waited out, not counted towards the attempts.
        let delay =
            if error.kind == ErrorKind::Unavailable { policy.delay(attempt.min(8)) } else { policy.delay(attempt) };
        metrics::counter!(telemetry::CONSUMER_RETRIES, "consumer" => name.to_string()).increment(1);
        tracing::warn!(
            consumer = name,
            topic = raw.topic,
            offset = raw.offset,
            error = %error,
            attempt,
            retry_in_ms = delay.as_millis() as u64,
            "handling failed; will retry"
        );
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// Sends the message to its dead-letter topic and waits for the acknowledgement, trying
/// until it succeeds; false when shutdown came first (the offset then stays unstored).
async fn dead_letter(
    publisher: &Publisher,
    raw: &RawMessage,
    policy: &DeliveryPolicy,
    name: &str,
    exhausted: Exhausted,
    shutdown: &CancellationToken,
) -> bool {
    let topic = policy.dead_letter_topic.clone().unwrap_or_else(|| dead_letter::topic_for(&raw.topic));
    let mut headers: Vec<(String, Vec<u8>)> =
        raw.headers.iter().filter(|(k, _)| !k.starts_with("dlq_") || k == dead_letter::REPLAY_COUNT).cloned().collect();
    let added = [
        (dead_letter::ORIGINAL_TOPIC, raw.topic.clone()),
        (dead_letter::ORIGINAL_PARTITION, raw.partition.to_string()),
        (dead_letter::ORIGINAL_OFFSET, raw.offset.to_string()),
        (dead_letter::ORIGINAL_TIMESTAMP, raw.timestamp_ms.map(|t| t.to_string()).unwrap_or_default()),
        (dead_letter::CONSUMER_GROUP, policy.group.clone()),
        (dead_letter::ERROR_KIND, exhausted.error.kind.as_str().to_string()),
        (dead_letter::ERROR_MESSAGE, exhausted.error.message.clone()),
        (dead_letter::ATTEMPTS, exhausted.attempts.to_string()),
        (dead_letter::FIRST_FAILURE_AT, exhausted.first_failure_at.clone()),
        (dead_letter::LAST_FAILURE_AT, now_rfc3339()),
    ];
    headers.extend(added.into_iter().map(|(k, v)| (k.to_string(), v.into_bytes())));
    tracing::warn!(
        consumer = name,
        topic = raw.topic,
        offset = raw.offset,
        dead_letter_topic = topic,
        error = %exhausted.error,
        attempts = exhausted.attempts,
        "message dead-lettered; moving on"
    );
    let mut delay = Duration::from_millis(100);
    loop {
        match publisher.publish_raw(&topic, raw.key.as_deref(), raw.payload.as_deref(), &headers).await {
            Ok(()) => {
                metrics::counter!(
                    telemetry::DEAD_LETTERS,
                    "topic" => raw.topic.clone(),
                    "kind" => exhausted.error.kind.as_str()
                )
                .increment(1);
                return true;
            }
            Err(e) => {
                tracing::error!(consumer = name, dead_letter_topic = topic, error = %e, "cannot dead-letter; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return false,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// The record with its payload replaced by bytes that are not JSON: a poison message.
fn corrupted(raw: &RawMessage) -> RawMessage {
    let mut copy = raw.clone();
    copy.payload = Some(super::publish::CORRUPTED_PAYLOAD.to_vec());
    copy
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(id: &str, key: &str) -> RawMessage {
        RawMessage {
            topic: "payment.requested".into(),
            partition: 0,
            offset: 7,
            timestamp_ms: None,
            key: Some(key.as_bytes().to_vec()),
            payload: Some(br#"{"orderId":"o-1"}"#.to_vec()),
            headers: vec![("ce_id".into(), id.as_bytes().to_vec())],
        }
    }

    #[test]
    fn a_nul_byte_in_the_id_or_the_key_makes_a_record_undecodable() {
        let event = raw("id-1", "o-1").decode().unwrap();
        assert_eq!((event.id.as_str(), event.key.as_str()), ("id-1", "o-1"));
        for (id, key) in [("id\0-1", "o-1"), ("id-1", "o\0-1")] {
            let reason = raw(id, key).decode().unwrap_err();
            assert!(reason.contains("NUL"), "{reason}");
        }
    }
}
