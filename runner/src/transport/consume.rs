//! The consume loop shared by every consumer: decode, handle, and only then store the offset.

use std::future::Future;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use tokio_util::sync::CancellationToken;

use crate::event::Event;

/// A record taken from a topic, decoded into an [`Event`].
#[derive(Debug, Clone)]
pub struct Incoming {
    pub event: Event,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Why handling a message did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Worth trying again (database or broker unavailable, write conflict).
    #[error("{0}")]
    Transient(String),
    /// Trying again would fail the same way (undecodable or invalid message).
    #[error("{0}")]
    Permanent(String),
}

/// Runs until `shutdown`: each message is handled (retrying transient failures) before its
/// offset is stored; stored offsets are committed in the background and once more on exit.
/// `redeliver` hands each message to `handle` twice, as a broker redelivery would.
pub async fn consume<F, Fut>(
    consumer: StreamConsumer,
    name: &str,
    shutdown: CancellationToken,
    redeliver: bool,
    mut handle: F,
) where
    F: FnMut(Incoming) -> Fut,
    Fut: Future<Output = Result<(), HandleError>>,
{
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => break,
            message = consumer.recv() => message,
        };
        let message = match message {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(consumer = name, error = %e, "consume error; continuing");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let (topic, partition, offset) = (message.topic().to_string(), message.partition(), message.offset());
        match decode(&message) {
            Err(reason) => {
                tracing::error!(consumer = name, topic, partition, offset, reason, "undecodable message skipped");
            }
            Ok(event) => {
                let incoming = Incoming { event, topic: topic.clone(), partition, offset };
                let deliveries = if redeliver { 2 } else { 1 };
                for _ in 0..deliveries {
                    if !handle_with_retries(&mut handle, &incoming, name, &shutdown).await {
                        // Shutting down mid-retry: leave the offset unstored so the message comes back.
                        commit(&consumer, name);
                        return;
                    }
                }
            }
        }
        if let Err(e) = consumer.store_offset(&topic, partition, offset) {
            tracing::warn!(consumer = name, error = %e, "cannot store offset");
        }
    }
    commit(&consumer, name);
}

/// Returns false when shutdown interrupted the retries.
async fn handle_with_retries<F, Fut>(
    handle: &mut F,
    incoming: &Incoming,
    name: &str,
    shutdown: &CancellationToken,
) -> bool
where
    F: FnMut(Incoming) -> Fut,
    Fut: Future<Output = Result<(), HandleError>>,
{
    let mut delay = Duration::from_millis(50);
    loop {
        match handle(incoming.clone()).await {
            Ok(()) => return true,
            Err(HandleError::Permanent(reason)) => {
                tracing::error!(
                    consumer = name,
                    topic = incoming.topic,
                    offset = incoming.offset,
                    id = incoming.event.id,
                    reason,
                    "message cannot be handled; skipped"
                );
                return true;
            }
            Err(HandleError::Transient(reason)) => {
                tracing::warn!(
                    consumer = name,
                    topic = incoming.topic,
                    offset = incoming.offset,
                    reason,
                    retry_in_ms = delay.as_millis() as u64,
                    "handling failed; will retry"
                );
                tokio::select! {
                    _ = shutdown.cancelled() => return false,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn commit(consumer: &StreamConsumer, name: &str) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => {}
        Err(rdkafka::error::KafkaError::ConsumerCommit(rdkafka::error::RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => tracing::warn!(consumer = name, error = %e, "final offset commit failed"),
    }
}

fn decode<M: Message>(message: &M) -> Result<Event, String> {
    let header = |name: &str| -> Option<String> {
        let headers = message.headers()?;
        headers.iter().find(|h| h.key == name).and_then(|h| h.value).map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let id = header("ce_id").ok_or("missing header ce_id")?;
    let event_type = header("ce_type").unwrap_or_else(|| message.topic().to_string());
    let source = header("ce_source").unwrap_or_default();
    let time = header("ce_time").unwrap_or_default();
    let traceparent = header("traceparent");
    let key = message.key().map(|k| String::from_utf8_lossy(k).into_owned()).ok_or("missing key")?;
    let payload = message.payload().ok_or("empty payload")?;
    let payload = serde_json::from_slice(payload).map_err(|e| format!("payload is not JSON: {e}"))?;
    Ok(Event { id, event_type, key, source, time, traceparent, payload })
}
