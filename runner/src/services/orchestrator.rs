//! The orchestrator: feeds trigger events, replies and timer ticks into the state machine,
//! and persists each transition with its commands (as outbox rows) in one transaction (shared
//! with the other arrivals ready at the same time: see [`super::group_commit`]).

use std::sync::Arc;

use futures::FutureExt as _;

use serde_json::json;

use super::group_commit::GroupCommit;
use super::{delivery_policy, store_error, OutboxWriter, ServiceContext};
use crate::event::{now_ms, Event};
use crate::saga::canary::{Canary, Variant};
use crate::saga::machine::{self, advance, Command, Input, SagaDefinition, SagaState, Transition};
use crate::saga::SagaConfig;
use crate::store::sagas::{Route, Routes};
use crate::store::{inbox, orders, sagas, ReadAhead, StoreError, Tx};
use crate::supervise;
use crate::telemetry;
use crate::transport::dead_letter::{self, ErrorKind};
use crate::transport::{consume_raw, HandleError, RawMessage, TransportError};

/// What the orchestrator needs besides its context: the saga, its step's canary, if any,
/// and the definitions its instances run on.
pub struct Orchestrator {
    pub config: SagaConfig,
    pub canary: Option<Arc<Canary>>,
    pub versions: Versions,
}

impl Orchestrator {
    pub fn new(config: SagaConfig, canary: Option<Arc<Canary>>) -> Self {
        let versions = Versions::new(config.definition.clone());
        Orchestrator { config, canary, versions }
    }
}

/// The saga definitions instances run on: the one in force (new instances start on it) and,
/// read from `saga_definitions` when first needed, those earlier instances started on.
pub struct Versions {
    current: Arc<SagaDefinition>,
    current_hash: String,
    /// Earlier definitions by hash, as read (none: not kept, or unreadable).
    known: std::sync::Mutex<std::collections::HashMap<String, Option<Arc<SagaDefinition>>>>,
    /// The definition in force is in `saga_definitions` (committed): new instances need not
    /// write it in their own transaction.
    kept: std::sync::atomic::AtomicBool,
}

impl Versions {
    pub fn new(current: SagaDefinition) -> Self {
        let current_hash = current.hash();
        Versions { current: Arc::new(current), current_hash, known: Default::default(), kept: Default::default() }
    }

    pub fn current_hash(&self) -> &str {
        &self.current_hash
    }

    /// The definition of an instance stored with `hash` (none: from before versions were
    /// kept, which follows the definition in force).
    pub async fn for_instance(&self, tx: &mut Tx, hash: Option<&str>) -> Result<Arc<SagaDefinition>, StoreError> {
        let Some(hash) = hash.filter(|h| *h != self.current_hash) else { return Ok(self.current.clone()) };
        let cached = self.known.lock().expect("versions lock").get(hash).cloned();
        let found = match cached {
            Some(found) => found,
            None => self.read(tx, hash).await?,
        };
        found.ok_or_else(|| StoreError::Corrupt(format!("saga definition {hash} is not kept or cannot be read")))
    }

    /// As [`Versions::for_instance`] outside a transaction, for counting: `None` when the
    /// definition is not kept or cannot be read. A transaction is opened only on a miss.
    async fn lookup(
        &self,
        store: &crate::store::Store,
        hash: Option<&str>,
    ) -> Result<Option<Arc<SagaDefinition>>, StoreError> {
        let Some(hash) = hash.filter(|h| *h != self.current_hash) else { return Ok(Some(self.current.clone())) };
        if let Some(found) = self.known.lock().expect("versions lock").get(hash).cloned() {
            return Ok(found);
        }
        let mut tx = store.begin().await?;
        self.read(&mut tx, hash).await
    }

    /// Reads the definition kept under `hash` and remembers it (or that there is none).
    async fn read(&self, tx: &mut Tx, hash: &str) -> Result<Option<Arc<SagaDefinition>>, StoreError> {
        let text = sagas::definition(tx, hash).await?;
        let found = text.and_then(|t| serde_json::from_str::<SagaDefinition>(&t).ok()).map(Arc::new);
        self.known.lock().expect("versions lock").insert(hash.to_string(), found.clone());
        Ok(found)
    }

    /// Keeps the definition in force in `saga_definitions` and gives it the instances from
    /// before versions were kept.
    pub async fn keep(&self, store: &crate::store::Store, now: i64) -> Result<(), StoreError> {
        let mut tx = store.begin().await?;
        let json = serde_json::to_string(self.current.as_ref()).unwrap_or_default();
        sagas::save_definition(&mut tx, &self.current.name, &self.current_hash, &json, now).await?;
        sagas::adopt_unversioned(&mut tx, &self.current.name, &self.current_hash).await?;
        tx.commit().await?;
        self.kept.store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }
}

/// An instance a new definition moves onto itself (a step mapping), in its new state.
pub struct Move {
    pub id: String,
    pub version: i64,
    pub state: SagaState,
}

/// The most instances in flight read to weigh a change of definition.
pub const MAX_IN_FLIGHT_READ: u32 = 100_000;

/// What putting `next` in force instead of `current` does to the instances in flight: those
/// a step mapping moves (to pass to [`move_instances`]), or — when some wait on a step `next`
/// no longer has and does not map — why the change is refused, with their count by step.
pub async fn plan_change(
    store: &crate::store::Store,
    current: &SagaConfig,
    next: &SagaConfig,
    now: i64,
) -> Result<Vec<Move>, String> {
    let pending = sagas::pending(store, &current.definition.name, MAX_IN_FLIGHT_READ)
        .await
        .map_err(|e| format!("cannot read the sagas in flight to weigh the new definition: {e}"))?;
    let next_hash = next.definition.hash();
    let versions = Versions::new(current.definition.clone());
    let mut moves = Vec::new();
    let mut stranded: std::collections::BTreeMap<String, u64> = Default::default();
    for instance in pending {
        if instance.definition.as_deref() == Some(next_hash.as_str()) {
            continue;
        }
        let Ok(state) = serde_json::from_str::<SagaState>(&instance.state) else { continue };
        let found = versions
            .lookup(store, instance.definition.as_deref())
            .await
            .map_err(|e| format!("cannot read a saga definition to weigh the new one: {e}"))?;
        let Some(old) = found else { continue };
        match crate::saga::versions::moved(&old, &next.definition, &next.step_mapping, &state, now) {
            Ok(Some(state)) => moves.push(Move { id: instance.id, version: instance.version, state }),
            Ok(None) => {}
            Err(step) => *stranded.entry(step).or_default() += 1,
        }
    }
    if stranded.is_empty() {
        return Ok(moves);
    }
    let waiting: Vec<String> = stranded.iter().map(|(step, n)| format!("{n} at `{step}`")).collect();
    let first = stranded.keys().next().cloned().unwrap_or_default();
    Err(format!(
        "saga instances in flight wait on steps the new definition no longer has ({}); say where they \
         continue with [[saga.step_mapping]] (from = \"{first}\", to = a step of the new definition), or make \
         the change once they have finished",
        waiting.join(", ")
    ))
}

/// The instances in flight of one definition, by step and phase.
#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DefinitionCensus {
    pub hash: String,
    /// Whether new instances start on it.
    pub current: bool,
    /// Its steps, in order (empty when it is not kept).
    pub steps: Vec<String>,
    pub total: u64,
    pub by_step: std::collections::BTreeMap<String, std::collections::BTreeMap<&'static str, u64>>,
}

/// The instances of `config`'s saga in flight, by the definition each runs on and the step
/// it is at (running it, or undoing it first): what a change of definition would meet.
/// Also how many were read (at most [`MAX_IN_FLIGHT_READ`]) and how many could not be read.
pub async fn in_flight(
    store: &crate::store::Store,
    config: &SagaConfig,
) -> Result<(Vec<DefinitionCensus>, u64, u64), StoreError> {
    let pending = sagas::pending(store, &config.definition.name, MAX_IN_FLIGHT_READ).await?;
    let versions = Versions::new(config.definition.clone());
    let current = versions.current_hash().to_string();
    let mut by_hash: std::collections::BTreeMap<String, DefinitionCensus> = Default::default();
    let mut unreadable = 0;
    let read = pending.len() as u64;
    for instance in pending {
        let hash = instance.definition.clone().unwrap_or_else(|| current.clone());
        let definition = versions.lookup(store, Some(&hash)).await?;
        let entry = by_hash.entry(hash.clone()).or_insert_with(|| DefinitionCensus {
            current: hash == current,
            steps: definition.as_ref().map(|d| d.steps.iter().map(|s| s.name.clone()).collect()).unwrap_or_default(),
            hash: hash.clone(),
            ..Default::default()
        });
        let (Some(definition), Ok(state)) = (definition, serde_json::from_str::<SagaState>(&instance.state)) else {
            unreadable += 1;
            continue;
        };
        let phase = if matches!(state, SagaState::Compensating { .. }) { "compensating" } else { "running" };
        let Some(step) = crate::saga::versions::waiting_on(&definition, &state).first().map(|s| s.to_string()) else {
            unreadable += 1;
            continue;
        };
        entry.total += 1;
        *entry.by_step.entry(step).or_default().entry(phase).or_default() += 1;
    }
    Ok((by_hash.into_values().collect(), read, unreadable))
}

/// Keeps `next`'s definition and moves the instances of `moves` onto it (each in its own
/// transaction, with a history line; one that moved meanwhile stays where it is).
pub async fn move_instances(store: &crate::store::Store, next: &SagaConfig, moves: Vec<Move>, now: i64) {
    let versions = Versions::new(next.definition.clone());
    if let Err(e) = versions.keep(store, now).await {
        tracing::warn!(error = %e, "cannot keep the new saga definition yet");
    }
    let (mut moved, mut skipped) = (0u64, 0u64);
    for instance in moves {
        let step = crate::saga::versions::waiting_on(&next.definition, &instance.state).join(">");
        let result = async {
            let mut tx = store.begin().await?;
            sagas::migrate(&mut tx, &instance.id, instance.version, versions.current_hash(), &instance.state, now)
                .await?;
            let line = sagas::HistoryEntry {
                step: step.clone(),
                action: "moved".to_string(),
                detail: Some(format!("to saga definition {} (step mapping)", versions.current_hash())),
            };
            sagas::add_history(&mut tx, &instance.id, &[line], now);
            tx.commit().await?;
            Ok::<_, StoreError>(())
        }
        .await;
        match result {
            Ok(()) => moved += 1,
            Err(e) => {
                skipped += 1;
                tracing::warn!(saga = instance.id, error = %e, "saga instance not moved to the new definition");
            }
        }
    }
    if moved + skipped > 0 {
        tracing::info!(moved, skipped, definition = versions.current_hash(), "saga instances moved by step mappings");
    }
}

/// The topics the orchestrator reads: its saga's, and those of every definition that
/// instances in flight still run on (a step a new definition dropped still gets its replies).
async fn subscriptions(ctx: &ServiceContext, config: &SagaConfig) -> Vec<String> {
    let mut topics = config.subscriptions();
    match sagas::definitions_in_flight(&ctx.store, &config.definition.name).await {
        Ok(kept) => {
            for (hash, text) in kept {
                match serde_json::from_str::<SagaDefinition>(&text) {
                    Ok(definition) => {
                        let earlier = SagaConfig { definition, ..config.clone() };
                        topics.extend(earlier.subscriptions());
                    }
                    Err(e) => tracing::warn!(definition = hash, error = %e, "a kept saga definition cannot be read"),
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the saga definitions in flight; reading this one's topics"),
    }
    topics.sort();
    topics.dedup();
    topics
}

pub async fn run(ctx: ServiceContext, config: SagaConfig, canary: Option<Arc<Canary>>) -> Result<(), TransportError> {
    let orchestrator = Arc::new(Orchestrator::new(config.clone(), canary));
    if let Err(e) = orchestrator.versions.keep(&ctx.store, now_ms()).await {
        // Until it is kept, every new instance keeps it in its own transaction.
        tracing::warn!(error = %e, "cannot keep the saga definition yet");
    }
    let topics = subscriptions(&ctx, &config).await;
    let consumer = ctx.broker.consumer(&config.group, &topics)?;
    let name = format!("{}/saga-{}", ctx.service, config.definition.name);
    tracing::info!(consumer = name, group = config.group, "orchestrator started");
    // The timer and the canary analysis are parts of their own, ending with this attempt.
    let timer = ctx.parts.spawn(format!("{}/saga timer", ctx.service), ctx.shutdown.clone(), {
        let (ctx, orchestrator) = (ctx.clone(), orchestrator.clone());
        move |stop| supervise::infallible(run_timer(ctx.with_shutdown(stop), orchestrator.clone()))
    });
    let analysis = orchestrator.canary.clone().map(|canary| {
        let base = ctx.clone();
        ctx.parts.spawn(format!("{}/canary analysis", ctx.service), ctx.shutdown.clone(), move |stop| {
            run_analysis(base.with_shutdown(stop), canary.clone())
        })
    });
    let retry = crate::transport::DeliveryRetry::default();
    let mut policy = delivery_policy(&config.group, &retry, None, &ctx.broker);
    policy.chaos = Some(ctx.consume_chaos(&name, "saga"));
    policy.max_in_flight = config.max_in_flight;
    let dead_letters = ctx.broker.publisher()?;
    // Dead letters of the saga's requests (and of its canary's): each fails its step.
    let dead_letter_topics =
        crate::transport::topics_where(&config.topic_uses(), |u| u.consumes() && u.event_type.is_none());
    let committer = GroupCommit::start(&ctx, &name, config.max_in_flight, config.max_group, config.groups_in_flight);
    let inbox_name: Arc<str> = name.as_str().into();
    consume_raw(consumer, &name, ctx.shutdown.clone(), policy, dead_letters, |raw: Arc<RawMessage>| {
        let from_dead_letters = dead_letter_topics.contains(&raw.topic);
        on_message(&ctx, &orchestrator, &committer, &inbox_name, raw, from_dead_letters)
    })
    .await;
    committer.close().await;
    let _ = timer.await;
    if let Some(analysis) = analysis {
        let _ = analysis.await;
    }
    tracing::info!(consumer = name, "orchestrator stopped");
    Ok(())
}

/// What a message means to the saga, read from a trigger, a reply or a dead letter.
pub struct Arrival {
    id: String,
    saga_id: String,
    event_type: String,
    detail: Option<String>,
    dead_letter: bool,
    payload: serde_json::Value,
    traceparent: Option<String>,
}

impl Arrival {
    /// A decoded trigger or reply (its schema already checked).
    pub fn event(event: Event) -> Self {
        Arrival {
            detail: event.payload.get("reason").and_then(|r| r.as_str()).map(str::to_string),
            id: event.id,
            saga_id: event.key,
            event_type: event.event_type,
            dead_letter: false,
            payload: event.payload,
            traceparent: event.traceparent,
        }
    }

    /// A dead letter of the saga's request `request`, read at `topic`/`partition`/`offset`.
    pub fn dead_letter(saga_id: &str, request: &str, detail: Option<String>, at: (&str, i32, i64)) -> Self {
        let (topic, partition, offset) = at;
        Arrival {
            id: format!("dead-letter:{topic}:{partition}:{offset}"),
            saga_id: saga_id.to_string(),
            event_type: request.to_string(),
            detail,
            dead_letter: true,
            payload: serde_json::Value::Null,
            traceparent: None,
        }
    }

    fn read(
        ctx: &ServiceContext,
        orchestrator: &Orchestrator,
        raw: &RawMessage,
        from_dead_letters: bool,
    ) -> Result<Self, HandleError> {
        if from_dead_letters {
            // A dead letter may be undecodable itself: only its key and dlq headers count.
            let saga_id = raw
                .key
                .as_deref()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .ok_or_else(|| HandleError::new(ErrorKind::Rejected, "dead letter without a key (the saga id)"))?;
            if saga_id.contains('\0') {
                return Err(HandleError::new(
                    ErrorKind::Rejected,
                    "dead letter whose key (the saga id) holds a NUL byte",
                ));
            }
            let mut request = raw
                .header(dead_letter::ORIGINAL_TOPIC)
                .unwrap_or_else(|| raw.topic.trim_end_matches(".dlq").to_string());
            // A canary's dead letter fails the same step as a stable one.
            if let Some(canary) = orchestrator.config.canary.as_ref().filter(|c| c.topic == request) {
                request = canary.request.clone();
            }
            let detail = raw.header(dead_letter::ERROR_MESSAGE);
            let mut arrival = Arrival::dead_letter(&saga_id, &request, detail, (&raw.topic, raw.partition, raw.offset));
            arrival.traceparent = raw.header("traceparent");
            return Ok(arrival);
        }
        let event = raw.decode().map_err(|reason| HandleError::new(ErrorKind::Undecodable, reason))?;
        ctx.check_received(&event)?;
        Ok(Arrival::event(event))
    }
}

async fn on_message(
    ctx: &ServiceContext,
    orchestrator: &Arc<Orchestrator>,
    committer: &GroupCommit<Option<Committed>>,
    inbox_name: &Arc<str>,
    raw: Arc<RawMessage>,
    from_dead_letters: bool,
) -> Result<(), HandleError> {
    let event = Arc::new(Arrival::read(ctx, orchestrator, &raw, from_dead_letters)?);
    let (writer, shared, inbox_name) = (Arc::new(ctx.writer()), orchestrator.clone(), inbox_name.clone());
    let reads = ReadAhead {
        inbox: Some((inbox_name.clone(), event.id.clone())),
        saga: Some(event.saga_id.clone()),
        effect: None,
    };
    let committed = committer
        .run(reads, move |tx| {
            let (writer, orchestrator, inbox_name, event) =
                (writer.clone(), shared.clone(), inbox_name.clone(), event.clone());
            async move { transition_in(tx, &writer, &orchestrator, &inbox_name, &event, now_ms()).await }.boxed()
        })
        .await?;
    // Counted once committed: a group rolled back and handled again is counted once.
    if let Some(committed) = committed {
        if let Some(outcome) = &committed.outcome {
            record_step(orchestrator, outcome);
        }
        let def = &committed.definition;
        observe(def, &committed.transition, &committed.finished, committed.started_ms, committed.now);
    }
    Ok(())
}

/// What a committed arrival did, counted after the commit.
pub struct Committed {
    pub transition: Transition,
    /// The definition the instance runs on.
    pub definition: Arc<SagaDefinition>,
    finished: Vec<&'static str>,
    outcome: Option<StepOutcome>,
    started_ms: i64,
    now: i64,
}

/// The saga's step for one arrival at `now`, written in `tx`: its state, history, outbox
/// rows and inbox entry (`None`: the arrival was handled before).
pub async fn transition_in(
    tx: &mut Tx,
    writer: &OutboxWriter,
    orchestrator: &Orchestrator,
    inbox_name: &str,
    event: &Arrival,
    now: i64,
) -> Result<Option<Committed>, HandleError> {
    if inbox::find(tx, inbox_name, &event.id).await.map_err(store_error)?.is_some() {
        return Ok(None);
    }
    let saga_id = event.saga_id.as_str();
    let mut stored = sagas::load(tx, saga_id).await.map_err(store_error)?;
    let versions = &orchestrator.versions;
    let definition = match &stored {
        Some(saga) => versions.for_instance(tx, saga.definition.as_deref()).await.map_err(store_error)?,
        None => versions.current.clone(),
    };
    let def = definition.as_ref();
    let started_ms = stored.as_ref().map_or(now, |s| s.created_at_ms);
    let mut routes = stored.as_mut().map(|s| std::mem::take(&mut s.routes)).unwrap_or_default();
    let mut finished = Vec::new();
    let input = if event.dead_letter {
        Input::DeadLettered { request: &event.event_type, detail: event.detail.as_deref() }
    } else if event.event_type == def.trigger {
        Input::Start
    } else {
        Input::Reply { event_type: &event.event_type, detail: event.detail.as_deref() }
    };
    let transition = advance(def, stored.as_ref().map(|s| &s.state), input, now);
    // Read before this transition records new requests: the answer's time is from the
    // request it answers.
    let outcome = transition.state.as_ref().and_then(|_| step_outcome(def, event, &routes, now));
    if let Some(state) = &transition.state {
        let (data, traceparent) = match &stored {
            Some(saga) => (saga.data.clone(), saga.traceparent.clone()),
            None => (event.payload.clone(), event.traceparent.clone()),
        };
        let parent = event.traceparent.as_deref().or(traceparent.as_deref());
        finished = apply(writer, orchestrator, def, tx, saga_id, &data, parent, &transition, &mut routes, now).await?;
        match &stored {
            Some(saga) => sagas::update(tx, saga_id, saga.version, state, &routes, now).await,
            None => {
                if !versions.kept.load(std::sync::atomic::Ordering::Acquire) {
                    // Not known to be kept yet (the database was away at start): kept with it.
                    let json = serde_json::to_string(def).unwrap_or_default();
                    let hash = &versions.current_hash;
                    sagas::save_definition(tx, &def.name, hash, &json, now).await.map_err(store_error)?;
                }
                let hash = &versions.current_hash;
                sagas::insert(tx, saga_id, &def.name, hash, state, &routes, &data, traceparent.as_deref(), now).await
            }
        }
        .map_err(store_error)?;
    } else if stored.is_none() {
        tracing::debug!(saga = saga_id, event_type = event.event_type, "reply for an unknown saga ignored");
    }
    inbox::record(tx, inbox_name, &event.id, None, now);
    Ok(Some(Committed { transition, definition, finished, outcome, started_ms, now }))
}

/// Counts what a committed transition did: compensations started, sagas finished (with
/// their duration from the trigger to the end).
fn observe(def: &SagaDefinition, transition: &Transition, finished: &[&'static str], started_ms: i64, now: i64) {
    for command in &transition.commands {
        if let Command::Send { event_type, step, attempt: 1 } = command {
            let compensation = def
                .steps
                .iter()
                .any(|s| &s.name == step && s.compensation.as_ref().is_some_and(|c| &c.request == event_type));
            if compensation {
                metrics::counter!(telemetry::SAGA_COMPENSATIONS, "saga" => def.name.clone(), "step" => step.clone())
                    .increment(1);
            }
        }
    }
    for status in finished {
        metrics::counter!(telemetry::SAGAS_FINISHED, "saga" => def.name.clone(), "status" => *status).increment(1);
        let seconds = (now - started_ms).max(0) as f64 / 1000.0;
        metrics::histogram!(telemetry::SAGA_DURATION_SECONDS, "saga" => def.name.clone(), "status" => *status)
            .record(seconds);
    }
}

/// A step's answer: which step, the variant its request went to, how it ended, and the time
/// since the latest request.
struct StepOutcome {
    step: String,
    variant: Variant,
    result: StepResult,
    latency_ms: i64,
}

/// How a step's request ended: answered with success, refused or dead-lettered, or not
/// answered before its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StepResult {
    Success,
    Failure,
    Timeout,
}

impl StepResult {
    fn as_str(self) -> &'static str {
        match self {
            StepResult::Success => "success",
            StepResult::Failure => "failure",
            StepResult::Timeout => "timeout",
        }
    }
}

/// When an accepted arrival answers a step's request (reply, refusal or dead letter).
fn step_outcome(def: &SagaDefinition, event: &Arrival, routes: &Routes, now: i64) -> Option<StepOutcome> {
    let (step, ok) = def.steps.iter().find_map(|step| {
        if event.dead_letter {
            (event.event_type == step.request).then_some((step, false))
        } else if event.event_type == step.success {
            Some((step, true))
        } else if step.failure.as_deref() == Some(event.event_type.as_str()) {
            Some((step, false))
        } else {
            None
        }
    })?;
    let result = if ok { StepResult::Success } else { StepResult::Failure };
    routed_outcome(routes, &step.name, result, now)
}

/// The outcome of a step's latest request, with the variant and time its route recorded.
fn routed_outcome(routes: &Routes, step: &str, result: StepResult, now: i64) -> Option<StepOutcome> {
    routes.get(step).map(|route| StepOutcome {
        step: step.to_string(),
        variant: Variant::parse(&route.variant),
        result,
        latency_ms: now - route.sent_at_ms,
    })
}

/// Counts a step's answer (`saga_step_*`, with its variant) and feeds the canary's analysis.
fn record_step(orchestrator: &Orchestrator, outcome: &StepOutcome) {
    let saga = orchestrator.config.definition.name.clone();
    let labels = [("saga", saga), ("step", outcome.step.clone()), ("variant", outcome.variant.as_str().to_string())];
    metrics::histogram!(telemetry::SAGA_STEP_DURATION_SECONDS, &labels)
        .record(outcome.latency_ms.max(0) as f64 / 1000.0);
    let mut with_result = labels.to_vec();
    with_result.push(("result", outcome.result.as_str().to_string()));
    metrics::counter!(telemetry::SAGA_STEP_RESULTS, &with_result).increment(1);
    // A timeout counts against the canary like a refusal: a version that loses requests is
    // at least as bad as one that declines them.
    if let Some(canary) = orchestrator.canary.as_ref().filter(|c| c.config().step == outcome.step) {
        canary.record(outcome.variant, outcome.result == StepResult::Success, outcome.latency_ms);
    }
}

/// Judges the canary every interval and announces the changes it makes on the control topic.
async fn run_analysis(ctx: ServiceContext, canary: Arc<Canary>) -> Result<(), TransportError> {
    let publisher = ctx.broker.bounded_publisher()?;
    loop {
        let interval = canary.config().analysis.map_or(std::time::Duration::from_secs(1), |a| a.interval);
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(interval) => {}
        }
        let now = now_ms();
        let Some(decision) = canary.judge(now) else { continue };
        let Some(setting) = canary.apply(&decision, now) else { continue };
        let record = crate::chaos::ControlRecord::Canary(canary.config().step, Some(setting));
        if let Err(e) = publisher
            .publish_raw(crate::chaos::CONTROL_TOPIC, Some(record.key().as_bytes()), record.value().as_deref(), &[])
            .await
        {
            tracing::warn!(error = %e, "cannot announce the canary decision on the control topic");
        }
    }
}

/// Writes the history and turns commands into outbox rows (and the order's final status).
#[allow(clippy::too_many_arguments)]
async fn apply(
    writer: &OutboxWriter,
    orchestrator: &Orchestrator,
    def: &SagaDefinition,
    tx: &mut Tx,
    saga_id: &str,
    data: &serde_json::Value,
    traceparent: Option<&str>,
    transition: &Transition,
    routes: &mut Routes,
    now: i64,
) -> Result<Vec<&'static str>, HandleError> {
    sagas::add_history(tx, saga_id, &transition.history, now);
    let mut finished = Vec::new();
    for command in &transition.commands {
        let mut topic = None;
        let (event_type, payload) = match command {
            Command::Send { event_type, step, .. } => {
                topic = route(orchestrator, def, routes, saga_id, step, event_type, now);
                (event_type, data.clone())
            }
            Command::Finish { status, event_type, reason } => {
                orders::set_status(tx, saga_id, status.as_str(), reason.as_deref(), now);
                finished.push(status.as_str());
                (event_type, json!({ "orderId": saga_id, "status": status.as_str(), "reason": reason }))
            }
        };
        let mut event =
            Event::new(event_type, saga_id, &writer.service, payload, Some(crate::traces::outgoing(traceparent)));
        event.topic = topic;
        writer.emit(tx, &event).await?;
    }
    Ok(finished)
}

/// The topic of a step request: the canary's for orders routed to it. The first request of a
/// saga's canary step fixes its variant, so retries go where the first one went; every
/// request of a step records when it went.
fn route(
    orchestrator: &Orchestrator,
    def: &SagaDefinition,
    routes: &mut Routes,
    saga_id: &str,
    step: &str,
    event_type: &str,
    now: i64,
) -> Option<String> {
    // Only a step's own request is routed and timed; compensations go to the stable service.
    if !def.steps.iter().any(|s| s.name == step && s.request == event_type) {
        return None;
    }
    let canary = orchestrator.canary.as_ref().map(|c| (c, c.config())).filter(|(_, config)| config.step == step);
    let route = routes.entry(step.to_string()).or_insert_with(|| {
        let variant = canary.as_ref().map_or(Variant::Stable, |(canary, _)| canary.route(saga_id));
        Route { variant: variant.as_str().to_string(), sent_at_ms: now }
    });
    route.sent_at_ms = now;
    let variant = Variant::parse(&route.variant);
    let (_, config) = canary?;
    metrics::counter!(crate::telemetry::CANARY_REQUESTS, "step" => step.to_string(), "variant" => variant.as_str())
        .increment(1);
    (variant == Variant::Canary).then_some(config.topic)
}

/// How often the sagas are counted by state (`sagas` gauge).
const CENSUS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Sets the `sagas{saga,state}` gauge from the table.
async fn census(ctx: &ServiceContext, saga: &str) {
    match sagas::count_by_status(&ctx.store, saga).await {
        Ok(counts) => {
            for (state, count) in counts {
                metrics::gauge!(telemetry::SAGAS, "saga" => saga.to_string(), "state" => state).set(count as f64);
            }
        }
        Err(e) => tracing::debug!(error = %e, "cannot count sagas"),
    }
}

/// Fires due timeouts and backoffs.
async fn run_timer(ctx: ServiceContext, orchestrator: Arc<Orchestrator>) {
    let config = &orchestrator.config;
    let mut interval = tokio::time::interval(config.tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_census = std::time::Instant::now() - CENSUS_INTERVAL;
    loop {
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        if last_census.elapsed() >= CENSUS_INTERVAL {
            last_census = std::time::Instant::now();
            census(&ctx, &config.definition.name).await;
        }
        let due = match sagas::due(&ctx.store, &config.definition.name, now_ms(), 200).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for due sagas");
                continue;
            }
        };
        for saga_id in due {
            if let Err(e) = tick(&ctx, &orchestrator, &saga_id).await {
                // A conflict means a reply moved the saga meanwhile; the next tick looks again.
                tracing::debug!(saga = saga_id, error = %e, "timer tick not applied");
            }
        }
    }
}

async fn tick(ctx: &ServiceContext, orchestrator: &Orchestrator, saga_id: &str) -> Result<(), HandleError> {
    let mut tx = ctx.begin().await.map_err(store_error)?;
    let Some(ticked) = tick_in(&mut tx, &ctx.writer(), orchestrator, saga_id, now_ms()).await? else { return Ok(()) };
    tx.commit().await.map_err(store_error)?;
    ctx.outbox_written.notify_one();
    for outcome in &ticked.timed_out {
        record_step(orchestrator, outcome);
    }
    observe(&ticked.definition, &ticked.transition, &ticked.finished, ticked.started_ms, ticked.now);
    Ok(())
}

/// What a timer tick did to one saga, counted after the commit.
pub struct Ticked {
    pub transition: Transition,
    definition: Arc<SagaDefinition>,
    finished: Vec<&'static str>,
    timed_out: Vec<StepOutcome>,
    started_ms: i64,
    now: i64,
}

/// Feeds one saga a timer tick at `now`, written in `tx` (`None`: nothing was due, or the
/// saga is gone).
pub async fn tick_in(
    tx: &mut Tx,
    writer: &OutboxWriter,
    orchestrator: &Orchestrator,
    saga_id: &str,
    now: i64,
) -> Result<Option<Ticked>, HandleError> {
    let Some(mut saga) = sagas::load(tx, saga_id).await.map_err(store_error)? else { return Ok(None) };
    let definition = orchestrator.versions.for_instance(tx, saga.definition.as_deref()).await.map_err(store_error)?;
    let def = definition.as_ref();
    let transition = advance(def, Some(&saga.state), Input::Tick, now);
    let Some(state) = &transition.state else { return Ok(None) };
    // Steps whose request went unanswered, read before a retry records its new send time.
    let timed_out = transition
        .history
        .iter()
        .filter(|h| h.action == machine::TIMED_OUT)
        .filter_map(|entry| routed_outcome(&saga.routes, &entry.step, StepResult::Timeout, now))
        .collect();
    let mut routes = std::mem::take(&mut saga.routes);
    // A timeout has no message to continue from: its span hangs off the saga's own trace.
    let span = tracing::info_span!("saga timer", otel.name = format!("{} timer", def.name), saga.id = saga_id);
    crate::traces::set_parent(&span, saga.traceparent.as_deref());
    let applied = apply(
        writer,
        orchestrator,
        def,
        tx,
        saga_id,
        &saga.data,
        saga.traceparent.as_deref(),
        &transition,
        &mut routes,
        now,
    );
    let finished = tracing::Instrument::instrument(applied, span).await?;
    sagas::update(tx, saga_id, saga.version, state, &routes, now).await.map_err(store_error)?;
    Ok(Some(Ticked { transition, definition, finished, timed_out, started_ms: saga.created_at_ms, now }))
}
