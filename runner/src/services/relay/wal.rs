//! The WAL relay (the Debezium role): streams the outbox's inserts from PostgreSQL by
//! logical replication (pgoutput), publishes each row, and confirms a WAL position to the
//! slot only once every row before it was acknowledged by the broker. After a crash or a
//! lost connection it resumes from the slot, republishing at most the unacknowledged tail.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use pgwire_replication::{Lsn, ReplicationClient, ReplicationConfig, ReplicationEvent, TlsConfig};

use super::config::{AfterPublish, OnRetainedWalLimit, OnSlotLost, RelayConfig};
use super::pgoutput::{self, Change, Relations};
use super::slot::{self, HEARTBEAT_PREFIX};
use super::status::{RelayStatus, SlotState};
use super::tracker::{AckTracker, TxnId};
use super::{backoff, pause, polling, RelayError};
use crate::event::{now_micros, now_ms};
use crate::services::ServiceContext;
use crate::store::outbox;
use crate::supervise;
use crate::telemetry;
use crate::transport::{Publisher, Record, TransportError};

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

pub async fn run(ctx: ServiceContext, config: RelayConfig, status: RelayStatus) -> Result<(), RelayError> {
    let store = &ctx.store;
    let level = slot::wal_level(store).await?;
    if level != "logical" {
        return Err(RelayError::Setup(format!(
            "PostgreSQL runs with wal_level = {level}; the WAL relay needs logical: run \
             `ALTER SYSTEM SET wal_level = logical` and restart PostgreSQL, or set relay mode = \"polling\""
        )));
    }
    let database = slot::database_name(store).await?;
    let slot_name = config.wal.slot.clone().unwrap_or_else(|| slot::default_slot_name(&database));
    let (created, added) = slot::ensure_publication(store, &config.wal.publication, &config.wal.tables).await?;
    if created {
        tracing::info!(publication = config.wal.publication, tables = ?config.wal.tables, "publication created");
    }
    if !added.is_empty() {
        tracing::warn!(
            publication = config.wal.publication,
            tables = ?added,
            "the publication did not cover these tables (made again, or the publication was altered): added back; \
             rows written to them before now were not streamed: run `runner relay reconcile` to find them"
        );
    }
    let existing = slot::stats(store, &slot_name).await?;
    if let Some(other) = existing.as_ref().and_then(|s| s.database.clone()).filter(|d| *d != database) {
        return Err(RelayError::Setup(format!(
            "replication slot {slot_name} decodes database {other}, not {database}: each database needs a slot of \
             its own; name one with `slot = \"...\"` under [relay]"
        )));
    }
    let created = if existing.is_none() {
        slot::create(store, &slot_name).await?;
        tracing::info!(slot = slot_name, "replication slot created");
        true
    } else {
        tracing::info!(slot = slot_name, "resuming from the existing replication slot");
        false
    };
    status.update(|s| {
        s.slot = Some(SlotState {
            name: slot_name.clone(),
            publication: config.wal.publication.clone(),
            ..SlotState::default()
        })
    });
    let publisher = ctx.broker.publisher()?.with_chaos(ctx.chaos.clone(), &ctx.service);
    if created && config.after_publish != AfterPublish::Keep {
        // Rows committed before the slot existed are not in its stream: publish the unmarked
        // (or, when published rows are deleted, remaining) rows that exist now. Rows committed in the moment between the slot's creation and
        // this read are also streamed: they are the only duplicates a new slot causes.
        let up_to = outbox::last_seq(store).await?;
        let sent = polling::drain(&ctx, &publisher, &config, &status, up_to).await?;
        if sent > 0 {
            tracing::info!(rows = sent, "published rows written before the slot existed");
        }
    }
    // A part of its own; it ends with this run (or with the attempt, if the run fails).
    let monitor_stop = ctx.shutdown.child_token();
    ctx.parts.spawn(format!("{}/slot monitor", ctx.service), monitor_stop.clone(), {
        let (base, config, slot_name, status) = (ctx.clone(), config.clone(), slot_name.clone(), status.clone());
        move |stop| {
            let ctx = base.with_shutdown(stop);
            supervise::infallible(monitor(ctx, config.clone(), slot_name.clone(), status.clone()))
        }
    });

    let mut failures = 0u32;
    // Rows acknowledged but not yet marked or deleted; kept across sessions so an
    // interrupted session does not forget them.
    let mut published_ids: Vec<String> = Vec::new();
    while !ctx.shutdown.is_cancelled() {
        if !slot_present(&ctx, &config, &slot_name, &status).await {
            pause(&ctx, config.wal.monitor_interval).await;
            continue;
        }
        let result = session(&ctx, &config, &slot_name, &publisher, &status, &mut published_ids).await;
        finish_rows(&ctx, &config, &mut published_ids).await;
        match result {
            Ok(()) => break,
            Err(e) => {
                failures += 1;
                metrics::counter!(telemetry::RELAY_RECONNECTS).increment(1);
                status.update(|s| s.reconnects += 1);
                status.error(format!("replication stream interrupted: {e}; resuming from the slot"));
                pause(&ctx, backoff(failures)).await;
            }
        }
        failures = failures.min(6);
    }
    monitor_stop.cancel();
    publisher.flush(Duration::from_secs(5));
    tracing::info!(service = ctx.service, "WAL relay stopped");
    Ok(())
}

/// Whether the slot exists; a vanished slot is reported, never silently replaced unless
/// the pipeline says `on_slot_lost = "recreate"`.
async fn slot_present(ctx: &ServiceContext, config: &RelayConfig, slot_name: &str, status: &RelayStatus) -> bool {
    match slot::stats(&ctx.store, slot_name).await {
        Ok(Some(stats)) if stats.wal_status.as_deref() != Some("lost") => true,
        Ok(found) => {
            let why = if found.is_some() { "its WAL was removed (wal_status = lost)" } else { "it was dropped" };
            metrics::gauge!(telemetry::RELAY_SLOT_LOST).set(1.0);
            status.update(|s| {
                if let Some(slot) = &mut s.slot {
                    slot.lost = true;
                }
            });
            if config.wal.on_slot_lost == OnSlotLost::Recreate {
                status.error(format!(
                    "replication slot {slot_name} was lost ({why}); recreating it. Rows committed while it was \
                     missing may not have been published: run `runner relay reconcile` to find them"
                ));
                if found.is_some() {
                    let _ = slot::drop(&ctx.store, slot_name).await;
                }
                if slot::create(&ctx.store, slot_name).await.is_ok() {
                    metrics::gauge!(telemetry::RELAY_SLOT_LOST).set(0.0);
                    status.update(|s| {
                        if let Some(slot) = &mut s.slot {
                            slot.lost = false;
                        }
                    });
                    return true;
                }
                false
            } else {
                status.error(format!(
                    "replication slot {slot_name} was lost ({why}); not recreating it, as rows committed meanwhile \
                     would be skipped silently. Run `runner relay reconcile`, then recreate the slot or set \
                     on_slot_lost = \"recreate\""
                ));
                false
            }
        }
        Err(e) => {
            status.error(format!("cannot read the replication slot: {e}"));
            false
        }
    }
}

/// One outbox row read from the stream.
struct OutboxRow {
    id: String,
    event_type: String,
    key: String,
    source: String,
    time: String,
    traceparent: Option<String>,
    payload: String,
    /// The topic when the row names one (canary routing).
    topic: Option<String>,
    /// The row's `created_at` (clock_timestamp() at insert) in Unix microseconds.
    created_micros: Option<i64>,
}

impl OutboxRow {
    fn from_insert(table: &pgoutput::Relation, values: &[Option<String>]) -> Result<Self, RelayError> {
        let get = |column: &str| table.value(values, column).map(str::to_string);
        let required = |column: &str| {
            get(column)
                .ok_or_else(|| RelayError::Replication(format!("outbox row without `{column}` in {}", table.name)))
        };
        Ok(OutboxRow {
            id: required("id")?,
            event_type: required("type")?,
            key: required("aggregateid")?,
            source: get("source").unwrap_or_else(|| "outbox".to_string()),
            time: get("occurred_at").unwrap_or_default(),
            traceparent: get("traceparent"),
            topic: get("topic"),
            payload: required("payload")?,
            created_micros: get("created_at").as_deref().and_then(parse_pg_timestamp_micros),
        })
    }

    fn record(&self) -> Record<'_> {
        Record {
            id: &self.id,
            event_type: &self.event_type,
            key: &self.key,
            source: &self.source,
            time: &self.time,
            traceparent: self.traceparent.as_deref(),
            payload: self.payload.as_bytes(),
            topic: self.topic.as_deref(),
        }
    }
}

type Delivery = Pin<Box<dyn Future<Output = (TxnId, Option<i64>, String, Result<(), TransportError>)> + Send>>;

enum Step {
    Event(ReplicationEvent),
    Ended,
    Delivered(TxnId, Option<i64>, String),
    PublishFailed(TransportError),
    Heartbeat,
    Housekeeping,
    Shutdown,
}

/// One replication connection, from the slot's confirmed position until shutdown or an error.
async fn session(
    ctx: &ServiceContext,
    config: &RelayConfig,
    slot_name: &str,
    publisher: &Publisher,
    status: &RelayStatus,
    published_ids: &mut Vec<String>,
) -> Result<(), RelayError> {
    let mut client = ReplicationClient::connect(replication_config(ctx.store.url(), slot_name, config)?)
        .await
        .map_err(|e| RelayError::Replication(e.to_string()))?;
    let streaming_after = telemetry::process_started().elapsed().as_millis() as i64;
    status.update(|s| {
        s.start_to_streaming_ms.get_or_insert(streaming_after);
    });
    tracing::info!(slot = slot_name, "streaming the outbox from the WAL");
    let mut relations = Relations::default();
    let mut tracker = AckTracker::default();
    let mut transaction: Vec<OutboxRow> = Vec::new();
    let mut in_transaction = false;
    let mut in_flight: FuturesUnordered<Delivery> = FuturesUnordered::new();
    let mut heartbeat = tokio::time::interval(config.wal.heartbeat_interval);
    let mut housekeeping = tokio::time::interval(Duration::from_millis(200));
    heartbeat.tick().await;

    loop {
        let step = tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => Step::Shutdown,
            Some((txn, created, id, result)) = in_flight.next(), if !in_flight.is_empty() => match result {
                Ok(()) => Step::Delivered(txn, created, id),
                Err(e) => Step::PublishFailed(e),
            },
            event = client.recv() => match event {
                Ok(Some(event)) => Step::Event(event),
                Ok(None) => Step::Ended,
                Err(e) => return Err(RelayError::Replication(e.to_string())),
            },
            _ = heartbeat.tick() => Step::Heartbeat,
            _ = housekeeping.tick() => Step::Housekeeping,
        };
        match step {
            Step::Shutdown => {
                // Let what is in flight be acknowledged, confirm it, then leave.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                while let Ok(Some((txn, created, id, result))) =
                    tokio::time::timeout_at(deadline, in_flight.next()).await
                {
                    if result.is_ok() {
                        delivered(&mut tracker, status, config, published_ids, txn, created, id);
                    }
                }
                if let Some(lsn) = tracker.take_confirmable() {
                    client.update_applied_lsn(Lsn::from_u64(lsn));
                    // The position is sent on the next status update.
                    tokio::time::sleep(config.wal.status_interval + Duration::from_millis(100)).await;
                }
                finish_rows(ctx, config, published_ids).await;
                let _ = client.shutdown().await;
                return Ok(());
            }
            Step::Delivered(txn, created, id) => {
                delivered(&mut tracker, status, config, published_ids, txn, created, id);
            }
            Step::PublishFailed(e) => {
                metrics::counter!(telemetry::RELAY_PUBLISH_ERRORS).increment(1);
                return Err(RelayError::Transport(e));
            }
            Step::Ended => return Err(RelayError::Replication("the server ended the replication stream".into())),
            Step::Event(event) => match event {
                ReplicationEvent::Begin { .. } => {
                    in_transaction = true;
                    transaction.clear();
                }
                ReplicationEvent::XLogData { data, .. } => match pgoutput::decode(&data)? {
                    Change::Relation(relation) => relations.remember(relation),
                    Change::Insert { relation, values } => {
                        if let Some(table) = relations.table(relation, &config.wal.tables) {
                            transaction.push(OutboxRow::from_insert(table, &values)?);
                        }
                    }
                    Change::Other => {}
                },
                ReplicationEvent::Commit { end_lsn, commit_time_micros, .. } => {
                    in_transaction = false;
                    let rows = std::mem::take(&mut transaction);
                    let commit = commit_time_micros + PG_EPOCH_OFFSET_MICROS;
                    let txn = tracker.register(end_lsn.as_u64(), rows.len(), commit);
                    for row in rows {
                        let delivery = publisher.enqueue(&row.record()).await?;
                        let (id, created) = (row.id, row.created_micros.or(Some(commit)));
                        in_flight.push(Box::pin(async move { (txn, created, id, delivery.await) }));
                    }
                }
                ReplicationEvent::Message { transactional, lsn, prefix, .. } => {
                    if !transactional {
                        tracker.idle_at(lsn.as_u64());
                    }
                    if prefix == HEARTBEAT_PREFIX {
                        tracing::trace!("heartbeat came back through the stream");
                    }
                }
                // The server asks for a reply when it needs our position: at shutdown it waits
                // until we confirm everything it sent (the shutdown checkpoint included), or a
                // restart hangs for a minute. Every commit before the keep-alive has reached us,
                // so with nothing pending and no transaction open its position is safe to
                // confirm. Plain keep-alives are not confirmed; heartbeats move idle slots.
                ReplicationEvent::KeepAlive { wal_end, reply_requested: true, .. } if !in_transaction => {
                    tracker.idle_at(wal_end.as_u64());
                }
                ReplicationEvent::KeepAlive { .. } => {}
                ReplicationEvent::StoppedAt { .. } => return Ok(()),
            },
            Step::Heartbeat => {
                if tracker.is_idle() {
                    if let Err(e) = slot::heartbeat(&ctx.store).await {
                        tracing::debug!(error = %e, "heartbeat not written");
                    }
                }
            }
            Step::Housekeeping => {
                let lag = tracker
                    .oldest_pending_commit_micros()
                    .map_or(0.0, |commit| ((now_micros() - commit).max(0)) as f64 / 1e6);
                metrics::gauge!(telemetry::RELAY_LAG_SECONDS).set(lag);
                status.update(|s| {
                    s.lag_seconds = lag;
                    s.in_flight_rows = tracker.pending_rows();
                });
                finish_rows(ctx, config, published_ids).await;
            }
        }
        if let Some(lsn) = tracker.take_confirmable() {
            client.update_applied_lsn(Lsn::from_u64(lsn));
        }
    }
}

fn delivered(
    tracker: &mut AckTracker,
    status: &RelayStatus,
    config: &RelayConfig,
    published_ids: &mut Vec<String>,
    txn: TxnId,
    created_micros: Option<i64>,
    id: String,
) {
    tracker.ack(txn);
    let latency = created_micros.map(|created| (now_micros() - created).max(0) as u64);
    status.published(latency);
    metrics::counter!(telemetry::RELAY_EVENTS_PUBLISHED, "mode" => "wal").increment(1);
    if config.after_publish != AfterPublish::Keep {
        published_ids.push(id);
    }
}

/// Marks or deletes acknowledged rows, as configured; kept for the next round on failure.
async fn finish_rows(ctx: &ServiceContext, config: &RelayConfig, ids: &mut Vec<String>) {
    if ids.is_empty() {
        return;
    }
    let delete = config.after_publish == AfterPublish::Delete;
    for chunk in ids.chunks(1000) {
        if let Err(e) = outbox::acknowledge_ids(&ctx.store, chunk, delete, now_ms()).await {
            tracing::warn!(error = %e, "cannot mark published rows; will try again");
            return;
        }
    }
    ids.clear();
}

/// Measures slot lag and retained WAL; warns, or drops the slot, past `max_retained_wal`.
async fn monitor(ctx: ServiceContext, config: RelayConfig, slot_name: String, status: RelayStatus) {
    let mut interval = tokio::time::interval(config.wal.monitor_interval);
    loop {
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        // Rows not yet marked published (a relay that deletes or keeps rows has none to count).
        if config.after_publish == AfterPublish::Mark {
            if let Ok(backlog) = outbox::backlog(&ctx.store).await {
                metrics::gauge!(telemetry::RELAY_OUTBOX_BACKLOG).set(backlog as f64);
            }
        }
        let stats = match slot::stats(&ctx.store, &slot_name).await {
            Ok(Some(stats)) => stats,
            Ok(None) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "slot statistics unavailable");
                continue;
            }
        };
        let over = match (config.wal.max_retained_wal, stats.retained_bytes) {
            (Some(limit), Some(retained)) => retained.max(0) as u64 > limit,
            _ => false,
        };
        metrics::gauge!(telemetry::RELAY_SLOT_LAG_BYTES).set(stats.lag_bytes.unwrap_or(0) as f64);
        metrics::gauge!(telemetry::RELAY_SLOT_RETAINED_WAL_BYTES).set(stats.retained_bytes.unwrap_or(0) as f64);
        status.update(|s| {
            if let Some(slot) = &mut s.slot {
                slot.confirmed_lsn = stats.confirmed_lsn.clone();
                slot.lag_bytes = stats.lag_bytes;
                slot.retained_wal_bytes = stats.retained_bytes;
                slot.wal_status = stats.wal_status.clone();
                slot.active = Some(stats.active);
                slot.retained_wal_over_limit = over;
            }
        });
        if over {
            let retained = stats.retained_bytes.unwrap_or(0);
            let limit = config.wal.max_retained_wal.unwrap_or(0);
            if config.wal.on_retained_wal_limit == OnRetainedWalLimit::DropSlot {
                status.error(format!(
                    "slot {slot_name} retains {retained} bytes of WAL, over the {limit}-byte limit; dropping it \
                     as configured (on_retained_wal_limit = \"drop_slot\")"
                ));
                if let Err(e) = slot::drop(&ctx.store, &slot_name).await {
                    status.error(format!("cannot drop slot {slot_name}: {e}"));
                }
            } else {
                status.error(format!(
                    "slot {slot_name} retains {retained} bytes of WAL, over the {limit}-byte limit; the relay is \
                     behind or stopped and the disk fills. Fix the relay, or set on_retained_wal_limit = \"drop_slot\""
                ));
            }
        }
    }
}

/// Replication connection settings from the store's `postgres://` URL.
fn replication_config(url: &str, slot_name: &str, config: &RelayConfig) -> Result<ReplicationConfig, RelayError> {
    let parsed = url::Url::parse(url).map_err(|e| RelayError::Setup(format!("database URL is not a URL: {e}")))?;
    let decode = |s: &str| percent_decode(s);
    let mut replication = ReplicationConfig::new(
        parsed.host_str().unwrap_or("localhost"),
        if parsed.username().is_empty() { "postgres".to_string() } else { decode(parsed.username()) },
        parsed.password().map(decode).unwrap_or_default(),
        decode(parsed.path().trim_start_matches('/')),
        slot_name,
        config.wal.publication.as_str(),
    );
    replication.port = parsed.port().unwrap_or(5432);
    replication.status_interval = config.wal.status_interval;
    replication.idle_wakeup_interval = config.wal.status_interval.max(Duration::from_secs(1));
    // Timestamps in the stream come as ISO text in UTC, whatever the server's defaults.
    replication.options = Some("-c datestyle=ISO -c timezone=UTC".to_string());
    let sslmode = parsed.query_pairs().find(|(k, _)| k == "sslmode").map(|(_, v)| v.into_owned());
    replication.tls = match sslmode.as_deref() {
        None | Some("disable") | Some("prefer") | Some("allow") => TlsConfig::disabled(),
        Some(_) => TlsConfig::require(),
    };
    Ok(replication)
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

/// `2026-11-24 20:40:01.123456+00` (ISO, UTC) as Unix microseconds.
pub fn parse_pg_timestamp_micros(text: &str) -> Option<i64> {
    let text = text.trim();
    let (date, rest) = text.split_once(' ')?;
    let mut parts = date.split('-').map(|p| p.parse::<i32>().ok());
    let (year, month, day) = (parts.next()??, parts.next()??, parts.next()??);
    let time_end = rest.find(['+', '-']).unwrap_or(rest.len());
    let (clock, offset) = rest.split_at(time_end);
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut hms = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (hour, minute, second) = (hms.next()??, hms.next()??, hms.next()??);
    let micros: i64 = format!("{fraction:0<6}")[..6].parse().ok()?;
    let offset_hours: i64 = if offset.is_empty() { 0 } else { offset[..3].parse().ok()? };
    let date = time::Date::from_calendar_date(year, time::Month::try_from(month as u8).ok()?, day as u8).ok()?;
    let days = (date.to_julian_day() - time::macros::date!(1970 - 01 - 01).to_julian_day()) as i64;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_hours * 3600;
    Some(seconds * 1_000_000 + micros)
}

#[cfg(test)]
mod tests {
    use super::parse_pg_timestamp_micros;

    #[test]
    fn postgres_timestamps_parse_to_unix_micros() {
        assert_eq!(parse_pg_timestamp_micros("1970-01-01 00:00:00+00"), Some(0));
        assert_eq!(parse_pg_timestamp_micros("1970-01-01 00:00:01.5+00"), Some(1_500_000));
        assert_eq!(parse_pg_timestamp_micros("2026-11-24 20:40:01.123456+00"), Some(1_795_552_801_123_456));
        assert_eq!(parse_pg_timestamp_micros("2026-11-24 21:40:01.123456+01"), Some(1_795_552_801_123_456));
        assert_eq!(parse_pg_timestamp_micros("yesterday"), None);
    }
}
