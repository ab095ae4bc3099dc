//! inventory-svc: reserves and releases stock. Reservations are all-or-nothing per order and
//! never oversell: each decrement is guarded by `available >= quantity`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::json;
use sqlx::Row;

use super::{refused, HandlerError, Outcome};
use crate::order::OrderPayload;
use crate::store::effects::{self, EffectTable, NewRow};
use crate::store::{Store, StoreError, Tx};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReserveParams {
    /// Units in stock per SKU, written at start-up for SKUs not stocked yet.
    #[serde(default)]
    pub seed: BTreeMap<String, i64>,
}

pub async fn seed(store: &Store, params: &ReserveParams) -> Result<(), StoreError> {
    for (sku, units) in &params.seed {
        // Existing stock is kept: seeding only stocks SKUs that are new (replicas may race here).
        sqlx::query("INSERT INTO stock (sku, available) VALUES ($1, $2) ON CONFLICT (sku) DO NOTHING")
            .bind(sku)
            .bind(units)
            .execute(store.pool())
            .await?;
    }
    Ok(())
}

pub async fn reserve(tx: &mut Tx, order: &OrderPayload, now_ms: i64) -> Result<Outcome, HandlerError> {
    let reserved = || Outcome::Success(json!({ "orderId": order.order_id, "items": order.items }));
    match effects::status(tx, EffectTable::Reservations, &order.order_id).await? {
        Some((status, _)) if status == "reserved" => return Ok(reserved()),
        Some((status, reason)) if status == "rejected" => return Ok(refused(order, reason.unwrap_or_default())),
        Some(_) => return Ok(refused(order, "the order's reservation was already released")),
        None => {}
    }
    let mut wanted: BTreeMap<&str, i64> = BTreeMap::new();
    for item in &order.items {
        *wanted.entry(item.sku.as_str()).or_default() += item.quantity;
    }
    // Each SKU is taken at once (in SKU order, as every reservation locks them): the common
    // case costs one statement per SKU. Only a SKU that cannot be taken is looked at, to say
    // why, and what was taken before it is given back.
    let mut taken: Vec<(&str, i64)> = Vec::with_capacity(wanted.len());
    let mut problem = None;
    for (sku, quantity) in &wanted {
        let updated = sqlx::query("UPDATE stock SET available = available - $1 WHERE sku = $2 AND available >= $1")
            .bind(quantity)
            .bind(*sku)
            .execute(&mut **tx)
            .await?;
        if updated.rows_affected() == 1 {
            taken.push((sku, *quantity));
            continue;
        }
        let row =
            sqlx::query("SELECT available FROM stock WHERE sku = $1").bind(*sku).fetch_optional(&mut **tx).await?;
        problem = Some(match row {
            None => format!("unknown SKU {sku}"),
            Some(row) if row.try_get::<i64, _>(0)? < *quantity => format!("insufficient stock for {sku}"),
            // Stock came back between the update and the look: retry the whole message.
            Some(_) => return Err(HandlerError::Store(StoreError::Conflict(format!("stock of {sku}")))),
        });
        break;
    }
    if let Some(reason) = problem {
        for (sku, quantity) in taken {
            sqlx::query("UPDATE stock SET available = available + $1 WHERE sku = $2")
                .bind(quantity)
                .bind(sku)
                .execute(&mut **tx)
                .await?;
        }
        let (order_id, why) = (order.order_id.as_str(), Some(reason.as_str()));
        effects::insert(tx, NewRow::Reservation { order_id, status: "rejected", reason: why, reserved_at_ms: None });
        return Ok(refused(order, reason));
    }
    let order_id = order.order_id.as_str();
    for (sku, quantity) in taken {
        effects::insert(tx, NewRow::ReservationLine { order_id, sku, quantity });
    }
    let reserved_at_ms = Some(now_ms);
    effects::insert(tx, NewRow::Reservation { order_id, status: "reserved", reason: None, reserved_at_ms });
    Ok(reserved())
}

pub async fn release(tx: &mut Tx, order: &OrderPayload, now_ms: i64) -> Result<Outcome, HandlerError> {
    let released = || Outcome::Success(json!({ "orderId": order.order_id }));
    match effects::status(tx, EffectTable::Reservations, &order.order_id).await? {
        Some((status, _)) if status == "reserved" => {
            let lines = sqlx::query("SELECT sku, quantity FROM reservation_lines WHERE order_id = $1")
                .bind(&order.order_id)
                .fetch_all(&mut **tx)
                .await?;
            for line in lines {
                let (sku, quantity): (String, i64) = (line.try_get(0)?, line.try_get(1)?);
                sqlx::query("UPDATE stock SET available = available + $1 WHERE sku = $2")
                    .bind(quantity)
                    .bind(&sku)
                    .execute(&mut **tx)
                    .await?;
            }
            sqlx::query("UPDATE reservations SET status = 'released', released_at_ms = $1 WHERE order_id = $2")
                .bind(now_ms)
                .bind(&order.order_id)
                .execute(&mut **tx)
                .await?;
            Ok(released())
        }
        Some(_) => Ok(released()),
        None => {
            // Released before the reservation arrived: void it so a late request is refused.
            let (order_id, reason) = (order.order_id.as_str(), Some("released before reservation"));
            effects::insert(tx, NewRow::Reservation { order_id, status: "voided", reason, reserved_at_ms: None });
            Ok(released())
        }
    }
}
