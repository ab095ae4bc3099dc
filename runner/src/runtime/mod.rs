//! Running pipelines: shared broker and database connections, every part of every pipeline
//! as a task, one HTTP server, health endpoints, hot reload, and graceful shutdown.
//!
//! Start-up and reload share one path: [`ServiceUnit::apply`] takes the [`Changes`] of a
//! pipeline — at start-up everything, on reload what [`diff`](crate::config::diff) found —
//! and (re)builds only those parts: chaos settings, the canary, consumers one by one.

mod control;
mod reload;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use reload::ConfigStatus;

use crate::chaos::Chaos;
use crate::config::diff::Changes;
use crate::config::model::{Brokers, Pipeline};
use crate::config::spec::PipelineSpec;
use crate::config::{LoadOptions, LoadedPipeline};
use crate::saga::canary::Canary;
use crate::saga::orchestrator;
use crate::services::{chaos_api, dlq_admin, order_api, relay, worker, ServiceContext};
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
    #[error("cannot watch the pipeline files: {0}")]
    Watch(String),
}

/// A running system: its address and the handle to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    /// The embedded broker, when one runs in this process.
    pub embedded_broker: Option<Arc<EmbeddedBroker>>,
    /// The database of the first pipeline (for tests and tools).
    pub store: Store,
    /// The chaos engine of this process.
    pub chaos: Chaos,
    stores: Vec<Store>,
    grace: Duration,
    tasks: TaskTracker,
}

/// A pipeline to run, with where it came from when it can be reloaded.
pub struct Unit {
    pub pipeline: Pipeline,
    pub spec: Option<PipelineSpec>,
    pub path: Option<PathBuf>,
    pub hash: Option<String>,
}

impl From<Pipeline> for Unit {
    fn from(pipeline: Pipeline) -> Self {
        Unit { pipeline, spec: None, path: None, hash: None }
    }
}

impl From<LoadedPipeline> for Unit {
    fn from(loaded: LoadedPipeline) -> Self {
        Unit { pipeline: loaded.pipeline, spec: Some(loaded.spec), path: Some(loaded.path), hash: Some(loaded.hash) }
    }
}

/// A consumer task that can be stopped on its own.
struct RunningPart {
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

/// One pipeline while it runs: its current config and the parts built from it.
pub(crate) struct ServiceUnit {
    ctx: ServiceContext,
    pipeline: Pipeline,
    spec: Option<PipelineSpec>,
    path: Option<PathBuf>,
    canary: Option<Arc<Canary>>,
    consumers: HashMap<String, RunningPart>,
    status: ConfigStatus,
    tasks: TaskTracker,
}

impl ServiceUnit {
    /// Builds the parts named by `changes` from `next` (start-up: all of them).
    async fn apply(&mut self, next: Pipeline, changes: &Changes, set_at_ms: i64) {
        let service = next.service.clone();
        if changes.chaos {
            self.ctx.chaos.set_service(&service, next.chaos.clone());
        }
        if changes.canary {
            if let (Some(canary), Some(config)) = (&self.canary, next.saga.as_ref().and_then(|s| s.canary.clone())) {
                canary.update_config(config, set_at_ms);
            }
        }
        for name in &changes.consumers_stopped {
            if let Some(part) = self.consumers.remove(name) {
                // The consumer finishes its message, commits its offsets and leaves the group;
                // its successor resumes from there, so nothing is lost or handled twice.
                part.stop.cancel();
                let _ = part.handle.await;
            }
        }
        for name in &changes.consumers_started {
            let Some(config) = next.consumers.iter().find(|c| &c.name == name).cloned() else { continue };
            let stop = self.ctx.shutdown.child_token();
            let ctx = ServiceContext { shutdown: stop.clone(), ..self.ctx.clone() };
            let process = self.ctx.shutdown.clone();
            let handle = self.tasks.spawn(async move {
                if let Err(e) = worker::run(ctx, config).await {
                    tracing::error!(part = "consumer", error = %e, "a part of the service failed; shutting down");
                    process.cancel();
                }
            });
            self.consumers.insert(name.clone(), RunningPart { stop, handle });
        }
        self.pipeline = next;
    }
}

/// Everything one process runs, shared by the reload loop and the admin endpoints.
#[derive(Clone)]
pub(crate) struct Units(Arc<Vec<Mutex<ServiceUnit>>>);

#[derive(Clone)]
struct Health {
    services: Vec<String>,
    stores: Vec<Store>,
    brokers: Vec<Broker>,
    shutdown: CancellationToken,
}

/// Starts every pipeline in this process, serving all their routes on `listen`.
pub async fn start(pipelines: Vec<Pipeline>, listen: SocketAddr) -> Result<Running, RuntimeError> {
    start_units(pipelines.into_iter().map(Unit::from).collect(), listen, None).await
}

/// As [`start`], and reloads each file when it changes (`options`: how it was loaded).
pub async fn start_watched(
    loaded: Vec<LoadedPipeline>,
    listen: SocketAddr,
    options: LoadOptions,
) -> Result<Running, RuntimeError> {
    start_units(loaded.into_iter().map(Unit::from).collect(), listen, Some(options)).await
}

async fn start_units(
    units: Vec<Unit>,
    listen: SocketAddr,
    watch: Option<LoadOptions>,
) -> Result<Running, RuntimeError> {
    crate::telemetry::prometheus();
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let outbox_written = Arc::new(Notify::new());
    let chaos = Chaos::new();

    // One embedded broker and one pool per database, shared by the services of this process.
    let embedded = if units.iter().any(|u| u.pipeline.broker.brokers == Brokers::Embedded) {
        let broker = Arc::new(EmbeddedBroker::start(1)?);
        tracing::info!(bootstrap = broker.bootstrap_servers(), "embedded Kafka-protocol broker started");
        Some(broker)
    } else {
        None
    };
    let mut stores: HashMap<String, Store> = HashMap::new();
    let mut contexts = Vec::new();
    for unit in &units {
        let pipeline = &unit.pipeline;
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
        let mut topics: BTreeSet<String> =
            pipeline.produced_topics().into_iter().chain(pipeline.consumed_topics()).collect();
        topics.insert(crate::chaos::INJECTIONS_TOPIC.to_string());
        broker.ensure_topics(&topics.into_iter().collect::<Vec<_>>()).await?;
        broker.ensure_compacted_topic(crate::chaos::CONTROL_TOPIC).await?;
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
            chaos: chaos.clone(),
            variant: pipeline.variant.clone(),
        });
    }

    let mut app = Router::new();
    let mut service_units = Vec::new();
    for (unit, ctx) in units.into_iter().zip(&contexts) {
        let pipeline = unit.pipeline.clone();
        let mut service_routes = Router::new();
        if let Some(api) = &pipeline.order_api {
            service_routes = service_routes.nest(order_api::PREFIX, order_api::router(ctx.clone(), api.clone()));
        }
        if let Some(config) = &pipeline.relay {
            let status = relay::RelayStatus::new("starting");
            service_routes = service_routes.nest(relay::PREFIX, relay::status::router(status.clone()));
            spawn(&tasks, &shutdown, "relay", relay::run(ctx.clone(), config.clone(), status));
        }
        let set_at_ms = reload::modified_ms(unit.path.as_deref());
        let canary = pipeline
            .saga
            .as_ref()
            .and_then(|s| s.canary.clone())
            .map(|config| Arc::new(Canary::new(config, set_at_ms, chaos.clone())));
        if let Some(saga) = &pipeline.saga {
            spawn(&tasks, &shutdown, "orchestrator", orchestrator::run(ctx.clone(), saga.clone(), canary.clone()));
        }
        if let Some(config) = &pipeline.dlq_admin {
            let routes = dlq_admin::router(ctx.clone(), config.clone(), &pipeline.admin, pipeline.schemas.clone())?;
            service_routes = service_routes.nest(dlq_admin::PREFIX, routes);
            spawn(&tasks, &shutdown, "dlq-admin", dlq_admin::run(ctx.clone(), config.clone()));
        }
        if let Some(config) = &pipeline.chaos_api {
            let routes = chaos_api::router(ctx.clone(), config.clone(), &pipeline.admin)?;
            service_routes = service_routes.nest(chaos_api::PREFIX, routes);
            spawn(&tasks, &shutdown, "chaos-svc", control::follow_injections(ctx.clone()));
        }
        if let Some(config) = &pipeline.analytics {
            let state = crate::services::analytics::AnalyticsState::default();
            let settings = crate::services::analytics::AnalyticsSettings::new(config.clone(), pipeline.slo.clone());
            let routes = crate::services::analytics::router(state.clone(), settings.clone());
            service_routes = service_routes.merge(routes);
            spawn(
                &tasks,
                &shutdown,
                "streams-analytics",
                crate::services::analytics::run(ctx.clone(), settings, state),
            );
        }
        app = app.merge(crate::chaos::http::layer(service_routes, chaos.clone(), &pipeline.service));
        let mut groups: Vec<(String, Vec<String>)> =
            pipeline.consumers.iter().map(|c| (c.group.clone(), vec![c.topic.clone()])).collect();
        if let Some(saga) = &pipeline.saga {
            groups.push((saga.group.clone(), saga.definition.consumed_topics()));
        }
        if let Some(analytics) = &pipeline.analytics {
            groups.push((analytics.group.clone(), analytics.topics()));
        }
        if !groups.is_empty() {
            tasks.spawn(control::consumer_lag(ctx.clone(), groups));
        }

        let mut service_unit = ServiceUnit {
            ctx: ctx.clone(),
            pipeline: pipeline.clone(),
            spec: unit.spec,
            status: ConfigStatus::new(&pipeline.service, unit.path.as_deref(), unit.hash.clone()),
            path: unit.path,
            canary,
            consumers: HashMap::new(),
            tasks: tasks.clone(),
        };
        let changes = Changes::initial(pipeline.consumers.iter().map(|c| c.name.clone()).collect());
        service_unit.apply(pipeline, &changes, set_at_ms).await;
        service_units.push(Mutex::new(service_unit));
    }
    let units = Units(Arc::new(service_units));

    // The control plane: every runner follows the control topic and reports its injections.
    if let Some(ctx) = contexts.first() {
        spawn(&tasks, &shutdown, "chaos control", control::follow_control(ctx.clone()));
        tasks.spawn(control::report_injections(ctx.clone()));
    }
    if let Some(embedded) = &embedded {
        tasks.spawn(control::broker_faults(chaos.clone(), embedded.clone(), shutdown.clone()));
    }
    if let Some(options) = watch {
        reload::watch(units.clone(), options, &tasks, shutdown.clone())?;
    }

    let health = Health {
        services: contexts.iter().map(|c| c.service.clone()).collect(),
        stores: stores.values().cloned().collect(),
        brokers: distinct_brokers(&contexts),
        shutdown: shutdown.clone(),
    };
    let health_routes = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(health)
        .route("/metrics", get(crate::telemetry::metrics_endpoint));
    let app = app
        .merge(health_routes)
        .nest("/api/runtime", reload::router(units.clone(), chaos.clone()))
        .layer(tower_http::trace::TraceLayer::new_for_http());

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
    let services: Vec<&String> = contexts.iter().map(|c| &c.service).collect();
    tracing::info!(%addr, ?services, "runner started");
    let mut grace = Duration::from_secs(10);
    for unit in units.0.iter() {
        grace = grace.max(unit.lock().await.pipeline.shutdown_grace);
    }
    let store = contexts.first().map(|c| c.store.clone()).expect("at least one pipeline");
    let stores = stores.into_values().collect();
    Ok(Running { addr, shutdown, embedded_broker: embedded.clone(), store, chaos, stores, grace, tasks })
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
