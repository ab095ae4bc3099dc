//! gameday-svc: scripted experiments against the running system. A scenario (a TOML file of
//! `pipelines/gamedays/`) sends load to order-api, applies timed faults through chaos-svc as
//! leases, stops when its stop conditions say so, audits every order afterwards and ends
//! with a verdict and a report. One run at a time; runs are stored in `gameday_runs`.
//!
//! Where each job is:
//! - `scenario.rs`: the compiled scenario (the file format is `config::scenario`);
//! - `engine.rs`: one run from start to verdict;
//! - `system.rs`: the calls into chaos-svc and the runtime routes;
//! - `audit.rs`: the invariants over the run's orders;
//! - `model.rs`: what a run records; `runs.rs`: the table it is kept in;
//! - `report.rs`: Markdown and HTML (with SVG plots) of a run.

pub mod audit;
pub mod engine;
pub mod model;
pub mod report;
pub mod runs;
pub mod scenario;
pub mod system;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::admin::{Admin, AdminConfig, AdminTokens};
use crate::event::now_ms;
use crate::http::{ApiError, BodyRules, JsonBody, Routes};
use crate::services::relay::AfterPublish;
use crate::services::ServiceContext;
use model::{OrderCounts, RunRecord, RunState};
use scenario::Scenario;

/// Where the routes of gameday-svc are mounted.
pub const PREFIX: &str = "/api/gamedays";
/// The largest scenario sent in a request body.
const MAX_SCENARIO_BYTES: usize = 256 * 1024;
/// The most runs `GET /runs` lists.
const MAX_LIST: u32 = 200;

/// `[gameday]`, compiled.
#[derive(Debug, Clone)]
pub struct GamedayConfig {
    /// The folder of scenario files (the loader resolves it against the pipeline file).
    pub scenarios_dir: PathBuf,
    /// The folder of the system's pipeline files, whose `[[slo.objectives]]` scenarios name
    /// (the pipeline file's own folder).
    pub system_dir: PathBuf,
    /// Where the system's APIs answer; `None`: this process's own listener (`runner up`).
    pub system_url: Option<String>,
    /// APIs that answer elsewhere than `system_url` (services deployed apart).
    pub endpoints: Endpoints,
    /// What the relay does with published rows (the audit's reconciliation needs them kept).
    pub relay_after_publish: AfterPublish,
}

/// Where each API a game day calls answers, when not at the system's URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    /// order-api (the load).
    pub orders: Option<String>,
    /// chaos-svc (faults and the canary percentage, as leases).
    pub chaos: Option<String>,
    /// dlq-admin (replays).
    pub dlq: Option<String>,
    /// The orchestrator's runtime routes (the canary in force).
    pub runtime: Option<String>,
}

/// Compiles a scenario from a file name and its text, or says why not (`file:line:col: …`).
pub type ScenarioCompiler = Arc<dyn Fn(&Path, &str) -> Result<Scenario, String> + Send + Sync>;

/// The run going on in this process.
struct Current {
    id: String,
    record: Arc<Mutex<RunRecord>>,
    abort: CancellationToken,
    abort_reason: Arc<Mutex<Option<String>>>,
}

#[derive(Clone)]
struct AppState {
    ctx: ServiceContext,
    config: GamedayConfig,
    compile: ScenarioCompiler,
    /// This process's own address, known once it listens.
    own_url: Arc<OnceLock<String>>,
    /// The token the game day calls chaos-svc with.
    token: String,
    current: Arc<tokio::sync::Mutex<Option<Current>>>,
}

/// The routes of gameday-svc. `own_url` is filled in once the process listens.
pub fn router(
    ctx: ServiceContext,
    config: GamedayConfig,
    admin: &AdminConfig,
    compile: ScenarioCompiler,
    own_url: Arc<OnceLock<String>>,
) -> Routes {
    let token = admin.tokens.first().map(|(_, token)| token.clone()).unwrap_or_default();
    let state = AppState { ctx, config, compile, own_url, token, current: Arc::default() };
    let routes = Routes::new()
        .get("/scenarios", list_scenarios)
        .get("/runs", list_runs)
        .admin_post("/runs", start_run)
        .get("/runs/{id}", show_run)
        .admin_post("/runs/{id}/abort", abort_run)
        .get("/runs/{id}/report", report)
        .with_state(state);
    routes.map(|routes| {
        BodyRules { limit: MAX_SCENARIO_BYTES, ..BodyRules::DEFAULT }
            .apply(routes.layer(Extension(AdminTokens::new(admin))))
    })
}

/// Marks runs left live by a process that died as interrupted (their faults ended by lease).
pub async fn recover(ctx: &ServiceContext) {
    match runs::interrupt_stale(&ctx.store, now_ms()).await {
        Ok(ids) if !ids.is_empty() => tracing::warn!(?ids, "game days interrupted by a stop of gameday-svc"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot look for interrupted game days"),
    }
}

impl AppState {
    fn system_url(&self) -> Option<String> {
        self.config.system_url.clone().or_else(|| self.own_url.get().cloned())
    }

    /// Every scenario file of the folder, compiled (or its problems).
    fn scenarios(&self) -> Vec<(PathBuf, Result<Scenario, String>)> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.config.scenarios_dir)
            .map(|dir| {
                dir.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
            .into_iter()
            .map(|path| {
                let compiled = match std::fs::read_to_string(&path) {
                    Ok(text) => (self.compile)(&path, &text),
                    Err(e) => Err(format!("{}: cannot read: {e}", path.display())),
                };
                (path, compiled)
            })
            .collect()
    }
}

async fn list_scenarios(State(state): State<AppState>) -> Json<Value> {
    let scenarios: Vec<Value> = tokio::task::spawn_blocking(move || state.scenarios())
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|(path, compiled)| {
            let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
            match compiled {
                Ok(s) => json!({
                    "name": s.name,
                    "file": file,
                    "valid": true,
                    "description": s.description,
                    "hypothesis": s.hypothesis_text,
                    "durationMs": s.load.duration.as_millis() as u64,
                    "phases": s.phases.iter().map(|p| &p.name).collect::<Vec<_>>(),
                    "faults": s.faults.iter().map(|f| json!({
                        "name": f.name, "kind": f.kind(), "summary": f.summary(),
                        "atMs": f.at.as_millis() as u64, "forMs": f.length.as_millis() as u64,
                    })).collect::<Vec<_>>(),
                    "stopConditions": s.stop_conditions.iter().map(|c| c.describe()).collect::<Vec<_>>(),
                }),
                Err(problems) => json!({ "name": file.trim_end_matches(".toml"), "file": file, "valid": false, "problems": problems }),
            }
        })
        .collect();
    Json(json!({ "scenarios": scenarios }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StartBody {
    /// A scenario of the folder, by its name.
    #[serde(default)]
    scenario: Option<String>,
    /// Or a scenario file's text (what `runner gameday run FILE --target` sends).
    #[serde(default)]
    scenario_toml: Option<String>,
    /// The file name the text came from, for diagnostics.
    #[serde(default)]
    file: Option<String>,
}

/// `POST /runs`: starts a scenario; `409` while another runs.
async fn start_run(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(body): JsonBody<StartBody>,
) -> Result<Response, ApiError> {
    let invalid = |field: &str, message: String| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("invalid request: `{field}`: {message}"))
            .with_fields(vec![(field.to_string(), message)])
    };
    // Refused before any file is read: twenty starts at once must not compile twenty times.
    refuse_if_running(state.current.lock().await.as_ref())?;
    let scenario = match (&body.scenario, &body.scenario_toml) {
        (Some(name), None) => {
            if name.is_empty() || name.len() > 100 || name.contains(['\0', '/', '\\']) {
                return Err(invalid("scenario", "a scenario name is 1 to 100 characters, no slashes".into()));
            }
            let state = state.clone();
            let found = tokio::task::spawn_blocking(move || state.scenarios()).await.unwrap_or_default();
            let named = found.into_iter().find(|(path, compiled)| match compiled {
                Ok(s) => s.name == *name,
                Err(_) => path.file_stem().is_some_and(|f| f.to_string_lossy() == *name),
            });
            match named {
                Some((_, Ok(scenario))) => scenario,
                Some((_, Err(problems))) => {
                    return Err(invalid("scenario", format!("the scenario file has problems: {problems}")))
                }
                None => {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        format!(
                            "no scenario `{}`; GET {PREFIX}/scenarios lists them",
                            crate::chaos::rule::shortened(name)
                        ),
                    ))
                }
            }
        }
        (None, Some(text)) => {
            let file = body.file.clone().unwrap_or_else(|| "scenario.toml".into());
            if file.len() > 200 || file.contains('\0') {
                return Err(invalid("file", "a file name of at most 200 characters".into()));
            }
            let path = state.config.scenarios_dir.join(Path::new(&file).file_name().unwrap_or_default());
            (state.compile)(&path, text).map_err(|problems| invalid("scenarioToml", problems))?
        }
        _ => {
            return Err(invalid("scenario", "give either `scenario` (a name) or `scenarioToml` (a file's text)".into()))
        }
    };
    let Some(base) = state.system_url() else {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "gameday-svc is still starting; retry in a second"));
    };
    let mut current = state.current.lock().await;
    refuse_if_running(current.as_ref())?;
    let record = new_record(&scenario, &admin.actor);
    match runs::claim(&state.ctx.store, &record).await {
        Ok(()) => {}
        Err(runs::ClaimError::Busy) => {
            let live = runs::list(&state.ctx.store, None, 20).await.unwrap_or_default();
            let id = live.iter().find(|r| !r.state.is_over()).map_or("?".to_string(), |r| r.id.clone());
            return Err(busy(&id));
        }
        Err(runs::ClaimError::Store(e)) => return Err(e.into()),
    }
    let shared = Arc::new(Mutex::new(record.clone()));
    let abort = state.ctx.shutdown.child_token();
    let abort_reason: Arc<Mutex<Option<String>>> = Arc::default();
    *current = Some(Current {
        id: record.id.clone(),
        record: shared.clone(),
        abort: abort.clone(),
        abort_reason: abort_reason.clone(),
    });
    drop(current);
    let ctx = engine::RunContext {
        store: state.ctx.store.clone(),
        broker: state.ctx.broker.clone(),
        system: system::SystemClient::new(&base, &state.config.endpoints, &state.token),
        after_publish: state.config.relay_after_publish,
        abort,
        abort_reason,
        record: shared,
    };
    tracing::info!(run = %record.id, scenario = %scenario.name, by = %admin.actor, "game day started");
    let name = format!("{}/gameday {}", state.ctx.service, record.id);
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            engine::run(ctx, scenario).await;
        },
        tracing::info_span!("gameday", name = %name),
    ));
    Ok((StatusCode::CREATED, Json(record)).into_response())
}

/// `409` while this process's run goes on.
fn refuse_if_running(current: Option<&Current>) -> Result<(), ApiError> {
    match current {
        Some(running) if !running.record.lock().expect("run lock").state.is_over() => Err(busy(&running.id)),
        _ => Ok(()),
    }
}

fn busy(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        format!("game day {id} is running; one runs at a time: wait for it or POST {PREFIX}/runs/{id}/abort"),
    )
}

fn new_record(scenario: &Scenario, actor: &str) -> RunRecord {
    RunRecord {
        id: uuid::Uuid::new_v4().simple().to_string(),
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        hypothesis_text: scenario.hypothesis_text.clone(),
        state: RunState::Running,
        started_by: actor.to_string(),
        started_at_ms: now_ms(),
        ended_at_ms: None,
        planned_ms: scenario.load.duration.as_millis() as u64,
        elapsed_ms: 0,
        phase: scenario.phases.first().map(|p| p.name.clone()),
        rate: 0.0,
        orders: OrderCounts::default(),
        burn_rate: None,
        faults: Vec::new(),
        samples: Vec::new(),
        phases: Vec::new(),
        stop: None,
        audit: Vec::new(),
        dead_letters: Default::default(),
        verdict: None,
        errors: Vec::new(),
    }
}

/// A run: the live record when it is this process's current one, else the stored one.
async fn find(state: &AppState, id: &str) -> Result<RunRecord, ApiError> {
    if let Some(current) = state.current.lock().await.as_ref() {
        if current.id == id {
            return Ok(current.record.lock().expect("run lock").clone());
        }
    }
    if id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such game-day run; run ids are 32 hex digits"));
    }
    runs::get(&state.ctx.store, id).await?.ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, format!("no game-day run `{id}`; GET {PREFIX}/runs lists them"))
    })
}

async fn show_run(State(state): State<AppState>, UrlPath(id): UrlPath<String>) -> Result<Json<RunRecord>, ApiError> {
    find(&state, &id).await.map(Json)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    scenario: Option<String>,
    limit: Option<u32>,
}

/// `GET /runs`: history, newest first, without the timelines.
async fn list_runs(State(state): State<AppState>, Query(query): Query<ListQuery>) -> Result<Json<Value>, ApiError> {
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_LIST);
    let mut list = runs::list(&state.ctx.store, query.scenario.as_deref(), limit).await?;
    if let Some(current) = state.current.lock().await.as_ref() {
        let live = current.record.lock().expect("run lock").clone();
        if let Some(stored) = list.iter_mut().find(|r| r.id == live.id) {
            *stored = live;
        }
    }
    let runs: Vec<Value> = list
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id, "scenario": r.scenario, "state": r.state, "startedBy": r.started_by,
                "startedAtMs": r.started_at_ms, "endedAtMs": r.ended_at_ms, "elapsedMs": r.elapsed_ms,
                "orders": r.orders, "verdict": r.verdict, "stop": r.stop,
            })
        })
        .collect();
    Ok(Json(json!({ "runs": runs })))
}

/// `POST /runs/{id}/abort`: stops the load, removes every fault, then settles and audits.
async fn abort_run(
    State(state): State<AppState>,
    admin: Admin,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    // The lock is not held across `find`, which takes it too.
    let running = {
        let current = state.current.lock().await;
        current.as_ref().filter(|c| c.id == id).map(|c| (c.record.clone(), c.abort.clone(), c.abort_reason.clone()))
    };
    let Some((record, abort, abort_reason)) = running else {
        let known = find(&state, &id).await?;
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("game day {id} is {}; only a running one can be aborted", known.state.as_str()),
        ));
    };
    if record.lock().expect("run lock").state.is_over() {
        return Err(ApiError::new(StatusCode::CONFLICT, format!("game day {id} has ended already")));
    }
    let mut reason = abort_reason.lock().expect("abort lock");
    if reason.is_none() {
        *reason = Some(format!("aborted by {}", admin.actor));
    }
    drop(reason);
    abort.cancel();
    tracing::warn!(run = %id, by = %admin.actor, "game day aborted");
    Ok((StatusCode::ACCEPTED, Json(json!({ "id": id, "aborting": true }))).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    format: Option<String>,
}

/// `GET /runs/{id}/report?format=html|md|json` (default html).
async fn report(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
    Query(query): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    let run = find(&state, &id).await?;
    let previous = runs::previous(&state.ctx.store, &run.scenario, run.started_at_ms).await?;
    let format = query.format.as_deref().unwrap_or("html");
    Ok(match format {
        "html" => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], report::html(&run, previous.as_ref()))
            .into_response(),
        "md" | "markdown" => {
            ([(header::CONTENT_TYPE, "text/markdown; charset=utf-8")], report::markdown(&run, previous.as_ref()))
                .into_response()
        }
        "json" => Json(json!({ "run": run, "previous": previous })).into_response(),
        other => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("no report format `{}`; use html, md or json", crate::chaos::rule::shortened(other)),
            ))
        }
    })
}
