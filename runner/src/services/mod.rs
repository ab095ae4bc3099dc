//! The parts a pipeline can run: the order API, the outbox relay, handler consumers
//! (workers) and the saga orchestrator. Each takes a [`ServiceContext`].

pub mod order_api;
pub mod relay;
pub mod worker;

use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store::Store;
use crate::transport::Broker;

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
