//! Running pipelines: shared broker and database connections, every part of every pipeline
//! as a task, one HTTP server, health endpoints, and graceful shutdown.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::model::{Brokers, Pipeline};
use crate::saga::orchestrator;
use crate::services::{dlq_admin, order_api, relay, worker, ServiceContext};
use crate::store::{Store, StoreError};
use crate::transport::{Broker, EmbeddedBroker, TransportError};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("cannot listen on {addr}: {source}; pick another address with --listen")]
    Listen { addr: SocketAddr, source: std::io::Error },
}

/// A running system: its address and the handle to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    /// The embedded broker, when one runs in this process.
    pub embedded_broker: Option<Arc<EmbeddedBroker>>,
    /// The database of the first pipeline (for tests and tools).
    pub store: Store,
    stores: Vec<Store>,
    grace: Duration,
    tasks: TaskTracker,
}

#[derive(Clone)]
struct Health {
    services: Vec<String>,
    stores: Vec<Store>,
    brokers: Vec<Broker>,
    shutdown: CancellationToken,
}

/// Starts every pipeline in this process, serving all their routes on `listen`.
pub async fn start(pipelines: Vec<Pipeline>, listen: SocketAddr) -> Result<Running, RuntimeError> {
    crate::telemetry::prometheus();
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let outbox_written = Arc::new(Notify::new());

    // One embedded broker and one pool per database, shared by the services of this process.
    let embedded = if pipelines.iter().any(|p| p.broker.brokers == Brokers::Embedded) {
        let broker = Arc::new(EmbeddedBroker::start(1)?);
        tracing::info!(bootstrap = broker.bootstrap_servers(), "embedded Kafka-protocol broker started");
        Some(broker)
    } else {
        None
    };
    let mut stores: HashMap<String, Store> = HashMap::new();
    let mut contexts = Vec::new();
    for pipeline in &pipelines {
        if !pipeline.schemas.enabled() {
            tracing::warn!(
                service = pipeline.service,
                "no event schemas: events of this service are not validated; put the schemas in \
                 ../schemas/events beside the pipeline file or set [schemas] dir"
            );
        }
        let store = match stores.get(&pipeline.store.url) {
            Some(store) => store.clone(),
            None => {
                let store = Store::connect(&pipeline.store).await?;
                stores.insert(pipeline.store.url.clone(), store.clone());
                store
            }
        };
        let broker = match (&pipeline.broker.brokers, &embedded) {
            (Brokers::Embedded, Some(embedded)) => Broker::on_embedded(embedded.clone(), &pipeline.broker),
            _ => Broker::connect(&pipeline.broker)?,
        };
        let topics: BTreeSet<String> =
            pipeline.produced_topics().into_iter().chain(pipeline.consumed_topics()).collect();
        broker.ensure_topics(&topics.into_iter().collect::<Vec<_>>()).await?;
        for consumer in &pipeline.consumers {
            consumer.handler.prepare(&store).await?;
        }
        contexts.push(ServiceContext {
            service: pipeline.service.clone(),
            store,
            broker,
            shutdown: shutdown.clone(),
            outbox_written: outbox_written.clone(),
            schemas: pipeline.schemas.clone(),
        });
    }

    let mut app = Router::new();
    for (pipeline, ctx) in pipelines.iter().zip(&contexts) {
        if let Some(api) = &pipeline.order_api {
            app = app.nest(order_api::PREFIX, order_api::router(ctx.clone(), api.clone()));
        }
        if let Some(config) = &pipeline.relay {
            let status = relay::RelayStatus::new("starting");
            app = app.nest(relay::PREFIX, relay::status::router(status.clone()));
            spawn(&tasks, &shutdown, "relay", relay::run(ctx.clone(), config.clone(), status));
        }
        for consumer in &pipeline.consumers {
            spawn(&tasks, &shutdown, "consumer", worker::run(ctx.clone(), consumer.clone()));
        }
        if let Some(saga) = &pipeline.saga {
            spawn(&tasks, &shutdown, "orchestrator", orchestrator::run(ctx.clone(), saga.clone()));
        }
        if let Some(config) = &pipeline.dlq_admin {
            let routes = dlq_admin::router(ctx.clone(), config.clone(), &pipeline.admin, pipeline.schemas.clone())?;
            app = app.nest(dlq_admin::PREFIX, routes);
            spawn(&tasks, &shutdown, "dlq-admin", dlq_admin::run(ctx.clone(), config.clone()));
        }
    }
    let health = Health {
        services: pipelines.iter().map(|p| p.service.clone()).collect(),
        stores: stores.values().cloned().collect(),
        brokers: distinct_brokers(&contexts),
        shutdown: shutdown.clone(),
    };
    let health_routes = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(health)
        .route("/metrics", get(crate::telemetry::metrics_endpoint));
    let app = app.merge(health_routes).layer(tower_http::trace::TraceLayer::new_for_http());

    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|source| RuntimeError::Listen { addr: listen, source })?;
    let addr = listener.local_addr().map_err(|source| RuntimeError::Listen { addr: listen, source })?;
    let server_shutdown = shutdown.clone();
    tasks.spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move { server_shutdown.cancelled().await });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    tasks.close();
    tracing::info!(%addr, services = ?pipelines.iter().map(|p| &p.service).collect::<Vec<_>>(), "runner started");
    let grace = pipelines.iter().map(|p| p.shutdown_grace).max().unwrap_or(Duration::from_secs(10));
    let store = contexts.first().map(|c| c.store.clone()).expect("at least one pipeline");
    let stores = stores.into_values().collect();
    Ok(Running { addr, shutdown, embedded_broker: embedded.clone(), store, stores, grace, tasks })
}

/// One broker per bootstrap list (services of one process usually share one).
fn distinct_brokers(contexts: &[ServiceContext]) -> Vec<Broker> {
    let mut seen = BTreeSet::new();
    contexts
        .iter()
        .filter(|c| seen.insert(c.broker.bootstrap_servers().to_string()))
        .map(|c| c.broker.clone())
        .collect()
}

/// Runs a part; if it fails to start, the whole runner stops rather than limp along.
fn spawn<F, E>(tasks: &TaskTracker, shutdown: &CancellationToken, what: &'static str, future: F)
where
    F: std::future::Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    let shutdown = shutdown.clone();
    tasks.spawn(async move {
        if let Err(e) = future.await {
            tracing::error!(part = what, error = %e, "a part of the service failed; shutting down");
            shutdown.cancel();
        }
    });
}

impl Running {
    /// Stops consuming, lets in-flight work finish (up to the grace period), commits offsets.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.wait().await;
    }

    /// Waits until the system stopped (after `shutdown` is cancelled).
    pub async fn wait(self) {
        self.shutdown.cancelled().await;
        if tokio::time::timeout(self.grace, self.tasks.wait()).await.is_err() {
            tracing::warn!(grace = ?self.grace, "in-flight work did not finish within the grace period");
        }
        for store in &self.stores {
            store.close().await;
        }
    }
}

async fn healthz(State(health): State<Health>) -> impl IntoResponse {
    Json(json!({ "status": "ok", "services": health.services }))
}

async fn readyz(State(health): State<Health>) -> impl IntoResponse {
    let mut database = true;
    for store in &health.stores {
        database &= store.ping().await;
    }
    let mut broker = true;
    for b in &health.brokers {
        broker &= b.ping(Duration::from_secs(2)).await;
    }
    let ready = database && broker && !health.shutdown.is_cancelled();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (
        status,
        Json(
            json!({ "ready": ready, "database": database, "broker": broker, "shuttingDown": health.shutdown.is_cancelled() }),
        ),
    )
}
