//! A database transaction that holds its append-only inserts (outbox, inbox, saga history)
//! until commit, then writes each table's rows in a few multi-row statements.
//!
//! Nothing reads those rows inside the transaction that wrote them (an inbox lookup of a
//! message held here is answered from here), so holding them changes no result; it changes
//! the cost. A consumer's group of 25 messages wrote about 60 single-row inserts, each a
//! round trip to the database (and, on SQLite, two thread hand-offs); held, they are a
//! handful of statements. Statements hold a power of two of rows, at most [`MAX_ROWS`], so
//! a connection prepares a few shapes per table instead of one per group size.
//!
//! Dropping a transaction without committing rolls it back and drops what it held.

use std::ops::{Deref, DerefMut};

use sqlx::{Any, AnyConnection};

use super::ahead::{Known, ReadAhead};
use super::Dialect;
use crate::event::{Event, AGGREGATE_TYPE};

/// The most rows one held-insert statement carries (the outbox's 9 columns make it 576
/// parameters; SQLite allows 32,766 and PostgreSQL 65,535).
pub const MAX_ROWS: usize = 64;

/// A transaction of the store; derefs to its connection for ordinary statements.
pub struct Tx {
    inner: sqlx::Transaction<'static, Any>,
    dialect: Dialect,
    held: Held,
    /// Rows read ahead for the lookups to come.
    known: Known,
}

/// Rows written by the transaction, not sent yet.
#[derive(Default)]
struct Held {
    outbox: Vec<Event>,
    inbox: Vec<InboxRow>,
    history: Vec<HistoryRow>,
}

struct InboxRow {
    consumer: String,
    message_id: String,
    reply: Option<(String, String)>,
    at_ms: i64,
}

struct HistoryRow {
    saga_id: String,
    step: String,
    action: String,
    detail: Option<String>,
    at_ms: i64,
}

impl Deref for Tx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.inner
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.inner
    }
}

impl Tx {
    pub(super) fn new(inner: sqlx::Transaction<'static, Any>, dialect: Dialect) -> Self {
        Tx { inner, dialect, held: Held::default(), known: Known::default() }
    }

    /// Reads, in a statement or two, the inbox entries and sagas a group's messages will
    /// look up (see [`super::ahead`]).
    pub async fn read_ahead(&mut self, reads: &[&ReadAhead]) -> Result<(), sqlx::Error> {
        super::ahead::read(self, reads).await
    }

    pub(super) fn known(&self) -> &Known {
        &self.known
    }

    pub(super) fn known_mut(&mut self) -> &mut Known {
        &mut self.known
    }

    /// Writes what it holds, then commits.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        self.flush().await?;
        self.inner.commit().await
    }

    /// Rolls back; what it holds is dropped.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.inner.rollback().await
    }

    /// Holds an outbox row until commit (rows keep their order).
    pub(super) fn hold_outbox(&mut self, event: &Event) {
        self.held.outbox.push(event.clone());
    }

    /// Holds an inbox entry until commit.
    pub(super) fn hold_inbox(&mut self, consumer: &str, message_id: &str, reply: Option<(&str, &str)>, at_ms: i64) {
        self.held.inbox.push(InboxRow {
            consumer: consumer.to_string(),
            message_id: message_id.to_string(),
            reply: reply.map(|(t, p)| (t.to_string(), p.to_string())),
            at_ms,
        });
    }

    /// The reply held for a message this transaction handled: `Some(None)` when it had none.
    pub(super) fn held_inbox(&self, consumer: &str, message_id: &str) -> Option<Option<(String, String)>> {
        self.held.inbox.iter().find(|r| r.consumer == consumer && r.message_id == message_id).map(|r| r.reply.clone())
    }

    /// Holds a saga history line until commit.
    pub(super) fn hold_history(&mut self, saga_id: &str, step: &str, action: &str, detail: Option<&str>, at_ms: i64) {
        self.held.history.push(HistoryRow {
            saga_id: saga_id.to_string(),
            step: step.to_string(),
            action: action.to_string(),
            detail: detail.map(str::to_string),
            at_ms,
        });
    }

    /// Sends every held row, in the order each table's rows were held.
    pub async fn flush(&mut self) -> Result<(), sqlx::Error> {
        let held = std::mem::take(&mut self.held);
        let (conn, dialect) = (&mut *self.inner, self.dialect);
        insert(conn, Table::Outbox, dialect, &held.outbox, |query, event| {
            query
                .bind(&event.id)
                .bind(AGGREGATE_TYPE)
                .bind(&event.key)
                .bind(&event.event_type)
                .bind(event.payload.to_string())
                .bind(&event.traceparent)
                .bind(&event.source)
                .bind(&event.time)
                .bind(&event.topic)
        })
        .await?;
        insert(conn, Table::Inbox, dialect, &held.inbox, |query, row| {
            let (reply_type, reply_payload) = row.reply.as_ref().map(|(t, p)| (t.as_str(), p.as_str())).unzip();
            query.bind(&row.consumer).bind(&row.message_id).bind(reply_type).bind(reply_payload).bind(row.at_ms)
        })
        .await?;
        insert(conn, Table::History, dialect, &held.history, |query, row| {
            query.bind(&row.saga_id).bind(&row.step).bind(&row.action).bind(&row.detail).bind(row.at_ms)
        })
        .await
    }
}

type Query<'r> = sqlx::query::Query<'r, Any, sqlx::any::AnyArguments<'r>>;

/// Inserts `rows` into `table` in statements of a power of two of rows, each row's values
/// bound by `bind` in the table's column order.
async fn insert<'r, R>(
    conn: &mut AnyConnection,
    table: Table,
    dialect: Dialect,
    rows: &'r [R],
    bind: impl Fn(Query<'r>, &'r R) -> Query<'r>,
) -> Result<(), sqlx::Error> {
    for chunk in chunks(rows) {
        let query = chunk.iter().fold(sqlx::query(table.sql(dialect, chunk.len())), &bind);
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// A table whose rows a transaction holds.
#[derive(Debug, Clone, Copy)]
enum Table {
    Outbox,
    Inbox,
    History,
}

/// How many statement shapes a table has: 1, 2, 4, … [`MAX_ROWS`] rows.
const SHAPES: usize = MAX_ROWS.trailing_zeros() as usize + 1;

impl Table {
    const ALL: [Table; 3] = [Table::Outbox, Table::Inbox, Table::History];
    const DIALECTS: [Dialect; 2] = [Dialect::Postgres, Dialect::Sqlite];

    /// The insert of `rows` rows (a power of two, at most [`MAX_ROWS`]), written once per
    /// process: the flush runs on every commit.
    fn sql(self, dialect: Dialect, rows: usize) -> &'static str {
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

    /// The insert up to `VALUES `.
    fn head(self) -> &'static str {
        match self {
            Table::Outbox => "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, traceparent, source, occurred_at, topic) VALUES ",
            Table::Inbox => "INSERT INTO inbox (consumer, message_id, reply_type, reply_payload, handled_at_ms) VALUES ",
            Table::History => "INSERT INTO saga_history (saga_id, step, action, detail, at_ms) VALUES ",
        }
    }

    /// One row's value tuple, its placeholders numbered from `first`.
    fn tuple(self, dialect: Dialect, first: usize) -> String {
        let p = |i: usize| format!("${}", first + i);
        match self {
            Table::Outbox => format!(
                "({}, {}, {}, {}, {}, {}, {}, {}, {})",
                dialect.uuid(&p(0)),
                p(1),
                p(2),
                p(3),
                dialect.json(&p(4)),
                p(5),
                p(6),
                p(7),
                p(8)
            ),
            Table::Inbox | Table::History => format!("({}, {}, {}, {}, {})", p(0), p(1), p(2), p(3), p(4)),
        }
    }

    fn columns(self) -> usize {
        match self {
            Table::Outbox => 9,
            Table::Inbox | Table::History => 5,
        }
    }
}

/// The insert of `rows` rows into `table`.
fn statement(table: Table, dialect: Dialect, rows: usize) -> String {
    let tuples: Vec<String> = (0..rows).map(|row| table.tuple(dialect, 1 + row * table.columns())).collect();
    format!("{}{}", table.head(), tuples.join(", "))
}

/// `rows` cut into runs of a power of two, largest first, none above [`MAX_ROWS`].
fn chunks<T>(mut rows: &[T]) -> Vec<&[T]> {
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
    fn a_statement_numbers_its_parameters_across_rows() {
        assert_eq!(
            Table::Inbox.sql(Dialect::Sqlite, 2),
            "INSERT INTO inbox (consumer, message_id, reply_type, reply_payload, handled_at_ms) VALUES \
             ($1, $2, $3, $4, $5), ($6, $7, $8, $9, $10)"
        );
        let outbox = Table::Outbox.sql(Dialect::Postgres, 64);
        assert!(outbox.ends_with("(CAST($568 AS uuid), $569, $570, $571, CAST($572 AS jsonb), $573, $574, $575, $576)"));
        for table in Table::ALL {
            for dialect in Table::DIALECTS {
                for shape in 0..SHAPES {
                    let rows = 1 << shape;
                    let sql = table.sql(dialect, rows);
                    assert_eq!(sql.matches('$').count(), rows * table.columns(), "{table:?} {dialect:?} {rows}");
                }
            }
        }
    }
}
