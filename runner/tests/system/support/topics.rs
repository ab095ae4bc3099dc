//! Topics read back with an independent rdkafka client: every record from the beginning up to
//! the end as of the read, and the per-key order checks of the relay tests.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One record read back from a topic: key, payload and headers.
#[derive(Debug, Clone)]
pub struct TopicRecord {
    pub key: Option<String>,
    pub payload: Option<Vec<u8>>,
    pub headers: HashMap<String, String>,
}

/// Reads a topic from the beginning up to its end as of now, with a throw-away client
/// (nothing for a topic that does not exist).
pub async fn read_topic(bootstrap: &str, topic: &str) -> Vec<TopicRecord> {
    let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || read_topic_blocking(&bootstrap, &topic)).await.unwrap()
}

fn read_topic_blocking(bootstrap: &str, topic: &str) -> Vec<TopicRecord> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("test-reader-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
    let partitions = metadata.topics().first().map_or(0, |t| t.partitions().len()) as i32;
    if partitions == 0 {
        return Vec::new();
    }
    let mut assignment = rdkafka::TopicPartitionList::new();
    let mut total = 0;
    for p in 0..partitions {
        let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10)).unwrap();
        total += high;
        assignment.add_partition_offset(topic, p, rdkafka::Offset::Beginning).unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (records.len() as i64) < total {
        assert!(Instant::now() < deadline, "read {} of {total} records of {topic}", records.len());
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(500)) else { continue };
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        records.push(TopicRecord {
            key: message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            payload: message.payload().map(<[u8]>::to_vec),
            headers,
        });
    }
    records
}

/// A topic of test events whose payload is `{"n": …}`: key, ce_id and n of every record.
pub async fn read_numbered(bootstrap: &str, topic: &str) -> Vec<(String, String, i64)> {
    read_topic(bootstrap, topic)
        .await
        .into_iter()
        .map(|r| {
            let payload: Value = serde_json::from_slice(r.payload.as_deref().unwrap_or_default()).unwrap();
            (r.key.unwrap_or_default(), r.headers["ce_id"].clone(), payload["n"].as_i64().unwrap())
        })
        .collect()
}

/// Checks that per key the first copy of each event arrived in the order written (`n` = 0, 1,
/// 2, …); returns how many distinct events arrived (the rest are later copies).
pub fn assert_first_copies_in_order(records: &[(String, String, i64)]) -> usize {
    let mut seen = HashSet::new();
    let mut next_n: HashMap<&str, i64> = HashMap::new();
    for (key, id, n) in records {
        if seen.insert(id.as_str()) {
            let due = next_n.entry(key.as_str()).or_insert(0);
            assert_eq!(*n, *due, "{key}: event {n} arrived first where {due} was due");
            *due += 1;
        }
    }
    seen.len()
}
