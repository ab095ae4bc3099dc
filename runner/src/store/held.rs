//! The rows a transaction holds until commit, and the statements that write them: each held
//! table's rows go in a few multi-row statements instead of one round trip per row.
//!
//! Two kinds of table are held. Append-only inserts (outbox, inbox, saga history, new sagas,
//! new orders, the workers' effect rows) become `INSERT … VALUES (…), (…)`. Updates keyed by one id (a
//! saga's optimistic state write, an order's final status) become one
//! `UPDATE … FROM (VALUES …) AS v WHERE id = v.column1`, the saga's with its version check
//! and `RETURNING` the ids it matched, so a lost race is still a conflict of that saga.
//!
//! Statements hold a power of two of rows, at most [`MAX_ROWS`], so a connection prepares a
//! few shapes per table instead of one per group size.

use super::Dialect;

/// The most rows one statement carries (the sagas' 12 columns make it 768 parameters;
/// SQLite allows 32,766 and PostgreSQL 65,535).
pub const MAX_ROWS: usize = 64;

/// One value of a held row, bound in its column's place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(Option<String>),
    Int(Option<i64>),
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::Text(Some(text.to_string()))
    }
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Value::Text(Some(text))
    }
}

impl From<Option<&str>> for Value {
    fn from(text: Option<&str>) -> Self {
        Value::Text(text.map(str::to_string))
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Int(Some(n))
    }
}

impl From<Option<i64>> for Value {
    fn from(n: Option<i64>) -> Self {
        Value::Int(n)
    }
}

impl Value {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(text) => text.as_deref(),
            Value::Int(_) => None,
        }
    }
}

/// A held row: its values in its table's column order.
pub type Row = Vec<Value>;

/// How a column's parameter is written into a statement.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    Int,
    /// Text bound into a `uuid` column.
    Uuid,
    /// Text bound into a JSON column.
    Json,
}

/// A table whose writes a transaction holds. Rows are written table by table in this order
/// (no foreign keys join them; each table's rows keep the order they were held in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Outbox,
    Inbox,
    History,
    /// New sagas.
    Sagas,
    /// A saga's state written over the version it was read at.
    SagaUpdates,
    /// Orders taken by order-api.
    Orders,
    /// An order's status when its saga ended.
    OrderStatus,
    Payments,
    Reservations,
    ReservationLines,
    Shipments,
}

/// Which lookup inside the transaction must see a table's held rows (keyed by the row's
/// first column): before it runs, what is held is sent ([`super::Tx::settle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBy {
    /// `sagas::load` and the saga's other writes.
    Saga,
    /// `effects::status` and the workers' statements on their rows.
    OrderEffects,
}

/// How many statement shapes a table has: 1, 2, 4, … [`MAX_ROWS`] rows.
const SHAPES: usize = MAX_ROWS.trailing_zeros() as usize + 1;

impl Table {
    /// Every table, each at its own discriminant (held rows and statements are kept by
    /// `table as usize`).
    pub const ALL: [Table; 11] = [
        Table::Outbox,
        Table::Inbox,
        Table::History,
        Table::Sagas,
        Table::SagaUpdates,
        Table::Orders,
        Table::OrderStatus,
        Table::Payments,
        Table::Reservations,
        Table::ReservationLines,
        Table::Shipments,
    ];
    const DIALECTS: [Dialect; 2] = [Dialect::Postgres, Dialect::Sqlite];

    /// The table written and its columns, in the order a held row carries its values. For
    /// an update the first column is the key and, for sagas, the last the version read.
    fn columns(self) -> (&'static str, &'static [(&'static str, Kind)]) {
        use Kind::*;
        match self {
            Table::Outbox => (
                "outbox",
                &[
                    ("id", Uuid),
                    ("aggregatetype", Text),
                    ("aggregateid", Text),
                    ("type", Text),
                    ("payload", Json),
                    ("traceparent", Text),
                    ("source", Text),
                    ("occurred_at", Text),
                    ("topic", Text),
                ],
            ),
            Table::Inbox => (
                "inbox",
                &[
                    ("consumer", Text),
                    ("message_id", Text),
                    ("reply_type", Text),
                    ("reply_payload", Text),
                    ("handled_at_ms", Int),
                ],
            ),
            Table::History => (
                "saga_history",
                &[("saga_id", Text), ("step", Text), ("action", Text), ("detail", Text), ("at_ms", Int)],
            ),
            Table::Sagas => (
                "sagas",
                &[
                    ("id", Text),
                    ("saga", Text),
                    ("state", Text),
                    ("status", Text),
                    ("version", Int),
                    ("wake_at_ms", Int),
                    ("data", Text),
                    ("traceparent", Text),
                    ("created_at_ms", Int),
                    ("updated_at_ms", Int),
                    ("definition", Text),
                    ("routes", Text),
                ],
            ),
            Table::SagaUpdates => (
                "sagas",
                &[
                    ("id", Text),
                    ("state", Text),
                    ("status", Text),
                    ("wake_at_ms", Int),
                    ("routes", Text),
                    ("updated_at_ms", Int),
                    ("version", Int),
                ],
            ),
            Table::Orders => (
                "orders",
                &[
                    ("id", Text),
                    ("customer_id", Text),
                    ("currency", Text),
                    ("total", Int),
                    ("items", Text),
                    ("ship_to", Text),
                    ("status", Text),
                    ("created_at_ms", Int),
                    ("updated_at_ms", Int),
                ],
            ),
            Table::OrderStatus => {
                ("orders", &[("id", Text), ("status", Text), ("reason", Text), ("updated_at_ms", Int)])
            }
            Table::Payments => (
                "payments",
                &[
                    ("order_id", Text),
                    ("customer_id", Text),
                    ("amount", Int),
                    ("currency", Text),
                    ("status", Text),
                    ("reason", Text),
                    ("charged_at_ms", Int),
                ],
            ),
            Table::Reservations => {
                ("reservations", &[("order_id", Text), ("status", Text), ("reason", Text), ("reserved_at_ms", Int)])
            }
            Table::ReservationLines => ("reservation_lines", &[("order_id", Text), ("sku", Text), ("quantity", Int)]),
            Table::Shipments => (
                "shipments",
                &[("order_id", Text), ("country", Text), ("status", Text), ("reason", Text), ("scheduled_at_ms", Int)],
            ),
        }
    }

    /// The lookup that must see this table's held rows; `None`: nothing reads them back in
    /// the transaction (the inbox's own lookup answers from the held rows).
    pub fn read_by(self) -> Option<ReadBy> {
        match self {
            Table::Sagas | Table::SagaUpdates => Some(ReadBy::Saga),
            Table::Payments | Table::Reservations | Table::ReservationLines | Table::Shipments => {
                Some(ReadBy::OrderEffects)
            }
            Table::Outbox | Table::Inbox | Table::History | Table::Orders | Table::OrderStatus => None,
        }
    }

    /// How many values a row of this table carries.
    pub fn width(self) -> usize {
        self.columns().1.len()
    }

    /// Whether the statement returns the keys it updated (each held row must match one).
    pub fn checks_version(self) -> bool {
        matches!(self, Table::SagaUpdates)
    }

    /// The statement of `rows` rows (a power of two, at most [`MAX_ROWS`]), written once per
    /// process: a flush runs on every commit.
    pub fn sql(self, dialect: Dialect, rows: usize) -> &'static str {
        static ALL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        let all = ALL.get_or_init(|| {
            let mut all = Vec::new();
            for table in Table::ALL {
                for dialect in Table::DIALECTS {
                    all.extend((0..SHAPES).map(|shape| statement(table, dialect, 1 << shape)));
                }
            }
            all
        });
        let dialect_index = match dialect {
            Dialect::Postgres => 0,
            Dialect::Sqlite => 1,
        };
        let shape = rows.trailing_zeros() as usize;
        debug_assert!(rows.is_power_of_two() && shape < SHAPES, "{rows} rows is not a statement shape");
        &all[(self as usize * Table::DIALECTS.len() + dialect_index) * SHAPES + shape.min(SHAPES - 1)]
    }
}

/// The statement that writes `rows` rows of `table`.
fn statement(table: Table, dialect: Dialect, rows: usize) -> String {
    let (name, columns) = table.columns();
    let tuple = |row: usize, typed: bool| {
        let values: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, (_, kind))| {
                let p = format!("${}", 1 + row * columns.len() + i);
                match (kind, typed) {
                    (Kind::Uuid, _) => dialect.uuid(&p),
                    (Kind::Json, _) => dialect.json(&p),
                    // `VALUES` in an update's `FROM` has no column to take a type from.
                    (Kind::Text, true) => format!("CAST({p} AS TEXT)"),
                    (Kind::Int, true) => format!("CAST({p} AS BIGINT)"),
                    (Kind::Text | Kind::Int, false) => p,
                }
            })
            .collect();
        format!("({})", values.join(", "))
    };
    // An update's rows: `VALUES` typed, joined on the key in `column1`; `set` names what it
    // writes and a versioned update checks the version read (its last column).
    let update = |set: &[&str], versioned: bool| {
        let tuples: Vec<String> = (0..rows).map(|row| tuple(row, true)).collect();
        let mut sql = format!(
            "UPDATE {name} SET {} FROM (VALUES {}) AS v WHERE {name}.id = v.column1",
            set.join(", "),
            tuples.join(", ")
        );
        if versioned {
            sql.push_str(&format!(" AND {name}.version = v.column{} RETURNING {name}.id", columns.len()));
        }
        sql
    };
    match table {
        Table::SagaUpdates => update(
            &[
                "state = v.column2",
                "status = v.column3",
                "wake_at_ms = v.column4",
                "routes = v.column5",
                "updated_at_ms = v.column6",
                "version = sagas.version + 1",
            ],
            true,
        ),
        Table::OrderStatus => update(&["status = v.column2", "reason = v.column3", "updated_at_ms = v.column4"], false),
        Table::Outbox
        | Table::Inbox
        | Table::History
        | Table::Sagas
        | Table::Orders
        | Table::Payments
        | Table::Reservations
        | Table::ReservationLines
        | Table::Shipments => {
            let names: Vec<&str> = columns.iter().map(|(column, _)| *column).collect();
            let tuples: Vec<String> = (0..rows).map(|row| tuple(row, false)).collect();
            format!("INSERT INTO {name} ({}) VALUES {}", names.join(", "), tuples.join(", "))
        }
    }
}

/// `rows` cut into runs of a power of two, largest first, none above [`MAX_ROWS`].
pub fn chunks<T>(mut rows: &[T]) -> Vec<&[T]> {
    let mut out = Vec::new();
    while !rows.is_empty() {
        let size = chunk_size(rows.len());
        let (chunk, rest) = rows.split_at(size);
        out.push(chunk);
        rows = rest;
    }
    out
}

/// The largest power of two at most `n` and [`MAX_ROWS`] (`n` > 0).
fn chunk_size(n: usize) -> usize {
    let n = n.clamp(1, MAX_ROWS);
    1 << (usize::BITS - 1 - n.leading_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_go_in_powers_of_two_up_to_the_largest_statement() {
        let sizes = |n: usize| chunks(&vec![0u8; n]).iter().map(|c| c.len()).collect::<Vec<_>>();
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), [1]);
        assert_eq!(sizes(25), [16, 8, 1]);
        assert_eq!(sizes(64), [64]);
        assert_eq!(sizes(200), [64, 64, 64, 8]);
        // so a connection prepares at most 7 shapes of a table: 1, 2, 4, … 64 rows
        assert!((1..=1000).flat_map(sizes).all(|n| n.is_power_of_two() && n <= MAX_ROWS));
    }

    #[test]
    fn every_table_sits_at_its_own_index() {
        for (i, table) in Table::ALL.iter().enumerate() {
            assert_eq!(*table as usize, i, "{table:?}");
        }
    }

    #[test]
    fn statements_number_their_parameters_across_rows() {
        assert_eq!(
            Table::Inbox.sql(Dialect::Sqlite, 2),
            "INSERT INTO inbox (consumer, message_id, reply_type, reply_payload, handled_at_ms) VALUES \
             ($1, $2, $3, $4, $5), ($6, $7, $8, $9, $10)"
        );
        let outbox = Table::Outbox.sql(Dialect::Postgres, 64);
        assert!(outbox.ends_with("(CAST($568 AS uuid), $569, $570, $571, CAST($572 AS jsonb), $573, $574, $575, $576)"));
        assert_eq!(
            Table::OrderStatus.sql(Dialect::Postgres, 1),
            "UPDATE orders SET status = v.column2, reason = v.column3, updated_at_ms = v.column4 FROM \
             (VALUES (CAST($1 AS TEXT), CAST($2 AS TEXT), CAST($3 AS TEXT), CAST($4 AS BIGINT))) AS v \
             WHERE orders.id = v.column1"
        );
        let sagas = Table::SagaUpdates.sql(Dialect::Sqlite, 2);
        assert!(sagas.starts_with(
            "UPDATE sagas SET state = v.column2, status = v.column3, wake_at_ms = v.column4, routes = v.column5, \
             updated_at_ms = v.column6, version = sagas.version + 1 FROM (VALUES (CAST($1 AS TEXT),"
        ));
        assert!(sagas.ends_with(
            "CAST($14 AS BIGINT))) AS v WHERE sagas.id = v.column1 AND sagas.version = v.column7 RETURNING sagas.id"
        ));
        for table in Table::ALL {
            for dialect in Table::DIALECTS {
                for shape in 0..SHAPES {
                    let rows = 1 << shape;
                    let sql = table.sql(dialect, rows);
                    assert_eq!(sql.matches('$').count(), rows * table.width(), "{table:?} {dialect:?} {rows}");
                }
            }
        }
    }
}
