//! Read-ahead: the rows a group of messages will look up — each message's inbox entry, its
//! saga, a worker's effect row — read at the start of the group's transaction in one
//! statement per table, instead of one statement per message and table.
//!
//! A group's first try does not read its inbox entries: it takes every message as new
//! ([`InboxCheck::AssumeNew`]) and lets the inbox's primary key refuse one that was handled
//! before, when the held entries are inserted; the group then rolls back and runs again with
//! the entries read ([`InboxCheck::Read`]). Redeliveries are rare and the read was a fifth of
//! PostgreSQL's statement time under a burst (planning included), so the read is what waits.
//!
//! What was read is kept in the transaction ([`Known`]) and answers the lookups that follow
//! (`inbox::find`, `sagas::load`, `effects::status`). A saga or an effect row read ahead
//! answers one lookup only: the transaction may write it afterwards, and a second lookup reads
//! the table again. Under PostgreSQL's read
//! committed (each statement sees what was committed when it started) a row read a moment
//! earlier is no staler than one read later could have been: a concurrent writer still meets
//! the saga's version check or the inbox's primary key at write time, and the group rolls
//! back as it did before.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::any::AnyRow;
use sqlx::Row;

use super::effects::{EffectStatus, EffectTable};
use super::inbox::Recorded;
use super::sagas::SagaRow;
use super::Tx;

/// How a transaction learns whether each message of its group was handled before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxCheck {
    /// Read the entries ahead, one statement per 64 messages.
    Read,
    /// Take every message as new, without a statement: an entry that exists makes the
    /// insert of the held entries fail at flush with [`super::StoreError::AlreadyHandled`].
    AssumeNew,
}

/// What one message's work will look up, handed to its group before the work runs.
#[derive(Debug, Clone, Default)]
pub struct ReadAhead {
    /// Its inbox entry: (consumer, message id).
    pub inbox: Option<(Arc<str>, String)>,
    /// Its saga's row, by id.
    pub saga: Option<String>,
    /// A worker's effect row, by table and order id.
    pub effect: Option<(EffectTable, String)>,
}

/// The answers read ahead, kept by the transaction.
#[derive(Default)]
pub(super) struct Known {
    /// Inbox entries by consumer and message id; `None`: the message was not handled.
    inbox: HashMap<Arc<str>, HashMap<String, Option<Recorded>>>,
    /// Saga rows by id; `None`: no such saga.
    sagas: HashMap<String, Option<SagaRow>>,
    /// Effect rows' status and reason by table and order id; `None`: no row.
    effects: HashMap<EffectTable, HashMap<String, Option<EffectStatus>>>,
}

impl Known {
    /// The inbox entry of a message read ahead (`Some(None)`: read, and not there).
    pub(super) fn inbox(&self, consumer: &str, message_id: &str) -> Option<Option<Recorded>> {
        self.inbox.get(consumer)?.get(message_id).cloned()
    }

    /// The saga row read ahead, once (`Some(None)`: read, and not there).
    pub(super) fn take_saga(&mut self, id: &str) -> Option<Option<SagaRow>> {
        self.sagas.remove(id)
    }

    /// The effect row read ahead, once (`Some(None)`: read, and not there).
    pub(super) fn take_effect(&mut self, table: EffectTable, order_id: &str) -> Option<Option<EffectStatus>> {
        self.effects.get_mut(&table)?.remove(order_id)
    }
}

/// The most keys one read-ahead statement carries.
const MAX_KEYS: usize = 64;

/// How many statement shapes each read has: 1, 2, 4, … [`MAX_KEYS`] keys.
const SHAPES: usize = MAX_KEYS.trailing_zeros() as usize + 1;

/// Reads every entry (or, with [`InboxCheck::AssumeNew`], records every entry as absent)
/// and every saga and effect row `reads` name into `tx`'s known rows.
pub(super) async fn read(tx: &mut Tx, reads: &[&ReadAhead], check: InboxCheck) -> Result<(), sqlx::Error> {
    let mut inbox: HashMap<Arc<str>, Vec<&str>> = HashMap::new();
    let mut sagas: Vec<&str> = Vec::new();
    let mut effects: HashMap<EffectTable, Vec<&str>> = HashMap::new();
    for read in reads {
        if let Some((consumer, id)) = &read.inbox {
            inbox.entry(consumer.clone()).or_default().push(id);
        }
        sagas.extend(read.saga.as_deref());
        if let Some((table, order_id)) = &read.effect {
            effects.entry(*table).or_default().push(order_id);
        }
    }
    for (consumer, ids) in inbox {
        if check == InboxCheck::AssumeNew {
            let known = tx.known_mut().inbox.entry(consumer).or_default();
            known.extend(ids.into_iter().map(|id| (id.to_string(), None)));
            continue;
        }
        let (ids, rows) = fetch(tx, Read::Inbox, Some(&consumer), ids).await?;
        let known = tx.known_mut().inbox.entry(consumer).or_default();
        known.extend(ids.iter().map(|id| (id.to_string(), None)));
        for row in rows {
            let recorded = Recorded { reply_type: row.try_get(1)?, reply_payload: row.try_get(2)? };
            known.insert(row.try_get(0)?, Some(recorded));
        }
    }
    let (ids, rows) = fetch(tx, Read::Sagas, None, sagas).await?;
    let known = &mut tx.known_mut().sagas;
    known.extend(ids.iter().map(|id| (id.to_string(), None)));
    for row in rows {
        known.insert(row.try_get(0)?, Some(SagaRow::read(&row, 1)?));
    }
    for (table, ids) in effects {
        let (ids, rows) = fetch(tx, Read::Effect(table), None, ids).await?;
        let known = tx.known_mut().effects.entry(table).or_default();
        known.extend(ids.iter().map(|id| (id.to_string(), None)));
        for row in rows {
            known.insert(row.try_get(0)?, Some((row.try_get(1)?, row.try_get(2)?)));
        }
    }
    Ok(())
}

/// The rows `read` finds for `keys` (after `consumer`, for the inbox), in statements of at
/// most [`MAX_KEYS`] keys; also the keys, each once.
async fn fetch<'k>(
    tx: &mut Tx,
    read: Read,
    consumer: Option<&str>,
    mut keys: Vec<&'k str>,
) -> Result<(Vec<&'k str>, Vec<AnyRow>), sqlx::Error> {
    keys.sort_unstable();
    keys.dedup();
    let mut rows = Vec::new();
    for chunk in keys.chunks(MAX_KEYS) {
        let query = consumer.into_iter().fold(sqlx::query(sql(read, chunk.len())), |q, c| q.bind(c));
        rows.extend(padded(chunk).fold(query, |q, key| q.bind(key)).fetch_all(&mut **tx).await?);
    }
    Ok((keys, rows))
}

/// `keys` made up to the statement's shape (the next power of two) by repeating the last:
/// a repeated key in `IN (…)` changes nothing, and a connection prepares few shapes.
fn padded<'k>(keys: &'k [&'k str]) -> impl Iterator<Item = &'k str> {
    let shape = keys.len().next_power_of_two();
    let last = keys.last().copied().unwrap_or_default();
    keys.iter().copied().chain(std::iter::repeat_n(last, shape - keys.len()))
}

/// A read-ahead statement.
#[derive(Debug, Clone, Copy)]
enum Read {
    Inbox,
    Sagas,
    Effect(EffectTable),
}

impl Read {
    /// Every read, the effect tables' from [`EffectTable::ALL`].
    fn all() -> impl Iterator<Item = Read> {
        [Read::Inbox, Read::Sagas].into_iter().chain(EffectTable::ALL.map(Read::Effect))
    }

    fn index(self) -> usize {
        match self {
            Read::Inbox => 0,
            Read::Sagas => 1,
            Read::Effect(table) => 2 + table as usize,
        }
    }
}

/// The read of `keys` keys, padded to its shape, written once per process.
fn sql(read: Read, keys: usize) -> &'static str {
    static ALL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let all = ALL.get_or_init(|| {
        Read::all().flat_map(|read| (0..SHAPES).map(move |shape| statement(read, 1 << shape))).collect()
    });
    let shape = keys.next_power_of_two().trailing_zeros() as usize;
    debug_assert!(keys > 0 && shape < SHAPES, "{keys} keys is not a read-ahead shape");
    &all[read.index() * SHAPES + shape.min(SHAPES - 1)]
}

fn statement(read: Read, keys: usize) -> String {
    let list = |first: usize| (first..first + keys).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
    match read {
        // One equality per key, not `message_id IN (…)`: PostgreSQL keeps the plan it made for
        // a prepared statement while the table was small, and that plan looked up `consumer`
        // alone and filtered every entry of the consumer (4 ms a read at 30,000 entries,
        // measured); an equality on the whole primary key is an index lookup whatever the size.
        Read::Inbox => (2..2 + keys)
            .map(|i| {
                format!(
                    "SELECT message_id, reply_type, reply_payload FROM inbox WHERE consumer = $1 AND message_id = ${i}"
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL "),
        Read::Sagas => format!("SELECT id, {} FROM sagas WHERE id IN ({})", super::sagas::COLUMNS, list(1)),
        Read::Effect(table) => {
            format!("SELECT order_id, status, reason FROM {} WHERE order_id IN ({})", table.name(), list(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_padded_to_a_power_of_two_with_the_last_one() {
        let padded = |keys: &[&str]| padded(keys).map(str::to_string).collect::<Vec<_>>();
        assert_eq!(padded(&["a"]), ["a"]);
        assert_eq!(padded(&["a", "b", "c"]), ["a", "b", "c", "c"]);
        assert_eq!(padded(&["a"; 64]).len(), 64);
        assert_eq!(padded(&["x"; 33]).len(), 64);
    }

    #[test]
    fn each_shape_numbers_its_parameters() {
        assert_eq!(
            sql(Read::Effect(EffectTable::Shipments), 2),
            "SELECT order_id, status, reason FROM shipments WHERE order_id IN ($1, $2)"
        );
        for (i, read) in Read::all().enumerate() {
            assert_eq!(read.index(), i, "{read:?}");
        }
        assert_eq!(
            sql(Read::Inbox, 2),
            "SELECT message_id, reply_type, reply_payload FROM inbox WHERE consumer = $1 AND message_id = $2 UNION ALL \
             SELECT message_id, reply_type, reply_payload FROM inbox WHERE consumer = $1 AND message_id = $3"
        );
        for shape in 0..SHAPES {
            let keys = 1 << shape;
            assert_eq!(sql(Read::Inbox, keys).matches("message_id = $").count(), keys);
            assert!(sql(Read::Inbox, keys).ends_with(&format!("message_id = ${}", keys + 1)));
            for read in Read::all().skip(1) {
                assert_eq!(sql(read, keys).matches('$').count(), keys, "{read:?}");
                assert!(sql(read, keys).ends_with(&format!("${keys})")), "{read:?}");
            }
        }
    }
}
