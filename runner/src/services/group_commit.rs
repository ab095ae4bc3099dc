//! Group commit: the messages a consumer has ready are handled in one database transaction,
//! each still all-or-nothing: when any of them fails, the whole group rolls back and each
//! message is handled again in a transaction of its own, so one poison message never fails
//! its neighbours.
//!
//! A group is what has queued up while every lane was busy (no timer waits for more): one
//! message at a time when traffic is light, up to the consumer's `max_group` under load, when
//! fewer commits (and round trips) per message pay. `max_in_flight ÷ max_group` groups commit
//! side by side (lanes), so a consumer never has fewer transactions open than it needs to keep
//! its messages in flight moving. With `max_group = 1` there is no committer: each message
//! commits in its own transaction, beside the others in flight.

use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument as _;

use super::{store_error, ServiceContext};
use crate::store::Tx;
use crate::telemetry;
use crate::transport::HandleError;

/// One message's work inside a transaction. It may run twice (in a group that then fails,
/// and alone), so it is `Fn` and must keep every effect inside `tx`.
type Work<T> = Box<dyn for<'t> Fn(&'t mut Tx) -> BoxFuture<'t, Result<T, HandleError>> + Send + Sync>;

struct Job<T> {
    work: Work<T>,
    /// The message's span: its work runs inside it (logs and outgoing `traceparent`s belong
    /// to the message's trace, not to the committer's task).
    span: tracing::Span,
    done: oneshot::Sender<Result<T, HandleError>>,
}

/// The committer of one consumer: a task that takes the work of its running messages and
/// commits it in groups. It ends when the consumer (every clone of this handle) is gone and
/// the groups it started have committed.
#[derive(Clone)]
pub struct GroupCommit<T> {
    name: Arc<str>,
    ctx: ServiceContext,
    /// `None` when groups hold one message: each then commits in its own task, at once,
    /// beside the consumer's other messages (no committer to queue behind).
    jobs: Option<mpsc::Sender<Job<T>>>,
}

impl<T: Send + 'static> GroupCommit<T> {
    /// Starts the committer of consumer `name`, which has up to `max_in_flight` messages
    /// running; a group holds at most `max_group` of them, and as many groups commit at once
    /// as it takes to cover `max_in_flight`.
    pub fn start(ctx: &ServiceContext, name: &str, max_in_flight: usize, max_group: usize) -> Self {
        if max_group <= 1 {
            return GroupCommit { name: name.into(), ctx: ctx.clone(), jobs: None };
        }
        let lanes = max_in_flight.div_ceil(max_group).max(1);
        let (jobs, queue) = mpsc::channel(max_in_flight.max(1));
        tokio::spawn(commit_groups(ctx.clone(), name.to_string(), queue, max_group, lanes));
        GroupCommit { name: name.into(), ctx: ctx.clone(), jobs: Some(jobs) }
    }

    /// Runs `work` in the next group and returns its result once that group committed (or
    /// the error that stopped it in its own transaction).
    pub async fn run<F>(&self, work: F) -> Result<T, HandleError>
    where
        F: for<'t> Fn(&'t mut Tx) -> BoxFuture<'t, Result<T, HandleError>> + Send + Sync + 'static,
    {
        let work: Work<T> = Box::new(work);
        let span = tracing::Span::current();
        let Some(jobs) = &self.jobs else {
            metrics::histogram!(telemetry::TRANSACTION_MESSAGES, "consumer" => self.name.to_string()).record(1.0);
            let result = alone(&self.ctx, &work, &span).await;
            if result.is_ok() {
                self.ctx.outbox_written.notify_one();
            }
            return result;
        };
        // The committer lives as long as this handle; it is gone only when a handler panicked
        // in it, and then the consumer fails the same way (its supervisor restarts it).
        let (done, result) = oneshot::channel();
        if jobs.send(Job { work, span, done }).await.is_err() {
            panic!("the committer of {} stopped: a handler panicked", self.name);
        }
        match result.await {
            Ok(result) => result,
            Err(_) => panic!("the committer of {} stopped: a handler panicked", self.name),
        }
    }
}

/// Takes what has queued (up to `max_group` messages) as one group whenever one of `lanes`
/// transactions is free: groups commit side by side, so a consumer keeps as many
/// transactions open as its messages in flight need, and PostgreSQL can flush their commits
/// together.
async fn commit_groups<T: Send + 'static>(
    ctx: ServiceContext,
    name: String,
    mut queue: mpsc::Receiver<Job<T>>,
    max_group: usize,
    lanes: usize,
) {
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.try_join_next().is_some() {}
        while running.len() >= lanes {
            running.join_next().await;
        }
        let mut group = Vec::with_capacity(max_group);
        if queue.recv_many(&mut group, max_group).await == 0 {
            break;
        }
        running.spawn(commit_group(ctx.clone(), name.clone(), group));
    }
    while running.join_next().await.is_some() {}
}

/// One group: together when it holds several messages, and each alone when that failed.
async fn commit_group<T>(ctx: ServiceContext, name: String, mut group: Vec<Job<T>>) {
    metrics::histogram!(telemetry::TRANSACTION_MESSAGES, "consumer" => name.clone()).record(group.len() as f64);
    if group.len() > 1 {
        match together(&ctx, &group).await {
            Ok(results) => {
                ctx.outbox_written.notify_one();
                for (job, result) in group.drain(..).zip(results) {
                    let _ = job.done.send(Ok(result));
                }
                return;
            }
            Err(e) => {
                metrics::counter!(telemetry::GROUP_COMMITS_SPLIT, "consumer" => name.clone()).increment(1);
                tracing::debug!(consumer = name, messages = group.len(), error = %e, "group rolled back; each message alone");
            }
        }
    }
    for job in group.drain(..) {
        let result = alone(&ctx, &job.work, &job.span).await;
        if result.is_ok() {
            ctx.outbox_written.notify_one();
        }
        let _ = job.done.send(result);
    }
}

/// Every message of `group` in one transaction; the first failure rolls all of it back.
async fn together<T>(ctx: &ServiceContext, group: &[Job<T>]) -> Result<Vec<T>, HandleError> {
    let mut tx = ctx.begin().await.map_err(store_error)?;
    let mut results = Vec::with_capacity(group.len());
    for job in group {
        results.push((job.work)(&mut tx).instrument(job.span.clone()).await?);
    }
    tx.commit().await.map_err(|e| store_error(e.into()))?;
    Ok(results)
}

/// One message in a transaction of its own (dropped uncommitted, it rolls back).
async fn alone<T>(ctx: &ServiceContext, work: &Work<T>, span: &tracing::Span) -> Result<T, HandleError> {
    let mut tx = ctx.begin().await.map_err(store_error)?;
    let result = work(&mut tx).instrument(span.clone()).await?;
    tx.commit().await.map_err(|e| store_error(e.into()))?;
    Ok(result)
}
