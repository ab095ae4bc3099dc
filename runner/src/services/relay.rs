//! The outbox relay, polling mode: reads unpublished rows in insertion order, publishes each
//! to the topic named by its type, and marks a row published only after the broker's ack.

use std::time::Duration;

use crate::config::model::{AfterPublish, RelayConfig};
use crate::event::now_ms;
use crate::store::outbox;
use crate::transport::TransportError;

use super::ServiceContext;

pub async fn run(ctx: ServiceContext, config: RelayConfig) -> Result<(), TransportError> {
    let publisher = ctx.broker.publisher()?;
    tracing::info!(service = ctx.service, "outbox relay started (polling)");
    let mut failures = 0u32;
    while !ctx.shutdown.is_cancelled() {
        let batch = match outbox::unpublished(&ctx.store, config.batch_size).await {
            Ok(batch) => batch,
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, "relay cannot read the outbox; retrying");
                pause(&ctx, backoff(failures)).await;
                continue;
            }
        };
        if batch.is_empty() {
            failures = 0;
            tokio::select! {
                _ = ctx.shutdown.cancelled() => {}
                _ = ctx.outbox_written.notified() => {}
                _ = tokio::time::sleep(config.poll_interval) => {}
            }
            continue;
        }
        // Sends are queued in seq order, so rows of one order keep their order on its partition.
        let results = futures::future::join_all(batch.iter().map(|row| publisher.publish(&row.event))).await;
        // Only the prefix before the first failure counts: a later row of the same order
        // must not be marked while an earlier one is still to be sent.
        let acknowledged: Vec<i64> =
            batch.iter().zip(&results).take_while(|(_, r)| r.is_ok()).map(|(row, _)| row.seq).collect();
        if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
            failures += 1;
            tracing::warn!(error = %e, published = acknowledged.len(), "relay publish failed; will resend the rest");
        } else {
            failures = 0;
        }
        let delete = config.after_publish == AfterPublish::Delete;
        if let Err(e) = outbox::acknowledge(&ctx.store, &acknowledged, delete, now_ms()).await {
            // The rows will be published again: at-least-once, never lost.
            tracing::warn!(error = %e, "relay cannot mark rows published; they will be sent again");
        }
        if failures > 0 {
            pause(&ctx, backoff(failures)).await;
        }
    }
    publisher.flush(Duration::from_secs(5));
    tracing::info!(service = ctx.service, "outbox relay stopped");
    Ok(())
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << failures.min(6))).min(Duration::from_secs(5))
}

async fn pause(ctx: &ServiceContext, delay: Duration) {
    tokio::select! {
        _ = ctx.shutdown.cancelled() => {}
        _ = tokio::time::sleep(delay) => {}
    }
}
