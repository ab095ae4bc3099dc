//! The ingest of dlq-admin: follows the dead-letter topics and records each record once in
//! `dead_letters`, and keeps the entries gauge current.

use std::sync::Arc;
use std::time::Duration;

use super::entry::Entry;
use super::DlqAdminConfig;
use super::{queries, STATES};
use crate::event::now_ms;
use crate::services::ServiceContext;
use crate::telemetry;
use crate::transport::dead_letter::ErrorKind;
use crate::transport::{consume_raw, DeliveryPolicy, HandleError, RawMessage, TransportError};

/// How often the entries gauge is refreshed.
const GAUGE_INTERVAL: Duration = Duration::from_secs(5);

/// Follows the dead-letter topics (`config.topics`, a regular expression) until shutdown,
/// recording each record once. A failure to record is a database outage: it is retried until
/// it passes and never dead-lettered itself (that would loop into `<topic>.dlq.dlq`).
pub async fn run(ctx: ServiceContext, config: DlqAdminConfig) -> Result<(), TransportError> {
    let consumer = ctx.broker.consumer(&config.group, std::slice::from_ref(&config.topics))?;
    let name = format!("{}/dlq-admin", ctx.service);
    let policy = DeliveryPolicy {
        group: config.group.clone(),
        attempts: 1,
        backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(5),
        jitter: 0.2,
        retryable: vec![ErrorKind::Unavailable],
        dead_letter_topic: None,
        redeliver: ctx.broker.config().redeliver_each_message,
        chaos: None,
        skip_unusable: false,
        // Records are stored in the order they came; recording is cheap.
        max_in_flight: 1,
    };
    // Never used: every failure below is `unavailable`, which is retried, not dead-lettered.
    let dead_letters = ctx.broker.publisher()?;
    tracing::info!(consumer = name, topics = config.topics, group = config.group, "dead-letter ingest started");
    let ingest = consume_raw(consumer, &name, ctx.shutdown.clone(), policy, dead_letters, |raw| ingest(&ctx, raw));
    tokio::join!(ingest, refresh_gauge(&ctx));
    tracing::info!(consumer = name, "dead-letter ingest stopped");
    Ok(())
}

/// Records one dead letter, unless it was recorded before.
async fn ingest(ctx: &ServiceContext, raw: Arc<RawMessage>) -> Result<(), HandleError> {
    let entry = Entry::from_raw(&raw, now_ms());
    match queries::insert(&ctx.store, &entry, &ctx.service).await {
        Ok(true) => {
            metrics::counter!(telemetry::DLQ_ENTRIES_INGESTED, "topic" => entry.dlq_topic.clone()).increment(1);
            tracing::debug!(topic = raw.topic, offset = raw.offset, "dead letter recorded");
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(e) => Err(HandleError::new(ErrorKind::Unavailable, format!("cannot record the dead letter: {e}"))),
    }
}

/// Sets the entries gauge (by dead-letter topic and state) every few seconds until shutdown.
async fn refresh_gauge(ctx: &ServiceContext) {
    loop {
        match queries::counts_by_topic_and_state(&ctx.store).await {
            Ok(counts) => {
                for (topic, by_state) in counts {
                    for state in STATES {
                        let n = by_state.get(state).copied().unwrap_or(0);
                        metrics::gauge!(telemetry::DLQ_ENTRIES, "topic" => topic.clone(), "state" => state)
                            .set(n as f64);
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot count dead-letter entries"),
        }
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            _ = tokio::time::sleep(GAUGE_INTERVAL) => {}
        }
    }
}
