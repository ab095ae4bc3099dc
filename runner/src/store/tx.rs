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
        Tx { inner, dialect, held: Held::default() }
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
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
        let dialect = self.dialect;
        let outbox_row = |p: &mut Params| {
            format!(
                "({}, {}, {}, {}, {}, {}, {}, {}, {})",
                dialect.uuid(&p.next()),
                p.next(),
                p.next(),
                p.next(),
                dialect.json(&p.next()),
                p.next(),
                p.next(),
                p.next(),
                p.next()
            )
        };
        let outbox_head = "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, traceparent, source, occurred_at, topic) VALUES ";
        for chunk in chunks(&held.outbox) {
            let sql = statement(outbox_head, chunk.len(), outbox_row);
            let mut query = sqlx::query::<Any>(&sql);
            for event in chunk {
                query = query
                    .bind(&event.id)
                    .bind(AGGREGATE_TYPE)
                    .bind(&event.key)
                    .bind(&event.event_type)
                    .bind(event.payload.to_string())
                    .bind(&event.traceparent)
                    .bind(&event.source)
                    .bind(&event.time)
                    .bind(&event.topic);
            }
            query.execute(&mut *self.inner).await?;
        }
        let five = |p: &mut Params| format!("({}, {}, {}, {}, {})", p.next(), p.next(), p.next(), p.next(), p.next());
        let inbox_head = "INSERT INTO inbox (consumer, message_id, reply_type, reply_payload, handled_at_ms) VALUES ";
        for chunk in chunks(&held.inbox) {
            let sql = statement(inbox_head, chunk.len(), five);
            let mut query = sqlx::query::<Any>(&sql);
            for row in chunk {
                let (reply_type, reply_payload) = row.reply.as_ref().map(|(t, p)| (t.as_str(), p.as_str())).unzip();
                query = query
                    .bind(&row.consumer)
                    .bind(&row.message_id)
                    .bind(reply_type)
                    .bind(reply_payload)
                    .bind(row.at_ms);
            }
            query.execute(&mut *self.inner).await?;
        }
        let history_head = "INSERT INTO saga_history (saga_id, step, action, detail, at_ms) VALUES ";
        for chunk in chunks(&held.history) {
            let sql = statement(history_head, chunk.len(), five);
            let mut query = sqlx::query::<Any>(&sql);
            for row in chunk {
                query = query.bind(&row.saga_id).bind(&row.step).bind(&row.action).bind(&row.detail).bind(row.at_ms);
            }
            query.execute(&mut *self.inner).await?;
        }
        Ok(())
    }
}

/// Numbered placeholders `$1`, `$2`, … handed out in order.
struct Params(usize);

impl Params {
    fn next(&mut self) -> String {
        self.0 += 1;
        format!("${}", self.0)
    }
}

/// `head` followed by `rows` value tuples, each written by `row`.
fn statement(head: &str, rows: usize, mut row: impl FnMut(&mut Params) -> String) -> String {
    let mut params = Params(0);
    let tuples: Vec<String> = (0..rows).map(|_| row(&mut params)).collect();
    format!("{head}{}", tuples.join(", "))
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
        let sql = statement("INSERT INTO t (a, b) VALUES ", 3, |p| format!("({}, {})", p.next(), p.next()));
        assert_eq!(sql, "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4), ($5, $6)");
    }
}
