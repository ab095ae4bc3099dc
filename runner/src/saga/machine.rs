//! The saga state machine: pure, no I/O, no clock. Given a state, an input and the time,
//! it returns the next state, the commands to send and the history lines to record.
//!
//! Rules:
//! - steps run in order; a step's `success` reply starts the next one;
//! - a `failure` reply means the step had no effect: the completed steps are compensated
//!   in reverse order;
//! - no reply before the timeout: the request is sent again after a backoff, up to the
//!   retry policy's attempts; after the last one the step may still have taken effect,
//!   so it is compensated too, before the completed steps;
//! - a compensation that is refused or never answered ends the saga FAILED;
//! - replies that do not match what the saga waits for (late or duplicated) are ignored.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaDefinition {
    pub name: String,
    pub trigger: String,
    pub on_completed: String,
    pub on_cancelled: String,
    pub on_failed: String,
    pub steps: Vec<StepDefinition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepDefinition {
    pub name: String,
    pub request: String,
    pub success: String,
    pub failure: Option<String>,
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub side_effect: bool,
    pub irreversible: bool,
    pub compensation: Option<CompensationDefinition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompensationDefinition {
    pub request: String,
    pub success: String,
    pub failure: Option<String>,
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Total attempts, the first one included (at least 1).
    pub attempts: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl SagaDefinition {
    /// The definition's version: a hash of everything in it (16 hex digits). Each saga
    /// instance keeps the version it started with and finishes on it.
    pub fn hash(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in text.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{hash:016x}")
    }

    /// The index of the step called `name`.
    pub fn step_index(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.name == name)
    }
}

impl RetryPolicy {
    /// Delay after the `attempt`-th attempt (1-based) timed out: exponential, capped.
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// Where a saga instance is. Persisted as JSON; times are Unix epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum SagaState {
    Running { step: usize, attempt: u32, waiting: Waiting },
    Compensating { pending: Vec<usize>, attempt: u32, waiting: Waiting, reason: String },
    Completed,
    Cancelled { reason: String },
    Failed { reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "for", rename_all = "snake_case")]
pub enum Waiting {
    Reply { deadline_ms: i64 },
    Backoff { until_ms: i64 },
}

/// The terminal status written back to the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Completed,
    Cancelled,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Completed => "COMPLETED",
            Status::Cancelled => "CANCELLED",
            Status::Failed => "FAILED",
        }
    }
}

impl crate::store::sagas::SagaRecord for SagaState {
    fn status_name(&self) -> &'static str {
        self.status().as_str()
    }

    fn wake_at_ms(&self) -> Option<i64> {
        SagaState::wake_at_ms(self)
    }
}

impl SagaState {
    pub fn status(&self) -> Status {
        match self {
            SagaState::Running { .. } | SagaState::Compensating { .. } => Status::Pending,
            SagaState::Completed => Status::Completed,
            SagaState::Cancelled { .. } => Status::Cancelled,
            SagaState::Failed { .. } => Status::Failed,
        }
    }

    /// When the saga must be looked at again if nothing arrives.
    pub fn wake_at_ms(&self) -> Option<i64> {
        match self {
            SagaState::Running { waiting, .. } | SagaState::Compensating { waiting, .. } => Some(match waiting {
                Waiting::Reply { deadline_ms } => *deadline_ms,
                Waiting::Backoff { until_ms } => *until_ms,
            }),
            _ => None,
        }
    }
}

/// What happened to a saga instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    /// The trigger event arrived.
    Start,
    /// A reply of the given event type arrived; `detail` is its reason, if any.
    Reply { event_type: &'a str, detail: Option<&'a str> },
    /// Time passed: due timeouts and backoffs fire.
    Tick,
    /// A request of the given type was dead-lettered by the service that consumed it.
    DeadLettered { request: &'a str, detail: Option<&'a str> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Send the request (or compensation request) of a step.
    Send { event_type: String, step: String, attempt: u32 },
    /// The saga ended: emit the terminal event and record the status.
    Finish { status: Status, event_type: String, reason: Option<String> },
}

pub use crate::store::sagas::HistoryEntry;

/// The result of one input: `state` is `None` when the input changed nothing (ignored).
/// The history action of a step request that got no reply before its deadline.
pub const TIMED_OUT: &str = "timed out";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Transition {
    pub state: Option<SagaState>,
    pub commands: Vec<Command>,
    pub history: Vec<HistoryEntry>,
}

impl Transition {
    fn note(&mut self, step: &str, action: &str, detail: Option<String>) {
        self.history.push(HistoryEntry { step: step.to_string(), action: action.to_string(), detail });
    }
}

/// Applies one input to a saga instance (`None` when it does not exist yet).
pub fn advance(def: &SagaDefinition, state: Option<&SagaState>, input: Input<'_>, now_ms: i64) -> Transition {
    let mut t = Transition::default();
    if let Some(missing) = state.and_then(|s| unknown_step(def, s)) {
        // The definition changed under an instance in flight: end it visibly instead of guessing.
        let reason = format!("saga definition changed while in flight: step #{missing} no longer exists");
        t.state = Some(finish(def, Status::Failed, Some(reason), &mut t));
        return t;
    }
    let next = match (state, input) {
        (None, Input::Start) => Some(start_step(def, 0, 1, now_ms, &mut t)),
        (None, _) | (Some(_), Input::Start) => None,
        (Some(SagaState::Running { step, attempt, waiting }), input) => {
            running(def, *step, *attempt, *waiting, input, now_ms, &mut t)
        }
        (Some(SagaState::Compensating { pending, attempt, waiting, reason }), input) => {
            compensating(def, pending, *attempt, *waiting, reason, input, now_ms, &mut t)
        }
        (Some(_terminal), _) => None,
    };
    t.state = next;
    t
}

/// A step index the state refers to that the definition does not have.
fn unknown_step(def: &SagaDefinition, state: &SagaState) -> Option<usize> {
    let valid = |i: &usize| def.steps.get(*i).is_some();
    match state {
        SagaState::Running { step, .. } => (!valid(step)).then_some(*step),
        SagaState::Compensating { pending, .. } => {
            pending.iter().find(|i| !valid(i) || def.steps[**i].compensation.is_none()).copied()
        }
        _ => None,
    }
}

fn start_step(def: &SagaDefinition, step: usize, attempt: u32, now_ms: i64, t: &mut Transition) -> SagaState {
    let Some(definition) = def.steps.get(step) else {
        return finish(def, Status::Completed, None, t);
    };
    t.commands.push(Command::Send { event_type: definition.request.clone(), step: definition.name.clone(), attempt });
    t.note(&definition.name, "requested", Some(format!("attempt {attempt}")));
    SagaState::Running { step, attempt, waiting: Waiting::Reply { deadline_ms: now_ms + millis(definition.timeout) } }
}

fn running(
    def: &SagaDefinition,
    step: usize,
    attempt: u32,
    waiting: Waiting,
    input: Input<'_>,
    now_ms: i64,
    t: &mut Transition,
) -> Option<SagaState> {
    let definition = &def.steps[step];
    match input {
        Input::Start => None,
        Input::Reply { event_type, detail } if event_type == definition.success => {
            t.note(&definition.name, "succeeded", detail.map(str::to_string));
            Some(start_step(def, step + 1, 1, now_ms, t))
        }
        Input::Reply { event_type, detail } if definition.failure.as_deref() == Some(event_type) => {
            let reason = format!("{} failed: {}", definition.name, detail.unwrap_or("refused"));
            t.note(&definition.name, "failed", detail.map(str::to_string));
            // The refused step had no effect; undo the completed ones, last first.
            Some(begin_compensation(def, (0..step).rev().collect(), reason, now_ms, t))
        }
        Input::Reply { .. } => None,
        Input::DeadLettered { request, detail } if request == definition.request => {
            let why = detail.unwrap_or("no reason given");
            t.note(&definition.name, "dead-lettered", Some(why.to_string()));
            let reason = format!("{} request dead-lettered: {why}", definition.name);
            // Like a request never answered: undo it too, so a replay of it is refused.
            Some(begin_compensation(def, (0..=step).rev().collect(), reason, now_ms, t))
        }
        Input::DeadLettered { .. } => None,
        Input::Tick => match waiting {
            Waiting::Reply { deadline_ms } if now_ms >= deadline_ms => {
                if attempt < definition.retry.attempts {
                    let until_ms = now_ms + millis(definition.retry.delay_after(attempt));
                    t.note(&definition.name, TIMED_OUT, Some(format!("attempt {attempt}, retrying")));
                    let backoff = SagaState::Running { step, attempt, waiting: Waiting::Backoff { until_ms } };
                    Some(if until_ms <= now_ms { start_step(def, step, attempt + 1, now_ms, t) } else { backoff })
                } else {
                    t.note(&definition.name, TIMED_OUT, Some(format!("giving up after {attempt} attempts")));
                    let reason = format!("{} timed out after {attempt} attempts", definition.name);
                    // A request that was never answered may still have taken effect: undo it too.
                    Some(begin_compensation(def, (0..=step).rev().collect(), reason, now_ms, t))
                }
            }
            Waiting::Backoff { until_ms } if now_ms >= until_ms => Some(start_step(def, step, attempt + 1, now_ms, t)),
            Waiting::Reply { .. } | Waiting::Backoff { .. } => None,
        },
    }
}

fn begin_compensation(
    def: &SagaDefinition,
    candidates: Vec<usize>,
    reason: String,
    now_ms: i64,
    t: &mut Transition,
) -> SagaState {
    let mut pending = Vec::new();
    for index in candidates {
        let step = &def.steps[index];
        if step.compensation.is_some() {
            pending.push(index);
        } else if step.side_effect && step.irreversible {
            t.note(&step.name, "not compensated", Some("irreversible".to_string()));
        }
    }
    if pending.is_empty() {
        return finish(def, Status::Cancelled, Some(reason), t);
    }
    send_compensation(def, pending, 1, reason, now_ms, t)
}

fn send_compensation(
    def: &SagaDefinition,
    pending: Vec<usize>,
    attempt: u32,
    reason: String,
    now_ms: i64,
    t: &mut Transition,
) -> SagaState {
    let step = &def.steps[pending[0]];
    let compensation = step.compensation.as_ref().expect("pending steps have a compensation");
    t.commands.push(Command::Send { event_type: compensation.request.clone(), step: step.name.clone(), attempt });
    t.note(&step.name, "compensating", Some(format!("attempt {attempt}")));
    let deadline_ms = now_ms + millis(compensation.timeout);
    SagaState::Compensating { pending, attempt, waiting: Waiting::Reply { deadline_ms }, reason }
}

#[allow(clippy::too_many_arguments)]
fn compensating(
    def: &SagaDefinition,
    pending: &[usize],
    attempt: u32,
    waiting: Waiting,
    reason: &str,
    input: Input<'_>,
    now_ms: i64,
    t: &mut Transition,
) -> Option<SagaState> {
    let step = &def.steps[pending[0]];
    let compensation = step.compensation.as_ref()?;
    match input {
        Input::Start => None,
        Input::Reply { event_type, detail } if event_type == compensation.success => {
            t.note(&step.name, "compensated", detail.map(str::to_string));
            let rest = pending[1..].to_vec();
            Some(if rest.is_empty() {
                finish(def, Status::Cancelled, Some(reason.to_string()), t)
            } else {
                send_compensation(def, rest, 1, reason.to_string(), now_ms, t)
            })
        }
        Input::Reply { event_type, detail } if compensation.failure.as_deref() == Some(event_type) => {
            t.note(&step.name, "compensation failed", detail.map(str::to_string));
            let why = format!("{reason}; compensating {} failed: {}", step.name, detail.unwrap_or("refused"));
            Some(finish(def, Status::Failed, Some(why), t))
        }
        Input::Reply { .. } => None,
        Input::DeadLettered { request, detail } if request == compensation.request => {
            let why = detail.unwrap_or("no reason given");
            t.note(&step.name, "compensation dead-lettered", Some(why.to_string()));
            Some(finish(
                def,
                Status::Failed,
                Some(format!("{reason}; compensating {} dead-lettered: {why}", step.name)),
                t,
            ))
        }
        Input::DeadLettered { .. } => None,
        Input::Tick => match waiting {
            Waiting::Reply { deadline_ms } if now_ms >= deadline_ms => {
                if attempt < compensation.retry.attempts {
                    let until_ms = now_ms + millis(compensation.retry.delay_after(attempt));
                    t.note(&step.name, "compensation timed out", Some(format!("attempt {attempt}, retrying")));
                    Some(if until_ms <= now_ms {
                        send_compensation(def, pending.to_vec(), attempt + 1, reason.to_string(), now_ms, t)
                    } else {
                        SagaState::Compensating {
                            pending: pending.to_vec(),
                            attempt,
                            waiting: Waiting::Backoff { until_ms },
                            reason: reason.to_string(),
                        }
                    })
                } else {
                    t.note(&step.name, "compensation timed out", Some(format!("giving up after {attempt} attempts")));
                    let why = format!("{reason}; compensating {} timed out after {attempt} attempts", step.name);
                    Some(finish(def, Status::Failed, Some(why), t))
                }
            }
            Waiting::Backoff { until_ms } if now_ms >= until_ms => {
                Some(send_compensation(def, pending.to_vec(), attempt + 1, reason.to_string(), now_ms, t))
            }
            Waiting::Reply { .. } | Waiting::Backoff { .. } => None,
        },
    }
}

fn finish(def: &SagaDefinition, status: Status, reason: Option<String>, t: &mut Transition) -> SagaState {
    let event_type = match status {
        Status::Completed => &def.on_completed,
        Status::Cancelled => &def.on_cancelled,
        Status::Failed | Status::Pending => &def.on_failed,
    };
    t.commands.push(Command::Finish { status, event_type: event_type.clone(), reason: reason.clone() });
    t.note(&def.name, status.as_str().to_lowercase().as_str(), reason.clone());
    match status {
        Status::Completed => SagaState::Completed,
        Status::Cancelled => SagaState::Cancelled { reason: reason.unwrap_or_default() },
        Status::Failed | Status::Pending => SagaState::Failed { reason: reason.unwrap_or_default() },
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
