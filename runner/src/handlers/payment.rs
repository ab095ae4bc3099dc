//! payment-svc: charges and refunds. One row per order; its status makes both idempotent.

use serde::Deserialize;
use serde_json::json;

use super::{refused, HandlerError, Outcome};
use crate::order::OrderPayload;
use crate::store::effects::{self, EffectTable, NewRow};
use crate::store::Tx;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChargeParams {
    /// Totals above this many minor units are declined.
    #[serde(default)]
    pub decline_above: Option<i64>,
    /// Customers whose id starts with this are declined.
    #[serde(default)]
    pub blocked_customer_prefix: Option<String>,
    /// Simulates a card-gateway outage: every charge fails with this message (and is
    /// retried, then dead-lettered) while set.
    #[serde(default)]
    pub outage: Option<String>,
}

pub async fn charge(
    tx: &mut Tx,
    params: &ChargeParams,
    order: &OrderPayload,
    now_ms: i64,
) -> Result<Outcome, HandlerError> {
    let charged = json!({ "orderId": order.order_id, "amount": order.total, "currency": order.currency });
    match effects::status(tx, EffectTable::Payments, &order.order_id).await? {
        Some((status, _)) if status == "charged" => return Ok(Outcome::Success(charged)),
        Some((status, reason)) if status == "declined" => return Ok(refused(order, reason.unwrap_or_default())),
        Some(_) => return Ok(refused(order, "the order's payment was already cancelled")),
        None => {}
    }
    if let Some(outage) = &params.outage {
        return Err(HandlerError::Failed(format!("card gateway unavailable: {outage}")));
    }
    let decline = if params.decline_above.is_some_and(|limit| order.total > limit) {
        Some(format!("amount {} exceeds the limit of {}", order.total, params.decline_above.unwrap_or_default()))
    } else if params.blocked_customer_prefix.as_deref().is_some_and(|p| order.customer_id.starts_with(p)) {
        Some(format!("customer {} is blocked", order.customer_id))
    } else {
        None
    };
    let (status, charged_at) = if decline.is_some() { ("declined", None) } else { ("charged", Some(now_ms)) };
    effects::insert(tx, payment(order, status, decline.as_deref(), charged_at));
    Ok(match decline {
        Some(reason) => refused(order, reason),
        None => Outcome::Success(charged),
    })
}

pub async fn refund(tx: &mut Tx, order: &OrderPayload, now_ms: i64) -> Result<Outcome, HandlerError> {
    let refunded = |amount: i64| {
        Outcome::Success(json!({ "orderId": order.order_id, "refunded": amount, "currency": order.currency }))
    };
    match effects::status(tx, EffectTable::Payments, &order.order_id).await? {
        Some((status, _)) if status == "charged" => {
            sqlx::query("UPDATE payments SET status = 'refunded', refunded_at_ms = $1 WHERE order_id = $2 AND status = 'charged'")
                .bind(now_ms)
                .bind(&order.order_id)
                .execute(&mut **tx)
                .await
                ?;
            Ok(refunded(order.total))
        }
        Some((status, _)) if status == "refunded" => Ok(refunded(order.total)),
        Some(_) => Ok(refunded(0)),
        None => {
            // Refund before the charge arrived (the charge request timed out): void the payment
            // so a late charge request is declined instead of taking money for a cancelled order.
            effects::insert(tx, payment(order, "voided", Some("refunded before charge"), None));
            Ok(refunded(0))
        }
    }
}

/// The order's `payments` row with `status`.
fn payment<'a>(
    order: &'a OrderPayload,
    status: &'a str,
    reason: Option<&'a str>,
    charged_at_ms: Option<i64>,
) -> NewRow<'a> {
    NewRow::Payment {
        order_id: &order.order_id,
        customer_id: &order.customer_id,
        amount: order.total,
        currency: &order.currency,
        status,
        reason,
        charged_at_ms,
    }
}
