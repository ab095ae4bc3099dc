//! The parts a pipeline can run: the order API, the outbox relay, handler consumers
//! (workers) and the saga orchestrator. Each takes a [`ServiceContext`].

pub mod order_api;
pub mod relay;
pub mod worker;

use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store::{is_transient, Store, StoreError};
use crate::transport::{Broker, HandleError};

/// What every part of a running service shares.
#[derive(Clone)]
pub struct ServiceContext {
    pub service: String,
    pub store: Store,
    pub broker: Broker,
    pub shutdown: CancellationToken,
    /// Woken after an outbox write commits, so an in-process relay publishes at once.
    pub outbox_written: Arc<Notify>,
}

/// A database failure while handling a message: retried when it may pass, otherwise permanent.
pub fn store_error(e: StoreError) -> HandleError {
    if is_transient(&e) {
        HandleError::Transient(e.to_string())
    } else {
        HandleError::Permanent(e.to_string())
    }
}
