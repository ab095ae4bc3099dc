//! The orchestrator: feeds trigger events, replies and timer ticks into the state machine,
//! and persists each transition with its commands (as outbox rows) in one transaction.

use std::sync::Arc;

use serde_json::json;

use super::machine::{advance, Command, Input, SagaDefinition, Transition};
use crate::config::model::SagaConfig;
use crate::event::{child_traceparent, now_ms, Event};
use crate::services::{delivery_policy, store_error, ServiceContext};
use crate::store::{inbox, orders, sagas, Tx};
use crate::transport::dead_letter::{self, ErrorKind};
use crate::transport::{consume_raw, HandleError, RawMessage, TransportError};

pub async fn run(ctx: ServiceContext, config: SagaConfig) -> Result<(), TransportError> {
    let mut topics = config.definition.consumed_topics();
    topics.sort();
    topics.dedup();
    let consumer = ctx.broker.consumer(&config.group, &topics)?;
    let name = format!("{}/saga-{}", ctx.service, config.definition.name);
    tracing::info!(consumer = name, group = config.group, "orchestrator started");
    let timer = tokio::spawn(run_timer(ctx.clone(), config.clone()));
    let retry = crate::config::model::DeliveryRetry::default();
    let policy = delivery_policy(&config.group, &retry, None, &ctx.broker);
    let dead_letters = ctx.broker.publisher()?;
    let dead_letter_topics = config.definition.request_dead_letter_topics();
    consume_raw(consumer, &name, ctx.shutdown.clone(), policy, dead_letters, |raw: Arc<RawMessage>| {
        let from_dead_letters = dead_letter_topics.contains(&raw.topic);
        on_message(&ctx, &config.definition, &name, raw, from_dead_letters)
    })
    .await;
    let _ = timer.await;
    tracing::info!(consumer = name, "orchestrator stopped");
    Ok(())
}

/// What a message means to the saga, read from a trigger, a reply or a dead letter.
struct Arrival {
    id: String,
    saga_id: String,
    event_type: String,
    detail: Option<String>,
    dead_letter: bool,
    payload: serde_json::Value,
    traceparent: Option<String>,
}

impl Arrival {
    fn read(ctx: &ServiceContext, raw: &RawMessage, from_dead_letters: bool) -> Result<Self, HandleError> {
        if from_dead_letters {
            // A dead letter may be undecodable itself: only its key and dlq headers count.
            let saga_id = raw
                .key
                .as_deref()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .ok_or_else(|| HandleError::new(ErrorKind::Rejected, "dead letter without a key (the saga id)"))?;
            let request = raw
                .header(dead_letter::ORIGINAL_TOPIC)
                .unwrap_or_else(|| raw.topic.trim_end_matches(".dlq").to_string());
            return Ok(Arrival {
                id: format!("dead-letter:{}:{}:{}", raw.topic, raw.partition, raw.offset),
                saga_id,
                event_type: request,
                detail: raw.header(dead_letter::ERROR_MESSAGE),
                dead_letter: true,
                payload: serde_json::Value::Null,
                traceparent: raw.header("traceparent"),
            });
        }
        let event = raw.decode().map_err(|reason| HandleError::new(ErrorKind::Undecodable, reason))?;
        ctx.check_received(&event)?;
        Ok(Arrival {
            detail: event.payload.get("reason").and_then(|r| r.as_str()).map(str::to_string),
            id: event.id,
            saga_id: event.key,
            event_type: event.event_type,
            dead_letter: false,
            payload: event.payload,
            traceparent: event.traceparent,
        })
    }
}

async fn on_message(
    ctx: &ServiceContext,
    def: &SagaDefinition,
    inbox_name: &str,
    raw: Arc<RawMessage>,
    from_dead_letters: bool,
) -> Result<(), HandleError> {
    let event = Arrival::read(ctx, &raw, from_dead_letters)?;
    let now = now_ms();
    let mut tx = ctx.store.begin().await.map_err(store_error)?;
    if inbox::find(&mut tx, inbox_name, &event.id).await.map_err(store_error)?.is_some() {
        return Ok(());
    }
    let saga_id = event.saga_id.as_str();
    let stored = sagas::load(&mut tx, saga_id).await.map_err(store_error)?;
    let input = if event.dead_letter {
        Input::DeadLettered { request: &event.event_type, detail: event.detail.as_deref() }
    } else if event.event_type == def.trigger {
        Input::Start
    } else {
        Input::Reply { event_type: &event.event_type, detail: event.detail.as_deref() }
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
        apply(ctx, &mut tx, saga_id, &data, parent, &transition, now).await?;
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
) -> Result<(), HandleError> {
    sagas::add_history(tx, saga_id, &transition.history, now).await.map_err(store_error)?;
    for command in &transition.commands {
        let (event_type, payload) = match command {
            Command::Send { event_type, .. } => (event_type, data.clone()),
            Command::Finish { status, event_type, reason } => {
                orders::set_status(tx, saga_id, status.as_str(), reason.as_deref(), now).await.map_err(store_error)?;
                (event_type, json!({ "orderId": saga_id, "status": status.as_str(), "reason": reason }))
            }
        };
        let event = Event::new(event_type, saga_id, &ctx.service, payload, Some(child_traceparent(traceparent)));
        ctx.emit(tx, &event).await?;
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

async fn tick(ctx: &ServiceContext, def: &SagaDefinition, saga_id: &str) -> Result<(), HandleError> {
    let now = now_ms();
    let mut tx = ctx.store.begin().await.map_err(store_error)?;
    let Some(saga) = sagas::load(&mut tx, saga_id).await.map_err(store_error)? else { return Ok(()) };
    let transition = advance(def, Some(&saga.state), Input::Tick, now);
    let Some(state) = &transition.state else { return Ok(()) };
    sagas::update(&mut tx, saga_id, saga.version, state, now).await.map_err(store_error)?;
    apply(ctx, &mut tx, saga_id, &saga.data, saga.traceparent.as_deref(), &transition, now).await?;
    tx.commit().await.map_err(|e| store_error(e.into()))?;
    ctx.outbox_written.notify_one();
    Ok(())
}
