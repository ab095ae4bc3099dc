//! chaos-svc (ADR-0003): the REST API for chaos rules and canary percentages. Changes are
//! written to the compacted control topic that every runner follows, so they reach every
//! service within a second with no restart; each rule carries a lease so a fault ends by
//! itself even if chaos-svc is gone. Reads are open; every change needs an admin token and is
//! written to the audit trail.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::ServiceContext;
use crate::admin::{self, Admin, AdminConfig, AdminTokens, AuditRecord};
use crate::chaos::{
    compile_rule, describe_rules, CanarySetting, ControlRecord, ControlRule, FieldProblem, RuleSource, RuleSpec,
    CONTROL_TOPIC,
};
use crate::event::now_ms;
use crate::http::{ApiError, BodyRules, JsonBody, Routes};
use crate::transport::{Publisher, TransportError};

/// `[chaos_api]`, compiled: the leases of rules created through the API.
#[derive(Debug, Clone)]
pub struct ChaosApiConfig {
    pub default_ttl: Duration,
    pub max_ttl: Duration,
}

pub const PREFIX: &str = "/api/chaos";

/// How long a change may take to come back through the control topic before the request fails.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
struct AppState {
    ctx: ServiceContext,
    config: ChaosApiConfig,
    publisher: Publisher,
}

pub fn router(ctx: ServiceContext, config: ChaosApiConfig, admin: &AdminConfig) -> Result<Routes, TransportError> {
    let publisher = ctx.broker.bounded_publisher()?;
    let routes = Routes::new()
        .get("/rules", list_rules)
        .admin_post("/rules", create_rule)
        .get("/rules/{id}", show_rule)
        .admin_put("/rules/{id}", update_rule)
        .admin_delete("/rules/{id}", delete_rule)
        .admin_post("/rules/{id}/enable", enable_rule)
        .admin_post("/rules/{id}/disable", disable_rule)
        .get("/injections", injections)
        .get("/catalog", catalog)
        .get("/canary", canary)
        .admin_put("/canary", set_canary)
        .with_state(AppState { ctx, config, publisher });
    Ok(routes.map(|routes| BodyRules::DEFAULT.apply(routes.layer(Extension(AdminTokens::new(admin))))))
}

async fn list_rules(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "rules": describe_rules(&state.ctx.chaos) }))
}

async fn show_rule(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    describe_rules(&state.ctx.chaos)
        .into_iter()
        .find(|r| r["id"] == id.as_str())
        .map(Json)
        .ok_or_else(|| not_found(&id))
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no chaos rule `{id}`; GET {PREFIX}/rules lists them"))
}

/// A rule checked for the API: compiled, its lease within bounds; `422` names each bad field.
fn checked(state: &AppState, spec: &RuleSpec, now: i64) -> Result<Option<i64>, ApiError> {
    let rule = compile_rule(spec).map_err(invalid_rule)?;
    // A rule that names nothing running would sit there striking nothing: refuse it.
    state.ctx.chaos.catalog().check_target(&spec.target).map_err(|problem| invalid_rule(vec![problem]))?;
    let max = now + state.config.max_ttl.as_millis() as i64;
    let expiry = rule.expiry_from(now).unwrap_or(now + state.config.default_ttl.as_millis() as i64);
    if expiry > max {
        let field = if spec.ttl.is_some() { "ttl" } else { "expires_at" };
        let message = format!("the lease may last at most {}", humantime::format_duration(state.config.max_ttl));
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("invalid rule: `{field}`: {message}"))
            .with_fields(vec![(field.to_string(), message)]));
    }
    if expiry <= now {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid rule: `expires_at`: already past")
            .with_fields(vec![("expires_at".into(), "already past".into())]));
    }
    Ok(Some(expiry))
}

/// `422` naming each field of the rule that is wrong and what to do.
fn invalid_rule(problems: Vec<FieldProblem>) -> ApiError {
    let message = problems.iter().map(|p| format!("`{}`: {}", p.field, p.message)).collect::<Vec<_>>().join("; ");
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("invalid rule: {message}"))
        .with_fields(problems.into_iter().map(|p| (p.field, p.message)).collect())
}

/// Refuses changing a rule that a pipeline file declares: the file is its source of truth.
fn declared_in_file(state: &AppState, id: &str) -> Result<(), ApiError> {
    let file = state.ctx.chaos.active().iter().find_map(|r| match &r.source {
        RuleSource::File { service } if r.rule.spec.id == id => Some(service.clone()),
        _ => None,
    });
    match file {
        Some(service) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("rule `{id}` is declared in the pipeline file of {service}; change it there (it is hot-reloaded)"),
        )),
        None => Ok(()),
    }
}

/// `GET /catalog`: what rules may name — every service announced on the control topic, with
/// its handlers, topics and canary steps.
async fn catalog(State(state): State<AppState>) -> Json<Value> {
    let services: Vec<_> = state.ctx.chaos.catalog().services.into_values().collect();
    Json(json!({ "services": services }))
}

async fn create_rule(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(spec): JsonBody<RuleSpec>,
) -> Result<Response, ApiError> {
    let now = now_ms();
    let expires_at_ms = checked(&state, &spec, now)?;
    declared_in_file(&state, &spec.id)?;
    let rules = state.ctx.chaos.control_rules();
    if rules.contains_key(&spec.id) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("rule `{}` exists; PUT {PREFIX}/rules/{} to change it", spec.id, spec.id),
        ));
    }
    let in_force = rules.values().filter(|r| r.expires_at_ms.is_none_or(|expiry| expiry > now)).count();
    if in_force >= crate::chaos::MAX_CONTROL_RULES {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "{in_force} rules are in force, the most chaos-svc keeps is {}; delete some first (expired rules are purged {} after their lease ends)",
                crate::chaos::MAX_CONTROL_RULES,
                humantime::format_duration(crate::chaos::PURGE_AFTER)
            ),
        ));
    }
    let rule = ControlRule {
        rule: spec.clone(),
        created_at_ms: now,
        updated_at_ms: now,
        expires_at_ms,
        by: admin.actor.clone(),
    };
    write(&state, &admin, "chaos.create", &spec.id, ControlRecord::Rule(spec.id.clone(), Some(Box::new(rule)))).await?;
    let view =
        describe_rules(&state.ctx.chaos).into_iter().find(|r| r["id"] == spec.id.as_str()).unwrap_or(Value::Null);
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn update_rule(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    JsonBody(spec): JsonBody<RuleSpec>,
) -> Result<Json<Value>, ApiError> {
    if spec.id != id {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("invalid rule: `id`: must be `{id}` as in the path"),
        )
        .with_fields(vec![("id".into(), format!("must be `{id}` as in the path"))]));
    }
    declared_in_file(&state, &id)?;
    let now = now_ms();
    let expires_at_ms = checked(&state, &spec, now)?;
    let existing = state.ctx.chaos.control_rules().get(&id).cloned().ok_or_else(|| not_found(&id))?;
    let rule = ControlRule { rule: spec, updated_at_ms: now, expires_at_ms, by: admin.actor.clone(), ..existing };
    write(&state, &admin, "chaos.update", &id, ControlRecord::Rule(id.clone(), Some(Box::new(rule)))).await?;
    show_rule(State(state), Path(id)).await
}

async fn delete_rule(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    declared_in_file(&state, &id)?;
    if !state.ctx.chaos.control_rules().contains_key(&id) {
        return Err(not_found(&id));
    }
    let record = ControlRecord::Rule(id.clone(), None);
    // Ended in this process at once: a broker outage this runner hosts ends before the
    // tombstone has to travel through that broker.
    state.ctx.chaos.apply_control(record.clone());
    write(&state, &admin, "chaos.delete", &id, record).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn enable_rule(state: State<AppState>, admin: Admin, id: Path<String>) -> Result<Json<Value>, ApiError> {
    switch(state, admin, id, true).await
}

async fn disable_rule(state: State<AppState>, admin: Admin, id: Path<String>) -> Result<Json<Value>, ApiError> {
    switch(state, admin, id, false).await
}

async fn switch(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    on: bool,
) -> Result<Json<Value>, ApiError> {
    declared_in_file(&state, &id)?;
    let mut rule = state.ctx.chaos.control_rules().get(&id).cloned().ok_or_else(|| not_found(&id))?;
    rule.rule.enabled = on;
    rule.updated_at_ms = now_ms();
    rule.by = admin.actor.clone();
    let action = if on { "chaos.enable" } else { "chaos.disable" };
    let record = ControlRecord::Rule(id.clone(), Some(Box::new(rule)));
    if !on {
        // As for a deletion: less chaos takes effect here before it travels.
        state.ctx.chaos.apply_control(record.clone());
    }
    write(&state, &admin, action, &id, record).await?;
    show_rule(State(state), Path(id)).await
}

#[derive(Debug, Deserialize)]
struct InjectionFilter {
    limit: Option<usize>,
    rule: Option<String>,
    service: Option<String>,
    /// The order (message key) concerned.
    key: Option<String>,
}

async fn injections(State(state): State<AppState>, Query(filter): Query<InjectionFilter>) -> Json<Value> {
    let limit = filter.limit.unwrap_or(100).min(2_000);
    let injections: Vec<_> = state
        .ctx
        .chaos
        .recent(usize::MAX)
        .into_iter()
        .filter(|i| filter.rule.as_ref().is_none_or(|r| &i.rule == r))
        .filter(|i| filter.service.as_ref().is_none_or(|s| &i.service == s))
        .filter(|i| filter.key.as_ref().is_none_or(|k| i.key.as_ref() == Some(k)))
        .take(limit)
        .collect();
    Json(json!({ "injections": injections }))
}

async fn canary(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "canary": state.ctx.chaos.canary_settings() }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CanaryBody {
    /// The saga step (default `payment`).
    #[serde(default)]
    step: Option<String>,
    percent: f64,
    #[serde(default)]
    reason: Option<String>,
    /// Lease, e.g. `"90s"`: then the percentage goes back to `then_percent` by itself.
    #[serde(default)]
    ttl: Option<String>,
    /// The percentage once the lease ends (required with `ttl`).
    #[serde(default)]
    then_percent: Option<f64>,
}

async fn set_canary(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(body): JsonBody<CanaryBody>,
) -> Result<Json<Value>, ApiError> {
    if !(0.0..=100.0).contains(&body.percent) {
        let message = format!("{} is not a percentage; use 0 to 100", body.percent);
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("invalid request: `percent`: {message}"))
            .with_fields(vec![("percent".into(), message)]));
    }
    let now = now_ms();
    let expires_at_ms = canary_lease(&state, &body, now)?;
    let step = body.step.unwrap_or_else(|| "payment".to_string());
    if let Err(problem) = state.ctx.chaos.catalog().check_canary_step(&step) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("invalid request: `{}`: {}", problem.field, problem.message),
        )
        .with_fields(vec![(problem.field, problem.message)]));
    }
    let setting = CanarySetting {
        percent: body.percent,
        at_ms: now,
        by: admin.actor.clone(),
        reason: Some(body.reason.unwrap_or_else(|| format!("set by {} through chaos-svc", admin.actor))),
        expires_at_ms,
        then_percent: body.then_percent.filter(|_| expires_at_ms.is_some()),
    };
    write(&state, &admin, "chaos.canary", &step, ControlRecord::Canary(step.clone(), Some(setting))).await?;
    Ok(Json(json!({ "step": step, "canary": state.ctx.chaos.canary_setting(&step) })))
}

/// The end of a canary setting's lease: `ttl` within `max_ttl`, with the percentage to go
/// back to; `422` naming the field otherwise.
fn canary_lease(state: &AppState, body: &CanaryBody, now: i64) -> Result<Option<i64>, ApiError> {
    let invalid = |field: &str, message: String| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("invalid request: `{field}`: {message}"))
            .with_fields(vec![(field.to_string(), message)])
    };
    let Some(ttl) = &body.ttl else {
        return match body.then_percent {
            Some(_) => Err(invalid("then_percent", "only a leased setting goes back; add `ttl`".into())),
            None => Ok(None),
        };
    };
    let ttl = humantime::parse_duration(ttl).map_err(|e| {
        invalid(
            "ttl",
            format!("`{}` is not a duration ({e}); write it like \"90s\"", crate::chaos::rule::shortened(ttl)),
        )
    })?;
    if ttl.is_zero() || ttl > state.config.max_ttl {
        return Err(invalid(
            "ttl",
            format!("use more than 0 and at most {}", humantime::format_duration(state.config.max_ttl)),
        ));
    }
    match body.then_percent {
        Some(p) if (0.0..=100.0).contains(&p) => Ok(Some(now + ttl.as_millis() as i64)),
        Some(p) => Err(invalid("then_percent", format!("{p} is not a percentage; use 0 to 100"))),
        None => Err(invalid("then_percent", "a leased setting needs the percentage to go back to".into())),
    }
}

/// Publishes a control record, waits until this runner has it back from the topic (so the
/// answer shows the change in force), and audits it.
async fn write(
    state: &AppState,
    admin: &Admin,
    action: &str,
    target: &str,
    record: ControlRecord,
) -> Result<(), ApiError> {
    let details = record.value().and_then(|v| serde_json::from_slice::<Value>(&v).ok());
    let mut changes = state.ctx.chaos.changes();
    let published =
        state.publisher.publish_raw(CONTROL_TOPIC, Some(record.key().as_bytes()), record.value().as_deref(), &[]).await;
    let outcome = match &published {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("failed: {e}"),
    };
    let audit = AuditRecord { actor: &admin.actor, action, target, details: details.as_ref(), outcome: &outcome };
    if let Err(e) = admin::audit_now(&state.ctx.store, &audit).await {
        tracing::warn!(error = %e, "cannot write the audit trail");
    }
    published?;
    let seen = |chaos: &crate::chaos::Chaos| match &record {
        ControlRecord::Rule(id, rule) => chaos.control_rules().get(id) == rule.as_deref(),
        ControlRecord::Canary(step, setting) => chaos.canary_setting(step) == *setting,
        ControlRecord::Hello(..) => true,
    };
    let deadline = tokio::time::Instant::now() + CONFIRM_TIMEOUT;
    while !seen(&state.ctx.chaos) {
        if tokio::time::timeout_at(deadline, changes.changed()).await.is_err() {
            return Err(ApiError::new(
                StatusCode::ACCEPTED,
                "the change was written to the control topic but has not come back yet; check GET /api/chaos/rules",
            ));
        }
    }
    tracing::info!(action, target, by = admin.actor, "chaos control record written");
    Ok(())
}

#[cfg(test)]
mod exemption {
    /// HTTP fault rules never strike chaos-svc's own routes: the means to remove a fault stays up.
    #[test]
    fn chaos_svc_routes_are_the_ones_exempt_from_http_faults() {
        assert_eq!(crate::chaos::http::EXEMPT_PREFIX, super::PREFIX);
    }
}
