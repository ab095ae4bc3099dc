//! Idle consumers stop fetching, and wake the moment this process publishes to their topics.
//!
//! The embedded broker (librdkafka's mock cluster) holds every fetch that finds no data for
//! the whole `fetch.wait.max.ms`, even when data arrives meanwhile. A short wait makes a hop
//! fast but has every idle consumer fetch hundreds of times a second; a long wait is cheap
//! but adds up to the wait to every hop. With the embedded broker every producer lives in
//! this process, so consumers fetch with a short wait while messages come, pause their
//! partitions once nothing came for [`IDLE_AFTER`], and resume when the shared producer has
//! a record of one of their topics acknowledged ([`rung`]), or after [`LOOK_ANYWAY`] in case
//! something else wrote to the broker (another process reaching it by its address); each
//! look that finds nothing doubles the wait, up to [`LOOK_ANYWAY_AT_MOST`], since every
//! look costs a dozen fetches (a record that reached the consumer's queue in the instant it
//! paused is dropped by the pause and fetched again: the bell that announced it is not
//! marked seen, so it wakes the consumer at once). Other brokers answer a
//! fetch as data arrives, or not (then `[broker] fetch_wait` bounds a hop): their consumers
//! never pause for idleness.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rdkafka::consumer::Consumer as _;
use tokio::sync::watch;
use tokio::time::Instant;

use super::Consumer;

/// How long a consumer with nothing in flight waits for another message before it pauses.
/// Well above the embedded fetch wait: a record acknowledged just before the pause has
/// been fetched by then.
pub const IDLE_AFTER: Duration = Duration::from_millis(25);

/// A paused consumer looks at its partitions this long after it paused even when nothing
/// rang; each look that found nothing doubles the wait, up to [`LOOK_ANYWAY_AT_MOST`].
pub const LOOK_ANYWAY: Duration = Duration::from_secs(1);

/// The longest a paused consumer goes without looking: how late a record written to the
/// embedded broker by another process may be seen.
pub const LOOK_ANYWAY_AT_MOST: Duration = Duration::from_secs(8);

/// The bells: one per topic and one per subscription pattern; a bell's value counts the
/// records of its topics this process's producers had acknowledged.
#[derive(Default)]
struct Bells {
    by_topic: HashMap<String, watch::Sender<u64>>,
    /// Patterns (`^…`, read as regular expressions, as Kafka reads them), by their text.
    by_pattern: Vec<(String, regex::Regex, watch::Sender<u64>)>,
}

fn bells() -> &'static Mutex<Bells> {
    static BELLS: OnceLock<Mutex<Bells>> = OnceLock::new();
    BELLS.get_or_init(Mutex::default)
}

/// The bell of a topic or a pattern; none for a pattern this regex engine cannot read (its
/// consumer never pauses then).
fn listen(subscription: &str) -> Option<watch::Receiver<u64>> {
    let mut bells = bells().lock().unwrap_or_else(|p| p.into_inner());
    if !subscription.starts_with('^') {
        let bell = bells.by_topic.entry(subscription.to_string()).or_insert_with(|| watch::channel(0).0);
        return Some(bell.subscribe());
    }
    if let Some((_, _, bell)) = bells.by_pattern.iter().find(|(text, _, _)| text == subscription) {
        return Some(bell.subscribe());
    }
    let pattern = regex::Regex::new(subscription).ok()?;
    let (bell, listener) = watch::channel(0);
    bells.by_pattern.push((subscription.to_string(), pattern, bell));
    Some(listener)
}

/// A record of `topic` was acknowledged by the broker: wakes the consumers paused on it.
pub(super) fn rung(topic: &str) {
    let bells = bells().lock().unwrap_or_else(|p| p.into_inner());
    let ring = |bell: &watch::Sender<u64>| bell.send_modify(|count| *count = count.wrapping_add(1));
    if let Some(bell) = bells.by_topic.get(topic) {
        ring(bell);
    }
    for (_, pattern, bell) in &bells.by_pattern {
        if pattern.is_match(topic) {
            ring(bell);
        }
    }
}

/// A consumer loop's idleness: whether its partitions are paused, and since when nothing came.
pub struct Idleness {
    /// Off for brokers that answer fetches as data arrives, or that others write to.
    enabled: bool,
    bells: Vec<watch::Receiver<u64>>,
    last_message: Instant,
    paused: bool,
    /// Woken by a bell: a record is there, so no pause before it came (or [`EXPECT_AT_MOST`]).
    expecting: bool,
    /// When a bell last woke it (see [`WAKE_GRACE`]).
    woke_at: Instant,
    /// Looks in a row, since the last message or bell, that were not asked for by a bell.
    quiet_looks: u32,
    /// The last wake-up query's round trip, in microseconds: a slow broker (a latency fault)
    /// answers a fetch that late, and pausing sooner would drop the answer every time.
    round_trip_us: Arc<AtomicU64>,
}

/// How long a consumer woken by a bell waits for the record before it may pause again.
pub const EXPECT_AT_MOST: Duration = Duration::from_secs(10);

/// How long a consumer woken by a bell keeps fetching at least, messages or not: records
/// rung together arrive over a few fetches, and one that came first must not let the loop
/// pause before the others.
pub const WAKE_GRACE: Duration = Duration::from_millis(100);

impl Idleness {
    /// For a consumer of `topics` (names or `^` patterns); `enabled` only on the embedded
    /// broker (see the module).
    pub fn new(enabled: bool, topics: &[String]) -> Self {
        let bells: Option<Vec<_>> = if enabled { topics.iter().map(|t| listen(t)).collect() } else { None };
        Idleness {
            enabled: bells.is_some(),
            bells: bells.unwrap_or_default(),
            last_message: Instant::now(),
            paused: false,
            expecting: false,
            woke_at: Instant::now().checked_sub(WAKE_GRACE).unwrap_or_else(Instant::now),
            quiet_looks: 0,
            round_trip_us: Arc::default(),
        }
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Whether the loop should wait for [`Self::idle_at`] (it is not paused, and pausing is on).
    pub fn may_pause(&self) -> bool {
        self.enabled && !self.paused
    }

    /// The consumer recovered from a broker loss and resumed everything itself: wake its
    /// broker thread (a resume alone does not) and keep fetching as after a bell, since what
    /// was written during the outage is there to read. Without this the first fetches after
    /// an outage could wait for a later wake-up, and under load a follower missed the short
    /// look-anyway windows again and again.
    pub fn recovered(&mut self, consumer: &Consumer) {
        self.resume(consumer, true);
    }

    /// A message came or finished (or the consumer recovered and resumed everything itself).
    pub fn active(&mut self) {
        self.last_message = Instant::now();
        self.paused = false;
        self.expecting = false;
        self.quiet_looks = 0;
    }

    /// How long a paused consumer waits for a bell before it looks anyway.
    fn look_after(&self) -> Duration {
        LOOK_ANYWAY.saturating_mul(1 << self.quiet_looks.min(16)).min(LOOK_ANYWAY_AT_MOST)
    }

    /// When it counts as idle, if nothing comes before: [`IDLE_AFTER`], or three round trips
    /// to a slow broker, not within [`WAKE_GRACE`] of a bell, or [`EXPECT_AT_MOST`] when a
    /// bell said a record is there and none came yet.
    pub fn idle_at(&self) -> Instant {
        if self.expecting {
            return self.last_message + EXPECT_AT_MOST;
        }
        let round_trip = Duration::from_micros(self.round_trip_us.load(Ordering::Relaxed));
        (self.last_message + IDLE_AFTER.max(round_trip * 3)).max(self.woke_at + WAKE_GRACE)
    }

    /// Pauses every partition assigned now. Bells are not marked seen here: one rung since
    /// the last resume may stand for a record not fetched yet, and wakes it again at once.
    pub fn pause(&mut self, consumer: &Consumer) {
        if let Ok(assignment) = consumer.inner.assignment() {
            if assignment.count() > 0 && consumer.inner.pause(&assignment).is_ok() {
                self.paused = true;
                return;
            }
        }
        // Nothing assigned yet (a rebalance is coming): look again a little later.
        self.last_message = Instant::now();
    }

    /// Resolves when a bell of its topics rang since the last resume (true), or it is time
    /// to look anyway (false).
    pub async fn woken(&mut self) -> bool {
        let look_after = self.look_after();
        if self.bells.is_empty() {
            tokio::time::sleep(look_after).await;
            return false;
        }
        let rang = futures::future::select_all(self.bells.iter_mut().map(|bell| Box::pin(bell.changed())));
        tokio::select! {
            _ = rang => true,
            _ = tokio::time::sleep(look_after) => false,
        }
    }

    /// Resumes the partitions assigned now (a rebalance meanwhile may have changed them);
    /// never while the consumer is lost: its recovery resumes them. Every bell counts as
    /// seen from here: what was written before this moment is fetched from here on.
    ///
    /// librdkafka does not wake its broker thread on a resume: an idle one notices within a
    /// second, after this loop may have paused again. Any request to the partition's leader
    /// wakes it, so a watermark query is sent alongside (the embedded broker is one node,
    /// leader of every partition); its answer is not needed, its round trip is kept.
    pub fn resume(&mut self, consumer: &Consumer, rang: bool) {
        for bell in &mut self.bells {
            bell.borrow_and_update();
        }
        let quiet_looks = if rang { 0 } else { self.quiet_looks.saturating_add(1) };
        self.active();
        // A message fetched during the look resets the count (`active`).
        self.quiet_looks = quiet_looks;
        self.expecting = rang;
        if rang {
            self.woke_at = Instant::now();
        }
        if consumer.is_lost() {
            return;
        }
        let Ok(assignment) = consumer.inner.assignment() else { return };
        let _ = consumer.inner.resume(&assignment);
        let Some(first) = assignment.elements().first().map(|p| (p.topic().to_string(), p.partition())) else {
            return;
        };
        let (inner, round_trip_us) = (consumer.inner.clone(), self.round_trip_us.clone());
        drop(tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let _ = inner.fetch_watermarks(&first.0, first.1, Duration::from_secs(5));
            round_trip_us.store(started.elapsed().as_micros().try_into().unwrap_or(u64::MAX), Ordering::Relaxed);
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bell rung while the consumer was still fetching (before its pause) wakes it at once
    /// after the pause: the record may not have been fetched.
    #[tokio::test(start_paused = true)]
    async fn a_ring_before_the_pause_wakes_at_once() {
        let mut idle = Idleness::new(true, &["idle-test-early".to_string()]);
        rung("idle-test-early");
        let woken = tokio::time::timeout(Duration::from_millis(1), idle.woken()).await;
        assert_eq!(woken, Ok(true));
    }

    /// Nothing rung: the consumer looks anyway after `LOOK_ANYWAY`, and says so.
    #[tokio::test(start_paused = true)]
    async fn without_a_ring_it_looks_anyway_later() {
        let mut idle = Idleness::new(true, &["idle-test-quiet".to_string()]);
        let started = Instant::now();
        assert!(!idle.woken().await);
        assert!(started.elapsed() >= LOOK_ANYWAY);
    }

    /// Looks that find nothing come less and less often, up to `LOOK_ANYWAY_AT_MOST`; a
    /// message or a bell brings the first wait back.
    #[test]
    fn quiet_looks_back_off_and_activity_resets_them() {
        let mut idle = Idleness::new(true, &[]);
        let mut waits = Vec::new();
        for _ in 0..8 {
            waits.push(idle.look_after().as_secs());
            idle.quiet_looks = idle.quiet_looks.saturating_add(1);
        }
        assert_eq!(waits, [1, 2, 4, 8, 8, 8, 8, 8]);
        idle.quiet_looks = u32::MAX;
        assert_eq!(idle.look_after(), LOOK_ANYWAY_AT_MOST);
        idle.active();
        assert_eq!(idle.look_after(), LOOK_ANYWAY);
    }

    /// Another topic's ring wakes nothing; a pattern's topic wakes the pattern's consumer.
    #[tokio::test(start_paused = true)]
    async fn bells_ring_for_their_topics_and_patterns_only() {
        let mut named = Idleness::new(true, &["idle-test-a".to_string()]);
        let mut pattern = Idleness::new(true, &["^idle-test-.*\\.dlq$".to_string()]);
        rung("idle-test-b");
        rung("idle-test-b.dlq");
        assert_eq!(tokio::time::timeout(Duration::from_millis(1), named.woken()).await.ok(), None);
        assert_eq!(tokio::time::timeout(Duration::from_millis(1), pattern.woken()).await, Ok(true));
    }

    /// Woken by a bell, it waits for the record instead of pausing after `IDLE_AFTER`; a
    /// message ends the wait.
    #[test]
    fn a_bell_woken_consumer_waits_for_its_record() {
        let mut idle = Idleness::new(true, &[]);
        idle.expecting = true;
        assert!(idle.idle_at() >= Instant::now() + EXPECT_AT_MOST - Duration::from_millis(50));
        idle.active();
        assert!(idle.idle_at() <= Instant::now() + IDLE_AFTER);
    }
}
