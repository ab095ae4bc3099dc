//! Group commit: the messages a consumer has ready are handled in one database transaction,
//! each still all-or-nothing: when any of them fails, the whole group rolls back and each
//! message is handled again in a transaction of its own, so one poison message never fails
//! its neighbours.
//!
//! A group first runs taking its messages as new (no inbox read; see [`InboxCheck`]); when
//! one of them was handled before, the group runs again with its inbox entries read, and only
//! a failure then splits it.
//!
//! A group is what has queued up while the previous transaction ran (no timer waits for more):
//! one message at a time when traffic is light, up to the consumer's `max_group` under load,
//! when fewer commits (and round trips) per message pay. By default a consumer's groups commit
//! one after the other: groups side by side hold their rows' locks longer than single messages
//! do and deadlock on hot rows (the saga benchmark measured 422 deadlocks on `stock` with four
//! groups of four at once, and a tenth of the throughput). A consumer whose messages of
//! different keys write different rows (the orchestrator: one saga per order) may run
//! `groups_in_flight` groups side by side, each taking what queued while the others ran: its
//! messages then wait for the database and the handlers' CPU work at once, not one after the
//! other (the saga benchmark's orchestrator queue under a burst: 540 ms → 50–130 ms). Keyed
//! concurrency keeps two messages of one key out of groups in flight together. With
//! `max_group = 1` there is no committer: each message commits in its own transaction,
//! beside the others in flight.

use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument as _;

use super::{store_error, ServiceContext};
use crate::store::{InboxCheck, ReadAhead, StoreError, Tx};
use crate::telemetry;
use crate::transport::HandleError;

/// How long a stopping consumer waits for its committer's last group.
const CLOSE_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// One message's work inside a transaction. It may run twice (in a group that then fails,
/// and alone), so it is `Fn` and must keep every effect inside `tx`.
type Work<T> = Box<dyn for<'t> Fn(&'t mut Tx) -> BoxFuture<'t, Result<T, HandleError>> + Send + Sync>;

struct Job<T> {
    work: Work<T>,
    /// What the work will look up, read for the whole group at once.
    reads: ReadAhead,
    /// The message's span: its work runs inside it (logs and outgoing `traceparent`s belong
    /// to the message's trace, not to the committer's task).
    span: tracing::Span,
    done: oneshot::Sender<Result<T, HandleError>>,
}

/// The committer of one consumer: a task that takes the work of its running messages and
/// commits it in groups, until [`GroupCommit::close`].
pub struct GroupCommit<T> {
    name: Arc<str>,
    ctx: ServiceContext,
    /// `None` when groups hold one message: each then commits in its own task, at once,
    /// beside the consumer's other messages (no committer to queue behind).
    jobs: Option<(mpsc::Sender<Job<T>>, tokio::task::JoinHandle<()>)>,
}

impl<T: Send + 'static> GroupCommit<T> {
    /// Starts the committer of consumer `name`, which has up to `max_in_flight` messages
    /// running; a group holds at most `max_group` of them, and `groups_in_flight` groups
    /// commit side by side (at most as many as the store has connections).
    pub fn start(
        ctx: &ServiceContext,
        name: &str,
        max_in_flight: usize,
        max_group: usize,
        groups_in_flight: usize,
    ) -> Self {
        if max_group <= 1 {
            return GroupCommit { name: name.into(), ctx: ctx.clone(), jobs: None };
        }
        // A group holds a connection while it runs: more groups than the pool has connections
        // (SQLite has one) would only wait for one, each holding messages a running group
        // could have taken.
        let lanes = groups_in_flight.clamp(1, ctx.store.max_connections().max(1));
        let (jobs, queue) = mpsc::channel(max_in_flight.max(1));
        let task = tokio::spawn(commit_lanes(ctx.clone(), name.to_string(), queue, max_group, lanes));
        GroupCommit { name: name.into(), ctx: ctx.clone(), jobs: Some((jobs, task)) }
    }

    /// Ends the committer once what it was handed has committed. Called when the consumer
    /// stopped: a committer left to end on its own could outlive its service and be dropped
    /// with the runtime, its context (broker clients included) with it.
    pub async fn close(self) {
        if let Some((jobs, mut task)) = self.jobs {
            drop(jobs);
            // Bounded: a database that stopped answering must not hold the stop up.
            if tokio::time::timeout(CLOSE_WITHIN, &mut task).await.is_err() {
                tracing::warn!(consumer = %self.name, "the committer did not finish within {CLOSE_WITHIN:?}; dropped");
                task.abort();
            }
        }
    }

    /// Runs `work` in the next group and returns its result once that group committed (or
    /// the error that stopped it in its own transaction). `reads` names the rows it will
    /// look up: the group reads them together before its work runs.
    pub async fn run<F>(&self, reads: ReadAhead, work: F) -> Result<T, HandleError>
    where
        F: for<'t> Fn(&'t mut Tx) -> BoxFuture<'t, Result<T, HandleError>> + Send + Sync + 'static,
    {
        let work: Work<T> = Box::new(work);
        let span = tracing::Span::current();
        let Some((jobs, _)) = &self.jobs else {
            metrics::histogram!(telemetry::TRANSACTION_MESSAGES, "consumer" => self.name.to_string()).record(1.0);
            return alone(&self.ctx, &work, &reads, &span).await;
        };
        // The committer lives as long as this handle; it is gone only when a handler panicked
        // in it, and then the consumer fails the same way (its supervisor restarts it).
        let (done, result) = oneshot::channel();
        let answered = match jobs.send(Job { work, reads, span, done }).await {
            Ok(()) => result.await.ok(),
            Err(_) => None,
        };
        answered.unwrap_or_else(|| panic!("the committer of {} stopped: a handler panicked", self.name))
    }
}

/// `lanes` committers taking groups from one queue: while one lane's group waits on the
/// database, the next lane takes what queued meanwhile. A lane whose handler panicked ends
/// the committer (as one committer did), so the consumer fails and is restarted.
async fn commit_lanes<T: Send + 'static>(
    ctx: ServiceContext,
    name: String,
    queue: mpsc::Receiver<Job<T>>,
    max_group: usize,
    lanes: usize,
) {
    let queue = Arc::new(tokio::sync::Mutex::new(queue));
    let mut running = tokio::task::JoinSet::new();
    for _ in 0..lanes.max(1) {
        running.spawn(commit_groups(ctx.clone(), name.clone(), queue.clone(), max_group));
    }
    while let Some(ended) = running.join_next().await {
        if let Err(e) = ended {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }
}

/// Takes what has queued (up to `max_group` messages) as one group, commits it, and again.
async fn commit_groups<T>(
    ctx: ServiceContext,
    name: String,
    queue: Arc<tokio::sync::Mutex<mpsc::Receiver<Job<T>>>>,
    max_group: usize,
) {
    let mut group = Vec::with_capacity(max_group);
    loop {
        // The queue is held only while waiting for work, not while committing it.
        if queue.lock().await.recv_many(&mut group, max_group).await == 0 {
            return;
        }
        commit_group(&ctx, &name, &mut group).await;
    }
}

/// One group: together when it holds several messages (taken as new, then, if one was not,
/// with the inbox read), and each alone when that failed.
async fn commit_group<T>(ctx: &ServiceContext, name: &str, group: &mut Vec<Job<T>>) {
    metrics::histogram!(telemetry::TRANSACTION_MESSAGES, "consumer" => name.to_string()).record(group.len() as f64);
    if group.len() > 1 {
        let mut check = InboxCheck::AssumeNew;
        let failure = loop {
            match together(ctx, group, check).await {
                Ok(results) => {
                    ctx.outbox_written.notify_one();
                    for (job, result) in group.drain(..).zip(results) {
                        let _ = job.done.send(Ok(result));
                    }
                    return;
                }
                Err(Failed::Handled(e)) if check == InboxCheck::AssumeNew => {
                    tracing::debug!(consumer = name, messages = group.len(), error = %e, "group rolled back; again with the inbox read");
                    check = InboxCheck::Read;
                }
                Err(Failed::Handled(e)) => break store_error(e),
                Err(Failed::Other(e)) => break e,
            }
        };
        metrics::counter!(telemetry::GROUP_COMMITS_SPLIT, "consumer" => name.to_string()).increment(1);
        tracing::debug!(consumer = name, messages = group.len(), error = %failure, "group rolled back; each message alone");
    }
    for job in group.drain(..) {
        let _ = job.done.send(alone(ctx, &job.work, &job.reads, &job.span).await);
    }
}

/// Why a group's transaction rolled back.
enum Failed {
    /// A message taken as new had been handled before (found when its inbox entry was
    /// inserted at commit).
    Handled(StoreError),
    Other(HandleError),
}

impl From<HandleError> for Failed {
    fn from(e: HandleError) -> Self {
        Failed::Other(e)
    }
}

/// Every message of `group` in one transaction; the first failure rolls all of it back.
async fn together<T>(ctx: &ServiceContext, group: &[Job<T>], check: InboxCheck) -> Result<Vec<T>, Failed> {
    let mut tx = ctx.begin().await.map_err(store_error)?;
    let reads: Vec<&ReadAhead> = group.iter().map(|job| &job.reads).collect();
    tx.read_ahead(&reads, check).await.map_err(|e| store_error(e.into()))?;
    let mut results = Vec::with_capacity(group.len());
    for job in group {
        results.push((job.work)(&mut tx).instrument(job.span.clone()).await?);
    }
    match tx.commit().await {
        Ok(()) => Ok(results),
        Err(e @ StoreError::AlreadyHandled(_)) => Err(Failed::Handled(e)),
        Err(e) => Err(Failed::Other(store_error(e))),
    }
}

/// One message in a transaction of its own (dropped uncommitted, it rolls back); a relay in
/// this process is woken once it committed.
async fn alone<T>(
    ctx: &ServiceContext,
    work: &Work<T>,
    reads: &ReadAhead,
    span: &tracing::Span,
) -> Result<T, HandleError> {
    let mut tx = ctx.begin().await.map_err(store_error)?;
    tx.read_ahead(&[reads], InboxCheck::Read).await.map_err(|e| store_error(e.into()))?;
    let result = work(&mut tx).instrument(span.clone()).await?;
    tx.commit().await.map_err(store_error)?;
    ctx.outbox_written.notify_one();
    Ok(result)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use futures::FutureExt as _;
    use tokio::sync::Semaphore;

    use super::*;
    use crate::store::{Store, StoreConfig};
    use crate::transport::dead_letter::ErrorKind;
    use crate::transport::{Broker, BrokerConfig};

    async fn context(dir: &tempfile::TempDir) -> ServiceContext {
        let broker = Broker::connect(&BrokerConfig::embedded_single_partition()).unwrap();
        let url = format!("sqlite://{}", dir.path().join("group.db").display());
        let store = Store::connect(&StoreConfig::for_url(&url, 4).unwrap()).await.unwrap();
        sqlx::query("CREATE TABLE handled (id INTEGER PRIMARY KEY)").execute(store.pool()).await.unwrap();
        ServiceContext::standalone("payment-svc", store, broker)
    }

    /// As above, message 0 holds the committer while seven more queue. Message 3 was handled
    /// before (its inbox entry exists): the group, taking its messages as new, fails at
    /// commit; it runs again with the inbox read, and commits whole, message 3 answered from
    /// its entry. Nobody runs alone, nothing is done twice.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_message_handled_before_makes_its_group_read_the_inbox_not_split() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(&dir).await;
        let consumer: Arc<str> = "payment-svc/charge".into();
        let mut tx = ctx.store.begin().await.unwrap();
        crate::store::inbox::record(&mut tx, &consumer, "m3", Some(("payment.charged", "earlier")), 1);
        tx.commit().await.unwrap();
        let committer = Arc::new(GroupCommit::<i64>::start(&ctx, &consumer, 8, 8, 1));
        let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..8).map(|_| AtomicUsize::new(0)).collect());
        let gate = Arc::new(Semaphore::new(0));
        let message = |id: i64| {
            let (committer, runs, gate, consumer) = (committer.clone(), runs.clone(), gate.clone(), consumer.clone());
            let reads = ReadAhead { inbox: Some((consumer.clone(), format!("m{id}"))), ..ReadAhead::default() };
            async move {
                committer
                    .run(reads, move |tx| {
                        let (runs, gate, consumer) = (runs.clone(), gate.clone(), consumer.clone());
                        async move {
                            runs[id as usize].fetch_add(1, Ordering::SeqCst);
                            if id == 0 {
                                let _ = gate.acquire().await;
                            }
                            let message_id = format!("m{id}");
                            if crate::store::inbox::find(tx, &consumer, &message_id).await.unwrap().is_some() {
                                return Ok(-id);
                            }
                            sqlx::query("INSERT INTO handled (id) VALUES ($1)")
                                .bind(id)
                                .execute(&mut **tx)
                                .await
                                .unwrap();
                            crate::store::inbox::record(tx, &consumer, &message_id, None, 2);
                            Ok(id)
                        }
                        .boxed()
                    })
                    .await
            }
        };
        let first = tokio::spawn(message(0));
        while runs[0].load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let others: Vec<_> = (1..8).map(|id| tokio::spawn(message(id))).collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        gate.add_permits(2);
        assert_eq!(first.await.unwrap().unwrap(), 0);
        let answers: Vec<i64> =
            futures::future::join_all(others).await.into_iter().map(|r| r.unwrap().unwrap()).collect();
        assert_eq!(answers, vec![1, 2, -3, 4, 5, 6, 7], "message 3 answered from its entry");
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM handled ORDER BY id").fetch_all(ctx.store.pool()).await.unwrap();
        assert_eq!(ids, vec![0, 1, 2, 4, 5, 6, 7], "each new message's effect once, none for message 3");
        let entries: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM inbox").fetch_one(ctx.store.pool()).await.unwrap();
        assert_eq!(entries, 8);
        // Message 0 ran alone first (it held the committer); the group of seven ran twice: taken
        // as new, then with the inbox read. Alone after that would be a third run.
        let runs: Vec<usize> = runs.iter().map(|r| r.load(Ordering::SeqCst)).collect();
        assert_eq!(runs[1..], [2; 7], "{runs:?}");
    }

    /// Message 0 holds the committer until the seven others have queued: they form one
    /// group, in which message 3 fails. The group rolls back, each runs alone: 3 fails by
    /// itself, its six neighbours commit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_message_fails_alone_and_its_group_commits_without_it() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(&dir).await;
        let committer = Arc::new(GroupCommit::<i64>::start(&ctx, "payment-svc/charge", 8, 8, 1));
        let runs = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Semaphore::new(0));
        let message = |id: i64| {
            let (committer, runs, gate) = (committer.clone(), runs.clone(), gate.clone());
            async move {
                committer
                    .run(ReadAhead::default(), move |tx| {
                        let (runs, gate) = (runs.clone(), gate.clone());
                        async move {
                            runs.fetch_add(if id == 3 { 1000 } else { 1 }, Ordering::SeqCst);
                            if id == 0 {
                                let _ = gate.acquire().await;
                            }
                            sqlx::query("INSERT INTO handled (id) VALUES ($1)")
                                .bind(id)
                                .execute(&mut **tx)
                                .await
                                .unwrap();
                            if id == 3 {
                                return Err(HandleError::new(ErrorKind::HandlerFailed, "message 3 fails"));
                            }
                            Ok(id)
                        }
                        .boxed()
                    })
                    .await
            }
        };
        let first = tokio::spawn(message(0));
        while runs.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let others: Vec<_> = (1..8).map(|id| tokio::spawn(message(id))).collect();
        // Every `run` has handed its work over once the channel holds it; a little time
        // for the seven tasks to reach it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        gate.add_permits(1);
        assert_eq!(first.await.unwrap().unwrap(), 0);
        for (id, other) in (1..8).zip(others) {
            match other.await.unwrap() {
                Ok(got) => assert_eq!(got, id),
                Err(e) => assert_eq!((id, e.kind), (3, ErrorKind::HandlerFailed), "{e:?}"),
            }
        }
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM handled ORDER BY id").fetch_all(ctx.store.pool()).await.unwrap();
        assert_eq!(ids, vec![0, 1, 2, 4, 5, 6, 7], "the failing message left nothing, its neighbours everything");
        // Message 3 ran twice (counted in thousands): in the group, whose messages after it
        // were not tried, and alone; the six others ran alone once more.
        let runs = runs.load(Ordering::SeqCst);
        assert_eq!(runs / 1000, 2, "message 3 was tried in the group, then alone");
        assert!((1 + 6..=1 + 6 + 6).contains(&(runs % 1000)), "{} runs of the others", runs % 1000);
    }
}
