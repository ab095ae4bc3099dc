//! order-api: `POST /api/orders` writes the order and its `order.created` outbox row in one
//! transaction (shared with the POSTs that arrive meanwhile) and answers `202`; `GET /api/orders/{id}` and `GET /api/orders` read them.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::FutureExt as _;
use serde_json::json;
use uuid::Uuid;

use super::group_commit::GroupCommit;
use super::ServiceContext;
use crate::event::{now_ms, Event};
use crate::http::{known_params, ApiError, BodyRules, JsonBody, Page, Routes};
use crate::order::{NewOrder, OrderPayload};
use crate::store::{orders, ReadAhead};

/// `[order_api]`, compiled.
#[derive(Debug, Clone)]
pub struct OrderApiConfig {
    pub max_body_bytes: usize,
    pub created_event: String,
    pub max_page_size: u32,
}

/// Where the routes of order-api are mounted.
pub const PREFIX: &str = "/api/orders";

#[derive(Clone)]
struct AppState {
    ctx: ServiceContext,
    config: OrderApiConfig,
    /// Concurrent POSTs commit together (see [`super::group_commit`]).
    committer: Arc<GroupCommit<()>>,
}

/// The most orders one transaction writes: POSTs that arrive while the previous group
/// commits wait for the next one (no timer waits for more; a lone POST commits alone).
const MAX_GROUP: usize = 64;

/// POSTs handed to the committer at once, at most; more wait for room.
const MAX_WAITING: usize = 256;

/// The router, with paths relative to [`PREFIX`].
pub fn router(ctx: ServiceContext, config: OrderApiConfig) -> Routes {
    let body = BodyRules { limit: config.max_body_bytes, noun: "the order", invalid: "invalid order" };
    let committer = Arc::new(GroupCommit::start(&ctx, &format!("{}/orders", ctx.service), MAX_WAITING, MAX_GROUP, 1));
    Routes::new()
        .get("/", list)
        // Placing an order is what the system is for: open to every client, no admin token.
        .public_post("/", create)
        .get("/{id}", show)
        .with_state(AppState { ctx, config, committer })
        .map(|routes| body.apply(routes))
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(order): JsonBody<NewOrder>,
) -> Result<Response, ApiError> {
    let total = order.validate().map_err(|invalid| {
        let summary = invalid.iter().map(|i| format!("`{}` {}", i.field, i.message)).collect::<Vec<_>>().join("; ");
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("invalid order: {summary}"))
            .with_fields(invalid.into_iter().map(|i| (i.field, i.message)).collect())
    })?;
    let payload = OrderPayload {
        order_id: Uuid::new_v4().to_string(),
        customer_id: order.customer_id,
        currency: order.currency,
        total,
        items: order.items,
        ship_to: order.ship_to,
    };
    // The order's trace continues the caller's (a valid `traceparent` header) from this
    // request's server span, or starts here.
    let incoming = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .filter(|t| crate::traces::parse_traceparent(t).is_some());
    let traceparent = crate::traces::outgoing(incoming);
    let ctx = &state.ctx;
    // The event is checked against its schema before anything is written, so the schema can
    // never refuse (as a server error) an order the checks above let through.
    let body = json!(payload);
    if let Err(problem) = ctx.schemas.validate(&state.config.created_event, &body) {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("invalid order: {problem}"))
            .with_fields(vec![("order".to_string(), problem)]));
    }
    let event = Event::new(&state.config.created_event, &payload.order_id, &ctx.service, body, Some(traceparent));
    let now = now_ms();
    let (writer, written) = (Arc::new(ctx.writer()), Arc::new((payload.clone(), event.clone())));
    state
        .committer
        .run(ReadAhead::default(), move |tx| {
            let (writer, written) = (writer.clone(), written.clone());
            async move {
                let (payload, event) = &*written;
                orders::insert(tx, payload, now);
                writer.emit(tx, event).await
            }
            .boxed()
        })
        .await?;
    tracing::info!(
        service = ctx.service,
        order_id = payload.order_id,
        trace_id = crate::event::trace_id(event.traceparent.as_deref()).unwrap_or_default(),
        "order accepted"
    );
    let location = format!("{PREFIX}/{}", payload.order_id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(json!({ "orderId": payload.order_id, "status": "PENDING" })),
    )
        .into_response())
}

async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    // Order ids are UUIDs: anything else (a NUL byte, a 10 kB string) names no order.
    if Uuid::parse_str(&id).is_err() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no order with id `{id}`")));
    }
    match orders::get(&state.ctx.store, &id).await? {
        Some(order) => Ok(Json(order).into_response()),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, format!("no order with id `{id}`"))),
    }
}

const STATUSES: [&str; 4] = ["PENDING", "COMPLETED", "CANCELLED", "FAILED"];

async fn list(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    known_params(&query, &["status", "customer", "limit", "cursor"])?;
    // Orders whose customer id starts with this.
    let customer = query.get("customer").map(String::as_str).filter(|c| !c.is_empty());
    if let Some(customer) = customer {
        if customer.chars().count() > 128 || customer.contains('\0') {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "`customer` is the start of a customer id: at most 128 characters, no NUL",
            ));
        }
    }
    let status = match query.get("status") {
        Some(s) if STATUSES.contains(&s.as_str()) => Some(s.as_str()),
        Some(s) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("unknown status `{s}`; use one of {}", STATUSES.join(", ")),
            ))
        }
        None => None,
    };
    let page = Page::from_query(&query, state.config.max_page_size)?;
    let orders = orders::list(&state.ctx.store, status, customer, page.cursor, page.limit).await?;
    let next = page.next_cursor(&orders, |o| o.seq);
    Ok(Json(json!({ "orders": orders, "nextCursor": next })).into_response())
}
