//! The parts a pipeline can run: the order API, the outbox relay, handler consumers
//! (workers) and the saga orchestrator. Each takes a [`ServiceContext`].

pub mod analytics;
pub mod chaos_api;
pub mod dlq_admin;
pub mod gameday;
pub mod group_commit;
pub mod orchestrator;
pub mod order_api;
pub mod relay;
pub mod worker;

use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::chaos::{self, Action, Chaos, Point};
use crate::event::Event;
use crate::schemas::SchemaRegistry;
use crate::store::{is_transient, outbox, Dialect, Store, StoreError, Tx};
use crate::supervise::Supervisor;
use crate::transport::dead_letter::ErrorKind;
use crate::transport::{Broker, DeliveryPolicy, HandleError};

/// What every part of a running service shares.
#[derive(Clone)]
pub struct ServiceContext {
    pub service: String,
    pub store: Store,
    pub broker: Broker,
    pub shutdown: CancellationToken,
    /// Woken after an outbox write commits, so an in-process relay publishes at once.
    pub outbox_written: Arc<Notify>,
    /// Event schemas: what is written to the outbox and what is received is checked.
    pub schemas: Arc<SchemaRegistry>,
    /// The chaos engine of this process.
    pub chaos: Chaos,
    /// `stable` or `canary` (a label on this service's metrics).
    pub variant: String,
    /// Where long-running parts are started, watched and restarted.
    pub parts: Supervisor,
}

impl ServiceContext {
    /// A context for a part run on its own (a test, a tool): no event schemas, a chaos engine
    /// and a supervisor of its own, variant `stable`.
    pub fn standalone(service: &str, store: Store, broker: Broker) -> ServiceContext {
        ServiceContext {
            service: service.to_string(),
            store,
            broker,
            shutdown: CancellationToken::new(),
            outbox_written: Arc::default(),
            schemas: Arc::new(SchemaRegistry::empty()),
            chaos: Chaos::new(),
            variant: "stable".into(),
            parts: Supervisor::new(tokio_util::task::TaskTracker::new()),
        }
    }

    /// The same context under another stop token (a part's, or one attempt's).
    pub fn with_shutdown(&self, shutdown: CancellationToken) -> ServiceContext {
        ServiceContext { shutdown, ..self.clone() }
    }

    /// Writes an event to the outbox inside `tx`, after checking it against its schema.
    pub async fn emit(&self, tx: &mut Tx, event: &Event) -> Result<(), HandleError> {
        self.writer().emit(tx, event).await
    }

    /// What a message's transaction needs of this service (see [`OutboxWriter`]).
    pub fn writer(&self) -> OutboxWriter {
        OutboxWriter { service: self.service.clone(), schemas: self.schemas.clone(), dialect: self.store.dialect() }
    }

    /// Starts a database transaction: the store calls a chaos rule may slow down or fail.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        let actions = self.chaos.decide(Point::Store { service: &self.service }, None);
        chaos::delay_for(&self.chaos, &actions).await;
        if let Some(message) = actions.into_iter().find_map(|a| if let Action::Fail(m) = a { Some(m) } else { None }) {
            return Err(StoreError::Injected(message));
        }
        self.store.begin().await
    }

    /// Where a consumer of this service sits for the chaos engine.
    pub fn consume_chaos(&self, consumer: &str, handler: &str) -> crate::transport::ConsumeChaos {
        crate::transport::ConsumeChaos {
            chaos: self.chaos.clone(),
            service: self.service.clone(),
            consumer: consumer.to_string(),
            handler: handler.to_string(),
        }
    }

    /// Checks a received event against its schema; an invalid one is dead-lettered.
    pub fn check_received(&self, event: &Event) -> Result<(), HandleError> {
        self.writer().check_received(event)
    }
}

/// What the transaction of one message needs of its service, and nothing more: the name
/// its events carry and the schemas they are checked against. The orchestrator's and the
/// workers' transactions take this rather than a [`ServiceContext`], so the simulation
/// (`runner simulate`) runs the same code with no broker.
#[derive(Clone)]
pub struct OutboxWriter {
    pub service: String,
    pub schemas: Arc<SchemaRegistry>,
    pub dialect: Dialect,
}

impl OutboxWriter {
    /// Writes an event to the outbox inside `tx`, after checking it against its schema.
    pub async fn emit(&self, tx: &mut Tx, event: &Event) -> Result<(), HandleError> {
        self.schemas.validate(&event.event_type, &event.payload).map_err(|problem| {
            HandleError::new(ErrorKind::SchemaInvalid, format!("refusing to publish an invalid event: {problem}"))
        })?;
        outbox::insert(tx, event);
        Ok(())
    }

    /// Checks a received event against its schema; an invalid one is dead-lettered.
    pub fn check_received(&self, event: &Event) -> Result<(), HandleError> {
        self.schemas
            .validate(&event.event_type, &event.payload)
            .map_err(|problem| HandleError::new(ErrorKind::SchemaInvalid, problem))
    }
}

/// A database failure while handling a message: an unavailable database is waited out;
/// anything else (corrupt data) is a handler failure, retried and then dead-lettered.
pub fn store_error(e: StoreError) -> HandleError {
    let kind = if is_transient(&e) { ErrorKind::Unavailable } else { ErrorKind::HandlerFailed };
    HandleError::new(kind, e.to_string())
}

/// The delivery policy of a consumer from its compiled retry settings.
pub fn delivery_policy(
    group: &str,
    retry: &crate::transport::DeliveryRetry,
    dead_letter_topic: Option<String>,
    broker: &Broker,
) -> DeliveryPolicy {
    DeliveryPolicy {
        group: group.to_string(),
        attempts: retry.attempts,
        backoff: retry.backoff,
        max_backoff: retry.max_backoff,
        jitter: retry.jitter,
        retryable: retry.retryable.clone(),
        dead_letter_topic,
        redeliver: broker.config().redeliver_each_message,
        chaos: None,
        skip_unusable: false,
        max_in_flight: 1,
    }
}
