//! Deliberately broken variants of the system's code, to show that the simulation catches
//! the bugs it is meant to catch (`runner simulate --mutant NAME`). Never used otherwise.

use serde_json::json;

use crate::event::Event;
use crate::handlers::{HandlerError, Outcome};
use crate::order::OrderPayload;
use crate::services::worker::ConsumerConfig;
use crate::services::{store_error, OutboxWriter};
use crate::store::Tx;
use crate::transport::dead_letter::ErrorKind;
use crate::transport::HandleError;

/// A broken variant of the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutant {
    /// payment-svc's charge forgets its inbox check and its own look at the order's payment:
    /// every delivery of a charge request charges again.
    ChargeWithoutChecks,
    /// Every worker forgets its inbox (no check, no record); the handlers still look at
    /// their own rows, which keeps them idempotent: no invariant should break.
    InboxSkipped,
}

impl Mutant {
    pub const ALL: [Mutant; 2] = [Mutant::ChargeWithoutChecks, Mutant::InboxSkipped];

    pub fn name(self) -> &'static str {
        match self {
            Mutant::ChargeWithoutChecks => "charge-without-checks",
            Mutant::InboxSkipped => "inbox-skipped",
        }
    }

    pub fn parse(name: &str) -> Result<Mutant, String> {
        Mutant::ALL.into_iter().find(|m| m.name() == name.trim()).ok_or_else(|| {
            let names: Vec<&str> = Mutant::ALL.iter().map(|m| m.name()).collect();
            format!("unknown mutant: the broken variants are {}", names.join(", "))
        })
    }
}

fn reply(writer: &OutboxWriter, request: &Event, event_type: &str, payload: serde_json::Value) -> Event {
    Event::new(event_type, &request.key, &writer.service, payload, None)
}

/// [`Mutant::ChargeWithoutChecks`]: adds the total to the order's payment on every delivery.
pub async fn charge_without_checks(
    tx: &mut Tx,
    writer: &OutboxWriter,
    config: &ConsumerConfig,
    request: &Event,
    now: i64,
) -> Result<Option<bool>, HandleError> {
    let order: OrderPayload = serde_json::from_value(request.payload.clone())
        .map_err(|e| HandleError::new(ErrorKind::Rejected, format!("not an order: {e}")))?;
    sqlx::query(
        "INSERT INTO payments (order_id, customer_id, amount, currency, status, charged_at_ms) \
         VALUES ($1, $2, $3, $4, 'charged', $5) \
         ON CONFLICT (order_id) DO UPDATE SET amount = payments.amount + excluded.amount",
    )
    .bind(&order.order_id)
    .bind(&order.customer_id)
    .bind(order.total)
    .bind(&order.currency)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(|e| store_error(e.into()))?;
    let payload = json!({ "orderId": order.order_id, "amount": order.total, "currency": order.currency });
    writer.emit(tx, &reply(writer, request, &config.on_success, payload)).await?;
    Ok(Some(true))
}

/// [`Mutant::InboxSkipped`]: the handler and its reply, with no inbox check or record.
pub async fn handle_without_inbox(
    tx: &mut Tx,
    writer: &OutboxWriter,
    config: &ConsumerConfig,
    request: &Event,
    now: i64,
) -> Result<Option<bool>, HandleError> {
    let outcome = match config.handler.handle(tx, &request.payload, now).await {
        Ok(outcome) => outcome,
        Err(HandlerError::Invalid(reason)) => return Err(HandleError::new(ErrorKind::Rejected, reason)),
        Err(HandlerError::Failed(reason)) => return Err(HandleError::new(ErrorKind::HandlerFailed, reason)),
        Err(HandlerError::Store(e)) => return Err(store_error(e)),
    };
    let (event_type, payload, succeeded) = match outcome {
        Outcome::Success(payload) => (Some(config.on_success.as_str()), payload, true),
        Outcome::Failure(payload) => (config.on_failure.as_deref(), payload, false),
    };
    if let Some(event_type) = event_type {
        writer.emit(tx, &reply(writer, request, event_type, payload)).await?;
    }
    Ok(Some(succeeded))
}
