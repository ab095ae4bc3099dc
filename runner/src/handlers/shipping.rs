//! shipping-svc: schedules and cancels shipments, one per order.

use serde::Deserialize;
use serde_json::json;

use super::{refused, HandlerError, Outcome};
use crate::order::OrderPayload;
use crate::store::effects::{self, EffectTable, NewRow};
use crate::store::Tx;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleParams {
    /// Destination countries (ISO 3166-1 alpha-2) that are never shipped to.
    #[serde(default)]
    pub refuse_countries: Vec<String>,
}

pub async fn schedule(
    tx: &mut Tx,
    params: &ScheduleParams,
    order: &OrderPayload,
    now_ms: i64,
) -> Result<Outcome, HandlerError> {
    let country = &order.ship_to.country;
    let scheduled = || Outcome::Success(json!({ "orderId": order.order_id, "country": country }));
    match effects::status(tx, EffectTable::Shipments, &order.order_id).await? {
        Some((status, _)) if status == "scheduled" => return Ok(scheduled()),
        Some((status, reason)) if status == "rejected" => return Ok(refused(order, reason.unwrap_or_default())),
        Some(_) => return Ok(refused(order, "the order's shipment was already cancelled")),
        None => {}
    }
    if params.refuse_countries.iter().any(|c| c == country) {
        let reason = format!("no shipping to {country}");
        let (order_id, reason_text) = (order.order_id.as_str(), Some(reason.as_str()));
        let row =
            NewRow::Shipment { order_id, country, status: "rejected", reason: reason_text, scheduled_at_ms: None };
        effects::insert(tx, row);
        return Ok(refused(order, reason));
    }
    let order_id = order.order_id.as_str();
    effects::insert(
        tx,
        NewRow::Shipment { order_id, country, status: "scheduled", reason: None, scheduled_at_ms: Some(now_ms) },
    );
    Ok(scheduled())
}

pub async fn cancel(tx: &mut Tx, order: &OrderPayload, now_ms: i64) -> Result<Outcome, HandlerError> {
    let cancelled = Outcome::Success(json!({ "orderId": order.order_id }));
    match effects::status(tx, EffectTable::Shipments, &order.order_id).await? {
        Some((status, _)) if status == "scheduled" => {
            sqlx::query("UPDATE shipments SET status = 'cancelled', cancelled_at_ms = $1 WHERE order_id = $2")
                .bind(now_ms)
                .bind(&order.order_id)
                .execute(&mut **tx)
                .await?;
        }
        Some(_) => {}
        None => {
            sqlx::query("INSERT INTO shipments (order_id, country, status, reason) VALUES ($1, $2, 'voided', 'cancelled before scheduling')")
                .bind(&order.order_id)
                .bind(&order.ship_to.country)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(cancelled)
}
