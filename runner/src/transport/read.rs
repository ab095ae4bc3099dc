//! Reading a topic once, from its first record up to the end it had when the read began
//! (`runner relay reconcile`). Partitions are assigned directly: no group is joined and no
//! offset is committed, so running it leaves no trace on the broker.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::{Broker, TransportError};

/// The reading client's context: reaching the end of a partition is what the reader waits
/// for, reported by librdkafka as an error; it is logged at debug level, not as an error.
struct Reading;

impl rdkafka::ClientContext for Reading {
    fn error(&self, error: KafkaError, reason: &str) {
        let end = matches!(error, KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF));
        if end {
            tracing::debug!(%error, "end of partition");
        } else {
            tracing::warn!(%error, %reason, "broker client error while reading a topic");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for Reading {}

/// How long the broker may stay silent (metadata, watermarks, or no record while some are due).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// One record as read back: where it is, its key and its `ce_id` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub id: Option<String>,
}

/// What a topic held when it was read: records in offset order within each partition.
#[derive(Debug, Clone, Default)]
pub struct TopicContents {
    /// False when the broker does not know the topic (then there are no records either).
    pub exists: bool,
    pub partitions: usize,
    pub records: Vec<TopicRecord>,
}

impl Broker {
    /// Reads every partition of `topic` from the beginning up to the high watermarks taken
    /// when the read starts; records produced meanwhile are left out.
    pub async fn read_topic(&self, topic: &str) -> Result<TopicContents, TransportError> {
        let config = self.client_config();
        let (bootstrap, name) = (self.bootstrap.clone(), topic.to_string());
        tokio::task::spawn_blocking(move || read_blocking(config, &bootstrap, &name))
            .await
            .map_err(|e| TransportError::Broker(format!("reading topic `{topic}` failed: {e}")))?
    }
}

fn read_blocking(mut config: ClientConfig, bootstrap: &str, topic: &str) -> Result<TopicContents, TransportError> {
    let no_answer = |what: &str, e: &dyn std::fmt::Display| {
        TransportError::Broker(format!(
            "the broker at {bootstrap} did not answer within {}s ({what} of topic `{topic}`: {e}); \
             check the broker address (--brokers) and that the broker is up",
            ANSWER_TIMEOUT.as_secs()
        ))
    };
    // A group id is needed to fetch assigned partitions; with assign() the group is never
    // joined, and nothing is committed.
    let consumer: BaseConsumer<Reading> = config
        .set("group.id", format!("chaos-symphony-read-{}", uuid::Uuid::new_v4().simple()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("allow.auto.create.topics", "false")
        .set("fetch.wait.max.ms", "100")
        .create_with_context(Reading)?;
    let metadata = consumer.fetch_metadata(Some(topic), ANSWER_TIMEOUT).map_err(|e| no_answer("metadata", &e))?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Ok(TopicContents::default());
    };
    match found.error().map(RDKafkaErrorCode::from) {
        None => {}
        Some(RDKafkaErrorCode::UnknownTopicOrPartition) => return Ok(TopicContents::default()),
        Some(code) => return Err(TransportError::Broker(format!("cannot read topic `{topic}`: {code}"))),
    }
    let partitions: Vec<i32> = found.partitions().iter().map(|p| p.id()).collect();

    // Where each partition ends now; only partitions with records are read.
    let mut ends: HashMap<i32, i64> = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for &partition in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, ANSWER_TIMEOUT)
            .map_err(|e| no_answer(&format!("watermarks of partition {partition}"), &e))?;
        if high > low {
            ends.insert(partition, high);
            assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
        }
    }
    let mut contents = TopicContents { exists: true, partitions: partitions.len(), records: Vec::new() };
    if ends.is_empty() {
        return Ok(contents);
    }
    consumer.assign(&assignment)?;
    let mut last_answer = Instant::now();
    while !ends.is_empty() {
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(message)) => {
                last_answer = Instant::now();
                let (partition, offset) = (message.partition(), message.offset());
                let Some(&end) = ends.get(&partition) else { continue };
                if offset < end {
                    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
                    let id = message
                        .headers()
                        .and_then(|headers| headers.iter().find(|h| h.key == "ce_id").and_then(|h| h.value.map(text)));
                    contents.records.push(TopicRecord { partition, offset, key: message.key().map(text), id });
                }
                if offset + 1 >= end {
                    ends.remove(&partition);
                }
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                // The end of the log: everything up to the captured end was delivered.
                last_answer = Instant::now();
                ends.remove(&partition);
            }
            Some(Err(e)) => tracing::debug!(topic, error = %e, "while reading the topic; continuing"),
        }
        if last_answer.elapsed() > ANSWER_TIMEOUT {
            let waiting: Vec<String> = ends.keys().map(i32::to_string).collect();
            return Err(no_answer(
                &format!("records of partition(s) {}", waiting.join(", ")),
                &"no record arrived although some are due",
            ));
        }
    }
    contents.records.sort_by_key(|r| (r.partition, r.offset));
    Ok(contents)
}
