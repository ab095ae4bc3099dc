//! Every compiled handler, in one list. A pipeline's `[[consumers]]` names one of them and
//! gives its parameters, which are checked against the handler's own types at compile time.
//!
//! A handler runs inside the consumer's transaction: its effect, the inbox record and the
//! reply in the outbox commit together or not at all.

mod inventory;
mod payment;
mod shipping;

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::diagnostic::{KeyPath, Problem, Segment};
use crate::order::OrderPayload;
use crate::store::effects::EffectTable;
use crate::store::{Store, StoreError, Tx};

type Params = BTreeMap<String, Value>;

/// A handler with its parameters, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub enum Handler {
    PaymentCharge(payment::ChargeParams),
    PaymentRefund,
    InventoryReserve(inventory::ReserveParams),
    InventoryRelease,
    ShippingSchedule(shipping::ScheduleParams),
    ShippingCancel,
}

impl Handler {
    /// The name the handler is registered under.
    pub fn name(&self) -> &'static str {
        match self {
            Handler::PaymentCharge(_) => "payment.charge",
            Handler::PaymentRefund => "payment.refund",
            Handler::InventoryReserve(_) => "inventory.reserve",
            Handler::InventoryRelease => "inventory.release",
            Handler::ShippingSchedule(_) => "shipping.schedule",
            Handler::ShippingCancel => "shipping.cancel",
        }
    }

    /// The table whose row per order makes the handler idempotent (read ahead by its group).
    pub fn effect_table(&self) -> EffectTable {
        match self {
            Handler::PaymentCharge(_) | Handler::PaymentRefund => EffectTable::Payments,
            Handler::InventoryReserve(_) | Handler::InventoryRelease => EffectTable::Reservations,
            Handler::ShippingSchedule(_) | Handler::ShippingCancel => EffectTable::Shipments,
        }
    }
}

pub struct HandlerInfo {
    pub name: &'static str,
    pub summary: &'static str,
    build: fn(&Params) -> Result<Handler, Vec<Problem>>,
}

/// The registry: every handler a pipeline can name.
pub const HANDLERS: &[HandlerInfo] = &[
    HandlerInfo {
        name: "payment.charge",
        summary: "charges the order total; declines above `decline_above` or for customers starting with `blocked_customer_prefix`",
        build: |p| Ok(Handler::PaymentCharge(params(p)?)),
    },
    HandlerInfo {
        name: "payment.refund",
        summary: "refunds the order's charge (a refund before any charge voids the order's payment)",
        build: |p| no_params(p).map(|_| Handler::PaymentRefund),
    },
    HandlerInfo {
        name: "inventory.reserve",
        summary: "reserves every item's quantity; fails for an unknown SKU or too little stock; `seed` stocks SKUs at start-up",
        build: |p| Ok(Handler::InventoryReserve(params(p)?)),
    },
    HandlerInfo {
        name: "inventory.release",
        summary: "returns the order's reserved units to stock",
        build: |p| no_params(p).map(|_| Handler::InventoryRelease),
    },
    HandlerInfo {
        name: "shipping.schedule",
        summary: "schedules the shipment; refuses destinations listed in `refuse_countries`",
        build: |p| Ok(Handler::ShippingSchedule(params(p)?)),
    },
    HandlerInfo {
        name: "shipping.cancel",
        summary: "cancels the order's shipment",
        build: |p| no_params(p).map(|_| Handler::ShippingCancel),
    },
];

#[derive(Debug)]
pub enum BuildError {
    UnknownHandler {
        known: Vec<&'static str>,
    },
    /// Parameter problems, by path relative to `params`.
    Params(Vec<Problem>),
}

/// Builds the named handler with its parameters.
pub fn build(name: &str, params: &Params) -> Result<Handler, BuildError> {
    let info = HANDLERS
        .iter()
        .find(|h| h.name == name)
        .ok_or_else(|| BuildError::UnknownHandler { known: HANDLERS.iter().map(|h| h.name).collect() })?;
    (info.build)(params).map_err(BuildError::Params)
}

fn params<T: DeserializeOwned>(params: &Params) -> Result<T, Vec<Problem>> {
    let value = Value::Object(params.clone().into_iter().collect());
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let mut path = KeyPath::root();
        for segment in e.path().iter() {
            match segment {
                serde_path_to_error::Segment::Map { key } => path.0.push(Segment::Key(key.clone())),
                serde_path_to_error::Segment::Seq { index } => path.0.push(Segment::Index(*index)),
                _ => {}
            }
        }
        let message = format!("invalid handler parameter: {}", e.inner());
        // An unknown parameter: the path already ends at it; point at the key, not its value.
        if e.inner().to_string().starts_with("unknown field `") {
            vec![Problem::at_key(path, message)]
        } else {
            vec![Problem::at_value(path, message)]
        }
    })
}

fn no_params(params: &Params) -> Result<(), Vec<Problem>> {
    if params.is_empty() {
        return Ok(());
    }
    // Every key is reported, at the key itself, so one run lists all there is to remove.
    Err(params
        .keys()
        .map(|key| {
            Problem::at_key(KeyPath::root().key(key), format!("this handler takes no parameters; remove `{key}`"))
        })
        .collect())
}

/// What a handler answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Done: the reply goes to the consumer's `on_success` type.
    Success(Value),
    /// Refused, with no effect: the reply goes to `on_failure`.
    Failure(Value),
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The request itself is wrong; retrying cannot help.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The handler could not do its work now (a downstream outage); worth retrying.
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Handler {
    /// One-time set-up at start-up (seeding stock).
    pub async fn prepare(&self, store: &Store) -> Result<(), StoreError> {
        match self {
            Handler::InventoryReserve(params) => inventory::seed(store, params).await,
            _ => Ok(()),
        }
    }

    /// Runs the handler on one request inside `tx`.
    pub async fn handle(&self, tx: &mut Tx, request: &Value, now_ms: i64) -> Result<Outcome, HandlerError> {
        let order: OrderPayload = serde_json::from_value(request.clone())
            .map_err(|e| HandlerError::Invalid(format!("payload is not an order: {e}")))?;
        match self {
            Handler::PaymentCharge(params) => payment::charge(tx, params, &order, now_ms).await,
            Handler::PaymentRefund => payment::refund(tx, &order, now_ms).await,
            Handler::InventoryReserve(_) => inventory::reserve(tx, &order, now_ms).await,
            Handler::InventoryRelease => inventory::release(tx, &order, now_ms).await,
            Handler::ShippingSchedule(params) => shipping::schedule(tx, params, &order, now_ms).await,
            Handler::ShippingCancel => shipping::cancel(tx, &order, now_ms).await,
        }
    }
}

/// A failure reply with its reason.
fn refused(order: &OrderPayload, reason: impl Into<String>) -> Outcome {
    Outcome::Failure(serde_json::json!({ "orderId": order.order_id, "reason": reason.into() }))
}

impl From<sqlx::Error> for HandlerError {
    fn from(error: sqlx::Error) -> Self {
        HandlerError::Store(StoreError::Database(error))
    }
}
