//! Passes for the HTTP APIs: `[order_api]`, `[dlq_admin]`, `[chaos_api]` and `[gameday]`.

use std::time::Duration;

use super::service::require_tokens;
use super::{Bounds, Compiler};
use crate::admin::AdminConfig;
use crate::config::spec::{ChaosApiSpec, DlqAdminSpec, GamedaySpec, OrderApiSpec};
use crate::diagnostic::KeyPath;
use crate::services::chaos_api::ChaosApiConfig;
use crate::services::dlq_admin::DlqAdminConfig;
use crate::services::gameday::GamedayConfig;
use crate::services::order_api::OrderApiConfig;

pub(super) fn compile_order_api(c: &mut Compiler, api: &OrderApiSpec) -> OrderApiConfig {
    let at = KeyPath::section("order_api");
    let created_event = api.created_event.clone().unwrap_or_else(|| "order.created".to_string());
    c.event_type(at.key("created_event"), &created_event);
    let max_body_bytes = api.max_body_bytes.unwrap_or(64 * 1024);
    if max_body_bytes < 256 {
        c.problem(at.key("max_body_bytes"), "max_body_bytes below 256 would refuse every order; raise it");
    }
    let max_page_size = api.max_page_size.unwrap_or(500);
    if max_page_size == 0 {
        c.problem(at.key("max_page_size"), "max_page_size must be at least 1");
    }
    OrderApiConfig { max_body_bytes, created_event, max_page_size }
}

pub(super) fn compile_dlq_admin(
    c: &mut Compiler,
    d: &DlqAdminSpec,
    service: &str,
    admin: &AdminConfig,
) -> DlqAdminConfig {
    let at = KeyPath::section("dlq_admin");
    let topics = d.topics.clone().unwrap_or_else(|| "^.*\\.dlq$".to_string());
    if !topics.starts_with('^') {
        c.problem(
            at.key("topics"),
            "the topic pattern must start with `^` (Kafka reads only such patterns as regular expressions)",
        );
    }
    let replay_rate = d.replay_rate.unwrap_or(50);
    if replay_rate == 0 {
        c.problem(at.key("replay_rate"), "replay_rate must be at least 1 message per second");
    }
    require_tokens(c, admin, "dlq_admin", "the dead-letter console");
    DlqAdminConfig {
        topics,
        group: d.group.clone().unwrap_or_else(|| service.to_string()),
        max_replays: d.max_replays.unwrap_or(3),
        replay_rate: replay_rate.max(1),
        max_bulk: d.max_bulk.unwrap_or(10_000).max(1),
    }
}

pub(super) fn compile_gameday(c: &mut Compiler, spec: &GamedaySpec, admin: &AdminConfig) -> GamedayConfig {
    let at = KeyPath::section("gameday");
    let scenarios = spec.scenarios.clone().unwrap_or_else(|| crate::config::scenario::SCENARIO_DIR.to_string());
    if scenarios.is_empty() || scenarios.contains('\0') {
        c.problem(at.key("scenarios"), "give the folder of scenario files, e.g. \"gamedays\"");
    }
    let GamedaySpec { scenarios: _, system_url, orders_url, chaos_url, dlq_url, runtime_url, relay_after_publish } =
        spec;
    let mut url = |key: &str, value: &Option<String>| -> Option<String> {
        let value = value.as_ref()?;
        let parsed = url::Url::parse(value);
        if !parsed.as_ref().is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some()) {
            let shown = crate::chaos::rule::shortened(value);
            // The key is named: a value from RUNNER_GAMEDAY__* has no line of its own in the file.
            c.problem(
                at.key(key),
                format!("{key} `{shown}` is not an http(s) URL; write it like \"http://127.0.0.1:8080\""),
            );
        }
        Some(value.trim_end_matches('/').to_string())
    };
    let system_url = url("system_url", system_url);
    let endpoints = crate::services::gameday::Endpoints {
        orders: url("orders_url", orders_url),
        chaos: url("chaos_url", chaos_url),
        dlq: url("dlq_url", dlq_url),
        runtime: url("runtime_url", runtime_url),
    };
    // The game day calls chaos-svc with this service's token, and its own routes need one.
    require_tokens(c, admin, "gameday", "gameday-svc");
    GamedayConfig {
        scenarios_dir: std::path::PathBuf::from(scenarios),
        system_dir: std::path::PathBuf::from("."),
        system_url,
        endpoints,
        relay_after_publish: relay_after_publish.unwrap_or(crate::services::relay::AfterPublish::Mark),
    }
}

pub(super) fn compile_chaos_api(c: &mut Compiler, spec: &ChaosApiSpec, admin: &AdminConfig) -> ChaosApiConfig {
    let at = KeyPath::section("chaos_api");
    let default_ttl =
        c.duration_in(at.key("default_ttl"), spec.default_ttl.as_deref(), Duration::from_secs(15 * 60), Bounds::WAIT);
    let max_ttl =
        c.duration_in(at.key("max_ttl"), spec.max_ttl.as_deref(), Duration::from_secs(24 * 3600), Bounds::WAIT);
    if default_ttl > max_ttl {
        c.problem(at.key("default_ttl"), "default_ttl is longer than max_ttl; lower it or raise max_ttl");
    }
    require_tokens(c, admin, "chaos_api", "chaos-svc");
    ChaosApiConfig { default_ttl, max_ttl }
}
