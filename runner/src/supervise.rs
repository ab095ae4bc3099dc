//! Supervision of everything that runs for as long as the service does: each consumer, the
//! saga timer, the relay, the broker-fault task, analytics, dead-letter ingest.
//!
//! A part is a named task started by [`Supervisor::spawn`]. When it panics, fails or ends
//! without being asked to, the failure is logged with the part's name and counted
//! (`runner_part_restarts_total{part,cause}`), the part is marked down, and it is started
//! again after a backoff that doubles from 200 ms up to 30 s (back to 200 ms once an attempt
//! has run for a minute). `/readyz` lists every part and is not ready while one is down.
//!
//! Each attempt runs under its own stop token, a child of the part's: whatever an attempt
//! started itself (the saga timer of an orchestrator, say) ends with the attempt, so a
//! restart never leaves a twin behind.

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::FutureExt;
use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::event::now_ms;
use crate::telemetry;

/// The first wait before a failed part starts again.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait between two starts of a part that keeps failing.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// An attempt that ran this long counts as healthy: the next failure waits [`FIRST_BACKOFF`].
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// Why an attempt of a part ended against its will (a label of the restart counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Panic,
    Error,
    Ended,
}

impl Cause {
    fn label(self) -> &'static str {
        match self {
            Cause::Panic => "panic",
            Cause::Error => "error",
            Cause::Ended => "ended",
        }
    }
}

/// What `/readyz` and `GET /api/runtime/parts` show of one part.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartStatus {
    pub up: bool,
    pub restarts: u64,
    pub started_at_ms: i64,
    pub last_failure: Option<String>,
    pub last_failure_at_ms: Option<i64>,
    #[serde(skip)]
    panic_request: Arc<Notify>,
}

/// The parts of one process and their state; cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    tasks: TaskTracker,
    parts: Arc<Mutex<BTreeMap<String, PartStatus>>>,
}

/// The answer to a request to make a part panic.
#[derive(Debug, PartialEq, Eq)]
pub enum PanicRequest {
    Sent,
    /// No such part; the names of those that run.
    Unknown(Vec<String>),
}

impl Supervisor {
    pub fn new(tasks: TaskTracker) -> Self {
        Supervisor { tasks, parts: Arc::default() }
    }

    fn parts(&self) -> MutexGuard<'_, BTreeMap<String, PartStatus>> {
        // A panic never happens while the lock is held; recover the map if one ever did.
        self.parts.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every part with its state, by name.
    pub fn snapshot(&self) -> BTreeMap<String, PartStatus> {
        self.parts().clone()
    }

    /// True when every part is running (not waiting to restart).
    pub fn all_up(&self) -> bool {
        self.parts().values().all(|p| p.up)
    }

    /// Makes the running attempt of `name` panic, as a fault for game days and tests: the
    /// supervisor must notice, count it and start the part again.
    pub fn request_panic(&self, name: &str) -> PanicRequest {
        let parts = self.parts();
        match parts.get(name) {
            Some(part) => {
                part.panic_request.notify_one();
                PanicRequest::Sent
            }
            None => PanicRequest::Unknown(parts.keys().cloned().collect()),
        }
    }

    /// Runs the part `name` until `stop` is cancelled, restarting it with backoff whenever
    /// it panics, fails or ends by itself. `start` builds one attempt from the attempt's own
    /// stop token (cancelled when the attempt ends, whichever way).
    ///
    /// The returned handle finishes once `stop` is cancelled and the running attempt has
    /// returned. A second part under a name already running gets a `#2` suffix.
    pub fn spawn<F, Fut, E>(&self, name: impl Into<String>, stop: CancellationToken, mut start: F) -> JoinHandle<()>
    where
        F: FnMut(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let (name, panic_request) = self.register(name.into());
        let supervisor = self.clone();
        self.tasks.spawn(async move {
            let mut backoff = FIRST_BACKOFF;
            loop {
                let attempt_stop = stop.child_token();
                let started = Instant::now();
                let attempt = start(attempt_stop.clone());
                let requested = panic_request.clone();
                let guarded = async move {
                    tokio::select! {
                        result = attempt => result.map_err(|e| e.to_string()),
                        _ = requested.notified() => panic!("panic requested through POST /api/runtime/parts/panic"),
                    }
                };
                let outcome = AssertUnwindSafe(guarded).catch_unwind().await;
                attempt_stop.cancel();
                let (cause, detail) = match outcome {
                    Ok(Ok(())) if stop.is_cancelled() => break,
                    Ok(Ok(())) => (Cause::Ended, "ended without being asked to stop".to_string()),
                    Ok(Err(error)) => (Cause::Error, error),
                    Err(payload) => (Cause::Panic, panic_message(payload.as_ref())),
                };
                if stop.is_cancelled() {
                    // Asked to stop while failing: nothing to restart.
                    break;
                }
                if started.elapsed() >= HEALTHY_AFTER {
                    backoff = FIRST_BACKOFF;
                }
                supervisor.failed(&name, cause, &detail, backoff);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                supervisor.restarted(&name);
            }
            supervisor.parts().remove(&name);
        })
    }

    fn register(&self, wanted: String) -> (String, Arc<Notify>) {
        let mut parts = self.parts();
        let mut name = wanted.clone();
        let mut n = 2;
        while parts.contains_key(&name) {
            name = format!("{wanted} #{n}");
            n += 1;
        }
        let panic_request = Arc::new(Notify::new());
        parts.insert(
            name.clone(),
            PartStatus {
                up: true,
                restarts: 0,
                started_at_ms: now_ms(),
                last_failure: None,
                last_failure_at_ms: None,
                panic_request: panic_request.clone(),
            },
        );
        (name, panic_request)
    }

    fn failed(&self, name: &str, cause: Cause, detail: &str, backoff: Duration) {
        tracing::error!(
            part = name,
            cause = cause.label(),
            error = detail,
            restart_in_ms = backoff.as_millis() as u64,
            "a part of the service stopped; restarting it"
        );
        metrics::counter!(telemetry::PART_RESTARTS, "part" => name.to_string(), "cause" => cause.label()).increment(1);
        metrics::gauge!(telemetry::PART_UP, "part" => name.to_string()).set(0.0);
        if let Some(part) = self.parts().get_mut(name) {
            part.up = false;
            part.last_failure = Some(format!("{}: {detail}", cause.label()));
            part.last_failure_at_ms = Some(now_ms());
        }
    }

    fn restarted(&self, name: &str) {
        metrics::gauge!(telemetry::PART_UP, "part" => name.to_string()).set(1.0);
        if let Some(part) = self.parts().get_mut(name) {
            part.up = true;
            part.restarts += 1;
            part.started_at_ms = now_ms();
        }
    }
}

/// A part that returns nothing, in the shape [`Supervisor::spawn`] takes.
pub async fn infallible(part: impl Future<Output = ()>) -> Result<(), std::convert::Infallible> {
    part.await;
    Ok(())
}

/// The text a panic carried (`panic!("…")` gives a `&str` or a `String`).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string());
    format!("panicked: {text}")
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    async fn eventually(mut check: impl FnMut() -> bool) {
        for _ in 0..200 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("condition not met within 2 s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_part_is_restarted_with_growing_backoff_and_counted() {
        let supervisor = Supervisor::new(TaskTracker::new());
        let starts = Arc::new(AtomicU32::new(0));
        let stop = CancellationToken::new();
        let counted = starts.clone();
        let handle = supervisor.spawn("worker", stop.clone(), move |attempt: CancellationToken| {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 3 {
                    panic!("boom {n}");
                }
                attempt.cancelled().await;
                Ok::<(), String>(())
            }
        });
        let started = tokio::time::Instant::now();
        eventually(|| starts.load(Ordering::SeqCst) == 4).await;
        // 200 + 400 + 800 ms of backoff before the fourth start.
        assert!(started.elapsed() >= Duration::from_millis(1400), "{:?}", started.elapsed());
        let status = supervisor.snapshot()["worker"].clone();
        assert!(status.up);
        assert_eq!(status.restarts, 3);
        assert_eq!(status.last_failure.as_deref(), Some("panic: panicked: boom 2"));
        stop.cancel();
        handle.await.unwrap();
        assert!(supervisor.snapshot().is_empty(), "a stopped part leaves the list");
    }

    #[tokio::test(start_paused = true)]
    async fn a_requested_panic_ends_the_attempt_and_what_it_started() {
        let supervisor = Supervisor::new(TaskTracker::new());
        let stop = CancellationToken::new();
        let children_alive = Arc::new(AtomicU32::new(0));
        let alive = children_alive.clone();
        supervisor.spawn("saga", stop.clone(), move |attempt: CancellationToken| {
            let alive = alive.clone();
            async move {
                // A task the attempt starts ends with the attempt.
                alive.fetch_add(1, Ordering::SeqCst);
                let child = attempt.clone();
                let child_alive = alive.clone();
                tokio::spawn(async move {
                    child.cancelled().await;
                    child_alive.fetch_sub(1, Ordering::SeqCst);
                });
                attempt.cancelled().await;
                Ok::<(), String>(())
            }
        });
        eventually(|| children_alive.load(Ordering::SeqCst) == 1).await;
        assert_eq!(supervisor.request_panic("saga"), PanicRequest::Sent);
        assert_eq!(supervisor.request_panic("nope"), PanicRequest::Unknown(vec!["saga".to_string()]));
        eventually(|| supervisor.snapshot()["saga"].restarts == 1).await;
        eventually(|| children_alive.load(Ordering::SeqCst) == 1).await;
        assert!(supervisor.all_up());
        stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_or_an_unasked_end_restarts_and_marks_the_part_down_meanwhile() {
        let supervisor = Supervisor::new(TaskTracker::new());
        let stop = CancellationToken::new();
        let starts = Arc::new(AtomicU32::new(0));
        let counted = starts.clone();
        supervisor.spawn("relay", stop.clone(), move |attempt: CancellationToken| {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    0 => Err("database unreachable".to_string()),
                    1 => Ok(()),
                    _ => {
                        attempt.cancelled().await;
                        Ok(())
                    }
                }
            }
        });
        eventually(|| !supervisor.all_up()).await;
        let status = supervisor.snapshot()["relay"].clone();
        assert_eq!(status.last_failure.as_deref(), Some("error: database unreachable"));
        eventually(|| starts.load(Ordering::SeqCst) == 3 && supervisor.all_up()).await;
        let status = supervisor.snapshot()["relay"].clone();
        assert_eq!(status.restarts, 2);
        assert_eq!(status.last_failure.as_deref(), Some("ended: ended without being asked to stop"));
        stop.cancel();
    }
}
