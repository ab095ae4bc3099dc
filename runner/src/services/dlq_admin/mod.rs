//! dlq-admin: follows every dead-letter topic into the `dead_letters` table (each record
//! once, with a state — new, replayed, discarded — and a history) and serves `/api/dlq`:
//! browse and filter entries, replay one or many to their original topic (optionally with
//! an edited, schema-checked payload, rate-limited, with a dry run), discard, and the audit
//! trail. Every endpoint that changes something needs an admin token ([`crate::admin`]).
//!
//! A replayed record carries `dlq_replay_count`, which consumers keep when they dead-letter
//! it again; an entry at `max_replays` is refused, so a message cannot loop forever.
//!
//! Where each job is:
//! - `ingest.rs`: following the dead-letter topics into the database ([`run`]);
//! - `entry.rs`: one dead letter (`Entry`): built from a record, what may be done with it,
//!   and how the API shows it;
//! - `filter.rs`: which entries a list or bulk request means, checked, and as SQL conditions;
//! - `queries.rs`: every SQL statement of dlq-admin, rows read by column name;
//! - `routes.rs`: the HTTP handlers of single entries, topics and the audit trail;
//! - `actions.rs`: replaying one entry (sending it back to its original topic, then
//!   recording it) and discarding one, each with its history and audit lines;
//! - `bulk.rs`: bulk replay (paced, with a dry run) and bulk discard.

mod actions;
mod bulk;
mod entry;
mod filter;
mod ingest;
mod queries;
mod routes;

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;

use super::ServiceContext;
use crate::admin::AdminConfig;
use crate::admin::AdminTokens;
use crate::http::{BodyRules, Routes};
use crate::schemas::SchemaRegistry;
use crate::transport::{Publisher, TransportError};

pub use ingest::run;

/// `[dlq_admin]`, compiled.
#[derive(Debug, Clone)]
pub struct DlqAdminConfig {
    pub topics: String,
    pub group: String,
    pub max_replays: u32,
    pub replay_rate: u32,
    pub max_bulk: u32,
}

/// Where the routes of dlq-admin are mounted.
pub const PREFIX: &str = "/api/dlq";

/// The states of an entry.
const STATES: [&str; 3] = ["new", "replayed", "discarded"];
/// The largest page of `GET /entries` and `GET /audit`.
const MAX_PAGE: u32 = 500;
/// How long a replay waits for the broker's acknowledgement before answering 503.
const PUBLISH_TIMEOUT: Duration = crate::transport::BOUNDED_PUBLISH_TIMEOUT;

/// What every handler of dlq-admin shares.
#[derive(Clone)]
struct AppState {
    ctx: ServiceContext,
    config: DlqAdminConfig,
    schemas: Arc<SchemaRegistry>,
    publisher: Publisher,
}

/// The router, with paths relative to [`PREFIX`]. Reads are open; every change needs a
/// token from `admin` (see [`crate::admin`]).
pub fn router(
    ctx: ServiceContext,
    config: DlqAdminConfig,
    admin: &AdminConfig,
    schemas: Arc<SchemaRegistry>,
) -> Result<Routes, TransportError> {
    // A replay fails definitely after 10 s rather than lingering in the producer queue and
    // arriving after the operator was told it failed.
    let publisher = ctx.broker.bounded_publisher()?;
    let routes = Routes::new()
        .get("/topics", routes::topics)
        .get("/entries", routes::list)
        .get("/entries/{id}", routes::show)
        .admin_post("/entries/{id}/replay", routes::replay_one)
        .admin_post("/entries/{id}/discard", routes::discard_one)
        .admin_post("/replay", bulk::replay_bulk)
        .admin_post("/discard", bulk::discard_bulk)
        .get("/audit", routes::audit_list)
        .with_state(AppState { ctx, config, schemas, publisher });
    Ok(routes.map(|routes| BodyRules::DEFAULT.apply(routes.layer(Extension(AdminTokens::new(admin))))))
}
