//! The simulated broker: topics of a few partitions in memory, a record's partition chosen
//! by its key (so one order's records keep their order), and each group's committed offsets.
//! Nothing here is lost by a crash of a service: only what a service holds in memory is.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::event::Event;

/// Partitions of every simulated topic: enough that orders overtake each other.
pub const PARTITIONS: usize = 3;

/// What a record carries.
#[derive(Debug, Clone)]
pub enum Body {
    /// An event published by the relay from an outbox row.
    Event(Event),
    /// A message its consumer gave up on, with the topic it came from and why.
    DeadLetter { original_topic: String, error: String },
}

/// One record on a topic.
#[derive(Debug)]
pub struct Record {
    /// The broker's own count of records, for the trace (`#12`).
    pub number: u64,
    /// The order id.
    pub key: String,
    /// How many records of this key came to this topic before it: with the topic and the
    /// key, a name for the record that does not depend on when it came.
    pub ordinal: u32,
    pub body: Body,
}

impl Record {
    /// The event type, or `dead letter`.
    pub fn kind(&self) -> &str {
        match &self.body {
            Body::Event(event) => &event.event_type,
            Body::DeadLetter { .. } => "dead letter",
        }
    }
}

/// Where a record sits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub topic: String,
    pub partition: usize,
    pub offset: usize,
}

#[derive(Default)]
pub struct Broker {
    topics: BTreeMap<String, Vec<Vec<Arc<Record>>>>,
    /// Offsets committed by each group, per topic and partition.
    committed: BTreeMap<(String, String, usize), usize>,
    records: u64,
    per_key: BTreeMap<(String, String), u32>,
}

impl Broker {
    /// The partition of `key`: FNV-1a, stable across runs and machines.
    pub fn partition_of(key: &str) -> usize {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in key.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        (hash % PARTITIONS as u64) as usize
    }

    /// Appends a record; returns where it went and its number.
    pub fn append(&mut self, topic: &str, key: &str, body: Body) -> (Position, u64) {
        self.records += 1;
        let number = self.records;
        let partition = Self::partition_of(key);
        let log = &mut self.topics.entry(topic.to_string()).or_insert_with(|| vec![Vec::new(); PARTITIONS])[partition];
        let seen = self.per_key.entry((topic.to_string(), key.to_string())).or_insert(0);
        let ordinal = *seen;
        *seen += 1;
        log.push(Arc::new(Record { number, key: key.to_string(), ordinal, body }));
        (Position { topic: topic.to_string(), partition, offset: log.len() - 1 }, number)
    }

    pub fn get(&self, at: &Position) -> Option<Arc<Record>> {
        self.topics.get(&at.topic)?.get(at.partition)?.get(at.offset).cloned()
    }

    /// The next offset to be written on a partition.
    pub fn end(&self, topic: &str, partition: usize) -> usize {
        self.topics.get(topic).and_then(|t| t.get(partition)).map_or(0, Vec::len)
    }

    pub fn committed(&self, group: &str, topic: &str, partition: usize) -> usize {
        self.committed.get(&(group.to_string(), topic.to_string(), partition)).copied().unwrap_or(0)
    }

    pub fn commit(&mut self, group: &str, topic: &str, partition: usize, offset: usize) {
        self.committed.insert((group.to_string(), topic.to_string(), partition), offset);
    }

    /// Every record of every topic, in topic and partition order.
    pub fn all(&self) -> impl Iterator<Item = (&str, &Arc<Record>)> {
        self.topics.iter().flat_map(|(topic, parts)| parts.iter().flatten().map(move |r| (topic.as_str(), r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_stays_on_one_partition_in_order() {
        let mut broker = Broker::default();
        let body = || Body::DeadLetter { original_topic: "t".into(), error: "e".into() };
        let (a, first) = broker.append("t", "order-1", body());
        let (b, second) = broker.append("t", "order-1", body());
        assert_eq!((a.partition, a.offset + 1), (b.partition, b.offset));
        assert_eq!((first, second), (1, 2));
        assert_eq!(broker.end("t", a.partition), 2);
        assert_eq!(broker.get(&b).unwrap().number, 2);
        assert!(broker.get(&Position { topic: "t".into(), partition: 99, offset: 0 }).is_none());
        broker.commit("g", "t", a.partition, 1);
        assert_eq!(broker.committed("g", "t", a.partition), 1);
        assert_eq!(broker.committed("other", "t", a.partition), 0);
    }
}
