//! A database transaction that holds its writes of a few known kinds (see [`super::held`])
//! until commit, then writes each table's rows in a few multi-row statements.
//!
//! Nothing reads a held row inside the transaction that wrote it: an inbox lookup of a
//! message held here is answered from here, and a lookup of a saga or an effect row this
//! transaction holds a write of first sends what it holds ([`Tx::settle`]). So holding
//! changes no result; it changes the cost. A consumer's group of 25 messages wrote about 60
//! single-row inserts and 25 saga updates, each a round trip to the database (and, on
//! SQLite, two thread hand-offs); held, they are a handful of statements.
//!
//! Dropping a transaction without committing rolls it back and drops what it held.

use std::ops::{Deref, DerefMut};

use sqlx::{Any, AnyConnection, Row as _};

use super::ahead::{InboxCheck, Known, ReadAhead};
use super::held::{chunks, ReadBy, Row, Table, Value};
use super::{is_unique_violation, Dialect, StoreError};
use crate::event::{Event, AGGREGATE_TYPE};

/// A transaction of the store; derefs to its connection for ordinary statements.
pub struct Tx {
    inner: sqlx::Transaction<'static, Any>,
    dialect: Dialect,
    /// Rows written by the transaction and not sent yet, by `table as usize`.
    held: [Vec<Row>; Table::ALL.len()],
    /// Rows read ahead for the lookups to come.
    known: Known,
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
        Tx { inner, dialect, held: Default::default(), known: Known::default() }
    }

    /// Reads, in a statement or two, the inbox entries and sagas a group's messages will
    /// look up, or takes the messages as new as `inbox` says (see [`super::ahead`]).
    pub async fn read_ahead(&mut self, reads: &[&ReadAhead], inbox: InboxCheck) -> Result<(), sqlx::Error> {
        super::ahead::read(self, reads, inbox).await
    }

    pub(super) fn known(&self) -> &Known {
        &self.known
    }

    pub(super) fn known_mut(&mut self) -> &mut Known {
        &mut self.known
    }

    /// Writes what it holds, then commits.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        self.flush().await?;
        Ok(self.inner.commit().await?)
    }

    /// Rolls back; what it holds is dropped.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.inner.rollback().await
    }

    /// Holds a row of `table` until commit (a table's rows keep their order).
    pub(super) fn hold(&mut self, table: Table, row: Row) {
        debug_assert_eq!(row.len(), table.width(), "a {table:?} row");
        self.held[table as usize].push(row);
    }

    /// Holds a row of `table` in place of the one held for the same key, if any (a later
    /// write of the same row wins, as it would have written after).
    pub(super) fn hold_replacing(&mut self, table: Table, row: Row) {
        match self.held[table as usize].iter_mut().find(|held| held[0] == row[0]) {
            Some(held) => *held = row,
            None => self.hold(table, row),
        }
    }

    /// Sends what it holds when a row keyed `key` (its first column) of a table `lookup`
    /// reads is among it: called before that lookup, or a statement on that row, runs.
    pub(super) async fn settle(&mut self, lookup: ReadBy, key: &str) -> Result<(), StoreError> {
        let held = Table::ALL
            .into_iter()
            .filter(|table| table.read_by() == Some(lookup))
            .any(|table| self.held[table as usize].iter().any(|row| row[0].as_text() == Some(key)));
        if held {
            self.flush().await?;
        }
        Ok(())
    }

    /// Holds an outbox row until commit (rows keep their order).
    pub(super) fn hold_outbox(&mut self, event: &Event) {
        let row = vec![
            event.id.as_str().into(),
            AGGREGATE_TYPE.into(),
            event.key.as_str().into(),
            event.event_type.as_str().into(),
            event.payload.to_string().into(),
            event.traceparent.as_deref().into(),
            event.source.as_str().into(),
            event.time.as_str().into(),
            event.topic.as_deref().into(),
        ];
        self.hold(Table::Outbox, row);
    }

    /// Holds an inbox entry until commit.
    pub(super) fn hold_inbox(&mut self, consumer: &str, message_id: &str, reply: Option<(&str, &str)>, at_ms: i64) {
        let (reply_type, reply_payload) = reply.unzip();
        let row = vec![consumer.into(), message_id.into(), reply_type.into(), reply_payload.into(), at_ms.into()];
        self.hold(Table::Inbox, row);
    }

    /// The reply held for a message this transaction handled: `Some(None)` when it had none.
    pub(super) fn held_inbox(&self, consumer: &str, message_id: &str) -> Option<Option<(String, String)>> {
        self.held[Table::Inbox as usize]
            .iter()
            .find(|row| row[0].as_text() == Some(consumer) && row[1].as_text() == Some(message_id))
            .map(|row| row[2].as_text().map(str::to_string).zip(row[3].as_text().map(str::to_string)))
    }

    /// Holds a saga history line until commit.
    pub(super) fn hold_history(&mut self, saga_id: &str, step: &str, action: &str, detail: Option<&str>, at_ms: i64) {
        self.hold(Table::History, vec![saga_id.into(), step.into(), action.into(), detail.into(), at_ms.into()]);
    }

    /// Sends every held row, table by table, in the order each table's rows were held. A
    /// saga update whose version moved meanwhile is a [`StoreError::Conflict`].
    pub async fn flush(&mut self) -> Result<(), StoreError> {
        let held = std::mem::take(&mut self.held);
        for (table, rows) in Table::ALL.into_iter().zip(&held) {
            for chunk in chunks(rows) {
                let query = chunk.iter().flatten().fold(sqlx::query(table.sql(self.dialect, chunk.len())), bind);
                if !table.checks_version() {
                    match query.execute(&mut *self.inner).await {
                        Ok(_) => continue,
                        // A message taken as new that was handled before (or is being handled
                        // by another transaction, which committed first).
                        Err(e) if table == Table::Inbox && is_unique_violation(&e) => {
                            return Err(StoreError::AlreadyHandled(format!(
                                "one of {} messages of {} was",
                                chunk.len(),
                                chunk[0][0].as_text().unwrap_or_default()
                            )));
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                let matched = query.fetch_all(&mut *self.inner).await?;
                if matched.len() < chunk.len() {
                    let matched: Vec<String> = matched.iter().map(|row| row.try_get(0)).collect::<Result<_, _>>()?;
                    let moved: Vec<&str> = chunk
                        .iter()
                        .filter_map(|row| row[0].as_text())
                        .filter(|id| !matched.iter().any(|m| m == id))
                        .collect();
                    return Err(StoreError::Conflict(format!("saga {}", moved.join(", "))));
                }
            }
        }
        Ok(())
    }
}

type Query<'r> = sqlx::query::Query<'r, Any, sqlx::any::AnyArguments<'r>>;

/// Binds one held value.
fn bind<'r>(query: Query<'r>, value: &'r Value) -> Query<'r> {
    match value {
        Value::Text(text) => query.bind(text.as_deref()),
        Value::Int(n) => query.bind(*n),
    }
}
