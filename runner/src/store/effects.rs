//! The workers' effect rows: one row per order in `payments`, `reservations` or `shipments`,
//! whose status answers a repeated request the way the first one was answered.

use sqlx::Row;

use super::held::{ReadBy, Table};
use super::{StoreError, Tx};

/// A table of effect rows, keyed by order id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EffectTable {
    Payments,
    Reservations,
    Shipments,
}

impl EffectTable {
    /// Every table, each at its own discriminant (statements are kept by `table as usize`).
    pub const ALL: [EffectTable; 3] = [EffectTable::Payments, EffectTable::Reservations, EffectTable::Shipments];

    pub fn name(self) -> &'static str {
        match self {
            EffectTable::Payments => "payments",
            EffectTable::Reservations => "reservations",
            EffectTable::Shipments => "shipments",
        }
    }
}

/// An effect row's status and reason.
pub type EffectStatus = (String, Option<String>);

/// The status and reason of the order's row in `table`, from what the transaction read ahead
/// (once: the handler writes the row next) or else from the table.
pub async fn status(tx: &mut Tx, table: EffectTable, order_id: &str) -> Result<Option<EffectStatus>, StoreError> {
    settle(tx, order_id).await?;
    if let Some(known) = tx.known_mut().take_effect(table, order_id) {
        return Ok(known);
    }
    static SQL: std::sync::OnceLock<[String; 3]> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        EffectTable::ALL.map(|t| format!("SELECT status, reason FROM {} WHERE order_id = $1", t.name()))
    });
    let row = sqlx::query(&sql[table as usize]).bind(order_id).fetch_optional(&mut **tx).await?;
    Ok(match row {
        Some(row) => Some((row.try_get(0)?, row.try_get(1)?)),
        None => None,
    })
}

/// A worker's new row, written with the commit (in one statement with its group's others).
pub enum NewRow<'a> {
    Payment {
        order_id: &'a str,
        customer_id: &'a str,
        amount: i64,
        currency: &'a str,
        status: &'a str,
        reason: Option<&'a str>,
        charged_at_ms: Option<i64>,
    },
    Reservation {
        order_id: &'a str,
        status: &'a str,
        reason: Option<&'a str>,
        reserved_at_ms: Option<i64>,
    },
    ReservationLine {
        order_id: &'a str,
        sku: &'a str,
        quantity: i64,
    },
    Shipment {
        order_id: &'a str,
        country: &'a str,
        status: &'a str,
        reason: Option<&'a str>,
        scheduled_at_ms: Option<i64>,
    },
}

/// Holds `row` until commit.
pub fn insert(tx: &mut Tx, row: NewRow<'_>) {
    let (table, values) = match row {
        NewRow::Payment { order_id, customer_id, amount, currency, status, reason, charged_at_ms } => (
            Table::Payments,
            vec![
                order_id.into(),
                customer_id.into(),
                amount.into(),
                currency.into(),
                status.into(),
                reason.into(),
                charged_at_ms.into(),
            ],
        ),
        NewRow::Reservation { order_id, status, reason, reserved_at_ms } => {
            (Table::Reservations, vec![order_id.into(), status.into(), reason.into(), reserved_at_ms.into()])
        }
        NewRow::ReservationLine { order_id, sku, quantity } => {
            (Table::ReservationLines, vec![order_id.into(), sku.into(), quantity.into()])
        }
        NewRow::Shipment { order_id, country, status, reason, scheduled_at_ms } => (
            Table::Shipments,
            vec![order_id.into(), country.into(), status.into(), reason.into(), scheduled_at_ms.into()],
        ),
    };
    tx.hold(table, values);
}

/// Sends the held rows when one of them is the order's: called before a statement reads or
/// changes the order's effect rows, which must see them.
pub async fn settle(tx: &mut Tx, order_id: &str) -> Result<(), StoreError> {
    tx.settle(ReadBy::OrderEffects, order_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_sits_at_its_own_index() {
        for (i, table) in EffectTable::ALL.iter().enumerate() {
            assert_eq!(*table as usize, i, "{table:?}");
        }
    }
}
