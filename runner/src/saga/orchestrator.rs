//! The orchestrator: feeds trigger events, replies and timer ticks into the state machine,
//! and persists each transition with its commands (as outbox rows) in one transaction.

use serde_json::json;

use super::machine::{advance, Command, Input, SagaDefinition, Transition};
use crate::config::model::SagaConfig;
use crate::event::{child_traceparent, now_ms, Event};
use crate::services::{store_error, ServiceContext};
use crate::store::{inbox, orders, outbox, sagas, StoreError, Tx};
use crate::transport::{consume, HandleError, Incoming, TransportError};

pub async fn run(ctx: ServiceContext, config: SagaConfig) -> Result<(), TransportError> {
    let mut topics = config.definition.consumed_topics();
    topics.sort();
    topics.dedup();
    let consumer = ctx.broker.consumer(&config.group, &topics)?;
    let name = format!("{}/saga-{}", ctx.service, config.definition.name);
    tracing::info!(consumer = name, group = config.group, "orchestrator started");
    let timer = tokio::spawn(run_timer(ctx.clone(), config.clone()));
    let redeliver = ctx.broker.config().redeliver_each_message;
    consume(consumer, &name, ctx.shutdown.clone(), redeliver, |incoming| {
        on_event(&ctx, &config.definition, &name, incoming)
    })
    .await;
    let _ = timer.await;
    tracing::info!(consumer = name, "orchestrator stopped");
    Ok(())
}

async fn on_event(
    ctx: &ServiceContext,
    def: &SagaDefinition,
    inbox_name: &str,
    incoming: Incoming,
) -> Result<(), HandleError> {
    let event = &incoming.event;
    let now = now_ms();
    let mut tx = ctx.store.begin().await.map_err(store_error)?;
    if inbox::find(&mut tx, inbox_name, &event.id).await.map_err(store_error)?.is_some() {
        return Ok(());
    }
    let saga_id = event.key.as_str();
    let stored = sagas::load(&mut tx, saga_id).await.map_err(store_error)?;
    let input = if event.event_type == def.trigger {
        Input::Start
    } else {
        Input::Reply { event_type: &event.event_type, detail: event.payload.get("reason").and_then(|r| r.as_str()) }
    };
    let transition = advance(def, stored.as_ref().map(|s| &s.state), input, now);
    if let Some(state) = &transition.state {
        let (data, traceparent) = match &stored {
            Some(saga) => (saga.data.clone(), saga.traceparent.clone()),
            None => (event.payload.clone(), event.traceparent.clone()),
        };
        match &stored {
            Some(saga) => sagas::update(&mut tx, saga_id, saga.version, state, now).await,
            None => sagas::insert(&mut tx, saga_id, &def.name, state, &data, traceparent.as_deref(), now).await,
        }
        .map_err(store_error)?;
        let parent = event.traceparent.as_deref().or(traceparent.as_deref());
        apply(ctx, &mut tx, saga_id, &data, parent, &transition, now).await.map_err(store_error)?;
    } else if stored.is_none() {
        tracing::debug!(saga = saga_id, event_type = event.event_type, "reply for an unknown saga ignored");
    }
    inbox::record(&mut tx, inbox_name, &event.id, None, now).await.map_err(store_error)?;
    tx.commit().await.map_err(|e| store_error(e.into()))?;
    ctx.outbox_written.notify_one();
    Ok(())
}

/// Writes the history and turns commands into outbox rows (and the order's final status).
async fn apply(
    ctx: &ServiceContext,
    tx: &mut Tx,
    saga_id: &str,
    data: &serde_json::Value,
    traceparent: Option<&str>,
    transition: &Transition,
    now: i64,
) -> Result<(), StoreError> {
    sagas::add_history(tx, saga_id, &transition.history, now).await?;
    for command in &transition.commands {
        let (event_type, payload) = match command {
            Command::Send { event_type, .. } => (event_type, data.clone()),
            Command::Finish { status, event_type, reason } => {
                orders::set_status(tx, saga_id, status.as_str(), reason.as_deref(), now).await?;
                (event_type, json!({ "orderId": saga_id, "status": status.as_str(), "reason": reason }))
            }
        };
        let event = Event::new(event_type, saga_id, &ctx.service, payload, Some(child_traceparent(traceparent)));
        outbox::insert(tx, ctx.store.dialect(), &event).await?;
    }
    Ok(())
}

/// Fires due timeouts and backoffs.
async fn run_timer(ctx: ServiceContext, config: SagaConfig) {
    let mut interval = tokio::time::interval(config.tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        let due = match sagas::due(&ctx.store, &config.definition.name, now_ms(), 200).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for due sagas");
                continue;
            }
        };
        for saga_id in due {
            if let Err(e) = tick(&ctx, &config.definition, &saga_id).await {
                // A conflict means a reply moved the saga meanwhile; the next tick looks again.
                tracing::debug!(saga = saga_id, error = %e, "timer tick not applied");
            }
        }
    }
}

async fn tick(ctx: &ServiceContext, def: &SagaDefinition, saga_id: &str) -> Result<(), StoreError> {
    let now = now_ms();
    let mut tx = ctx.store.begin().await?;
    let Some(saga) = sagas::load(&mut tx, saga_id).await? else { return Ok(()) };
    let transition = advance(def, Some(&saga.state), Input::Tick, now);
    let Some(state) = &transition.state else { return Ok(()) };
    sagas::update(&mut tx, saga_id, saga.version, state, now).await?;
    apply(ctx, &mut tx, saga_id, &saga.data, saga.traceparent.as_deref(), &transition, now).await?;
    tx.commit().await?;
    ctx.outbox_written.notify_one();
    Ok(())
}
