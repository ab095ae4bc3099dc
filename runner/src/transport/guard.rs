//! Consumers that survive losing the broker: a [`Consumer`] stops fetching when every broker
//! connection is down, and fetches again only once the broker answers and every topic it
//! names exists (recreated when the broker lost them), from the group's committed offsets.
//!
//! Why pause: a broker that comes back without its topics (tansu on memory storage, or any
//! broker that lost its disk) answers a fetch for a topic it no longer knows with a topic id
//! of zeros and a leader hint, and librdkafka 2.12 then looks the topic up by a null name in
//! its metadata cache and crashes the process. A paused partition is never fetched. The
//! consume loop learns of the loss late when it is busy; [`super::watch`] pauses the consumers
//! of a broker named by address the moment it refuses connections.
//!
//! Also here: a consumer's `group.instance.id` (static membership) when `RUNNER_INSTANCE` names
//! this replica. On a broker that implements it (Apache Kafka 2.3+), a restarted process takes
//! its partitions back at once instead of after the dead member's session timeout. Neither
//! test broker does (librdkafka's mock cluster and tansu 0.6 treat the id as a new member),
//! and a static member sends no LeaveGroup when it stops, so on them it would only delay
//! every graceful hand-over by the session timeout: it is off unless asked for.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Broker;
use crate::telemetry;

/// What librdkafka tells a consumer about its connections, kept for the consume loop.
#[derive(Default)]
pub struct Guard {
    /// Every broker connection is down: the assignment is (to be) paused.
    lost: AtomicBool,
    /// The broker's addresses refused connections (see [`super::watch`]): the assignment was
    /// paused and must be recovered, whatever the broker looks like by then.
    refused: AtomicBool,
    /// How many losses the probe noticed: a recovery that saw a new one pauses again.
    losses: AtomicU64,
    changed: Notify,
}

impl Guard {
    /// Takes note of an error librdkafka reported, as an event or through the context.
    fn note(&self, error: &KafkaError) {
        match error {
            KafkaError::MessageConsumptionFatal(_) => tracing::error!(
                error = %error,
                "fatal consumer error; if another process uses this group.instance.id, give each replica its own RUNNER_INSTANCE"
            ),
            _ if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) => {
                if !self.lost.swap(true, Ordering::SeqCst) {
                    tracing::warn!("every broker connection is down; consumption paused until the broker is back");
                }
                self.changed.notify_one();
            }
            _ => {}
        }
    }

    fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// The probe found every bootstrap address refusing connections (it pauses the
    /// assignment itself).
    pub(super) fn lost_by_probe(&self) {
        self.losses.fetch_add(1, Ordering::SeqCst);
        self.refused.store(true, Ordering::SeqCst);
        self.lost.store(true, Ordering::SeqCst);
        self.changed.notify_one();
    }
}

impl ClientContext for Guard {
    fn error(&self, error: KafkaError, reason: &str) {
        self.note(&error);
        tracing::debug!(error = %error, %reason, "broker client error");
    }
}

impl ConsumerContext for Guard {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // A group rejoined while the broker is away (it forgot the group) must not fetch yet.
        if let Rebalance::Assign(partitions) = rebalance {
            if self.is_lost() {
                let _ = consumer.pause(partitions);
            }
        }
    }
}

/// librdkafka's stream consumer, closed on a thread of its own when its last handle goes.
///
/// Closing leaves the group, and librdkafka's close serves the rebalance events still queued:
/// an assignment that arrives while the group is still joining is applied with no deadline
/// and can wait forever (seen in tests stopped a second after start). Closed off the async
/// runtime, such a close never blocks a Tokio worker or the runtime's own shutdown; at worst
/// it holds one parked thread.
pub(crate) struct ConsumerClient(Option<StreamConsumer<Guard>>);

impl ConsumerClient {
    pub(super) fn new(consumer: StreamConsumer<Guard>) -> Self {
        ConsumerClient(Some(consumer))
    }
}

impl std::ops::Deref for ConsumerClient {
    type Target = StreamConsumer<Guard>;

    fn deref(&self) -> &Self::Target {
        // Taken only by `drop`.
        self.0.as_ref().expect("a consumer client is present until dropped")
    }
}

impl Drop for ConsumerClient {
    fn drop(&mut self) {
        if let Some(consumer) = self.0.take() {
            // When no thread can be started, the closure (and the consumer) is dropped here.
            let _ = std::thread::Builder::new().name("consumer-close".into()).spawn(move || drop(consumer));
        }
    }
}

/// A consumer of the transport: librdkafka's stream consumer with a [`Guard`], the topics it
/// needs, and its `group.instance.id` slot.
pub struct Consumer {
    pub(super) inner: Arc<ConsumerClient>,
    broker: Broker,
    /// Topics to recreate when the broker lost them (regex subscriptions are not).
    topics: Vec<String>,
    /// What it subscribed to: topics, and patterns starting with `^`.
    subscribed: Vec<String>,
    /// The group whose committed offsets it goes back to; none for a follower, assigned
    /// directly, which starts again from the first record.
    group: Option<String>,
    compacted: bool,
    _slot: Option<InstanceSlot>,
}

impl Consumer {
    pub(super) fn new(
        inner: Arc<ConsumerClient>,
        broker: Broker,
        group: &str,
        topics: Vec<String>,
        slot: Option<InstanceSlot>,
    ) -> Self {
        let subscribed = topics.clone();
        let topics = topics.into_iter().filter(|t| !t.starts_with('^')).collect();
        let group = Some(group.to_string());
        Consumer { inner, broker, topics, subscribed, group, compacted: false, _slot: slot }
    }

    /// A follower of a compacted topic, assigned from its first record.
    pub(super) fn follower(inner: Arc<ConsumerClient>, broker: Broker, topic: &str) -> Self {
        let (topics, subscribed) = (vec![topic.to_string()], vec![topic.to_string()]);
        Consumer { inner, broker, topics, subscribed, group: None, compacted: true, _slot: None }
    }

    /// Its idleness: pausing when idle is on for the embedded broker.
    pub(super) fn idleness(&self) -> super::idle::Idleness {
        super::idle::Idleness::new(self.broker.is_embedded(), &self.subscribed)
    }

    /// The next message, or the error librdkafka reported instead (a lost broker is noted:
    /// see [`Self::trouble`]).
    pub async fn recv(&self) -> KafkaResult<BorrowedMessage<'_>> {
        let result = self.inner.recv().await;
        if let Err(error) = &result {
            self.inner.context().note(error);
        }
        result
    }

    /// Whether the broker is gone and the consumer must [`Self::recover`].
    pub fn is_lost(&self) -> bool {
        self.inner.context().is_lost()
    }

    /// Whether the broker was found gone and the consumer has not recovered yet: nothing
    /// is committed meanwhile.
    pub fn needs_recovery(&self) -> bool {
        let guard = self.inner.context();
        guard.refused.load(Ordering::SeqCst) || guard.is_lost()
    }

    /// Resolves when the consumer must stop and recover (the broker is gone) — never while
    /// all is well.
    pub async fn trouble(&self) {
        let guard = self.inner.context();
        loop {
            let notified = guard.changed.notified();
            if guard.refused.load(Ordering::SeqCst) {
                return;
            }
            if guard.is_lost() {
                // librdkafka keeps reporting "all brokers down" for a moment after they are
                // back: if the broker answers and has every topic this consumer reads, that
                // report is stale and there is nothing to recover (recovering again and again
                // kept the control follower from ever catching up after an outage).
                if self.broker_intact().await {
                    guard.lost.store(false, Ordering::SeqCst);
                    continue;
                }
                return;
            }
            notified.await;
        }
    }

    /// Whether the broker answers and still has every topic this consumer names.
    async fn broker_intact(&self) -> bool {
        if !self.broker.ping(Duration::from_secs(1)).await {
            return false;
        }
        match self.broker.topic_names().await {
            Ok(existing) => self.topics.iter().all(|t| existing.contains(t)),
            Err(_) => false,
        }
    }

    /// Pauses every assigned partition, waits until the broker answers and every named topic
    /// exists (creating the missing ones), then goes back to the committed offsets (the first
    /// record when none: the broker lost them) and fetches again. Messages handled but not
    /// yet committed come again; handlers are idempotent. False when `shutdown` came first.
    pub async fn recover(&self, name: &str, shutdown: &CancellationToken) -> bool {
        let guard = self.inner.context();
        metrics::counter!(telemetry::BROKER_LOSSES, "consumer" => name.to_string()).increment(1);
        loop {
            if let Ok(assignment) = self.inner.assignment() {
                let _ = self.inner.pause(&assignment);
            }
            let mut delay = Duration::from_millis(200);
            let (assignment, committed, losses) = loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return false,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(2));
                let losses = guard.losses.load(Ordering::SeqCst);
                match self.broker_ready().await {
                    Ok((assignment, committed)) => break (assignment, committed, losses),
                    Err(e) => tracing::info!(consumer = name, error = %e, "broker not back yet; still paused"),
                }
            };
            guard.refused.store(false, Ordering::SeqCst);
            guard.lost.store(false, Ordering::SeqCst);
            for element in assignment.elements() {
                let offset = match &committed {
                    Some(committed) => committed
                        .find_partition(element.topic(), element.partition())
                        .map(|e| e.offset())
                        .filter(|o| matches!(o, Offset::Offset(_)))
                        .map(|o| self.unless_past_the_end(name, element.topic(), element.partition(), o))
                        .unwrap_or(Offset::Beginning),
                    None => Offset::Beginning,
                };
                // Seeking a paused partition only moves its position.
                if let Err(e) = self.inner.seek(element.topic(), element.partition(), offset, Duration::from_secs(5)) {
                    tracing::warn!(consumer = name, topic = element.topic(), error = %e, "cannot rewind after the broker came back");
                }
            }
            let _ = self.inner.resume(&assignment);
            // The broker went away again while this recovery looked at it: start over.
            if guard.losses.load(Ordering::SeqCst) == losses {
                break;
            }
        }
        tracing::info!(consumer = name, "broker is back; consuming again");
        true
    }
}

impl Consumer {
    /// `committed`, or the first record when it lies past the partition's end: a broker that
    /// lost its state may have been sent this group's offsets of before the loss (a commit
    /// racing its return), and starting there would skip every record of the new topic.
    fn unless_past_the_end(&self, name: &str, topic: &str, partition: i32, committed: Offset) -> Offset {
        let Offset::Offset(at) = committed else { return committed };
        match self.inner.fetch_watermarks(topic, partition, Duration::from_secs(5)) {
            Ok((_, end)) if at > end => {
                tracing::warn!(
                    consumer = name,
                    topic,
                    partition,
                    committed = at,
                    end,
                    "committed offset past the end of the partition (the broker lost it); reading from the first record"
                );
                Offset::Beginning
            }
            _ => committed,
        }
    }

    /// Once the broker answers: the assignment and, for a group, its committed offsets,
    /// after creating the named topics the broker lacks.
    async fn broker_ready(&self) -> Result<(TopicPartitionList, Option<TopicPartitionList>), super::TransportError> {
        if !self.broker.ping(Duration::from_secs(2)).await {
            return Err(super::TransportError::Broker("the broker does not answer".into()));
        }
        let assignment = self.inner.assignment()?;
        if self.compacted {
            let partitions = i32::try_from(assignment.count()).unwrap_or(1).max(1);
            self.broker.create_missing(&self.topics, partitions, true).await?;
        } else {
            // Every topic it was fetching too (a regex subscription's): one the broker lacks
            // must not be fetched.
            let mut topics = self.topics.clone();
            for element in assignment.elements() {
                if !topics.iter().any(|t| t == element.topic()) {
                    topics.push(element.topic().to_string());
                }
            }
            self.broker.ensure_topics(&topics).await?;
        }
        // A recreated topic has a new id, and a fetch by the old one gets the answer that
        // crashes librdkafka: refresh this client's metadata of every topic first.
        let mut seen: Vec<String> = Vec::new();
        for element in assignment.elements() {
            let topic = element.topic().to_string();
            if !seen.contains(&topic) {
                self.inner.fetch_metadata(Some(&topic), Duration::from_secs(5))?;
                seen.push(topic);
            }
        }
        let committed = match &self.group {
            Some(group) => Some(self.broker.committed(group, &assignment).await?),
            None => None,
        };
        Ok((assignment, committed))
    }
}

/// This process's name among the replicas of a service, for static membership:
/// `RUNNER_INSTANCE` (say, a StatefulSet pod's name), or none. Replicas need distinct
/// values: two live members with one `group.instance.id` fence each other.
pub fn instance_name() -> Option<&'static str> {
    static NAME: OnceLock<Option<String>> = OnceLock::new();
    NAME.get_or_init(|| std::env::var("RUNNER_INSTANCE").ok().map(|n| n.trim().to_string()).filter(|n| !n.is_empty()))
        .as_deref()
}

/// How many consumers of each group this process runs now: the second live consumer of a
/// group gets its own id (`…-2`) so the two do not fence each other.
fn live_members() -> &'static Mutex<HashMap<String, Vec<bool>>> {
    static LIVE: OnceLock<Mutex<HashMap<String, Vec<bool>>>> = OnceLock::new();
    LIVE.get_or_init(Default::default)
}

/// A consumer's `group.instance.id`, held while the consumer lives; the lowest free number
/// of its group is taken, so a consumer rebuilt or restarted gets the id its predecessor had.
pub struct InstanceSlot {
    group: String,
    index: usize,
    pub id: String,
}

impl InstanceSlot {
    pub fn take(group: &str) -> Option<InstanceSlot> {
        let instance = instance_name()?;
        let mut live = live_members().lock().unwrap_or_else(|e| e.into_inner());
        let slots = live.entry(group.to_string()).or_default();
        let index = slots.iter().position(|taken| !taken).unwrap_or(slots.len());
        if index == slots.len() {
            slots.push(true);
        } else {
            slots[index] = true;
        }
        let suffix = if index == 0 { String::new() } else { format!("-{}", index + 1) };
        Some(InstanceSlot { group: group.to_string(), index, id: format!("{group}@{instance}{suffix}") })
    }
}

impl Drop for InstanceSlot {
    fn drop(&mut self) {
        let mut live = live_members().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = live.get_mut(&self.group).and_then(|slots| slots.get_mut(self.index)) {
            *slot = false;
        }
    }
}
