//! One simulated run: the system's services as state in one loop over a queue of timed
//! actions on a virtual clock. The database is a real SQLite database in memory, written
//! by the services' own transaction code (`worker::handle_in`, `orchestrator::transition_in`
//! and `tick_in`, the outbox and inbox); the broker is [`super::broker`]. Faults strike at
//! numbered draws ([`super::faults`]); a crash loses what a service holds in memory (its
//! fetch positions, handled-but-uncommitted offsets, unacknowledged outbox rows) and keeps
//! what it committed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::json;

use super::broker::{Body, Broker, Position, Record};
use super::faults::{id_text, FaultDraws, FaultKind, Strike};
use super::rng::Rng;
use super::{mutant, Mutant, Scenario, Stats, System};
use crate::chaos::{in_key_sample, Chance, Fault, Point};
use crate::event::Event;
use crate::handlers::Handler;
use crate::order::{Item, OrderPayload, ShipTo};
use crate::saga::machine::Command;
use crate::services::orchestrator::{self, Arrival, Orchestrator};
use crate::services::worker::ConsumerConfig;
use crate::services::{store_error, worker, OutboxWriter};
use crate::store::{orders, outbox, sagas, Store, StoreConfig, StoreError};
use crate::transport::dead_letter::ErrorKind;
use crate::transport::{DeliveryRetry, HandleError};

/// Where virtual time starts: 0, so a trace's times (and the saga's deadlines in it) read as
/// seconds since the run began.
const EPOCH_MS: i64 = 0;
/// How long after the last order the run may go on before unfinished orders count as stuck.
const MAX_RUN_MS: i64 = 30 * 60 * 1000;
/// Actions at most per run: a loop that never settles ends and is reported.
const MAX_ACTIONS: u64 = 2_000_000;
/// How often a consumer commits the offsets it finished (as the consume loop does).
const COMMIT_EVERY_MS: i64 = 200;

/// Something that happens at a point of virtual time.
#[derive(Debug)]
enum Action {
    Post(usize),
    RelayPoll { epoch: u32 },
    RelayAck { epoch: u32, seqs: Vec<i64> },
    Fetch { group: usize, epoch: u32 },
    Handle { group: usize, at: Position, attempt: u32, epoch: u32, extra: bool },
    CommitOffsets { group: usize, epoch: u32 },
    Tick { epoch: u32 },
    Restart { service: usize },
}

impl Action {
    /// Whether the run waits for it before it may end (ticks and offset commits go on forever).
    fn is_work(&self) -> bool {
        !matches!(self, Action::Tick { .. } | Action::CommitOffsets { .. })
    }
}

/// One service of the system: up or down, and its incarnation (actions of an earlier one
/// are ignored when they come due).
struct Service {
    name: String,
    up: bool,
    epoch: u32,
    writer: OutboxWriter,
}

/// What a consumer group runs for each message.
enum Handles {
    Worker(Box<ConsumerConfig>),
    Saga,
}

/// A consumer group and the one consumer instance of its service.
struct Group {
    label: String,
    group: String,
    service: usize,
    handles: Handles,
    topics: Vec<String>,
    max_in_flight: usize,
    retry: DeliveryRetry,
    dead_letter_topic: Option<String>,
    inbox: String,
    /// In-memory state per topic and partition, lost by a crash.
    parts: BTreeMap<(String, usize), Part>,
    running: usize,
    fetch_queued: bool,
    commit_queued: bool,
}

/// A consumer's place in one partition.
#[derive(Default)]
struct Part {
    next: usize,
    done: BTreeSet<usize>,
    busy: BTreeSet<String>,
    /// Records taken while their key was busy, in offset order.
    parked: Vec<(usize, String)>,
}

struct Relay {
    service: usize,
    batch: u32,
    delete: bool,
    /// Rows published and not yet acknowledged (lost by a crash: they go out again).
    pending: BTreeSet<i64>,
    poll_queued: bool,
}

pub struct World<'a> {
    system: &'a System,
    scenario: &'a Scenario,
    now: i64,
    queue: BTreeMap<(i64, u64), Action>,
    queued: u64,
    work: usize,
    schedule: Rng,
    faults: FaultDraws,
    store: Store,
    broker: Broker,
    services: Vec<Service>,
    groups: Vec<Group>,
    relay: Relay,
    orchestrator: Orchestrator,
    saga_service: usize,
    order_api: usize,
    pub orders: Vec<String>,
    /// Each order's index in the seed's list of orders (`o1` is index 0).
    names: BTreeMap<String, usize>,
    pub trace: Vec<String>,
    pub stats: Stats,
}

impl<'a> World<'a> {
    /// A fresh system: an empty database in memory (migrated, stock seeded), every service up.
    pub async fn new(system: &'a System, scenario: &'a Scenario) -> Result<World<'a>, StoreError> {
        let config = StoreConfig::for_url("sqlite::memory:", 1).expect("an SQLite URL");
        let store = Store::connect(&config).await?;
        let mut services: Vec<Service> = Vec::new();
        let mut service_index = |name: &str, schemas: &Arc<crate::schemas::SchemaRegistry>| {
            if let Some(i) = services.iter().position(|s| s.name == name) {
                return i;
            }
            let writer = OutboxWriter { service: name.to_string(), schemas: schemas.clone(), dialect: store.dialect() };
            services.push(Service { name: name.to_string(), up: true, epoch: 0, writer });
            services.len() - 1
        };
        let order_api = service_index(&system.order_api.service, &system.order_api.schemas);
        let relay_service = service_index(&system.relay.service, &system.relay.schemas);
        let saga_service = service_index(&system.saga.service, &system.saga.schemas);
        let mut groups = Vec::new();
        let saga = &system.saga.config;
        groups.push(Group {
            label: format!("{}/saga-{}", system.saga.service, saga.definition.name),
            group: saga.group.clone(),
            service: saga_service,
            handles: Handles::Saga,
            topics: saga.subscriptions(),
            max_in_flight: saga.max_in_flight.max(1),
            retry: DeliveryRetry::default(),
            // As the consume loop does for a consumer with none set: `<topic>.dlq`.
            dead_letter_topic: None,
            inbox: format!("{}/saga-{}", system.saga.service, saga.definition.name),
            parts: BTreeMap::new(),
            running: 0,
            fetch_queued: false,
            commit_queued: false,
        });
        for worker in &system.workers {
            let service = service_index(&worker.service, &worker.schemas);
            let consumer = &worker.config;
            consumer.handler.prepare(&store).await?;
            groups.push(Group {
                label: format!("{}/{}", worker.service, consumer.name),
                group: consumer.group.clone(),
                service,
                topics: vec![consumer.topic.clone()],
                max_in_flight: consumer.max_in_flight.max(1),
                retry: consumer.retry.clone(),
                dead_letter_topic: Some(consumer.dead_letter_topic.clone()),
                inbox: format!("{}/{}", worker.service, consumer.name),
                handles: Handles::Worker(Box::new(consumer.clone())),
                parts: BTreeMap::new(),
                running: 0,
                fetch_queued: false,
                commit_queued: false,
            });
        }
        let orchestrator = Orchestrator::new(system.saga.config.clone(), None);
        // As the orchestrator does when it starts.
        orchestrator.versions.keep(&store, EPOCH_MS).await?;
        let relay = Relay {
            service: relay_service,
            batch: system.relay.config.batch_size.max(1),
            delete: system.relay.config.after_publish == crate::services::relay::AfterPublish::Delete,
            pending: BTreeSet::new(),
            poll_queued: false,
        };
        Ok(World {
            system,
            scenario,
            now: EPOCH_MS,
            queue: BTreeMap::new(),
            queued: 0,
            work: 0,
            schedule: Rng::new(scenario.seed, 1),
            faults: FaultDraws::new(scenario.seed, scenario.faults, scenario.keep.clone()),
            store,
            broker: Broker::default(),
            services,
            groups,
            relay,
            orchestrator,
            saga_service,
            order_api,
            orders: Vec::new(),
            names: BTreeMap::new(),
            trace: Vec::new(),
            stats: Stats::default(),
        })
    }

    /// Runs the scenario until every order has ended and nothing is left to deliver (or the
    /// time or action limit is reached); the invariants are checked by the caller.
    pub async fn run(&mut self) -> Result<(), StoreError> {
        let mut at = self.now;
        let first = self.scenario.skip_orders as usize;
        for i in first..first + self.scenario.orders as usize {
            at += self.schedule.between(0, 40);
            self.at(at, Action::Post(i));
        }
        let last_order = at;
        let epoch = self.services[self.saga_service].epoch;
        self.after(self.tick_ms(), Action::Tick { epoch });
        let mut actions = 0u64;
        while let Some(((when, _), action)) = self.queue.pop_first() {
            if when > last_order + MAX_RUN_MS || actions >= MAX_ACTIONS {
                self.at(when, action);
                break;
            }
            self.now = when;
            let ticked = matches!(action, Action::Tick { .. });
            if action.is_work() {
                self.work -= 1;
            }
            self.act(action).await?;
            actions += 1;
            if ticked && self.work == 0 && self.now > last_order && self.unfinished().await? == 0 {
                break;
            }
        }
        if self.queue.values().any(Action::is_work) {
            self.stats.cut_short = true;
        }
        self.stats.actions = actions;
        self.stats.virtual_ms = self.now - EPOCH_MS;
        self.stats.faults = self.faults.struck.clone();
        Ok(())
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    fn tick_ms(&self) -> i64 {
        i64::try_from(self.system.saga.config.tick.as_millis()).unwrap_or(1000).max(1)
    }

    async fn unfinished(&self) -> Result<i64, StoreError> {
        use sqlx::Row;
        let row =
            sqlx::query("SELECT COUNT(*) FROM orders WHERE status = 'PENDING'").fetch_one(self.store.pool()).await?;
        Ok(row.try_get(0)?)
    }

    fn at(&mut self, when: i64, action: Action) {
        if action.is_work() {
            self.work += 1;
        }
        self.queued += 1;
        self.queue.insert((when, self.queued), action);
    }

    fn after(&mut self, delay_ms: i64, action: Action) {
        self.at(self.now + delay_ms.max(0), action);
    }

    fn note(&mut self, who: &str, what: String) {
        let t = (self.now - EPOCH_MS) as f64 / 1000.0;
        self.trace.push(format!("{t:>9.3}s  {who:<24} {what}"));
    }

    /// The short name of an order in the trace: `o3`.
    pub fn order_name(&self, key: &str) -> String {
        self.names.get(key).map_or_else(|| key.to_string(), |i| format!("o{}", i + 1))
    }

    fn current(&self, service: usize, epoch: u32) -> bool {
        let s = &self.services[service];
        s.up && s.epoch == epoch
    }

    async fn act(&mut self, action: Action) -> Result<(), StoreError> {
        match action {
            Action::Post(i) => self.post(i).await,
            Action::RelayPoll { epoch } => self.relay_poll(epoch).await,
            Action::RelayAck { epoch, seqs } => {
                if self.current(self.relay.service, epoch) {
                    outbox::acknowledge(&self.store, &seqs, self.relay.delete, self.now).await?;
                    for seq in seqs {
                        self.relay.pending.remove(&seq);
                    }
                }
                Ok(())
            }
            Action::Fetch { group, epoch } => {
                self.groups[group].fetch_queued = false;
                if self.current(self.groups[group].service, epoch) {
                    self.fetch(group);
                }
                Ok(())
            }
            Action::Handle { group, at, attempt, epoch, extra } => {
                if self.current(self.groups[group].service, epoch) {
                    self.handle(group, at, attempt, extra).await?;
                }
                Ok(())
            }
            Action::CommitOffsets { group, epoch } => {
                self.groups[group].commit_queued = false;
                if self.current(self.groups[group].service, epoch) {
                    self.commit_offsets(group);
                }
                Ok(())
            }
            Action::Tick { epoch } => {
                if self.current(self.saga_service, epoch) {
                    self.tick().await?;
                    // With nothing else to happen, time jumps to the next saga that is due
                    // (on the tick's grid); with none due, the ticks stop and the run ends.
                    let mut next = Some(self.now + self.tick_ms());
                    if self.work == 0 {
                        let name = &self.system.saga.config.definition.name;
                        let wake = sagas::next_wake(&self.store, name).await?;
                        let tick = self.tick_ms();
                        next = wake.map(|at| self.now + tick * ((at - self.now).max(tick) + tick - 1).div_euclid(tick));
                    }
                    if let Some(at) = next {
                        self.at(at, Action::Tick { epoch });
                    }
                }
                Ok(())
            }
            Action::Restart { service } => {
                self.restart(service);
                Ok(())
            }
        }
    }

    /// order-api accepts order `i`: the order row and its created event in one transaction,
    /// as `POST /api/orders` writes them.
    async fn post(&mut self, i: usize) -> Result<(), StoreError> {
        let payload = self.draw_order(i);
        let name = format!("o{}", i + 1);
        let item = &payload.items[0];
        let detail = format!(
            "{}: {} × {} to {}, total {}",
            payload.customer_id, item.quantity, item.sku, payload.ship_to.country, payload.total
        );
        self.orders.push(payload.order_id.clone());
        self.names.insert(payload.order_id.clone(), i);
        let writer = self.services[self.order_api].writer.clone();
        let event = Event::new(
            &self.system.order_api.config.created_event,
            &payload.order_id,
            &writer.service,
            json!(payload),
            None,
        );
        let mut tx = self.store.begin().await?;
        orders::insert(&mut tx, &payload, self.now);
        writer.emit(&mut tx, &event).await.map_err(|e| StoreError::Corrupt(e.message))?;
        tx.commit().await?;
        self.note(&writer.service, format!("accepted {name} ({detail})"));
        self.wake_relay();
        Ok(())
    }

    /// The seed's order `i` (the same whatever orders are left out): most go through; some
    /// are declined (over the limit or a blocked customer), ask for a SKU nobody stocks, or
    /// ship where shipping refuses.
    fn draw_order(&mut self, i: usize) -> OrderPayload {
        let id = uuid::Uuid::from_u64_pair(self.scenario.seed, i as u64).to_string();
        let mut draws = Rng::new(self.scenario.seed, 1_000 + i as u64);
        let kind = draws.between(0, 9);
        let sku = format!("SKU-{}", draws.between(1, 5));
        let quantity = draws.between(1, 3);
        let (customer, sku, unit_price, country) = match kind {
            0 => ("blocked-7".to_string(), sku, 1_500, "DE"),
            1 => (format!("customer-{i}"), sku, 600_000, "DE"),
            2 => (format!("customer-{i}"), "SKU-NONE".to_string(), 1_500, "DE"),
            3 => (format!("customer-{i}"), sku, 1_500, "ZZ"),
            _ => (format!("customer-{i}"), sku, draws.between(100, 9_000), "DE"),
        };
        OrderPayload {
            order_id: id,
            customer_id: customer,
            currency: "EUR".into(),
            total: unit_price * quantity,
            items: vec![Item { sku, quantity, unit_price }],
            ship_to: ShipTo { country: country.into(), city: None, postal_code: None, street: None },
        }
    }

    fn wake_relay(&mut self) {
        if self.relay.poll_queued || !self.services[self.relay.service].up {
            return;
        }
        self.relay.poll_queued = true;
        let epoch = self.services[self.relay.service].epoch;
        let delay = self.schedule.between(1, 5);
        self.after(delay, Action::RelayPoll { epoch });
    }

    /// The relay's round: read unpublished rows, publish each (in `seq` order), then the
    /// acknowledgement marks them a few ms later, unless the relay crashes first.
    async fn relay_poll(&mut self, epoch: u32) -> Result<(), StoreError> {
        self.relay.poll_queued = false;
        if !self.current(self.relay.service, epoch) {
            return Ok(());
        }
        let rows = outbox::unpublished(&self.store, self.relay.batch, None).await?;
        let full = rows.len() as u64 >= u64::from(self.relay.batch);
        let mut seqs = Vec::new();
        for row in rows {
            if !self.relay.pending.insert(row.seq) {
                continue;
            }
            let topic = row.event.topic.clone().unwrap_or_else(|| row.event.event_type.clone());
            let (key, kind) = (row.event.key.clone(), row.event.event_type.clone());
            let (_, number) = self.broker.append(&topic, &key, Body::Event(row.event));
            self.stats.published += 1;
            let order = self.order_name(&key);
            let relay = self.services[self.relay.service].name.clone();
            self.note(&relay, format!("published #{number} {kind} of {order}"));
            self.notify(&topic);
            seqs.push(row.seq);
        }
        if seqs.is_empty() {
            return Ok(());
        }
        let site = format!("relay|{}", seqs[0]);
        if self.crash_here(self.relay.service, &site) {
            return Ok(());
        }
        let ack = self.schedule.between(1, 3);
        self.after(ack, Action::RelayAck { epoch, seqs });
        if full {
            self.wake_relay();
        }
        Ok(())
    }

    /// Tells every group reading `topic` that there is more to fetch.
    fn notify(&mut self, topic: &str) {
        for g in 0..self.groups.len() {
            let group = &self.groups[g];
            if group.fetch_queued || !group.topics.iter().any(|t| t == topic) || !self.services[group.service].up {
                continue;
            }
            self.groups[g].fetch_queued = true;
            let epoch = self.services[self.groups[g].service].epoch;
            let delay = self.schedule.between(1, 8);
            self.after(delay, Action::Fetch { group: g, epoch });
        }
    }

    /// Takes records from every partition the group reads, one per key at a time, up to its
    /// `max_in_flight`; a record whose key is busy waits (parked) for the one before it.
    fn fetch(&mut self, g: usize) {
        let topics = self.groups[g].topics.clone();
        for topic in &topics {
            for partition in 0..super::broker::PARTITIONS {
                let end = self.broker.end(topic, partition);
                let committed = self.broker.committed(&self.groups[g].group, topic, partition);
                self.groups[g]
                    .parts
                    .entry((topic.clone(), partition))
                    .or_insert_with(|| Part { next: committed, ..Part::default() });
                loop {
                    let group = &mut self.groups[g];
                    if group.running >= group.max_in_flight {
                        return;
                    }
                    let part = group.parts.get_mut(&(topic.clone(), partition)).expect("made above");
                    if part.next >= end {
                        break;
                    }
                    let offset = part.next;
                    part.next += 1;
                    let at = Position { topic: topic.clone(), partition, offset };
                    let key = self.broker.get(&at).map(|r| r.key.clone()).unwrap_or_default();
                    let group = &mut self.groups[g];
                    let part = group.parts.get_mut(&(topic.clone(), partition)).expect("made above");
                    if part.busy.contains(&key) || part.parked.iter().any(|(_, k)| *k == key) {
                        part.parked.push((offset, key));
                        continue;
                    }
                    self.start(g, at, key);
                }
            }
        }
    }

    fn start(&mut self, g: usize, at: Position, key: String) {
        let group = &mut self.groups[g];
        let part = group.parts.get_mut(&(at.topic.clone(), at.partition)).expect("started in a known partition");
        part.busy.insert(key.clone());
        group.running += 1;
        let epoch = self.services[group.service].epoch;
        let mut delay = self.schedule.between(1, 5);
        let site = self.site(g, &at);
        let mut slow = self.faults.draw(FaultKind::Delay, &site).map(|s| (s, 200, 15_000));
        for (i, fault, p) in self.declared(g, &at.topic, &key) {
            if let (None, Fault::Latency { min, max, .. }) = (&slow, fault) {
                let range = (i64::try_from(min.as_millis()).unwrap_or(0), i64::try_from(max.as_millis()).unwrap_or(0));
                slow = self
                    .faults
                    .draw_at(FaultKind::Delay, &format!("{site}|rule {i}"), p)
                    .map(|s| (s, range.0, range.1));
            }
        }
        if let Some((strike, low, high)) = slow {
            delay += strike.between(low, high);
            let (label, number) = (self.groups[g].label.clone(), self.broker.get(&at).map_or(0, |r| r.number));
            let order = self.order_name(&key);
            let seconds = delay as f64 / 1000.0;
            self.note(
                &label,
                format!("fault {}: delivery of #{number} ({order}) delayed {seconds:.1}s", id_text(strike.id)),
            );
        }
        self.after(delay, Action::Handle { group: g, at, attempt: 1, epoch, extra: false });
    }

    /// A record is finished (handled, dead-lettered or lost): its key is free, its offset
    /// may be committed, and what waited may start.
    fn finish(&mut self, g: usize, at: &Position, key: &str) {
        let group = &mut self.groups[g];
        let Some(part) = group.parts.get_mut(&(at.topic.clone(), at.partition)) else { return };
        part.done.insert(at.offset);
        part.busy.remove(key);
        group.running = group.running.saturating_sub(1);
        let mut ready = Vec::new();
        let mut i = 0;
        while i < part.parked.len() {
            let (offset, parked_key) = &part.parked[i];
            let blocked_before = part.parked[..i].iter().any(|(_, k)| k == parked_key);
            if !part.busy.contains(parked_key) && !blocked_before && group.running + ready.len() < group.max_in_flight {
                ready.push((*offset, parked_key.clone()));
                part.parked.remove(i);
                part.busy.insert(ready.last().expect("pushed").1.clone());
            } else {
                i += 1;
            }
        }
        for (offset, key) in ready {
            let group = &mut self.groups[g];
            let part = group.parts.get_mut(&(at.topic.clone(), at.partition)).expect("exists");
            part.busy.remove(&key);
            self.start(g, Position { topic: at.topic.clone(), partition: at.partition, offset }, key);
        }
        if !self.groups[g].commit_queued {
            self.groups[g].commit_queued = true;
            let epoch = self.services[self.groups[g].service].epoch;
            self.after(COMMIT_EVERY_MS, Action::CommitOffsets { group: g, epoch });
        }
        self.fetch(g);
    }

    /// Commits, per partition, the offset below the lowest unfinished record.
    fn commit_offsets(&mut self, g: usize) {
        let group = &mut self.groups[g];
        for ((topic, partition), part) in group.parts.iter_mut() {
            let mut offset = self.broker.committed(&group.group, topic, *partition);
            while part.done.remove(&offset) {
                offset += 1;
            }
            self.broker.commit(&group.group, topic, *partition, offset);
        }
    }

    /// A fault site's name: who decides, and the record by topic, order and ordinal.
    fn site(&self, g: usize, at: &Position) -> String {
        let record = self.broker.get(at);
        let (key, ordinal) = record.as_ref().map_or(("", 0), |r| (r.key.as_str(), r.ordinal));
        format!("{}|{}|{}|{}", self.groups[g].label, at.topic, self.order_name(key), ordinal)
    }

    /// Whether `service` crashes right after acting at `site`; if so it is down from now.
    fn crash_here(&mut self, service: usize, site: &str) -> bool {
        let Some(strike) = self.faults.draw(FaultKind::Crash, site) else { return false };
        self.crash(service, strike, None);
        true
    }

    /// `service` crashes: what it holds in memory is gone; it restarts 0.05–3 s later.
    fn crash(&mut self, service: usize, strike: Strike, rule: Option<usize>) {
        let down = strike.between(50, 3_000);
        self.stats.crashes += 1;
        let s = &mut self.services[service];
        s.up = false;
        s.epoch += 1;
        let name = s.name.clone();
        for group in self.groups.iter_mut().filter(|g| g.service == service) {
            group.parts.clear();
            group.running = 0;
            group.fetch_queued = false;
            group.commit_queued = false;
        }
        if self.relay.service == service {
            self.relay.pending.clear();
            self.relay.poll_queued = false;
        }
        let seconds = down as f64 / 1000.0;
        self.note(
            &name,
            format!("fault {}{}: crashed (restarts in {seconds:.2}s)", id_text(strike.id), self.rule_text(rule)),
        );
        self.after(down, Action::Restart { service });
    }

    fn restart(&mut self, service: usize) {
        self.services[service].up = true;
        let (name, epoch) = (self.services[service].name.clone(), self.services[service].epoch);
        self.note(&name, "restarted".into());
        for g in 0..self.groups.len() {
            if self.groups[g].service == service {
                self.groups[g].fetch_queued = true;
                self.after(1, Action::Fetch { group: g, epoch });
            }
        }
        if self.relay.service == service {
            self.wake_relay();
        }
        if self.saga_service == service {
            self.after(self.tick_ms(), Action::Tick { epoch });
        }
    }

    /// Which pipeline rule a fault came from, for the trace (` (chaos rule flaky-charges)`).
    fn rule_text(&self, rule: Option<usize>) -> String {
        rule.and_then(|i| self.system.rules.get(i)).map_or(String::new(), |r| format!(" (chaos rule {})", r.spec.id))
    }

    /// The pipelines' own `[[chaos.rules]]` (with a probability) that name where group `g`
    /// handles a record of `topic` for `key`, by the chaos engine's own matching.
    fn declared(&self, g: usize, topic: &str, key: &str) -> Vec<(usize, Fault, f64)> {
        let group = &self.groups[g];
        let handler = match &group.handles {
            Handles::Worker(config) => config.handler.name(),
            Handles::Saga => "saga",
        };
        let service = &self.services[group.service].name;
        let point = Point::Consume { service, consumer: &group.label, handler, topic, attempt: 1 };
        let store = Point::Store { service };
        self.system
            .rules
            .iter()
            .enumerate()
            .filter_map(|(i, rule)| {
                let Chance::Probability(p) = rule.chance else { return None };
                let named = point.matches(&rule.target) || store.matches(&rule.target);
                (named && in_key_sample(rule, key)).then(|| (i, rule.fault.clone(), p))
            })
            .collect()
    }

    /// Delivers one record to its group's handler (or a second copy of it, `extra`).
    async fn handle(&mut self, g: usize, at: Position, attempt: u32, extra: bool) -> Result<(), StoreError> {
        let Some(record) = self.broker.get(&at) else { return Ok(()) };
        let order = self.order_name(&record.key);
        let label = self.groups[g].label.clone();
        let what = format!("#{} {} of {order}", record.number, record.kind());
        let droppable = match &record.body {
            Body::Event(event) => event.event_type != self.system.saga.config.definition.trigger,
            Body::DeadLetter { .. } => false,
        };
        let copy = if extra { " (again)" } else { "" };
        let site = format!("{}|{attempt}{copy}", self.site(g, &at));
        let declared = self.declared(g, &at.topic, &record.key);
        let rule_draw = |world: &mut Self, kind: FaultKind, i: usize, p: f64| {
            world.faults.draw_at(kind, &format!("{site}|rule {i}"), p).map(|strike| (strike, i))
        };
        // Lost on the way in: the `--faults` drop (never a trigger: no timeout would
        // recover it), or a pipeline's own drop rule (as declared, even on a trigger).
        let mut lost = None;
        if droppable {
            lost = self.faults.draw(FaultKind::Drop, &site).map(|strike| (strike, None));
        }
        for (i, fault, p) in &declared {
            if lost.is_none() && attempt == 1 && *fault == Fault::Drop {
                lost = rule_draw(self, FaultKind::Drop, *i, *p).map(|(strike, i)| (strike, Some(i)));
            }
        }
        if let Some((strike, rule)) = lost {
            self.note(&label, format!("fault {}{}: {what}{copy} lost", id_text(strike.id), self.rule_text(rule)));
            if !extra {
                self.finish(g, &at, &record.key);
            }
            return Ok(());
        }
        if let Some(strike) = self.faults.draw(FaultKind::Error, &site) {
            let wait = self.backoff(g, attempt.min(8));
            self.note(
                &label,
                format!("fault {}: database unavailable for {what}{copy}; retried in {wait}ms", id_text(strike.id)),
            );
            if !extra {
                let epoch = self.services[self.groups[g].service].epoch;
                self.after(wait, Action::Handle { group: g, at, attempt, epoch, extra });
            }
            return Ok(());
        }
        // Failures injected into this attempt, as the consume loop would meet them.
        let worker = matches!(self.groups[g].handles, Handles::Worker(_));
        let mut injected = if worker { self.faults.draw(FaultKind::Fail, &site) } else { None }
            .map(|s| (s, None, HandleError::new(ErrorKind::HandlerFailed, "the handler failed (injected)")));
        for (i, fault, p) in &declared {
            if injected.is_some() {
                break;
            }
            let error = match fault {
                Fault::Error(message) => HandleError::new(ErrorKind::HandlerFailed, message.clone()),
                Fault::Corrupt if attempt == 1 => HandleError::new(ErrorKind::Undecodable, "corrupted in transit"),
                _ => continue,
            };
            injected = rule_draw(self, FaultKind::Fail, *i, *p).map(|(strike, i)| (strike, Some(i), error));
        }
        self.stats.deliveries += 1;
        if extra {
            self.stats.duplicates += 1;
        }
        let result = match injected {
            Some((strike, rule, error)) => {
                self.note(&label, format!("fault {}{}: {what}{copy} fails", id_text(strike.id), self.rule_text(rule)));
                Err(error)
            }
            None => self.transact(g, &record, &at).await,
        };
        match result {
            Ok(outcome) => self.note(&label, format!("{what}{copy}: {outcome}")),
            Err(error) => {
                let group = &self.groups[g];
                let retry = error.kind == ErrorKind::Unavailable
                    || (group.retry.retryable.contains(&error.kind) && attempt < group.retry.attempts.max(1));
                if extra {
                    self.note(&label, format!("{what}{copy}: failed ({})", error.message));
                } else if retry {
                    let wait = self.backoff(g, attempt);
                    self.note(
                        &label,
                        format!("{what}: attempt {attempt} failed ({}); retried in {wait}ms", error.message),
                    );
                    let epoch = self.services[self.groups[g].service].epoch;
                    self.after(wait, Action::Handle { group: g, at, attempt: attempt + 1, epoch, extra });
                    return Ok(());
                } else {
                    let topic = self.groups[g]
                        .dead_letter_topic
                        .clone()
                        .unwrap_or_else(|| crate::transport::dead_letter::topic_for(&at.topic));
                    let body = Body::DeadLetter { original_topic: at.topic.clone(), error: error.message.clone() };
                    let (_, number) = self.broker.append(&topic, &record.key, body);
                    self.stats.dead_letters += 1;
                    self.note(
                        &label,
                        format!("{what}: dead-lettered as #{number} after {attempt} attempt(s): {}", error.message),
                    );
                    self.notify(&topic);
                }
            }
        }
        self.wake_relay();
        if extra {
            return Ok(());
        }
        self.finish(g, &at, &record.key);
        let service = self.groups[g].service;
        if self.crash_here(service, &site) {
            return Ok(());
        }
        for (i, fault, p) in &declared {
            if *fault == Fault::Crash {
                if let Some((strike, i)) = rule_draw(self, FaultKind::Crash, *i, *p) {
                    self.crash(service, strike, Some(i));
                    return Ok(());
                }
            }
        }
        let mut again = self.faults.draw(FaultKind::Duplicate, &site).map(|s| (s, None));
        for (i, fault, p) in &declared {
            if again.is_none() && *fault == Fault::Duplicate {
                again = rule_draw(self, FaultKind::Duplicate, *i, *p).map(|(s, i)| (s, Some(i)));
            }
        }
        if let Some((strike, rule)) = again {
            let later = strike.between(1, 3_000);
            let id = id_text(strike.id);
            self.note(
                &label,
                format!("fault {id}{}: {what} will be delivered again in {later}ms", self.rule_text(rule)),
            );
            let epoch = self.services[self.groups[g].service].epoch;
            self.after(later, Action::Handle { group: g, at, attempt: 1, epoch, extra: true });
        }
        Ok(())
    }

    /// The consume loop's backoff: doubling from `backoff`, at most `max_backoff`.
    fn backoff(&self, g: usize, attempt: u32) -> i64 {
        let retry = &self.groups[g].retry;
        let base = i64::try_from(retry.backoff.as_millis()).unwrap_or(200).max(1);
        let cap = i64::try_from(retry.max_backoff.as_millis()).unwrap_or(5_000).max(base);
        base.saturating_mul(1i64 << attempt.saturating_sub(1).min(20)).min(cap)
    }

    /// One message's transaction, with the service's own code; returns what it did.
    async fn transact(&mut self, g: usize, record: &Record, at: &Position) -> Result<String, HandleError> {
        let writer = self.services[self.groups[g].service].writer.clone();
        let inbox = self.groups[g].inbox.clone();
        let mut tx = self.store.begin().await.map_err(store_error)?;
        let outcome = match (&self.groups[g].handles, &record.body) {
            (Handles::Worker(config), Body::Event(event)) => {
                writer.check_received(event)?;
                let handled = match (self.scenario.mutant, &config.handler) {
                    (Some(Mutant::ChargeWithoutChecks), Handler::PaymentCharge(_)) => {
                        mutant::charge_without_checks(&mut tx, &writer, config, event, self.now).await?
                    }
                    (Some(Mutant::InboxSkipped), _) => {
                        mutant::handle_without_inbox(&mut tx, &writer, config, event, self.now).await?
                    }
                    _ => worker::handle_in(&mut tx, &writer, config, &inbox, event, self.now).await?,
                };
                match handled {
                    Some(true) => format!("success → {}", config.on_success),
                    Some(false) => format!("refused → {}", config.on_failure.as_deref().unwrap_or("(no reply)")),
                    None => "seen before: the recorded reply again".to_string(),
                }
            }
            (Handles::Worker(_), Body::DeadLetter { .. }) => {
                return Ok("a dead letter on a request topic: skipped".into())
            }
            (Handles::Saga, body) => {
                let arrival = match body {
                    Body::Event(event) => {
                        writer.check_received(event)?;
                        Arrival::event(event.clone())
                    }
                    Body::DeadLetter { original_topic, error } => {
                        let partition = i32::try_from(at.partition).unwrap_or(0);
                        let offset = i64::try_from(at.offset).unwrap_or(0);
                        Arrival::dead_letter(
                            &record.key,
                            original_topic,
                            Some(error.clone()),
                            (&at.topic, partition, offset),
                        )
                    }
                };
                let committed =
                    orchestrator::transition_in(&mut tx, &writer, &self.orchestrator, &inbox, &arrival, self.now)
                        .await?;
                match committed {
                    None => "seen before".to_string(),
                    Some(committed) => self.transition_text(&committed.transition),
                }
            }
        };
        tx.commit().await.map_err(store_error)?;
        Ok(outcome)
    }

    /// The saga's new state and what it sent, as the trace shows them.
    fn transition_text(&self, transition: &crate::saga::machine::Transition) -> String {
        let def = &self.system.saga.config.definition;
        let Some(state) = &transition.state else { return "ignored (not what the saga waits for)".into() };
        let mut text = crate::pipeline_tests::describe(def, state);
        let sent: Vec<String> = transition
            .commands
            .iter()
            .map(|c| match c {
                Command::Send { event_type, attempt, .. } => format!("{event_type} #{attempt}"),
                Command::Finish { event_type, .. } => event_type.clone(),
            })
            .collect();
        if !sent.is_empty() {
            text.push_str(&format!("; sends {}", sent.join(", ")));
        }
        text
    }

    /// The orchestrator's timer: every due saga gets a tick, each in its own transaction.
    async fn tick(&mut self) -> Result<(), StoreError> {
        let def = &self.system.saga.config.definition;
        let due = sagas::due(&self.store, &def.name, self.now, 200).await?;
        let writer = self.services[self.saga_service].writer.clone();
        let label = format!("{} timer", writer.service);
        for saga_id in due {
            let mut tx = self.store.begin().await?;
            match orchestrator::tick_in(&mut tx, &writer, &self.orchestrator, &saga_id, self.now).await {
                Ok(Some(ticked)) => {
                    tx.commit().await?;
                    let text = self.transition_text(&ticked.transition);
                    let order = self.order_name(&saga_id);
                    self.note(&label, format!("{order}: {text}"));
                    self.wake_relay();
                }
                Ok(None) => {}
                Err(e) => {
                    let order = self.order_name(&saga_id);
                    self.note(&label, format!("{order}: tick not applied ({})", e.message));
                }
            }
        }
        Ok(())
    }
}
