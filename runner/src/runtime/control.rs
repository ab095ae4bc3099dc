//! The runner's side of the control plane: follow the control topic into the chaos engine,
//! announce this process's services on it, report this process's injections to the
//! injections topic, and turn broker rules into the embedded broker's state.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use crate::chaos::{BrokerFault, Chaos, ControlRecord, Injection, ServiceCatalog, CONTROL_TOPIC, INJECTIONS_TOPIC};
use crate::services::ServiceContext;
use crate::transport::{EmbeddedBroker, TransportError};

/// Applies every record of the control topic, from its first, until shutdown.
pub async fn follow_control(ctx: ServiceContext) -> Result<(), TransportError> {
    ctx.broker
        .follow(CONTROL_TOPIC, &ctx.shutdown, |key, value| match ControlRecord::decode(key, value) {
            Ok(record) => {
                tracing::debug!(key = record.key(), "control record applied");
                ctx.chaos.apply_control(record);
            }
            Err(reason) => tracing::warn!(reason, "control record ignored"),
        })
        .await
}

/// What the services of this process consist of, to announce on the control topic.
#[derive(Clone, Default)]
pub struct OwnServices {
    catalogs: Arc<Mutex<BTreeMap<String, ServiceCatalog>>>,
    changed: Arc<Notify>,
}

impl OwnServices {
    /// Records `catalog` in this process's chaos engine at once (so its own chaos-svc knows it
    /// before answering anything) and has it announced to the other runners.
    pub fn set(&self, chaos: &Chaos, catalog: ServiceCatalog) {
        chaos.announce(catalog.clone());
        self.catalogs.lock().unwrap_or_else(|p| p.into_inner()).insert(catalog.service.clone(), catalog);
        self.changed.notify_one();
    }

    fn snapshot(&self) -> BTreeMap<String, ServiceCatalog> {
        self.catalogs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Publishes a `hello/<service>` record for each service of this process whenever what it
/// consists of changes; a failed publication is tried again every second.
pub async fn announce_services(ctx: ServiceContext, own: OwnServices) -> Result<(), TransportError> {
    let publisher = ctx.broker.bounded_publisher()?;
    let mut announced: BTreeMap<String, ServiceCatalog> = BTreeMap::new();
    loop {
        let mut failed = false;
        for (service, catalog) in own.snapshot() {
            if announced.get(&service) == Some(&catalog) {
                continue;
            }
            let record = ControlRecord::Hello(service.clone(), Some(Box::new(catalog.clone())));
            match publisher
                .publish_raw(CONTROL_TOPIC, Some(record.key().as_bytes()), record.value().as_deref(), &[])
                .await
            {
                Ok(()) => {
                    announced.insert(service, catalog);
                }
                Err(e) => {
                    tracing::debug!(service, error = %e, "cannot announce the service on the control topic yet");
                    failed = true;
                }
            }
        }
        let wait = if failed { Duration::from_secs(1) } else { Duration::from_secs(3600) };
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return Ok(()),
            _ = own.changed.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// chaos-svc: keeps the injections every runner reports, for its list.
pub async fn follow_injections(ctx: ServiceContext) -> Result<(), TransportError> {
    ctx.broker
        .follow(INJECTIONS_TOPIC, &ctx.shutdown, |_, value| {
            if let Some(injection) = value.and_then(|v| serde_json::from_slice::<Injection>(v).ok()) {
                ctx.chaos.remember(injection);
            }
        })
        .await
}

/// Publishes this process's injections (best effort; the engine keeps its own list too).
pub async fn report_injections(ctx: ServiceContext) -> Result<(), TransportError> {
    let publisher = ctx.broker.bounded_publisher()?;
    let (sender, mut receiver) = mpsc::channel::<Injection>(10_000);
    ctx.chaos.report_to(sender);
    loop {
        let injection = tokio::select! {
            _ = ctx.shutdown.cancelled() => return Ok(()),
            injection = receiver.recv() => injection,
        };
        let Some(injection) = injection else { return Ok(()) };
        let value = serde_json::to_vec(&injection).unwrap_or_default();
        let key = injection.service.clone();
        if let Err(e) = publisher.publish_raw(INJECTIONS_TOPIC, Some(key.as_bytes()), Some(&value), &[]).await {
            tracing::debug!(error = %e, "cannot report an injection");
        }
    }
}

/// Keeps the embedded broker in the state the broker rules ask for: down, or slow. The
/// first pass applies the wanted state whatever it is, so a restarted task never trusts a
/// state its predecessor may have left half-applied.
pub async fn broker_faults(chaos: Chaos, broker: Arc<EmbeddedBroker>, shutdown: CancellationToken) {
    let mut applied = BrokerFault::default();
    let mut changes = chaos.changes();
    let mut first = true;
    loop {
        let wanted = chaos.broker_fault();
        if first {
            first = false;
            if let Err(e) = broker.set_up(!wanted.down).and_then(|()| broker.set_rtt(wanted.rtt)) {
                tracing::warn!(error = %e, "cannot set the embedded broker's state");
            }
            applied.down = wanted.down;
            applied.rtt = wanted.rtt;
        }
        if wanted != applied {
            for rule in wanted.rules.iter().filter(|r| !applied.rules.contains(r)) {
                let detail =
                    if wanted.down { "broker down".to_string() } else { format!("rtt {} ms", wanted.rtt.as_millis()) };
                chaos.record_broker(rule, detail);
            }
            if wanted.down != applied.down {
                if let Err(e) = broker.set_up(!wanted.down) {
                    tracing::warn!(error = %e, "cannot change the embedded broker's state");
                }
                tracing::warn!(down = wanted.down, rules = ?wanted.rules, "chaos: embedded broker state changed");
            }
            if wanted.rtt != applied.rtt {
                if let Err(e) = broker.set_rtt(wanted.rtt) {
                    tracing::warn!(error = %e, "cannot change the embedded broker's round-trip time");
                }
            }
            applied = wanted;
        }
        // Rules change by control records, and end by their own clock (window, lease).
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = changes.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    if applied.down {
        let _ = broker.set_up(true);
    }
}

/// How often consumer lag is sampled: as often as Prometheus scrapes by default. Each sample
/// asks for every partition's watermarks (over 250 requests for `runner up`).
const LAG_EVERY: Duration = Duration::from_secs(15);

/// Samples the lag of this process's consumer groups every [`LAG_EVERY`] (`consumer_lag`).
pub async fn consumer_lag(ctx: ServiceContext, groups: Vec<(String, Vec<String>)>) {
    loop {
        for (group, topics) in &groups {
            match ctx.broker.consumer_lag(group, topics).await {
                Ok(partitions) => {
                    for (topic, partition, lag) in partitions {
                        metrics::gauge!(
                            crate::telemetry::CONSUMER_LAG,
                            "group" => group.clone(),
                            "topic" => topic,
                            "partition" => partition.to_string()
                        )
                        .set(lag as f64);
                    }
                }
                Err(e) => tracing::debug!(group, error = %e, "cannot measure consumer lag"),
            }
        }
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            _ = tokio::time::sleep(LAG_EVERY) => {}
        }
    }
}
