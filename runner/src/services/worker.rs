//! A handler consumer: takes a request, runs the compiled handler, and records the effect,
//! the inbox entry and the reply (in the outbox) in one transaction (shared with the other
//! messages ready at the same time: see [`super::group_commit`]).

use std::sync::Arc;

use futures::FutureExt as _;

use crate::diagnostic::KeyPath;
use crate::event::{now_ms, Event};
use crate::handlers::{Handler, HandlerError, Outcome};
use crate::store::{inbox, ReadAhead, Tx};
use crate::telemetry;
use crate::transport::{consume, DeliveryRetry, HandleError, Incoming, TopicRole, TopicUse, TransportError};

use super::group_commit::GroupCommit;
use super::{delivery_policy, store_error, OutboxWriter, ServiceContext};
use crate::transport::dead_letter::ErrorKind;

/// One `[[consumers]]` entry, compiled: its handler built from its parameters.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub name: String,
    pub topic: String,
    /// The event type on `topic` (the topic's own name unless a canary topic says otherwise).
    pub event_type: String,
    pub group: String,
    pub handler: Handler,
    pub on_success: String,
    pub on_failure: Option<String>,
    pub retry: DeliveryRetry,
    pub dead_letter_topic: String,
    /// Messages handled at once, one per key at a time.
    pub max_in_flight: usize,
    /// Ready messages committed in one database transaction at most.
    pub max_group: usize,
    /// Groups committing side by side.
    pub groups_in_flight: usize,
}

impl ConsumerConfig {
    /// The topics this consumer reads and writes; `at` is its key in the file (`consumers[i]`).
    pub fn topic_uses(&self, at: &KeyPath) -> Vec<TopicUse> {
        let mut uses = vec![
            TopicUse {
                topic: self.topic.clone(),
                role: TopicRole::Handles,
                event_type: Some(self.event_type.clone()),
                group: Some(self.group.clone()),
                at: at.key("topic"),
            },
            TopicUse::typed(TopicRole::Produces, &self.on_success, at.key("on_success")),
        ];
        uses.extend(self.on_failure.iter().map(|f| TopicUse::typed(TopicRole::Produces, f, at.key("on_failure"))));
        uses.push(TopicUse::dead_letters(TopicRole::Produces, &self.dead_letter_topic, at.key("topic")));
        uses
    }
}

pub async fn run(ctx: ServiceContext, config: ConsumerConfig) -> Result<(), TransportError> {
    let consumer = ctx.broker.consumer(&config.group, std::slice::from_ref(&config.topic))?;
    let name = format!("{}/{}", ctx.service, config.name);
    let mut policy = delivery_policy(&config.group, &config.retry, Some(config.dead_letter_topic.clone()), &ctx.broker);
    policy.chaos = Some(ctx.consume_chaos(&name, config.handler.name()));
    policy.max_in_flight = config.max_in_flight;
    let dead_letters = ctx.broker.publisher()?;
    let committer = GroupCommit::start(&ctx, &name, config.max_in_flight, config.max_group, config.groups_in_flight);
    let config = Arc::new(config);
    let inbox_name: Arc<str> = name.as_str().into();
    tracing::info!(consumer = name, topic = config.topic, group = config.group, "consumer started");
    let shutdown = ctx.shutdown.clone();
    consume(consumer, &name, shutdown, policy, dead_letters, |incoming| {
        measured(&ctx, &config, &committer, &inbox_name, incoming)
    })
    .await;
    committer.close().await;
    tracing::info!(consumer = name, "consumer stopped");
    Ok(())
}

/// Handles one message and counts it by outcome and variant.
async fn measured(
    ctx: &ServiceContext,
    config: &Arc<ConsumerConfig>,
    committer: &GroupCommit<Option<bool>>,
    inbox_name: &Arc<str>,
    incoming: Incoming,
) -> Result<(), HandleError> {
    let started = std::time::Instant::now();
    let result = handle(ctx, config, committer, inbox_name, incoming).await;
    let outcome = match &result {
        Ok(Some(true)) => "success",
        Ok(Some(false)) => "refused",
        Ok(None) => "repeated",
        Err(_) => "error",
    };
    let labels = [
        ("service", ctx.service.clone()),
        ("handler", config.handler.name().to_string()),
        ("variant", ctx.variant.clone()),
    ];
    metrics::histogram!(telemetry::HANDLER_DURATION_SECONDS, &labels).record(started.elapsed().as_secs_f64());
    let mut with_outcome = labels.to_vec();
    with_outcome.push(("outcome", outcome.to_string()));
    metrics::counter!(telemetry::HANDLER_MESSAGES, &with_outcome).increment(1);
    result.map(|_| ())
}

/// `Some(true)` handled with success, `Some(false)` refused, `None` a repeat answered from the inbox.
async fn handle(
    ctx: &ServiceContext,
    config: &Arc<ConsumerConfig>,
    committer: &GroupCommit<Option<bool>>,
    inbox_name: &Arc<str>,
    incoming: Incoming,
) -> Result<Option<bool>, HandleError> {
    ctx.check_received(&incoming.event)?;
    let request = Arc::new(incoming.event);
    let (writer, config, inbox_name) = (Arc::new(ctx.writer()), config.clone(), inbox_name.clone());
    // The message key is the order id (a key that is not only costs the lookup its read-ahead).
    let reads = ReadAhead {
        inbox: Some((inbox_name.clone(), request.id.clone())),
        saga: None,
        effect: Some((config.handler.effect_table(), request.key.clone())),
    };
    committer
        .run(reads, move |tx| {
            let (writer, config, inbox_name, request) =
                (writer.clone(), config.clone(), inbox_name.clone(), request.clone());
            async move { handle_in(tx, &writer, &config, &inbox_name, &request, now_ms()).await }.boxed()
        })
        .await
}

/// The message's effect, inbox entry and reply, written in `tx` (committed by the caller).
/// `Some(true)` handled with success, `Some(false)` refused, `None` a repeat answered from
/// the inbox.
pub async fn handle_in(
    tx: &mut Tx,
    writer: &OutboxWriter,
    config: &ConsumerConfig,
    inbox_name: &str,
    request: &Event,
    now: i64,
) -> Result<Option<bool>, HandleError> {
    let reply = |event_type: &str, payload: serde_json::Value| {
        Event::new(
            event_type,
            &request.key,
            &writer.service,
            payload,
            Some(crate::traces::outgoing(request.traceparent.as_deref())),
        )
    };
    if let Some(recorded) = inbox::find(tx, inbox_name, &request.id).await.map_err(store_error)? {
        // Seen before: repeat the recorded reply, with no second effect.
        if let (Some(event_type), Some(payload)) = (recorded.reply_type, recorded.reply_payload) {
            let payload = serde_json::from_str(&payload).unwrap_or_default();
            writer.emit(tx, &reply(&event_type, payload)).await?;
        }
        return Ok(None);
    }
    let outcome = match config.handler.handle(tx, &request.payload, now).await {
        Ok(outcome) => outcome,
        Err(HandlerError::Invalid(reason)) => return Err(HandleError::new(ErrorKind::Rejected, reason)),
        Err(HandlerError::Failed(reason)) => return Err(HandleError::new(ErrorKind::HandlerFailed, reason)),
        Err(HandlerError::Store(e)) => return Err(store_error(e)),
    };
    let succeeded = matches!(outcome, Outcome::Success(_));
    let (event_type, payload) = match outcome {
        Outcome::Success(payload) => (Some(config.on_success.as_str()), payload),
        Outcome::Failure(payload) => (config.on_failure.as_deref(), payload),
    };
    let payload_text = payload.to_string();
    inbox::record(tx, inbox_name, &request.id, event_type.map(|t| (t, payload_text.as_str())), now);
    match event_type {
        Some(event_type) => writer.emit(tx, &reply(event_type, payload)).await?,
        None => tracing::warn!(
            consumer = inbox_name,
            id = request.id,
            "handler refused the request and the consumer has no on_failure reply"
        ),
    }
    Ok(Some(succeeded))
}
