//! `runner simulate`: the whole system under one seed on a virtual clock. The services'
//! own transaction code runs on a real SQLite database in memory; the broker, the clock and
//! every fault are simulated and drawn from the seed, so one seed is one exact interleaving:
//! deliveries reordered across keys, duplicates, losses recovered by the saga's timeouts,
//! crashes and restarts between any two steps, an unavailable database. After each run the
//! invariants are checked ([`invariants`]); a broken one is shrunk ([`shrink`]) to the
//! fewest orders and faults that still break it, printed with the command that replays it.

mod broker;
mod faults;
mod invariants;
mod mutant;
mod rng;
mod shrink;
mod world;

use std::collections::BTreeSet;
use std::sync::Arc;

pub use faults::{id_text, parse_id, FaultKind, Faults};
pub use invariants::Violation;
pub use mutant::Mutant;
pub use shrink::shrink;

use crate::config::Pipeline;
use crate::saga::SagaConfig;
use crate::schemas::SchemaRegistry;
use crate::services::relay::RelayConfig;
use crate::services::worker::ConsumerConfig;

/// Orders per run at most: a run is meant to be small and fast, and many of them.
pub const MAX_ORDERS: u32 = 1_000;

/// One service's part of the simulated system.
#[derive(Clone)]
pub struct Part<T> {
    pub service: String,
    pub schemas: Arc<SchemaRegistry>,
    pub config: T,
}

/// The system to simulate, taken from its compiled pipelines.
#[derive(Clone)]
pub struct System {
    pub order_api: Part<crate::services::order_api::OrderApiConfig>,
    pub relay: Part<RelayConfig>,
    pub saga: Part<SagaConfig>,
    pub workers: Vec<Part<ConsumerConfig>>,
    /// Every pipeline's own `[[chaos.rules]]`: the faults the files declare strike in the
    /// simulation too (those with a `probability`; per-second budgets are not simulated).
    pub rules: Vec<crate::chaos::Rule>,
}

impl System {
    /// The parts of `pipelines` that carry orders: order-api, the relay, the saga and every
    /// handler consumer. Each of the first three must be there exactly once.
    pub fn from_pipelines(pipelines: &[&Pipeline]) -> Result<System, String> {
        fn one<'p, T: Clone + 'p>(
            pipelines: &[&'p Pipeline],
            what: &str,
            get: impl Fn(&'p Pipeline) -> Option<&'p T>,
        ) -> Result<Part<T>, String> {
            let found: Vec<&&Pipeline> = pipelines.iter().filter(|p| get(p).is_some()).collect();
            match found.as_slice() {
                [p] => Ok(Part {
                    service: p.service.clone(),
                    schemas: p.schemas.clone(),
                    config: get(p).expect("filtered").clone(),
                }),
                [] => Err(format!("no pipeline has {what}: the simulation needs the whole system")),
                many => Err(format!(
                    "{} pipelines have {what} ({}): give the files of one system",
                    many.len(),
                    many.iter().map(|p| p.service.as_str()).collect::<Vec<_>>().join(", ")
                )),
            }
        }
        let workers = pipelines
            .iter()
            .flat_map(|p| {
                p.consumers.iter().map(|c| Part {
                    service: p.service.clone(),
                    schemas: p.schemas.clone(),
                    config: c.clone(),
                })
            })
            .collect();
        Ok(System {
            order_api: one(pipelines, "an [order_api]", |p| p.order_api.as_ref())?,
            relay: one(pipelines, "a [relay]", |p| p.relay.as_ref())?,
            saga: one(pipelines, "a [saga]", |p| p.saga.as_ref())?,
            workers,
            rules: pipelines.iter().flat_map(|p| p.chaos.rules.iter().cloned()).collect(),
        })
    }
}

/// What one run is: the seed, the orders, the faults, and optionally a broken variant.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub seed: u64,
    pub orders: u32,
    /// The seed's first orders left out (set by shrinking; `--skip-orders`).
    pub skip_orders: u32,
    pub faults: Faults,
    /// Only the faults of these ids may strike (set by shrinking; `--keep-faults`).
    pub keep: Option<BTreeSet<u64>>,
    pub mutant: Option<Mutant>,
}

impl Scenario {
    /// The command that replays this run with its trace.
    pub fn command(&self) -> String {
        let mut command =
            format!("runner simulate --seed {} --orders {} --faults {} --trace", self.seed, self.orders, self.faults);
        if self.skip_orders > 0 {
            command.push_str(&format!(" --skip-orders {}", self.skip_orders));
        }
        if let Some(keep) = self.keep.as_ref().filter(|_| !self.faults.kinds().is_empty()) {
            let numbers: Vec<String> = keep.iter().map(|id| faults::id_text(*id)).collect();
            command.push_str(&format!(
                " --keep-faults {}",
                if numbers.is_empty() { "none".into() } else { numbers.join(",") }
            ));
        }
        if let Some(mutant) = self.mutant {
            command.push_str(&format!(" --mutant {}", mutant.name()));
        }
        command
    }
}

/// Figures of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub actions: u64,
    pub published: u64,
    pub deliveries: u64,
    pub duplicates: u64,
    pub dead_letters: u64,
    pub crashes: u64,
    /// The ids of the faults that struck, in order.
    pub faults: Vec<u64>,
    pub virtual_ms: i64,
    /// Orders by final status (`COMPLETED`, …, `PENDING` when one never ended).
    pub statuses: std::collections::BTreeMap<String, u64>,
    /// The run hit its time or action limit.
    pub cut_short: bool,
}

/// The result of one run.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub scenario: Scenario,
    pub trace: Vec<String>,
    pub violations: Vec<Violation>,
    pub stats: Stats,
}

impl Outcome {
    pub fn held(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Runs one scenario. An error means the harness itself failed (the in-memory database),
/// not the system under test.
pub async fn run(system: &System, scenario: &Scenario) -> Result<Outcome, String> {
    let failed = |e: crate::store::StoreError| format!("the simulated database failed: {e}");
    let mut world = world::World::new(system, scenario).await.map_err(failed)?;
    world.run().await.map_err(failed)?;
    let names = |id: &str| world.order_name(id);
    let definition = &system.saga.config.definition;
    let (violations, statuses) =
        invariants::check(world.store(), world.broker(), definition, &world.orders, &names).await.map_err(failed)?;
    let mut stats = world.stats.clone();
    stats.statuses = statuses;
    world.store().close().await;
    Ok(Outcome { scenario: scenario.clone(), trace: std::mem::take(&mut world.trace), violations, stats })
}
