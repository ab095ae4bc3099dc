//! HTTP faults: a middleware on a service's routes that delays requests, answers an error
//! status instead of running the handler, or crashes the process, as its rules say.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::json;

use super::{crash, delay_for, Action, Chaos, Point};

#[derive(Clone)]
struct Target {
    chaos: Chaos,
    service: String,
}

/// Wraps a service's routes so HTTP rules targeting it apply (inside the request metrics,
/// so injected statuses and delays are counted as clients see them).
pub fn layer(routes: Router, chaos: Chaos, service: &str) -> Router {
    let target = Target { chaos, service: service.to_string() };
    routes
        .layer(middleware::from_fn_with_state(target, faults))
        .layer(middleware::from_fn_with_state(service.to_string(), crate::telemetry::http_metrics))
}

/// The routes no rule can strike: chaos-svc's own API, so a rule that breaks HTTP can always
/// be listed, disabled and deleted (this module sits below the services: the prefix is
/// spelled here, and a test keeps it equal to chaos-svc's).
pub const EXEMPT_PREFIX: &str = "/api/chaos";

async fn faults(State(target): State<Target>, request: Request, next: Next) -> Response {
    let route = request.uri().path().to_string();
    if route == EXEMPT_PREFIX || route.starts_with(&format!("{EXEMPT_PREFIX}/")) {
        return next.run(request).await;
    }
    let actions = target.chaos.decide(Point::Http { service: &target.service, route: &route }, None);
    delay_for(&target.chaos, &actions).await;
    for action in &actions {
        match action {
            Action::Crash => crash(&format!("{} {route}", target.service)),
            Action::Status(status) => {
                let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                let body =
                    json!({ "error": format!("injected by chaos: {} answers {}", target.service, status.as_u16()) });
                return (status, [("x-chaos-injected", "http_status")], Json(body)).into_response();
            }
            _ => {}
        }
    }
    next.run(request).await
}
