//! The orders table and the saga history, as order-api reads them.

use serde::Serialize;
use sqlx::Row;

use super::held::Table;
use super::{Store, StoreError, Tx};
use crate::order::{Item, OrderPayload, ShipTo};

/// Takes an order, written with the commit.
pub fn insert(tx: &mut Tx, order: &OrderPayload, now_ms: i64) {
    let row = vec![
        order.order_id.as_str().into(),
        order.customer_id.as_str().into(),
        order.currency.as_str().into(),
        order.total.into(),
        serde_json::to_string(&order.items).unwrap_or_default().into(),
        serde_json::to_string(&order.ship_to).unwrap_or_default().into(),
        "PENDING".into(),
        now_ms.into(),
        now_ms.into(),
    ];
    tx.hold(Table::Orders, row);
}

/// Sets the order's status when its saga ended, written with the commit.
pub fn set_status(tx: &mut Tx, order_id: &str, status: &str, reason: Option<&str>, now_ms: i64) {
    tx.hold_replacing(Table::OrderStatus, vec![order_id.into(), status.into(), reason.into(), now_ms.into()]);
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    pub order_id: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub customer_id: String,
    pub currency: String,
    pub total: i64,
    pub items: Vec<Item>,
    pub ship_to: ShipTo,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryView>>,
    /// The W3C trace id of the order's trace (from the saga's `traceparent`; the detail only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(skip)]
    pub seq: i64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryView {
    pub step: String,
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub at_ms: i64,
}

const COLUMNS: &str =
    "seq, id, status, reason, customer_id, currency, total, items, ship_to, created_at_ms, updated_at_ms";

fn view(row: &sqlx::any::AnyRow) -> Result<OrderView, StoreError> {
    let items: String = row.try_get(7)?;
    let ship_to: String = row.try_get(8)?;
    Ok(OrderView {
        seq: row.try_get(0)?,
        order_id: row.try_get(1)?,
        status: row.try_get(2)?,
        reason: row.try_get(3)?,
        customer_id: row.try_get(4)?,
        currency: row.try_get(5)?,
        total: row.try_get(6)?,
        items: serde_json::from_str(&items).map_err(|e| StoreError::Corrupt(format!("order items: {e}")))?,
        ship_to: serde_json::from_str(&ship_to).map_err(|e| StoreError::Corrupt(format!("order shipTo: {e}")))?,
        created_at_ms: row.try_get(9)?,
        updated_at_ms: row.try_get(10)?,
        history: None,
        trace_id: None,
    })
}

/// One order with its saga history, oldest entry first.
pub async fn get(store: &Store, order_id: &str) -> Result<Option<OrderView>, StoreError> {
    // The order, its saga's traceparent and its history lines in one statement (a row per
    // line, the order's columns repeated; one row of NULL lines when it has none): order-api
    // answers a poll of every order, so each statement saved here is one per order.
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!(
            "SELECT o.*, h.step, h.action, h.detail, h.at_ms FROM \
             (SELECT {COLUMNS}, (SELECT traceparent FROM sagas WHERE sagas.id = orders.id) AS traceparent \
             FROM orders WHERE id = $1) AS o \
             LEFT JOIN saga_history h ON h.saga_id = o.id ORDER BY h.seq"
        )
    });
    let rows = sqlx::query(sql).bind(order_id).fetch_all(store.pool()).await?;
    let Some(first) = rows.first() else { return Ok(None) };
    let mut order = view(first)?;
    let traceparent: Option<String> = first.try_get(11)?;
    // `00-<trace id>-<span id>-<flags>`
    order.trace_id = traceparent.and_then(|t| t.split('-').nth(1).map(str::to_string));
    let mut history = Vec::with_capacity(rows.len());
    for row in &rows {
        let Some(step) = row.try_get::<Option<String>, _>(12)? else { continue };
        history.push(HistoryView { step, action: row.try_get(13)?, detail: row.try_get(14)?, at_ms: row.try_get(15)? });
    }
    order.history = Some(history);
    Ok(Some(order))
}

/// Orders newest first; `before` is the cursor returned with the previous page.
pub async fn list(
    store: &Store,
    status: Option<&str>,
    customer_prefix: Option<&str>,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<OrderView>, StoreError> {
    // A prefix compared with `substr`, not `LIKE`: no wildcard in the text can widen it, and
    // both databases read it the same way (case-sensitive).
    let sql = format!(
        "SELECT {COLUMNS} FROM orders WHERE ($1 = '' OR status = $1) AND seq < $2 \
         AND ($3 = '' OR substr(customer_id, 1, length($3)) = $3) ORDER BY seq DESC LIMIT {limit}"
    );
    let rows = sqlx::query(&sql)
        .bind(status.unwrap_or(""))
        .bind(before.unwrap_or(i64::MAX))
        .bind(customer_prefix.unwrap_or(""))
        .fetch_all(store.pool())
        .await?;
    rows.iter().map(view).collect()
}
