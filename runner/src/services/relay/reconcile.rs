//! `runner relay reconcile`: checks the relay (the Debezium role) against what reached the topics.
//!
//! It reads the outbox rows (id, type, key, `seq`), then every topic they go to (a row's `topic`
//! when set — a canary route —, else its type) from the beginning up to the end it has at that
//! moment, and reports rows on no topic
//! (`missing`), ids seen more than once (`duplicates`: at-least-once delivery allows them),
//! records no outbox row explains (`unknown`), and rows of one key that reached a topic out of
//! their `seq` order (`orderViolations`). The outbox is read before the topics, so a row already
//! marked published when it was read is on its topic unless it was lost. Order is judged by
//! `seq`; the WAL relay sends in commit order, which differs only when two transactions of one
//! key overlap.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use serde::Serialize;
use sqlx::Row;

use super::config::AfterPublish;
use super::RelayError;
use crate::store::{Store, StoreError};
use crate::transport::Broker;

/// How many examples of missing rows, duplicates and unknown records the report lists.
pub const SAMPLE: usize = 20;
/// How many examples of order violations the report lists.
pub const ORDER_SAMPLE: usize = 10;

#[derive(Debug, Clone)]
pub struct ReconcileOptions {
    /// Only rows with `seq` at least this, and the records of those rows.
    pub since_seq: Option<i64>,
    /// What the relay does with published rows; a relay that deletes them cannot be checked.
    pub after_publish: AfterPublish,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub since_seq: Option<i64>,
    /// `mark` or `keep`: published rows stay in the outbox (`delete` is refused).
    pub after_publish: &'static str,
    pub outbox_rows: usize,
    pub records_read: usize,
    pub topics: Vec<TopicSummary>,
    pub missing: Missing,
    pub duplicates: Duplicates,
    pub unknown: Unknown,
    pub order_violations: OrderViolations,
    /// Records of outbox rows outside the checked range: below `sinceSeq`, or written after
    /// the outbox was read. They are neither checked nor unknown.
    pub records_out_of_range: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicSummary {
    pub name: String,
    /// False when the broker does not know the topic: every row of that type is missing.
    pub exists: bool,
    pub partitions: usize,
    pub records: usize,
}

/// Outbox rows whose id is on no topic.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Missing {
    pub count: usize,
    /// Of those, rows not marked published: the relay may still be sending them.
    pub not_marked: usize,
    /// The first [`SAMPLE`] in `seq` order.
    pub first: Vec<RowRef>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RowRef {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub key: String,
    pub seq: i64,
    pub marked_published: bool,
}

/// Outbox ids found more than once.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Duplicates {
    pub ids: usize,
    /// Copies beyond the first, over all those ids.
    pub extra_copies: usize,
    /// The first [`SAMPLE`] in `seq` order.
    pub first: Vec<Duplicate>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Duplicate {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub key: String,
    pub seq: i64,
    pub copies: usize,
    pub at: Vec<Position>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Position {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Records whose `ce_id` is in no outbox row (rows deleted after publishing, or records
/// produced by something other than the relay).
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unknown {
    pub count: usize,
    /// Of those, records without a `ce_id` header.
    pub without_id: usize,
    pub first: Vec<UnknownRecord>,
}

#[derive(Debug, Serialize)]
pub struct UnknownRecord {
    pub id: Option<String>,
    pub key: Option<String>,
    #[serde(flatten)]
    pub at: Position,
}

/// Rows whose first copy reached a topic after a row of the same key with a higher `seq`.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderViolations {
    pub count: usize,
    /// The first [`ORDER_SAMPLE`] in topic order.
    pub first: Vec<OrderViolation>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderViolation {
    pub key: String,
    pub id: String,
    pub seq: i64,
    /// The row with the higher `seq` that came first.
    pub after_id: String,
    pub after_seq: i64,
    #[serde(flatten)]
    pub at: Position,
}

impl Report {
    /// Whether some outbox row reached no topic.
    pub fn has_missing(&self) -> bool {
        self.missing.count > 0
    }
}

/// One outbox row as the check needs it.
struct OutboxRow {
    id: String,
    event_type: String,
    /// Where the relay sends it: the row's `topic` when set (a canary route), else its type.
    topic: String,
    key: String,
    seq: i64,
    published: bool,
}

/// Compares the outbox (optionally only `seq >= since_seq`) with what its topics hold now.
pub async fn reconcile(store: &Store, broker: &Broker, options: &ReconcileOptions) -> Result<Report, RelayError> {
    if options.after_publish == AfterPublish::Delete {
        return Err(RelayError::Setup(
            "the relay deletes published rows (after_publish = \"delete\"), so the outbox no longer holds what \
             reached the topics and there is nothing to compare; reconcile needs after_publish = \"mark\" or \"keep\""
                .into(),
        ));
    }
    let after_publish = if options.after_publish == AfterPublish::Keep { "keep" } else { "mark" };
    // The outbox first: a row marked published by now was acknowledged before the topics'
    // ends are taken below, so it must be within them.
    let rows = outbox_rows(store, options.since_seq).await?;
    let by_id: HashMap<&str, usize> = rows.iter().enumerate().map(|(i, row)| (row.id.as_str(), i)).collect();
    let types: BTreeSet<&str> = rows.iter().map(|row| row.topic.as_str()).collect();

    let mut topics = Vec::new();
    let mut records_read = 0;
    // Where each row's id was found, in topic order; the first entry is its first copy.
    let mut found: Vec<Vec<Position>> = vec![Vec::new(); rows.len()];
    let mut strangers: Vec<UnknownRecord> = Vec::new();
    let mut order_violations = OrderViolations::default();
    for topic in types {
        let contents = broker.read_topic(topic).await?;
        records_read += contents.records.len();
        topics.push(TopicSummary {
            name: topic.to_string(),
            exists: contents.exists,
            partitions: contents.partitions,
            records: contents.records.len(),
        });
        // Per key: the highest `seq` among the first copies seen so far on this topic.
        let mut highest: HashMap<&str, (i64, usize)> = HashMap::new();
        for record in &contents.records {
            let at = Position { topic: topic.to_string(), partition: record.partition, offset: record.offset };
            let Some(&index) = record.id.as_deref().and_then(|id| by_id.get(id)) else {
                strangers.push(UnknownRecord { id: record.id.clone(), key: record.key.clone(), at });
                continue;
            };
            let first_on_topic = found[index].iter().all(|p| p.topic != topic);
            found[index].push(at.clone());
            if !first_on_topic {
                continue;
            }
            let row = &rows[index];
            let key = record.key.as_deref().unwrap_or(row.key.as_str());
            match highest.get(key) {
                Some(&(seq, after)) if seq > row.seq => {
                    order_violations.count += 1;
                    if order_violations.first.len() < ORDER_SAMPLE {
                        order_violations.first.push(OrderViolation {
                            key: key.to_string(),
                            id: row.id.clone(),
                            seq: row.seq,
                            after_id: rows[after].id.clone(),
                            after_seq: seq,
                            at,
                        });
                    }
                }
                _ => {
                    highest.insert(key, (row.seq, index));
                }
            }
        }
    }

    // Records of rows outside the range read (below --since-seq, or newer than the read).
    let elsewhere = existing_ids(store, strangers.iter().filter_map(|r| r.id.as_deref())).await?;
    let mut unknown = Unknown::default();
    let mut records_out_of_range = 0;
    for record in strangers {
        match record.id.as_deref() {
            Some(id) if elsewhere.contains(id) => records_out_of_range += 1,
            id => {
                unknown.count += 1;
                unknown.without_id += usize::from(id.is_none());
                if unknown.first.len() < SAMPLE {
                    unknown.first.push(record);
                }
            }
        }
    }

    let mut missing = Missing::default();
    let mut duplicates = Duplicates::default();
    for (row, positions) in rows.iter().zip(&found) {
        match positions.len() {
            0 => {
                missing.count += 1;
                missing.not_marked += usize::from(!row.published);
                if missing.first.len() < SAMPLE {
                    missing.first.push(RowRef {
                        id: row.id.clone(),
                        event_type: row.event_type.clone(),
                        key: row.key.clone(),
                        seq: row.seq,
                        marked_published: row.published,
                    });
                }
            }
            1 => {}
            copies => {
                duplicates.ids += 1;
                duplicates.extra_copies += copies - 1;
                if duplicates.first.len() < SAMPLE {
                    duplicates.first.push(Duplicate {
                        id: row.id.clone(),
                        event_type: row.event_type.clone(),
                        key: row.key.clone(),
                        seq: row.seq,
                        copies,
                        at: positions.clone(),
                    });
                }
            }
        }
    }

    Ok(Report {
        since_seq: options.since_seq,
        after_publish,
        outbox_rows: rows.len(),
        records_read,
        topics,
        missing,
        duplicates,
        unknown,
        order_violations,
        records_out_of_range,
    })
}

async fn outbox_rows(store: &Store, since_seq: Option<i64>) -> Result<Vec<OutboxRow>, StoreError> {
    let sql = format!(
        "SELECT {}, type, aggregateid, seq, published_at_ms, COALESCE(topic, type) FROM outbox WHERE seq >= {} ORDER BY seq",
        store.dialect().text("id"),
        since_seq.unwrap_or(i64::MIN)
    );
    let rows = sqlx::query(&sql).fetch_all(store.pool()).await?;
    rows.into_iter()
        .map(|row| {
            Ok(OutboxRow {
                id: row.try_get(0)?,
                event_type: row.try_get(1)?,
                key: row.try_get(2)?,
                seq: row.try_get(3)?,
                published: row.try_get::<Option<i64>, _>(4)?.is_some(),
                topic: row.try_get(5)?,
            })
        })
        .collect()
}

/// Which of `ids` are in the outbox at all (any `seq`, including rows written since it was read).
async fn existing_ids<'a>(store: &Store, ids: impl Iterator<Item = &'a str>) -> Result<HashSet<String>, StoreError> {
    // Ids come from the topics: only well-formed uuids are put into the statement.
    let ids: BTreeSet<&str> = ids.filter(|id| uuid::Uuid::parse_str(id).is_ok()).collect();
    let ids: Vec<&str> = ids.into_iter().collect();
    let mut existing = HashSet::new();
    for chunk in ids.chunks(500) {
        let list = chunk.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(",");
        let sql = format!("SELECT {} FROM outbox WHERE id IN ({list})", store.dialect().text("id"));
        for row in sqlx::query(&sql).fetch_all(store.pool()).await? {
            existing.insert(row.try_get::<String, _>(0)?);
        }
    }
    Ok(existing)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let range = self.since_seq.map_or_else(|| "all rows".to_string(), |seq| format!("rows with seq >= {seq}"));
        writeln!(f, "outbox reconciliation ({range}, after_publish = {})", self.after_publish)?;
        writeln!(f, "  outbox rows:       {}", self.outbox_rows)?;
        writeln!(f, "  records read:      {}", self.records_read)?;
        for topic in &self.topics {
            if topic.exists {
                writeln!(f, "    {}: {} record(s) in {} partition(s)", topic.name, topic.records, topic.partitions)?;
            } else {
                writeln!(f, "    {}: no such topic", topic.name)?;
            }
        }
        if self.records_out_of_range > 0 {
            writeln!(
                f,
                "    ({} record(s) of rows outside the checked range were not checked)",
                self.records_out_of_range
            )?;
        }

        let missing = &self.missing;
        write!(f, "  missing:           {}", missing.count)?;
        if missing.count > 0 && self.after_publish == "mark" {
            write!(
                f,
                " ({} marked published, {} not marked yet)",
                missing.count - missing.not_marked,
                missing.not_marked
            )?;
        }
        writeln!(f)?;
        for row in &missing.first {
            let mark = if self.after_publish != "mark" {
                ""
            } else if row.marked_published {
                ", marked published"
            } else {
                ", not marked yet"
            };
            writeln!(f, "    {} {} seq {} key {}{mark}", row.id, row.event_type, row.seq, row.key)?;
        }
        more(f, missing.count, missing.first.len())?;

        let duplicates = &self.duplicates;
        let copies = if duplicates.extra_copies == 1 { "copy" } else { "copies" };
        writeln!(f, "  duplicates:        {} id(s), {} extra {copies}", duplicates.ids, duplicates.extra_copies)?;
        for duplicate in &duplicates.first {
            let at: Vec<String> =
                duplicate.at.iter().map(|p| format!("{}[{}]@{}", p.topic, p.partition, p.offset)).collect();
            writeln!(
                f,
                "    {} {} seq {} key {}: {} copies at {}",
                duplicate.id,
                duplicate.event_type,
                duplicate.seq,
                duplicate.key,
                duplicate.copies,
                at.join(", ")
            )?;
        }
        more(f, duplicates.ids, duplicates.first.len())?;

        let unknown = &self.unknown;
        write!(f, "  unknown records:   {}", unknown.count)?;
        if unknown.without_id > 0 {
            write!(f, " ({} without ce_id)", unknown.without_id)?;
        }
        writeln!(f)?;
        for record in &unknown.first {
            writeln!(
                f,
                "    {}[{}]@{} id {} key {}",
                record.at.topic,
                record.at.partition,
                record.at.offset,
                record.id.as_deref().unwrap_or("-"),
                record.key.as_deref().unwrap_or("-")
            )?;
        }
        more(f, unknown.count, unknown.first.len())?;

        let order = &self.order_violations;
        writeln!(f, "  order violations:  {}", order.count)?;
        for violation in &order.first {
            writeln!(
                f,
                "    key {}: {} (seq {}) after {} (seq {}) at {}[{}]@{}",
                violation.key,
                violation.id,
                violation.seq,
                violation.after_id,
                violation.after_seq,
                violation.at.topic,
                violation.at.partition,
                violation.at.offset
            )?;
        }
        more(f, order.count, order.first.len())?;

        if self.has_missing() {
            write!(f, "result: {} row(s) never reached their topic", missing.count)?;
            if missing.not_marked > 0 && self.after_publish == "mark" {
                write!(f, "; rows not marked yet may still be on their way: check again when the relay has caught up")?;
            }
            writeln!(f)
        } else if duplicates.ids > 0 {
            writeln!(f, "result: every row reached its topic; some more than once (at-least-once delivery)")
        } else {
            writeln!(f, "result: every row reached its topic exactly once")
        }
    }
}

fn more(f: &mut fmt::Formatter<'_>, total: usize, shown: usize) -> fmt::Result {
    if total > shown {
        writeln!(f, "    … and {} more", total - shown)?;
    }
    Ok(())
}
