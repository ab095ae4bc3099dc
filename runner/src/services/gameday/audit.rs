//! The audit after the load: the business invariants, checked over the run's own orders in
//! the database — every accepted order final, none FAILED beyond what the scenario expects,
//! money and stock conserved, each order's effects matching its outcome (nothing charged,
//! reserved or shipped twice or for a cancelled order), the outbox fully relayed, dead letters
//! counted. Each check has a name, a pass or fail, and its figures.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::Value;
use sqlx::Row;

use super::model::AuditCheck;
use crate::services::relay::reconcile::{reconcile, ReconcileOptions};
use crate::services::relay::AfterPublish;
use crate::store::{Store, StoreError};
use crate::transport::Broker;

/// Ids asked about per query (bound parameters; SQLite allows 32,766).
const CHUNK: usize = 500;

/// One order as the audit reads it.
#[derive(Debug, Clone, Default)]
pub struct OrderRow {
    pub status: String,
    pub total: i64,
    /// `(sku, quantity)` of each item.
    pub items: Vec<(String, i64)>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl OrderRow {
    pub fn is_final(&self) -> bool {
        matches!(self.status.as_str(), "COMPLETED" | "CANCELLED" | "FAILED")
    }
}

/// `$1, $2, …, $n`.
fn placeholders(n: usize) -> String {
    (1..=n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// Runs `sql` (with `{ids}` where the placeholders go) for every chunk of `ids`.
async fn rows_for(store: &Store, sql: &str, ids: &[String]) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
    let mut rows = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        let text = sql.replace("{ids}", &placeholders(chunk.len()));
        let mut query = sqlx::query(&text);
        for id in chunk {
            query = query.bind(id);
        }
        rows.extend(query.fetch_all(store.pool()).await?);
    }
    Ok(rows)
}

/// The orders of `ids` that exist, by id.
pub async fn orders(store: &Store, ids: &[String]) -> Result<HashMap<String, OrderRow>, StoreError> {
    let rows = rows_for(
        store,
        "SELECT id, status, total, items, created_at_ms, updated_at_ms FROM orders WHERE id IN ({ids})",
        ids,
    )
    .await?;
    let mut found = HashMap::new();
    for row in rows {
        let items: Vec<Value> = serde_json::from_str(&row.try_get::<String, _>("items")?).unwrap_or_default();
        let items = items
            .iter()
            .map(|i| (i["sku"].as_str().unwrap_or_default().to_string(), i["quantity"].as_i64().unwrap_or(0)))
            .collect();
        found.insert(
            row.try_get("id")?,
            OrderRow {
                status: row.try_get("status")?,
                total: row.try_get("total")?,
                items,
                created_at_ms: row.try_get("created_at_ms")?,
                updated_at_ms: row.try_get("updated_at_ms")?,
            },
        );
    }
    Ok(found)
}

/// An order's payment: its amount, and whether it was charged and refunded.
#[derive(Debug)]
struct Payment {
    amount: i64,
    charged: bool,
    refunded: bool,
}

/// An order's reservation: whether it was reserved and released, and its `(sku, quantity)` lines.
#[derive(Debug)]
struct Reservation {
    reserved: bool,
    released: bool,
    lines: Vec<(String, i64)>,
}

/// The effects recorded for some orders, by order id: payments, reservations, shipments' status.
#[derive(Debug, Default)]
struct Effects {
    payments: HashMap<String, Payment>,
    reservations: HashMap<String, Reservation>,
    shipments: HashMap<String, String>,
}

async fn effects(store: &Store, ids: &[String]) -> Result<Effects, StoreError> {
    let mut effects = Effects::default();
    let sql = "SELECT order_id, amount, charged_at_ms, refunded_at_ms FROM payments WHERE order_id IN ({ids})";
    for row in rows_for(store, sql, ids).await? {
        let charged: Option<i64> = row.try_get("charged_at_ms")?;
        let refunded: Option<i64> = row.try_get("refunded_at_ms")?;
        let payment =
            Payment { amount: row.try_get("amount")?, charged: charged.is_some(), refunded: refunded.is_some() };
        effects.payments.insert(row.try_get("order_id")?, payment);
    }
    let sql = "SELECT order_id, reserved_at_ms, released_at_ms FROM reservations WHERE order_id IN ({ids})";
    for row in rows_for(store, sql, ids).await? {
        let reserved: Option<i64> = row.try_get("reserved_at_ms")?;
        let released: Option<i64> = row.try_get("released_at_ms")?;
        let reservation = Reservation { reserved: reserved.is_some(), released: released.is_some(), lines: Vec::new() };
        effects.reservations.insert(row.try_get("order_id")?, reservation);
    }
    let sql = "SELECT order_id, sku, quantity FROM reservation_lines WHERE order_id IN ({ids})";
    for row in rows_for(store, sql, ids).await? {
        let order: String = row.try_get("order_id")?;
        if let Some(reservation) = effects.reservations.get_mut(&order) {
            reservation.lines.push((row.try_get("sku")?, row.try_get("quantity")?));
        }
    }
    let sql = "SELECT order_id, status FROM shipments WHERE order_id IN ({ids})";
    for row in rows_for(store, sql, ids).await? {
        effects.shipments.insert(row.try_get("order_id")?, row.try_get("status")?);
    }
    Ok(effects)
}

fn check(name: &str, passed: bool, detail: String, numbers: &[(&str, f64)]) -> AuditCheck {
    AuditCheck {
        name: name.to_string(),
        passed,
        detail,
        numbers: numbers.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    }
}

/// The invariants that hold for every order that reached its final status: money and stock
/// conserved, effects matching outcomes, FAILED orders within `max_failed`. Used after the
/// load and, while it runs, on the orders settled so far (the `invariant_breach` stop
/// condition).
pub async fn settled_invariants(
    store: &Store,
    settled: &[String],
    max_failed: u64,
) -> Result<Vec<AuditCheck>, StoreError> {
    let orders = orders(store, settled).await?;
    let effects = effects(store, settled).await?;
    let mut checks = Vec::new();

    let failed = orders.values().filter(|o| o.status == "FAILED").count() as u64;
    checks.push(check(
        "no-order-failed",
        failed <= max_failed,
        format!("{failed} orders FAILED (a compensation could not finish); the scenario allows {max_failed}"),
        &[("failed", failed as f64), ("allowed", max_failed as f64)],
    ));

    let charged: i64 = effects.payments.values().filter(|p| p.charged).map(|p| p.amount).sum();
    let refunded: i64 = effects.payments.values().filter(|p| p.refunded).map(|p| p.amount).sum();
    let completed_total: i64 = orders.values().filter(|o| o.status == "COMPLETED").map(|o| o.total).sum();
    checks.push(check(
        "money-conserved",
        charged - refunded == completed_total,
        format!(
            "charged {charged} − refunded {refunded} = {}; completed orders total {completed_total}",
            charged - refunded
        ),
        &[("charged", charged as f64), ("refunded", refunded as f64), ("completedTotal", completed_total as f64)],
    ));

    let mut held: BTreeMap<String, i64> = BTreeMap::new();
    // Units a reservation still holds: reserved and not released.
    for (sku, quantity) in effects.reservations.values().flat_map(|r| {
        let sign = i64::from(r.reserved) - i64::from(r.released);
        r.lines.iter().map(move |(sku, q)| (sku.clone(), q * sign))
    }) {
        *held.entry(sku).or_default() += quantity;
    }
    let mut shipped: BTreeMap<String, i64> = BTreeMap::new();
    for order in orders.values().filter(|o| o.status == "COMPLETED") {
        for (sku, quantity) in &order.items {
            *shipped.entry(sku.clone()).or_default() += quantity;
        }
    }
    held.retain(|_, q| *q != 0);
    shipped.retain(|_, q| *q != 0);
    let negative = scalar(store, "SELECT COUNT(*) FROM stock WHERE available < 0").await?;
    let mismatched: Vec<String> = held
        .keys()
        .chain(shipped.keys())
        .filter(|sku| held.get(*sku) != shipped.get(*sku))
        .map(|sku| {
            format!(
                "{sku}: reserved−released {}, in completed orders {}",
                held.get(sku).unwrap_or(&0),
                shipped.get(sku).unwrap_or(&0)
            )
        })
        .collect();
    checks.push(check(
        "stock-conserved",
        mismatched.is_empty() && negative == 0,
        if mismatched.is_empty() && negative == 0 {
            format!(
                "per SKU, reserved − released = units of completed orders ({} SKUs); no stock below 0",
                shipped.len()
            )
        } else {
            format!("{} SKUs differ ({}); {negative} SKUs below 0", mismatched.len(), mismatched.join("; "))
        },
        &[
            ("unitsHeld", held.values().sum::<i64>() as f64),
            ("unitsInCompletedOrders", shipped.values().sum::<i64>() as f64),
            ("skusDiffering", mismatched.len() as f64),
            ("skusBelowZero", negative as f64),
        ],
    ));

    // Each completed order charged, reserved and shipped exactly once (one row each, live);
    // a cancelled one holds none of them.
    let (mut completed, mut cancelled, mut wrong) = (0u64, 0u64, Vec::new());
    for (id, order) in &orders {
        let charged = effects.payments.get(id).is_some_and(|p| p.charged && !p.refunded);
        let reserved = effects.reservations.get(id).is_some_and(|r| r.reserved && !r.released);
        let shipped = effects.shipments.get(id).is_some_and(|s| s == "scheduled");
        match order.status.as_str() {
            "COMPLETED" => {
                completed += 1;
                if !(charged && reserved && shipped) {
                    wrong.push(format!("{id} COMPLETED: charged {charged}, reserved {reserved}, shipped {shipped}"));
                }
            }
            "CANCELLED" => {
                cancelled += 1;
                if charged || reserved || shipped {
                    wrong.push(format!("{id} CANCELLED: charged {charged}, reserved {reserved}, shipped {shipped}"));
                }
            }
            _ => {}
        }
    }
    checks.push(check(
        "one-effect-per-order",
        wrong.is_empty(),
        if wrong.is_empty() {
            format!("{completed} completed orders each charged, reserved and shipped once; {cancelled} cancelled orders hold none")
        } else {
            format!("{} orders' effects do not match their status, e.g. {}", wrong.len(), wrong.iter().take(3).cloned().collect::<Vec<_>>().join("; "))
        },
        &[("completed", completed as f64), ("cancelled", cancelled as f64), ("mismatched", wrong.len() as f64)],
    ));
    Ok(checks)
}

async fn scalar(store: &Store, sql: &str) -> Result<i64, StoreError> {
    Ok(sqlx::query(sql).fetch_one(store.pool()).await?.try_get(0)?)
}

/// What the final audit needs to know about the run.
pub struct AuditInput<'a> {
    pub accepted: &'a [String],
    pub max_failed: u64,
    /// The outbox's last `seq` before the run: rows after it are the run's (and anyone else's).
    pub since_seq: i64,
    pub after_publish: AfterPublish,
    pub started_at_ms: i64,
}

/// The last `seq` of the outbox now (0 when empty).
pub async fn outbox_position(store: &Store) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetch_one(store.pool()).await?;
    Ok(row.try_get::<i64, _>(0)?)
}

/// Dead letters written since `since_ms`, by `topic/kind`.
pub async fn dead_letters(store: &Store, since_ms: i64) -> Result<BTreeMap<String, i64>, StoreError> {
    let rows = sqlx::query(
        "SELECT dlq_topic, error_kind, COUNT(*) AS n FROM dead_letters WHERE dead_lettered_at_ms >= $1 \
         GROUP BY dlq_topic, error_kind",
    )
    .bind(since_ms)
    .fetch_all(store.pool())
    .await?;
    let mut counts = BTreeMap::new();
    for row in rows {
        let (topic, kind): (String, String) = (row.try_get("dlq_topic")?, row.try_get("error_kind")?);
        counts.insert(format!("{topic}/{kind}"), row.try_get::<i64, _>("n")?);
    }
    Ok(counts)
}

/// The whole audit, after the load and the settling.
pub async fn audit(store: &Store, broker: &Broker, input: &AuditInput<'_>) -> Result<Vec<AuditCheck>, StoreError> {
    let orders = orders(store, input.accepted).await?;
    let pending: Vec<&String> =
        input.accepted.iter().filter(|id| !orders.get(*id).is_some_and(OrderRow::is_final)).collect();
    let mut checks = vec![check(
        "every-order-final",
        pending.is_empty(),
        if pending.is_empty() {
            format!("all {} accepted orders reached a final status", input.accepted.len())
        } else {
            format!(
                "{} of {} accepted orders are not final, e.g. {}",
                pending.len(),
                input.accepted.len(),
                pending.iter().take(3).map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            )
        },
        &[("accepted", input.accepted.len() as f64), ("notFinal", pending.len() as f64)],
    )];
    let settled: Vec<String> =
        input.accepted.iter().filter(|id| orders.get(*id).is_some_and(OrderRow::is_final)).cloned().collect();
    checks.extend(settled_invariants(store, &settled, input.max_failed).await?);
    checks.push(outbox_relayed(store, broker, input).await);
    let letters = dead_letters(store, input.started_at_ms).await?;
    let total: i64 = letters.values().sum();
    let by_kind: Vec<String> = letters.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    let mut numbers: Vec<(&str, f64)> = vec![("total", total as f64)];
    numbers.extend(letters.iter().map(|(k, n)| (k.as_str(), *n as f64)));
    checks.push(check(
        "dead-letters-counted",
        true,
        if letters.is_empty() {
            "no dead letters during the run".into()
        } else {
            format!("{total} dead letters: {}", by_kind.join(", "))
        },
        &numbers,
    ));
    Ok(checks)
}

/// The relay's reconciliation of the outbox rows written since the run started: none missing
/// from its topic. Tried for a while: the last final events may still be on their way.
async fn outbox_relayed(store: &Store, broker: &Broker, input: &AuditInput<'_>) -> AuditCheck {
    if input.after_publish == AfterPublish::Delete {
        return check(
            "outbox-relayed",
            true,
            "not checked: the relay deletes published rows, so there is nothing to reconcile".into(),
            &[],
        );
    }
    let options = ReconcileOptions { since_seq: Some(input.since_seq + 1), after_publish: input.after_publish };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match reconcile(store, broker, &options).await {
            Ok(report) if !report.has_missing() || tokio::time::Instant::now() >= deadline => {
                return check(
                    "outbox-relayed",
                    !report.has_missing(),
                    format!(
                        "{} outbox rows since the start: {} missing from their topics, {} delivered twice, {} out of order",
                        report.outbox_rows, report.missing.count, report.duplicates.ids, report.order_violations.count
                    ),
                    &[
                        ("outboxRows", report.outbox_rows as f64),
                        ("missing", report.missing.count as f64),
                        ("duplicates", report.duplicates.ids as f64),
                        ("orderViolations", report.order_violations.count as f64),
                    ],
                );
            }
            Ok(_) => {}
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return check("outbox-relayed", false, format!("the reconciliation failed: {e}"), &[]);
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
