//! The workers' effect rows: one row per order in `payments`, `reservations` or `shipments`,
//! whose status answers a repeated request the way the first one was answered.

use sqlx::Row;

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
