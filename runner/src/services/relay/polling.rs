//! The outbox relay, polling mode: reads unpublished rows in insertion order, publishes each
//! to the topic named by its type, and marks a row published only after the broker's ack.

use std::time::Duration;

use super::config::{AfterPublish, RelayConfig};
use super::{backoff, pause, RelayError, RelayStatus};
use crate::event::now_ms;
use crate::services::ServiceContext;
use crate::store::outbox;
use crate::telemetry;
use crate::transport::Publisher;

pub async fn run(ctx: ServiceContext, config: RelayConfig, status: RelayStatus) -> Result<(), RelayError> {
    let publisher = ctx.broker.publisher()?.with_chaos(ctx.chaos.clone(), &ctx.service);
    tracing::info!(service = ctx.service, "outbox relay started (polling)");
    let mut failures = 0u32;
    while !ctx.shutdown.is_cancelled() {
        match round(&ctx, &publisher, &config, &status, None).await {
            Ok(0) => {
                failures = 0;
                tokio::select! {
                    _ = ctx.shutdown.cancelled() => {}
                    _ = ctx.outbox_written.notified() => {}
                    _ = tokio::time::sleep(config.poll_interval) => {}
                }
            }
            Ok(_) => failures = 0,
            Err(e) => {
                failures += 1;
                status.error(format!("{e}; will retry"));
                pause(&ctx, backoff(failures)).await;
            }
        }
    }
    publisher.flush(Duration::from_secs(5));
    tracing::info!(service = ctx.service, "outbox relay stopped");
    Ok(())
}

/// Publishes every unpublished row up to `seq` `up_to`; returns how many went out.
pub async fn drain(
    ctx: &ServiceContext,
    publisher: &Publisher,
    config: &RelayConfig,
    status: &RelayStatus,
    up_to: i64,
) -> Result<usize, RelayError> {
    let mut total = 0;
    loop {
        match round(ctx, publisher, config, status, Some(up_to)).await? {
            0 => return Ok(total),
            sent => total += sent,
        }
    }
}

/// One batch: read, publish, mark the acknowledged prefix. An error means some rows of the
/// batch were not acknowledged; they stay unpublished and go out again.
async fn round(
    ctx: &ServiceContext,
    publisher: &Publisher,
    config: &RelayConfig,
    status: &RelayStatus,
    up_to: Option<i64>,
) -> Result<usize, RelayError> {
    let batch = outbox::unpublished(&ctx.store, config.batch_size, up_to).await?;
    if let Ok(backlog) = i64::try_from(batch.len()) {
        metrics::gauge!(telemetry::RELAY_OUTBOX_BACKLOG).set(backlog as f64);
    }
    if batch.is_empty() {
        return Ok(0);
    }
    // Sends are queued in seq order, so rows of one order keep their order on its partition.
    let results = futures::future::join_all(batch.iter().map(|row| publisher.publish(&row.event))).await;
    // Only the prefix before the first failure counts: a later row of the same order
    // must not be marked while an earlier one is still to be sent.
    let acknowledged: Vec<i64> =
        batch.iter().zip(&results).take_while(|(_, r)| r.is_ok()).map(|(row, _)| row.seq).collect();
    for _ in &acknowledged {
        status.published(None);
    }
    metrics::counter!(telemetry::RELAY_EVENTS_PUBLISHED, "mode" => "polling").increment(acknowledged.len() as u64);
    let delete = config.after_publish == AfterPublish::Delete;
    outbox::acknowledge(&ctx.store, &acknowledged, delete, now_ms()).await?;
    if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
        metrics::counter!(telemetry::RELAY_PUBLISH_ERRORS).increment(1);
        return Err(RelayError::Transport(e));
    }
    Ok(acknowledged.len())
}
