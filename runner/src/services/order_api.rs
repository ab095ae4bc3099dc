//! order-api: `POST /api/orders` writes the order and its `order.created` outbox row in one
//! transaction and answers `202`; `GET /api/orders/{id}` and `GET /api/orders` read them.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use uuid::Uuid;

use super::ServiceContext;
use crate::config::model::OrderApiConfig;
use crate::event::{now_ms, Event};
use crate::http::ApiError;
use crate::order::{NewOrder, OrderPayload};
use crate::store::orders;

/// Where the routes of order-api are mounted.
pub const PREFIX: &str = "/api/orders";

#[derive(Clone)]
struct AppState {
    ctx: ServiceContext,
    config: OrderApiConfig,
}

/// The router, with paths relative to [`PREFIX`].
pub fn router(ctx: ServiceContext, config: OrderApiConfig) -> Router {
    let limit = config.max_body_bytes;
    Router::new()
        .route("/", get(list).post(create))
        .route("/{id}", get(show))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(AppState { ctx, config })
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is larger than the {}-byte limit", state.config.max_body_bytes),
            )
        } else {
            ApiError::new(rejection.status(), format!("cannot read the request body: {}", rejection.body_text()))
        }
    })?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.starts_with("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the order as JSON with `Content-Type: application/json`",
        ));
    }
    let order = parse_order(&body)?;
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
    let event =
        Event::new(&state.config.created_event, &payload.order_id, &ctx.service, json!(payload), Some(traceparent));
    let now = now_ms();
    let mut tx = ctx.begin().await.map_err(ApiError::internal)?;
    orders::insert(&mut tx, &payload, now).await.map_err(ApiError::internal)?;
    ctx.emit(&mut tx, &event).await.map_err(ApiError::internal)?;
    tx.commit().await.map_err(ApiError::internal)?;
    ctx.outbox_written.notify_one();
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

/// Malformed JSON is a 400; well-formed JSON of the wrong shape is a 422 naming the field.
fn parse_order(body: &[u8]) -> Result<NewOrder, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let order: NewOrder = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Syntax
            | serde_json::error::Category::Eof
            | serde_json::error::Category::Io => {
                ApiError::new(StatusCode::BAD_REQUEST, format!("malformed JSON: {inner}"))
            }
            serde_json::error::Category::Data => {
                let field = if field == "." { unknown_field(&inner.to_string()).unwrap_or_default() } else { field };
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("invalid order: `{field}`: {inner}"))
                    .with_fields(vec![(field, inner.to_string())])
            }
        }
    })?;
    deserializer.end().map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")))?;
    Ok(order)
}

fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `").or_else(|| message.strip_prefix("unknown field `"))?;
    rest.split_once('`').map(|(f, _)| f.to_string())
}

async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    match orders::get(&state.ctx.store, &id).await.map_err(ApiError::internal)? {
        Some(order) => Ok(Json(order).into_response()),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, format!("no order with id `{id}`"))),
    }
}

const STATUSES: [&str; 4] = ["PENDING", "COMPLETED", "CANCELLED", "FAILED"];

async fn list(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let bad = |message: String| ApiError::new(StatusCode::BAD_REQUEST, message);
    for key in query.keys() {
        if !["status", "limit", "cursor"].contains(&key.as_str()) {
            return Err(bad(format!("unknown query parameter `{key}`; use status, limit and cursor")));
        }
    }
    let status = match query.get("status") {
        Some(s) if STATUSES.contains(&s.as_str()) => Some(s.as_str()),
        Some(s) => return Err(bad(format!("unknown status `{s}`; use one of {}", STATUSES.join(", ")))),
        None => None,
    };
    let max = state.config.max_page_size;
    let limit = match query.get("limit") {
        Some(l) => match l.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => return Err(bad(format!("limit must be a number from 1 to {max}"))),
        },
        None => 50.min(max),
    };
    let cursor = match query.get("cursor") {
        Some(c) => {
            Some(c.parse::<i64>().map_err(|_| bad("cursor must be the nextCursor of a previous page".to_string()))?)
        }
        None => None,
    };
    let page = orders::list(&state.ctx.store, status, cursor, limit).await.map_err(ApiError::internal)?;
    let next = if page.len() == limit as usize { page.last().map(|o| o.seq.to_string()) } else { None };
    Ok(Json(json!({ "orders": page, "nextCursor": next })).into_response())
}
