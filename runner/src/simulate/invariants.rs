//! What must hold after every simulated run: every order ended, money and stock conserved
//! and one effect per order (the game days' own audit), no order both completed and
//! compensated (by its history) or announced with two ends, and every outbox row published
//! and on its topic.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::Row;

use super::broker::{Body, Broker};
use crate::saga::machine::SagaDefinition;
use crate::services::gameday::audit;
use crate::store::{orders, Store, StoreError};

/// An invariant that did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// A stable name: `every-order-final`, `money-conserved`, …
    pub check: String,
    pub detail: String,
}

/// Checks a finished run. `names` turns an order id into its short name (`o3`). Also
/// answers the orders by status, read on the way.
pub async fn check(
    store: &Store,
    broker: &Broker,
    definition: &SagaDefinition,
    order_ids: &[String],
    names: &(dyn Fn(&str) -> String + Sync),
) -> Result<(Vec<Violation>, BTreeMap<String, u64>), StoreError> {
    let mut violations = Vec::new();
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    let mut ended = Vec::new();
    let mut stuck = Vec::new();
    let mut undone = Vec::new();
    for id in order_ids {
        let order = orders::get(store, id).await?;
        if let Some(order) = &order {
            *statuses.entry(order.status.clone()).or_default() += 1;
        }
        match order {
            Some(order) if order.status != "PENDING" => {
                // A completed order never started undoing anything.
                let history = order.history.as_deref().unwrap_or_default();
                if order.status == "COMPLETED" {
                    if let Some(line) = history.iter().find(|h| h.action.starts_with("compensat")) {
                        undone.push(format!("{} ({} {})", names(id), line.step, line.action));
                    }
                }
                ended.push(id.clone());
            }
            Some(order) => {
                let last = order.history.unwrap_or_default().pop();
                let last = last.map_or("no saga".to_string(), |h| format!("last: {} {}", h.step, h.action));
                stuck.push(format!("{} ({last})", names(id)));
            }
            None => stuck.push(format!("{} (no order row)", names(id))),
        }
    }
    if !stuck.is_empty() {
        violations.push(Violation {
            check: "every-order-final".into(),
            detail: format!("{} of {} orders never ended: {}", stuck.len(), order_ids.len(), stuck.join(", ")),
        });
    }
    if !undone.is_empty() {
        violations.push(Violation {
            check: "completed-or-compensated".into(),
            detail: format!("{} COMPLETED orders were also compensated: {}", undone.len(), undone.join(", ")),
        });
    }
    for check in audit::settled_invariants(store, &ended, 0).await? {
        if !check.passed {
            // The audit names orders by id; the trace by their short names.
            let detail = order_ids.iter().fold(check.detail, |text, id| text.replace(id.as_str(), &names(id)));
            violations.push(Violation { check: check.name, detail });
        }
    }

    // Each order announces one end: completed, cancelled or failed, never two of them.
    let finals = [&definition.on_completed, &definition.on_cancelled, &definition.on_failed];
    let mut ends: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (_, record) in broker.all() {
        if let Body::Event(event) = &record.body {
            if finals.contains(&&event.event_type) {
                ends.entry(record.key.as_str()).or_default().insert(event.event_type.as_str());
            }
        }
    }
    let both: Vec<String> = ends
        .iter()
        .filter(|(_, types)| types.len() > 1)
        .map(|(key, types)| format!("{}: {}", names(key), types.iter().copied().collect::<Vec<_>>().join(" and ")))
        .collect();
    if !both.is_empty() {
        violations.push(Violation {
            check: "one-end-per-order".into(),
            detail: format!("{} orders ended twice: {}", both.len(), both.join("; ")),
        });
    }

    // Every outbox row went out, and is on the broker.
    let rows = sqlx::query("SELECT id, type, published_at_ms FROM outbox ORDER BY seq").fetch_all(store.pool()).await?;
    let on_broker: BTreeSet<&str> = broker
        .all()
        .filter_map(|(_, r)| if let Body::Event(e) = &r.body { Some(e.id.as_str()) } else { None })
        .collect();
    let mut unpublished = Vec::new();
    let mut missing = Vec::new();
    for row in &rows {
        let (id, event_type): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        let published: Option<i64> = row.try_get(2)?;
        if published.is_none() {
            unpublished.push(event_type.clone());
        }
        if !on_broker.contains(id.as_str()) {
            missing.push(event_type);
        }
    }
    if !unpublished.is_empty() || !missing.is_empty() {
        violations.push(Violation {
            check: "outbox-delivered".into(),
            detail: format!(
                "{} of {} outbox rows not marked published ({}), {} not on the broker ({})",
                unpublished.len(),
                rows.len(),
                unpublished.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
                missing.len(),
                missing.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
            ),
        });
    }
    Ok((violations, statuses))
}
