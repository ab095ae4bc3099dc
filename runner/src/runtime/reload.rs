//! Hot reload: a watcher on the pipeline files feeds one control loop, which debounces
//! changes, loads and compiles the file, checks it with the rest of the system, diffs it
//! against the running config, and applies what changed — or keeps the running config and
//! says why (`file:line:column: message`, or the keys that need a restart).
//!
//! Every outcome is logged, counted (`runner_config_reloads_total{service,result}`) and shown
//! at `GET /api/runtime/config` with the active config's hash and load time.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use notify::Watcher;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{RuntimeError, Units};
use crate::admin::{Admin, AdminConfig, AdminTokens};
use crate::chaos::Chaos;
use crate::config::diff::diff;
use crate::config::{self, LoadOptions};
use crate::event::{now_ms, now_rfc3339};
use crate::http::{ApiError, BodyRules, JsonBody, Routes};
use crate::services::orchestrator;
use crate::supervise::{PanicRequest, Supervisor};
use crate::telemetry;

/// Quiet time after the last file event before a reload: editors write a file in steps.
const DEBOUNCE: Duration = Duration::from_millis(50);

/// The outcome of loading a pipeline file, as the config endpoint shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigStatus {
    pub service: String,
    pub path: Option<String>,
    /// Hash of the file text in force.
    pub hash: Option<String>,
    pub loaded_at: String,
    pub loaded_at_ms: i64,
    /// `started`, `applied`, `unchanged`, `rejected` or `restart_required`.
    pub last_result: String,
    pub last_attempt_at: String,
    /// Why the last reload was not applied (the running config stayed).
    pub last_error: Option<String>,
    /// What the last applied reload rebuilt.
    pub last_changes: Option<String>,
    pub reloads: BTreeMap<String, u64>,
}

impl ConfigStatus {
    pub fn new(service: &str, path: Option<&Path>, hash: Option<String>) -> Self {
        let now = now_rfc3339();
        ConfigStatus {
            service: service.to_string(),
            path: path.map(|p| p.display().to_string()),
            hash,
            loaded_at: now.clone(),
            loaded_at_ms: now_ms(),
            last_result: "started".into(),
            last_attempt_at: now,
            last_error: None,
            last_changes: None,
            reloads: BTreeMap::new(),
        }
    }

    fn outcome(&mut self, result: &str, error: Option<String>) {
        metrics::counter!(telemetry::CONFIG_RELOADS, "service" => self.service.clone(), "result" => result.to_string())
            .increment(1);
        *self.reloads.entry(result.to_string()).or_default() += 1;
        self.last_result = result.to_string();
        self.last_attempt_at = now_rfc3339();
        self.last_error = error;
    }
}

/// When a file was last modified (Unix ms), or now when unknown: the time of its settings.
pub fn modified_ms(path: Option<&Path>) -> i64 {
    path.and_then(|p| std::fs::metadata(p).ok())
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or_else(now_ms, |d| d.as_millis() as i64)
}

/// Starts the watcher and the control loop that reloads changed files.
pub(super) fn watch(
    units: Units,
    options: LoadOptions,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> Result<(), RuntimeError> {
    let (sender, receiver) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            if !matches!(event.kind, notify::EventKind::Access(_)) {
                for path in event.paths {
                    let _ = sender.send(path);
                }
            }
        }
    })
    .map_err(|e| RuntimeError::Watch(e.to_string()))?;
    // Directories, not files: editors replace a file by renaming a new one over it.
    let mut files = HashMap::new();
    for (index, unit) in units.0.iter().enumerate() {
        let unit = unit.try_lock().expect("not yet shared");
        if let Some(path) = &unit.path {
            let canonical = path.canonicalize().unwrap_or_else(|_| path.clone());
            if let Some(dir) = canonical.parent() {
                watcher
                    .watch(dir, notify::RecursiveMode::NonRecursive)
                    .map_err(|e| RuntimeError::Watch(e.to_string()))?;
            }
            files.insert(canonical, index);
        }
    }
    tasks.spawn(control_loop(units, options, files, receiver, watcher, shutdown));
    Ok(())
}

/// The one loop that owns reloads: file events in, reloads out, until shutdown.
async fn control_loop(
    units: Units,
    options: LoadOptions,
    files: HashMap<PathBuf, usize>,
    mut events: mpsc::UnboundedReceiver<PathBuf>,
    _watcher: notify::RecommendedWatcher,
    shutdown: CancellationToken,
) {
    let mut pending: Vec<usize> = Vec::new();
    loop {
        let quiet = tokio::time::sleep(DEBOUNCE);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            event = events.recv() => {
                let Some(path) = event else { return };
                let path = path.canonicalize().unwrap_or(path);
                if let Some(index) = files.get(&path) {
                    if !pending.contains(index) {
                        pending.push(*index);
                    }
                }
            }
            _ = quiet, if !pending.is_empty() => {
                for index in std::mem::take(&mut pending) {
                    reload(&units, index, &options).await;
                }
            }
        }
    }
}

/// Reloads one file: load, check, diff, apply — or keep the running config and say why.
pub(crate) async fn reload(units: &Units, index: usize, options: &LoadOptions) {
    let Some(path) = units.0[index].lock().await.path.clone() else { return };
    // Mid-rename or deleted: the next event reloads it.
    if !path.exists() {
        tracing::debug!(path = %path.display(), "pipeline file not there now");
        return;
    }
    let text = match config::read_pipeline_file(&path) {
        Ok(text) => text,
        // Too large, not UTF-8, unreadable: refused with the reason, the running config stays.
        Err(message) => {
            let message = format!("{}:1:1: {message}", path.display());
            let mut unit = units.0[index].lock().await;
            tracing::warn!(service = unit.status.service, problems = %message, "pipeline file rejected; the running config stays");
            unit.status.outcome("rejected", Some(message));
            return;
        }
    };
    let loaded = config::load_text(&path, &text, options);
    // The rest of the system as it runs now, for the cross-file checks.
    let mut others = Vec::new();
    for (i, unit) in units.0.iter().enumerate() {
        if i != index {
            others.push(unit.lock().await.pipeline.clone());
        }
    }
    let mut unit = units.0[index].lock().await;
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(diagnostics) => {
            let message = diagnostics.to_string();
            tracing::warn!(service = unit.status.service, problems = %message, "pipeline file rejected; the running config stays");
            unit.status.outcome("rejected", Some(message));
            return;
        }
    };
    if unit.status.hash.as_deref() == Some(loaded.hash.as_str()) {
        // Back to the text in force (after a rejected edit, say): nothing to apply.
        if unit.status.last_error.is_some() {
            unit.status.outcome("unchanged", None);
        }
        return;
    }
    // A process running one file checked it alone at start-up; so is its reload.
    let all: Vec<&config::Pipeline> =
        if others.is_empty() { Vec::new() } else { std::iter::once(&loaded.pipeline).chain(others.iter()).collect() };
    let problems: Vec<String> = config::compile::check_system(&all)
        .into_iter()
        .filter(|(i, _)| *i == 0)
        .map(|(_, p)| loaded.source.at(&p.path, p.anchor, p.message).to_string())
        .collect();
    if !problems.is_empty() {
        let message = problems.join("\n");
        tracing::warn!(service = unit.status.service, problems = %message, "pipeline file rejected; the running config stays");
        unit.status.outcome("rejected", Some(message));
        return;
    }
    let Some(old_spec) = unit.spec.clone() else { return };
    let changes = match diff(&old_spec, &loaded.spec) {
        Ok(changes) => changes,
        Err(keys) => {
            let message = format!(
                "{}: changes to {} need a restart; the running config stays (restart the service to apply them)",
                path.display(),
                keys.join(", ")
            );
            tracing::warn!(service = unit.status.service, "{message}");
            unit.status.outcome("restart_required", Some(message));
            return;
        }
    };
    // A new saga definition: instances in flight keep theirs, unless they wait on a step it
    // no longer has — refused then, unless a step mapping moves them.
    let mut moves = Vec::new();
    if let (true, Some(current), Some(next)) = (changes.saga, &unit.pipeline.saga, &loaded.pipeline.saga) {
        match orchestrator::plan_change(&unit.ctx.store, current, next, now_ms()).await {
            Ok(planned) => moves = planned,
            Err(reason) => {
                let message = format!("{}: {reason}; the running config stays", path.display());
                tracing::warn!(service = unit.status.service, "{message}");
                unit.status.outcome("rejected", Some(message));
                return;
            }
        }
    }
    unit.spec = Some(loaded.spec);
    unit.status.hash = Some(loaded.hash);
    if changes.is_empty() {
        // The text changed but no setting did (comments, layout, a value written another way):
        // say so rather than "unchanged", which would read as "your edit was not seen".
        unit.status.last_changes = Some("no setting changed (comments or layout only)".into());
        unit.status.outcome("applied", None);
        return;
    }
    let summary = changes.summary();
    unit.apply(loaded.pipeline, &changes, modified_ms(Some(&path)), moves).await;
    unit.status.loaded_at = now_rfc3339();
    unit.status.loaded_at_ms = now_ms();
    unit.status.last_changes = Some(summary.clone());
    unit.status.outcome("applied", None);
    tracing::info!(service = unit.status.service, changes = summary, "pipeline file reloaded");
}

/// `/api/runtime`: what this process runs — config status, chaos rules and injections,
/// canaries, supervised parts (and a panic on request, to see one restart).
pub(super) fn router(units: Units, chaos: Chaos, parts: Supervisor, admin: &AdminConfig) -> Routes {
    Routes::new()
        .get("/config", config_status)
        .get("/canary", canary_status)
        .get("/sagas", saga_definitions)
        .get("/sagas/in-flight", sagas_in_flight)
        .with_state(units)
        .merge(Routes::new().get("/chaos", chaos_status).with_state(chaos))
        .merge(Routes::new().get("/parts", parts_status).admin_post("/parts/panic", panic_part).with_state(parts))
        .map(|routes| BodyRules::DEFAULT.apply(routes.layer(Extension(AdminTokens::new(admin)))))
}

async fn parts_status(State(parts): State<Supervisor>) -> Json<serde_json::Value> {
    Json(json!({ "parts": parts.snapshot() }))
}

/// The part to make panic.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PanicBody {
    part: String,
}

/// `POST /api/runtime/parts/panic` `{"part": "payment-svc/consumer charge"}`: the part's
/// running attempt panics; its supervisor logs, counts and restarts it.
async fn panic_part(
    admin: Admin,
    State(parts): State<Supervisor>,
    JsonBody(body): JsonBody<PanicBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    match parts.request_panic(&body.part) {
        PanicRequest::Sent => {
            tracing::warn!(actor = admin.actor, part = body.part, "panic of a part requested");
            Ok((StatusCode::ACCEPTED, Json(json!({ "part": body.part, "panic": "requested" }))))
        }
        PanicRequest::Unknown(known) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no part named `{}` runs here; parts: {}", body.part, known.join(", ")),
        )
        .with_fields(vec![("part".to_string(), "unknown part".to_string())])),
    }
}

async fn config_status(State(units): State<Units>) -> Json<serde_json::Value> {
    let mut services = Vec::new();
    for unit in units.0.iter() {
        services.push(unit.lock().await.status.clone());
    }
    Json(json!({ "services": services }))
}

async fn canary_status(State(units): State<Units>) -> Json<serde_json::Value> {
    let mut canaries = Vec::new();
    for unit in units.0.iter() {
        let unit = unit.lock().await;
        if let Some(canary) = &unit.canary {
            let mut snapshot = canary.snapshot();
            snapshot["service"] = json!(unit.pipeline.service);
            canaries.push(snapshot);
        }
    }
    Json(json!({ "canaries": canaries }))
}

/// `GET /api/runtime/sagas`: each saga this process orchestrates — its steps with their
/// messages and compensations (what the console draws an order's path on), and the Mermaid
/// text of `runner graph`.
async fn saga_definitions(State(units): State<Units>) -> Json<serde_json::Value> {
    let mut sagas = Vec::new();
    for unit in units.0.iter() {
        let unit = unit.lock().await;
        if let Some(saga) = &unit.pipeline.saga {
            let definition = &saga.definition;
            let steps: Vec<serde_json::Value> = definition
                .steps
                .iter()
                .map(|step| {
                    json!({
                        "name": step.name,
                        "request": step.request,
                        "success": step.success,
                        "failure": step.failure,
                        "irreversible": step.irreversible,
                        "compensation": step.compensation.as_ref().map(|c| json!({ "request": c.request, "success": c.success })),
                    })
                })
                .collect();
            sagas.push(json!({
                "service": unit.pipeline.service,
                "name": definition.name,
                "definition": definition.hash(),
                "trigger": definition.trigger,
                "steps": steps,
                "mermaid": crate::config::graph::mermaid(definition),
            }));
        }
    }
    Json(json!({ "sagas": sagas }))
}

/// `GET /api/runtime/sagas/in-flight`: each saga's instances in flight by the definition
/// they run on and their step (what `runner plan --target` weighs a saga change against).
/// Apart from `/sagas`, which the console reads on every order page: counting reads the store.
async fn sagas_in_flight(State(units): State<Units>) -> Json<serde_json::Value> {
    let mut sagas = Vec::new();
    for unit in units.0.iter() {
        // The unit is not held while the store is read: a reload may go on meanwhile.
        let found = {
            let unit = unit.lock().await;
            unit.pipeline
                .saga
                .as_ref()
                .map(|saga| (unit.pipeline.service.clone(), saga.clone(), unit.ctx.store.clone()))
        };
        if let Some((service, config, store)) = found {
            let in_flight = match orchestrator::in_flight(&store, &config).await {
                Ok((definitions, read, unreadable)) => {
                    let mut by_step: BTreeMap<String, BTreeMap<&str, u64>> = BTreeMap::new();
                    for (step, phases) in definitions.iter().flat_map(|d| d.by_step.iter()) {
                        for (phase, n) in phases {
                            *by_step.entry(step.clone()).or_default().entry(phase).or_default() += n;
                        }
                    }
                    json!({
                        "total": read,
                        "truncated": read >= u64::from(orchestrator::MAX_IN_FLIGHT_READ),
                        "definition": config.definition.hash(),
                        "definitions": definitions,
                        "byStep": by_step,
                        "unreadable": unreadable,
                    })
                }
                Err(e) => json!({ "error": format!("cannot count the sagas in flight: {e}") }),
            };
            let name = config.definition.name.clone();
            sagas.push(json!({ "service": service, "name": name, "inFlight": in_flight }));
        }
    }
    Json(json!({ "sagas": sagas }))
}

async fn chaos_status(State(chaos): State<Chaos>) -> Json<serde_json::Value> {
    Json(json!({
        "rules": crate::chaos::describe_rules(&chaos),
        "injections": chaos.recent(200),
    }))
}
