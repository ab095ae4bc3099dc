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
use axum::Json;
use serde_json::json;
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use reload::ConfigStatus;

use crate::admin::AdminConfig;
use crate::chaos::Chaos;
use crate::config::diff::Changes;
use crate::config::model::Pipeline;
use crate::config::spec::PipelineSpec;
use crate::config::{LoadOptions, LoadedPipeline};
use crate::http::{RouteEntry, Routes};
use crate::saga::canary::Canary;
use crate::saga::SagaConfig;
use crate::services::analytics::AnalyticsConfig;
use crate::services::chaos_api::ChaosApiConfig;
use crate::services::dlq_admin::DlqAdminConfig;
use crate::services::gameday::{self, GamedayConfig};
use crate::services::order_api::OrderApiConfig;
use crate::services::{analytics, chaos_api, dlq_admin, orchestrator, order_api, relay, worker, ServiceContext};
use crate::store::{Store, StoreError};
use crate::supervise::{self, Supervisor};
use crate::transport::{Broker, Brokers, EmbeddedBroker, TransportError};

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
    #[error("the console's links: {0}")]
    Console(String),
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

/// A part that can be stopped on its own (a consumer) and rebuilt by a reload.
struct RunningPart {
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

impl RunningPart {
    /// Stops the part and waits until it finished its message and committed its offsets.
    async fn stop(self) {
        self.stop.cancel();
        let _ = self.handle.await;
    }
}

/// Runs a supervised part under its own stop token (a child of the process's), so a reload
/// can stop it alone; a crash restarts it (see [`crate::supervise`]).
fn spawn_part<F, Fut, E>(ctx: &ServiceContext, name: String, mut start: F) -> RunningPart
where
    F: FnMut(ServiceContext) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    let stop = ctx.shutdown.child_token();
    let base = ctx.clone();
    let handle = ctx.parts.spawn(name, stop.clone(), move |attempt| start(base.with_shutdown(attempt)));
    RunningPart { stop, handle }
}

/// One pipeline while it runs: its current config and the parts built from it.
pub(crate) struct ServiceUnit {
    ctx: ServiceContext,
    pipeline: Pipeline,
    spec: Option<PipelineSpec>,
    path: Option<PathBuf>,
    canary: Option<Arc<Canary>>,
    /// The orchestrator, rebuilt when the saga's definition changes.
    saga: Option<RunningPart>,
    consumers: HashMap<String, RunningPart>,
    analytics: Option<AnalyticsPart>,
    status: ConfigStatus,
    /// Where this service is announced to chaos-svc (what rules may name).
    own: control::OwnServices,
}

/// streams-analytics while it runs: the settings its routes read, the figures, and the
/// consumer (rebuilt when the topics it follows change; the figures stay).
struct AnalyticsPart {
    settings: analytics::AnalyticsSettings,
    state: analytics::AnalyticsState,
    consumer: Option<(Vec<String>, RunningPart)>,
}

impl ServiceUnit {
    /// Builds the parts named by `changes` from `next` (start-up: all of them); `moves` are
    /// the saga instances a new definition's step mappings move onto it.
    async fn apply(&mut self, next: Pipeline, changes: &Changes, set_at_ms: i64, moves: Vec<orchestrator::Move>) {
        let service = next.service.clone();
        self.own.set(&self.ctx.chaos, next.catalog());
        if changes.analytics || changes.slo {
            if let (Some(part), Some(config)) = (self.analytics.as_mut(), next.analytics.as_ref()) {
                // Routes and the consumer read the settings on each request and message.
                part.settings.replace(config.clone(), next.slo.clone());
                let topics = config.topics();
                if part.consumer.as_ref().is_none_or(|(following, _)| *following != topics) {
                    if let Some((_, old)) = part.consumer.take() {
                        old.stop().await;
                    }
                    let (settings, state) = (part.settings.clone(), part.state.clone());
                    let name = format!("{service}/analytics");
                    let consumer =
                        spawn_part(&self.ctx, name, move |ctx| analytics::run(ctx, settings.clone(), state.clone()));
                    part.consumer = Some((topics, consumer));
                }
            }
        }
        if changes.chaos {
            self.ctx.chaos.set_service(&service, next.chaos.clone());
        }
        if changes.canary {
            if let (Some(canary), Some(config)) = (&self.canary, next.saga.as_ref().and_then(|s| s.canary.clone())) {
                canary.update_config(config, set_at_ms);
            }
        }
        if changes.saga {
            if let Some(part) = self.saga.take() {
                // The orchestrator finishes what it handles and commits; nothing moves meanwhile.
                part.stop().await;
            }
            if let Some(config) = &next.saga {
                orchestrator::move_instances(&self.ctx.store, config, moves, crate::event::now_ms()).await;
                self.saga = Some(start_orchestrator(&self.ctx, config, self.canary.clone()));
            }
        }
        for name in &changes.consumers_stopped {
            if let Some(part) = self.consumers.remove(name) {
                // The consumer finishes its message, commits its offsets and leaves the group;
                // its successor resumes from there, so nothing is lost or handled twice.
                part.stop().await;
            }
        }
        for name in &changes.consumers_started {
            let Some(config) = next.consumers.iter().find(|c| &c.name == name).cloned() else { continue };
            let part = spawn_part(&self.ctx, format!("{service}/consumer {name}"), move |ctx| {
                worker::run(ctx, config.clone())
            });
            self.consumers.insert(name.clone(), part);
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
    parts: Supervisor,
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
    // Checked before anything starts: a bad link stops the start with the variable named.
    let links = crate::http::console::ConsoleLinks::from_env().map_err(RuntimeError::Console)?;
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let outbox_written = Arc::new(Notify::new());
    let chaos = Chaos::new();
    let supervisor = Supervisor::new(tasks.clone());

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
        let (compacted, plain): (Vec<_>, Vec<_>) = pipeline.broker_topics().into_iter().partition(|t| t.compacted);
        broker.ensure_topics(&plain.into_iter().map(|t| t.name).collect::<Vec<_>>()).await?;
        for topic in compacted {
            broker.ensure_compacted_topic(&topic.name).await?;
        }
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
            parts: supervisor.clone(),
        });
    }

    // The runtime's own admin routes take the token of any pipeline in this process.
    let mut admin_tokens: Vec<(String, String)> = units.iter().flat_map(|u| u.pipeline.admin.tokens.clone()).collect();
    admin_tokens.sort();
    admin_tokens.dedup();
    let admin = AdminConfig { tokens: admin_tokens };
    let own = control::OwnServices::default();
    // This process's address, for parts that call the system through its own routes.
    let own_url: Arc<std::sync::OnceLock<String>> = Arc::default();
    let mut app = Routes::new();
    let mut service_units = Vec::new();
    for (unit, ctx) in units.into_iter().zip(&contexts) {
        let set_at_ms = reload::modified_ms(unit.path.as_deref());
        if unit.pipeline.gameday.is_some() {
            // Before anything is served: a run left live by a process that died shows as
            // interrupted from the first request, and does not hold the one-run claim.
            gameday::recover(ctx).await;
        }
        let started = start_sections(ctx, &unit.pipeline, set_at_ms, &own_url)?;
        let (chaos, service) = (chaos.clone(), unit.pipeline.service.clone());
        app = app.merge(started.routes.map(|routes| crate::chaos::http::layer(routes, chaos, &service)));
        let groups = unit.pipeline.consumer_groups();
        if !groups.is_empty() {
            supervise(ctx, "consumer lag", move |ctx| {
                supervise::infallible(control::consumer_lag(ctx, groups.clone()))
            });
        }
        let pipeline = unit.pipeline;
        let mut service_unit = ServiceUnit {
            ctx: ctx.clone(),
            pipeline: pipeline.clone(),
            spec: unit.spec,
            status: ConfigStatus::new(&pipeline.service, unit.path.as_deref(), unit.hash.clone()),
            path: unit.path,
            canary: started.canary,
            saga: started.saga,
            analytics: started.analytics,
            consumers: HashMap::new(),
            own: own.clone(),
        };
        let changes = Changes::initial(pipeline.consumers.iter().map(|c| c.name.clone()).collect());
        service_unit.apply(pipeline, &changes, set_at_ms, Vec::new()).await;
        service_units.push(Mutex::new(service_unit));
    }
    let units = Units(Arc::new(service_units));

    // The control plane: every runner follows the control topic and reports its injections.
    if let Some(ctx) = contexts.first() {
        let base = ctx.clone();
        supervisor
            .spawn("chaos control", shutdown.clone(), move |stop| control::follow_control(base.with_shutdown(stop)));
        let base = ctx.clone();
        supervisor.spawn("service announcer", shutdown.clone(), move |stop| {
            control::announce_services(base.with_shutdown(stop), own.clone())
        });
        let base = ctx.clone();
        supervisor.spawn("injection reporter", shutdown.clone(), move |stop| {
            control::report_injections(base.with_shutdown(stop))
        });
    }
    if let Some(embedded) = &embedded {
        let (chaos, embedded) = (chaos.clone(), embedded.clone());
        supervisor.spawn("broker faults", shutdown.clone(), move |stop| {
            supervise::infallible(control::broker_faults(chaos.clone(), embedded.clone(), stop))
        });
    }
    if let Some(options) = watch {
        reload::watch(units.clone(), options, &tasks, shutdown.clone())?;
    }

    let health = Health {
        services: contexts.iter().map(|c| c.service.clone()).collect(),
        stores: stores.values().cloned().collect(),
        brokers: distinct_brokers(&contexts),
        shutdown: shutdown.clone(),
        parts: supervisor.clone(),
    };
    let health_routes = Routes::new()
        .get("/healthz", healthz)
        .get("/readyz", readyz)
        .with_state(health)
        .merge(Routes::new().get("/metrics", crate::telemetry::metrics_endpoint));
    let table = Arc::new(std::sync::OnceLock::new());
    let runtime_routes = reload::router(units.clone(), chaos.clone(), supervisor.clone(), &admin)
        .merge(Routes::new().get("/routes", route_table).with_state(table.clone()));
    let console_routes = crate::http::console::settings_routes(links);
    let (app, routes) =
        app.merge(health_routes).merge(console_routes).nest("/api/runtime", runtime_routes).into_parts();
    let _ = table.set(routes);
    let app = crate::http::console::with_console(app, crate::http::console::console_dir())
        .layer(tower_http::trace::TraceLayer::new_for_http());

    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|source| RuntimeError::Listen { addr: listen, source })?;
    let addr = listener.local_addr().map_err(|source| RuntimeError::Listen { addr: listen, source })?;
    let reachable = if addr.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr };
    let _ = own_url.set(format!("http://{reachable}"));
    let server_shutdown = shutdown.clone();
    tasks.spawn(crate::http::serve(listener, app, crate::http::ServerLimits::DEFAULT, server_shutdown));
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

/// What starting a pipeline's sections gave: its routes, and the parts a reload changes.
struct Started {
    routes: Routes,
    canary: Option<Arc<Canary>>,
    saga: Option<RunningPart>,
    analytics: Option<AnalyticsPart>,
}

/// Starts every section of one pipeline that runs on its own (consumers, chaos settings and
/// the canary percentage are applied by [`ServiceUnit::apply`], as on a reload).
fn start_sections(
    ctx: &ServiceContext,
    pipeline: &Pipeline,
    set_at_ms: i64,
    own_url: &Arc<std::sync::OnceLock<String>>,
) -> Result<Started, RuntimeError> {
    // Destructured without `..`: a new section does not compile until it says how it starts.
    let Pipeline {
        service: _,
        listen: _,
        shutdown_grace: _,
        broker: _,
        store: _,
        order_api,
        relay,
        consumers: _, // started by `ServiceUnit::apply`
        saga,
        dlq_admin,
        schemas_dir: _,
        schemas,
        admin,
        variant: _,
        chaos: _, // applied by `ServiceUnit::apply`
        chaos_api,
        gameday,
        slo,
        analytics,
        telemetry: _, // set up once per process by the binary
    } = pipeline;
    let mut routes = Routes::new();
    if let Some(config) = order_api {
        routes = routes.nest(order_api::PREFIX, start_order_api(ctx, config));
    }
    if let Some(config) = relay {
        routes = routes.nest(relay::PREFIX, start_relay(ctx, config, admin));
    }
    let canary = saga.as_ref().and_then(|config| config.canary.clone());
    let canary = canary.map(|c| Arc::new(Canary::new(c, set_at_ms, ctx.chaos.clone())));
    let saga = saga.as_ref().map(|config| start_orchestrator(ctx, config, canary.clone()));
    if let Some(config) = dlq_admin {
        routes = routes.nest(dlq_admin::PREFIX, start_dlq_admin(ctx, config, admin, schemas)?);
    }
    if let Some(config) = chaos_api {
        routes = routes.nest(chaos_api::PREFIX, start_chaos_api(ctx, config, admin)?);
    }
    if let Some(config) = gameday {
        routes = routes.nest(gameday::PREFIX, start_gameday(ctx, config, admin, own_url));
    }
    let analytics = analytics.as_ref().map(|config| start_analytics(config, slo));
    if let Some(part) = &analytics {
        routes = routes.merge(analytics::router(part.state.clone(), part.settings.clone()));
    }
    Ok(Started { routes, canary, saga, analytics })
}

fn start_order_api(ctx: &ServiceContext, config: &OrderApiConfig) -> Routes {
    order_api::router(ctx.clone(), config.clone())
}

fn start_relay(ctx: &ServiceContext, config: &relay::RelayConfig, admin: &AdminConfig) -> Routes {
    let status = relay::RelayStatus::new("starting");
    let (config, running) = (config.clone(), status.clone());
    supervise(ctx, "relay", move |ctx| relay::run(ctx, config.clone(), running.clone()));
    relay::status::router(status, admin)
}

/// Starts the orchestrator with its step's canary (which reloads update in place), as a part
/// a change of the saga's definition stops and starts again.
fn start_orchestrator(ctx: &ServiceContext, config: &SagaConfig, canary: Option<Arc<Canary>>) -> RunningPart {
    let config = config.clone();
    spawn_part(ctx, format!("{}/saga", ctx.service), move |ctx| orchestrator::run(ctx, config.clone(), canary.clone()))
}

fn start_dlq_admin(
    ctx: &ServiceContext,
    config: &DlqAdminConfig,
    admin: &AdminConfig,
    schemas: &Arc<crate::schemas::SchemaRegistry>,
) -> Result<Routes, RuntimeError> {
    let routes = dlq_admin::router(ctx.clone(), config.clone(), admin, schemas.clone())?;
    let config = config.clone();
    supervise(ctx, "dead-letter ingest", move |ctx| dlq_admin::run(ctx, config.clone()));
    Ok(routes)
}

fn start_chaos_api(ctx: &ServiceContext, config: &ChaosApiConfig, admin: &AdminConfig) -> Result<Routes, RuntimeError> {
    let routes = chaos_api::router(ctx.clone(), config.clone(), admin)?;
    supervise(ctx, "injections", control::follow_injections);
    Ok(routes)
}

/// gameday-svc: its routes (runs left live by a process that died were marked interrupted
/// before, in `start_units`).
fn start_gameday(
    ctx: &ServiceContext,
    config: &GamedayConfig,
    admin: &AdminConfig,
    own_url: &Arc<std::sync::OnceLock<String>>,
) -> Routes {
    let objectives = crate::config::scenario::ObjectivesOf::new(&config.system_dir);
    let compile: gameday::ScenarioCompiler = Arc::new(move |path, text| {
        crate::config::scenario::load_scenario_text(path, text, &objectives.get()).map_err(|d| d.to_string())
    });
    gameday::router(ctx.clone(), config.clone(), admin, compile, own_url.clone())
}

/// The figures and settings of streams-analytics; its consumer starts in `ServiceUnit::apply`.
fn start_analytics(config: &AnalyticsConfig, objectives: &[crate::slo::Objective]) -> AnalyticsPart {
    AnalyticsPart {
        settings: analytics::AnalyticsSettings::new(config.clone(), objectives.to_vec()),
        state: analytics::AnalyticsState::default(),
        consumer: None,
    }
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

/// Runs a part of `ctx`'s service (named `service/part`) for as long as the service runs,
/// restarted whenever it fails.
fn supervise<F, Fut, E>(ctx: &ServiceContext, part: &str, mut start: F)
where
    F: FnMut(ServiceContext) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    let base = ctx.clone();
    ctx.parts.spawn(format!("{}/{part}", ctx.service), ctx.shutdown.clone(), move |attempt| {
        start(base.with_shutdown(attempt))
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

/// `GET /api/runtime/routes`: every route this process serves, with who may call it.
async fn route_table(State(table): State<Arc<std::sync::OnceLock<Vec<RouteEntry>>>>) -> Json<serde_json::Value> {
    Json(json!({ "routes": table.get() }))
}

/// Ready when every database and broker answers and every supervised part runs; each part is
/// listed with its restarts and last failure.
async fn readyz(State(health): State<Health>) -> impl IntoResponse {
    let mut database = true;
    for store in &health.stores {
        database &= store.ping().await;
    }
    let mut broker = true;
    for b in &health.brokers {
        broker &= b.ping(Duration::from_secs(2)).await;
    }
    let parts = health.parts.snapshot();
    let parts_up = parts.values().all(|p| p.up);
    let ready = database && broker && parts_up && !health.shutdown.is_cancelled();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let down: Vec<&String> = parts.iter().filter(|(_, p)| !p.up).map(|(name, _)| name).collect();
    (
        status,
        Json(json!({
            "ready": ready,
            "database": database,
            "broker": broker,
            "partsUp": parts_up,
            "partsDown": down,
            "shuttingDown": health.shutdown.is_cancelled(),
            "parts": parts,
        })),
    )
}
