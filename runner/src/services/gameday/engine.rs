//! One game-day run from start to verdict: the load (by [`crate::load`]), the fault timeline
//! through chaos-svc (each fault leased for its remaining time plus a margin), a tick every
//! second that settles orders from the database, samples the timeline and judges the stop
//! conditions, then the rollback, the settling, the audit and the verdict.
//!
//! Rollback comes first whenever the run ends — load over, stop condition, abort, shutdown:
//! every rule the run created is deleted and the canary put back before anything else is
//! waited for. If this process dies instead, the leases end the faults.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::audit::{self, AuditInput};
use super::model::{FaultRecord, HypothesisCheck, PhaseVerdict, RunRecord, RunState, Sample, StopRecord, Verdict};
use super::runs;
use super::scenario::{
    good_for, percent, Fault, FaultAction, MixDraw, OrderKind, Scenario, StopCondition, ThresholdKind,
};
use super::system::SystemClient;
use crate::event::now_ms;
use crate::services::relay::AfterPublish;
use crate::store::Store;
use crate::transport::Broker;

/// How often the run looks at its orders, faults and stop conditions.
const TICK: Duration = Duration::from_secs(1);
/// How often the live record is written to the database (a run killed mid-way shows there).
const SAVE_EVERY_TICKS: u64 = 5;
/// How often the live invariants are checked when a stop condition asks for them.
const INVARIANTS_EVERY_TICKS: u64 = 5;

/// What a run needs from its service.
pub struct RunContext {
    pub store: Store,
    pub broker: Broker,
    pub system: SystemClient,
    pub after_publish: AfterPublish,
    /// Cancelled by `POST …/abort` (the reason in `abort_reason`) or by the service stopping.
    pub abort: CancellationToken,
    pub abort_reason: Arc<Mutex<Option<String>>>,
    /// The live record the API shows.
    pub record: Arc<Mutex<RunRecord>>,
}

/// One accepted order as the run follows it.
#[derive(Debug, Clone)]
struct Tracked {
    id: String,
    kind: OrderKind,
    /// When it was sent, from the start of the run.
    sent_ms: u64,
    status: Option<String>,
    latency_ms: Option<i64>,
    /// When it was seen final, from the start of the run.
    settled_ms: Option<u64>,
}

impl Tracked {
    fn ended_as_expected(&self) -> Option<bool> {
        self.status.as_ref().map(|s| s == self.kind.expected_status())
    }
}

/// A fault while the run goes on.
struct LiveFault {
    fault: Fault,
    record: FaultRecord,
    /// The canary percentage to put back.
    canary_before: Option<f64>,
}

/// Runs `scenario` to its end and returns the final record (also stored).
pub async fn run(ctx: RunContext, scenario: Scenario) -> RunRecord {
    let started = Instant::now();
    let (run_id, started_at_ms) = {
        let record = ctx.record.lock().expect("run lock");
        (record.id.clone(), record.started_at_ms)
    };
    let short_id: String = run_id.chars().take(8).collect();
    let since_seq = audit::outbox_position(&ctx.store).await.unwrap_or(0);
    let mut faults: Vec<LiveFault> = scenario
        .faults
        .iter()
        .map(|f| LiveFault {
            record: FaultRecord {
                name: f.name.clone(),
                kind: f.kind().to_string(),
                summary: f.summary(),
                at_ms: f.at.as_millis() as u64,
                for_ms: f.length.as_millis() as u64,
                rule_id: None,
                applied_ms: None,
                removed_ms: None,
                lease_ms: None,
                injections: 0,
                state: "planned".into(),
                error: None,
            },
            fault: f.clone(),
            canary_before: None,
        })
        .collect();

    // The load: posted by its own task, results back by channel.
    let (results_tx, mut results) = mpsc::unbounded_channel();
    let load_stop = ctx.abort.child_token();
    let kinds: Arc<Mutex<HashMap<u64, OrderKind>>> = Arc::default();
    let poster = {
        let (api, plan, kinds, stop, run) =
            (ctx.system.orders.clone(), scenario.load.clone(), kinds.clone(), load_stop.clone(), short_id.clone());
        tokio::spawn(async move {
            let mut draw = MixDraw::new(&plan.mix, plan.seed);
            let profile = plan.profile.clone();
            let pace = crate::load::Pace { clients: plan.clients, duration: plan.duration, limit: None };
            crate::load::post_following(
                &api,
                &pace,
                |t| profile.rate_at(t, plan.duration),
                |i| {
                    let (kind, body) = draw.next(&run, i);
                    kinds.lock().expect("kinds lock").insert(i, kind);
                    body
                },
                results_tx,
                stop,
            )
            .await
        })
    };

    let mut orders: Vec<Tracked> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut refused_examples: Vec<String> = Vec::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks = 0u64;
    let mut load_done = false;
    let mut settle_deadline: Option<Instant> = None;
    let mut rolled_back = false;
    let watches_invariants = scenario.stop_conditions.iter().any(|s| matches!(s, StopCondition::InvariantBreach));
    loop {
        let aborted = tokio::select! {
            _ = tick.tick() => false,
            _ = ctx.abort.cancelled(), if !rolled_back => true,
        };
        ticks += 1;
        let elapsed = started.elapsed();
        let elapsed_ms = elapsed.as_millis() as u64;
        // Orders sent since the last tick.
        let mut sent_now = 0u64;
        while let Ok(result) = results.try_recv() {
            let kind = kinds.lock().expect("kinds lock").remove(&result.index).unwrap_or(OrderKind::Valid);
            let sent_ms = result.sent_at.saturating_duration_since(started).as_millis() as u64;
            let mut record = ctx.record.lock().expect("run lock");
            record.orders.sent += 1;
            match result.outcome {
                Ok(id) => {
                    record.orders.accepted += 1;
                    sent_now += 1;
                    by_id.insert(id.clone(), orders.len());
                    orders.push(Tracked { id, kind, sent_ms, status: None, latency_ms: None, settled_ms: None });
                }
                Err(e) => {
                    record.orders.refused += 1;
                    if refused_examples.len() < 5 {
                        refused_examples.push(e.to_string());
                    }
                }
            }
        }
        // Orders that reached their final status.
        let pending: Vec<String> = orders.iter().filter(|o| o.status.is_none()).map(|o| o.id.clone()).collect();
        let mut settled_now: Vec<usize> = Vec::new();
        match audit::orders(&ctx.store, &pending).await {
            Ok(found) => {
                for (id, row) in found {
                    if row.is_final() {
                        if let Some(&i) = by_id.get(&id) {
                            orders[i].status = Some(row.status.clone());
                            orders[i].latency_ms = Some(row.updated_at_ms.saturating_sub(row.created_at_ms));
                            orders[i].settled_ms = Some(elapsed_ms);
                            settled_now.push(i);
                        }
                    }
                }
            }
            Err(e) => note_error(&ctx, format!("cannot read the orders: {e}")),
        }

        // Faults due to start or end (none start once the run is ending).
        if !aborted && !rolled_back && !load_done {
            for live in faults.iter_mut() {
                let (at, end) = (live.fault.at, live.fault.at + live.fault.length);
                if live.record.state == "planned"
                    && matches!(live.fault.action, FaultAction::Replay { .. })
                    && elapsed >= at
                {
                    replay(&ctx.system, live, started_at_ms, elapsed_ms).await;
                } else if live.record.state == "planned" && elapsed >= at && elapsed < end {
                    apply(
                        &ctx.system,
                        live,
                        &short_id,
                        &run_id,
                        end.saturating_sub(elapsed) + scenario.rollback.lease_margin,
                        elapsed_ms,
                    )
                    .await;
                } else if live.record.state == "active" && elapsed >= end {
                    remove(&ctx.system, live, elapsed_ms).await;
                }
            }
        }
        for live in faults.iter_mut().filter(|f| f.record.state == "active") {
            if let Some(id) = &live.record.rule_id {
                if let Some(count) = ctx.system.injections(id).await {
                    live.record.injections = live.record.injections.max(count);
                }
            }
        }

        // The timeline and the stop conditions.
        let sample = sample_now(&orders, &settled_now, sent_now, elapsed, &scenario);
        let mut stop: Option<StopRecord> = None;
        if !rolled_back {
            stop = judge_stops(&orders, elapsed, &scenario);
            if stop.is_none() && watches_invariants && ticks.is_multiple_of(INVARIANTS_EVERY_TICKS) {
                let settled: Vec<String> = orders.iter().filter(|o| o.status.is_some()).map(|o| o.id.clone()).collect();
                if let Ok(checks) = audit::settled_invariants(&ctx.store, &settled, scenario.audit.max_failed).await {
                    if let Some(broken) = checks.iter().find(|c| !c.passed) {
                        stop = Some(StopRecord {
                            condition: "an invariant breached".into(),
                            at_ms: elapsed_ms,
                            detail: format!("{}: {}", broken.name, broken.detail),
                        });
                    }
                }
            }
            if aborted && stop.is_none() {
                let reason = ctx.abort_reason.lock().expect("abort lock").clone();
                stop = Some(StopRecord {
                    condition: reason.unwrap_or_else(|| "gameday-svc is stopping".into()),
                    at_ms: elapsed_ms,
                    detail: "the load stopped and every fault was removed".into(),
                });
            }
        }
        if let Some(stop) = &stop {
            tracing::warn!(run = %run_id, condition = %stop.condition, detail = %stop.detail, "game day stopped early");
        }

        // The load is over (or stopped): faults out first, then wait for the orders to settle.
        let load_finished = poster.is_finished();
        if (stop.is_some() || load_finished) && !rolled_back {
            load_stop.cancel();
            rollback(&ctx.system, &mut faults, elapsed_ms).await;
            rolled_back = true;
            load_done = true;
            settle_deadline = Some(Instant::now() + scenario.load.settle_within);
        }
        {
            let mut record = ctx.record.lock().expect("run lock");
            record.elapsed_ms = elapsed_ms;
            record.phase = Some(if rolled_back {
                "settling".to_string()
            } else {
                scenario
                    .phases
                    .iter()
                    .find(|p| elapsed >= p.from && elapsed < p.to)
                    .map_or("settling".into(), |p| p.name.clone())
            });
            record.rate =
                if rolled_back { 0.0 } else { scenario.load.profile.rate_at(elapsed, scenario.load.duration) };
            record.burn_rate = sample.burn_rate;
            record.samples.push(sample);
            record.faults = faults.iter().map(|f| f.record.clone()).collect();
            count_outcomes(&mut record, &orders);
            if let Some(stop) = stop {
                if record.stop.is_none() {
                    record.stop = Some(stop);
                }
            }
            if !refused_examples.is_empty() {
                record.errors.retain(|e| !e.starts_with("refused orders: "));
                record.errors.push(format!("refused orders: {}", refused_examples.join(" | ")));
            }
        }
        if ticks.is_multiple_of(SAVE_EVERY_TICKS) {
            let snapshot = ctx.record.lock().expect("run lock").clone();
            if let Err(e) = runs::save(&ctx.store, &snapshot).await {
                tracing::warn!(run = %run_id, error = %e, "cannot save the game day's progress");
            }
        }
        if rolled_back {
            let all_settled = orders.iter().all(|o| o.status.is_some());
            let late = settle_deadline.is_some_and(|d| Instant::now() >= d);
            if poster.is_finished() && (all_settled || late) {
                break;
            }
        }
    }
    if let Ok(Err(e)) = poster.await {
        note_error(&ctx, format!("the load failed: {e}"));
    }

    // The audit and the verdict.
    ctx.record.lock().expect("run lock").state = RunState::Auditing;
    let accepted: Vec<String> = orders.iter().map(|o| o.id.clone()).collect();
    let input = AuditInput {
        accepted: &accepted,
        max_failed: scenario.audit.max_failed,
        since_seq,
        after_publish: ctx.after_publish,
        started_at_ms,
    };
    let checks = match audit::audit(&ctx.store, &ctx.broker, &input).await {
        Ok(checks) => checks,
        Err(e) => {
            note_error(&ctx, format!("the audit could not read the database: {e}"));
            Vec::new()
        }
    };
    let dead_letters = audit::dead_letters(&ctx.store, started_at_ms).await.unwrap_or_default();
    let stopped_at = ctx.record.lock().expect("run lock").stop.as_ref().map(|s| s.at_ms);
    let phases = judge_phases(&orders, &scenario, stopped_at);
    let mut record = ctx.record.lock().expect("run lock").clone();
    record.audit = checks;
    record.dead_letters = dead_letters;
    record.phases = phases;
    count_outcomes(&mut record, &orders);
    // A run that got no order accepted showed nothing, whatever its checks say.
    let hypothesis_held = record.orders.accepted > 0 && record.phases.iter().all(|p| p.held);
    let audit_passed = !record.audit.is_empty() && record.audit.iter().all(|c| c.passed);
    let outcome = if record.stop.is_some() {
        RunState::Aborted
    } else if hypothesis_held && audit_passed {
        RunState::Passed
    } else {
        RunState::Failed
    };
    let failed_checks: Vec<&str> = record.audit.iter().filter(|c| !c.passed).map(|c| c.name.as_str()).collect();
    let summary = match (&record.stop, hypothesis_held, audit_passed) {
        (Some(stop), _, _) => format!("aborted at {}s: {}", stop.at_ms / 1000, stop.condition),
        (None, true, true) => "the hypothesis held in every phase and every invariant held".into(),
        (None, held, _) => {
            let broken: Vec<&str> = record.phases.iter().filter(|p| !p.held).map(|p| p.name.as_str()).collect();
            let mut parts = Vec::new();
            if record.orders.accepted == 0 {
                parts.push(format!(
                    "no order was accepted ({} refused); is order-api reachable?",
                    record.orders.refused
                ));
            } else if !held {
                parts.push(format!("the hypothesis did not hold in {}", broken.join(", ")));
            }
            if !failed_checks.is_empty() {
                parts.push(format!("audit failed: {}", failed_checks.join(", ")));
            }
            parts.join("; ")
        }
    };
    record.verdict = Some(Verdict { hypothesis_held, audit_passed, outcome, summary });
    record.state = outcome;
    record.ended_at_ms = Some(now_ms());
    record.phase = None;
    record.rate = 0.0;
    *ctx.record.lock().expect("run lock") = record.clone();
    if let Err(e) = runs::save(&ctx.store, &record).await {
        tracing::error!(run = %run_id, error = %e, "cannot store the game day's result");
    }
    tracing::info!(run = %run_id, scenario = %scenario.name, outcome = outcome.as_str(), "game day ended");
    record
}

fn note_error(ctx: &RunContext, message: String) {
    tracing::warn!(error = %message, "game day");
    let mut record = ctx.record.lock().expect("run lock");
    if record.errors.len() < 50 && !record.errors.contains(&message) {
        record.errors.push(message);
    }
}

/// Applies one fault with a lease of `lease`.
async fn apply(
    system: &SystemClient,
    live: &mut LiveFault,
    short_id: &str,
    run_id: &str,
    lease: Duration,
    now_ms: u64,
) {
    let result = match &live.fault.action {
        FaultAction::Rule(rule) => {
            let id = format!("gameday-{short_id}-{}", live.fault.name);
            live.record.rule_id = Some(id.clone());
            system.create_rule(&id, rule, lease, run_id).await
        }
        FaultAction::Replay { .. } => return,
        FaultAction::Canary { step, percent } => match system.canary_percent(step).await {
            Ok(before) => {
                live.canary_before = Some(before);
                let reason = format!("game day {run_id}: fault {}", live.fault.name);
                system.set_canary(step, *percent, Some((lease, before)), &reason).await
            }
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => {
            live.record.state = "active".into();
            live.record.applied_ms = Some(now_ms);
            live.record.lease_ms = Some(lease.as_millis() as u64);
            tracing::info!(fault = %live.fault.name, lease = ?lease, "game-day fault applied");
        }
        Err(e) => {
            live.record.state = "failed".into();
            live.record.error = Some(e);
        }
    }
}

/// A replay entry: the run's dead letters of its topic sent back through dlq-admin, once.
async fn replay(system: &SystemClient, live: &mut LiveFault, started_at_ms: i64, now_ms: u64) {
    let FaultAction::Replay { topic } = &live.fault.action else { return };
    live.record.applied_ms = Some(now_ms);
    match system.replay_dead_letters(topic, started_at_ms).await {
        Ok(sent) => {
            live.record.state = "done".into();
            // For a replay, the figure is the dead letters sent back.
            live.record.injections = sent;
            tracing::info!(topic = %topic, sent, "game-day replay of dead letters");
        }
        Err(e) => {
            live.record.state = "failed".into();
            live.record.error = Some(e);
        }
    }
}

/// Removes one applied fault (deletes its rule, or puts the canary back).
async fn remove(system: &SystemClient, live: &mut LiveFault, now_ms: u64) {
    let result = match &live.fault.action {
        FaultAction::Rule(_) => match &live.record.rule_id {
            Some(id) => system.delete_rule(id).await,
            None => Ok(()),
        },
        FaultAction::Canary { step, .. } => {
            let back = live.canary_before.unwrap_or(0.0);
            system.set_canary(step, back, None, "game-day fault ended").await
        }
        FaultAction::Replay { .. } => Ok(()),
    };
    match result {
        Ok(()) => {
            live.record.state = "removed".into();
            live.record.removed_ms = Some(now_ms);
            let struck_nothing = matches!(live.fault.action, FaultAction::Rule(_)) && live.record.injections == 0;
            if struck_nothing && now_ms.saturating_sub(live.record.applied_ms.unwrap_or(now_ms)) >= 5_000 {
                live.record.error = Some(
                    "no injection counted: is chaos on in the services it targets ([chaos] enabled, on under `runner up`)?"
                        .into(),
                );
            }
        }
        Err(e) => {
            // Its lease still ends it.
            live.record.error = Some(format!("{e}; the fault ends when its lease does"));
        }
    }
}

/// Removes every applied fault and marks the ones not started as skipped.
async fn rollback(system: &SystemClient, faults: &mut [LiveFault], now_ms: u64) {
    for live in faults.iter_mut() {
        match live.record.state.as_str() {
            "active" => remove(system, live, now_ms).await,
            "planned" => live.record.state = "skipped".into(),
            _ => {}
        }
    }
}

fn count_outcomes(record: &mut RunRecord, orders: &[Tracked]) {
    let status = |s: &str| orders.iter().filter(|o| o.status.as_deref() == Some(s)).count() as u64;
    record.orders.settled = orders.iter().filter(|o| o.status.is_some()).count() as u64;
    record.orders.completed = status("COMPLETED");
    record.orders.cancelled = status("CANCELLED");
    record.orders.failed = status("FAILED");
    record.orders.unexpected = orders.iter().filter(|o| o.ended_as_expected() == Some(false)).count() as u64;
}

/// Orders counted in a window ending now: those settled in it, and — for latency, where it
/// is already known — those still open past the threshold (late, whatever comes).
fn window_orders(orders: &[Tracked], now_ms: u64, window: Duration) -> impl Iterator<Item = &Tracked> {
    let from = now_ms.saturating_sub(window.as_millis() as u64);
    orders.iter().filter(move |o| o.settled_ms.is_some_and(|s| s > from && s <= now_ms))
}

/// The error ratio over `window`: orders ending otherwise than expected ÷ orders ended.
fn error_ratio(orders: &[Tracked], now_ms: u64, window: Duration) -> (u64, u64) {
    let (mut bad, mut total) = (0, 0);
    for order in window_orders(orders, now_ms, window) {
        total += 1;
        bad += u64::from(order.ended_as_expected() == Some(false));
    }
    (bad, total)
}

/// The burn rate of `objective` over `window`: the bad share ÷ the budget (1 − objective).
/// Open orders older than a latency objective's threshold count as bad already.
fn burn_rate(orders: &[Tracked], now_ms: u64, window: Duration, objective: &crate::slo::Objective) -> (f64, u64) {
    let (mut bad, mut total) = (0u64, 0u64);
    for order in window_orders(orders, now_ms, window) {
        total += 1;
        let good = good_for(objective, order.status.as_deref().unwrap_or_default(), order.latency_ms.unwrap_or(0));
        bad += u64::from(!good);
    }
    if let crate::slo::ObjectiveKind::Latency { threshold_seconds } = objective.kind {
        let threshold_ms = (threshold_seconds * 1000.0) as u64;
        let late =
            orders.iter().filter(|o| o.status.is_none() && now_ms.saturating_sub(o.sent_ms) > threshold_ms).count()
                as u64;
        bad += late;
        total += late;
    }
    let budget = (1.0 - objective.objective).max(1e-9);
    let ratio = if total == 0 { 0.0 } else { bad as f64 / total as f64 };
    (ratio / budget, total)
}

fn sample_now(
    orders: &[Tracked],
    settled_now: &[usize],
    sent_now: u64,
    elapsed: Duration,
    scenario: &Scenario,
) -> Sample {
    let now_ms = elapsed.as_millis() as u64;
    let latencies: Vec<i64> = settled_now.iter().filter_map(|&i| orders[i].latency_ms).collect();
    let bad = settled_now.iter().filter(|&&i| orders[i].ended_as_expected() == Some(false)).count() as u64;
    let window = scenario
        .stop_conditions
        .iter()
        .find_map(|s| match s {
            StopCondition::ErrorRatio { window, .. } | StopCondition::BurnRate { window, .. } => Some(*window),
            StopCondition::InvariantBreach => None,
        })
        .unwrap_or(Duration::from_secs(30));
    let (bad_in_window, total) = error_ratio(orders, now_ms, window);
    let burn = scenario
        .stop_conditions
        .iter()
        .filter_map(|s| match s {
            StopCondition::BurnRate { objective, window, .. } => Some(burn_rate(orders, now_ms, *window, objective).0),
            _ => None,
        })
        .fold(None, |max: Option<f64>, b| Some(max.map_or(b, |m| m.max(b))));
    Sample {
        t: elapsed.as_secs(),
        sent: sent_now,
        settled: settled_now.len() as u64,
        bad,
        p50_ms: crate::load::percentile(&latencies, 50.0).map(|v| v as f64),
        p99_ms: crate::load::percentile(&latencies, 99.0).map(|v| v as f64),
        error_ratio: (total > 0).then(|| bad_in_window as f64 / total as f64),
        burn_rate: burn,
    }
}

/// The first stop condition met now, if any.
fn judge_stops(orders: &[Tracked], elapsed: Duration, scenario: &Scenario) -> Option<StopRecord> {
    let now_ms = elapsed.as_millis() as u64;
    for condition in &scenario.stop_conditions {
        match condition {
            StopCondition::BurnRate { objective, window, above, min_orders } => {
                let (burn, counted) = burn_rate(orders, now_ms, *window, objective);
                if counted >= *min_orders && burn > *above {
                    return Some(StopRecord {
                        condition: condition.describe(),
                        at_ms: now_ms,
                        detail: format!("burn rate {burn:.2} over {counted} orders (stop above {above})"),
                    });
                }
            }
            StopCondition::ErrorRatio { window, above, min_orders } => {
                let (bad, total) = error_ratio(orders, now_ms, *window);
                if total >= *min_orders && total > 0 && bad as f64 / total as f64 > *above {
                    return Some(StopRecord {
                        condition: condition.describe(),
                        at_ms: now_ms,
                        detail: format!(
                            "{bad} of {total} orders ended otherwise than expected (stop above {})",
                            percent(*above)
                        ),
                    });
                }
            }
            StopCondition::InvariantBreach => {}
        }
    }
    None
}

/// The hypothesis over each phase: the orders sent in it, open ones counted as bad. A phase
/// the run never reached (stopped at `stopped_at`) holds nothing.
fn judge_phases(orders: &[Tracked], scenario: &Scenario, stopped_at: Option<u64>) -> Vec<PhaseVerdict> {
    scenario
        .phases
        .iter()
        .map(|phase| {
            let (from, to) = (phase.from.as_millis() as u64, phase.to.as_millis() as u64);
            let in_phase: Vec<&Tracked> = orders.iter().filter(|o| o.sent_ms >= from && o.sent_ms < to).collect();
            let reached = stopped_at.is_none_or(|stop| stop > from);
            let checks: Vec<HypothesisCheck> = scenario
                .hypothesis
                .iter()
                .filter(|t| t.phase.as_ref().is_none_or(|p| *p == phase.name))
                .map(|t| match reached {
                    true => judge_threshold(&t.kind, &t.name(), &in_phase),
                    false => HypothesisCheck {
                        name: t.name(),
                        expected: String::new(),
                        measured: "not reached: the run stopped before this phase".into(),
                        held: false,
                    },
                })
                .collect();
            PhaseVerdict {
                name: phase.name.clone(),
                from_ms: from,
                to_ms: to,
                orders: in_phase.len() as u64,
                held: checks.iter().all(|c| c.held),
                checks,
            }
        })
        .collect()
}

fn judge_threshold(kind: &ThresholdKind, name: &str, orders: &[&Tracked]) -> HypothesisCheck {
    let no_orders = |expected: String| HypothesisCheck {
        name: name.to_string(),
        expected,
        measured: "no orders in this phase".into(),
        held: false,
    };
    let share = |good: usize| good as f64 / orders.len() as f64;
    match kind {
        ThresholdKind::Objective { objective, min } => {
            if orders.is_empty() {
                return no_orders(format!("≥ {}", percent(*min)));
            }
            let good = orders
                .iter()
                .filter(|o| {
                    o.status.as_deref().is_some_and(|s| good_for(objective, s, o.latency_ms.unwrap_or(i64::MAX)))
                })
                .count();
            HypothesisCheck {
                name: name.to_string(),
                expected: format!("≥ {}", percent(*min)),
                measured: format!("{} ({good} of {})", percent(share(good)), orders.len()),
                held: share(good) >= *min,
            }
        }
        ThresholdKind::SuccessRatio(min) => {
            if orders.is_empty() {
                return no_orders(format!("≥ {}", percent(*min)));
            }
            let good = orders.iter().filter(|o| o.ended_as_expected() == Some(true)).count();
            HypothesisCheck {
                name: name.to_string(),
                expected: format!("≥ {}", percent(*min)),
                measured: format!("{} ({good} of {})", percent(share(good)), orders.len()),
                held: share(good) >= *min,
            }
        }
        ThresholdKind::Latency { percentile, max } => {
            let expected = format!("≤ {} ms", max.as_millis());
            if orders.is_empty() {
                return no_orders(expected);
            }
            // An order still open has no latency yet: it counts as slower than any.
            let latencies: Vec<i64> = orders.iter().map(|o| o.latency_ms.unwrap_or(i64::MAX)).collect();
            let measured = crate::load::percentile(&latencies, *percentile).unwrap_or(i64::MAX);
            HypothesisCheck {
                name: name.to_string(),
                expected,
                measured: if measured == i64::MAX { "orders still open".into() } else { format!("{measured} ms") },
                held: measured != i64::MAX && measured as u128 <= max.as_millis(),
            }
        }
    }
}
