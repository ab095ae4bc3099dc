//! Keyed concurrency's bookkeeping, pure: which taken messages may run now (one per key at a
//! time, in offset order), which wait behind a message of their key, and up to which offset
//! each partition may be committed (below its lowest unfinished message).
//!
//! Messages of different keys run side by side; messages of one key (an order id) keep their
//! order even across topics, since one consumer handles an order's replies from several
//! topics and each changes the same saga. A message without a key waits for the previous
//! keyless message of its partition. Because an offset is committed only below the lowest
//! unfinished one, a crash redelivers only what was in flight (and what waited behind it).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use super::RawMessage;

/// What orders two messages: their key, or (keyless) their partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum OrderingKey {
    Key(Vec<u8>),
    KeylessIn(String, i32),
}

impl OrderingKey {
    fn of(message: &RawMessage) -> Self {
        match &message.key {
            Some(key) => OrderingKey::Key(key.clone()),
            None => OrderingKey::KeylessIn(message.topic.clone(), message.partition),
        }
    }
}

/// One partition's unfinished offsets and the highest finished one.
#[derive(Debug, Default)]
struct PartitionProgress {
    unfinished: BTreeSet<i64>,
    highest_finished: Option<i64>,
    /// The first offset taken: nothing below it is this consumer's to store.
    first_taken: Option<i64>,
    /// The last offset handed out to be stored (its commit position is one past it).
    stored: Option<i64>,
}

/// Messages taken from the broker and not yet finished, at most `limit` of them.
#[derive(Debug)]
pub struct InFlight {
    limit: usize,
    taken: usize,
    /// Per key with a message running: the messages of that key waiting behind it.
    waiting: HashMap<OrderingKey, VecDeque<Arc<RawMessage>>>,
    partitions: HashMap<(String, i32), PartitionProgress>,
}

/// An offset to store: every message of the partition up to it is finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl InFlight {
    /// Room for `limit` messages (at least one).
    pub fn new(limit: usize) -> Self {
        InFlight { limit: limit.max(1), taken: 0, waiting: HashMap::new(), partitions: HashMap::new() }
    }

    /// No room for another message: stop taking any until one finishes.
    pub fn is_full(&self) -> bool {
        self.taken >= self.limit
    }

    pub fn is_empty(&self) -> bool {
        self.taken == 0
    }

    /// Takes a message in: returned when it may run now, kept (and handed back by
    /// [`Self::finish`] later) when a message of its key is running.
    pub fn take(&mut self, message: Arc<RawMessage>) -> Option<Arc<RawMessage>> {
        self.taken += 1;
        let progress = self.partitions.entry((message.topic.clone(), message.partition)).or_default();
        progress.unfinished.insert(message.offset);
        progress.first_taken = progress.first_taken.min(Some(message.offset)).or(Some(message.offset));
        match self.waiting.get_mut(&OrderingKey::of(&message)) {
            Some(queue) => {
                queue.push_back(message);
                None
            }
            None => {
                self.waiting.insert(OrderingKey::of(&message), VecDeque::new());
                Some(message)
            }
        }
    }

    /// Marks a running message finished: the offset now safe to store (when the partition's
    /// committable position moved) and the next message of its key, which may run now.
    pub fn finish(&mut self, message: &RawMessage) -> (Option<Finished>, Option<Arc<RawMessage>>) {
        self.taken = self.taken.saturating_sub(1);
        let key = OrderingKey::of(message);
        let next = match self.waiting.get_mut(&key) {
            Some(queue) => match queue.pop_front() {
                Some(next) => Some(next),
                None => {
                    self.waiting.remove(&key);
                    None
                }
            },
            None => None,
        };
        let partition = (message.topic.clone(), message.partition);
        let finished = self.partitions.get_mut(&partition).and_then(|progress| {
            progress.unfinished.remove(&message.offset);
            progress.highest_finished = progress.highest_finished.max(Some(message.offset));
            // Everything below the lowest unfinished offset is done; with none unfinished,
            // everything up to the highest finished one.
            let safe = match progress.unfinished.first() {
                Some(lowest) => lowest - 1,
                None => progress.highest_finished?,
            };
            if progress.stored.is_some_and(|stored| stored >= safe)
                || progress.first_taken.is_none_or(|first| safe < first)
            {
                return None;
            }
            progress.stored = Some(safe);
            Some(Finished { topic: partition.0.clone(), partition: partition.1, offset: safe })
        });
        (finished, next)
    }

    /// Forgets every partition's progress (after a rewind: offsets start again).
    pub fn forget_progress(&mut self) {
        self.partitions.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(topic: &str, partition: i32, offset: i64, key: Option<&str>) -> Arc<RawMessage> {
        Arc::new(RawMessage {
            topic: topic.to_string(),
            partition,
            offset,
            timestamp_ms: None,
            key: key.map(|k| k.as_bytes().to_vec()),
            payload: None,
            headers: Vec::new(),
        })
    }

    #[test]
    fn one_key_runs_in_order_and_other_keys_run_beside_it() {
        let mut in_flight = InFlight::new(10);
        let a0 = message("t", 0, 0, Some("a"));
        let b1 = message("t", 0, 1, Some("b"));
        let a2 = message("t", 0, 2, Some("a"));
        // The reply of another topic for the same order waits too.
        let a_other = message("u", 3, 7, Some("a"));
        assert!(in_flight.take(a0.clone()).is_some());
        assert!(in_flight.take(b1.clone()).is_some());
        assert!(in_flight.take(a2.clone()).is_none(), "a2 waits for a0");
        assert!(in_flight.take(a_other.clone()).is_none(), "u/7 of key a waits for a0 and a2");
        // b1 done first: offset 0 still runs, nothing is committable.
        let (stored, next) = in_flight.finish(&b1);
        assert_eq!((stored, next.is_none()), (None, true));
        let (stored, next) = in_flight.finish(&a0);
        assert_eq!(stored, Some(Finished { topic: "t".into(), partition: 0, offset: 1 }), "0 and 1 done; 2 not");
        assert_eq!(next.as_deref().map(|m| m.offset), Some(2));
        let (stored, next) = in_flight.finish(&a2);
        assert_eq!(stored.map(|s| s.offset), Some(2));
        assert_eq!(next.as_deref().map(|m| (m.topic.as_str(), m.offset)), Some(("u", 7)));
        let (stored, next) = in_flight.finish(&a_other);
        assert_eq!(stored, Some(Finished { topic: "u".into(), partition: 3, offset: 7 }));
        assert!(next.is_none());
        assert!(in_flight.is_empty());
    }

    #[test]
    fn keyless_messages_keep_their_partition_order() {
        let mut in_flight = InFlight::new(10);
        assert!(in_flight.take(message("t", 0, 0, None)).is_some());
        assert!(in_flight.take(message("t", 0, 1, None)).is_none());
        assert!(in_flight.take(message("t", 1, 0, None)).is_some(), "another partition is another order");
    }

    #[test]
    fn full_at_the_limit_counting_the_waiting() {
        let mut in_flight = InFlight::new(2);
        in_flight.take(message("t", 0, 0, Some("a")));
        assert!(!in_flight.is_full());
        in_flight.take(message("t", 0, 1, Some("a")));
        assert!(in_flight.is_full(), "a waiting message takes room too: memory stays bounded");
        let zero = InFlight::new(0);
        assert_eq!(zero.limit, 1, "a limit of zero would never take anything");
    }

    #[test]
    fn nothing_is_stored_twice_or_backwards() {
        let mut in_flight = InFlight::new(10);
        let m5 = message("t", 0, 5, Some("a"));
        let m6 = message("t", 0, 6, Some("b"));
        in_flight.take(m5.clone());
        in_flight.take(m6.clone());
        assert_eq!(in_flight.finish(&m6).0, None, "5 unfinished: 6 cannot be committed");
        assert_eq!(in_flight.finish(&m5).0.map(|f| f.offset), Some(6));
        in_flight.forget_progress();
        let again = message("t", 0, 5, Some("a"));
        in_flight.take(again.clone());
        assert_eq!(in_flight.finish(&again).0.map(|f| f.offset), Some(5), "after a rewind, progress starts again");
    }
}
